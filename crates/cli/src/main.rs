//! `aftersales`: the platform on one machine.
//!
//! `aftersales up` starts every service built so far in this one process, on the
//! embedded default: SQLite event stores under a data directory, no broker. Today
//! that is all four: warranty, repair (which asks warranty over gRPC), logistics
//! and notification, each service's consumers following the others' logs
//! directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use aftersales_messaging::{LogConsumer, LogConsumerSettings};
use aftersales_runtime::shutdown::{Shutdown, ShutdownTrigger};
use clap::{Parser, Subcommand};

mod client;
mod demo;
mod operator;

#[derive(Debug, Parser)]
#[command(name = "aftersales", version, about = "The Aftersales platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    endpoints: client::Endpoints,
    /// Log as JSON lines.
    #[arg(long, global = true, env = "AFTERSALES_LOG_JSON")]
    log_json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the services in this process, with SQLite under the data directory.
    Up(Up),
    /// Devices and their warranty.
    #[command(subcommand)]
    Device(client::Device),
    /// Service centers.
    #[command(subcommand)]
    Center(client::Center),
    /// Repair orders.
    #[command(subcommand)]
    Repair(client::Repair),
    /// Extended warranty.
    #[command(subcommand)]
    Warranty(client::Warranty),
    /// Parcels of mail-in repairs.
    #[command(subcommand)]
    Shipment(client::Shipment),
    /// What customers were told.
    #[command(subcommand)]
    Notify(client::Notify),
    /// Operators: rebuild read models from the log.
    #[command(subcommand)]
    Projections(operator::Projections),
    /// Operators: verify and export a device's tamper-evident history.
    #[command(subcommand)]
    Audit(operator::Audit),
    /// Operators: dead letters.
    #[command(subcommand)]
    Dlq(operator::Dlq),
    /// Operators: the JetStream streams and consumers.
    #[command(subcommand)]
    Streams(operator::Streams),
    /// Exit 0 if the gRPC server at `--url` reports SERVING (for health checks).
    Health {
        #[arg(long)]
        url: String,
        /// A service name; the server as a whole if left out.
        #[arg(long, default_value = "")]
        service: String,
    },
}

#[derive(Debug, clap::Args)]
struct Up {
    /// Where the services keep their databases.
    #[arg(long, env = "AFTERSALES_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// The warranty service's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    warranty_listen: SocketAddr,
    /// The repair service's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50052")]
    repair_listen: SocketAddr,
    /// The logistics service's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50053")]
    logistics_listen: SocketAddr,
    /// The sandbox carrier plays this script on every parcel, so mail-in repairs
    /// move on their own; `none` leaves scans to `PlaySandboxScript`.
    #[arg(long, default_value = "delivered")]
    sandbox_autoplay: String,
    /// Milliseconds between autoplayed scans.
    #[arg(long, default_value_t = 2000)]
    sandbox_step_millis: u32,
    /// Seed demo data (devices in six countries, repairs in every stage) once.
    #[arg(long)]
    demo: bool,
    /// Prometheus metrics of all four services, on `http://<address>/metrics`.
    #[arg(long, default_value = "127.0.0.1:9100")]
    metrics_listen: SocketAddr,
    /// The notification service's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50054")]
    notification_listen: SocketAddr,
    /// Email goes out through this SMTP server (smtp://host:port); unset, customers
    /// are told in the in-app inbox only.
    #[arg(long, env = "AFTERSALES_SMTP_URL")]
    smtp_url: Option<String>,
    /// The SMS provider's endpoint; unset, no SMS.
    #[arg(long, env = "AFTERSALES_SMS_URL")]
    sms_url: Option<String>,
    /// The push provider's endpoint; unset, no push.
    #[arg(long, env = "AFTERSALES_PUSH_URL")]
    push_url: Option<String>,
    /// This deployment's region.
    #[arg(long, env = "AFTERSALES_REGION", default_value = "local")]
    region: String,
}

