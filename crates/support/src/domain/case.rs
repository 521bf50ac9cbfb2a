//! A support case: a customer's question or problem, from the hotline, chat,
//! email, the web, an agent or the platform itself, with its conversation, its
//! team and agent, and its two SLA clocks. One stream per case (`case-<id>`).
//!
//! new → assigned → waiting on customer (clocks paused) → resolved → closed;
//! a resolved or closed case may be reopened within the reopening window. An
//! escalation moves the case one tier up with its whole history and makes it
//! new again in the next team's queue. Each clock's warning and breach are
//! recorded once, whoever asks and however often.

use std::sync::Arc;

use aftersales_eventstore::{Decider, DomainEvent};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::DomainError;
use super::calendar::BusinessCalendar;
use super::sla::{Clock, ClockKind, ClockState, Targets};

/// Where a case came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Phone,
    Chat,
    Email,
    Web,
    /// An agent opened it on the customer's behalf.
    Agent,
    /// The platform opened it: a stalled parcel, QC failed twice, a quote waiting.
    Platform,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Hardware,
    SoftwareAndUpdates,
    WarrantyQuestion,
    Accessory,
    Shipping,
    Complaint,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hardware => "hardware",
            Self::SoftwareAndUpdates => "software_and_updates",
            Self::WarrantyQuestion => "warranty_question",
            Self::Accessory => "accessory",
            Self::Shipping => "shipping",
            Self::Complaint => "complaint",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Self; 4] = [Self::Low, Self::Normal, Self::High, Self::Urgent];
}

/// Support tiers, in escalation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    FrontLine,
    Expert,
    Engineering,
}

impl Tier {
    pub fn next(self) -> Option<Self> {
        match self {
            Self::FrontLine => Some(Self::Expert),
            Self::Expert => Some(Self::Engineering),
            Self::Engineering => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FrontLine => "front_line",
            Self::Expert => "expert",
            Self::Engineering => "engineering",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    Assigned,
    WaitingOnCustomer,
    Resolved,
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Assigned => "assigned",
            Self::WaitingOnCustomer => "waiting on customer",
            Self::Resolved => "resolved",
            Self::Closed => "closed",
        }
    }

    pub fn is_open(self) -> bool {
        !matches!(self, Self::Resolved | Self::Closed)
    }
}

/// What an entry of the conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    CustomerMessage,
    AgentReply,
    /// Seen by staff only.
    InternalNote,
}

/// A file sent with a message: its description only; the bytes live elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub size_bytes: u64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
}

/// Why a case moved up a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationReason {
    SlaBreach,
    CustomerRequest,
    Agent,
}

/// The longest message, and the most attachments and bytes one may carry.
pub const MAX_MESSAGE_BYTES: usize = 10_000;
pub const MAX_ATTACHMENTS: usize = 10;
pub const MAX_ATTACHMENT_BYTES: u64 = 25 * 1024 * 1024;
pub const MAX_SUBJECT_BYTES: usize = 200;
/// Entries one case may hold: a longer conversation is a new case.
pub const MAX_ENTRIES: u32 = 1_000;

/// Where a case is routed, and by which clocks it runs.
#[derive(Debug, Clone)]
pub struct Routing {
    pub team_id: String,
    pub tier: Tier,
    pub calendar: Arc<BusinessCalendar>,
}

