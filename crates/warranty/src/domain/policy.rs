//! Warranty policies: a versioned table per country, kept as TOML files under
//! `crates/warranty/policies/`, loaded and checked at start-up.
//!
//! A device is registered under the version in force on its purchase date, and the
//! terms of that version are copied into its `DeviceRegistered` event: decisions read
//! them from the device's history, so changing a policy file never changes a past
//! decision.

use std::collections::BTreeMap;
use std::path::Path;

use aftersales_core::types::{CountryCode, Currency};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::AccessoryKind;

/// The terms one policy version gives a device bought under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyTerms {
    pub policy_id: String,
    pub version: u32,
    /// First purchase date this version applies to.
    pub effective_from: NaiveDate,
    /// The maker's limited warranty on the phone.
    pub phone_months: u32,
    /// The maker's warranty per accessory kind.
    pub accessory_months: BTreeMap<AccessoryKind, u32>,
    pub statutory: Statutory,
    pub replaced_part: ReplacedPart,
    /// A repair under the legal guarantee extends it (EU, from 31 July 2026).
    #[serde(default)]
    pub repair_extension: Option<RepairExtension>,
    #[serde(default)]
    pub plans: Vec<Plan>,
    /// When the maker's warranty starts.
    #[serde(default)]
    pub term_starts: TermStart,
    /// Where the warranty is honoured.
    #[serde(default)]
    pub honoured_in: Travel,
    /// Where each figure comes from: figure name to source id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cite: BTreeMap<String, String>,
    /// The sources cited, by id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, Source>,
}

impl PolicyTerms {
    /// The source a figure is cited to, if the terms carry it.
    pub fn source_of(&self, figure: &str) -> Option<&Source> {
        self.sources.get(self.cite.get(figure)?)
    }
}

/// When the maker's warranty term starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "on")]
pub enum TermStart {
    #[default]
    Purchase,
    /// At first activation, but never later than `within_days` after purchase
    /// (stock left on a shelf does not keep its warranty for ever).
    Activation { within_days: u32 },
}

/// Where a device's warranty is honoured, whatever country it is serviced in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Travel {
    /// Only in the country of purchase.
    #[default]
    Country,
    /// Anywhere in the EU and EEA (and Switzerland).
    Eu,
    Worldwide,
}

/// The EU and EEA countries, and Switzerland: where an EU-wide warranty is honoured.
pub const EU_EEA: &[&str] = &[
    "AT", "BE", "BG", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
    "IS", "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
];

impl Travel {
    /// Whether a device bought in `home` is served under its warranty in `country`.
    pub fn honours(self, home: &str, country: &str) -> bool {
        match self {
            Self::Country => home == country,
            Self::Eu => home == country || (EU_EEA.contains(&home) && EU_EEA.contains(&country)),
            Self::Worldwide => true,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Country => "country",
            Self::Eu => "eu",
            Self::Worldwide => "worldwide",
        }
    }
}

/// Where a figure comes from: the maker's published terms or a statute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub kind: SourceKind,
    /// The document: a statute's name, or the maker's terms for the country.
    pub title: String,
    /// Where in it: article, section, clause.
    pub reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When the figure was last checked against this source.
    pub checked: NaiveDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The maker's published warranty terms for the country.
    Maker,
    /// A law or regulation.
    Statute,
}

/// The figures a policy version states, each of which must cite a source.
pub const FIGURES: &[&str] = &[
    "phone_months",
    "accessory_months",
    "statutory.legal_guarantee_months",
    "statutory.presumption_months",
    "statutory.return_days",
    "statutory.exchange_days",
    "replaced_part.minimum_days",
    "repair_extension",
    "plans",
    "term_starts",
    "honoured_in",
];

/// Consumer rights the law gives on top of the maker's warranty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statutory {
    /// The legal guarantee of conformity (EU: 24 months); 0 where there is none.
    pub legal_guarantee_months: u32,
    /// During this period a defect is presumed present at delivery.
    #[serde(default)]
    pub presumption_months: u32,
    /// Days after purchase in which a faulty device is taken back for a refund.
    #[serde(default)]
    pub return_days: u32,
    /// Days after purchase in which a faulty device is exchanged.
    #[serde(default)]
    pub exchange_days: u32,
}

