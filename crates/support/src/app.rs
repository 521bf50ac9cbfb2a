//! The support use cases: cases through the decider, one stream per case,
//! routed by the teams' data and timed by the service levels in force.

use std::collections::HashMap;
use std::sync::Arc;

use aftersales_core::{Error, SharedClock};
use aftersales_eventstore::{
    AnyEventStore, CommandContext, CommandHandler, EventStore as _, RECENT_STREAMS,
    StoreTransaction, StreamId,
};
use chrono::{DateTime, Duration, Utc};

use crate::domain::case::{
    Attachment, Case, CaseState, Category, Channel, Command, EntryKind, EscalationReason, Event,
    Opening, Priority, Routing, Tier,
};
use crate::domain::legal::{DeadlineKind, LegalClocks};
use crate::domain::sla::SlaPolicy;
use crate::domain::survey::About;
use crate::domain::teams::{LANGUAGES, Team, Teams};
use crate::domain::watch::Deadline;
use crate::domain::{DomainError, text};
use crate::projections::{self, CaseFilter, CaseRow};
use crate::surveys::Surveys;

/// Why a use case failed: the shared error, its kind saying the gRPC code.
pub type AppResult<T> = Result<T, Error>;

/// Cases one sweep pass looks at, for alarms and for routing each.
pub const SWEEP_BATCH: u32 = 500;
/// Cases a sweep records alarms on at once.
const SWEEP_CONCURRENCY: usize = 16;

/// How long after its resolution a case may be reopened, by default.
pub const REOPEN_WINDOW_DAYS: i64 = 14;

/// The stream of case `id`.
pub fn case_stream(id: &str) -> AppResult<StreamId> {
    let id = id.trim();
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(DomainError::invalid("case_id", "must be a case id (a UUID)").into());
    }
    StreamId::parse(format!("case-{id}"))
        .map_err(|e| DomainError::invalid("case_id", e.to_string()).into())
}

/// A case as its log leaves it.
#[derive(Debug, Clone)]
pub struct CaseView {
    pub state: CaseState,
    pub version: u64,
}

impl From<CaseRow> for CaseView {
    fn from(row: CaseRow) -> Self {
        Self {
            state: row.state,
            version: row.version,
        }
    }
}

/// One step of a case's history, its text opened (or erased).
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub event: Event,
}

/// What a new case says.
#[derive(Debug, Clone)]
pub struct NewCase {
    pub customer_id: String,
    pub country: String,
    pub language: String,
    pub channel: Channel,
    pub category: Category,
    pub priority: Priority,
    pub device_imei: Option<String>,
    pub repair_order_id: Option<String>,
    pub source: Option<String>,
    pub subject: String,
    pub text: String,
    pub attachments: Vec<Attachment>,
}

/// What one sweep pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Cases it changed.
    pub changed: usize,
    /// It read a full batch of due cases: more may be waiting.
    pub full: bool,
}

/// An agent's open cases, and whether they are on shift now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLoad {
    pub agent_id: String,
    pub team_id: String,
    pub open_cases: u32,
    pub on_shift: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamQueue {
    pub team_id: String,
    pub open_cases: u32,
    pub unassigned: u32,
    pub breached: u32,
    pub oldest_unassigned_at: Option<DateTime<Utc>>,
}

/// The support service's use cases.
#[derive(Debug, Clone)]
pub struct Support {
    clock: SharedClock,
    store: AnyEventStore,
    cases: CommandHandler<Case, AnyEventStore>,
    teams: Arc<Teams>,
    policy: Arc<SlaPolicy>,
    reopen_window: Duration,
    surveys: Surveys,
    legal: Arc<LegalClocks>,
}

