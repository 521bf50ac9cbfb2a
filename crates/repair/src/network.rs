//! Where the network is thin and which centers are uneven, from the repair log:
//! the `NetworkFacts` read model (one row per order, its customer placed at a
//! city, never an address) and the figures over it: demand per city, a plan
//! for new service points, and quality per center or technician by week.

use std::collections::{BTreeMap, HashMap, HashSet};

use aftersales_core::Error;
use aftersales_eventstore::{Projection, RecordedEvent, StoreError, StoreTransaction};
use aftersales_network::quality::{self, Judged, MIN_ORDERS};
use aftersales_network::{Area, Candidate, Gazetteer, Plan, Planner, Point, ServicePoint};
use chrono::{DateTime, Datelike as _, Duration, NaiveDate, Utc};
use sqlx::Row as _;

use crate::app::{AppResult, Repairs};
use crate::domain::centers::ServiceCenter;
use crate::domain::order::{Channel, Event};

/// A repaired device back for the same fault within this long was not fixed
/// the first time.
pub const FIRST_TIME_FIX_DAYS: i64 = 90;
/// A parcel leg longer than this is slow (logistics reports a parcel stalled
/// after the same silence).
pub const SLOW_PARCEL_HOURS: i64 = 72;
/// How far customers travel to a service point unless asked otherwise.
pub const DEFAULT_WITHIN_KM: f64 = 50.0;
/// Candidate cities one plan may name.
pub const MAX_CANDIDATES: usize = 5_000;
/// Finished orders an area or the network needs before its own p90 is used.
const MIN_SAMPLES: usize = 3;
/// Assumed where the country has no finished repairs yet.
const ASSUMED_WALK_IN_P90_DAYS: f64 = 3.0;
const ASSUMED_MAIL_IN_P90_DAYS: f64 = 8.0;

/// One row per order: what the planner and the quality figures read.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetworkFacts;

