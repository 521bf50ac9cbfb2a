//! The public events of the support service: the steps of a case others act
//! on become the protobuf messages of `proto/aftersales/support/v1/events.proto`,
//! published by the relay on `aftersales.<region>.support.<EventType>`. Text
//! (messages, notes, summaries) stays here; an internal note, a customer's own
//! message and waiting on the customer are not published.

use aftersales_eventstore::RecordedEvent;
use aftersales_messaging::envelope::protobuf;
use aftersales_messaging::{Outbound, Translate};
use aftersales_proto::support as pb;
use aftersales_runtime::request::timestamp_to_proto;
use prost::{Message as _, Name as _};

use crate::domain::case::{Category, Channel, EntryKind, EscalationReason, Event, Priority, Tier};
use crate::domain::survey::{self, About};

/// The support service's [`Translate`] for the relay.
#[derive(Debug, Clone, Copy, Default)]
pub struct SupportEvents;

pub fn channel(value: Channel) -> pb::Channel {
    match value {
        Channel::Phone => pb::Channel::Phone,
        Channel::Chat => pb::Channel::Chat,
        Channel::Email => pb::Channel::Email,
        Channel::Web => pb::Channel::Web,
        Channel::Agent => pb::Channel::Agent,
        Channel::Platform => pb::Channel::Platform,
    }
}

pub fn category(value: Category) -> pb::Category {
    match value {
        Category::Hardware => pb::Category::Hardware,
        Category::SoftwareAndUpdates => pb::Category::SoftwareAndUpdates,
        Category::WarrantyQuestion => pb::Category::WarrantyQuestion,
        Category::Accessory => pb::Category::Accessory,
        Category::Shipping => pb::Category::Shipping,
        Category::Complaint => pb::Category::Complaint,
    }
}

pub fn priority(value: Priority) -> pb::Priority {
    match value {
        Priority::Low => pb::Priority::Low,
        Priority::Normal => pb::Priority::Normal,
        Priority::High => pb::Priority::High,
        Priority::Urgent => pb::Priority::Urgent,
    }
}

pub fn tier(value: Tier) -> pb::Tier {
    match value {
        Tier::FrontLine => pb::Tier::FrontLine,
        Tier::Expert => pb::Tier::Expert,
        Tier::Engineering => pb::Tier::Engineering,
    }
}

pub fn reason(value: EscalationReason) -> pb::EscalationReason {
    match value {
        EscalationReason::SlaBreach => pb::EscalationReason::SlaBreach,
        EscalationReason::CustomerRequest => pb::EscalationReason::CustomerRequest,
        EscalationReason::Agent => pb::EscalationReason::Agent,
    }
}

