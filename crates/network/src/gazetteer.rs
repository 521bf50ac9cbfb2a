//! The cities of every served country (GeoNames `cities15000`, CC BY 4.0; see
//! `data/LICENSE-GeoNames.md`), and a postal address's city found among them.

use std::collections::HashMap;
use std::sync::LazyLock;

use unicode_normalization::UnicodeNormalization as _;

const EARTH_RADIUS_KM: f64 = 6371.0088;

/// A point on Earth in decimal degrees (WGS 84).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub latitude: f64,
    pub longitude: f64,
}

impl Point {
    pub const fn new(latitude: f64, longitude: f64) -> Self {
        Self {
            latitude,
            longitude,
        }
    }

    /// Great-circle distance in kilometres (haversine).
    pub fn distance_km(self, other: Self) -> f64 {
        let (lat1, lat2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let dlat = lat2 - lat1;
        let dlon = (other.longitude - self.longitude).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
    }
}

/// One populated place.
#[derive(Debug, Clone, PartialEq)]
pub struct City {
    /// Its GeoNames id: stable, and what read models keep.
    pub id: u32,
    /// ISO 3166-1 alpha-2.
    pub country: &'static str,
    pub name: &'static str,
    pub point: Point,
    pub population: u64,
}

/// Every city, by country and by the names a person may write.
#[derive(Debug)]
pub struct Gazetteer {
    /// Per country, most populous first.
    by_country: HashMap<&'static str, Vec<City>>,
    /// (country, folded name) → index into the country's list, the most
    /// populous place of that name.
    by_name: HashMap<(&'static str, String), usize>,
    by_id: HashMap<u32, (&'static str, usize)>,
}

static CITIES: &str = include_str!("../data/cities.tsv");

static BUILTIN: LazyLock<Gazetteer> = LazyLock::new(|| Gazetteer::parse(CITIES));

impl Gazetteer {
    /// The cities shipped with the platform (parsed once, on first use).
    pub fn builtin() -> &'static Self {
        &BUILTIN
    }

    /// Reads the `cities.tsv` format; lines that do not parse are skipped
    /// (the file is ours and tested to parse whole).
    fn parse(text: &'static str) -> Self {
        let mut by_country: HashMap<&'static str, Vec<City>> = HashMap::new();
        let mut names: Vec<(&'static str, &'static str, usize)> = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut f = line.split('\t');
            let (
                Some(id),
                Some(country),
                Some(name),
                Some(_admin1),
                Some(lat),
                Some(lon),
                Some(pop),
            ) = (
                f.next(),
                f.next(),
                f.next(),
                f.next(),
                f.next(),
                f.next(),
                f.next(),
            )
            else {
                continue;
            };
            let alternates = f.next().unwrap_or_default();
            let (Ok(id), Ok(latitude), Ok(longitude), Ok(population)) =
                (id.parse(), lat.parse(), lon.parse(), pop.parse())
            else {
                continue;
            };
            let cities = by_country.entry(country).or_default();
            let index = cities.len();
            cities.push(City {
                id,
                country,
                name,
                point: Point::new(latitude, longitude),
                population,
            });
            names.push((country, name, index));
            names.extend(
                alternates
                    .split('|')
                    .filter(|a| !a.is_empty())
                    .map(|a| (country, a, index)),
            );
        }
        // The file lists each country's cities most populous first, so the
        // first place to claim a name keeps it.
        let mut by_name = HashMap::new();
        // Own names before alternates: "Paris" is Paris before it is anyone's alias.
        for own in [true, false] {
            for &(country, name, index) in &names {
                if (by_country[country][index].name == name) == own {
                    by_name.entry((country, fold(name))).or_insert(index);
                }
            }
        }
        let by_id = by_country
            .iter()
            .flat_map(|(country, cities)| {
                cities
                    .iter()
                    .enumerate()
                    .map(move |(i, c)| (c.id, (*country, i)))
            })
            .collect();
        Self {
            by_country,
            by_name,
            by_id,
        }
    }

    /// Whether any city of `country` is known.
    pub fn serves(&self, country: &str) -> bool {
        self.by_country.contains_key(country)
    }

    /// The country's cities, most populous first; empty for an unknown country.
    pub fn cities(&self, country: &str) -> &[City] {
        self.by_country.get(country).map_or(&[], Vec::as_slice)
    }

