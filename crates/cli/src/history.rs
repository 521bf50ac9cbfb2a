//! `up --demo`'s history: twelve weeks of repairs across India, where only three
//! metros have a center and the rest of the country mails its phones in. The
//! services make it themselves: the platform's clock is turned back and moved
//! through the weeks step by step, so every event, parcel and message is dated
//! when it happened, and the network's figures have something true to show.
//! Delhi is the uneven center: slower to diagnose, failing QC more, and seeing
//! its repairs come back. Seeded once.

use std::collections::HashMap;

use aftersales_core::ShiftedClock;
use aftersales_proto::common::{Address, CountryCode, DeviceId, GeoPoint, Money, device_id};
use aftersales_proto::logistics as lpb;
use aftersales_proto::logistics::logistics_service_client::LogisticsServiceClient;
use aftersales_proto::repair as rpb;
use aftersales_proto::warranty as wpb;
use aftersales_runtime::telemetry::TracedChannel;
use chrono::{DateTime, Datelike as _, Duration, NaiveDate, Utc};
use rand::RngExt as _;

use crate::client::{Endpoints, repair_client, warranty};

/// Weeks of history.
const WEEKS: i64 = 12;

/// (id, name, city, address, latitude, longitude): India's centers besides
/// Bengaluru's built-in one.
const CENTERS: [(&str, &str, &str, &str, f64, f64); 2] = [
    (
        "sc-mumbai-01",
        "Aftersales Mumbai Andheri",
        "Mumbai",
        "Andheri Kurla Road 12",
        19.1136,
        72.8697,
    ),
    (
        "sc-delhi-01",
        "Aftersales Delhi Connaught Place",
        "New Delhi",
        "Connaught Place F-14",
        28.6315,
        77.2167,
    ),
];

/// Walk-ins per center per week: (center, technician, extra days to diagnose).
const WALK_INS: [(&str, &str, i64); 3] = [
    ("sc-bengaluru-01", "tech-blr-1", 0),
    ("sc-mumbai-01", "tech-bom-1", 0),
    ("sc-delhi-01", "tech-del-1", 3),
];

/// Where mail-ins come from: (city, state, PIN, weight). Hyderabad and Kolkata
/// are metros without a center.
const CITIES: [(&str, &str, &str, u64); 16] = [
    ("Hyderabad", "Telangana", "500001", 5),
    ("Kolkata", "West Bengal", "700001", 5),
    ("Pune", "Maharashtra", "411001", 3),
    ("Nagpur", "Maharashtra", "440001", 3),
    ("Patna", "Bihar", "800001", 3),
    ("Lucknow", "Uttar Pradesh", "226001", 3),
    ("Jaipur", "Rajasthan", "302001", 2),
    ("Ahmedabad", "Gujarat", "380001", 2),
    ("Bhopal", "Madhya Pradesh", "462001", 2),
    ("Guwahati", "Assam", "781001", 2),
    ("Bhubaneswar", "Odisha", "751001", 2),
    ("Visakhapatnam", "Andhra Pradesh", "530001", 2),
    ("Indore", "Madhya Pradesh", "452001", 1),
    ("Kochi", "Kerala", "682001", 1),
    ("Chandigarh", "Chandigarh", "160017", 1),
    ("Mumbai", "Maharashtra", "400001", 1),
];

/// Mail-ins per week.
const MAIL_INS: u64 = 6;

/// The depot logistics has serve India (its `depots.toml`): where the mail-ins
/// arrive and are repaired.
const INDIA_DEPOT: &str = "in-bengaluru";

/// The history's choices: the same every time from the same seed.
struct Numbers(rand::rngs::SmallRng);

impl Numbers {
    fn new() -> Self {
        Self(rand::SeedableRng::seed_from_u64(2026))
    }

    /// In 0..n.
    fn below(&mut self, n: u64) -> u64 {
        self.0.random_range(0..n.max(1))
    }
}

