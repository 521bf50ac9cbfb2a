//! Read models of the notification log: the notifications (the in-app inbox and
//! the send queue) and the reminders waiting to fire. Rebuilt from the log with
//! `aftersales_eventstore::projection::rebuild`.

use aftersales_eventstore::projection::Histories;
use aftersales_eventstore::{
    AnyEventStore, Decider, EventStore as _, Projection, RecordedEvent, StoreError,
    StoreTransaction, on_connection,
};
use chrono::{DateTime, Utc};

use crate::domain::notification::Notification;
use crate::domain::preferences::CustomerPreferences;
use crate::domain::reminder::Reminder;

/// The read models' tables, one set for both backends.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Every read model of the notification log: what the service runs and an
/// operator rebuilds.
pub fn all(store: &AnyEventStore) -> aftersales_eventstore::Projections {
    vec![
        std::sync::Arc::new(Queues::new(store.clone())),
        std::sync::Arc::new(SignInAddresses::new(store.clone())),
    ]
}

/// The SHA-256 of a normalised sign-in address, hex: how the read model keeps it.
pub fn address_digest(normalized: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(normalized.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whose email or phone each address is, digested, for sign-in codes.
#[derive(Debug, Clone)]
pub struct SignInAddresses {
    store: AnyEventStore,
}

impl SignInAddresses {
    pub const NAME: &'static str = "notification-sign-in-addresses";

    pub fn new(store: AnyEventStore) -> Self {
        Self { store }
    }

    /// The customer's digests as of `event`.
    async fn write(
        &self,
        event: &RecordedEvent,
        histories: &Histories<'_>,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        if let Some(customer) = erased_customer(event) {
            drop_sign_in_digests(tx, customer).await?;
            return Ok(());
        }
        let Some(customer) = event.stream_id.as_str().strip_prefix("customer-") else {
            return Ok(());
        };
        let (preferences, _) = fold::<CustomerPreferences>(&histories.upto(event))?;
        let digests: Vec<String> = preferences
            .iter()
            .flat_map(|p| [&p.email, &p.phone])
            .filter(|a| !a.is_empty() && *a != aftersales_eventstore::personal::ERASED)
            .map(|a| address_digest(&aftersales_core::types::sign_in_address(a)))
            .collect();
        on_connection!(tx.connection(), c => {
            sqlx::query("DELETE FROM sign_in_addresses WHERE customer_id = $1")
                .bind(customer.to_owned())
                .execute(&mut *c)
                .await?;
            for digest in &digests {
                sqlx::query(
                    "INSERT INTO sign_in_addresses (address_digest, customer_id) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(digest.clone())
                .bind(customer.to_owned())
                .execute(&mut *c)
                .await?;
            }
        });
        Ok(())
    }
}

impl Projection for SignInAddresses {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        self.apply_batch(std::slice::from_ref(event), tx).await
    }

    async fn apply_batch(
        &self,
        events: &[RecordedEvent],
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        let latest: Vec<&RecordedEvent> = latest_states(events).collect();
        let folded = latest
            .iter()
            .copied()
            .filter(|e| e.stream_id.as_str().starts_with("customer-"));
        let histories = Histories::gather(&self.store, events, folded).await?;
        for event in latest {
            self.write(event, &histories, tx).await?;
        }
        Ok(())
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        tx.empty_tables(&["sign_in_addresses"]).await
    }
}

/// The stream and event by which a service records a customer's erasure as done
/// (after their keys are destroyed): each read model drops its copy on it, in
/// log order, so no copy made from before the erasure outlives it.
fn erased_customer(event: &RecordedEvent) -> Option<&str> {
    (event.event_type == "CustomerErased")
        .then(|| event.stream_id.as_str().strip_prefix("erasure-"))
        .flatten()
}

/// The events of a batch these read models write: each stream's last (a row
/// holds its stream's whole state, so the events before it would only be
/// overwritten) between erasures, and each erasure in its place, so nothing
/// written before an erasure is written after it.
fn latest_states(events: &[RecordedEvent]) -> impl Iterator<Item = &RecordedEvent> {
    events
        .split_inclusive(|event| erased_customer(event).is_some())
        .flat_map(aftersales_eventstore::projection::last_of_each_stream)
}

/// An erased customer's messages as the read model keeps them: the subject and
/// text read `[erased]`. Returns how many.
pub async fn blank_messages(tx: &mut StoreTransaction, customer: &str) -> Result<u64, StoreError> {
    Ok(on_connection!(tx.connection(), c => {
        sqlx::query("UPDATE notifications SET subject = $2, body = $2 WHERE customer_id = $1")
            .bind(customer.to_owned())
            .bind(aftersales_eventstore::personal::ERASED)
            .execute(c)
            .await?
            .rows_affected()
    }))
}

/// Forgets the digests an erased customer signed in by. Returns how many.
pub async fn drop_sign_in_digests(
    tx: &mut StoreTransaction,
    customer: &str,
) -> Result<u64, StoreError> {
    Ok(on_connection!(tx.connection(), c => {
        sqlx::query("DELETE FROM sign_in_addresses WHERE customer_id = $1")
            .bind(customer.to_owned())
            .execute(c)
            .await?
            .rows_affected()
    }))
}

/// How long the read models keep messages (the log keeps them sealed, erased
/// with their customer).
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub inbox_days: u32,
    pub sent_body_days: u32,
}

