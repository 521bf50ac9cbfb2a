//! `aftersales-gateway`: the web front door's binary.

use std::process::ExitCode;

use clap::Parser;

/// The web pages of the platform, served over the services' gRPC APIs. Every
/// flag can also be set by the environment variable shown.
#[derive(Debug, Parser)]
#[command(name = "aftersales-gateway", version)]
struct Cli {
    #[command(flatten)]
    config: aftersales_gateway::Config,
    /// Log as JSON lines.
    #[arg(long, env = "AFTERSALES_LOG_JSON")]
    log_json: bool,
    #[arg(long, env = "AFTERSALES_REGION", default_value = "local")]
    region: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = aftersales_runtime::telemetry::init("gateway", &cli.region, cli.log_json);
    let terminate = aftersales_runtime::signal::terminate();
    let running = match aftersales_gateway::start(cli.config).await {
        Ok(running) => running,
        Err(error) => {
            eprintln!("aftersales-gateway: {error}");
            telemetry.shutdown();
            return ExitCode::FAILURE;
        }
    };
    println!("http://{}", running.addr);
    terminate.await;
    running.stop().await;
    telemetry.shutdown();
    ExitCode::SUCCESS
}
