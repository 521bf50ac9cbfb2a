//! `aftersales-parts`: the parts service binary.

use std::process::ExitCode;

use clap::Parser;

/// The parts service: the catalog, each country's repair price list, and stock
/// with reservations per service center and depot. Every flag can also be set by
/// the environment variable shown.
#[derive(Debug, Parser)]
#[command(name = "aftersales-parts", version)]
struct Cli {
    #[command(flatten)]
    config: aftersales_parts::server::Config,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (region, log_json) = (cli.config.common.region.clone(), cli.config.common.log_json);
    let start = aftersales_parts::server::start(cli.config);
    aftersales_runtime::service::main("parts", &region, log_json, start).await
}
