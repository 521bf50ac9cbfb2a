//! The loops that make things happen on time: due notifications are sent (and
//! interrupted attempts settled), due reminders fired. Both read the log's read
//! models and act through the deciders, so several replicas can run them: the
//! expected-version append lets one win each step.

use std::time::Duration;

use aftersales_core::shutdown::Shutdown;
use aftersales_eventstore::{CommandContext, EventStore as _};

use crate::app::Notifications;

/// Sends and fires until `shutdown`, every `every` and whenever the log grows.
pub async fn run(app: Notifications, region: String, every: Duration, mut shutdown: Shutdown) {
    loop {
        let appended = app.store().appended().notified();
        match app
            .fire_due_reminders(&CommandContext::system(
                "system:reminders",
                &region,
                app.now(),
            ))
            .await
        {
            Ok(0) => {}
            Ok(fired) => tracing::info!(fired, "reminders fired"),
            Err(error) => tracing::warn!(%error, "reminder sweep failed; retrying"),
        }
        if let Err(error) = app
            .send_due(&CommandContext::system("system:sender", &region, app.now()))
            .await
        {
            tracing::warn!(%error, "send pass failed; retrying");
        }
        tokio::select! {
            () = appended => {
                // Let the read models take in what was appended.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            () = tokio::time::sleep(every) => {}
            () = shutdown.requested() => return,
        }
    }
}
