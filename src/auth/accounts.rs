//! Whether an access token's user may still act: an access token is stateless, so a disabled
//! user or a changed password would otherwise stay valid until the token expires. Each user's
//! state is read from the database at most once per `ttl` (a minute by default) and kept in
//! memory; a change made by this process is seen at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::db::{DbError, DbPool, users};

/// How many users' states are kept before the cache starts afresh.
const CAPACITY: usize = 100_000;

type Entry = (Instant, Option<(bool, i64)>);

/// The cached account states of this process.
pub struct AccountStates {
    ttl: Duration,
    entries: Mutex<HashMap<Uuid, Entry>>,
}

impl AccountStates {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets a user's state (after this process changed it).
    pub fn forget(&self, user_id: Uuid) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&user_id);
        }
    }

    /// Whether a token of `subject` issued at `iat` (Unix seconds) is still good: refused when
    /// its user is disabled or changed the password after it was issued. A subject that is not
    /// a user of this service (a platform token's) is not this check's business.
    pub async fn allows(&self, pool: &DbPool, subject: &str, iat: i64) -> Result<bool, DbError> {
        let Ok(user_id) = Uuid::parse_str(subject) else {
            return Ok(true);
        };
        let cached = self.entries.lock().ok().and_then(|entries| {
            entries
                .get(&user_id)
                .filter(|(at, _)| at.elapsed() < self.ttl)
                .map(|(_, state)| *state)
        });
        let state = match cached {
            Some(state) => state,
            None => {
                let mut conn = pool.get().await?;
                let state = users::account_state(&mut conn, user_id)
                    .await?
                    .map(|(active, changed)| (active, changed.timestamp()));
                if let Ok(mut entries) = self.entries.lock() {
                    if entries.len() >= CAPACITY {
                        entries.clear();
                    }
                    entries.insert(user_id, (Instant::now(), state));
                }
                state
            }
        };
        Ok(match state {
            None => true,
            Some((active, changed_at)) => active && iat >= changed_at,
        })
    }
}
