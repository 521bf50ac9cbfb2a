//! Self-help: a customer walks a diagnosis tree to an article, an update or a
//! repair with its fault filled in; and a phone's software, from the build it
//! last reported, against the release catalog and its support window.

use std::sync::Arc;

use aftersales_core::Error;
use aftersales_eventstore::{AnyEventStore, CommandContext, CommandHandler, StreamId};

use crate::app::AppResult;
use crate::domain::DomainError;
use crate::domain::diagnosis::{
    Command, Leads, Outcome, Phone, Session, SessionState, Tree, Trees,
};
use crate::domain::updates::reports::{BuildReports, Report};
use crate::domain::updates::{Status, Updates};
use crate::domain::{article, text};

fn session_stream(id: &str) -> AppResult<StreamId> {
    let id = id.trim();
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(DomainError::invalid("session_id", "must be a session id (a UUID)").into());
    }
    StreamId::parse(format!("selfhelp-{id}"))
        .map_err(|e| DomainError::invalid("session_id", e.to_string()).into())
}

fn build_stream(imei: &str) -> AppResult<StreamId> {
    let imei = aftersales_core::types::Imei::parse("device_imei", imei.trim())?;
    StreamId::parse(format!("build-{}", imei.as_str()))
        .map_err(|e| DomainError::invalid("device_imei", e.to_string()).into())
}

/// A walk as it stands, with its tree.
#[derive(Debug, Clone)]
pub struct Walk {
    pub state: SessionState,
    pub tree: Arc<Tree>,
}

/// The self-help use cases.
#[derive(Debug, Clone)]
pub struct SelfHelp {
    sessions: CommandHandler<Session, AnyEventStore>,
    builds: CommandHandler<BuildReports, AnyEventStore>,
    trees: Arc<Trees>,
    updates: Arc<Updates>,
}

impl SelfHelp {
    /// The built-in trees and catalog, each article and issue they name checked
    /// against the knowledge base and the catalog.
    pub fn builtin(store: AnyEventStore) -> Result<Self, String> {
        let trees = Trees::builtin()?;
        let updates = Updates::builtin()?;
        let articles = crate::knowledge::builtin()?;
        for tree in trees.all() {
            for outcome in tree.outcomes() {
                match outcome {
                    Outcome::Article { article_id }
                        if !articles.iter().any(|a| &a.article_id == article_id) =>
                    {
                        return Err(format!(
                            "diagnosis: {} names no article {article_id}",
                            tree.id
                        ));
                    }
                    Outcome::Update { issue, .. } if !updates.is_issue(issue) => {
                        return Err(format!(
                            "diagnosis: {} names no known issue {issue}",
                            tree.id
                        ));
                    }
                    Outcome::Article { .. } | Outcome::Update { .. } | Outcome::Repair { .. } => {}
                }
            }
        }
        Ok(Self {
            sessions: CommandHandler::new(store.clone()),
            builds: CommandHandler::new(store),
            trees: Arc::new(trees),
            updates: Arc::new(updates),
        })
    }

    pub fn trees(&self) -> &Trees {
        &self.trees
    }

    pub fn updates(&self) -> &Updates {
        &self.updates
    }

    /// Records the build a phone runs; what the catalog says of it.
    pub async fn report_build(&self, phone: Phone, ctx: &CommandContext) -> AppResult<Status> {
        let stream = build_stream(&phone.imei)?;
        text("model", &phone.model, 100, true)?;
        text("build", &phone.build, 100, true)?;
        let country = aftersales_core::types::CountryCode::parse("country", &phone.country)?;
        if self.updates.model(&phone.model).is_none() {
            return Err(
                DomainError::invalid("model", format!("{:?} is not a model", phone.model)).into(),
            );
        }
        let phone = Phone {
            imei: phone.imei.trim().to_owned(),
            country: country.to_string(),
            ..phone
        };
        let report = Report {
            phone: phone.clone(),
            at: ctx.now,
        };
        self.builds.handle(&stream, &report, ctx).await?;
        self.status_of(&phone, ctx.now.date_naive())
    }

