//! Read models of the support log: every case as its log leaves it (queues,
//! workload, the SLA sweep's next alarms), the teams that held each case, each
//! resolved case's quality figures, each knowledge-base article's current
//! version, self-help walks, and satisfaction surveys.
//! Rebuilt from the log with `aftersales_eventstore::projection::rebuild`.

use aftersales_eventstore::{
    AnyEventStore, Decider as _, Projection, RecordedEvent, StoreError, StoreTransaction,
    on_connection, on_read_pool,
};
use chrono::{DateTime, Utc};

use crate::domain::case::{Case, CaseState, Event, Status};
use crate::domain::survey::{self, About};

/// The read models' tables, one set for both backends.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Every rebuildable read model of the support log.
pub fn all(_store: &AnyEventStore) -> aftersales_eventstore::Projections {
    vec![
        std::sync::Arc::new(Cases),
        std::sync::Arc::new(Articles),
        std::sync::Arc::new(Walks),
        std::sync::Arc::new(Surveys),
        std::sync::Arc::new(Deadlines),
    ]
}

/// How the read models write times: sortable as text.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The ISO week of `at` (UTC), as `2026-W49`: sortable as text.
pub fn iso_week(at: DateTime<Utc>) -> String {
    let week = chrono::Datelike::iso_week(&at.date_naive());
    format!("{}-W{:02}", week.year(), week.week())
}

pub fn status_name(status: Status) -> &'static str {
    match status {
        Status::New => "new",
        Status::Assigned => "assigned",
        Status::WaitingOnCustomer => "waiting",
        Status::Resolved => "resolved",
        Status::Closed => "closed",
    }
}

/// The statuses of open cases, as stored, for `IN (…)`.
const OPEN: &str = "('new', 'assigned', 'waiting')";

fn corrupt(why: impl std::fmt::Display) -> StoreError {
    StoreError::CorruptRow(format!("support_cases: {why}"))
}

/// The case's folded state, kept by each event; an event at or below the row's
/// version (applied again after a crash) changes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cases;

