//! The repair use cases: orders through the decider, coverage asked of warranty,
//! service centers kept in the log and in memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aftersales_core::types::{CenterId, OrderId};
use aftersales_core::{Error, ErrorKind};
use aftersales_eventstore::{
    AnyEventStore, CommandContext, CommandHandler, EventStore as _, LiveFeed, Loaded,
    RECENT_STREAMS, StoreError, StreamId, Watcher, projection, read_whole_stream,
};
use aftersales_proto::common::DeviceId;
use aftersales_proto::parts as ppb;
use aftersales_proto::parts::parts_service_client::PartsServiceClient;
use aftersales_proto::warranty as wpb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_runtime::telemetry::TracedChannel as GrpcChannel;
use chrono::NaiveDate;

/// How far ahead a walk-in can be booked.
const MAX_BOOKING_DAYS: i64 = 60;

/// How soon live watchers see an order changed by another process (this
/// process's own appends wake the follower at once).
const LIVE_POLL: Duration = Duration::from_millis(250);

use crate::convert::device_key;
use crate::domain::DomainError;
use crate::domain::center::{Center, Command as CenterCommand};
use crate::domain::centers::{self, GeoPoint, ServiceCenter};
use crate::domain::order::{
    AccessPurpose, Command, Coverage, DataCategory, Event, LineKind, OrderState, PartHold,
    PartReplacement, PartsPlan, QuoteLine, RepairOrder, Stage,
};
use crate::index;
use crate::projections::{self, CenterDirectory, OrderDirectory, OrderRow};

/// Why a use case failed: the shared error, its kind saying the gRPC code.
pub type AppResult<T> = Result<T, Error>;

fn center_stream(center_id: &str) -> AppResult<StreamId> {
    StreamId::parse(format!("service-center-{center_id}"))
        .map_err(|e| DomainError::invalid("center.id", e.to_string()).into())
}

/// An order as a request has just read it (to see who may touch it, or what a
/// command needs): a command on it is decided on this state and reads the
/// stream again only if the order moved on since.
#[derive(Debug)]
pub struct ReadOrder {
    pub id: OrderId,
    loaded: Loaded<Option<OrderState>>,
}

impl ReadOrder {
    /// The order; not found when it does not exist.
    pub fn state(&self) -> AppResult<&OrderState> {
        self.loaded
            .state
            .as_ref()
            .ok_or_else(|| not_found(&self.id))
    }

    /// [`Self::state`], taken.
    pub fn into_state(self) -> AppResult<OrderState> {
        let Self { id, loaded } = self;
        loaded.state.ok_or_else(|| not_found(&id))
    }
}

fn not_found(id: &OrderId) -> Error {
    DomainError::NotFound(format!("repair order {id}")).into()
}

/// The repair service's use cases.
#[derive(Debug, Clone)]
pub struct Repairs {
    store: AnyEventStore,
    orders: CommandHandler<RepairOrder, AnyEventStore>,
    centers: CommandHandler<Center, AnyEventStore>,
    /// `centers.toml`; the read model holds every change made through the API.
    builtin_centers: Arc<BTreeMap<String, ServiceCenter>>,
    warranty: Option<WarrantyServiceClient<GrpcChannel>>,
    /// Quotes from the price list and parts held at the center; without it a
    /// diagnosis proposes nothing and holds nothing.
    parts: Option<PartsServiceClient<GrpcChannel>>,
    /// How far to look for a center before recommending mail-in.
    pub radius_km: f64,
    /// Each center's time per stage as expected-ready dates read it, kept for
    /// [`TURNAROUND_FRESH`]: every open repair page asks, and the figures move
    /// slowly.
    turnaround: Arc<std::sync::Mutex<BTreeMap<String, (std::time::Instant, Turnaround)>>>,
    /// Everyone following an order live, fed by one follower of the log.
    live: LiveFeed<StreamId>,
}

/// One step of an order's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub version: u64,
    pub event_type: String,
    /// The stage after the step.
    pub stage: Stage,
    pub actor: String,
    pub at: chrono::DateTime<chrono::Utc>,
    /// What of the customer's was opened, and why, where the step is an opening.
    pub access: Option<(Vec<DataCategory>, AccessPurpose)>,
}

/// Seconds per past order, by stage.
type Turnaround = Arc<BTreeMap<Stage, Vec<i64>>>;

/// How long a center's turnaround figures are reused for expected-ready dates.
const TURNAROUND_FRESH: Duration = Duration::from_secs(5);

/// What verifying a device's orders found.
#[derive(Debug, Default)]
pub struct DeviceVerdict {
    pub orders: usize,
    pub events: u64,
    /// What each order was checked against, in order.
    pub against: Vec<String>,
    /// The first order that is not intact, and why.
    pub first_break: Option<(String, String)>,
}

