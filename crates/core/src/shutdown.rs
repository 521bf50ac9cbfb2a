//! Telling a service's long-running parts (the gRPC server, relays, consumers,
//! sweeps) to stop: one trigger, any number of cloneable listeners.

use std::future::Future;

use tokio::sync::watch;

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
}
