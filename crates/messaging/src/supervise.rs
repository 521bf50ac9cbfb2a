//! Keeping loops that must not die (relays, consumers) running: after a failure
//! they log, back off and resume from their checkpoints until told to stop.

use std::future::Future;
use std::time::Duration;

use aftersales_core::Shutdown;
use tokio::time::Instant;

use crate::consumer::RetryPolicy;
use crate::error::MessagingError;

/// A run that lasted this long was healthy: the next failure starts the backoff over.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// Runs `run` until it returns `Ok` or shutdown is requested. After each
/// failure it logs, waits per `retry` (from the first delay again once a run
/// was healthy for a while) and runs it again: loops that must not die, such
/// as relays and consumers, resume from their checkpoints this way.
pub(crate) async fn supervise<Fut>(
    mut shutdown: Shutdown,
    what: &str,
    retry: &RetryPolicy,
    mut run: impl FnMut(Shutdown) -> Fut,
) where
    Fut: Future<Output = Result<(), MessagingError>>,
{
    let mut failures = 0u64;
    while !shutdown.is_requested() {
        let started = Instant::now();
        let Err(error) = run(shutdown.clone()).await else {
            return;
        };
        if started.elapsed() >= HEALTHY_RUN {
            failures = 0;
        }
        failures += 1;
        let delay = retry.delay(failures);
        tracing::warn!(%error, ?delay, what, "interrupted; resuming from the checkpoint");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.requested() => {}
        }
    }
}