impl Projection for Cases {
    fn name(&self) -> &'static str {
        "support-cases"
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        if !event.stream_id.as_str().starts_with("case-") {
            return Ok(());
        }
        let case_id = event.stream_id.as_str()["case-".len()..].to_owned();
        let decoded: Event = event.decode()?;
        on_connection!(tx.connection(), c => {
            let row: Option<(i64, String)> =
                sqlx::query_as("SELECT version, state FROM support_cases WHERE case_id = $1")
                    .bind(case_id.clone())
                    .fetch_optional(&mut *c)
                    .await?;
            let version = i64::try_from(event.stream_version).map_err(corrupt)?;
            let before = match row {
                Some((at, _)) if at >= version => return Ok(()),
                Some((_, state)) => Some(serde_json::from_str::<CaseState>(&state).map_err(corrupt)?),
                None => None,
            };
            // The agent holding it open, before and after: their counts follow.
            let held = |s: &CaseState| s.agent_id.clone().filter(|_| s.status.is_open());
            let was = before.as_ref().and_then(held);
            let Some(state) = Case::evolve(before, &decoded) else {
                return Ok(());
            };
            let now = held(&state);
            if was != now {
                if let Some(agent) = was {
                    sqlx::query(
                        "UPDATE support_agent_load SET open_cases = open_cases - 1 \
                         WHERE agent_id = $1",
                    )
                    .bind(agent)
                    .execute(&mut *c)
                    .await?;
                }
                if let Some(agent) = now {
                    sqlx::query(
                        "INSERT INTO support_agent_load (agent_id, open_cases) VALUES ($1, 1) \
                         ON CONFLICT (agent_id) DO UPDATE \
                         SET open_cases = support_agent_load.open_cases + 1",
                    )
                    .bind(agent)
                    .execute(&mut *c)
                    .await?;
                }
            }
            let json = serde_json::to_string(&state).map_err(corrupt)?;
            let breached = state.clocks.iter().filter(|c| c.breached).count();
            sqlx::query(
                "INSERT INTO support_cases (case_id, customer_id, team_id, agent_id, status, \
                 opened_at, next_alarm, breached, version, state) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (case_id) DO UPDATE SET team_id = excluded.team_id, \
                 agent_id = excluded.agent_id, status = excluded.status, \
                 next_alarm = excluded.next_alarm, breached = excluded.breached, \
                 version = excluded.version, state = excluded.state",
            )
            .bind(case_id.clone())
            .bind(state.customer_id.clone())
            .bind(state.team_id.clone())
            .bind(state.agent_id.clone())
            .bind(status_name(state.status))
            .bind(timestamp(state.opened_at))
            .bind(state.next_alarm().map(timestamp))
            .bind(i64::try_from(breached).unwrap_or(i64::MAX))
            .bind(version)
            .bind(json)
            .execute(&mut *c)
            .await?;
            sqlx::query(
                "INSERT INTO support_case_teams (case_id, team_id) VALUES ($1, $2) \
                 ON CONFLICT (case_id, team_id) DO NOTHING",
            )
            .bind(case_id.clone())
            .bind(state.team_id.clone())
            .execute(&mut *c)
            .await?;
            if let Some(resolved_at) = state.resolved_at {
                let seconds = |to: DateTime<Utc>| (to - state.opened_at).num_seconds();
                let flag = |yes: bool| i64::from(yes);
                sqlx::query(
                    "INSERT INTO support_quality (case_id, team_id, agent_id, week, \
                     first_response_seconds, resolution_seconds, breached, first_contact, \
                     reopened, escalated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (case_id) DO UPDATE SET team_id = excluded.team_id, \
                     agent_id = excluded.agent_id, week = excluded.week, \
                     first_response_seconds = excluded.first_response_seconds, \
                     resolution_seconds = excluded.resolution_seconds, \
                     breached = excluded.breached, first_contact = excluded.first_contact, \
                     reopened = excluded.reopened, escalated = excluded.escalated",
                )
                .bind(case_id)
                .bind(state.team_id.clone())
                .bind(state.agent_id.clone())
                .bind(iso_week(resolved_at))
                .bind(state.first_response_at.map(seconds))
                .bind(seconds(resolved_at))
                .bind(flag(breached > 0))
                .bind(flag(
                    state.agent_replies <= 1 && state.reopened == 0 && state.escalations == 0,
                ))
                .bind(flag(state.reopened > 0))
                .bind(flag(state.escalations > 0))
                .execute(c)
                .await?;
            }
        });
        Ok(())
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        tx.empty_tables(&[
            "support_cases",
            "support_case_teams",
            "support_agent_load",
            "support_quality",
        ])
        .await
    }
}

/// A case row: its state and stream version.
#[derive(Debug, Clone)]
pub struct CaseRow {
    pub state: CaseState,
    pub version: u64,
}

fn rows(found: Vec<(String, i64)>) -> Result<Vec<CaseRow>, StoreError> {
    found
        .into_iter()
        .map(|(state, version)| {
            Ok(CaseRow {
                state: serde_json::from_str(&state).map_err(corrupt)?,
                version: u64::try_from(version).map_err(corrupt)?,
            })
        })
        .collect()
}

/// What a queue asks for; every filter optional.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub team_id: Option<String>,
    pub agent_id: Option<String>,
    pub status: Option<Status>,
    pub customer_id: Option<String>,
    pub open_only: bool,
    /// Only cases one of these teams has held; `None`: any.
    pub visible_to_team: Option<String>,
    /// After this `(opened_at, case_id)`.
    pub after: Option<(String, String)>,
    pub limit: i64,
}