fn order_stream(order_id: &str) -> AppResult<StreamId> {
    StreamId::parse(format!("repair-{order_id}"))
        .map_err(|e| DomainError::invalid("order_id", e.to_string()).into())
}

impl Repairs {
    pub async fn new(
        store: AnyEventStore,
        warranty: Option<WarrantyServiceClient<GrpcChannel>>,
        radius_km: f64,
    ) -> AppResult<Self> {
        let builtin = centers::builtin()
            .map_err(|e| Error::internal(format!("centers.toml: {e}")))?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        Ok(Self {
            orders: CommandHandler::new(store.clone()).with_recent_states(RECENT_STREAMS),
            centers: CommandHandler::new(store.clone()).with_recent_states(RECENT_STREAMS),
            store,
            builtin_centers: Arc::new(builtin),
            warranty,
            parts: None,
            radius_km,
            turnaround: Arc::default(),
            live: LiveFeed::new(|event| Some(event.stream_id.clone())),
        })
    }

    /// Diagnoses propose quotes from `parts`' price lists and hold parts there.
    #[must_use]
    pub fn with_parts(mut self, parts: Option<PartsServiceClient<GrpcChannel>>) -> Self {
        self.parts = parts;
        self
    }

    /// Follows the log for every live watcher of an order until `stop`.
    pub async fn feed_watchers(&self, stop: impl Future<Output = ()>) {
        self.live.run(self.store.clone(), LIVE_POLL, stop).await;
    }

    /// The order's events from now on. Taken before the order is read, so that
    /// nothing in between is missed.
    pub fn watch(&self, order_id: &OrderId) -> AppResult<Watcher<StreamId>> {
        Ok(self.live.watch(order_stream(order_id.as_str())?))
    }

    async fn run(
        &self,
        order_id: &OrderId,
        command: Command,
        ctx: &CommandContext,
    ) -> AppResult<(OrderState, u64)> {
        let handled = self
            .orders
            .handle(&order_stream(order_id.as_str())?, &command, ctx)
            .await?;
        let state = handled
            .state
            .ok_or_else(|| DomainError::NotFound(format!("repair order {order_id}")))?;
        Ok((state, handled.version))
    }

    /// [`Self::run`] on the order as `order` read it: no second read.
    async fn run_on(
        &self,
        order: ReadOrder,
        command: Command,
        ctx: &CommandContext,
    ) -> AppResult<(OrderState, u64)> {
        let ReadOrder { id, loaded } = order;
        let handled = self
            .orders
            .handle_loaded(&order_stream(id.as_str())?, loaded, &command, ctx)
            .await?;
        let state = handled.state.ok_or_else(|| not_found(&id))?;
        Ok((state, handled.version))
    }

    /// Asks warranty about the day the fault appeared, serviced in
    /// `serviced_in`; `None` when it cannot be reached in time.
    async fn ask_warranty(
        &self,
        device: &DeviceId,
        fault: wpb::FaultCategory,
        fault_date: Option<NaiveDate>,
        serviced_in: Option<&str>,
    ) -> Option<Coverage> {
        let mut client = self.warranty.clone()?;
        let request = wpb::CheckCoverageRequest {
            device_id: Some(device.clone()),
            fault_category: fault.into(),
            as_of: None,
            record_decision: true,
            fault_date: fault_date.map(|d| d.to_string()).unwrap_or_default(),
            known_at: None,
            serviced_in: serviced_in.map(|c| aftersales_proto::common::CountryCode {
                value: c.to_owned(),
            }),
        };
        match tokio::time::timeout(Duration::from_secs(2), client.check_coverage(request)).await {
            Ok(Ok(answer)) => {
                let d = answer.into_inner();
                Some(Coverage::Decided {
                    covered: d.covered,
                    reason: d.reason,
                    policy_id: d.policy_id,
                    policy_version: d.policy_version,
                })
            }
            Ok(Err(status)) if status.code() == tonic::Code::NotFound => Some(Coverage::Decided {
                covered: false,
                reason: "device_not_registered".into(),
                policy_id: String::new(),
                policy_version: 0,
            }),
            Ok(Err(status)) => {
                tracing::warn!(%status, "warranty refused the coverage question");
                None
            }
            Err(_) => {
                tracing::warn!("warranty did not answer in time");
                None
            }
        }
    }

    /// A center as every replica serves it: its last change, or its built-in entry.
    pub async fn center(&self, id: &CenterId) -> AppResult<ServiceCenter> {
        if let Some(center) = projections::changed_center(&self.store, id.as_str()).await? {
            return Ok(center);
        }
        self.builtin_centers
            .get(id.as_str())
            .cloned()
            .ok_or_else(|| DomainError::NotFound(format!("service center {id}")).into())
    }

    /// Every center: the built-in ones as changed through the API, and the new ones.
    pub async fn all_centers(&self) -> AppResult<Vec<ServiceCenter>> {
        let mut all = (*self.builtin_centers).clone();
        all.extend(projections::changed_centers(&self.store).await?);
        Ok(all.into_values().collect())
    }

