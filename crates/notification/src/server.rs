//! The notification service as a running process: gRPC, the read models, the
//! send and reminder loop, and (with NATS) the consumers of warranty, repair and
//! logistics events. Its own events are private (they carry contact data and
//! message bodies) and are never relayed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aftersales_proto::notification::notification_service_server::NotificationServiceServer;
use aftersales_runtime::config::{Common, secret};
use aftersales_runtime::request::Requests;
use aftersales_runtime::service::{Assembly, Description, Listen};
pub use aftersales_runtime::service::{Running, StartError};
use secrecy::{ExposeSecret as _, SecretString};

use crate::api::NotificationApi;
use crate::app::{Notifications, SendSettings};
use crate::channels::{HttpProvider, Senders, Smtp};
use crate::domain::Channel;
use crate::reactions::{NotificationReactions, ReminderSettings};
use crate::templates::Templates;

/// The notification service, as its binary, `aftersales up` and operators see
/// it. Its events carry contact data and message bodies: none is published.
pub static SERVICE: Description = Description {
    name: "notification",
    grpc_services: &["aftersales.notification.v1.NotificationService"],
    migrations: &crate::projections::MIGRATIONS,
    projections: crate::projections::all,
    subscriptions: crate::reactions::subscriptions,
    from_other_regions: || Ok(Vec::new()),
    publishes: None,
};

/// How the service runs; flags and environment variables (see `main.rs`).
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// What every service binary shares.
    #[command(flatten)]
    pub common: Common,
    /// gRPC address to listen on.
    #[arg(
        long,
        env = "AFTERSALES_NOTIFICATION_LISTEN",
        default_value = "127.0.0.1:50054"
    )]
    pub listen: SocketAddr,
    /// The SMTP server for email: smtp://host:port, smtp://host:port?tls=required
    /// or smtps://host:port, with user:password@ if needed. Unset: no email.
    #[arg(long, env = "AFTERSALES_SMTP_URL", value_parser = secret, hide_env_values = true)]
    pub smtp_url: Option<SecretString>,
    /// The sender of email.
    #[arg(
        long,
        env = "AFTERSALES_EMAIL_FROM",
        default_value = "Aftersales <no-reply@aftersales.invalid>"
    )]
    pub email_from: String,
    /// The SMS provider's endpoint (HTTP POST, JSON). Unset: no SMS.
    #[arg(long, env = "AFTERSALES_SMS_URL", value_parser = secret, hide_env_values = true)]
    pub sms_url: Option<SecretString>,
    /// The push provider's endpoint (HTTP POST, JSON). Unset: no push.
    #[arg(long, env = "AFTERSALES_PUSH_URL", value_parser = secret, hide_env_values = true)]
    pub push_url: Option<SecretString>,
    /// Attempts per message before it is marked failed.
    #[arg(long, env = "AFTERSALES_SEND_MAX_ATTEMPTS", default_value_t = 6)]
    pub send_max_attempts: u32,
    /// The first retry's delay; each next one doubles, with jitter.
    #[arg(
        long,
        env = "AFTERSALES_SEND_RETRY_BASE_MILLIS",
        default_value_t = 2000
    )]
    pub send_retry_base_millis: u64,
    /// The longest delay between attempts.
    #[arg(
        long,
        env = "AFTERSALES_SEND_RETRY_MAX_SECONDS",
        default_value_t = 3600
    )]
    pub send_retry_max_seconds: u64,
    /// An attempt with no outcome after this long counts as interrupted.
    #[arg(long, env = "AFTERSALES_SEND_LEASE_SECONDS", default_value_t = 60)]
    pub send_lease_seconds: u64,
    /// How often due messages and reminders are looked for.
    #[arg(
        long,
        env = "AFTERSALES_DISPATCH_INTERVAL_MILLIS",
        default_value_t = 250
    )]
    pub dispatch_interval_millis: u64,
    /// A quote unanswered this long gets a reminder.
    #[arg(long, env = "AFTERSALES_QUOTE_REMINDER_SECONDS", default_value_t = 48 * 3600)]
    pub quote_reminder_seconds: u64,
    /// A device ready this long and not collected gets a reminder.
    #[arg(long, env = "AFTERSALES_PICKUP_REMINDER_SECONDS", default_value_t = 7 * 24 * 3600)]
    pub pickup_reminder_seconds: u64,
    /// Days an in-app message stays in the inbox.
    #[arg(long, env = "AFTERSALES_INBOX_DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub inbox_days: u32,
    /// Days the body of an email or SMS that went out is kept (its kind, time
    /// and outcome stay).
    #[arg(long, env = "AFTERSALES_SENT_BODY_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub sent_body_days: u32,
    /// Days before a warranty ends that its reminder goes out.
    #[arg(long, env = "AFTERSALES_WARRANTY_REMINDER_DAYS", default_value_t = 30)]
    pub warranty_reminder_days: u32,
    /// Prometheus metrics on `http://<address>/metrics`.
    #[arg(
        long,
        env = "AFTERSALES_METRICS_LISTEN",
        default_value = "127.0.0.1:9104"
    )]
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for Config {
    /// Every flag at its default.
    fn default() -> Self {
        aftersales_runtime::config::defaults()
    }
}

