//! The inbox (which events a consumer has handled) and, for embedded mode, the
//! dead-letter table. Both live in the consumer's own database and are written in
//! the transaction that carries the handler's effects.

use aftersales_eventstore::{EventStore, StoreError, StoreTransaction, TransactionConnection};
use chrono::{DateTime, Utc};
use sqlx::Row as _;
use uuid::Uuid;

#[allow(clippy::disallowed_methods)] // bookkeeping time, not a domain decision
fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Records that `consumer` handled `event_id`. `false` if it had already: the
/// caller then applies nothing. On PostgreSQL a concurrent delivery of the same
/// event waits here until the first one commits or rolls back.
pub(crate) async fn record_handled(
    tx: &mut StoreTransaction,
    consumer: &str,
    event_id: Uuid,
) -> Result<bool, StoreError> {
    let inserted = match tx.connection() {
        TransactionConnection::Postgres(conn) => sqlx::query(
            "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(consumer)
        .bind(event_id)
        .execute(conn)
        .await
        .map_err(StoreError::from)?
        .rows_affected(),
        TransactionConnection::Sqlite(conn) => sqlx::query(
            "INSERT INTO inbox (consumer, event_id, handled_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(consumer.to_owned())
        .bind(event_id)
        .bind(now().timestamp_micros())
        .execute(conn)
        .await
        .map_err(StoreError::from)?
        .rows_affected(),
    };
    Ok(inserted == 1)
}

/// An event an embedded-mode consumer gave up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDeadLetter {
    pub id: i64,
    pub consumer: String,
    pub source: String,
    pub event_id: Uuid,
    pub event_type: String,
    /// Position in the source's log.
    pub position: u64,
    pub attempts: u32,
    pub error: String,
    pub failed_at: DateTime<Utc>,
}

pub(crate) async fn record_dead_letter(
    tx: &mut StoreTransaction,
    letter: &StoredDeadLetter,
) -> Result<(), StoreError> {
    let position = i64::try_from(letter.position)
        .map_err(|_| StoreError::CorruptRow("position out of range".into()))?;
    let attempts = i32::try_from(letter.attempts).unwrap_or(i32::MAX);
    match tx.connection() {
        TransactionConnection::Postgres(conn) => {
            sqlx::query(
                "INSERT INTO dead_letters (consumer, source, event_id, event_type, position, \
                 attempts, error, failed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&letter.consumer)
            .bind(&letter.source)
            .bind(letter.event_id)
            .bind(&letter.event_type)
            .bind(position)
            .bind(attempts)
            .bind(&letter.error)
            .bind(letter.failed_at)
            .execute(conn)
            .await?;
        }
        TransactionConnection::Sqlite(conn) => {
            sqlx::query(
                "INSERT INTO dead_letters (consumer, source, event_id, event_type, position, \
                 attempts, error, failed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .bind(letter.consumer.clone())
            .bind(letter.source.clone())
            .bind(letter.event_id)
            .bind(letter.event_type.clone())
            .bind(position)
            .bind(attempts)
            .bind(letter.error.clone())
            .bind(letter.failed_at.timestamp_micros())
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

pub(crate) async fn resolve_dead_letter(
    tx: &mut StoreTransaction,
    id: i64,
) -> Result<(), StoreError> {
    match tx.connection() {
        TransactionConnection::Postgres(conn) => {
            sqlx::query("UPDATE dead_letters SET resolved_at = now() WHERE id = $1")
                .bind(id)
                .execute(conn)
                .await?;
        }
        TransactionConnection::Sqlite(conn) => {
            sqlx::query("UPDATE dead_letters SET resolved_at = ?2 WHERE id = ?1")
                .bind(id)
                .bind(now().timestamp_micros())
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

/// The dead letters of `consumer` not yet replayed, oldest first.
pub async fn open_dead_letters<S: EventStore>(
    store: &S,
    consumer: &str,
) -> Result<Vec<StoredDeadLetter>, StoreError> {
    let mut tx = store.begin().await?;
    let rows = match tx.connection() {
        TransactionConnection::Postgres(conn) => sqlx::query(
            "SELECT id, consumer, source, event_id, event_type, position, attempts, error, \
             failed_at FROM dead_letters WHERE consumer = $1 AND resolved_at IS NULL ORDER BY id",
        )
        .bind(consumer)
        .fetch_all(conn)
        .await?
        .iter()
        .map(|row| {
            Ok(StoredDeadLetter {
                id: row.try_get("id")?,
                consumer: row.try_get("consumer")?,
                source: row.try_get("source")?,
                event_id: row.try_get("event_id")?,
                event_type: row.try_get("event_type")?,
                position: unsigned(row.try_get("position")?)?,
                attempts: unsigned(row.try_get::<i32, _>("attempts")?.into())?
                    .try_into()
                    .unwrap_or(u32::MAX),
                error: row.try_get("error")?,
                failed_at: row.try_get("failed_at")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?,
        TransactionConnection::Sqlite(conn) => sqlx::query(
            "SELECT id, consumer, source, event_id, event_type, position, attempts, error, \
             failed_at FROM dead_letters WHERE consumer = ?1 AND resolved_at IS NULL ORDER BY id",
        )
        .bind(consumer.to_owned())
        .fetch_all(conn)
        .await?
        .iter()
        .map(|row| {
            let micros: i64 = row.try_get("failed_at")?;
            Ok(StoredDeadLetter {
                id: row.try_get("id")?,
                consumer: row.try_get("consumer")?,
                source: row.try_get("source")?,
                event_id: row.try_get("event_id")?,
                event_type: row.try_get("event_type")?,
                position: unsigned(row.try_get("position")?)?,
                attempts: unsigned(row.try_get("attempts")?)?
                    .try_into()
                    .unwrap_or(u32::MAX),
                error: row.try_get("error")?,
                failed_at: DateTime::from_timestamp_micros(micros).ok_or_else(|| {
                    StoreError::CorruptRow(format!("failed_at {micros} out of range"))
                })?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?,
    };
    tx.rollback().await?;
    Ok(rows)
}

fn unsigned(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::CorruptRow(format!("negative value {value}")))
}
