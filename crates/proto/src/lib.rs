//! Generated Rust for the public contracts in `proto/`: shared types, gRPC services
//! and integration events. Each protobuf package is a module with the same path.
//!
//! The contracts are the public API other teams build against; this crate only
//! re-exports what `build.rs` generates from them.

#![allow(missing_debug_implementations, unused_qualifications)]
#![allow(clippy::all, clippy::pedantic)]

/// The encoded `FileDescriptorSet` of every contract, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/aftersales_descriptor.bin"));

pub mod aftersales {
    pub mod common {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/aftersales.common.v1.rs"));
        }
    }
    pub mod logistics {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/aftersales.logistics.v1.rs"));
        }
    }
    pub mod notification {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/aftersales.notification.v1.rs"));
        }
    }
    pub mod operations {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/aftersales.operations.v1.rs"));
        }
    }
    pub mod parts {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/aftersales.parts.v1.rs"));
        }
    }
    pub mod privacy {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/aftersales.privacy.v1.rs"));
        }
    }
    pub mod repair {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/aftersales.repair.v1.rs"));
        }
    }
    pub mod support {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/aftersales.support.v1.rs"));
        }
    }
    pub mod warranty {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/aftersales.warranty.v1.rs"));
        }
    }
}

pub use aftersales::common::v1 as common;
pub use aftersales::logistics::v1 as logistics;
pub use aftersales::notification::v1 as notification;
pub use aftersales::operations::v1 as operations;
pub use aftersales::parts::v1 as parts;
pub use aftersales::privacy::v1 as privacy;
pub use aftersales::repair::v1 as repair;
pub use aftersales::support::v1 as support;
pub use aftersales::warranty::v1 as warranty;

#[cfg(test)]
mod tests {
    use super::common::{DeviceId, Money, device_id};
    use prost::Message as _;

    #[test]
    fn money_round_trips_in_minor_units() {
        let money = Money {
            minor_units: 1999,
            currency: "EUR".into(),
        };
        let decoded = Money::decode(money.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, money);
    }

    #[test]
    fn device_id_is_a_oneof() {
        let id = DeviceId {
            kind: Some(device_id::Kind::Imei("490154203237518".into())),
        };
        let decoded = DeviceId::decode(id.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.kind, id.kind);
    }

    #[test]
    fn descriptor_set_names_the_common_package() {
        let set = prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET).unwrap();
        assert!(
            set.file
                .iter()
                .any(|f| f.package() == "aftersales.common.v1")
        );
    }
}

/// A postal address as the contracts carry it and as services keep it.
mod address {
    use aftersales_core::address::PostalAddress;

    use crate::common::{Address, CountryCode};

    impl From<&PostalAddress> for Address {
        fn from(a: &PostalAddress) -> Self {
            Self {
                recipient: a.recipient.clone(),
                lines: a.lines.clone(),
                city: a.city.clone(),
                region: a.region.clone(),
                postal_code: a.postal_code.clone(),
                country: Some(CountryCode {
                    value: a.country.clone(),
                }),
                phone: a.phone.clone(),
            }
        }
    }

    impl From<Address> for PostalAddress {
        /// As given, trimmed; checking it is the service's.
        fn from(a: Address) -> Self {
            Self {
                recipient: a.recipient.trim().to_owned(),
                lines: a.lines.iter().map(|l| l.trim().to_owned()).collect(),
                city: a.city.trim().to_owned(),
                region: a.region.trim().to_owned(),
                postal_code: a.postal_code.trim().to_owned(),
                country: a
                    .country
                    .map(|c| c.value.trim().to_owned())
                    .unwrap_or_default(),
                phone: a.phone.trim().to_owned(),
            }
        }
    }
}

/// A device as the contracts carry it and as every service knows it, converted in
/// one place.
mod device {
    use aftersales_core::types::{DeviceKey, ParseError};

    use crate::common::{DeviceId, device_id::Kind};

    impl From<&DeviceKey> for DeviceId {
        fn from(key: &DeviceKey) -> Self {
            let kind = match key {
                DeviceKey::Imei(v) => Kind::Imei(v.to_string()),
                DeviceKey::Serial(v) => Kind::Serial(v.to_string()),
            };
            Self { kind: Some(kind) }
        }
    }

    impl DeviceId {
        /// A request's device, parsed: `device_id`, `device_id.imei` or
        /// `device_id.serial` names what is wrong.
        pub fn parse(id: Option<&Self>) -> Result<DeviceKey, ParseError> {
            match id.and_then(|id| id.kind.as_ref()) {
                Some(Kind::Imei(v)) => DeviceKey::imei(v),
                Some(Kind::Serial(v)) => DeviceKey::serial(v),
                None => Err(ParseError::required(
                    "device_id",
                    "is required (imei or serial)",
                )),
            }
        }
    }
}
