//! Stock and reservations for real: the last unit raced by twenty repairs across
//! two processes on one database, the line served in order, serials fitted once,
//! replenishments with the legal clock, and bad input refused with nothing written.

use std::time::Duration;

use aftersales_auth::issuer::Issuer;
use aftersales_auth::{Principal, Role, ServiceToken};
use aftersales_core::ShiftedClock;
use aftersales_eventstore::CommandContext;
use aftersales_parts::app::Parts;
use aftersales_proto::parts as pb;
use aftersales_proto::parts::parts_service_client::PartsServiceClient;
use aftersales_runtime::errors::field_violations;
use aftersales_runtime::telemetry::traced;
use aftersales_testkit::{eventually, shared_postgres};
use tonic::Code;

use crate::{Server, config, country};

const CENTER: &str = "sc-berlin-01";
const DISPLAY: &str = "A5-DSP";

fn reserve(order: &str) -> pb::ReservePartRequest {
    pb::ReservePartRequest {
        location: CENTER.into(),
        part_number: DISPLAY.into(),
        repair_order_id: order.into(),
        quantity: 1,
    }
}

fn receive(quantity: i32, replenishment_id: &str) -> pb::ReceiveStockRequest {
    pb::ReceiveStockRequest {
        location: CENTER.into(),
        part_number: DISPLAY.into(),
        quantity,
        replenishment_id: replenishment_id.into(),
    }
}

fn stock_ref() -> pb::StockRef {
    pb::StockRef {
        location: CENTER.into(),
        part_number: DISPLAY.into(),
    }
}

