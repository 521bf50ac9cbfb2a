//! Resident memory of each service, idle: the distributed form (the four service
//! binaries as processes on PostgreSQL and NATS, as the journeys run them) and
//! `aftersales up` (everything in one process on SQLite), release builds.
//!
//! Each is measured after it has started and settled for `BENCH_IDLE_SECONDS`
//! (default 10), then again later: in the distributed form after a little work
//! (`BENCH_DEVICES` devices registered and checked, a walk-in repair opened and
//! checked in for every fifth, so caches, pools and consumers have been used)
//! and the same settling, which is what an idle service keeps; `up` after
//! settling once more. The target is under 50 MiB per service.
//!
//! `cargo bench -p aftersales-journeys --bench memory`.

#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

#[allow(dead_code)] // the journeys' harness; this benchmark uses part of it
#[path = "../journeys/platform.rs"]
mod platform;

use std::io::{BufRead as _, BufReader};
use std::time::Duration;

use aftersales_proto::common::{CountryCode, DeviceId, device_id};
use aftersales_proto::repair as rpb;
use aftersales_proto::warranty as wpb;

const TARGET_MIB: f64 = 50.0;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Registers `devices` phones and opens and checks in a walk-in repair for
/// every fifth, through the gRPC APIs at `warranty` and `repair`.
async fn some_work(warranty: String, repair: String, devices: u64) {
    let channel = |url: String| {
        tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect_lazy()
    };
    let mut warranty = wpb::warranty_service_client::WarrantyServiceClient::new(channel(warranty));
    let mut repair = rpb::repair_service_client::RepairServiceClient::new(channel(repair));
    for n in 0..devices {
        let device = Some(DeviceId {
            kind: Some(device_id::Kind::Imei(platform::imei(n))),
        });
        warranty
            .register_device(wpb::RegisterDeviceRequest {
                device_id: device.clone(),
                model: "Aurora 5".into(),
                purchase_date: "2026-11-01".into(),
                country_of_purchase: Some(CountryCode { value: "DE".into() }),
                channel: wpb::SalesChannel::OnlineStore.into(),
                customer_id: format!("customer-{n}"),
                ..Default::default()
            })
            .await
            .unwrap();
        warranty
            .check_coverage(wpb::CheckCoverageRequest {
                device_id: device.clone(),
                fault_category: wpb::FaultCategory::Battery.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        if n % 5 == 0 {
            let order = repair
                .open_repair(rpb::OpenRepairRequest {
                    device_id: device,
                    channel: rpb::Channel::WalkIn.into(),
                    service_center_id: "sc-berlin-01".into(),
                    customer_id: format!("customer-{n}"),
                    symptoms: "battery drains".into(),
                    reported_fault: wpb::FaultCategory::Battery.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .order_id;
            repair
                .check_in_device(rpb::CheckInDeviceRequest {
                    order_id: order,
                    condition_notes: "scratch on the frame".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    }
}

fn row(name: &str, idle: f64, later: f64) {
    let verdict = if idle.max(later) < TARGET_MIB {
        "under"
    } else {
        "OVER"
    };
    println!("| {name} | {idle:.1} MiB | {later:.1} MiB | {verdict} {TARGET_MIB:.0} MiB |");
}

#[tokio::main]
async fn main() {
    let settle = Duration::from_secs(env_u64("BENCH_IDLE_SECONDS", 10));
    let devices = env_u64("BENCH_DEVICES", 200);
    println!("| process | idle after start | idle later (after work, distributed form) | target |");
    println!("|---|---|---|---|");

    // The distributed form.
    let platform = tokio::task::spawn_blocking(|| platform::Platform::start(100))
        .await
        .unwrap();
    let services = [
        &platform.warranty,
        &platform.repair,
        &platform.logistics,
        &platform.notification,
    ];
    tokio::time::sleep(settle).await;
    let idle: Vec<f64> = services
        .iter()
        .map(|s| aftersales_testkit::resident_mib(s.pid().unwrap()))
        .collect();
    some_work(platform.warranty.url(), platform.repair.url(), devices).await;
    tokio::time::sleep(settle).await;
    for (service, idle) in services.iter().zip(idle) {
        row(
            &format!("aftersales-{} (PostgreSQL, NATS)", service.name),
            idle,
            aftersales_testkit::resident_mib(service.pid().unwrap()),
        );
    }
    drop(platform);

    // `aftersales up`: the four services, the identity provider and the web
    // gateway in one process.
    let data = tempfile::tempdir().unwrap();
    let mut up = aftersales_testkit::up_on_free_ports(&platform::binary("aftersales"), data.path())
        .env("RUST_LOG", "error")
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
    while !lines.next().unwrap().unwrap().starts_with("data in") {}
    std::thread::spawn(move || lines.for_each(drop));
    tokio::time::sleep(settle).await;
    let idle = aftersales_testkit::resident_mib(up.id());
    tokio::time::sleep(settle).await;
    row(
        "aftersales up (SQLite, all in one)",
        idle,
        aftersales_testkit::resident_mib(up.id()),
    );
    let _ = up.kill();
    let _ = up.wait();
    println!(
        "\nsettled {}s each; {devices} devices registered and checked, every fifth with a \
         walk-in repair opened and checked in, between the two readings (distributed form)",
        settle.as_secs()
    );
}
