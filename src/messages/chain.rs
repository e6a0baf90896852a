//! Fallback chains in motion. When a step's message ends FAILED or UNDELIVERED (its
//! `communication.failed` event), or has not reached DELIVERED when the next step's
//! `after_secs` runs out (the `advance-chains` job), the next step becomes a message of its
//! own, checked as a send is (the plan tier, the send limit, opt-outs, an active provider, the
//! chain's validity window) and linked to the chain, with a `communication.fallback` event. A
//! step its checks refuse is recorded with the error and the chain moves on to the step after
//! it. DELIVERED or READ on any step ends the chain (its `communication.delivered` event, or
//! the check made before each step starts). A step started because the one before was late
//! cancels that one if it was not yet handed to a provider, so the recipient gets one of them.
//!
//! Each step starts at most once: it is locked and must still be PENDING in the transaction
//! that creates its message, so the event handler and the job may race freely.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{SubsecRound, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::db::chains::{self as store, StepSpec};
use crate::db::messages::{self as db, Message, NewMessage};
use crate::db::{DbPool, tx};
use crate::domain::ids::MessageId;
use crate::domain::{Channel, MessageStatus, PlanTier, Priority};
use crate::error::ErrorCode;
use crate::outbox::store::ClaimedEvent;
use crate::outbox::{EventHandler, Wakeup, topics};
use crate::rate_limit::RateLimits;

/// Why the chain moves on from a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The step's message ended FAILED or UNDELIVERED.
    Ended,
    /// The next step's `after_secs` ran out before the step was delivered.
    Overdue,
}

/// What one attempt to move a chain on did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Advanced {
    /// A step's message was created.
    pub started: bool,
    /// Steps refused by their checks on the way.
    pub refused: i64,
    /// The chain had been delivered: its pending steps were skipped.
    pub skipped: bool,
}

/// What happened to one step inside its transaction.
enum StepOutcome {
    /// Already started, refused, cancelled or skipped: nothing to do.
    Settled,
    Skipped,
    Refused,
    Started {
        urgent: bool,
    },
}

/// The fallback-chain engine; the outbox handler and the `advance-chains` job share one.
pub struct Chains {
    pool: DbPool,
    rate_limits: Arc<RateLimits>,
    wakeup: Arc<Wakeup>,
}

impl Chains {
    pub fn new(pool: DbPool, rate_limits: Arc<RateLimits>, wakeup: Arc<Wakeup>) -> Arc<Self> {
        Arc::new(Self {
            pool,
            rate_limits,
            wakeup,
        })
    }

    /// Moves the chain on from its step `from` (the last one started). Safe to call again.
    pub async fn advance(
        &self,
        tenant_id: Uuid,
        chain_id: Uuid,
        from: i16,
        trigger: Trigger,
    ) -> anyhow::Result<Advanced> {
        let mut conn = self.pool.get().await?;
        let mut done = Advanced::default();
        let mut next = from + 1;
        loop {
            let Some(step) = store::get_step(&mut conn, chain_id, next).await? else {
                return Ok(done);
            };
            if step.state != store::PENDING {
                return Ok(done);
            }
            // The send limit's statement runs on its own, before the step's transaction.
            let channel: Channel = step.channel.parse().map_err(anyhow::Error::msg)?;
            let tier = PlanTier::from_claim(&step.plan_tier);
            let admitted = match self
                .rate_limits
                .check(&mut conn, tenant_id, tier, channel, 1)
                .await
            {
                Ok(_) => Ok(()),
                Err(e)
                    if matches!(
                        e.code,
                        ErrorCode::RateLimitExceeded | ErrorCode::TierInsufficient
                    ) =>
                {
                    Err((e.code.as_str(), e.message))
                }
                Err(e) => return Err(anyhow::anyhow!("{e}")),
            };
            let outcome = tx::run(&mut conn, async |conn| {
                start_step(conn, tenant_id, chain_id, (from, next), trigger, admitted).await
            })
            .await?;
            match outcome {
                StepOutcome::Settled => return Ok(done),
                StepOutcome::Skipped => {
                    done.skipped = true;
                    return Ok(done);
                }
                StepOutcome::Refused => {
                    done.refused += 1;
                    next += 1;
                }
                StepOutcome::Started { urgent } => {
                    if urgent {
                        self.wakeup.committed_urgent();
                    } else {
                        self.wakeup.committed();
                    }
                    done.started = true;
                    return Ok(done);
                }
            }
        }
    }

