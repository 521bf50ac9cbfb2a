//! Support teams as data: each team's tier, the countries, languages and topics
//! it takes, its working hours and holidays, and its agents' shifts. Routing
//! picks the team whose skills match a case and, inside it, the agent on shift
//! with the fewest open cases.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use serde::Deserialize;

use super::calendar::{BusinessCalendar, Span};
use super::case::{Category, Routing, Tier};

/// Hours per weekday, as `HH:MM-HH:MM` spans.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WeekFile {
    #[serde(default)]
    mon: Vec<String>,
    #[serde(default)]
    tue: Vec<String>,
    #[serde(default)]
    wed: Vec<String>,
    #[serde(default)]
    thu: Vec<String>,
    #[serde(default)]
    fri: Vec<String>,
    #[serde(default)]
    sat: Vec<String>,
    #[serde(default)]
    sun: Vec<String>,
}

impl WeekFile {
    fn parse(&self, at: &str) -> Result<[Vec<Span>; 7], String> {
        let days = [
            ("mon", &self.mon),
            ("tue", &self.tue),
            ("wed", &self.wed),
            ("thu", &self.thu),
            ("fri", &self.fri),
            ("sat", &self.sat),
            ("sun", &self.sun),
        ];
        let mut week: [Vec<Span>; 7] = Default::default();
        for (i, (name, spans)) in days.into_iter().enumerate() {
            for span in spans {
                week[i].push(Span::parse(span).map_err(|e| format!("{at}.{name}: {e}"))?);
            }
        }
        Ok(week)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    team: Vec<TeamFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamFile {
    id: String,
    name: String,
    tier: Tier,
    time_zone: String,
    /// ISO codes; empty: every country.
    #[serde(default)]
    countries: Vec<String>,
    languages: Vec<String>,
    topics: Vec<Category>,
    #[serde(default)]
    holidays: Vec<NaiveDate>,
    hours: WeekFile,
    #[serde(default)]
    agent: Vec<AgentFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    id: String,
    shifts: WeekFile,
}

/// An agent and when they work, in their team's time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub id: String,
    shifts: [Vec<Span>; 7],
}

#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub tier: Tier,
    pub countries: Vec<String>,
    pub languages: Vec<String>,
    pub topics: BTreeSet<Category>,
    pub calendar: Arc<BusinessCalendar>,
    pub agents: Vec<Agent>,
}

impl Team {
    pub fn routing(&self) -> Routing {
        Routing {
            team_id: self.id.clone(),
            tier: self.tier,
            calendar: self.calendar.clone(),
        }
    }

    fn covers(&self, country: &str) -> bool {
        self.countries.is_empty() || self.countries.iter().any(|c| c == country)
    }

    fn speaks(&self, language: &str) -> bool {
        self.languages.iter().any(|l| l == language)
    }

    /// Whether `agent` is on shift at `now`: inside a shift, on a working day.
    pub fn on_shift(&self, agent: &Agent, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.calendar.zone());
        if self.calendar.is_holiday(local.date_naive()) {
            return false;
        }
        let minute = local.hour() * 60 + local.minute();
        agent.shifts[local.weekday().num_days_from_monday() as usize]
            .iter()
            .any(|s| s.contains(minute))
    }

    /// The agent on shift with the fewest open cases (ties: the first by id).
    pub fn pick_agent<'a>(
        &'a self,
        now: DateTime<Utc>,
        open_cases: &HashMap<String, u32>,
    ) -> Option<&'a Agent> {
        self.agents
            .iter()
            .filter(|a| self.on_shift(a, now))
            .min_by_key(|a| (open_cases.get(&a.id).copied().unwrap_or(0), &a.id))
    }
}

/// Every team, in the order of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Teams {
    teams: Vec<Team>,
}

const BUILTIN: &str = include_str!("../../teams.toml");