fn seconds(name: &str, value: u64) -> Result<chrono::Duration, StartError> {
    i64::try_from(value)
        .ok()
        .filter(|v| *v > 0)
        .and_then(chrono::Duration::try_seconds)
        .ok_or_else(|| StartError::Config(format!("{name} must be a positive number of seconds")))
}

fn senders(config: &Config) -> Result<Senders, StartError> {
    let http = |url: &Option<SecretString>, channel, name: &str| {
        url.as_ref()
            .map(|u| {
                let u = u.expose_secret();
                HttpProvider::new(u, channel)
                    .map(|p| Arc::new(p) as Arc<dyn crate::channels::Sender>)
                    .map_err(|e| StartError::Config(format!("{name}: {e}")))
            })
            .transpose()
    };
    Ok(Senders {
        email: config
            .smtp_url
            .as_ref()
            .map(|url| {
                Smtp::new(url.expose_secret(), &config.email_from)
                    .map(|s| Arc::new(s) as Arc<dyn crate::channels::Sender>)
                    .map_err(StartError::Config)
            })
            .transpose()?,
        sms: http(&config.sms_url, Channel::Sms, "AFTERSALES_SMS_URL")?,
        push: http(&config.push_url, Channel::Push, "AFTERSALES_PUSH_URL")?,
    })
}

pub async fn start(config: Config) -> Result<Running, StartError> {
    if config.send_max_attempts == 0 || config.send_retry_base_millis == 0 {
        return Err(StartError::Config(
            "send attempts and retry base must be at least 1".into(),
        ));
    }
    let settings = SendSettings {
        max_attempts: config.send_max_attempts,
        retry_base: chrono::Duration::milliseconds(
            i64::try_from(config.send_retry_base_millis)
                .map_err(|_| StartError::Config("retry base out of range".into()))?,
        ),
        retry_max: seconds(
            "AFTERSALES_SEND_RETRY_MAX_SECONDS",
            config.send_retry_max_seconds,
        )?,
        lease: seconds("AFTERSALES_SEND_LEASE_SECONDS", config.send_lease_seconds)?,
    };
    let reminders = ReminderSettings {
        quote_waiting: seconds(
            "AFTERSALES_QUOTE_REMINDER_SECONDS",
            config.quote_reminder_seconds,
        )?,
        pickup_waiting: seconds(
            "AFTERSALES_PICKUP_REMINDER_SECONDS",
            config.pickup_reminder_seconds,
        )?,
        before_warranty_end: chrono::Duration::days(i64::from(config.warranty_reminder_days)),
    };
    let senders = senders(&config)?;
    let templates =
        Arc::new(Templates::builtin().map_err(|e| StartError::Config(format!("templates: {e}")))?);
    let common = &config.common;
    let store = SERVICE.open(common).await?;
    let app = Notifications::new(
        store.clone(),
        templates,
        senders,
        settings,
        common.clock.clone(),
    );
    let reactions = NotificationReactions::new(app.clone(), common.region.clone(), reminders);
    let requests = Requests::new(common.region.clone(), common.clock.clone())
        .with_live_stream_cap(common.max_live_streams);
    let region = common.region.clone();
    let every = Duration::from_millis(config.dispatch_interval_millis.max(10));
    let assembly = Assembly::new(
        NotificationServiceServer::new(NotificationApi::new(app.clone(), requests))
            .max_decoding_message_size(aftersales_runtime::grpc::MAX_REQUEST_BYTES),
    )
    .consumer(reactions)
    .privacy(crate::privacy::NotificationRecords::new(app.clone()))
    .task({
        let app = app.clone();
        move |shutdown| async move { app.feed_inboxes(shutdown.stopped()).await }
    })
    .task({
        let app = app.clone();
        let retention = crate::projections::Retention {
            inbox_days: config.inbox_days,
            sent_body_days: config.sent_body_days,
        };
        move |shutdown| async move { app.forgetting(retention, shutdown).await }
    })
    .task(move |shutdown| crate::dispatch::run(app, region, every, shutdown));
    let listen = Listen {
        grpc: config.listen,
        metrics: config.metrics_listen,
    };
    aftersales_runtime::service::run(&SERVICE, common, listen, store, assembly).await
}
