//! Values every service checks the same way, parsed once: a value of these types is
//! valid by construction, and deserializing one goes through the same `parse`.
//!
//! A failed parse names the field it was given, so an API answers INVALID_ARGUMENT
//! for `device_id.imei` and a policy file's loader for `versions[0].currency`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A value that does not parse, and the field it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub field: &'static str,
    pub reason: String,
}

impl ParseError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// A value that is missing altogether.
    pub fn required(field: &'static str, reason: impl Into<String>) -> Self {
        Self::new(field, reason)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// Free text a person typed: printable, at most `max` bytes, and not blank when
/// `required`.
pub fn printable_text(
    field: &'static str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<(), ParseError> {
    if required && value.trim().is_empty() {
        return Err(ParseError::new(field, "must not be empty"));
    }
    if value.len() > max || value.chars().any(char::is_control) {
        return Err(ParseError::new(
            field,
            format!("must be at most {max} bytes of printable text"),
        ));
    }
    Ok(())
}

impl From<ParseError> for Error {
    fn from(error: ParseError) -> Self {
        Error::invalid(error.field, error.reason)
    }
}

/// Serializes as the plain string and deserializes through `parse`.
macro_rules! string_value {
    ($type:ident, $field:literal) => {
        impl $type {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::parse($field, &raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A 15-digit IMEI whose last digit is its Luhn check digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Imei(String);

impl Imei {
    pub fn parse(field: &'static str, value: &str) -> Result<Self, ParseError> {
        let value = value.trim();
        if value.len() != 15 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::new(field, "must be exactly 15 digits"));
        }
        if !luhn_valid(value) {
            return Err(ParseError::new(field, "has a wrong check digit (Luhn)"));
        }
        Ok(Self(value.to_owned()))
    }
}

string_value!(Imei, "imei");

/// A maker's serial number: 6 to 30 ASCII letters and digits, kept upper-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(String);

impl Serial {
    pub fn parse(field: &'static str, value: &str) -> Result<Self, ParseError> {
        let value = value.trim();
        if !(6..=30).contains(&value.len()) || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ParseError::new(field, "must be 6 to 30 letters and digits"));
        }
        Ok(Self(value.to_ascii_uppercase()))
    }
}

string_value!(Serial, "serial");

/// How a device is known: by IMEI or by serial. Stored as
/// `{"kind": "imei", "value": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum DeviceKey {
    Imei(Imei),
    Serial(Serial),
}

impl DeviceKey {
    /// An IMEI, named `device_id.imei` in errors.
    pub fn imei(value: &str) -> Result<Self, ParseError> {
        Imei::parse("device_id.imei", value).map(Self::Imei)
    }

    /// A serial, named `device_id.serial` in errors.
    pub fn serial(value: &str) -> Result<Self, ParseError> {
        Serial::parse("device_id.serial", value).map(Self::Serial)
    }

    /// The kind, `imei` or `serial`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Imei(_) => "imei",
            Self::Serial(_) => "serial",
        }
    }

    /// The IMEI or serial itself.
    pub fn value(&self) -> &str {
        match self {
            Self::Imei(v) => v.as_str(),
            Self::Serial(v) => v.as_str(),
        }
    }

    /// `imei:<digits>` or `serial:<value>`: how other records name the device.
    pub fn name(&self) -> String {
        format!("{}:{}", self.kind(), self.value())
    }

    /// A key from its [`DeviceKey::kind`] and [`DeviceKey::value`].
    pub fn from_parts(field: &'static str, kind: &str, value: &str) -> Result<Self, ParseError> {
        match kind {
            "imei" => Imei::parse(field, value).map(Self::Imei),
            "serial" => Serial::parse(field, value).map(Self::Serial),
            _ => Err(ParseError::new(field, "must be an imei or a serial")),
        }
    }

    /// The inverse of [`DeviceKey::name`].
    pub fn from_name(field: &'static str, name: &str) -> Result<Self, ParseError> {
        let (kind, value) = name.split_once(':').unwrap_or((name, ""));
        Self::from_parts(field, kind, value)
    }

    /// The event stream of this device's warranty history.
    pub fn stream_name(&self) -> String {
        format!("device-{}-{}", self.kind(), self.value())
    }

    /// The inverse of [`DeviceKey::stream_name`]; `None` for any other stream.
    pub fn from_stream_name(stream: &str) -> Option<Self> {
        let (kind, value) = stream.strip_prefix("device-")?.split_once('-')?;
        Self::from_parts("stream_id", kind, value).ok()
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

/// A stream id as logs may show it: a device's IMEI or serial cut to its last four
/// characters (`device-imei-…0213`), so a log names no whole device.
pub fn masked_stream_id(stream: &str) -> String {
    for marker in ["imei-", "serial-"] {
        if let Some(at) = stream.find(marker) {
            let (head, value) = stream.split_at(at + marker.len());
            let last_four = value.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
            return format!("{head}…{}", &value[last_four..]);
        }
    }
    stream.to_owned()
}

/// The Luhn check over all digits, the check digit included. Non-digits fail.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// An ISO 3166-1 alpha-2 country code: two upper-case ASCII letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode(String);

impl CountryCode {
    pub fn parse(field: &'static str, value: &str) -> Result<Self, ParseError> {
        let value = value.trim();
        if value.len() != 2 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ParseError::new(
                field,
                "must be an ISO 3166 alpha-2 code (two upper-case letters)",
            ));
        }
        Ok(Self(value.to_owned()))
    }
}

