//! Software updates as data: each model's support window (versioned: the EU
//! requires operating-system updates for at least five years after a phone
//! leaves the market), the release catalog (build, day, countries, the known
//! issues each release fixes) and the known issues themselves in the four
//! languages. From them: whether a phone on a build is current and still
//! supported, and which build fixes an issue.

use std::collections::BTreeMap;

use chrono::{Months, NaiveDate};
use serde::Deserialize;

use super::teams::LANGUAGES;

/// The fewest years of updates after leaving the market the data may promise
/// (Regulation (EU) 2023/1670, Annex II).
pub const MIN_SUPPORT_YEARS: u32 = 5;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    model: Vec<ModelFile>,
    release: Vec<Release>,
    issue: Vec<IssueFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    name: String,
    /// Absent while it is still sold.
    left_market_on: Option<NaiveDate>,
    window: Vec<Window>,
}

/// How long a model is updated after leaving the market, from a day on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub effective_from: NaiveDate,
    pub years_after_market: u32,
}

/// One build of one model.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub model: String,
    pub build: String,
    pub released_on: NaiveDate,
    /// ISO codes, or `*` for every country.
    pub countries: Vec<String>,
    /// The known issues this build fixes.
    #[serde(default)]
    pub fixes: Vec<String>,
}

impl Release {
    pub fn available_in(&self, country: &str) -> bool {
        self.countries.iter().any(|c| c == "*" || c == country)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueFile {
    id: String,
    title: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub name: String,
    pub left_market_on: Option<NaiveDate>,
    pub windows: Vec<Window>,
}

impl Model {
    /// The last day it gets updates under the window in force on `today`;
    /// `None` while it is still sold (no end yet).
    pub fn supported_until(&self, today: NaiveDate) -> Option<NaiveDate> {
        let left = self.left_market_on?;
        let window = self
            .windows
            .iter()
            .rev()
            .find(|w| w.effective_from <= today)
            .or_else(|| self.windows.first())?;
        left.checked_add_months(Months::new(window.years_after_market * 12))
    }
}

/// A phone's software as the catalog sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub model: String,
    pub build: String,
    /// The newest build for the model in the phone's country.
    pub latest: Option<Release>,
    /// Its build is the newest there is for it.
    pub current: bool,
    /// `None`: still sold, so no end yet.
    pub supported_until: Option<NaiveDate>,
    pub supported: bool,
    /// Known issues fixed by newer builds than its own, with the first fixing one.
    pub fixes_waiting: Vec<(String, String)>,
}

/// The catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updates {
    models: Vec<Model>,
    releases: Vec<Release>,
    issues: BTreeMap<String, BTreeMap<String, String>>,
}

const BUILTIN: &str = include_str!("../../updates.toml");

impl Updates {
    pub fn builtin() -> Result<Self, String> {
        Self::parse(BUILTIN)
    }

    /// Reads the TOML shape of `updates.toml`; a bad value names where it is.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| format!("updates: {e}"))?;
        let mut issues = BTreeMap::new();
        for (i, issue) in file.issue.into_iter().enumerate() {
            if let Some(missing) = LANGUAGES.iter().find(|l| !issue.title.contains_key(**l)) {
                return Err(format!("issue[{i}].title: no {missing} title"));
            }
            if issues.insert(issue.id.clone(), issue.title).is_some() {
                return Err(format!("issue[{i}].id: {} twice", issue.id));
            }
        }
        let mut models = Vec::new();
        for (i, m) in file.model.into_iter().enumerate() {
            if m.window.is_empty() {
                return Err(format!("model[{i}].window: at least one"));
            }
            for (j, w) in m.window.iter().enumerate() {
                if w.years_after_market < MIN_SUPPORT_YEARS {
                    return Err(format!(
                        "model[{i}].window[{j}].years_after_market: at least {MIN_SUPPORT_YEARS} (EU 2023/1670)"
                    ));
                }
            }
            if m.window
                .windows(2)
                .any(|w| w[0].effective_from >= w[1].effective_from)
            {
                return Err(format!("model[{i}].window: in order of effective_from"));
            }
            models.push(Model {
                name: m.name,
                left_market_on: m.left_market_on,
                windows: m.window,
            });
        }
        for (i, r) in file.release.iter().enumerate() {
            if !models.iter().any(|m| m.name == r.model) {
                return Err(format!("release[{i}].model: {:?} is not a model", r.model));
            }
            if let Some(unknown) = r.fixes.iter().find(|f| !issues.contains_key(*f)) {
                return Err(format!("release[{i}].fixes: {unknown:?} is not an issue"));
            }
            if r.countries.is_empty() {
                return Err(format!("release[{i}].countries: at least one, or *"));
            }
            if file.release[..i]
                .iter()
                .any(|o| o.model == r.model && o.build == r.build)
            {
                return Err(format!("release[{i}].build: {} twice", r.build));
            }
        }
        let mut releases = file.release;
        releases.sort_by(|a, b| (&a.model, a.released_on).cmp(&(&b.model, b.released_on)));
        Ok(Self {
            models,
            releases,
            issues,
        })
    }

    pub fn model(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }

    pub fn release(&self, model: &str, build: &str) -> Option<&Release> {
        self.releases
            .iter()
            .find(|r| r.model == model && r.build == build)
    }

    /// A known issue's title in `language`.
    pub fn issue_title(&self, id: &str, language: &str) -> Option<&str> {
        self.issues.get(id)?.get(language).map(String::as_str)
    }

    pub fn is_issue(&self, id: &str) -> bool {
        self.issues.contains_key(id)
    }

    /// Builds of `model` released in `country`, oldest first.
    fn available<'a>(
        &'a self,
        model: &'a str,
        country: &'a str,
    ) -> impl Iterator<Item = &'a Release> {
        self.releases
            .iter()
            .filter(move |r| r.model == model && r.available_in(country))
    }

    /// The first build of `model` in `country` that fixes `issue`.
    pub fn fixed_in<'a>(
        &'a self,
        model: &'a str,
        country: &'a str,
        issue: &str,
    ) -> Option<&'a Release> {
        self.available(model, country)
            .find(|r| r.fixes.iter().any(|f| f == issue))
    }

    /// Where a phone of `model` on `build` in `country` stands on `today`.
    /// `None` for a model the catalog does not know.
    pub fn status(
        &self,
        model: &str,
        build: &str,
        country: &str,
        today: NaiveDate,
    ) -> Option<Status> {
        let m = self.model(model)?;
        let latest = self.available(model, country).last().cloned();
        let own = self.release(model, build);
        let newer: Vec<&Release> = match own {
            Some(own) => self
                .available(model, country)
                .filter(|r| r.released_on > own.released_on)
                .collect(),
            // A build the catalog does not list (a beta, a carrier's): every
            // listed one may be newer.
            None => self.available(model, country).collect(),
        };
        let mut fixes_waiting = Vec::new();
        for r in &newer {
            for issue in &r.fixes {
                if !fixes_waiting
                    .iter()
                    .any(|(i, _): &(String, String)| i == issue)
                {
                    fixes_waiting.push((issue.clone(), r.build.clone()));
                }
            }
        }
        let supported_until = m.supported_until(today);
        Some(Status {
            model: m.name.clone(),
            build: build.to_owned(),
            current: latest.as_ref().is_some_and(|l| l.build == build),
            latest,
            supported: supported_until.is_none_or(|until| today <= until),
            supported_until,
            fixes_waiting,
        })
    }
}

