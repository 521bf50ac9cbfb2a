//! One message to one customer on one channel, and every attempt to deliver it.
//! The stream id derives from the source event and the channel, so a source
//! event makes at most one message per channel however often it arrives.
//!
//! An attempt is recorded as started before the provider is called. If the
//! process dies before the outcome is recorded, the attempt's lease runs out and
//! it is interrupted: retried where the provider takes an idempotency key (SMS,
//! push), marked `unknown` for email, which is never risked twice (an operator
//! can resend it).

use aftersales_eventstore::{Decider, DomainEvent};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::DomainError;
use super::catalog::{Kind, Topic};
use super::preferences::Channel;

/// What is said, to whom, where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub customer_id: String,
    pub channel: Channel,
    /// Email address, phone number or push token; empty for the inbox.
    pub address: String,
    pub kind: Kind,
    pub topic: Topic,
    pub language: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub urgent: bool,
    pub source_event_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Scheduled,
    Sending,
    Delivered,
    Retrying,
    Failed,
    /// An interrupted email: it may or may not have gone out.
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Sending => "sending",
            Self::Delivered => "delivered",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Delivered,
    Failed,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub number: u32,
    pub started_at: DateTime<Utc>,
    pub outcome: Option<Outcome>,
    pub error: String,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationState {
    pub message: Message,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub lease_until: Option<DateTime<Utc>>,
    pub attempts: Vec<Attempt>,
    pub read_at: Option<DateTime<Utc>>,
    /// When staff asked for it to be sent again.
    #[serde(default)]
    pub resent_at: Vec<DateTime<Utc>>,
}

/// A message is sent again at most this many times...
pub const MAX_RESENDS: usize = 3;
/// ...and never sooner than this after the last time.
pub const RESEND_INTERVAL: Duration = Duration::minutes(15);

/// How failures are retried: exponential from `base`, at most `max` apart, with
/// `jitter` (0 to 1, drawn by the caller) adding up to half again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
    pub jitter: f64,
}