impl NetworkFacts {
    pub const NAME: &'static str = "repair-network-facts";
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn monday(t: DateTime<Utc>) -> NaiveDate {
    let day = t.date_naive();
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

impl Projection for NetworkFacts {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        let Some(order_id) = event.stream_id.as_str().strip_prefix("repair-") else {
            return Ok(());
        };
        let order_id = order_id.to_owned();
        let when = at(event.metadata.recorded_at);
        let decoded: Event = event.decode()?;
        if let Event::RepairOrderOpened {
            device,
            channel,
            customer_id,
            ..
        } = &decoded
        {
            let (kind, center, country, area) = match channel {
                Channel::WalkIn { center_id, .. } => {
                    ("walk_in", center_id.clone(), String::new(), None)
                }
                Channel::MailIn { address } => (
                    "mail_in",
                    String::new(),
                    address.country.clone(),
                    Gazetteer::builtin()
                        .resolve(&address.country, &address.city)
                        .map(|c| i64::from(c.id)),
                ),
            };
            let sql = "INSERT INTO network_orders (order_id, customer_id, device, channel, center_id, \
                       country, area_id, opened_at, week) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                       ON CONFLICT (order_id) DO NOTHING";
            // The latest mail-in places a customer; a walk-in only until then.
            let place = if kind == "mail_in" {
                "INSERT INTO network_customers (customer_id, mail_in, country, area_id, center_id) \
                 VALUES ($1, 1, $2, $3, '') ON CONFLICT (customer_id) DO UPDATE SET mail_in = 1, \
                 country = excluded.country, area_id = excluded.area_id, center_id = ''"
            } else {
                "INSERT INTO network_customers (customer_id, mail_in, country, area_id, center_id) \
                 VALUES ($1, 0, $2, $3, $4) ON CONFLICT (customer_id) DO UPDATE SET \
                 center_id = excluded.center_id WHERE network_customers.mail_in = 0"
            };
            aftersales_eventstore::on_connection!(tx.connection(), c => {
                sqlx::query(sql)
                    .bind(order_id.clone())
                    .bind(customer_id.clone())
                    .bind(device.name())
                    .bind(kind)
                    .bind(center.clone())
                    .bind(country.clone())
                    .bind(area)
                    .bind(when.clone())
                    .bind(monday(event.metadata.recorded_at).to_string())
                    .execute(&mut *c)
                    .await?;
                sqlx::query(place)
                    .bind(customer_id.clone())
                    .bind(country.clone())
                    .bind(area)
                    .bind(center.clone())
                    .execute(c)
                    .await?;
            });
            return Ok(());
        }
        // Durations kept with the order, so figures need no times parsed.
        let timed = if let Event::ReadyForReturn { repaired } = &decoded {
            Some((
                "SELECT received_at FROM network_orders WHERE order_id = $1",
                if *repaired {
                    "UPDATE network_orders SET ready_at = $2, ready_seconds = $3, repaired = 1 WHERE order_id = $1"
                } else {
                    "UPDATE network_orders SET ready_at = $2, ready_seconds = $3, repaired = 0 WHERE order_id = $1"
                },
            ))
        } else if let Event::ReturnDelivered { .. } = &decoded {
            Some((
                "SELECT opened_at FROM network_orders WHERE order_id = $1",
                "UPDATE network_orders SET finished_at = $2, round_trip_seconds = $3 WHERE order_id = $1",
            ))
        } else {
            None
        };
        if let Some((select, sql)) = timed {
            let since: Option<Option<String>> = aftersales_eventstore::on_connection!(tx.connection(), c => {
                sqlx::query_scalar(select).bind(order_id.clone()).fetch_optional(c).await?
            });
            let seconds = time(since.flatten())?
                .map(|since| (event.metadata.recorded_at - since).num_seconds().max(0));
            aftersales_eventstore::on_connection!(tx.connection(), c => {
                sqlx::query(sql)
                    .bind(order_id.clone())
                    .bind(when.clone())
                    .bind(seconds)
                    .execute(c)
                    .await?;
            });
            return Ok(());
        }
        let (sql, text): (&str, Option<String>) = match &decoded {
            Event::DeviceCheckedIn { .. } | Event::DeviceReceived { .. } => (
                "UPDATE network_orders SET received_at = COALESCE(received_at, $2) WHERE order_id = $1",
                Some(when),
            ),
            Event::Diagnosed {
                fault, technician, ..
            } => {
                let sql =
                    "UPDATE network_orders SET fault = $2, technician = $3 WHERE order_id = $1";
                aftersales_eventstore::on_connection!(tx.connection(), c => {
                    sqlx::query(sql)
                        .bind(order_id.clone())
                        .bind(fault.clone())
                        .bind(technician.clone())
                        .execute(c)
                        .await?;
                });
                return Ok(());
            }
            Event::RepairStarted { technician } => (
                "UPDATE network_orders SET technician = $2 WHERE order_id = $1",
                Some(technician.clone()),
            ),
            Event::QuoteIssued { .. } => (
                "UPDATE network_orders SET quoted = 1 WHERE order_id = $1",
                None,
            ),
            Event::QuoteDeclined { .. } => (
                "UPDATE network_orders SET declined = 1 WHERE order_id = $1",
                None,
            ),
            Event::QcPassed { .. } => (
                "UPDATE network_orders SET qc_passes = qc_passes + 1 WHERE order_id = $1",
                None,
            ),
            Event::QcFailed { .. } => (
                "UPDATE network_orders SET qc_failures = qc_failures + 1 WHERE order_id = $1",
                None,
            ),
            Event::DeviceCollected => (
                "UPDATE network_orders SET finished_at = $2 WHERE order_id = $1",
                Some(when),
            ),
            Event::RepairCancelled { .. } => (
                "UPDATE network_orders SET cancelled = 1 WHERE order_id = $1",
                None,
            ),
            Event::RepairOrderOpened { .. }
            | Event::ReadyForReturn { .. }
            | Event::ReturnDelivered { .. }
            | Event::QuoteApproved { .. }
            | Event::PartReplaced(_)
            | Event::WaitingForParts { .. }
            | Event::PartArrived { .. }
            | Event::PartsReleased { .. }
            | Event::PersonalDataAccessed { .. }
            | Event::DataProtectionRecorded { .. } => return Ok(()),
        };
        aftersales_eventstore::on_connection!(tx.connection(), c => {
            let query = sqlx::query(sql).bind(order_id.clone());
            match text.clone() {
                Some(text) => query.bind(text).execute(c).await?,
                None => query.execute(c).await?,
            };
        });
        Ok(())
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        tx.empty_tables(&["network_orders", "network_customers"])
            .await
    }
}

/// Forgets the city an erased customer was placed at, as a rebuild would
/// (their address can no longer be read).
pub async fn forget_places(tx: &mut StoreTransaction, customer: &str) -> Result<u64, StoreError> {
    let sql =
        "UPDATE network_orders SET area_id = NULL WHERE customer_id = $1 AND area_id IS NOT NULL";
    let done = aftersales_eventstore::on_connection!(tx.connection(), c => {
        sqlx::query("UPDATE network_customers SET area_id = NULL WHERE customer_id = $1")
            .bind(customer.to_owned())
            .execute(&mut *c)
            .await?;
        sqlx::query(sql).bind(customer.to_owned()).execute(c).await?.rows_affected()
    });
    Ok(done)
}

/// An order as the figures see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub order_id: String,
    pub customer_id: String,
    pub device: String,
    pub mail_in: bool,
    /// Empty for a mail-in.
    pub center_id: String,
    pub country: String,
    pub area: Option<u32>,
    pub opened_at: DateTime<Utc>,
    pub week: NaiveDate,
    pub fault: String,
    pub technician: String,
    pub received_at: Option<DateTime<Utc>>,
    pub ready_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub repaired: bool,
    pub quoted: bool,
    pub declined: bool,
    pub qc_passes: u32,
    pub qc_failures: u32,
    pub cancelled: bool,
}

