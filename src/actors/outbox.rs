//! OutboxActor: wakes when this process commits events (`Wakeup`), on another replica's
//! `NOTIFY cpaas_outbox` (a listener that reconnects) and on a polling interval, and drains the
//! outbox through `Outbox::drain`. One drain runs at a time; a wake-up during a drain schedules
//! another right after it, and a wake-up for high-lane events also lets the running drain make
//! its express claim (`Outbox::nudge_urgent`). A panic inside a drain is caught and logged; the
//! actor keeps going.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::{FutureExt, StreamExt};

use crate::outbox::{Announced, NOTIFY_CHANNEL, Outbox, Wakeup};

/// Drain now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

/// Drain now: high-lane events were committed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WakeUrgent;

/// The outbox drainer actor.
pub struct OutboxActor {
    outbox: Arc<Outbox>,
    wakeup: Arc<Wakeup>,
    database_url: String,
    poll_interval: Duration,
    max_per_drain: i64,
    running: bool,
    wake_pending: bool,
}

impl OutboxActor {
    pub fn new(
        outbox: Arc<Outbox>,
        wakeup: Arc<Wakeup>,
        database_url: String,
        poll_interval: Duration,
        max_per_drain: i64,
    ) -> Self {
        Self {
            outbox,
            wakeup,
            database_url,
            poll_interval,
            max_per_drain,
            running: false,
            wake_pending: false,
        }
    }

    fn kick(&mut self, ctx: &mut Context<Self>) {
        if self.running {
            self.wake_pending = true;
            self.outbox.nudge();
            return;
        }
        self.running = true;
        self.wake_pending = false;
        let outbox = self.outbox.clone();
        let max = self.max_per_drain;
        let drain = async move { AssertUnwindSafe(outbox.drain(max)).catch_unwind().await };
        ctx.spawn(drain.into_actor(self).map(move |result, act, ctx| {
            act.running = false;
            let more = match result {
                Ok(Ok(report)) => report.claimed >= max,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "outbox drain failed; retrying on the next tick");
                    false
                }
                Err(_) => {
                    // A handler's panic is caught inside the drain; one that escapes it is a
                    // fault of the drain itself: stop, and let the supervisor restart the actor.
                    tracing::error!("outbox drain panicked; restarting the actor");
                    ctx.stop();
                    false
                }
            };
            if more || act.wake_pending {
                act.kick(ctx);
            }
        }));
    }
}

impl Actor for OutboxActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.poll_interval, |act, ctx| act.kick(ctx));
        let addr = ctx.address();
        let wakeup = self.wakeup.clone();
        let local = addr.clone();
        ctx.spawn(
            async move {
                loop {
                    let urgent = tokio::select! {
                        () = wakeup.next_urgent() => true,
                        () = wakeup.next_local() => false,
                    };
                    if !local.connected() {
                        return;
                    }
                    if urgent {
                        local.do_send(WakeUrgent);
                    } else {
                        local.do_send(Wake);
                    }
                }
            }
            .into_actor(self),
        );
        let url = self.database_url.clone();
        ctx.spawn(listen(url, self.wakeup.clone(), addr).into_actor(self));
        self.kick(ctx);
    }
}

impl actix::Supervised for OutboxActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.running = false;
        self.wake_pending = false;
        tracing::warn!("outbox actor restarting");
    }
}

impl Handler<Wake> for OutboxActor {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.kick(ctx);
    }
}

impl Handler<WakeUrgent> for OutboxActor {
    type Result = ();

    fn handle(&mut self, _: WakeUrgent, ctx: &mut Self::Context) {
        if self.running {
            self.outbox.nudge_urgent();
        }
        self.kick(ctx);
    }
}

/// Listens for the other replicas' wake-ups (this process's own are ignored: it woke
/// in-process already) and wakes the actor; reconnects when the connection drops.
async fn listen(url: String, wakeup: Arc<Wakeup>, addr: Addr<OutboxActor>) {
    loop {
        match listen_once(&url, &wakeup, &addr).await {
            Ok(()) => tracing::info!("outbox listener connection closed; reconnecting"),
            Err(e) => tracing::warn!(error = %e, "outbox listener failed; reconnecting"),
        }
        if !addr.connected() {
            return;
        }
        actix_rt::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen_once(url: &str, wakeup: &Wakeup, addr: &Addr<OutboxActor>) -> anyhow::Result<()> {
    let mut conn: AsyncPgConnection = crate::db::connect(url, Duration::from_secs(3)).await?;
    diesel::sql_query(format!("LISTEN {NOTIFY_CHANNEL}"))
        .execute(&mut conn)
        .await?;
    addr.do_send(Wake);
    let mut notifications = std::pin::pin!(conn.notifications_stream());
    while let Some(n) = notifications.next().await {
        let announced = wakeup.announced(&n?.payload);
        if announced == Announced::Own {
            continue;
        }
        if !addr.connected() {
            return Ok(());
        }
        match announced {
            Announced::Urgent => addr.do_send(WakeUrgent),
            _ => addr.do_send(Wake),
        }
    }
    Ok(())
}
