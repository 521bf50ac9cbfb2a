//! `aftersales load`: an open-loop workload against a running platform (`up`, or
//! the services as processes), as its users would drive it.
//!
//! Arrivals come at a fixed rate whatever the platform does, and each one's time
//! is counted from when it was due, not from when it was sent: a slow server
//! cannot hide its latency by slowing the generator down (no coordinated
//! omission). An arrival is one of: a phone registered (and its owner's inbox
//! switched on), a coverage check, a walk-in repair driven step by step to
//! collection, a mail-in repair (the sandbox carrier moves its parcels), or an
//! inbox read; a share of the repairs, and of their customers' inboxes, is
//! followed live. Each RPC's latency goes into an HDR histogram per operation;
//! errors are counted by gRPC code; the time from a repair step's commit to the
//! customer's live inbox delivering its message, and to a live watcher of the
//! repair seeing it, are measured too.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aftersales_proto::common::{Address, CountryCode, DeviceId, device_id};
use aftersales_proto::notification as npb;
use aftersales_proto::notification::notification_service_client::NotificationServiceClient;
use aftersales_proto::repair as rpb;
use aftersales_proto::repair::repair_service_client::RepairServiceClient;
use aftersales_proto::warranty as wpb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_runtime::telemetry::{TracedChannel, traced};
use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::client::Endpoints;

#[derive(Debug, clap::Args)]
pub struct Load {
    /// Arrivals per second (open loop); with `--find-max`, the first rate tried.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// How long each rate is held, in seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// What an arrival is, by weight.
    #[arg(
        long,
        default_value = "register=2,coverage=10,walk-in=2,mail-in=1,inbox=5"
    )]
    mix: Mix,
    /// At most this many repairs followed live (`WatchRepair`) at once, and as
    /// many of their customers' inboxes (`WatchNotifications`).
    #[arg(long, default_value_t = 50)]
    watchers: usize,
    /// Raise the rate by half again after each hold until a call's p99 is over
    /// `--target-p99-ms`, a step's message reaches the inbox later than
    /// `--target-inbox-p99-ms` at p99, or more than 1% of calls fail; report the
    /// highest rate that stayed under.
    #[arg(long)]
    find_max: bool,
    #[arg(long, default_value_t = 250)]
    target_p99_ms: u64,
    /// How a customer's inbox is followed: live (`WatchNotifications`, which only
    /// the customer may call) or by listing it every 20 ms (`ListNotifications`,
    /// which a support agent may call too). Live with `--no-auth`, else listed.
    #[arg(long, value_enum)]
    inbox_by: Option<InboxBy>,
    /// The p99 held for a step's commit to the customer's inbox (none if unset).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    target_inbox_p99_ms: Option<u64>,
    /// Raise the walk-in center's daily capacity to this many before measuring,
    /// so that walk-ins are worked on the day rather than booked for later
    /// (calls `UpsertServiceCenter` as `--operator`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    center_capacity: Option<u32>,
    /// The operator who raises the center's capacity: `user:password:authenticator-secret`
    /// (or `ops` from `--demo-accounts`).
    #[arg(long, env = "AFTERSALES_LOAD_OPERATOR", hide_env_values = true)]
    operator: Option<String>,
    /// Staff accounts from the file `aftersales up` writes (`demo-accounts.txt` in
    /// its data directory): `agent`, `tech-berlin`, `tech-depot` and `ops`.
    #[arg(long)]
    demo_accounts: Option<std::path::PathBuf>,
    /// The support agent who registers phones and opens repairs: `user:password`.
    #[arg(long, env = "AFTERSALES_LOAD_AGENT", hide_env_values = true)]
    agent: Option<String>,
    /// The technician who works on the walk-ins, at `--center`: `user:password`.
    #[arg(long, env = "AFTERSALES_LOAD_TECHNICIAN", hide_env_values = true)]
    technician: Option<String>,
    /// The repair depot's technician, who works on the mail-ins: `user:password`.
    #[arg(long, env = "AFTERSALES_LOAD_DEPOT_TECHNICIAN", hide_env_values = true)]
    depot_technician: Option<String>,
    /// The service center walk-ins go to.
    #[arg(long, default_value = "sc-berlin-01")]
    center: String,
    /// The repair depot the mail-ins (from Berlin) reach: the depot logistics
    /// has serve Germany. Its parts are counted in before measuring.
    #[arg(long, default_value = "eu-leipzig")]
    depot: String,
    /// Send no tokens: for a platform running with authentication off.
    #[arg(long)]
    no_auth: bool,
    /// Phones registered before measuring, for coverage checks.
    #[arg(long, default_value_t = 50)]
    seed_devices: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum InboxBy {
    Watch,
    Poll,
}

/// Connections per service and caller: the load comes from many clients, and a
/// server limits the calls one connection may have in flight.
const CONNECTIONS: usize = 8;

/// Weights of the kinds of arrival.
#[derive(Debug, Clone)]
pub struct Mix(Vec<(Arrival, u32)>);