fn time(row: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    row.map(|t| {
        DateTime::parse_from_rfc3339(&t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| StoreError::CorruptRow(format!("network_orders time {t:?}")))
    })
    .transpose()
}

macro_rules! fact {
    ($row:expr) => {{
        let row = $row;
        let area: Option<i64> = row.try_get("area_id")?;
        let week: String = row.try_get("week")?;
        let count = |name: &str| -> Result<u32, StoreError> {
            let n: i64 = row.try_get(name)?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        };
        Fact {
            order_id: row.try_get("order_id")?,
            customer_id: row.try_get("customer_id")?,
            device: row.try_get("device")?,
            mail_in: row.try_get::<String, _>("channel")? == "mail_in",
            center_id: row.try_get("center_id")?,
            country: row.try_get("country")?,
            area: area.and_then(|a| u32::try_from(a).ok()),
            opened_at: time(Some(row.try_get("opened_at")?))?.unwrap_or_default(),
            week: week
                .parse()
                .map_err(|_| StoreError::CorruptRow(format!("network_orders week {week:?}")))?,
            fault: row.try_get("fault")?,
            technician: row.try_get("technician")?,
            received_at: time(row.try_get("received_at")?)?,
            ready_at: time(row.try_get("ready_at")?)?,
            finished_at: time(row.try_get("finished_at")?)?,
            repaired: count("repaired")? > 0,
            quoted: count("quoted")? > 0,
            declined: count("declined")? > 0,
            qc_passes: count("qc_passes")?,
            qc_failures: count("qc_failures")?,
            cancelled: count("cancelled")? > 0,
        }
    }};
}

/// Mail-ins from `country` and every walk-in (the caller keeps its country's),
/// opened in or after the week of `from`.
async fn facts(
    store: &aftersales_eventstore::AnyEventStore,
    country: &str,
    from: NaiveDate,
) -> Result<Vec<Fact>, StoreError> {
    let sql = "SELECT order_id, customer_id, device, channel, center_id, country, area_id, opened_at, \
               week, fault, technician, received_at, ready_at, finished_at, repaired, quoted, declined, \
               qc_passes, qc_failures, cancelled FROM network_orders \
               WHERE (country = $1 OR channel = 'walk_in') AND week >= $2 ORDER BY opened_at, order_id";
    aftersales_eventstore::on_read_pool!(store, pool => {
        let rows = sqlx::query(sql)
            .bind(country.to_owned())
            .bind(from.to_string())
            .fetch_all(pool)
            .await?;
        rows.iter().map(|r| Ok(fact!(r))).collect()
    })
}

/// Seconds per order and stage, for orders opened in or after the week of `from`.
async fn stage_seconds(
    store: &aftersales_eventstore::AnyEventStore,
    from: NaiveDate,
) -> Result<HashMap<String, Vec<(String, i64)>>, StoreError> {
    let sql = "SELECT d.order_id AS order_id, d.stage AS stage, CAST(SUM(d.seconds) AS BIGINT) AS total \
               FROM repair_stage_durations d JOIN network_orders n ON n.order_id = d.order_id \
               WHERE n.week >= $1 GROUP BY d.order_id, d.stage";
    aftersales_eventstore::on_read_pool!(store, pool => {
        let rows = sqlx::query(sql).bind(from.to_string()).fetch_all(pool).await?;
        let mut by_order: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        for row in &rows {
            by_order
                .entry(row.try_get("order_id")?)
                .or_default()
                .push((row.try_get("stage")?, row.try_get("total")?));
        }
        Ok(by_order)
    })
}

/// A city's demand.
#[derive(Debug, Clone, PartialEq)]
pub struct DemandArea {
    pub area: u32,
    pub city: String,
    pub point: Point,
    pub customers: u64,
    pub devices: u64,
    pub repairs: u64,
    pub mail_ins: u64,
    pub mail_in_p50_days: Option<f64>,
    pub mail_in_p90_days: Option<f64>,
    pub nearest_center: Option<(String, f64)>,
}

/// A country's demand, most customers first.
#[derive(Debug, Clone, PartialEq)]
pub struct Demand {
    pub areas: Vec<DemandArea>,
    pub unplaced_customers: u64,
    /// Over the country's finished repairs: check-in to ready for walk-ins,
    /// opening to back home for mail-ins; `None` with too few.
    pub walk_in_p90_days: Option<f64>,
    pub mail_in_p90_days: Option<f64>,
}

#[allow(clippy::cast_precision_loss)]
fn days_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_seconds().max(0) as f64 / 86_400.0
}

