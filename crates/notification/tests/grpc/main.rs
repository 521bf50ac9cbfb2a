//! The notification service for real: PostgreSQL, a real nats-server carrying the
//! other services' events, a real SMTP listener (aiosmtpd) and a real HTTP SMS
//! provider.
#![allow(clippy::unwrap_used, clippy::wildcard_enum_match_arm)]

mod auth;
mod delivery;
mod preferences;

use std::sync::{Arc, Mutex};

use aftersales_notification::server::{Config, Running, start};
use aftersales_proto::notification as pb;
use aftersales_proto::notification::notification_service_client::NotificationServiceClient;
use aftersales_testkit::{NatsServer, SmtpServer, shared_postgres};
use tonic::transport::Channel;
use uuid::Uuid;

pub fn config(database_url: String) -> Config {
    Config {
        common: aftersales_runtime::config::Common::test(database_url),
        listen: "127.0.0.1:0".parse().unwrap(),
        email_from: "Aftersales <no-reply@aftersales.test>".into(),
        send_retry_base_millis: 50,
        send_retry_max_seconds: 2,
        send_lease_seconds: 30,
        dispatch_interval_millis: 50,
        metrics_listen: None,
        ..Config::default()
    }
}

/// A real HTTP SMS and push provider (`/sms`, `/push`): answers 503 to the first `fail_first` requests, then
/// 200, and keeps every request's idempotency key and status.
#[derive(Debug, Clone, Default)]
pub struct Provider {
    pub requests: Arc<Mutex<Vec<(String, u16, String)>>>,
    fail_first: usize,
}

impl Provider {
    pub async fn start(fail_first: usize) -> (Self, String) {
        let provider = Self {
            requests: Arc::default(),
            fail_first,
        };
        let state = provider.clone();
        let app = axum::Router::new().route(
            "/{channel}",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let mut requests = state.requests.lock().unwrap();
                    let code = if requests.len() < state.fail_first {
                        503
                    } else {
                        200
                    };
                    requests.push((key, code, body));
                    axum::http::StatusCode::from_u16(code).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (provider, format!("http://{addr}/sms"))
    }

    pub fn delivered(&self) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.1 == 200)
            .count()
    }
}

/// The service with its real neighbours.
#[derive(Debug)]
pub struct Harness {
    pub nats: NatsServer,
    pub smtp: SmtpServer,
    pub sms: Provider,
    pub js: async_nats::jetstream::Context,
    pub database_url: String,
    pub running: Option<Running>,
    pub client: NotificationServiceClient<Channel>,
    /// The time the service reads; a test moves it instead of sleeping.
    pub clock: aftersales_core::ShiftedClock,
    restart_config: Option<Config>,
}

impl Harness {
    pub async fn start(sms_failures: usize, adjust: impl Fn(&mut Config)) -> Self {
        let nats = NatsServer::start().unwrap();
        let smtp = SmtpServer::start().unwrap();
        let (sms, sms_url) = Provider::start(sms_failures).await;
        let js = aftersales_messaging::connect(&nats.url(), "test-publisher")
            .await
            .unwrap();
        let names = aftersales_messaging::Names::new("test").unwrap();
        for service in ["repair", "logistics", "warranty", "support"] {
            aftersales_messaging::ensure_service_stream(
                &js,
                &names,
                service,
                &aftersales_messaging::StreamSettings::default(),
            )
            .await
            .unwrap();
        }
        let database_url = shared_postgres().create_database().unwrap();
        let clock = aftersales_core::ShiftedClock::new();
        let mut cfg = config(database_url.clone());
        cfg.common = cfg.common.with_nats(nats.url());
        cfg.common.clock = Arc::new(clock.clone());
        cfg.smtp_url = Some(smtp.url().into());
        cfg.push_url = Some(sms_url.replace("/sms", "/push").into());
        cfg.sms_url = Some(sms_url.into());
        adjust(&mut cfg);
        let running = start(cfg.clone()).await.unwrap();
        let client = NotificationServiceClient::connect(format!("http://{}", running.addr))
            .await
            .unwrap();
        Self {
            nats,
            smtp,
            sms,
            js,
            database_url,
            running: Some(running),
            client,
            clock,
            restart_config: Some(cfg),
        }
    }
}

impl Harness {
    /// Stops the service (its data stays).
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.unwrap();
        }
    }

    /// Starts it again on the same data.
    pub async fn restart(&mut self) {
        let cfg = self.restart_config.clone().unwrap();
        let running = start(cfg).await.unwrap();
        self.client = NotificationServiceClient::connect(format!("http://{}", running.addr))
            .await
            .unwrap();
        self.running = Some(running);
    }
}

/// Publishes a protobuf event as `source`'s relay would, in region `test`.
pub async fn publish<M: prost::Message>(
    js: &async_nats::jetstream::Context,
    source: &str,
    event_type: &str,
    message: &M,
    event_id: Uuid,
    msg_id: &str,
) {
    aftersales_messaging::testing::publish(
        js, "test", source, event_type, message, event_id, msg_id,
    )
    .await;
}

/// The notification id a source event makes on a channel.
pub fn notification_id(source: Uuid, channel: &str) -> String {
    Uuid::new_v5(&source, channel.as_bytes()).to_string()
}

pub fn preferences(customer: &str, channels: &[pb::ChannelKind]) -> pb::Preferences {
    pb::Preferences {
        customer_id: customer.into(),
        email: format!("{customer}@example.com"),
        phone: "+4930123456".into(),
        push_token: String::new(),
        channels: channels.iter().map(|c| i32::from(*c)).collect(),
        language: "en".into(),
        quiet_hours: None,
        opted_out_topics: vec![],
        version: 0,
    }
}

/// A repair order opened for `customer`.
pub fn opened(order_id: &str, customer: &str) -> aftersales_proto::repair::RepairOrderOpened {
    aftersales_proto::repair::RepairOrderOpened {
        order_id: order_id.into(),
        device_id: Some(aftersales_proto::common::DeviceId {
            kind: Some(aftersales_proto::common::device_id::Kind::Imei(
                "490154203237518".into(),
            )),
        }),
        channel: aftersales_proto::repair::Channel::WalkIn.into(),
        service_center_id: "sc-berlin-01".into(),
        customer_id: customer.into(),
        ..aftersales_proto::repair::RepairOrderOpened::default()
    }
}

pub use aftersales_testkit::smtp::readable;
