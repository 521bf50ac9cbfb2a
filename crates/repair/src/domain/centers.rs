//! Authorized service centers: loaded from `centers.toml` (and changed through the
//! API), found by great-circle distance, and booked within their daily capacity.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike as _, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// A point on Earth in decimal degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub latitude: f64,
    pub longitude: f64,
}

impl GeoPoint {
    /// Checks the ranges; `field` names the point in errors.
    pub fn new(field: &'static str, latitude: f64, longitude: f64) -> Result<Self, CenterError> {
        if !latitude.is_finite() || !(-90.0..=90.0).contains(&latitude) {
            return Err(CenterError::new(
                field,
                "latitude must be between -90 and 90",
            ));
        }
        if !longitude.is_finite() || !(-180.0..=180.0).contains(&longitude) {
            return Err(CenterError::new(
                field,
                "longitude must be between -180 and 180",
            ));
        }
        Ok(Self {
            latitude,
            longitude,
        })
    }

    /// Great-circle distance in kilometres (haversine).
    pub fn distance_km(self, other: Self) -> f64 {
        self.point().distance_km(other.point())
    }

    /// The same place, as the network planner sees it.
    pub fn point(self) -> aftersales_network::Point {
        aftersales_network::Point::new(self.latitude, self.longitude)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceCenter {
    pub id: String,
    pub name: String,
    pub country: String,
    pub city: String,
    pub address: Vec<String>,
    pub latitude: f64,
    pub longitude: f64,
    /// `mon` … `sun`.
    pub open_days: Vec<String>,
    /// `HH:MM-HH:MM`, local time.
    pub hours: String,
    pub capabilities: Vec<String>,
    /// Walk-in repairs it takes per day.
    pub daily_capacity: u32,
}

/// A center that cannot be used, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct CenterError {
    pub field: String,
    pub reason: String,
}

impl CenterError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

fn weekday(day: &str) -> Option<Weekday> {
    Some(match day {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    })
}

impl ServiceCenter {
    /// Checks every field; errors name it as `centers[i].field` with `at` = `centers[i]`.
    pub fn validate(&self, at: &str) -> Result<(), CenterError> {
        let field = |f: &str| format!("{at}.{f}");
        let id_ok = (3..=64).contains(&self.id.len())
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            return Err(CenterError::new(
                field("id"),
                "3 to 64 lower-case letters, digits or '-'",
            ));
        }
        for (name, value) in [("name", &self.name), ("city", &self.city)] {
            if value.trim().is_empty() || value.len() > 200 {
                return Err(CenterError::new(field(name), "1 to 200 bytes"));
            }
        }
        aftersales_core::types::CountryCode::parse("country", &self.country)
            .map_err(|e| CenterError::new(field("country"), e.reason))?;
        if self.address.is_empty() {
            return Err(CenterError::new(field("address"), "at least one line"));
        }
        GeoPoint::new("location", self.latitude, self.longitude)
            .map_err(|e| CenterError::new(field("location"), e.reason))?;
        if self.open_days.is_empty() || self.open_days.iter().any(|d| weekday(d).is_none()) {
            return Err(CenterError::new(
                field("open_days"),
                "days as mon, tue, … sun; at least one",
            ));
        }
        let hours_ok = self.hours.len() == 11
            && self.hours.as_bytes().get(5) == Some(&b'-')
            && self
                .hours
                .split('-')
                .all(|t| chrono::NaiveTime::parse_from_str(t, "%H:%M").is_ok());
        if !hours_ok {
            return Err(CenterError::new(field("hours"), "HH:MM-HH:MM"));
        }
        if self.daily_capacity == 0 || self.daily_capacity > 10_000 {
            return Err(CenterError::new(
                field("daily_capacity"),
                "between 1 and 10000",
            ));
        }
        Ok(())
    }

    pub fn location(&self) -> GeoPoint {
        GeoPoint {
            latitude: self.latitude,
            longitude: self.longitude,
        }
    }

    pub fn is_open_on(&self, date: NaiveDate) -> bool {
        self.open_days
            .iter()
            .any(|d| weekday(d) == Some(date.weekday()))
    }

