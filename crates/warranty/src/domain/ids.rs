//! Device identities: a 15-digit IMEI with a valid Luhn check digit, or a serial.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::DomainError;

/// How a device is known. The stream of its history is named after it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum DeviceKey {
    Imei(String),
    Serial(String),
}

impl DeviceKey {
    /// A checked IMEI: 15 ASCII digits whose last is the Luhn check digit.
    pub fn imei(value: &str) -> Result<Self, DomainError> {
        let value = value.trim();
        if value.len() != 15 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::invalid(
                "device_id.imei",
                "must be exactly 15 digits",
            ));
        }
        if !luhn_valid(value) {
            return Err(DomainError::invalid(
                "device_id.imei",
                "has a wrong check digit (Luhn)",
            ));
        }
        Ok(Self::Imei(value.to_owned()))
    }

    /// A serial: 6 to 30 ASCII letters and digits, kept upper-case.
    pub fn serial(value: &str) -> Result<Self, DomainError> {
        let value = value.trim();
        if !(6..=30).contains(&value.len()) || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(DomainError::invalid(
                "device_id.serial",
                "must be 6 to 30 letters and digits",
            ));
        }
        Ok(Self::Serial(value.to_ascii_uppercase()))
    }

    /// The event stream holding this device's history.
    pub fn stream_name(&self) -> String {
        match self {
            Self::Imei(v) => format!("device-imei-{v}"),
            Self::Serial(v) => format!("device-serial-{v}"),
        }
    }
}

impl fmt::Display for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Imei(v) => write!(f, "IMEI {v}"),
            Self::Serial(v) => write!(f, "serial {v}"),
        }
    }
}

/// The Luhn check over all digits, the check digit included.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn accepts_valid_imeis_and_refuses_the_rest() {
        assert!(DeviceKey::imei("490154203237518").is_ok());
        assert!(DeviceKey::imei("356938035643809").is_ok());
        for bad in [
            "490154203237519",  // check digit
            "49015420323751",   // 14 digits
            "4901542032375180", // 16 digits
            "49015420323751a",
            "",
            "４９０１５４２０３２３７５１８", // full-width digits
        ] {
            let error = DeviceKey::imei(bad).unwrap_err();
            assert_eq!(error.field(), Some("device_id.imei"), "{bad:?}");
        }
    }

    #[test]
    fn serials_are_normalised() {
        assert_eq!(
            DeviceKey::serial("f2lx81abcd").unwrap(),
            DeviceKey::Serial("F2LX81ABCD".into())
        );
        assert!(DeviceKey::serial("abc").is_err());
        assert!(DeviceKey::serial("F2LX-81AB").is_err());
    }

    proptest! {
        #[test]
        fn exactly_one_check_digit_completes_any_14_digits(body in "[0-9]{14}") {
            let valid: Vec<_> = (0..10)
                .filter(|d| luhn_valid(&format!("{body}{d}")))
                .collect();
            prop_assert_eq!(valid.len(), 1);
        }

        #[test]
        fn no_string_panics(s in "\\PC*") {
            let _ = DeviceKey::imei(&s);
            let _ = DeviceKey::serial(&s);
        }
    }
}
