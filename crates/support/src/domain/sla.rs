//! Service levels as versioned data: per country and priority, the working time
//! allowed to a first response and to a resolution, and when to warn. A case
//! keeps the targets in force when it was opened, so a new version never moves
//! the clocks of cases already running.
//!
//! A [`Clock`] is one running target of one case: running towards its due
//! instant in its team's working time, paused while the case waits on the
//! customer, stopped when met. Its warning and breach are each recorded once.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::calendar::BusinessCalendar;
use super::case::Priority;

/// The two promises a case carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockKind {
    FirstResponse,
    Resolution,
}

impl ClockKind {
    pub const ALL: [Self; 2] = [Self::FirstResponse, Self::Resolution];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FirstResponse => "first_response",
            Self::Resolution => "resolution",
        }
    }
}

/// What a case of one priority in one country is promised, in working minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    pub first_response_minutes: i64,
    pub resolution_minutes: i64,
    /// The share of a target after which its warning is due.
    pub warning_percent: u8,
}

impl Targets {
    pub fn minutes(&self, kind: ClockKind) -> i64 {
        match kind {
            ClockKind::FirstResponse => self.first_response_minutes,
            ClockKind::Resolution => self.resolution_minutes,
        }
    }

    /// The working time after which `kind`'s warning is due.
    pub fn warning_after(&self, kind: ClockKind) -> Duration {
        Duration::seconds(self.minutes(kind) * 60 * i64::from(self.warning_percent) / 100)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: Vec<VersionFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionFile {
    version: u32,
    effective_from: NaiveDate,
    warning_percent: i64,
    target: Vec<TargetFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    /// An ISO country code, or `*` for every country without its own line.
    country: String,
    priority: Priority,
    first_response_minutes: i64,
    resolution_minutes: i64,
}

/// One version of the service levels, in force from its day on.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyVersion {
    pub version: u32,
    pub effective_from: NaiveDate,
    targets: Vec<(String, Priority, Targets)>,
}

impl PolicyVersion {
    /// The country's own line for `priority`, else the `*` line.
    pub fn targets(&self, country: &str, priority: Priority) -> Option<Targets> {
        let line = |c: &str| {
            self.targets
                .iter()
                .find(|(country, p, _)| country == c && *p == priority)
                .map(|(_, _, t)| *t)
        };
        line(country).or_else(|| line("*"))
    }
}

/// Every version of the service levels, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaPolicy {
    versions: Vec<PolicyVersion>,
}

const BUILTIN: &str = include_str!("../../sla.toml");

impl SlaPolicy {
    pub fn builtin() -> Result<Self, String> {
        Self::parse(BUILTIN)
    }

    /// Reads the TOML shape of `sla.toml`; a bad value names where it is.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| format!("sla: {e}"))?;
        let mut versions = Vec::new();
        for (i, v) in file.version.into_iter().enumerate() {
            let at = format!("version[{i}]");
            if !(1..=99).contains(&v.warning_percent) {
                return Err(format!("{at}.warning_percent: must be 1 to 99"));
            }
            let warning_percent = u8::try_from(v.warning_percent).unwrap_or(80);
            let mut targets = Vec::new();
            for (j, t) in v.target.into_iter().enumerate() {
                let at = format!("{at}.target[{j}]");
                let country_ok = t.country == "*"
                    || (t.country.len() == 2 && t.country.bytes().all(|b| b.is_ascii_uppercase()));
                if !country_ok {
                    return Err(format!(
                        "{at}.country: {:?} is not a country code or *",
                        t.country
                    ));
                }
                for (field, minutes) in [
                    ("first_response_minutes", t.first_response_minutes),
                    ("resolution_minutes", t.resolution_minutes),
                ] {
                    if minutes <= 0 || minutes > 365 * 24 * 60 {
                        return Err(format!(
                            "{at}.{field}: must be a positive number of minutes up to a year, not {minutes}"
                        ));
                    }
                }
                if t.first_response_minutes > t.resolution_minutes {
                    return Err(format!(
                        "{at}.first_response_minutes: longer than the resolution target"
                    ));
                }
                if targets
                    .iter()
                    .any(|(c, p, _)| *c == t.country && *p == t.priority)
                {
                    return Err(format!("{at}: {} {:?} twice", t.country, t.priority));
                }
                targets.push((
                    t.country,
                    t.priority,
                    Targets {
                        first_response_minutes: t.first_response_minutes,
                        resolution_minutes: t.resolution_minutes,
                        warning_percent,
                    },
                ));
            }
            for priority in Priority::ALL {
                if !targets.iter().any(|(c, p, _)| c == "*" && *p == priority) {
                    return Err(format!("{at}.target: no * line for {priority:?}"));
                }
            }
            versions.push(PolicyVersion {
                version: v.version,
                effective_from: v.effective_from,
                targets,
            });
        }
        if versions.is_empty() {
            return Err("version: at least one is needed".into());
        }
        if versions
            .windows(2)
            .any(|w| w[0].effective_from >= w[1].effective_from || w[0].version >= w[1].version)
        {
            return Err("version: must be in order of effective_from and version".into());
        }
        Ok(Self { versions })
    }

    /// The version in force on `day`.
    pub fn on(&self, day: NaiveDate) -> Option<&PolicyVersion> {
        self.versions.iter().rev().find(|v| v.effective_from <= day)
    }
}