/// Cases matching `filter`, oldest first.
pub async fn list(store: &AnyEventStore, filter: &CaseFilter) -> Result<Vec<CaseRow>, StoreError> {
    let mut sql = String::from("SELECT c.state, c.version FROM support_cases c WHERE 1 = 1");
    let mut binds: Vec<String> = Vec::new();
    let mut bind = |sql: &mut String, clause: &str, value: &str| {
        binds.push(value.to_owned());
        sql.push_str(&clause.replace('?', &format!("${}", binds.len())));
    };
    if let Some(team) = &filter.team_id {
        bind(&mut sql, " AND c.team_id = ?", team);
    }
    if let Some(agent) = &filter.agent_id {
        bind(&mut sql, " AND c.agent_id = ?", agent);
    }
    if let Some(status) = filter.status {
        bind(&mut sql, " AND c.status = ?", status_name(status));
    }
    if let Some(customer) = &filter.customer_id {
        bind(&mut sql, " AND c.customer_id = ?", customer);
    }
    if let Some(team) = &filter.visible_to_team {
        bind(
            &mut sql,
            " AND EXISTS (SELECT 1 FROM support_case_teams t WHERE t.case_id = c.case_id AND t.team_id = ?)",
            team,
        );
    }
    if let Some((opened_at, case_id)) = &filter.after {
        bind(&mut sql, " AND (c.opened_at > ?", opened_at);
        bind(&mut sql, " OR (c.opened_at = ?", opened_at);
        bind(&mut sql, " AND c.case_id > ?))", case_id);
    }
    if filter.open_only {
        sql.push_str(&format!(" AND c.status IN {OPEN}"));
    }
    sql.push_str(&format!(
        " ORDER BY c.opened_at, c.case_id LIMIT {}",
        filter.limit
    ));
    on_read_pool!(store, pool => {
        // Built from fixed clauses only; every value is bound.
        let mut query = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql.clone()));
        for value in binds {
            query = query.bind(value);
        }
        rows(query.fetch_all(pool).await?)
    })
}

/// Whether `team_id` has held the case.
pub async fn held_by(
    store: &AnyEventStore,
    case_id: &str,
    team_id: &str,
) -> Result<bool, StoreError> {
    on_read_pool!(store, pool => {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM support_case_teams WHERE case_id = $1 AND team_id = $2",
        )
        .bind(case_id.to_owned())
        .bind(team_id.to_owned())
        .fetch_one(pool)
        .await?
            > 0)
    })
}

/// Cases with a clock alarm due at `now`, earliest first.
pub async fn due(
    store: &AnyEventStore,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<CaseRow>, StoreError> {
    on_read_pool!(store, pool => {
        rows(
            sqlx::query_as(
                "SELECT state, version FROM support_cases WHERE next_alarm IS NOT NULL \
                 AND next_alarm <= $1 ORDER BY next_alarm LIMIT $2",
            )
            .bind(timestamp(now))
            .bind(limit)
            .fetch_all(pool)
            .await?,
        )
    })
}

/// The earliest alarm of any case, if one runs.
pub async fn next_alarm(store: &AnyEventStore) -> Result<Option<DateTime<Utc>>, StoreError> {
    let at: Option<String> = on_read_pool!(store, pool => {
        sqlx::query_scalar("SELECT MIN(next_alarm) FROM support_cases WHERE next_alarm IS NOT NULL")
            .fetch_one(pool)
            .await?
    });
    at.map(|at| {
        DateTime::parse_from_rfc3339(&at)
            .map(|t| t.to_utc())
            .map_err(corrupt)
    })
    .transpose()
}

/// `$first, $first+1, …` for `n` values: the placeholders of an `IN (…)`.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Open cases of each of `agents`: `(agent id, count)`.
pub async fn open_by_agent(
    store: &AnyEventStore,
    agents: &[&str],
) -> Result<Vec<(String, i64)>, StoreError> {
    if agents.is_empty() {
        return Ok(Vec::new());
    }
    // Placeholders only: every value is bound.
    let sql = format!(
        "SELECT agent_id, open_cases FROM support_agent_load WHERE agent_id IN ({}) \
         AND open_cases > 0",
        placeholders(1, agents.len())
    );
    on_read_pool!(store, pool => {
        let mut query = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql.clone()));
        for agent in agents {
            query = query.bind((*agent).to_owned());
        }
        Ok(query.fetch_all(pool).await?)
    })
}

/// Per team: open cases, unassigned ones, breached ones, and the oldest unassigned.
pub async fn queues(
    store: &AnyEventStore,
) -> Result<Vec<(String, i64, i64, i64, Option<String>)>, StoreError> {
    on_read_pool!(store, pool => {
        Ok(sqlx::query_as(
            "SELECT team_id, COUNT(*), \
             SUM(CASE WHEN agent_id IS NULL THEN 1 ELSE 0 END), \
             SUM(CASE WHEN breached > 0 THEN 1 ELSE 0 END), \
             MIN(CASE WHEN agent_id IS NULL THEN opened_at END) \
             FROM support_cases WHERE status IN ('new', 'assigned', 'waiting') GROUP BY team_id",
        )
        .fetch_all(pool)
        .await?)
    })
}

