//! Shipments, labels, scans and refusals over gRPC.

use std::time::Duration;

use aftersales_eventstore::projection;
use aftersales_logistics::projections::ShipmentDirectory;
use aftersales_proto::logistics as pb;
use aftersales_testkit::{eventually, shared_postgres};
use pb::TrackingStatus as S;
use tonic::Code;

use crate::{Server, config, new_shipment, now, scan};

fn code<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> (Code, String) {
    let s = r.unwrap_err();
    (s.code(), s.message().to_owned())
}

/// Reads a Code 128 barcode back from the label's bars.
fn decode_barcode(svg: &str) -> String {
    let mut bars: Vec<(u32, u8)> = Vec::new();
    for part in svg.split("data-x=\"").skip(1) {
        let x = part.split('"').next().unwrap().parse().unwrap();
        let w = part
            .split("data-w=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        bars.push((x, w));
    }
    let bars: Vec<code128::Bar> = bars
        .iter()
        .enumerate()
        .map(|(i, &(x, width))| code128::Bar {
            width,
            space: bars.get(i + 1).map_or(0, |&(next, _)| {
                u8::try_from(next - x - u32::from(width)).unwrap()
            }),
        })
        .collect();
    code128::decode_str(&bars).unwrap()
}

#[tokio::test]
async fn a_shipment_gets_a_label_and_its_scans_in_the_order_they_happened() {
    let mut s = Server::start().await;
    let created = s
        .client
        .create_shipment(new_shipment("order-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.state, i32::from(pb::ShipmentState::Active));
    assert_eq!(created.carrier, "sandbox");
    assert!(created.tracking_number.starts_with("SB"));
    let id = created.shipment_id.clone();

    let label = s
        .client
        .get_label(pb::ShipmentRef {
            shipment_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(label.content_type, "image/svg+xml");
    let document = String::from_utf8(label.document).unwrap();
    assert!(document.contains("Ana Weber") && document.contains("Repair Depot"));
    assert_eq!(decode_barcode(&document), created.tracking_number);

    // Out of order, a duplicate, and a late in-transit after delivery.
    let t0 = now() - chrono::Duration::hours(5);
    let at = |h: i64| t0 + chrono::Duration::hours(h);
    let tn = created.tracking_number.clone();
    for (id_, status, hour) in [
        ("e2", S::InTransit, 1),
        ("e1", S::PreTransit, 0),
        ("e4", S::Delivered, 3),
        ("e3", S::OutForDelivery, 2),
        ("e5", S::InTransit, 4),
    ] {
        s.client
            .record_tracking_event(scan(&tn, id_, status, at(hour)))
            .await
            .unwrap();
    }
    let again = s
        .client
        .record_tracking_event(scan(&tn, "e4", S::Delivered, at(3)))
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(again.status, i32::from(S::Delivered));
    assert_eq!(again.shipment_id, id);

    let timeline = s
        .client
        .get_tracking_timeline(pb::ShipmentRef {
            shipment_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = timeline
        .scans
        .iter()
        .map(|s| s.carrier_event_id.as_str())
        .collect();
    assert_eq!(ids, ["e1", "e2", "e3", "e4", "e5"]);
    assert_eq!(
        timeline.status,
        i32::from(S::Delivered),
        "a late in_transit does not undo delivery"
    );

    let shipment = s
        .client
        .get_shipment(pb::ShipmentRef {
            shipment_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(shipment.state, i32::from(pb::ShipmentState::Delivered));
    assert_eq!(shipment.scans, 5);

    // Exactly one Delivered in the log, whatever arrived twice.
    let aftersales_eventstore::AnyEventStore::Postgres(pg) = &s.running.store else {
        panic!()
    };
    let delivered: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM events WHERE stream_id = $1 AND event_type = 'Delivered'",
    )
    .bind(format!("shipment-{id}"))
    .fetch_one(pg.pool())
    .await
    .unwrap();
    assert_eq!(delivered, 1);

    // Listed by repair order once the read model catches up, and rebuilt the same.
    let listed = eventually(
        || {
            let mut c = s.client.clone();
            async move {
                c.list_shipments_by_repair(pb::ListShipmentsByRepairRequest {
                    repair_order_id: "order-1".into(),
                })
                .await
                .unwrap()
                .into_inner()
                .shipments
            }
        },
        |l| l.len() == 1 && l[0].status == i32::from(S::Delivered),
    )
    .await;
    assert_eq!(listed.len(), 1);
    let rows = || async {
        sqlx::query_as::<_, (String, String, i32, String)>(
            "SELECT shipment_id, status, active, tracking_number FROM shipments ORDER BY shipment_id",
        )
        .fetch_all(pg.pool())
        .await
        .unwrap()
    };
    // The read model catches up on its own schedule; compare once it has.
    let before = eventually(rows, |r| r.len() == 1 && r[0].1 == "delivered").await;
    let directory = ShipmentDirectory::new(s.running.store.clone());
    projection::rebuild(&s.running.store, &directory, |_| {})
        .await
        .unwrap();
    assert_eq!(rows().await, before);
    assert_eq!(before[0].2, 0, "delivered is no longer active");
    s.running.stop().await.unwrap();
}

#[tokio::test]
async fn bad_requests_are_refused_clearly_and_store_nothing() {
    let mut s = Server::start().await;
    let created = s
        .client
        .create_shipment(new_shipment("order-2"))
        .await
        .unwrap()
        .into_inner();
    let before = s.events().await;

    let mut no_direction = new_shipment("order-2");
    no_direction.direction = 0;
    let mut both = new_shipment("order-2");
    both.accessory_replacement_id = "acc-1".into();
    let mut bad_country = new_shipment("order-2");
    bad_country
        .to
        .as_mut()
        .unwrap()
        .country
        .as_mut()
        .unwrap()
        .value = "Germany".into();
    let mut no_lines = new_shipment("order-2");
    no_lines.from.as_mut().unwrap().lines.clear();
    let mut heavy = new_shipment("order-2");
    heavy.parcel.as_mut().unwrap().weight_grams = 90_000;
    let mut carrier = new_shipment("order-2");
    carrier.carrier = "pigeon".into();
    for (request, field) in [
        (no_direction, "direction"),
        (both, "repair_order_id"),
        (bad_country, "to"),
        (no_lines, "from"),
        (heavy, "parcel.weight_grams"),
        (carrier, "carrier"),
    ] {
        let (c, message) = code(s.client.create_shipment(request).await);
        assert_eq!(c, Code::InvalidArgument, "{message}");
        assert!(message.starts_with(field), "{field}: {message}");
    }

    let tn = created.tracking_number.clone();
    let (c, m) = code(
        s.client
            .record_tracking_event(scan("SB000000000000", "x1", S::InTransit, now()))
            .await,
    );
    assert_eq!(
        (c, m.contains("tracking number")),
        (Code::NotFound, true),
        "{m}"
    );
    let mut unspecified = scan(&tn, "x2", S::InTransit, now());
    unspecified.status = 0;
    assert_eq!(
        code(s.client.record_tracking_event(unspecified).await).0,
        Code::InvalidArgument
    );
    let future = scan(&tn, "x3", S::InTransit, now() + chrono::Duration::days(2));
    let (c, m) = code(s.client.record_tracking_event(future).await);
    assert_eq!(
        (c, m.starts_with("occurred_at")),
        (Code::InvalidArgument, true),
        "{m}"
    );
    let mut no_time = scan(&tn, "x4", S::InTransit, now());
    no_time.occurred_at = None;
    assert_eq!(
        code(s.client.record_tracking_event(no_time).await).0,
        Code::InvalidArgument
    );
    let mut no_id = scan(&tn, "", S::InTransit, now());
    no_id.carrier_event_id = " ".into();
    assert_eq!(
        code(s.client.record_tracking_event(no_id).await).0,
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            s.client
                .get_shipment(pb::ShipmentRef {
                    shipment_id: "nope".into()
                })
                .await
        )
        .0,
        Code::NotFound
    );
    let (c, m) = code(
        s.client
            .play_sandbox_script(pb::PlaySandboxScriptRequest {
                shipment_id: created.shipment_id.clone(),
                script: "teleport".into(),
                step_millis: 0,
            })
            .await,
    );
    assert_eq!(
        (c, m.starts_with("script")),
        (Code::InvalidArgument, true),
        "{m}"
    );
    assert_eq!(s.events().await, before, "nothing refused was stored");

    // Cancelling: refused once the carrier has the parcel, idempotent before.
    let other = s
        .client
        .create_shipment(new_shipment("order-3"))
        .await
        .unwrap()
        .into_inner();
    let cancel = |id: &str| pb::CancelShipmentRequest {
        shipment_id: id.into(),
        reason: "order cancelled".into(),
    };
    let cancelled = s
        .client
        .cancel_shipment(cancel(&other.shipment_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.state, i32::from(pb::ShipmentState::Cancelled));
    let version = cancelled.version;
    let again = s
        .client
        .cancel_shipment(cancel(&other.shipment_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.version, version, "cancelling twice writes nothing");
    let (c, m) = code(
        s.client
            .record_tracking_event(scan(&other.tracking_number, "late", S::InTransit, now()))
            .await,
    );
    assert_eq!(
        (c, m.contains("cancelled")),
        (Code::FailedPrecondition, true),
        "{m}"
    );
    s.client
        .record_tracking_event(scan(&tn, "picked", S::InTransit, now()))
        .await
        .unwrap();
    let (c, m) = code(s.client.cancel_shipment(cancel(&created.shipment_id)).await);
    assert_eq!(
        (c, m.contains("in_transit")),
        (Code::FailedPrecondition, true),
        "{m}"
    );
    s.running.stop().await.unwrap();
}

#[tokio::test]
async fn a_reused_tracking_number_is_not_confused_with_an_old_shipment() {
    let mut cfg = config(shared_postgres().create_database().unwrap());
    cfg.sandbox_tracking_digits = 1; // ten numbers: reuse is certain within 11 parcels
    let mut s = Server::start_with(cfg).await;
    let mut seen: Vec<(String, String, chrono::DateTime<chrono::Utc>)> = Vec::new();
    let (old, old_between, new) = loop {
        let created = s
            .client
            .create_shipment(new_shipment(&format!("order-{}", seen.len())))
            .await
            .unwrap()
            .into_inner();
        let after = now();
        if let Some((old, _, between)) = seen
            .iter()
            .find(|(_, tn, _)| *tn == created.tracking_number)
        {
            break (old.clone(), *between, created);
        }
        seen.push((created.shipment_id, created.tracking_number, after));
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let tn = new.tracking_number.clone();
    // The old parcel was delivered before the number was used again.
    let delivered = s
        .client
        .record_tracking_event(scan(&tn, "old-1", S::Delivered, old_between))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(delivered.shipment_id, old);
    // A scan of the new parcel goes to the new shipment.
    let picked = s
        .client
        .record_tracking_event(scan(&tn, "new-1", S::InTransit, now()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(picked.shipment_id, new.shipment_id);
    assert_eq!(picked.status, i32::from(S::InTransit));
    // The old delivery, reported again, is still the old one's duplicate.
    let again = s
        .client
        .record_tracking_event(scan(&tn, "old-1", S::Delivered, old_between))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (again.shipment_id.as_str(), again.duplicate),
        (old.as_str(), true)
    );
    s.running.stop().await.unwrap();
}

#[tokio::test]
async fn a_silent_shipment_is_reported_stalled_once() {
    // The default 72 hours of silence, passed on a manual clock.
    let clock = aftersales_core::ShiftedClock::new();
    let mut cfg = config(shared_postgres().create_database().unwrap());
    cfg.common.clock = std::sync::Arc::new(clock.clone());
    cfg.stall_check_seconds = 1;
    let mut s = Server::start_with(cfg).await;
    let created = s
        .client
        .create_shipment(new_shipment("order-stall"))
        .await
        .unwrap()
        .into_inner();
    let get =
        |c: &mut aftersales_proto::logistics::logistics_service_client::LogisticsServiceClient<
            tonic::transport::Channel,
        >,
         id: String| {
            let mut c = c.clone();
            async move {
                c.get_shipment(pb::ShipmentRef { shipment_id: id })
                    .await
                    .unwrap()
                    .into_inner()
            }
        };
    clock.advance(chrono::Duration::hours(73));
    let stalled = eventually(
        || get(&mut s.client, created.shipment_id.clone()),
        |s| s.stalled,
    )
    .await;
    assert!(stalled.stalled);
    // More sweeps pass (one a second); still one report for one silence.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let aftersales_eventstore::AnyEventStore::Postgres(pg) = &s.running.store else {
        panic!()
    };
    let count = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM events WHERE event_type = 'ShipmentStalled'",
        )
        .fetch_one(pg.pool())
        .await
        .unwrap()
    };
    assert_eq!(count().await, 1);
    // A scan ends the silence; a new silence is reported again.
    s.client
        .record_tracking_event(scan(
            &created.tracking_number,
            "s1",
            S::InTransit,
            clock.now(),
        ))
        .await
        .unwrap();
    let moving = get(&mut s.client, created.shipment_id.clone()).await;
    assert!(!moving.stalled);
    clock.advance(chrono::Duration::hours(73));
    let again = eventually(count, |n| *n == 2).await;
    assert_eq!(again, 2);
    s.running.stop().await.unwrap();
}

/// `GET /metrics`, as Prometheus scrapes it.
async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// The value of the sample whose line starts with `series` (labels included).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_calls_commands_and_appends() {
    let mut s = Server::start().await;
    let created = s
        .client
        .create_shipment(new_shipment("order-metrics"))
        .await
        .unwrap()
        .into_inner();
    s.client
        .record_tracking_event(scan(&created.tracking_number, "m1", S::InTransit, now()))
        .await
        .unwrap();
    let missing = s
        .client
        .record_tracking_event(scan("SB000000000001", "m2", S::InTransit, now()))
        .await;
    assert_eq!(missing.unwrap_err().code(), Code::NotFound);
    let text = scrape(s.running.metrics_addr.unwrap()).await;
    let created_calls = sample(
        &text,
        "aftersales_grpc_requests_total{method=\"/aftersales.logistics.v1.LogisticsService/CreateShipment\",code=\"0\"}",
    );
    assert!(created_calls.is_some_and(|n| n >= 1.0), "{text}");
    let not_found = sample(
        &text,
        "aftersales_grpc_requests_total{method=\"/aftersales.logistics.v1.LogisticsService/RecordTrackingEvent\",code=\"5\"}",
    );
    assert!(not_found.is_some_and(|n| n >= 1.0), "{text}");
    assert!(
        sample(
            &text,
            "aftersales_commands_total{aggregate=\"Shipment\",outcome=\"applied\"}"
        )
        .is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "aftersales_events_appended_total{category=\"shipment\"}"
        )
        .is_some_and(|n| n >= 4.0),
        "{text}"
    );
    assert!(
        text.contains("aftersales_grpc_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("aftersales_command_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("aftersales_projection_lag_events{projection=\"logistics-shipments\"}"),
        "{text}"
    );
    s.running.stop().await.unwrap();
}

#[tokio::test]
async fn create_shipment_retried_with_its_command_id_creates_one() {
    use aftersales_runtime::request::with_command_id;
    let mut s = Server::start().await;
    let command_id = uuid::Uuid::new_v4();
    let first = s
        .client
        .create_shipment(with_command_id(new_shipment("order-idem"), command_id))
        .await
        .unwrap()
        .into_inner();
    let events = s.events().await;
    let again = s
        .client
        .create_shipment(with_command_id(new_shipment("order-idem"), command_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.shipment_id, first.shipment_id);
    assert_eq!(again.tracking_number, first.tracking_number);
    assert_eq!(s.events().await, events, "a retry writes nothing");

    let reused = s
        .client
        .create_shipment(with_command_id(new_shipment("order-other"), command_id))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists, "{reused:?}");
    assert_eq!(s.events().await, events);
    s.running.stop().await.unwrap();
}
