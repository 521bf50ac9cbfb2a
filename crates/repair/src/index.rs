//! Each device's orders, kept in the log itself.
//!
//! The audit must find every order of a device from the log, not from a read
//! model whose rows anyone with the database can delete. So a projection of the
//! log appends, for every order opened, an `OrderOpenedForDevice` to the device's
//! stream `device-orders-<device>`: hash-chained, append-only and with its head
//! published like any other stream. Each entry's id derives from its order's
//! opening event, so a rebuild or a replay appends nothing twice.

use aftersales_core::types::DeviceKey;
use aftersales_eventstore::{
    ExpectedVersion, Metadata, NewEvent, Projection, RecordedEvent, StoreError, StoreTransaction,
    StreamId,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::order::Event;

/// The prefix of the index streams (not `repair-`: they are not orders).
pub const PREFIX: &str = "device-orders-";

/// The one event type of an index stream.
pub const LINKED: &str = "OrderOpenedForDevice";

/// What an index entry says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Linked {
    pub order_id: String,
}

/// The stream listing `device`'s orders.
pub fn stream_of(device: &DeviceKey) -> Result<StreamId, StoreError> {
    StreamId::parse(format!("{PREFIX}{}", device.name()))
        .map_err(|e| StoreError::CorruptRow(e.to_string()))
}

/// Entries of one index stream are derived from the events they index.
const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2d7e_9a34_4b8f_a1d2_5e6f_7a8b_9c0d);

/// Appends the index entry of each order opened.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeviceOrderIndex;

impl Projection for DeviceOrderIndex {
    fn name(&self) -> &'static str {
        "repair-device-order-index"
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        if event.event_type != "RepairOrderOpened"
            || !event.stream_id.as_str().starts_with("repair-")
        {
            return Ok(());
        }
        let Event::RepairOrderOpened {
            order_id, device, ..
        } = event.decode::<Event>()?
        else {
            return Ok(());
        };
        let stream = stream_of(&device)?;
        let version = tx.read_stream(&stream, 1, usize::MAX).await?.len() as u64;
        let payload = serde_json::to_vec(&Linked { order_id })
            .map_err(|e| StoreError::CorruptRow(e.to_string()))?;
        let entry = NewEvent {
            event_id: Uuid::new_v5(&NAMESPACE, event.event_id.as_bytes()),
            event_type: LINKED.to_owned(),
            schema_version: 1,
            payload,
            personal: None,
            metadata: Metadata {
                correlation_id: event.metadata.correlation_id,
                causation_id: Some(event.event_id),
                traceparent: None,
                tracestate: None,
                actor: "system:repair-index".to_owned(),
                region: event.metadata.region.clone(),
                recorded_at: event.metadata.recorded_at,
            },
        };
        tx.append(&stream, ExpectedVersion::Exact(version), vec![entry])
            .await?;
        Ok(())
    }

    /// Nothing to empty: the index is the log's, and a rebuild appends no
    /// entry twice.
    async fn reset(&self, _tx: &mut StoreTransaction) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The order ids an index stream's events name, in the order they were opened
/// (each once).
pub fn orders_in(events: &[RecordedEvent]) -> Result<Vec<String>, StoreError> {
    let mut orders: Vec<String> = Vec::with_capacity(events.len());
    for event in events {
        let linked: Linked = serde_json::from_slice(&event.payload)
            .map_err(|e| StoreError::CorruptRow(format!("{}: {e}", event.stream_id)))?;
        if !orders.contains(&linked.order_id) {
            orders.push(linked.order_id);
        }
    }
    Ok(orders)
}
