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

use crate::types::{CountryCode, ParseError};

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

/// The most a carrier's label takes of each part of an address, in bytes, and
/// of street lines. Every service that keeps or prints an address holds it to
/// these, so an address one accepts another does not refuse.
pub const MAX_RECIPIENT: usize = 200;
pub const MAX_LINES: usize = 4;
pub const MAX_LINE: usize = 200;
pub const MAX_CITY: usize = 100;
pub const MAX_REGION: usize = 100;
pub const MAX_POSTAL_CODE: usize = 20;
pub const MAX_PHONE: usize = 40;

/// A postal address as a service keeps it (the personal parts sealed by the
/// store: recipient, lines, city, region, postal code, phone).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PostalAddress {
    pub recipient: String,
    pub lines: Vec<String>,
    pub city: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    #[serde(default)]
    pub phone: String,
}

impl PostalAddress {
    pub fn parts(&self) -> Parts<'_> {
        Parts {
            recipient: &self.recipient,
            lines: &self.lines,
            city: &self.city,
            region: &self.region,
            postal_code: &self.postal_code,
            country: &self.country,
            phone: &self.phone,
        }
    }

    /// Held to [`validate`], errors naming the parts under `fields`.
    pub fn validate(&self, fields: &Fields) -> Result<(), ParseError> {
        validate(&self.parts(), fields)
    }
}

/// An address's parts, as every service holds them.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    pub recipient: &'a str,
    pub lines: &'a [String],
    pub city: &'a str,
    pub region: &'a str,
    pub postal_code: &'a str,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: &'a str,
    /// For the carrier; may be empty.
    pub phone: &'a str,
}

/// The names of an address's parts in a request, for the field an error names.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub recipient: &'static str,
    pub lines: &'static str,
    pub city: &'static str,
    pub region: &'static str,
    pub postal_code: &'static str,
    pub country: &'static str,
    pub phone: &'static str,
}

/// The [`Fields`] of an address under `prefix`: `address_fields!("to")` names
/// `to.recipient`, `to.lines`, and so on.
#[macro_export]
macro_rules! address_fields {
    ($prefix:literal) => {
        $crate::address::Fields {
            recipient: concat!($prefix, ".recipient"),
            lines: concat!($prefix, ".lines"),
            city: concat!($prefix, ".city"),
            region: concat!($prefix, ".region"),
            postal_code: concat!($prefix, ".postal_code"),
            country: concat!($prefix, ".country"),
            phone: concat!($prefix, ".phone"),
        }
    };
}

/// Whether `address` is one a carrier can print: every part printable and within
/// its maximum, a recipient, 1 to [`MAX_LINES`] street lines and a city, an
/// upper-case ISO country code, and the region and postal code its country's
/// format asks for ([`check`]). The error names the part, under `fields`.
pub fn validate(address: &Parts<'_>, fields: &Fields) -> Result<(), ParseError> {
    let text = crate::types::printable_text;
    text(fields.recipient, address.recipient, MAX_RECIPIENT, true)?;
    if address.lines.is_empty() || address.lines.len() > MAX_LINES {
        return Err(ParseError::new(
            fields.lines,
            format!("needs 1 to {MAX_LINES} street lines"),
        ));
    }
    for line in address.lines {
        text(fields.lines, line, MAX_LINE, true)?;
    }
    text(fields.city, address.city, MAX_CITY, true)?;
    text(fields.region, address.region, MAX_REGION, false)?;
    text(
        fields.postal_code,
        address.postal_code,
        MAX_POSTAL_CODE,
        false,
    )?;
    text(fields.phone, address.phone, MAX_PHONE, false)?;
    let country = CountryCode::parse(fields.country, address.country)?;
    check(
        country.as_str(),
        address.region.trim(),
        address.postal_code.trim(),
    )
    .map_err(|e| {
        let field = match e {
            AddressError::MissingRegion { .. } => fields.region,
            AddressError::PostalCode { .. } => fields.postal_code,
            AddressError::TooLong("region") => fields.region,
            AddressError::TooLong(_) => fields.postal_code,
        };
        ParseError::new(field, e.to_string())
    })
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

    fn berlin(lines: &[String]) -> Parts<'_> {
        Parts {
            recipient: "Ana Weber",
            lines,
            city: "Berlin",
            region: "",
            postal_code: "10119",
            country: "DE",
            phone: "",
        }
    }

    #[test]
    fn an_address_is_refused_naming_the_part_a_carrier_could_not_print() {
        let fields = crate::address_fields!("to");
        let one = ["Torstrasse 1".to_owned()];
        assert_eq!(validate(&berlin(&one), &fields), Ok(()));
        let refused = |address: Parts<'_>| validate(&address, &fields).unwrap_err().field;
        let five = vec!["x".to_owned(); 5];
        assert_eq!(refused(berlin(&five)), "to.lines");
        assert_eq!(refused(berlin(&[])), "to.lines");
        assert_eq!(
            refused(Parts {
                country: "de",
                ..berlin(&one)
            }),
            "to.country"
        );
        let long = "1".repeat(5000);
        assert_eq!(
            refused(Parts {
                postal_code: &long,
                ..berlin(&one)
            }),
            "to.postal_code"
        );
        assert_eq!(
            refused(Parts {
                postal_code: "1011",
                ..berlin(&one)
            }),
            "to.postal_code"
        );
        assert_eq!(
            refused(Parts {
                recipient: " ",
                ..berlin(&one)
            }),
            "to.recipient"
        );
        assert_eq!(
            refused(Parts {
                city: "Berlin\u{0}",
                ..berlin(&one)
            }),
            "to.city"
        );
        assert_eq!(
            refused(Parts {
                country: "IN",
                postal_code: "560001",
                ..berlin(&one)
            }),
            "to.region",
            "an Indian address needs its state"
        );
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
