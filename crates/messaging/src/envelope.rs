//! An event as a consumer sees it, whichever way it arrived: as a JetStream message
//! with headers, or read straight from the producer's log in embedded mode.

use aftersales_eventstore::{CommandContext, Metadata, RecordedEvent, StreamId};
use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::MessagingError;
use crate::names::header;

/// An event from another service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundEvent {
    /// The producing service, e.g. `repair`.
    pub source: String,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub stream_id: StreamId,
    pub stream_version: u64,
    /// Position in the producer's log.
    pub position: u64,
    pub payload: Vec<u8>,
    /// How the payload is encoded: `application/json` as stored, or
    /// `application/protobuf; proto=<message>` for a public contract.
    pub content_type: String,
    pub metadata: Metadata,
}

/// The content type of an event as the log stores it.
pub const JSON: &str = "application/json";

/// The content type of a protobuf integration event of message `name`.
pub fn protobuf(name: &str) -> String {
    format!("application/protobuf; proto={name}")
}

impl InboundEvent {
    pub fn from_recorded(source: &str, event: RecordedEvent) -> Self {
        Self {
            source: source.to_owned(),
            event_id: event.event_id,
            event_type: event.event_type,
            schema_version: event.schema_version,
            stream_id: event.stream_id,
            stream_version: event.stream_version,
            position: event.position,
            payload: event.payload,
            content_type: JSON.to_owned(),
            metadata: event.metadata,
        }
    }

    /// The context of a command this event causes in `region`, acting as its
    /// source service: ids derived from the event and `what`, so a redelivery
    /// yields the same events; the consumer's span (itself the producer's
    /// child) when recorded, else the producer's.
    pub fn reaction_context(&self, what: &[u8], region: &str) -> CommandContext {
        let (traceparent, tracestate) = crate::trace::current_trace_context();
        CommandContext {
            command_id: Some(Uuid::new_v5(&self.event_id, what)),
            correlation_id: self.metadata.correlation_id,
            causation_id: Some(self.event_id),
            traceparent: traceparent.or_else(|| self.metadata.traceparent.clone()),
            tracestate: tracestate.or_else(|| self.metadata.tracestate.clone()),
            actor: format!("service:{}", self.source),
            region: region.to_owned(),
            now: self.metadata.recorded_at,
            request_fingerprint: None,
        }
    }

    /// Decodes a protobuf payload (an integration event from `proto/`).
    pub fn proto<M: prost::Message + Default>(&self) -> Result<M, prost::DecodeError> {
        M::decode(self.payload.as_slice())
    }

    /// Decodes the JSON payload.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }

    /// Reads an event back from a relayed message.
    pub fn from_message(
        headers: Option<&HeaderMap>,
        payload: &[u8],
    ) -> Result<Self, MessagingError> {
        let headers =
            headers.ok_or_else(|| MessagingError::Malformed("message has no headers".into()))?;
        let required = |name: &str| {
            headers
                .get(name)
                .map(|v| v.as_str().to_owned())
                .ok_or_else(|| MessagingError::Malformed(format!("header {name} is missing")))
        };
        let optional = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, MessagingError> {
            value
                .parse()
                .map_err(|_| MessagingError::Malformed(format!("header {name} is {value:?}")))
        }
        let causation_id = optional(header::CAUSATION_ID)
            .map(|v| parse::<Uuid>(header::CAUSATION_ID, &v))
            .transpose()?;
        let recorded_at = required(header::RECORDED_AT)?;
        let recorded_at = DateTime::parse_from_rfc3339(&recorded_at)
            .map_err(|_| {
                MessagingError::Malformed(format!(
                    "header {} is {recorded_at:?}",
                    header::RECORDED_AT
                ))
            })?
            .with_timezone(&Utc);
        Ok(Self {
            source: required(header::SOURCE)?,
            event_id: parse(header::EVENT_ID, &required(header::EVENT_ID)?)?,
            event_type: required(header::EVENT_TYPE)?,
            schema_version: parse(header::SCHEMA_VERSION, &required(header::SCHEMA_VERSION)?)?,
            stream_id: StreamId::parse(required(header::STREAM_ID)?)
                .map_err(|e| MessagingError::Malformed(e.to_string()))?,
            stream_version: parse(header::STREAM_VERSION, &required(header::STREAM_VERSION)?)?,
            position: parse(header::POSITION, &required(header::POSITION)?)?,
            payload: payload.to_vec(),
            content_type: optional(header::CONTENT_TYPE).unwrap_or_else(|| JSON.to_owned()),
            metadata: Metadata {
                correlation_id: parse(header::CORRELATION_ID, &required(header::CORRELATION_ID)?)?,
                causation_id,
                traceparent: optional(header::TRACEPARENT),
                tracestate: optional(header::TRACESTATE),
                actor: required(header::ACTOR)?,
                region: required(header::REGION)?,
                recorded_at,
            },
        })
    }
}

