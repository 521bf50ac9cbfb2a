//! An operator's view of the platform's background work: every service's read
//! models, relay and consumers with how far each is behind, and the events
//! consumers gave up on, each with a button to apply it again. Every figure is
//! the service's own answer (`aftersales.operations.v1.Operations`).

use aftersales_proto::operations::{
    self as opb, GetBacklogRequest, ListDeadLettersRequest, ReplayDeadLetterRequest, ReplayOutcome,
};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use super::{App, Visit, authorized, form_field};

#[derive(Debug, Deserialize)]
pub struct OperationsQuery {
    lang: Option<String>,
    /// What the last replay did, shown once.
    replayed: Option<String>,
}

#[derive(Debug, Serialize)]
struct LagView {
    name: String,
    behind: u64,
    oldest: String,
}

#[derive(Debug, Serialize)]
struct ConsumerView {
    consumer: String,
    source: String,
    pending: u64,
    dead_letters: u64,
}

#[derive(Debug, Serialize)]
struct LetterView {
    consumer: String,
    id: u64,
    event_type: String,
    event_id: String,
    attempts: u32,
    error: String,
    failed_at: String,
}

#[derive(Debug, Serialize)]
struct ServiceView {
    name: &'static str,
    /// Why its figures are missing, when it did not answer.
    unreachable: Option<String>,
    transport: String,
    log_position: u64,
    projections: Vec<LagView>,
    relay: Option<LagView>,
    consumers: Vec<ConsumerView>,
    letters: Vec<LetterView>,
}

pub async fn overview(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<OperationsQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let Some((_, token)) = app.signed_in(&visit).await else {
        return Redirect::to("/staff/sign-in").into_response();
    };
    let services = futures::future::join_all(
        app.inner
            .operations
            .iter()
            .map(|(name, client)| service_view(&app, &visit, name, client.clone(), &token)),
    )
    .await;
    let notice = query.replayed.as_deref().and_then(|outcome| {
        let id = match outcome {
            "applied" => "ops-replay-applied",
            "queued" => "ops-replay-queued",
            "failed" => "ops-replay-failed",
            _ => return None,
        };
        Some(app.t(visit.language, id, &[]))
    });
    let title = app.t(visit.language, "ops-title", &[]);
    app.page(
        &visit,
        StatusCode::OK,
        &title,
        "operations.html",
        minijinja::context! { title => &title, services => services, notice => notice },
    )
}

async fn service_view(
    app: &App,
    visit: &Visit,
    name: &'static str,
    mut client: opb::operations_client::OperationsClient<tonic::transport::Channel>,
    token: &str,
) -> ServiceView {
    let language = visit.language;
    let mut letters_client = client.clone();
    let (backlog, letters) = futures::join!(
        client.get_backlog(authorized(GetBacklogRequest {}, token)),
        letters_client.list_dead_letters(authorized(
            ListDeadLettersRequest {
                consumer: String::new(),
                page_size: 500,
                page_token: String::new(),
            },
            token,
        )),
    );
    let lag = |l: opb::Lag| LagView {
        oldest: if l.oldest_pending_at.is_some() {
            app.moment(language, l.oldest_pending_at.as_ref())
        } else {
            app.t(language, "ops-caught-up", &[])
        },
        name: l.name,
        behind: l.positions_behind,
    };
    let (backlog, letters) = match (backlog, letters) {
        (Ok(backlog), Ok(letters)) => (backlog.into_inner(), letters.into_inner()),
        (Err(status), _) | (_, Err(status)) => {
            tracing::warn!(service = name, code = ?status.code(), "operations figures not available");
            return ServiceView {
                name,
                unreachable: Some(app.t(
                    language,
                    "ops-unreachable",
                    &[("reason", status.message())],
                )),
                transport: String::new(),
                log_position: 0,
                projections: Vec::new(),
                relay: None,
                consumers: Vec::new(),
                letters: Vec::new(),
            };
        }
    };
    ServiceView {
        name,
        unreachable: None,
        transport: backlog.transport,
        log_position: backlog.log_position,
        projections: backlog.projections.into_iter().map(lag).collect(),
        relay: backlog.relay.map(lag),
        consumers: backlog
            .consumers
            .into_iter()
            .map(|c| ConsumerView {
                consumer: c.consumer,
                source: c.source,
                pending: c.pending,
                dead_letters: c.dead_letters,
            })
            .collect(),
        letters: letters
            .dead_letters
            .into_iter()
            .map(|l| LetterView {
                failed_at: app.moment(language, l.failed_at.as_ref()),
                consumer: l.consumer,
                id: l.id,
                event_type: l.event_type,
                event_id: l.event_id,
                attempts: l.attempts,
                error: l.error,
            })
            .collect(),
    }
}

/// Applies one dead letter again, on the service whose consumer it is.
pub async fn replay(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (visit, _, token) = match app.acting(&headers, form_field(&form, "csrf")).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    let service = form_field(&form, "service");
    let Some((_, client)) = app.inner.operations.iter().find(|(n, _)| *n == service) else {
        return app.not_found(&visit);
    };
    let Ok(id) = form_field(&form, "id").parse::<u64>() else {
        return app.not_found(&visit);
    };
    let request = ReplayDeadLetterRequest {
        consumer: form_field(&form, "consumer").to_owned(),
        id,
    };
    match client
        .clone()
        .replay_dead_letter(authorized(request, &token))
        .await
    {
        Ok(answer) => {
            let outcome = match answer.into_inner().outcome() {
                ReplayOutcome::Applied => "applied",
                ReplayOutcome::Queued => "queued",
                ReplayOutcome::FailedAgain | ReplayOutcome::Unspecified => "failed",
            };
            Redirect::to(&format!("/staff/operations?replayed={outcome}")).into_response()
        }
        Err(status) if status.code() == tonic::Code::NotFound => app.not_found(&visit),
        Err(status) => app.refused(&visit, &status),
    }
}
