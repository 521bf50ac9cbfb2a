//! Tracing for a service process: logs to stderr (text, or JSON lines with the
//! current span and its trace id), and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is
//! set, every span exported by OTLP/gRPC with the service's name, version and
//! region as resource attributes. W3C trace context is the propagator, so a
//! trace crosses gRPC metadata and NATS headers alike.
//!
//! The standard OpenTelemetry variables apply (`OTEL_EXPORTER_OTLP_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_SCHEDULE_DELAY`, …);
//! `AFTERSALES_TRACE_FILTER` chooses the exported spans (default `info`),
//! independently of `RUST_LOG` for logs.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry::{KeyValue, global};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The exporter behind the SDK's batch processor, which exports from its own
/// thread where tonic finds no Tokio reactor: each export runs on a small
/// runtime of its own.
#[derive(Debug)]
struct OnOwnRuntime {
    runtime: tokio::runtime::Runtime,
    inner: opentelemetry_otlp::SpanExporter,
}

impl SpanExporter for OnOwnRuntime {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        std::future::ready(self.runtime.block_on(self.inner.export(batch)))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Flushes spans on the way out.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is still buffered. Call before the process exits.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            // The provider's shutdown blocks; keep it off the async workers.
            let _ = std::thread::spawn(move || provider.shutdown()).join();
        }
    }
}

fn otlp(service: &str, region: &str) -> Result<Option<SdkTracerProvider>, String> {
    let Some(endpoint) = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
    else {
        return Ok(None);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otlp-export")
        .enable_all()
        .build()
        .map_err(|e| format!("OTLP runtime: {e}"))?;
    let inner = {
        let _entered = runtime.enter();
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(|e| format!("OTEL_EXPORTER_OTLP_ENDPOINT {endpoint}: {e}"))?
    };
    let resource = Resource::builder()
        .with_service_name(format!("aftersales-{service}"))
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.namespace", "aftersales"),
            KeyValue::new("cloud.region", region.to_owned()),
            KeyValue::new("aftersales.region", region.to_owned()),
        ])
        .build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(OnOwnRuntime { runtime, inner })
            .with_resource(resource)
            .build(),
    ))
}

/// Installs logging and, if configured, OTLP export for `service`
/// (`warranty`, …) in `region`. Call once, first thing in `main`.
pub fn init(service: &str, region: &str, json: bool) -> Telemetry {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    // Colour codes only for a person at a terminal, never in a file or a collector.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let fmt = if json {
        fmt.json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed()
    } else {
        fmt.boxed()
    };
    let (provider, problem) = match otlp(service, region) {
        Ok(provider) => (provider, None),
        Err(problem) => (None, Some(problem)),
    };
    // Spans are exported whatever RUST_LOG says of logs; the transport's own
    // are left out.
    let spans = || {
        tracing_subscriber::EnvFilter::try_from_env("AFTERSALES_TRACE_FILTER").unwrap_or_else(
            |_| {
                tracing_subscriber::EnvFilter::new(
                    "info,h2=off,hyper=off,tower=off,tonic=off,sqlx=off",
                )
            },
        )
    };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("aftersales"))
            .with_filter(spans())
    });
    let installed = tracing_subscriber::registry()
        .with(fmt.with_filter(filter()))
        .with(otel)
        .try_init();
    if let Err(error) = installed {
        eprintln!("logging was set up already: {error}");
    }
    if let Some(problem) = problem {
        tracing::error!(%problem, "spans are not exported");
    }
    if provider.is_some() {
        global::set_tracer_provider(provider.clone().unwrap_or_default());
    }
    Telemetry { provider }
}

/// A server span for every gRPC call, the child of the caller's span when the
/// request carries `traceparent`. Health checks and reflection are left out.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcTracing;