/// The headers a relayed event carries from `source`, its payload encoded as
/// `content_type`. `Nats-Msg-Id` is set by the publish.
pub fn headers_for(source: &str, event: &RecordedEvent, content_type: &str) -> HeaderMap {
    let m = &event.metadata;
    let mut headers = HeaderMap::new();
    headers.insert(header::SOURCE, source);
    headers.insert(header::EVENT_ID, event.event_id.to_string().as_str());
    headers.insert(header::EVENT_TYPE, event.event_type.as_str());
    headers.insert(
        header::SCHEMA_VERSION,
        event.schema_version.to_string().as_str(),
    );
    headers.insert(header::STREAM_ID, event.stream_id.as_str());
    headers.insert(
        header::STREAM_VERSION,
        event.stream_version.to_string().as_str(),
    );
    headers.insert(header::POSITION, event.position.to_string().as_str());
    headers.insert(
        header::CORRELATION_ID,
        m.correlation_id.to_string().as_str(),
    );
    if let Some(causation) = m.causation_id {
        headers.insert(header::CAUSATION_ID, causation.to_string().as_str());
    }
    if let Some(traceparent) = &m.traceparent {
        headers.insert(header::TRACEPARENT, traceparent.as_str());
    }
    if let Some(tracestate) = &m.tracestate {
        headers.insert(header::TRACESTATE, tracestate.as_str());
    }
    headers.insert(header::ACTOR, m.actor.as_str());
    headers.insert(header::REGION, m.region.as_str());
    headers.insert(
        header::RECORDED_AT,
        m.recorded_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            .as_str(),
    );
    headers.insert(header::HASH, hex(&event.hash).as_str());
    headers.insert(header::CONTENT_TYPE, content_type);
    headers
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use aftersales_eventstore::Checkpoint;

    use super::*;

    fn recorded() -> RecordedEvent {
        RecordedEvent {
            position: 41,
            checkpoint: Checkpoint {
                transaction: 9,
                position: 41,
            },
            stream_id: StreamId::parse("repair-7").unwrap(),
            stream_version: 3,
            event_id: Uuid::now_v7(),
            event_type: "RepairOrderOpened".into(),
            schema_version: 2,
            payload: br#"{"order":"7"}"#.to_vec(),
            metadata: Metadata {
                correlation_id: Uuid::now_v7(),
                causation_id: Some(Uuid::now_v7()),
                traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
                tracestate: Some("vendor=1".into()),
                actor: "customer:42".into(),
                region: "eu-west".into(),
                recorded_at: DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap(),
            },
            hash: [7; 32],
            personal: Default::default(),
        }
    }

    #[test]
    fn headers_carry_everything_a_consumer_reads_back() {
        let event = recorded();
        let headers = headers_for("repair", &event, JSON);
        let inbound = InboundEvent::from_message(Some(&headers), &event.payload).unwrap();
        assert_eq!(
            inbound,
            InboundEvent::from_recorded("repair", event.clone())
        );
        assert_eq!(headers.get(header::HASH).unwrap().as_str(), "07".repeat(32));
    }

    #[test]
    fn a_message_without_the_contract_headers_is_malformed() {
        let event = recorded();
        assert!(InboundEvent::from_message(None, b"{}").is_err());
        let mut headers = headers_for("repair", &event, JSON);
        headers.insert(header::STREAM_VERSION, "three");
        let error = InboundEvent::from_message(Some(&headers), b"{}").unwrap_err();
        assert!(
            error.to_string().contains(header::STREAM_VERSION),
            "{error}"
        );
    }
}
