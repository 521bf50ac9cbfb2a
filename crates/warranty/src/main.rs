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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (region, log_json) = (cli.config.common.region.clone(), cli.config.common.log_json);
    let start = aftersales_warranty::server::start(cli.config);
    aftersales_runtime::service::main("warranty", &region, log_json, start).await
}
