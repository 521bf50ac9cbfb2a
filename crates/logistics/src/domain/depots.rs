//! Where mail-in devices go: a depot per group of countries, one of them the
//! default. Loaded from `depots.toml`.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::shipment::Address;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Depot {
    pub id: String,
    pub countries: Vec<String>,
    pub recipient: String,
    pub lines: Vec<String>,
    pub city: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub postal_code: String,
    pub country: String,
    #[serde(default)]
    pub default: bool,
}

impl Depot {
    pub fn address(&self) -> Address {
        Address {
            recipient: self.recipient.clone(),
            lines: self.lines.clone(),
            city: self.city.clone(),
            region: self.region.clone(),
            postal_code: self.postal_code.clone(),
            country: self.country.clone(),
            phone: String::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Depots {
    depots: Vec<Depot>,
    default: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    depot: Vec<Depot>,
}

impl Depots {
    /// The depots of the built-in `depots.toml`.
    pub fn builtin() -> Result<Self, String> {
        Self::parse(include_str!("../../depots.toml"))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| format!("depots: {e}"))?;
        let mut seen = BTreeSet::new();
        for depot in &file.depot {
            if !seen.insert(depot.id.as_str()) {
                return Err(format!("depots: {} is listed twice", depot.id));
            }
            // Every label to a depot must print: its address keeps the rules
            // every service holds an address to.
            depot
                .address()
                .validate(&aftersales_core::address_fields!("address"))
                .map_err(|e| format!("depots: {}: {e}", depot.id))?;
        }
        let defaults: Vec<usize> = (0..file.depot.len())
            .filter(|&i| file.depot[i].default)
            .collect();
        let [default] = defaults[..] else {
            return Err("depots: exactly one depot must be the default".into());
        };
        Ok(Self {
            depots: file.depot,
            default,
        })
    }

    /// The depot serving a country, or the default.
    pub fn for_country(&self, country: &str) -> &Depot {
        self.depots
            .iter()
            .find(|d| d.countries.iter().any(|c| c == country))
            .unwrap_or(&self.depots[self.default])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_find_their_depot_and_others_the_default() {
        let depots = Depots::builtin().expect("valid");
        assert_eq!(depots.for_country("CN").id, "cn-shenzhen");
        assert_eq!(depots.for_country("IN").id, "in-bengaluru");
        assert_eq!(depots.for_country("BR").id, "eu-leipzig");
    }

    #[test]
    fn exactly_one_default() {
        let two = "[[depot]]\nid='a'\ncountries=[]\nrecipient='A'\nlines=['1']\ncity='X'\npostal_code='10115'\ncountry='DE'\ndefault=true\n\
                   [[depot]]\nid='b'\ncountries=[]\nrecipient='B'\nlines=['1']\ncity='X'\npostal_code='10115'\ncountry='DE'\ndefault=true\n";
        assert!(Depots::parse(two).unwrap_err().contains("exactly one"));
    }

    #[test]
    fn a_depot_whose_label_would_not_print_is_refused() {
        let no_province = "[[depot]]\nid='cn'\ncountries=['CN']\nrecipient='A'\nlines=['1']\ncity='Shenzhen'\npostal_code='518057'\ncountry='CN'\ndefault=true\n";
        let refused = Depots::parse(no_province).unwrap_err();
        assert!(
            refused.contains("cn") && refused.contains("address.region"),
            "{refused}"
        );
    }
}