impl Retry {
    pub fn delay(&self, attempt: u32) -> Duration {
        let doubled = self
            .base
            .checked_mul(1 << attempt.saturating_sub(1).min(20))
            .unwrap_or(self.max)
            .min(self.max);
        let extra = doubled.num_milliseconds() as f64 * self.jitter.clamp(0.0, 1.0) / 2.0;
        #[allow(clippy::cast_possible_truncation)] // at most half of `max`
        let extra = Duration::milliseconds(extra as i64);
        doubled + extra
    }
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Delivered,
    /// `retryable` is false when asking again cannot help (a rejected address).
    Failed {
        error: String,
        retryable: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Request {
        message: Message,
        send_at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    StartAttempt {
        now: DateTime<Utc>,
        lease: Duration,
    },
    Finish {
        number: u32,
        sent: Sent,
        now: DateTime<Utc>,
        retry: Retry,
    },
    /// The attempt's lease ran out with no outcome recorded.
    Interrupt {
        now: DateTime<Utc>,
    },
    MarkRead {
        customer_id: String,
        now: DateTime<Utc>,
    },
    Resend {
        reason: String,
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[allow(clippy::large_enum_variant)] // short-lived values; boxing buys nothing
pub enum Event {
    NotificationRequested {
        message: Message,
        send_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// In the inbox: nothing to send.
    PlacedInInbox {
        at: DateTime<Utc>,
    },
    AttemptStarted {
        number: u32,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    },
    AttemptSucceeded {
        number: u32,
        at: DateTime<Utc>,
    },
    AttemptFailed {
        number: u32,
        at: DateTime<Utc>,
        error: String,
        /// `None`: no more attempts; the notification failed.
        retry_at: Option<DateTime<Utc>>,
    },
    AttemptInterrupted {
        number: u32,
        at: DateTime<Utc>,
    },
    NotificationRead {
        at: DateTime<Utc>,
    },
    ResendRequested {
        reason: String,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Self::NotificationRequested { .. } => "NotificationRequested",
            Self::PlacedInInbox { .. } => "PlacedInInbox",
            Self::AttemptStarted { .. } => "AttemptStarted",
            Self::AttemptSucceeded { .. } => "AttemptSucceeded",
            Self::AttemptFailed { .. } => "AttemptFailed",
            Self::AttemptInterrupted { .. } => "AttemptInterrupted",
            Self::NotificationRead { .. } => "NotificationRead",
            Self::ResendRequested { .. } => "ResendRequested",
        }
    }

    /// Where the message goes and what it says, sealed for its customer.
    fn personal(&self) -> Option<aftersales_eventstore::PersonalData<'_>> {
        let Self::NotificationRequested { message, .. } = self else {
            return None;
        };
        Some(aftersales_eventstore::PersonalData {
            subject: &message.customer_id,
            fields: &[
                "/message/address",
                "/message/subject",
                "/message/text",
                "/message/html",
            ],
        })
    }
}

/// The notification decider.
#[derive(Debug, Clone, Copy)]
pub struct Notification;

fn refuse(state: &NotificationState, action: &str) -> DomainError {
    DomainError::Precondition(format!(
        "{action} is not possible while the notification is {}",
        state.status.as_str()
    ))
}

impl Decider for Notification {
    type Command = Command;
    type Event = Event;
    type State = Option<NotificationState>;
    type Error = DomainError;

    fn initial_state() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Command) -> Result<Vec<Event>, DomainError> {
        let Some(n) = state else {
            let Command::Request {
                message,
                send_at,
                now,
            } = command
            else {
                return Err(DomainError::NotFound("notification".into()));
            };
            let mut events = vec![Event::NotificationRequested {
                message: message.clone(),
                send_at: *send_at,
                at: *now,
            }];
            if message.channel == Channel::InApp {
                events.push(Event::PlacedInInbox { at: *now });
            }
            return Ok(events);
        };
        match command {
            // The same source event again: already requested.
            Command::Request { .. } => Ok(vec![]),
            Command::StartAttempt { now, lease } => {
                let due = n.next_attempt_at.is_some_and(|at| at <= *now);
                if !matches!(n.status, Status::Scheduled | Status::Retrying) || !due {
                    return Err(refuse(n, "an attempt"));
                }
                Ok(vec![Event::AttemptStarted {
                    number: u32::try_from(n.attempts.len()).unwrap_or(u32::MAX - 1) + 1,
                    at: *now,
                    lease_until: *now + *lease,
                }])
            }
            Command::Finish {
                number,
                sent,
                now,
                retry,
            } => {
                let current = n.attempts.last().map(|a| a.number);
                if n.status != Status::Sending || current != Some(*number) {
                    return Err(refuse(n, "finishing that attempt"));
                }
                Ok(vec![match sent {
                    Sent::Delivered => Event::AttemptSucceeded {
                        number: *number,
                        at: *now,
                    },
                    Sent::Failed { error, retryable } => Event::AttemptFailed {
                        number: *number,
                        at: *now,
                        error: error.clone(),
                        retry_at: (*retryable && *number < retry.max_attempts)
                            .then(|| *now + retry.delay(*number)),
                    },
                }])
            }
            Command::Interrupt { now } => {
                let expired = n.lease_until.is_some_and(|until| until <= *now);
                if n.status != Status::Sending || !expired {
                    return Err(refuse(n, "interrupting"));
                }
                let number = n.attempts.last().map_or(0, |a| a.number);
                Ok(vec![if n.message.channel.retry_is_safe() {
                    Event::AttemptFailed {
                        number,
                        at: *now,
                        error: "interrupted; retried with the same idempotency key".into(),
                        retry_at: Some(*now),
                    }
                } else {
                    Event::AttemptInterrupted { number, at: *now }
                }])
            }
            Command::MarkRead { customer_id, now } => {
                if n.message.customer_id != *customer_id || n.message.channel != Channel::InApp {
                    return Err(DomainError::NotFound("notification in this inbox".into()));
                }
                if n.read_at.is_some() {
                    return Ok(vec![]);
                }
                Ok(vec![Event::NotificationRead { at: *now }])
            }
            Command::Resend { reason, now } => {
                if n.message.channel == Channel::InApp {
                    return Err(DomainError::Precondition(
                        "an in-app message is in the inbox already".into(),
                    ));
                }
                if !matches!(
                    n.status,
                    Status::Delivered | Status::Failed | Status::Unknown
                ) {
                    return Err(refuse(n, "resending"));
                }
                if reason.trim().is_empty() || reason.len() > 500 {
                    return Err(DomainError::invalid(
                        "reason",
                        "must say why, in at most 500 bytes",
                    ));
                }
                // Resending cannot be used to flood a customer.
                if n.resent_at.len() >= MAX_RESENDS {
                    return Err(DomainError::Exhausted(format!(
                        "this message was sent again {MAX_RESENDS} times already"
                    )));
                }
                if let Some(last) = n.resent_at.last()
                    && *now < *last + RESEND_INTERVAL
                {
                    return Err(DomainError::Exhausted(format!(
                        "sent again at {last}; once more from {}",
                        *last + RESEND_INTERVAL
                    )));
                }
                Ok(vec![Event::ResendRequested {
                    reason: reason.clone(),
                    at: *now,
                }])
            }
        }
    }

    fn evolve(state: Self::State, event: &Event) -> Self::State {
        if let Event::NotificationRequested {
            message,
            send_at,
            at,
        } = event
        {
            return Some(NotificationState {
                message: message.clone(),
                status: Status::Scheduled,
                created_at: *at,
                next_attempt_at: Some(*send_at),
                lease_until: None,
                attempts: Vec::new(),
                read_at: None,
                resent_at: Vec::new(),
            });
        }
        let mut n = state?;
        let finish = |n: &mut NotificationState, outcome, error: &str, at| {
            if let Some(attempt) = n.attempts.last_mut() {
                attempt.outcome = Some(outcome);
                error.clone_into(&mut attempt.error);
                attempt.finished_at = Some(at);
            }
            n.lease_until = None;
        };
        match event {
            Event::NotificationRequested { .. } => {}
            Event::PlacedInInbox { .. } => {
                n.status = Status::Delivered;
                n.next_attempt_at = None;
            }
            Event::AttemptStarted {
                number,
                at,
                lease_until,
            } => {
                n.status = Status::Sending;
                n.next_attempt_at = None;
                n.lease_until = Some(*lease_until);
                n.attempts.push(Attempt {
                    number: *number,
                    started_at: *at,
                    outcome: None,
                    error: String::new(),
                    finished_at: None,
                });
            }
            Event::AttemptSucceeded { at, .. } => {
                finish(&mut n, Outcome::Delivered, "", *at);
                n.status = Status::Delivered;
            }
            Event::AttemptFailed {
                at,
                error,
                retry_at,
                ..
            } => {
                finish(&mut n, Outcome::Failed, error, *at);
                n.next_attempt_at = *retry_at;
                n.status = if retry_at.is_some() {
                    Status::Retrying
                } else {
                    Status::Failed
                };
            }
            Event::AttemptInterrupted { at, .. } => {
                finish(&mut n, Outcome::Unknown, "interrupted; not retried", *at);
                n.status = Status::Unknown;
            }
            Event::NotificationRead { at } => n.read_at = Some(*at),
            Event::ResendRequested { at, .. } => {
                n.status = Status::Scheduled;
                n.next_attempt_at = Some(*at);
                n.resent_at.push(*at);
            }
        }
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + seconds, 0).unwrap_or_default()
    }

    fn message(channel: Channel) -> Message {
        Message {
            customer_id: "c-1".into(),
            channel,
            address: "ana@example.com".into(),
            kind: Kind::RepairStarted,
            topic: Topic::RepairUpdates,
            language: "en".into(),
            subject: "s".into(),
            text: "t".into(),
            html: "<p>t</p>".into(),
            urgent: false,
            source_event_id: "e-1".into(),
        }
    }

    const RETRY: Retry = Retry {
        max_attempts: 3,
        base: Duration::seconds(2),
        max: Duration::seconds(60),
        jitter: 0.0,
    };

    fn run(state: Option<NotificationState>, command: &Command) -> Option<NotificationState> {
        let events = Notification::decide(&state, command).expect("accepted");
        events.iter().fold(state, Notification::evolve)
    }

    fn requested(channel: Channel) -> Option<NotificationState> {
        run(
            None,
            &Command::Request {
                message: message(channel),
                send_at: at(0),
                now: at(0),
            },
        )
    }

    fn start(state: Option<NotificationState>, now: i64) -> Option<NotificationState> {
        run(
            state,
            &Command::StartAttempt {
                now: at(now),
                lease: Duration::seconds(30),
            },
        )
    }

    fn fail(state: Option<NotificationState>, number: u32, now: i64) -> Option<NotificationState> {
        run(
            state,
            &Command::Finish {
                number,
                sent: Sent::Failed {
                    error: "503".into(),
                    retryable: true,
                },
                now: at(now),
                retry: RETRY,
            },
        )
    }

    #[test]
    fn failures_back_off_then_give_up() {
        let s = fail(start(requested(Channel::Sms), 0), 1, 1);
        let n = s.as_ref().expect("exists");
        assert_eq!(
            (n.status, n.next_attempt_at),
            (Status::Retrying, Some(at(3)))
        );
        assert!(
            Notification::decide(
                &s,
                &Command::StartAttempt {
                    now: at(2),
                    lease: Duration::seconds(30)
                }
            )
            .is_err(),
            "not due yet"
        );
        let s = fail(start(s, 3), 2, 4);
        assert_eq!(
            s.as_ref().and_then(|n| n.next_attempt_at),
            Some(at(8)),
            "doubled"
        );
        let s = fail(start(s, 8), 3, 9);
        let n = s.expect("exists");
        assert_eq!(
            (n.status, n.next_attempt_at, n.attempts.len()),
            (Status::Failed, None, 3)
        );
    }

    #[test]
    fn a_later_success_delivers_once() {
        let s = fail(start(requested(Channel::Sms), 0), 1, 1);
        let s = run(
            start(s, 3),
            &Command::Finish {
                number: 2,
                sent: Sent::Delivered,
                now: at(4),
                retry: RETRY,
            },
        );
        let n = s.as_ref().expect("exists");
        assert_eq!(n.status, Status::Delivered);
        assert!(
            Notification::decide(
                &s,
                &Command::StartAttempt {
                    now: at(99),
                    lease: Duration::seconds(30)
                }
            )
            .is_err()
        );
        let again = Notification::decide(
            &s,
            &Command::Request {
                message: message(Channel::Sms),
                send_at: at(0),
                now: at(5),
            },
        );
        assert_eq!(again, Ok(vec![]), "the same source event makes nothing new");
    }

    #[test]
    fn an_interrupted_email_is_never_risked_twice_but_sms_is_retried() {
        let email = start(requested(Channel::Email), 0);
        assert!(
            Notification::decide(&email, &Command::Interrupt { now: at(10) }).is_err(),
            "lease still valid"
        );
        let email = run(email, &Command::Interrupt { now: at(31) }).expect("exists");
        assert_eq!(email.status, Status::Unknown);
        let sms = run(
            start(requested(Channel::Sms), 0),
            &Command::Interrupt { now: at(31) },
        )
        .expect("exists");
        assert_eq!(
            (sms.status, sms.next_attempt_at),
            (Status::Retrying, Some(at(31)))
        );
    }

    #[test]
    fn an_operator_resends_a_failed_or_unknown_message() {
        let email = run(
            start(requested(Channel::Email), 0),
            &Command::Interrupt { now: at(31) },
        );
        let resent = run(
            email,
            &Command::Resend {
                reason: "customer asked".into(),
                now: at(40),
            },
        )
        .expect("exists");
        assert_eq!(
            (resent.status, resent.next_attempt_at),
            (Status::Scheduled, Some(at(40)))
        );
        assert!(
            Notification::decide(
                &requested(Channel::InApp),
                &Command::Resend {
                    reason: "x".into(),
                    now: at(1)
                }
            )
            .is_err()
        );
    }

    #[test]
    fn resends_are_spaced_and_few() {
        let resend = |now: i64| Command::Resend {
            reason: "customer asked".into(),
            now: at(now),
        };
        // Each resend is delivered at once; the next may follow 15 minutes on.
        let resend_and_deliver = |s: Option<NotificationState>, now: i64| {
            let s = start(run(s, &resend(now)), now);
            let number = s
                .as_ref()
                .and_then(|n| n.attempts.last())
                .map_or(0, |a| a.number);
            run(
                s,
                &Command::Finish {
                    number,
                    sent: Sent::Delivered,
                    now: at(now + 1),
                    retry: RETRY,
                },
            )
        };
        let quarter = RESEND_INTERVAL.num_seconds();
        let s = run(
            start(requested(Channel::Email), 0),
            &Command::Interrupt { now: at(31) },
        );
        let s = resend_and_deliver(s, 100);
        // Again within the quarter hour: refused, as a flood would be.
        assert!(matches!(
            Notification::decide(&s, &resend(105)),
            Err(DomainError::Exhausted(_))
        ));
        let s = resend_and_deliver(s, 100 + quarter);
        let s = resend_and_deliver(s, 100 + 2 * quarter);
        // Three resends in all, however long one waits.
        assert!(matches!(
            Notification::decide(&s, &resend(100 + 10 * quarter)),
            Err(DomainError::Exhausted(_))
        ));
    }

    #[test]
    fn the_inbox_receives_at_once_and_only_its_owner_reads() {
        let inbox = requested(Channel::InApp);
        assert_eq!(inbox.as_ref().map(|n| n.status), Some(Status::Delivered));
        let stranger = Command::MarkRead {
            customer_id: "c-2".into(),
            now: at(1),
        };
        assert!(matches!(
            Notification::decide(&inbox, &stranger),
            Err(DomainError::NotFound(_))
        ));
        let read = run(
            inbox,
            &Command::MarkRead {
                customer_id: "c-1".into(),
                now: at(1),
            },
        );
        assert!(read.as_ref().is_some_and(|n| n.read_at.is_some()));
        assert_eq!(
            Notification::decide(
                &read,
                &Command::MarkRead {
                    customer_id: "c-1".into(),
                    now: at(2)
                }
            ),
            Ok(vec![])
        );
    }

    #[test]
    fn jitter_adds_at_most_half() {
        let r = Retry {
            jitter: 1.0,
            ..RETRY
        };
        assert_eq!(r.delay(1), Duration::seconds(3));
        assert_eq!(r.delay(10), Duration::seconds(90), "capped, then jittered");
    }
}
