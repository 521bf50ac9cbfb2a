//! Self-diagnosis: guided question trees as data, each answer leading to the
//! next question or to an end (an article to read, an update to install, or a
//! repair to open with its fault filled in), and one customer's walk through a
//! tree as a session (`selfhelp-<id>`). A session that ends in an article or
//! an update solved the problem without anyone at the desk: it is deflected.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aftersales_eventstore::{Decider, DomainEvent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::DomainError;
use super::case::Category;
use super::teams::LANGUAGES;

/// The fault categories a repair can be opened with (warranty's names).
pub const FAULTS: [&str; 12] = [
    "display",
    "battery",
    "camera",
    "audio",
    "connectivity",
    "charging",
    "buttons",
    "sensors",
    "software",
    "mainboard",
    "accidental_damage",
    "liquid_damage",
];

/// Where an answer leads when it ends the walk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Read this knowledge-base article.
    Article { article_id: String },
    /// Install the build that fixes this known issue; `build` is the first one
    /// for the phone's model and country, when the phone is known.
    Update {
        issue: String,
        build: Option<String>,
    },
    /// Open a repair with this fault category.
    Repair { fault: String },
}

impl Outcome {
    /// Whether the customer was helped without the desk or a repair.
    pub fn deflects(&self) -> bool {
        !matches!(self, Self::Repair { .. })
    }