/// What opening a case needs; ids and names are pseudonymous, text is sealed.
#[derive(Debug, Clone)]
pub struct Opening {
    pub case_id: String,
    pub customer_id: String,
    pub country: String,
    pub language: String,
    pub channel: Channel,
    pub category: Category,
    pub priority: Priority,
    pub device_imei: Option<String>,
    pub repair_order_id: Option<String>,
    /// For cases the platform opens: the fact it opened it for.
    pub source: Option<String>,
    pub subject: String,
    pub text: String,
    pub attachments: Vec<Attachment>,
    pub routing: Routing,
    pub policy_version: u32,
    pub targets: Targets,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub enum Command {
    Open(Box<Opening>),
    Assign {
        agent_id: String,
        /// Routing's own assignment: it never takes a case from an agent.
        only_if_unassigned: bool,
        at: DateTime<Utc>,
    },
    AddEntry {
        kind: EntryKind,
        /// An agent id for replies and notes; the customer's own id for theirs.
        author: String,
        text: String,
        attachments: Vec<Attachment>,
        calendar: Arc<BusinessCalendar>,
        at: DateTime<Utc>,
    },
    WaitOnCustomer {
        calendar: Arc<BusinessCalendar>,
        at: DateTime<Utc>,
    },
    Resolve {
        summary: String,
        at: DateTime<Utc>,
    },
    Close {
        at: DateTime<Utc>,
    },
    Reopen {
        reason: String,
        window: Duration,
        targets: Targets,
        calendar: Arc<BusinessCalendar>,
        at: DateTime<Utc>,
    },
    Escalate {
        reason: EscalationReason,
        note: String,
        to: Routing,
        at: DateTime<Utc>,
    },
    /// Records the warnings and breaches due at `now`; on a resolution breach
    /// below the top tier, escalates to `escalate_to` in the same append.
    RecordAlarms {
        now: DateTime<Utc>,
        escalate_to: Option<Routing>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    CaseOpened {
        case_id: String,
        customer_id: String,
        country: String,
        language: String,
        channel: Channel,
        category: Category,
        priority: Priority,
        device_imei: Option<String>,
        repair_order_id: Option<String>,
        source: Option<String>,
        subject: String,
        text: String,
        attachments: Vec<Attachment>,
        team_id: String,
        tier: Tier,
        policy_version: u32,
        targets: Targets,
        clocks: Vec<Clock>,
        at: DateTime<Utc>,
    },
    CaseAssigned {
        case_id: String,
        team_id: String,
        agent_id: String,
        at: DateTime<Utc>,
    },
    EntryAdded {
        case_id: String,
        customer_id: String,
        kind: EntryKind,
        author: String,
        text: String,
        attachments: Vec<Attachment>,
        /// Clocks changed by it: the first response met, or the clocks resumed
        /// by the customer's answer.
        clocks: Vec<Clock>,
        at: DateTime<Utc>,
    },
    WaitingOnCustomer {
        case_id: String,
        clocks: Vec<Clock>,
        at: DateTime<Utc>,
    },
    CaseResolved {
        case_id: String,
        customer_id: String,
        team_id: String,
        agent_id: Option<String>,
        summary: String,
        clocks: Vec<Clock>,
        at: DateTime<Utc>,
    },
    CaseClosed {
        case_id: String,
        at: DateTime<Utc>,
    },
    CaseReopened {
        case_id: String,
        customer_id: String,
        reason: String,
        clocks: Vec<Clock>,
        at: DateTime<Utc>,
    },
    CaseEscalated {
        case_id: String,
        customer_id: String,
        reason: EscalationReason,
        note: String,
        from_team_id: String,
        from_tier: Tier,
        team_id: String,
        tier: Tier,
        /// Clocks paused while waiting on the customer run again: the next
        /// team owes the customer now. Running clocks keep their due instants.
        clocks: Vec<Clock>,
        at: DateTime<Utc>,
    },
    SlaWarningReached {
        case_id: String,
        team_id: String,
        clock: ClockKind,
        due: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    SlaBreached {
        case_id: String,
        team_id: String,
        clock: ClockKind,
        due: DateTime<Utc>,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Self::CaseOpened { .. } => "CaseOpened",
            Self::CaseAssigned { .. } => "CaseAssigned",
            Self::EntryAdded { .. } => "EntryAdded",
            Self::WaitingOnCustomer { .. } => "WaitingOnCustomer",
            Self::CaseResolved { .. } => "CaseResolved",
            Self::CaseClosed { .. } => "CaseClosed",
            Self::CaseReopened { .. } => "CaseReopened",
            Self::CaseEscalated { .. } => "CaseEscalated",
            Self::SlaWarningReached { .. } => "SlaWarningReached",
            Self::SlaBreached { .. } => "SlaBreached",
        }
    }

    /// What the customer wrote or was told, sealed for them.
    fn personal(&self) -> Option<aftersales_eventstore::PersonalData<'_>> {
        match self {
            Self::CaseOpened { customer_id, .. } => Some(aftersales_eventstore::PersonalData {
                subject: customer_id,
                fields: &["/subject", "/text", "/attachments"],
            }),
            Self::EntryAdded { customer_id, .. } => Some(aftersales_eventstore::PersonalData {
                subject: customer_id,
                fields: &["/text", "/attachments"],
            }),
            Self::CaseResolved { customer_id, .. } => Some(aftersales_eventstore::PersonalData {
                subject: customer_id,
                fields: &["/summary"],
            }),
            Self::CaseReopened { customer_id, .. } => Some(aftersales_eventstore::PersonalData {
                subject: customer_id,
                fields: &["/reason"],
            }),
            Self::CaseAssigned { .. }
            | Self::WaitingOnCustomer { .. }
            | Self::CaseClosed { .. }
            | Self::CaseEscalated { .. }
            | Self::SlaWarningReached { .. }
            | Self::SlaBreached { .. } => None,
        }
    }
}

/// A case as its log leaves it: no conversation text, only what rules need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseState {
    pub case_id: String,
    pub customer_id: String,
    pub country: String,
    pub language: String,
    pub channel: Channel,
    pub category: Category,
    pub priority: Priority,
    pub device_imei: Option<String>,
    pub repair_order_id: Option<String>,
    pub status: Status,
    pub team_id: String,
    pub tier: Tier,
    pub agent_id: Option<String>,
    pub policy_version: u32,
    pub clocks: Vec<Clock>,
    pub entries: u32,
    pub opened_at: DateTime<Utc>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub reopened: u32,
    pub escalations: u32,
    /// Replies the customer got: one at most is a first-contact resolution.
    #[serde(default)]
    pub agent_replies: u32,
}

