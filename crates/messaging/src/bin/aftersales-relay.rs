//! Runs one service's relay on its own: follows the service's event log and
//! publishes it to JetStream. Service binaries run the same relay in process; this
//! binary is for relaying a log whose service is down, and for crash tests.
//!
//! Configuration (environment): `DATABASE_URL` (the service's event store),
//! `NATS_URL`, `AFTERSALES_REGION`, `AFTERSALES_SERVICE`, and optionally
//! `AFTERSALES_STREAM_REPLICAS` (default 1).

use std::process::ExitCode;

use aftersales_eventstore::AnyEventStore;
use aftersales_messaging::{
    MessagingError, Names, Relay, RelaySettings, Shutdown, StreamSettings, connect,
    ensure_service_stream,
};

fn required(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} must be set"))
}

async fn run() -> Result<(), String> {
    let database_url = required("DATABASE_URL")?;
    let nats_url = required("NATS_URL")?;
    let names = Names::new(required("AFTERSALES_REGION")?).map_err(|e| e.to_string())?;
    let service = required("AFTERSALES_SERVICE")?;
    let mut stream = StreamSettings::default();
    if let Ok(replicas) = std::env::var("AFTERSALES_STREAM_REPLICAS") {
        stream.replicas = replicas
            .parse()
            .map_err(|_| format!("AFTERSALES_STREAM_REPLICAS: {replicas:?} is not a number"))?;
    }
    let store = AnyEventStore::connect(&database_url)
        .await
        .map_err(|e| format!("DATABASE_URL: {e}"))?;
    let js = connect(&nats_url, &format!("{service}-relay"))
        .await
        .map_err(|e| format!("NATS_URL: {e}"))?;
    ensure_service_stream(&js, &names, &service, &stream)
        .await
        .map_err(|e: MessagingError| e.to_string())?;
    let relay = Relay::new(store, js, names, service, RelaySettings::default(), &stream)
        .map_err(|e| e.to_string())?;
    let (trigger, shutdown) = Shutdown::new();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        trigger.trigger();
    });
    relay.run(shutdown).await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("aftersales-relay: {error}");
            ExitCode::FAILURE
        }
    }
}
