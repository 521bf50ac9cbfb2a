//! `aftersales.support.v1.SupportService` over the use cases in [`crate::app`].
//!
//! Who sees a case: a customer their own; an agent the cases their team holds
//! or held (teams are this service's data, so it checks them here); operators
//! and auditors every case. A case one may not see is answered as not found.

use aftersales_auth::Role;
use aftersales_proto::support as pb;
use aftersales_proto::support::support_service_server::SupportService;
use aftersales_runtime::auth::Caller;
use aftersales_runtime::errors::{invalid, status};
use aftersales_runtime::request::{Requests, timestamp_to_proto};
use tonic::{Request, Response, Status};

use crate::app::{CaseView, HistoryEntry, NewCase, Support};
use crate::domain::article::{ArticleState, Draft};
use crate::domain::case::{
    Attachment, CaseState, Category, Channel, EntryKind, EscalationReason, Event, Priority,
    Status as CaseStatus,
};
use crate::domain::diagnosis::{Outcome, Phone};
use crate::domain::sla::{Clock, ClockState};
use crate::domain::survey::{About, SurveyState};
use crate::domain::updates::Status as SoftwareState;
use crate::integration as public;
use crate::knowledge::{Hit, KnowledgeBase};
use crate::projections::{CaseFilter, QualityGroup};
use crate::quality::QualityRow;
use crate::selfhelp::{SelfHelp, Walk};

/// Hits a search returns unless asked for another number.
const DEFAULT_HITS: u32 = 10;
/// Articles suggested for a case.
const SUGGESTIONS: usize = 5;

/// Cases one page holds at most, and by default.
const MAX_PAGE: u32 = 500;
const DEFAULT_PAGE: u32 = 100;

#[derive(Debug, Clone)]
pub struct SupportApi {
    app: Support,
    knowledge: KnowledgeBase,
    selfhelp: SelfHelp,
    requests: Requests,
}

/// Which cases a caller sees.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sight {
    All,
    Customer(String),
    Team(String),
    Nothing,
}

type Answer<T> = Result<Response<T>, Status>;

impl SupportApi {
    pub fn new(
        app: Support,
        knowledge: KnowledgeBase,
        selfhelp: SelfHelp,
        requests: Requests,
    ) -> Self {
        Self {
            app,
            knowledge,
            selfhelp,
            requests,
        }
    }

    /// A walk as the API shows it, in its language.
    async fn step(&self, walk: &Walk) -> pb::SelfHelpStep {
        let language = walk.state.language.as_str();
        let text = |texts: &std::collections::BTreeMap<String, String>| {
            texts.get(language).cloned().unwrap_or_default()
        };
        let node = walk
            .state
            .at_node
            .as_deref()
            .and_then(|n| walk.tree.node(n));
        let outcome = match &walk.state.outcome {
            None => None,
            Some(Outcome::Article { article_id }) => Some(pb::SelfHelpOutcome {
                kind: "article".into(),
                article_id: article_id.clone(),
                article_title: self
                    .knowledge
                    .get(article_id, language, None)
                    .await
                    .map(|a| a.title)
                    .unwrap_or_default(),
                ..Default::default()
            }),
            Some(Outcome::Update { issue, build }) => Some(pb::SelfHelpOutcome {
                kind: "update".into(),
                issue: issue.clone(),
                issue_title: self
                    .selfhelp
                    .updates()
                    .issue_title(issue, language)
                    .unwrap_or_default()
                    .to_owned(),
                build: build.clone().unwrap_or_default(),
                ..Default::default()
            }),
            Some(Outcome::Repair { fault }) => Some(pb::SelfHelpOutcome {
                kind: "repair".into(),
                fault: fault.clone(),
                ..Default::default()
            }),
        };
        pb::SelfHelpStep {
            session_id: walk.state.session_id.clone(),
            tree_id: walk.state.tree_id.clone(),
            question: node.map(|n| text(&n.question)).unwrap_or_default(),
            answers: node
                .map(|n| n.answers.iter().map(|a| text(&a.label)).collect())
                .unwrap_or_default(),
            ended: walk.state.outcome.is_some(),
            deflected: walk.state.outcome.as_ref().is_some_and(Outcome::deflects),
            outcome,
        }
    }

    /// The quality figures a request asks for, and whom they are grouped by.
    async fn quality(
        &self,
        r: pb::GetQualityFiguresRequest,
    ) -> Result<(QualityGroup, Vec<QualityRow>), Status> {
        let group = quality_group(r.group_by)?;
        let rows = crate::quality::figures(
            self.app.store(),
            group,
            &r.from_week,
            r.weeks,
            self.app.now(),
        )
        .await
        .map_err(status)?;
        Ok((group, rows))
    }

