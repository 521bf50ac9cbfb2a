//! `aftersales-notification`: the notification service binary.

use std::process::ExitCode;

use clap::Parser;

/// The notification service: customers told at every step, in their language,
/// within their preferences. Every flag can also be set by the environment
/// variable shown.
#[derive(Debug, Parser)]
#[command(name = "aftersales-notification", version)]
struct Cli {
    #[command(flatten)]
    config: aftersales_notification::server::Config,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (region, log_json) = (cli.config.common.region.clone(), cli.config.common.log_json);
    let start = aftersales_notification::server::start(cli.config);
    aftersales_runtime::service::main("notification", &region, log_json, start).await
}
