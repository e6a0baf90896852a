//! TokenActor: the single owner of login and refresh state. It holds the signing keys and the
//! in-memory per-address login throttle; the durable parts (refresh families, per-account
//! throttling) live in the database through `auth::sessions`.

use std::net::IpAddr;
use std::time::Duration;

use actix::prelude::*;

use crate::auth::sessions::{self, SessionDeps, SessionError, TokenPair};
use crate::auth::throttle::{AddressThrottle, ThrottlePolicy};

/// The token service actor.
pub struct TokenActor {
    deps: SessionDeps,
    addresses: AddressThrottle,
}

impl TokenActor {
    pub fn new(deps: SessionDeps) -> Self {
        Self {
            deps,
            addresses: AddressThrottle::default(),
        }
    }

    fn address_policy(&self) -> ThrottlePolicy {
        ThrottlePolicy {
            max_failures: self.deps.settings.login_max_failures_per_ip as i32,
            window: self.deps.settings.login_failure_window,
            lockout: self.deps.settings.login_lockout,
        }
    }
}

impl Actor for TokenActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_secs(60), |act, _| {
            let age = act
                .deps
                .settings
                .login_failure_window
                .max(act.deps.settings.login_lockout);
            act.addresses.prune(age);
        });
    }
}

/// Check credentials and start a session.
#[derive(Message)]
#[rtype(result = "Result<TokenPair, SessionError>")]
pub struct Login {
    pub email: String,
    pub password: String,
    pub client: Option<IpAddr>,
}

/// Rotate a refresh token.
#[derive(Message)]
#[rtype(result = "Result<TokenPair, SessionError>")]
pub struct Refresh {
    pub refresh_token: String,
}

/// Revoke the family of a refresh token.
#[derive(Message)]
#[rtype(result = "Result<(), SessionError>")]
pub struct Logout {
    pub refresh_token: String,
}

impl Handler<Login> for TokenActor {
    type Result = ResponseActFuture<Self, Result<TokenPair, SessionError>>;

    fn handle(&mut self, msg: Login, _: &mut Self::Context) -> Self::Result {
        let client = msg.client.map(crate::auth::throttle::address_key);
        if let Some(retry_after_secs) = client.and_then(|ip| self.addresses.locked_for(ip)) {
            return Box::pin(fut::ready(Err(SessionError::TooManyAttempts {
                retry_after_secs,
            })));
        }
        let deps = self.deps.clone();
        Box::pin(
            async move { sessions::login(&deps, &msg.email, msg.password, client).await }
                .into_actor(self)
                .map(move |outcome, act, _| {
                    if let (true, Some(ip)) = (outcome.failed_credentials, client) {
                        let max = act.deps.settings.login_max_failures_per_ip;
                        let policy = act.address_policy();
                        act.addresses.record_failure(ip, max, policy);
                    }
                    outcome.result
                }),
        )
    }
}

impl Handler<Refresh> for TokenActor {
    type Result = ResponseFuture<Result<TokenPair, SessionError>>;

    fn handle(&mut self, msg: Refresh, _: &mut Self::Context) -> Self::Result {
        let deps = self.deps.clone();
        Box::pin(async move { sessions::refresh(&deps, &msg.refresh_token).await })
    }
}

impl Handler<Logout> for TokenActor {
    type Result = ResponseFuture<Result<(), SessionError>>;

    fn handle(&mut self, msg: Logout, _: &mut Self::Context) -> Self::Result {
        let deps = self.deps.clone();
        Box::pin(async move { sessions::logout(&deps, &msg.refresh_token).await })
    }
}