    fn parse(text: &str) -> Result<Self, String> {
        let (kind, value) = text
            .split_once(':')
            .ok_or_else(|| format!("{text:?} is not kind:value"))?;
        match kind {
            "article" => Ok(Self::Article {
                article_id: value.to_owned(),
            }),
            "update" => Ok(Self::Update {
                issue: value.to_owned(),
                build: None,
            }),
            "repair" if FAULTS.contains(&value) => Ok(Self::Repair {
                fault: value.to_owned(),
            }),
            _ => Err(format!("{text:?}: article:, update: or repair:<fault>")),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tree: Vec<TreeFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TreeFile {
    id: String,
    category: Category,
    title: BTreeMap<String, String>,
    start: String,
    node: Vec<NodeFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFile {
    id: String,
    question: BTreeMap<String, String>,
    answer: Vec<AnswerFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerFile {
    label: BTreeMap<String, String>,
    next: Option<String>,
    outcome: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leads {
    Next(String),
    End(Outcome),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub label: BTreeMap<String, String>,
    pub leads: Leads,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub question: BTreeMap<String, String>,
    pub answers: Vec<Answer>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub id: String,
    pub category: Category,
    pub title: BTreeMap<String, String>,
    pub start: String,
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Every outcome the tree can end in.
    pub fn outcomes(&self) -> impl Iterator<Item = &Outcome> {
        self.nodes
            .iter()
            .flat_map(|n| &n.answers)
            .filter_map(|a| match &a.leads {
                Leads::End(outcome) => Some(outcome),
                Leads::Next(_) => None,
            })
    }
}

fn every_language(at: &str, texts: &BTreeMap<String, String>) -> Result<(), String> {
    match LANGUAGES
        .iter()
        .find(|l| texts.get(**l).is_none_or(|t| t.trim().is_empty()))
    {
        Some(missing) => Err(format!("{at}: no {missing} text")),
        None => Ok(()),
    }
}

/// Every tree, in the order of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trees {
    trees: Vec<Arc<Tree>>,
}

const BUILTIN: &str = include_str!("../../diagnosis.toml");

impl Trees {
    pub fn builtin() -> Result<Self, String> {
        Self::parse(BUILTIN)
    }

    /// Reads the TOML shape of `diagnosis.toml`: every text in every language,
    /// every answer leading somewhere that exists, and no question reached
    /// again from itself.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| format!("diagnosis: {e}"))?;
        let mut trees = Vec::new();
        for (i, t) in file.tree.into_iter().enumerate() {
            let at = format!("tree[{i}]");
            every_language(&format!("{at}.title"), &t.title)?;
            let ids: BTreeSet<&str> = t.node.iter().map(|n| n.id.as_str()).collect();
            if ids.len() != t.node.len() {
                return Err(format!("{at}.node: an id twice"));
            }
            if !ids.contains(t.start.as_str()) {
                return Err(format!("{at}.start: {:?} is not a node", t.start));
            }
            let mut nodes = Vec::new();
            for (j, n) in t.node.iter().enumerate() {
                let at = format!("{at}.node[{j}]");
                every_language(&format!("{at}.question"), &n.question)?;
                if n.answer.len() < 2 {
                    return Err(format!("{at}.answer: at least two"));
                }
                let mut answers = Vec::new();
                for (k, a) in n.answer.iter().enumerate() {
                    let at = format!("{at}.answer[{k}]");
                    every_language(&format!("{at}.label"), &a.label)?;
                    let leads = match (&a.next, &a.outcome) {
                        (Some(next), None) if ids.contains(next.as_str()) => {
                            Leads::Next(next.clone())
                        }
                        (Some(next), None) => {
                            return Err(format!("{at}.next: {next:?} is not a node"));
                        }
                        (None, Some(outcome)) => Leads::End(
                            Outcome::parse(outcome).map_err(|e| format!("{at}.outcome: {e}"))?,
                        ),
                        _ => return Err(format!("{at}: either next or outcome")),
                    };
                    answers.push(Answer {
                        label: a.label.clone(),
                        leads,
                    });
                }
                nodes.push(Node {
                    id: n.id.clone(),
                    question: n.question.clone(),
                    answers,
                });
            }
            let tree = Tree {
                id: t.id,
                category: t.category,
                title: t.title,
                start: t.start,
                nodes,
            };
            if let Some(looping) = cycle(&tree) {
                return Err(format!("{at}.node: {looping:?} leads back to itself"));
            }
            if trees.iter().any(|other: &Arc<Tree>| other.id == tree.id) {
                return Err(format!("{at}.id: {} twice", tree.id));
            }
            trees.push(Arc::new(tree));
        }
        Ok(Self { trees })
    }

    pub fn all(&self) -> &[Arc<Tree>] {
        &self.trees
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Tree>> {
        self.trees.iter().find(|t| t.id == id)
    }
}

/// A node from which the walk can come back to it, if there is one.
fn cycle(tree: &Tree) -> Option<String> {
    fn visit<'a>(tree: &'a Tree, id: &'a str, path: &mut Vec<&'a str>) -> Option<String> {
        if path.contains(&id) {
            return Some(id.to_owned());
        }
        path.push(id);
        for answer in tree
            .node(id)
            .map(|n| n.answers.as_slice())
            .unwrap_or_default()
        {
            if let Leads::Next(next) = &answer.leads
                && let Some(found) = visit(tree, next, path)
            {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    visit(tree, &tree.start, &mut Vec::new())
}

/// The phone a walk is about, as it last reported itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phone {
    pub imei: String,
    pub model: String,
    pub build: String,
    pub country: String,
}

#[derive(Debug, Clone)]
pub enum Command {
    Start {
        session_id: String,
        tree: Arc<Tree>,
        language: String,
        customer_id: Option<String>,
        phone: Option<Phone>,
        at: DateTime<Utc>,
    },
    /// The answer at `answer` to the question the session is on; an update
    /// outcome is resolved for the phone by `resolve` beforehand.
    Answer {
        tree: Arc<Tree>,
        answer: usize,
        resolved: Option<Outcome>,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    SelfHelpStarted {
        session_id: String,
        tree_id: String,
        /// The first question.
        start: String,
        language: String,
        customer_id: Option<String>,
        phone: Option<Phone>,
        at: DateTime<Utc>,
    },
    QuestionAnswered {
        node_id: String,
        answer: usize,
        /// The question it leads to; `None` when it ends the walk.
        next: Option<String>,
        at: DateTime<Utc>,
    },
    SelfHelpEnded {
        outcome: Outcome,
        deflected: bool,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Self::SelfHelpStarted { .. } => "SelfHelpStarted",
            Self::QuestionAnswered { .. } => "QuestionAnswered",
            Self::SelfHelpEnded { .. } => "SelfHelpEnded",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    pub session_id: String,
    pub tree_id: String,
    pub language: String,
    pub customer_id: Option<String>,
    pub phone: Option<Phone>,
    /// The question it is on; `None` once ended.
    pub at_node: Option<String>,
    pub outcome: Option<Outcome>,
    pub answers: u32,
}

/// Answers one walk may give: far more than any tree is deep.
const MAX_ANSWERS: u32 = 100;

#[derive(Debug, Clone, Copy)]
pub struct Session;

impl Decider for Session {
    type Command = Command;
    type Event = Event;
    type State = Option<SessionState>;
    type Error = DomainError;

    fn initial_state() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Command) -> Result<Vec<Event>, DomainError> {
        match (state, command) {
            (
                None,
                Command::Start {
                    session_id,
                    tree,
                    language,
                    customer_id,
                    phone,
                    at,
                },
            ) => {
                super::article::check_language(language)?;
                Ok(vec![Event::SelfHelpStarted {
                    session_id: session_id.clone(),
                    tree_id: tree.id.clone(),
                    start: tree.start.clone(),
                    language: language.clone(),
                    customer_id: customer_id.clone(),
                    phone: phone.clone(),
                    at: *at,
                }])
            }
            (Some(_), Command::Start { .. }) => Err(DomainError::AlreadyExists(
                "the self-help session has started".into(),
            )),
            (None, Command::Answer { .. }) => {
                Err(DomainError::NotFound("the self-help session".into()))
            }
            (
                Some(session),
                Command::Answer {
                    tree,
                    answer,
                    resolved,
                    at,
                },
            ) => {
                let Some(node_id) = &session.at_node else {
                    return Err(DomainError::Precondition(
                        "the self-help session has ended".into(),
                    ));
                };
                if session.answers >= MAX_ANSWERS {
                    return Err(DomainError::Exhausted("too many answers".into()));
                }
                let node = tree
                    .node(node_id)
                    .ok_or_else(|| DomainError::Precondition("the tree has changed".into()))?;
                let chosen = node.answers.get(*answer).ok_or_else(|| {
                    DomainError::invalid(
                        "answer",
                        format!("must be 0 to {}", node.answers.len() - 1),
                    )
                })?;
                let mut events = vec![Event::QuestionAnswered {
                    node_id: node_id.clone(),
                    answer: *answer,
                    next: match &chosen.leads {
                        Leads::Next(next) => Some(next.clone()),
                        Leads::End(_) => None,
                    },
                    at: *at,
                }];
                if let Leads::End(outcome) = &chosen.leads {
                    let outcome = resolved.clone().unwrap_or_else(|| outcome.clone());
                    events.push(Event::SelfHelpEnded {
                        deflected: outcome.deflects(),
                        outcome,
                        at: *at,
                    });
                }
                Ok(events)
            }
        }
    }

    fn evolve(state: Self::State, event: &Event) -> Self::State {
        match event {
            Event::SelfHelpStarted {
                session_id,
                tree_id,
                start,
                language,
                customer_id,
                phone,
                ..
            } => Some(SessionState {
                session_id: session_id.clone(),
                tree_id: tree_id.clone(),
                language: language.clone(),
                customer_id: customer_id.clone(),
                phone: phone.clone(),
                at_node: Some(start.clone()),
                outcome: None,
                answers: 0,
            }),
            Event::QuestionAnswered { next, .. } => {
                let mut s = state?;
                s.at_node.clone_from(next);
                s.answers += 1;
                Some(s)
            }
            Event::SelfHelpEnded { outcome, .. } => {
                let mut s = state?;
                s.at_node = None;
                s.outcome = Some(outcome.clone());
                Some(s)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_trees_are_complete_and_end_somewhere() {
        let trees = Trees::builtin().unwrap();
        assert!(trees.all().len() >= 2);
        for tree in trees.all() {
            assert!(
                tree.outcomes().any(|o| !o.deflects()),
                "{} can open a repair",
                tree.id
            );
        }
    }

    fn run(state: Option<SessionState>, command: &Command) -> (Option<SessionState>, Vec<Event>) {
        let events = Session::decide(&state, command).unwrap();
        (events.iter().fold(state, Session::evolve), events)
    }

    #[test]
    fn a_walk_ends_once_in_its_outcome() {
        let trees = Trees::builtin().unwrap();
        let tree = trees.get("not-charging").unwrap().clone();
        let at: DateTime<Utc> = "2026-12-01T09:00:00Z".parse().unwrap();
        let start = Command::Start {
            session_id: "s-1".into(),
            tree: tree.clone(),
            language: "en".into(),
            customer_id: None,
            phone: None,
            at,
        };
        let (mut state, _) = run(None, &start);
        let answer = |n| Command::Answer {
            tree: tree.clone(),
            answer: n,
            resolved: None,
            at,
        };
        // "No" at every question ends in a repair with the fault filled in.
        let mut ended = None;
        for _ in 0..10 {
            let last = tree
                .node(state.as_ref().unwrap().at_node.as_ref().unwrap())
                .unwrap()
                .answers
                .len()
                - 1;
            let (next, events) = run(state, &answer(last));
            state = next;
            if let Some(Event::SelfHelpEnded {
                outcome, deflected, ..
            }) = events.last()
            {
                ended = Some((outcome.clone(), *deflected));
                break;
            }
        }
        assert_eq!(
            ended,
            Some((
                Outcome::Repair {
                    fault: "charging".into()
                },
                false
            ))
        );
        assert!(matches!(
            Session::decide(&state, &answer(0)),
            Err(DomainError::Precondition(_))
        ));
        assert!(matches!(
            Session::decide(&None, &answer(0)),
            Err(DomainError::NotFound(_))
        ));
    }

    #[test]
    fn bad_trees_name_the_field() {
        let looped = BUILTIN.replacen("next = \"port\"", "next = \"cable\"", 1);
        let error = Trees::parse(&looped).unwrap_err();
        assert!(error.contains("leads back"), "{error}");
        let dangling = BUILTIN.replacen("next = \"port\"", "next = \"nowhere\"", 1);
        assert!(Trees::parse(&dangling).unwrap_err().contains(".next"));
        let fault = BUILTIN.replacen("repair:charging", "repair:magic", 1);
        assert!(Trees::parse(&fault).unwrap_err().contains(".outcome"));
    }
}