/// What a replaced part is covered for: the rest of the term, or this minimum from
/// the repair, whichever is longer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplacedPart {
    pub minimum_days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepairExtension {
    pub months: u32,
    /// Repairs on or after this date extend the guarantee.
    pub applies_from: NaiveDate,
    /// Only the first such repair extends it.
    pub once: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub id: String,
    /// Added after the maker's warranty ends.
    pub extra_months: u32,
    pub price_minor: i64,
    pub currency: String,
    /// Can be bought up to this many days after purchase (and while the maker's
    /// warranty runs).
    pub buy_within_days: u32,
    pub refund: Refund,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refund {
    /// The unused share of the plan's coverage period.
    ProRata,
    None,
}

/// One country's file: its versions, oldest first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CountryFile {
    country: String,
    policy_id: String,
    #[serde(default)]
    term_starts: TermStart,
    honoured_in: Travel,
    sources: BTreeMap<String, Source>,
    /// Sources for every version; a version's own `cite` overrides entries.
    cite: BTreeMap<String, String>,
    versions: Vec<VersionFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionFile {
    version: u32,
    effective_from: NaiveDate,
    phone_months: u32,
    accessory_months: BTreeMap<AccessoryKind, u32>,
    statutory: Statutory,
    replaced_part: ReplacedPart,
    #[serde(default)]
    repair_extension: Option<RepairExtension>,
    #[serde(default)]
    plans: Vec<Plan>,
    #[serde(default)]
    cite: BTreeMap<String, String>,
}

/// A policy file that cannot be used, named with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field}: {reason}")]
pub struct PolicyError {
    pub file: String,
    pub field: String,
    pub reason: String,
}

/// Every `*.toml` file in `dir`, by name, as `(path, text)`.
pub(super) fn read_toml_files(dir: &Path) -> Result<Vec<(String, String)>, PolicyError> {
    let unreadable = |reason: String| PolicyError {
        file: dir.display().to_string(),
        field: "-".into(),
        reason,
    };
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| unreadable(e.to_string()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| PolicyError {
            file: path.display().to_string(),
            field: "-".into(),
            reason: e.to_string(),
        })?;
        files.push((path.display().to_string(), text));
    }
    Ok(files)
}

/// Every country's policies.
#[derive(Debug, Clone, Default)]
pub struct PolicyTable {
    /// Per ISO country code, versions by effective date.
    countries: BTreeMap<String, Vec<PolicyTerms>>,
}

/// The countries every deployment must be able to sell in.
pub const REQUIRED_COUNTRIES: &[&str] = &[
    "AE", "AU", "BR", "CA", "CN", "DE", "EG", "ES", "FR", "GB", "ID", "IN", "IT", "JP", "KE", "KR",
    "MX", "MY", "NG", "NL", "PH", "PL", "SA", "TH", "TR", "US", "VN", "ZA",
];

impl PolicyTable {
    /// Loads every `*.toml` in `dir`; all must be valid.
    pub fn load_dir(dir: &Path) -> Result<Self, PolicyError> {
        let files = read_toml_files(dir)?;
        Self::from_sources(files.iter().map(|(n, t)| (n.as_str(), t.as_str())))
    }

    /// The policies built into the binary (the files under `policies/`).
    pub fn builtin() -> Result<Self, PolicyError> {
        Self::from_sources(BUILTIN.iter().copied())
    }