#[derive(Debug, Clone)]
struct Order {
    imei: String,
    customer: String,
    /// Days between purchase and opening; over a year is out of warranty.
    age_days: i64,
    mail_in: Option<usize>,
    center: &'static str,
    technician: &'static str,
    fault: wpb::FaultCategory,
    repeat: bool,
    decline: bool,
    id: String,
    covered: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Open,
    CheckIn,
    DeliverIn,
    Diagnose,
    Quote,
    Decide,
    /// A declined repair goes back at once.
    ReturnDeclined,
    Start,
    QcFail,
    QcPass,
    Ready,
    Collect,
    DeliverOut,
}

fn failed(what: &str) -> impl Fn(tonic::Status) -> String + '_ {
    move |status| {
        format!(
            "demo history {what}: {:?}: {}",
            status.code(),
            status.message()
        )
    }
}

fn imei(n: u64) -> String {
    let body = format!("{:014}", 35_800_000_000_000 + n);
    (0..10)
        .map(|d| format!("{body}{d}"))
        .find(|candidate| aftersales_core::types::luhn_valid(candidate))
        .unwrap_or(body)
}

fn device(imei: &str) -> Option<DeviceId> {
    Some(DeviceId {
        kind: Some(device_id::Kind::Imei(imei.to_owned())),
    })
}

/// A step of an order (by index) and when it is taken.
type Scheduled = (DateTime<Utc>, usize, Step);

/// Every order of the history with each of its steps' times.
fn plan(start: DateTime<Utc>) -> (Vec<Order>, Vec<Scheduled>) {
    let mut n = Numbers::new();
    let mut orders: Vec<Order> = Vec::new();
    let mut out_of_warranty = 0u32;
    let mut steps = Vec::new();
    let day = Duration::days(1);
    let hour = Duration::hours(1);
    let total_weight: u64 = CITIES.iter().map(|c| c.3).sum();
    for week in 0..WEEKS {
        let monday = start + Duration::weeks(week);
        let mut new = Vec::new();
        for (i, (center, technician, slow)) in WALK_INS.iter().enumerate() {
            // Delhi sees two a week, the others one.
            for k in 0..if i == 2 { 2 } else { 1 } {
                new.push((
                    Order {
                        imei: String::new(),
                        customer: String::new(),
                        age_days: 0,
                        mail_in: None,
                        center,
                        technician,
                        fault: wpb::FaultCategory::Display,
                        repeat: false,
                        decline: false,
                        id: String::new(),
                        covered: false,
                    },
                    *slow,
                    // Delhi fails QC on every other repair; the others rarely.
                    if i == 2 { k == 0 } else { n.below(8) == 0 },
                ));
            }
        }
        for _ in 0..MAIL_INS {
            let mut pick = n.below(total_weight);
            let city = CITIES
                .iter()
                .position(|c| {
                    if pick < c.3 {
                        true
                    } else {
                        pick -= c.3;
                        false
                    }
                })
                .unwrap_or(0);
            new.push((
                Order {
                    imei: String::new(),
                    customer: String::new(),
                    age_days: 0,
                    mail_in: Some(city),
                    center: "",
                    technician: "tech-depot-1",
                    fault: wpb::FaultCategory::Display,
                    repeat: false,
                    decline: false,
                    id: String::new(),
                    covered: false,
                },
                0,
                n.below(10) == 0,
            ));
        }
        for (k, (mut order, slow, qc_fails)) in new.into_iter().enumerate() {
            let number = u64::try_from(orders.len()).unwrap_or(0);
            order.imei = imei(number);
            order.customer = format!("demo-in-{number:04}");
            // A third out of warranty; of those a third say no to the quote.
            order.age_days = if n.below(3) == 0 {
                400 + i64::try_from(n.below(500)).unwrap_or(0)
            } else {
                30 + i64::try_from(n.below(300)).unwrap_or(0)
            };
            // Every third quote is declined, spread over centers and weeks
            // rather than left to chance, so no center is uneven by luck.
            if order.age_days > 365 {
                out_of_warranty += 1;
                order.decline = out_of_warranty.is_multiple_of(3);
            }
            order.fault = if n.below(2) == 0 {
                wpb::FaultCategory::Display
            } else {
                wpb::FaultCategory::Battery
            };
            let open = monday + day * i32::try_from(k % 3).unwrap_or(0);
            // Delhi's repairs come back three weeks later for the same fault.
            let comes_back = order.center == "sc-delhi-01" && !qc_fails && week + 3 < WEEKS;
            let index = orders.len();
            schedule(&mut steps, index, &order, open, slow, qc_fails, &mut n);
            orders.push(order.clone());
            if comes_back {
                let again = Order {
                    repeat: true,
                    decline: false,
                    ..order
                };
                let reopen = open + Duration::weeks(3) + hour;
                schedule(
                    &mut steps,
                    orders.len(),
                    &again,
                    reopen,
                    slow,
                    false,
                    &mut n,
                );
                orders.push(again);
            }
        }
    }
    steps.sort_by_key(|(at, index, step)| (*at, *step, *index));
    (orders, steps)
}