    /// Opens an order; coverage is asked at once and recorded, or left pending
    /// when warranty cannot be reached.
    pub async fn open(
        &self,
        mut command: Command,
        device_id: &DeviceId,
        reported: wpb::FaultCategory,
        ctx: &CommandContext,
    ) -> AppResult<(OrderState, u64)> {
        let Command::Open {
            order_id,
            channel,
            coverage,
            fault_date,
            serviced_in: serviced_in_field,
            ..
        } = &mut command
        else {
            return Err(Error::internal("open takes an Open command"));
        };
        let today = ctx.now.date_naive();
        if *fault_date > today {
            return Err(Error::invalid("fault_date", "is in the future"));
        }
        if *fault_date < today - chrono::TimeDelta::days(3653) {
            return Err(Error::invalid("fault_date", "is more than ten years ago"));
        }
        let mut serviced_in = None;
        if let crate::domain::order::Channel::WalkIn {
            center_id,
            visit_on,
        } = channel
            && !center_id.trim().is_empty()
        {
            let center = self
                .center(&CenterId::parse("service_center_id", center_id)?)
                .await?;
            serviced_in = Some(center.country.clone());
            let day = visit_on.unwrap_or(today);
            if day < today || day > today + chrono::TimeDelta::days(MAX_BOOKING_DAYS) {
                return Err(Error::invalid(
                    "walk_in_day",
                    format!("must be from today to {MAX_BOOKING_DAYS} days ahead"),
                ));
            }
            let booked = projections::bookings(&self.store, &center.id, today).await?;
            if center.next_available(day, &booked) != Some(day) {
                let next = center
                    .next_available(day, &booked)
                    .map_or_else(|| "none within a year".to_owned(), |d| d.to_string());
                return Err(Error::exhausted(format!(
                    "{} takes no more walk-in repairs on {day}; next available: {next}",
                    center.id
                )));
            }
            // Opened for today: no booking to record.
            if day == today {
                *visit_on = None;
            }
        }
        // Recorded with the order (where its customer is served); warranty
        // is asked about the center's country only.
        *serviced_in_field = match channel {
            crate::domain::order::Channel::MailIn { address } => Some(address.country.clone()),
            crate::domain::order::Channel::WalkIn { .. } => serviced_in.clone(),
        };
        let id = OrderId::parse("order_id", order_id)?;
        let asked = if reported == wpb::FaultCategory::Unspecified {
            wpb::FaultCategory::Mainboard
        } else {
            reported
        };
        *coverage = self
            .ask_warranty(device_id, asked, Some(*fault_date), serviced_in.as_deref())
            .await
            .unwrap_or(Coverage::Pending {
                why: "warranty did not answer; decided at diagnosis".into(),
            });
        self.run(&id, command, ctx).await
    }

    /// Diagnoses with warranty's final answer, which is required here.
    pub async fn diagnose(
        &self,
        read: ReadOrder,
        fault: wpb::FaultCategory,
        fault_name: &str,
        fault_codes: Vec<String>,
        technician: &str,
        ctx: &CommandContext,
    ) -> AppResult<(OrderState, u64)> {
        let order = read.state()?;
        let serviced_in = self.serviced_in(order).await?;
        let coverage = self
            .ask_warranty(
                &DeviceId::from(&order.device),
                fault,
                order.fault_date,
                serviced_in.as_ref().map(|c| c.country.as_str()),
            )
            .await
            .ok_or_else(|| {
                Error::unavailable("warranty cannot be reached; diagnose again shortly")
            })?;
        let covered = coverage.is_covered();
        let mut command = Command::Diagnose {
            fault: fault_name.to_owned(),
            fault_codes,
            technician: technician.to_owned(),
            coverage,
            parts: None,
        };
        // Refuse an illegal diagnosis before holding any part for it.
        <RepairOrder as aftersales_eventstore::Decider>::decide(&read.loaded.state, &command)
            .map_err(Error::from)?;
        let plan = self
            .plan_parts(order, fault, covered, serviced_in.as_ref(), ctx)
            .await?;
        if let Command::Diagnose { parts, .. } = &mut command {
            *parts = plan;
        }
        self.run_on(read, command, ctx).await
    }

