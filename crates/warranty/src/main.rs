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
    let region = cli.config.region.clone();
    let start = aftersales_warranty::server::start(cli.config);
    aftersales_runtime::service::main("warranty", &region, cli.log_json, start).await
}