/// Removes in-app messages past `inbox_days` and blanks the bodies of emails and
/// SMS that went out more than `sent_body_days` before `now`. Returns (messages
/// removed, bodies blanked).
pub async fn forget_past_retention(
    store: &AnyEventStore,
    now: DateTime<Utc>,
    retention: Retention,
) -> Result<(u64, u64), StoreError> {
    let before = |days: u32| timestamp(now - chrono::Duration::days(i64::from(days)));
    let mut tx = store.begin().await?;
    let counts = on_connection!(tx.connection(), c => {
        let removed = sqlx::query(
            "DELETE FROM notifications WHERE channel = 'in_app' AND created_at < $1",
        )
        .bind(before(retention.inbox_days))
        .execute(&mut *c)
        .await?
        .rows_affected();
        let blanked = sqlx::query(
            "UPDATE notifications SET body = '' WHERE channel <> 'in_app' \
             AND status IN ('delivered', 'failed', 'unknown') AND body <> '' \
             AND created_at < $1",
        )
        .bind(before(retention.sent_body_days))
        .execute(&mut *c)
        .await?
        .rows_affected();
        (removed, blanked)
    });
    tx.commit().await?;
    Ok(counts)
}

/// How the read models write times: sortable as text.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A stream's state as of the last of `history` (its events from the first on),
/// and its first event's position.
fn fold<D: Decider>(history: &[&RecordedEvent]) -> Result<(D::State, u64), StoreError>
where
    D::Event: serde::de::DeserializeOwned,
{
    let mut state = D::initial_state();
    for r in history {
        let decoded: D::Event = r.decode()?;
        state = D::evolve(state, &decoded);
    }
    Ok((state, history.first().map_or(0, |r| r.position)))
}

/// The notifications and reminders.
#[derive(Debug, Clone)]
pub struct Queues {
    store: AnyEventStore,
}

impl Queues {
    pub fn new(store: AnyEventStore) -> Self {
        Self { store }
    }