/// The languages a case, a team or an article may be in.
pub const LANGUAGES: [&str; 4] = ["en", "de", "zh-CN", "hi"];

impl Teams {
    pub fn builtin() -> Result<Self, String> {
        Self::parse(BUILTIN)
    }

    /// Reads the TOML shape of `teams.toml`; a bad value names where it is.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| format!("teams: {e}"))?;
        let mut teams: Vec<Team> = Vec::new();
        let mut agents = BTreeSet::new();
        for (i, t) in file.team.into_iter().enumerate() {
            let at = format!("team[{i}]");
            let id_ok = |id: &str| {
                !id.is_empty()
                    && id.len() <= 64
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            };
            if !id_ok(&t.id) {
                return Err(format!("{at}.id: {:?} is not a lower-case id", t.id));
            }
            if teams.iter().any(|other| other.id == t.id) {
                return Err(format!("{at}.id: {} twice", t.id));
            }
            if t.languages.is_empty()
                || t.languages.iter().any(|l| !LANGUAGES.contains(&l.as_str()))
            {
                return Err(format!("{at}.languages: each one of {LANGUAGES:?}"));
            }
            if t.topics.is_empty() {
                return Err(format!("{at}.topics: at least one"));
            }
            if let Some(bad) = t
                .countries
                .iter()
                .find(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()))
            {
                return Err(format!("{at}.countries: {bad:?} is not a country code"));
            }
            let week = t.hours.parse(&format!("{at}.hours"))?;
            let calendar = BusinessCalendar::new(&t.time_zone, week, t.holidays)
                .map_err(|e| format!("{at}.hours: {e}"))?;
            let mut team_agents = Vec::new();
            for (j, a) in t.agent.into_iter().enumerate() {
                let at = format!("{at}.agent[{j}]");
                if !id_ok(&a.id) {
                    return Err(format!("{at}.id: {:?} is not a lower-case id", a.id));
                }
                if !agents.insert(a.id.clone()) {
                    return Err(format!("{at}.id: {} is in two teams", a.id));
                }
                team_agents.push(Agent {
                    id: a.id,
                    shifts: a.shifts.parse(&format!("{at}.shifts"))?,
                });
            }
            teams.push(Team {
                id: t.id,
                name: t.name,
                tier: t.tier,
                countries: t.countries,
                languages: t.languages,
                topics: t.topics.into_iter().collect(),
                calendar: Arc::new(calendar),
                agents: team_agents,
            });
        }
        if teams.is_empty() {
            return Err("team: at least one is needed".into());
        }
        Ok(Self { teams })
    }

    pub fn all(&self) -> &[Team] {
        &self.teams
    }

    pub fn get(&self, id: &str) -> Option<&Team> {
        self.teams.iter().find(|t| t.id == id)
    }

    /// The team of `tier` for a case: one that takes its topic and speaks its
    /// language, preferring a team for its country over one for every country;
    /// failing that, one that takes the topic for the country in any language.
    pub fn route(
        &self,
        country: &str,
        language: &str,
        category: Category,
        tier: Tier,
    ) -> Option<&Team> {
        let candidates = || {
            self.teams.iter().filter(move |t| {
                t.tier == tier && t.topics.contains(&category) && t.covers(country)
            })
        };
        let speaking = || candidates().filter(|t| t.speaks(language));
        speaking()
            .find(|t| !t.countries.is_empty())
            .or_else(|| speaking().next())
            .or_else(|| candidates().next())
    }

    /// The language a case from `country` is opened in when the customer did
    /// not say: the first of its front line team's, else English.
    pub fn language_of(&self, country: &str) -> &str {
        self.teams
            .iter()
            .find(|t| t.tier == Tier::FrontLine && t.countries.iter().any(|c| c == country))
            .and_then(|t| t.languages.first())
            .map_or("en", String::as_str)
    }

    /// The agent's team.
    pub fn team_of(&self, agent_id: &str) -> Option<&Team> {
        self.teams
            .iter()
            .find(|t| t.agents.iter().any(|a| a.id == agent_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn cases_go_to_the_team_that_speaks_their_language_and_takes_their_topic() {
        let teams = Teams::builtin().unwrap();
        let route = |country, language, category, tier| {
            teams
                .route(country, language, category, tier)
                .map(|t| t.id.as_str())
        };
        assert_eq!(
            route("DE", "de", Category::Hardware, Tier::FrontLine),
            Some("de-front")
        );
        assert_eq!(
            route("IN", "hi", Category::Shipping, Tier::FrontLine),
            Some("in-front")
        );
        assert_eq!(
            route("CN", "zh-CN", Category::SoftwareAndUpdates, Tier::FrontLine),
            Some("cn-front")
        );
        // An English speaker in Germany is served by the German team, which speaks English.
        assert_eq!(
            route("DE", "en", Category::Hardware, Tier::FrontLine),
            Some("de-front")
        );
        // Experts take every country; software goes to the software experts.
        assert_eq!(
            route("IN", "en", Category::SoftwareAndUpdates, Tier::Expert),
            Some("software-experts")
        );
        assert_eq!(
            route("DE", "de", Category::Hardware, Tier::Expert),
            Some("hardware-experts")
        );
        assert_eq!(
            ["DE", "IN", "CN", "BR"].map(|c| teams.language_of(c)),
            ["de", "hi", "zh-CN", "en"]
        );
    }

    #[test]
    fn the_agent_on_shift_with_the_fewest_open_cases_gets_the_case() {
        let teams = Teams::builtin().unwrap();
        let team = teams.get("de-front").unwrap();
        // Tuesday 1 December 2026, 10:00 in Berlin: both early and late shifts overlap.
        let morning = utc("2026-12-01T09:00:00Z");
        let on: Vec<_> = team
            .agents
            .iter()
            .filter(|a| team.on_shift(a, morning))
            .map(|a| a.id.as_str())
            .collect();
        assert!(on.len() >= 2, "{on:?}");
        let mut open = HashMap::new();
        open.insert(on[0].to_owned(), 3);
        let picked = team.pick_agent(morning, &open).unwrap();
        assert_ne!(picked.id, on[0]);
        // Christmas Day: nobody is on shift.
        assert!(
            team.pick_agent(utc("2026-12-25T09:00:00Z"), &open)
                .is_none()
        );
        // Sunday night: nobody either.
        assert!(
            team.pick_agent(utc("2026-12-06T22:00:00Z"), &open)
                .is_none()
        );
    }

    #[test]
    fn bad_team_data_names_the_field() {
        let team = |body: &str| {
            format!(
                "[[team]]\nid = \"t\"\nname = \"T\"\ntier = \"front_line\"\ntime_zone = \"UTC\"\nlanguages = [\"en\"]\ntopics = [\"hardware\"]\n{body}"
            )
        };
        let hours = "[team.hours]\nmon = [\"09:00-17:00\"]\n";
        assert!(Teams::parse(&team(hours)).is_ok());
        let err = Teams::parse(&team("[team.hours]\nmon = [\"17:00-09:00\"]\n")).unwrap_err();
        assert!(err.starts_with("team[0].hours.mon"), "{err}");
        let err = Teams::parse(&team("[team.hours]\n")).unwrap_err();
        assert!(err.starts_with("team[0].hours"), "{err}");
        let err = Teams::parse(&format!(
            "{}[[team.agent]]\nid = \"a\"\n[team.agent.shifts]\ntue = [\"nine to five\"]\n",
            team(hours)
        ))
        .unwrap_err();
        assert!(err.starts_with("team[0].agent[0].shifts.tue"), "{err}");
        let err = Teams::parse(&team(hours).replace("[\"en\"]", "[\"klingon\"]")).unwrap_err();
        assert!(err.starts_with("team[0].languages"), "{err}");
    }
}