fn p(values: &[f64], q: f64) -> Option<f64> {
    (values.len() >= MIN_SAMPLES)
        .then(|| quality::percentile(&mut values.to_vec(), q))
        .flatten()
}

/// Customers placed alike (a mail-in city, or a center walked into) and their orders.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub mail_in: bool,
    /// The mail-in address's country; empty for a walk-in.
    pub country: String,
    /// The mail-in address's city; `None` when it named no known city.
    pub area: Option<u32>,
    /// The center walked into; empty for a mail-in.
    pub center: String,
    pub customers: u64,
    pub repairs: u64,
    pub devices: u64,
    pub mail_ins: u64,
}

/// What the read model holds for a country's demand, aggregated where it can be.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DemandFacts {
    /// Mail-in customers of the country and every walk-in customer.
    pub placed: Vec<Placed>,
    /// The country's finished mail-ins: the customer's city and the round trip.
    pub round_trips: Vec<(Option<u32>, i64)>,
    /// The country's walk-ins that got ready: check-in to ready, seconds.
    pub walk_ins: Vec<i64>,
}

async fn demand_facts(
    store: &aftersales_eventstore::AnyEventStore,
    country: &str,
    centers: &[&str],
) -> Result<DemandFacts, StoreError> {
    let placed = "SELECT c.mail_in AS mail_in, c.country AS country, c.area_id AS area_id, \
                  c.center_id AS center_id, COUNT(DISTINCT c.customer_id) AS customers, \
                  COUNT(*) AS repairs, COUNT(DISTINCT o.device) AS devices, \
                  SUM(CASE WHEN o.channel = 'mail_in' THEN 1 ELSE 0 END) AS mail_ins \
                  FROM network_customers c JOIN network_orders o ON o.customer_id = c.customer_id \
                  WHERE (c.mail_in = 1 AND c.country = $1) OR c.mail_in = 0 \
                  GROUP BY c.mail_in, c.country, c.area_id, c.center_id";
    let round_trips = "SELECT c.area_id AS area_id, o.round_trip_seconds AS seconds \
                       FROM network_orders o JOIN network_customers c ON c.customer_id = o.customer_id \
                       WHERE o.channel = 'mail_in' AND o.country = $1 AND o.round_trip_seconds IS NOT NULL";
    // The country's centers are few: one placeholder each.
    let list: Vec<String> = (1..=centers.len()).map(|n| format!("${n}")).collect();
    let walk_ins = sqlx::AssertSqlSafe(format!(
        "SELECT ready_seconds FROM network_orders WHERE channel = 'walk_in' \
         AND ready_seconds IS NOT NULL AND center_id IN ({})",
        if list.is_empty() {
            "''".to_owned()
        } else {
            list.join(", ")
        }
    ));
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    aftersales_eventstore::on_read_pool!(store, pool => {
        let rows = sqlx::query(placed).bind(country.to_owned()).fetch_all(pool).await?;
        let mut facts = DemandFacts::default();
        for row in &rows {
            let area: Option<i64> = row.try_get("area_id")?;
            facts.placed.push(Placed {
                mail_in: row.try_get::<i64, _>("mail_in")? == 1,
                country: row.try_get("country")?,
                area: area.and_then(|a| u32::try_from(a).ok()),
                center: row.try_get("center_id")?,
                customers: count(row.try_get("customers")?),
                repairs: count(row.try_get("repairs")?),
                devices: count(row.try_get("devices")?),
                mail_ins: count(row.try_get::<Option<i64>, _>("mail_ins")?.unwrap_or(0)),
            });
        }
        let rows = sqlx::query(round_trips).bind(country.to_owned()).fetch_all(pool).await?;
        for row in &rows {
            let area: Option<i64> = row.try_get("area_id")?;
            facts
                .round_trips
                .push((area.and_then(|a| u32::try_from(a).ok()), row.try_get("seconds")?));
        }
        let mut query = sqlx::query_scalar(walk_ins);
        for center in centers {
            query = query.bind((*center).to_owned());
        }
        facts.walk_ins = query.fetch_all(pool).await?;
        Ok(facts)
    })
}

#[allow(clippy::cast_precision_loss)]
fn days(seconds: i64) -> f64 {
    seconds.max(0) as f64 / 86_400.0
}