string_value!(CountryCode, "country");

/// Active ISO 4217 codes.
const ISO_4217: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB \
BRL BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD \
FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR \
KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR \
MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK \
SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES \
VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWG";

/// An active ISO 4217 currency code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(String);

impl Currency {
    pub fn parse(field: &'static str, value: &str) -> Result<Self, ParseError> {
        let value = value.trim();
        if value.len() != 3 || !ISO_4217.split(' ').any(|c| c == value) {
            return Err(ParseError::new(
                field,
                format!("{value:?} is not an ISO 4217 currency code"),
            ));
        }
        Ok(Self(value.to_owned()))
    }
}

string_value!(Currency, "currency");

/// A non-negative amount in a currency's minor units (cents, fen, paise). Never a
/// float.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Money {
    minor_units: i64,
    currency: Currency,
}

impl Money {
    pub fn new(field: &'static str, minor_units: i64, currency: &str) -> Result<Self, ParseError> {
        if minor_units < 0 {
            return Err(ParseError::new(field, "must not be negative"));
        }
        Ok(Self {
            minor_units,
            currency: Currency::parse(field, currency)?,
        })
    }

    pub fn minor_units(&self) -> i64 {
        self.minor_units
    }

    pub fn currency(&self) -> &Currency {
        &self.currency
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            minor_units: i64,
            currency: String,
        }
        let raw = Raw::deserialize(deserializer)?;
        Self::new("money", raw.minor_units, &raw.currency).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} (minor units)", self.minor_units, self.currency)
    }
}

/// The ids objects are known by: 1 to 64 ASCII letters, digits, `-`, `_`, `.`, `:`
/// or `@`, surrounding blanks dropped. Ids the platform makes are UUIDs; ids people
/// choose (a service center's) keep to the same characters.
fn parse_id(field: &'static str, value: &str) -> Result<String, ParseError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ParseError::new(field, "is required"));
    }
    if value.len() > 64
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b))
    {
        return Err(ParseError::new(
            field,
            "must be 1 to 64 letters, digits, '-', '_', '.', ':' or '@'",
        ));
    }
    Ok(value.to_owned())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $type:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $type(String);

        impl $type {
            pub fn parse(field: &'static str, value: &str) -> Result<Self, ParseError> {
                parse_id(field, value).map(Self)
            }
        }

        string_value!($type, $field);
    };
}

