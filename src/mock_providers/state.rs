//! What the mock server remembers: one behaviour per provider kind (a single atomic word, so
//! "fail the next n requests" is exact under load), counters per kind and outcome (atomics),
//! and a ring of the last [`RING_CAPACITY`] requests (a mutex held only to push or copy).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use super::behaviour::{Behaviour, MAX_COUNT, MockKind, Mode};

/// How many received requests are kept.
pub const RING_CAPACITY: usize = 10_000;
/// How long a `timeout` behaviour holds a request when no `delay_ms` is given.
pub const DEFAULT_TIMEOUT_HOLD: Duration = Duration::from_secs(30);

/// How a request was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Delayed,
    TimedOut,
    #[serde(rename = "fail_5xx")]
    Fail5xx,
    #[serde(rename = "fail_4xx")]
    Fail4xx,
    RateLimited,
    /// Refused for a missing credential or field, whatever the behaviour.
    Rejected,
}

impl Outcome {
    const ALL: [Outcome; 7] = [
        Outcome::Ok,
        Outcome::Delayed,
        Outcome::TimedOut,
        Outcome::Fail5xx,
        Outcome::Fail4xx,
        Outcome::RateLimited,
        Outcome::Rejected,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Delayed => "delayed",
            Outcome::TimedOut => "timed_out",
            Outcome::Fail5xx => "fail_5xx",
            Outcome::Fail4xx => "fail_4xx",
            Outcome::RateLimited => "rate_limited",
            Outcome::Rejected => "rejected",
        }
    }
}

/// What the handler should answer once the behaviour has been applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Ok,
    ServerError,
    ClientError,
    RateLimited,
}

/// What a request carried, as far as its wire format tells.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub message_id: Option<String>,
    pub recipient: Option<String>,
    pub provider_message_id: Option<String>,
    /// The media it carried: URLs (MMS, WhatsApp, push) or attachment file names (e-mail).
    pub media: Vec<String>,
}

/// One received request.
#[derive(Clone, Debug, Serialize)]
pub struct RecordedRequest {
    pub seq: u64,
    pub kind: MockKind,
    pub path: String,
    pub message_id: Option<String>,
    pub recipient: Option<String>,
    pub provider_message_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<String>,
    pub outcome: Outcome,
    pub received_at: DateTime<Utc>,
}

/// The mock's shared state.
pub struct MockState {
    behaviours: [AtomicU64; MockKind::ALL.len()],
    counters: [[AtomicU64; Outcome::ALL.len()]; MockKind::ALL.len()],
    seq: AtomicU64,
    ring: Mutex<VecDeque<RecordedRequest>>,
    /// Every message id answered as taken, with how many times and when first: a tally that
    /// never rolls over, so long runs can count lost and duplicated sends.
    tally: Mutex<HashMap<String, Taken>>,
}

/// How often one message id was taken, and when first.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Taken {
    pub count: u32,
    pub first_at: DateTime<Utc>,
}

impl Default for MockState {
    fn default() -> Self {
        Self {
            behaviours: std::array::from_fn(|_| AtomicU64::new(Behaviour::OK.pack())),
            counters: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            seq: AtomicU64::new(0),
            ring: Mutex::new(VecDeque::with_capacity(RING_CAPACITY)),
            tally: Mutex::default(),
        }
    }
}

impl MockState {
    /// Replaces a kind's behaviour (a count of 0 means back to `ok`).
    pub fn set_behaviour(&self, kind: MockKind, behaviour: Behaviour) {
        let behaviour = match behaviour.count {
            Some(0) => Behaviour::OK,
            _ => behaviour,
        };
        self.behaviours[kind.index()].store(behaviour.pack(), Ordering::Release);
    }

    /// A kind's current behaviour.
    pub fn behaviour(&self, kind: MockKind) -> Behaviour {
        Behaviour::unpack(self.behaviours[kind.index()].load(Ordering::Acquire))
    }