    /// A step of the chain was delivered (or read): the steps not started are not needed.
    pub async fn delivered(&self, chain_id: Uuid) -> anyhow::Result<usize> {
        let mut conn = self.pool.get().await?;
        Ok(store::end_pending(&mut conn, chain_id, store::SKIPPED, "DELIVERED").await?)
    }

    /// Starts the pending steps whose `after_secs` ran out (the `advance-chains` job), at most
    /// `limit`; returns what it did, summed.
    pub async fn run_due(&self, limit: i64) -> anyhow::Result<Vec<Advanced>> {
        let due = {
            let mut conn = self.pool.get().await?;
            store::due_steps(&mut conn, limit).await?
        };
        let mut out = Vec::with_capacity(due.len());
        for step in due {
            out.push(
                self.advance(
                    step.tenant_id,
                    step.chain_id,
                    step.step - 1,
                    Trigger::Overdue,
                )
                .await?,
            );
        }
        Ok(out)
    }

    /// Acts on one `communication.failed` or `communication.delivered` event.
    async fn on_event(&self, event: &ClaimedEvent) -> anyhow::Result<()> {
        let data = &event.payload["data"];
        let (Some(chain), Some(tenant_id)) = (
            data["chainId"].as_str().and_then(MessageId::parse),
            event.tenant_id,
        ) else {
            return Ok(());
        };
        let chain_id = chain.uuid();
        if event.topic == topics::COMMUNICATION_DELIVERED {
            self.delivered(chain_id).await?;
            return Ok(());
        }
        let step = {
            let mut conn = self.pool.get().await?;
            store::step_of_message(&mut conn, chain_id, event.aggregate_id).await?
        };
        if let Some(step) = step {
            self.advance(tenant_id, chain_id, step, Trigger::Ended)
                .await?;
        }
        Ok(())
    }
}

