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

/// Where a client (the CLI, the gateway) sends its calls to one service when
/// the platform runs in many regions: reads to the nearest region that can
/// answer, writes about a device to its home region, the only one that writes
/// it. Without a directory, every call goes to the nearest.
#[derive(Debug, Clone)]
pub struct Routes {
    service: &'static str,
    nearest: String,
    regions: Option<std::sync::Arc<Regions>>,
}

impl Routes {
    /// Calls to `service`, whose nearest instance answers at `nearest`.
    pub fn new(
        service: &'static str,
        nearest: impl Into<String>,
        regions: Option<std::sync::Arc<Regions>>,
    ) -> Self {
        Self {
            service,
            nearest: nearest.into(),
            regions,
        }
    }

    pub fn nearest(&self) -> &str {
        &self.nearest
    }

    /// Whether every call goes to the nearest: no other region names the
    /// service.
    pub fn nearest_only(&self) -> bool {
        self.readers().len() == 1
    }

    /// Where to read, in the order to ask: the nearest, then every other
    /// region of the directory that names the service, each once.
    pub fn readers(&self) -> Vec<String> {
        let mut urls = vec![self.nearest.clone()];
        for region in self.regions.iter().flat_map(|r| r.all()) {
            if let Some(url) = region.endpoint(self.service)
                && !urls.iter().any(|u| u == url)
            {
                urls.push(url.to_owned());
            }
        }
        urls
    }

    /// The service in `region`: from the directory, or the nearest when there
    /// is none. A region the directory does not know, or whose service it has
    /// no address for, cannot be called (FAILED_PRECONDITION).
    pub fn in_region(&self, region: &str) -> Result<String, tonic::Status> {
        let Some(regions) = &self.regions else {
            return Ok(self.nearest.clone());
        };
        let region = regions.get(region).ok_or_else(|| {
            tonic::Status::failed_precondition(format!(
                "region {region:?} is not in the region directory"
            ))
        })?;
        region
            .endpoint(self.service)
            .map(str::to_owned)
            .ok_or_else(|| {
                tonic::Status::failed_precondition(format!(
                    "the region directory gives no {} address for region {:?}",
                    self.service, region.name
                ))
            })
    }

    /// The service in the home region of `country` (an ISO code): where
    /// a device bought there is registered, and where a customer in that country
    /// finds the service centers near them. The nearest when the directory names
    /// no home for it (the service then says why it refuses).
    pub fn home_of_country(&self, country: &str) -> String {
        self.regions
            .as_ref()
            .and_then(|r| r.home_of(&country.trim().to_ascii_uppercase()))
            .and_then(|region| region.endpoint(self.service))
            .map_or_else(|| self.nearest.clone(), str::to_owned)
    }

    /// Where a device's writes go, given where it was read (`answered_at`) and
    /// the home region the answer named if it came from a replica (`""` if the
    /// region that answered is home).
    pub fn home_of_device(
        &self,
        answered_at: &str,
        replica_home: &str,
    ) -> Result<String, tonic::Status> {
        if replica_home.is_empty() {
            Ok(answered_at.to_owned())
        } else {
            self.in_region(replica_home)
        }
    }
}

