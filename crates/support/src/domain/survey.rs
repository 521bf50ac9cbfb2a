//! A satisfaction survey: owed once when a case is first resolved and once when
//! a repaired phone is back with its customer, answered once through a signed
//! link, until it expires. One stream per survey (`survey-<id>`), its id derived
//! from what it asks about, so asking twice finds it already sent.

use aftersales_eventstore::{Decider, DomainEvent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::DomainError;

/// Scores run from 1 (very unhappy) to 5 (very happy).
pub const SCORES: std::ops::RangeInclusive<u32> = 1..=5;
pub const MAX_COMMENT_BYTES: usize = 2_000;
/// How long a survey takes answers.
pub const ANSWER_DAYS: i64 = 30;

/// What a survey asks about, and whose work that was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum About {
    Case {
        case_id: String,
        team_id: String,
        agent_id: Option<String>,
    },
    Repair {
        order_id: String,
        /// Empty for a mail-in repair done at the depot.
        service_center_id: String,
        technician: Option<String>,
    },
}

impl About {
    /// The survey's id: the same for the same case or repair.
    pub fn survey_id(&self) -> String {
        let name = match self {
            Self::Case { case_id, .. } => format!("survey:case:{case_id}"),
            Self::Repair { order_id, .. } => format!("survey:repair:{order_id}"),
        };
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Send {
        customer_id: String,
        language: String,
        about: About,
        /// The signed link that answers it, sealed for the customer in the log.
        link: String,
        at: DateTime<Utc>,
    },
    Answer {
        score: u32,
        comment: String,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    SurveySent {
        survey_id: String,
        customer_id: String,
        language: String,
        about: About,
        link: String,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    SurveyAnswered {
        survey_id: String,
        customer_id: String,
        about: About,
        score: u32,
        /// Empty when the customer wrote none.
        comment: String,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Self::SurveySent { .. } => "SurveySent",
            Self::SurveyAnswered { .. } => "SurveyAnswered",
        }
    }

    /// The link is the customer's to use, and the comment is theirs.
    fn personal(&self) -> Option<aftersales_eventstore::PersonalData<'_>> {
        match self {
            Self::SurveySent { customer_id, .. } => Some(aftersales_eventstore::PersonalData {
                subject: customer_id,
                fields: &["/link"],
            }),
            Self::SurveyAnswered { customer_id, .. } => Some(aftersales_eventstore::PersonalData {
                subject: customer_id,
                fields: &["/comment"],
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyState {
    pub survey_id: String,
    pub customer_id: String,
    pub language: String,
    pub about: About,
    pub sent_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The score and when it was given.
    pub answered: Option<(u32, DateTime<Utc>)>,
}

#[derive(Debug, Clone, Copy)]
pub struct Survey;

impl Decider for Survey {
    type Command = Command;
    type Event = Event;
    type State = Option<SurveyState>;
    type Error = DomainError;

    fn initial_state() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Command) -> Result<Vec<Event>, DomainError> {
        match (state, command) {
            // Owed once: asking again sends nothing.
            (Some(_), Command::Send { .. }) => Ok(vec![]),
            (
                None,
                Command::Send {
                    customer_id,
                    language,
                    about,
                    link,
                    at,
                },
            ) => Ok(vec![Event::SurveySent {
                survey_id: about.survey_id(),
                customer_id: customer_id.clone(),
                language: language.clone(),
                about: about.clone(),
                link: link.clone(),
                expires_at: *at + chrono::Duration::days(ANSWER_DAYS),
                at: *at,
            }]),
            (None, Command::Answer { .. }) => Err(DomainError::NotFound("the survey".into())),
            (Some(survey), Command::Answer { score, comment, at }) => {
                if !SCORES.contains(score) {
                    return Err(DomainError::invalid("score", "must be 1 to 5"));
                }
                if !comment.is_empty() {
                    super::case::long_text("comment", comment, MAX_COMMENT_BYTES)?;
                }
                if survey.answered.is_some() {
                    return Err(DomainError::Precondition(
                        "the survey is already answered".into(),
                    ));
                }
                if *at >= survey.expires_at {
                    return Err(DomainError::Precondition(format!(
                        "the survey closed on {}",
                        survey.expires_at.date_naive()
                    )));
                }
                Ok(vec![Event::SurveyAnswered {
                    survey_id: survey.survey_id.clone(),
                    customer_id: survey.customer_id.clone(),
                    about: survey.about.clone(),
                    score: *score,
                    comment: comment.trim().to_owned(),
                    at: *at,
                }])
            }
        }
    }

    fn evolve(state: Self::State, event: &Event) -> Self::State {
        match (state, event) {
            (
                _,
                Event::SurveySent {
                    survey_id,
                    customer_id,
                    language,
                    about,
                    expires_at,
                    at,
                    ..
                },
            ) => Some(SurveyState {
                survey_id: survey_id.clone(),
                customer_id: customer_id.clone(),
                language: language.clone(),
                about: about.clone(),
                sent_at: *at,
                expires_at: *expires_at,
                answered: None,
            }),
            (Some(mut survey), Event::SurveyAnswered { score, at, .. }) => {
                survey.answered = Some((*score, *at));
                Some(survey)
            }
            (None, Event::SurveyAnswered { .. }) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn sent() -> Option<SurveyState> {
        let send = Command::Send {
            customer_id: "cust-1".into(),
            language: "de".into(),
            about: About::Case {
                case_id: "c-1".into(),
                team_id: "de-front".into(),
                agent_id: Some("agent-1".into()),
            },
            link: "https://example.com/survey/x?t=y".into(),
            at: at("2026-12-01T10:00:00Z"),
        };
        let events = Survey::decide(&None, &send).unwrap();
        let state = events.iter().fold(None, Survey::evolve);
        assert!(
            Survey::decide(&state, &send).unwrap().is_empty(),
            "owed once"
        );
        state
    }

    fn answer(score: u32, comment: &str, when: &str) -> Command {
        Command::Answer {
            score,
            comment: comment.into(),
            at: at(when),
        }
    }

    #[test]
    fn a_survey_is_answered_once_before_it_expires() {
        let state = sent();
        let events =
            Survey::decide(&state, &answer(5, " Sehr gut ", "2026-12-02T00:00:00Z")).unwrap();
        assert!(matches!(
            &events[..],
            [Event::SurveyAnswered { score: 5, comment, .. }] if comment == "Sehr gut"
        ));
        let answered = events.iter().fold(state.clone(), Survey::evolve);
        assert!(matches!(
            Survey::decide(&answered, &answer(1, "", "2026-12-02T00:01:00Z")),
            Err(DomainError::Precondition(why)) if why.contains("already answered")
        ));
        assert!(matches!(
            Survey::decide(&state, &answer(4, "", "2026-12-31T10:00:00Z")),
            Err(DomainError::Precondition(why)) if why.contains("closed on 2026-12-31")
        ));
        for bad in [0, 6, u32::MAX] {
            assert!(matches!(
                Survey::decide(&state, &answer(bad, "", "2026-12-02T00:00:00Z")),
                Err(DomainError::Invalid { field: "score", .. })
            ));
        }
        let long = "x".repeat(MAX_COMMENT_BYTES + 1);
        assert!(matches!(
            Survey::decide(&state, &answer(3, &long, "2026-12-02T00:00:00Z")),
            Err(DomainError::Invalid {
                field: "comment",
                ..
            })
        ));
        assert!(matches!(
            Survey::decide(&None, &answer(3, "", "2026-12-02T00:00:00Z")),
            Err(DomainError::NotFound(_))
        ));
    }

    #[test]
    fn ids_derive_from_what_is_asked_about() {
        let case = |id: &str| About::Case {
            case_id: id.into(),
            team_id: "t".into(),
            agent_id: None,
        };
        let repair = About::Repair {
            order_id: "c-1".into(),
            service_center_id: String::new(),
            technician: None,
        };
        assert_eq!(case("c-1").survey_id(), case("c-1").survey_id());
        assert_ne!(case("c-1").survey_id(), case("c-2").survey_id());
        assert_ne!(case("c-1").survey_id(), repair.survey_id());
    }
}
