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
}

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
}

/// A policy file that cannot be used, named with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field}: {reason}")]
pub struct PolicyError {
    pub file: String,
    pub field: String,
    pub reason: String,
}

/// Every country's policies.
#[derive(Debug, Clone, Default)]
pub struct PolicyTable {
    /// Per ISO country code, versions by effective date.
    countries: BTreeMap<String, Vec<PolicyTerms>>,
}

/// The countries every deployment must be able to sell in.
pub const REQUIRED_COUNTRIES: &[&str] =
    &["CN", "IN", "US", "GB", "DE", "FR", "ES", "IT", "AU", "ZA"];

impl PolicyTable {
    /// Loads every `*.toml` in `dir`; all must be valid.
    pub fn load_dir(dir: &Path) -> Result<Self, PolicyError> {
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
                versions.push(PolicyTerms {
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

    pub fn countries(&self) -> impl Iterator<Item = &str> {
        self.countries.keys().map(String::as_str)
    }
}

/// The policy files, compiled in so a binary needs no files beside it.
const BUILTIN: &[(&str, &str)] = &[
    ("AU.toml", include_str!("../../policies/AU.toml")),
    ("CN.toml", include_str!("../../policies/CN.toml")),
    ("DE.toml", include_str!("../../policies/DE.toml")),
    ("ES.toml", include_str!("../../policies/ES.toml")),
    ("FR.toml", include_str!("../../policies/FR.toml")),
    ("GB.toml", include_str!("../../policies/GB.toml")),
    ("IN.toml", include_str!("../../policies/IN.toml")),
    ("IT.toml", include_str!("../../policies/IT.toml")),
    ("US.toml", include_str!("../../policies/US.toml")),
    ("ZA.toml", include_str!("../../policies/ZA.toml")),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_builtin_table_covers_every_country_we_sell_in() {
        let table = PolicyTable::builtin().unwrap();
        table.require(REQUIRED_COUNTRIES).unwrap();
        let files =
            PolicyTable::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).unwrap();
        assert_eq!(
            files.countries().collect::<Vec<_>>(),
            table.countries().collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_version_in_force_on_the_purchase_date_applies() {
        let table = PolicyTable::builtin().unwrap();
        assert_eq!(table.in_force("DE", date("2026-07-30")).unwrap().version, 1);
        assert_eq!(table.in_force("DE", date("2026-07-31")).unwrap().version, 2);
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
}