    /// What the parts service gives a diagnosis: the quote lines of the
    /// country's price list for the fault, and each part held at the walk-in's
    /// center or the depot a mail-in arrived at (or the order put in line for it). None where no parts service is
    /// configured or it has no operation for the model, country and fault.
    async fn plan_parts(
        &self,
        order: &OrderState,
        fault: wpb::FaultCategory,
        covered: bool,
        center: Option<&ServiceCenter>,
        ctx: &CommandContext,
    ) -> AppResult<Option<PartsPlan>> {
        let Some(mut parts) = self.parts.clone() else {
            return Ok(None);
        };
        let unavailable = |what: &str, status: &tonic::Status| {
            Error::unavailable(format!(
                "{what}: {}; diagnose again shortly",
                status.message()
            ))
        };
        let country = match (&order.channel, center) {
            (_, Some(center)) => center.country.clone(),
            (crate::domain::order::Channel::MailIn { address }, None) => address.country.clone(),
            (crate::domain::order::Channel::WalkIn { .. }, None) => return Ok(None),
        };
        let model = self.device_model(&order.device).await?;
        let request = ppb::ProposeQuoteRequest {
            model,
            country: Some(aftersales_proto::common::CountryCode { value: country }),
            fault: parts_fault(fault),
            covered,
            overrides: Vec::new(),
            as_of: None,
        };
        let proposed = match tokio::time::timeout(
            Duration::from_secs(2),
            parts.propose_quote(request),
        )
        .await
        {
            Ok(Ok(proposed)) => proposed.into_inner(),
            // Nothing priced for this model, country or fault: quoted by hand.
            Ok(Err(status))
                if matches!(
                    status.code(),
                    tonic::Code::NotFound | tonic::Code::InvalidArgument
                ) =>
            {
                return Ok(None);
            }
            Ok(Err(status)) => {
                return Err(unavailable("the parts service refused the quote", &status));
            }
            Err(_) => {
                return Err(Error::unavailable(
                    "the parts service did not answer in time; diagnose again shortly",
                ));
            }
        };
        let mut plan = PartsPlan {
            location: center
                .map(|c| c.id.clone())
                .or_else(|| order.depot.clone())
                .unwrap_or_default(),
            holds: Vec::new(),
            proposed: proposed
                .lines
                .iter()
                .map(proposed_line)
                .collect::<AppResult<_>>()?,
        };
        if plan.location.is_empty() {
            return Ok(Some(plan));
        }
        for line in proposed.lines.iter().filter(|l| !l.is_labour) {
            let request = ppb::ReservePartRequest {
                location: plan.location.clone(),
                part_number: line.line.clone(),
                repair_order_id: order.order_id.clone(),
                quantity: 1,
            };
            let request = aftersales_runtime::request::on_behalf(request, ctx);
            let held = tokio::time::timeout(Duration::from_secs(2), parts.reserve_part(request))
                .await
                .map_err(|_| {
                    Error::unavailable(
                        "the parts service did not answer in time; diagnose again shortly",
                    )
                })?
                .map_err(|status| unavailable("the parts service did not hold the part", &status))?
                .into_inner();
            let waiting = held.status == i32::from(ppb::ReservationStatus::Waiting);
            plan.holds.push(PartHold {
                part_number: line.line.clone(),
                waiting,
                expected_on: if waiting {
                    NaiveDate::parse_from_str(&held.expected_on, "%Y-%m-%d").ok()
                } else {
                    None
                },
                fitted: false,
            });
        }
        Ok(Some(plan))
    }

    /// The device's model, as warranty registered it.
    async fn device_model(&self, device: &aftersales_core::types::DeviceKey) -> AppResult<String> {
        let mut client = self
            .warranty
            .clone()
            .ok_or_else(|| Error::unavailable("no warranty service configured"))?;
        let request = wpb::GetDeviceRequest {
            device_id: Some(DeviceId::from(device)),
        };
        match tokio::time::timeout(Duration::from_secs(2), client.get_device(request)).await {
            Ok(Ok(device)) => Ok(device.into_inner().model),
            Ok(Err(status)) if status.code() == tonic::Code::NotFound => Ok(String::new()),
            Ok(Err(status)) => Err(Error::unavailable(format!(
                "warranty did not give the device's model: {}",
                status.message()
            ))),
            Err(_) => Err(Error::unavailable("warranty did not answer in time")),
        }
    }