id_type!(
    /// A repair order.
    OrderId,
    "order_id"
);
id_type!(
    /// A parcel.
    ShipmentId,
    "shipment_id"
);
id_type!(
    /// A service center, chosen by whoever adds it (`sc-berlin-01`).
    CenterId,
    "service_center_id"
);
id_type!(
    /// One message to a customer.
    NotificationId,
    "notification_id"
);
id_type!(
    /// A customer, as the services know them.
    CustomerId,
    "customer_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_id_in_a_log_names_no_whole_device() {
        assert_eq!(
            masked_stream_id("device-imei-351000223250213"),
            "device-imei-…0213"
        );
        assert_eq!(
            masked_stream_id("device-orders-serial-R58M12ABC"),
            "device-orders-serial-…2ABC"
        );
        assert_eq!(masked_stream_id("repair-0192a4b0"), "repair-0192a4b0");
        assert_eq!(masked_stream_id("device-imei-12"), "device-imei-…12");
    }

    #[test]
    fn ids_keep_to_one_alphabet_and_name_their_field() {
        assert_eq!(
            OrderId::parse("order_id", " 0192a4b0-7c1e-7000-8000-000000000001 ")
                .unwrap()
                .as_str(),
            "0192a4b0-7c1e-7000-8000-000000000001"
        );
        assert!(CenterId::parse("center.id", "sc-berlin-01").is_ok());
        assert!(CustomerId::parse("customer_id", "anna@example.com").is_ok());
        for bad in ["", "  ", "a b", "a/b", "ta\tb", "ü", &"x".repeat(65)] {
            let error = ShipmentId::parse("shipment_id", bad).unwrap_err();
            assert_eq!(error.field, "shipment_id", "{bad:?}");
        }
        let decoded: Result<NotificationId, _> = serde_json::from_str("\"a b\"");
        assert!(decoded.unwrap_err().to_string().contains("notification_id"));
    }

    #[test]
    fn imeis_need_fifteen_digits_and_their_check_digit() {
        assert!(DeviceKey::imei("490154203237518").is_ok());
        let wrong = DeviceKey::imei("490154203237519").unwrap_err();
        assert_eq!(wrong.field, "device_id.imei");
        assert!(DeviceKey::imei("49015420323751").is_err());
        assert!(DeviceKey::imei("49015420323751x").is_err());
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("12a4"));
    }

    #[test]
    fn device_keys_keep_their_stored_shape_and_names() {
        let key = DeviceKey::imei(" 490154203237518 ").unwrap();
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(json, r#"{"kind":"imei","value":"490154203237518"}"#);
        assert_eq!(serde_json::from_str::<DeviceKey>(&json).unwrap(), key);
        assert_eq!(key.name(), "imei:490154203237518");
        assert_eq!(DeviceKey::from_name("device", &key.name()).unwrap(), key);
        assert_eq!(key.stream_name(), "device-imei-490154203237518");
        assert_eq!(
            DeviceKey::from_stream_name(&key.stream_name()),
            Some(key.clone())
        );
        assert_eq!(DeviceKey::from_stream_name("repair-1"), None);
        let serial = DeviceKey::serial("ab12cd34").unwrap();
        assert_eq!(serial.value(), "AB12CD34");
    }

    #[test]
    fn deserializing_goes_through_parse() {
        let bad = r#"{"kind":"imei","value":"490154203237519"}"#;
        assert!(serde_json::from_str::<DeviceKey>(bad).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"minor_units":-1,"currency":"EUR"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"minor_units":5,"currency":"eur"}"#).is_err());
        let money: Money =
            serde_json::from_str(r#"{"minor_units":12900,"currency":"EUR"}"#).unwrap();
        assert_eq!(
            (money.minor_units(), money.currency().as_str()),
            (12900, "EUR")
        );
        assert!(serde_json::from_str::<CountryCode>(r#""de""#).is_err());
    }

    #[test]
    fn money_is_non_negative_in_an_iso_currency() {
        assert!(Money::new("amount", 0, "CNY").is_ok());
        for (units, currency) in [(-1, "EUR"), (100, "eur"), (100, "EURO"), (100, "XYZ")] {
            let error = Money::new("amount", units, currency).unwrap_err();
            assert_eq!(error.field, "amount", "{units} {currency}");
        }
    }
}

/// An email address or phone number as a sign-in name: case and spaces in an
/// email, and spaces, dashes, dots and brackets in a phone number, do not matter.
pub fn sign_in_address(raw: &str) -> String {
    let trimmed = raw.trim();
    if trimmed.contains('@') {
        trimmed.to_lowercase()
    } else {
        trimmed
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect()
    }
}

#[cfg(test)]
mod sign_in_address_tests {
    use super::sign_in_address;

    #[test]
    fn the_ways_people_type_an_address_name_the_same_one() {
        assert_eq!(sign_in_address(" Anna@Example.COM "), "anna@example.com");
        assert_eq!(sign_in_address("+49 (170) 123-45.67"), "+491701234567");
        assert_ne!(
            sign_in_address("+491701234567"),
            sign_in_address("+491701234568")
        );
    }
}