    /// Parses and checks `(file name, TOML text)` pairs.
    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, PolicyError> {
        let mut table = Self::default();
        for (file, text) in sources {
            let parsed: CountryFile = toml::from_str(text).map_err(|e| PolicyError {
                file: file.to_owned(),
                field: e
                    .span()
                    .map(|span| format!("at byte {}", span.start))
                    .unwrap_or_else(|| "-".into()),
                reason: e.message().to_owned(),
            })?;
            let fail = |field: &str, reason: String| PolicyError {
                file: file.to_owned(),
                field: field.to_owned(),
                reason,
            };
            let country = parsed.country.clone();
            CountryCode::parse("country", &country).map_err(|e| fail("country", e.reason))?;
            if table.countries.contains_key(&country) {
                return Err(fail(
                    "country",
                    format!("{country} is defined in two files"),
                ));
            }
            if parsed.versions.is_empty() {
                return Err(fail("versions", "at least one version is needed".into()));
            }
            check_sources(&parsed.sources).map_err(|(field, reason)| fail(&field, reason))?;
            if let TermStart::Activation { within_days } = parsed.term_starts
                && !(1..=365).contains(&within_days)
            {
                return Err(fail(
                    "term_starts.within_days",
                    "must be between 1 and 365".into(),
                ));
            }
            let mut cited = std::collections::BTreeSet::new();
            let mut versions = Vec::with_capacity(parsed.versions.len());
            for (i, v) in parsed.versions.into_iter().enumerate() {
                let at = |field: &str| format!("versions[{i}].{field}");
                if v.version != u32::try_from(i + 1).unwrap_or(u32::MAX) {
                    return Err(fail(
                        &at("version"),
                        format!(
                            "is {}, expected {} (versions count up from 1)",
                            v.version,
                            i + 1
                        ),
                    ));
                }
                if let Some(previous) = versions.last().map(|p: &PolicyTerms| p.effective_from)
                    && v.effective_from <= previous
                {
                    return Err(fail(
                        &at("effective_from"),
                        "must be later than the previous version's".into(),
                    ));
                }
                if !(1..=120).contains(&v.phone_months) {
                    return Err(fail(
                        &at("phone_months"),
                        format!("{} is not between 1 and 120", v.phone_months),
                    ));
                }
                for kind in AccessoryKind::ALL {
                    match v.accessory_months.get(&kind) {
                        Some(months) if *months <= 120 => {}
                        Some(months) => {
                            return Err(fail(
                                &at(&format!("accessory_months.{}", kind.as_str())),
                                format!("{months} is more than 120"),
                            ));
                        }
                        None => {
                            return Err(fail(
                                &at(&format!("accessory_months.{}", kind.as_str())),
                                "is missing".into(),
                            ));
                        }
                    }
                }
                let s = &v.statutory;
                if s.legal_guarantee_months > 120
                    || s.presumption_months > s.legal_guarantee_months.max(12)
                {
                    return Err(fail(
                        &at("statutory"),
                        "legal guarantee at most 120 months, presumption not longer than it".into(),
                    ));
                }
                if s.return_days > 90
                    || s.exchange_days > 90
                    || (s.exchange_days > 0 && s.exchange_days < s.return_days)
                {
                    return Err(fail(&at("statutory"), "return and exchange windows at most 90 days, exchange not shorter than return".into()));
                }
                if v.replaced_part.minimum_days > 730 {
                    return Err(fail(
                        &at("replaced_part.minimum_days"),
                        "more than 730".into(),
                    ));
                }
                if let Some(ext) = &v.repair_extension
                    && !(1..=36).contains(&ext.months)
                {
                    return Err(fail(
                        &at("repair_extension.months"),
                        "must be between 1 and 36".into(),
                    ));
                }
                let mut plan_ids = std::collections::BTreeSet::new();
                for (j, plan) in v.plans.iter().enumerate() {
                    let pat = |f: &str| at(&format!("plans[{j}].{f}"));
                    if plan.id.is_empty()
                        || !plan
                            .id
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    {
                        return Err(fail(
                            &pat("id"),
                            format!("{:?} must be lower-case letters, digits and '-'", plan.id),
                        ));
                    }
                    if !plan_ids.insert(plan.id.clone()) {
                        return Err(fail(&pat("id"), format!("{} appears twice", plan.id)));
                    }
                    if !matches!(plan.extra_months, 12 | 24 | 36) {
                        return Err(fail(
                            &pat("extra_months"),
                            format!("{} is not 12, 24 or 36", plan.extra_months),
                        ));
                    }
                    if plan.price_minor <= 0 {
                        return Err(fail(&pat("price_minor"), "must be positive".into()));
                    }
                    Currency::parse("currency", &plan.currency)
                        .map_err(|e| fail(&pat("currency"), e.reason))?;
                    if plan.buy_within_days == 0 || plan.buy_within_days > 3650 {
                        return Err(fail(
                            &pat("buy_within_days"),
                            "must be between 1 and 3650".into(),
                        ));
                    }
                }
                let mut cite = parsed.cite.clone();
                cite.extend(v.cite);
                for (figure, source) in &cite {
                    if !FIGURES.contains(&figure.as_str()) {
                        return Err(fail(
                            &at(&format!("cite.{figure}")),
                            format!("is not a figure (one of {})", FIGURES.join(", ")),
                        ));
                    }
                    if !parsed.sources.contains_key(source) {
                        return Err(fail(
                            &at(&format!("cite.{figure}")),
                            format!("names {source:?}, which is not under [sources]"),
                        ));
                    }
                }
                // A version states every figure but the optional ones it leaves out.
                let states = |figure: &str| match figure {
                    "repair_extension" => v.repair_extension.is_some(),
                    "plans" => !v.plans.is_empty(),
                    _ => true,
                };
                for figure in FIGURES.iter().filter(|f| states(f)) {
                    if !cite.contains_key(*figure) {
                        return Err(fail(
                            &at(&format!("cite.{figure}")),
                            "has no source: every figure names where it comes from".into(),
                        ));
                    }
                }
                cite.retain(|figure, _| states(figure));
                cited.extend(cite.values().cloned());
                let sources = cite
                    .values()
                    .filter_map(|id| Some((id.clone(), parsed.sources.get(id)?.clone())))
                    .collect();
                versions.push(PolicyTerms {
                    term_starts: parsed.term_starts,
                    honoured_in: parsed.honoured_in,
                    cite,
                    sources,
                    policy_id: parsed.policy_id.clone(),
                    version: v.version,
                    effective_from: v.effective_from,
                    phone_months: v.phone_months,
                    accessory_months: v.accessory_months,
                    statutory: v.statutory,
                    replaced_part: v.replaced_part,
                    repair_extension: v.repair_extension,
                    plans: v.plans,
                });
            }
            if let Some(unused) = parsed.sources.keys().find(|id| !cited.contains(*id)) {
                return Err(fail(
                    &format!("sources.{unused}"),
                    "is cited by no figure".into(),
                ));
            }
            table.countries.insert(country, versions);
        }
        Ok(table)
    }