/// Each placement counted in its city: a mail-in customer at their address's
/// city, a walk-in customer at their center's; the country's round trips and
/// walk-in times give its p90s.
pub fn demand(country: &str, facts: &DemandFacts, centers: &[ServiceCenter]) -> Demand {
    let gazetteer = Gazetteer::builtin();
    let ours: Vec<&ServiceCenter> = centers.iter().filter(|c| c.country == country).collect();
    let center_city: HashMap<&str, u32> = ours
        .iter()
        .filter_map(|c| {
            let city = gazetteer
                .resolve(&c.country, &c.city)
                .or_else(|| gazetteer.nearest(&c.country, Point::new(c.latitude, c.longitude)))?;
            Some((c.id.as_str(), city.id))
        })
        .collect();
    #[derive(Default)]
    struct Tally {
        customers: u64,
        devices: u64,
        repairs: u64,
        mail_ins: u64,
        round_trips: Vec<f64>,
    }
    let mut tallies: BTreeMap<u32, Tally> = BTreeMap::new();
    let mut unplaced = 0;
    for placed in &facts.placed {
        let area = if placed.mail_in {
            if placed.country != country {
                continue;
            }
            placed.area
        } else {
            match center_city.get(placed.center.as_str()) {
                Some(city) => Some(*city),
                None => continue,
            }
        };
        let Some(area) = area else {
            unplaced += placed.customers;
            continue;
        };
        let tally = tallies.entry(area).or_default();
        tally.customers += placed.customers;
        tally.devices += placed.devices;
        tally.repairs += placed.repairs;
        tally.mail_ins += placed.mail_ins;
    }
    for (area, seconds) in &facts.round_trips {
        if let Some(tally) = area.and_then(|a| tallies.get_mut(&a)) {
            tally.round_trips.push(days(*seconds));
        }
    }
    let mut areas: Vec<DemandArea> = tallies
        .into_iter()
        .filter_map(|(id, t)| {
            let city = gazetteer.get(id)?;
            let nearest = ours
                .iter()
                .map(|c| {
                    (
                        c.id.clone(),
                        city.point.distance_km(Point::new(c.latitude, c.longitude)),
                    )
                })
                .min_by(|a, b| a.1.total_cmp(&b.1));
            Some(DemandArea {
                area: id,
                city: city.name.to_owned(),
                point: city.point,
                customers: t.customers,
                devices: t.devices,
                repairs: t.repairs,
                mail_ins: t.mail_ins,
                mail_in_p50_days: p(&t.round_trips, 0.5),
                mail_in_p90_days: p(&t.round_trips, 0.9),
                nearest_center: nearest,
            })
        })
        .collect();
    areas.sort_by(|a, b| b.customers.cmp(&a.customers).then(a.area.cmp(&b.area)));
    let round_trips: Vec<f64> = facts.round_trips.iter().map(|(_, s)| days(*s)).collect();
    let walk_ins: Vec<f64> = facts.walk_ins.iter().map(|s| days(*s)).collect();
    Demand {
        areas,
        unplaced_customers: unplaced,
        walk_in_p90_days: p(&walk_ins, 0.9),
        mail_in_p90_days: p(&round_trips, 0.9),
    }
}

/// What a plan was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRequest {
    pub country: String,
    pub new_points: usize,
    pub within_km: f64,
    pub candidates: Vec<String>,
}

/// A plan with what it assumed and its picture.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkPlan {
    pub plan: Plan,
    pub method: String,
    pub walk_in_p90_days: f64,
    pub mail_in_p90_days: f64,
    pub map_svg: String,
}

fn known_country(country: &str) -> AppResult<()> {
    if Gazetteer::builtin().serves(country) {
        Ok(())
    } else {
        Err(Error::invalid(
            "country",
            format!("{country:?} is not a country the network's cities cover"),
        ))
    }
}

