//! A satisfaction survey, opened from the link in the customer's message: no
//! sign-in, the link's signed token is the key. One score (1 to 5) and an
//! optional comment; once answered, the link says so.

use aftersales_proto::support as spb;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::{App, Visit, forbidden, form_field, same_origin};

#[derive(Debug, Deserialize)]
pub struct SurveyQuery {
    t: Option<String>,
    lang: Option<String>,
}

/// A token is 43 base64url characters; anything far longer is not one.
const MAX_TOKEN: usize = 100;
/// Comments longer than the service takes are refused before asking it.
const MAX_COMMENT: usize = 2_000;

fn link(survey_id: &str, token: &str) -> Option<spb::SurveyLink> {
    (survey_id.len() <= 64 && !token.is_empty() && token.len() <= MAX_TOKEN).then(|| {
        spb::SurveyLink {
            survey_id: survey_id.to_owned(),
            token: token.to_owned(),
        }
    })
}

/// What the survey asks about, in the reader's words.
fn question(app: &App, language: &str, survey: &spb::Survey) -> String {
    if survey.subject() == spb::SurveySubject::Repair {
        app.t(
            language,
            "survey-about-repair",
            &[("order", &survey.repair_order_id)],
        )
    } else {
        let case: String = survey.case_id.chars().take(8).collect();
        app.t(
            language,
            "survey-about-case",
            &[("case", &case.to_uppercase())],
        )
    }
}

fn show(
    app: &App,
    visit: &Visit,
    status: StatusCode,
    survey: &spb::Survey,
    token: &str,
    error: Option<String>,
) -> Response {
    let language = visit.language;
    let title = app.t(language, "survey-title", &[]);
    let scores: Vec<_> = (1..=5)
        .map(|n: u32| {
            minijinja::context! {
                value => n,
                label => app.t(language, &format!("survey-score-{n}"), &[]),
            }
        })
        .collect();
    app.page(
        visit,
        status,
        &title,
        "survey.html",
        minijinja::context! {
            title => &title,
            question => question(app, language, survey),
            survey_id => &survey.survey_id,
            token => token,
            answered => survey.answered,
            scores => scores,
            error => error,
            max_comment => MAX_COMMENT,
        },
    )
}

/// `/survey/<id>?t=<token>`: the question, or that it is already answered.
pub async fn page(
    State(app): State<App>,
    headers: HeaderMap,
    Path(survey_id): Path<String>,
    Query(query): Query<SurveyQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let token = query.t.unwrap_or_default();
    let Some(request) = link(&survey_id, &token) else {
        return app.not_found(&visit);
    };
    match app.inner.support.clone().get_survey(request).await {
        Ok(survey) => show(
            &app,
            &visit,
            StatusCode::OK,
            &survey.into_inner(),
            &token,
            None,
        ),
        Err(status) => app.refused(&visit, &status),
    }
}

/// The answer: thanks, or the question again with what was wrong.
pub async fn answer(
    State(app): State<App>,
    headers: HeaderMap,
    Path(survey_id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let visit = app.visit(&headers, None);
    if !same_origin(&headers, app.inner.secure) {
        return forbidden(&app, &visit);
    }
    let token = form_field(&form, "t");
    let Some(request) = link(&survey_id, token) else {
        return app.not_found(&visit);
    };
    let mut support = app.inner.support.clone();
    let survey = match support.get_survey(request).await {
        Ok(survey) => survey.into_inner(),
        Err(status) => return app.refused(&visit, &status),
    };
    let language = visit.language;
    let score = form_field(&form, "score").parse::<u32>().unwrap_or(0);
    let comment = form_field(&form, "comment").trim();
    if !(1..=5).contains(&score) || comment.len() > MAX_COMMENT {
        let error = app.t(language, "survey-choose", &[]);
        return show(
            &app,
            &visit,
            StatusCode::BAD_REQUEST,
            &survey,
            token,
            Some(error),
        );
    }
    let answered = support
        .answer_survey(spb::AnswerSurveyRequest {
            survey_id: survey.survey_id.clone(),
            token: token.to_owned(),
            score,
            comment: comment.to_owned(),
        })
        .await;
    match answered {
        Ok(_) => {
            let title = app.t(language, "survey-thanks-title", &[]);
            app.page(
                &visit,
                StatusCode::OK,
                &title,
                "survey.html",
                minijinja::context! { title => &title, thanked => true },
            )
        }
        // Answered meanwhile (another tab), or closed: the page says which.
        Err(status) if status.code() == tonic::Code::FailedPrecondition => {
            let error = if survey.answered {
                None
            } else {
                Some(app.t(language, "survey-closed", &[]))
            };
            let mut shown = survey;
            shown.answered = true;
            show(&app, &visit, StatusCode::CONFLICT, &shown, token, error)
        }
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            let error = app.t(language, "survey-choose", &[]);
            show(
                &app,
                &visit,
                StatusCode::BAD_REQUEST,
                &survey,
                token,
                Some(error),
            )
        }
        Err(status) => app.refused(&visit, &status),
    }
}
