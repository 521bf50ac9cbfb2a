//! Money: integer minor units and an ISO 4217 currency. Never floats.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::DomainError;

/// Active ISO 4217 codes.
const ISO_4217: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB \
BRL BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD \
FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR \
KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR \
MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK \
SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES \
VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWG";

/// An amount in a currency's minor units (cents, fen, paise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub minor_units: i64,
    pub currency: String,
}

impl Money {
    /// A non-negative amount in an ISO 4217 currency.
    pub fn new(field: &'static str, minor_units: i64, currency: &str) -> Result<Self, DomainError> {
        if minor_units < 0 {
            return Err(DomainError::invalid(field, "must not be negative"));
        }
        let currency = currency.trim();
        if currency.len() != 3 || !ISO_4217.split(' ').any(|c| c == currency) {
            return Err(DomainError::invalid(
                field,
                format!("{currency:?} is not an ISO 4217 currency code"),
            ));
        }
        Ok(Self {
            minor_units,
            currency: currency.to_owned(),
        })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} (minor units)", self.minor_units, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_non_negative_amounts_in_iso_currencies() {
        assert!(Money::new("amount", 12_900, "EUR").is_ok());
        assert!(Money::new("amount", 0, "CNY").is_ok());
        for (units, currency) in [
            (-1, "EUR"),
            (100, "eur"),
            (100, "EURO"),
            (100, "XYZ"),
            (100, ""),
        ] {
            let error = Money::new("amount", units, currency).unwrap_err();
            assert!(
                matches!(
                    error,
                    DomainError::Invalid {
                        field: "amount",
                        ..
                    }
                ),
                "{units} {currency}"
            );
        }
    }
}