    /// The city a postal address names: its name or a Latin-script alternate,
    /// ignoring case, accents and punctuation; the most populous place where
    /// several share the name. `None` when the country has no such place.
    pub fn resolve(&self, country: &str, city: &str) -> Option<&City> {
        let (country, cities) = self.by_country.get_key_value(country)?;
        let index = self.by_name.get(&(*country, fold(city)))?;
        cities.get(*index)
    }

    /// A city by its GeoNames id.
    pub fn get(&self, id: u32) -> Option<&City> {
        let (country, index) = self.by_id.get(&id)?;
        self.by_country.get(country)?.get(*index)
    }

    /// The city nearest a point within `country`.
    pub fn nearest(&self, country: &str, point: Point) -> Option<&City> {
        self.cities(country).iter().min_by(|a, b| {
            a.point
                .distance_km(point)
                .total_cmp(&b.point.distance_km(point))
        })
    }
}

/// Lower case, accents dropped, every run of other characters one space.
fn fold(name: &str) -> String {
    let mut folded = String::with_capacity(name.len());
    let mut gap = false;
    for c in name
        .nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
    {
        if c.is_alphanumeric() {
            if gap && !folded.is_empty() {
                folded.push(' ');
            }
            gap = false;
            folded.extend(c.to_lowercase());
        } else {
            gap = true;
        }
    }
    folded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_parses_whole() {
        let lines = CITIES.lines().filter(|l| !l.starts_with('#')).count();
        let g = Gazetteer::builtin();
        let parsed: usize = g.by_country.values().map(Vec::len).sum();
        assert_eq!(parsed, lines);
        for country in ["AU", "CN", "DE", "ES", "FR", "GB", "IN", "IT", "US", "ZA"] {
            assert!(g.cities(country).len() > 250, "{country}");
        }
    }

    #[test]
    fn a_city_is_found_by_its_names_whatever_the_spelling() {
        let g = Gazetteer::builtin();
        let munich = g.resolve("DE", "München").map(|c| c.name);
        assert_eq!(munich, Some("Munich"));
        assert_eq!(g.resolve("DE", "MUENCHEN").map(|c| c.name), Some("Munich"));
        assert_eq!(
            g.resolve("IN", "bangalore").map(|c| c.name),
            Some("Bengaluru")
        );
        assert_eq!(g.resolve("IN", "Bombay").map(|c| c.name), Some("Mumbai"));
        assert_eq!(g.resolve("FR", " paris ").map(|c| c.name), Some("Paris"));
        assert_eq!(g.resolve("DE", "Atlantis"), None);
        assert_eq!(g.resolve("XX", "Paris"), None);
        // A city of the same name elsewhere is not this country's.
        assert_eq!(g.resolve("FR", "Bengaluru"), None);
    }

    #[test]
    fn the_most_populous_place_keeps_a_shared_name() {
        let g = Gazetteer::builtin();
        let springfields: Vec<_> = g
            .cities("US")
            .iter()
            .filter(|c| c.name == "Springfield")
            .collect();
        assert!(springfields.len() > 1);
        let biggest = springfields.iter().map(|c| c.population).max();
        assert_eq!(
            g.resolve("US", "Springfield").map(|c| c.population),
            biggest
        );
    }

    #[test]
    fn known_distances() {
        let g = Gazetteer::builtin();
        let (Some(berlin), Some(paris)) = (g.resolve("DE", "Berlin"), g.resolve("FR", "Paris"))
        else {
            panic!("Berlin and Paris are in the file");
        };
        let km = berlin.point.distance_km(paris.point);
        assert!((875.0..885.0).contains(&km), "{km}");
        assert_eq!(g.get(berlin.id).map(|c| c.name), Some("Berlin"));
        assert_eq!(
            g.nearest("DE", berlin.point).map(|c| c.name),
            Some("Berlin")
        );
    }

    #[test]
    fn folding_keeps_letters_and_digits_only() {
        assert_eq!(fold("Saint-Étienne"), "saint etienne");
        assert_eq!(fold("  Frankfurt am Main "), "frankfurt am main");
        assert_eq!(fold("Köln"), "koln");
        assert_eq!(fold("--"), "");
    }
}