    /// The row of `event`'s message or reminder as of `event`.
    async fn write(
        &self,
        event: &RecordedEvent,
        histories: &Histories<'_>,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        let stream = event.stream_id.as_str();
        if let Some(customer) = erased_customer(event) {
            blank_messages(tx, customer).await?;
        } else if let Some(id) = stream.strip_prefix("notification-") {
            let (state, seq) = fold::<Notification>(&histories.upto(event))?;
            let Some(n) = state else { return Ok(()) };
            let seq = i64::try_from(seq)
                .map_err(|_| StoreError::CorruptRow("position out of range".into()))?;
            let sql = "INSERT INTO notifications (notification_id, customer_id, channel, kind, \
                       topic, language, subject, body, urgent, status, next_attempt_at, lease_until, \
                       is_read, created_at, source_event_id, seq) VALUES \
                       ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
                       ON CONFLICT (notification_id) DO UPDATE SET status = excluded.status, \
                       next_attempt_at = excluded.next_attempt_at, lease_until = excluded.lease_until, \
                       is_read = excluded.is_read";
            let m = &n.message;
            on_connection!(tx.connection(), c => {
                sqlx::query(sql)
                    .bind(id.to_owned())
                    .bind(m.customer_id.clone())
                    .bind(m.channel.as_str())
                    .bind(m.kind.as_str())
                    .bind(m.topic.as_str())
                    .bind(m.language.clone())
                    .bind(m.subject.clone())
                    .bind(m.text.clone())
                    .bind(i32::from(m.urgent))
                    .bind(n.status.as_str())
                    .bind(n.next_attempt_at.map(timestamp))
                    .bind(n.lease_until.map(timestamp))
                    .bind(i32::from(n.read_at.is_some()))
                    .bind(timestamp(n.created_at))
                    .bind(m.source_event_id.clone())
                    .bind(seq)
                    .execute(c)
                    .await?;
            });
        } else if stream.starts_with("reminder-") {
            let (state, _) = fold::<Reminder>(&histories.upto(event))?;
            let Some(r) = state else { return Ok(()) };
            let sql = "INSERT INTO reminders (reminder_id, kind, customer_id, due_at, status) \
                       VALUES ($1, $2, $3, $4, $5) ON CONFLICT (reminder_id) DO UPDATE SET \
                       kind = excluded.kind, customer_id = excluded.customer_id, \
                       due_at = excluded.due_at, status = excluded.status";
            on_connection!(tx.connection(), c => {
                sqlx::query(sql)
                    .bind(stream.to_owned())
                    .bind(r.kind.as_str())
                    .bind(r.customer_id.clone())
                    .bind(timestamp(r.due_at))
                    .bind(r.status.as_str())
                    .execute(c)
                    .await?;
            });
        }
        Ok(())
    }
}

impl Projection for Queues {
    fn name(&self) -> &'static str {
        "notification-queues"
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        self.apply_batch(std::slice::from_ref(event), tx).await
    }

    async fn apply_batch(
        &self,
        events: &[RecordedEvent],
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        let latest: Vec<&RecordedEvent> = latest_states(events).collect();
        let folded = latest.iter().copied().filter(|e| {
            let stream = e.stream_id.as_str();
            stream.starts_with("notification-") || stream.starts_with("reminder-")
        });
        let histories = Histories::gather(&self.store, events, folded).await?;
        for event in latest {
            self.write(event, &histories, tx).await?;
        }
        Ok(())
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        tx.empty_tables(&["notifications", "reminders"]).await
    }
}

#[cfg(test)]
mod tests {
    use aftersales_eventstore::testing::recorded;

    use super::*;

    /// A batch writes each notification once, as of its last event, except that
    /// what came before an erasure is written before the erasure blanks it.
    #[test]
    fn a_batch_writes_each_stream_once_between_erasures() {
        let log = [
            recorded("notification-1", 1, "NotificationRequested"),
            recorded("notification-1", 2, "AttemptStarted"),
            recorded("notification-2", 1, "NotificationRequested"),
            recorded("erasure-c-1", 1, "CustomerErased"),
            recorded("notification-1", 3, "PlacedInInbox"),
            recorded("notification-3", 1, "NotificationRequested"),
            recorded("notification-3", 2, "PlacedInInbox"),
        ];
        let written: Vec<(&str, u64)> = latest_states(&log)
            .map(|e| (e.stream_id.as_str(), e.stream_version))
            .collect();
        assert_eq!(
            written,
            [
                ("notification-1", 2),
                ("notification-2", 1),
                ("erasure-c-1", 1),
                ("notification-1", 3),
                ("notification-3", 2),
            ]
        );
    }
}
