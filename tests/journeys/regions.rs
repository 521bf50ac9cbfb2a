//! Two regions as processes (Germany home for DE, India for IN), each with its
//! own nats-server, linked through a proxy the test cuts, and its own warranty
//! service on its own database; the `aftersales` CLI and the gateway in India,
//! given the region directory, send a German phone's writes to Germany and its
//! reads to the nearest region that answers.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aftersales_auth::{Principal, Role};
use aftersales_identity::codes::SendFuture;
use aftersales_identity::{CodeSender, Provider, Store};
use aftersales_proto::common::{CountryCode, DeviceId, device_id};
use aftersales_proto::warranty as wpb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_testkit::browser::Browser;
use aftersales_testkit::{NatsServer, shared_postgres};
use fantoccini::Locator;

use crate::web::bearer;
use crate::{Service, keyring_env};

/// Environment.
type Env = Vec<(String, String)>;

/// Service `name` of `region` on its own database and the region's `keyring`,
/// with `auth` (the identity provider's settings, or calls unauthenticated) and
/// `extra`.
fn service_in(
    name: &'static str,
    region: &str,
    nats: &NatsServer,
    directory: &Path,
    keyring: &[(String, String)],
    auth: &[(String, String)],
    extra: &[(&str, String)],
) -> Service {
    let mut env = keyring.to_vec();
    env.extend([
        (
            "DATABASE_URL".to_owned(),
            shared_postgres().create_database().unwrap(),
        ),
        ("NATS_URL".to_owned(), nats.url()),
        ("AFTERSALES_REGION".to_owned(), region.to_owned()),
        (
            "AFTERSALES_REGIONS_FILE".to_owned(),
            directory.display().to_string(),
        ),
    ]);
    if auth.is_empty() {
        env.push((
            "AFTERSALES_ALLOW_UNAUTHENTICATED".to_owned(),
            "true".to_owned(),
        ));
    }
    env.extend(auth.iter().cloned());
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    Service::spawn(name, env)
}

/// Germany and India linked through a proxy, each region's warranty service
/// reading `services` (homes only), and `directory` beside it: the same homes
/// and where each region's warranty service answers.
struct TwoRegions {
    germany: Service,
    india: Service,
    proxy: aftersales_testkit::TcpProxy,
    directory: std::path::PathBuf,
    services: std::path::PathBuf,
    /// Germany's and India's NATS and keyring, for more services of each.
    nats: (NatsServer, NatsServer),
    keyrings: (Env, Env),
    _dir: tempfile::TempDir,
}

fn two_regions(auth: &[(String, String)]) -> TwoRegions {
    let (eu_nats, ap_nats, proxy) = NatsServer::linked_regions("eu-central", "ap-south").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let homes = "[[region]]\nname = \"eu-central\"\ncountries = [\"DE\"]\n\n\
                 [[region]]\nname = \"ap-south\"\ncountries = [\"IN\"]\n";
    let services = dir.path().join("services.toml");
    std::fs::write(&services, homes).unwrap();
    let keyring = |region: &str| {
        let keys = dir.path().join(region);
        std::fs::create_dir_all(&keys).unwrap();
        keyring_env(&keys)
    };
    let keyrings = (keyring("eu-central"), keyring("ap-south"));
    let germany = service_in(
        "warranty",
        "eu-central",
        &eu_nats,
        &services,
        &keyrings.0,
        auth,
        &[],
    );
    let india = service_in(
        "warranty",
        "ap-south",
        &ap_nats,
        &services,
        &keyrings.1,
        auth,
        &[],
    );
    let directory = dir.path().join("clients.toml");
    std::fs::write(
        &directory,
        format!(
            "[[region]]\nname = \"eu-central\"\ncountries = [\"DE\"]\n\
             [region.endpoints]\nwarranty = \"{}\"\n\n\
             [[region]]\nname = \"ap-south\"\ncountries = [\"IN\"]\n\
             [region.endpoints]\nwarranty = \"{}\"\n",
            germany.url(),
            india.url()
        ),
    )
    .unwrap();
    TwoRegions {
        germany,
        india,
        proxy,
        directory,
        services,
        nats: (eu_nats, ap_nats),
        keyrings,
        _dir: dir,
    }
}

