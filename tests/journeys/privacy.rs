//! A customer's right of access and right to erasure across the four processes:
//! their data exported, their erasure deferred while a mail-in repair still
//! needs the address, then carried out by each service on its own; afterwards
//! no database, no event stream and no copy of a key holds anything readable of
//! them, every hash chain verifies, another customer is untouched, and no log
//! line of the whole journey names them.

use std::collections::BTreeMap;
use std::sync::Arc;

use aftersales_eventstore::personal::ERASED;
use aftersales_proto::common::{Address, CountryCode};
use aftersales_proto::logistics as lpb;
use aftersales_proto::notification as npb;
use aftersales_proto::privacy::{self as ppb, privacy_client::PrivacyClient};
use aftersales_proto::repair as rpb;
use aftersales_proto::warranty as wpb;
use aftersales_testkit::eventually;
use prost::Message as _;
use sqlx::Row as _;

use crate::journey::{device, mail_in, register, stage};
use crate::{Platform, imei};

const WHO: &str = "cust-erase";
const EMAIL: &str = "erika.privat@example.com";
const PHONE: &str = "+4915112345678";
const NAME: &str = "Erika Geheimnis";
const STREET: &str = "Verborgene Gasse 7";
const SYMPTOMS: &str = "flickers since the fall in Vienna";
const NEEDLES: [&str; 5] = [EMAIL, PHONE, NAME, STREET, SYMPTOMS];

fn privacy(url: String) -> PrivacyClient<tonic::transport::Channel> {
    PrivacyClient::new(
        tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect_lazy(),
    )
}