    fn software(&self, status: SoftwareState, language: &str) -> pb::SoftwareStatus {
        let updates = self.selfhelp.updates();
        pb::SoftwareStatus {
            model: status.model,
            build: status.build,
            latest_build: status.latest.map(|l| l.build).unwrap_or_default(),
            current: status.current,
            supported: status.supported,
            supported_until: status
                .supported_until
                .map(|d| d.to_string())
                .unwrap_or_default(),
            fixes_waiting: status
                .fixes_waiting
                .into_iter()
                .map(|(issue, build)| pb::PendingFix {
                    title: updates
                        .issue_title(&issue, language)
                        .unwrap_or_default()
                        .to_owned(),
                    issue,
                    build,
                })
                .collect(),
        }
    }

    fn sight(&self, caller: &Caller) -> Sight {
        let Some(principal) = caller.principal() else {
            return Sight::All; // authentication off
        };
        match principal.role {
            Role::Customer => Sight::Customer(principal.subject.clone()),
            Role::SupportAgent => self
                .app
                .teams()
                .team_of(&principal.subject)
                .map_or(Sight::Nothing, |team| Sight::Team(team.id.clone())),
            Role::Operator | Role::Auditor | Role::Service => Sight::All,
            Role::Technician | Role::CenterManager | Role::Carrier => Sight::Nothing,
        }
    }

    /// The case, if `caller` may see it; otherwise NOT_FOUND, as if it did not exist.
    async fn visible(&self, caller: &Caller, case_id: &str) -> Result<CaseView, Status> {
        let view = self.app.get(case_id).await.map_err(status)?;
        let may = match self.sight(caller) {
            Sight::All => true,
            Sight::Customer(id) => view.state.customer_id == id,
            Sight::Team(team) => {
                view.state.team_id == team
                    || self.app.held_by(case_id, &team).await.map_err(status)?
            }
            Sight::Nothing => false,
        };
        if may {
            Ok(view)
        } else {
            Err(Status::not_found(format!(
                "case {} not found",
                case_id.trim()
            )))
        }
    }

    /// Who writes an entry, as the conversation shows them.
    fn author(caller: &Caller) -> String {
        caller
            .principal()
            .map_or_else(|| "staff".to_owned(), |p| p.subject.clone())
    }
}

fn channel(value: i32) -> Result<Channel, Status> {
    Ok(match pb::Channel::try_from(value) {
        Ok(pb::Channel::Phone) => Channel::Phone,
        Ok(pb::Channel::Chat) => Channel::Chat,
        Ok(pb::Channel::Email) => Channel::Email,
        Ok(pb::Channel::Web) => Channel::Web,
        Ok(pb::Channel::Agent) => Channel::Agent,
        Ok(pb::Channel::Platform) => Channel::Platform,
        Ok(pb::Channel::Unspecified) | Err(_) => {
            return Err(invalid(
                "channel",
                "must be phone, chat, email, web, agent or platform",
            ));
        }
    })
}

fn category(value: i32) -> Result<Category, Status> {
    Ok(match pb::Category::try_from(value) {
        Ok(pb::Category::Hardware) => Category::Hardware,
        Ok(pb::Category::SoftwareAndUpdates) => Category::SoftwareAndUpdates,
        Ok(pb::Category::WarrantyQuestion) => Category::WarrantyQuestion,
        Ok(pb::Category::Accessory) => Category::Accessory,
        Ok(pb::Category::Shipping) => Category::Shipping,
        Ok(pb::Category::Complaint) => Category::Complaint,
        Ok(pb::Category::Unspecified) | Err(_) => {
            return Err(invalid("category", "must name a category"));
        }
    })
}

fn priority(value: i32) -> Result<Priority, Status> {
    Ok(match pb::Priority::try_from(value) {
        Ok(pb::Priority::Low) => Priority::Low,
        Ok(pb::Priority::Normal | pb::Priority::Unspecified) => Priority::Normal,
        Ok(pb::Priority::High) => Priority::High,
        Ok(pb::Priority::Urgent) => Priority::Urgent,
        Err(_) => return Err(invalid("priority", "must be low, normal, high or urgent")),
    })
}

fn status_to_proto(value: CaseStatus) -> pb::Status {
    match value {
        CaseStatus::New => pb::Status::New,
        CaseStatus::Assigned => pb::Status::Assigned,
        CaseStatus::WaitingOnCustomer => pb::Status::WaitingOnCustomer,
        CaseStatus::Resolved => pb::Status::Resolved,
        CaseStatus::Closed => pb::Status::Closed,
    }
}

fn status_filter(value: i32) -> Result<Option<CaseStatus>, Status> {
    Ok(match pb::Status::try_from(value) {
        Ok(pb::Status::Unspecified) => None,
        Ok(pb::Status::New) => Some(CaseStatus::New),
        Ok(pb::Status::Assigned) => Some(CaseStatus::Assigned),
        Ok(pb::Status::WaitingOnCustomer) => Some(CaseStatus::WaitingOnCustomer),
        Ok(pb::Status::Resolved) => Some(CaseStatus::Resolved),
        Ok(pb::Status::Closed) => Some(CaseStatus::Closed),
        Err(_) => return Err(invalid("status", "is not a case status")),
    })
}