fn schedule(
    steps: &mut Vec<Scheduled>,
    index: usize,
    order: &Order,
    open: DateTime<Utc>,
    slow: i64,
    qc_fails: bool,
    n: &mut Numbers,
) {
    let day = Duration::days(1);
    let hour = Duration::hours(1);
    // A parcel takes one to two and a half days, farther places longer.
    let transit = Duration::hours(24 + i64::try_from(n.below(36)).unwrap_or(0));
    let mut at = open;
    let mut push = |at: DateTime<Utc>, step: Step| steps.push((at, index, step));
    push(at, Step::Open);
    if order.mail_in.is_some() {
        at += transit;
        push(at, Step::DeliverIn);
    } else {
        at += hour;
        push(at, Step::CheckIn);
    }
    at += day * i32::try_from(1 + slow).unwrap_or(1);
    push(at, Step::Diagnose);
    push(at + hour, Step::Quote);
    at += day;
    push(at, Step::Decide);
    push(
        at + hour
            + if order.mail_in.is_some() {
                transit
            } else {
                day
            },
        Step::ReturnDeclined,
    );
    push(at + hour, Step::Start);
    at += day;
    if qc_fails {
        push(at, Step::QcFail);
        at += day;
    }
    push(at, Step::QcPass);
    push(at + hour, Step::Ready);
    at += hour;
    if order.mail_in.is_some() {
        push(at + transit, Step::DeliverOut);
    } else {
        push(at + day, Step::Collect);
    }
}

/// The platform's clocks, turned back and forward by one owner.
struct Time<'a> {
    clock: &'a ShiftedClock,
    shift: Duration,
}

impl Time<'_> {
    fn to(&mut self, at: DateTime<Utc>) {
        let by = at - self.clock.now();
        self.clock.advance(by);
        self.shift += by;
    }

    fn back_to_now(&mut self) {
        self.clock.advance(-self.shift);
        self.shift = Duration::zero();
    }
}

type Repair = rpb::repair_service_client::RepairServiceClient<TracedChannel>;

