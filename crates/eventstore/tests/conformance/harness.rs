//! Backends for the suite, and raw SQL access for tamper tests.

use aftersales_eventstore::{AnyEventStore, CommandContext, Metadata, NewEvent, StreamId};
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

pub struct Backend {
    pub store: AnyEventStore,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    pub async fn postgres() -> Self {
        let url = tokio::task::spawn_blocking(|| {
            aftersales_testkit::shared_postgres()
                .create_database()
                .unwrap()
        })
        .await
        .unwrap();
        Self {
            store: AnyEventStore::connect(&url).await.unwrap(),
            url,
            _dir: None,
        }
    }

    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("events.db").display());
        Self {
            store: AnyEventStore::connect(&url).await.unwrap(),
            url,
            _dir: Some(dir),
        }
    }

    /// Another store on the same database, as another process would open it.
    pub async fn another_process(&self) -> AnyEventStore {
        AnyEventStore::connect(&self.url).await.unwrap()
    }

    /// Runs raw SQL, bypassing the store: what a malicious or careless operator does.
    pub async fn exec(&self, sql: &str) {
        self.try_exec(sql).await.unwrap();
    }

    /// Like [`Backend::exec`], returning the error instead of panicking.
    pub async fn try_exec(&self, sql: &str) -> Result<(), sqlx::Error> {
        let sql = AssertSqlSafe(sql.to_owned());
        match &self.store {
            AnyEventStore::Postgres(s) => sqlx::raw_sql(sql).execute(s.pool()).await.map(drop),
            AnyEventStore::Sqlite(s) => sqlx::raw_sql(sql).execute(s.writer()).await.map(drop),
        }
    }

    /// Removes the append-only guard, as the table's owner could.
    pub async fn disable_guard(&self) {
        match &self.store {
            AnyEventStore::Postgres(_) => {
                self.exec("ALTER TABLE events DISABLE TRIGGER USER").await
            }
            AnyEventStore::Sqlite(_) => {
                self.exec("DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete")
                    .await;
            }
        }
    }

    pub async fn count(&self) -> i64 {
        let sql = "SELECT COUNT(*) FROM events";
        match &self.store {
            AnyEventStore::Postgres(s) => {
                sqlx::query_scalar(sql).fetch_one(s.pool()).await.unwrap()
            }
            AnyEventStore::Sqlite(s) => {
                sqlx::query_scalar(sql).fetch_one(s.writer()).await.unwrap()
            }
        }
    }
}

/// A fixed time with nanoseconds, to check they are truncated consistently.
pub fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000 + seconds, 123_456_789).unwrap()
}

pub fn metadata(seconds: i64) -> Metadata {
    Metadata {
        correlation_id: Uuid::now_v7(),
        causation_id: Some(Uuid::now_v7()),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        tracestate: Some("vendor=x".into()),
        actor: "staff:tech-7".into(),
        region: "eu-central".into(),
        recorded_at: at(seconds),
    }
}

pub fn event(kind: &str, body: &str) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: kind.into(),
        schema_version: 1,
        payload: body.as_bytes().to_vec(),
        personal: None,
        metadata: metadata(0),
    }
}

pub fn events(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| event("Noted", &format!("{{\"n\":{i}}}")))
        .collect()
}

pub fn stream(name: &str) -> StreamId {
    StreamId::parse(format!("{name}-{}", Uuid::now_v7().simple())).unwrap()
}

pub fn ctx(seconds: i64) -> CommandContext {
    let m = metadata(seconds);
    CommandContext {
        command_id: None,
        correlation_id: m.correlation_id,
        causation_id: None,
        traceparent: m.traceparent,
        tracestate: None,
        actor: m.actor,
        region: m.region,
        now: m.recorded_at,
        request_fingerprint: None,
    }
}