/// The plan for `request` over `demand`.
pub fn plan(
    request: &PlanRequest,
    demand: &Demand,
    centers: &[ServiceCenter],
) -> AppResult<NetworkPlan> {
    known_country(&request.country)?;
    if request.candidates.len() > MAX_CANDIDATES {
        return Err(Error::invalid(
            "candidates",
            format!("at most {MAX_CANDIDATES} cities"),
        ));
    }
    let gazetteer = Gazetteer::builtin();
    let candidates: Vec<Candidate> = if request.candidates.is_empty() {
        gazetteer
            .cities(&request.country)
            .iter()
            .map(|c| Candidate {
                id: c.id,
                name: c.name.to_owned(),
                point: c.point,
            })
            .collect()
    } else {
        let mut seen = HashSet::new();
        let mut chosen = Vec::with_capacity(request.candidates.len());
        for name in &request.candidates {
            let city = gazetteer.resolve(&request.country, name).ok_or_else(|| {
                Error::invalid(
                    "candidates",
                    format!(
                        "{name:?} is not a city of {} the network knows",
                        request.country
                    ),
                )
            })?;
            if seen.insert(city.id) {
                chosen.push(Candidate {
                    id: city.id,
                    name: city.name.to_owned(),
                    point: city.point,
                });
            }
        }
        chosen
    };
    let walk_in = demand.walk_in_p90_days.unwrap_or(ASSUMED_WALK_IN_P90_DAYS);
    let mail_in = demand.mail_in_p90_days.unwrap_or(ASSUMED_MAIL_IN_P90_DAYS);
    let planner = Planner {
        within_km: request.within_km,
        new_points: request.new_points,
        walk_in_p90_days: walk_in,
        mail_in_p90_days: mail_in,
    };
    let areas: Vec<Area> = demand
        .areas
        .iter()
        .map(|a| Area {
            id: a.area,
            name: a.city.clone(),
            point: a.point,
            customers: a.customers,
            mail_in_p90_days: a.mail_in_p90_days,
        })
        .collect();
    let existing: Vec<ServicePoint> = centers
        .iter()
        .filter(|c| c.country == request.country)
        .map(|c| ServicePoint {
            name: c.name.clone(),
            point: Point::new(c.latitude, c.longitude),
        })
        .collect();
    let plan = planner
        .plan(&areas, &existing, &candidates)
        .map_err(|e| Error::invalid(e.field, e.reason))?;
    let assumed = |known: Option<f64>, what: &str| match known {
        Some(_) => format!("{what} from the country's finished repairs"),
        None => format!("{what} assumed (too few finished repairs to measure)"),
    };
    let method = format!(
        "greedy maximal covering with lazy evaluation over {} candidate cities: each pick brings \
         the most customers within {} km of a service point (ties: the larger fall in expected \
         turnaround); at least 63% (1 − 1/e) of the best possible coverage for {} points. \
         Turnaround p90: walk-in {walk_in:.1} days ({}), mail-in {mail_in:.1} days ({}), an \
         area's own mail-in p90 where it has {MIN_SAMPLES} or more.",
        candidates.len(),
        request.within_km,
        request.new_points,
        assumed(demand.walk_in_p90_days, "check-in to ready"),
        assumed(demand.mail_in_p90_days, "opening to back home"),
    );
    let map_svg = aftersales_network::map::svg(
        &format!(
            "{}: {} new service points within {} km",
            request.country, request.new_points, request.within_km
        ),
        &areas,
        &existing,
        &plan,
        request.within_km,
    );
    Ok(NetworkPlan {
        plan,
        method,
        walk_in_p90_days: walk_in,
        mail_in_p90_days: mail_in,
        map_svg,
    })
}

/// A group's figures over some orders.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Figures {
    pub orders: u32,
    /// Per stage: p50 and p90 hours, and the orders that spent time in it.
    pub stages: Vec<(String, f64, f64, u32)>,
    pub turnaround_p50_hours: Option<f64>,
    pub turnaround_p90_hours: Option<f64>,
    pub repaired: u32,
    pub first_time_fixes: u32,
    pub qc_checks: u32,
    pub qc_failures: u32,
    pub quotes_issued: u32,
    pub quotes_declined: u32,
    pub mail_ins: u32,
    pub parcels_slow_in: u32,
    pub parcels_slow_out: u32,
}

#[allow(clippy::cast_precision_loss)]
fn share(part: u32, whole: u32) -> Option<f64> {
    (whole > 0).then(|| f64::from(part) / f64::from(whole))
}

impl Figures {
    pub fn first_time_fix_rate(&self) -> Option<f64> {
        share(self.first_time_fixes, self.repaired)
    }

    pub fn qc_failure_rate(&self) -> Option<f64> {
        share(self.qc_failures, self.qc_checks)
    }

    fn judged(&self) -> [(&'static str, Option<f64>, f64); 5] {
        let enough = usize::try_from(self.orders).unwrap_or(usize::MAX) >= MIN_ORDERS;
        let known = |v: Option<f64>| v.filter(|_| enough);
        [
            // (figure, value where lower is better, the margin that must be passed)
            (
                "turnaround_p90_hours",
                known(self.turnaround_p90_hours),
                4.0,
            ),
            (
                "repeat_rate",
                known(self.first_time_fix_rate().map(|r| 1.0 - r)),
                0.05,
            ),
            ("qc_failure_rate", known(self.qc_failure_rate()), 0.05),
            (
                "quote_decline_rate",
                known(share(self.quotes_declined, self.quotes_issued)),
                0.1,
            ),
            (
                "slow_parcel_rate",
                known(share(
                    self.parcels_slow_in + self.parcels_slow_out,
                    2 * self.mail_ins,
                )),
                0.05,
            ),
        ]
    }
}

/// A figure far from the network's median.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    pub figure: &'static str,
    pub value: f64,
    pub median: f64,
    pub why: String,
}

/// One group (a center, or a technician at one) over a week or the window.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityRow {
    pub center_id: String,
    pub technician: String,
    pub week: Option<NaiveDate>,
    pub figures: Figures,
    pub flags: Vec<Flag>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Quality {
    pub from_week: NaiveDate,
    pub summary: Vec<QualityRow>,
    pub weeks: Vec<QualityRow>,
}

