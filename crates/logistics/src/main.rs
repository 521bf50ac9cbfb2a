//! `aftersales-logistics`: the logistics service binary.

use std::process::ExitCode;

use clap::Parser;

/// The logistics service: shipments, carrier labels and tracking, custody of
/// repaired devices. Every flag can also be set by the environment variable shown.
#[derive(Debug, Parser)]
#[command(name = "aftersales-logistics", version)]
struct Cli {
    #[command(flatten)]
    config: aftersales_logistics::server::Config,
    /// Log as JSON lines.
    #[arg(long, env = "AFTERSALES_LOG_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry =
        aftersales_runtime::telemetry::init("logistics", &cli.config.region, cli.log_json);
    // Installed first: a SIGTERM during start-up still stops cleanly.
    let terminate = aftersales_runtime::signal::terminate();
    let running = match aftersales_logistics::server::start(cli.config).await {
        Ok(running) => running,
        Err(error) => {
            eprintln!("aftersales-logistics: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("logistics gRPC on {}", running.addr);
    if let Some(webhook) = running.webhook_addr {
        println!("carrier webhook on http://{webhook}/v1/carriers/{{carrier}}/events");
    }
    terminate.await;
    let stopped = running.stop().await;
    telemetry.shutdown();
    match stopped {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("aftersales-logistics: {error}");
            ExitCode::FAILURE
        }
    }
}
