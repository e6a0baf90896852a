//! The path of one callback: provider, signature, raw storage, de-duplication, application.

use diesel_async::AsyncConnection;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::status::EventOutcome;
use super::{
    Action, CallbackError, CallbackKind, Callbacks, Parsed, RawCallback, Source, aws_sns, keywords,
    meta_whatsapp, sendgrid, status, templates, twilio, vonage,
};
use crate::db::DbPool;
use crate::db::callbacks::{
    NewCallback, claim_event, finish_callback, get_provider_by_id, note_callback_error,
    set_event_outcome, store_callback,
};
use crate::domain::{ProviderId, ProviderKind};

/// How to answer the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The JSON envelope `{ data: { accepted, duplicate } }`.
    Envelope,
    /// An empty TwiML `<Response/>` (`text/xml`): Twilio sends no reply to the inbound message.
    Twiml,
}

/// The answer to an accepted callback.
#[derive(Clone, Copy, Debug)]
pub struct Receipt {
    /// The callback (or every event in it) had been applied before: nothing changed now.
    pub duplicate: bool,
    pub reply: Reply,
}

/// Request headers kept with a stored callback; credentials a caller might send are left out.
const UNSTORED_HEADERS: [&str; 3] = ["authorization", "cookie", "x-internal-api-key"];

impl Callbacks {
    /// Verifies, stores and applies one callback.
    pub async fn receive(
        &self,
        pool: &DbPool,
        kind: CallbackKind,
        provider_id: &str,
        raw: &RawCallback<'_>,
    ) -> Result<Receipt, CallbackError> {
        let source = self.source(pool, kind, provider_id).await?;
        let mut parsed = self.parse(kind, &source, raw).await?;
        self.convert_prices(&mut parsed);
        let reply = if parsed.twiml {
            Reply::Twiml
        } else {
            Reply::Envelope
        };
        let mut conn = pool.get().await?;
        let new = NewCallback {
            id: Uuid::now_v7(),
            provider_id: source.provider.id,
            tenant_id: source.tenant_id(),
            kind: &source.provider.kind,
            dedupe_key: &parsed.dedupe_key,
            headers: headers_json(raw),
            body: raw.body,
        };
        let (callback_id, processed_at, _) = store_callback(&mut conn, &new).await?;
        if processed_at.is_some() {
            return Ok(Receipt {
                duplicate: true,
                reply,
            });
        }
        if let Some(url) = &parsed.confirm_url {
            // No pooled connection is held across the call to SNS.
            drop(conn);
            let confirmed = aws_sns::confirm_subscription(&self.http, url).await;
            let mut conn = pool.get().await?;
            return match confirmed {
                Ok(()) => {
                    finish_callback(&mut conn, callback_id, "CONFIRMED", None).await?;
                    Ok(Receipt {
                        duplicate: false,
                        reply,
                    })
                }
                Err(e) => {
                    note_callback_error(&mut conn, callback_id, &e.to_string()).await?;
                    Err(e)
                }
            };
        }
        let applied = conn
            .transaction::<_, CallbackError, _>(async |conn| {
                let outcomes = apply_events(conn, &source, callback_id, &parsed).await?;
                let summary = summarise(&outcomes);
                finish_callback(conn, callback_id, summary, None).await?;
                Ok(!outcomes.is_empty() && outcomes.iter().all(Option::is_none))
            })
            .await;
        match applied {
            Ok(duplicate) => {
                if !duplicate {
                    self.committed_events();
                }
                Ok(Receipt { duplicate, reply })
            }
            Err(e) => {
                if let Err(note) = note_callback_error(&mut conn, callback_id, &e.to_string()).await
                {
                    tracing::warn!("could not note a callback's failure: {note}");
                }
                Err(e)
            }
        }
    }

    /// Meta's subscription handshake: the challenge to echo when `hub.mode` is `subscribe` and
    /// `hub.verify_token` is the provider's `verify_token`; `None` otherwise.
    pub async fn meta_hub_challenge(
        &self,
        pool: &DbPool,
        provider_id: &str,
        params: &std::collections::HashMap<String, String>,
    ) -> Result<Option<String>, CallbackError> {
        let source = self
            .source(pool, CallbackKind::MetaWhatsapp, provider_id)
            .await?;
        Ok(meta_whatsapp::hub_challenge(&source, params))
    }