/// `aftersales <args> --json` with India's services nearest, routed by
/// `directory` if given; its output as JSON, or its error.
fn in_india(
    india: &str,
    directory: Option<&Path>,
    args: &[&str],
) -> Result<serde_json::Value, String> {
    let mut command = std::process::Command::new(crate::binary("aftersales"));
    command
        .args(args)
        .args(["--json", "--warranty-url", india])
        .env_remove("AFTERSALES_REGIONS_FILE")
        .env("AFTERSALES_TOKEN", "");
    if let Some(directory) = directory {
        command.arg("--regions-file").arg(directory);
    }
    let output = command.output().unwrap();
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).unwrap())
    } else {
        Err(String::from_utf8(output.stderr).unwrap())
    }
}

async fn device_at(url: &str, imei: &str) -> Result<wpb::Device, tonic::Status> {
    device_as(url, imei, None).await
}

/// `imei`'s device as the warranty service at `url` answers, asked with
/// `token` if one is given.
async fn device_as(
    url: &str,
    imei: &str,
    token: Option<&str>,
) -> Result<wpb::Device, tonic::Status> {
    let request = wpb::GetDeviceRequest {
        device_id: Some(DeviceId {
            kind: Some(device_id::Kind::Imei(imei.to_owned())),
        }),
    };
    let request = match token {
        Some(token) => bearer(request, token),
        None => tonic::Request::new(request),
    };
    WarrantyServiceClient::connect(url.to_owned())
        .await
        .unwrap()
        .get_device(request)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_abroad_writes_a_phone_at_home_and_reads_it_from_the_nearest_region() {
    let TwoRegions {
        mut germany,
        india,
        proxy,
        directory,
        services: _,
        nats: _servers,
        keyrings: _,
        _dir: _directory,
    } = two_regions(&[]);
    let (germany_url, india_url) = (germany.url(), india.url());
    let routed = |args: &[&str]| in_india(&india_url, Some(&directory), args);

    // Link cut: a phone bought in Germany, registered from India, lands in
    // Germany; India does not know it yet, so the read goes on to Germany.
    proxy.cut();
    let imei = crate::imei(7_420_001);
    #[allow(clippy::disallowed_methods)] // a purchase some days before the test
    let purchased = (chrono::Utc::now().date_naive() - chrono::Days::new(10)).to_string();
    let registered = routed(&[
        "device",
        "register",
        "--imei",
        &imei,
        "--model",
        "AS-1",
        "--purchased",
        &purchased,
        "--country",
        "de",
        "--customer",
        "cust-abroad",
    ])
    .unwrap();
    assert_eq!(
        registered["replica"],
        serde_json::Value::Null,
        "{registered}"
    );
    assert!(
        device_at(&germany_url, &imei)
            .await
            .unwrap()
            .replica
            .is_none()
    );
    assert_eq!(
        device_at(&india_url, &imei).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    let shown = routed(&["device", "show", "--imei", &imei]).unwrap();
    assert_eq!(
        (&shown["customer_id"], &shown["replica"]),
        (&serde_json::json!("cust-abroad"), &serde_json::Value::Null),
        "answered by Germany: {shown}"
    );

    // Healed: India's replica has it, and answers first, saying so.
    proxy.heal();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while device_at(&india_url, &imei).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "never replicated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shown = routed(&["device", "show", "--imei", &imei]).unwrap();
    let replica = shown["replica"].as_str().unwrap_or_default();
    assert!(
        replica.contains("replica of eu-central, as of 20"),
        "{shown}"
    );
    assert_eq!(shown["customer_id"], "", "the owner stays at home: {shown}");

    // A plan and an accessory change the phone: only Germany may, and the CLI
    // sends them there. Unrouted, India refuses and names Germany.
    let unrouted = in_india(
        &india_url,
        None,
        &["warranty", "extend", "--imei", &imei, "--plan", "care-12"],
    )
    .unwrap_err();
    assert!(
        unrouted.contains("FailedPrecondition") && unrouted.contains("eu-central"),
        "{unrouted}"
    );
    let extended = routed(&["warranty", "extend", "--imei", &imei, "--plan", "care-12"]).unwrap();
    assert_eq!(extended["replica"], serde_json::Value::Null, "{extended}");
    assert!(
        extended["pending_plan"]["plan"] == "care-12"
            || extended["extended_plan"]["plan"] == "care-12",
        "{extended}"
    );
    let with_charger = routed(&[
        "device",
        "accessory",
        "--imei",
        &imei,
        "--serial",
        "CHG-7420001",
        "--kind",
        "charger",
    ])
    .unwrap();
    assert!(
        with_charger["accessories"][0]
            .as_str()
            .is_some_and(|a| a.starts_with("CHG-7420001 charger")),
        "{with_charger}"
    );

    // Germany down: India still answers from its replica, under the German
    // policy; a write for the phone cannot be made and says where it failed.
    germany.kill();
    let coverage = routed(&["device", "coverage", "--imei", &imei, "--fault", "display"]).unwrap();
    assert_eq!(coverage["covered"], true, "{coverage}");
    assert!(
        coverage["policy"]
            .as_str()
            .is_some_and(|p| p.starts_with("de-consumer")),
        "{coverage}"
    );
    assert!(
        coverage["replica"]
            .as_str()
            .is_some_and(|r| r.contains("eu-central")),
        "{coverage}"
    );
    let refused = routed(&[
        "device",
        "accessory",
        "--imei",
        &imei,
        "--serial",
        "CBL-7420001",
        "--kind",
        "cable",
    ])
    .unwrap_err();
    assert!(refused.contains(&germany_url), "{refused}");
    drop(india);
}

const ADDRESS: &str = "abroad@example.com";
const CUSTOMER: &str = "cust-abroad-web";

/// Sign-in codes kept for the test to type: this journey is about where the
/// gateway sends calls (delivery by email is the web journey's).
#[derive(Debug, Default)]
struct Codes(Mutex<Vec<String>>);

impl CodeSender for Codes {
    fn send<'a>(&'a self, address: &'a str, code: &'a str, _language: &'a str) -> SendFuture<'a> {
        Box::pin(async move {
            if address != ADDRESS {
                return Ok(None);
            }
            self.0.lock().unwrap().push(code.to_owned());
            Ok(Some(CUSTOMER.to_owned()))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_abroad_lists_a_phone_from_its_home_and_buys_its_plan_there() {
    let codes = Arc::new(Codes::default());
    let provider = Provider::serve(
        "127.0.0.1:0".parse().unwrap(),
        Store::open("sqlite::memory:").await.unwrap(),
        "aftersales",
        codes.clone(),
        std::future::pending(),
    )
    .await
    .unwrap();
    let secret = "regions-services-secret-of-enough-length";
    provider.issuer().register_client(
        "regions-services",
        secret,
        Principal::new("regions-services", Role::Service),
        "aftersales",
    );
    let auth = [
        ("AFTERSALES_OIDC_ISSUER", provider.url().to_owned()),
        ("AFTERSALES_OIDC_CLIENT_ID", "regions-services".to_owned()),
        ("AFTERSALES_OIDC_CLIENT_SECRET", secret.to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    let TwoRegions {
        mut germany,
        india,
        proxy: _link,
        directory,
        services: _,
        nats: _servers,
        keyrings: _,
        _dir: _directory,
    } = two_regions(&auth);
    let agent = provider
        .issuer()
        .token(
            &Principal::new("agent-1", Role::SupportAgent),
            "aftersales",
            Duration::from_secs(900),
        )
        .unwrap();

    // Her phone, bought in Germany, is registered there; India learns it.
    let phone = crate::imei(7_420_002);
    #[allow(clippy::disallowed_methods)] // a purchase some days before the test
    let purchased = (chrono::Utc::now().date_naive() - chrono::Days::new(10)).to_string();
    WarrantyServiceClient::connect(germany.url())
        .await
        .unwrap()
        .register_device(bearer(
            wpb::RegisterDeviceRequest {
                device_id: Some(DeviceId {
                    kind: Some(device_id::Kind::Imei(phone.clone())),
                }),
                model: "Aurora 5".into(),
                purchase_date: purchased,
                country_of_purchase: Some(CountryCode { value: "DE".into() }),
                channel: wpb::SalesChannel::RetailStore.into(),
                customer_id: CUSTOMER.into(),
                ..Default::default()
            },
            &agent,
        ))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while device_as(&india.url(), &phone, Some(&agent)).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "never replicated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // India's gateway: its warranty service nearest, the others by the
    // directory; no other service runs (their pages are not asked here).
    let nowhere = "http://127.0.0.1:9".to_owned();
    let gateway = Service::spawn(
        "gateway",
        vec![
            ("AFTERSALES_WARRANTY_URL".into(), india.url()),
            (
                "AFTERSALES_REGIONS_FILE".into(),
                directory.display().to_string(),
            ),
            ("AFTERSALES_ISSUER_URL".into(), provider.url().to_owned()),
            ("AFTERSALES_REPAIR_URL".into(), nowhere.clone()),
            ("AFTERSALES_LOGISTICS_URL".into(), nowhere.clone()),
            ("AFTERSALES_NOTIFICATION_URL".into(), nowhere.clone()),
            ("AFTERSALES_PARTS_URL".into(), nowhere.clone()),
            ("AFTERSALES_SUPPORT_URL".into(), nowhere),
        ],
    );
    let web = gateway.url();

    // Signed in, her phone is listed from Germany: only its home knows whose
    // it is, so India's copy does not answer her.
    let browser = Browser::start().await;
    let b = &browser.client;
    b.goto(&format!("{web}/sign-in?lang=en")).await.unwrap();
    browser.fill("#address", ADDRESS).await;
    browser.submit("main form button").await;
    b.wait().for_element(Locator::Css("#code")).await.unwrap();
    let code = codes.0.lock().unwrap().last().cloned().unwrap();
    browser.fill("#code", &code).await;
    browser.submit("main form button").await;
    b.wait().for_element(Locator::Css(".cards")).await.unwrap();
    let cards = browser.text(".cards").await;
    assert!(
        cards.contains(&phone) && cards.contains("de-consumer"),
        "{cards}"
    );

    // A plan for it is bought in Germany, the only region that changes it.
    b.goto(&format!("{web}/devices/{phone}?lang=en"))
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Css("#buy-plan"))
        .await
        .unwrap();
    browser.submit_and_reload("#buy-plan button").await;
    let page = browser.text("main").await;
    assert!(page.contains("Plan care-12"), "{page}");
    let at_home = device_as(&germany.url(), &phone, Some(&agent))
        .await
        .unwrap();
    assert_eq!(
        at_home
            .pending_plan
            .map(|p| p.plan_id)
            .or(at_home.extended_plan.map(|p| p.plan_id))
            .as_deref(),
        Some("care-12")
    );

    // Germany down: her phone's page cannot be answered, and says so rather
    // than that she has no such phone.
    germany.kill();
    b.goto(&format!("{web}/devices/{phone}?lang=en"))
        .await
        .unwrap();
    let page = browser.text("main").await;
    assert!(page.contains("Please try again in a moment."), "{page}");
}

/// `scripts/two-regions` running in its own process group, stopped (SIGTERM to
/// the group, as Ctrl-C would) when dropped.
struct TwoRegionsCommand(std::process::Child);

impl Drop for TwoRegionsCommand {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

/// A first port with the fifteen after it free.
fn free_ports() -> u16 {
    (0..100)
        .map(|i| 40_000 + (u16::try_from(std::process::id() % 200).unwrap() + i) % 200 * 100)
        .find(|base| (0..15).all(|p| std::net::TcpListener::bind(("127.0.0.1", base + p)).is_ok()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_two_region_command_runs_both_regions_linked() {
    use std::io::BufRead as _;
    use std::os::unix::process::CommandExt as _;

    let cli = crate::binary("aftersales");
    crate::binary("aftersales-warranty");
    crate::binary("aftersales-repair");
    let dir = tempfile::tempdir().unwrap();
    let base = free_ports();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut child = std::process::Command::new(root.join("scripts/two-regions"))
        .arg(dir.path())
        .env("AFTERSALES_BIN_DIR", cli.parent().unwrap())
        .env("AFTERSALES_REGIONS_PORT", base.to_string())
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _running = TwoRegionsCommand(child);
    let ready = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.starts_with("two regions ready"))
    });
    assert!(
        tokio::time::timeout(Duration::from_secs(120), ready)
            .await
            .unwrap()
            .unwrap(),
        "the command stopped before both regions were ready"
    );

    // A German phone registered from India lands in Germany and comes back to
    // India as a replica.
    let (germany, india) = (
        format!("http://127.0.0.1:{}", base + 2),
        format!("http://127.0.0.1:{}", base + 12),
    );
    let directory = dir.path().join("regions.toml");
    let imei = crate::imei(7_420_003);
    in_india(
        &india,
        Some(&directory),
        &[
            "device",
            "register",
            "--imei",
            &imei,
            "--model",
            "AS-1",
            "--purchased",
            "today",
            "--country",
            "DE",
            "--customer",
            "cust-demo",
        ],
    )
    .unwrap();
    assert_eq!(
        device_at(&germany, &imei).await.unwrap().customer_id,
        "cust-demo"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let replica = loop {
        if let Ok(device) = device_at(&india, &imei).await {
            break device.replica.unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "never replicated");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(replica.home_region, "eu-central");
}

/// Germany's notification service and India's repair service beside the two
/// warranty services: a German phone repaired at Bengaluru, its owner told at
/// home, in German, of each step, and nothing of her crossing to India.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_german_phone_repaired_in_india_tells_its_owner_at_home_in_german() {
    use aftersales_proto::notification as npb;
    use aftersales_proto::notification::notification_service_client::NotificationServiceClient;
    use aftersales_proto::repair as rpb;
    use aftersales_proto::repair::repair_service_client::RepairServiceClient;

    let regions = two_regions(&[]);
    let smtp = aftersales_testkit::SmtpServer::start().unwrap();
    let notification = service_in(
        "notification",
        "eu-central",
        &regions.nats.0,
        &regions.services,
        &regions.keyrings.0,
        &[],
        &[
            ("AFTERSALES_SMTP_URL", smtp.url()),
            ("AFTERSALES_SEND_RETRY_BASE_MILLIS", "200".to_owned()),
        ],
    );
    let repair = service_in(
        "repair",
        "ap-south",
        &regions.nats.1,
        &regions.services,
        &regions.keyrings.1,
        &[],
        &[("AFTERSALES_WARRANTY_URL", regions.india.url())],
    );

    // Anna's address and language are in Germany, with her phone.
    let customer = "cust-de-anna";
    NotificationServiceClient::connect(notification.url())
        .await
        .unwrap()
        .set_preferences(npb::Preferences {
            customer_id: customer.into(),
            email: "anna@example.com".into(),
            channels: vec![npb::ChannelKind::Email.into()],
            language: "de".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let phone = crate::imei(7_420_004);
    let device = || {
        Some(DeviceId {
            kind: Some(device_id::Kind::Imei(phone.clone())),
        })
    };
    #[allow(clippy::disallowed_methods)] // a purchase some days before the test
    let purchased = (chrono::Utc::now().date_naive() - chrono::Days::new(30)).to_string();
    WarrantyServiceClient::connect(regions.germany.url())
        .await
        .unwrap()
        .register_device(wpb::RegisterDeviceRequest {
            device_id: device(),
            model: "Aurora 5".into(),
            purchase_date: purchased,
            country_of_purchase: Some(CountryCode { value: "DE".into() }),
            channel: wpb::SalesChannel::RetailStore.into(),
            customer_id: customer.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while device_at(&regions.india.url(), &phone).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "never replicated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A walk-in repair at Bengaluru, step by step.
    let mut r = RepairServiceClient::connect(repair.url()).await.unwrap();
    let order_id = r
        .open_repair(rpb::OpenRepairRequest {
            device_id: device(),
            channel: rpb::Channel::WalkIn.into(),
            service_center_id: "sc-bengaluru-01".into(),
            customer_id: customer.into(),
            symptoms: "the screen flickers".into(),
            reported_fault: wpb::FaultCategory::Display.into(),
            walk_in_day: aftersales_testkit::walk_in_day(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .order_id;
    let order = || rpb::OrderRef {
        order_id: order_id.clone(),
    };
    r.check_in_device(rpb::CheckInDeviceRequest {
        order_id: order_id.clone(),
        condition_notes: "no visible damage".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    r.diagnose(rpb::DiagnoseRequest {
        order_id: order_id.clone(),
        fault_category: wpb::FaultCategory::Display.into(),
        fault_codes: vec!["DSP-17".into()],
        technician: "tech-in-3".into(),
    })
    .await
    .unwrap();
    // Germany's terms are honoured in the EU only: here it is paid for.
    r.issue_quote(rpb::IssueQuoteRequest {
        order_id: order_id.clone(),
        lines: vec![rpb::QuoteLine {
            description: "display".into(),
            is_labour: false,
            amount: Some(aftersales_proto::common::Money {
                minor_units: 1_200_000,
                currency: "INR".into(),
            }),
        }],
        valid_until: Some(prost_types::Timestamp {
            seconds: chrono_now_seconds() + 7 * 86_400,
            nanos: 0,
        }),
    })
    .await
    .unwrap();
    r.approve_quote(order()).await.unwrap();
    r.start_repair(rpb::StartRepairRequest {
        order_id: order_id.clone(),
        technician: "tech-in-3".into(),
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
    r.mark_ready_for_return(order()).await.unwrap();

    // Germany tells her of each step once, in German, by email, as it would
    // a walk-in there (handed over in person: no "received").
    let subjects = [
        format!("Ihre Reparatur {order_id} ist eröffnet"),
        "Ihre Reparatur hat begonnen".to_owned(),
        "Ihr Gerät ist abholbereit".to_owned(),
    ];
    let mut inbox = NotificationServiceClient::connect(notification.url())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let told = loop {
        let told: Vec<String> = inbox
            .list_notifications(npb::ListNotificationsRequest {
                customer_id: customer.into(),
                page_size: 50,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .notifications
            .into_iter()
            .filter(|n| n.language == "de")
            .map(|n| n.subject)
            .collect();
        if subjects.iter().all(|s| told.contains(s)) {
            break told;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "told so far: {told:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for subject in &subjects {
        assert_eq!(
            told.iter().filter(|t| *t == subject).count(),
            1,
            "{subject} once: {told:?}"
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !smtp
        .messages()
        .iter()
        .any(|m| crate::readable(m).contains("Ihr Gerät ist abholbereit"))
    {
        assert!(tokio::time::Instant::now() < deadline, "no email");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // What crossed either way (the steps to Germany, the facts back to India)
    // holds no contact data: her address never left Germany.
    for (nats, mirror) in [
        (
            &regions.nats.0,
            "AFTERSALES_EU_CENTRAL_REPLICA_AP_SOUTH_WARRANTY",
        ),
        (
            &regions.nats.1,
            "AFTERSALES_AP_SOUTH_REPLICA_EU_CENTRAL_WARRANTY",
        ),
    ] {
        let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        let mut stream = js.get_stream(mirror).await.unwrap();
        let last = stream.info().await.unwrap().state.last_sequence;
        assert!(last > 0, "{mirror} is empty");
        for sequence in 1..=last {
            let message = stream.get_raw_message(sequence).await.unwrap();
            let seen = format!("{:?}", message.headers).into_bytes();
            for bytes in [&seen[..], &message.payload[..]] {
                assert!(
                    !bytes.windows(7).any(|w| w == b"example"),
                    "{mirror} #{sequence} holds her address"
                );
            }
        }
    }

    // India's forward queue is empty once Germany has recorded every step.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = regions.india.metrics().await;
        let queued = metrics
            .lines()
            .find(|l| l.starts_with("aftersales_forward_queue_depth{region=\"eu-central\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned);
        if queued.as_deref() == Some("0") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "forward queue: {queued:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[allow(clippy::disallowed_methods)] // a quote valid for a week from the real now
fn chrono_now_seconds() -> i64 {
    chrono::Utc::now().timestamp()
}
