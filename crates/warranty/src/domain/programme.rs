//! Recall and service programmes: the maker's promise to remedy a known fault of
//! some devices (models, IMEI or serial ranges, production batches) in some
//! countries for a time, whatever their warranty says. Kept as TOML files under
//! `crates/warranty/programmes/`, loaded and checked at start-up.
//!
//! A decision made under a programme cites its id and version, and a device
//! affected by one records it in its history (which is what tells its owner), so
//! amending a file never rewrites what was decided or told.

use std::collections::BTreeSet;
use std::path::Path;

use aftersales_core::types::{CountryCode, DeviceKey};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::FaultCategory;
use super::coverage::Remedy;
use super::device::DeviceState;
use super::policy::{PolicyError, Source, check_sources};

/// A recall answers a safety defect: it covers a device whose warranty was
/// voided too. A service programme answers a quality defect and does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgrammeKind {
    Recall,
    Service,
}

impl ProgrammeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recall => "recall",
            Self::Service => "service",
        }
    }
}

/// Which devices of the programme's models it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum DeviceRange {
    /// IMEIs from `from` to `to`, both included (15 digits each).
    Imei { from: String, to: String },
    /// Serial numbers of the same length as `from` and `to`, between them.
    Serial { from: String, to: String },
    /// A production batch: the serial numbers that start with its code.
    Batch { serial_prefix: String },
}

impl DeviceRange {
    pub fn includes(&self, key: &DeviceKey) -> bool {
        let value = key.value();
        match (self, key) {
            (Self::Imei { from, to }, DeviceKey::Imei(_))
            | (Self::Serial { from, to }, DeviceKey::Serial(_)) => {
                value.len() == from.len() && from.as_str() <= value && value <= to.as_str()
            }
            (Self::Batch { serial_prefix }, DeviceKey::Serial(_)) => {
                value.starts_with(serial_prefix.as_str())
            }
            (Self::Imei { .. }, DeviceKey::Serial(_))
            | (Self::Serial { .. } | Self::Batch { .. }, DeviceKey::Imei(_)) => false,
        }
    }

    /// As an operator writes it: `imei 35…–35…`, `serial …–…`, `batch F2K5`.
    pub fn describe(&self) -> String {
        match self {
            Self::Imei { from, to } => format!("imei {from}-{to}"),
            Self::Serial { from, to } => format!("serial {from}-{to}"),
            Self::Batch { serial_prefix } => format!("batch {serial_prefix}"),
        }
    }
}

/// One programme, as its file states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Programme {
    pub id: String,
    /// Counts up with every amendment; decisions cite the version they used.
    pub version: u32,
    pub kind: ProgrammeKind,
    pub title: String,
    pub models: Vec<String>,
    pub ranges: Vec<DeviceRange>,
    pub faults: Vec<FaultCategory>,
    pub remedy: Remedy,
    /// Where it is offered: devices bought there are told, devices serviced
    /// there are covered.
    pub countries: Vec<String>,
    /// Faults that appear from `starts` to `ends` (both included) are covered.
    pub starts: NaiveDate,
    pub ends: NaiveDate,
    /// The public notice announcing it.
    pub notice: Source,
}

impl Programme {
    /// The device is one of those the programme names (model and range).
    pub fn names(&self, key: &DeviceKey, model: &str) -> bool {
        self.models.iter().any(|m| m == model) && self.ranges.iter().any(|r| r.includes(key))
    }

    /// The device is one the programme is offered for: named, and bought in
    /// one of its countries. Its owner is told.
    pub fn affects(&self, device: &DeviceState) -> bool {
        self.names(&device.key, &device.model) && self.countries.contains(&device.country)
    }

    /// The programme remedies `fault`, appeared on `on`, of the device serviced
    /// in `serviced_in` (its country of purchase if `None`).
    pub fn covers(
        &self,
        device: &DeviceState,
        fault: FaultCategory,
        on: NaiveDate,
        serviced_in: Option<&str>,
    ) -> bool {
        let country = serviced_in.unwrap_or(&device.country);
        self.names(&device.key, &device.model)
            && self.faults.contains(&fault)
            && self.starts <= on
            && on <= self.ends
            && self.countries.iter().any(|c| c == country)
            && (device.voided.is_none() || self.kind == ProgrammeKind::Recall)
    }

    /// Running on `today`: devices it affects are told now.
    pub fn running_on(&self, today: NaiveDate) -> bool {
        self.starts <= today && today <= self.ends
    }
}

/// Every programme, by id.
#[derive(Debug, Clone, Default)]
pub struct ProgrammeTable {
    programmes: Vec<Programme>,
}

