//! Helpers for tests of services that consume events: publishing as another
//! service's relay would, without running that service.

use uuid::Uuid;

/// Publishes `message` as `source`'s relay in `region` would, with `msg_id` as
/// the JetStream message id (a re-publish with another id is a redelivery the
/// broker cannot drop). Panics on failure: it is for tests.
#[allow(clippy::unwrap_used, clippy::missing_panics_doc)]
pub async fn publish<M: prost::Message>(
    js: &async_nats::jetstream::Context,
    region: &str,
    source: &str,
    event_type: &str,
    message: &M,
    event_id: Uuid,
    msg_id: &str,
) {
    #[allow(clippy::disallowed_methods)]
    let recorded_at = chrono::Utc::now();
    let payload = message.encode_to_vec();
    let recorded = aftersales_eventstore::RecordedEvent {
        position: 1,
        checkpoint: aftersales_eventstore::Checkpoint {
            transaction: 0,
            position: 1,
        },
        stream_id: aftersales_eventstore::StreamId::parse(format!("{source}-{event_id}")).unwrap(),
        stream_version: 1,
        event_id,
        event_type: event_type.into(),
        schema_version: 1,
        payload: payload.clone(),
        metadata: aftersales_eventstore::Metadata {
            correlation_id: event_id,
            causation_id: None,
            traceparent: None,
            tracestate: None,
            actor: format!("service:{source}"),
            region: region.into(),
            recorded_at,
        },
        hash: [0; 32],
        personal: Default::default(),
    };
    let package = match source {
        "warranty" => "warranty",
        "logistics" => "logistics",
        "parts" => "parts",
        "support" => "support",
        _ => "repair",
    };
    let mut headers = crate::envelope::headers_for(
        source,
        &recorded,
        &crate::envelope::protobuf(&format!("aftersales.{package}.v1.{event_type}")),
    );
    headers.insert("Nats-Msg-Id", msg_id);
    js.publish_with_headers(
        format!("aftersales.{region}.{source}.{event_type}"),
        headers,
        payload.into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}
