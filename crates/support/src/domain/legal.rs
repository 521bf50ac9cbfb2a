//! Clocks on a repair that the law sets (or, where the law asks only for "a
//! reasonable time", that we promise instead), as versioned data
//! (`legal.toml`): how long a repair may wait for spare parts, how long a
//! repair under the legal guarantee may take, how long a quote may go
//! unanswered. A clock's due instant is fixed when it starts, under the version
//! in force that day, so new data never moves a running clock.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::calendar::BusinessCalendar;

const BUILTIN: &str = include_str!("../../legal.toml");

/// What a clock waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineKind {
    /// The last spare part a repair waits for.
    Parts,
    /// A repair under the legal guarantee, until the phone is ready.
    Repair,
    /// The customer's answer to a quote.
    Quote,
}

impl DeadlineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parts => "parts",
            Self::Repair => "repair",
            Self::Quote => "quote",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    WorkingDays,
    Days,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    Law,
    Policy,
}

/// One clock for some countries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub kind: DeadlineKind,
    /// ISO codes, or `*` for every country without its own rule.
    pub countries: Vec<String>,
    pub amount: u32,
    pub unit: Unit,
    pub basis: Basis,
    pub source: String,
}

impl Rule {
    /// The rule as people read it: "5 working days", "30 days".
    pub fn limit(&self) -> String {
        match self.unit {
            Unit::WorkingDays => format!("{} working days", self.amount),
            Unit::Days => format!("{} days", self.amount),
        }
    }

    /// When a clock started at `from` runs out, in `calendar`'s working days
    /// or in calendar days.
    pub fn due(&self, from: DateTime<Utc>, calendar: &BusinessCalendar) -> Option<DateTime<Utc>> {
        match self.unit {
            Unit::WorkingDays => calendar.working_days_after(from, self.amount),
            Unit::Days => from.checked_add_signed(Duration::days(i64::from(self.amount))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Version {
    version: u32,
    effective_from: NaiveDate,
    clock: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: Vec<Version>,
}

/// Every version of the clocks, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegalClocks {
    versions: Vec<Version>,
}

impl LegalClocks {
    pub fn builtin() -> Result<Self, String> {
        Self::parse(BUILTIN)
    }

    /// Reads `legal.toml`'s shape; a bad value names where it is.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| format!("legal: {e}"))?;
        let mut versions = file.version;
        versions.sort_by_key(|v| v.effective_from);
        for (i, v) in versions.iter().enumerate() {
            for (j, rule) in v.clock.iter().enumerate() {
                let at = format!("legal: version {} clock[{j}]", v.version);
                if rule.amount == 0 || rule.amount > 365 {
                    return Err(format!("{at}.amount: must be 1 to 365"));
                }
                if rule.countries.is_empty()
                    || rule.countries.iter().any(|c| {
                        c != "*" && !(c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
                    })
                {
                    return Err(format!(
                        "{at}.countries: ISO codes such as DE, or * for the rest"
                    ));
                }
                if rule.source.trim().is_empty() {
                    return Err(format!("{at}.source: say where the figure comes from"));
                }
            }
            for kind in [
                DeadlineKind::Parts,
                DeadlineKind::Repair,
                DeadlineKind::Quote,
            ] {
                let fallback = v
                    .clock
                    .iter()
                    .filter(|r| r.kind == kind && r.countries.iter().any(|c| c == "*"))
                    .count();
                if fallback != 1 {
                    return Err(format!(
                        "legal: version {}: needs exactly one {} clock for * (every other country)",
                        v.version,
                        kind.as_str()
                    ));
                }
            }
            if versions[..i].iter().any(|o| o.version >= v.version) {
                return Err(format!(
                    "legal: version {}: versions must grow with their dates",
                    v.version
                ));
            }
        }
        if versions.is_empty() {
            return Err("legal: no version".into());
        }
        Ok(Self { versions })
    }

    /// The rule for `kind` in `country` on `day`, and its version; `None`
    /// before the first version.
    pub fn rule(&self, kind: DeadlineKind, country: &str, day: NaiveDate) -> Option<(u32, &Rule)> {
        let version = self
            .versions
            .iter()
            .rev()
            .find(|v| v.effective_from <= day)?;
        let of = |code: &str| {
            version
                .clock
                .iter()
                .find(|r| r.kind == kind && r.countries.iter().any(|c| c == code))
        };
        of(country)
            .or_else(|| of("*"))
            .map(|r| (version.version, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn each_country_gets_its_own_clock_or_the_fallback() {
        let clocks = LegalClocks::builtin().unwrap();
        let (_, parts) = clocks
            .rule(DeadlineKind::Parts, "DE", day("2026-12-01"))
            .unwrap();
        assert_eq!(
            (parts.amount, parts.unit, parts.basis),
            (5, Unit::WorkingDays, Basis::Law)
        );
        let (_, france) = clocks
            .rule(DeadlineKind::Repair, "FR", day("2026-12-01"))
            .unwrap();
        assert_eq!((france.amount, france.basis), (30, Basis::Law));
        let (_, india) = clocks
            .rule(DeadlineKind::Repair, "IN", day("2026-12-01"))
            .unwrap();
        assert_eq!((india.amount, india.basis), (15, Basis::Policy));
        assert!(
            clocks
                .rule(DeadlineKind::Quote, "DE", day("2025-12-31"))
                .is_none()
        );
    }

    #[test]
    fn bad_clock_data_names_the_field() {
        let good = BUILTIN;
        let cases = [
            (good.replace("amount = 5\n", "amount = 0\n"), "amount"),
            (good.replace("\"AT\", ", "\"at\", "), "countries"),
            (
                good.replace("kind = \"quote\"", "kind = \"parts\""),
                "exactly one parts",
            ),
            (good.replace("unit = \"days\"", "unit = \"weeks\""), "unit"),
            (
                good.replace(
                    "source = \"Code de la consommation, article L217-10\"",
                    "source = \" \"",
                ),
                "source",
            ),
        ];
        for (text, field) in cases {
            let error = LegalClocks::parse(&text).unwrap_err();
            assert!(error.contains(field), "{field}: {error}");
        }
    }
}
