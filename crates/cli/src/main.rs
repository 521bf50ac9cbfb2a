//! `aftersales`: the platform on one machine.
//!
//! `aftersales up` starts every service built so far in this one process, on the
//! embedded default: SQLite event stores under a data directory, no broker. Today
//! that is warranty and repair (which asks warranty over gRPC); logistics and
//! notification join them as they are built.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

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
    println!("warranty     grpc://{}", warranty.addr);
    println!("repair       grpc://{}", repair.addr);
    println!("data in {}; Ctrl-C stops", args.data_dir.display());
    aftersales_runtime::signal::terminate().await;
    repair.stop().await.map_err(|e| format!("repair: {e}"))?;
    warranty
        .stop()
        .await
        .map_err(|e| format!("warranty: {e}"))?;
    println!("stopped");
    Ok(())
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
