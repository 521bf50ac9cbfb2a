//! Read models of the logistics log: shipments by repair order and by how long
//! they have been silent, and the tracking-number index. Rebuilt from the log with
//! `aftersales_eventstore::projection::rebuild`.

use aftersales_eventstore::projection::{Histories, last_of_each_stream};
use aftersales_eventstore::{
    AnyEventStore, Decider as _, Projection, RecordedEvent, StoreError, StoreTransaction,
    on_connection,
};
use chrono::{DateTime, Utc};

use crate::app::Logistics;
use crate::carrier::sandbox;
use crate::domain::shipment::{Direction, Event, Shipment};

/// The read models' tables, one set for both backends.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Every rebuildable read model of the logistics log: what the service runs and an
/// operator rebuilds. (Sandbox autoplay follows the log too, but acts rather than
/// records, so it is started on its own and never rebuilt.)
pub fn all(store: &AnyEventStore) -> aftersales_eventstore::Projections {
    vec![std::sync::Arc::new(ShipmentDirectory::new(store.clone()))]
}

/// How the read models write times: sortable as text.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Shipments and tracking numbers.
#[derive(Debug, Clone)]
pub struct ShipmentDirectory {
    store: AnyEventStore,
}

impl ShipmentDirectory {
    pub fn new(store: AnyEventStore) -> Self {
        Self { store }
    }
}

impl Projection for ShipmentDirectory {
    fn name(&self) -> &'static str {
        "logistics-shipments"
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        self.apply_batch(std::slice::from_ref(event), tx).await
    }

    /// A row holds its shipment's whole state: each stream's newest event of the
    /// batch is all that is written.
    async fn apply_batch(
        &self,
        events: &[RecordedEvent],
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        let shipments: Vec<&RecordedEvent> = last_of_each_stream(events)
            .into_iter()
            .filter(|e| e.stream_id.as_str().starts_with("shipment-"))
            .collect();
        let histories = Histories::gather(&self.store, events, shipments.iter().copied()).await?;
        for event in shipments {
            self.write(&histories.upto(event), tx).await?;
        }
        Ok(())
    }

    /// The tracking-number index stays: it is written with each label, and
    /// webhooks keep finding their shipments during a rebuild.
    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        tx.empty_tables(&["shipments"]).await
    }
}

impl ShipmentDirectory {
    /// The shipment's row as of the last of `recorded`, its stream from the first
    /// event on.
    async fn write(
        &self,
        recorded: &[&RecordedEvent],
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        let mut events = Vec::with_capacity(recorded.len());
        for r in recorded {
            events.push(r.decode::<Event>()?);
        }
        let (Some(state), Some(first)) = (Shipment::fold(&events), recorded.first()) else {
            return Ok(());
        };
        let info = &state.info;
        let tracking_number = state
            .label
            .as_ref()
            .map(|l| l.tracking_number.clone())
            .unwrap_or_default();
        let last_activity = state.last_activity().unwrap_or(first.metadata.recorded_at);
        let sql = "INSERT INTO shipments (shipment_id, direction, repair_order_id, \
                   accessory_replacement_id, carrier, tracking_number, status, active, stalled, \
                   last_activity_at, created_at, customer_id) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                   ON CONFLICT (shipment_id) DO UPDATE SET tracking_number = excluded.tracking_number, \
                   status = excluded.status, active = excluded.active, stalled = excluded.stalled, \
                   last_activity_at = excluded.last_activity_at";
        let index = "INSERT INTO tracking_numbers (carrier, tracking_number, shipment_id, issued_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
        on_connection!(tx.connection(), c => {
            sqlx::query(sql)
                .bind(info.shipment_id.clone())
                .bind(match info.direction {
                    Direction::Inbound => "inbound",
                    Direction::Outbound => "outbound",
                })
                .bind(info.purpose.repair_order().map(str::to_owned))
                .bind(info.purpose.accessory_replacement().map(str::to_owned))
                .bind(info.carrier.clone())
                .bind(tracking_number.clone())
                .bind(state.tracking.status().map_or("label_issued", |s| s.as_str()))
                .bind(i32::from(state.is_active()))
                .bind(i32::from(state.is_stalled()))
                .bind(timestamp(last_activity))
                .bind(timestamp(first.metadata.recorded_at))
                .bind(info.customer_id.clone())
                .execute(&mut *c)
                .await?;
            if let (Some(issued), false) = (state.label_issued_at, tracking_number.is_empty()) {
                sqlx::query(index)
                    .bind(info.carrier.clone())
                    .bind(tracking_number)
                    .bind(info.shipment_id.clone())
                    .bind(timestamp(issued))
                    .execute(c)
                    .await?;
            }
        });
        Ok(())
    }
}

/// Plays a sandbox script on every new sandbox parcel. A follower of the log
/// rather than a table: replaying it after a crash plays the same carrier events
/// again, which the shipment ignores as duplicates.
#[derive(Debug, Clone)]
pub struct SandboxAutoplay {
    app: Logistics,
    script: String,
    step_millis: u32,
}

impl SandboxAutoplay {
    pub fn new(app: Logistics, script: String, step_millis: u32) -> Self {
        Self {
            app,
            script,
            step_millis,
        }
    }
}

impl Projection for SandboxAutoplay {
    fn name(&self) -> &'static str {
        "logistics-sandbox-autoplay"
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        _tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        if event.event_type != "LabelIssued" {
            return Ok(());
        }
        let Ok(Event::LabelIssued { parcel, .. }) = event.decode() else {
            return Ok(());
        };
        if parcel.carrier != sandbox::NAME {
            return Ok(());
        }
        // Only a shipment that exists in the log is played, so it is committed.
        let view = match self.app.shipment(&parcel.shipment_id).await {
            Ok(view) => view,
            Err(error) => return Err(StoreError::CorruptRow(error.to_string())),
        };
        let ctx = aftersales_eventstore::CommandContext {
            command_id: None,
            correlation_id: event.metadata.correlation_id,
            causation_id: Some(event.event_id),
            traceparent: event.metadata.traceparent.clone(),
            tracestate: event.metadata.tracestate.clone(),
            actor: format!("carrier:{}", sandbox::NAME),
            region: event.metadata.region.clone(),
            now: event.metadata.recorded_at,
            request_fingerprint: None,
        };
        if let Err(error) = self
            .app
            .play_sandbox(&view, &self.script, self.step_millis, ctx)
        {
            tracing::warn!(%error, shipment_id = %parcel.shipment_id, "sandbox autoplay refused");
        }
        Ok(())
    }

    async fn reset(&self, _tx: &mut StoreTransaction) -> Result<(), StoreError> {
        Ok(())
    }
}
