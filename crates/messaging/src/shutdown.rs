//! Telling long-running loops (relay, consumers) to stop.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::consumer::RetryPolicy;
use crate::error::MessagingError;

/// A run that lasted this long was healthy: the next failure starts the backoff over.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// Fires every [`Shutdown`] made from it. Dropping it fires them too.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Cloneable; resolves [`Shutdown::requested`] once the trigger fires.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Self) {
        let (sender, receiver) = watch::channel(false);
        (ShutdownTrigger(sender), Self(receiver))
    }

    /// One that never fires.
    pub fn never() -> Self {
        let (sender, receiver) = watch::channel(false);
        std::mem::forget(sender);
        Self(receiver)
    }

    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until shutdown is requested (or the trigger is gone).
    pub async fn requested(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// A future of its own that resolves when shutdown is requested, for
    /// servers that take one.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut shutdown = self.clone();
        async move { shutdown.requested().await }
    }

    /// Runs `run` until it returns `Ok` or shutdown is requested. After each
    /// failure it logs, waits per `retry` (from the first delay again once a run
    /// was healthy for a while) and runs it again: loops that must not die, such
    /// as relays and consumers, resume from their checkpoints this way.
    pub(crate) async fn supervise<Fut>(
        mut self,
        what: &str,
        retry: &RetryPolicy,
        mut run: impl FnMut(Shutdown) -> Fut,
    ) where
        Fut: Future<Output = Result<(), MessagingError>>,
    {
        let mut failures = 0u64;
        while !self.is_requested() {
            let started = Instant::now();
            let Err(error) = run(self.clone()).await else {
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
                () = self.requested() => {}
            }
        }
    }
}
