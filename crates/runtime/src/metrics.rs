//! Prometheus metrics: one recorder per process, served as text on
//! `GET /metrics`, and a tower layer that counts and times every gRPC call.
//!
//! What the crates record (names are stable; see README "Metrics"):
//! - `aftersales_grpc_requests_total{method,code}`, `aftersales_grpc_request_duration_seconds{method}`
//! - `aftersales_commands_total{aggregate,outcome}`, `aftersales_command_duration_seconds{aggregate}`
//! - `aftersales_events_appended_total{category}`
//! - `aftersales_relay_published_total{stream}`, `aftersales_relay_lag_events{stream}`
//! - `aftersales_consumer_events_total{consumer,outcome}`, `aftersales_consumer_redeliveries_total{consumer}`,
//!   `aftersales_consumer_pending{consumer}`, `aftersales_dead_letters_total{consumer}`
//! - `aftersales_projection_lag_events{projection}`

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder (a test's) may already be installed; this one still
        // renders what it sees.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Serves `GET /metrics` on `addr` until `shutdown`; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<SocketAddr> {
    let handle = handle();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || async move {
            (
                [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                handle.render(),
            )
        }),
    );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(%error, "metrics endpoint stopped");
        }
    });
    Ok(local)
}

/// [`serve`] when an address is configured; the error names the address.
pub async fn serve_if(
    addr: Option<SocketAddr>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Option<SocketAddr>, String> {
    match addr {
        Some(addr) => serve(addr, shutdown)
            .await
            .map(Some)
            .map_err(|e| format!("metrics on {addr}: {e}")),
        None => Ok(None),
    }
}

/// The `method` label of a call: its path when it names an RPC the platform
/// has (every one has a rule in the policy, health's two besides), otherwise
/// `unknown`, so made-up paths cannot grow the metrics without bound.
pub fn method_label(path: &str) -> &str {
    static KNOWN: std::sync::LazyLock<std::collections::BTreeSet<String>> =
        std::sync::LazyLock::new(|| {
            let mut known: std::collections::BTreeSet<String> = aftersales_auth::Policy::builtin()
                .map(|policy| policy.methods().map(|m| format!("/{m}")).collect())
                .unwrap_or_default();
            known.insert("/grpc.health.v1.Health/Check".to_owned());
            known.insert("/grpc.health.v1.Health/Watch".to_owned());
            known
        });
    if KNOWN.contains(path) {
        path
    } else {
        "unknown"
    }
}

/// Counts and times every gRPC call by method and status code.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetrics;

impl<S> tower_layer::Layer<S> for GrpcMetrics {
    type Service = Measured<S>;

    fn layer(&self, inner: S) -> Measured<S> {
        Measured { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Measured<S> {
    inner: S,
}

impl<S, B, R> tower_service::Service<http::Request<B>> for Measured<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method_label(request.uri().path()).to_owned();
        let started = Instant::now();
        let call = self.inner.call(request);
        Box::pin(async move {
            let result = call.await;
            // An error is a trailers-only response: its status is in the headers.
            let code = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .map_or("0", |code| code)
                    .to_owned(),
                Err(_) => "transport".to_owned(),
            };
            metrics::counter!("aftersales_grpc_requests_total", "method" => method.clone(), "code" => code)
                .increment(1);
            metrics::histogram!("aftersales_grpc_request_duration_seconds", "method" => method)
                .record(started.elapsed().as_secs_f64());
            result
        })
    }
}

#[cfg(test)]
mod label_tests {
    use super::method_label;

    #[test]
    fn only_the_platforms_rpcs_are_labels() {
        for known in [
            "/aftersales.repair.v1.RepairService/GetRepair",
            "/aftersales.operations.v1.Operations/GetBacklog",
            "/grpc.health.v1.Health/Check",
        ] {
            assert_eq!(method_label(known), known);
        }
        for made_up in [
            "/x.Y/Z",
            "/aftersales.repair.v1.RepairService/Nope",
            "",
            "/",
        ] {
            assert_eq!(method_label(made_up), "unknown", "{made_up}");
        }
    }
}