impl CaseState {
    pub fn clock(&self, kind: ClockKind) -> Option<&Clock> {
        self.clocks.iter().find(|c| c.kind == kind)
    }

    /// The earliest instant one of its clocks needs attention.
    pub fn next_alarm(&self) -> Option<DateTime<Utc>> {
        self.clocks.iter().filter_map(Clock::next_alarm).min()
    }
}

/// Message text: not blank, at most [`MAX_MESSAGE_BYTES`], printable but for
/// line breaks and tabs.
pub fn message_text(field: &'static str, text: &str) -> Result<(), DomainError> {
    long_text(field, text, MAX_MESSAGE_BYTES)
}

/// Text of several lines: not blank, at most `max` bytes, printable but for
/// line breaks and tabs.
pub fn long_text(field: &'static str, text: &str, max: usize) -> Result<(), DomainError> {
    if text.trim().is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if text.len() > max
        || text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max} bytes of printable text"),
        ));
    }
    Ok(())
}

fn check_attachments(attachments: &[Attachment]) -> Result<(), DomainError> {
    if attachments.len() > MAX_ATTACHMENTS {
        return Err(DomainError::invalid(
            "attachments",
            format!("at most {MAX_ATTACHMENTS} per message"),
        ));
    }
    for a in attachments {
        super::text("attachments.name", &a.name, 200, true)?;
        let content_type_ok = a.content_type.len() <= 100
            && a.content_type.split_once('/').is_some_and(|(t, s)| {
                !t.is_empty()
                    && !s.is_empty()
                    && a.content_type
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"/.+-_".contains(&b))
            });
        if !content_type_ok {
            return Err(DomainError::invalid(
                "attachments.content_type",
                format!("{:?} is not a media type", a.content_type),
            ));
        }
        if a.size_bytes == 0 || a.size_bytes > MAX_ATTACHMENT_BYTES {
            return Err(DomainError::invalid(
                "attachments.size_bytes",
                format!("must be 1 to {MAX_ATTACHMENT_BYTES} bytes"),
            ));
        }
        if a.sha256.len() != 64 || !a.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DomainError::invalid(
                "attachments.sha256",
                "must be 64 hex digits",
            ));
        }
    }
    Ok(())
}

fn refuse(state: &CaseState, action: &str) -> DomainError {
    DomainError::Precondition(format!(
        "cannot {action}: the case is {}",
        state.status.as_str()
    ))
}

/// The case decider.
#[derive(Debug, Clone, Copy)]
pub struct Case;

