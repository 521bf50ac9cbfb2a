//! Postal addresses as each country writes them: which parts an address has,
//! in which order, and what a postal code looks like. The form that asks for
//! an address, the repair that records it and the carrier that prints it all
//! hold to the same rules.

/// One part of an address, as a form asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Recipient,
    Street,
    City,
    /// State, province or county.
    Region,
    PostalCode,
}

/// What a postal code looks like: `9` a digit, `A` a letter, anything else itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Postal {
    Pattern(&'static [&'static str]),
    /// The United Kingdom's postcodes (`SW1A 1AA`, `M1 1AE`).
    UnitedKingdom,
}

/// A country's address format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub country: &'static str,
    /// The parts in the order the country writes them.
    pub parts: &'static [Part],
    pub region_required: bool,
    pub postal: Postal,
    /// What the country calls the region and the postal code: `state`,
    /// `province`, `county`; `zip`, `pin`, `postcode`, `postal`.
    pub region_name: &'static str,
    pub postal_name: &'static str,
}

use Part::{City, PostalCode, Recipient, Region, Street};

const EUROPEAN: &[Part] = &[Recipient, Street, PostalCode, City];
const ANGLO: &[Part] = &[Recipient, Street, City, Region, PostalCode];

/// The countries whose addresses the platform writes.
pub const FORMATS: &[Format] = &[
    Format {
        country: "DE",
        parts: EUROPEAN,
        region_required: false,
        postal: Postal::Pattern(&["99999"]),
        region_name: "state",
        postal_name: "postal",
    },
    Format {
        country: "FR",
        parts: EUROPEAN,
        region_required: false,
        postal: Postal::Pattern(&["99999"]),
        region_name: "region",
        postal_name: "postal",
    },
    Format {
        country: "ES",
        parts: EUROPEAN,
        region_required: false,
        postal: Postal::Pattern(&["99999"]),
        region_name: "province",
        postal_name: "postal",
    },
    Format {
        country: "IT",
        parts: &[Recipient, Street, PostalCode, City, Region],
        region_required: false,
        postal: Postal::Pattern(&["99999"]),
        region_name: "province",
        postal_name: "postal",
    },
    Format {
        country: "GB",
        parts: &[Recipient, Street, City, PostalCode],
        region_required: false,
        postal: Postal::UnitedKingdom,
        region_name: "county",
        postal_name: "postcode",
    },
    Format {
        country: "US",
        parts: ANGLO,
        region_required: true,
        postal: Postal::Pattern(&["99999", "99999-9999"]),
        region_name: "state",
        postal_name: "zip",
    },
    Format {
        country: "AU",
        parts: ANGLO,
        region_required: true,
        postal: Postal::Pattern(&["9999"]),
        region_name: "state",
        postal_name: "postcode",
    },
    Format {
        country: "IN",
        parts: ANGLO,
        region_required: true,
        postal: Postal::Pattern(&["999999"]),
        region_name: "state",
        postal_name: "pin",
    },
    Format {
        country: "CN",
        // From the largest place to the smallest.
        parts: &[Region, City, Street, PostalCode, Recipient],
        region_required: true,
        postal: Postal::Pattern(&["999999"]),
        region_name: "province",
        postal_name: "postal",
    },
    Format {
        country: "ZA",
        parts: &[Recipient, Street, City, Region, PostalCode],
        region_required: false,
        postal: Postal::Pattern(&["9999"]),
        region_name: "province",
        postal_name: "postal",
    },
];

/// The format of `country` (ISO 3166-1 alpha-2), if the platform writes its addresses.
pub fn format(country: &str) -> Option<&'static Format> {
    FORMATS.iter().find(|f| f.country == country)
}