    /// The first open day from `from` with room for one more walk-in, given how
    /// many are booked per day. `None` if none within a year.
    pub fn next_available(
        &self,
        from: NaiveDate,
        booked: &BTreeMap<NaiveDate, u32>,
    ) -> Option<NaiveDate> {
        from.iter_days().take(366).find(|day| {
            self.is_open_on(*day) && booked.get(day).copied().unwrap_or(0) < self.daily_capacity
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CentersFile {
    centers: Vec<ServiceCenter>,
}

/// Parses and checks a centers file.
pub fn load(text: &str) -> Result<Vec<ServiceCenter>, CenterError> {
    let file: CentersFile = toml::from_str(text).map_err(|e| {
        CenterError::new(
            e.span()
                .map_or_else(|| "-".into(), |s| format!("at byte {}", s.start)),
            e.message(),
        )
    })?;
    let mut ids = BTreeSet::new();
    for (i, center) in file.centers.iter().enumerate() {
        let at = format!("centers[{i}]");
        center.validate(&at)?;
        if !ids.insert(center.id.clone()) {
            return Err(CenterError::new(
                format!("{at}.id"),
                format!("{} appears twice", center.id),
            ));
        }
    }
    Ok(file.centers)
}

/// The built-in centers, on four continents.
pub fn builtin() -> Result<Vec<ServiceCenter>, CenterError> {
    load(include_str!("../../centers.toml"))
}

/// The answer to "where can I get this repaired?".
#[derive(Debug, Clone, PartialEq)]
pub struct Nearest<'a> {
    /// Nearest first, each with its distance in km: those within the radius,
    /// or, when none is, the nearest ones however far.
    pub centers: Vec<(&'a ServiceCenter, f64)>,
    /// Nothing is within the radius: send the device by mail instead.
    pub recommend_mail_in: bool,
}

/// Up to `limit` centers within `radius_km` of `point`, in `country` if given;
/// when none is that near, mail-in is advised beside the nearest ones.
pub fn nearest<'a>(
    centers: &'a [ServiceCenter],
    point: GeoPoint,
    country: Option<&str>,
    limit: usize,
    radius_km: f64,
) -> Nearest<'a> {
    let mut found: Vec<(&ServiceCenter, f64)> = centers
        .iter()
        .filter(|c| country.is_none_or(|country| c.country == country))
        .map(|c| (c, point.distance_km(c.location())))
        .collect();
    found.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.id.cmp(&b.0.id)));
    let recommend_mail_in = found.first().is_none_or(|(_, d)| *d > radius_km);
    if !recommend_mail_in {
        found.retain(|(_, d)| *d <= radius_km);
    }
    found.truncate(limit);
    Nearest {
        recommend_mail_in,
        centers: found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint::new("point", lat, lon).unwrap()
    }

    #[test]
    fn great_circle_distances_match_known_ones() {
        let berlin = point(52.5200, 13.4050);
        let paris = point(48.8566, 2.3522);
        let d = berlin.distance_km(paris);
        assert!((d - 878.0).abs() < 5.0, "{d}");
        let sydney = point(-33.8688, 151.2093);
        let new_york = point(40.7128, -74.0060);
        let d = sydney.distance_km(new_york);
        assert!((d - 15_990.0).abs() < 30.0, "{d}");
        assert!(berlin.distance_km(berlin) < 1e-9);
        // Across the antimeridian.
        let d = point(0.0, 179.5).distance_km(point(0.0, -179.5));
        assert!((d - 111.2).abs() < 0.5, "{d}");
    }

    #[test]
    fn nearest_first_and_mail_in_when_none_is_close() {
        let centers = builtin().unwrap();
        let potsdam = point(52.3906, 13.0645);
        let found = nearest(&centers, potsdam, None, 3, 1000.0);
        assert!(!found.recommend_mail_in);
        assert_eq!(found.centers[0].0.id, "sc-berlin-01");
        assert_eq!(found.centers[1].0.id, "sc-paris-01");
        assert!(found.centers.windows(2).all(|w| w[0].1 <= w[1].1));
        let in_france = nearest(&centers, potsdam, Some("FR"), 3, 2000.0);
        assert_eq!(in_france.centers.len(), 1);
        let outback = nearest(&centers, point(-23.7, 133.88), Some("AU"), 3, 150.0);
        assert!(outback.recommend_mail_in);
        // Mail-in first, and still the nearest center and how far it is.
        assert_eq!(outback.centers[0].0.id, "sc-sydney-01");
        assert!(outback.centers[0].1 > 1900.0, "{}", outback.centers[0].1);
        assert!(
            nearest(&centers, point(-23.7, 133.88), Some("NZ"), 3, 150.0)
                .centers
                .is_empty()
        );
    }

    #[test]
    fn the_built_in_centers_span_continents() {
        let centers = builtin().unwrap();
        let countries: BTreeSet<_> = centers.iter().map(|c| c.country.as_str()).collect();
        for c in ["DE", "CN", "US", "AU", "ZA", "IN"] {
            assert!(countries.contains(c), "{c}");
        }
    }

    #[test]
    fn bad_center_files_name_the_field() {
        let good = include_str!("../../centers.toml");
        for (from, to, field) in [
            (
                "latitude = 52.5096",
                "latitude = 152.5",
                "centers[0].location",
            ),
            (
                "daily_capacity = 40",
                "daily_capacity = 0",
                "centers[0].daily_capacity",
            ),
            (
                "hours = \"10:00-19:00\"",
                "hours = \"10-19\"",
                "centers[0].hours",
            ),
            (
                "open_days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\"]",
                "open_days = [\"monday\"]",
                "centers[0].open_days",
            ),
            (
                "id = \"sc-paris-01\"",
                "id = \"sc-berlin-01\"",
                "centers[1].id",
            ),
            (
                "country = \"DE\"",
                "country = \"Germany\"",
                "centers[0].country",
            ),
            (
                "daily_capacity = 40",
                "daily_capacity = 40\nparking = true",
                "at byte",
            ),
        ] {
            let error = load(&good.replacen(from, to, 1)).unwrap_err();
            assert!(error.field.starts_with(field), "{to}: {error}");
        }
    }

    #[test]
    fn capacity_is_booked_to_the_next_open_day() {
        let centers = builtin().unwrap();
        let madrid = centers.iter().find(|c| c.id == "sc-madrid-01").unwrap();
        let friday = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let mut booked = BTreeMap::new();
        assert_eq!(madrid.next_available(friday, &booked), Some(friday));
        booked.insert(friday, madrid.daily_capacity);
        // Closed at the weekend: Monday.
        assert_eq!(
            madrid.next_available(friday, &booked),
            NaiveDate::from_ymd_opt(2026, 11, 30)
        );
    }
}
