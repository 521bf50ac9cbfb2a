//! Repair's events as the consumer applies them: several in one transaction,
//! each seeing what the earlier ones wrote.

use aftersales_eventstore::{EventStore as _, Metadata, StreamId};
use aftersales_logistics::app::{Logistics, builtin_carriers};
use aftersales_logistics::domain::depots::Depots;
use aftersales_logistics::reactions::RepairReactions;
use aftersales_messaging::{Handler as _, InboundEvent};
use aftersales_proto::logistics as pb;
use aftersales_proto::repair as rpb;
use prost::Name;
use uuid::Uuid;

use crate::Server;

/// An event as repair's relay would deliver it.
fn delivered<M: Name>(message: &M) -> InboundEvent {
    let event_id = Uuid::now_v7();
    InboundEvent {
        source: "repair".into(),
        event_id,
        event_type: M::NAME.into(),
        schema_version: 1,
        stream_id: StreamId::parse(format!("repair-{event_id}")).unwrap(),
        stream_version: 1,
        position: 1,
        payload: message.encode_to_vec(),
        content_type: aftersales_messaging::envelope::protobuf(&M::full_name()),
        metadata: Metadata {
            correlation_id: event_id,
            causation_id: None,
            traceparent: None,
            tracestate: None,
            actor: "service:repair".into(),
            region: "test".into(),
            recorded_at: crate::now(),
        },
    }
}

/// A batch that opens a walk-in order and then checks its device in and out:
/// the steps find the order through the batch's transaction, not committed yet,
/// instead of failing to be retried after a delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_find_the_order_opened_earlier_in_their_batch() {
    let server = Server::start().await;
    let store = server.running.store.clone();
    let app = Logistics::new(
        store.clone(),
        builtin_carriers(10).unwrap(),
        Depots::builtin().unwrap(),
        aftersales_core::SystemClock::shared(),
    );
    let reactions = RepairReactions::new(app, "test");
    let order_id = Uuid::now_v7().to_string();
    let opened = rpb::RepairOrderOpened {
        order_id: order_id.clone(),
        customer_id: "cust-batch".into(),
        channel: rpb::Channel::WalkIn.into(),
        service_center_id: "sc-berlin-01".into(),
        ..Default::default()
    };
    let checked_in = rpb::DeviceCheckedIn {
        order_id: order_id.clone(),
        ..Default::default()
    };
    let collected = rpb::DeviceCollected {
        order_id: order_id.clone(),
    };

    let mut tx = store.begin().await.unwrap();
    reactions
        .handle(&delivered(&opened), &mut tx)
        .await
        .unwrap();
    reactions
        .handle(&delivered(&checked_in), &mut tx)
        .await
        .unwrap();
    reactions
        .handle(&delivered(&collected), &mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let steps = server
        .client
        .clone()
        .get_custody_timeline(pb::CustodyRequest {
            repair_order_id: order_id,
        })
        .await
        .unwrap()
        .into_inner()
        .steps;
    let holders: Vec<_> = steps.iter().map(|s| s.holder.as_str()).collect();
    assert_eq!(
        holders,
        ["customer", "service_center:sc-berlin-01", "customer"]
    );
}