    /// Fails naming the first required country without a policy.
    pub fn require(&self, countries: &[&str]) -> Result<(), PolicyError> {
        for country in countries {
            if !self.countries.contains_key(*country) {
                return Err(PolicyError {
                    file: format!("{country}.toml"),
                    field: "country".into(),
                    reason: "no policy for a country we sell in".into(),
                });
            }
        }
        Ok(())
    }

    /// The version in force for a device bought in `country` on `purchase_date`.
    pub fn in_force(&self, country: &str, purchase_date: NaiveDate) -> Option<&PolicyTerms> {
        self.countries
            .get(country)?
            .iter()
            .rev()
            .find(|v| v.effective_from <= purchase_date)
    }

    /// The version `version` of the policy `policy_id` of `country`: how another
    /// region's device is decided here, under the terms it was registered with.
    pub fn version(&self, country: &str, policy_id: &str, version: u32) -> Option<&PolicyTerms> {
        self.countries
            .get(country)?
            .iter()
            .find(|v| v.policy_id == policy_id && v.version == version)
    }

    pub fn countries(&self) -> impl Iterator<Item = &str> {
        self.countries.keys().map(String::as_str)
    }
}

/// Every source names a document and a place in it, an https address if any,
/// and a plausible date it was checked.
pub(super) fn check_sources(sources: &BTreeMap<String, Source>) -> Result<(), (String, String)> {
    if sources.is_empty() {
        return Err(("sources".into(), "at least one source is needed".into()));
    }
    let earliest = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or(NaiveDate::MIN);
    for (id, source) in sources {
        let at = |field: &str| format!("sources.{id}.{field}");
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err((
                format!("sources.{id}"),
                "ids are lower-case letters, digits and '-'".into(),
            ));
        }
        for (field, value) in [("title", &source.title), ("reference", &source.reference)] {
            if value.trim().is_empty() || value.len() > 300 {
                return Err((at(field), "must be 1 to 300 bytes".into()));
            }
        }
        if let Some(url) = &source.url
            && (!url.starts_with("https://")
                || url.len() > 500
                || url.contains(char::is_whitespace))
        {
            return Err((at("url"), "must be an https address".into()));
        }
        if source.checked < earliest {
            return Err((at("checked"), "is before 2000".into()));
        }
    }
    Ok(())
}

