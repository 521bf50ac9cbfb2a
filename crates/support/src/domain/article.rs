//! A knowledge-base article in one language: each publication is a new
//! version, the old ones kept in its stream (`article-<id>/<language>`) for
//! whoever needs to know what an agent read on a given day.

use aftersales_eventstore::{Decider, DomainEvent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::case::Category;
use super::teams::LANGUAGES;
use super::{DomainError, text};

pub const MAX_TITLE_BYTES: usize = 200;
pub const MAX_BODY_BYTES: usize = 50_000;

/// A lower-case slug: `not-charging`.
pub fn check_id(id: &str) -> Result<(), DomainError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "article_id",
            "must be 1 to 64 lower-case letters, digits and dashes",
        ))
    }
}

pub fn check_language(language: &str) -> Result<(), DomainError> {
    if LANGUAGES.contains(&language) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "language",
            format!("must be one of {}", LANGUAGES.join(", ")),
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub article_id: String,
    pub language: String,
    pub title: String,
    pub body: String,
    pub categories: Vec<Category>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A new version, unless it says exactly what the current one does.
    Publish {
        draft: Draft,
        author: String,
        at: DateTime<Utc>,
    },
    /// The built-in text, only where the article has none yet.
    Seed { draft: Draft, at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    ArticlePublished {
        article_id: String,
        language: String,
        version: u32,
        title: String,
        body: String,
        categories: Vec<Category>,
        author: String,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Self::ArticlePublished { .. } => "ArticlePublished",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArticleState {
    pub article_id: String,
    pub language: String,
    pub version: u32,
    pub title: String,
    pub body: String,
    pub categories: Vec<Category>,
    pub published_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy)]
pub struct Article;

fn check(draft: &Draft) -> Result<(), DomainError> {
    check_id(&draft.article_id)?;
    check_language(&draft.language)?;
    text("title", &draft.title, MAX_TITLE_BYTES, true)?;
    super::case::long_text("body", &draft.body, MAX_BODY_BYTES)?;
    if draft.categories.is_empty() {
        return Err(DomainError::invalid("categories", "at least one"));
    }
    Ok(())
}

fn published(draft: &Draft, version: u32, author: &str, at: DateTime<Utc>) -> Event {
    let mut categories = draft.categories.clone();
    categories.sort();
    categories.dedup();
    Event::ArticlePublished {
        article_id: draft.article_id.clone(),
        language: draft.language.clone(),
        version,
        title: draft.title.trim().to_owned(),
        body: draft.body.trim().to_owned(),
        categories,
        author: author.to_owned(),
        at,
    }
}

impl Decider for Article {
    type Command = Command;
    type Event = Event;
    type State = Option<ArticleState>;
    type Error = DomainError;

    fn initial_state() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Command) -> Result<Vec<Event>, DomainError> {
        match (state, command) {
            (Some(_), Command::Seed { .. }) => Ok(vec![]),
            (None, Command::Seed { draft, at }) => {
                check(draft)?;
                Ok(vec![published(draft, 1, "system:knowledge-seed", *at)])
            }
            (current, Command::Publish { draft, author, at }) => {
                check(draft)?;
                let next = published(
                    draft,
                    current.as_ref().map_or(1, |c| c.version + 1),
                    author,
                    *at,
                );
                if let (
                    Some(c),
                    Event::ArticlePublished {
                        title,
                        body,
                        categories,
                        ..
                    },
                ) = (current, &next)
                    && (&c.title, &c.body, &c.categories) == (title, body, categories)
                {
                    return Ok(vec![]);
                }
                Ok(vec![next])
            }
        }
    }

    fn evolve(_state: Self::State, event: &Event) -> Self::State {
        let Event::ArticlePublished {
            article_id,
            language,
            version,
            title,
            body,
            categories,
            at,
            ..
        } = event;
        Some(ArticleState {
            article_id: article_id.clone(),
            language: language.clone(),
            version: *version,
            title: title.clone(),
            body: body.clone(),
            categories: categories.clone(),
            published_at: *at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(body: &str) -> Draft {
        Draft {
            article_id: "not-charging".into(),
            language: "en".into(),
            title: "Your phone does not charge".into(),
            body: body.into(),
            categories: vec![Category::Hardware],
        }
    }

    fn at() -> DateTime<Utc> {
        "2026-12-01T09:00:00Z".parse().unwrap()
    }

    fn run(state: Option<ArticleState>, command: &Command) -> (Option<ArticleState>, Vec<Event>) {
        let events = Article::decide(&state, command).unwrap();
        (events.iter().fold(state, Article::evolve), events)
    }

    #[test]
    fn each_change_is_a_version_and_the_same_text_again_is_none() {
        let publish = |body: &str| Command::Publish {
            draft: draft(body),
            author: "agent-de-anna".into(),
            at: at(),
        };
        let (state, _) = run(None, &publish("Try another cable."));
        let (state, same) = run(state, &publish("Try another cable.  "));
        assert!(same.is_empty());
        let (state, _) = run(state, &publish("Try another cable, then clean the port."));
        assert_eq!(state.as_ref().unwrap().version, 2);
        // Seeding never overwrites what staff wrote.
        let seed = Command::Seed {
            draft: draft("Built-in text"),
            at: at(),
        };
        let (state, seeded) = run(state, &seed);
        assert!(seeded.is_empty());
        assert_eq!(
            state.unwrap().body,
            "Try another cable, then clean the port."
        );
    }

    #[test]
    fn bad_articles_name_the_field() {
        let invalid = |d: Draft| match Article::decide(&None, &Command::Seed { draft: d, at: at() })
        {
            Err(DomainError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let mut d = draft("x");
        d.article_id = "Not Charging".into();
        assert_eq!(invalid(d), "article_id");
        let mut d = draft("x");
        d.language = "fr".into();
        assert_eq!(invalid(d), "language");
        assert_eq!(invalid(draft(" ")), "body");
        assert_eq!(invalid(draft(&"x".repeat(MAX_BODY_BYTES + 1))), "body");
        let mut d = draft("x");
        d.categories.clear();
        assert_eq!(invalid(d), "categories");
        // Long, but within an article's bound.
        assert!(
            Article::decide(
                &None,
                &Command::Seed {
                    draft: draft(&"word ".repeat(5_000)),
                    at: at()
                }
            )
            .is_ok()
        );
    }
}