    /// The provider the path names, of the path's kind, with its settings opened.
    async fn source(
        &self,
        pool: &DbPool,
        kind: CallbackKind,
        provider_id: &str,
    ) -> Result<Source, CallbackError> {
        let not_found = || CallbackError::NotFound("provider");
        let id = ProviderId::parse(provider_id).ok_or_else(not_found)?;
        let provider = {
            let mut conn = pool.get().await?;
            get_provider_by_id(&mut conn, id.uuid())
                .await?
                .ok_or_else(not_found)?
        };
        match provider.kind.parse::<ProviderKind>() {
            Ok(k) if kind.accepts(k) => {}
            _ => return Err(not_found()),
        }
        let settings = self.registry.settings(&provider)?;
        Ok(Source { provider, settings })
    }

    async fn parse(
        &self,
        kind: CallbackKind,
        source: &Source,
        raw: &RawCallback<'_>,
    ) -> Result<Parsed, CallbackError> {
        match kind {
            CallbackKind::Twilio => twilio::parse(source, raw, self.public_base_url.as_deref()),
            CallbackKind::MetaWhatsapp => meta_whatsapp::parse(source, raw),
            CallbackKind::Sendgrid => sendgrid::parse(source, raw, chrono::Utc::now()),
            CallbackKind::Vonage => vonage::parse(source, raw),
            CallbackKind::AwsSns => {
                let endpoints = aws_sns::Endpoints::for_source(source, self.allow_test_endpoints);
                aws_sns::parse(&self.http, &self.certificates, &endpoints, raw).await
            }
        }
    }
}

/// Applies every event of a callback; `None` for an event applied before.
async fn apply_events(
    conn: &mut diesel_async::AsyncPgConnection,
    source: &Source,
    callback_id: Uuid,
    parsed: &Parsed,
) -> Result<Vec<Option<EventOutcome>>, CallbackError> {
    let provider_id = source.provider.id;
    let mut outcomes = Vec::with_capacity(parsed.events.len());
    for event in &parsed.events {
        if !claim_event(
            conn,
            provider_id,
            &event.key,
            callback_id,
            source.tenant_id(),
        )
        .await?
        {
            outcomes.push(None);
            continue;
        }
        let (outcome, message_id) = match &event.action {
            Action::Message {
                message,
                change,
                opt_outs,
            } => status::apply_report(conn, source, message, change, opt_outs).await?,
            Action::Inbound(inbound) => {
                (keywords::apply_inbound(conn, source, inbound).await?, None)
            }
            Action::TemplateStatus(update) => (
                templates::apply_template_status(conn, source, update).await?,
                None,
            ),
        };
        set_event_outcome(conn, provider_id, &event.key, outcome.as_str(), message_id).await?;
        outcomes.push(Some(outcome));
    }
    Ok(outcomes)
}

/// The outcome of a whole callback from its events'.
fn summarise(outcomes: &[Option<EventOutcome>]) -> &'static str {
    let has = |o: EventOutcome| outcomes.contains(&Some(o));
    if outcomes.is_empty() {
        "IGNORED"
    } else if outcomes.iter().all(Option::is_none) {
        "DUPLICATE"
    } else if has(EventOutcome::Applied) {
        "APPLIED"
    } else if has(EventOutcome::Unchanged) {
        "UNCHANGED"
    } else {
        "UNMATCHED"
    }
}

fn headers_json(raw: &RawCallback<'_>) -> Value {
    let mut map = Map::new();
    for (name, value) in raw.headers {
        let name = name.as_str();
        if UNSTORED_HEADERS.contains(&name) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match map.get_mut(name) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                map.insert(name.to_owned(), Value::String(value));
            }
        }
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_is_summarised_by_its_strongest_outcome() {
        use EventOutcome::*;
        assert_eq!(summarise(&[]), "IGNORED");
        assert_eq!(summarise(&[None, None]), "DUPLICATE");
        assert_eq!(
            summarise(&[None, Some(Unchanged), Some(Applied)]),
            "APPLIED"
        );
        assert_eq!(summarise(&[Some(Unmatched), Some(Unchanged)]), "UNCHANGED");
        assert_eq!(summarise(&[Some(Unmatched)]), "UNMATCHED");
    }
}