/// Where a clock is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ClockState {
    /// Counting: the warning (if not yet given) and the breach are due at these instants.
    Running {
        warn_at: DateTime<Utc>,
        due: DateTime<Utc>,
    },
    /// Waiting on the customer: this much working time was left.
    Paused { to_warn_secs: i64, to_due_secs: i64 },
    /// Met (or, after a breach, finally done).
    Stopped { at: DateTime<Utc> },
}

/// One target of one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    pub kind: ClockKind,
    pub state: ClockState,
    pub warned: bool,
    pub breached: bool,
}

/// Why a clock has no due time: the team's calendar cannot fit it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the team's working hours cannot fit a {0} target")]
pub struct Unschedulable(&'static str);

impl Clock {
    /// A clock started at `at` for `targets`, counting in `calendar`.
    pub fn start(
        kind: ClockKind,
        targets: &Targets,
        calendar: &BusinessCalendar,
        at: DateTime<Utc>,
    ) -> Result<Self, Unschedulable> {
        let warn_at = calendar
            .after(at, targets.warning_after(kind))
            .ok_or(Unschedulable(kind.as_str()))?;
        let due = calendar
            .after(at, Duration::minutes(targets.minutes(kind)))
            .ok_or(Unschedulable(kind.as_str()))?;
        Ok(Self {
            kind,
            state: ClockState::Running { warn_at, due },
            warned: false,
            breached: false,
        })
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, ClockState::Running { .. })
    }

    /// The clock paused at `at`, keeping the working time it had left.
    pub fn paused(&self, calendar: &BusinessCalendar, at: DateTime<Utc>) -> Self {
        let ClockState::Running { warn_at, due } = self.state else {
            return self.clone();
        };
        let left = |until: DateTime<Utc>| calendar.elapsed(at, until).num_seconds();
        Self {
            state: ClockState::Paused {
                to_warn_secs: left(warn_at),
                to_due_secs: left(due),
            },
            ..self.clone()
        }
    }

    /// The clock running again from `at` with the time it had left.
    pub fn resumed(
        &self,
        calendar: &BusinessCalendar,
        at: DateTime<Utc>,
    ) -> Result<Self, Unschedulable> {
        let ClockState::Paused {
            to_warn_secs,
            to_due_secs,
        } = self.state
        else {
            return Ok(self.clone());
        };
        let instant = |secs: i64| {
            calendar
                .after(at, Duration::seconds(secs))
                .ok_or(Unschedulable(self.kind.as_str()))
        };
        Ok(Self {
            state: ClockState::Running {
                warn_at: instant(to_warn_secs)?,
                due: instant(to_due_secs)?,
            },
            ..self.clone()
        })
    }

    /// What falls due at `now`, not yet recorded: the warning, the breach, or both.
    pub fn due_at(&self, now: DateTime<Utc>) -> (bool, bool) {
        match self.state {
            ClockState::Running { warn_at, due } => {
                (!self.warned && warn_at <= now, !self.breached && due <= now)
            }
            ClockState::Paused { .. } | ClockState::Stopped { .. } => (false, false),
        }
    }

    /// The next instant this clock needs attention, if it is running.
    pub fn next_alarm(&self) -> Option<DateTime<Utc>> {
        match self.state {
            ClockState::Running { warn_at, due } => match (self.warned, self.breached) {
                (false, _) => Some(warn_at.min(due)),
                (true, false) => Some(due),
                (true, true) => None,
            },
            ClockState::Paused { .. } | ClockState::Stopped { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
        [[version]]
        version = 1
        effective_from = "2026-01-01"
        warning_percent = 80
        [[version.target]]
        country = "*"
        priority = "urgent"
        first_response_minutes = 60
        resolution_minutes = 480
        [[version.target]]
        country = "*"
        priority = "high"
        first_response_minutes = 240
        resolution_minutes = 1440
        [[version.target]]
        country = "*"
        priority = "normal"
        first_response_minutes = 480
        resolution_minutes = 2400
        [[version.target]]
        country = "*"
        priority = "low"
        first_response_minutes = 960
        resolution_minutes = 4800
        [[version.target]]
        country = "DE"
        priority = "urgent"
        first_response_minutes = 30
        resolution_minutes = 240
    "#;

    #[test]
    fn a_country_line_wins_over_the_default_and_versions_apply_from_their_day() {
        let policy = SlaPolicy::parse(POLICY).unwrap();
        let v1 = policy.on("2026-06-01".parse().unwrap()).unwrap();
        assert_eq!(
            v1.targets("DE", Priority::Urgent)
                .unwrap()
                .first_response_minutes,
            30
        );
        assert_eq!(
            v1.targets("FR", Priority::Urgent)
                .unwrap()
                .first_response_minutes,
            60
        );
        assert!(policy.on("2025-12-31".parse().unwrap()).is_none());
        let builtin = SlaPolicy::builtin().unwrap();
        assert!(builtin.on("2026-12-05".parse().unwrap()).is_some());
    }

    #[test]
    fn bad_policy_data_names_the_field() {
        let negative = POLICY.replacen(
            "first_response_minutes = 60",
            "first_response_minutes = -60",
            1,
        );
        let error = SlaPolicy::parse(&negative).unwrap_err();
        assert!(
            error.starts_with("version[0].target[0].first_response_minutes"),
            "{error}"
        );
        let warning = POLICY.replace("warning_percent = 80", "warning_percent = 120");
        assert!(
            SlaPolicy::parse(&warning)
                .unwrap_err()
                .starts_with("version[0].warning_percent")
        );
        let country = POLICY.replace("country = \"DE\"", "country = \"Germany\"");
        assert!(
            SlaPolicy::parse(&country)
                .unwrap_err()
                .starts_with("version[0].target[4].country")
        );
        let missing = POLICY.replace("priority = \"low\"", "priority = \"high\"");
        assert!(SlaPolicy::parse(&missing).is_err());
    }

    #[test]
    fn a_paused_clock_keeps_its_working_time_and_resumes_with_it() {
        let calendar = BusinessCalendar::always("UTC").unwrap();
        let targets = Targets {
            first_response_minutes: 60,
            resolution_minutes: 600,
            warning_percent: 80,
        };
        let t0: DateTime<Utc> = "2026-12-01T09:00:00Z".parse().unwrap();
        let clock = Clock::start(ClockKind::Resolution, &targets, &calendar, t0).unwrap();
        assert_eq!(clock.next_alarm(), Some(t0 + Duration::minutes(480)));
        let paused = clock.paused(&calendar, t0 + Duration::minutes(100));
        assert_eq!(paused.next_alarm(), None);
        assert_eq!(paused.due_at(t0 + Duration::days(30)), (false, false));
        let back = t0 + Duration::days(2);
        let resumed = paused.resumed(&calendar, back).unwrap();
        assert_eq!(
            resumed.state,
            ClockState::Running {
                warn_at: back + Duration::minutes(380),
                due: back + Duration::minutes(500),
            }
        );
        assert_eq!(resumed.due_at(back + Duration::minutes(380)), (true, false));
    }
}
