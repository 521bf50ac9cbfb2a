//! Quality figures per agent, team, service center or technician by ISO week:
//! response and resolution times, SLA attainment, first-contact resolution,
//! reopen and escalation rates (of the cases resolved that week), and
//! satisfaction (of the survey answers given that week). Served by the API and
//! exported as CSV.

use aftersales_core::Error;
use aftersales_eventstore::AnyEventStore;
use chrono::{DateTime, Datelike as _, Duration, NaiveDate, Utc, Weekday};

use crate::app::AppResult;
use crate::domain::DomainError;
use crate::projections::{self, QualityCounts, QualityGroup};

/// Weeks asked for at most, and by default.
pub const MAX_WEEKS: u32 = 53;
pub const DEFAULT_WEEKS: u32 = 4;

/// One group's figures in one week.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityRow {
    pub week: String,
    pub group_id: String,
    pub cases_resolved: u32,
    pub mean_first_response_seconds: f64,
    pub mean_resolution_seconds: f64,
    pub sla_attainment: f64,
    pub first_contact_resolution: f64,
    pub reopen_rate: f64,
    pub escalation_rate: f64,
    pub survey_answers: u32,
    pub mean_satisfaction: f64,
}

fn monday_of(week: &str) -> Option<NaiveDate> {
    let (year, number) = week.trim().split_once("-W")?;
    NaiveDate::from_isoywd_opt(year.parse().ok()?, number.parse().ok()?, Weekday::Mon)
}

/// The first and last ISO week of `weeks` weeks from `from_week` (empty: the
/// last `weeks` weeks up to the one of `now`).
pub fn week_range(from_week: &str, weeks: u32, now: DateTime<Utc>) -> AppResult<(String, String)> {
    let weeks = match weeks {
        0 => DEFAULT_WEEKS,
        n if n > MAX_WEEKS => {
            return Err(
                DomainError::invalid("weeks", format!("must be at most {MAX_WEEKS}")).into(),
            );
        }
        n => n,
    };
    let span = Duration::weeks(i64::from(weeks) - 1);
    let first = if from_week.trim().is_empty() {
        let today = now.date_naive();
        today - Duration::days(i64::from(today.weekday().num_days_from_monday())) - span
    } else {
        monday_of(from_week).ok_or_else(|| {
            Error::from(DomainError::invalid(
                "from_week",
                format!("{from_week:?} is not an ISO week such as 2026-W49"),
            ))
        })?
    };
    let at = |day: NaiveDate| projections::iso_week(day.and_time(chrono::NaiveTime::MIN).and_utc());
    Ok((at(first), at(first + span)))
}

fn share(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    // Counts of cases: far inside f64's exact integers.
    #[allow(clippy::cast_precision_loss)]
    let (part, whole) = (part as f64, whole as f64);
    part / whole
}

fn row(week: String, group_id: String, c: QualityCounts) -> QualityRow {
    let n = c.cases_resolved;
    QualityRow {
        week,
        group_id,
        cases_resolved: u32::try_from(n).unwrap_or(u32::MAX),
        mean_first_response_seconds: c.mean_first_response_seconds.unwrap_or(0.0),
        mean_resolution_seconds: c.mean_resolution_seconds.unwrap_or(0.0),
        sla_attainment: share(n - c.breached, n),
        first_contact_resolution: share(c.first_contact, n),
        reopen_rate: share(c.reopened, n),
        escalation_rate: share(c.escalated, n),
        survey_answers: u32::try_from(c.survey_answers).unwrap_or(u32::MAX),
        mean_satisfaction: c.mean_score.unwrap_or(0.0),
    }
}

/// Figures per week and group, oldest week first.
pub async fn figures(
    store: &AnyEventStore,
    group: QualityGroup,
    from_week: &str,
    weeks: u32,
    now: DateTime<Utc>,
) -> AppResult<Vec<QualityRow>> {
    let (first, last) = week_range(from_week, weeks, now)?;
    let counts = projections::quality(store, group, &first, &last).await?;
    Ok(counts
        .into_iter()
        .map(|((week, id), c)| row(week, id, c))
        .collect())
}

/// A CSV field: quoted when it must be, and never read as a formula by a
/// spreadsheet (ids come from data).
fn field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// The figures as RFC 4180 CSV, a header line first.
pub fn csv(group: QualityGroup, rows: &[QualityRow]) -> String {
    let mut out = format!(
        "week,{},cases_resolved,mean_first_response_seconds,mean_resolution_seconds,\
         sla_attainment,first_contact_resolution,reopen_rate,escalation_rate,\
         survey_answers,mean_satisfaction\r\n",
        group.as_str()
    );
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{:.0},{:.0},{:.3},{:.3},{:.3},{:.3},{},{:.2}\r\n",
            field(&r.week),
            field(&r.group_id),
            r.cases_resolved,
            r.mean_first_response_seconds,
            r.mean_resolution_seconds,
            r.sla_attainment,
            r.first_contact_resolution,
            r.reopen_rate,
            r.escalation_rate,
            r.survey_answers,
            r.mean_satisfaction,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_are_iso_weeks_across_the_year_end() {
        let now: DateTime<Utc> = "2027-01-06T12:00:00Z".parse().unwrap();
        assert_eq!(
            week_range("", 3, now).unwrap(),
            ("2026-W52".into(), "2027-W01".into())
        );
        assert_eq!(
            week_range("2026-W53", 1, now).unwrap(),
            ("2026-W53".into(), "2026-W53".into())
        );
        assert_eq!(
            week_range("2026-W49", 0, now).unwrap(),
            ("2026-W49".into(), "2026-W52".into())
        );
        for bad in ["2026-49", "2025-W53", "W49", "2026-W", "x"] {
            assert!(week_range(bad, 1, now).is_err(), "{bad}");
        }
        assert!(week_range("", MAX_WEEKS + 1, now).is_err());
    }

    #[test]
    fn csv_quotes_and_defuses_what_data_holds() {
        let counts = QualityCounts {
            cases_resolved: 4,
            mean_first_response_seconds: Some(90.4),
            mean_resolution_seconds: Some(3600.0),
            breached: 1,
            first_contact: 2,
            reopened: 1,
            escalated: 0,
            survey_answers: 2,
            mean_score: Some(4.5),
        };
        let rows = [
            row("2026-W49".into(), "de-front".into(), counts),
            row(
                "2026-W49".into(),
                "=cmd,\"x\"".into(),
                QualityCounts::default(),
            ),
        ];
        let text = csv(QualityGroup::Team, &rows);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert!(lines[0].starts_with("week,team,cases_resolved,"));
        assert_eq!(
            lines[1],
            "2026-W49,de-front,4,90,3600,0.750,0.500,0.250,0.000,2,4.50"
        );
        assert_eq!(
            lines[2],
            "2026-W49,\"'=cmd,\"\"x\"\"\",0,0,0,0.000,0.000,0.000,0.000,0,0.00"
        );
    }
}