impl Translate for SupportEvents {
    fn translate(&self, event: &RecordedEvent) -> Result<Option<Outbound>, String> {
        if event.stream_id.as_str().starts_with("survey-") {
            return survey_event(event);
        }
        if !event.stream_id.as_str().starts_with("case-") {
            return Ok(None); // a repair watch, a walk, an article: support's own
        }
        let (name, payload) = match event.decode::<Event>().map_err(|e| e.to_string())? {
            Event::CaseOpened {
                case_id,
                customer_id,
                channel: via,
                category: about,
                priority: urgency,
                team_id,
                country,
                repair_order_id,
                ..
            } => (
                pb::CaseOpened::NAME,
                pb::CaseOpened {
                    case_id,
                    customer_id,
                    channel: channel(via).into(),
                    category: category(about).into(),
                    priority: priority(urgency).into(),
                    team_id,
                    country,
                    repair_order_id: repair_order_id.unwrap_or_default(),
                }
                .encode_to_vec(),
            ),
            Event::CaseAssigned {
                case_id,
                team_id,
                agent_id,
                ..
            } => (
                pb::CaseAssigned::NAME,
                pb::CaseAssigned {
                    case_id,
                    team_id,
                    agent_id,
                }
                .encode_to_vec(),
            ),
            Event::EntryAdded {
                case_id,
                customer_id,
                kind: EntryKind::AgentReply,
                author,
                ..
            } => (
                pb::CaseReplied::NAME,
                pb::CaseReplied {
                    case_id,
                    customer_id,
                    agent_id: author,
                }
                .encode_to_vec(),
            ),
            Event::CaseEscalated {
                case_id,
                customer_id,
                reason: why,
                from_team_id,
                team_id,
                tier: to,
                ..
            } => (
                pb::CaseEscalated::NAME,
                pb::CaseEscalated {
                    case_id,
                    customer_id,
                    from_team_id,
                    team_id,
                    tier: tier(to).into(),
                    reason: reason(why).into(),
                }
                .encode_to_vec(),
            ),
            Event::CaseResolved {
                case_id,
                customer_id,
                team_id,
                agent_id,
                ..
            } => (
                pb::CaseResolved::NAME,
                pb::CaseResolved {
                    case_id,
                    customer_id,
                    team_id,
                    agent_id: agent_id.unwrap_or_default(),
                }
                .encode_to_vec(),
            ),
            Event::CaseReopened {
                case_id,
                customer_id,
                ..
            } => (
                pb::CaseReopened::NAME,
                pb::CaseReopened {
                    case_id,
                    customer_id,
                }
                .encode_to_vec(),
            ),
            Event::CaseClosed { case_id, .. } => (
                pb::CaseClosed::NAME,
                pb::CaseClosed { case_id }.encode_to_vec(),
            ),
            Event::SlaWarningReached {
                case_id,
                team_id,
                clock,
                due,
                ..
            } => (
                pb::SlaWarningReached::NAME,
                pb::SlaWarningReached {
                    case_id,
                    clock: clock.as_str().to_owned(),
                    team_id,
                    due: Some(timestamp_to_proto(due)),
                }
                .encode_to_vec(),
            ),
            Event::SlaBreached {
                case_id,
                team_id,
                clock,
                due,
                ..
            } => (
                pb::SlaBreached::NAME,
                pb::SlaBreached {
                    case_id,
                    clock: clock.as_str().to_owned(),
                    team_id,
                    due: Some(timestamp_to_proto(due)),
                }
                .encode_to_vec(),
            ),
            Event::EntryAdded { .. } | Event::WaitingOnCustomer { .. } => return Ok(None),
        };
        Ok(Some(Outbound {
            payload,
            content_type: protobuf(&format!("aftersales.support.v1.{name}")),
        }))
    }
}

/// What a survey asks about, as its public events say it.
fn survey_subject(about: &About) -> (pb::SurveySubject, String, String) {
    match about {
        About::Case { case_id, .. } => (pb::SurveySubject::Case, case_id.clone(), String::new()),
        About::Repair { order_id, .. } => {
            (pb::SurveySubject::Repair, String::new(), order_id.clone())
        }
    }
}

fn survey_event(event: &RecordedEvent) -> Result<Option<Outbound>, String> {
    let decoded: survey::Event = event.decode().map_err(|e| e.to_string())?;
    let (name, payload) = match decoded {
        survey::Event::SurveySent {
            survey_id,
            customer_id,
            about,
            link,
            expires_at,
            ..
        } => {
            let (subject, case_id, repair_order_id) = survey_subject(&about);
            // Erased before it was published: nobody is left to ask.
            let answer_link = if link == aftersales_eventstore::personal::ERASED {
                String::new()
            } else {
                link
            };
            (
                pb::SurveySent::NAME,
                pb::SurveySent {
                    survey_id,
                    customer_id,
                    subject: subject.into(),
                    case_id,
                    repair_order_id,
                    answer_link,
                    expires_at: Some(timestamp_to_proto(expires_at)),
                }
                .encode_to_vec(),
            )
        }
        survey::Event::SurveyAnswered {
            survey_id,
            about,
            score,
            ..
        } => {
            let (subject, case_id, repair_order_id) = survey_subject(&about);
            (
                pb::SurveyAnswered::NAME,
                pb::SurveyAnswered {
                    survey_id,
                    subject: subject.into(),
                    case_id,
                    repair_order_id,
                    score,
                }
                .encode_to_vec(),
            )
        }
    };
    Ok(Some(Outbound {
        payload,
        content_type: protobuf(&format!("aftersales.support.v1.{name}")),
    }))
}
