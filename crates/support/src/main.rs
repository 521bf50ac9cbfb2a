//! `aftersales-support`: the support service binary.

use std::process::ExitCode;

use clap::Parser;

/// The support service: hotline, chat, email and web cases, routed to the team
/// and agent that can answer them, with SLA clocks in each team's working
/// hours. Every flag can also be set by the environment variable shown.
#[derive(Debug, Parser)]
#[command(name = "aftersales-support", version)]
struct Cli {
    #[command(flatten)]
    config: aftersales_support::server::Config,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (region, log_json) = (cli.config.common.region.clone(), cli.config.common.log_json);
    let start = aftersales_support::server::start(cli.config);
    aftersales_runtime::service::main("support", &region, log_json, start).await
}