/// New cases nobody holds in `teams`' queues, oldest first.
pub async fn unassigned(
    store: &AnyEventStore,
    teams: &[&str],
    limit: i64,
) -> Result<Vec<CaseRow>, StoreError> {
    if teams.is_empty() {
        return Ok(Vec::new());
    }
    // Placeholders only: every value is bound.
    let sql = format!(
        "SELECT state, version FROM support_cases WHERE status = 'new' AND agent_id IS NULL \
         AND team_id IN ({}) ORDER BY opened_at LIMIT ${}",
        placeholders(1, teams.len()),
        teams.len() + 1
    );
    on_read_pool!(store, pool => {
        let mut query = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql.clone()));
        for team in teams {
            query = query.bind((*team).to_owned());
        }
        rows(query.bind(limit).fetch_all(pool).await?)
    })
}

/// Each article's current version per language.
#[derive(Debug, Clone, Copy, Default)]
pub struct Articles;

impl Projection for Articles {
    fn name(&self) -> &'static str {
        "support-articles"
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        if event.event_type != "ArticlePublished" {
            return Ok(());
        }
        let crate::domain::article::Event::ArticlePublished {
            article_id,
            language,
            version,
            title,
            body,
            categories,
            at,
            ..
        } = event.decode()?;
        let categories = serde_json::to_string(&categories).map_err(corrupt)?;
        on_connection!(tx.connection(), c => {
            sqlx::query(
                "INSERT INTO support_articles (article_id, language, version, title, body, \
                 categories, published_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (article_id, language) DO UPDATE SET version = excluded.version, \
                 title = excluded.title, body = excluded.body, categories = excluded.categories, \
                 published_at = excluded.published_at \
                 WHERE support_articles.version < excluded.version",
            )
            .bind(article_id)
            .bind(language)
            .bind(i64::from(version))
            .bind(title)
            .bind(body)
            .bind(categories)
            .bind(timestamp(at))
            .execute(c)
            .await?;
        });
        Ok(())
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        tx.empty_tables(&["support_articles"]).await
    }
}

/// An article as the read model holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArticleRow {
    pub article_id: String,
    pub language: String,
    pub version: u32,
    pub title: String,
    pub body: String,
}

type ArticleTuple = (String, String, i64, String, String);

fn article_rows(found: Vec<ArticleTuple>) -> Vec<ArticleRow> {
    found
        .into_iter()
        .map(|(article_id, language, version, title, body)| ArticleRow {
            article_id,
            language,
            version: u32::try_from(version).unwrap_or(u32::MAX),
            title,
            body,
        })
        .collect()
}

/// Every article's current version.
pub async fn articles(store: &AnyEventStore) -> Result<Vec<ArticleRow>, StoreError> {
    on_read_pool!(store, pool => {
        Ok(article_rows(
            sqlx::query_as(
                "SELECT article_id, language, version, title, body FROM support_articles \
                 ORDER BY language, article_id",
            )
            .fetch_all(pool)
            .await?,
        ))
    })
}

/// What changes whenever an article does: how many there are and their versions.
pub async fn articles_fingerprint(store: &AnyEventStore) -> Result<(i64, i64), StoreError> {
    on_read_pool!(store, pool => {
        Ok(sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(version), 0) AS BIGINT) FROM support_articles",
        )
        .fetch_one(pool)
        .await?)
    })
}

