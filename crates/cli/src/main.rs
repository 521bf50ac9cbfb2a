//! `aftersales`: the platform on one machine.
//!
//! `aftersales up` starts every service built so far in this one process, on the
//! embedded default: SQLite event stores under a data directory, no broker. Today
//! that is warranty, repair (which asks warranty over gRPC) and logistics; each
//! service's consumers follow the other's log directly. Notification joins them
//! when it is built.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use aftersales_messaging::{LogConsumer, LogConsumerSettings, Shutdown, ShutdownTrigger};
use clap::{Parser, Subcommand};

mod client;

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
    /// This deployment's region.
    #[arg(long, env = "AFTERSALES_REGION", default_value = "local")]
    region: String,
}

async fn up(args: Up) -> Result<(), String> {
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("--data-dir {}: {e}", args.data_dir.display()))?;
    let database = |service: &str| {
        format!(
            "sqlite:{}",
            args.data_dir.join(format!("{service}.db")).display()
        )
    };
    let warranty = aftersales_warranty::server::start(aftersales_warranty::server::Config {
        listen: args.warranty_listen,
        database_url: database("warranty"),
        nats_url: None,
        region: args.region.clone(),
        policies: None,
        stream_replicas: 1,
        drain_grace_seconds: 0,
    })
    .await
    .map_err(|e| format!("warranty: {e}"))?;
    let repair = aftersales_repair::server::start(aftersales_repair::server::Config {
        listen: args.repair_listen,
        database_url: database("repair"),
        warranty_url: Some(format!("http://{}", warranty.addr)),
        nats_url: None,
        region: args.region.clone(),
        center_radius_km: 100.0,
        drain_grace_seconds: 0,
    })
    .await
    .map_err(|e| format!("repair: {e}"))?;
    let logistics = aftersales_logistics::server::start(aftersales_logistics::server::Config {
        listen: args.logistics_listen,
        webhook_listen: "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        webhook_secret: None,
        webhook_replay_window_seconds: 300,
        database_url: database("logistics"),
        nats_url: None,
        region: args.region.clone(),
        stall_after_seconds: 72 * 3600,
        stall_check_seconds: 60,
        sandbox_autoplay: Some(args.sandbox_autoplay.clone()).filter(|s| s != "none"),
        sandbox_step_millis: args.sandbox_step_millis,
        sandbox_tracking_digits: 12,
        drain_grace_seconds: 0,
    })
    .await
    .map_err(|e| format!("logistics: {e}"))?;
    let (stop_consumers, consumers) = embedded_consumers(&repair, &logistics, &args.region)?;
    println!("warranty     grpc://{}", warranty.addr);
    println!("repair       grpc://{}", repair.addr);
    println!("logistics    grpc://{}", logistics.addr);
    println!("data in {}; Ctrl-C stops", args.data_dir.display());
    aftersales_runtime::signal::terminate().await;
    stop_consumers.trigger();
    let _ = consumers.await;
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

/// Each service's consumers, reading the other service's log directly: what
/// NATS carries in the distributed form.
fn embedded_consumers(
    repair: &aftersales_repair::server::Running,
    logistics: &aftersales_logistics::server::Running,
    region: &str,
) -> Result<(ShutdownTrigger, tokio::task::JoinHandle<()>), String> {
    let settings = LogConsumerSettings::default();
    let to_logistics = LogConsumer::new(
        repair.store.clone(),
        logistics.store.clone(),
        aftersales_logistics::reactions::subscription().map_err(|e| e.to_string())?,
        Arc::new(aftersales_logistics::reactions::RepairReactions::new(
            logistics.app.clone(),
            region,
        )),
        settings.clone(),
    )
    .with_translation(Arc::new(aftersales_repair::integration::RepairEvents));
    let to_repair = LogConsumer::new(
        logistics.store.clone(),
        repair.store.clone(),
        aftersales_repair::reactions::subscription().map_err(|e| e.to_string())?,
        Arc::new(aftersales_repair::reactions::LogisticsReactions::new(
            repair.store.clone(),
            region,
        )),
        settings,
    )
    .with_translation(Arc::new(aftersales_logistics::integration::LogisticsEvents));
    let (trigger, shutdown) = Shutdown::new();
    let task = tokio::spawn(async move {
        tokio::join!(to_logistics.run(shutdown.clone()), to_repair.run(shutdown));
    });
    Ok((trigger, task))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    aftersales_runtime::logging::init(cli.log_json);
    let result = match cli.command {
        Command::Up(args) => up(args).await,
        Command::Device(command) => client::device(command, &cli.endpoints).await,
        Command::Center(command) => client::center(command, &cli.endpoints).await,
        Command::Repair(command) => client::repair(command, &cli.endpoints).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("aftersales: {error}");
            ExitCode::FAILURE
        }
    }
}
