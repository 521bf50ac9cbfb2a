//! The life of a service binary, the same for all four: telemetry first, the
//! signal handlers before start-up, the addresses printed (the first line is the
//! gRPC address, which tests and scripts read), then serve until SIGTERM or
//! Ctrl-C, stop cleanly and flush spans. Start-up errors are one line and exit 1.

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

use crate::shutdown::ShutdownTrigger;

/// A started service, as its binary sees it.
pub trait Running: Send {
    type Error: Display;

    /// What to print once started, first line `<name> gRPC on <address>`.
    fn banner(&self) -> Vec<String>;

    /// Stops taking work, drains and returns.
    fn stop(self) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Runs the service `name` until it is told to stop; the process's exit code.
pub async fn main<R, E, F>(name: &str, region: &str, log_json: bool, start: F) -> ExitCode
where
    R: Running,
    E: Display,
    F: Future<Output = Result<R, E>>,
{
    let telemetry = crate::telemetry::init(name, region, log_json);
    // Installed before start-up: a SIGTERM during it still stops cleanly.
    let terminate = crate::signal::terminate();
    let running = match start.await {
        Ok(running) => running,
        Err(error) => {
            eprintln!("aftersales-{name}: {error}");
            telemetry.shutdown();
            return ExitCode::FAILURE;
        }
    };
    for line in running.banner() {
        println!("{line}");
    }
    terminate.await;
    let stopped = running.stop().await;
    telemetry.shutdown();
    match stopped {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("aftersales-{name}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// A started service's work (its gRPC server and every loop beside it), stopped by
/// one trigger and awaited as one task.
#[derive(Debug)]
pub struct Background<E> {
    stop: ShutdownTrigger,
    task: tokio::task::JoinHandle<Result<(), E>>,
}

/// The background task itself failed: it panicked or was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("server task failed: {0}")]
pub struct TaskFailed(String);

impl<E: From<TaskFailed> + Send + 'static> Background<E> {
    pub fn spawn(
        stop: ShutdownTrigger,
        work: impl Future<Output = Result<(), E>> + Send + 'static,
    ) -> Self {
        Self {
            stop,
            task: tokio::spawn(work),
        }
    }

    /// Stops as on SIGTERM, and waits until everything has.
    pub async fn stop(self) -> Result<(), E> {
        self.stop.trigger();
        self.task
            .await
            .map_err(|e| E::from(TaskFailed(e.to_string())))?
    }
}