/// Repaired orders with no later order of the same device for the same fault
/// within [`FIRST_TIME_FIX_DAYS`] of being ready.
fn first_time_fixes(facts: &[&Fact]) -> HashSet<String> {
    let mut by_device: HashMap<&str, Vec<&Fact>> = HashMap::new();
    for f in facts {
        by_device.entry(&f.device).or_default().push(f);
    }
    let window = Duration::days(FIRST_TIME_FIX_DAYS);
    facts
        .iter()
        .filter(|f| f.repaired)
        .filter(|f| {
            let Some(ready) = f.ready_at else {
                return false;
            };
            !by_device[f.device.as_str()].iter().any(|g| {
                g.order_id != f.order_id
                    && !g.fault.is_empty()
                    && g.fault == f.fault
                    && g.opened_at > ready
                    && g.opened_at <= ready + window
            })
        })
        .map(|f| f.order_id.clone())
        .collect()
}

fn figures(
    group: &[&Fact],
    fixed: &HashSet<String>,
    stages: &HashMap<String, Vec<(String, i64)>>,
    now: DateTime<Utc>,
) -> Figures {
    let slow = Duration::hours(SLOW_PARCEL_HOURS);
    let mut out = Figures::default();
    let mut per_stage: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut turnaround = Vec::new();
    for f in group {
        out.orders += 1;
        for (stage, seconds) in stages.get(&f.order_id).into_iter().flatten() {
            #[allow(clippy::cast_precision_loss)]
            per_stage
                .entry(stage)
                .or_default()
                .push(*seconds as f64 / 3600.0);
        }
        if let (Some(from), Some(to)) = (f.received_at, f.ready_at) {
            turnaround.push(days_between(from, to) * 24.0);
        }
        if f.repaired && f.ready_at.is_some() {
            out.repaired += 1;
            out.first_time_fixes += u32::from(fixed.contains(&f.order_id));
        }
        out.qc_checks += f.qc_passes + f.qc_failures;
        out.qc_failures += f.qc_failures;
        out.quotes_issued += u32::from(f.quoted);
        out.quotes_declined += u32::from(f.declined);
        if f.mail_in {
            out.mail_ins += 1;
            // Still on its way counts from now; a cancelled order's parcel is not waited for.
            let inbound = match f.received_at {
                Some(received) => received - f.opened_at > slow,
                None => !f.cancelled && now - f.opened_at > slow,
            };
            let outbound = f
                .ready_at
                .is_some_and(|ready| f.finished_at.unwrap_or(now) - ready > slow);
            out.parcels_slow_in += u32::from(inbound);
            out.parcels_slow_out += u32::from(outbound);
        }
    }
    out.stages = per_stage
        .into_iter()
        .filter_map(|(stage, mut hours)| {
            let n = u32::try_from(hours.len()).unwrap_or(u32::MAX);
            let p50 = quality::percentile(&mut hours, 0.5)?;
            let p90 = quality::percentile(&mut hours, 0.9)?;
            Some((stage.to_owned(), p50, p90, n))
        })
        .collect();
    out.turnaround_p50_hours = quality::percentile(&mut turnaround.clone(), 0.5);
    out.turnaround_p90_hours = quality::percentile(&mut turnaround, 0.9);
    out
}

fn why(figure: &str, j: &Judged) -> String {
    let pct = |v: f64| format!("{:.0}%", v * 100.0);
    match figure {
        "turnaround_p90_hours" => format!(
            "turnaround p90 {:.0} h against a network median of {:.0} h",
            j.value, j.median
        ),
        "repeat_rate" => format!(
            "first-time fix {} against a network median of {}",
            pct(1.0 - j.value),
            pct(1.0 - j.median)
        ),
        "qc_failure_rate" => format!(
            "QC failures {} against a network median of {}",
            pct(j.value),
            pct(j.median)
        ),
        "quote_decline_rate" => format!(
            "quotes declined {} against a network median of {}",
            pct(j.value),
            pct(j.median)
        ),
        _ => format!(
            "slow parcel legs {} against a network median of {}",
            pct(j.value),
            pct(j.median)
        ),
    }
}

/// Quality per center (or technician) by week since `from_week`, the window's
/// figures judged against the median of every center's.
/// What a quality report is asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityQuery<'a> {
    pub country: &'a str,
    pub from_week: NaiveDate,
    pub by_technician: bool,
    /// Rows of this center only; the medians are still every center's.
    pub only_center: Option<&'a str>,
    pub now: DateTime<Utc>,
}