    /// Fits a part: a part the diagnosis held leaves the center's stock with
    /// its serial before the step is recorded (a serial fitted before is
    /// refused); another part is held and fitted at once, when one is free.
    pub async fn replace_part(
        &self,
        read: ReadOrder,
        part: PartReplacement,
        ctx: &CommandContext,
    ) -> AppResult<(OrderState, u64)> {
        let order = read.state()?;
        let order_id = &read.id;
        let command = Command::ReplacePart(part.clone());
        <RepairOrder as aftersales_eventstore::Decider>::decide(&read.loaded.state, &command)
            .map_err(Error::from)?;
        let location = order
            .parts_plan
            .as_ref()
            .map(|plan| plan.location.clone())
            .unwrap_or_default();
        if let (Some(mut parts), false) = (self.parts.clone(), location.is_empty()) {
            let held = order.parts_plan.as_ref().is_some_and(|plan| {
                plan.holds
                    .iter()
                    .any(|h| !h.fitted && !h.waiting && h.part_number == part.part_number)
            });
            let failed = |status: tonic::Status| {
                let message = status.message().to_owned();
                if status.code() == tonic::Code::InvalidArgument {
                    // The parts service names the field: the serial, or the part.
                    let field = if message.contains("serial") {
                        "new_serial"
                    } else {
                        "part_number"
                    };
                    Error::invalid(field, message)
                } else if matches!(
                    status.code(),
                    tonic::Code::NotFound | tonic::Code::FailedPrecondition
                ) {
                    Error::precondition(format!("the part cannot be fitted: {message}"))
                } else {
                    Error::unavailable(format!("the parts service: {message}"))
                }
            };
            let release = ppb::ReleaseReservationRequest {
                location: location.clone(),
                part_number: part.part_number.clone(),
                repair_order_id: order_id.to_string(),
                reason: "not fitted".into(),
            };
            if !held {
                let reserve = ppb::ReservePartRequest {
                    location: location.clone(),
                    part_number: part.part_number.clone(),
                    repair_order_id: order_id.to_string(),
                    quantity: 1,
                };
                let answer = parts
                    .reserve_part(aftersales_runtime::request::on_behalf(reserve, ctx))
                    .await
                    .map_err(failed)?
                    .into_inner();
                if answer.status != i32::from(ppb::ReservationStatus::Reserved) {
                    parts
                        .release_reservation(aftersales_runtime::request::on_behalf(
                            release.clone(),
                            ctx,
                        ))
                        .await
                        .map_err(failed)?;
                    return Err(Error::precondition(format!(
                        "no {} in stock at {location}",
                        part.part_number
                    )));
                }
            }
            let consume = ppb::ConsumePartRequest {
                location,
                part_number: part.part_number.clone(),
                repair_order_id: order_id.to_string(),
                serial: part.new_serial.clone(),
            };
            if let Err(refused) = parts
                .consume_part(aftersales_runtime::request::on_behalf(consume, ctx))
                .await
            {
                // A unit held only to be fitted now goes back when it is not.
                if !held
                    && let Err(status) = parts
                        .release_reservation(aftersales_runtime::request::on_behalf(release, ctx))
                        .await
                {
                    tracing::warn!(%status, "a unit held for fitting stays held");
                }
                return Err(failed(refused));
            }
        }
        self.run_on(read, command, ctx).await
    }

    /// The center a walk-in is serviced at; a mail-in goes to the depot of its
    /// home country.
    async fn serviced_in(&self, order: &OrderState) -> AppResult<Option<ServiceCenter>> {
        match &order.channel {
            crate::domain::order::Channel::WalkIn { center_id, .. } if !center_id.is_empty() => {
                let center = self
                    .center(&CenterId::parse("service_center_id", center_id)?)
                    .await?;
                Ok(Some(center))
            }
            crate::domain::order::Channel::WalkIn { .. }
            | crate::domain::order::Channel::MailIn { .. } => Ok(None),
        }
    }

    /// Starts the repair; a covered repair records its claim with warranty first.
    pub async fn start(
        &self,
        read: ReadOrder,
        technician: &str,
        ctx: &CommandContext,
    ) -> AppResult<(OrderState, u64)> {
        let order = read.state()?;
        let command = Command::StartRepair {
            technician: technician.to_owned(),
        };
        // Refuse an illegal start before telling warranty anything.
        <RepairOrder as aftersales_eventstore::Decider>::decide(&read.loaded.state, &command)
            .map_err(Error::from)?;
        if order.coverage.is_covered() {
            let mut client = self
                .warranty
                .clone()
                .ok_or_else(|| Error::unavailable("no warranty service configured"))?;
            let fault = order
                .fault
                .as_deref()
                .and_then(wpb::FaultCategory::from_str_name)
                .unwrap_or(wpb::FaultCategory::Unspecified);
            let claim = wpb::RecordClaimRequest {
                fault_date: order.fault_date.map(|d| d.to_string()).unwrap_or_default(),
                device_id: Some(DeviceId::from(&order.device)),
                repair_order_id: read.id.to_string(),
                fault_category: fault.into(),
                under_legal_guarantee: false,
            };
            let claim = aftersales_runtime::request::on_behalf(claim, ctx);
            tokio::time::timeout(Duration::from_secs(2), client.record_claim(claim))
                .await
                .map_err(|_| Error::unavailable("warranty did not record the claim in time"))?
                .map_err(|s| {
                    Error::unavailable(format!(
                        "warranty did not record the claim: {}",
                        s.message()
                    ))
                })?;
        }
        self.run_on(read, command, ctx).await
    }

