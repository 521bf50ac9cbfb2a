//! `aftersales up` as a process: it serves, keeps its data, and stops on SIGTERM.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use aftersales_proto::common::{CountryCode, DeviceId, device_id};
use aftersales_proto::repair as rpb;
use aftersales_proto::repair::repair_service_client::RepairServiceClient;
use aftersales_proto::support as spb;
use aftersales_proto::support::support_service_client::SupportServiceClient;
use aftersales_proto::warranty as pb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_testkit::browser::Browser;

/// Starts `aftersales up` on free ports; the warranty and repair addresses and the
/// process.
fn up(data: &std::path::Path) -> (String, String, Process) {
    let (warranty, repair, _, _, process) = up_all(data);
    (warranty, repair, process)
}

/// Starts `aftersales up` on free ports, with sandbox parcels moving every 50 ms,
/// taking calls without tokens (signing in is the README test's and
/// `signing_in_*`'s); the warranty, repair, logistics and notification
/// addresses and the process.
fn up_all(data: &std::path::Path) -> (String, String, String, String, Process) {
    up_with(data, &["--allow-unauthenticated"])
}

/// `aftersales up` on free ports with `extra` arguments.
fn up_with(data: &std::path::Path, extra: &[&str]) -> (String, String, String, String, Process) {
    let ([warranty, repair, logistics, notification, _, _], process) = up_services(data, extra);
    (warranty, repair, logistics, notification, process)
}

/// `aftersales up` on free ports with `extra` arguments; the warranty, repair,
/// logistics, notification, parts and support addresses and the process.
fn up_services(data: &std::path::Path, extra: &[&str]) -> ([String; 6], Process) {
    services_of(up_command(data, extra))
}

/// `command` (an `up`) started, and its services' addresses once it says them.
fn services_of(mut command: Command) -> ([String; 6], Process) {
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The web address comes first (when signing in is on); then the services'.
    let addresses = std::array::from_fn(|_| {
        loop {
            let line = lines.next().unwrap().unwrap();
            if let Some(address) = line.split("grpc://").nth(1) {
                break address.trim().to_owned();
            }
        }
    });
    std::thread::spawn(move || lines.for_each(drop));
    (addresses, Process(child))
}

/// `aftersales up` on free ports; parcels scan every 50 ms unless `extra`
/// says otherwise.
fn up_command(data: &std::path::Path, extra: &[&str]) -> Command {
    let mut command = aftersales_testkit::up_on_free_ports(
        std::path::Path::new(env!("CARGO_BIN_EXE_aftersales")),
        data,
    );
    command.args(extra).env("RUST_LOG", "warn");
    if !extra.contains(&"--sandbox-step-millis") {
        command.args(["--sandbox-step-millis", "50"]);
    }
    command
}

/// With a secret, `up` runs the carrier webhook and says where; it checks
/// signatures like the distributed form's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_the_carrier_webhook_when_given_its_secret() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Process(
        up_command(
            data.path(),
            &["--allow-unauthenticated", "--webhook-listen", "127.0.0.1:0"],
        )
        .env(
            "AFTERSALES_WEBHOOK_SECRETS",
            "sandbox=a-secret-of-24-bytes-ok",
        )
        .spawn()
        .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(url) = line.strip_prefix("webhook") {
            break url.trim().replace("{carrier}", "sandbox");
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let unsigned = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert!(terminate(child).success());
}

