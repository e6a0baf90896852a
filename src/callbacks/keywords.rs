//! Inbound messages: stop and start words, and the `sms.inbound` event.
//!
//! A body that is exactly a stop word (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT; case
//! ignored, surrounding whitespace trimmed) opts the sender out of the channel it arrived on
//! (SMS or WHATSAPP) for the provider's tenant, with source STOP_KEYWORD. START, UNSTOP and YES
//! remove the sender's opt-out of that channel, whatever added it: the recipient asked to hear
//! from the tenant again. An opt-out of ALL channels is left alone (it is wider than what a
//! reply on one channel can undo).
//!
//! Every inbound message enqueues `eventzr.cpaas.sms.inbound.v1` with `tenantId`, `channel`,
//! `from`, `to`, `body`, `provider`, `providerId`, `providerMessageId`, `receivedAt`, and
//! `keyword` / `keywordAction` (`OPT_OUT` or `OPT_IN`, null when the body is no keyword).
//! WhatsApp messages are published on the same topic with `channel: "WHATSAPP"`.

use diesel_async::AsyncPgConnection;
use serde_json::json;
use uuid::Uuid;

use super::status::EventOutcome;
use super::{CallbackError, InboundMessage, Source};
use crate::db::opt_outs::{add_opt_out, remove_opt_out_for};
use crate::domain::opt_out::OptOutSource;
use crate::domain::{PhoneNumber, ProviderId};
use crate::outbox::{self, CloudEvent, OutboxEvent, topics};

/// Words that opt the sender out.
pub const STOP_WORDS: [&str; 6] = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
/// Words that opt the sender back in.
pub const START_WORDS: [&str; 3] = ["START", "UNSTOP", "YES"];

/// What a keyword asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeywordAction {
    OptOut,
    OptIn,
}

impl KeywordAction {
    pub fn as_str(self) -> &'static str {
        match self {
            KeywordAction::OptOut => "OPT_OUT",
            KeywordAction::OptIn => "OPT_IN",
        }
    }
}

/// The keyword a body is, if it is one: the word in upper case and its action.
pub fn classify(body: &str) -> Option<(String, KeywordAction)> {
    let word = body.trim().to_uppercase();
    if STOP_WORDS.contains(&word.as_str()) {
        Some((word, KeywordAction::OptOut))
    } else if START_WORDS.contains(&word.as_str()) {
        Some((word, KeywordAction::OptIn))
    } else {
        None
    }
}

/// Applies a keyword's change to the opt-out ledger: a stop word opts `sender` out of
/// `channel` (source STOP_KEYWORD), a start word removes its opt-out of that channel.
pub async fn apply_keyword(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    sender: &PhoneNumber,
    channel: &str,
    word: &str,
    action: KeywordAction,
) -> diesel::QueryResult<()> {
    match action {
        KeywordAction::OptOut => {
            let reason = format!("replied {word}");
            add_opt_out(
                conn,
                tenant_id,
                sender.as_e164(),
                channel,
                OptOutSource::StopKeyword.as_str(),
                Some(&reason),
            )
            .await?;
        }
        KeywordAction::OptIn => {
            remove_opt_out_for(conn, tenant_id, sender.as_e164(), channel).await?;
        }
    }
    Ok(())
}

/// Applies an inbound message in the caller's transaction: the keyword's opt-out change, then
/// the `sms.inbound` event.
pub async fn apply_inbound(
    conn: &mut AsyncPgConnection,
    source: &Source,
    inbound: &InboundMessage,
) -> Result<EventOutcome, CallbackError> {
    let tenant_id = source.tenant_id();
    let keyword = classify(&inbound.body);
    let sender = PhoneNumber::parse(&inbound.from).ok();
    let sender_text = sender
        .as_ref()
        .map(|p| p.as_e164().to_owned())
        .unwrap_or_else(|| inbound.from.clone());
    if let (Some((word, action)), Some(phone)) = (&keyword, &sender) {
        apply_keyword(
            conn,
            tenant_id,
            phone,
            inbound.channel.as_str(),
            word,
            *action,
        )
        .await?;
    }
    let data = json!({
        "tenantId": tenant_id,
        "channel": inbound.channel,
        "from": sender_text,
        "to": inbound.to,
        "body": inbound.body,
        "provider": source.provider.kind,
        "providerId": ProviderId::from_uuid(source.provider.id).to_string(),
        "providerMessageId": inbound.provider_message_id,
        "receivedAt": crate::domain::time::format(&inbound.received_at),
        "keyword": keyword.as_ref().map(|(w, _)| w.clone()),
        "keywordAction": keyword.as_ref().map(|(_, a)| a.as_str()),
    });
    let event = OutboxEvent {
        aggregate_type: "inbound_message",
        aggregate_id: Uuid::now_v7(),
        tenant_id: Some(tenant_id),
        event: CloudEvent::new(topics::SMS_INBOUND, tenant_id, data),
        lane: crate::domain::Priority::Normal.lane(),
    };
    outbox::enqueue(conn, &[event]).await?;
    Ok(EventOutcome::Applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_matched_whole_trimmed_and_in_any_case() {
        assert_eq!(
            classify("  stop\n"),
            Some(("STOP".into(), KeywordAction::OptOut))
        );
        for word in ["StopAll", "unsubscribe", "CANCEL", "end", "Quit"] {
            assert_eq!(classify(word).map(|k| k.1), Some(KeywordAction::OptOut));
        }
        assert_eq!(classify("stop it"), None);
        assert_eq!(classify("nonstop"), None);
    }

    #[test]
    fn start_words_opt_back_in() {
        for word in ["START", "unstop", " Yes "] {
            assert_eq!(classify(word).map(|k| k.1), Some(KeywordAction::OptIn));
        }
        assert_eq!(classify("yes please"), None);
    }
}