/// The policy files, compiled in so a binary needs no files beside it.
const BUILTIN: &[(&str, &str)] = &[
    ("AE.toml", include_str!("../../policies/AE.toml")),
    ("AU.toml", include_str!("../../policies/AU.toml")),
    ("BR.toml", include_str!("../../policies/BR.toml")),
    ("CA.toml", include_str!("../../policies/CA.toml")),
    ("CN.toml", include_str!("../../policies/CN.toml")),
    ("DE.toml", include_str!("../../policies/DE.toml")),
    ("EG.toml", include_str!("../../policies/EG.toml")),
    ("ES.toml", include_str!("../../policies/ES.toml")),
    ("FR.toml", include_str!("../../policies/FR.toml")),
    ("GB.toml", include_str!("../../policies/GB.toml")),
    ("ID.toml", include_str!("../../policies/ID.toml")),
    ("IN.toml", include_str!("../../policies/IN.toml")),
    ("IT.toml", include_str!("../../policies/IT.toml")),
    ("JP.toml", include_str!("../../policies/JP.toml")),
    ("KE.toml", include_str!("../../policies/KE.toml")),
    ("KR.toml", include_str!("../../policies/KR.toml")),
    ("MX.toml", include_str!("../../policies/MX.toml")),
    ("MY.toml", include_str!("../../policies/MY.toml")),
    ("NG.toml", include_str!("../../policies/NG.toml")),
    ("NL.toml", include_str!("../../policies/NL.toml")),
    ("PH.toml", include_str!("../../policies/PH.toml")),
    ("PL.toml", include_str!("../../policies/PL.toml")),
    ("SA.toml", include_str!("../../policies/SA.toml")),
    ("TH.toml", include_str!("../../policies/TH.toml")),
    ("TR.toml", include_str!("../../policies/TR.toml")),
    ("US.toml", include_str!("../../policies/US.toml")),
    ("VN.toml", include_str!("../../policies/VN.toml")),
    ("ZA.toml", include_str!("../../policies/ZA.toml")),
];

#[cfg(test)]
mod tests {