impl std::str::FromStr for Mix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut weights = Vec::new();
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected kind=weight"))?;
            let arrival = Arrival::ALL
                .into_iter()
                .find(|a| a.name() == name.trim())
                .ok_or_else(|| {
                    format!(
                        "{name:?}: not a kind of arrival ({})",
                        Arrival::ALL.map(Arrival::name).join(", ")
                    )
                })?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: the weight is a whole number"))?;
            if weight > 1000 {
                return Err(format!("{part:?}: weights go up to 1000"));
            }
            weights.push((arrival, weight));
        }
        if weights.iter().all(|(_, w)| *w == 0) {
            return Err("the mix has no arrivals".into());
        }
        Ok(Self(weights))
    }
}

impl Mix {
    /// The kind of the `n`th arrival: a fixed, well-spread sequence.
    fn pick(&self, n: u64) -> Arrival {
        let total: u64 = self.0.iter().map(|(_, w)| u64::from(*w)).sum();
        // Golden-ratio stepping spreads the kinds evenly through the run.
        let mut at = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) % total;
        for (arrival, weight) in &self.0 {
            if at < u64::from(*weight) {
                return *arrival;
            }
            at -= u64::from(*weight);
        }
        self.0[0].0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    Register,
    Coverage,
    WalkIn,
    MailIn,
    Inbox,
}

impl Arrival {
    const ALL: [Self; 5] = [
        Self::Register,
        Self::Coverage,
        Self::WalkIn,
        Self::MailIn,
        Self::Inbox,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Coverage => "coverage",
            Self::WalkIn => "walk-in",
            Self::MailIn => "mail-in",
            Self::Inbox => "inbox",
        }
    }
}

/// What is timed: an RPC, a whole journey, or a step's effect reaching someone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    RegisterDevice,
    SetPreferences,
    CheckCoverage,
    OpenRepair,
    /// A walk-in booked for a later day, the center being full today.
    BookWalkIn,
    CheckInDevice,
    Diagnose,
    StartRepair,
    RecordQcResult,
    MarkReadyForReturn,
    ConfirmCollected,
    ListNotifications,
    GetRepair,
    /// A walk-in from its due time to collection.
    WalkInJourney,
    /// A mail-in from its due time until it is closed (parcels both ways).
    MailInJourney,
    /// A step's commit to the customer's inbox listing its message.
    StepToInbox,
    /// A step's commit to a live watcher seeing the new stage.
    StepToWatcher,
}

impl Op {
    /// Whether it is one call, whose p99 the rate search holds to the target.
    fn is_call(self) -> bool {
        !matches!(
            self,
            Self::WalkInJourney | Self::MailInJourney | Self::StepToInbox | Self::StepToWatcher
        )
    }

    /// Whether it moves a repair on in the workshop or at the desk.
    fn is_repair_step(self) -> bool {
        matches!(
            self,
            Self::OpenRepair
                | Self::CheckInDevice
                | Self::Diagnose
                | Self::StartRepair
                | Self::RecordQcResult
                | Self::MarkReadyForReturn
                | Self::ConfirmCollected
        )
    }
}

/// Units of each part the load's center holds: more than its repairs ever
/// hold at once, since each gives its unit back when the phone is ready.
const LOAD_STOCK: i32 = 10_000;

/// Latencies (microseconds) and errors, per operation.
#[derive(Default)]
struct Stats {
    latencies: BTreeMap<Op, Histogram<u64>>,
    errors: BTreeMap<(Op, String), u64>,
}

#[derive(Clone)]
struct Recorder(Arc<Mutex<Stats>>);

impl Recorder {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(Stats::default())))
    }

    fn time(&self, op: Op, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        if let Ok(mut stats) = self.0.lock() {
            let histogram = stats.latencies.entry(op).or_insert_with(|| {
                // Three significant figures up to an hour; auto-resizes beyond.
                let mut h = Histogram::new(3).unwrap_or_else(|_| unreachable!());
                h.auto(true);
                h
            });
            let _ = histogram.record(micros);
        }
    }

    fn error(&self, op: Op, code: String) {
        if let Ok(mut stats) = self.0.lock() {
            *stats.errors.entry((op, code)).or_default() += 1;
        }
    }

    fn take(&self) -> Stats {
        self.0
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }
}

/// The clients, each with the token of who calls.
#[derive(Clone)]
struct Callers {
    warranty: WarrantyServiceClient<TracedChannel>,
    repair_agent: RepairServiceClient<TracedChannel>,
    repair_technician: RepairServiceClient<TracedChannel>,
    repair_depot: RepairServiceClient<TracedChannel>,
    notification: NotificationServiceClient<TracedChannel>,
}

/// Shared by every arrival of a run.
struct World {
    /// One set of connections per simulated client group, used in turn, so the
    /// calls spread over connections as many users' would.
    callers: Vec<Callers>,
    turn: AtomicU64,
    recorder: Recorder,
    center: String,
    /// This run's prefix for customers and phones, so runs never collide.
    run: u64,
    next: AtomicU64,
    devices: Mutex<Vec<String>>,
    customers: Mutex<Vec<String>>,
    watchers: Arc<tokio::sync::Semaphore>,
    inbox_watchers: Arc<tokio::sync::Semaphore>,
    inbox_by: InboxBy,
    /// Arrivals under way, and measurements of their effects still waiting.
    in_flight: Arc<AtomicU64>,
}

