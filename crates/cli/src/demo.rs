//! `aftersales up --demo`: realistic data to look at. Devices bought in six
//! countries, customers who want email and others the inbox, and repairs in
//! every stage at centers on four continents (the built-in centers), some by
//! mail. Seeded once: a data directory that has it already is left alone.

use aftersales_proto::common::{Address, CountryCode, DeviceId, Money, device_id};
use aftersales_proto::notification as npb;
use aftersales_proto::repair as rpb;
use aftersales_proto::warranty as wpb;
use chrono::{Duration, Utc};

use crate::client::{Endpoints, repair_client, warranty};

/// (IMEI, model, country, days since purchase, customer, center)
const DEVICES: [(&str, &str, &str, i64, &str, &str); 12] = [
    (
        "490154203237518",
        "Aurora 5",
        "DE",
        40,
        "demo-lena",
        "sc-berlin-01",
    ),
    (
        "356938035643809",
        "Aurora 5 Pro",
        "DE",
        900,
        "demo-jonas",
        "sc-berlin-01",
    ),
    (
        "352099001761481",
        "Aurora 4",
        "FR",
        200,
        "demo-camille",
        "sc-paris-01",
    ),
    (
        "353918057349918",
        "Aurora 5",
        "CN",
        10,
        "demo-wei",
        "sc-shanghai-01",
    ),
    (
        "351756051523999",
        "Aurora 5 Lite",
        "CN",
        500,
        "demo-fang",
        "sc-shanghai-01",
    ),
    (
        "359881030314356",
        "Aurora 5",
        "IN",
        120,
        "demo-priya",
        "sc-bengaluru-01",
    ),
    (
        "357805023984942",
        "Aurora 4",
        "IN",
        800,
        "demo-arjun",
        "sc-bengaluru-01",
    ),
    (
        "353326066012345",
        "Aurora 5 Pro",
        "US",
        60,
        "demo-emma",
        "sc-newyork-01",
    ),
    (
        "354066090123456",
        "Aurora 5",
        "AU",
        300,
        "demo-jack",
        "sc-sydney-01",
    ),
    (
        "356708041234567",
        "Aurora 4",
        "ZA",
        700,
        "demo-thabo",
        "sc-johannesburg-01",
    ),
    (
        "351234560000007",
        "Aurora 5",
        "ES",
        90,
        "demo-lucia",
        "sc-madrid-01",
    ),
    (
        "358240051111110",
        "Aurora 5 Lite",
        "DE",
        15,
        "demo-mia",
        "sc-berlin-01",
    ),
];

/// The stage each device's repair is left in (by the index above).
const STAGES: [rpb::Stage; 12] = [
    rpb::Stage::Opened,
    rpb::Stage::Quoted,
    rpb::Stage::Received,
    rpb::Stage::Diagnosed,
    rpb::Stage::Approved,
    rpb::Stage::InRepair,
    rpb::Stage::QcPassed,
    rpb::Stage::ReadyForReturn,
    rpb::Stage::Closed,
    rpb::Stage::Cancelled,
    rpb::Stage::AwaitingDevice,
    rpb::Stage::Closed,
];

fn device(imei: &str) -> Option<DeviceId> {
    Some(DeviceId {
        kind: Some(device_id::Kind::Imei(imei.to_owned())),
    })
}

/// The check digit the demo IMEIs need (some above are written without it).
fn with_check_digit(imei: &str) -> String {
    let body = &imei[..14];
    (0..10)
        .map(|d| format!("{body}{d}"))
        .find(|candidate| aftersales_core::types::luhn_valid(candidate))
        .unwrap_or_else(|| imei.to_owned())
}

fn failed(what: &str) -> impl Fn(tonic::Status) -> String + '_ {
    move |status| format!("demo {what}: {:?}: {}", status.code(), status.message())
}

/// Units of each part a demo center holds.
const DEMO_STOCK: i32 = 20;

