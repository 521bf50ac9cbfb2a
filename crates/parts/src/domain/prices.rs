//! Each country's price list as versioned data (`prices/<CC>.toml`): net prices
//! in the currency's minor units, the tax, and whether the country shows prices
//! with tax included (the EU, India, China) or adds it at checkout (the US).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Deserialize;

use super::DomainError;
use super::catalog::{Catalog, Operation};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaxDisplay {
    Included,
    Excluded,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tax {
    pub name: String,
    pub rate_basis_points: u32,
    pub display: TaxDisplay,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    pub version: u32,
    pub valid_from: NaiveDate,
    /// Net, per hour of labour.
    pub labour_per_hour: i64,
    pub parts: BTreeMap<String, i64>,
    pub accessories: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceList {
    pub country: String,
    pub currency: String,
    /// Days after delivery a consumer may withdraw from a distance sale; 0
    /// where the law gives no such right.
    pub withdrawal_days: u32,
    pub tax: Tax,
    /// Oldest first.
    pub version: Vec<Version>,
}

/// An amount split as price lists show it, in minor units of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, Deserialize)]
pub struct Price {
    pub net: i64,
    pub tax: i64,
    pub gross: i64,
}

impl Price {
    /// `net` with `tax` at its rate, rounded half up to the minor unit.
    pub fn of(net: i64, tax: &Tax) -> Self {
        let rate = i64::from(tax.rate_basis_points);
        let tax = (net * rate + 5_000).div_euclid(10_000);
        Self {
            net,
            tax,
            gross: net + tax,
        }
    }

    /// What a customer is shown.
    pub fn shown(&self, display: TaxDisplay) -> i64 {
        match display {
            TaxDisplay::Included => self.gross,
            TaxDisplay::Excluded => self.net,
        }
    }
}

impl std::ops::Add for Price {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self {
            net: self.net + other.net,
            tax: self.tax + other.tax,
            gross: self.gross + other.gross,
        }
    }
}

impl PriceList {
    pub fn parse(text: &str, catalog: &Catalog) -> Result<Self, String> {
        let list: Self = toml::from_str(text).map_err(|e| format!("price list: {e}"))?;
        let name = format!("price list {}", list.country);
        aftersales_core::types::Currency::parse("currency", &list.currency)
            .map_err(|e| format!("{name}: {e}"))?;
        if list.tax.rate_basis_points > 10_000 {
            return Err(format!("{name}: a tax rate above 100 %"));
        }
        if list.withdrawal_days > 90 {
            return Err(format!("{name}: a withdrawal period above 90 days"));
        }
        if list.version.is_empty() {
            return Err(format!("{name}: no version"));
        }
        for pair in list.version.windows(2) {
            if let [old, new] = pair
                && (new.version <= old.version || new.valid_from <= old.valid_from)
            {
                return Err(format!("{name}: versions must rise in number and date"));
            }
        }
        for version in &list.version {
            if version.labour_per_hour < 0 {
                return Err(format!("{name} v{}: negative labour rate", version.version));
            }
            for (number, price) in version.parts.iter().chain(&version.accessories) {
                if catalog.item(number).is_none() {
                    return Err(format!(
                        "{name} v{}: {number} is not in the catalog",
                        version.version
                    ));
                }
                if *price < 0 {
                    return Err(format!(
                        "{name} v{}: {number} has a negative price",
                        version.version
                    ));
                }
            }
            // A published list prices every operation it can: every part of every model.
            if let Some(missing) = catalog
                .parts()
                .find(|p| !version.parts.contains_key(&p.number))
            {
                return Err(format!(
                    "{name} v{}: no price for {}",
                    version.version, missing.number
                ));
            }
        }
        Ok(list)
    }

    /// The version in force on `day`.
    pub fn version_on(&self, day: NaiveDate) -> Option<&Version> {
        self.version.iter().rev().find(|v| v.valid_from <= day)
    }
}

/// Every country's price list.
#[derive(Debug, Clone)]
pub struct PriceLists {
    by_country: BTreeMap<String, PriceList>,
}

const BUILTIN: &[(&str, &str)] = &[
    ("CN", include_str!("../../prices/CN.toml")),
    ("DE", include_str!("../../prices/DE.toml")),
    ("FR", include_str!("../../prices/FR.toml")),
    ("GB", include_str!("../../prices/GB.toml")),
    ("IN", include_str!("../../prices/IN.toml")),
    ("US", include_str!("../../prices/US.toml")),
];

impl PriceLists {
    pub fn builtin(catalog: &Catalog) -> Result<Self, String> {
        let mut by_country = BTreeMap::new();
        for (country, text) in BUILTIN {
            let list = PriceList::parse(text, catalog)?;
            if list.country != *country {
                return Err(format!("prices/{country}.toml names {}", list.country));
            }
            by_country.insert(list.country.clone(), list);
        }
        Ok(Self { by_country })
    }

    pub fn get(&self, country: &str) -> Option<&PriceList> {
        self.by_country.get(country)
    }

    pub fn countries(&self) -> impl Iterator<Item = &str> {
        self.by_country.keys().map(String::as_str)
    }
}

/// One operation priced from a list version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedOperation<'a> {
    pub operation: &'a Operation,
    pub parts: Price,
    pub labour: Price,
    pub total: Price,
}

