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
    let region = cli.config.region.clone();
    let start = aftersales_logistics::server::start(cli.config);
    aftersales_runtime::service::main("logistics", &region, cli.log_json, start).await
}