    /// The phone as it last reported itself.
    pub async fn phone(&self, imei: &str) -> AppResult<Phone> {
        let stream = build_stream(imei)?;
        self.builds
            .load(&stream)
            .await?
            .state
            .map(|r| r.phone)
            .ok_or_else(|| Error::not_found(format!("a build reported by {}", imei.trim())))
    }

    pub fn status_of(&self, phone: &Phone, today: chrono::NaiveDate) -> AppResult<Status> {
        self.updates
            .status(&phone.model, &phone.build, &phone.country, today)
            .ok_or_else(|| {
                Error::not_found(format!("model {} in the release catalog", phone.model))
            })
    }

    /// Starts a walk through tree `tree_id`, about the customer's phone when
    /// it has reported its build.
    pub async fn start(
        &self,
        tree_id: &str,
        language: &str,
        customer_id: Option<String>,
        imei: Option<&str>,
        ctx: &CommandContext,
    ) -> AppResult<Walk> {
        article::check_language(language)?;
        let tree = self
            .trees
            .get(tree_id.trim())
            .ok_or_else(|| {
                DomainError::invalid("tree_id", format!("{tree_id:?} is not a self-help tree"))
            })?
            .clone();
        let phone = match imei {
            Some(imei) => match self.phone(imei).await {
                Ok(phone) => Some(phone),
                Err(e) if e.kind() == aftersales_core::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let session_id = ctx.derived_id(b"self-help").to_string();
        let command = Command::Start {
            session_id: session_id.clone(),
            tree: tree.clone(),
            language: language.to_owned(),
            customer_id,
            phone,
            at: ctx.now,
        };
        let handled = self
            .sessions
            .handle(&session_stream(&session_id)?, &command, ctx)
            .await?;
        let state = handled
            .state
            .ok_or_else(|| Error::internal("a started session without state"))?;
        Ok(Walk { state, tree })
    }

    /// The walk, if there is one.
    pub async fn get(&self, session_id: &str) -> AppResult<Walk> {
        let loaded = self.sessions.load(&session_stream(session_id)?).await?;
        let state = loaded
            .state
            .ok_or_else(|| Error::not_found(format!("self-help session {}", session_id.trim())))?;
        let tree = self
            .trees
            .get(&state.tree_id)
            .ok_or_else(|| Error::precondition("its self-help tree is no longer offered"))?
            .clone();
        Ok(Walk { state, tree })
    }

    /// Takes the answer at `answer` to the question the walk is on. An update
    /// at the end is the first build that fixes the issue for the phone; when
    /// the phone already runs it, the update cannot help, and a repair of its
    /// software is what is left.
    pub async fn answer(
        &self,
        walk: &Walk,
        answer: usize,
        ctx: &CommandContext,
    ) -> AppResult<Walk> {
        let resolved = walk
            .state
            .at_node
            .as_deref()
            .and_then(|node| walk.tree.node(node))
            .and_then(|node| node.answers.get(answer))
            .and_then(|a| match &a.leads {
                Leads::End(Outcome::Update { issue, .. }) => {
                    Some(self.resolve(issue, walk.state.phone.as_ref()))
                }
                Leads::End(_) | Leads::Next(_) => None,
            });
        let command = Command::Answer {
            tree: walk.tree.clone(),
            answer,
            resolved,
            at: ctx.now,
        };
        let handled = self
            .sessions
            .handle(&session_stream(&walk.state.session_id)?, &command, ctx)
            .await?;
        let state = handled
            .state
            .ok_or_else(|| Error::internal("an answered session without state"))?;
        Ok(Walk {
            state,
            tree: walk.tree.clone(),
        })
    }

    fn resolve(&self, issue: &str, phone: Option<&Phone>) -> Outcome {
        let Some(phone) = phone else {
            return Outcome::Update {
                issue: issue.to_owned(),
                build: None,
            };
        };
        let fix = self.updates.fixed_in(&phone.model, &phone.country, issue);
        let own = self.updates.release(&phone.model, &phone.build);
        match (fix, own) {
            (Some(fix), Some(own)) if own.released_on >= fix.released_on => Outcome::Repair {
                fault: "software".into(),
            },
            (Some(fix), _) => Outcome::Update {
                issue: issue.to_owned(),
                build: Some(fix.build.clone()),
            },
            (None, _) => Outcome::Repair {
                fault: "software".into(),
            },
        }
    }
}