/// Articles in `language` whose title or body contains `needle` (any case):
/// the plain `LIKE` search the index is measured against.
pub async fn articles_like(
    store: &AnyEventStore,
    language: &str,
    needle: &str,
    limit: i64,
) -> Result<Vec<ArticleRow>, StoreError> {
    let pattern = format!(
        "%{}%",
        needle
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    on_read_pool!(store, pool => {
        Ok(article_rows(
            sqlx::query_as(
                "SELECT article_id, language, version, title, body FROM support_articles \
                 WHERE language = $1 AND (LOWER(title) LIKE $2 ESCAPE '\\' OR LOWER(body) LIKE $2 ESCAPE '\\') \
                 ORDER BY article_id LIMIT $3",
            )
            .bind(language.to_owned())
            .bind(pattern)
            .bind(limit)
            .fetch_all(pool)
            .await?,
        ))
    })
}

/// Self-help walks: started, and how they ended.
#[derive(Debug, Clone, Copy, Default)]
pub struct Walks;

impl Projection for Walks {
    fn name(&self) -> &'static str {
        "support-selfhelp"
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        use crate::domain::diagnosis::{Event as Walk, Outcome};
        let Some(session_id) = event.stream_id.as_str().strip_prefix("selfhelp-") else {
            return Ok(());
        };
        let session_id = session_id.to_owned();
        match event.decode::<Walk>()? {
            Walk::SelfHelpStarted {
                tree_id,
                language,
                at,
                ..
            } => {
                on_connection!(tx.connection(), c => {
                    sqlx::query(
                        "INSERT INTO support_selfhelp (session_id, tree_id, language, started_at, \
                         outcome, deflected) VALUES ($1, $2, $3, $4, NULL, 0) \
                         ON CONFLICT (session_id) DO NOTHING",
                    )
                    .bind(session_id)
                    .bind(tree_id)
                    .bind(language)
                    .bind(timestamp(at))
                    .execute(c)
                    .await?;
                });
            }
            Walk::SelfHelpEnded {
                outcome, deflected, ..
            } => {
                let kind = match outcome {
                    Outcome::Article { .. } => "article",
                    Outcome::Update { .. } => "update",
                    Outcome::Repair { .. } => "repair",
                };
                on_connection!(tx.connection(), c => {
                    sqlx::query(
                        "UPDATE support_selfhelp SET outcome = $2, deflected = $3 WHERE session_id = $1",
                    )
                    .bind(session_id)
                    .bind(kind)
                    .bind(i64::from(deflected))
                    .execute(c)
                    .await?;
                });
            }
            Walk::QuestionAnswered { .. } => {}
        }
        Ok(())
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        tx.empty_tables(&["support_selfhelp"]).await
    }
}

/// Per tree, walks started at or after `from`: `(tree, started, ended, deflected, repairs)`.
pub async fn walk_figures(
    store: &AnyEventStore,
    from: DateTime<Utc>,
) -> Result<Vec<(String, i64, i64, i64, i64)>, StoreError> {
    on_read_pool!(store, pool => {
        Ok(sqlx::query_as(
            "SELECT tree_id, COUNT(*), \
             SUM(CASE WHEN outcome IS NULL THEN 0 ELSE 1 END), \
             CAST(SUM(deflected) AS BIGINT), \
             SUM(CASE WHEN outcome = 'repair' THEN 1 ELSE 0 END) \
             FROM support_selfhelp WHERE started_at >= $1 GROUP BY tree_id ORDER BY tree_id",
        )
        .bind(timestamp(from))
        .fetch_all(pool)
        .await?)
    })
}

/// Surveys: what each asks about, and its score once answered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Surveys;

impl Projection for Surveys {
    fn name(&self) -> &'static str {
        "support-surveys"
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        if !event.stream_id.as_str().starts_with("survey-") {
            return Ok(());
        }
        match event.decode::<survey::Event>()? {
            survey::Event::SurveySent {
                survey_id,
                customer_id,
                about,
                at,
                ..
            } => {
                let (subject, case, order, team, agent, center, technician) = match about {
                    About::Case {
                        case_id,
                        team_id,
                        agent_id,
                    } => (
                        "case",
                        Some(case_id),
                        None,
                        Some(team_id),
                        agent_id,
                        None,
                        None,
                    ),
                    About::Repair {
                        order_id,
                        service_center_id,
                        technician,
                    } => (
                        "repair",
                        None,
                        Some(order_id),
                        None,
                        None,
                        Some(service_center_id).filter(|c| !c.is_empty()),
                        technician,
                    ),
                };
                on_connection!(tx.connection(), c => {
                    sqlx::query(
                        "INSERT INTO support_surveys (survey_id, subject, customer_id, case_id, \
                         order_id, team_id, agent_id, center_id, technician, sent_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                         ON CONFLICT (survey_id) DO NOTHING",
                    )
                    .bind(survey_id)
                    .bind(subject)
                    .bind(customer_id)
                    .bind(case)
                    .bind(order)
                    .bind(team)
                    .bind(agent)
                    .bind(center)
                    .bind(technician)
                    .bind(timestamp(at))
                    .execute(c)
                    .await?;
                });
            }
            survey::Event::SurveyAnswered {
                survey_id,
                score,
                at,
                ..
            } => {
                on_connection!(tx.connection(), c => {
                    sqlx::query(
                        "UPDATE support_surveys SET answered_at = $2, week = $3, score = $4 \
                         WHERE survey_id = $1",
                    )
                    .bind(survey_id)
                    .bind(timestamp(at))
                    .bind(iso_week(at))
                    .bind(i64::from(score))
                    .execute(c)
                    .await?;
                });
            }
        }
        Ok(())
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        tx.empty_tables(&["support_surveys"]).await
    }
}