impl Case {
    fn open(opening: &Opening) -> Result<Vec<Event>, DomainError> {
        super::text("subject", &opening.subject, MAX_SUBJECT_BYTES, true)?;
        message_text("text", &opening.text)?;
        check_attachments(&opening.attachments)?;
        let clocks = ClockKind::ALL
            .into_iter()
            .map(|kind| {
                Clock::start(
                    kind,
                    &opening.targets,
                    &opening.routing.calendar,
                    opening.at,
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DomainError::Precondition(e.to_string()))?;
        Ok(vec![Event::CaseOpened {
            case_id: opening.case_id.clone(),
            customer_id: opening.customer_id.clone(),
            country: opening.country.clone(),
            language: opening.language.clone(),
            channel: opening.channel,
            category: opening.category,
            priority: opening.priority,
            device_imei: opening.device_imei.clone(),
            repair_order_id: opening.repair_order_id.clone(),
            source: opening.source.clone(),
            subject: opening.subject.clone(),
            text: opening.text.clone(),
            attachments: opening.attachments.clone(),
            team_id: opening.routing.team_id.clone(),
            tier: opening.routing.tier,
            policy_version: opening.policy_version,
            targets: opening.targets,
            clocks,
            at: opening.at,
        }])
    }

    fn add_entry(state: &CaseState, command: &Command) -> Result<Vec<Event>, DomainError> {
        let Command::AddEntry {
            kind,
            author,
            text,
            attachments,
            calendar,
            at,
        } = command
        else {
            return Ok(vec![]);
        };
        message_text("text", text)?;
        check_attachments(attachments)?;
        super::text("author", author, 100, true)?;
        if state.entries >= MAX_ENTRIES {
            return Err(DomainError::Exhausted(format!(
                "a case holds at most {MAX_ENTRIES} entries: open a new one"
            )));
        }
        let changed = match (kind, state.status) {
            (_, Status::Closed) => return Err(refuse(state, "add to the conversation")),
            (EntryKind::CustomerMessage, Status::Resolved) => {
                return Err(refuse(state, "answer (reopen it first)"));
            }
            (EntryKind::AgentReply, Status::New) => {
                return Err(refuse(state, "reply before it is assigned"));
            }
            // The customer's answer starts the paused clocks again.
            (EntryKind::CustomerMessage, Status::WaitingOnCustomer) => state
                .clocks
                .iter()
                .map(|c| c.resumed(calendar, *at))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| DomainError::Precondition(e.to_string()))?,
            // The first reply meets the first-response promise.
            (EntryKind::AgentReply, _) if state.first_response_at.is_none() => state
                .clocks
                .iter()
                .filter(|c| c.kind == ClockKind::FirstResponse && c.is_running())
                .map(|c| stopped(c, *at))
                .collect(),
            _ => vec![],
        };
        Ok(vec![Event::EntryAdded {
            case_id: state.case_id.clone(),
            customer_id: state.customer_id.clone(),
            kind: *kind,
            author: author.clone(),
            text: text.clone(),
            attachments: attachments.clone(),
            clocks: changed,
            at: *at,
        }])
    }

    fn alarms(
        state: &CaseState,
        now: DateTime<Utc>,
        escalate_to: Option<&Routing>,
    ) -> Result<Vec<Event>, DomainError> {
        let mut events = Vec::new();
        let mut resolution_breached = false;
        for clock in &state.clocks {
            let ClockState::Running { warn_at, due } = clock.state else {
                continue;
            };
            let (warn, breach) = clock.due_at(now);
            if warn {
                events.push(Event::SlaWarningReached {
                    case_id: state.case_id.clone(),
                    team_id: state.team_id.clone(),
                    clock: clock.kind,
                    due: warn_at,
                    at: now,
                });
            }
            if breach {
                resolution_breached |= clock.kind == ClockKind::Resolution;
                events.push(Event::SlaBreached {
                    case_id: state.case_id.clone(),
                    team_id: state.team_id.clone(),
                    clock: clock.kind,
                    due,
                    at: now,
                });
            }
        }
        if let Some(to) = escalate_to
            && resolution_breached
            && state.tier.next() == Some(to.tier)
        {
            events.push(escalated(
                state,
                EscalationReason::SlaBreach,
                "the resolution target was missed",
                to,
                now,
            )?);
        }
        Ok(events)
    }
}

fn stopped(clock: &Clock, at: DateTime<Utc>) -> Clock {
    Clock {
        state: ClockState::Stopped { at },
        ..clock.clone()
    }
}

fn escalated(
    state: &CaseState,
    reason: EscalationReason,
    note: &str,
    to: &Routing,
    at: DateTime<Utc>,
) -> Result<Event, DomainError> {
    let clocks = if state.status == Status::WaitingOnCustomer {
        state
            .clocks
            .iter()
            .map(|c| c.resumed(&to.calendar, at))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DomainError::Precondition(e.to_string()))?
    } else {
        vec![]
    };
    Ok(Event::CaseEscalated {
        case_id: state.case_id.clone(),
        customer_id: state.customer_id.clone(),
        reason,
        note: note.to_owned(),
        from_team_id: state.team_id.clone(),
        from_tier: state.tier,
        team_id: to.team_id.clone(),
        tier: to.tier,
        clocks,
        at,
    })
}

