//! The support desk's and the centers' quality by week: response and
//! resolution times, SLA attainment, first-contact resolution, reopen and
//! escalation rates, and satisfaction, per agent, team, center or technician;
//! and the same as a CSV file. Every figure is the support service's.

use aftersales_proto::support as spb;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use super::{App, authorized};

#[derive(Debug, Deserialize)]
pub struct QualityQuery {
    group: Option<String>,
    from: Option<String>,
    weeks: Option<u32>,
    lang: Option<String>,
}

const GROUPS: [(&str, spb::QualityGroup); 4] = [
    ("team", spb::QualityGroup::Team),
    ("agent", spb::QualityGroup::Agent),
    ("center", spb::QualityGroup::Center),
    ("technician", spb::QualityGroup::Technician),
];

/// What the query asks for; unknown or missing parts take their defaults.
fn request(query: &QualityQuery) -> (&'static str, spb::GetQualityFiguresRequest) {
    let (name, group) = GROUPS
        .iter()
        .find(|(name, _)| Some(*name) == query.group.as_deref())
        .copied()
        .unwrap_or(GROUPS[0]);
    let from_week = query
        .from
        .as_deref()
        .filter(|w| w.len() <= 8)
        .unwrap_or_default()
        .to_owned();
    (
        name,
        spb::GetQualityFiguresRequest {
            group_by: group.into(),
            from_week,
            weeks: query.weeks.unwrap_or(4).min(53),
        },
    )
}

#[derive(Debug, Serialize)]
struct RowView {
    week: String,
    group: String,
    resolved: u32,
    first_response: String,
    resolution: String,
    sla: String,
    first_contact: String,
    reopened: String,
    escalated: String,
    answers: u32,
    satisfaction: String,
}

fn duration(seconds: f64) -> String {
    // Whole minutes are what a reader compares.
    #[allow(clippy::cast_possible_truncation)]
    let minutes = (seconds / 60.0).round() as i64;
    if minutes < 120 {
        format!("{minutes} min")
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

fn percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

pub async fn page(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<QualityQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let Some((_, token)) = app.signed_in(&visit).await else {
        return Redirect::to("/staff/sign-in").into_response();
    };
    let (group, request) = request(&query);
    let figures = match app
        .inner
        .support
        .clone()
        .get_quality_figures(authorized(request.clone(), &token))
        .await
    {
        Ok(figures) => figures.into_inner(),
        Err(status) => return app.refused(&visit, &status),
    };
    let rows: Vec<RowView> = figures
        .rows
        .into_iter()
        .map(|r| {
            let has_cases = r.cases_resolved > 0;
            let case_figure = |text: String| if has_cases { text } else { "–".into() };
            RowView {
                week: r.week,
                group: r.group_id,
                resolved: r.cases_resolved,
                first_response: case_figure(duration(r.mean_first_response_seconds)),
                resolution: case_figure(duration(r.mean_resolution_seconds)),
                sla: case_figure(percent(r.sla_attainment)),
                first_contact: case_figure(percent(r.first_contact_resolution)),
                reopened: case_figure(percent(r.reopen_rate)),
                escalated: case_figure(percent(r.escalation_rate)),
                answers: r.survey_answers,
                satisfaction: if r.survey_answers > 0 {
                    format!("{:.1}", r.mean_satisfaction)
                } else {
                    "–".into()
                },
            }
        })
        .collect();
    let language = visit.language;
    let title = app.t(language, "desk-quality-title", &[]);
    let groups: Vec<_> = GROUPS
        .iter()
        .map(|(name, _)| {
            minijinja::context! {
                value => name,
                label => app.t(language, &format!("desk-quality-by-{name}"), &[]),
                chosen => *name == group,
            }
        })
        .collect();
    let csv = format!(
        "/staff/quality.csv?group={group}&from={}&weeks={}",
        request.from_week, request.weeks
    );
    app.page(
        &visit,
        StatusCode::OK,
        &title,
        "quality.html",
        minijinja::context! {
            title => &title,
            groups => groups,
            group_label => app.t(language, &format!("desk-quality-by-{group}"), &[]),
            from => request.from_week,
            weeks => if request.weeks == 0 { 4 } else { request.weeks },
            rows => rows,
            csv => csv,
        },
    )
}

/// The same figures as a download.
pub async fn csv(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<QualityQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let Some((_, token)) = app.signed_in(&visit).await else {
        return Redirect::to("/staff/sign-in").into_response();
    };
    let (_, request) = request(&query);
    let file = match app
        .inner
        .support
        .clone()
        .export_quality_figures(authorized(request, &token))
        .await
    {
        Ok(file) => file.into_inner(),
        Err(status) => return app.refused(&visit, &status),
    };
    // The name is the service's, of ids and weeks; anything else is dropped.
    let filename: String = file
        .filename
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        file.content,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_in_minutes_then_hours() {
        assert_eq!(duration(0.0), "0 min");
        assert_eq!(duration(1799.6), "30 min");
        assert_eq!(duration(7200.0), "2.0 h");
        assert_eq!(duration(599_400.0), "166.5 h");
        assert_eq!(percent(2.0 / 3.0), "67 %");
    }

    #[test]
    fn unknown_groups_and_long_weeks_fall_back() {
        let query = QualityQuery {
            group: Some("everyone".into()),
            from: Some("2026-W49-and-more".into()),
            weeks: Some(1000),
            lang: None,
        };
        let (group, request) = request(&query);
        assert_eq!(group, "team");
        assert_eq!(request.from_week, "");
        assert_eq!(request.weeks, 53);
    }
}