    /// Takes one request's share of the behaviour: a counted behaviour is used up exactly.
    fn take(&self, kind: MockKind) -> Behaviour {
        let cell = &self.behaviours[kind.index()];
        let mut word = cell.load(Ordering::Acquire);
        loop {
            let current = Behaviour::unpack(word);
            let next = match current.count {
                _ if current.mode == Mode::Ok => return current,
                None => return current,
                Some(n) if n <= 1 => Behaviour::OK,
                Some(n) => Behaviour {
                    count: Some(n - 1),
                    ..current
                },
            };
            match cell.compare_exchange_weak(word, next.pack(), Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return current,
                Err(actual) => word = actual,
            }
        }
    }

    /// Applies the kind's behaviour to one request (waiting when it says so), records it and
    /// says what to answer.
    pub async fn begin(&self, kind: MockKind, path: &str, seen: Seen) -> Answer {
        let behaviour = self.take(kind);
        let (outcome, answer, hold) = match behaviour.mode {
            Mode::Ok => (Outcome::Ok, Answer::Ok, None),
            Mode::Fail5xx => (Outcome::Fail5xx, Answer::ServerError, None),
            Mode::Fail4xx => (Outcome::Fail4xx, Answer::ClientError, None),
            Mode::RateLimit => (Outcome::RateLimited, Answer::RateLimited, None),
            Mode::Delay => (
                Outcome::Delayed,
                Answer::Ok,
                Some(Duration::from_millis(behaviour.delay_ms.into())),
            ),
            Mode::Timeout => (
                Outcome::TimedOut,
                Answer::Ok,
                Some(match behaviour.delay_ms {
                    0 => DEFAULT_TIMEOUT_HOLD,
                    ms => Duration::from_millis(ms.into()),
                }),
            ),
        };
        self.record(kind, path, seen, outcome);
        if let Some(hold) = hold {
            actix_web::rt::time::sleep(hold).await;
        }
        answer
    }

    /// Records a request refused before any behaviour applied.
    pub fn reject(&self, kind: MockKind, path: &str, seen: Seen) {
        self.record(kind, path, seen, Outcome::Rejected);
    }

    fn record(&self, kind: MockKind, path: &str, seen: Seen, outcome: Outcome) {
        self.counters[kind.index()][outcome as usize].fetch_add(1, Ordering::Relaxed);
        if let (Some(id), Outcome::Ok | Outcome::Delayed) = (&seen.message_id, outcome) {
            let mut tally = self
                .tally
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            tally
                .entry(id.clone())
                .and_modify(|t| t.count += 1)
                .or_insert(Taken {
                    count: 1,
                    first_at: Utc::now(),
                });
        }
        let entry = RecordedRequest {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            kind,
            path: path.to_owned(),
            message_id: seen.message_id,
            recipient: seen.recipient,
            media: seen.media,
            provider_message_id: match outcome {
                Outcome::Ok | Outcome::Delayed | Outcome::TimedOut => seen.provider_message_id,
                _ => None,
            },
            outcome,
            received_at: Utc::now(),
        };
        let mut ring = self
            .ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if ring.len() == RING_CAPACITY {
            ring.pop_front();
        }
        ring.push_back(entry);
    }

    /// The newest `limit` kept requests (all without one) of one kind or all, oldest first.
    pub fn requests(&self, kind: Option<MockKind>, limit: Option<usize>) -> Vec<RecordedRequest> {
        let ring = self
            .ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut newest: Vec<RecordedRequest> = ring
            .iter()
            .rev()
            .filter(|r| kind.is_none_or(|k| r.kind == k))
            .take(limit.unwrap_or(RING_CAPACITY))
            .cloned()
            .collect();
        drop(ring);
        newest.reverse();
        newest
    }