async fn up(args: Up) -> Result<(), String> {
    // Installed first: Ctrl-C or SIGTERM during start-up or seeding still stops
    // cleanly.
    let terminate = aftersales_runtime::signal::terminate();
    tokio::pin!(terminate);
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("--data-dir {}: {e}", args.data_dir.display()))?;
    // Each service at its own defaults, but for what one process on one machine
    // needs: its own SQLite file, no broker, no separate metrics, a quick stop.
    let common = |service: &str| aftersales_runtime::config::Common {
        database_url: Some(
            format!(
                "sqlite:{}",
                args.data_dir.join(format!("{service}.db")).display()
            )
            .into(),
        ),
        region: args.region.clone(),
        drain_grace_seconds: 0,
        ..Default::default()
    };
    let warranty = aftersales_warranty::server::start(aftersales_warranty::server::Config {
        common: common("warranty"),
        listen: args.warranty_listen,
        metrics_listen: None,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("warranty: {e}"))?;
    let repair = aftersales_repair::server::start(aftersales_repair::server::Config {
        common: common("repair"),
        listen: args.repair_listen,
        warranty_url: Some(format!("http://{}", warranty.addr)),
        metrics_listen: None,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("repair: {e}"))?;
    let logistics = aftersales_logistics::server::start(aftersales_logistics::server::Config {
        common: common("logistics"),
        listen: args.logistics_listen,
        webhook_listen: "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        sandbox_autoplay: Some(args.sandbox_autoplay.clone()).filter(|s| s != "none"),
        sandbox_step_millis: args.sandbox_step_millis,
        metrics_listen: None,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("logistics: {e}"))?;
    let notification =
        aftersales_notification::server::start(aftersales_notification::server::Config {
            common: common("notification"),
            listen: args.notification_listen,
            smtp_url: args.smtp_url.clone().map(Into::into),
            sms_url: args.sms_url.clone().map(Into::into),
            push_url: args.push_url.clone().map(Into::into),
            metrics_listen: None,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("notification: {e}"))?;
    let services = Services {
        warranty: &warranty,
        repair: &repair,
        logistics: &logistics,
        notification: &notification,
    };
    let (stop_consumers, consumers) = embedded_consumers(&services, &args.region)?;
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics = aftersales_runtime::metrics::serve(args.metrics_listen, async move {
        let _ = metrics_stopped.await;
    })
    .await
    .map_err(|e| format!("--metrics-listen {}: {e}", args.metrics_listen))?;
    println!("warranty     grpc://{}", warranty.addr);
    println!("repair       grpc://{}", repair.addr);
    println!("logistics    grpc://{}", logistics.addr);
    println!("notification grpc://{}", notification.addr);
    println!("metrics      http://{metrics}/metrics");
    let endpoints = client::Endpoints {
        warranty_url: format!("http://{}", warranty.addr),
        repair_url: format!("http://{}", repair.addr),
        logistics_url: format!("http://{}", logistics.addr),
        notification_url: format!("http://{}", notification.addr),
        json: false,
    };
    let seeding = async {
        if args.demo {
            demo::seed(&endpoints, args.smtp_url.is_some()).await
        } else {
            Ok(())
        }
    };
    let interrupted = tokio::select! {
        seeded = seeding => {
            seeded?;
            false
        }
        () = &mut terminate => true,
    };
    if !interrupted {
        println!("data in {}; Ctrl-C stops", args.data_dir.display());
        terminate.await;
    }
    stop_consumers.trigger();
    let _ = stop_metrics.send(());
    let _ = consumers.await;
    notification
        .stop()
        .await
        .map_err(|e| format!("notification: {e}"))?;
    logistics
        .stop()
        .await
        .map_err(|e| format!("logistics: {e}"))?;
    repair.stop().await.map_err(|e| format!("repair: {e}"))?;
    warranty
        .stop()
        .await
        .map_err(|e| format!("warranty: {e}"))?;
    println!("stopped");
    Ok(())
}

async fn health(url: &str, service: String) -> Result<(), String> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let channel = client::connect("the server", url).await?;
    let status = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest { service })
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner()
        .status;
    if status == i32::from(ServingStatus::Serving) {
        println!("SERVING");
        Ok(())
    } else {
        Err(format!("not serving ({status})"))
    }
}

/// The services `up` runs.
struct Services<'a> {
    warranty: &'a aftersales_warranty::server::Running,
    repair: &'a aftersales_repair::server::Running,
    logistics: &'a aftersales_logistics::server::Running,
    notification: &'a aftersales_notification::server::Running,
}