/// Asks each of `urls` in turn until one answers: a region that does not know
/// the thing asked for (NOT_FOUND) or cannot be reached (UNAVAILABLE, a deadline
/// passed) passes the question on; any other refusal is the answer. Gives the
/// answer and where it came from. If none answers: the first region that could
/// not be reached (it may know), else the nearest's NOT_FOUND.
pub async fn first_that_answers<T, F, Fut>(
    urls: &[String],
    mut call: F,
) -> Result<(T, String), tonic::Status>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let (mut unreachable, mut unknown) = (None, None);
    for url in urls {
        match call(url.clone()).await {
            Ok(answer) => return Ok((answer, url.clone())),
            Err(status) if status.code() == tonic::Code::NotFound => {
                unknown.get_or_insert(status);
            }
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                ) =>
            {
                unreachable.get_or_insert(status);
            }
            Err(status) => return Err(status),
        }
    }
    Err(unreachable
        .or(unknown)
        .unwrap_or_else(|| tonic::Status::unavailable("no region to ask")))
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

    fn two_regions() -> std::sync::Arc<Regions> {
        std::sync::Arc::new(
            Regions::parse(
                "[[region]]\nname = \"eu-central\"\ncountries = [\"DE\"]\n\
                 [region.endpoints]\nwarranty = \"http://eu.example:50051\"\n\
                 [[region]]\nname = \"ap-south\"\ncountries = [\"IN\"]\n\
                 [region.endpoints]\nwarranty = \"http://ap.example:50051\"\n\
                 [[region]]\nname = \"us-east\"\ncountries = [\"US\"]\n",
            )
            .expect("valid"),
        )
    }

    #[test]
    fn reads_go_nearest_first_and_writes_to_the_home_region() {
        let routes = Routes::new("warranty", "http://ap.example:50051", Some(two_regions()));
        assert_eq!(
            routes.readers(),
            ["http://ap.example:50051", "http://eu.example:50051"],
            "the nearest once, then the others with an address"
        );
        assert_eq!(routes.home_of_country("DE"), "http://eu.example:50051");
        assert_eq!(routes.home_of_country(" in "), "http://ap.example:50051");
        assert_eq!(
            routes.home_of_country("BR"),
            "http://ap.example:50051",
            "no home: the nearest, which refuses and says why"
        );
        assert_eq!(
            routes
                .home_of_device("http://ap.example:50051", "eu-central")
                .unwrap(),
            "http://eu.example:50051"
        );
        assert_eq!(
            routes
                .home_of_device("http://eu.example:50051", "")
                .unwrap(),
            "http://eu.example:50051",
            "answered by its home"
        );
        let no_address = routes.home_of_device("http://ap.example:50051", "us-east");
        assert_eq!(
            no_address.unwrap_err().code(),
            tonic::Code::FailedPrecondition
        );
        let unknown = routes.in_region("mars-1").unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::FailedPrecondition);

        assert!(!routes.nearest_only());
        let alone = Routes::new("warranty", "http://localhost:50051", None);
        assert!(alone.nearest_only());
        assert_eq!(alone.readers(), ["http://localhost:50051"]);
        assert_eq!(alone.home_of_country("DE"), "http://localhost:50051");
        assert_eq!(
            alone.in_region("eu-central").unwrap(),
            "http://localhost:50051"
        );
    }

    #[tokio::test]
    async fn a_read_passes_on_from_a_region_that_cannot_answer_but_not_past_a_refusal() {
        let urls: Vec<String> = ["near", "far", "farther"].map(String::from).into();
        let (answer, from) = first_that_answers(&urls, |url| async move {
            match url.as_str() {
                "near" => Err(tonic::Status::not_found("no such device")),
                "far" => Err(tonic::Status::unavailable("link down")),
                _ => Ok(7),
            }
        })
        .await
        .unwrap();
        assert_eq!((answer, from.as_str()), (7, "farther"));

        let refused = first_that_answers(&urls, |url| async move {
            match url.as_str() {
                "near" => Err(tonic::Status::permission_denied("not yours")),
                _ => Ok(7),
            }
        })
        .await
        .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);

        let unreachable = first_that_answers(&urls, |url| async move {
            Err::<u8, _>(if url == "near" {
                tonic::Status::not_found("no such device")
            } else {
                tonic::Status::unavailable("down")
            })
        })
        .await
        .unwrap_err();
        assert_eq!(
            unreachable.code(),
            tonic::Code::Unavailable,
            "a region that may know could not be asked"
        );
        let unknown = first_that_answers(&urls, |_| async move {
            Err::<u8, _>(tonic::Status::not_found("no such device"))
        })
        .await
        .unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::NotFound, "nobody knows it");
    }
}
