//! Device identities: a 15-digit IMEI with a valid Luhn check digit, or a serial.
//! The types are shared by every service (`aftersales_core::types`); the warranty
//! service names its device streams after them.

pub use aftersales_core::types::{DeviceKey, Imei, Serial, luhn_valid};

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
            assert_eq!(error.field, "device_id.imei", "{bad:?}");
        }
    }

    #[test]
    fn serials_are_normalised() {
        assert_eq!(
            DeviceKey::serial("f2lx81abcd").unwrap().value(),
            "F2LX81ABCD"
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