    /// This crate's directory as cargo gives it to the running test (a binary
    /// reused from a checkout elsewhere still reads this checkout's files).
    fn manifest_dir() -> String {
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
    }
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_builtin_table_covers_every_country_we_sell_in() {
        let table = PolicyTable::builtin().unwrap();
        table.require(REQUIRED_COUNTRIES).unwrap();
        let files = PolicyTable::load_dir(&Path::new(&manifest_dir()).join("policies")).unwrap();
        assert_eq!(
            files.countries().collect::<Vec<_>>(),
            table.countries().collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_version_in_force_on_the_purchase_date_applies() {
        let table = PolicyTable::builtin().unwrap();
        assert_eq!(table.in_force("DE", date("2021-12-31")).unwrap().version, 1);
        assert_eq!(table.in_force("DE", date("2026-07-30")).unwrap().version, 2);
        assert_eq!(table.in_force("DE", date("2026-07-31")).unwrap().version, 3);
        assert!(table.in_force("DE", date("2019-12-31")).is_none());
        assert!(table.in_force("XX", date("2025-01-01")).is_none());
        let cn = table.in_force("CN", date("2025-01-01")).unwrap();
        assert_eq!(
            (cn.statutory.return_days, cn.statutory.exchange_days),
            (7, 15)
        );
        assert_eq!(
            table
                .in_force("ES", date("2025-01-01"))
                .unwrap()
                .statutory
                .legal_guarantee_months,
            36
        );
    }

    const GOOD: &str = r#"
country = "NL"
policy_id = "nl-consumer"
honoured_in = "eu"
[cite]
phone_months = "maker"
accessory_months = "maker"
"replaced_part.minimum_days" = "maker"
plans = "maker"
term_starts = "maker"
honoured_in = "maker"
"statutory.legal_guarantee_months" = "bw"
"statutory.presumption_months" = "bw"
"statutory.return_days" = "bw"
"statutory.exchange_days" = "bw"
[sources.maker]
kind = "maker"
title = "The maker's limited warranty for the Netherlands"
reference = "docs/warranty-terms.md, NL"
checked = "2026-12-02"
[sources.bw]
kind = "statute"
title = "Burgerlijk Wetboek, Boek 7"
reference = "Art. 7:17 and 7:18"
url = "https://wetten.overheid.nl/BWBR0005290/"
checked = "2026-12-02"
[[versions]]
version = 1
effective_from = "2020-01-01"
phone_months = 24
[versions.accessory_months]
charger = 12
cable = 12
case = 6
earbuds = 12
[versions.statutory]
legal_guarantee_months = 24
presumption_months = 12
[versions.replaced_part]
minimum_days = 90
[[versions.plans]]
id = "care-12"
extra_months = 12
price_minor = 7900
currency = "EUR"
buy_within_days = 60
refund = "pro_rata"
"#;

    #[test]
    fn a_bad_file_is_refused_naming_the_file_and_field() {
        assert!(PolicyTable::from_sources([("NL.toml", GOOD)]).is_ok());
        let cases = [
            (
                "phone_months = 24",
                "phone_months = 0",
                "versions[0].phone_months",
            ),
            ("case = 6\n", "", "versions[0].accessory_months.case"),
            (
                "currency = \"EUR\"",
                "currency = \"euro\"",
                "versions[0].plans[0].currency",
            ),
            (
                "extra_months = 12",
                "extra_months = 7",
                "versions[0].plans[0].extra_months",
            ),
            ("version = 1", "version = 2", "versions[0].version"),
            ("country = \"NL\"", "country = \"Netherlands\"", "country"),
            (
                "price_minor = 7900",
                "price_minor = -1",
                "versions[0].plans[0].price_minor",
            ),
            ("refund = \"pro_rata\"", "refund = \"sometimes\"", "at byte"),
            // Every figure names its source, and every source is real and used.
            (
                "\"statutory.presumption_months\" = \"bw\"\n",
                "",
                "versions[0].cite.statutory.presumption_months",
            ),
            ("plans = \"maker\"\n", "", "versions[0].cite.plans"),
            (
                "phone_months = \"maker\"",
                "phone_months = \"hearsay\"",
                "versions[0].cite.phone_months",
            ),
            (
                "url = \"https://wetten",
                "url = \"http://wetten",
                "sources.bw.url",
            ),
            (
                "reference = \"Art. 7:17 and 7:18\"",
                "reference = \"\"",
                "sources.bw.reference",
            ),
            (
                "checked = \"2026-12-02\"\n[[versions]]",
                "checked = \"1999-12-31\"\n[[versions]]",
                "sources.bw.checked",
            ),
            (
                "[sources.maker]",
                "[sources.unused]\nkind = \"statute\"\ntitle = \"t\"\nreference = \"r\"\nchecked = \"2026-12-02\"\n[sources.maker]",
                "sources.unused",
            ),
            ("honoured_in = \"eu\"\n", "", "at byte"),
            (
                "phone_months = 24",
                "phone_months = 24\nsurprise = 1",
                "at byte",
            ),
        ];
        for (from, to, field) in cases {
            let text = GOOD.replacen(from, to, 1);
            let error = PolicyTable::from_sources([("NL.toml", text.as_str())]).unwrap_err();
            assert_eq!(error.file, "NL.toml");
            assert!(error.field.starts_with(field), "{to:?}: {error}");
        }
        let twice = PolicyTable::from_sources([("a.toml", GOOD), ("b.toml", GOOD)]).unwrap_err();
        assert_eq!(
            (twice.file.as_str(), twice.field.as_str()),
            ("b.toml", "country")
        );
        let missing = PolicyTable::from_sources([("NL.toml", GOOD)])
            .unwrap()
            .require(&["NL", "DE"])
            .unwrap_err();
        assert!(missing.to_string().contains("DE"), "{missing}");
    }

    /// What the law says in each country, as its file must state and cite it:
    /// (country, legal guarantee months, presumption months, return days,
    /// exchange days, source of the legal guarantee, source of the presumption,
    /// source of the return window), for goods bought today.
    type StatuteRow = (
        &'static str,
        u32,
        u32,
        u32,
        u32,
        &'static str,
        &'static str,
        &'static str,
    );
    const STATUTE_TABLE: &[StatuteRow] = &[
        ("AE", 0, 0, 0, 0, "ae-15-2020", "ae-15-2020", "ae-15-2020"),
        ("AU", 24, 0, 0, 0, "acl-54", "acl-54", "acl-54"),
        ("BR", 3, 0, 0, 0, "cdc-26", "cdc-26", "cdc-26"),
        ("CA", 0, 0, 0, 0, "qc-cpa-38", "qc-cpa-38", "qc-cpa-38"),
        ("CN", 0, 0, 7, 15, "sanbao", "sanbao", "sanbao"),
        ("DE", 24, 12, 0, 0, "bgb-438", "bgb-477", "bgb-438"),
        (
            "EG",
            24,
            0,
            30,
            0,
            "eg-181-2018",
            "eg-181-2018",
            "eg-181-2018",
        ),
        (
            "ES",
            36,
            24,
            0,
            0,
            "trlgdcu-120",
            "trlgdcu-121",
            "trlgdcu-120",
        ),
        (
            "FR",
            24,
            24,
            0,
            0,
            "cconso-l217-3",
            "cconso-l217-7",
            "cconso-l217-3",
        ),
        ("GB", 0, 6, 30, 0, "cra-19", "cra-19", "cra-22"),
        (
            "ID",
            0,
            0,
            0,
            0,
            "permendag-manual",
            "permendag-manual",
            "permendag-manual",
        ),
        ("IN", 0, 0, 0, 0, "cpa-2019", "cpa-2019", "cpa-2019"),
        ("IT", 24, 12, 0, 0, "ccons-133", "ccons-135", "ccons-133"),
        (
            "JP",
            0,
            0,
            0,
            0,
            "jp-civil-566",
            "jp-civil-566",
            "jp-civil-566",
        ),
        (
            "KE",
            0,
            0,
            0,
            0,
            "ke-cpa-2012",
            "ke-cpa-2012",
            "ke-cpa-2012",
        ),
        ("KR", 24, 0, 0, 0, "kr-cdrs", "kr-cdrs", "kr-cdrs"),
        ("MX", 0, 0, 0, 0, "lfpc-77", "lfpc-77", "lfpc-77"),
        ("MY", 0, 0, 0, 0, "my-cpa-32", "my-cpa-32", "my-cpa-32"),
        ("NG", 0, 0, 0, 0, "fccpa-2018", "fccpa-2018", "fccpa-2018"),
        ("NL", 24, 12, 0, 0, "bw-7-17", "bw-7-18", "bw-7-17"),
        ("PH", 0, 0, 0, 0, "ra-7394", "ra-7394", "ra-7394"),
        ("PL", 24, 24, 0, 0, "upk-43c", "upk-43c", "upk-43c"),
        ("SA", 0, 0, 0, 0, "sa-moc", "sa-moc", "sa-moc"),
        ("TH", 0, 0, 0, 0, "th-ccc-472", "th-ccc-472", "th-ccc-472"),
        ("TR", 24, 6, 0, 0, "tr-6502", "tr-6502", "tr-6502"),
        ("US", 0, 0, 0, 0, "mmwa", "mmwa", "mmwa"),
        (
            "VN",
            0,
            0,
            0,
            0,
            "vn-consumer-2023",
            "vn-consumer-2023",
            "vn-consumer-2023",
        ),
        ("ZA", 6, 6, 0, 0, "cpa-56", "cpa-56", "cpa-56"),
    ];

    #[test]
    fn every_country_states_the_law_and_cites_it() {
        let table = PolicyTable::builtin().unwrap();
        assert!(STATUTE_TABLE.len() >= 20);
        assert_eq!(
            STATUTE_TABLE.iter().map(|row| row.0).collect::<Vec<_>>(),
            table.countries().collect::<Vec<_>>(),
            "one row per country file"
        );
        let today = date("2026-12-02");
        for &(country, legal, presumption, ret, exchange, legal_src, presumption_src, ret_src) in
            STATUTE_TABLE
        {
            let terms = table.in_force(country, today).unwrap();
            let s = &terms.statutory;
            assert_eq!(
                (
                    s.legal_guarantee_months,
                    s.presumption_months,
                    s.return_days,
                    s.exchange_days
                ),
                (legal, presumption, ret, exchange),
                "{country}: statutory figures"
            );
            for (figure, source) in [
                ("statutory.legal_guarantee_months", legal_src),
                ("statutory.presumption_months", presumption_src),
                ("statutory.return_days", ret_src),
            ] {
                assert_eq!(
                    terms.cite.get(figure).map(String::as_str),
                    Some(source),
                    "{country}: {figure} cites"
                );
                let cited = terms.source_of(figure).unwrap();
                assert_eq!(cited.kind, SourceKind::Statute, "{country}: {figure}");
            }
            // EU law: the legal guarantee extends once by a repair from 31 July 2026.
            assert_eq!(
                terms.repair_extension.is_some(),
                EU_EEA.contains(&country),
                "{country}: repair extension"
            );
        }
    }

    /// Spain's 36 months and Germany's and Italy's 12-month presumption apply to
    /// goods bought from 1 January 2022; before, the old law's figures.
    #[test]
    fn goods_bought_before_2022_keep_the_old_eu_figures() {
        let table = PolicyTable::builtin().unwrap();
        let before = date("2021-06-01");
        let figures = |country: &str| {
            let s = &table.in_force(country, before).unwrap().statutory;
            (s.legal_guarantee_months, s.presumption_months)
        };
        assert_eq!(figures("ES"), (24, 6));
        assert_eq!(figures("DE"), (24, 6));
        assert_eq!(figures("IT"), (24, 6));
        assert_eq!(figures("FR"), (24, 24));
    }

    /// The maker's figures in every file match its published terms, the table in
    /// `docs/warranty-terms.md`, which every file cites for them.
    #[test]
    fn every_country_matches_the_makers_published_terms() {
        let table = PolicyTable::builtin().unwrap();
        let doc = include_str!("../../../../docs/warranty-terms.md");
        let rows: BTreeMap<&str, Vec<&str>> = doc
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| Country"))
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                (cells[0], cells)
            })
            .collect();
        let today = date("2026-12-02");
        for country in table.countries() {
            let row = rows
                .get(country)
                .unwrap_or_else(|| panic!("{country} is missing from the published terms"));
            let terms = table.in_force(country, today).unwrap();
            let months = |kind| terms.accessory_months[&kind].to_string();
            let start = match terms.term_starts {
                TermStart::Purchase => "purchase".to_owned(),
                TermStart::Activation { within_days } => {
                    format!("activation (within {within_days} days of purchase)")
                }
            };
            let honoured = match terms.honoured_in {
                Travel::Country => "country of purchase",
                Travel::Eu => "EU, EEA and Switzerland",
                Travel::Worldwide => "worldwide",
            };
            let plan = &terms.plans[0];
            let published = [
                terms.phone_months.to_string(),
                months(AccessoryKind::Charger),
                months(AccessoryKind::Cable),
                months(AccessoryKind::Case),
                months(AccessoryKind::Earbuds),
                terms.replaced_part.minimum_days.to_string(),
                start,
                honoured.to_owned(),
                plan.buy_within_days.to_string(),
                match plan.refund {
                    Refund::ProRata => "pro rata",
                    Refund::None => "none",
                }
                .to_owned(),
            ];
            assert_eq!(
                row[2..],
                published,
                "{country}: file against published terms"
            );
            // The maker's own choices cite its terms; a term the law sets (China's
            // accessories, Egypt's two years) may cite the statute instead.
            for figure in ["plans", "term_starts", "honoured_in"] {
                let source = terms.source_of(figure).unwrap();
                assert_eq!(source.kind, SourceKind::Maker, "{country}: {figure}");
            }
            for figure in FIGURES {
                if let Some(source) = terms.source_of(figure)
                    && source.kind == SourceKind::Maker
                {
                    assert!(
                        source.reference.contains("docs/warranty-terms.md"),
                        "{country}"
                    );
                }
            }
        }
    }
}