fn entry_kind_to_proto(value: EntryKind) -> pb::EntryKind {
    match value {
        EntryKind::CustomerMessage => pb::EntryKind::CustomerMessage,
        EntryKind::AgentReply => pb::EntryKind::AgentReply,
        EntryKind::InternalNote => pb::EntryKind::InternalNote,
    }
}

fn attachments(list: Vec<pb::Attachment>) -> Vec<Attachment> {
    list.into_iter()
        .map(|a| Attachment {
            name: a.name,
            content_type: a.content_type,
            size_bytes: a.size_bytes,
            sha256: a.sha256,
        })
        .collect()
}

fn attachments_to_proto(list: &[Attachment]) -> Vec<pb::Attachment> {
    list.iter()
        .map(|a| pb::Attachment {
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            size_bytes: a.size_bytes,
            sha256: a.sha256.clone(),
        })
        .collect()
}

fn clock_to_proto(clock: &Clock) -> pb::SlaClock {
    let mut out = pb::SlaClock {
        kind: clock.kind.as_str().to_owned(),
        warned: clock.warned,
        breached: clock.breached,
        ..Default::default()
    };
    match clock.state {
        ClockState::Running { warn_at, due } => {
            out.running = true;
            out.warn_at = Some(timestamp_to_proto(warn_at));
            out.due = Some(timestamp_to_proto(due));
        }
        ClockState::Paused { to_due_secs, .. } => {
            out.paused = true;
            out.paused_seconds_left = to_due_secs;
        }
        ClockState::Stopped { at } => out.stopped_at = Some(timestamp_to_proto(at)),
    }
    out
}

fn case_to_proto(view: &CaseView) -> pb::Case {
    let s: &CaseState = &view.state;
    pb::Case {
        case_id: s.case_id.clone(),
        customer_id: s.customer_id.clone(),
        country: s.country.clone(),
        language: s.language.clone(),
        channel: public::channel(s.channel).into(),
        category: public::category(s.category).into(),
        priority: public::priority(s.priority).into(),
        device_imei: s.device_imei.clone().unwrap_or_default(),
        repair_order_id: s.repair_order_id.clone().unwrap_or_default(),
        status: status_to_proto(s.status).into(),
        team_id: s.team_id.clone(),
        tier: public::tier(s.tier).into(),
        agent_id: s.agent_id.clone().unwrap_or_default(),
        sla_version: s.policy_version,
        clocks: s.clocks.iter().map(clock_to_proto).collect(),
        opened_at: Some(timestamp_to_proto(s.opened_at)),
        first_response_at: s.first_response_at.map(timestamp_to_proto),
        resolved_at: s.resolved_at.map(timestamp_to_proto),
        closed_at: s.closed_at.map(timestamp_to_proto),
        reopened: s.reopened,
        escalations: s.escalations,
        version: view.version,
    }
}

/// One history entry as the API shows it; `None` for what the caller may not
/// see (internal notes, for a customer).
fn entry_to_proto(entry: &HistoryEntry, staff: bool) -> Option<pb::Entry> {
    let mut out = pb::Entry {
        event_type: aftersales_eventstore::DomainEvent::event_type(&entry.event).to_owned(),
        at: Some(timestamp_to_proto(entry.at)),
        ..Default::default()
    };
    match &entry.event {
        Event::CaseOpened {
            customer_id,
            text,
            attachments,
            ..
        } => {
            out.kind = pb::EntryKind::CustomerMessage.into();
            out.author.clone_from(customer_id);
            out.text.clone_from(text);
            out.attachments = attachments_to_proto(attachments);
        }
        Event::EntryAdded {
            kind,
            author,
            text,
            attachments,
            ..
        } => {
            if *kind == EntryKind::InternalNote && !staff {
                return None;
            }
            out.kind = entry_kind_to_proto(*kind).into();
            out.author.clone_from(author);
            out.text.clone_from(text);
            out.attachments = attachments_to_proto(attachments);
        }
        Event::CaseAssigned { agent_id, .. } => out.author.clone_from(agent_id),
        Event::CaseResolved { summary, .. } => out.text.clone_from(summary),
        Event::CaseReopened { reason, .. } => out.text.clone_from(reason),
        Event::CaseEscalated {
            reason,
            note,
            from_team_id,
            team_id,
            ..
        } => {
            out.escalation_reason = public::reason(*reason).into();
            if staff {
                out.text.clone_from(note);
            }
            out.from_team_id.clone_from(from_team_id);
            out.team_id.clone_from(team_id);
        }
        Event::SlaWarningReached { clock, .. } | Event::SlaBreached { clock, .. } => {
            if !staff {
                return None;
            }
            out.clock = clock.as_str().to_owned();
        }
        Event::WaitingOnCustomer { .. } | Event::CaseClosed { .. } => {}
    }
    Some(out)
}

