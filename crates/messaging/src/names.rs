//! Subjects, stream names and header names: the wire contract between services.

use crate::error::ConfigError;

/// Header names every relayed event carries, besides `Nats-Msg-Id` (the event id).
pub mod header {
    pub const EVENT_ID: &str = "Aftersales-Event-Id";
    pub const EVENT_TYPE: &str = "Aftersales-Event-Type";
    pub const SCHEMA_VERSION: &str = "Aftersales-Schema-Version";
    pub const STREAM_ID: &str = "Aftersales-Stream-Id";
    pub const STREAM_VERSION: &str = "Aftersales-Stream-Version";
    pub const CORRELATION_ID: &str = "Aftersales-Correlation-Id";
    pub const CAUSATION_ID: &str = "Aftersales-Causation-Id";
    pub const ACTOR: &str = "Aftersales-Actor";
    pub const REGION: &str = "Aftersales-Region";
    pub const SOURCE: &str = "Aftersales-Source";
    pub const RECORDED_AT: &str = "Aftersales-Recorded-At";
    pub const POSITION: &str = "Aftersales-Position";
    /// The event's link in its stream's hash chain, hex: a receiver can anchor it.
    pub const HASH: &str = "Aftersales-Hash";
    pub const CONTENT_TYPE: &str = "Content-Type";
    /// W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    pub const TRACESTATE: &str = "tracestate";

    /// Added to a dead letter.
    pub const DLQ_ERROR: &str = "Aftersales-Dlq-Error";
    pub const DLQ_ATTEMPTS: &str = "Aftersales-Dlq-Attempts";
    pub const DLQ_CONSUMER: &str = "Aftersales-Dlq-Consumer";
    pub const DLQ_SUBJECT: &str = "Aftersales-Dlq-Subject";
    pub const DLQ_FAILED_AT: &str = "Aftersales-Dlq-Failed-At";
    /// On a replayed message: the dead letter's sequence in the DLQ stream.
    pub const REPLAY_OF: &str = "Aftersales-Replay-Of";
}

/// Names within one region: `aftersales.<region>.<service>.<event-type>` subjects and
/// one JetStream stream per service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    region: String,
}

impl Names {
    /// `region` is lower-case letters, digits and `-`, e.g. `eu-west`.
    pub fn new(region: impl Into<String>) -> Result<Self, ConfigError> {
        let region = region.into();
        check_token("region", &region)?;
        Ok(Self { region })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The subject an event of `service` is published on.
    pub fn event_subject(&self, service: &str, event_type: &str) -> String {
        format!("aftersales.{}.{service}.{event_type}", self.region)
    }

    /// Every subject of `service`'s stream.
    pub fn service_subjects(&self, service: &str) -> String {
        format!("aftersales.{}.{service}.>", self.region)
    }

    /// `AFTERSALES_<REGION>_<SERVICE>`.
    pub fn service_stream(&self, service: &str) -> String {
        stream_name(&["AFTERSALES", &self.region, service])
    }

    /// `AFTERSALES_<REGION>_REPLICA_<SOURCE>_<SERVICE>`: `source` region's stream of
    /// `service`, mirrored into this region.
    pub fn replica_stream(&self, source: &Names, service: &str) -> String {
        stream_name(&[
            "AFTERSALES",
            &self.region,
            "REPLICA",
            &source.region,
            service,
        ])
    }

    /// `$JS.<region>.API`: this region's JetStream as another region reaches it
    /// (the region is its JetStream domain).
    pub fn jetstream_api(&self) -> String {
        format!("$JS.{}.API", self.region)
    }

    /// `AFTERSALES_<REGION>_HEADS_<SERVICE>`: the service's signed chain heads.
    pub fn heads_stream(&self, service: &str) -> String {
        stream_name(&["AFTERSALES", &self.region, "HEADS", service])
    }

    /// Every subject of `service`'s heads stream (outside its events' subjects).
    pub fn heads_subjects(&self, service: &str) -> String {
        format!("aftersales.{}.heads.{service}.>", self.region)
    }

    /// The subject `stream`'s head is published on: one per stream, named by
    /// the first 128 bits of the SHA-256 of its id (any id is then one token).
    pub fn head_subject(&self, service: &str, stream: &str) -> String {
        use sha2::{Digest as _, Sha256};
        let digest = Sha256::digest(stream.as_bytes());
        let token: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("aftersales.{}.heads.{service}.{token}", self.region)
    }

    /// The region's dead-letter stream.
    pub fn dead_letter_stream(&self) -> String {
        stream_name(&["AFTERSALES", &self.region, "DLQ"])
    }

    pub fn dead_letter_subjects(&self) -> Vec<String> {
        vec![
            format!("aftersales.{}.dlq.>", self.region),
            format!("aftersales.{}.replay.>", self.region),
        ]
    }

    /// Where `consumer`'s dead letters go.
    pub fn dead_letter_subject(&self, consumer: &str) -> String {
        format!("aftersales.{}.dlq.{consumer}", self.region)
    }

    /// Where an operator replays `consumer`'s dead letters to.
    pub fn replay_subject(&self, consumer: &str) -> String {
        format!("aftersales.{}.replay.{consumer}", self.region)
    }
}

fn stream_name(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| p.to_ascii_uppercase().replace('-', "_"))
        .collect::<Vec<_>>()
        .join("_")
}

/// A name that becomes one subject token: lower-case ASCII letters, digits and `-`.
pub fn check_token(field: &'static str, value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("{value:?} must be 1 to 64 lower-case letters, digits or '-'"),
        ))
    }
}

/// An event type that is one subject token: letters, digits, `_` and `-`.
pub fn check_event_type(value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            "event_type",
            format!("{value:?} must be letters, digits, '_' or '-' to be one subject token"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_region_and_service() {
        let names = Names::new("eu-west").unwrap();
        assert_eq!(
            names.event_subject("repair", "RepairOrderOpened"),
            "aftersales.eu-west.repair.RepairOrderOpened"
        );
        assert_eq!(
            names.service_subjects("repair"),
            "aftersales.eu-west.repair.>"
        );
        assert_eq!(names.service_stream("repair"), "AFTERSALES_EU_WEST_REPAIR");
        assert_eq!(names.dead_letter_stream(), "AFTERSALES_EU_WEST_DLQ");
        assert_eq!(
            names.dead_letter_subject("logistics-from-repair"),
            "aftersales.eu-west.dlq.logistics-from-repair"
        );
    }

    #[test]
    fn tokens_that_would_break_a_subject_are_refused() {
        for bad in ["", "EU", "eu.west", "eu west", "eu>", "*"] {
            assert!(Names::new(bad).is_err(), "{bad:?}");
        }
        assert!(check_event_type("Repair.Opened").is_err());
        assert!(check_event_type("RepairOrderOpened").is_ok());
    }
}