/// One file: any number of programmes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgrammeFile {
    #[serde(default)]
    programme: Vec<Programme>,
}

const BUILTIN: &[(&str, &str)] = &[(
    "programmes.toml",
    include_str!("../../programmes/programmes.toml"),
)];

impl ProgrammeTable {
    /// Loads every `*.toml` in `dir`; all must be valid.
    pub fn load_dir(dir: &Path) -> Result<Self, PolicyError> {
        let files = super::policy::read_toml_files(dir)?;
        Self::from_sources(files.iter().map(|(n, t)| (n.as_str(), t.as_str())))
    }

    /// The programmes built into the binary (the files under `programmes/`).
    pub fn builtin() -> Result<Self, PolicyError> {
        Self::from_sources(BUILTIN.iter().copied())
    }

    /// Parses and checks `(file name, TOML text)` pairs.
    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, PolicyError> {
        let mut programmes: Vec<Programme> = Vec::new();
        let mut ids = BTreeSet::new();
        for (file, text) in sources {
            let parsed: ProgrammeFile = toml::from_str(text).map_err(|e| PolicyError {
                file: file.to_owned(),
                field: e
                    .span()
                    .map(|span| format!("at byte {}", span.start))
                    .unwrap_or_else(|| "-".into()),
                reason: e.message().to_owned(),
            })?;
            for (i, programme) in parsed.programme.into_iter().enumerate() {
                check(&programme).map_err(|(field, reason)| PolicyError {
                    file: file.to_owned(),
                    field: format!("programme[{i}].{field}"),
                    reason,
                })?;
                if !ids.insert(programme.id.clone()) {
                    return Err(PolicyError {
                        file: file.to_owned(),
                        field: format!("programme[{i}].id"),
                        reason: format!("{} is defined twice", programme.id),
                    });
                }
                programmes.push(programme);
            }
        }
        programmes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Self { programmes })
    }

    pub fn all(&self) -> &[Programme] {
        &self.programmes
    }

    /// The programmes running on `today` that affect the device and it has not
    /// been told of yet.
    pub fn news_for(&self, device: &DeviceState, today: NaiveDate) -> Vec<Programme> {
        self.programmes
            .iter()
            .filter(|p| {
                p.running_on(today) && p.affects(device) && !device.programmes.contains(&p.id)
            })
            .cloned()
            .collect()
    }
}

fn check(p: &Programme) -> Result<(), (String, String)> {
    let fail = |field: &str, reason: &str| Err((field.to_owned(), reason.to_owned()));
    if !(3..=40).contains(&p.id.len())
        || !p
            .id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
    {
        return fail("id", "must be 3 to 40 upper-case letters, digits or '-'");
    }
    if p.version == 0 {
        return fail("version", "counts up from 1");
    }
    if aftersales_core::types::printable_text("title", &p.title, 200, true).is_err() {
        return fail("title", "must be 1 to 200 printable characters");
    }
    if p.models.is_empty()
        || p.models
            .iter()
            .any(|m| m.trim().is_empty() || m.len() > 100 || m.trim() != m)
    {
        return fail("models", "names at least one model, each 1 to 100 bytes");
    }
    if p.ranges.is_empty() || p.ranges.len() > 1000 {
        return fail("ranges", "names 1 to 1000 ranges or batches");
    }
    for (i, range) in p.ranges.iter().enumerate() {
        check_range(range).map_err(|reason| (format!("ranges[{i}]"), reason))?;
    }
    if p.faults.is_empty() {
        return fail("faults", "names at least one fault");
    }
    if let Some(fault) = p.faults.iter().find(|f| f.is_excluded()) {
        return Err((
            "faults".into(),
            format!("{fault:?} is damage the user caused, which no programme remedies"),
        ));
    }
    if p.remedy == Remedy::None {
        return fail("remedy", "must be repair, exchange or refund");
    }
    if p.countries.is_empty() {
        return fail("countries", "names at least one country");
    }
    for country in &p.countries {
        if CountryCode::parse("countries", country).is_err() {
            return Err((
                "countries".into(),
                format!("{country:?} is not an ISO 3166 alpha-2 code"),
            ));
        }
    }
    if p.ends < p.starts {
        return fail("ends", "is before starts");
    }
    check_sources(&[("notice".to_owned(), p.notice.clone())].into())
        .map_err(|(field, reason)| (field.replacen("sources.", "", 1), reason))
}