/// Seeds as a support agent at the desk (`desk`) and as staff of every center
/// (`center`).
pub async fn seed(desk: &Endpoints, center: &Endpoints, email: bool) -> Result<(), String> {
    let mut w = warranty(desk).await?;
    let mut r = repair_client(desk).await?;
    let mut staff = repair_client(center).await?;
    let mut n = npb::notification_service_client::NotificationServiceClient::new(
        desk.channel("notification", &desk.notification_url).await?,
    );
    let first = with_check_digit(DEVICES[0].0);
    if w.get_device(wpb::GetDeviceRequest {
        device_id: device(&first),
    })
    .await
    .is_ok()
    {
        println!("demo data already there");
        return Ok(());
    }
    let mut parts = crate::parts::client(center).await?;
    #[allow(clippy::disallowed_methods)] // demo data is dated from today
    let today = Utc::now();
    for (i, (raw, model, country, days, customer, center)) in DEVICES.iter().enumerate() {
        let imei = with_check_digit(raw);
        w.register_device(wpb::RegisterDeviceRequest {
            device_id: device(&imei),
            model: (*model).into(),
            purchase_date: (today.date_naive() - Duration::days(*days)).to_string(),
            country_of_purchase: Some(CountryCode {
                value: (*country).into(),
            }),
            channel: wpb::SalesChannel::OnlineStore.into(),
            customer_id: (*customer).into(),
            ..Default::default()
        })
        .await
        .map_err(failed("register"))?;
        if i % 2 == 0 {
            n.set_preferences(npb::Preferences {
                customer_id: (*customer).into(),
                email: format!("{customer}@example.com"),
                // Email once `up` has an SMTP server (--smtp-url); the inbox always.
                channels: if email {
                    vec![npb::ChannelKind::Email.into()]
                } else {
                    vec![]
                },
                language: match *country {
                    "CN" => "zh-CN",
                    "DE" => "de",
                    "IN" => "hi",
                    _ => "en",
                }
                .into(),
                ..Default::default()
            })
            .await
            .map_err(failed("preferences"))?;
        }
        let target = STAGES[i];
        let mail_in = target == rpb::Stage::AwaitingDevice;
        let order = open_or_book(
            &mut r,
            rpb::OpenRepairRequest {
                device_id: device(&imei),
                channel: if mail_in {
                    rpb::Channel::MailIn
                } else {
                    rpb::Channel::WalkIn
                }
                .into(),
                service_center_id: if mail_in {
                    String::new()
                } else {
                    (*center).into()
                },
                customer_id: (*customer).into(),
                symptoms: "screen flickers and the battery drains".into(),
                contact_address: mail_in.then(|| Address {
                    recipient: (*customer).into(),
                    lines: vec!["Calle Mayor 1".into()],
                    city: "Madrid".into(),
                    region: String::new(),
                    postal_code: "28013".into(),
                    country: Some(CountryCode {
                        value: (*country).into(),
                    }),
                    phone: String::new(),
                }),
                reported_fault: wpb::FaultCategory::Battery.into(),
                walk_in_day: String::new(),
                ..Default::default()
            },
        )
        .await
        .map_err(failed("open"))?;
        let currency = match *country {
            "CN" => "CNY",
            "IN" => "INR",
            "US" => "USD",
            "AU" => "AUD",
            "ZA" => "ZAR",
            _ => "EUR",
        };
        if !mail_in {
            // The center counts in the parts its repairs will fit.
            crate::parts::stock_for_repairs(&mut parts, center, model, DEMO_STOCK).await?;
        }
        advance_to(&mut staff, &mut r, &order, target, today, currency).await?;
    }
    println!(
        "demo data: {} devices, repairs in every stage",
        DEVICES.len()
    );
    Ok(())
}

type RepairClient =
    rpb::repair_service_client::RepairServiceClient<aftersales_runtime::telemetry::TracedChannel>;