    /// Counts per kind and outcome, with a `requests` total per kind.
    pub fn stats(&self) -> serde_json::Value {
        let mut kinds = serde_json::Map::new();
        let mut total = 0;
        for kind in MockKind::ALL {
            let mut counts = serde_json::Map::new();
            let mut requests = 0;
            for outcome in Outcome::ALL {
                let n = self.counters[kind.index()][outcome as usize].load(Ordering::Relaxed);
                requests += n;
                counts.insert(outcome.as_str().into(), n.into());
            }
            total += requests;
            counts.insert("requests".into(), requests.into());
            kinds.insert(kind.as_str().into(), counts.into());
        }
        serde_json::json!({"total": total, "kinds": kinds})
    }

    /// The tally of taken message ids: how many, how many more than once, and each one.
    pub fn tally(&self) -> serde_json::Value {
        let tally = self
            .tally
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let duplicated = tally.values().filter(|t| t.count > 1).count();
        serde_json::json!({
            "distinct": tally.len(),
            "duplicated": duplicated,
            "messages": &*tally,
        })
    }

    /// Forgets every request and zeroes the counters.
    pub fn clear(&self) {
        self.tally
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
        self.ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
        for counter in self.counters.iter().flatten() {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_behaviour_applies_exactly_n_times_then_reverts() {
        let state = MockState::default();
        let failing = Behaviour {
            mode: Mode::Fail5xx,
            delay_ms: 0,
            count: Some(2),
        };
        state.set_behaviour(MockKind::Twilio, failing);
        assert_eq!(state.take(MockKind::Twilio).mode, Mode::Fail5xx);
        assert_eq!(state.take(MockKind::Twilio).mode, Mode::Fail5xx);
        assert_eq!(state.take(MockKind::Twilio).mode, Mode::Ok);
        assert_eq!(state.behaviour(MockKind::Twilio), Behaviour::OK);
        assert_eq!(state.take(MockKind::Vonage).mode, Mode::Ok);
    }

    #[test]
    fn the_tally_counts_taken_message_ids_without_rolling_over() {
        let state = MockState::default();
        let seen = |id: &str| Seen {
            message_id: Some(id.to_owned()),
            ..Seen::default()
        };
        for n in 0..RING_CAPACITY + 10 {
            state.record(
                MockKind::Vonage,
                "/sms/json",
                seen(&format!("msg_{n}")),
                Outcome::Ok,
            );
        }
        state.record(MockKind::Vonage, "/sms/json", seen("msg_3"), Outcome::Ok);
        state.record(
            MockKind::Vonage,
            "/sms/json",
            seen("msg_x"),
            Outcome::Fail5xx,
        );
        let tally = state.tally();
        assert_eq!(tally["distinct"], RING_CAPACITY + 10);
        assert_eq!(tally["duplicated"], 1);
        assert_eq!(tally["messages"]["msg_3"]["count"], 2);
        assert!(
            tally["messages"].get("msg_x").is_none(),
            "a refused send is not taken"
        );
    }

    #[test]
    fn the_ring_keeps_only_the_newest_requests() {
        let state = MockState::default();
        for _ in 0..RING_CAPACITY + 5 {
            state.record(
                MockKind::Sendgrid,
                "/v3/mail/send",
                Seen::default(),
                Outcome::Ok,
            );
        }
        let kept = state.requests(None, None);
        assert_eq!(kept.len(), RING_CAPACITY);
        assert_eq!(kept[0].seq, 6);
        let newest = state.requests(Some(MockKind::Sendgrid), Some(2));
        assert_eq!(
            newest.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [10_004, 10_005]
        );
        assert!(state.requests(Some(MockKind::Fcm), None).is_empty());
        assert_eq!(state.stats()["kinds"]["sendgrid"]["requests"], 10_005);
    }

    #[test]
    fn behaviours_survive_packing() {
        let delay = Behaviour {
            mode: Mode::Timeout,
            delay_ms: 4_000_000_000,
            count: Some(MAX_COUNT),
        };
        assert_eq!(Behaviour::unpack(delay.pack()), delay);
        let forever = Behaviour {
            mode: Mode::RateLimit,
            delay_ms: 0,
            count: None,
        };
        assert_eq!(Behaviour::unpack(forever.pack()), forever);
    }
}