/// The same request's next command: its own idempotency key, derived from the
/// request's, so a retried request repeats each step once.
fn step(ctx: &CommandContext, name: &[u8]) -> CommandContext {
    CommandContext {
        command_id: ctx.command_id.map(|id| uuid::Uuid::new_v5(&id, name)),
        request_fingerprint: None,
        ..ctx.clone()
    }
}

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Support {
    pub fn new(
        store: AnyEventStore,
        teams: Teams,
        policy: SlaPolicy,
        reopen_window: Duration,
        surveys: Surveys,
        legal: LegalClocks,
        clock: SharedClock,
    ) -> Self {
        Self {
            clock,
            cases: CommandHandler::new(store.clone()).with_recent_states(RECENT_STREAMS),
            store,
            teams: Arc::new(teams),
            policy: Arc::new(policy),
            reopen_window,
            surveys,
            legal: Arc::new(legal),
        }
    }

    /// The built-in teams and service levels.
    pub fn builtin(
        store: AnyEventStore,
        surveys: Surveys,
        clock: SharedClock,
    ) -> Result<Self, String> {
        Ok(Self::new(
            store,
            Teams::builtin()?,
            SlaPolicy::builtin()?,
            Duration::days(REOPEN_WINDOW_DAYS),
            surveys,
            LegalClocks::builtin()?,
            clock,
        ))
    }

    /// `kind`'s clock on a repair in `country` started at `at`: the rule in
    /// force there that day, counted in the working days of the country's front
    /// line. `None` where no team serves the country.
    pub fn deadline(
        &self,
        kind: DeadlineKind,
        country: &str,
        at: DateTime<Utc>,
    ) -> Option<Deadline> {
        let language = self.teams.language_of(country);
        let team = self
            .teams
            .route(country, language, Category::Hardware, Tier::FrontLine)?;
        let day = at.with_timezone(&team.calendar.zone()).date_naive();
        let (version, rule) = self.legal.rule(kind, country, day)?;
        Some(Deadline {
            kind,
            started_at: at,
            due: rule.due(at, &team.calendar)?,
            basis: rule.basis,
            limit: rule.limit(),
            version,
            source: rule.source.clone(),
        })
    }

    pub fn surveys(&self) -> &Surveys {
        &self.surveys
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn store(&self) -> &AnyEventStore {
        &self.store
    }

    pub fn teams(&self) -> &Teams {
        &self.teams
    }

    fn team(&self, id: &str) -> AppResult<&Team> {
        self.teams
            .get(id)
            .ok_or_else(|| Error::precondition(format!("team {id} is no longer in the teams data")))
    }

    fn route(&self, state: &CaseState, tier: Tier) -> Option<Routing> {
        self.teams
            .route(&state.country, &state.language, state.category, tier)
            .map(Team::routing)
    }

    /// A case as its log leaves it; NOT_FOUND when there is none.
    pub async fn get(&self, case_id: &str) -> AppResult<CaseView> {
        let stream = case_stream(case_id)?;
        let loaded = self.cases.load(&stream).await?;
        let state = loaded
            .state
            .ok_or_else(|| Error::not_found(format!("case {}", case_id.trim())))?;
        Ok(CaseView {
            state,
            version: loaded.version,
        })
    }

    /// The case's whole history, in order.
    pub async fn history(&self, case_id: &str) -> AppResult<Vec<HistoryEntry>> {
        let stream = case_stream(case_id)?;
        let mut entries = Vec::new();
        let mut from = 1;
        loop {
            let page = self.store.read_stream(&stream, from, 500).await?;
            let full = page.len() == 500;
            for recorded in &page {
                let event: Event = recorded
                    .decode()
                    .map_err(aftersales_eventstore::StoreError::from)?;
                entries.push(HistoryEntry {
                    at: recorded.metadata.recorded_at,
                    event,
                });
                from = recorded.stream_version + 1;
            }
            if !full {
                return Ok(entries);
            }
        }
    }

    async fn handle(
        &self,
        case_id: &str,
        command: Command,
        ctx: &CommandContext,
    ) -> AppResult<CaseView> {
        let stream = case_stream(case_id)?;
        let handled = self.cases.handle(&stream, &command, ctx).await?;
        let state = handled
            .state
            .ok_or_else(|| Error::not_found(format!("case {}", case_id.trim())))?;
        Ok(CaseView {
            state,
            version: handled.version,
        })
    }

    /// A new case's opening: checked, routed to the front line team for it and
    /// timed by the service levels in force there today.
    fn opening(&self, new: NewCase, case_id: String, at: DateTime<Utc>) -> AppResult<Opening> {
        text("customer_id", &new.customer_id, 100, true)?;
        if !LANGUAGES.contains(&new.language.as_str()) {
            return Err(DomainError::invalid(
                "language",
                format!("must be one of {}", LANGUAGES.join(", ")),
            )
            .into());
        }
        if let Some(imei) = &new.device_imei {
            aftersales_core::types::Imei::parse("device_imei", imei)?;
        }
        if let Some(order) = &new.repair_order_id {
            text("repair_order_id", order, 100, true)?;
        }
        let team = self
            .teams
            .route(&new.country, &new.language, new.category, Tier::FrontLine)
            .ok_or_else(|| {
                Error::precondition(format!(
                    "no front line team takes {} cases from {}",
                    new.category.as_str(),
                    new.country
                ))
            })?;
        let today = at.with_timezone(&team.calendar.zone()).date_naive();
        let version = self
            .policy
            .on(today)
            .ok_or_else(|| Error::precondition(format!("no service levels in force on {today}")))?;
        let targets = version
            .targets(&new.country, new.priority)
            .ok_or_else(|| Error::precondition("no service level for this priority"))?;
        Ok(Opening {
            case_id,
            customer_id: new.customer_id,
            country: new.country,
            language: new.language,
            channel: new.channel,
            category: new.category,
            priority: new.priority,
            device_imei: new.device_imei,
            repair_order_id: new.repair_order_id,
            source: new.source,
            subject: new.subject,
            text: new.text,
            attachments: new.attachments,
            routing: team.routing(),
            policy_version: version.version,
            targets,
            at,
        })
    }

    /// Opens a case, routed to the front line team for it, and gives it to
    /// that team's agent on shift with the fewest open cases, if one is.
    pub async fn open(&self, new: NewCase, ctx: &CommandContext) -> AppResult<CaseView> {
        let case_id = ctx.derived_id(b"support-case").to_string();
        let opening = self.opening(new, case_id.clone(), ctx.now)?;
        let view = self
            .handle(&case_id, Command::Open(Box::new(opening)), ctx)
            .await?;
        self.assign_on_shift(view, &step(ctx, b"assign")).await
    }

    /// Opens case `case_id` inside `tx` (a reaction to another service's
    /// event); once only: a case of that id already open is left as it is.
    /// Routing gives it to an agent on its next sweep.
    pub async fn open_in(
        &self,
        tx: &mut StoreTransaction,
        case_id: &str,
        new: NewCase,
        ctx: &CommandContext,
    ) -> AppResult<()> {
        let opening = self.opening(new, case_id.to_owned(), ctx.now)?;
        let stream = case_stream(case_id)?;
        match self
            .cases
            .handle_in(tx, &stream, &Command::Open(Box::new(opening)), ctx)
            .await
        {
            Err(aftersales_eventstore::HandleError::Domain(DomainError::AlreadyExists(_))) => {
                Ok(())
            }
            handled => handled.map(drop).map_err(Error::from),
        }
    }

    /// Gives a new case to its team's agent on shift with the fewest open
    /// cases; unchanged when nobody is on shift (routing tries again later).
    async fn assign_on_shift(&self, view: CaseView, ctx: &CommandContext) -> AppResult<CaseView> {
        if view.state.agent_id.is_some() || !view.state.status.is_open() {
            return Ok(view);
        }
        let team = self.team(&view.state.team_id)?;
        // Nobody on shift: nothing to count (the night's queue costs no query).
        let on_shift: Vec<&str> = team
            .agents
            .iter()
            .filter(|a| team.on_shift(a, ctx.now))
            .map(|a| a.id.as_str())
            .collect();
        if on_shift.is_empty() {
            return Ok(view);
        }
        let open: HashMap<String, u32> = projections::open_by_agent(&self.store, &on_shift)
            .await?
            .into_iter()
            .map(|(agent, n)| (agent, count(n)))
            .collect();
        let Some(agent) = team.pick_agent(ctx.now, &open) else {
            return Ok(view);
        };
        let command = Command::Assign {
            agent_id: agent.id.clone(),
            only_if_unassigned: true,
            at: ctx.now,
        };
        self.handle(&view.state.case_id, command, ctx).await
    }

    /// Gives a case to `agent_id` of the team holding it, or (none named) to
    /// its agent on shift with the fewest open cases.
    pub async fn assign(
        &self,
        case_id: &str,
        agent_id: Option<&str>,
        ctx: &CommandContext,
    ) -> AppResult<CaseView> {
        let view = self.get(case_id).await?;
        let Some(agent_id) = agent_id else {
            let assigned = self.assign_on_shift(view, ctx).await?;
            if assigned.state.agent_id.is_none() {
                return Err(Error::precondition(format!(
                    "nobody of team {} is on shift",
                    assigned.state.team_id
                )));
            }
            return Ok(assigned);
        };
        let team = self.team(&view.state.team_id)?;
        if !team.agents.iter().any(|a| a.id == agent_id) {
            return Err(DomainError::invalid(
                "agent_id",
                format!("{agent_id:?} is not an agent of team {}", team.id),
            )
            .into());
        }
        let command = Command::Assign {
            agent_id: agent_id.to_owned(),
            only_if_unassigned: false,
            at: ctx.now,
        };
        self.handle(case_id, command, ctx).await
    }

    /// Adds to the conversation: `author` is the agent for replies and notes,
    /// the customer for theirs.
    pub async fn add_entry(
        &self,
        case_id: &str,
        kind: EntryKind,
        author: &str,
        text: String,
        attachments: Vec<Attachment>,
        ctx: &CommandContext,
    ) -> AppResult<CaseView> {
        let view = self.get(case_id).await?;
        let calendar = self.team(&view.state.team_id)?.calendar.clone();
        let command = Command::AddEntry {
            kind,
            author: author.to_owned(),
            text,
            attachments,
            calendar,
            at: ctx.now,
        };
        self.handle(case_id, command, ctx).await
    }

    pub async fn wait_on_customer(
        &self,
        case_id: &str,
        ctx: &CommandContext,
    ) -> AppResult<CaseView> {
        let view = self.get(case_id).await?;
        let calendar = self.team(&view.state.team_id)?.calendar.clone();
        let command = Command::WaitOnCustomer {
            calendar,
            at: ctx.now,
        };
        self.handle(case_id, command, ctx).await
    }

    /// Resolves a case and, in the same commit, owes the customer a survey
    /// about it (the first resolution's: a reopened case is not asked again).
    pub async fn resolve(
        &self,
        case_id: &str,
        summary: String,
        ctx: &CommandContext,
    ) -> AppResult<CaseView> {
        const ATTEMPTS: u32 = 3;
        let stream = case_stream(case_id)?;
        let command = Command::Resolve {
            summary,
            at: ctx.now,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = self.store.begin().await?;
            let handled = match self.cases.handle_in(&mut tx, &stream, &command, ctx).await {
                Ok(handled) => handled,
                // Another writer won the race: decide again on what it wrote.
                Err(aftersales_eventstore::HandleError::Store(
                    aftersales_eventstore::StoreError::WrongExpectedVersion { .. },
                )) if attempt < ATTEMPTS => continue,
                Err(error) => return Err(error.into()),
            };
            let state = handled
                .state
                .ok_or_else(|| Error::not_found(format!("case {}", case_id.trim())))?;
            let about = About::Case {
                case_id: state.case_id.clone(),
                team_id: state.team_id.clone(),
                agent_id: state.agent_id.clone(),
            };
            self.surveys
                .send_in(
                    &mut tx,
                    &state.customer_id,
                    &state.language,
                    about,
                    &step(ctx, b"survey"),
                )
                .await?;
            tx.commit().await?;
            return Ok(CaseView {
                state,
                version: handled.version,
            });
        }
    }

    pub async fn close(&self, case_id: &str, ctx: &CommandContext) -> AppResult<CaseView> {
        self.handle(case_id, Command::Close { at: ctx.now }, ctx)
            .await
    }

    /// Reopens a resolved case within the window, promised a resolution under
    /// the service levels it was opened with.
    pub async fn reopen(
        &self,
        case_id: &str,
        reason: String,
        ctx: &CommandContext,
    ) -> AppResult<CaseView> {
        let view = self.get(case_id).await?;
        let team = self.team(&view.state.team_id)?;
        let today = ctx.now.with_timezone(&team.calendar.zone()).date_naive();
        let targets = self
            .policy
            .on(today)
            .and_then(|v| v.targets(&view.state.country, view.state.priority))
            .ok_or_else(|| Error::precondition(format!("no service levels in force on {today}")))?;
        let command = Command::Reopen {
            reason,
            window: self.reopen_window,
            targets,
            calendar: team.calendar.clone(),
            at: ctx.now,
        };
        let reopened = self.handle(case_id, command, ctx).await?;
        self.assign_on_shift(reopened, &step(ctx, b"assign")).await
    }

    /// One tier up, to the team of that tier whose skills match, and to its
    /// agent on shift.
    pub async fn escalate(
        &self,
        case_id: &str,
        reason: EscalationReason,
        note: String,
        ctx: &CommandContext,
    ) -> AppResult<CaseView> {
        let view = self.get(case_id).await?;
        let tier = view.state.tier.next().ok_or_else(|| {
            Error::precondition("cannot escalate it: it is already with engineering")
        })?;
        let to = self.route(&view.state, tier).ok_or_else(|| {
            Error::precondition(format!(
                "no {} team takes {} cases",
                tier.as_str(),
                view.state.category.as_str()
            ))
        })?;
        let command = Command::Escalate {
            reason,
            note,
            to,
            at: ctx.now,
        };
        let escalated = self.handle(case_id, command, ctx).await?;
        self.assign_on_shift(escalated, &step(ctx, b"assign")).await
    }

    /// Records every warning and breach due at `now` (escalating cases whose
    /// resolution promise is broken) and gives unassigned cases to agents now
    /// on shift.
    pub async fn sweep(&self, ctx: &CommandContext) -> AppResult<Swept> {
        use futures::StreamExt as _;
        let due = projections::due(&self.store, ctx.now, i64::from(SWEEP_BATCH)).await?;
        // A full batch: more may be due behind it (or the read model has yet to
        // see what this pass recorded): the next pass should not wait.
        let full = due.len() >= usize::try_from(SWEEP_BATCH).unwrap_or(usize::MAX);
        // Cases are streams of their own: several are recorded at once, so a
        // pass costs a few commits' time, not one per case in a row.
        let mut changed = futures::stream::iter(due)
            .map(|row| async move {
                let case_id = row.state.case_id.clone();
                // Each case is recorded at the time it is reached, not the
                // pass's start: what a warning or breach says is when it was seen.
                let at = CommandContext {
                    now: self.now().max(ctx.now),
                    ..ctx.clone()
                };
                match self.record_alarms(row, &at).await {
                    Ok(changed) => changed,
                    // One case's trouble (its team gone from the data) does not
                    // hold up the others' clocks.
                    Err(error) => {
                        tracing::warn!(%case_id, %error, "recording SLA alarms failed");
                        false
                    }
                }
            })
            .buffer_unordered(SWEEP_CONCURRENCY)
            .filter(|changed| std::future::ready(*changed))
            .count()
            .await;
        // Only the queues of teams with someone on shift can be given out.
        let staffed: Vec<&str> = self
            .teams
            .all()
            .iter()
            .filter(|t| t.agents.iter().any(|a| t.on_shift(a, ctx.now)))
            .map(|t| t.id.as_str())
            .collect();
        for row in projections::unassigned(&self.store, &staffed, i64::from(SWEEP_BATCH)).await? {
            let (case_id, before) = (row.state.case_id.clone(), row.version);
            match self.assign_on_shift(row.into(), ctx).await {
                Ok(view) if view.version != before => changed += 1,
                Ok(_) => {}
                Err(error) => tracing::warn!(%case_id, %error, "routing a case failed"),
            }
        }
        Ok(Swept { changed, full })
    }

    /// Records what is due on one case; whether anything was.
    async fn record_alarms(&self, row: CaseRow, ctx: &CommandContext) -> AppResult<bool> {
        let escalate_to = row
            .state
            .tier
            .next()
            .and_then(|tier| self.route(&row.state, tier));
        let command = Command::RecordAlarms {
            now: ctx.now,
            escalate_to,
        };
        let view = self.handle(&row.state.case_id, command, ctx).await?;
        let changed = view.version != row.version;
        self.assign_on_shift(view, ctx).await?;
        Ok(changed)
    }

    /// When the sweep next has work: the earliest alarm of any case.
    pub async fn next_alarm(&self) -> AppResult<Option<DateTime<Utc>>> {
        Ok(projections::next_alarm(&self.store).await?)
    }

    pub async fn list(&self, filter: &CaseFilter) -> AppResult<Vec<CaseView>> {
        Ok(projections::list(&self.store, filter)
            .await?
            .into_iter()
            .map(CaseView::from)
            .collect())
    }

    /// Whether `team_id` holds or has held the case.
    pub async fn held_by(&self, case_id: &str, team_id: &str) -> AppResult<bool> {
        Ok(projections::held_by(&self.store, case_id.trim(), team_id).await?)
    }

    /// Each agent's open cases and whether they are on shift; one team's or all.
    pub async fn workload(
        &self,
        team_id: Option<&str>,
    ) -> AppResult<(Vec<AgentLoad>, Vec<TeamQueue>)> {
        if let Some(id) = team_id
            && self.teams.get(id).is_none()
        {
            return Err(DomainError::invalid("team_id", format!("{id:?} is not a team")).into());
        }
        let now = self.now();
        let everyone: Vec<&str> = self
            .teams
            .all()
            .iter()
            .flat_map(|t| t.agents.iter().map(|a| a.id.as_str()))
            .collect();
        let open: HashMap<String, i64> = projections::open_by_agent(&self.store, &everyone)
            .await?
            .into_iter()
            .collect();
        let teams = self
            .teams
            .all()
            .iter()
            .filter(|t| team_id.is_none_or(|id| t.id == id));
        let mut agents = Vec::new();
        for team in teams.clone() {
            for agent in &team.agents {
                agents.push(AgentLoad {
                    agent_id: agent.id.clone(),
                    team_id: team.id.clone(),
                    open_cases: count(open.get(&agent.id).copied().unwrap_or(0)),
                    on_shift: team.on_shift(agent, now),
                });
            }
        }
        let found: HashMap<String, (i64, i64, i64, Option<String>)> =
            projections::queues(&self.store)
                .await?
                .into_iter()
                .map(|(team, open, unassigned, breached, oldest)| {
                    (team, (open, unassigned, breached, oldest))
                })
                .collect();
        let queues = teams
            .map(|team| {
                let (open, unassigned, breached, oldest) =
                    found.get(&team.id).cloned().unwrap_or_default();
                TeamQueue {
                    team_id: team.id.clone(),
                    open_cases: count(open),
                    unassigned: count(unassigned),
                    breached: count(breached),
                    oldest_unassigned_at: oldest
                        .and_then(|at| DateTime::parse_from_rfc3339(&at).ok())
                        .map(|at| at.to_utc()),
                }
            })
            .collect();
        Ok((agents, queues))
    }
}