/// Each service's consumers, reading the other services' logs directly: what
/// NATS carries in the distributed form, with the same public payloads.
fn embedded_consumers(
    s: &Services<'_>,
    region: &str,
) -> Result<(ShutdownTrigger, tokio::task::JoinHandle<()>), String> {
    let settings = LogConsumerSettings::default();
    let repair_events = Arc::new(aftersales_repair::integration::RepairEvents);
    let logistics_events = Arc::new(aftersales_logistics::integration::LogisticsEvents);
    let to_logistics = LogConsumer::new(
        s.repair.store.clone(),
        s.logistics.store.clone(),
        aftersales_logistics::reactions::subscription().map_err(|e| e.to_string())?,
        Arc::new(aftersales_logistics::reactions::RepairReactions::new(
            s.logistics.app.clone(),
            region,
        )),
        settings.clone(),
    )
    .with_translation(repair_events.clone());
    let to_repair = LogConsumer::new(
        s.logistics.store.clone(),
        s.repair.store.clone(),
        aftersales_repair::reactions::subscription().map_err(|e| e.to_string())?,
        Arc::new(aftersales_repair::reactions::LogisticsReactions::new(
            s.repair.store.clone(),
            region,
        )),
        settings.clone(),
    )
    .with_translation(logistics_events.clone());
    let [from_repair, from_logistics, from_warranty] =
        aftersales_notification::reactions::subscriptions().map_err(|e| e.to_string())?;
    let notify = Arc::new(s.notification.reactions.clone());
    let notify_repair = LogConsumer::new(
        s.repair.store.clone(),
        s.notification.store.clone(),
        from_repair,
        Arc::clone(&notify),
        settings.clone(),
    )
    .with_translation(repair_events);
    let notify_logistics = LogConsumer::new(
        s.logistics.store.clone(),
        s.notification.store.clone(),
        from_logistics,
        Arc::clone(&notify),
        settings.clone(),
    )
    .with_translation(logistics_events);
    let notify_warranty = LogConsumer::new(
        s.warranty.store.clone(),
        s.notification.store.clone(),
        from_warranty,
        notify,
        settings,
    )
    .with_translation(Arc::new(aftersales_warranty::integration::WarrantyEvents));
    let (trigger, shutdown) = Shutdown::new();
    let task = tokio::spawn(async move {
        tokio::join!(
            to_logistics.run(shutdown.clone()),
            to_repair.run(shutdown.clone()),
            notify_repair.run(shutdown.clone()),
            notify_logistics.run(shutdown.clone()),
            notify_warranty.run(shutdown),
        );
    });
    Ok((trigger, task))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (name, region) = if let Command::Up(args) = &cli.command {
        ("up", args.region.clone())
    } else {
        ("cli", "local".to_owned())
    };
    let telemetry = aftersales_runtime::telemetry::init(name, &region, cli.log_json);
    let result = match cli.command {
        Command::Up(args) => up(args).await,
        Command::Device(command) => client::device(command, &cli.endpoints).await,
        Command::Center(command) => client::center(command, &cli.endpoints).await,
        Command::Repair(command) => client::repair(command, &cli.endpoints).await,
        Command::Warranty(command) => client::warranty_command(command, &cli.endpoints).await,
        Command::Shipment(command) => client::shipment(command, &cli.endpoints).await,
        Command::Notify(command) => client::notify(command, &cli.endpoints).await,
        Command::Projections(command) => operator::projections(command).await,
        Command::Audit(command) => operator::audit(command, &cli.endpoints).await,
        Command::Dlq(command) => operator::dlq(command, &cli.endpoints).await,
        Command::Streams(command) => operator::streams(command, &cli.endpoints).await,
        Command::Health { url, service } => health(&url, service).await,
    };
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("aftersales: {error}");
            ExitCode::FAILURE
        }
    }
}
