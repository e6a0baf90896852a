//! Outcomes a provider gave are never forgotten. The accepted sends of a round are written
//! first to their attempt rows (one statement, committed on its own) and then, with the
//! messages' SENT state and events, in the batch transaction; each write is retried with
//! backoff until `record_deadline` when the database does not take it. A message whose
//! attempt says ACCEPTED is never sent again: `settle_accepted` (run by `reconcile-stale`)
//! moves it to SENT from the attempt alone. If even the attempt write cannot be made, the
//! provider's ids are logged at error level for an operator.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::Utc;
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::deliver::{Delivery, Made};
use super::policy::{DeliveryError, Step};
use super::store::{self, AcceptedAttempts};
use crate::db::tx;
use crate::messages::events;
use crate::outbox;
use crate::providers::SendOutcome;

/// First pause between two tries of a write; it doubles up to `RETRY_CAP`.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_CAP: Duration = Duration::from_secs(2);

/// Runs `write` until it succeeds or `deadline` has passed since the first try; returns the
/// last error then.
pub(super) async fn with_retries<T, F, Fut>(
    what: &str,
    deadline: Duration,
    mut write: F,
) -> Result<T, DeliveryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DeliveryError>>,
{
    let started = Instant::now();
    let mut pause = RETRY_FIRST;
    let mut tries = 0u32;
    loop {
        tries += 1;
        match write().await {
            Ok(value) => {
                if tries > 1 {
                    tracing::info!(what, tries, "recorded after the database came back");
                }
                return Ok(value);
            }
            Err(e) if started.elapsed() + pause < deadline => {
                tracing::warn!(what, tries, error = %e, "recording failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_CAP);
            }
            Err(e) => return Err(e),
        }
    }
}

/// The accepted attempts of made calls, column by column.
pub(super) fn accepted_attempts(made: &[Made]) -> AcceptedAttempts {
    let mut out = AcceptedAttempts::default();
    for m in made {
        if let SendOutcome::Accepted {
            provider_message_id,
            ..
        } = &m.outcome
        {
            out.attempt_ids.push(m.prepared.attempt_id);
            out.latencies_ms.push(m.latency_ms());
            out.provider_message_ids.push(provider_message_id.clone());
            out.costs.push(m.priced.as_ref().map(|p| p.cost.usd_micros));
            let (outcome, note) = match m.settled {
                Some(settled) => {
                    let (outcome, note) = settled.outcome_and_note();
                    (outcome, Some(note.to_owned()))
                }
                None => ("ACCEPTED", None),
            };
            out.outcomes.push(outcome.to_owned());
            out.notes.push(note);
        }
    }
    out
}

impl Delivery {
    /// Records accepted sends so that none is lost: the attempt rows first, then the batch
    /// transaction, each retried until the deadline. The error is the batch transaction's
    /// last one; the messages then stay SENDING with ACCEPTED attempts, which
    /// `settle_accepted` completes later without a second send.
    pub(super) async fn record_accepted_durably(
        &self,
        accepted: Vec<Made>,
    ) -> Result<Vec<(Uuid, Step)>, DeliveryError> {
        if accepted.is_empty() {
            return Ok(Vec::new());
        }
        let deadline = self.policy.record_deadline;
        let attempts = accepted_attempts(&accepted);
        let written = with_retries("accepted attempts", deadline, || async {
            let mut conn = self.pool.get().await?;
            store::finish_accepted_attempts(&mut conn, &attempts, Utc::now()).await?;
            Ok(())
        })
        .await;
        if let Err(e) = &written {
            let sent: Vec<String> = accepted
                .iter()
                .zip(&attempts.provider_message_ids)
                .map(|(m, pmid)| {
                    format!(
                        "{} via {} {} as {pmid}",
                        m.prepared.message_id, m.prepared.provider.kind, m.prepared.provider.id
                    )
                })
                .collect();
            tracing::error!(
                error = %e,
                count = sent.len(),
                sent = ?sent,
                "providers accepted these messages but the database took none of the outcomes"
            );
        }
        with_retries("accepted sends", deadline, || {
            self.record_accepted(&accepted, written.is_err())
        })
        .await
    }

    /// Moves to SENT (with its event) every SENDING message untouched for `stale_after_secs`
    /// whose current attempt the provider accepted. Returns how many.
    pub async fn settle_accepted(
        &self,
        stale_after_secs: f64,
        limit: i64,
    ) -> Result<usize, DeliveryError> {
        let mut conn = self.pool.get().await?;
        tx::run(&mut conn, async |conn: &mut AsyncPgConnection| {
            let found = store::lock_accepted_sending(conn, stale_after_secs, limit).await?;
            if found.is_empty() {
                return Ok::<_, DeliveryError>(0);
            }
            let mut rows = store::SentRows::default();
            for f in &found {
                // The attempt recorded the send's cost in USD; one recorded before costs were
                // kept there is priced by the table's row for the channel.
                let usd = f
                    .cost_usd_micros
                    .unwrap_or_else(|| self.prices().price(f.channel, None, "", 1).unwrap_or(0));
                rows.push_usd(f.id, f.provider_message_id.clone(), usd);
            }
            let sent = store::mark_sent(conn, &rows, Utc::now()).await?;
            let events_out: Vec<_> = sent.iter().map(events::sent).collect();
            outbox::enqueue(conn, &events_out).await?;
            Ok(sent.len())
        })
        .await
        .inspect(|settled| {
            if *settled > 0 {
                self.committed_events();
            }
        })
    }
}
