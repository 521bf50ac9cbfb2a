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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (region, log_json) = (cli.config.common.region.clone(), cli.config.common.log_json);
    let start = aftersales_repair::server::start(cli.config);
    aftersales_runtime::service::main("repair", &region, log_json, start).await
}
