//! What every handler can reach.

use std::sync::Arc;

use actix::Addr;

use crate::actors::TokenActor;
use crate::auth::SigningKeys;
use crate::callbacks::Callbacks;
use crate::config::Settings;
use crate::crypto::CredentialCipher;
use crate::db::DbPool;
use crate::jobs::Jobs;
use crate::metrics::Metrics;
use crate::outbox::{Outbox, Wakeup};
use crate::rate_limit::RateLimits;

/// Shared application state, cloned into every worker.
#[derive(Clone)]
pub struct AppState {
    pub pool: DbPool,
    pub settings: Arc<Settings>,
    pub keys: Arc<SigningKeys>,
    /// Whether access tokens' users are still active and their passwords unchanged.
    pub accounts: Arc<crate::auth::accounts::AccountStates>,
    pub cipher: CredentialCipher,
    pub tokens: Addr<TokenActor>,
    pub rate_limits: Arc<RateLimits>,
    pub outbox: Arc<Outbox>,
    pub callbacks: Arc<Callbacks>,
    /// The jobs, with the delivery service, webhook sender and provider registry they share.
    pub jobs: Arc<Jobs>,
    pub metrics: Arc<Metrics>,
    /// Wakes the drainers after a commit that wrote events.
    pub wakeup: Arc<Wakeup>,
}