/// The transaction that starts step `next` of a chain whose last started step is `from`, or
/// records why it does not.
async fn start_step(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    chain_id: Uuid,
    (from, next): (i16, i16),
    trigger: Trigger,
    admitted: Result<(), (&'static str, String)>,
) -> anyhow::Result<StepOutcome> {
    // Messages are locked before steps, as a cancel does, so the two never deadlock.
    let Some(before) = store::get_step(conn, chain_id, from)
        .await?
        .and_then(|s| s.message_id)
    else {
        return Ok(StepOutcome::Settled);
    };
    let Some(mut before) = db::lock_message(conn, tenant_id, before).await? else {
        return Ok(StepOutcome::Settled);
    };
    let Some(step) = store::lock_step(conn, chain_id, next).await? else {
        return Ok(StepOutcome::Settled);
    };
    if step.state != store::PENDING {
        return Ok(StepOutcome::Settled);
    }
    if store::delivered(conn, chain_id).await? {
        store::end_pending(conn, chain_id, store::SKIPPED, "DELIVERED").await?;
        return Ok(StepOutcome::Skipped);
    }
    let failed = matches!(
        before.status,
        MessageStatus::Failed | MessageStatus::Undelivered
    );
    if trigger == Trigger::Ended && !failed {
        return Ok(StepOutcome::Settled);
    }
    let reason = if failed {
        before.status.as_str()
    } else {
        "TIMEOUT"
    };
    let refuse = async |conn: &mut AsyncPgConnection, code: &str, message: &str| {
        store::refuse_step(conn, chain_id, next, reason, code, message).await?;
        Ok::<_, anyhow::Error>(StepOutcome::Refused)
    };
    let Some(first) = db::get_message(conn, tenant_id, chain_id).await? else {
        return Ok(StepOutcome::Settled);
    };
    let now = Utc::now().trunc_subsecs(6);
    if first.expires_at.is_some_and(|at| at <= now) {
        return refuse(
            conn,
            "EXPIRED",
            "the chain's validity window (ttl_secs) ended before this step was due",
        )
        .await;
    }
    if let Err((code, message)) = admitted {
        return refuse(conn, code, &message).await;
    }
    let spec: StepSpec = serde_json::from_value(step.spec.unwrap_or_default())?;
    let row = step_message(&first, &step.channel, spec, now)?;
    let message = match super::accept::insert_checked(conn, &row)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
    {
        Ok(message) => message,
        Err(refused) => return refuse(conn, refused.code.as_str(), &refused.message).await,
    };
    if !failed && before.status.can_move_to(MessageStatus::Cancelled) {
        // Not handed to a provider in time: the next step replaces it.
        before = db::mark_cancelled(conn, before.id).await?;
        crate::outbox::enqueue(conn, &[super::events::cancelled(&before)]).await?;
    }
    store::start_step(conn, chain_id, next, message.id, reason).await?;
    crate::outbox::enqueue(
        conn,
        &[super::events::fallback(&before, &message, next, reason)],
    )
    .await?;
    Ok(StepOutcome::Started {
        urgent: message.priority == Priority::High,
    })
}

/// Cancels what is left of a chain, in the caller's transaction: its steps not started yet and
/// its messages other than `except` not yet dispatched (each with its `cancelled` event).
/// Returns how many of them there were.
pub async fn cancel_rest(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    chain_id: Uuid,
    except: Uuid,
) -> Result<usize, crate::outbox::EnqueueError> {
    let mut events = Vec::new();
    for message in store::lock_cancellable(conn, tenant_id, chain_id, except).await? {
        let cancelled = db::mark_cancelled(conn, message.id).await?;
        events.push(super::events::cancelled(&cancelled));
    }
    crate::outbox::enqueue(conn, &events).await?;
    let steps = store::end_pending(conn, chain_id, store::CANCELLED, "CANCELLED").await?;
    Ok(events.len() + steps)
}

/// The message of a later step: its own recipient and content, and what the chain's first
/// message set for all of it (metadata, notification, priority, validity window).
fn step_message(
    first: &Message,
    channel: &str,
    spec: StepSpec,
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<NewMessage> {
    let channel: Channel = channel.parse().map_err(anyhow::Error::msg)?;
    let (encoding, segments) = super::accept::sms_shape(channel, &spec.body);
    let country = super::accept::destination(channel, &spec.recipient);
    Ok(NewMessage {
        id: Uuid::now_v7(),
        tenant_id: first.tenant_id,
        channel,
        recipient: spec.recipient,
        status: MessageStatus::Queued,
        subject: spec.subject,
        body: spec.body,
        template_id: spec.template_id,
        template_version: spec.template_version,
        pinned_provider_id: None,
        metadata: first.metadata.clone(),
        source_event_id: None,
        scheduled_at: None,
        created_at: now,
        updated_at: now,
        notification_id: first.notification_id.clone(),
        html_body: spec.html_body,
        reply_to: spec.reply_to,
        priority: first.priority,
        expires_at: first.expires_at,
        chain_id: Some(first.id),
        encoding,
        segments,
        media: None,
        country,
    })
}

/// The outbox handler that moves chains on: `communication.failed` starts the next step,
/// `communication.delivered` ends the chain. Events of messages in no chain cost nothing.
pub struct ChainHandler {
    chains: Arc<Chains>,
}

impl ChainHandler {
    pub fn new(chains: Arc<Chains>) -> Arc<Self> {
        Arc::new(Self { chains })
    }
}

#[async_trait]
impl EventHandler for ChainHandler {
    fn name(&self) -> &'static str {
        "chains"
    }

    fn wants(&self, topic: &str) -> bool {
        topic == topics::COMMUNICATION_FAILED || topic == topics::COMMUNICATION_DELIVERED
    }

    async fn handle(&self, event: &ClaimedEvent) -> Result<(), String> {
        self.chains
            .on_event(event)
            .await
            .map_err(|e| format!("{e:#}"))
    }
}