pub fn quality(
    query: &QualityQuery<'_>,
    facts: &[Fact],
    stages: &HashMap<String, Vec<(String, i64)>>,
    centers: &[ServiceCenter],
) -> Quality {
    let QualityQuery {
        country,
        from_week,
        by_technician,
        only_center,
        now,
    } = *query;
    let ours: HashSet<&str> = centers
        .iter()
        .filter(|c| c.country == country)
        .map(|c| c.id.as_str())
        .collect();
    let facts: Vec<&Fact> = facts
        .iter()
        .filter(|f| f.week >= from_week)
        .filter(|f| {
            if f.mail_in {
                f.country == country
            } else {
                ours.contains(f.center_id.as_str())
            }
        })
        .collect();
    let fixed = first_time_fixes(&facts);
    let key = |f: &Fact| {
        (
            f.center_id.clone(),
            if by_technician {
                f.technician.clone()
            } else {
                String::new()
            },
        )
    };
    let mut windows: BTreeMap<(String, String), Vec<&Fact>> = BTreeMap::new();
    let mut weekly: BTreeMap<(NaiveDate, String, String), Vec<&Fact>> = BTreeMap::new();
    for f in &facts {
        let (center, technician) = key(f);
        windows
            .entry((center.clone(), technician.clone()))
            .or_default()
            .push(f);
        weekly
            .entry((f.week, center, technician))
            .or_default()
            .push(f);
    }
    let mut summary: Vec<QualityRow> = windows
        .iter()
        .map(|((center, technician), group)| QualityRow {
            center_id: center.clone(),
            technician: technician.clone(),
            week: None,
            figures: figures(group, &fixed, stages, now),
            flags: Vec::new(),
        })
        .collect();
    // Each judged figure against the median of every group's.
    let judged: Vec<[(&'static str, Option<f64>, f64); 5]> =
        summary.iter().map(|r| r.figures.judged()).collect();
    for i in 0..5 {
        let values: Vec<Option<f64>> = judged.iter().map(|j| j[i].1).collect();
        let (figure, _, margin) = judged.first().map_or(("", None, 0.0), |j| j[i]);
        for (row, verdict) in summary.iter_mut().zip(quality::judge(&values, margin)) {
            if let Some(j) = verdict.filter(|j| j.far) {
                row.flags.push(Flag {
                    figure,
                    value: j.value,
                    median: j.median,
                    why: why(figure, &j),
                });
            }
        }
    }
    summary.sort_by(|a, b| {
        b.flags
            .len()
            .cmp(&a.flags.len())
            .then(a.center_id.cmp(&b.center_id))
            .then(a.technician.cmp(&b.technician))
    });
    let keep = |center: &str| only_center.is_none_or(|only| only == center);
    summary.retain(|r| keep(&r.center_id));
    let weeks = weekly
        .iter()
        .filter(|((_, center, _), _)| keep(center))
        .map(|((week, center, technician), group)| QualityRow {
            center_id: center.clone(),
            technician: technician.clone(),
            week: Some(*week),
            figures: figures(group, &fixed, stages, now),
            flags: Vec::new(),
        })
        .collect();
    Quality {
        from_week,
        summary,
        weeks,
    }
}

/// The most weeks one quality request covers.
pub const MAX_WEEKS: u32 = 52;

impl Repairs {
    /// A country's demand per city.
    pub async fn demand(&self, country: &str) -> AppResult<Demand> {
        known_country(country)?;
        let centers = self.all_centers().await?;
        let facts = self.demand_facts(country, &centers).await?;
        Ok(demand(country, &facts, &centers))
    }

    /// Where `request.new_points` new service points would do most.
    pub async fn plan_network(&self, request: &PlanRequest) -> AppResult<NetworkPlan> {
        known_country(&request.country)?;
        let centers = self.all_centers().await?;
        let facts = self.demand_facts(&request.country, &centers).await?;
        plan(
            request,
            &demand(&request.country, &facts, &centers),
            &centers,
        )
    }

    async fn demand_facts(
        &self,
        country: &str,
        centers: &[ServiceCenter],
    ) -> AppResult<DemandFacts> {
        let ours: Vec<&str> = centers
            .iter()
            .filter(|c| c.country == country)
            .map(|c| c.id.as_str())
            .collect();
        Ok(demand_facts(self.store(), country, &ours).await?)
    }

    /// Quality per center or technician over the `weeks` weeks up to `now`'s.
    pub async fn network_quality(
        &self,
        country: &str,
        weeks: u32,
        by_technician: bool,
        only_center: Option<&str>,
        now: DateTime<Utc>,
    ) -> AppResult<Quality> {
        known_country(country)?;
        if !(1..=MAX_WEEKS).contains(&weeks) {
            return Err(Error::invalid("weeks", format!("must be 1 to {MAX_WEEKS}")));
        }
        let from_week = monday(now) - Duration::weeks(i64::from(weeks) - 1);
        let centers = self.all_centers().await?;
        if let Some(center) = only_center
            && !centers.iter().any(|c| c.id == center)
        {
            return Err(Error::not_found(format!("service center {center}")));
        }
        let facts = facts(self.store(), country, from_week).await?;
        let stages = stage_seconds(self.store(), from_week).await?;
        let query = QualityQuery {
            country,
            from_week,
            by_technician,
            only_center,
            now,
        };
        Ok(quality(&query, &facts, &stages, &centers))
    }
}

#[cfg(test)]
mod tests;
