//! Logging with `tracing`: filtered by `RUST_LOG` (default `info`), to stderr, as
//! text or as JSON lines.

/// Installs the process-wide subscriber. Call once, first thing in `main`.
pub fn init(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = if json {
        builder.json().with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
    if let Err(error) = installed {
        eprintln!("logging was set up already: {error}");
    }
}