fn check_range(range: &DeviceRange) -> Result<(), String> {
    let serial = |s: &str| {
        (4..=40).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    };
    match range {
        DeviceRange::Imei { from, to } => {
            if ![from, to]
                .iter()
                .all(|v| v.len() == 15 && v.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err("an IMEI range runs between two 15-digit numbers".into());
            }
            if from > to {
                return Err(format!("{from} is after {to}"));
            }
        }
        DeviceRange::Serial { from, to } => {
            if !serial(from) || !serial(to) || from.len() != to.len() {
                return Err(
                    "a serial range runs between two serials of the same length (4 to 40 \
                     upper-case letters or digits)"
                        .into(),
                );
            }
            if from > to {
                return Err(format!("{from} is after {to}"));
            }
        }
        DeviceRange::Batch { serial_prefix } => {
            if serial_prefix.len() < 2 || !serial(&format!("{serial_prefix:0<4}")) {
                return Err(
                    "a batch is a serial prefix of 2 to 40 upper-case letters or digits".into(),
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"
[[programme]]
id = "A4-BAT-2026"
version = 1
kind = "recall"
title = "Aurora 4 batteries that may swell"
models = ["Aurora 4"]
ranges = [
  { kind = "imei", from = "352099002000000", to = "352099002999999" },
  { kind = "batch", serial_prefix = "F2K5" },
]
faults = ["battery"]
remedy = "exchange"
countries = ["DE", "FR"]
starts = "2026-03-01"
ends = "2028-02-29"
notice = { kind = "maker", title = "Recall notice", reference = "RN-2026-03", checked = "2026-03-01" }
"#;

    #[test]
    fn the_builtin_programmes_load() {
        let table = ProgrammeTable::builtin().unwrap();
        assert!(!table.all().is_empty());
    }

    #[test]
    fn a_range_includes_its_bounds_and_nothing_of_the_other_kind() {
        let table = ProgrammeTable::from_sources([("p.toml", ONE)]).unwrap();
        let p = &table.all()[0];
        let imei = |v: &str| DeviceKey::imei(v).unwrap();
        let inside = (0..10)
            .map(|d| format!("35209900200000{d}"))
            .find(|v| aftersales_core::types::luhn_valid(v))
            .unwrap();
        assert!(p.names(&imei(&inside), "Aurora 4"));
        assert!(!p.names(&imei(&inside), "Aurora 5"));
        assert!(!p.names(&imei("352099001761481"), "Aurora 4"));
        assert!(p.names(&DeviceKey::serial("F2K5X81ABC").unwrap(), "Aurora 4"));
        assert!(!p.names(&DeviceKey::serial("F2K6X81ABC").unwrap(), "Aurora 4"));
    }

    #[test]
    fn bad_programmes_are_refused_with_the_field_named() {
        let cases = [
            ("id = \"A4-BAT-2026\"", "id = \"a4\"", "programme[0].id"),
            ("version = 1", "version = 0", "programme[0].version"),
            (
                "faults = [\"battery\"]",
                "faults = [\"liquid_damage\"]",
                "programme[0].faults",
            ),
            (
                "remedy = \"exchange\"",
                "remedy = \"none\"",
                "programme[0].remedy",
            ),
            (
                "countries = [\"DE\", \"FR\"]",
                "countries = [\"de\"]",
                "programme[0].countries",
            ),
            (
                "ends = \"2028-02-29\"",
                "ends = \"2026-02-01\"",
                "programme[0].ends",
            ),
            (
                "to = \"352099002999999\"",
                "to = \"352099001999999\"",
                "programme[0].ranges[0]",
            ),
            (
                "serial_prefix = \"F2K5\"",
                "serial_prefix = \"f\"",
                "programme[0].ranges[1]",
            ),
            (
                "models = [\"Aurora 4\"]",
                "models = []",
                "programme[0].models",
            ),
            (
                "reference = \"RN-2026-03\"",
                "reference = \"\"",
                "programme[0].notice.reference",
            ),
        ];
        for (from, to, field) in cases {
            let text = ONE.replace(from, to);
            assert_ne!(text, ONE, "{from}");
            let error = ProgrammeTable::from_sources([("p.toml", text.as_str())]).unwrap_err();
            assert_eq!(error.field, field, "{to}: {error}");
        }
        let twice = format!("{ONE}{}", ONE.replace("[[programme]]", "\n[[programme]]"));
        let error = ProgrammeTable::from_sources([("p.toml", twice.as_str())]).unwrap_err();
        assert_eq!(error.field, "programme[1].id");
        let unknown = ONE.replace("version = 1", "version = 1\nbatch = \"x\"");
        assert!(ProgrammeTable::from_sources([("p.toml", unknown.as_str())]).is_err());
    }
}