/// The `aftersales up` process, killed if a test fails before stopping it.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn terminate(mut child: Process) -> std::process::ExitStatus {
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on a child we own.
    unsafe {
        libc::kill(i32::try_from(child.0.id()).unwrap(), libc::SIGTERM);
    }
    child.0.wait().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_warranty_keeps_its_data_and_stops_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let (addr, repair_addr, child) = up(data.path());
    let mut client = WarrantyServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let imei = "490154203237518";
    let id = Some(DeviceId {
        kind: Some(device_id::Kind::Imei(imei.into())),
    });
    client
        .register_device(pb::RegisterDeviceRequest {
            device_id: id.clone(),
            model: "Aurora 5".into(),
            purchase_date: "2025-11-01".into(),
            country_of_purchase: Some(CountryCode { value: "IN".into() }),
            channel: pb::SalesChannel::RetailStore.into(),
            customer_id: "cust-1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Repair runs beside it and asks it about coverage.
    let mut repair = RepairServiceClient::connect(format!("http://{repair_addr}"))
        .await
        .unwrap();
    let opened = repair
        .open_repair(rpb::OpenRepairRequest {
            device_id: id.clone(),
            channel: rpb::Channel::WalkIn.into(),
            service_center_id: "sc-bengaluru-01".into(),
            customer_id: "cust-1".into(),
            symptoms: "does not charge".into(),
            contact_address: None,
            reported_fault: pb::FaultCategory::Charging.into(),
            walk_in_day: aftersales_testkit::walk_in_day(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let coverage = opened.coverage.unwrap();
    // Bought 2025-11-01 in India: warranty answered under its policy.
    assert!(coverage.decided, "{coverage:?}");
    assert_eq!(coverage.policy_id, "in-limited");
    drop(repair);
    assert!(terminate(child).success());
    assert!(data.path().join("repair.db").exists());
    assert!(data.path().join("warranty.db").exists());

    // Started again on the same data, it still knows the device.
    let (addr, _, child) = up(data.path());
    let mut client = WarrantyServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let device = client
        .get_device(pb::GetDeviceRequest { device_id: id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(device.customer_id, "cust-1");
    assert_eq!(device.policy_id, "in-limited");
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        health.status,
        i32::from(tonic_health::pb::health_check_response::ServingStatus::Serving)
    );
    assert!(terminate(child).success());
}

/// `repair open` arguments with the day a walk-in is opened for, if not today
/// (see `aftersales_testkit::walk_in_day`).
fn walk_in<'a>(args: &[&'a str]) -> Vec<&'a str> {
    static DAY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let day = DAY.get_or_init(aftersales_testkit::walk_in_day);
    let mut args = args.to_vec();
    if !day.is_empty() {
        args.extend(["--day", day.as_str()]);
    }
    args
}

/// Runs `aftersales <args>` against the given services; its stdout, or its stderr
/// as the error.
fn aftersales(warranty: &str, repair: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_aftersales"))
        .args([
            "--warranty-url",
            &format!("http://{warranty}"),
            "--repair-url",
            &format!("http://{repair}"),
        ])
        .args(args)
        .output()
        .unwrap();
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).unwrap())
    } else {
        Err(String::from_utf8(output.stderr).unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_talk_to_the_running_services() {
    let data = tempfile::tempdir().unwrap();
    let (warranty, repair, child) = up(data.path());
    // Bought a month ago in Germany: under the policy version in force since 2026-07-31.
    #[allow(clippy::disallowed_methods)]
    let purchased = chrono::Utc::now().date_naive() - chrono::Duration::days(30);
    let registered = aftersales(
        &warranty,
        &repair,
        &[
            "--json",
            "device",
            "register",
            "--imei",
            "356938035643809",
            "--model",
            "Aurora 5",
            "--purchased",
            &purchased.to_string(),
            "--country",
            "DE",
            "--customer",
            "cust-7",
        ],
    )
    .unwrap();
    let device: serde_json::Value = serde_json::from_str(&registered).unwrap();
    assert_eq!(device["policy"], "de-consumer v3");
    let end = purchased
        .checked_add_months(chrono::Months::new(24))
        .unwrap();
    assert_eq!(device["warranty_end"], end.to_string());

    let shown = aftersales(
        &warranty,
        &repair,
        &["device", "show", "--imei", "356938035643809"],
    )
    .unwrap();
    assert!(
        shown.contains("customer_id") && shown.contains("cust-7"),
        "{shown}"
    );

    let coverage = aftersales(
        &warranty,
        &repair,
        &[
            "--json",
            "device",
            "coverage",
            "--imei",
            "356938035643809",
            "--fault",
            "liquid_damage",
        ],
    )
    .unwrap();
    let coverage: serde_json::Value = serde_json::from_str(&coverage).unwrap();
    assert_eq!(
        (coverage["covered"].as_bool(), coverage["reason"].as_str()),
        (Some(false), Some("excluded_fault"))
    );

    let error = aftersales(
        &warranty,
        &repair,
        &[
            "device",
            "coverage",
            "--imei",
            "356938035643809",
            "--fault",
            "bad_luck",
        ],
    )
    .unwrap_err();
    assert!(error.contains("--fault"), "{error}");
    let error = aftersales(&warranty, &repair, &["device", "show", "--imei", "123"]).unwrap_err();
    assert!(
        error.contains("must be exactly 15 digits"),
        "checked before asking: {error}"
    );

    let nearest = aftersales(
        &warranty,
        &repair,
        &[
            "--json", "center", "nearest", "--lat", "52.39", "--lon", "13.06",
        ],
    )
    .unwrap();
    let nearest: serde_json::Value = serde_json::from_str(&nearest).unwrap();
    assert_eq!(nearest["centers"][0]["id"], "sc-berlin-01");
    let outback = aftersales(
        &warranty,
        &repair,
        &[
            "center",
            "nearest",
            "--lat",
            "-23.7",
            "--lon",
            "133.88",
            "--country",
            "AU",
        ],
    )
    .unwrap();
    assert!(outback.contains("mail-in"), "{outback}");

    // A repair: open, show, follow live, and its timeline.
    let open = walk_in(&[
        "--json",
        "repair",
        "open",
        "--imei",
        "356938035643809",
        "--customer",
        "cust-7",
        "--symptoms",
        "cracked screen",
        "--center",
        "sc-berlin-01",
    ]);
    let opened = aftersales(&warranty, &repair, &open).unwrap();
    let opened: serde_json::Value = serde_json::from_str(&opened).unwrap();
    let order = opened["order_id"].as_str().unwrap().to_owned();
    assert_eq!(opened["stage"], "opened");
    assert!(
        opened["coverage"].as_str().unwrap().starts_with("covered"),
        "{opened}"
    );
    let shown = aftersales(&warranty, &repair, &["repair", "show", "--order", &order]).unwrap();
    assert!(shown.contains("sc-berlin-01"), "{shown}");
    let watcher = Command::new(env!("CARGO_BIN_EXE_aftersales"))
        .args([
            "--repair-url",
            &format!("http://{repair}"),
            "repair",
            "watch",
            "--order",
            &order,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut client = RepairServiceClient::connect(format!("http://{repair}"))
        .await
        .unwrap();
    client
        .cancel_repair(rpb::CancelRepairRequest {
            order_id: order.clone(),
            reason: "customer changed their mind".into(),
        })
        .await
        .unwrap();
    let watched = watcher.wait_with_output().unwrap();
    assert!(watched.status.success());
    let watched = String::from_utf8(watched.stdout).unwrap();
    assert!(
        watched.contains("opened") && watched.trim_end().ends_with("cancelled"),
        "{watched}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let timeline = loop {
        let timeline = aftersales(
            &warranty,
            &repair,
            &["repair", "timeline", "--order", &order],
        )
        .unwrap();
        if timeline.contains("RepairCancelled") || std::time::Instant::now() > deadline {
            break timeline;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        timeline.contains("RepairOrderOpened") && timeline.contains("RepairCancelled"),
        "{timeline}"
    );
    assert!(terminate(child).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_in_repair_runs_through_up_with_parcels_that_move_on_their_own() {
    use aftersales_proto::logistics as lpb;
    use aftersales_proto::logistics::logistics_service_client::LogisticsServiceClient;
    use aftersales_proto::parts as ppb;
    let data = tempfile::tempdir().unwrap();
    let ([warranty, repair, logistics, notification, parts, _], child) =
        up_services(data.path(), &["--allow-unauthenticated"]);
    let id = Some(DeviceId {
        kind: Some(device_id::Kind::Imei("353918057349918".into())),
    });
    #[allow(clippy::disallowed_methods)]
    let bought = chrono::Utc::now().date_naive() - chrono::Duration::days(40);
    WarrantyServiceClient::connect(format!("http://{warranty}"))
        .await
        .unwrap()
        .register_device(pb::RegisterDeviceRequest {
            device_id: id.clone(),
            model: "Aurora 5".into(),
            purchase_date: bought.to_string(),
            country_of_purchase: Some(CountryCode { value: "CN".into() }),
            channel: pb::SalesChannel::OnlineStore.into(),
            customer_id: "cust-9".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut r = RepairServiceClient::connect(format!("http://{repair}"))
        .await
        .unwrap();
    let order_id = r
        .open_repair(rpb::OpenRepairRequest {
            device_id: id,
            channel: rpb::Channel::MailIn.into(),
            service_center_id: String::new(),
            customer_id: "cust-9".into(),
            symptoms: "battery swells".into(),
            contact_address: Some(aftersales_proto::common::Address {
                recipient: "Li Wei".into(),
                lines: vec!["88 Century Avenue".into()],
                city: "Shanghai".into(),
                region: "Shanghai".into(),
                postal_code: "200120".into(),
                country: Some(CountryCode { value: "CN".into() }),
                phone: String::new(),
            }),
            reported_fault: pb::FaultCategory::Battery.into(),
            walk_in_day: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .order_id;
    let watcher = r.clone();
    let stage_becomes = |stage: rpb::Stage| {
        let r = watcher.clone();
        let order_id = order_id.clone();
        async move {
            aftersales_testkit::eventually(
                || {
                    let mut r = r.clone();
                    let order_id = order_id.clone();
                    async move {
                        r.get_repair(rpb::OrderRef { order_id })
                            .await
                            .unwrap()
                            .into_inner()
                            .stage
                    }
                },
                |s| *s == i32::from(stage),
            )
            .await
        }
    };
    // The inbound parcel is labelled and scanned to delivery with no one asking.
    assert_eq!(
        stage_becomes(rpb::Stage::Received).await,
        i32::from(rpb::Stage::Received)
    );
    // It arrived at the depot serving China, whose stock its diagnosis holds.
    let received = r
        .get_repair(rpb::OrderRef {
            order_id: order_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(received.depot, "cn-shenzhen");
    let mut p = ppb::parts_service_client::PartsServiceClient::connect(format!("http://{parts}"))
        .await
        .unwrap();
    p.receive_stock(ppb::ReceiveStockRequest {
        location: "cn-shenzhen".into(),
        part_number: "A5-BAT".into(),
        quantity: 2,
        replenishment_id: String::new(),
    })
    .await
    .unwrap();
    let diagnosed = r
        .diagnose(rpb::DiagnoseRequest {
            order_id: order_id.clone(),
            fault_category: pb::FaultCategory::Battery.into(),
            fault_codes: vec![],
            technician: "tech-2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!diagnosed.waiting_for_parts, "{diagnosed:?}");
    assert_eq!(
        diagnosed
            .parts
            .iter()
            .map(|h| (h.part_number.as_str(), h.location.as_str()))
            .collect::<Vec<_>>(),
        [("A5-BAT", "cn-shenzhen")]
    );
    let level = p
        .get_stock(ppb::StockRef {
            location: "cn-shenzhen".into(),
            part_number: "A5-BAT".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((level.on_hand, level.reserved), (2, 1));
    r.start_repair(rpb::StartRepairRequest {
        order_id: order_id.clone(),
        technician: "tech-2".into(),
    })
    .await
    .unwrap();
    r.record_qc_result(rpb::RecordQcResultRequest {
        order_id: order_id.clone(),
        passed: true,
        notes: String::new(),
    })
    .await
    .unwrap();
    r.mark_ready_for_return(rpb::OrderRef {
        order_id: order_id.clone(),
    })
    .await
    .unwrap();
    assert_eq!(
        stage_becomes(rpb::Stage::Closed).await,
        i32::from(rpb::Stage::Closed)
    );
    let parcels = LogisticsServiceClient::connect(format!("http://{logistics}"))
        .await
        .unwrap();
    // Listed from a read model, which follows the log shortly after.
    let shipments = aftersales_testkit::eventually(
        || {
            let mut l = parcels.clone();
            let order_id = order_id.clone();
            async move {
                l.list_shipments_by_repair(lpb::ListShipmentsByRepairRequest {
                    repair_order_id: order_id,
                })
                .await
                .unwrap()
                .into_inner()
                .shipments
            }
        },
        |s| s.len() == 2,
    )
    .await;
    assert_eq!(shipments.len(), 2);
    assert!(
        shipments
            .iter()
            .all(|s| s.state == i32::from(lpb::ShipmentState::Delivered))
    );
    assert_eq!(
        shipments[0].to.as_ref().unwrap().city,
        "Shenzhen",
        "the depot serving CN"
    );
    // The customer was told every step, in the in-app inbox.
    let mut kinds = inbox_kinds(&notification, "cust-9", |k| k.len() >= 9).await;
    kinds.sort();
    for kind in [
        "device_registered",
        "repair_opened",
        "label_ready",
        "device_received",
        "diagnosed_covered",
        "repair_started",
        "qc_passed",
        "shipped_back",
        "delivered",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} missing from {kinds:?}"
        );
    }

    // The network's figures count the parcel's round trip, through the CLI.
    let urls = [
        warranty.as_str(),
        repair.as_str(),
        logistics.as_str(),
        notification.as_str(),
    ];
    let csv = aftersales_testkit::eventually(
        || async { run(&urls, &["network", "quality", "--country", "CN", "--csv"]).unwrap() },
        |csv| csv.lines().any(|l| l.starts_with("mail-in,,,1,")),
    )
    .await;
    let header = csv.lines().next().unwrap();
    assert!(
        header.starts_with("center,technician,week,orders,"),
        "{csv}"
    );
    // One order, repaired, fixed the first time, no QC failure.
    let window = csv.lines().find(|l| l.starts_with("mail-in,,,")).unwrap();
    let fields: Vec<&str> = window.split(',').collect();
    assert_eq!(
        (fields[6], fields[7], fields[8]),
        ("1", "100.0", "0.0"),
        "{csv}"
    );
    let areas = run(&urls, &["network", "areas", "--country", "CN"]).unwrap();
    let shanghai = areas
        .lines()
        .find(|l| l.starts_with("Shanghai"))
        .unwrap_or_default();
    let cells: Vec<&str> = shanghai.split_whitespace().collect();
    assert_eq!(
        cells.get(1..5),
        Some(&["1", "1", "1", "100%"][..]),
        "{areas}"
    );
    let map = data.path().join("plan.svg");
    let plan = run(
        &urls,
        &[
            "network",
            "plan",
            "--country",
            "CN",
            "--new",
            "1",
            "--candidate",
            "Beijing",
            "--candidate",
            "Shanghai",
            "--map",
            map.to_str().unwrap(),
        ],
    )
    .unwrap();
    // The customer is already within reach of the Shanghai center.
    assert!(plan.contains("CN: 0 of 1 customers beyond 50 km"), "{plan}");
    assert!(plan.contains("no candidate left brings anyone"), "{plan}");
    let svg = std::fs::read_to_string(&map).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("1. Beijing"),
        "{svg}"
    );
    let refused = run(&urls, &["network", "plan", "--country", "CN", "--new", "0"]).unwrap_err();
    assert!(refused.contains("--new: at least 1"), "{refused}");
    let refused = run(&urls, &["network", "plan", "--country", "XX", "--new", "1"]).unwrap_err();
    assert!(
        refused.contains("InvalidArgument") && refused.contains("country"),
        "{refused}"
    );
    assert!(terminate(child).success());
}

/// The parts service runs in `up`: anyone reads the published repair prices
/// without signing in, through the tool and on the web, and stock answers
/// staff only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_publishes_repair_prices_to_anyone_and_stock_to_staff_only() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Process(up_command(data.path(), &[]).spawn().unwrap());
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut web = String::new();
    let parts = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(url) = line.strip_prefix("web") {
            url.trim().clone_into(&mut web);
        }
        if line.starts_with("parts ")
            && let Some(address) = line.split("grpc://").nth(1)
        {
            break address.trim().to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let cli = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_aftersales"))
            .args(["--parts-url", &format!("http://{parts}"), "--token", ""])
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (ok, prices, stderr) = cli(&["parts", "prices", "--model", "Aurora 5", "--country", "DE"]);
    assert!(ok, "{stderr}");
    assert!(prices.contains("Display replacement"), "{prices}");
    assert!(prices.contains("Alle Preise inkl. 19 % MwSt."), "{prices}");
    assert!(prices.contains(" EUR"), "{prices}");
    let (ok, json, _) = cli(&[
        "--json",
        "parts",
        "prices",
        "--model",
        "Aurora 5",
        "--country",
        "IN",
    ]);
    assert!(ok);
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(list["currency"], "INR");
    assert_eq!(list["tax"]["rate_basis_points"], 1800);

    // The same list as a public page, in German with VAT included, to someone
    // who never signed in.
    let (_, json, _) = cli(&[
        "--json",
        "parts",
        "prices",
        "--model",
        "Aurora 5",
        "--country",
        "DE",
    ]);
    let german: serde_json::Value = serde_json::from_str(&json).unwrap();
    let display = german["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["fault"] == "display")
        .unwrap();
    let cents = display["shown"].as_i64().unwrap();
    assert!((1_000..100_000).contains(&cents), "{display}");
    let page = |query: &str| {
        let url = format!("{web}/prices?{query}");
        async move {
            let response = reqwest::get(&url).await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, html) = page("model=Aurora+5&country=DE&lang=de").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Reparaturpreise"), "{html}");
    assert!(html.contains("Display replacement"), "{html}");
    assert!(
        html.contains(&format!("{},{:02}", cents / 100, cents % 100)),
        "{html}"
    );
    assert!(html.contains("inklusive MwSt. von 19"), "{html}");
    let (status, html) = page("model=Aurora+5&country=US&lang=en").await;
    assert_eq!(status, 200);
    assert!(html.contains("Prices are before sales tax"), "{html}");
    // Anything not listed is not asked for: the first model, the reader's country.
    let (status, html) = page("model=%3Cscript%3E&country=XX&lang=hi").await;
    assert_eq!(status, 200);
    assert!(html.contains("Aurora 4, IN"), "{html}");
    assert!(!html.contains("<script>"), "{html}");
    let (ok, _, refused) = cli(&["parts", "stock", "--location", "sc-berlin-01"]);
    assert!(!ok);
    assert!(refused.contains("Unauthenticated"), "{refused}");
    assert!(terminate(child).success());
}

/// The inbox's message kinds for `customer`, once `done` holds for them.
async fn inbox_kinds(
    notification: &str,
    customer: &str,
    done: impl Fn(&Vec<String>) -> bool,
) -> Vec<String> {
    let kinds = |ns: &Vec<aftersales_proto::notification::Notification>| {
        ns.iter().map(|n| n.kind.clone()).collect::<Vec<_>>()
    };
    kinds(&inbox(notification, customer, |ns| done(&kinds(ns))).await)
}

/// The customer's in-app messages once `done` says so.
async fn inbox(
    notification: &str,
    customer: &str,
    done: impl Fn(&Vec<aftersales_proto::notification::Notification>) -> bool,
) -> Vec<aftersales_proto::notification::Notification> {
    let inbox = aftersales_proto::notification::notification_service_client::NotificationServiceClient::connect(
        format!("http://{notification}"),
    )
    .await
    .unwrap();
    aftersales_testkit::eventually(
        || {
            let mut inbox = inbox.clone();
            async move {
                inbox
                    .list_notifications(aftersales_proto::notification::ListNotificationsRequest {
                        customer_id: customer.into(),
                        page_size: 100,
                        page_token: String::new(),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .notifications
            }
        },
        done,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::disallowed_methods)] // `up` runs on the real clock
async fn two_repairs_race_for_the_last_display_and_the_second_waits_for_the_depot() {
    use aftersales_proto::parts as ppb;
    let data = tempfile::tempdir().unwrap();
    let ([warranty, repair, _, notification, parts, _], child) =
        up_services(data.path(), &["--allow-unauthenticated"]);
    let mut w = WarrantyServiceClient::connect(format!("http://{warranty}"))
        .await
        .unwrap();
    let mut r = RepairServiceClient::connect(format!("http://{repair}"))
        .await
        .unwrap();
    let mut p = ppb::parts_service_client::PartsServiceClient::connect(format!("http://{parts}"))
        .await
        .unwrap();
    let today = chrono::Utc::now().date_naive();
    // Lena's phone is a month old (covered); Jonas's three years (he pays).
    let mut orders = Vec::new();
    for (imei, customer, age_days) in [
        ("490154203237518", "cust-lena", 30),
        ("356938035643809", "cust-jonas", 1100),
    ] {
        let id = Some(DeviceId {
            kind: Some(device_id::Kind::Imei(imei.into())),
        });
        w.register_device(pb::RegisterDeviceRequest {
            device_id: id.clone(),
            model: "Aurora 5".into(),
            purchase_date: (today - chrono::Duration::days(age_days)).to_string(),
            country_of_purchase: Some(CountryCode { value: "DE".into() }),
            channel: pb::SalesChannel::RetailStore.into(),
            customer_id: customer.into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let order = r
            .open_repair(rpb::OpenRepairRequest {
                device_id: id,
                channel: rpb::Channel::WalkIn.into(),
                service_center_id: "sc-berlin-01".into(),
                customer_id: customer.into(),
                symptoms: "the screen is cracked".into(),
                reported_fault: pb::FaultCategory::Display.into(),
                walk_in_day: aftersales_testkit::walk_in_day(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .order_id;
        r.check_in_device(rpb::CheckInDeviceRequest {
            order_id: order.clone(),
            condition_notes: "cracked glass".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        orders.push(order);
    }
    let (lena, jonas) = (orders[0].clone(), orders[1].clone());
    // Berlin holds one display.
    p.receive_stock(ppb::ReceiveStockRequest {
        location: "sc-berlin-01".into(),
        part_number: "A5-DSP".into(),
        quantity: 1,
        replenishment_id: String::new(),
    })
    .await
    .unwrap();
    let diagnose = |order: &str| rpb::DiagnoseRequest {
        order_id: order.into(),
        fault_category: pb::FaultCategory::Display.into(),
        fault_codes: vec!["DSP-01".into()],
        technician: "tech-berlin".into(),
    };
    let first = r.diagnose(diagnose(&lena)).await.unwrap().into_inner();
    assert!(!first.waiting_for_parts, "{first:?}");
    assert!(
        first
            .parts
            .iter()
            .any(|h| h.part_number == "A5-DSP" && !h.waiting),
        "{:?}",
        first.parts
    );
    // Priced from the German list, VAT included, though Lena pays nothing.
    let value = first.proposed_total.clone().unwrap();
    assert_eq!(value.currency, "EUR");
    assert!(value.minor_units > 0);
    let second = r.diagnose(diagnose(&jonas)).await.unwrap().into_inner();
    assert!(second.waiting_for_parts, "{second:?}");
    // Ordered from the depot, due within the law's ten working days.
    let expected: chrono::NaiveDate = second.parts_expected_on.parse().unwrap();
    assert!(
        expected > today && expected <= today + chrono::Duration::days(16),
        "{expected}"
    );
    // Jonas's quote is the price list's, issued without typing a line.
    let quoted = r
        .issue_quote(rpb::IssueQuoteRequest {
            order_id: jonas.clone(),
            lines: vec![],
            valid_until: Some(prost_types::Timestamp {
                seconds: (chrono::Utc::now() + chrono::Duration::days(7)).timestamp(),
                nanos: 0,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let quote = quoted.quote.unwrap();
    assert_eq!(quote.lines, second.proposed_lines);
    assert_eq!(quote.total, second.proposed_total);
    r.approve_quote(rpb::OrderRef {
        order_id: jonas.clone(),
    })
    .await
    .unwrap();
    let start = |order: &str| rpb::StartRepairRequest {
        order_id: order.into(),
        technician: "tech-berlin".into(),
    };
    let refused = r.start_repair(start(&jonas)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("waiting for parts"),
        "{refused:?}"
    );
    let stock =
        |p: &mut ppb::parts_service_client::PartsServiceClient<tonic::transport::Channel>| {
            let mut p = p.clone();
            async move {
                p.get_stock(ppb::StockRef {
                    location: "sc-berlin-01".into(),
                    part_number: "A5-DSP".into(),
                })
                .await
                .unwrap()
                .into_inner()
            }
        };
    let level = stock(&mut p).await;
    assert_eq!(
        (level.on_hand, level.reserved, level.on_order),
        (1, 1, 1),
        "{level:?}"
    );
    assert_eq!(level.waiting_orders, vec![jonas.clone()]);

    // Lena's display is fitted with its serial.
    r.start_repair(start(&lena)).await.unwrap();
    let replace = |order: &str, serial: &str| rpb::ReplacePartRequest {
        order_id: order.into(),
        part_number: "A5-DSP".into(),
        old_serial: format!("OLD-{order}"),
        new_serial: serial.into(),
    };
    let fitted = r
        .replace_part(replace(&lena, "DSP-SN-1"))
        .await
        .unwrap()
        .into_inner();
    assert!(fitted.parts.iter().all(|h| h.fitted), "{:?}", fitted.parts);
    let level = stock(&mut p).await;
    assert_eq!((level.on_hand, level.reserved), (0, 0), "{level:?}");

    // The depot delivers: Jonas's order gets the unit and can start.
    p.receive_stock(ppb::ReceiveStockRequest {
        location: "sc-berlin-01".into(),
        part_number: "A5-DSP".into(),
        quantity: 1,
        replenishment_id: level.replenishments[0].replenishment_id.clone(),
    })
    .await
    .unwrap();
    let arrived = aftersales_testkit::eventually(
        || {
            let mut r = r.clone();
            let jonas = jonas.clone();
            async move {
                r.get_repair(rpb::OrderRef { order_id: jonas })
                    .await
                    .unwrap()
                    .into_inner()
            }
        },
        |order| !order.waiting_for_parts,
    )
    .await;
    assert!(
        arrived.parts.iter().all(|h| !h.waiting),
        "{:?}",
        arrived.parts
    );
    r.start_repair(start(&jonas)).await.unwrap();
    // A serial fitted once is refused, and the order records nothing.
    let reused = r
        .replace_part(replace(&jonas, "DSP-SN-1"))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), tonic::Code::InvalidArgument, "{reused:?}");
    let unchanged = r
        .get_repair(rpb::OrderRef {
            order_id: jonas.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unchanged.parts_replaced, 0);
    // Done without fitting it: the unit goes back on the shelf.
    r.record_qc_result(rpb::RecordQcResultRequest {
        order_id: jonas.clone(),
        passed: true,
        notes: String::new(),
    })
    .await
    .unwrap();
    r.mark_ready_for_return(rpb::OrderRef {
        order_id: jonas.clone(),
    })
    .await
    .unwrap();
    let level = aftersales_testkit::eventually(|| stock(&mut p), |level| level.reserved == 0).await;
    assert_eq!((level.on_hand, level.available), (1, 1), "{level:?}");

    // Jonas was told he waits, and when the part came; Lena was never told to wait.
    let kinds = inbox_kinds(&notification, "cust-jonas", |k| {
        k.iter().any(|k| k == "parts_arrived")
    })
    .await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "waiting_for_parts").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "parts_arrived").count(),
        1,
        "{kinds:?}"
    );
    let kinds = inbox_kinds(&notification, "cust-lena", |k| {
        k.iter().any(|k| k == "repair_started")
    })
    .await;
    assert!(!kinds.iter().any(|k| k == "waiting_for_parts"), "{kinds:?}");
    assert!(terminate(child).success());
}

/// Runs `aftersales <args>` against the services at `urls` (warranty, repair,
/// logistics, notification and, when given, parts); stdout, or stderr as the
/// error.
/// An accessory order through `up`: paid by the sandbox's webhook, packed,
/// delivered by the sandbox carrier, sent back and refunded; its customer is
/// told each step once, in her language.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accessory_order_tells_its_customer_each_step_once() {
    use aftersales_proto::notification as npb;
    use aftersales_proto::parts as ppb;
    let data = tempfile::tempdir().unwrap();
    let (services, child) = up_services(data.path(), &["--allow-unauthenticated"]);
    let [_, _, _, notification, parts, _] = services.clone();
    let mut n = npb::notification_service_client::NotificationServiceClient::connect(format!(
        "http://{notification}"
    ))
    .await
    .unwrap();
    n.set_preferences(npb::Preferences {
        customer_id: "cust-ana".into(),
        language: "de".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut p = ppb::parts_service_client::PartsServiceClient::connect(format!("http://{parts}"))
        .await
        .unwrap();
    let placed = p
        .place_accessory_order(ppb::PlaceAccessoryOrderRequest {
            customer_id: "cust-ana".into(),
            device_id: None,
            lines: vec![ppb::AccessoryLine {
                number: "ACC-BUDS-2".into(),
                quantity: 1,
            }],
            address: Some(aftersales_proto::common::Address {
                recipient: "Ana Schulz".into(),
                lines: vec!["Invalidenstr. 1".into()],
                city: "Berlin".into(),
                postal_code: "10115".into(),
                country: Some(CountryCode { value: "DE".into() }),
                ..Default::default()
            }),
            payment_method: "sandbox-ok".into(),
        })
        .await
        .unwrap()
        .into_inner();
    accessory_order_when(&p, &placed.order_id, |o| {
        o.status() == ppb::AccessoryOrderStatus::Paid
    })
    .await;
    p.ship_accessory_order(ppb::ShipAccessoryOrderRequest {
        order_id: placed.order_id.clone(),
        units: vec![ppb::PackedUnit {
            number: "ACC-BUDS-2".into(),
            serial: "BUDS2-004711".into(),
        }],
    })
    .await
    .unwrap();
    accessory_order_when(&p, &placed.order_id, |o| {
        o.status() == ppb::AccessoryOrderStatus::Delivered
    })
    .await;
    p.return_accessory_order(ppb::AccessoryOrderRef {
        order_id: placed.order_id.clone(),
        customer_id: "cust-ana".into(),
    })
    .await
    .unwrap();
    accessory_order_when(&p, &placed.order_id, |o| {
        o.status() == ppb::AccessoryOrderStatus::Refunded
    })
    .await;
    let steps = [
        "accessory_order_paid",
        "accessory_order_shipped",
        "accessory_order_delivered",
        "accessory_order_refunded",
    ];
    let inbox = inbox(&notification, "cust-ana", |ns| {
        steps.iter().all(|step| ns.iter().any(|m| m.kind == *step))
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let mut kinds: Vec<_> = inbox.iter().map(|m| m.kind.as_str()).collect();
    kinds.sort_unstable();
    let mut expected = steps.to_vec();
    expected.sort_unstable();
    assert_eq!(kinds, expected, "each step once");
    let paid = inbox
        .iter()
        .find(|m| m.kind == "accessory_order_paid")
        .unwrap();
    assert!(paid.subject.contains("bestätigt"), "{}", paid.subject);
    no_dead_letters(&services).await;
    assert!(terminate(child).success());
}

/// A charger out of warranty replaced for its price, the provider posting each
/// payment event five times and out of order: one payment, one parcel; and a
/// charger under warranty replaced free, the faulty one coming back with a
/// label sent along. Their customer is told each step once, in Chinese.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::disallowed_methods)] // `up` runs on the real clock
async fn a_paid_accessory_replacement_tells_its_customer_each_step_once() {
    use aftersales_proto::notification as npb;
    use aftersales_proto::parts as ppb;
    let data = tempfile::tempdir().unwrap();
    let mut command = up_command(data.path(), &["--allow-unauthenticated"]);
    command.env("AFTERSALES_SANDBOX_WEBHOOK_DELIVERIES", "5");
    let (services, child) = services_of(command);
    let [warranty, _, _, notification, parts, _] = services.clone();
    let mut n = npb::notification_service_client::NotificationServiceClient::connect(format!(
        "http://{notification}"
    ))
    .await
    .unwrap();
    n.set_preferences(npb::Preferences {
        customer_id: "cust-wei".into(),
        language: "zh-CN".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut w = WarrantyServiceClient::connect(format!("http://{warranty}"))
        .await
        .unwrap();
    let phone = || {
        Some(DeviceId {
            kind: Some(device_id::Kind::Imei("490154203237518".into())),
        })
    };
    let bought = (chrono::Utc::now().date_naive() - chrono::Duration::days(1500)).to_string();
    w.register_device(pb::RegisterDeviceRequest {
        device_id: phone(),
        model: "Aurora 5".into(),
        purchase_date: bought.clone(),
        country_of_purchase: Some(CountryCode { value: "DE".into() }),
        channel: pb::SalesChannel::RetailStore.into(),
        customer_id: "cust-wei".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let recently = (chrono::Utc::now().date_naive() - chrono::Duration::days(30)).to_string();
    for (serial, purchase_date) in [("CHG-BOX-0001", bought), ("CHG-NEW-0002", recently)] {
        w.register_accessory(pb::RegisterAccessoryRequest {
            device_id: phone(),
            accessory_serial: serial.into(),
            kind: pb::AccessoryKind::Charger.into(),
            purchase_date,
            replaces_serial: String::new(),
        })
        .await
        .unwrap();
    }
    let mut p = ppb::parts_service_client::PartsServiceClient::connect(format!("http://{parts}"))
        .await
        .unwrap();
    let claim = ppb::ReplaceAccessoryRequest {
        customer_id: "cust-wei".into(),
        device_id: phone(),
        accessory_serial: "CHG-BOX-0001".into(),
        fault: "charging".into(),
        number: "ACC-CHG-30W".into(),
        address: Some(aftersales_proto::common::Address {
            recipient: "Wei Zhang".into(),
            lines: vec!["Invalidenstr. 1".into()],
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: Some(CountryCode { value: "DE".into() }),
            ..Default::default()
        }),
        payment_method: "sandbox-ok".into(),
    };
    let placed = p
        .replace_accessory(claim.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(!placed.replacement.as_ref().unwrap().covered);
    accessory_order_when(&p, &placed.order_id, |o| {
        o.status() == ppb::AccessoryOrderStatus::Paid
    })
    .await;
    let again = p
        .replace_accessory(claim.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.payment_id, placed.payment_id, "one charge");
    let packed = ppb::ShipAccessoryOrderRequest {
        order_id: placed.order_id.clone(),
        units: vec![ppb::PackedUnit {
            number: "ACC-CHG-30W".into(),
            serial: "CHG30-008812".into(),
        }],
    };
    let shipped = p
        .ship_accessory_order(packed.clone())
        .await
        .unwrap()
        .into_inner();
    let twice = p.ship_accessory_order(packed).await.unwrap().into_inner();
    assert_eq!(twice.shipment_id, shipped.shipment_id, "one parcel");
    let delivered = accessory_order_when(&p, &placed.order_id, |o| {
        o.status() == ppb::AccessoryOrderStatus::Delivered
    })
    .await;

    let free = p
        .replace_accessory(ppb::ReplaceAccessoryRequest {
            accessory_serial: "CHG-NEW-0002".into(),
            payment_method: String::new(),
            ..claim
        })
        .await
        .unwrap()
        .into_inner();
    assert!(free.replacement.as_ref().unwrap().covered);
    p.ship_accessory_order(ppb::ShipAccessoryOrderRequest {
        order_id: free.order_id.clone(),
        units: vec![ppb::PackedUnit {
            number: "ACC-CHG-30W".into(),
            serial: "CHG30-008813".into(),
        }],
    })
    .await
    .unwrap();
    let both_back = accessory_order_when(&p, &free.order_id, |o| {
        o.status() == ppb::AccessoryOrderStatus::Delivered
            && o.replacement
                .as_ref()
                .is_some_and(|r| !r.faulty_received_on.is_empty())
    })
    .await;
    let label = both_back.replacement.unwrap().faulty_return_tracking_number;

    let steps = [
        "accessory_replacement_quoted",
        "accessory_order_paid",
        "accessory_order_shipped",
        "accessory_order_delivered",
        "accessory_replacement_free",
        "accessory_replacement_shipped",
        "accessory_order_delivered",
        "faulty_accessory_received",
    ];
    inbox(&notification, "cust-wei", |ns| {
        steps.iter().all(|step| ns.iter().any(|m| m.kind == *step))
            && ns
                .iter()
                .filter(|m| m.kind == "accessory_order_delivered")
                .count()
                == 2
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let inbox = inbox(&notification, "cust-wei", |_| true).await;
    let mut kinds: Vec<_> = inbox
        .iter()
        .map(|m| m.kind.as_str())
        .filter(|k| k.starts_with("accessory_") || k.starts_with("faulty_"))
        .collect();
    kinds.sort_unstable();
    let mut expected = steps.to_vec();
    expected.sort_unstable();
    assert_eq!(kinds, expected, "each step once");
    let quoted = inbox
        .iter()
        .find(|m| m.kind == "accessory_replacement_quoted")
        .unwrap();
    assert!(
        quoted.subject.contains("29.63") && quoted.subject.contains("更换"),
        "{}",
        quoted.subject
    );
    let send_back = inbox
        .iter()
        .find(|m| m.kind == "accessory_replacement_shipped")
        .unwrap();
    assert!(
        send_back.body.contains(&label),
        "the return number is in the message: {}",
        send_back.body
    );
    assert_eq!(
        delivered.version, 4,
        "placed, paid, shipped, delivered: each once"
    );
    no_dead_letters(&services).await;
    assert!(terminate(child).success());
}

/// The accessory order `id` once `done` says so.
async fn accessory_order_when(
    parts: &aftersales_proto::parts::parts_service_client::PartsServiceClient<
        tonic::transport::Channel,
    >,
    id: &str,
    done: impl Fn(&aftersales_proto::parts::AccessoryOrder) -> bool,
) -> aftersales_proto::parts::AccessoryOrder {
    aftersales_testkit::eventually(
        || {
            let (mut parts, order_id) = (parts.clone(), id.to_owned());
            async move {
                parts
                    .get_accessory_order(aftersales_proto::parts::AccessoryOrderRef {
                        order_id,
                        customer_id: String::new(),
                    })
                    .await
                    .unwrap()
                    .into_inner()
            }
        },
        done,
    )
    .await
}

/// Every service handled every event it was given: none gave up on one.
async fn no_dead_letters(services: &[String]) {
    use aftersales_proto::operations as opb;
    for address in services {
        let mut ops =
            opb::operations_client::OperationsClient::connect(format!("http://{address}"))
                .await
                .unwrap();
        let dead = ops
            .list_dead_letters(opb::ListDeadLettersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .dead_letters;
        assert!(dead.is_empty(), "{address}: {dead:?}");
    }
}

/// The customer's programme notices' subjects, once there are `at_least`.
async fn programme_notices(notification: &str, customer: &str, at_least: usize) -> Vec<String> {
    let notices = |ns: &Vec<aftersales_proto::notification::Notification>| {
        ns.iter()
            .filter(|n| n.kind == "programme_notice")
            .map(|n| n.subject.clone())
            .collect::<Vec<_>>()
    };
    notices(&inbox(notification, customer, |ns| notices(ns).len() >= at_least).await)
}

/// A recall that begins after Mei registered her phone tells her once, in
/// German, and never again however often the platform restarts; a phone she
/// registers while it runs is told at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::disallowed_methods)] // `up` runs on the real clock
async fn a_recall_tells_its_owner_once_in_her_language_across_restarts() {
    use aftersales_proto::notification as npb;
    let data = tempfile::tempdir().unwrap();
    let none = tempfile::tempdir().unwrap();
    let recall = tempfile::tempdir().unwrap();
    let in_batch = |n: u64| {
        let body = format!("{}", 35_209_900_200_000u64 + n);
        (0..10)
            .map(|d| format!("{body}{d}"))
            .find(|imei| aftersales_core::types::luhn_valid(imei))
            .unwrap()
    };
    let today = chrono::Utc::now().date_naive();
    let register = |imei: String| pb::RegisterDeviceRequest {
        device_id: Some(DeviceId {
            kind: Some(device_id::Kind::Imei(imei)),
        }),
        model: "Aurora 4".into(),
        purchase_date: (today - chrono::Duration::days(1200)).to_string(),
        country_of_purchase: Some(CountryCode { value: "DE".into() }),
        channel: pb::SalesChannel::RetailStore.into(),
        customer_id: "cust-mei".into(),
        ..Default::default()
    };
    let up_with_programmes = |dir: &std::path::Path| {
        up_services(
            data.path(),
            &[
                "--allow-unauthenticated",
                "--programmes",
                dir.to_str().unwrap(),
            ],
        )
    };

    // Registered before any programme: nothing to tell.
    let ([warranty, _, _, notification, _, _], child) = up_with_programmes(none.path());
    let mut n = aftersales_proto::notification::notification_service_client::NotificationServiceClient::connect(
        format!("http://{notification}"),
    )
    .await
    .unwrap();
    n.set_preferences(npb::Preferences {
        customer_id: "cust-mei".into(),
        language: "de".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut w = WarrantyServiceClient::connect(format!("http://{warranty}"))
        .await
        .unwrap();
    w.register_device(register(in_batch(1))).await.unwrap();
    inbox_kinds(&notification, "cust-mei", |k| {
        k.contains(&"device_registered".to_owned())
    })
    .await;
    assert!(terminate(child).success());

    // The recall begins: the sweep at start tells her, in German.
    let builtin = include_str!("../../warranty/programmes/programmes.toml");
    std::fs::write(
        recall.path().join("programmes.toml"),
        builtin.replace(
            "starts = \"2026-03-01\"",
            &format!("starts = \"{}\"", today - chrono::Duration::days(30)),
        ),
    )
    .unwrap();
    let ([_, _, _, notification, _, _], child) = up_with_programmes(recall.path());
    let notices = programme_notices(&notification, "cust-mei", 1).await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].contains("Sicherheitsrückruf"), "{notices:?}");
    assert!(terminate(child).success());

    // Started again: swept again, nobody told twice; a phone registered now is
    // told at registration.
    let ([warranty, _, _, notification, _, _], child) = up_with_programmes(recall.path());
    let mut w = WarrantyServiceClient::connect(format!("http://{warranty}"))
        .await
        .unwrap();
    let second = w
        .register_device(register(in_batch(2)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.programmes, ["A4-BAT-2026"]);
    let notices = programme_notices(&notification, "cust-mei", 2).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let settled = programme_notices(&notification, "cust-mei", 2).await;
    assert_eq!((notices.len(), settled.len()), (2, 2), "{settled:?}");
    let programmes = w
        .list_programmes(pb::ListProgrammesRequest {})
        .await
        .unwrap()
        .into_inner()
        .programmes;
    assert_eq!(programmes.len(), 1);
    assert_eq!(
        (programmes[0].id.as_str(), programmes[0].affected),
        ("A4-BAT-2026", 2)
    );
    assert!(terminate(child).success());
}

fn run(urls: &[&str], args: &[&str]) -> Result<String, String> {
    run_env(urls, &[], args)
}

/// `run` with more environment variables.
fn run_env(urls: &[&str], env: &[(&str, &str)], args: &[&str]) -> Result<String, String> {
    let parts = urls.get(4).map(|url| format!("http://{url}"));
    let support = urls.get(5).map(|url| format!("http://{url}"));
    let output = Command::new(env!("CARGO_BIN_EXE_aftersales"))
        .args(parts.iter().flat_map(|url| ["--parts-url", url.as_str()]))
        .args(
            support
                .iter()
                .flat_map(|url| ["--support-url", url.as_str()]),
        )
        .args([
            "--warranty-url",
            &format!("http://{}", urls[0]),
            "--repair-url",
            &format!("http://{}", urls[1]),
            "--logistics-url",
            &format!("http://{}", urls[2]),
            "--notification-url",
            &format!("http://{}", urls[3]),
        ])
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        // What a command writes (a plan's map) lands outside the repository.
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).unwrap())
    } else {
        Err(stderr)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_and_operator_commands_and_an_audit_that_catches_a_raw_edit() {
    let data = tempfile::tempdir().unwrap();
    let ([w, r, l, n, p, s], child) = up_services(data.path(), &["--allow-unauthenticated"]);
    let urls = [
        w.as_str(),
        r.as_str(),
        l.as_str(),
        n.as_str(),
        p.as_str(),
        s.as_str(),
    ];
    let imei = "352099001761481";
    #[allow(clippy::disallowed_methods)]
    let bought = (chrono::Utc::now().date_naive() - chrono::Duration::days(20)).to_string();
    run(
        &urls,
        &[
            "device",
            "register",
            "--imei",
            imei,
            "--model",
            "Aurora 5",
            "--purchased",
            &bought,
            "--country",
            "DE",
            "--customer",
            "cust-ops",
        ],
    )
    .unwrap();
    let extended: serde_json::Value = serde_json::from_str(
        &run(
            &urls,
            &[
                "--json", "warranty", "extend", "--imei", imei, "--plan", "care-12",
            ],
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(extended["pending_plan"]["plan"], "care-12", "{extended}");
    assert!(extended["extended_plan"].is_null(), "not before it is paid");
    // The sandbox's payment settles a moment later; then the plan is in force.
    let shown = aftersales_testkit::eventually(
        || async {
            serde_json::from_str::<serde_json::Value>(
                &run(&urls, &["--json", "device", "show", "--imei", imei]).unwrap(),
            )
            .unwrap()
        },
        |d| d["pending_plan"].is_null(),
    )
    .await;
    assert_eq!(shown["extended_plan"]["plan"], "care-12", "{shown}");

    let opened: serde_json::Value = serde_json::from_str(
        &run(
            &urls,
            &walk_in(&[
                "--json",
                "repair",
                "open",
                "--imei",
                imei,
                "--customer",
                "cust-ops",
                "--symptoms",
                "no sound",
                "--center",
                "sc-berlin-01",
            ]),
        )
        .unwrap(),
    )
    .unwrap();
    let order = opened["order_id"].as_str().unwrap().to_owned();
    // Berlin has the loudspeaker the diagnosis calls for.
    run(
        &urls,
        &[
            "parts",
            "receive",
            "--location",
            "sc-berlin-01",
            "--part",
            "A5-SPK",
            "--quantity",
            "2",
        ],
    )
    .unwrap();
    for step in [
        vec!["check-in", "--notes", "scratched"],
        vec!["diagnose", "--fault", "audio"],
        vec!["start"],
        vec!["qc-fail", "--notes", "crackle"],
        vec!["qc-pass"],
        vec!["ready"],
        vec!["collected"],
    ] {
        let mut args = vec!["--json", "repair", "advance", "--order", &order, "--step"];
        args.extend(step.iter().copied());
        run(&urls, &args).unwrap_or_else(|e| panic!("{step:?}: {e}"));
    }
    let shown: serde_json::Value = serde_json::from_str(
        &run(&urls, &["--json", "repair", "show", "--order", &order]).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (shown["stage"].as_str(), shown["qc_failures"].as_u64()),
        (Some("closed"), Some(1))
    );
    // The customer's words are withheld from staff until opened for a purpose,
    // and the opening is a step of the order's timeline.
    assert_eq!(
        (&shown["symptoms"], &shown["personal_withheld"]),
        (&serde_json::Value::Null, &serde_json::Value::Bool(true))
    );
    let refused = run(
        &urls,
        &[
            "repair",
            "personal",
            "--order",
            &order,
            "--purpose",
            "curiosity",
        ],
    )
    .unwrap_err();
    assert!(refused.contains("--purpose"), "{refused}");
    let opened: serde_json::Value = serde_json::from_str(
        &run(
            &urls,
            &[
                "--json",
                "repair",
                "personal",
                "--order",
                &order,
                "--purpose",
                "complaint",
            ],
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(opened["symptoms"], "no sound");
    let timeline = run(&urls, &["repair", "timeline", "--order", &order]).unwrap();
    assert!(
        timeline
            .lines()
            .last()
            .is_some_and(|l| l.contains("PersonalDataAccessed")),
        "{timeline}"
    );
    let refused = run(
        &urls,
        &["repair", "advance", "--order", &order, "--step", "start"],
    )
    .unwrap_err();
    assert!(
        refused.contains("FailedPrecondition") && refused.contains("closed"),
        "{refused}"
    );

    let inbox = aftersales_testkit::eventually(
        || async { run(&urls, &["notify", "inbox", "--customer", "cust-ops"]).unwrap() },
        |text| text.contains("ready for pickup"),
    )
    .await;
    assert!(inbox.contains("unread"), "{inbox}");
    let walk_in = run(&urls, &["shipment", "track", "--order", &order]).unwrap_err();
    assert!(walk_in.contains("no shipments"), "{walk_in}");

    let verified = run(&urls, &["audit", "verify", "--device", imei]).unwrap();
    assert!(
        verified.contains("warranty: intact") && verified.contains("repair:   intact"),
        "{verified}"
    );
    let export = run(&urls, &["audit", "export", "--device", imei]).unwrap();
    let lines: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["service"] == "warranty" && l["type"] == "ExtendedWarrantyPurchased")
    );
    assert!(
        lines
            .iter()
            .any(|l| l["service"] == "repair" && l["type"] == "QcFailed")
    );
    // The last line counts what the export holds, as verification counts it.
    let (summary, events) = lines.split_last().unwrap();
    assert!(
        events
            .iter()
            .all(|l| l["hash"].as_str().is_some_and(|h| h.len() == 64)),
        "every event has its hash"
    );
    let summary = &summary["summary"];
    let of = |service: &str| events.iter().filter(|l| l["service"] == service).count();
    assert_eq!(
        summary["warranty_events"].as_u64(),
        Some(of("warranty") as u64)
    );
    assert_eq!(summary["repair_events"].as_u64(), Some(of("repair") as u64));
    assert!(
        verified.contains(&format!(
            "repair:   intact ({} orders, {} events)",
            summary["repair_orders"], summary["repair_events"]
        )) && verified.contains(&format!("({} events)", summary["warranty_events"])),
        "{verified}\n{summary}"
    );

    // The desk from the command line: a hotline case answered and resolved,
    // then the week's figures as CSV; a bad category is named.
    let opened = run(
        &urls,
        &[
            "--json",
            "support",
            "open",
            "--customer",
            "cust-cli",
            "--country",
            "DE",
            "--language",
            "de",
            "--category",
            "hardware",
            "--subject",
            "Display flackert",
            "--text",
            "Seit dem Update flackert das Display.",
        ],
    )
    .unwrap();
    let opened: serde_json::Value = serde_json::from_str(opened.trim()).unwrap();
    let case = opened["case_id"].as_str().unwrap().to_owned();
    let team = opened["team_id"].as_str().unwrap().to_owned();
    if opened["agent_id"].as_str() == Some("") {
        // Nobody on shift at this hour: an operator names the agent.
        let teams = SupportServiceClient::connect(format!("http://{s}"))
            .await
            .unwrap()
            .list_teams(spb::ListTeamsRequest {})
            .await
            .unwrap()
            .into_inner()
            .teams;
        let agent = &teams.iter().find(|t| t.team_id == team).unwrap().agent_ids[0];
        SupportServiceClient::connect(format!("http://{s}"))
            .await
            .unwrap()
            .assign_case(spb::AssignCaseRequest {
                case_id: case.clone(),
                agent_id: agent.clone(),
            })
            .await
            .unwrap();
    }
    run(
        &urls,
        &[
            "support",
            "reply",
            "--case",
            &case,
            "--text",
            "Bitte neu starten.",
        ],
    )
    .unwrap();
    let resolved = run(
        &urls,
        &[
            "support",
            "resolve",
            "--case",
            &case,
            "--summary",
            "Neustart half.",
        ],
    )
    .unwrap();
    assert!(resolved.contains("resolved"), "{resolved}");
    let shown = run(&urls, &["support", "show", "--case", &case]).unwrap();
    assert!(
        shown.contains("Bitte neu starten.") && shown.contains("CaseResolved"),
        "{shown}"
    );
    let csv = aftersales_testkit::eventually(
        || async { run(&urls, &["support", "quality", "--group", "team", "--csv"]).unwrap() },
        |csv| csv.contains(&format!(",{team},1,")),
    )
    .await;
    assert!(csv.starts_with("week,team,cases_resolved,"), "{csv}");
    let bad = run(
        &urls,
        &[
            "support",
            "open",
            "--customer",
            "c",
            "--country",
            "DE",
            "--language",
            "de",
            "--category",
            "teleport",
            "--subject",
            "s",
            "--text",
            "t",
        ],
    )
    .unwrap_err();
    assert!(
        bad.contains("--category: \"teleport\" is not one of hardware"),
        "{bad}"
    );

    assert!(terminate(child).success());

    // Operators, on the stopped platform's files.
    let dir = data.path().to_str().unwrap();
    for service in ["warranty", "repair", "logistics", "notification"] {
        run(
            &urls,
            &["projections", "rebuild", service, "--data-dir", dir],
        )
        .unwrap();
    }
    let unknown = run(
        &urls,
        &[
            "projections",
            "rebuild",
            "repair",
            "nonsense",
            "--data-dir",
            dir,
        ],
    )
    .unwrap_err();
    assert!(unknown.contains("no projection"), "{unknown}");
    let letters = run(&urls, &["dlq", "list", "--embedded", "--data-dir", dir]);
    assert!(letters.is_ok(), "{letters:?}");

    // One raw SQL edit, past the guard trigger: the audit catches it.
    let db = format!("sqlite:{}", data.path().join("warranty.db").display());
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    sqlx::raw_sql(
        "DROP TRIGGER events_no_update; \
         UPDATE events SET payload = replace(payload, 'Aurora 5', 'Aurora 9') \
         WHERE event_type = 'DeviceRegistered';",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let (w, r, l, n, child) = up_all(data.path());
    let urls = [w.as_str(), r.as_str(), l.as_str(), n.as_str()];
    let broken = run(&urls, &["audit", "verify", "--device", imei]).unwrap_err();
    assert!(broken.contains("tampered"), "{broken}");
    assert!(terminate(child).success());
}

#[test]
fn bad_input_gets_a_clear_message_and_a_non_zero_exit() {
    let urls = ["127.0.0.1:1", "127.0.0.1:1", "127.0.0.1:1", "127.0.0.1:1"];
    let unknown = run(&urls, &["device", "show", "--imie", "352099001761481"]).unwrap_err();
    assert!(
        unknown.contains("unexpected argument '--imie'"),
        "{unknown}"
    );
    let luhn = run(&urls, &["device", "show", "--imei", "352099001761482"]).unwrap_err();
    assert!(luhn.contains("check digit"), "{luhn}");
    let short = run(
        &urls,
        &[
            "repair",
            "open",
            "--imei",
            "12345",
            "--customer",
            "c",
            "--symptoms",
            "x",
        ],
    )
    .unwrap_err();
    assert!(short.contains("15 digits"), "{short}");
    let down = run(&urls, &["device", "show", "--imei", "352099001761481"]).unwrap_err();
    assert!(
        down.contains("cannot reach warranty at http://127.0.0.1:1"),
        "{down}"
    );
    let down = run(&urls, &["notify", "inbox", "--customer", "c"]).unwrap_err();
    assert!(down.contains("cannot reach notification"), "{down}");
    let step = run(
        &urls,
        &["repair", "advance", "--order", "o", "--step", "teleport"],
    )
    .unwrap_err();
    assert!(step.contains("invalid value 'teleport'"), "{step}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_data_has_repairs_in_every_stage_and_is_seeded_once() {
    use rpb::Stage as S;
    let data = tempfile::tempdir().unwrap();
    let (_, repair, _, _, child) = up_with(data.path(), &["--demo", "--allow-unauthenticated"]);
    let r = RepairServiceClient::connect(format!("http://{repair}"))
        .await
        .unwrap();
    let centers = [
        "sc-berlin-01",
        "sc-paris-01",
        "sc-madrid-01",
        "sc-shanghai-01",
        "sc-bengaluru-01",
        "sc-newyork-01",
        "sc-sydney-01",
        "sc-johannesburg-01",
    ];
    let every = [
        S::Opened,
        S::Received,
        S::Diagnosed,
        S::Quoted,
        S::Approved,
        S::InRepair,
        S::QcPassed,
        S::ReadyForReturn,
        S::Closed,
        S::Cancelled,
    ];
    let stages = || {
        let r = r.clone();
        async move {
            let mut stages = std::collections::BTreeSet::new();
            let mut orders = 0;
            for center in centers {
                let listed = r
                    .clone()
                    .list_repairs_by_center(rpb::ListRepairsByCenterRequest {
                        service_center_id: center.into(),
                        stage: 0,
                        page_size: 50,
                        page_token: String::new(),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .repairs;
                // The history's orders are India's weeks past, all closed.
                let listed: Vec<_> = listed
                    .into_iter()
                    .filter(|o| !o.customer_id.starts_with("demo-in-"))
                    .collect();
                orders += listed.len();
                stages.extend(listed.iter().map(|o| o.stage));
            }
            (stages, orders)
        }
    };
    // Eleven walk-in orders (the twelfth device is sent by mail, to no center).
    let (seen, orders) = aftersales_testkit::eventually(stages, |(s, n)| {
        *n == 11 && every.iter().all(|stage| s.contains(&i32::from(*stage)))
    })
    .await;
    assert_eq!(orders, 11);
    for stage in every {
        assert!(
            seen.contains(&i32::from(stage)),
            "{stage:?} missing: {seen:?}"
        );
    }
    // Twelve weeks of India's history: Delhi stands out, and the first new point
    // goes where most customers are beyond reach.
    let india = || Some(CountryCode { value: "IN".into() });
    let quality = r
        .clone()
        .get_network_quality(rpb::GetNetworkQualityRequest {
            country: india(),
            weeks: 16,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let delhi = &quality.summary[0];
    assert_eq!(delhi.service_center_id, "sc-delhi-01", "{quality:?}");
    let flagged: Vec<_> = delhi.flags.iter().map(|f| f.figure.as_str()).collect();
    assert_eq!(
        flagged,
        ["turnaround_p90_hours", "repeat_rate", "qc_failure_rate"]
    );
    assert!(quality.summary[1..].iter().all(|row| row.flags.is_empty()));
    let weeks: std::collections::BTreeSet<_> = quality.weeks.iter().map(|w| &w.week).collect();
    // Twelve weeks of history, and this week's demo orders at Bengaluru.
    assert_eq!(weeks.len(), 13, "{weeks:?}");
    let demand = r
        .clone()
        .list_demand_areas(rpb::ListDemandAreasRequest { country: india() })
        .await
        .unwrap()
        .into_inner();
    let beyond: u64 = demand
        .areas
        .iter()
        .filter(|a| a.nearest_center_km.unwrap_or(f64::MAX) > 50.0)
        .map(|a| a.customers)
        .sum();
    let biggest = demand
        .areas
        .iter()
        .filter(|a| a.nearest_center_km.unwrap_or(f64::MAX) > 50.0)
        .max_by_key(|a| a.customers)
        .unwrap();
    let plan = r
        .clone()
        .plan_network(rpb::PlanNetworkRequest {
            country: india(),
            new_points: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plan.before.unwrap().beyond_reach, beyond);
    assert_eq!(plan.choices[0].city, biggest.city, "{plan:?}");
    assert!(beyond > 40 && biggest.customers >= 10, "{demand:?}");
    assert!(terminate(child).success());
    // Started again with --demo, nothing is added.
    let (_, repair, _, _, child) = up_with(data.path(), &["--demo", "--allow-unauthenticated"]);
    let r = RepairServiceClient::connect(format!("http://{repair}"))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mut again = 0;
    for center in centers {
        again += r
            .clone()
            .list_repairs_by_center(rpb::ListRepairsByCenterRequest {
                service_center_id: center.into(),
                stage: 0,
                page_size: 50,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .repairs
            .iter()
            .filter(|o| !o.customer_id.starts_with("demo-in-"))
            .count();
    }
    assert_eq!(again, orders, "seeded once");
    assert!(terminate(child).success());
}

/// The commands of the README's "With the platform up" block, one per line, with
/// continuations joined and comments dropped.
/// A 16 × 16 PNG: a photo of a device's condition, as far as tests go.
const FRAME_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x10, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x91, 0x68,
    0x36, 0x00, 0x00, 0x00, 0x16, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x38, 0x61, 0xa3, 0x41,
    0x12, 0x62, 0x18, 0xd5, 0x30, 0xaa, 0x61, 0xf8, 0x6a, 0x00, 0x00, 0x1e, 0x04, 0x2c, 0x10, 0x31,
    0xdf, 0x9a, 0xa9, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// The claims of an audit export's signature, once it verifies against `keys`
/// (the gateway's JWK Set) and its digest is the document's.
fn verify_export(
    file: &serde_json::Value,
    keys: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let signature = file["signature"].as_str().ok_or("no signature")?;
    let document = file["document"].as_str().ok_or("no document")?;
    let kid = jsonwebtoken::decode_header(signature)
        .map_err(|e| e.to_string())?
        .kid
        .ok_or("no key id")?;
    let key = keys["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid.as_str()))
        .ok_or("not a published key")?;
    let key = jsonwebtoken::DecodingKey::from_ec_components(
        key["x"].as_str().unwrap_or_default(),
        key["y"].as_str().unwrap_or_default(),
    )
    .map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<serde_json::Value>(signature, &key, &validation)
        .map_err(|e| e.to_string())?
        .claims;
    let digest = ring::digest::digest(&ring::digest::SHA256, document.as_bytes());
    let digest: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    if claims["sha256"] != digest.as_str() {
        return Err("the document is not the one signed".into());
    }
    Ok(claims)
}

fn readme_commands() -> Vec<String> {
    let readme = include_str!("../../../README.md");
    let block = readme
        .split("With the platform up, from another terminal")
        .nth(1)
        .and_then(|rest| rest.split("```sh").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("the README's example block");
    let mut commands: Vec<String> = Vec::new();
    let mut continued = false;
    for line in block.lines() {
        let code = line.split('#').next().unwrap_or_default().trim_end();
        let (code, continues) = match code.strip_suffix('\\') {
            Some(code) => (code, true),
            None => (code, false),
        };
        if continued {
            if let Some(last) = commands.last_mut() {
                last.push(' ');
                last.push_str(code.trim());
            }
        } else if let Some(command) = code.trim().strip_prefix("aftersales ") {
            commands.push(command.to_owned());
        }
        continued = continues;
    }
    commands
}

/// Splits a command line into words as a shell would for plain and double-quoted words.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

/// `aftersales up --demo` with its identity provider and email to a real SMTP
/// listener, and a config directory of its own for the tool's sign-in.
struct SignedIn {
    data: tempfile::TempDir,
    config: tempfile::TempDir,
    smtp: aftersales_testkit::SmtpServer,
    /// Warranty, repair, logistics, notification, parts and support, as `up` says them.
    services: [String; 6],
    issuer: String,
    web: String,
    process: Process,
}

impl SignedIn {
    fn start() -> Self {
        Self::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Self {
        let data = tempfile::tempdir().unwrap();
        let smtp = aftersales_testkit::SmtpServer::start().unwrap();
        let url = smtp.url();
        let args: Vec<&str> = ["--demo", "--smtp-url", url.as_str()]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        let mut child = up_command(data.path(), &args).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut services = Vec::new();
        let mut web = String::new();
        let issuer = loop {
            let line = lines.next().unwrap().unwrap();
            if let Some(address) = line.split("grpc://").nth(1) {
                services.push(address.trim().to_owned());
            }
            if let Some(url) = line.strip_prefix("web") {
                url.trim().clone_into(&mut web);
            }
            if let Some(url) = line.strip_prefix("identity") {
                break url.trim().to_owned();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            data,
            config: tempfile::tempdir().unwrap(),
            smtp,
            services: services.try_into().unwrap(),
            issuer,
            web,
            process: Process(child),
        }
    }

    /// The five services the tool's commands reach (support has none yet).
    fn urls(&self) -> [&str; 6] {
        std::array::from_fn(|i| self.services[i].as_str())
    }

    /// The tool's environment: this platform's provider and sign-in.
    fn env(&self) -> [(&str, &str); 2] {
        [
            (
                "AFTERSALES_CONFIG_DIR",
                self.config.path().to_str().unwrap(),
            ),
            ("AFTERSALES_ISSUER_URL", self.issuer.as_str()),
        ]
    }
}

/// The demo accounts' passwords and authenticator secrets, as `up` keeps them.
async fn demo_accounts(
    data: &std::path::Path,
) -> std::collections::BTreeMap<String, (String, String)> {
    let path = data.join("demo-accounts.txt");
    // Written once `up` has created them, after it prints its addresses.
    let text = aftersales_testkit::eventually(
        || async { std::fs::read_to_string(&path).unwrap_or_default() },
        |text| text.lines().count() > 5,
    )
    .await;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let secret = f.get(3).copied().unwrap_or_default().to_owned();
            (f[1].to_owned(), (f[2].to_owned(), secret))
        })
        .collect()
}

/// The code in the sign-in email number `seen` (from 0) to `address`.
async fn code_sent_to(smtp: &aftersales_testkit::SmtpServer, address: &str, seen: usize) -> String {
    let code_in = |mail: &String| -> Option<String> {
        let mail = aftersales_testkit::smtp::readable(mail);
        if !mail.contains(&format!("To: {address}")) {
            return None;
        }
        // The demo customer reads German.
        let line = mail.lines().find(|l| l.contains("Anmeldecode lautet"))?;
        line.split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .map(str::to_owned)
    };
    let codes = aftersales_testkit::eventually(
        || async {
            smtp.messages()
                .iter()
                .filter_map(code_in)
                .collect::<Vec<_>>()
        },
        |codes| codes.len() > seen,
    )
    .await;
    codes[seen].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_examples_work_as_written_after_the_demo() {
    let commands = readme_commands();
    assert!(commands.len() >= 8, "{commands:?}");
    let up = SignedIn::start();
    let (urls, env, smtp) = (up.urls(), up.env(), &up.smtp);
    let accounts = demo_accounts(up.data.path()).await;
    let (agent_password, _) = &accounts["agent-de-anna"];
    // Not signed in: refused, with a hint.
    let refused = run_env(
        &urls,
        &env,
        &["device", "show", "--imei", "356938035643809"],
    )
    .unwrap_err();
    assert!(
        refused.contains("Unauthenticated") && refused.contains("aftersales login"),
        "{refused}"
    );
    run_env(
        &urls,
        &env,
        &[
            "login",
            "--username",
            "agent-de-anna",
            "--password",
            agent_password,
        ],
    )
    .unwrap();
    // The demo's devices are registered first; wait until they are.
    aftersales_testkit::eventually(
        || async {
            run_env(
                &urls,
                &env,
                &["device", "show", "--imei", "356938035643809"],
            )
            .is_ok()
        },
        |seeded| *seeded,
    )
    .await;
    let mut order = String::new();
    let mut accessory_order = String::new();
    let mut codes_sent = 0;
    for command in &commands {
        let mut command = command
            .replace("<id>", &order)
            .replace("<accessory-order>", &accessory_order);
        if let Some(username) = command.strip_prefix("login --username ") {
            let username = username.split_whitespace().next().unwrap();
            command = command.replace("<password>", &accounts[username].0);
        }
        let args = words(&command);
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        // A walk-in on a day Berlin is closed is booked for the next (as the
        // README says, with --day).
        if command.starts_with("repair open") && args.contains(&"--center") {
            args = walk_in(&args);
        }
        if let Some(address) = command.strip_prefix("login --email ") {
            // The tool asks for the code the customer finds in her email.
            let mut login = Command::new(env!("CARGO_BIN_EXE_aftersales"))
                .args(&args)
                .envs(env)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let code = code_sent_to(smtp, address.trim(), codes_sent).await;
            codes_sent += 1;
            std::io::Write::write_all(
                &mut login.stdin.take().unwrap(),
                format!("{code}\n").as_bytes(),
            )
            .unwrap();
            let output = login.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "{command}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            continue;
        }
        if args.get(1) == Some(&"watch") {
            // A live stream: it prints the order, then waits for more.
            let mut watch = Command::new(env!("CARGO_BIN_EXE_aftersales"))
                .args(["--repair-url", &format!("http://{}", urls[1])])
                .args(&args)
                .envs(env)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut first = String::new();
            BufReader::new(watch.stdout.take().unwrap())
                .read_line(&mut first)
                .unwrap();
            let _ = watch.kill();
            let _ = watch.wait();
            assert!(first.contains(&order), "{command}: {first}");
            continue;
        }
        // A mail-in order's label comes a moment after the order, from logistics.
        let out = if command.starts_with("shipment track") {
            aftersales_testkit::eventually(|| async { run_env(&urls, &env, &args) }, Result::is_ok)
                .await
        } else {
            run_env(&urls, &env, &args)
        }
        .unwrap_or_else(|e| panic!("aftersales {command}: {e}"));
        if command.starts_with("device coverage") {
            assert!(
                out.contains("covered") && !out.contains("not covered"),
                "{command}: {out}"
            );
        }
        if command == "whoami" {
            assert!(out.contains("demo-lena as customer"), "{out}");
        }
        let id_in = |out: &str| {
            out.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
                .find(|w| uuid::Uuid::parse_str(w).is_ok())
                .unwrap_or_else(|| panic!("no order id in: {out}"))
                .to_owned()
        };
        if command.starts_with("repair open") {
            order = id_in(&out);
        }
        if command.starts_with("parts order ") {
            assert!(
                out.contains("awaiting_payment") && out.contains("MwSt."),
                "{out}"
            );
            accessory_order = id_in(&out);
        }
    }
    assert!(!order.is_empty(), "the README opens a repair");
    assert!(!accessory_order.is_empty(), "the README orders accessories");
    assert!(codes_sent > 0, "the README signs a customer in");
    let after = run_env(
        &urls,
        &env,
        &["device", "show", "--imei", "356938035643809"],
    )
    .unwrap_err();
    assert!(after.contains("Unauthenticated"), "signed out: {after}");
    assert!(terminate(up.process).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_keeps_tokens_private_renews_them_and_guards_each_persons_objects() {
    use std::os::unix::fs::PermissionsExt as _;
    let up = SignedIn::start();
    let (urls, env, smtp, issuer) = (up.urls(), up.env(), &up.smtp, &up.issuer);
    let accounts = demo_accounts(up.data.path()).await;
    assert_eq!(
        std::fs::metadata(up.data.path().join("demo-accounts.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // The operator needs the authenticator's code as well as the password.
    let (ops_password, secret) = &accounts["ops"];
    let refused = run_env(
        &urls,
        &env,
        &["login", "--username", "ops", "--password", ops_password],
    )
    .unwrap_err();
    assert!(refused.contains("--totp"), "{refused}");
    let code = aftersales_identity::secrets::totp_now(secret).unwrap();
    run_env(
        &urls,
        &env,
        &[
            "login",
            "--username",
            "ops",
            "--password",
            ops_password,
            "--totp",
            &code,
        ],
    )
    .unwrap();
    let credentials = up.config.path().join("credentials.json");
    assert_eq!(
        std::fs::metadata(&credentials)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600,
        "the tokens are the user's alone"
    );
    assert!(
        run_env(&urls, &env, &["whoami"])
            .unwrap()
            .contains("ops as operator")
    );

    // A customer, by the code in her email, two steps for a script.
    let sent = reqwest::Client::new()
        .post(format!("{issuer}/one-time-code"))
        .form(&[("address", "demo-lena@example.com")])
        .send()
        .await
        .unwrap();
    assert!(sent.status().is_success());
    let code = code_sent_to(smtp, "demo-lena@example.com", 0).await;
    run_env(
        &urls,
        &env,
        &["login", "--email", "demo-lena@example.com", "--code", &code],
    )
    .unwrap();
    let inbox = |customer: &str| run_env(&urls, &env, &["notify", "inbox", "--customer", customer]);
    aftersales_testkit::eventually(|| async { inbox("demo-lena") }, Result::is_ok)
        .await
        .unwrap();
    let others = inbox("demo-jonas").unwrap_err();
    assert!(others.contains("PermissionDenied"), "{others}");

    // Run out the access token: the next command renews it with the refresh
    // token, which rotates.
    let mut kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&credentials).unwrap()).unwrap();
    let first_refresh = kept["refresh_token"].as_str().unwrap().to_owned();
    kept["expires_at"] = 0.into();
    std::fs::write(&credentials, kept.to_string()).unwrap();
    inbox("demo-lena").unwrap();
    let renewed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&credentials).unwrap()).unwrap();
    assert_ne!(renewed["refresh_token"].as_str().unwrap(), first_refresh);
    assert!(renewed["expires_at"].as_u64().unwrap() > 0);
    // The old refresh token, replayed (as a thief would): refused, and the
    // session it belongs to ends.
    let replayed = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first_refresh),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status().as_u16(), 400);
    let mut expired = renewed.clone();
    expired["expires_at"] = 0.into();
    std::fs::write(&credentials, expired.to_string()).unwrap();
    let ended = inbox("demo-lena").unwrap_err();
    assert!(ended.contains("aftersales login"), "{ended}");

    // Guessing a code: five wrong ones lock the address, the right one too.
    let sent = reqwest::Client::new()
        .post(format!("{issuer}/one-time-code"))
        .form(&[("address", "demo-lena@example.com")])
        .send()
        .await
        .unwrap();
    assert!(sent.status().is_success());
    let right = code_sent_to(smtp, "demo-lena@example.com", 1).await;
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let answer = reqwest::Client::new()
            .post(format!("{issuer}/token"))
            .form(&[
                (
                    "grant_type",
                    "urn:aftersales:params:oauth:grant-type:one-time-code",
                ),
                ("address", "demo-lena@example.com"),
                ("code", wrong),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(statuses, [400, 400, 400, 400, 429]);
    let locked = run_env(
        &urls,
        &env,
        &[
            "login",
            "--email",
            "demo-lena@example.com",
            "--code",
            &right,
        ],
    )
    .unwrap_err();
    assert!(locked.contains("too many attempts"), "{locked}");
    assert!(terminate(up.process).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_follows_her_repair_live_in_a_real_browser() {
    use fantoccini::Locator;

    // Parcels move one scan every 15 s: the label and drop-off code are there
    // to be seen before the carrier takes the parcel, and the scan is seen live.
    let up = SignedIn::start_with(&["--sandbox-step-millis", "15000"]);
    let (urls, env) = (up.urls(), up.env());
    let accounts = demo_accounts(up.data.path()).await;
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    eprintln!("screenshots in {}", shots.display());
    let browser = Browser::start().await;
    let b = &browser.client;

    // Signing in with the code from her email, in German.
    b.goto(&format!("{}/sign-in?lang=de", up.web))
        .await
        .unwrap();
    assert_eq!(
        browser.js("return document.documentElement.lang").await,
        "de"
    );
    browser.screenshots(&shots, "sign-in").await;
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    // The published repair prices, a link away before anyone signs in: Germany's
    // for a German reader, then India's with GST.
    browser.submit_and_reload("footer a").await;
    assert!(browser.text("#prices caption").await.contains(", DE."));
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    browser.submit("#country option[value='IN']").await;
    browser.submit_and_reload("main form button").await;
    assert!(
        browser.text("#tax-note").await.contains("GST"),
        "{}",
        b.source().await.unwrap()
    );
    assert!(browser.text("#prices").await.contains('₹'));
    browser.screenshots(&shots, "prices").await;
    b.goto(&format!("{}/sign-in?lang=de", up.web))
        .await
        .unwrap();
    browser.fill("#address", "demo-lena@example.com").await;
    browser.submit("main form button").await;
    if b.wait().for_element(Locator::Css("#code")).await.is_err() {
        panic!("no code page: {}", b.source().await.unwrap());
    }
    let code = code_sent_to(&up.smtp, "demo-lena@example.com", 0).await;
    browser.fill("#code", &code).await;
    browser.submit("main form button").await;
    b.wait().for_element(Locator::Css(".cards")).await.unwrap();
    browser.screenshots(&shots, "devices").await;
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    // Installable: the service worker runs and has the offline page at hand.
    let offline = b
        .execute_async(
            "const done = arguments[arguments.length - 1];
             navigator.serviceWorker.ready
               .then(r => caches.match('/offline'))
               .then(page => page ? page.text() : '')
               .then(text => done(text.includes('Sie sind offline')))
               .catch(e => done(String(e)));",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(offline, true, "the offline page is cached, in her language");
    let devices = browser.text("main").await;
    assert!(devices.contains("Meine Geräte"), "{devices}");
    assert!(devices.contains("Aurora 5"), "{devices}");
    assert_eq!(
        browser
            .js("return document.cookie.indexOf('aftersales_session')")
            .await,
        -1,
        "the session cookie is out of the page's reach (HttpOnly)"
    );

    // She adds a phone by its IMEI, checked as she types and by the server.
    b.goto(&format!("{}/devices/add", up.web)).await.unwrap();
    browser.fill("#imei", "354672109876547").await;
    assert_eq!(
        browser.text("#imei-check").await,
        "Das ist keine gültige IMEI: Bitte die Ziffern prüfen.",
        "a wrong check digit is seen as she types"
    );
    assert_eq!(
        browser
            .js("return document.getElementById('imei').validity.valid")
            .await,
        false
    );
    browser
        .js("document.getElementById('imei').value = ''; return true")
        .await;
    browser.fill("#imei", "354672109876548").await;
    assert_eq!(
        browser.text("#imei-check").await,
        "Die IMEI sieht richtig aus."
    );
    browser.fill("#model", "Aurora 5 Pro").await;
    b.find(Locator::Css("#country option[value=DE]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .js("document.getElementById('purchased').value = '2026-11-20'; return true")
        .await;
    browser.screenshots(&shots, "add-device").await;
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    browser.submit("#add-device button").await;
    if b.wait()
        .for_element(Locator::Css("#coverage"))
        .await
        .is_err()
    {
        panic!("not added: {}", browser.text("main").await);
    }
    let coverage = browser.text("#coverage").await;
    assert!(
        coverage.contains("24 Monate ab 20. November 2026, bis 20. November 2028"),
        "in plain words, citing the terms and their dates: {coverage}"
    );
    assert!(coverage.contains("de-consumer v3"), "{coverage}");

    // What a cracked display would get; then a plan on offer, and a charger.
    b.find(Locator::Css("#fault option[value=display]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .submit("form[aria-labelledby=ask-title] button")
        .await;
    b.wait().for_element(Locator::Css("#answer")).await.unwrap();
    let answer = browser.text("#answer").await;
    assert!(answer.starts_with("Abgedeckt"), "{answer}");
    assert!(answer.contains("kostenlose Reparatur"), "{answer}");
    // The decision cites its rule, its dates and where the figure comes from,
    // and says that a repair now is a remedy under the legal guarantee.
    assert!(
        answer.contains(
            "Regel: die Herstellergarantie, vom 20. November 2026 bis 20. November 2028."
        ),
        "{answer}"
    );
    assert!(
        answer.contains("Quelle: The maker's limited warranty for Germany"),
        "{answer}"
    );
    assert!(answer.contains("gesetzlichen Gewährleistung"), "{answer}");
    // (WebDriver reads the no-break space before the euro sign as a space.)
    let offers = browser.text("#buy-plan").await;
    assert!(
        offers.contains("79,00 €"),
        "money as German writes it: {offers}"
    );
    browser.screenshots(&shots, "device").await;
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    browser.submit("#buy-plan button").await;
    aftersales_testkit::eventually(
        || async {
            b.refresh().await.unwrap();
            browser.text("#coverage").await
        },
        |coverage| coverage.contains("Garantieverlängerung care-12: bis 20. November 2029"),
    )
    .await;
    browser.fill("#accessory-serial", "CHG-0042").await;
    browser
        .js("document.getElementById('accessory-purchased').value = '2026-11-20'; return true")
        .await;
    browser.submit("#add-accessory button").await;
    b.wait()
        .for_element(Locator::Css("#accessories"))
        .await
        .unwrap();
    assert!(
        browser
            .text("#accessories")
            .await
            .contains("Ladegerät · CHG-0042")
    );

    // The new phone's display fails: she sends it in by mail, to an address
    // in Germany's format, and gets a label and a drop-off code.
    b.goto(&format!("{}/help?imei=354672109876548", up.web))
        .await
        .unwrap();
    b.find(Locator::Css("#help-fault option[value=display]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .fill("#help-symptoms", "Stripes across the screen")
        .await;
    browser.submit("#problem button[type=submit]").await;
    if b.wait()
        .for_element(Locator::Css("#mail-in-form"))
        .await
        .is_err()
    {
        panic!("no choices: {}", browser.text("main").await);
    }
    let centers = browser.text("#centers").await;
    assert!(centers.contains("Aftersales Berlin Mitte"), "{centers}");
    assert!(centers.contains("Entfernungen ab Berlin"), "{centers}");
    assert_eq!(
        browser
            .js("return [...document.querySelectorAll('#mail-in-form fieldset input')].map(i => i.name)")
            .await,
        serde_json::json!(["recipient", "line1", "line2", "postal_code", "city", "phone"]),
        "a German address: street, then postal code and city"
    );
    browser.screenshots(&shots, "help").await;
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    browser.fill("#address-recipient", "Lena Schmidt").await;
    browser.fill("#address-line1", "Torstraße 1").await;
    browser.fill("#address-postal_code", "1011").await;
    browser.fill("#address-city", "Berlin").await;
    browser.submit("#mail-in-form button").await;
    b.wait().for_element(Locator::Css("#notice")).await.unwrap();
    assert!(
        browser
            .text("#notice")
            .await
            .contains("\"1011\" is not a DE postal code"),
        "a postal code Germany does not have is refused before anything is written"
    );
    // (The page kept what she typed: one more digit makes it 10115.)
    browser.fill("#address-postal_code", "5").await;
    browser.submit("#mail-in-form button").await;
    if b.wait()
        .for_element(Locator::Css("#stepper"))
        .await
        .is_err()
    {
        panic!("not opened: {}", browser.text("main").await);
    }
    assert_eq!(
        browser
            .js("return document.getElementById('stage-label').dataset.stage")
            .await,
        "STAGE_AWAITING_DEVICE"
    );
    // The carrier's code (the sandbox's start SB) appears once logistics made
    // the parcel, on the page as it is.
    browser.js("window.stillThisPage = true; return true").await;
    aftersales_testkit::eventually(
        || async {
            match b.find(Locator::Css(".drop-off-code")).await {
                Ok(code) => code.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            }
        },
        |code| code.starts_with("SB"),
    )
    .await;
    let handed_in = browser.text(".parcel-status").await;
    browser.screenshots(&shots, "mail-in").await;
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    let label = browser
        .js("return fetch(document.querySelector('.label-link').href).then(r => r.headers.get('content-type') + ' ' + r.headers.get('content-security-policy'))")
        .await;
    assert_eq!(
        label,
        "image/svg+xml default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox",
        "the carrier's label, printable and unable to run anything"
    );
    // The carrier scans it (the sandbox's first step): the parcel's status
    // moves on this page, live.
    let scanned = aftersales_testkit::eventually(
        || async {
            browser
                .js("return [document.querySelector('.parcel-status').textContent, window.stillThisPage === true]")
                .await
        },
        |v| v[0] != handed_in.as_str(),
    )
    .await;
    assert_eq!(scanned[1], true, "the page was not reloaded: {scanned}");
    // And who has the phone now: the carrier.
    aftersales_testkit::eventually(
        || async {
            browser
                .js("const c = document.getElementById('custody'); return c ? c.textContent : ''")
                .await
        },
        |text| {
            text.as_str()
                .is_some_and(|t| t.contains("Der Versanddienst"))
        },
    )
    .await;
    b.goto(&format!("{}/devices", up.web)).await.unwrap();

    // Her repair, opened at the demo's Berlin center.
    let href = browser
        .js("return [...document.querySelectorAll('.card')]
               .find(c => c.textContent.includes('490154203237518'))
               .querySelector(\"a[href^='/repairs/']\").getAttribute('href')")
        .await;
    let href = href.as_str().unwrap().to_owned();
    let order = href.trim_start_matches("/repairs/").to_owned();
    b.goto(&format!("{}{href}", up.web)).await.unwrap();
    b.wait()
        .for_element(Locator::Css("#stepper"))
        .await
        .unwrap();
    browser.screenshots(&shots, "repair").await;
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    assert_eq!(
        browser
            .js("return document.getElementById('stage-label').dataset.stage")
            .await,
        "STAGE_OPENED"
    );
    browser.js("window.stillThisPage = true; return true").await;
    let unread_count = || async {
        browser
            .js("return document.getElementById('unread').dataset.count")
            .await
            .as_str()
            .and_then(|c| c.parse::<u64>().ok())
    };
    let unread_before = aftersales_testkit::eventually(unread_count, Option::is_some)
        .await
        .unwrap_or_default();

    // The technician, in a second browser, finds the order in her center's
    // queue and checks the phone in; Lena's open page follows, without a reload.
    let (tech_password, _) = &accounts["tech-berlin"];
    let workshop = Browser::start().await;
    let w = &workshop.client;
    workshop
        .staff_sign_in(&up.web, "tech-berlin", tech_password, None)
        .await;
    w.wait()
        .for_element(Locator::Css("table.queue"))
        .await
        .unwrap();
    workshop.screenshots(&shots, "staff-queue").await;
    assert_eq!(
        workshop.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    w.find(Locator::Css(&format!("a[href='/staff/repairs/{order}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    w.wait()
        .for_element(Locator::Css("#action-check-in"))
        .await
        .unwrap();
    assert_eq!(
        workshop
            .js("return [...document.querySelectorAll('.actions form')].map(f => f.id)")
            .await,
        serde_json::json!(["action-check-in", "action-cancel"]),
        "only what the state machine takes now"
    );
    workshop.screenshots(&shots, "staff-order").await;
    assert_eq!(
        workshop.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    workshop
        .fill("#check-in-notes", "scratch on the frame")
        .await;
    // With a photo of the frame (a real PNG), and a file that only says it is
    // one: the second is refused and nothing is checked in.
    let photo = up.data.path().join("frame.png");
    std::fs::write(&photo, FRAME_PNG).unwrap();
    let fake = up.data.path().join("fake.png");
    std::fs::write(&fake, b"<svg onload=alert(1)></svg>").unwrap();
    workshop
        .fill("#check-in-photos", fake.to_str().unwrap())
        .await;
    workshop.submit("#action-check-in button").await;
    w.wait().for_element(Locator::Css("#notice")).await.unwrap();
    let refused = workshop.text("#notice").await;
    assert!(refused.contains("not a JPEG, PNG or WebP"), "{refused}");
    workshop
        .fill("#check-in-notes", "scratch on the frame")
        .await;
    workshop
        .fill("#check-in-photos", photo.to_str().unwrap())
        .await;
    workshop.submit("#action-check-in button").await;
    w.wait()
        .for_element(Locator::Css("#action-diagnose"))
        .await
        .unwrap();
    let shown = workshop
        .js("const img = document.querySelector('#photos img'); return img.complete && img.naturalWidth")
        .await;
    assert_eq!(shown, 16, "the photo is kept and shown");
    let live = aftersales_testkit::eventually(
        || async {
            browser
                .js("return [document.getElementById('stage-label').dataset.stage, window.stillThisPage === true]")
                .await
        },
        |v| v[0] == "STAGE_RECEIVED",
    )
    .await;
    assert_eq!(live[1], true, "the page was not reloaded");
    assert_eq!(browser.text("#stage-label").await, "Gerät eingegangen");

    // Diagnosed out of warranty and quoted from the order's page; she approves
    // with one click.
    w.find(Locator::Css("#diagnose-fault option[value=liquid-damage]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    workshop.submit("#action-diagnose button").await;
    w.wait()
        .for_element(Locator::Css("#action-quote"))
        .await
        .unwrap();
    workshop.fill("input[name=description1]", "Display").await;
    workshop.fill("input[name=amount1]", "49.00").await;
    w.find(Locator::Css("select[name=kind2] option[value=labour]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    workshop.fill("input[name=description2]", "Labour").await;
    workshop.fill("input[name=amount2]", "20").await;
    workshop.submit("#action-quote button").await;
    w.wait()
        .for_element(Locator::Css("table.quote"))
        .await
        .unwrap();
    assert_eq!(
        workshop
            .js("return [...document.querySelectorAll('.actions form')].map(f => f.id)")
            .await,
        serde_json::json!(["action-quote"]),
        "a sent quote waits for the customer: the workshop may only revise it"
    );
    aftersales_testkit::eventually(
        || async {
            browser
                .js("return document.getElementById('stage-label').dataset.stage")
                .await
        },
        |stage| stage == "STAGE_QUOTED",
    )
    .await;
    // The quote arrives on her open page, without a reload.
    b.wait()
        .for_element(Locator::Css("table.quote"))
        .await
        .unwrap();
    assert_eq!(
        browser.js("return window.stillThisPage === true").await,
        true
    );
    let quote = browser.text(".quote").await;
    assert!(quote.contains("Summe 69,00 €"), "{quote}");
    assert!(quote.contains("Display"), "{quote}");
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    browser.screenshots(&shots, "quote").await;
    browser.submit(".decision button[value=approve]").await;
    aftersales_testkit::eventually(
        || async {
            browser
                .js("return document.getElementById('stage-label').dataset.stage")
                .await
        },
        |stage| stage == "STAGE_APPROVED",
    )
    .await;
    // The workshop repairs it and hands it over; her page (reloaded once, by
    // her own click) follows to the end.
    browser.js("window.stillThisPage = true; return true").await;
    w.refresh().await.unwrap();
    let timeline = workshop.text(".timeline").await;
    assert!(
        timeline.contains("customer:demo-lena"),
        "the consent is hers, on the order's timeline: {timeline}"
    );
    for (form, next) in [
        ("#action-start", "STAGE_IN_REPAIR"),
        ("#action-qc", "STAGE_QC_PASSED"),
        ("#action-ready", "STAGE_READY_FOR_RETURN"),
        ("#action-hand-over", "STAGE_CLOSED"),
    ] {
        w.wait().for_element(Locator::Css(form)).await.unwrap();
        workshop.submit(&format!("{form} button")).await;
        aftersales_testkit::eventually(
            || async {
                browser
                    .js("return document.getElementById('stage-label').dataset.stage")
                    .await
            },
            |stage| stage == next,
        )
        .await;
    }
    assert_eq!(
        browser.js("return window.stillThisPage === true").await,
        true,
        "followed live from approval to closing, never reloaded"
    );

    // Each step also reached her inbox: the header's count rose on this open
    // page; the inbox lists the messages and marks them read.
    aftersales_testkit::eventually(unread_count, |count| {
        count.is_some_and(|c| c > unread_before)
    })
    .await;
    b.goto(&format!("{}/inbox", up.web)).await.unwrap();
    if b.wait()
        .for_element(Locator::Css(".messages li.unread"))
        .await
        .is_err()
    {
        panic!("no unread message: {}", browser.text("main").await);
    }
    browser.screenshots(&shots, "inbox").await;
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    // (The last steps' messages may still be arriving: read until none is new.)
    aftersales_testkit::eventually(
        || async {
            if let Ok(button) = b.find(Locator::Css("main form button")).await {
                let _ = button.click().await;
            }
            match b.find(Locator::Css("#unread-summary")).await {
                Ok(summary) => summary.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            }
        },
        |summary| summary == "0 ungelesen",
    )
    .await;
    aftersales_testkit::eventually(unread_count, |count| *count == Some(0)).await;

    // Her preferences: quiet hours and no offers, kept.
    b.goto(&format!("{}/preferences", up.web)).await.unwrap();
    // (A time field's typing differs by locale: its value is set directly.)
    browser
        .js("document.getElementById('quiet-start').value = '22:00';
             document.getElementById('quiet-end').value = '07:00';
             document.querySelector('input[name=topic-offers]').checked = false;
             return true")
        .await;
    browser.fill("#time-zone", "Europe/Berlin").await;
    browser.submit("main form button[type=submit]").await;
    if b.wait()
        .for_element(Locator::Css("p.status"))
        .await
        .is_err()
    {
        panic!("not saved: {}", browser.text("main").await);
    }
    assert_eq!(
        browser
            .js("return [document.getElementById('quiet-start').value, document.getElementById('time-zone').value, document.querySelector('input[name=topic-offers]').checked]")
            .await,
        serde_json::json!(["22:00", "Europe/Berlin", false])
    );
    browser.screenshots(&shots, "preferences").await;
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );

    // The app in Simplified Chinese, end to end: her devices, a phone's coverage
    // and dates, getting help, the inbox; the choice is remembered.
    b.goto(&format!("{}/devices?lang=zh-CN", up.web))
        .await
        .unwrap();
    assert_eq!(
        browser.js("return document.documentElement.lang").await,
        "zh-CN"
    );
    assert!(browser.text("main h1").await.contains("我的设备"));
    b.goto(&format!("{}/devices/354672109876548", up.web))
        .await
        .unwrap();
    let coverage = browser.text("#coverage").await;
    assert!(
        coverage.contains(
            "制造商保修（de-consumer v3）：自 2026年11月20日 起 24 个月，至 2028年11月20日。"
        ),
        "{coverage}"
    );
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    browser.screenshots(&shots, "device-zh-CN").await;
    b.goto(&format!("{}/help?imei=354672109876548", up.web))
        .await
        .unwrap();
    assert_eq!(browser.text("main h1").await, "手机报修");
    b.goto(&format!("{}/inbox", up.web)).await.unwrap();
    assert_eq!(browser.text("main h1").await, "收件箱");
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    b.goto(&format!("{}/devices?lang=de", up.web))
        .await
        .unwrap();

    // At the desk: a phone of Lena's with a nasty description, and someone else's repair.
    let (agent_password, _) = &accounts["agent-de-anna"];
    run_env(
        &urls,
        &env,
        &[
            "login",
            "--username",
            "agent-de-anna",
            "--password",
            agent_password,
        ],
    )
    .unwrap();
    let open = |imei: &'static str, customer: &'static str, symptoms: &'static str| {
        run_env(
            &urls,
            &env,
            &[
                "device",
                "register",
                "--imei",
                imei,
                "--model",
                "Aurora 5",
                "--purchased",
                "today",
                "--country",
                "DE",
                "--customer",
                customer,
            ],
        )
        .unwrap();
        let opened = run_env(
            &urls,
            &env,
            &walk_in(&[
                "--json",
                "repair",
                "open",
                "--imei",
                imei,
                "--customer",
                customer,
                "--symptoms",
                symptoms,
                "--center",
                "sc-berlin-01",
            ]),
        )
        .unwrap();
        serde_json::from_str::<serde_json::Value>(&opened).unwrap()["order_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let nasty = "<script>alert(1)</script><img src=x onerror=alert(1)>";
    let lenas = open("353456789012348", "demo-lena", nasty);
    let someone_elses = open("353456789012355", "cust-someone", "cracked screen");
    b.goto(&format!("{}/repairs/{lenas}", up.web))
        .await
        .unwrap();
    assert_eq!(browser.text("#symptoms").await, nasty, "shown as text");
    assert!(b.get_alert_text().await.is_err(), "no script ran");
    assert_eq!(
        browser
            .js("return document.querySelectorAll('#symptoms *').length")
            .await,
        0,
        "no element was made from it"
    );
    // The technician sees Lena's words withheld. She records the phone's
    // data-protection checklist, opens the words for the diagnosis, and sees
    // the same text as text; Lena's timeline names the opening.
    w.goto(&format!("{}/staff/repairs/{lenas}", up.web))
        .await
        .unwrap();
    w.wait()
        .for_element(Locator::Css("#open-data"))
        .await
        .unwrap();
    assert!(w.find(Locator::Css("#symptoms")).await.is_err(), "withheld");
    assert_eq!(
        workshop.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    w.find(Locator::Css("#data-protection input[name=backup]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    w.find(Locator::Css(
        "#data-protection-passcode option[value=reset-agreed]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    workshop.submit_and_reload("#data-protection button").await;
    w.wait()
        .for_element(Locator::Css("#open-data"))
        .await
        .unwrap();
    w.find(Locator::Css("#open-purpose option[value=diagnosis]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    workshop.submit("#open-data button").await;
    w.wait()
        .for_element(Locator::Css("#symptoms"))
        .await
        .unwrap();
    assert_eq!(workshop.text("#symptoms").await, nasty);
    let checklist = workshop.text("#checklist").await;
    assert!(
        checklist.contains("factory reset") || checklist.contains("Werkseinstellungen"),
        "{checklist}"
    );
    b.goto(&format!("{}/repairs/{lenas}", up.web))
        .await
        .unwrap();
    let timeline = browser.text("#timeline").await;
    assert!(
        timeline.contains("tech-berlin hat Ihre Schilderung, die Datenschutz-Checkliste geöffnet, für die Diagnose"),
        "{timeline}"
    );
    assert!(
        timeline.contains("Datenschutz-Checkliste erfasst"),
        "{timeline}"
    );
    // The checklist is hers to read, as recorded.
    let hers = browser.text("#checklist").await;
    assert!(hers.contains("Werkseinstellungen"), "{hers}");
    assert!(w.get_alert_text().await.is_err(), "no script ran");
    assert_eq!(
        workshop
            .js("return document.querySelectorAll('#symptoms *').length")
            .await,
        0
    );
    // The center manager sees Berlin's load and turnaround, as charts and tables.
    let (manager_password, _) = &accounts["manager-berlin"];
    workshop
        .staff_sign_in(&up.web, "manager-berlin", manager_password, None)
        .await;
    w.wait()
        .for_element(Locator::Css("#figures"))
        .await
        .unwrap();
    workshop.submit("#figures").await;
    w.wait().for_element(Locator::Css("#load")).await.unwrap();
    let load = workshop.text("#load tbody tr").await;
    assert!(!load.is_empty(), "today's load: {load}");
    assert_eq!(
        workshop
            .js("return document.querySelectorAll('svg.chart').length")
            .await,
        3,
        "a chart of the load, one of the turnaround and one of the weeks' quality"
    );
    let turnaround = workshop.text("#turnaround").await;
    assert!(turnaround.contains("Opened"), "{turnaround}");
    // This week's orders at Berlin, against the network (Berlin alone in Germany).
    let weeks = workshop.text("#quality tbody").await;
    assert!(!weeks.is_empty(), "{weeks}");
    assert_eq!(
        workshop.text("#quality-flags").await,
        "Every figure is in line with the network's median."
    );
    workshop.screenshots(&shots, "center").await;
    assert_eq!(
        workshop.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    // The auditor reads the history of Lena's new phone: intact; after one raw
    // edit in the database, past its guard trigger, plainly tampered.
    let (auditor_password, _) = &accounts["auditor"];
    workshop
        .staff_sign_in(&up.web, "auditor", auditor_password, None)
        .await;
    w.wait()
        .for_element(Locator::Css("#audit-imei"))
        .await
        .unwrap();
    workshop.fill("#audit-imei", "354672109876548").await;
    workshop.submit("main form button").await;
    w.wait()
        .for_element(Locator::Css("#verdict"))
        .await
        .unwrap();
    let verdict = workshop.text("#verdict h2").await;
    assert_eq!(verdict, "Intact: nothing was changed");
    assert!(
        workshop.text("#history").await.contains("DeviceRegistered"),
        "every event, with its chain hash"
    );
    workshop.screenshots(&shots, "audit").await;
    // The signed history, downloaded as her browser would, checks out against
    // the published key; with one word changed it does not.
    let file = workshop
        .js("return fetch(document.getElementById('export').href).then(r => r.text())")
        .await;
    let file: serde_json::Value = serde_json::from_str(file.as_str().unwrap()).unwrap();
    let keys: serde_json::Value =
        reqwest::get(format!("{}/.well-known/aftersales-export-keys", up.web))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let claims = verify_export(&file, &keys).unwrap();
    assert_eq!(claims["sub"], "354672109876548");
    assert!(
        claims["exported_by"]
            .as_str()
            .unwrap()
            .starts_with("auditor:"),
        "{claims}"
    );
    let document: serde_json::Value =
        serde_json::from_str(file["document"].as_str().unwrap()).unwrap();
    assert_eq!(document["intact"], true);
    assert_eq!(
        document["warranty"]["events"][0]["event_type"],
        "DeviceRegistered"
    );
    let mut forged = file.clone();
    forged["document"] = file["document"]
        .as_str()
        .unwrap()
        .replace("Aurora 5 Pro", "Aurora 9")
        .into();
    assert!(verify_export(&forged, &keys).is_err(), "a changed export");
    assert_eq!(
        workshop.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    let db = format!("sqlite:{}", up.data.path().join("warranty.db").display());
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    sqlx::raw_sql(
        "DROP TRIGGER events_no_update; \
         UPDATE events SET payload = replace(payload, 'Aurora 5 Pro', 'Aurora 9') \
         WHERE event_type = 'DeviceRegistered' AND payload LIKE '%354672109876548%';",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    w.refresh().await.unwrap();
    w.wait()
        .for_element(Locator::Css("#verdict"))
        .await
        .unwrap();
    assert_eq!(
        workshop.text("#verdict h2").await,
        "TAMPERED: this history was changed"
    );
    let broken = workshop.text("#verdict .broken").await;
    assert!(broken.starts_with("Broken at v1"), "{broken}");
    workshop.screenshots(&shots, "audit-tampered").await;

    // The support desk finds Lena by her email however it is typed, sees her
    // phones and the messages sent to her, and registers one more phone for
    // her: its history names the agent as its author.
    let (agent_password, _) = &accounts["agent-de-anna"];
    workshop
        .staff_sign_in(&up.web, "agent-de-anna", agent_password, None)
        .await;
    // An agent lands on the desk's cases; finding a customer is a link away.
    w.wait()
        .for_element(Locator::Css("#desk-teams"))
        .await
        .unwrap();
    workshop
        .submit_and_reload("main a[href='/staff/support']")
        .await;
    w.wait()
        .for_element(Locator::Css("#support-q"))
        .await
        .unwrap();
    workshop.fill("#support-q", " Demo-Lena@Example.com").await;
    workshop.submit("main form button").await;
    w.wait()
        .for_element(Locator::Css("#found a"))
        .await
        .unwrap();
    assert_eq!(workshop.text("#found").await, "demo-lena");
    workshop.submit("#found a").await;
    w.wait()
        .for_element(Locator::Css("#devices"))
        .await
        .unwrap();
    assert!(
        workshop.text("#devices").await.contains("354672109876548"),
        "her new phone is listed"
    );
    assert!(
        w.find_all(Locator::Css("#messages li"))
            .await
            .unwrap()
            .len()
            >= 3,
        "the messages of her repair"
    );
    workshop.screenshots(&shots, "support-customer").await;
    assert_eq!(
        workshop.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    workshop.fill("#add-device #imei", "354672109871119").await;
    workshop.fill("#add-device #model", "Aurora 5 Mini").await;
    workshop
        .js("document.getElementById('purchased').value = '2026-11-25'; return true")
        .await;
    workshop.submit("#add-device button").await;
    let added = "li[data-imei='354672109871119']";
    // The list is a read model: the page after the redirect may come before
    // the projection has the phone, so it is reloaded until it does.
    aftersales_testkit::eventually(
        || async {
            if w.find(Locator::Css(added)).await.is_ok() {
                return None;
            }
            // What the page says instead, should it never come.
            let seen = format!(
                "{}: {}",
                w.current_url().await.unwrap(),
                workshop.text("body").await
            );
            w.refresh().await.unwrap();
            Some(seen)
        },
        Option::is_none,
    )
    .await;
    let history = workshop
        .js(&format!(
            "return document.querySelector(\"{added} .history\").textContent"
        ))
        .await;
    let history = history.as_str().unwrap_or_default();
    assert!(
        history.contains("DeviceRegistered") && history.contains("for customer:demo-lena"),
        "recorded as done by the agent for her: {history}"
    );
    // Found by that phone too.
    workshop
        .client
        .goto(&format!("{}/staff/support?q=354672109871119", up.web))
        .await
        .unwrap();
    w.wait()
        .for_element(Locator::Css("#found a"))
        .await
        .unwrap();
    assert_eq!(workshop.text("#found").await, "demo-lena");
    // She calls the hotline: the agent opens a case for her from her page.
    workshop.submit_and_reload("#found a").await;
    workshop.fill("#case-subject", "Anruf: Akku").await;
    workshop
        .fill("#case-text", "Fragt, ob der Akku getauscht werden kann")
        .await;
    workshop
        .submit_and_reload("#open-case button[type=submit]")
        .await;
    let opened_for_her = w.current_url().await.unwrap();
    assert!(
        opened_for_her.path().starts_with("/staff/desk/cases/"),
        "{opened_for_her}: {}",
        workshop.text("main").await
    );
    let facts = workshop.text("#case-facts").await;
    assert!(
        facts.contains("demo-lena") && facts.contains("Phone") && facts.contains("de-front"),
        "{facts}"
    );

    let page = |path: String| {
        let b = b.clone();
        let web = up.web.clone();
        async move {
            b.goto(&format!("{web}{path}")).await.unwrap();
            b.find(Locator::Css("main"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let nowhere = page("/repairs/01234567-89ab-7def-8123-456789abcdef".into()).await;
    assert!(nowhere.contains("Nicht gefunden"), "{nowhere}");
    assert_eq!(
        page(format!("/repairs/{someone_elses}")).await,
        nowhere,
        "indistinguishable from a missing one"
    );
    // The same for someone else's phone and one nobody registered.
    let no_phone = page("/devices/354672109871127".into()).await;
    assert!(no_phone.contains("Nicht gefunden"), "{no_phone}");
    assert_eq!(page("/devices/353456789012355".into()).await, no_phone);

    // Berlin fills up for today (an operator lowers its capacity): her next
    // walk-in is offered Berlin's next free day, and booking it holds it.
    let (ops_password, secret) = &accounts["ops"];
    let totp = aftersales_identity::secrets::totp_now(secret).unwrap();
    let tokens: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/token", up.issuer))
        .form(&[
            ("grant_type", "password"),
            ("username", "ops"),
            ("password", ops_password.as_str()),
            ("totp", totp.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
    fn as_ops<T>(bearer: &str, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", bearer.parse().unwrap());
        request
    }
    let mut repair = RepairServiceClient::connect(format!("http://{}", urls[1]))
        .await
        .unwrap();
    let mut berlin = repair
        .get_service_center(as_ops(
            &bearer,
            rpb::GetServiceCenterRequest {
                id: "sc-berlin-01".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    berlin.daily_capacity = 1;
    repair
        .upsert_service_center(as_ops(&bearer, berlin))
        .await
        .unwrap();
    b.goto(&format!("{}/help?imei=354672109876548", up.web))
        .await
        .unwrap();
    browser
        .fill("#help-symptoms", "The battery drains overnight")
        .await;
    browser.submit("#problem button[type=submit]").await;
    let berlin_card = "li[data-center=sc-berlin-01]";
    b.wait()
        .for_element(Locator::Css(berlin_card))
        .await
        .unwrap();
    let card = browser.text(berlin_card).await;
    assert!(
        card.contains("Heute ausgebucht; nächster freier Tag:"),
        "{card}"
    );
    let booking = browser
        .text(&format!("{berlin_card} form.walk-in button"))
        .await;
    assert!(booking.starts_with("Termin am "), "{booking}");
    let day = booking
        .trim_start_matches("Termin am ")
        .trim_end_matches(" buchen")
        .to_owned();
    browser
        .submit(&format!("{berlin_card} form.walk-in button"))
        .await;
    if b.wait().for_element(Locator::Css("#booked")).await.is_err() {
        panic!("not booked: {}", browser.text("main").await);
    }
    assert_eq!(
        browser.text("#booked").await,
        format!("Termin am {day} bei sc-berlin-01 gebucht.")
    );

    // The operator sees every service's read models, relay and consumers,
    // caught up, and no dead letters. (An authenticator code is taken once:
    // the next one, up to 30 s on.)
    let code = loop {
        let code = aftersales_identity::secrets::totp_now(secret).unwrap();
        if code != totp {
            break code;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    workshop
        .staff_sign_in(&up.web, "ops", ops_password, Some(&code))
        .await;
    w.wait()
        .for_element(Locator::Css("#service-notification"))
        .await
        .unwrap();
    let logistics = aftersales_testkit::eventually(
        || async {
            w.refresh().await.unwrap();
            workshop.text("#service-logistics").await
        },
        |text| text.contains("Caught up") && !text.contains("Not available"),
    )
    .await;
    assert!(
        logistics.contains("embedded") && logistics.contains("logistics-from-repair"),
        "{logistics}"
    );
    for service in ["warranty", "repair", "notification", "parts"] {
        let text = workshop.text(&format!("#service-{service}")).await;
        assert!(text.contains("No dead letters."), "{text}");
    }
    workshop.screenshots(&shots, "operations").await;
    assert_eq!(
        workshop.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );

    // Lena looks for an answer herself: the knowledge base in German, then
    // a walk that ends in a repair with its fault filled in.
    b.goto(&format!("{}/support?q=Telefon+l%C3%A4dt+nicht", up.web))
        .await
        .unwrap();
    b.wait().for_element(Locator::Css("#hits")).await.unwrap();
    assert_eq!(
        browser.text("#hits li:first-child").await,
        "Ihr Telefon lädt nicht"
    );
    browser.screenshots(&shots, "support").await;
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    browser
        .submit_and_reload("#walks button[value='not-charging']")
        .await;
    assert_eq!(
        browser.text("#question").await,
        "Lädt es mit einem anderen Kabel und Ladegerät?"
    );
    browser
        .submit_and_reload("#walk-step button[value='1']")
        .await;
    assert_eq!(
        browser.text("#question").await,
        "Ist die Ladebuchse sauber und geht der Stecker ganz hinein?"
    );
    browser
        .submit_and_reload("#walk-step button[value='2']")
        .await;
    assert!(
        browser
            .text("#outcome[data-kind=repair]")
            .await
            .contains("muss repariert werden"),
        "{}",
        browser.text("main").await
    );
    browser.submit_and_reload("#outcome-repair").await;
    assert_eq!(
        browser
            .js("return document.getElementById('help-fault').value")
            .await,
        serde_json::json!("charging"),
        "the repair form comes with the walk's fault"
    );

    // She writes to the desk instead; the desk answers and resolves it, and
    // she reads both in her conversation, which she may reopen.
    b.goto(&format!("{}/support", up.web)).await.unwrap();
    b.wait()
        .for_element(Locator::Css("#write-form"))
        .await
        .unwrap();
    browser.fill("#care-subject", "Akku").await;
    browser
        .fill("#care-text", "Hält der neue Akku länger?")
        .await;
    browser
        .submit_and_reload("#write-form button[type=submit]")
        .await;
    let url = b.current_url().await.unwrap();
    let Some(case_id) = url.path().strip_prefix("/support/cases/") else {
        panic!("not on her case: {url}: {}", browser.text("main").await);
    };
    let case_id = case_id.to_owned();
    assert!(
        browser
            .text("#conversation")
            .await
            .contains("Hält der neue Akku länger?")
    );
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    let mut support = SupportServiceClient::connect(format!("http://{}", up.services[5]))
        .await
        .unwrap();
    let question = support
        .get_case(as_ops(
            &bearer,
            spb::CaseRef {
                case_id: case_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(
        (question.channel(), question.country.as_str()),
        (spb::Channel::Web, "DE")
    );
    assert_eq!(question.team_id, "de-front");

    // Anna, of the German front line, finds it in her desk's queue, takes
    // it, answers Lena, leaves her team a note and resolves it.
    let (agent_password, _) = &accounts["agent-de-anna"];
    workshop
        .staff_sign_in(&up.web, "agent-de-anna", agent_password, None)
        .await;
    let row = format!("#desk-queue tr[data-case='{case_id}'] a");
    aftersales_testkit::eventually(
        || async {
            w.goto(&format!("{}/staff/desk", up.web)).await.unwrap();
            w.find(Locator::Css(&row)).await.is_ok()
        },
        |listed| *listed,
    )
    .await;
    workshop.screenshots(&shots, "desk").await;
    assert_eq!(
        workshop.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    workshop.submit_and_reload(&row).await;
    assert!(
        workshop
            .text("#conversation")
            .await
            .contains("Hält der neue Akku länger?")
    );
    workshop
        .js("document.getElementById('assign-agent').value = 'agent-de-anna'; return true")
        .await;
    workshop.submit_and_reload("#assign button").await;
    assert_eq!(workshop.text("#case-agent").await, "agent-de-anna");
    workshop.fill("#answer-text", "Ja, etwa zwei Tage.").await;
    workshop
        .submit_and_reload("#answer button[value=reply]")
        .await;
    workshop
        .fill("#answer-text", "Kundin fragt nach Akkulaufzeit")
        .await;
    workshop
        .submit_and_reload("#answer button[value=note]")
        .await;
    // Sent empty, a resolution is refused with the field named.
    workshop
        .js("document.getElementById('resolve-text').removeAttribute('required'); return true")
        .await;
    workshop.submit_and_reload("#resolve button").await;
    assert!(
        workshop.text("#notice").await.contains("summary"),
        "{}",
        workshop.text("#notice").await
    );
    workshop.fill("#resolve-text", "Frage beantwortet.").await;
    workshop.submit_and_reload("#resolve button").await;
    let history = workshop.text("#conversation").await;
    assert!(
        history.contains("Interne Notiz: Kundin fragt nach Akkulaufzeit")
            || history.contains("Internal note: Kundin fragt nach Akkulaufzeit"),
        "{history}"
    );
    workshop.screenshots(&shots, "desk-case").await;
    assert_eq!(
        workshop.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    b.refresh().await.unwrap();
    b.wait().for_element(Locator::Css("#reopen")).await.unwrap();
    let conversation = browser.text("#conversation").await;
    assert!(
        conversation.contains("Ja, etwa zwei Tage.")
            && conversation.contains("Gelöst: Frage beantwortet."),
        "{conversation}"
    );
    assert_eq!(browser.text("#case-status").await, "Gelöst");
    assert!(
        !conversation.contains("Akkulaufzeit"),
        "the desk's internal note is not shown to her"
    );
    browser.screenshots(&shots, "support-case").await;
    // Her case's survey (the demo's history has asked her about repairs too).
    let reference: String = question
        .case_id
        .chars()
        .take(8)
        .collect::<String>()
        .to_uppercase();
    let survey_link = aftersales_testkit::eventually(
        || async {
            b.goto(&format!("{}/inbox", up.web)).await.unwrap();
            browser
                .js(&format!("const li = [...document.querySelectorAll('.messages li')].find(l => l.textContent.includes('{reference}') && l.textContent.includes('/survey/')); const m = li && li.textContent.match(/https?:\\/\\/\\S+\\/survey\\/[0-9a-f-]+\\?t=[A-Za-z0-9_-]+/); return m && m[0]"))
                .await
                .as_str()
                .map(str::to_owned)
        },
        Option::is_some,
    )
    .await
    .unwrap();
    assert!(
        survey_link.starts_with(&up.web),
        "{survey_link} points at the gateway"
    );
    b.goto(&survey_link).await.unwrap();
    b.wait().for_element(Locator::Css("#survey")).await.unwrap();
    assert!(
        browser
            .text("#survey legend")
            .await
            .contains("Wie zufrieden sind Sie"),
        "in her language"
    );
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    b.find(Locator::Css("label[for=score-5]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.fill("#comment", "Schnelle, klare Antwort").await;
    browser.submit("#survey button").await;
    b.wait().for_element(Locator::Css("#thanks")).await.unwrap();
    browser.screenshots(&shots, "survey").await;
    b.goto(&survey_link).await.unwrap();
    b.wait()
        .for_element(Locator::Css("#answered"))
        .await
        .unwrap();
    // The team's week shows her answer; the same figures download as CSV.
    w.goto(&format!("{}/staff/quality?group=team", up.web))
        .await
        .unwrap();
    let row = format!("#desk-quality tr[data-group='{}']", question.team_id);
    // The demo's history sends surveys of its own, which the read model
    // works through first: up to two minutes on a loaded machine.
    let mut shown = None;
    for _ in 0..240 {
        w.refresh().await.unwrap();
        shown = match w.find(Locator::Css(&format!("{row} .satisfaction"))).await {
            Ok(cell) => cell.text().await.ok(),
            Err(_) => None,
        };
        if shown.as_deref() == Some("5.0") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(shown.as_deref(), Some("5.0"));
    workshop.screenshots(&shots, "quality").await;
    assert_eq!(
        workshop.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    let csv = workshop
        .js("return fetch(document.getElementById('desk-quality-csv').href, {credentials: 'same-origin'}).then(r => r.text())")
        .await;
    let csv = csv.as_str().unwrap_or_default();
    assert!(csv.starts_with("week,team,cases_resolved,"), "{csv}");
    assert!(csv.contains(&format!(",{},", question.team_id)), "{csv}");

    // A form posted from another site is refused.
    b.goto(&format!(
        "data:text/html,<form method=post action='{}/sign-out'><input name=csrf value=x></form>\
         <script>document.forms[0].submit()</script>",
        up.web
    ))
    .await
    .unwrap();
    b.wait().for_element(Locator::Css("main h1")).await.unwrap();
    // (In the browser's own language: a cross-site request carries no cookie.)
    let refused = browser.text("main").await;
    assert!(
        refused.contains("Refused"),
        "{} {refused}",
        b.current_url().await.unwrap()
    );
    b.goto(&format!("{}/devices", up.web)).await.unwrap();
    assert!(
        browser.text("main").await.contains("Aurora 5"),
        "still signed in: the forged sign-out did nothing"
    );

    browser.client.clone().close().await.unwrap();
    workshop.client.clone().close().await.unwrap();
    assert!(terminate(up.process).success());
}

/// The load generator drives every kind of arrival against `up`, signed in as
/// its demo support agent and technician, and reports every operation it timed:
/// the calls, both journeys, and a step's commit reaching the customer's inbox
/// and a live watcher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_drives_every_journey_and_reports_each_operation() {
    let up = SignedIn::start();
    demo_accounts(up.data.path()).await;
    let accounts = up.data.path().join("demo-accounts.txt");
    let report = run_env(
        &up.urls(),
        &up.env(),
        &[
            "load",
            "--rate",
            "4",
            "--seconds",
            "4",
            "--seed-devices",
            "5",
            "--mix",
            "register=1,coverage=2,walk-in=1,mail-in=1,inbox=1",
            "--demo-accounts",
            accounts.to_str().unwrap(),
        ],
    )
    .unwrap();
    for op in [
        "RegisterDevice",
        "SetPreferences",
        "CheckCoverage",
        "OpenRepair",
        "CheckInDevice",
        "Diagnose",
        "StartRepair",
        "RecordQcResult",
        "MarkReadyForReturn",
        "ConfirmCollected",
        "ListNotifications",
        "WalkInJourney",
        "MailInJourney",
        "StepToInbox",
        "StepToWatcher",
    ] {
        let row = report
            .lines()
            .find(|l| l.starts_with(&format!("| {op} |")))
            .unwrap_or_else(|| panic!("no {op} in\n{report}"));
        let count: u64 = row.split('|').nth(2).unwrap().trim().parse().unwrap();
        assert!(count > 0, "{row}");
    }
    assert!(!report.contains("error:"), "{report}");

    // Wrong accounts and bad numbers are refused before anything is sent.
    let refused = run_env(
        &up.urls(),
        &up.env(),
        &[
            "load",
            "--agent",
            "agent:wrong",
            "--technician",
            "tech-berlin:wrong",
        ],
    )
    .unwrap_err();
    assert!(refused.contains("sign-in refused"), "{refused}");
    let refused =
        run_env(&up.urls(), &up.env(), &["load", "--rate", "0", "--no-auth"]).unwrap_err();
    assert!(refused.contains("--rate"), "{refused}");
    let refused = run_env(
        &up.urls(),
        &up.env(),
        &["load", "--mix", "coverage", "--no-auth"],
    )
    .unwrap_err();
    assert!(refused.contains("kind=weight"), "{refused}");
    let refused = run_env(
        &up.urls(),
        &up.env(),
        &["load", "--watchers", "18446744073709551615", "--no-auth"],
    )
    .unwrap_err();
    assert!(refused.contains("--watchers"), "{refused}");
}
