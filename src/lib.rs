//! cpaas-orchestrator: a multi-tenant communications orchestrator.

pub mod actors;
pub mod auth;
pub mod callbacks;
pub mod cli;
pub mod config;
pub mod consumers;
pub mod crypto;
pub mod db;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod http;
pub mod jobs;
pub mod messages;
pub mod metrics;
pub mod mock_providers;
pub mod outbox;
pub mod providers;
pub mod rate_limit;
pub mod routes;
pub mod seed;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod templates;
pub mod webhooks;