fn services(p: &Platform) -> [(&'static str, String); 4] {
    [
        ("warranty", p.warranty.url()),
        ("repair", p.repair.url()),
        ("logistics", p.logistics.url()),
        ("notification", p.notification.url()),
    ]
}

async fn export(p: &Platform, customer: &str) -> BTreeMap<&'static str, ppb::CustomerData> {
    let mut all = BTreeMap::new();
    for (name, url) in services(p) {
        let data = privacy(url)
            .export_customer_data(ppb::ExportCustomerDataRequest {
                customer_id: customer.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(data.service, name);
        all.insert(name, data);
    }
    all
}

async fn erase(p: &Platform, customer: &str) -> BTreeMap<&'static str, ppb::ErasureReceipt> {
    let mut all = BTreeMap::new();
    for (name, url) in services(p) {
        let receipt = privacy(url)
            .erase_customer(ppb::EraseCustomerRequest {
                customer_id: customer.into(),
            })
            .await
            .unwrap()
            .into_inner();
        all.insert(name, receipt);
    }
    all
}

fn text_of(data: &BTreeMap<&'static str, ppb::CustomerData>) -> String {
    data.values()
        .flat_map(|d| d.records.iter().map(|r| r.json.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every value of every row of every table of the platform's databases (the
/// four services' and the keyring's), byte strings as their bytes.
async fn database_bytes(p: &Platform) -> String {
    let mut all = String::new();
    for url in p.databases.iter().chain([&p.keyring]) {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let columns = sqlx::query(
            "SELECT table_name::text, column_name::text, data_type::text \
             FROM information_schema.columns WHERE table_schema = 'public'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        for column in columns {
            let (table, name, kind): (String, String, String) =
                (column.get(0), column.get(1), column.get(2));
            let value = if kind == "bytea" {
                format!("encode(\"{name}\", 'escape')")
            } else {
                format!("\"{name}\"::text")
            };
            let values: Vec<Option<String>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT {value} FROM \"{table}\""
            )))
            .fetch_all(&pool)
            .await
            .unwrap();
            for v in values.into_iter().flatten() {
                all.push_str(&v);
                all.push('\n');
            }
        }
        pool.close().await;
    }
    all
}

/// Every message of every JetStream stream, headers and payload.
async fn stream_bytes(
    p: &Platform,
) -> (String, Vec<async_nats::jetstream::message::StreamMessage>) {
    use futures::TryStreamExt as _;
    let js = async_nats::jetstream::new(async_nats::connect(p.nats.url()).await.unwrap());
    let names: Vec<String> = js.stream_names().try_collect().await.unwrap();
    let mut all = String::new();
    let mut messages = Vec::new();
    for name in names {
        let stream = js.get_stream(&name).await.unwrap();
        let info = stream.get_info().await.unwrap();
        for seq in info.state.first_sequence..=info.state.last_sequence {
            let Ok(message) = stream.get_raw_message(seq).await else {
                continue;
            };
            all.push_str(&format!("{:?}", message.headers));
            all.push_str(&String::from_utf8_lossy(&message.payload));
            all.push('\n');
            messages.push(message);
        }
    }
    (all, messages)
}

fn no_needles(what: &str, text: &str) {
    for needle in NEEDLES {
        assert!(
            !text.contains(needle),
            "{what} holds {needle:?} in the clear"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_customer_is_unreadable_everywhere_while_every_chain_verifies() {
    // JSON logs, debug and up, kept to be read at the end. The four keep
    // their key-encryption key in a KMS (as production does), signing each call.
    let logs = tempfile::tempdir().unwrap();
    let kms = aftersales_testkit::KmsServer::start().unwrap();
    let p = Platform::start_logging(
        40,
        &[
            ("AFTERSALES_ERASURE_SWEEP_SECONDS", "1".into()),
            ("AFTERSALES_LOG_JSON", "true".into()),
            ("RUST_LOG", "debug".into()),
            ("AFTERSALES_KMS_KEY_ID", kms.key_arn().to_owned()),
            ("AFTERSALES_KMS_ENDPOINT", kms.endpoint()),
            ("AWS_ACCESS_KEY_ID", kms.access_key_id().to_owned()),
            ("AWS_SECRET_ACCESS_KEY", kms.secret_access_key().to_owned()),
        ],
        Some(logs.path()),
    );
    // Parts too, which holds nothing of hers here but answers for what it would.
    let parts_keys = tempfile::tempdir().unwrap();
    let mut parts_env = crate::keyring_env(parts_keys.path());
    parts_env.extend([
        (
            "DATABASE_URL".to_owned(),
            aftersales_testkit::shared_postgres()
                .create_database()
                .unwrap(),
        ),
        ("AFTERSALES_LOG_JSON".to_owned(), "true".to_owned()),
        ("RUST_LOG".to_owned(), "debug".to_owned()),
        // As the platform's four run here.
        (
            "AFTERSALES_ALLOW_UNAUTHENTICATED".to_owned(),
            "true".to_owned(),
        ),
    ]);
    let parts = crate::Service::spawn_logging("parts", parts_env.clone(), Some(logs.path()));
    // And support, on a database of its own.
    let support_env = crate::platform::on_own_database(parts_env);
    let support = crate::Service::spawn_logging("support", support_env, Some(logs.path()));
    let mut c = p.clients().await;
    for (customer, email) in [(WHO, EMAIL), ("cust-stays", "stays@example.com")] {
        c.notification
            .set_preferences(npb::Preferences {
                customer_id: customer.into(),
                email: email.into(),
                phone: PHONE.into(),
                channels: vec![npb::ChannelKind::Email.into()],
                language: "en".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let (first, second) = (imei(21), imei(22));
    register(&mut c, &first, WHO, 30).await;
    register(&mut c, &second, WHO, 60).await;
    let mut opening = mail_in(&first, WHO);
    opening.symptoms = SYMPTOMS.into();
    opening.contact_address = Some(Address {
        recipient: NAME.into(),
        lines: vec![STREET.into()],
        city: "Berlin".into(),
        region: String::new(),
        postal_code: "10117".into(),
        country: Some(CountryCode { value: "DE".into() }),
        phone: PHONE.into(),
    });
    let order = c
        .repair
        .open_repair(opening)
        .await
        .unwrap()
        .into_inner()
        .order_id;
    let received = eventually(|| stage(&c, &order), |s| *s == Some(rpb::Stage::Received)).await;
    assert_eq!(received, Some(rpb::Stage::Received));

    // Access: every service gives back what it holds, opened.
    let before = export(&p, WHO).await;
    let exported = text_of(&before);
    for needle in [EMAIL, NAME, STREET, SYMPTOMS] {
        assert!(exported.contains(needle), "the export lacks {needle:?}");
    }
    assert_eq!(
        before["warranty"]
            .records
            .iter()
            .filter(|r| r.kind == "device")
            .count(),
        2
    );
    let parcels: Vec<String> = before["logistics"]
        .records
        .iter()
        .filter(|r| r.kind == "shipment")
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(parcels.len(), 1, "the inbound parcel");
    // Sealed from the start: the raw bytes never held it (the scan does read
    // every row: the order's id is there).
    let raw = database_bytes(&p).await;
    assert!(raw.contains(&order));
    no_needles("a database, before erasure", &raw);
    let (streamed, _) = stream_bytes(&p).await;
    assert!(streamed.contains(&order));
    no_needles("an event stream, before erasure", &streamed);

    // Erasure while the phone is at the depot: repair and logistics wait.
    let asked = erase(&p, WHO).await;
    let state = |r: &ppb::ErasureReceipt| ppb::ErasureState::try_from(r.state).unwrap();
    assert_eq!(state(&asked["warranty"]), ppb::ErasureState::Done);
    assert!(
        !asked["warranty"].kept.is_empty(),
        "warranty says what it keeps"
    );
    for waiting in ["repair", "logistics"] {
        let receipt = &asked[waiting];
        assert_eq!(state(receipt), ppb::ErasureState::Deferred, "{waiting}");
        assert!(
            receipt.waiting_for.iter().any(|o| o.id == order),
            "{waiting} waits for the order: {receipt:?}"
        );
    }

    // The repair goes on to its end: the return parcel still finds the address.
    crate::journey::workshop(&mut c, &order).await;
    let closed = eventually(|| stage(&c, &order), |s| *s == Some(rpb::Stage::Closed)).await;
    assert_eq!(closed, Some(rpb::Stage::Closed));

    // Each service's sweep carries its erasure out, once, by itself.
    let after = eventually(
        || export(&p, WHO),
        |all| {
            all.values().all(|d| {
                d.erasure
                    .as_ref()
                    .is_some_and(|r| r.state == i32::from(ppb::ErasureState::Done))
            })
        },
    )
    .await;
    for (name, data) in &after {
        let receipt = data.erasure.as_ref().unwrap();
        assert_eq!(state(receipt), ppb::ErasureState::Done, "{name}");
        assert!(receipt.waiting_for.is_empty(), "{name}");
        assert!(
            !receipt.kept.is_empty(),
            "{name} says what it keeps and why"
        );
    }
    assert!(
        after["logistics"]
            .records
            .iter()
            .any(|r| r.kind == "shipment" && r.id != parcels[0]),
        "the return parcel was made before the addresses went"
    );
    let exported = text_of(&after);
    no_needles("the export after erasure", &exported);
    assert!(exported.contains(ERASED));
    assert_eq!(
        after["warranty"]
            .records
            .iter()
            .filter(|r| r.kind == "device")
            .count(),
        2,
        "devices are kept, by id"
    );

    // Nothing readable anywhere: databases, streams, and no key to open a copy.
    no_needles("a database", &database_bytes(&p).await);
    let (streamed, messages) = stream_bytes(&p).await;
    no_needles("an event stream", &streamed);
    let kek = aftersales_eventstore::AwsKms::new(
        kms.key_arn(),
        "",
        Some(&kms.endpoint()),
        aftersales_eventstore::AwsCredentials {
            access_key_id: kms.access_key_id().to_owned(),
            secret_access_key: kms.secret_access_key().to_owned(),
            session_token: None,
        },
    )
    .unwrap();
    let keyring = aftersales_eventstore::Keyring::connect(&p.keyring, Arc::new(kek))
        .await
        .unwrap();
    // Every data key the four made is wrapped by the KMS's key, none by a file.
    let keyring_db = sqlx::PgPool::connect(&p.keyring).await.unwrap();
    let wrappers: Vec<String> = sqlx::query_scalar("SELECT DISTINCT kek FROM data_keys")
        .fetch_all(&keyring_db)
        .await
        .unwrap();
    assert_eq!(wrappers, vec![format!("aws-kms:{}", kms.key_arn())]);
    let opened_copy = messages
        .iter()
        .filter(|m| m.subject.as_str().ends_with(".repair.RepairOrderOpened"))
        .filter_map(|m| rpb::RepairOrderOpened::decode(m.payload.as_ref()).ok())
        .find(|o| o.order_id == order)
        .and_then(|o| o.personal)
        .expect("the published order carries its sealed part");
    let reopened: Option<rpb::RepairOrderPersonal> =
        aftersales_runtime::sealed::open(&keyring, &opened_copy)
            .await
            .unwrap();
    assert_eq!(
        reopened, None,
        "the copy on the stream is unreadable for good"
    );

    // Read models and APIs show the fields as erased.
    let repaired = c
        .repair
        .open_personal_data(rpb::OpenPersonalDataRequest {
            order_id: order.clone(),
            categories: vec![rpb::DataCategory::CustomerWords.into()],
            purpose: rpb::AccessPurpose::Complaint.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(repaired.symptoms, ERASED);
    let shipments = c
        .logistics
        .list_shipments_by_repair(lpb::ListShipmentsByRepairRequest {
            repair_order_id: order.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .shipments;
    assert_eq!(shipments.len(), 2);
    for shipment in &shipments {
        let customer_end = match lpb::Direction::try_from(shipment.direction).unwrap() {
            lpb::Direction::Inbound => shipment.from.as_ref(),
            _ => shipment.to.as_ref(),
        };
        assert_eq!(customer_end.unwrap().recipient, ERASED);
    }
    let preferences = c
        .notification
        .get_preferences(npb::CustomerRef {
            customer_id: WHO.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(preferences.email, ERASED);
    let inbox = c
        .notification
        .list_notifications(npb::ListNotificationsRequest {
            customer_id: WHO.into(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .notifications;
    assert!(!inbox.is_empty());
    assert!(
        inbox
            .iter()
            .all(|n| n.subject == ERASED && n.body == ERASED)
    );

    // Every chain still verifies.
    for phone in [&first, &second] {
        let verdict = c
            .warranty
            .verify_device_history(wpb::VerifyDeviceHistoryRequest {
                device_id: device(phone),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(verdict.intact, "{verdict:?}");
    }
    let verdict = c
        .repair
        .verify_repair_history(rpb::VerifyRepairHistoryRequest {
            device_id: device(&first),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(verdict.intact && verdict.orders_checked == 1, "{verdict:?}");

    // Asking again answers with the same receipts; another customer is untouched.
    let again = erase(&p, WHO).await;
    for (name, data) in &after {
        assert_eq!(Some(&again[name]), data.erasure.as_ref(), "{name}");
    }
    let stays = c
        .notification
        .get_preferences(npb::CustomerRef {
            customer_id: "cust-stays".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stays.email, "stays@example.com");
    // The read models go on past the erasure's own events.
    let third = imei(23);
    register(&mut c, &third, "cust-stays", 10).await;
    let listed = eventually(
        || {
            let mut warranty = c.warranty.clone();
            async move {
                warranty
                    .list_devices_by_customer(wpb::ListDevicesByCustomerRequest {
                        customer_id: "cust-stays".into(),
                        page_size: 10,
                        page_token: String::new(),
                    })
                    .await
                    .map(|r| r.into_inner().devices.len())
                    .unwrap_or_default()
            }
        },
        |n| *n == 1,
    )
    .await;
    assert_eq!(listed, 1, "a phone registered after the erasure is listed");

    // The tool carries one request to every service.
    let tool = |args: &[&str]| {
        let out = std::process::Command::new(crate::binary("aftersales"))
            .args(args)
            .args(["--warranty-url", &p.warranty.url()])
            .args(["--repair-url", &p.repair.url()])
            .args(["--logistics-url", &p.logistics.url()])
            .args(["--notification-url", &p.notification.url()])
            .args(["--parts-url", &parts.url()])
            .args(["--support-url", &support.url()])
            .args(["--token", ""])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let exported = tool(&["customer", "export", "--customer", WHO]);
    assert_eq!(exported.lines().count(), 6, "one object per service");
    assert!(exported.contains(ERASED));
    no_needles("the tool's export", &exported);
    let erased = tool(&["customer", "erase", "--customer", WHO]);
    assert_eq!(
        erased.lines().filter(|l| l.ends_with(": done")).count(),
        6,
        "{erased}"
    );
    assert!(erased.contains("kept: "), "{erased}");

    // No log line (thousands, SQL and spans included) names the customer's
    // contact, address or words, or a whole IMEI.
    let mut lines = 0;
    for service in [
        "warranty",
        "repair",
        "logistics",
        "notification",
        "parts",
        "support",
    ] {
        let log = std::fs::read_to_string(logs.path().join(format!("{service}.log"))).unwrap();
        for line in log.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| {
                panic!("{service} logged a line that is not JSON ({e}): {line}")
            });
            lines += 1;
            for needle in
                NEEDLES
                    .iter()
                    .chain([&"stays@example.com", &first.as_str(), &second.as_str()])
            {
                assert!(
                    !line.contains(needle),
                    "{service} logged {needle:?}: {line}"
                );
            }
        }
    }
    assert!(
        lines > 20,
        "the services logged the journey ({lines} lines)"
    );
    // Nor does any metric, its labels included.
    for service in [&p.warranty, &p.repair, &p.logistics, &p.notification] {
        let metrics = service.metrics().await;
        assert!(
            metrics.contains("aftersales_grpc"),
            "{} serves its metrics: {metrics}",
            service.name
        );
        for needle in
            NEEDLES
                .iter()
                .chain([&"stays@example.com", &first.as_str(), &second.as_str()])
        {
            assert!(
                !metrics.contains(needle),
                "{} has {needle:?} in a metric",
                service.name
            );
        }
    }
}

/// A region that began with its key-encryption key in a file moves it into the
/// KMS while it serves: the rewrap moves every data key once, and a service
/// started with the KMS key alone reads what was written before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_moves_its_keyring_into_the_kms_while_it_serves() {
    let mut p = Platform::start(40);
    let c = p.clients().await;
    let mut notification = c.notification.clone();
    notification
        .set_preferences(npb::Preferences {
            customer_id: "cust-moves".into(),
            email: EMAIL.into(),
            language: "de".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let kms = aftersales_testkit::KmsServer::start().unwrap();
    let kek = p.notary_keys.path().join("keyring.kek");
    let rewrap = || {
        let out = std::process::Command::new(crate::binary("aftersales"))
            .args(["keyring", "rewrap", "--keyring-url", &p.keyring])
            .arg("--key-encryption-key-file")
            .arg(&kek)
            .args(["--kms-key-id", kms.key_arn()])
            .args(["--kms-endpoint", &kms.endpoint()])
            .env("AWS_ACCESS_KEY_ID", kms.access_key_id())
            .env("AWS_SECRET_ACCESS_KEY", kms.secret_access_key())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let moved = rewrap();
    let count: u64 = moved
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{moved}"));
    assert!(count >= 1, "{moved}");
    assert!(moved.contains(kms.key_arn()), "{moved}");
    assert!(rewrap().starts_with("0 data keys moved"), "once only");
    let keyring_db = sqlx::PgPool::connect(&p.keyring).await.unwrap();
    let wrappers: Vec<String> = sqlx::query_scalar("SELECT DISTINCT kek FROM data_keys")
        .fetch_all(&keyring_db)
        .await
        .unwrap();
    assert_eq!(wrappers, vec![format!("aws-kms:{}", kms.key_arn())]);

    // The file retired: notification started on the KMS key alone reads her
    // address, written under the file's key before the move.
    p.notification.kill();
    let env: Vec<(String, String)> = p
        .notification
        .env()
        .iter()
        .filter(|(k, _)| k != "AFTERSALES_KEY_ENCRYPTION_KEY_FILE")
        .cloned()
        .chain([
            ("AFTERSALES_KMS_KEY_ID".to_owned(), kms.key_arn().to_owned()),
            ("AFTERSALES_KMS_ENDPOINT".to_owned(), kms.endpoint()),
            (
                "AWS_ACCESS_KEY_ID".to_owned(),
                kms.access_key_id().to_owned(),
            ),
            (
                "AWS_SECRET_ACCESS_KEY".to_owned(),
                kms.secret_access_key().to_owned(),
            ),
        ])
        .collect();
    std::fs::remove_file(&kek).unwrap();
    let moved_on = crate::Service::spawn("notification", env);
    let channel = tonic::transport::Endpoint::from_shared(moved_on.url())
        .unwrap()
        .connect_lazy();
    let read = npb::notification_service_client::NotificationServiceClient::new(channel)
        .get_preferences(npb::CustomerRef {
            customer_id: "cust-moves".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.email, EMAIL);
}