/// Replaces the clocks of `changed`'s kinds.
fn with_clocks(mut clocks: Vec<Clock>, changed: &[Clock]) -> Vec<Clock> {
    for new in changed {
        match clocks.iter_mut().find(|c| c.kind == new.kind) {
            Some(old) => *old = new.clone(),
            None => clocks.push(new.clone()),
        }
    }
    clocks
}

impl Decider for Case {
    type Command = Command;
    type Event = Event;
    type State = Option<CaseState>;
    type Error = DomainError;

    fn initial_state() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Command) -> Result<Vec<Event>, DomainError> {
        let Some(state) = state else {
            return match command {
                Command::Open(opening) => Self::open(opening),
                Command::Assign { .. }
                | Command::AddEntry { .. }
                | Command::WaitOnCustomer { .. }
                | Command::Resolve { .. }
                | Command::Close { .. }
                | Command::Reopen { .. }
                | Command::Escalate { .. }
                | Command::RecordAlarms { .. } => Err(DomainError::NotFound("the case".into())),
            };
        };
        match command {
            Command::Open(_) => Err(DomainError::AlreadyExists(format!(
                "case {} is already open",
                state.case_id
            ))),
            Command::Assign {
                agent_id,
                only_if_unassigned,
                at,
            } => {
                super::text("agent_id", agent_id, 100, true)?;
                if !state.status.is_open() {
                    return Err(refuse(state, "assign it"));
                }
                if state.agent_id.as_deref() == Some(agent_id.as_str())
                    || (*only_if_unassigned && state.agent_id.is_some())
                {
                    return Ok(vec![]);
                }
                Ok(vec![Event::CaseAssigned {
                    case_id: state.case_id.clone(),
                    team_id: state.team_id.clone(),
                    agent_id: agent_id.clone(),
                    at: *at,
                }])
            }
            Command::AddEntry { .. } => Self::add_entry(state, command),
            Command::WaitOnCustomer { calendar, at } => {
                if state.status != Status::Assigned {
                    return Err(refuse(state, "wait on the customer"));
                }
                Ok(vec![Event::WaitingOnCustomer {
                    case_id: state.case_id.clone(),
                    clocks: state
                        .clocks
                        .iter()
                        .map(|c| c.paused(calendar, *at))
                        .collect(),
                    at: *at,
                }])
            }
            Command::Resolve { summary, at } => {
                message_text("summary", summary)?;
                if !matches!(state.status, Status::Assigned | Status::WaitingOnCustomer) {
                    return Err(refuse(state, "resolve it"));
                }
                Ok(vec![Event::CaseResolved {
                    case_id: state.case_id.clone(),
                    customer_id: state.customer_id.clone(),
                    team_id: state.team_id.clone(),
                    agent_id: state.agent_id.clone(),
                    summary: summary.clone(),
                    clocks: state
                        .clocks
                        .iter()
                        .filter(|c| !matches!(c.state, ClockState::Stopped { .. }))
                        .map(|c| stopped(c, *at))
                        .collect(),
                    at: *at,
                }])
            }
            Command::Close { at } => match state.status {
                Status::Resolved => Ok(vec![Event::CaseClosed {
                    case_id: state.case_id.clone(),
                    at: *at,
                }]),
                Status::Closed => Ok(vec![]),
                Status::New | Status::Assigned | Status::WaitingOnCustomer => {
                    Err(refuse(state, "close it before it is resolved"))
                }
            },
            Command::Reopen {
                reason,
                window,
                targets,
                calendar,
                at,
            } => {
                message_text("reason", reason)?;
                let resolved_at = match (state.status, state.resolved_at) {
                    (Status::Resolved | Status::Closed, Some(resolved_at)) => resolved_at,
                    _ => return Err(refuse(state, "reopen it")),
                };
                if *at > resolved_at + *window {
                    return Err(DomainError::Precondition(format!(
                        "cannot reopen it: it was resolved more than {} days ago",
                        window.num_days()
                    )));
                }
                // A reopened case is promised a resolution afresh.
                let clock = Clock::start(ClockKind::Resolution, targets, calendar, *at)
                    .map_err(|e| DomainError::Precondition(e.to_string()))?;
                Ok(vec![Event::CaseReopened {
                    case_id: state.case_id.clone(),
                    customer_id: state.customer_id.clone(),
                    reason: reason.clone(),
                    clocks: vec![clock],
                    at: *at,
                }])
            }
            Command::Escalate {
                reason,
                note,
                to,
                at,
            } => {
                super::text("note", note, 1_000, false)?;
                if !state.status.is_open() {
                    return Err(refuse(state, "escalate it"));
                }
                if to.tier <= state.tier {
                    return Err(DomainError::Precondition(format!(
                        "cannot escalate it: it is already with the {} tier",
                        state.tier.as_str()
                    )));
                }
                Ok(vec![escalated(state, *reason, note, to, *at)?])
            }
            Command::RecordAlarms { now, escalate_to } => {
                Self::alarms(state, *now, escalate_to.as_ref())
            }
        }
    }

    fn evolve(state: Self::State, event: &Event) -> Self::State {
        if let Event::CaseOpened {
            case_id,
            customer_id,
            country,
            language,
            channel,
            category,
            priority,
            device_imei,
            repair_order_id,
            team_id,
            tier,
            policy_version,
            clocks,
            at,
            ..
        } = event
        {
            return Some(CaseState {
                case_id: case_id.clone(),
                customer_id: customer_id.clone(),
                country: country.clone(),
                language: language.clone(),
                channel: *channel,
                category: *category,
                priority: *priority,
                device_imei: device_imei.clone(),
                repair_order_id: repair_order_id.clone(),
                status: Status::New,
                team_id: team_id.clone(),
                tier: *tier,
                agent_id: None,
                policy_version: *policy_version,
                clocks: clocks.clone(),
                entries: 1,
                opened_at: *at,
                first_response_at: None,
                resolved_at: None,
                closed_at: None,
                reopened: 0,
                escalations: 0,
                agent_replies: 0,
            });
        }
        let mut state = state?;
        match event {
            Event::CaseOpened { .. } => {}
            Event::CaseAssigned { agent_id, .. } => {
                state.agent_id = Some(agent_id.clone());
                if state.status == Status::New {
                    state.status = Status::Assigned;
                }
            }
            Event::EntryAdded {
                kind, clocks, at, ..
            } => {
                state.entries += 1;
                state.clocks = with_clocks(state.clocks, clocks);
                match kind {
                    EntryKind::AgentReply => {
                        state.first_response_at.get_or_insert(*at);
                        state.agent_replies += 1;
                    }
                    EntryKind::CustomerMessage if state.status == Status::WaitingOnCustomer => {
                        state.status = Status::Assigned;
                    }
                    EntryKind::CustomerMessage | EntryKind::InternalNote => {}
                }
            }
            Event::WaitingOnCustomer { clocks, .. } => {
                state.status = Status::WaitingOnCustomer;
                state.clocks = with_clocks(state.clocks, clocks);
            }
            Event::CaseResolved { clocks, at, .. } => {
                state.status = Status::Resolved;
                state.resolved_at = Some(*at);
                state.clocks = with_clocks(state.clocks, clocks);
            }
            Event::CaseClosed { at, .. } => {
                state.status = Status::Closed;
                state.closed_at = Some(*at);
            }
            Event::CaseReopened { clocks, .. } => {
                state.status = if state.agent_id.is_some() {
                    Status::Assigned
                } else {
                    Status::New
                };
                state.reopened += 1;
                state.closed_at = None;
                state.clocks = with_clocks(state.clocks, clocks);
            }
            Event::CaseEscalated {
                team_id,
                tier,
                clocks,
                ..
            } => {
                state.team_id = team_id.clone();
                state.tier = *tier;
                state.agent_id = None;
                state.escalations += 1;
                state.clocks = with_clocks(state.clocks, clocks);
                state.status = Status::New;
            }
            Event::SlaWarningReached { clock, .. } => {
                if let Some(c) = state.clocks.iter_mut().find(|c| c.kind == *clock) {
                    c.warned = true;
                }
            }
            Event::SlaBreached { clock, .. } => {
                if let Some(c) = state.clocks.iter_mut().find(|c| c.kind == *clock) {
                    c.warned = true;
                    c.breached = true;
                }
            }
        }
        Some(state)
    }
}

#[cfg(test)]
mod tests;