/// Walks a walk-in order to `target`: the center's steps as `r`, the
/// customer's answer to a quote as `desk`.
async fn advance_to(
    r: &mut RepairClient,
    desk: &mut RepairClient,
    order: &rpb::RepairOrder,
    target: rpb::Stage,
    today: chrono::DateTime<Utc>,
    currency: &str,
) -> Result<(), String> {
    use rpb::Stage as S;
    let id = order.order_id.clone();
    let at = |id: &str| rpb::OrderRef {
        order_id: id.to_owned(),
    };
    match target {
        S::Opened | S::AwaitingDevice => return Ok(()),
        S::Cancelled => {
            r.cancel_repair(rpb::CancelRepairRequest {
                order_id: id,
                reason: "the customer found it was a setting".into(),
            })
            .await
            .map_err(failed("cancel"))?;
            return Ok(());
        }
        S::Unspecified
        | S::Received
        | S::Diagnosed
        | S::Quoted
        | S::Approved
        | S::InRepair
        | S::QcPassed
        | S::ReadyForReturn
        | S::Closed => {}
    }
    r.check_in_device(rpb::CheckInDeviceRequest {
        order_id: id.clone(),
        condition_notes: "light scratches on the back".into(),
        ..Default::default()
    })
    .await
    .map_err(failed("check in"))?;
    if target == S::Received {
        return Ok(());
    }
    let diagnosed = r
        .diagnose(rpb::DiagnoseRequest {
            order_id: id.clone(),
            fault_category: wpb::FaultCategory::Battery.into(),
            fault_codes: vec!["BAT-CAP-62".into()],
            technician: "tech-demo".into(),
        })
        .await
        .map_err(failed("diagnose"))?
        .into_inner();
    if target == S::Diagnosed {
        return Ok(());
    }
    let covered = diagnosed.coverage.is_some_and(|c| c.covered);
    if !covered {
        r.issue_quote(rpb::IssueQuoteRequest {
            order_id: id.clone(),
            lines: vec![rpb::QuoteLine {
                description: "battery replacement".into(),
                is_labour: false,
                amount: Some(Money {
                    minor_units: 6900,
                    currency: currency.into(),
                }),
            }],
            valid_until: Some(aftersales_runtime::request::timestamp_to_proto(
                today + Duration::days(14),
            )),
        })
        .await
        .map_err(failed("quote"))?;
        if target == S::Quoted {
            return Ok(());
        }
        desk.approve_quote(at(&id))
            .await
            .map_err(failed("approve"))?;
        if target == S::Approved {
            return Ok(());
        }
    }
    r.start_repair(rpb::StartRepairRequest {
        order_id: id.clone(),
        technician: "tech-demo".into(),
    })
    .await
    .map_err(failed("start"))?;
    if target == S::InRepair {
        return Ok(());
    }
    r.record_qc_result(rpb::RecordQcResultRequest {
        order_id: id.clone(),
        passed: true,
        notes: String::new(),
    })
    .await
    .map_err(failed("QC"))?;
    if target == S::QcPassed {
        return Ok(());
    }
    r.mark_ready_for_return(at(&id))
        .await
        .map_err(failed("ready"))?;
    if target == S::ReadyForReturn {
        return Ok(());
    }
    r.confirm_collected(at(&id))
        .await
        .map_err(failed("collected"))?;
    Ok(())
}

/// Opens `request`; a walk-in at a center that takes none today (closed on
/// Sundays, say, or full) is booked for the day the service names instead.
async fn open_or_book(
    r: &mut RepairClient,
    request: rpb::OpenRepairRequest,
) -> Result<rpb::RepairOrder, tonic::Status> {
    match r.open_repair(request.clone()).await {
        Ok(order) => Ok(order.into_inner()),
        Err(full) if full.code() == tonic::Code::ResourceExhausted => {
            let Some(day) = crate::client::next_available_day(&full) else {
                return Err(full);
            };
            r.open_repair(rpb::OpenRepairRequest {
                walk_in_day: day.to_owned(),
                ..request
            })
            .await
            .map(tonic::Response::into_inner)
        }
        Err(status) => Err(status),
    }
}