/// Waits until `order` is in `stage` (its parcel's delivery reached repair).
async fn reaches(r: &mut Repair, order: &str, stage: rpb::Stage) -> Result<(), String> {
    for _ in 0..600 {
        let now = r
            .get_repair(rpb::OrderRef {
                order_id: order.to_owned(),
            })
            .await
            .map_err(failed("get"))?
            .into_inner();
        if now.stage == i32::from(stage) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Err(format!(
        "demo history: order {order} never reached {stage:?}"
    ))
}

/// Delivers the order's parcel going `direction` at once, once logistics has made it.
async fn deliver(
    l: &mut LogisticsServiceClient<TracedChannel>,
    order: &str,
    direction: lpb::Direction,
) -> Result<(), String> {
    for _ in 0..600 {
        let parcels = l
            .list_shipments_by_repair(lpb::ListShipmentsByRepairRequest {
                repair_order_id: order.to_owned(),
            })
            .await
            .map_err(failed("parcels"))?
            .into_inner()
            .shipments;
        if let Some(parcel) = parcels
            .iter()
            .find(|p| p.direction == i32::from(direction) && !p.tracking_number.is_empty())
        {
            l.play_sandbox_script(lpb::PlaySandboxScriptRequest {
                shipment_id: parcel.shipment_id.clone(),
                script: "delivered".into(),
                step_millis: 0,
            })
            .await
            .map_err(failed("deliver"))?;
            // The scans are dated when logistics records them: before time moves on.
            for _ in 0..600 {
                let now = l
                    .get_shipment(lpb::ShipmentRef {
                        shipment_id: parcel.shipment_id.clone(),
                    })
                    .await
                    .map_err(failed("parcel"))?
                    .into_inner();
                if now.status == i32::from(lpb::TrackingStatus::Delivered) {
                    return Ok(());
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            return Err(format!(
                "demo history: parcel {} never delivered",
                parcel.shipment_id
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Err(format!("demo history: no {direction:?} parcel for {order}"))
}

fn monday_before(t: DateTime<Utc>) -> DateTime<Utc> {
    let date: NaiveDate =
        t.date_naive() - Duration::days(i64::from(t.weekday().num_days_from_monday()));
    date.and_hms_opt(9, 0, 0).map_or(t, |d| d.and_utc())
}

/// Seeds the history with `clock`, the clock every service reads, as the
/// support desk (`desk`), every center's staff (`staff`) and an operator
/// (`operator`: centers and the sandbox carrier). The clock is back to now after.
pub async fn seed(
    clock: &ShiftedClock,
    desk: &Endpoints,
    staff: &Endpoints,
    operator: &Endpoints,
) -> Result<(), String> {
    let mut w = warranty(desk).await?;
    if w.get_device(wpb::GetDeviceRequest {
        device_id: device(&imei(0)),
    })
    .await
    .is_ok()
    {
        return Ok(());
    }
    let mut r = repair_client(desk).await?;
    let mut s = repair_client(staff).await?;
    let mut ops = repair_client(operator).await?;
    let mut l = LogisticsServiceClient::new(
        operator
            .channel("logistics", &operator.logistics_url)
            .await?,
    );
    let start = monday_before(clock.now() - Duration::weeks(WEEKS + 1));
    let (mut orders, steps) = plan(start);
    let mut time = Time {
        clock,
        shift: Duration::zero(),
    };
    time.to(start - Duration::hours(1));
    let seeded = async {
        for (id, name, city, address, latitude, longitude) in CENTERS {
            ops.upsert_service_center(rpb::ServiceCenter {
                id: id.into(),
                name: name.into(),
                country: Some(CountryCode { value: "IN".into() }),
                city: city.into(),
                address: vec![address.into()],
                location: Some(GeoPoint {
                    latitude,
                    longitude,
                }),
                open_days: ["mon", "tue", "wed", "thu", "fri", "sat"]
                    .map(String::from)
                    .to_vec(),
                hours: "10:00-19:00".into(),
                capabilities: vec!["display".into(), "battery".into()],
                daily_capacity: 30,
            })
            .await
            .map_err(failed("center"))?;
        }
        // Each center, and the depot the mail-ins reach (logistics' depot
        // serving India), counts in the parts its repairs will fit.
        let mut parts = crate::parts::client(staff).await?;
        for center in WALK_INS
            .iter()
            .map(|(center, _, _)| *center)
            .chain([INDIA_DEPOT])
        {
            crate::parts::stock_for_repairs(&mut parts, center, "Aurora 5", 50).await?;
        }
        // A parcel's delivery reaches repair through logistics' events; it is
        // waited for only when the order's next step needs it, by when it has
        // long arrived, so the clock moves on without waiting.
        let mut pending: HashMap<usize, (String, rpb::Stage)> = HashMap::new();
        for &(at, index, step) in &steps {
            time.to(at);
            if let Some((order, stage)) = pending.remove(&index) {
                reaches(&mut r, &order, stage).await?;
            }
            if let Some(wait) =
                act(&mut w, &mut r, &mut s, &mut l, &mut orders[index], step, at).await?
            {
                pending.insert(index, wait);
            }
        }
        for (order, stage) in pending.into_values() {
            reaches(&mut r, &order, stage).await?;
        }
        Ok::<_, String>(orders.len())
    };
    let result = seeded.await;
    time.back_to_now();
    let count = result?;
    println!("demo history: {count} repairs over {WEEKS} weeks across India");
    Ok(())
}

/// Does `step` of `order` at `at`; what to wait for before time moves on.
async fn act(
    w: &mut wpb::warranty_service_client::WarrantyServiceClient<TracedChannel>,
    desk: &mut Repair,
    staff: &mut Repair,
    l: &mut LogisticsServiceClient<TracedChannel>,
    order: &mut Order,
    step: Step,
    at: DateTime<Utc>,
) -> Result<Option<(String, rpb::Stage)>, String> {
    let id = order.id.clone();
    let at_order = || rpb::OrderRef {
        order_id: id.clone(),
    };
    let unrepaired = order.decline && !order.covered;
    match step {
        Step::Open => {
            if !order.repeat {
                w.register_device(wpb::RegisterDeviceRequest {
                    device_id: device(&order.imei),
                    model: "Aurora 5".into(),
                    purchase_date: (at.date_naive() - Duration::days(order.age_days)).to_string(),
                    country_of_purchase: Some(CountryCode { value: "IN".into() }),
                    channel: wpb::SalesChannel::OnlineStore.into(),
                    customer_id: order.customer.clone(),
                    ..Default::default()
                })
                .await
                .map_err(failed("register"))?;
            }
            let address = order.mail_in.map(|city| {
                let (city, state, pin, _) = CITIES[city];
                Address {
                    recipient: order.customer.clone(),
                    lines: vec!["12 Station Road".into()],
                    city: city.into(),
                    region: state.into(),
                    postal_code: pin.into(),
                    country: Some(CountryCode { value: "IN".into() }),
                    phone: String::new(),
                }
            });
            order.id = desk
                .open_repair(rpb::OpenRepairRequest {
                    device_id: device(&order.imei),
                    channel: if address.is_some() {
                        rpb::Channel::MailIn
                    } else {
                        rpb::Channel::WalkIn
                    }
                    .into(),
                    service_center_id: order.center.into(),
                    customer_id: order.customer.clone(),
                    symptoms: "the screen flickers".into(),
                    contact_address: address,
                    reported_fault: order.fault.into(),
                    ..Default::default()
                })
                .await
                .map_err(failed("open"))?
                .into_inner()
                .order_id;
        }
        Step::CheckIn => {
            staff
                .check_in_device(rpb::CheckInDeviceRequest {
                    order_id: id.clone(),
                    condition_notes: "worn edges".into(),
                    ..Default::default()
                })
                .await
                .map_err(failed("check in"))?;
        }
        Step::DeliverIn => {
            deliver(l, &id, lpb::Direction::Inbound).await?;
            return Ok(Some((id, rpb::Stage::Received)));
        }
        Step::Diagnose => {
            let diagnosed = staff
                .diagnose(rpb::DiagnoseRequest {
                    order_id: id.clone(),
                    fault_category: order.fault.into(),
                    fault_codes: Vec::new(),
                    technician: order.technician.into(),
                })
                .await
                .map_err(failed("diagnose"))?
                .into_inner();
            order.covered = diagnosed.coverage.is_some_and(|c| c.covered);
        }
        Step::Quote if !order.covered => {
            staff
                .issue_quote(rpb::IssueQuoteRequest {
                    order_id: id.clone(),
                    lines: vec![rpb::QuoteLine {
                        description: "display assembly".into(),
                        is_labour: false,
                        amount: Some(Money {
                            minor_units: 650_000,
                            currency: "INR".into(),
                        }),
                    }],
                    valid_until: Some(aftersales_runtime::request::timestamp_to_proto(
                        at + Duration::days(14),
                    )),
                })
                .await
                .map_err(failed("quote"))?;
        }
        Step::Decide if !order.covered => {
            if order.decline {
                desk.decline_quote(at_order())
                    .await
                    .map_err(failed("decline"))?;
            } else {
                desk.approve_quote(at_order())
                    .await
                    .map_err(failed("approve"))?;
            }
        }
        Step::Start if !unrepaired => {
            staff
                .start_repair(rpb::StartRepairRequest {
                    order_id: id.clone(),
                    technician: order.technician.into(),
                })
                .await
                .map_err(failed("start"))?;
        }
        Step::QcFail | Step::QcPass if !unrepaired => {
            let passed = step == Step::QcPass;
            staff
                .record_qc_result(rpb::RecordQcResultRequest {
                    order_id: id.clone(),
                    passed,
                    notes: if passed {
                        String::new()
                    } else {
                        "the display flickers again".into()
                    },
                })
                .await
                .map_err(failed("QC"))?;
        }
        Step::Ready if !unrepaired => {
            staff
                .mark_ready_for_return(at_order())
                .await
                .map_err(failed("ready"))?;
        }
        Step::ReturnDeclined if unrepaired && order.mail_in.is_some() => {
            deliver(l, &id, lpb::Direction::Outbound).await?;
            return Ok(Some((id, rpb::Stage::Closed)));
        }
        Step::Collect | Step::ReturnDeclined if unrepaired == (step == Step::ReturnDeclined) => {
            staff
                .confirm_collected(at_order())
                .await
                .map_err(failed("collected"))?;
        }
        Step::DeliverOut if !unrepaired => {
            deliver(l, &id, lpb::Direction::Outbound).await?;
            return Ok(Some((id, rpb::Stage::Closed)));
        }
        Step::Quote
        | Step::Decide
        | Step::ReturnDeclined
        | Step::Start
        | Step::QcFail
        | Step::QcPass
        | Step::Ready
        | Step::Collect
        | Step::DeliverOut => {}
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_is_weeks_of_orders_each_in_its_steps_order() {
        let start = monday_before(DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000));
        let (orders, steps) = plan(start);
        let walk_ins = WALK_INS.len() + 1;
        let first = usize::try_from(WEEKS).unwrap_or(0)
            * (walk_ins + usize::try_from(MAIL_INS).unwrap_or(0));
        assert!(orders.len() > first, "Delhi's repeats come on top");
        assert!(orders.iter().any(|o| o.repeat && o.center == "sc-delhi-01"));
        assert!(orders.iter().filter(|o| o.mail_in.is_some()).count() >= 60);
        // Each order opens first, and a repair's steps come in the order the
        // state machine takes them (a declined one's return is its own branch).
        for index in 0..orders.len() {
            let mine: Vec<_> = steps
                .iter()
                .filter(|s| s.1 == index && s.2 != Step::ReturnDeclined)
                .collect();
            assert_eq!(mine[0].2, Step::Open);
            assert!(
                mine.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].2 < w[1].2),
                "{mine:?}"
            );
        }
        // Parcels are delivered before logistics would call them stalled (72 h).
        for index in 0..orders.len() {
            let at = |step| {
                steps
                    .iter()
                    .find(|s| s.1 == index && s.2 == step)
                    .map(|s| s.0)
            };
            if let (Some(open), Some(delivered)) = (at(Step::Open), at(Step::DeliverIn)) {
                assert!(delivered - open < Duration::hours(72));
            }
        }
    }
}