/// Net labour for `minutes` at `per_hour`, rounded half up.
pub fn labour_net(per_hour: i64, minutes: u32) -> i64 {
    (per_hour * i64::from(minutes) + 30).div_euclid(60)
}

pub fn price_operation<'a>(
    operation: &'a Operation,
    version: &Version,
    tax: &Tax,
) -> Result<PricedOperation<'a>, DomainError> {
    let mut parts = Price::default();
    for number in &operation.parts {
        let net = version
            .parts
            .get(number)
            .ok_or_else(|| DomainError::NotFound(format!("a price for {number}")))?;
        // Tax per line, as an invoice rounds it.
        parts = parts + Price::of(*net, tax);
    }
    let labour = Price::of(
        labour_net(version.labour_per_hour, operation.labour_minutes),
        tax,
    );
    Ok(PricedOperation {
        operation,
        parts,
        labour,
        total: parts + labour,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists() -> (Catalog, PriceLists) {
        let catalog = Catalog::builtin().unwrap();
        let lists = PriceLists::builtin(&catalog).unwrap();
        (catalog, lists)
    }

    #[test]
    fn german_prices_include_19_percent_vat_rounded_half_up() {
        let (catalog, lists) = lists();
        let de = lists.get("DE").unwrap();
        let v1 = de
            .version_on(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap())
            .unwrap();
        let op = catalog.operation("Aurora 5", "display").unwrap();
        let priced = price_operation(op, v1, &de.tax).unwrap();
        // 158.90 net display; 19 % is 30.191 -> 30.19. 40 min at 60.00/h is 40.00, VAT 7.60.
        assert_eq!(
            priced.parts,
            Price {
                net: 15890,
                tax: 3019,
                gross: 18909
            }
        );
        assert_eq!(
            priced.labour,
            Price {
                net: 4000,
                tax: 760,
                gross: 4760
            }
        );
        assert_eq!(priced.total.shown(de.tax.display), 23669);
    }

    #[test]
    fn the_version_in_force_is_the_latest_that_started() {
        let (_, lists) = lists();
        let de = lists.get("DE").unwrap();
        let day = |m, d| NaiveDate::from_ymd_opt(2026, m, d).unwrap();
        assert_eq!(de.version_on(day(6, 30)).unwrap().version, 1);
        assert_eq!(de.version_on(day(7, 1)).unwrap().version, 2);
        assert!(
            de.version_on(NaiveDate::from_ymd_opt(2025, 12, 31).unwrap())
                .is_none()
        );
    }

    #[test]
    fn us_prices_are_shown_before_sales_tax() {
        let (_, lists) = lists();
        let us = lists.get("US").unwrap();
        let price = Price::of(1000, &us.tax);
        assert_eq!(price.shown(us.tax.display), 1000);
        assert_eq!(price.tax, 0);
    }

    #[test]
    fn a_list_naming_a_part_the_catalog_lacks_is_refused() {
        let catalog = Catalog::builtin().unwrap();
        let text = include_str!("../../prices/FR.toml").replacen("\"A4-DSP\"", "\"ZZ-DSP\"", 1);
        let error = PriceList::parse(&text, &catalog).unwrap_err();
        assert!(error.contains("ZZ-DSP is not in the catalog"), "{error}");
    }
}
