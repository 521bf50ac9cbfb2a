//! The region directory: which region is home for each country, and where each
//! region's services answer. Data, read from the file `AFTERSALES_REGIONS_FILE`
//! names (`deploy/k8s/base/regions.toml` is the deployment's); without one, the region a
//! service runs in is home for every country.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

/// Services another region may call.
pub const SERVICES: [&str; 7] = [
    "warranty",
    "repair",
    "logistics",
    "notification",
    "parts",
    "support",
    "gateway",
];

/// Largest directory file read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Every region, and the home region of each country.
#[derive(Debug, Clone)]
pub struct Regions {
    regions: Vec<Region>,
    home: HashMap<String, usize>,
    /// A directory of one region: home for every country.
    everywhere: bool,
}

/// One region: its name (also its JetStream domain and the subjects' region
/// token), the countries it is home for, and its services' addresses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub name: String,
    #[serde(default)]
    pub countries: Vec<String>,
    /// Service name to its URL, as other regions call it.
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
}

impl Region {
    pub fn endpoint(&self, service: &str) -> Option<&str> {
        self.endpoints.get(service).map(String::as_str)
    }
}

/// Why a directory was refused.
#[derive(Debug, thiserror::Error)]
#[error("region directory: {at}: {reason}")]
pub struct RegionsError {
    pub at: String,
    pub reason: String,
}

