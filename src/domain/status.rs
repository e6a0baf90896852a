//! Message statuses and the rule between them: forward only, but for a retry.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use utoipa::ToSchema;

/// Where a message is in its life.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    ToSchema,
    diesel::AsExpression,
    diesel::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageStatus {
    Scheduled,
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    Failed,
    Undelivered,
    Cancelled,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 9] = [
        MessageStatus::Scheduled,
        MessageStatus::Queued,
        MessageStatus::Sending,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Failed,
        MessageStatus::Undelivered,
        MessageStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Scheduled => "SCHEDULED",
            MessageStatus::Queued => "QUEUED",
            MessageStatus::Sending => "SENDING",
            MessageStatus::Sent => "SENT",
            MessageStatus::Delivered => "DELIVERED",
            MessageStatus::Read => "READ",
            MessageStatus::Failed => "FAILED",
            MessageStatus::Undelivered => "UNDELIVERED",
            MessageStatus::Cancelled => "CANCELLED",
        }
    }

    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            MessageStatus::Read
                | MessageStatus::Failed
                | MessageStatus::Undelivered
                | MessageStatus::Cancelled
        )
    }

    fn rank(self) -> u8 {
        match self {
            MessageStatus::Scheduled => 0,
            MessageStatus::Queued => 1,
            MessageStatus::Sending => 2,
            MessageStatus::Sent => 3,
            MessageStatus::Delivered => 4,
            MessageStatus::Read => 5,
            MessageStatus::Failed | MessageStatus::Undelivered | MessageStatus::Cancelled => 6,
        }
    }

    /// Whether moving from `self` to `next` goes forward. Terminal statuses stay; a
    /// delivered message may still be read, or reported undelivered by a late receipt is not
    /// accepted (delivery confirmation wins). The one step back is a retry: an attempt that
    /// did not go through puts a SENDING message back in the queue.
    pub fn can_move_to(self, next: MessageStatus) -> bool {
        if self.is_terminal() || self == next {
            return false;
        }
        match next {
            MessageStatus::Queued if self == MessageStatus::Sending => true,
            MessageStatus::Cancelled => {
                matches!(self, MessageStatus::Scheduled | MessageStatus::Queued)
            }
            MessageStatus::Failed | MessageStatus::Undelivered => {
                self.rank() < MessageStatus::Delivered.rank()
            }
            _ => next.rank() > self.rank(),
        }
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MessageStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageStatus::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown status {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::MessageStatus::*;

    #[test]
    fn status_only_moves_forward() {
        assert!(Queued.can_move_to(Sending));
        assert!(Sent.can_move_to(Delivered));
        assert!(Delivered.can_move_to(Read));
        assert!(!Delivered.can_move_to(Sent));
        assert!(!Delivered.can_move_to(Undelivered));
        assert!(!Read.can_move_to(Delivered));
        assert!(!Failed.can_move_to(Sent));
        assert!(Sent.can_move_to(Undelivered));
    }

    #[test]
    fn only_a_message_in_flight_goes_back_to_the_queue() {
        assert!(Sending.can_move_to(Queued));
        assert!(Scheduled.can_move_to(Queued));
        assert!(!Sent.can_move_to(Queued));
        assert!(!Delivered.can_move_to(Queued));
        assert!(!Failed.can_move_to(Queued));
    }

    #[test]
    fn only_scheduled_or_queued_messages_can_be_cancelled() {
        assert!(Scheduled.can_move_to(Cancelled));
        assert!(Queued.can_move_to(Cancelled));
        assert!(!Sending.can_move_to(Cancelled));
        assert!(!Sent.can_move_to(Cancelled));
    }
}