/// The build a phone last reported, one stream per phone (`build-<imei>`).
pub mod reports {
    use aftersales_eventstore::{Decider, DomainEvent};
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Serialize};

    use crate::domain::DomainError;
    use crate::domain::diagnosis::Phone;

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Report {
        pub phone: Phone,
        pub at: DateTime<Utc>,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum Event {
        BuildReported { phone: Phone, at: DateTime<Utc> },
    }

    impl DomainEvent for Event {
        fn event_type(&self) -> &'static str {
            match self {
                Self::BuildReported { .. } => "BuildReported",
            }
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Reported {
        pub phone: Phone,
        pub at: DateTime<Utc>,
    }

    #[derive(Debug, Clone, Copy)]
    pub struct BuildReports;

    impl Decider for BuildReports {
        type Command = Report;
        type Event = Event;
        type State = Option<Reported>;
        type Error = DomainError;

        fn initial_state() -> Self::State {
            None
        }

        /// A report of what is already known changes nothing: phones report on
        /// every start.
        fn decide(state: &Self::State, command: &Report) -> Result<Vec<Event>, DomainError> {
            if state.as_ref().is_some_and(|s| s.phone == command.phone) {
                return Ok(vec![]);
            }
            Ok(vec![Event::BuildReported {
                phone: command.phone.clone(),
                at: command.at,
            }])
        }

        fn evolve(_state: Self::State, event: &Event) -> Self::State {
            let Event::BuildReported { phone, at } = event;
            Some(Reported {
                phone: phone.clone(),
                at: *at,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn a_phone_behind_is_told_which_build_fixes_what() {
        let updates = Updates::builtin().unwrap();
        let status = updates
            .status("Aurora 5", "A5-2026.09.1", "DE", day("2026-12-05"))
            .unwrap();
        assert!(!status.current);
        assert!(status.supported);
        let (issue, build) = &status.fixes_waiting[0];
        assert_eq!(
            updates
                .fixed_in("Aurora 5", "DE", issue)
                .map(|r| r.build.as_str()),
            Some(build.as_str())
        );
        let latest = status.latest.unwrap();
        let now = updates
            .status("Aurora 5", &latest.build, "DE", day("2026-12-05"))
            .unwrap();
        assert!(now.current && now.fixes_waiting.is_empty());
    }

    #[test]
    fn support_ends_years_after_the_model_leaves_the_market() {
        let updates = Updates::builtin().unwrap();
        let old = updates.model("Aurora 4").unwrap();
        let until = old.supported_until(day("2026-12-05")).unwrap();
        assert_eq!(
            until,
            old.left_market_on
                .unwrap()
                .checked_add_months(Months::new(60))
                .unwrap()
        );
        let after = updates
            .status("Aurora 4", "A4-2026.10.1", "DE", until.succ_opt().unwrap())
            .unwrap();
        assert!(!after.supported);
        // Still sold: no end yet.
        assert_eq!(
            updates
                .model("Aurora 5")
                .unwrap()
                .supported_until(day("2026-12-05")),
            None
        );
    }

    #[test]
    fn bad_catalog_data_names_the_field() {
        let short = BUILTIN.replacen("years_after_market = 5", "years_after_market = 3", 1);
        let error = Updates::parse(&short).unwrap_err();
        assert!(
            error.starts_with("model[0].window[0].years_after_market"),
            "{error}"
        );
        let unknown = BUILTIN.replacen("fixes = [", "fixes = [\"no-such-issue\", ", 1);
        assert!(Updates::parse(&unknown).unwrap_err().contains(".fixes"));
    }
}
