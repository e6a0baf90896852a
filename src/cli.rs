//! Command-line interface of the `cpaas` binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use uuid::Uuid;

/// cpaas-orchestrator: one API for SMS, e-mail, WhatsApp, push and voice.
#[derive(Debug, Parser)]
#[command(name = "cpaas", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (the default): migrate, seed in development, serve.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Apply the development seeds and exit.
    Seed,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Serve fake provider APIs (Twilio, Meta WhatsApp, Vonage, SNS, SendGrid, SES, FCM) for
    /// local runs and load tests; needs no database.
    MockProviders {
        /// Address to listen on.
        #[arg(long, env = "MOCK_PROVIDERS_LISTEN", default_value = crate::mock_providers::DEFAULT_LISTEN)]
        listen: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Add a tenant.
    Add {
        #[arg(long)]
        name: String,
        /// free, starter, professional, business or enterprise.
        #[arg(long, default_value = "free")]
        plan_tier: String,
        /// Defaults to a new id.
        #[arg(long)]
        id: Option<Uuid>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user to a tenant (the password is read from CPAAS_USER_PASSWORD or prompted on stdin).
    Add {
        #[arg(long)]
        tenant_id: Uuid,
        #[arg(long)]
        email: String,
        /// Comma-separated: user, organizer, developer, admin.
        #[arg(long, value_delimiter = ',', default_value = "user")]
        roles: Vec<String>,
        #[arg(long, env = "CPAAS_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Disable a user: no more logins, every session revoked, access tokens refused within a
    /// minute.
    Disable {
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate an RS256 signing key (PKCS#8 PEM) and an encryption key for credentials.
    Generate {
        /// Write the PEM here (mode 0600) instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}
