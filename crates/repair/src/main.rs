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
    let region = cli.config.region.clone();
    let start = aftersales_repair::server::start(cli.config);
    aftersales_runtime::service::main("repair", &region, cli.log_json, start).await
}