impl<S> tower_layer::Layer<S> for GrpcTracing {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Traced<S> {
        Traced { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Traced<S> {
    inner: S,
}

type BoxFuture<T, E> = std::pin::Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> tower_service::Service<http::Request<B>> for Traced<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        use tracing::Instrument as _;
        let path = request.uri().path().to_owned();
        if path.starts_with("/grpc.") {
            return Box::pin(self.inner.call(request));
        }
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or(("", &path));
        let span = tracing::info_span!(
            "grpc",
            otel.name = %path.trim_start_matches('/'),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        let carrier: HashMap<String, String> = ["traceparent", "tracestate"]
            .into_iter()
            .filter_map(|name| {
                let value = request.headers().get(name)?.to_str().ok()?;
                Some((name.to_owned(), value.to_owned()))
            })
            .collect();
        let parent = aftersales_messaging::trace::extract(&carrier);
        let parent_trace = parent.as_ref().map(|p| p.span().span_context().trace_id());
        if let Some(parent) = parent {
            let _ = span.set_parent(parent);
        }
        // Logs in this call carry the trace id: the span's when spans are
        // recorded, else the caller's.
        let trace_id = Some(span.context().span().span_context().trace_id())
            .filter(|id| *id != opentelemetry::trace::TraceId::INVALID)
            .or(parent_trace);
        if let Some(trace_id) = trace_id {
            span.record("trace_id", tracing::field::display(trace_id));
        }
        // In the span both while the handler is made and while it runs.
        let call = {
            let _entered = span.enter();
            self.inner.call(request)
        }
        .instrument(span.clone());
        Box::pin(async move {
            let result = call.await;
            if let Ok(response) = &result {
                let code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("0");
                span.record("rpc.grpc.status_code", code);
            }
            result
        })
    }
}

/// What every outgoing call carries: the current span's context, and the
/// service's own token when it has one (client credentials).
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    token: Option<std::sync::Arc<aftersales_auth::ServiceToken>>,
    /// The header made from the current token, kept (across clones of the
    /// channel) until the token changes.
    bearer: std::sync::Arc<std::sync::Mutex<Option<Bearer>>>,
}

type Bearer = (
    std::sync::Arc<str>,
    tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
);

impl tonic::service::Interceptor for Outgoing {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let (traceparent, tracestate) = aftersales_messaging::trace::current_trace_context();
        for (name, value) in [("traceparent", traceparent), ("tracestate", tracestate)] {
            if let Some(value) = value.and_then(|v| v.parse().ok()) {
                request.metadata_mut().insert(name, value);
            }
        }
        if let Some(token) = &self.token {
            let current = token.current().ok_or_else(|| {
                tonic::Status::unavailable(
                    "this service has no token from the identity provider yet",
                )
            })?;
            let mut bearer = self
                .bearer
                .lock()
                .map_err(|_| tonic::Status::internal("the service token cache is poisoned"))?;
            let stale = bearer
                .as_ref()
                .is_none_or(|(made_from, _)| !std::sync::Arc::ptr_eq(made_from, &current));
            if stale {
                let value = format!("Bearer {current}").parse().map_err(|_| {
                    tonic::Status::internal("the service token is not a header value")
                })?;
                *bearer = Some((current, value));
            }
            if let Some((_, value)) = bearer.as_ref() {
                request
                    .metadata_mut()
                    .insert("authorization", value.clone());
            }
        }
        Ok(request)
    }
}

/// A gRPC channel whose calls carry the caller's trace context and, given one,
/// the service's token.
pub type TracedChannel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Outgoing>;

/// `channel` with [`Outgoing`] on every call.
pub fn traced(
    channel: tonic::transport::Channel,
    token: Option<std::sync::Arc<aftersales_auth::ServiceToken>>,
) -> TracedChannel {
    tonic::service::interceptor::InterceptedService::new(
        channel,
        Outgoing {
            token,
            bearer: std::sync::Arc::default(),
        },
    )
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A gRPC handler that logs one line.
    #[derive(Clone)]
    struct Logs;

    impl tower_service::Service<http::Request<()>> for Logs {
        type Response = http::Response<()>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<http::Response<()>, Self::Error>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            tracing::info!("handling");
            std::future::ready(Ok(http::Response::new(())))
        }
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn json_logs_in_a_call_carry_the_callers_trace_id() {
        use tower_layer::Layer as _;
        use tower_service::Service as _;
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let mut service = GrpcTracing.layer(Logs);
        let request = http::Request::builder()
            .uri("/aftersales.repair.v1.RepairService/OpenRepair")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .body(())
            .unwrap_or_default();
        let _ = service.call(request).await;
        let logged = String::from_utf8(buffer.0.lock().map(|b| b.clone()).unwrap_or_default())
            .unwrap_or_default();
        assert!(logged.contains("handling"), "{logged}");
        assert!(
            logged.contains("\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\""),
            "{logged}"
        );
        assert!(logged.contains("\"rpc.method\":\"OpenRepair\""), "{logged}");
    }
}