    /// Runs `command` on the order as `read` found it; one that does not exist
    /// is refused by the decider.
    pub async fn command(
        &self,
        read: ReadOrder,
        command: Command,
        ctx: &CommandContext,
    ) -> AppResult<(OrderState, u64)> {
        let order_id = read.id.clone();
        self.run_on(read, command, ctx).await.map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                DomainError::NotFound(format!("repair order {order_id}")).into()
            } else {
                e
            }
        })
    }

    pub async fn get(&self, order_id: &OrderId) -> AppResult<(OrderState, u64)> {
        let read = self.read(order_id).await?;
        let version = read.loaded.version;
        Ok((read.into_state()?, version))
    }

    /// The order as it stands, for a command that needs its state first: the
    /// command then decides on this read (see [`ReadOrder`]).
    pub async fn read(&self, order_id: &OrderId) -> AppResult<ReadOrder> {
        let loaded = self.orders.load(&order_stream(order_id.as_str())?).await?;
        Ok(ReadOrder {
            id: order_id.clone(),
            loaded,
        })
    }

    pub fn store(&self) -> &AnyEventStore {
        &self.store
    }

    /// The handler of order commands; its clones share the states it remembers.
    pub fn order_handler(&self) -> &CommandHandler<RepairOrder, AnyEventStore> {
        &self.orders
    }

    /// Every step of an order, folded from its stream: a page that follows the
    /// order live finds the step it was told of.
    pub async fn timeline(&self, order_id: &OrderId) -> AppResult<Vec<Step>> {
        let events = read_whole_stream(&self.store, &order_stream(order_id.as_str())?).await?;
        let mut state: Option<OrderState> = None;
        let mut steps = Vec::with_capacity(events.len());
        for recorded in &events {
            let event: Event = recorded.decode().map_err(StoreError::from)?;
            state = <RepairOrder as aftersales_eventstore::Decider>::evolve(state, &event);
            let Some(order) = &state else { continue };
            steps.push(Step {
                version: recorded.stream_version,
                event_type: recorded.event_type.clone(),
                stage: order.stage,
                actor: recorded.metadata.actor.clone(),
                at: recorded.metadata.recorded_at,
                access: if let Event::PersonalDataAccessed {
                    categories,
                    purpose,
                    ..
                } = event
                {
                    Some((categories, purpose))
                } else {
                    None
                },
            });
        }
        if steps.is_empty() {
            return Err(DomainError::NotFound(format!("repair order {order_id}")).into());
        }
        Ok(steps)
    }

    /// When the order is expected to be ready for return, from how long its
    /// center's past orders took per stage (mail-ins count together).
    pub async fn expected_ready(
        &self,
        order_id: &OrderId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> AppResult<Option<chrono::DateTime<chrono::Utc>>> {
        let (order, _) = self.get(order_id).await?;
        let center = match &order.channel {
            crate::domain::order::Channel::WalkIn { center_id, .. } => center_id.as_str(),
            crate::domain::order::Channel::MailIn { .. } => "",
        };
        let steps = self.timeline(order_id).await?;
        // Since the first step of the run of steps in the current stage.
        let entered = steps
            .iter()
            .rev()
            .take_while(|s| s.stage == order.stage)
            .last()
            .map_or(now, |s| s.at);
        let history = self.turnaround(center).await?;
        Ok(crate::domain::estimate::ready_by(
            &order, entered, now, &history,
        ))
    }

    /// `center`'s seconds per past order by stage, at most [`TURNAROUND_FRESH`] old.
    async fn turnaround(&self, center: &str) -> AppResult<Turnaround> {
        let fresh = |at: &std::time::Instant| at.elapsed() < TURNAROUND_FRESH;
        if let Ok(kept) = self.turnaround.lock()
            && let Some((at, figures)) = kept.get(center)
            && fresh(at)
        {
            return Ok(Arc::clone(figures));
        }
        let figures: Turnaround = Arc::new(
            projections::stage_times(&self.store, center)
                .await?
                .into_iter()
                .filter_map(|(name, seconds)| {
                    Stage::ALL
                        .into_iter()
                        .find(|s| s.as_str() == name)
                        .map(|s| (s, seconds))
                })
                .collect(),
        );
        if let Ok(mut kept) = self.turnaround.lock() {
            kept.retain(|_, (at, _)| fresh(at));
            kept.insert(
                center.to_owned(),
                (std::time::Instant::now(), Arc::clone(&figures)),
            );
        }
        Ok(figures)
    }

    /// Keeps a photo of the device's condition with the order, until it is over.
    pub async fn attach_photo(
        &self,
        order_id: &OrderId,
        declared: &str,
        data: &[u8],
        now: chrono::DateTime<chrono::Utc>,
    ) -> AppResult<crate::photos::Photo> {
        let (order, _) = self.get(order_id).await?;
        if matches!(order.stage, Stage::Closed | Stage::Cancelled) {
            return Err(DomainError::Precondition(format!(
                "photos are taken before an order is over; this one is {}",
                order.stage
            ))
            .into());
        }
        let photo = crate::photos::check(declared, data)?;
        crate::photos::attach(&self.store, order_id.as_str(), &photo, data, now).await?;
        Ok(photo)
    }

    /// A photo kept with the order: its content type and bytes.
    pub async fn photo(&self, order_id: &OrderId, photo_id: &str) -> AppResult<(String, Vec<u8>)> {
        crate::photos::get(&self.store, order_id.as_str(), photo_id)
            .await?
            .ok_or_else(|| {
                DomainError::NotFound(format!("photo {photo_id} of order {order_id}")).into()
            })
    }

    /// Refuses check-in photos that are not kept with the order.
    pub async fn check_photos(&self, order_id: &OrderId, photos: &[String]) -> AppResult<()> {
        if photos.len() > usize::try_from(crate::photos::MAX_PHOTOS).unwrap_or(usize::MAX) {
            return Err(Error::invalid(
                "photos",
                format!("at most {} photos", crate::photos::MAX_PHOTOS),
            ));
        }
        if photos.is_empty() {
            return Ok(());
        }
        let kept = crate::photos::attached(&self.store, order_id.as_str()).await?;
        match photos.iter().position(|p| !kept.contains(p)) {
            Some(i) => Err(Error::invalid(
                format!("photos[{i}]"),
                "no photo with this id is attached to the order (AttachPhoto)",
            )),
            None => Ok(()),
        }
    }

    /// Per stage, every order's total seconds in it at `center`.
    pub async fn stage_times(&self, center: &CenterId) -> AppResult<BTreeMap<String, Vec<i64>>> {
        self.center(center).await?;
        Ok(projections::stage_times(&self.store, center.as_str()).await?)
    }

    /// Every order of a device, oldest first (from the order directory).
    pub async fn orders_of_device(&self, device: &DeviceId) -> AppResult<Vec<OrderRow>> {
        let name = device_key(Some(device))?.name();
        Ok(projections::orders_of_device(&self.store, &name).await?)
    }

    pub async fn orders_of_center(
        &self,
        center: &CenterId,
        stage: Option<&str>,
        after: &str,
        limit: i64,
    ) -> AppResult<Vec<OrderRow>> {
        self.center(center).await?;
        Ok(
            projections::orders_of_center(&self.store, center.as_str(), stage, after, limit)
                .await?,
        )
    }

    /// The device's orders as the log lists them (its index stream), in the
    /// order they were opened; empty if it has none.
    pub async fn orders_in_log(&self, device: &DeviceId) -> AppResult<Vec<String>> {
        let key = device_key(Some(device))?;
        let entries = read_whole_stream(&self.store, &index::stream_of(&key)?).await?;
        Ok(index::orders_in(&entries)?)
    }

    /// Verifies the device's orders as the log lists them: the index stream
    /// and every order's chain, each against the head `trust` gives for it,
    /// then that each order is in the read model that lists it (once that read
    /// model has passed its opening). The orders and events checked, what each
    /// was checked against, and the first problem with where it is.
    pub async fn verify_device<T, F>(&self, device: &DeviceId, trust: T) -> AppResult<DeviceVerdict>
    where
        T: Fn(StreamId) -> F,
        F: Future<Output = aftersales_runtime::notary::Trust>,
    {
        let key = device_key(Some(device))?;
        let index = index::stream_of(&key)?;
        let orders = self.orders_in_log(device).await?;
        if orders.is_empty() {
            return Err(DomainError::NotFound("repair history of this device".into()).into());
        }
        let mut verdict = DeviceVerdict {
            orders: orders.len(),
            ..DeviceVerdict::default()
        };
        let streams = std::iter::once((String::new(), index)).chain(
            orders
                .iter()
                .map(|order| Ok((order.clone(), order_stream(order)?)))
                .collect::<AppResult<Vec<_>>>()?,
        );
        for (order, stream) in streams {
            let trusted = trust(stream.clone()).await;
            verdict.against.push(trusted.against);
            let report = self.store.verify_stream(&stream, trusted.head).await?;
            if !order.is_empty() {
                verdict.events += report.events_checked;
            }
            let problem = match (report.first_break, trusted.forged) {
                (Some(aftersales_eventstore::ChainBreak::HeadMismatch { .. }), _) => Some(format!(
                    "{stream} does not contain {}: events were removed, changed or hashed again",
                    verdict.against.last().map_or("", String::as_str)
                )),
                (Some(problem), _) => Some(format!("{stream}: {problem:?}")),
                (None, forged) => forged.map(|f| format!("{stream}: {f}")),
            };
            if let Some(problem) = problem {
                verdict.first_break = Some((order, problem));
                return Ok(verdict);
            }
        }
        // Every order the log lists is in the read model once it has got there.
        let listed = self.orders_of_device(device).await?;
        let directory = self
            .store
            .load_checkpoint(&projection::checkpoint_of(OrderDirectory::NAME))
            .await?;
        for order in &orders {
            if listed.iter().any(|row| &row.order_id == order) {
                continue;
            }
            let opened = self.store.read_stream(&order_stream(order)?, 1, 1).await?;
            if opened.first().is_some_and(|e| e.checkpoint <= directory) {
                verdict.first_break = Some((
                    order.clone(),
                    "is in the log but not in the repair_orders read model, which has passed \
                     its opening: the row was deleted (rebuild the read model)"
                        .to_owned(),
                ));
                return Ok(verdict);
            }
        }
        Ok(verdict)
    }

    /// Up to `limit` stored events of `orders`, order by order, from the event
    /// `start` names (an order's index and a version in it).
    pub async fn history_of_orders(
        &self,
        orders: &[String],
        start: (usize, u64),
        limit: usize,
    ) -> AppResult<Vec<(String, aftersales_eventstore::RecordedEvent)>> {
        let mut history = Vec::new();
        let (first, mut from) = start;
        for order in orders.iter().skip(first) {
            let wanted = limit.saturating_sub(history.len());
            if wanted == 0 {
                break;
            }
            let events = self
                .store
                .read_stream(&order_stream(order)?, from, wanted)
                .await?;
            history.extend(events.into_iter().map(|e| (order.clone(), e)));
            from = 1;
        }
        Ok(history)
    }

    /// Records a center change in its stream; the read model serves it to every
    /// replica, this one as soon as the call returns.
    pub async fn upsert_center(
        &self,
        center: ServiceCenter,
        ctx: &CommandContext,
    ) -> AppResult<ServiceCenter> {
        let stream = center_stream(&center.id)?;
        let handled = self
            .centers
            .handle(&stream, &CenterCommand::Upsert(center), ctx)
            .await?;
        let center = handled
            .state
            .ok_or_else(|| Error::internal("an upserted center has no state"))?;
        // Read your writes: this replica serves the change once the call returns.
        // The read model follows the log below the oldest transaction in flight, so
        // it may take a moment; past the deadline every replica still converges.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            projection::catch_up(&self.store, &CenterDirectory, |_| {}).await?;
            let served = projections::changed_center(&self.store, &center.id).await?;
            if served.as_ref() == Some(&center) {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                tracing::warn!(center_id = %center.id, "the center read model lags behind an upsert");
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(center)
    }

    /// Centers near `point`, or a mail-in recommendation.
    /// Walk-ins booked per day at `center`, from `today` for `days` days:
    /// (day, open, booked, capacity).
    pub async fn load(
        &self,
        center: &CenterId,
        today: NaiveDate,
        days: u32,
    ) -> AppResult<Vec<(NaiveDate, bool, u32, u32)>> {
        let center = self.center(center).await?;
        let booked = projections::bookings(&self.store, &center.id, today).await?;
        Ok(today
            .iter_days()
            .take(days as usize)
            .map(|day| {
                (
                    day,
                    center.is_open_on(day),
                    booked.get(&day).copied().unwrap_or(0),
                    center.daily_capacity,
                )
            })
            .collect())
    }

    /// The centers nearest `point`, each with its distance and the first day
    /// from `today` it takes another walk-in; and whether mail-in is advised.
    pub async fn nearest(
        &self,
        point: GeoPoint,
        country: Option<&str>,
        limit: usize,
        today: NaiveDate,
    ) -> AppResult<(Vec<(ServiceCenter, f64, Option<NaiveDate>)>, bool)> {
        let centers = self.all_centers().await?;
        let found = centers::nearest(&centers, point, country, limit, self.radius_km);
        let mut answer = Vec::with_capacity(found.centers.len());
        for (center, distance) in &found.centers {
            let booked = projections::bookings(&self.store, &center.id, today).await?;
            answer.push((
                (*center).clone(),
                *distance,
                center.next_available(today, &booked),
            ));
        }
        Ok((answer, found.recommend_mail_in))
    }
}

/// A fault category as the parts catalog names it: `FAULT_CATEGORY_LIQUID_DAMAGE`
/// is `liquid_damage`.
fn parts_fault(fault: wpb::FaultCategory) -> String {
    fault
        .as_str_name()
        .trim_start_matches("FAULT_CATEGORY_")
        .to_ascii_lowercase()
}

/// A proposed line as the quote shows it: what the customer pays, tax included.
fn proposed_line(line: &ppb::QuoteLine) -> AppResult<QuoteLine> {
    let gross = line
        .charged
        .as_ref()
        .and_then(|price| price.gross.as_ref())
        .ok_or_else(|| Error::unavailable("the parts service sent a line without a price"))?;
    Ok(QuoteLine {
        description: if line.description.is_empty() {
            line.line.clone()
        } else {
            line.description.clone()
        },
        kind: if line.is_labour {
            LineKind::Labour
        } else {
            LineKind::Part
        },
        amount: crate::domain::Money::new("lines.amount", gross.minor_units, &gross.currency)
            .map_err(|e| Error::unavailable(format!("the parts service sent a bad price: {e}")))?,
    })
}
