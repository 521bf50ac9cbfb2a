//! `aftersales-warranty`: the warranty service binary.

use std::process::ExitCode;

use clap::Parser;

/// The warranty service: devices, per-country policies, coverage decisions,
/// extended plans. Every flag can also be set by the environment variable shown.
#[derive(Debug, Parser)]
#[command(name = "aftersales-warranty", version)]
struct Cli {
    #[command(flatten)]
    config: aftersales_warranty::server::Config,
    /// Log as JSON lines.
    #[arg(long, env = "AFTERSALES_LOG_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry =
        aftersales_runtime::telemetry::init("warranty", &cli.config.region, cli.log_json);
    // Installed first: a SIGTERM during start-up still stops cleanly.
    let terminate = aftersales_runtime::signal::terminate();
    let running = match aftersales_warranty::server::start(cli.config).await {
        Ok(running) => running,
        Err(error) => {
            eprintln!("aftersales-warranty: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("warranty gRPC on {}", running.addr);
    terminate.await;
    let stopped = running.stop().await;
    telemetry.shutdown();
    match stopped {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("aftersales-warranty: {error}");
            ExitCode::FAILURE
        }
    }
}