fn hits_to_proto(hits: Vec<Hit>) -> pb::SearchArticlesResponse {
    pb::SearchArticlesResponse {
        hits: hits
            .into_iter()
            .map(|h| pb::ArticleHit {
                article_id: h.article_id,
                language: h.language,
                version: h.version,
                title: h.title,
                score: h.score,
            })
            .collect(),
    }
}

fn article_to_proto(a: ArticleState) -> pb::KnowledgeArticle {
    pb::KnowledgeArticle {
        article_id: a.article_id,
        language: a.language,
        version: a.version,
        title: a.title,
        body: a.body,
        categories: a
            .categories
            .into_iter()
            .map(|c| public::category(c).into())
            .collect(),
        published_at: Some(timestamp_to_proto(a.published_at)),
    }
}

/// `opened_at/case_id`, as a page token.
fn page_token(view: &CaseView) -> String {
    format!(
        "{}/{}",
        crate::projections::timestamp(view.state.opened_at),
        view.state.case_id
    )
}

fn parse_page_token(token: &str) -> Result<Option<(String, String)>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let (at, id) = token
        .split_once('/')
        .filter(|(at, id)| {
            chrono::DateTime::parse_from_rfc3339(at).is_ok() && uuid::Uuid::parse_str(id).is_ok()
        })
        .ok_or_else(|| invalid("page_token", "is not a token this service gave"))?;
    Ok(Some((at.to_owned(), id.to_owned())))
}

fn optional(value: String) -> Option<String> {
    let value = value.trim().to_owned();
    (!value.is_empty()).then_some(value)
}

#[tonic::async_trait]
impl SupportService for SupportApi {
    async fn open_case(&self, request: Request<pb::OpenCaseRequest>) -> Answer<pb::Case> {
        let ctx = self.requests.context(&request)?;
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let channel = channel(r.channel)?;
        match self.sight(&caller) {
            Sight::Customer(me) if me != r.customer_id.trim() => {
                return Err(Status::permission_denied(
                    "a customer opens cases for themself only",
                ));
            }
            Sight::Customer(_) if matches!(channel, Channel::Agent | Channel::Platform) => {
                return Err(invalid(
                    "channel",
                    "a customer writes by web, chat, email or phone",
                ));
            }
            // The desk sets how urgent a case is, not the one who writes it.
            Sight::Customer(_) if priority(r.priority)? > Priority::Normal => {
                return Err(Status::permission_denied(
                    "priority: the desk sets it; a customer's case opens as normal",
                ));
            }
            Sight::Customer(_) | Sight::All | Sight::Team(_) | Sight::Nothing => {}
        }
        let country = r.country.map(|c| c.value).unwrap_or_default();
        let country = aftersales_core::types::CountryCode::parse("country", &country)
            .map_err(|e| status(e.into()))?
            .to_string();
        let new = NewCase {
            customer_id: r.customer_id.trim().to_owned(),
            country,
            language: r.language,
            channel,
            category: category(r.category)?,
            priority: priority(r.priority)?,
            device_imei: optional(r.device_imei),
            repair_order_id: optional(r.repair_order_id),
            source: None,
            subject: r.subject,
            text: r.text,
            attachments: attachments(r.attachments),
        };
        let view = self.app.open(new, &ctx).await.map_err(status)?;
        Ok(Response::new(case_to_proto(&view)))
    }

    async fn get_case(&self, request: Request<pb::CaseRef>) -> Answer<pb::CaseDetail> {
        let caller = Caller::of(&request);
        let case_id = request.into_inner().case_id;
        let view = self.visible(&caller, &case_id).await?;
        let staff = !matches!(self.sight(&caller), Sight::Customer(_));
        let history = self.app.history(&case_id).await.map_err(status)?;
        let subject = history
            .iter()
            .find_map(|h| {
                if let Event::CaseOpened { subject, .. } = &h.event {
                    Some(subject.clone())
                } else {
                    None
                }
            })
            .unwrap_or_default();
        Ok(Response::new(pb::CaseDetail {
            case: Some(case_to_proto(&view)),
            subject,
            history: history
                .iter()
                .filter_map(|h| entry_to_proto(h, staff))
                .collect(),
        }))
    }