fn refuse(at: impl Into<String>, reason: impl Into<String>) -> RegionsError {
    RegionsError {
        at: at.into(),
        reason: reason.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    region: Vec<Region>,
}

impl Regions {
    /// A deployment of one region, home for every country.
    pub fn single(region: &str) -> Self {
        Self {
            regions: vec![Region {
                name: region.to_owned(),
                countries: Vec::new(),
                endpoints: BTreeMap::new(),
            }],
            home: HashMap::new(),
            everywhere: true,
        }
    }

    /// Reads and checks the directory at `path`.
    pub fn load(path: &std::path::Path) -> Result<Self, RegionsError> {
        let at = path.display().to_string();
        let size = std::fs::metadata(path)
            .map_err(|e| refuse(&at, e.to_string()))?
            .len();
        if size > MAX_FILE_BYTES {
            return Err(refuse(at, format!("larger than {MAX_FILE_BYTES} bytes")));
        }
        let text = std::fs::read_to_string(path).map_err(|e| refuse(&at, e.to_string()))?;
        Self::parse(&text)
    }

    /// Checks a directory: region names that are subject tokens, each named once;
    /// countries as ISO 3166-1 alpha-2 codes, each home in one region only; known
    /// services at `http(s)://` URLs.
    pub fn parse(text: &str) -> Result<Self, RegionsError> {
        let file: File = toml::from_str(text).map_err(|e| refuse("file", e.to_string()))?;
        if file.region.is_empty() {
            return Err(refuse("region", "at least one region"));
        }
        let mut home = HashMap::new();
        let mut names = std::collections::HashSet::new();
        for (index, region) in file.region.iter().enumerate() {
            let at = format!("region {:?}", region.name);
            aftersales_messaging::names::check_token("name", &region.name)
                .map_err(|e| refuse(&at, e.to_string()))?;
            if !names.insert(region.name.as_str()) {
                return Err(refuse(at, "named twice"));
            }
            if region.countries.is_empty() {
                return Err(refuse(at, "is home for no country"));
            }
            for country in &region.countries {
                let code = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
                if !code {
                    return Err(refuse(
                        &at,
                        format!("{country:?} is not a two-letter country code"),
                    ));
                }
                if let Some(other) = home.insert(country.clone(), index) {
                    return Err(refuse(
                        &at,
                        format!("{country} is already home in {:?}", file.region[other].name),
                    ));
                }
            }
            for (service, url) in &region.endpoints {
                if !SERVICES.contains(&service.as_str()) {
                    return Err(refuse(
                        &at,
                        format!("unknown service {service:?} (one of {SERVICES:?})"),
                    ));
                }
                let uri: http::Uri = url
                    .parse()
                    .map_err(|e| refuse(&at, format!("{service}: {url:?}: {e}")))?;
                let web = matches!(uri.scheme_str(), Some("http" | "https"));
                if !web || uri.host().is_none() {
                    return Err(refuse(
                        &at,
                        format!("{service}: {url:?} is not an http(s) URL with a host"),
                    ));
                }
            }
        }
        Ok(Self {
            regions: file.region,
            home,
            everywhere: false,
        })
    }

    /// The home region of devices bought in `country` (upper-case ISO code).
    pub fn home_of(&self, country: &str) -> Option<&Region> {
        if self.everywhere {
            return self.regions.first();
        }
        self.home.get(country).map(|&i| &self.regions[i])
    }

    pub fn get(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// Every region but `name`: those whose facts `name` replicates.
    pub fn others<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Region> {
        self.regions.iter().filter(move |r| r.name != name)
    }

    pub fn all(&self) -> &[Region] {
        &self.regions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        Regions::parse(text).expect_err("refused").to_string()
    }

    #[test]
    fn the_deployment_directory_is_valid_and_homes_each_country_once() {
        let regions =
            Regions::parse(include_str!("../../../deploy/k8s/base/regions.toml")).expect("valid");
        let home = |c: &str| regions.home_of(c).map(|r| r.name.as_str());
        assert_eq!(home("DE"), Some("eu-central"));
        assert_eq!(home("FR"), Some("eu-central"));
        assert_eq!(home("CN"), Some("cn-east"));
        assert_eq!(home("IN"), Some("ap-south"));
        assert_eq!(home("US"), Some("us-east"));
        assert_eq!(home("ZZ"), None);
        let eu = regions.get("eu-central").expect("eu-central");
        assert!(
            eu.endpoint("warranty")
                .is_some_and(|u| u.starts_with("https://"))
        );
        let others: Vec<_> = regions.others("eu-central").map(|r| &r.name).collect();
        assert_eq!(others, ["cn-east", "ap-south", "us-east"]);
    }

    #[test]
    fn one_region_is_home_everywhere() {
        let regions = Regions::single("local");
        assert_eq!(
            regions.home_of("DE").map(|r| r.name.as_str()),
            Some("local")
        );
        assert_eq!(regions.others("local").count(), 0);
    }

    #[test]
    fn a_bad_directory_is_refused_saying_where() {
        let one = |body: &str| format!("[[region]]\nname = \"eu-central\"\n{body}");
        assert!(refused("").contains("region"));
        assert!(
            refused(&one(
                "countries = [\"DE\"]\n[[region]]\nname = \"eu-central\"\ncountries = [\"FR\"]"
            ))
            .contains("named twice")
        );
        assert!(
            refused(&one(
                "countries = [\"DE\"]\n[[region]]\nname = \"ap-south\"\ncountries = [\"DE\"]"
            ))
            .contains("DE is already home in \"eu-central\"")
        );
        assert!(refused(&one("countries = [\"de\"]")).contains("two-letter"));
        assert!(refused(&one("countries = []")).contains("no country"));
        assert!(
            refused("[[region]]\nname = \"EU Central\"\ncountries = [\"DE\"]")
                .contains("lower-case")
        );
        assert!(
            refused(&one(
                "countries = [\"DE\"]\n[region.endpoints]\nbilling = \"https://b.example\""
            ))
            .contains("unknown service")
        );
        assert!(
            refused(&one(
                "countries = [\"DE\"]\n[region.endpoints]\nwarranty = \"ftp://w.example\""
            ))
            .contains("not an http(s) URL")
        );
        assert!(refused(&one("countries = [\"DE\"]\ncolour = \"blue\"")).contains("unknown field"));
    }
}
