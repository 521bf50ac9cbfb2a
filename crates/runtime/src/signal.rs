//! Termination requests from the operating system.

use std::future::Future;

/// Resolves on SIGTERM (what Kubernetes and systemd send) or Ctrl-C (SIGINT).
///
/// The handlers are installed when this is called, not when it is first polled:
/// call it before starting up, and a signal during start-up still stops the
/// process cleanly instead of killing it.
pub fn terminate() -> impl Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {}
                () = wait(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
