//! W3C trace context across a message hop, and consumer spans named by
//! OpenTelemetry's messaging conventions.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::envelope::InboundEvent;

/// `messaging.system` for JetStream deliveries.
pub const NATS: &str = "nats";
/// `messaging.system` for embedded mode, where a consumer reads the producer's log.
pub const EVENT_LOG: &str = "aftersales_event_log";

/// The current span's context as W3C `traceparent` and `tracestate`, for a
/// command's metadata or an outgoing call. `None` when no span is recorded.
pub fn current_trace_context() -> (Option<String>, Option<String>) {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return (None, None);
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    (
        carrier.remove("traceparent"),
        carrier.remove("tracestate").filter(|s| !s.is_empty()),
    )
}

/// The remote parent a carrier of W3C headers names, if valid.
pub fn extract(headers: &HashMap<String, String>) -> Option<opentelemetry::Context> {
    let context = TraceContextPropagator::new().extract(headers);
    context.span().span_context().is_valid().then_some(context)
}

/// The producer's context, if the event carries a valid one.
fn parent_context(event: &InboundEvent) -> Option<opentelemetry::Context> {
    let traceparent = event.metadata.traceparent.as_ref()?;
    let mut carrier = HashMap::with_capacity(2);
    carrier.insert("traceparent".to_owned(), traceparent.clone());
    if let Some(tracestate) = &event.metadata.tracestate {
        carrier.insert("tracestate".to_owned(), tracestate.clone());
    }
    extract(&carrier)
}

/// The span a consumer handles one delivery in, a child of the producer's span.
pub fn consumer_span(
    system: &'static str,
    destination: &str,
    consumer: &str,
    event: &InboundEvent,
    attempt: u64,
) -> tracing::Span {
    let span = tracing::info_span!(
        "process",
        otel.name = format!("process {destination}"),
        otel.kind = "consumer",
        messaging.system = system,
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = destination,
        messaging.consumer.group.name = consumer,
        messaging.message.id = %event.event_id,
        messaging.message.conversation_id = %event.metadata.correlation_id,
        messaging.message.body.size = event.payload.len(),
        aftersales.event_type = %event.event_type,
        aftersales.stream_id = aftersales_core::types::masked_stream_id(event.stream_id.as_str()),
        aftersales.delivery_attempt = attempt,
        trace_id = tracing::field::Empty,
    );
    if let Some(parent) = parent_context(event) {
        use opentelemetry::trace::TraceContextExt as _;
        // Logs in this span carry the trace id, recorded or not.
        span.record(
            "trace_id",
            tracing::field::display(parent.span().span_context().trace_id()),
        );
        if let Err(error) = span.set_parent(parent) {
            tracing::debug!(%error, "could not continue the producer's trace");
        }
    }
    span
}