/// Whom quality figures are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QualityGroup {
    Agent,
    Team,
    Center,
    Technician,
}

impl QualityGroup {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Team => "team",
            Self::Center => "center",
            Self::Technician => "technician",
        }
    }

    /// The column naming the group: in `support_quality` (agents and teams
    /// only), and in `support_surveys` with the subject its surveys ask about.
    fn columns(self) -> (Option<&'static str>, &'static str, &'static str) {
        match self {
            Self::Agent => (Some("agent_id"), "agent_id", "case"),
            Self::Team => (Some("team_id"), "team_id", "case"),
            Self::Center => (None, "center_id", "repair"),
            Self::Technician => (None, "technician", "repair"),
        }
    }
}

/// One group's figures in one week, as the read models count them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QualityCounts {
    pub cases_resolved: i64,
    pub mean_first_response_seconds: Option<f64>,
    pub mean_resolution_seconds: Option<f64>,
    pub breached: i64,
    pub first_contact: i64,
    pub reopened: i64,
    pub escalated: i64,
    pub survey_answers: i64,
    pub mean_score: Option<f64>,
}

type CaseFigures = (
    String,
    String,
    i64,
    Option<f64>,
    Option<f64>,
    i64,
    i64,
    i64,
    i64,
);

/// Figures per `(week, group)` for the ISO weeks `from..=to` (`2026-W49`).
pub async fn quality(
    store: &AnyEventStore,
    group: QualityGroup,
    from: &str,
    to: &str,
) -> Result<std::collections::BTreeMap<(String, String), QualityCounts>, StoreError> {
    let (case_column, survey_column, subject) = group.columns();
    let mut figures = std::collections::BTreeMap::<(String, String), QualityCounts>::new();
    if let Some(column) = case_column {
        let sql = format!(
            "SELECT week, {column}, COUNT(*), \
             CAST(AVG(first_response_seconds) AS DOUBLE PRECISION), \
             CAST(AVG(resolution_seconds) AS DOUBLE PRECISION), \
             CAST(SUM(breached) AS BIGINT), CAST(SUM(first_contact) AS BIGINT), \
             CAST(SUM(reopened) AS BIGINT), CAST(SUM(escalated) AS BIGINT) \
             FROM support_quality WHERE week >= $1 AND week <= $2 AND {column} IS NOT NULL \
             GROUP BY week, {column}"
        );
        let rows: Vec<CaseFigures> = on_read_pool!(store, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(from.to_owned())
                .bind(to.to_owned())
                .fetch_all(pool)
                .await?
        });
        for (week, id, n, response, resolution, breached, first, reopened, escalated) in rows {
            let counts = figures.entry((week, id)).or_default();
            counts.cases_resolved = n;
            counts.mean_first_response_seconds = response;
            counts.mean_resolution_seconds = resolution;
            counts.breached = breached;
            counts.first_contact = first;
            counts.reopened = reopened;
            counts.escalated = escalated;
        }
    }
    let sql = format!(
        "SELECT week, {survey_column}, COUNT(*), CAST(AVG(score) AS DOUBLE PRECISION) \
         FROM support_surveys WHERE subject = $3 AND answered_at IS NOT NULL \
         AND week >= $1 AND week <= $2 AND {survey_column} IS NOT NULL \
         GROUP BY week, {survey_column}"
    );
    let rows: Vec<(String, String, i64, Option<f64>)> = on_read_pool!(store, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(from.to_owned())
            .bind(to.to_owned())
            .bind(subject)
            .fetch_all(pool)
            .await?
    });
    for (week, id, answers, score) in rows {
        let counts = figures.entry((week, id)).or_default();
        counts.survey_answers = answers;
        counts.mean_score = score;
    }
    Ok(figures)
}

