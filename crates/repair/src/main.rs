//! `aftersales-repair`: the repair service binary.

use std::process::ExitCode;

use clap::Parser;

/// The repair service: repair orders, service centers, repair history. Every flag
/// can also be set by the environment variable shown.
#[derive(Debug, Parser)]
#[command(name = "aftersales-repair", version)]
struct Cli {
    #[command(flatten)]
    config: aftersales_repair::server::Config,
    /// Log as JSON lines.
    #[arg(long, env = "AFTERSALES_LOG_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = aftersales_runtime::telemetry::init("repair", &cli.config.region, cli.log_json);
    // Installed first: a SIGTERM during start-up still stops cleanly.
    let terminate = aftersales_runtime::signal::terminate();
    let running = match aftersales_repair::server::start(cli.config).await {
        Ok(running) => running,
        Err(error) => {
            eprintln!("aftersales-repair: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("repair gRPC on {}", running.addr);
    terminate.await;
    let stopped = running.stop().await;
    telemetry.shutdown();
    match stopped {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("aftersales-repair: {error}");
            ExitCode::FAILURE
        }
    }
}