/// Why an address does not fit its country's format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("{country} addresses need a {name}")]
    MissingRegion { country: String, name: &'static str },
    #[error("{postal_code:?} is not a {country} {name} code")]
    PostalCode {
        country: String,
        postal_code: String,
        name: &'static str,
    },
    #[error("the {0} is too long")]
    TooLong(&'static str),
}

/// Whether `region` and `postal_code` fit `country`'s format. A country
/// without a format here is held to lengths only.
pub fn check(country: &str, region: &str, postal_code: &str) -> Result<(), AddressError> {
    if region.len() > 100 {
        return Err(AddressError::TooLong("region"));
    }
    let Some(format) = format(country) else {
        return if postal_code.len() > 20 {
            Err(AddressError::TooLong("postal code"))
        } else {
            Ok(())
        };
    };
    if format.region_required && region.trim().is_empty() {
        return Err(AddressError::MissingRegion {
            country: country.to_owned(),
            name: format.region_name,
        });
    }
    let code = postal_code.trim();
    let fits = match format.postal {
        Postal::Pattern(patterns) => patterns.iter().any(|p| matches(p, code)),
        Postal::UnitedKingdom => uk_postcode(code),
    };
    if fits {
        Ok(())
    } else {
        Err(AddressError::PostalCode {
            country: country.to_owned(),
            postal_code: code.chars().take(20).collect(),
            name: format.postal_name,
        })
    }
}

fn matches(pattern: &str, value: &str) -> bool {
    pattern.len() == value.len()
        && pattern.bytes().zip(value.bytes()).all(|(p, v)| match p {
            b'9' => v.is_ascii_digit(),
            b'A' => v.is_ascii_alphabetic(),
            other => other == v,
        })
}

/// `A9 9AA`, `A99 9AA`, `AA9 9AA`, `AA99 9AA`, `A9A 9AA`, `AA9A 9AA`; the
/// space optional, any case.
fn uk_postcode(code: &str) -> bool {
    let compact: String = code
        .chars()
        .filter(|c| *c != ' ')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if !(5..=7).contains(&compact.len()) {
        return false;
    }
    let (outward, inward) = compact.split_at(compact.len() - 3);
    let inward_ok = matches("9AA", inward);
    let outward_ok = ["A9", "A99", "AA9", "AA99", "A9A", "AA9A"]
        .iter()
        .any(|p| matches(p, outward));
    inward_ok && outward_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postal_codes_are_checked_as_each_country_writes_them() {
        assert_eq!(check("DE", "", "10115"), Ok(()));
        assert_eq!(check("US", "NY", "10001-1234"), Ok(()));
        assert_eq!(check("IN", "Karnataka", "560001"), Ok(()));
        assert_eq!(check("CN", "上海市", "200000"), Ok(()));
        assert_eq!(check("GB", "", "SW1A 1AA"), Ok(()));
        assert_eq!(check("GB", "", "m11ae"), Ok(()));
        assert_eq!(check("AU", "NSW", "2000"), Ok(()));
        assert!(matches!(
            check("DE", "", "1011"),
            Err(AddressError::PostalCode { .. })
        ));
        assert!(matches!(
            check("IN", "", "560001"),
            Err(AddressError::MissingRegion { name: "state", .. })
        ));
        assert!(matches!(
            check("GB", "", "SW1A 1A"),
            Err(AddressError::PostalCode { .. })
        ));
        assert_eq!(
            check("PT", "", "1000-001"),
            Ok(()),
            "no format: lengths only"
        );
        assert!(check("PT", "", &"9".repeat(21)).is_err());
        assert!(matches!(
            check("DE", "", &"9".repeat(5000)),
            Err(AddressError::PostalCode { .. })
        ));
        assert!(check("DE", &"x".repeat(101), "10115").is_err());
    }

    #[test]
    fn every_format_names_each_part_once_and_a_recipient() {
        for format in FORMATS {
            for part in [Recipient, Street, City, PostalCode] {
                assert_eq!(
                    format.parts.iter().filter(|p| **p == part).count(),
                    1,
                    "{}: {part:?}",
                    format.country
                );
            }
            assert!(
                !format.region_required || format.parts.contains(&Region),
                "{}",
                format.country
            );
        }
    }
}