async fn count_events(server: &Server, event_type: &str) -> i64 {
    let aftersales_eventstore::AnyEventStore::Postgres(pg) = &server.running.store else {
        panic!("PostgreSQL expected")
    };
    sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(pg.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_last_unit_raced_by_twenty_repairs_goes_to_one_and_then_to_the_next_in_line() {
    let url = shared_postgres().create_database().unwrap();
    // Two processes on one database: the race is decided by the log's version check.
    let mut first = Server::start_with(config(url.clone())).await;
    let second = Server::start_with(config(url)).await;
    first.client.receive_stock(receive(1, "")).await.unwrap();

    let racers = (0..20).map(|i| {
        let mut client = if i % 2 == 0 {
            first.client.clone()
        } else {
            second.client.clone()
        };
        async move {
            client
                .reserve_part(reserve(&format!("ord-race-{i}")))
                .await
                .unwrap()
                .into_inner()
        }
    });
    let outcomes = futures::future::join_all(racers).await;
    let reserved: Vec<_> = outcomes
        .iter()
        .filter(|r| r.status() == pb::ReservationStatus::Reserved)
        .collect();
    assert_eq!(reserved.len(), 1, "{outcomes:?}");
    let waiting = outcomes
        .iter()
        .filter(|r| r.status() == pb::ReservationStatus::Waiting)
        .count();
    assert_eq!(waiting, 19);
    assert_eq!(count_events(&first, "PartReserved").await, 1);
    assert_eq!(count_events(&first, "PartBackordered").await, 19);

    let stock = first
        .client
        .get_stock(stock_ref())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((stock.on_hand, stock.reserved, stock.available), (1, 1, 0));
    assert_eq!(stock.waiting_orders.len(), 19);
    let next = stock.waiting_orders[0].clone();

    // The holder's repair is cancelled: the unit goes to the first in line.
    let winner = reserved[0].repair_order_id.clone();
    let released = first
        .client
        .release_reservation(pb::ReleaseReservationRequest {
            location: CENTER.into(),
            part_number: DISPLAY.into(),
            repair_order_id: winner,
            reason: "repair cancelled".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released.status(), pb::ReservationStatus::None);
    let now_held = first
        .client
        .get_reservation(pb::ReservationRef {
            location: CENTER.into(),
            part_number: DISPLAY.into(),
            repair_order_id: next.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now_held.status(), pb::ReservationStatus::Reserved);
    let last = released.stock.unwrap();
    assert_eq!(last.waiting_orders.len(), 18);
    assert!(!last.waiting_orders.contains(&next));

    // The read model agrees with the log.
    let listed = eventually(
        || {
            let mut client = second.client.clone();
            async move {
                client
                    .list_stock(pb::ListStockRequest {
                        location: CENTER.into(),
                        low_only: false,
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .levels
            }
        },
        |levels| {
            levels
                .first()
                .is_some_and(|l| l.reserved == 1 && l.version == last.version)
        },
    )
    .await;
    assert_eq!((listed[0].on_hand, listed[0].available), (1, 0));
}

#[tokio::test]
async fn a_replenishment_serves_the_line_and_its_legal_day_is_watched() {
    let clock = ShiftedClock::new();
    let mut cfg = config(shared_postgres().create_database().unwrap());
    cfg.common.clock = clock.shared();
    let mut server = Server::start_with(cfg).await;
    let waiting = server
        .client
        .reserve_part(reserve("ord-waits-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (waiting.status(), waiting.position),
        (pb::ReservationStatus::Waiting, 1)
    );
    // Nothing was on order: the depot is asked for the unit, due by the law's day.
    let level = server
        .client
        .get_stock(pb::StockRef {
            location: CENTER.into(),
            part_number: DISPLAY.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(level.on_order, 1, "{level:?}");
    let backorder = level.replenishments[0].clone();
    assert_eq!(backorder.expected_on, backorder.due_by);
    assert_eq!(waiting.expected_on, backorder.due_by);

    // More ordered by hand, due the same day.
    let ordered = server
        .client
        .order_replenishment(pb::OrderReplenishmentRequest {
            location: CENTER.into(),
            part_number: DISPLAY.into(),
            quantity: 3,
            expected_on: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ordered.on_order, 4);
    let replenishment = ordered
        .replenishments
        .iter()
        .find(|r| r.quantity == 3)
        .unwrap()
        .clone();
    assert_eq!(replenishment.expected_on, replenishment.due_by);
    let waiting = server
        .client
        .get_reservation(pb::ReservationRef {
            location: CENTER.into(),
            part_number: DISPLAY.into(),
            repair_order_id: "ord-waits-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(waiting.expected_on, replenishment.due_by);

    // Eleven working days on, the law's clock has run out: flagged once, even
    // by a second process looking again.
    clock.advance(chrono::Duration::days(17));
    let parts = Parts::builtin(server.running.store.clone(), clock.shared()).unwrap();
    let ctx = || CommandContext::system("test", "test", clock.now());
    eventually(
        || {
            let parts = parts.clone();
            async move { parts.list_stock(CENTER, false).await.unwrap() }
        },
        |rows| rows.first().is_some_and(|r| r.on_order == 4),
    )
    .await;
    assert_eq!(parts.flag_overdue(&ctx()).await.unwrap(), 2);
    assert_eq!(parts.flag_overdue(&ctx()).await.unwrap(), 0);
    let again = Parts::builtin(server.running.store.clone(), clock.shared()).unwrap();
    assert_eq!(again.flag_overdue(&ctx()).await.unwrap(), 0);
    assert_eq!(count_events(&server, "ReplenishmentOverdue").await, 2);

    // The delivery arrives: the waiting repair gets its unit first.
    let received = server
        .client
        .receive_stock(receive(3, &replenishment.replenishment_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (received.on_hand, received.reserved, received.on_order),
        (3, 1, 1)
    );
    assert!(received.waiting_orders.is_empty());
    // A delivery for a replenishment no longer open is refused.
    let refused = server
        .client
        .receive_stock(receive(3, &replenishment.replenishment_id))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
}

#[tokio::test]
async fn a_fitted_serial_is_recorded_once_and_low_stock_is_reported_once() {
    let mut server = Server::start().await;
    server.client.receive_stock(receive(3, "")).await.unwrap();
    server
        .client
        .set_reorder_point(pb::SetReorderPointRequest {
            location: CENTER.into(),
            part_number: DISPLAY.into(),
            reorder_point: 1,
        })
        .await
        .unwrap();
    for order in ["ord-fit-1", "ord-fit-2", "ord-fit-3"] {
        server.client.reserve_part(reserve(order)).await.unwrap();
    }
    assert_eq!(count_events(&server, "StockLow").await, 1);

    let consume = |order: &str, serial: &str| pb::ConsumePartRequest {
        location: CENTER.into(),
        part_number: DISPLAY.into(),
        repair_order_id: order.into(),
        serial: serial.into(),
    };
    let fitted = server
        .client
        .consume_part(consume("ord-fit-1", "DSP-0001"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fitted.consumed_serials, ["DSP-0001"]);
    assert_eq!(fitted.status(), pb::ReservationStatus::None);
    assert_eq!(fitted.stock.unwrap().on_hand, 2);

    let before = server.events().await;
    let refused = server
        .client
        .consume_part(consume("ord-fit-2", "DSP-0001"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&refused)[0].0, "serial");
    // A serialized part needs its serial; an order holding nothing cannot fit one.
    let refused = server
        .client
        .consume_part(consume("ord-fit-2", " "))
        .await
        .unwrap_err();
    assert_eq!(field_violations(&refused)[0].0, "serial");
    let refused = server
        .client
        .consume_part(consume("ord-none", "DSP-0009"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(server.events().await, before, "a refusal writes nothing");
    let stock = server
        .client
        .get_stock(stock_ref())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((stock.on_hand, stock.reserved), (2, 2));
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named_and_nothing_written() {
    let mut server = Server::start().await;
    let before = server.events().await;
    let mut negative = receive(-3, "");
    let refused = server
        .client
        .receive_stock(negative.clone())
        .await
        .unwrap_err();
    assert_eq!(field_violations(&refused)[0].0, "quantity");
    negative.quantity = 0;
    let refused = server.client.receive_stock(negative).await.unwrap_err();
    assert_eq!(field_violations(&refused)[0].0, "quantity");

    let mut unknown = reserve("ord-1");
    unknown.part_number = "A5-WARP".into();
    let refused = server.client.reserve_part(unknown).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&refused)[0].0, "part_number");

    let mut location = reserve("ord-1");
    location.location = "sc berlin; DROP TABLE".into();
    let refused = server.client.reserve_part(location).await.unwrap_err();
    assert_eq!(field_violations(&refused)[0].0, "location");

    let mut order = reserve(&"o".repeat(65));
    order.quantity = 1;
    let refused = server.client.reserve_part(order).await.unwrap_err();
    assert_eq!(field_violations(&refused)[0].0, "repair_order_id");

    let refused = server
        .client
        .order_replenishment(pb::OrderReplenishmentRequest {
            location: CENTER.into(),
            part_number: DISPLAY.into(),
            quantity: 2,
            expected_on: "next week".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(field_violations(&refused)[0].0, "expected_on");
    let refused = server
        .client
        .set_reorder_point(pb::SetReorderPointRequest {
            location: CENTER.into(),
            part_number: DISPLAY.into(),
            reorder_point: -1,
        })
        .await
        .unwrap_err();
    assert_eq!(field_violations(&refused)[0].0, "reorder_point");
    assert_eq!(server.events().await, before);
}

#[tokio::test]
async fn prices_are_public_and_stock_is_the_centers_own() {
    let issuer = Issuer::serve("127.0.0.1:0".parse().unwrap(), std::future::pending())
        .await
        .unwrap();
    let mut cfg = config(shared_postgres().create_database().unwrap());
    cfg.common.oidc_issuer = Some(issuer.url().to_owned());
    cfg.common.allow_unauthenticated = false;
    let running = aftersales_parts::server::start(cfg).await.unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", running.addr))
        .unwrap()
        .connect_lazy();
    let client = |principal: Option<Principal>| {
        let token = principal.map(|who| {
            ServiceToken::fixed(
                issuer
                    .token(&who, "aftersales", Duration::from_secs(900))
                    .unwrap(),
            )
        });
        PartsServiceClient::new(traced(channel.clone(), token))
    };

    // Anyone, signed in or not, reads the published prices.
    let mut anonymous = client(None);
    let list = anonymous
        .get_repair_price_list(pb::GetRepairPriceListRequest {
            model: "Aurora 4".into(),
            country: country("GB"),
            as_of: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.currency, "GBP");
    let refused = anonymous.get_stock(stock_ref()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let refused = anonymous
        .propose_quote(pb::ProposeQuoteRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    // A technician works with their own center's stock only.
    let mut berlin = Principal::new("tech-anna", Role::Technician);
    berlin.centers = vec![CENTER.into()];
    let mut tech = client(Some(berlin));
    tech.receive_stock(receive(2, "")).await.unwrap();
    let mut elsewhere = receive(2, "");
    elsewhere.location = "sc-paris-01".into();
    let refused = tech.receive_stock(elsewhere).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    // Ordering stock is a manager's call.
    let refused = tech
        .order_replenishment(pb::OrderReplenishmentRequest {
            location: CENTER.into(),
            part_number: DISPLAY.into(),
            quantity: 1,
            expected_on: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = client(Some(Principal::new("cust-1", Role::Customer)))
        .get_stock(stock_ref())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn the_embedded_default_decides_the_same_race_and_rebuilds_the_same_levels() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("parts.db").display());
    let mut server = Server::start_with(config(url)).await;
    server.client.receive_stock(receive(2, "")).await.unwrap();
    let racers = (0..20).map(|i| {
        let mut client = server.client.clone();
        async move {
            client
                .reserve_part(reserve(&format!("ord-lite-{i}")))
                .await
                .unwrap()
                .into_inner()
                .status()
        }
    });
    let outcomes = futures::future::join_all(racers).await;
    let held = outcomes
        .iter()
        .filter(|s| **s == pb::ReservationStatus::Reserved)
        .count();
    assert_eq!(held, 2, "{outcomes:?}");

    let parts = Parts::builtin(
        server.running.store.clone(),
        aftersales_core::SystemClock::shared(),
    )
    .unwrap();
    let stock = server
        .client
        .get_stock(stock_ref())
        .await
        .unwrap()
        .into_inner();
    let levels = || {
        let parts = parts.clone();
        async move { parts.list_stock(CENTER, false).await.unwrap() }
    };
    let before = eventually(levels, |rows| {
        rows.first()
            .is_some_and(|r| u64::try_from(r.version).unwrap() == stock.version)
    })
    .await;
    assert_eq!((before[0].reserved, before[0].waiting), (2, 18));
    aftersales_eventstore::projection::rebuild(
        &server.running.store,
        &aftersales_parts::projections::StockLevels,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(parts.list_stock(CENTER, false).await.unwrap(), before);
}
