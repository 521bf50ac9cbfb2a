//! Serving gRPC: the service's own routes plus `grpc.health.v1.Health` and server
//! reflection (v1 and v1alpha) over every Aftersales contract.
//!
//! Shutdown is in two steps, so load balancers stop sending calls before the
//! server stops taking them: when `shutdown` resolves, every service is reported
//! NOT_SERVING, the server waits `drain_grace`, then stops accepting connections
//! and lets calls in flight finish, for at most [`DRAIN_TIMEOUT`].

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::{Router as TonicRouter, TcpIncoming};
use tower_layer::{Identity, Stack};

use crate::auth::Authorization;
use crate::metrics::GrpcMetrics;
use crate::telemetry::GrpcTracing;

/// A service's routes behind the metrics, tracing and authorization layers (a
/// refused call is still counted and traced).
pub type Router = TonicRouter<
    Stack<
        UndecodableIsInvalid,
        Stack<Authorization, Stack<GrpcTracing, Stack<GrpcMetrics, Identity>>>,
    >,
>;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// The largest request a service decodes (tonic's default is 4 MiB): far above
/// any real command, far below what would hurt. Larger ones are refused before
/// any handler runs (OUT_OF_RANGE, as tonic answers).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// A request body that is not the method's message is the caller's error:
/// tonic answers INTERNAL ("failed to decode Protobuf message"); this answers
/// INVALID_ARGUMENT with the same message. Nothing else is touched.
#[derive(Debug, Clone, Copy, Default)]
pub struct UndecodableIsInvalid;

impl<S> tower_layer::Layer<S> for UndecodableIsInvalid {
    type Service = Reclassified<S>;

    fn layer(&self, inner: S) -> Reclassified<S> {
        Reclassified { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Reclassified<S> {
    inner: S,
}

impl<S, B, R> tower_service::Service<http::Request<B>> for Reclassified<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = self.inner.call(request);
        Box::pin(async move {
            let mut response = call.await?;
            // A refusal before any handler ran is a trailers-only response.
            let headers = response.headers();
            let undecodable = headers.get("grpc-status").is_some_and(|c| c == "13")
                && headers.get("grpc-message").is_some_and(|m| {
                    // Percent-encoded as tonic sends it, or plain.
                    let m = m.as_bytes();
                    m.starts_with(b"failed%20to%20decode") || m.starts_with(b"failed to decode")
                });
            if undecodable {
                response
                    .headers_mut()
                    .insert("grpc-status", http::HeaderValue::from_static("3"));
            }
            Ok(response)
        })
    }
}

/// How long calls in flight may take to finish once the server stops accepting.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("reflection: {0}")]
    Reflection(String),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Binds `addr` (port 0 picks a free port); returns the listener and its address.
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    Ok((listener, local))
}

/// What one server lets a caller use: how long a call may take, and how many
/// calls and HTTP/2 streams one connection may have open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub call_timeout: Duration,
    pub calls_per_connection: usize,
    pub streams_per_connection: u32,
}

impl Limits {
    pub fn of(common: &crate::config::Common) -> Self {
        Self {
            call_timeout: Duration::from_secs(common.call_timeout_seconds.max(1)),
            calls_per_connection: common.max_calls_per_connection.max(1),
            streams_per_connection: common.max_streams_per_connection.max(1),
        }
    }
}

/// A server with health and reflection routed beside the service's own routes.
#[derive(Debug)]
pub struct Grpc {
    health: HealthReporter,
    services: Vec<&'static str>,
}

impl Grpc {
    /// `services` are the fully qualified names reported SERVING, e.g.
    /// `aftersales.warranty.v1.WarrantyService`.
    pub async fn new(
        services: &[&'static str],
        routes: tonic::service::Routes,
        authorization: Authorization,
        tls: Option<tonic::transport::ServerTlsConfig>,
        limits: Limits,
    ) -> Result<(Self, Router), ServeError> {
        let (health, health_service) = tonic_health::server::health_reporter();
        for service in services.iter().copied().chain([""]) {
            health
                .set_service_status(service, ServingStatus::Serving)
                .await;
        }
        // Every contract is described, but only the services this server runs are
        // advertised.
        let reflection = || {
            services
                .iter()
                .copied()
                .chain(["grpc.health.v1.Health"])
                .fold(
                    tonic_reflection::server::Builder::configure()
                        .register_encoded_file_descriptor_set(aftersales_proto::FILE_DESCRIPTOR_SET)
                        .register_encoded_file_descriptor_set(
                            tonic_health::pb::FILE_DESCRIPTOR_SET,
                        ),
                    tonic_reflection::server::Builder::with_service_name,
                )
        };
        let reflection_alpha = reflection()
            .build_v1alpha()
            .map_err(|e| ServeError::Reflection(e.to_string()))?;
        let reflection = reflection()
            .build_v1()
            .map_err(|e| ServeError::Reflection(e.to_string()))?;
        // Every call is counted and timed (crate::metrics).
        crate::metrics::handle();
        // Load shedding: a slow or greedy client holds at most its share, and is
        // refused (RESOURCE_EXHAUSTED) rather than queued; idle connections are
        // probed; HTTP/2 rapid resets are bounded.
        let mut server = Server::builder()
            .timeout(limits.call_timeout)
            .concurrency_limit_per_connection(limits.calls_per_connection)
            .load_shed(true)
            .max_concurrent_streams(limits.streams_per_connection)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .http2_max_pending_accept_reset_streams(Some(32));
        if let Some(tls) = tls {
            server = server.tls_config(tls)?;
        }
        let router = server
            .layer(GrpcMetrics)
            .layer(GrpcTracing)
            .layer(authorization)
            .layer(UndecodableIsInvalid)
            .add_routes(
                routes
                    .add_service(health_service)
                    .add_service(reflection)
                    .add_service(reflection_alpha),
            );
        Ok((
            Self {
                health,
                services: services.to_vec(),
            },
            router,
        ))
    }

    /// The health reporter, for services that change status themselves.
    pub fn health(&self) -> &HealthReporter {
        &self.health
    }

    /// Serves `router` on `listener` until `shutdown`, then drains.
    pub async fn serve(
        self,
        router: Router,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
        drain_grace: Duration,
    ) -> Result<(), ServeError> {
        let health = self.health.clone();
        let services = self.services.clone();
        let (draining, drain_started) = tokio::sync::oneshot::channel();
        let signal = async move {
            shutdown.await;
            for service in services.iter().copied().chain([""]) {
                health
                    .set_service_status(service, ServingStatus::NotServing)
                    .await;
            }
            tracing::info!(?drain_grace, "reporting NOT_SERVING, then draining");
            tokio::time::sleep(drain_grace).await;
            let _ = draining.send(());
        };
        // Without TCP_NODELAY a response written in two parts waits for the
        // client's delayed ACK: up to 40 ms on a call that took one.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let serving = router.serve_with_incoming_shutdown(incoming, signal);
        tokio::pin!(serving);
        // Calls in flight may finish; a client that keeps an idle connection open
        // does not hold the process past DRAIN_TIMEOUT.
        let overdue = async {
            if drain_started.await.is_ok() {
                tokio::time::sleep(DRAIN_TIMEOUT).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            served = &mut serving => served?,
            () = overdue => {
                tracing::warn!(?DRAIN_TIMEOUT, "connections still open after draining; closing them");
            }
        }
        Ok(())
    }
}
