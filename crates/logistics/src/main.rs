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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (region, log_json) = (cli.config.common.region.clone(), cli.config.common.log_json);
    let start = aftersales_logistics::server::start(cli.config);
    aftersales_runtime::service::main("logistics", &region, log_json, start).await
}