    async fn list_cases(
        &self,
        request: Request<pb::ListCasesRequest>,
    ) -> Answer<pb::ListCasesResponse> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        if r.limit > MAX_PAGE {
            return Err(invalid("limit", format!("at most {MAX_PAGE}")));
        }
        let limit = if r.limit == 0 { DEFAULT_PAGE } else { r.limit };
        let team_id = optional(r.team_id);
        if let Some(team) = &team_id
            && self.app.teams().get(team).is_none()
        {
            return Err(invalid("team_id", format!("{team:?} is not a team")));
        }
        let mut filter = CaseFilter {
            team_id,
            agent_id: optional(r.agent_id),
            status: status_filter(r.status)?,
            customer_id: optional(r.customer_id),
            open_only: r.open_only,
            visible_to_team: None,
            after: parse_page_token(&r.page_token)?,
            limit: i64::from(limit),
        };
        match self.sight(&caller) {
            Sight::All => {}
            Sight::Customer(me) => {
                if filter.customer_id.as_ref().is_some_and(|c| *c != me) {
                    return Err(Status::permission_denied(
                        "a customer sees their own cases only",
                    ));
                }
                filter.customer_id = Some(me);
            }
            Sight::Team(team) => filter.visible_to_team = Some(team),
            Sight::Nothing => {
                return Err(Status::permission_denied("you are not in a support team"));
            }
        }
        let cases = self.app.list(&filter).await.map_err(status)?;
        let next_page_token = if cases.len() == limit as usize {
            cases.last().map(page_token).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListCasesResponse {
            cases: cases.iter().map(case_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn assign_case(&self, request: Request<pb::AssignCaseRequest>) -> Answer<pb::Case> {
        let ctx = self.requests.context(&request)?;
        let caller = Caller::of(&request);
        let r = request.into_inner();
        self.visible(&caller, &r.case_id).await?;
        let agent = optional(r.agent_id);
        let view = self
            .app
            .assign(&r.case_id, agent.as_deref(), &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(case_to_proto(&view)))
    }

    async fn add_entry(&self, request: Request<pb::AddEntryRequest>) -> Answer<pb::Case> {
        let ctx = self.requests.context(&request)?;
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let view = self.visible(&caller, &r.case_id).await?;
        let kind = match pb::EntryKind::try_from(r.kind) {
            Ok(pb::EntryKind::CustomerMessage) => EntryKind::CustomerMessage,
            Ok(pb::EntryKind::AgentReply) => EntryKind::AgentReply,
            Ok(pb::EntryKind::InternalNote) => EntryKind::InternalNote,
            Ok(pb::EntryKind::Unspecified) | Err(_) => {
                return Err(invalid(
                    "kind",
                    "must be a customer message, a reply or a note",
                ));
            }
        };
        let customer = matches!(self.sight(&caller), Sight::Customer(_));
        if customer != (kind == EntryKind::CustomerMessage) && caller.principal().is_some() {
            return Err(Status::permission_denied(if customer {
                "a customer writes customer messages only"
            } else {
                "staff reply or note; the customer's own messages come from them"
            }));
        }
        let author = if kind == EntryKind::CustomerMessage {
            view.state.customer_id.clone()
        } else {
            Self::author(&caller)
        };
        let view = self
            .app
            .add_entry(
                &r.case_id,
                kind,
                &author,
                r.text,
                attachments(r.attachments),
                &ctx,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(case_to_proto(&view)))
    }

    async fn wait_on_customer(&self, request: Request<pb::CaseRef>) -> Answer<pb::Case> {
        let ctx = self.requests.context(&request)?;
        let caller = Caller::of(&request);
        let case_id = request.into_inner().case_id;
        self.visible(&caller, &case_id).await?;
        let view = self
            .app
            .wait_on_customer(&case_id, &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(case_to_proto(&view)))
    }

    async fn resolve_case(&self, request: Request<pb::ResolveCaseRequest>) -> Answer<pb::Case> {
        let ctx = self.requests.context(&request)?;
        let caller = Caller::of(&request);
        let r = request.into_inner();
        self.visible(&caller, &r.case_id).await?;
        let view = self
            .app
            .resolve(&r.case_id, r.summary, &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(case_to_proto(&view)))
    }

    async fn close_case(&self, request: Request<pb::CaseRef>) -> Answer<pb::Case> {
        let ctx = self.requests.context(&request)?;
        let caller = Caller::of(&request);
        let case_id = request.into_inner().case_id;
        self.visible(&caller, &case_id).await?;
        let view = self.app.close(&case_id, &ctx).await.map_err(status)?;
        Ok(Response::new(case_to_proto(&view)))
    }

    async fn reopen_case(&self, request: Request<pb::ReopenCaseRequest>) -> Answer<pb::Case> {
        let ctx = self.requests.context(&request)?;
        let caller = Caller::of(&request);
        let r = request.into_inner();
        self.visible(&caller, &r.case_id).await?;
        let view = self
            .app
            .reopen(&r.case_id, r.reason, &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(case_to_proto(&view)))
    }

    async fn escalate_case(&self, request: Request<pb::EscalateCaseRequest>) -> Answer<pb::Case> {
        let ctx = self.requests.context(&request)?;
        let caller = Caller::of(&request);
        let r = request.into_inner();
        self.visible(&caller, &r.case_id).await?;
        let customer = matches!(self.sight(&caller), Sight::Customer(_));
        let reason = match (pb::EscalationReason::try_from(r.reason), customer) {
            (
                Ok(pb::EscalationReason::Unspecified | pb::EscalationReason::CustomerRequest),
                true,
            ) => EscalationReason::CustomerRequest,
            (Ok(pb::EscalationReason::Unspecified | pb::EscalationReason::Agent), false) => {
                EscalationReason::Agent
            }
            (Ok(pb::EscalationReason::CustomerRequest), false) => EscalationReason::CustomerRequest,
            (Ok(pb::EscalationReason::SlaBreach), _) => {
                return Err(invalid("reason", "SLA breaches escalate by themselves"));
            }
            (Ok(pb::EscalationReason::Agent), true) | (Err(_), _) => {
                return Err(invalid("reason", "a customer asks: CUSTOMER_REQUEST"));
            }
        };
        let view = self
            .app
            .escalate(&r.case_id, reason, r.note, &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(case_to_proto(&view)))
    }

    async fn list_teams(
        &self,
        _request: Request<pb::ListTeamsRequest>,
    ) -> Answer<pb::ListTeamsResponse> {
        let teams = self
            .app
            .teams()
            .all()
            .iter()
            .map(|t| pb::Team {
                team_id: t.id.clone(),
                name: t.name.clone(),
                tier: public::tier(t.tier).into(),
                time_zone: t.calendar.zone().name().to_owned(),
                countries: t.countries.clone(),
                languages: t.languages.clone(),
                topics: t
                    .topics
                    .iter()
                    .map(|c| public::category(*c).into())
                    .collect(),
                agent_ids: t.agents.iter().map(|a| a.id.clone()).collect(),
            })
            .collect();
        Ok(Response::new(pb::ListTeamsResponse { teams }))
    }

    async fn get_workload(&self, request: Request<pb::GetWorkloadRequest>) -> Answer<pb::Workload> {
        let team = optional(request.into_inner().team_id);
        let (agents, queues) = self.app.workload(team.as_deref()).await.map_err(status)?;
        Ok(Response::new(pb::Workload {
            agents: agents
                .into_iter()
                .map(|a| pb::AgentLoad {
                    agent_id: a.agent_id,
                    team_id: a.team_id,
                    open_cases: a.open_cases,
                    on_shift: a.on_shift,
                })
                .collect(),
            teams: queues
                .into_iter()
                .map(|q| pb::TeamQueue {
                    team_id: q.team_id,
                    unassigned: q.unassigned,
                    open_cases: q.open_cases,
                    breached: q.breached,
                    oldest_unassigned_at: q.oldest_unassigned_at.map(timestamp_to_proto),
                })
                .collect(),
        }))
    }

    async fn search_articles(
        &self,
        request: Request<pb::SearchArticlesRequest>,
    ) -> Answer<pb::SearchArticlesResponse> {
        let r = request.into_inner();
        let limit = if r.limit == 0 { DEFAULT_HITS } else { r.limit };
        let hits = self
            .knowledge
            .search(
                &r.language,
                &r.query,
                usize::try_from(limit).unwrap_or(usize::MAX),
            )
            .map_err(status)?;
        Ok(Response::new(hits_to_proto(hits)))
    }

    async fn get_article(
        &self,
        request: Request<pb::GetArticleRequest>,
    ) -> Answer<pb::KnowledgeArticle> {
        let r = request.into_inner();
        let version = (r.version != 0).then_some(r.version);
        let article = self
            .knowledge
            .get(r.article_id.trim(), r.language.trim(), version)
            .await
            .map_err(status)?;
        Ok(Response::new(article_to_proto(article)))
    }

    async fn publish_article(
        &self,
        request: Request<pb::PublishArticleRequest>,
    ) -> Answer<pb::KnowledgeArticle> {
        let ctx = self.requests.context(&request)?;
        let author = Self::author(&Caller::of(&request));
        let r = request.into_inner();
        let draft = Draft {
            article_id: r.article_id.trim().to_owned(),
            language: r.language.trim().to_owned(),
            title: r.title,
            body: r.body,
            categories: r
                .categories
                .into_iter()
                .map(category)
                .collect::<Result<_, _>>()?,
        };
        let article = self
            .knowledge
            .publish(draft, &author, &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(article_to_proto(article)))
    }

    async fn suggest_articles(
        &self,
        request: Request<pb::CaseRef>,
    ) -> Answer<pb::SearchArticlesResponse> {
        let caller = Caller::of(&request);
        let case_id = request.into_inner().case_id;
        let view = self.visible(&caller, &case_id).await?;
        let history = self.app.history(&case_id).await.map_err(status)?;
        // What the customer said: the opening and their messages since, the
        // latest last, cut to what a query may be.
        let mut said = String::new();
        for h in &history {
            if let Event::CaseOpened { subject, text, .. } = &h.event {
                said.push_str(subject);
                said.push('\n');
                said.push_str(text);
            } else if let Event::EntryAdded {
                kind: EntryKind::CustomerMessage,
                text,
                ..
            } = &h.event
            {
                said.push('\n');
                said.push_str(text);
            }
        }
        let query = cut(&said, crate::domain::words::MAX_QUERY_BYTES);
        if query.trim().is_empty() {
            return Ok(Response::new(pb::SearchArticlesResponse::default()));
        }
        let hits = self
            .knowledge
            .search(&view.state.language, query, SUGGESTIONS)
            .map_err(status)?;
        Ok(Response::new(hits_to_proto(hits)))
    }

    async fn list_self_help(
        &self,
        request: Request<pb::ListSelfHelpRequest>,
    ) -> Answer<pb::ListSelfHelpResponse> {
        let language = request.into_inner().language;
        crate::domain::article::check_language(&language).map_err(|e| status(e.into()))?;
        let trees = self
            .selfhelp
            .trees()
            .all()
            .iter()
            .map(|t| pb::SelfHelpTree {
                tree_id: t.id.clone(),
                title: t.title.get(&language).cloned().unwrap_or_default(),
                category: public::category(t.category).into(),
            })
            .collect();
        Ok(Response::new(pb::ListSelfHelpResponse { trees }))
    }

    async fn start_self_help(
        &self,
        request: Request<pb::StartSelfHelpRequest>,
    ) -> Answer<pb::SelfHelpStep> {
        let ctx = self.requests.context(&request)?;
        let caller = Caller::of(&request);
        let customer = match self.sight(&caller) {
            Sight::Customer(me) => Some(me),
            Sight::All | Sight::Team(_) | Sight::Nothing => None,
        };
        let r = request.into_inner();
        let imei = optional(r.device_imei);
        let walk = self
            .selfhelp
            .start(
                &r.tree_id,
                r.language.trim(),
                customer,
                imei.as_deref(),
                &ctx,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(self.step(&walk).await))
    }

    async fn answer_self_help(
        &self,
        request: Request<pb::AnswerSelfHelpRequest>,
    ) -> Answer<pb::SelfHelpStep> {
        let ctx = self.requests.context(&request)?;
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let walk = self.selfhelp.get(&r.session_id).await.map_err(status)?;
        if let Sight::Customer(me) = self.sight(&caller)
            && walk.state.customer_id.as_deref() != Some(me.as_str())
        {
            return Err(Status::not_found(format!(
                "self-help session {} not found",
                r.session_id.trim()
            )));
        }
        let answer = usize::try_from(r.answer).unwrap_or(usize::MAX);
        let walk = self
            .selfhelp
            .answer(&walk, answer, &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(self.step(&walk).await))
    }

    async fn report_software_build(
        &self,
        request: Request<pb::ReportSoftwareBuildRequest>,
    ) -> Answer<pb::SoftwareStatus> {
        let ctx = self.requests.context(&request)?;
        let r = request.into_inner();
        let phone = Phone {
            imei: r.device_imei,
            model: r.model.trim().to_owned(),
            build: r.build.trim().to_owned(),
            country: r.country.map(|c| c.value).unwrap_or_default(),
        };
        let found = self
            .selfhelp
            .report_build(phone, &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(self.software(found, "en")))
    }

    async fn get_software_status(
        &self,
        request: Request<pb::GetSoftwareStatusRequest>,
    ) -> Answer<pb::SoftwareStatus> {
        let r = request.into_inner();
        let language = if r.language.is_empty() {
            "en".to_owned()
        } else {
            r.language
        };
        crate::domain::article::check_language(&language).map_err(|e| status(e.into()))?;
        let phone = self.selfhelp.phone(&r.device_imei).await.map_err(status)?;
        let found = self
            .selfhelp
            .status_of(&phone, self.app.now().date_naive())
            .map_err(status)?;
        Ok(Response::new(self.software(found, &language)))
    }

    async fn get_self_help_figures(
        &self,
        request: Request<pb::GetSelfHelpFiguresRequest>,
    ) -> Answer<pb::SelfHelpFigures> {
        let from = match request.into_inner().from {
            Some(t) => aftersales_runtime::request::timestamp_from_proto("from", Some(&t))?,
            None => self.app.now() - chrono::Duration::days(28),
        };
        let found = crate::projections::walk_figures(self.app.store(), from)
            .await
            .map_err(|e| status(e.into()))?;
        let n = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
        Ok(Response::new(pb::SelfHelpFigures {
            trees: found
                .into_iter()
                .map(
                    |(tree_id, started, ended, deflected, repairs)| pb::SelfHelpTreeFigures {
                        tree_id,
                        started: n(started),
                        ended: n(ended),
                        deflected: n(deflected),
                        repairs: n(repairs),
                    },
                )
                .collect(),
        }))
    }

    async fn get_survey(&self, request: Request<pb::SurveyLink>) -> Answer<pb::Survey> {
        let r = request.into_inner();
        let survey = self
            .app
            .surveys()
            .get(&r.survey_id, &r.token)
            .await
            .map_err(status)?;
        Ok(Response::new(survey_to_proto(&survey)))
    }

    async fn answer_survey(&self, request: Request<pb::AnswerSurveyRequest>) -> Answer<pb::Survey> {
        let ctx = self.requests.context(&request)?;
        let r = request.into_inner();
        let survey = self
            .app
            .surveys()
            .answer(&r.survey_id, &r.token, r.score, r.comment, &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(survey_to_proto(&survey)))
    }

    async fn list_survey_answers(
        &self,
        request: Request<pb::ListSurveyAnswersRequest>,
    ) -> Answer<pb::ListSurveyAnswersResponse> {
        let r = request.into_inner();
        let group = quality_group(r.group_by)?;
        let answers = self
            .app
            .surveys()
            .answers(group, &r.group_id, r.limit)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListSurveyAnswersResponse {
            answers: answers
                .into_iter()
                .map(|a| {
                    let survey = survey_to_proto(&a.survey);
                    pb::SurveyAnswer {
                        survey_id: survey.survey_id,
                        subject: survey.subject,
                        case_id: survey.case_id,
                        repair_order_id: survey.repair_order_id,
                        score: survey.score,
                        comment: a.comment,
                        answered_at: a.survey.answered.map(|(_, at)| timestamp_to_proto(at)),
                    }
                })
                .collect(),
        }))
    }

    async fn get_quality_figures(
        &self,
        request: Request<pb::GetQualityFiguresRequest>,
    ) -> Answer<pb::QualityFigures> {
        let (_, rows) = self.quality(request.into_inner()).await?;
        Ok(Response::new(pb::QualityFigures {
            rows: rows.into_iter().map(quality_row_to_proto).collect(),
        }))
    }

    async fn export_quality_figures(
        &self,
        request: Request<pb::GetQualityFiguresRequest>,
    ) -> Answer<pb::CsvFile> {
        let (group, rows) = self.quality(request.into_inner()).await?;
        let (first, last) = match (rows.first(), rows.last()) {
            (Some(first), Some(last)) => (first.week.clone(), last.week.clone()),
            _ => ("none".to_owned(), "none".to_owned()),
        };
        Ok(Response::new(pb::CsvFile {
            filename: format!("support-quality-{}-{first}-{last}.csv", group.as_str()),
            content: crate::quality::csv(group, &rows),
        }))
    }
}

fn quality_group(value: i32) -> Result<QualityGroup, Status> {
    match pb::QualityGroup::try_from(value) {
        Ok(pb::QualityGroup::Agent) => Ok(QualityGroup::Agent),
        Ok(pb::QualityGroup::Team) => Ok(QualityGroup::Team),
        Ok(pb::QualityGroup::Center) => Ok(QualityGroup::Center),
        Ok(pb::QualityGroup::Technician) => Ok(QualityGroup::Technician),
        Ok(pb::QualityGroup::Unspecified) | Err(_) => Err(invalid(
            "group_by",
            "must be agent, team, center or technician",
        )),
    }
}

fn survey_to_proto(survey: &SurveyState) -> pb::Survey {
    let (subject, case_id, repair_order_id) = match &survey.about {
        About::Case { case_id, .. } => (pb::SurveySubject::Case, case_id.clone(), String::new()),
        About::Repair { order_id, .. } => {
            (pb::SurveySubject::Repair, String::new(), order_id.clone())
        }
    };
    pb::Survey {
        survey_id: survey.survey_id.clone(),
        subject: subject.into(),
        case_id,
        repair_order_id,
        language: survey.language.clone(),
        sent_at: Some(timestamp_to_proto(survey.sent_at)),
        expires_at: Some(timestamp_to_proto(survey.expires_at)),
        answered: survey.answered.is_some(),
        score: survey.answered.map(|(score, _)| score).unwrap_or_default(),
    }
}

fn quality_row_to_proto(r: QualityRow) -> pb::QualityRow {
    pb::QualityRow {
        week: r.week,
        group_id: r.group_id,
        cases_resolved: r.cases_resolved,
        mean_first_response_seconds: r.mean_first_response_seconds,
        mean_resolution_seconds: r.mean_resolution_seconds,
        sla_attainment: r.sla_attainment,
        first_contact_resolution: r.first_contact_resolution,
        reopen_rate: r.reopen_rate,
        escalation_rate: r.escalation_rate,
        survey_answers: r.survey_answers,
        mean_satisfaction: r.mean_satisfaction,
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