/// The newest answered surveys about one group, by id.
pub async fn answered_surveys(
    store: &AnyEventStore,
    group: QualityGroup,
    group_id: &str,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    let (_, column, subject) = group.columns();
    let sql = format!(
        "SELECT survey_id FROM support_surveys WHERE subject = $1 AND {column} = $2 \
         AND answered_at IS NOT NULL ORDER BY answered_at DESC, survey_id LIMIT $3"
    );
    on_read_pool!(store, pool => {
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(subject)
            .bind(group_id.to_owned())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?)
    })
}

/// Every survey sent to `customer`, by id.
pub async fn surveys_of(store: &AnyEventStore, customer: &str) -> Result<Vec<String>, StoreError> {
    on_read_pool!(store, pool => {
        Ok(sqlx::query_scalar(
            "SELECT survey_id FROM support_surveys WHERE customer_id = $1 ORDER BY sent_at, survey_id",
        )
        .bind(customer.to_owned())
        .fetch_all(pool)
        .await?)
    })
}

/// The clocks running on repairs, for the sweep.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deadlines;

impl Projection for Deadlines {
    fn name(&self) -> &'static str {
        "support-deadlines"
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        let Some(order_id) = event.stream_id.as_str().strip_prefix("watch-") else {
            return Ok(());
        };
        let order_id = order_id.to_owned();
        on_connection!(tx.connection(), c => {
            match event.decode::<crate::domain::watch::Event>()? {
                crate::domain::watch::Event::DeadlineStarted(deadline) => {
                    sqlx::query(
                        "INSERT INTO support_deadlines (order_id, kind, due) VALUES ($1, $2, $3) \
                         ON CONFLICT (order_id, kind) DO UPDATE SET due = excluded.due",
                    )
                    .bind(order_id)
                    .bind(deadline.kind.as_str())
                    .bind(timestamp(deadline.due))
                    .execute(c)
                    .await?;
                }
                crate::domain::watch::Event::DeadlineStopped { kind, .. }
                | crate::domain::watch::Event::DeadlineMissed { kind, .. } => {
                    sqlx::query("DELETE FROM support_deadlines WHERE order_id = $1 AND kind = $2")
                        .bind(order_id)
                        .bind(kind.as_str())
                        .execute(c)
                        .await?;
                }
                crate::domain::watch::Event::RepairDone => {
                    sqlx::query("DELETE FROM support_deadlines WHERE order_id = $1")
                        .bind(order_id)
                        .execute(c)
                        .await?;
                }
                crate::domain::watch::Event::RepairNoted { .. }
                | crate::domain::watch::Event::TechnicianNoted { .. }
                | crate::domain::watch::Event::QcFailureNoted { .. } => {}
            }
        });
        Ok(())
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        tx.empty_tables(&["support_deadlines"]).await
    }
}

/// The clocks due by `now`, earliest first: `(order, kind, due)`.
pub async fn deadlines_due(
    store: &AnyEventStore,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<(String, crate::domain::legal::DeadlineKind, DateTime<Utc>)>, StoreError> {
    use crate::domain::legal::DeadlineKind;
    let rows: Vec<(String, String, String)> = on_read_pool!(store, pool => {
        sqlx::query_as(
            "SELECT order_id, kind, due FROM support_deadlines WHERE due <= $1 \
             ORDER BY due, order_id LIMIT $2",
        )
        .bind(timestamp(now))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?
    });
    rows.into_iter()
        .map(|(order, kind, due)| {
            let kind = match kind.as_str() {
                "parts" => DeadlineKind::Parts,
                "repair" => DeadlineKind::Repair,
                "quote" => DeadlineKind::Quote,
                other => {
                    return Err(StoreError::CorruptRow(format!(
                        "support_deadlines: kind {other}"
                    )));
                }
            };
            let due = DateTime::parse_from_rfc3339(&due)
                .map_err(|e| StoreError::CorruptRow(format!("support_deadlines: {e}")))?
                .to_utc();
            Ok((order, kind, due))
        })
        .collect()
}
