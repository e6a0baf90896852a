//! Estimates: the provider routing would pick for an accepted-but-unwritten message, the
//! encoding and segments of an SMS as that provider would get it, and what it would cost by the
//! price table. Reads the tenant's providers; writes nothing.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::deliver::Delivery;
use super::outbound::sent_body;
use super::routing::{self, Candidate, Progress, Route};
use super::store;
use crate::db::messages::Message;
use crate::domain::Channel;
use crate::domain::sms::{self, Segmented};

/// Where a message would go and what it would cost.
#[derive(Clone, Debug)]
pub struct Estimate {
    /// The provider routing would pick (the first that serves it when every circuit is open:
    /// the send would wait for it); `None` when none would take it.
    pub provider: Option<(Uuid, String)>,
    pub shape: Option<Segmented>,
    pub cost_usd_micros: i64,
}

/// The providers read for one estimate run, by tenant, channel and pin.
pub type CandidateCache = HashMap<(Uuid, Channel, Option<Uuid>), Vec<Candidate>>;

impl Delivery {
    /// Estimates one message as [`super::batch`] would route and price it now, assuming no
    /// provider reports a price of its own.
    pub async fn estimate(
        &self,
        conn: &mut AsyncPgConnection,
        message: &Message,
        cache: &mut CandidateCache,
    ) -> diesel::QueryResult<Estimate> {
        let key = (
            message.tenant_id,
            message.channel,
            message.pinned_provider_id,
        );
        if let Entry::Vacant(slot) = cache.entry(key) {
            slot.insert(store::candidates(conn, key.0, key.1, key.2).await?);
        }
        let candidates = cache.get(&key).map_or(&[][..], Vec::as_slice);
        let (route, _) = routing::choose(&self.policy, message, &Progress::default(), candidates);
        let provider = match route {
            Route::Use { provider, .. } => Some(*provider),
            Route::Wait(_) => routing::serving(message, candidates)
                .next()
                .map(|c| c.provider.clone()),
            Route::Exhausted(..) => None,
        };
        let body = match &provider {
            Some(p) => sent_body(message, p),
            None => message.body.clone(),
        };
        let shape = (message.channel == Channel::Sms).then(|| sms::segment(&body));
        let kind = provider.as_ref().and_then(|p| p.kind.parse().ok());
        let cost = self.prices().cost(
            None,
            message.channel,
            kind,
            &message.recipient,
            shape.map_or(1, |s| s.segments),
        );
        Ok(Estimate {
            provider: provider.map(|p| (p.id, p.kind)),
            shape,
            cost_usd_micros: cost.usd_micros,
        })
    }
}
