//! The `cpaas` binary: parse the command line, load settings, run.

use std::io::BufRead;

use clap::Parser;
use cpaas::cli::{Cli, Command, KeysCommand, TenantCommand, UserCommand};
use cpaas::config::{LogFormat, Settings};
use cpaas::startup::{Application, load_cipher};
use secrecy::ExposeSecret;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Keys(KeysCommand::Generate { out }) = &command {
        return generate_keys(out.as_deref());
    }
    if let Command::MockProviders { listen } = &command {
        let format = match std::env::var("LOG_FORMAT").as_deref() {
            Ok("json") => LogFormat::Json,
            _ => LogFormat::Pretty,
        };
        cpaas::telemetry::init(format);
        let listen = listen.clone();
        return block_on(async move { cpaas::mock_providers::run(&listen).await });
    }
    let settings = Settings::from_env()?;
    cpaas::telemetry::init(settings.log_format);
    if settings.app_env_defaulted {
        tracing::warn!(
            "APP_ENV is not set: running as development (generated keys, seeds, relaxed checks); \
             set APP_ENV=production for a deployment"
        );
    }
    match command {
        Command::Serve => serve(settings),
        Command::Migrate => {
            let applied = cpaas::db::run_migrations(settings.database_url.expose_secret())?;
            tracing::info!(count = applied.len(), ?applied, "migrations applied");
            Ok(())
        }
        Command::Seed => block_on(async move { seed(&settings).await }),
        Command::Tenant(TenantCommand::Add {
            name,
            plan_tier,
            id,
        }) => block_on(async move {
            let tier = cpaas::domain::PlanTier::known(&plan_tier).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown plan tier {plan_tier:?}; expected free, starter, professional, \
                     business or enterprise"
                )
            })?;
            let pool = cpaas::db::build_pool(&settings)?;
            let mut conn = pool.get().await?;
            let id = id.unwrap_or_else(uuid::Uuid::now_v7);
            cpaas::db::users::ensure_tenant(&mut conn, id, &name, tier.as_str()).await?;
            println!("{id}");
            Ok(())
        }),
        Command::User(UserCommand::Add {
            tenant_id,
            email,
            roles,
            password,
        }) => {
            let password = match password {
                Some(p) => p,
                None => read_password()?,
            };
            block_on(async move {
                let pool = cpaas::db::build_pool(&settings)?;
                let mut conn = pool.get().await?;
                let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
                if cpaas::seed::add_user(&mut conn, tenant_id, &email, &password, &roles).await? {
                    println!("added {email}");
                    Ok(())
                } else {
                    anyhow::bail!("a user with e-mail {email} already exists")
                }
            })
        }
        Command::User(UserCommand::Disable { email }) => block_on(async move {
            let pool = cpaas::db::build_pool(&settings)?;
            let mut conn = pool.get().await?;
            let Some(id) = cpaas::db::users::disable_user(&mut conn, &email).await? else {
                anyhow::bail!("no active user has the e-mail {email}");
            };
            let revoked =
                cpaas::auth::sessions::revoke_user_sessions(&mut conn, id, "disabled").await?;
            println!("disabled {email}; {revoked} sessions revoked");
            Ok(())
        }),
        Command::Keys(_) | Command::MockProviders { .. } => Ok(()),
    }
}

fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(fut: F) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(fut)
}

async fn seed(settings: &Settings) -> anyhow::Result<()> {
    if !settings.is_development() {
        anyhow::bail!("the development seeds cannot run with APP_ENV=production");
    }
    let pool = cpaas::db::build_pool(settings)?;
    let mut conn = pool.get().await?;
    cpaas::seed::run(&mut conn, &load_cipher(settings)?).await?;
    tracing::info!("development seeds applied");
    Ok(())
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    let applied = cpaas::db::run_migrations(settings.database_url.expose_secret())?;
    if !applied.is_empty() {
        tracing::info!(?applied, "migrations applied");
    }
    block_on(async move {
        if settings.seed_on_start {
            seed(&settings).await?;
        }
        let app = Application::build(settings.clone()).await?;
        tracing::info!(addr = %settings.listen_addr, port = app.port(), "listening");
        let state = app.state().clone();
        app.stop_on_signal();
        app.run_until_stopped().await?;
        cpaas::startup::shutdown(&state).await;
        tracing::info!("stopped");
        Ok(())
    })
}

fn read_password() -> anyhow::Result<String> {
    eprint!("password: ");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.len() < 8 {
        anyhow::bail!("the password must have at least 8 characters");
    }
    Ok(password)
}

fn generate_keys(out: Option<&std::path::Path>) -> anyhow::Result<()> {
    let pem = cpaas::auth::keys::generate_private_key_pem()?;
    match out {
        Some(path) => {
            if path.exists() {
                anyhow::bail!("{} exists; refusing to overwrite it", path.display());
            }
            cpaas::auth::keys::read_or_create(path, || Ok(pem))?;
            eprintln!("wrote the RS256 private key to {}", path.display());
            println!("JWT_PRIVATE_KEY_PATH={}", path.display());
        }
        None => print!("{pem}"),
    }
    println!(
        "CPAAS_ENCRYPTION_KEY={}",
        cpaas::crypto::CredentialCipher::generate_key()
    );
    Ok(())
}