/// Runs `call` as `op`: its time from `since`, or its error by code.
async fn timed<T>(
    world: &World,
    op: Op,
    since: Instant,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Option<T> {
    match call.await {
        Ok(answer) => {
            world.recorder.time(op, since.elapsed());
            Some(answer.into_inner())
        }
        Err(status) => {
            world.recorder.error(op, format!("{:?}", status.code()));
            None
        }
    }
}

fn device(imei: &str) -> Option<DeviceId> {
    Some(DeviceId {
        kind: Some(device_id::Kind::Imei(imei.to_owned())),
    })
}

/// A valid IMEI for phone `n` of run `run`.
fn imei(run: u64, n: u64) -> String {
    let body = format!("35{:05}{:07}", run % 100_000, n % 10_000_000);
    (0..10)
        .map(|check| format!("{body}{check}"))
        .find(|imei| aftersales_core::types::luhn_valid(imei))
        .unwrap_or(body)
}

impl World {
    /// The next connections to call on.
    fn c(&self) -> &Callers {
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        &self.callers[usize::try_from(turn).unwrap_or(0) % self.callers.len()]
    }

    /// Registers a new phone for a new customer whose inbox is on; its IMEI and
    /// the customer.
    async fn register(&self, since: Instant) -> Option<(String, String)> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let imei = imei(self.run, n);
        let customer = format!("load-{}-{n}", self.run);
        timed(
            self,
            Op::RegisterDevice,
            since,
            self.c()
                .warranty
                .clone()
                .register_device(wpb::RegisterDeviceRequest {
                    device_id: device(&imei),
                    model: "Aurora 5".into(),
                    purchase_date: "2026-06-01".into(),
                    country_of_purchase: Some(CountryCode { value: "DE".into() }),
                    channel: wpb::SalesChannel::OnlineStore.into(),
                    customer_id: customer.clone(),
                    ..Default::default()
                }),
        )
        .await?;
        let started = Instant::now();
        timed(
            self,
            Op::SetPreferences,
            started,
            self.c()
                .notification
                .clone()
                .set_preferences(npb::Preferences {
                    customer_id: customer.clone(),
                    channels: vec![npb::ChannelKind::InApp.into()],
                    language: "en".into(),
                    ..Default::default()
                }),
        )
        .await?;
        if let Ok(mut devices) = self.devices.lock() {
            devices.push(imei.clone());
        }
        if let Ok(mut customers) = self.customers.lock() {
            customers.push(customer.clone());
        }
        Some((imei, customer))
    }

    fn any<T: Clone>(list: &Mutex<Vec<T>>, n: u64) -> Option<T> {
        let list = list.lock().ok()?;
        let len = u64::try_from(list.len()).ok()?;
        (len > 0).then(|| list[usize::try_from(n % len).unwrap_or(0)].clone())
    }

    async fn coverage(&self, due: Instant, n: u64) {
        let Some(imei) = Self::any(&self.devices, n) else {
            return;
        };
        timed(
            self,
            Op::CheckCoverage,
            due,
            self.c()
                .warranty
                .clone()
                .check_coverage(wpb::CheckCoverageRequest {
                    device_id: device(&imei),
                    fault_category: wpb::FaultCategory::Battery.into(),
                    ..Default::default()
                }),
        )
        .await;
    }

    async fn inbox(&self, due: Instant, n: u64) {
        let Some(customer) = Self::any(&self.customers, n) else {
            return;
        };
        timed(
            self,
            Op::ListNotifications,
            due,
            self.c()
                .notification
                .clone()
                .list_notifications(npb::ListNotificationsRequest {
                    customer_id: customer,
                    page_size: 20,
                    page_token: String::new(),
                }),
        )
        .await;
    }

    /// Follows `order` live if a watcher is free, once its stream is open (it
    /// first sends the order as it stands): each stage it sees, with when.
    async fn watch(&self, order: &str) -> Option<Seen<i32>> {
        let permit = Arc::clone(&self.watchers).try_acquire_owned().ok()?;
        let seen = Seen::default();
        let mut repair = self.c().repair_agent.clone();
        let order = order.to_owned();
        let into = seen.clone();
        let (opened, is_open) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _permit = permit;
            let Ok(stream) = repair.watch_repair(rpb::OrderRef { order_id: order }).await else {
                return;
            };
            let mut stream = stream.into_inner();
            let mut opened = Some(opened);
            while let Ok(Some(order)) = stream.message().await {
                if let Some(opened) = opened.take() {
                    let _ = opened.send(());
                }
                into.record(order.stage);
                if order.stage == rpb::Stage::Closed as i32 {
                    return;
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(5), is_open)
            .await
            .ok()?
            .ok()?;
        Some(seen)
    }

    /// After a step committed at `committed` moved the order to `stage`: how
    /// soon the watcher saw it or a later stage (a live view may skip a stage
    /// that lasted a moment; measured once it has, or given up after 10 s).
    fn watcher_sees(&self, seen: Option<&Seen<i32>>, (committed, stage): (Instant, i32)) {
        let Some(seen) = seen.cloned() else {
            return;
        };
        let recorder = self.recorder.clone();
        let pending = Pending::start(&self.in_flight);
        tokio::spawn(async move {
            let _pending = pending;
            let deadline = committed + Duration::from_secs(10);
            loop {
                if let Some(at) = seen.when(|seen| later_or_same(*seen, stage)) {
                    recorder.time(Op::StepToWatcher, at.saturating_duration_since(committed));
                    return;
                }
                if Instant::now() > deadline {
                    recorder.error(Op::StepToWatcher, "not seen in 10s".into());
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }

    /// Follows `customer`'s inbox (`--inbox-by`) if an inbox watcher is free.
    async fn watch_inbox(&self, customer: &str) -> Option<InboxWatch> {
        let permit = Arc::clone(&self.inbox_watchers).try_acquire_owned().ok()?;
        let mut notification = self.c().notification.clone();
        let (open, mut closed) = tokio::sync::oneshot::channel();
        let watch = InboxWatch {
            seen: Seen::default(),
            _open: Arc::new(open),
        };
        let into = watch.seen.clone();
        let customer_id = customer.to_owned();
        match self.inbox_by {
            InboxBy::Watch => {
                let stream = notification
                    .watch_notifications(npb::CustomerRef { customer_id })
                    .await
                    .map_err(|status| {
                        self.recorder
                            .error(Op::StepToInbox, format!("{:?}", status.code()));
                    })
                    .ok()?;
                let mut stream = stream.into_inner();
                let recorder = self.recorder.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    loop {
                        tokio::select! {
                            message = stream.message() => match message {
                                Ok(Some(message)) => into.record(message.kind),
                                Ok(None) => {
                                    recorder.error(Op::StepToInbox, "inbox stream ended".into());
                                    return;
                                }
                                Err(status) => {
                                    let code = status.code();
                                    recorder.error(Op::StepToInbox, format!("inbox stream {code:?}"));
                                    return;
                                }
                            },
                            _ = &mut closed => return,
                        }
                    }
                });
            }
            InboxBy::Poll => {
                tokio::spawn(async move {
                    let _permit = permit;
                    let mut known = std::collections::BTreeSet::new();
                    let mut every = tokio::time::interval(Duration::from_millis(20));
                    loop {
                        tokio::select! {
                            _ = every.tick() => {}
                            _ = &mut closed => return,
                        }
                        let Ok(listed) = notification
                            .list_notifications(npb::ListNotificationsRequest {
                                customer_id: customer_id.clone(),
                                page_size: 50,
                                page_token: String::new(),
                            })
                            .await
                        else {
                            continue;
                        };
                        for message in listed.into_inner().notifications {
                            if known.insert(message.notification_id) {
                                into.record(message.kind);
                            }
                        }
                    }
                });
            }
        }
        Some(watch)
    }

    /// How soon after `committed` the customer's inbox shows a message of `kind`
    /// (given up after 30 s).
    fn inbox_gets(&self, inbox: Option<&InboxWatch>, kind: &'static str, committed: Instant) {
        let Some(inbox) = inbox.cloned() else {
            return;
        };
        let recorder = self.recorder.clone();
        let pending = Pending::start(&self.in_flight);
        tokio::spawn(async move {
            let _pending = pending;
            let deadline = committed + Duration::from_secs(30);
            loop {
                if let Some(at) = inbox.shown(kind) {
                    recorder.time(Op::StepToInbox, at.saturating_duration_since(committed));
                    return;
                }
                if Instant::now() > deadline {
                    recorder.error(Op::StepToInbox, "not in the inbox in 30s".into());
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }

    /// A workshop step as the technician, timed from when it was sent: when it
    /// was committed (answered) and the stage it left the order in.
    async fn step(
        &self,
        op: Op,
        call: impl Future<Output = Result<tonic::Response<rpb::RepairOrder>, tonic::Status>>,
    ) -> Option<(Instant, i32)> {
        let order = timed(self, op, Instant::now(), call).await?;
        Some((Instant::now(), order.stage))
    }

    /// The workshop's part of a repair, from check-in or diagnosis to
    /// the phone being ready to go back; `Some` when every step succeeded.
    async fn workshop(
        &self,
        mut tech: RepairServiceClient<TracedChannel>,
        order: &str,
        seen: Option<&Seen<i32>>,
        inbox: Option<&InboxWatch>,
    ) -> Option<()> {
        let id = || order.to_owned();
        let diagnosed = self
            .step(
                Op::Diagnose,
                tech.diagnose(rpb::DiagnoseRequest {
                    order_id: id(),
                    fault_category: wpb::FaultCategory::Battery.into(),
                    fault_codes: vec!["BAT-01".into()],
                    technician: "load".into(),
                }),
            )
            .await?;
        self.watcher_sees(seen, diagnosed);
        let started = self
            .step(
                Op::StartRepair,
                tech.start_repair(rpb::StartRepairRequest {
                    order_id: id(),
                    technician: "load".into(),
                }),
            )
            .await?;
        self.watcher_sees(seen, started);
        self.inbox_gets(inbox, "repair_started", started.0);
        self.step(
            Op::RecordQcResult,
            tech.record_qc_result(rpb::RecordQcResultRequest {
                order_id: id(),
                passed: true,
                notes: String::new(),
            }),
        )
        .await?;
        let ready = self
            .step(
                Op::MarkReadyForReturn,
                tech.mark_ready_for_return(rpb::OrderRef { order_id: id() }),
            )
            .await?;
        self.watcher_sees(seen, ready);
        Some(())
    }

    async fn walk_in(&self, due: Instant) -> Option<()> {
        let (imei, customer) = self.register(due).await?;
        let request = rpb::OpenRepairRequest {
            device_id: device(&imei),
            channel: rpb::Channel::WalkIn.into(),
            service_center_id: self.center.clone(),
            customer_id: customer.clone(),
            symptoms: "battery drains".into(),
            reported_fault: wpb::FaultCategory::Battery.into(),
            ..Default::default()
        };
        let started = Instant::now();
        let order = match self
            .c()
            .repair_agent
            .clone()
            .open_repair(request.clone())
            .await
        {
            Ok(order) => {
                self.recorder.time(Op::OpenRepair, started.elapsed());
                order.into_inner().order_id
            }
            // The center takes no more walk-ins today (or is closed): the desk
            // books the day it names, and the journey goes on as on that day.
            Err(full) if full.code() == tonic::Code::ResourceExhausted => {
                self.recorder.time(Op::OpenRepair, started.elapsed());
                let day = crate::client::next_available_day(&full)?;
                let booked = rpb::OpenRepairRequest {
                    walk_in_day: day.to_owned(),
                    ..request
                };
                timed(
                    self,
                    Op::BookWalkIn,
                    Instant::now(),
                    self.c().repair_agent.clone().open_repair(booked),
                )
                .await?
                .order_id
            }
            Err(status) => {
                self.recorder
                    .error(Op::OpenRepair, format!("{:?}", status.code()));
                return None;
            }
        };
        let seen = self.watch(&order).await;
        let inbox = self.watch_inbox(&customer).await;
        let mut tech = self.c().repair_technician.clone();
        let received = self
            .step(
                Op::CheckInDevice,
                tech.check_in_device(rpb::CheckInDeviceRequest {
                    order_id: order.clone(),
                    condition_notes: "scratch on the frame".into(),
                    ..Default::default()
                }),
            )
            .await?;
        self.watcher_sees(seen.as_ref(), received);
        self.workshop(tech.clone(), &order, seen.as_ref(), inbox.as_ref())
            .await?;
        self.step(
            Op::ConfirmCollected,
            tech.confirm_collected(rpb::OrderRef {
                order_id: order.clone(),
            }),
        )
        .await?;
        self.recorder.time(Op::WalkInJourney, due.elapsed());
        Some(())
    }

    /// Polls the order until it reaches `stage` (every 250 ms, as a customer
    /// refreshing a page might; up to `patience`).
    async fn reaches(&self, order: &str, stage: rpb::Stage, patience: Duration) -> Option<()> {
        let deadline = Instant::now() + patience;
        let mut repair = self.c().repair_agent.clone();
        while Instant::now() < deadline {
            let got = timed(
                self,
                Op::GetRepair,
                Instant::now(),
                repair.get_repair(rpb::OrderRef {
                    order_id: order.to_owned(),
                }),
            )
            .await;
            if got.is_some_and(|o| o.stage == stage as i32) {
                return Some(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.recorder
            .error(Op::MailInJourney, format!("not {stage:?} in {patience:?}"));
        None
    }

    async fn mail_in(&self, due: Instant) -> Option<()> {
        let (imei, customer) = self.register(due).await?;
        let order = timed(
            self,
            Op::OpenRepair,
            Instant::now(),
            self.c()
                .repair_agent
                .clone()
                .open_repair(rpb::OpenRepairRequest {
                    device_id: device(&imei),
                    channel: rpb::Channel::MailIn.into(),
                    customer_id: customer.clone(),
                    symptoms: "battery drains".into(),
                    contact_address: Some(Address {
                        recipient: "Load Test".into(),
                        lines: vec!["Torstrasse 1".into()],
                        city: "Berlin".into(),
                        postal_code: "10119".into(),
                        country: Some(CountryCode { value: "DE".into() }),
                        ..Default::default()
                    }),
                    reported_fault: wpb::FaultCategory::Battery.into(),
                    ..Default::default()
                }),
        )
        .await?
        .order_id;
        let seen = self.watch(&order).await;
        let inbox = self.watch_inbox(&customer).await;
        // The sandbox carrier brings the parcel in, and takes it back.
        let patience = Duration::from_secs(120);
        self.reaches(&order, rpb::Stage::Received, patience).await?;
        let depot = self.c().repair_depot.clone();
        self.workshop(depot, &order, seen.as_ref(), inbox.as_ref())
            .await?;
        self.reaches(&order, rpb::Stage::Closed, patience).await?;
        self.recorder.time(Op::MailInJourney, due.elapsed());
        Some(())
    }

    async fn arrive(self: Arc<Self>, arrival: Arrival, due: Instant, n: u64) {
        let _pending = Pending::start(&self.in_flight);
        match arrival {
            Arrival::Register => {
                self.register(due).await;
            }
            Arrival::Coverage => self.coverage(due, n).await,
            Arrival::WalkIn => {
                self.walk_in(due).await;
            }
            Arrival::MailIn => {
                self.mail_in(due).await;
            }
            Arrival::Inbox => self.inbox(due, n).await,
        }
    }
}

/// One thing under way, counted in `in_flight` until dropped.
struct Pending(Arc<AtomicU64>);

impl Pending {
    fn start(in_flight: &Arc<AtomicU64>) -> Self {
        in_flight.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(in_flight))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether stage `seen` is `stage` or comes after it on the way to closing.
fn later_or_same(seen: i32, stage: i32) -> bool {
    let closed = rpb::Stage::Closed as i32;
    seen == stage || (seen > stage && seen <= closed)
}

/// The stages a watcher saw, with when.
/// What a live stream delivered, with when: stages of a repair, or kinds of
/// inbox message.
struct Seen<T>(Arc<Mutex<Vec<(T, Instant)>>>);

impl<T> Clone for Seen<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> Default for Seen<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<T> Seen<T> {
    fn record(&self, item: T) {
        if let Ok(mut seen) = self.0.lock() {
            seen.push((item, Instant::now()));
        }
    }

    /// When the first item `matches` arrived, once one has.
    fn when(&self, matches: impl Fn(&T) -> bool) -> Option<Instant> {
        let seen = self.0.lock().ok()?;
        seen.iter()
            .find(|(item, _)| matches(item))
            .map(|(_, at)| *at)
    }
}

/// A customer's inbox followed as their app would: the kinds of message it
/// showed, with when. It is followed while a clone is held.
#[derive(Clone)]
struct InboxWatch {
    seen: Seen<String>,
    _open: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl InboxWatch {
    /// When a message of `kind` was first shown. A method, so that a task asking
    /// holds the whole watch open (a closure naming only `seen` would hold that).
    fn shown(&self, kind: &str) -> Option<Instant> {
        self.seen.when(|seen| seen == kind)
    }
}

/// Arrivals at `rate` per second for `seconds`, each spawned when due; prints
/// progress every second. What was measured, once every arrival and every
/// measurement of its effects has ended (or 2 minutes after the last was due).
async fn hold(world: &Arc<World>, mix: &Mix, rate: f64, seconds: u64, first: u64) -> Stats {
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut progress =
        tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let mut n = 0u64;
    loop {
        #[allow(clippy::cast_precision_loss)] // arrival counts are small
        let due = start + Duration::from_secs_f64(n as f64 / rate);
        if due >= end {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep_until(due) => {
                let arrival = mix.pick(first + n);
                tokio::spawn(Arc::clone(world).arrive(arrival, due, first + n));
                n += 1;
            }
            _ = progress.tick() => {
                eprintln!(
                    "  {:>3}s  {rate:.1}/s  {n} arrived, {} in flight",
                    start.elapsed().as_secs(),
                    world.in_flight.load(Ordering::Relaxed)
                );
            }
        }
    }
    let drain = Instant::now() + Duration::from_secs(120);
    while world.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    world.recorder.take()
}

fn millis(micros: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // a printed figure
    let ms = micros as f64 / 1000.0;
    format!("{ms:.1}")
}

/// What a hold came to, against the targets.
struct Outcome {
    /// The worst p99 of a single call, in microseconds.
    worst_call: u64,
    /// A step's commit to the customer's inbox, p99, in microseconds.
    step_to_inbox: Option<u64>,
    /// The share of calls that failed.
    failed: f64,
}

/// Prints the table of one hold, and the repair steps and coverage checks it
/// carried each second.
fn report(stats: &Stats, rate: f64, seconds: u64) -> Outcome {
    println!("\nat {rate:.1} arrivals/s for {seconds}s:");
    println!("| operation | count | per second | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");
    let mut worst = 0;
    let mut done = 0u64;
    let mut failed = 0u64;
    let mut steps = 0u64;
    for (op, h) in &stats.latencies {
        #[allow(clippy::cast_precision_loss)] // a printed figure
        let per_second = h.len() as f64 / seconds as f64;
        println!(
            "| {op:?} | {} | {per_second:.1} | {} | {} | {} | {} |",
            h.len(),
            millis(h.value_at_quantile(0.5)),
            millis(h.value_at_quantile(0.9)),
            millis(h.value_at_quantile(0.99)),
            millis(h.max()),
        );
        if op.is_call() {
            worst = worst.max(h.value_at_quantile(0.99));
            done += h.len();
        }
        if op.is_repair_step() {
            steps += h.len();
        }
    }
    #[allow(clippy::cast_precision_loss)] // printed figures
    let per_second = |count: u64| count as f64 / seconds as f64;
    println!(
        "repair steps {:.1}/s, coverage checks {:.1}/s",
        per_second(steps),
        per_second(
            stats
                .latencies
                .get(&Op::CheckCoverage)
                .map_or(0, Histogram::len)
        )
    );
    for ((op, code), count) in &stats.errors {
        println!("error: {op:?} {code}: {count}");
        if op.is_call() {
            failed += count;
        }
    }
    #[allow(clippy::cast_precision_loss)] // a ratio
    let share = failed as f64 / (done + failed).max(1) as f64;
    Outcome {
        worst_call: worst,
        step_to_inbox: stats
            .latencies
            .get(&Op::StepToInbox)
            .map(|h| h.value_at_quantile(0.99)),
        failed: share,
    }
}

/// A staff account: user, password, and the authenticator secret if it has one.
type Account = (String, String, Option<String>);

/// `user:password[:authenticator-secret]` from a flag, or `username`'s line in
/// `up`'s file.
fn account(
    given: Option<&String>,
    file: Option<&std::path::Path>,
    username: &str,
    flag: &str,
) -> Result<Account, String> {
    if let Some(given) = given {
        let mut parts = given.splitn(3, ':');
        let (Some(user), Some(password)) = (parts.next(), parts.next()) else {
            return Err(format!("--{flag}: expected user:password"));
        };
        return Ok((
            user.to_owned(),
            password.to_owned(),
            parts.next().map(str::to_owned),
        ));
    }
    let file = file
        .ok_or_else(|| format!("give --{flag} user:password, or --demo-accounts, or --no-auth"))?;
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(
            |line| match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                [_, user, password, rest @ ..] if *user == username => Some((
                    (*user).to_owned(),
                    (*password).to_owned(),
                    rest.first().map(|s| (*s).to_owned()),
                )),
                _ => None,
            },
        )
        .ok_or_else(|| format!("{}: no account {username}", file.display()))
}

pub async fn run(args: Load, endpoints: &Endpoints) -> Result<(), String> {
    if !(args.rate > 0.0 && args.rate <= 100_000.0) {
        return Err("--rate is between 0 and 100000 arrivals per second".into());
    }
    if args.seconds == 0 || args.seconds > 86_400 {
        return Err("--seconds is between 1 and 86400".into());
    }
    if args.watchers > 10_000 {
        return Err("--watchers is at most 10000".into());
    }
    if args.seed_devices > 1_000_000 {
        return Err("--seed-devices is at most 1000000".into());
    }
    if args.target_p99_ms == 0 || args.target_p99_ms > 600_000 {
        return Err("--target-p99-ms is between 1 and 600000".into());
    }
    let token = |username: &'static str, flag: &'static str, given: Option<String>| {
        let file = args.demo_accounts.clone();
        let issuer = endpoints.issuer_url.clone();
        let no_auth = args.no_auth;
        async move {
            if no_auth {
                return Ok(None);
            }
            let (user, password, secret) =
                account(given.as_ref(), file.as_deref(), username, flag)?;
            let code = secret
                .map(|s| {
                    aftersales_identity::secrets::totp_now(&s)
                        .ok_or_else(|| format!("--{flag}: not an authenticator secret"))
                })
                .transpose()?
                .unwrap_or_default();
            crate::login::password_token(&issuer, &user, &password, &code)
                .await
                .map(Some)
        }
    };
    let agent = token("agent-de-anna", "agent", args.agent.clone()).await?;
    let technician = token("tech-berlin", "technician", args.technician.clone()).await?;
    let depot = token(
        "tech-depot",
        "depot-technician",
        args.depot_technician.clone(),
    )
    .await?;
    let channel = |service: &'static str, url: String, token: Option<String>| {
        let ca = endpoints.ca_cert.clone();
        async move {
            Ok::<_, String>(traced(
                crate::client::connect(service, &url, ca.as_deref()).await?,
                token.map(aftersales_auth::ServiceToken::fixed),
            ))
        }
    };
    if let Some(capacity) = args.center_capacity {
        let operator = token("ops", "operator", args.operator.clone()).await?;
        let mut repair = RepairServiceClient::new(
            channel("repair", endpoints.repair_url.clone(), operator).await?,
        );
        let center = repair
            .get_service_center(rpb::GetServiceCenterRequest {
                id: args.center.clone(),
            })
            .await
            .map_err(|e| format!("{}: {}", args.center, e.message()))?
            .into_inner();
        repair
            .upsert_service_center(rpb::ServiceCenter {
                daily_capacity: capacity,
                ..center
            })
            .await
            .map_err(|e| format!("raising {}'s capacity: {}", args.center, e.message()))?;
        eprintln!("{} takes {capacity} walk-ins a day", args.center);
    }
    let mut callers = Vec::new();
    for _ in 0..CONNECTIONS {
        callers.push(Callers {
            warranty: WarrantyServiceClient::new(
                channel("warranty", endpoints.warranty_url.clone(), agent.clone()).await?,
            ),
            repair_agent: RepairServiceClient::new(
                channel("repair", endpoints.repair_url.clone(), agent.clone()).await?,
            ),
            repair_technician: RepairServiceClient::new(
                channel("repair", endpoints.repair_url.clone(), technician.clone()).await?,
            ),
            repair_depot: RepairServiceClient::new(
                channel("repair", endpoints.repair_url.clone(), depot.clone()).await?,
            ),
            notification: NotificationServiceClient::new(
                channel(
                    "notification",
                    endpoints.notification_url.clone(),
                    agent.clone(),
                )
                .await?,
            ),
        });
    }
    #[allow(clippy::disallowed_methods)] // a run's id, not a decision
    let run = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or_default();
    let world = Arc::new(World {
        callers,
        turn: AtomicU64::new(0),
        recorder: Recorder::new(),
        center: args.center.clone(),
        run,
        next: AtomicU64::new(0),
        devices: Mutex::new(Vec::new()),
        customers: Mutex::new(Vec::new()),
        watchers: Arc::new(tokio::sync::Semaphore::new(args.watchers)),
        inbox_watchers: Arc::new(tokio::sync::Semaphore::new(args.watchers)),
        inbox_by: args.inbox_by.unwrap_or(if args.no_auth {
            InboxBy::Watch
        } else {
            InboxBy::Poll
        }),
        in_flight: Arc::default(),
    });
    // The center and the depot count in the parts their repairs fit; without a
    // parts service the repair service holds none.
    for (location, staff) in [(&args.center, &technician), (&args.depot, &depot)] {
        if let Ok(channel) = channel("parts", endpoints.parts_url.clone(), staff.clone()).await {
            let mut parts =
                aftersales_proto::parts::parts_service_client::PartsServiceClient::new(channel);
            if let Err(error) =
                crate::parts::stock_for_repairs(&mut parts, location, "Aurora 5", LOAD_STOCK).await
            {
                eprintln!("not stocking {location} with parts: {error}");
            }
        }
    }
    eprintln!(
        "registering {} phones to check coverage on",
        args.seed_devices
    );
    for _ in 0..args.seed_devices {
        if world.register(Instant::now()).await.is_none() {
            let errors = world.recorder.take().errors;
            return Err(format!("registering a phone failed: {errors:?}"));
        }
    }
    world.recorder.take();
    let target = args.target_p99_ms * 1000;
    let mut rate = args.rate;
    let mut first = 0;
    let mut best = None;
    loop {
        eprintln!("holding {rate:.1} arrivals/s for {}s", args.seconds);
        let stats = hold(&world, &args.mix, rate, args.seconds, first).await;
        first += 1_000_000;
        let outcome = report(&stats, rate, args.seconds);
        let inbox_within = match (args.target_inbox_p99_ms, outcome.step_to_inbox) {
            (None, _) => true,
            (Some(target), Some(p99)) => p99 <= target * 1000,
            // Nothing reached an inbox to be timed: not a pass.
            (Some(_), None) => false,
        };
        let within = outcome.worst_call <= target && outcome.failed <= 0.01 && inbox_within;
        println!(
            "worst call p99 {} ms, step to inbox p99 {} ms, {:.2}% of calls failed: {}",
            millis(outcome.worst_call),
            outcome.step_to_inbox.map_or_else(|| "-".into(), millis),
            outcome.failed * 100.0,
            if within {
                "within the target"
            } else {
                "over the target"
            }
        );
        if !args.find_max {
            return Ok(());
        }
        if !within {
            break;
        }
        best = Some(rate);
        rate *= 1.5;
    }
    match best {
        Some(rate) => println!(
            "\nhighest rate with every call's p99 under {} ms{}: {rate:.1} arrivals/s",
            args.target_p99_ms,
            args.target_inbox_p99_ms
                .map(|t| format!(" and step to inbox under {t} ms"))
                .unwrap_or_default()
        ),
        None => println!(
            "\neven {:.1} arrivals/s is over the target of {} ms",
            args.rate, args.target_p99_ms
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imeis_are_valid_and_distinct_per_run() {
        let a = imei(12_345, 1);
        assert_eq!(a.len(), 15);
        assert_ne!(a, imei(12_345, 2));
        assert_ne!(a, imei(12_346, 1));
        assert!(
            aftersales_core::types::Imei::parse("imei", &a).is_ok(),
            "{a}"
        );
    }

    #[test]
    fn a_mix_is_parsed_and_followed_by_weight() {
        let mix: Mix = "register=1,coverage=3".parse().unwrap();
        let picks: Vec<Arrival> = (0..4000).map(|n| mix.pick(n)).collect();
        let coverage = picks.iter().filter(|a| **a == Arrival::Coverage).count();
        assert!((2900..3100).contains(&coverage), "{coverage} of 4000");
        assert!("register".parse::<Mix>().is_err());
        assert!("nothing=1".parse::<Mix>().is_err());
        assert!("register=0".parse::<Mix>().is_err());
        assert!("register=5000".parse::<Mix>().is_err());
    }
}
