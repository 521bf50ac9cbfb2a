//! The warranty use cases over the event store: commands through the device
//! decider, questions answered from the log (as of any time) or from projections.

use std::sync::Arc;

use aftersales_core::Error;
use aftersales_core::types::CountryCode;
use aftersales_eventstore::Decider as _;
use aftersales_eventstore::{
    AnyEventStore, ChainBreak, CommandContext, CommandHandler, EventStore as _, RECENT_STREAMS,
    RecordedEvent, StateCache, StreamHead, StreamId, VerifyReport,
};
use aftersales_payments::{PaymentProvider, PaymentRequest, PaymentStatus, RefundRequest};
use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::coverage::{self, Decision};
use crate::domain::device::{ActivePlan, Command, Device, DeviceState, PurchaseProof, Settlement};
use crate::domain::forward::{Forward, Forwarding, Write};
use crate::domain::{
    AccessoryKind, DeviceKey, DomainError, FaultCategory, PolicyTable, Programme, ProgrammeTable,
    SalesChannel,
};
use crate::projections::{self, DeviceRow};
use crate::replica::ForeignDevice;

/// Why a use case failed: the shared error, its kind saying the gRPC code.
pub type AppResult<T> = Result<T, Error>;

/// A coverage question's two times and place, as the caller gave them.
#[derive(Debug, Clone, Default)]
pub struct Asked {
    /// The valid time: the day the fault appeared; the knowledge time's day if unset.
    pub fault_date: Option<NaiveDate>,
    /// The knowledge time: the log as it stood then; now if unset.
    pub known_at: Option<DateTime<Utc>>,
    /// Where the device is serviced; its home country if unset.
    pub serviced_in: Option<String>,
}

/// The two times a question was answered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    pub fault_date: NaiveDate,
    pub known_at: DateTime<Utc>,
    /// Whether the log was cut at `known_at` (else: everything known now).
    pub cut: bool,
}

impl Asked {
    /// Checks the two times against each other and the clock: neither is in the
    /// future, and a fault is not dated after what is known about it.
    pub fn times(&self, now: DateTime<Utc>) -> AppResult<Times> {
        if let Some(known_at) = self.known_at
            && known_at > now
        {
            return Err(DomainError::invalid("known_at", "is in the future").into());
        }
        let known_at = self.known_at.unwrap_or(now);
        let fault_date = self.fault_date.unwrap_or(known_at.date_naive());
        if fault_date > now.date_naive() {
            return Err(DomainError::invalid("fault_date", "is in the future").into());
        }
        if fault_date > known_at.date_naive() {
            return Err(DomainError::invalid(
                "fault_date",
                format!("{fault_date} is after known_at ({known_at}): ask as known on or after the fault"),
            )
            .into());
        }
        if let Some(country) = &self.serviced_in {
            CountryCode::parse("serviced_in", country)?;
        }
        Ok(Times {
            fault_date,
            known_at,
            cut: self.known_at.is_some(),
        })
    }
}

/// What registering a device needs.
#[derive(Debug, Clone)]
pub struct Registration {
    pub key: DeviceKey,
    pub model: String,
    pub purchase_date: NaiveDate,
    pub country: String,
    pub channel: SalesChannel,
    pub customer_id: String,
    pub proof: PurchaseProof,
    pub activation_date: Option<NaiveDate>,
}

/// A plan cancelled: the device after it, and what was given back.
#[derive(Debug, Clone)]
pub struct Cancelled {
    pub state: DeviceState,
    pub refund_minor: i64,
    pub currency: String,
    /// The refund at the payment provider, for a plan paid there.
    pub refund_id: Option<String>,
}

/// A write's outcome: applied to the device here, or, for a device whose home
/// is another region, queued for it (the device as this region's replica has it).
#[derive(Debug, Clone)]
pub enum Written {
    Here(DeviceState),
    Forwarded(ForeignDevice),
}

/// A coverage decision, and the replica it was made from when the device's
/// home is another region.
#[derive(Debug, Clone)]
pub struct Decided {
    pub decision: Decision,
    pub times: Times,
    pub replica: Option<ForeignDevice>,
}

/// The warranty service's use cases.
#[derive(Debug, Clone)]
pub struct Warranty {
    store: AnyEventStore,
    devices: CommandHandler<Device, AnyEventStore>,
    forwards: CommandHandler<Forwarding, AnyEventStore>,
    /// The region this runs in, and which region is home for each country.
    region: String,
    regions: Arc<aftersales_runtime::regions::Regions>,
    /// Current device states for questions; commands always load fresh.
    cache: Arc<StateCache<Device>>,
    policies: Arc<PolicyTable>,
    programmes: Arc<ProgrammeTable>,
    payments: Arc<dyn PaymentProvider>,
}

/// The device's stream.
pub fn stream(key: &DeviceKey) -> AppResult<StreamId> {
    StreamId::parse(key.stream_name())
        .map_err(|e| DomainError::invalid("device_id", e.to_string()).into())
}

impl Warranty {
    pub fn new(
        store: AnyEventStore,
        policies: Arc<PolicyTable>,
        programmes: Arc<ProgrammeTable>,
        payments: Arc<dyn PaymentProvider>,
    ) -> Self {
        Self {
            devices: CommandHandler::new(store.clone())
                .with_snapshots_every(100)
                .with_recent_states(RECENT_STREAMS),
            forwards: CommandHandler::new(store.clone()),
            cache: Arc::new(StateCache::new(100_000)),
            store,
            region: String::new(),
            regions: Arc::new(aftersales_runtime::regions::Regions::single("")),
            policies,
            programmes,
            payments,
        }
    }

    /// Runs in `region` among `regions`: devices of countries another region is
    /// home for are registered there, and written there.
    #[must_use]
    pub fn in_region(
        mut self,
        region: impl Into<String>,
        regions: Arc<aftersales_runtime::regions::Regions>,
    ) -> Self {
        self.region = region.into();
        self.regions = regions;
        self
    }

    /// The cache of device states; [`StateCache::follow`] must run for it to see
    /// other processes' writes.
    pub fn cache(&self) -> &Arc<StateCache<Device>> {
        &self.cache
    }

    pub fn store(&self) -> &AnyEventStore {
        &self.store
    }

    /// A device whose home is another region, as this region's replica holds it.
    pub async fn foreign_device(&self, key: &DeviceKey) -> AppResult<Option<ForeignDevice>> {
        Ok(crate::replica::find(&self.store, key).await?)
    }

    /// Refuses a write that only the device's home region can make (one that
    /// must be answered at once: a payment, an owner's consent), naming it.
    async fn home_only(&self, key: &DeviceKey, error: Error) -> Error {
        if error.kind() != aftersales_core::ErrorKind::NotFound {
            return error;
        }
        match self.foreign_device(key).await {
            Ok(Some(device)) => Error::precondition(format!(
                "{key} is registered in {}, the only region that changes it here; ask it there",
                device.home_region
            )),
            Ok(None) => error,
            Err(other) => other,
        }
    }

    /// Runs `command` on a device registered here, or queues `write` for the
    /// home region of a device registered in another. `true`: done before.
    async fn write_or_forward(
        &self,
        key: &DeviceKey,
        command: Command,
        write: Write,
        ctx: &CommandContext,
    ) -> AppResult<(Written, bool)> {
        let missing = match self.run(key, command, ctx).await {
            Err(error) if error.kind() == aftersales_core::ErrorKind::NotFound => error,
            done => return done.map(|(state, duplicate)| (Written::Here(state), duplicate)),
        };
        let Some(device) = self.foreign_device(key).await? else {
            return Err(missing);
        };
        if let (Write::Void { .. }, Some(_)) = (&write, &device.state.voided) {
            return Err(DomainError::Precondition("the warranty is voided already".into()).into());
        }
        let duplicate = self.forward(&device, write, ctx).await?;
        Ok((Written::Forwarded(device), duplicate))
    }

    /// Queues `write` in the device's forward stream here, with its entry in
    /// the forward queue, in one transaction; `true` if it was queued before.
    async fn forward(
        &self,
        device: &ForeignDevice,
        write: Write,
        ctx: &CommandContext,
    ) -> AppResult<bool> {
        // The forward event's id is the queue entry's, and what the home
        // region's resulting facts name as their cause.
        let mut ctx = ctx.clone();
        ctx.command_id.get_or_insert_with(uuid::Uuid::now_v7);
        let command = Forward {
            key: device.state.key.clone(),
            home_region: device.home_region.clone(),
            write,
            today: ctx.now.date_naive(),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = self.store.begin().await?;
            match crate::replica::forward_in(&self.forwards, &mut tx, &command, &ctx).await {
                Ok(before) => {
                    tx.commit().await?;
                    return Ok(before);
                }
                Err(error) => {
                    let error = Error::from(error);
                    if attempt < 5 && error.kind().retry() == aftersales_core::Retry::AtOnce {
                        continue;
                    }
                    return Err(error);
                }
            }
        }
    }

    async fn run(
        &self,
        key: &DeviceKey,
        command: Command,
        ctx: &CommandContext,
    ) -> AppResult<(DeviceState, bool)> {
        let stream = stream(key)?;
        let handled = self.devices.handle(&stream, &command, ctx).await?;
        if !handled.events.is_empty() {
            self.cache.forget(&stream);
        }
        let duplicate = handled.duplicate || handled.events.is_empty();
        let state = handled
            .state
            .ok_or_else(|| DomainError::NotFound(key.to_string()))?;
        Ok((state, duplicate))
    }

    pub async fn register(&self, r: Registration, ctx: &CommandContext) -> AppResult<DeviceState> {
        CountryCode::parse("country_of_purchase", &r.country)?;
        // One writer per device: its home region, fixed here by the country of
        // purchase.
        match self.regions.home_of(&r.country) {
            Some(home) if home.name == self.region => {}
            Some(home) => {
                return Err(Error::precondition(format!(
                    "devices bought in {} are registered in their home region {}",
                    r.country, home.name
                )));
            }
            None => {
                return Err(Error::precondition(format!(
                    "no region is home for {} in the region directory",
                    r.country
                )));
            }
        }
        if let Some(device) = self.foreign_device(&r.key).await? {
            return Err(Error::already_exists(format!(
                "{} is registered in {}",
                r.key, device.home_region
            )));
        }
        let terms = match self.policies.in_force(&r.country, r.purchase_date) {
            Some(terms) => terms.clone(),
            None if self.policies.countries().any(|c| c == r.country) => {
                return Err(DomainError::invalid(
                    "purchase_date",
                    format!("is before any {} policy", r.country),
                )
                .into());
            }
            None => {
                return Err(DomainError::invalid(
                    "country_of_purchase",
                    format!("we have no warranty policy for {}", r.country),
                )
                .into());
            }
        };
        let command = Command::Register {
            key: r.key.clone(),
            model: r.model,
            purchase_date: r.purchase_date,
            country: r.country,
            channel: r.channel,
            customer_id: r.customer_id,
            terms,
            proof: r.proof,
            activation_date: r.activation_date,
            today: ctx.now.date_naive(),
        };
        let registered = self.run(&r.key, command, ctx).await?.0;
        // A programme already running tells the owner at once; should this
        // append fail, the sweep does it.
        let news = self.programmes.news_for(&registered, ctx.now.date_naive());
        if news.is_empty() {
            return Ok(registered);
        }
        let command = Command::Enrol {
            programmes: news,
            today: ctx.now.date_naive(),
        };
        Ok(self.run(&r.key, command, ctx).await?.0)
    }

    /// Tells the owners of the devices a running programme affects and has not
    /// recorded yet (registered before it began): each device is enrolled once,
    /// whatever runs the sweep again. How many were enrolled now.
    pub async fn enrol_affected(&self, ctx: &CommandContext) -> AppResult<usize> {
        const PAGE: i64 = 500;
        let today = ctx.now.date_naive();
        let mut enrolled = 0;
        for programme in self.programmes.all().iter().filter(|p| p.running_on(today)) {
            for model in &programme.models {
                let mut after = String::new();
                loop {
                    let page =
                        projections::not_enrolled(&self.store, &programme.id, model, &after, PAGE)
                            .await?;
                    let Some(last) = page.last() else { break };
                    after.clone_from(&last.stream_id);
                    for row in page.iter().filter(|row| {
                        programme.names(&row.key, &row.model)
                            && programme.countries.contains(&row.country)
                    }) {
                        let command = Command::Enrol {
                            programmes: vec![programme.clone()],
                            today,
                        };
                        match self.run(&row.key, command, ctx).await {
                            Ok((_, false)) => enrolled += 1,
                            Ok((_, true)) => {}
                            // The next sweep tries again; the others go on.
                            Err(error) => tracing::warn!(
                                %error,
                                programme = programme.id,
                                "enrolling a device in a programme failed"
                            ),
                        }
                    }
                }
            }
        }
        Ok(enrolled)
    }

    /// Every programme with its progress: devices affected and remedied.
    pub async fn programmes(&self) -> AppResult<Vec<(Programme, u64, u64)>> {
        let progress = projections::programme_progress(&self.store).await?;
        Ok(self
            .programmes
            .all()
            .iter()
            .map(|p| {
                let (affected, remedied) = progress.get(&p.id).copied().unwrap_or_default();
                (p.clone(), affected, remedied)
            })
            .collect())
    }

    /// The device now, or as the log stood at `as_of`.
    pub async fn device(
        &self,
        key: &DeviceKey,
        as_of: Option<DateTime<Utc>>,
    ) -> AppResult<DeviceState> {
        let stream = stream(key)?;
        // Now: from the cache when it is there. Then: replayed from the log.
        let loaded = match as_of {
            Some(at) => self.devices.load_as_of(&stream, at).await?,
            None => self.cache.load(&self.devices, &stream).await?,
        };
        loaded
            .state
            .ok_or_else(|| DomainError::NotFound(key.to_string()).into())
    }

    /// Decides coverage for the fault date, on the log as it stood at the
    /// knowledge time (now by default). With `record`, the decision is appended
    /// to the device's history; only what is known now can be recorded.
    pub async fn check_coverage(
        &self,
        key: &DeviceKey,
        fault: FaultCategory,
        asked: &Asked,
        record: bool,
        ctx: &CommandContext,
    ) -> AppResult<Decided> {
        let times = asked.times(ctx.now)?;
        if record && times.cut {
            return Err(DomainError::invalid(
                "known_at",
                "a decision is recorded on what is known now; leave known_at unset",
            )
            .into());
        }
        // A decision kept for the record is made on the log itself, not the cache.
        let device = if record {
            self.devices
                .load(&stream(key)?)
                .await?
                .state
                .ok_or_else(|| DomainError::NotFound(key.to_string()))
                .map_err(Error::from)
        } else {
            self.device(key, times.cut.then_some(times.known_at)).await
        };
        let (device, replica) = match device {
            Ok(device) => (device, None),
            Err(error) => {
                // Another region's device, decided here under its home policy
                // on what the replica holds now; only its home records decisions.
                let replica = match self.foreign_device(key).await? {
                    Some(replica) if error.kind() == aftersales_core::ErrorKind::NotFound => {
                        replica
                    }
                    _ => return Err(error),
                };
                if times.cut {
                    return Err(Error::precondition(format!(
                        "{key} is registered in {}: ask its history there",
                        replica.home_region
                    )));
                }
                (replica.state.clone(), Some(replica))
            }
        };
        let mut decision = coverage::decide(
            &device,
            fault,
            times.fault_date,
            asked.serviced_in.as_deref(),
            self.programmes.all(),
        );
        self.cite(&device, &mut decision);
        if record && replica.is_none() {
            let command = Command::RecordDecision {
                fault,
                decision: decision.clone(),
                today: ctx.now.date_naive(),
            };
            self.run(key, command, ctx).await?;
        }
        Ok(Decided {
            decision,
            times,
            replica,
        })
    }

    /// Terms recorded before policies named their sources carry none: the
    /// source is taken from the same policy version in the table, if it is there.
    fn cite(&self, device: &DeviceState, decision: &mut Decision) {
        let Some(rule) = decision.rule.as_mut().filter(|r| r.source.is_none()) else {
            return;
        };
        let terms = &device.terms;
        rule.source = self
            .policies
            .in_force(&device.country, terms.effective_from)
            .filter(|t| t.policy_id == terms.policy_id && t.effective_from == terms.effective_from)
            .and_then(|t| t.source_of(&rule.figure))
            .cloned();
    }

    pub async fn check_accessory_coverage(
        &self,
        key: &DeviceKey,
        serial: &str,
        fault: FaultCategory,
        asked: &Asked,
        now: DateTime<Utc>,
    ) -> AppResult<(Decision, Times)> {
        let times = asked.times(now)?;
        let device = self
            .device(key, times.cut.then_some(times.known_at))
            .await?;
        let mut decision = coverage::decide_accessory(&device, serial, fault, times.fault_date)
            .ok_or_else(|| DomainError::NotFound(format!("accessory {serial}")))?;
        self.cite(&device, &mut decision);
        Ok((decision, times))
    }

    /// Orders `plan_id`, paid with `payment_method`: the payment is created at
    /// the provider (once per command, by its idempotency key), and the plan is
    /// active once it settles ([`Warranty::settle_payments`]).
    pub async fn purchase_plan(
        &self,
        key: &DeviceKey,
        plan_id: &str,
        payment_method: &str,
        ctx: &CommandContext,
    ) -> AppResult<DeviceState> {
        let today = ctx.now.date_naive();
        // Decided once without a payment, so nothing is charged for a plan
        // that cannot be bought; decided again, with it, when recorded. Paid
        // for at once, so only at home.
        let current = match self.device(key, None).await {
            Ok(current) => current,
            Err(error) => return Err(self.home_only(key, error).await),
        };
        let events = Device::decide(
            &Some(current),
            &Command::PurchasePlan {
                plan_id: plan_id.to_owned(),
                payment_id: String::new(),
                today,
            },
        )?;
        let Some(crate::domain::Event::PlanOrdered {
            price_minor,
            currency,
            ..
        }) = events.first()
        else {
            return Err(DomainError::Precondition(format!(
                "the payment for plan {plan_id} is pending"
            ))
            .into());
        };
        let idempotency_key = match ctx.command_id {
            Some(id) => format!("{key}:{id}"),
            None => format!("{key}:{plan_id}:{}", ctx.correlation_id),
        };
        let payment = self
            .payments
            .create(&PaymentRequest {
                idempotency_key,
                amount_minor: *price_minor,
                currency: currency.clone(),
                description: format!("Extended warranty {plan_id}"),
                method: payment_method.to_owned(),
            })
            .await
            .map_err(Error::from)?;
        let command = Command::PurchasePlan {
            plan_id: plan_id.to_owned(),
            payment_id: payment.id,
            today,
        };
        Ok(self.run(key, command, ctx).await?.0)
    }

    /// Asks the provider about every plan waiting for its payment, and records
    /// each that settled: the plan active, or its payment failed. How many settled.
    pub async fn settle_payments(&self, ctx: &CommandContext) -> AppResult<usize> {
        let sql = "SELECT stream_id, payment_id FROM warranty_pending_payments \
                   ORDER BY ordered_on LIMIT 500";
        let pending: Vec<(String, String)> = aftersales_eventstore::on_read_pool!(&self.store, pool => {
            sqlx::query_as(sql)
                .fetch_all(pool)
                .await
                .map_err(aftersales_eventstore::StoreError::from)?
        });
        let mut settled = 0;
        for (stream_id, payment_id) in pending {
            let payment = match self.payments.get(&payment_id).await {
                Ok(payment) => payment,
                Err(error) => {
                    tracing::warn!(%error, payment_id, "asking about a payment failed");
                    continue;
                }
            };
            if self
                .settle(&stream_id, &payment_id, payment.status, ctx)
                .await?
            {
                settled += 1;
            }
        }
        Ok(settled)
    }

    /// Applies what the provider's webhook says about `payment_id`: `true` if
    /// that settled its plan now, `false` if there was nothing to do (under way,
    /// or settled before: a redelivery, or news out of order). NOT_FOUND while
    /// the payment is not known yet (the provider tries again).
    pub async fn settle_from_webhook(
        &self,
        payment_id: &str,
        status: PaymentStatus,
        ctx: &CommandContext,
    ) -> AppResult<bool> {
        let stream_id = projections::payment_stream(&self.store, payment_id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("payment {payment_id}")))?;
        self.settle(&stream_id, payment_id, status, ctx).await
    }

    /// Settles the plan `payment_id` pays for on the device `stream_id`, once
    /// (the decider applies an outcome only to the payment it waits for).
    async fn settle(
        &self,
        stream_id: &str,
        payment_id: &str,
        status: PaymentStatus,
        ctx: &CommandContext,
    ) -> AppResult<bool> {
        let settlement = match status {
            PaymentStatus::Pending => return Ok(false),
            PaymentStatus::Succeeded => Settlement::Paid,
            PaymentStatus::Failed { reason } => Settlement::Failed { reason },
        };
        let Some(key) = DeviceKey::from_stream_name(stream_id) else {
            return Ok(false);
        };
        let command = Command::SettlePlanPayment {
            payment_id: payment_id.to_owned(),
            settlement,
        };
        Ok(!self.run(&key, command, ctx).await?.1)
    }

    /// Cancels the active plan; what its terms give back is refunded at the
    /// provider on the plan's payment (once per payment, by its key) before the
    /// cancellation is recorded with the refund's id.
    pub async fn cancel_plan(&self, key: &DeviceKey, ctx: &CommandContext) -> AppResult<Cancelled> {
        let today = ctx.now.date_naive();
        let current = match self.device(key, None).await {
            Ok(current) => current,
            Err(error) => return Err(self.home_only(key, error).await),
        };
        // Decided once first, so a refused cancellation refunds nothing.
        let decided = Device::decide(
            &Some(current.clone()),
            &Command::CancelPlan {
                today,
                refund_id: None,
            },
        )?;
        let refund_id = match (decided.first(), &current.plan) {
            (
                Some(crate::domain::Event::ExtendedWarrantyCancelled { refund_minor, .. }),
                Some(ActivePlan {
                    payment_id: Some(payment_id),
                    ..
                }),
            ) if *refund_minor > 0 => Some(
                self.payments
                    .refund(&RefundRequest {
                        idempotency_key: format!("plan-refund:{payment_id}"),
                        payment_id: payment_id.clone(),
                        amount_minor: *refund_minor,
                    })
                    .await
                    .map_err(Error::from)?
                    .id,
            ),
            _ => None,
        };
        let command = Command::CancelPlan { today, refund_id };
        let stream = stream(key)?;
        let handled = self.devices.handle(&stream, &command, ctx).await?;
        self.cache.forget(&stream);
        let mut cancelled = Cancelled {
            state: handled
                .state
                .ok_or_else(|| DomainError::NotFound(key.to_string()))?,
            refund_minor: 0,
            currency: String::new(),
            refund_id: None,
        };
        for event in &handled.events {
            if let crate::domain::Event::ExtendedWarrantyCancelled {
                refund_minor,
                currency,
                refund_id,
                ..
            } = event
            {
                cancelled.refund_minor = *refund_minor;
                cancelled.currency.clone_from(currency);
                cancelled.refund_id.clone_from(refund_id);
            }
        }
        Ok(cancelled)
    }

    pub async fn register_accessory(
        &self,
        key: &DeviceKey,
        serial: &str,
        kind: AccessoryKind,
        purchase_date: NaiveDate,
        replaces: Option<String>,
        ctx: &CommandContext,
    ) -> AppResult<DeviceState> {
        let command = Command::RegisterAccessory {
            serial: serial.trim().to_owned(),
            kind,
            purchase_date,
            replaces,
            today: ctx.now.date_naive(),
        };
        match self.run(key, command, ctx).await {
            Ok((state, _)) => Ok(state),
            Err(error) => Err(self.home_only(key, error).await),
        }
    }

    /// Voids the warranty; for a device of another region, the void is queued
    /// for its home region.
    pub async fn void(
        &self,
        key: &DeviceKey,
        reason: &str,
        evidence: Vec<String>,
        ctx: &CommandContext,
    ) -> AppResult<Written> {
        let command = Command::Void {
            reason: reason.to_owned(),
            evidence: evidence.clone(),
            today: ctx.now.date_naive(),
        };
        let write = Write::Void {
            reason: reason.to_owned(),
            evidence,
        };
        Ok(self.write_or_forward(key, command, write, ctx).await?.0)
    }

    /// A new owner is the owner's consent, given at home: not queued.
    pub async fn transfer(
        &self,
        key: &DeviceKey,
        to: &str,
        ctx: &CommandContext,
    ) -> AppResult<DeviceState> {
        let command = Command::TransferOwnership { to: to.to_owned() };
        match self.run(key, command, ctx).await {
            Ok((state, _)) => Ok(state),
            Err(error) => Err(self.home_only(key, error).await),
        }
    }

    /// Records a claim once per repair order, decided for the day the fault
    /// appeared (today if unknown); `true` if it was recorded (or queued)
    /// before. A claim for a device of another region is queued for its home
    /// region, which decides and records it once.
    pub async fn record_claim(
        &self,
        key: &DeviceKey,
        repair_order_id: &str,
        fault: FaultCategory,
        fault_date: Option<NaiveDate>,
        ctx: &CommandContext,
    ) -> AppResult<(Written, bool)> {
        let today = ctx.now.date_naive();
        let command = Command::RecordClaim {
            repair_order_id: repair_order_id.trim().to_owned(),
            fault,
            fault_date: fault_date.unwrap_or(today),
            today,
            programmes: self.programmes.all().to_vec(),
        };
        let write = Write::Claim {
            repair_order_id: repair_order_id.trim().to_owned(),
            fault,
            fault_date: fault_date.unwrap_or(today),
        };
        self.write_or_forward(key, command, write, ctx).await
    }

    /// Every event of the device's history recorded up to `as_of`, with hashes.
    pub async fn history(
        &self,
        key: &DeviceKey,
        from_version: u64,
        limit: usize,
    ) -> AppResult<Vec<RecordedEvent>> {
        let events = self
            .store
            .read_stream(&stream(key)?, from_version, limit)
            .await?;
        if events.is_empty() && from_version == 1 {
            return Err(DomainError::NotFound(key.to_string()).into());
        }
        Ok(events)
    }

    /// Recomputes the device's hash chain; with a trusted head kept elsewhere, a
    /// removed tail shows too.
    pub async fn verify(
        &self,
        key: &DeviceKey,
        trusted: Option<StreamHead>,
    ) -> AppResult<VerifyReport> {
        let stream = stream(key)?;
        if self.store.stream_head(&stream).await?.is_none() && trusted.is_none() {
            return Err(DomainError::NotFound(key.to_string()).into());
        }
        Ok(self.store.verify_stream(&stream, trusted).await?)
    }

    /// The version of the device's snapshot when it disagrees with the events
    /// it was taken of (a snapshot is not covered by the hash chain).
    pub async fn verify_snapshot(&self, key: &DeviceKey) -> AppResult<Option<u64>> {
        Ok(self.devices.verify_snapshot(&stream(key)?).await?)
    }

    pub async fn devices_of_customer(
        &self,
        customer_id: &str,
        after: &str,
        limit: i64,
    ) -> AppResult<Vec<DeviceRow>> {
        Ok(projections::devices_of_customer(&self.store, customer_id, after, limit).await?)
    }

    pub async fn expiring(
        &self,
        today: NaiveDate,
        days: u32,
        limit: i64,
    ) -> AppResult<Vec<DeviceRow>> {
        let until = crate::domain::add_days(today, days);
        Ok(projections::expiring_between(&self.store, today, until, limit).await?)
    }
}

/// Warranty as the merchant of extended plans: the provider's webhook settles
/// their payments.
impl aftersales_payments::webhook::Merchant for Warranty {
    async fn settle(
        &self,
        payment_id: &str,
        outcome: aftersales_payments::Outcome,
        ctx: &CommandContext,
    ) -> AppResult<bool> {
        match outcome {
            aftersales_payments::Outcome::Settled(status) => {
                self.settle_from_webhook(payment_id, status, ctx).await
            }
            // A plan's refund is recorded, with its id, when it is cancelled.
            aftersales_payments::Outcome::Refunded { .. } => Ok(false),
        }
    }
}

/// A chain break in words, and the first version it concerns.
pub fn describe_break(problem: &ChainBreak) -> (String, u64) {
    match problem {
        ChainBreak::HashMismatch { version, .. } => (
            format!("event {version} does not match its hash: edited or reordered"),
            *version,
        ),
        ChainBreak::Gap { expected, found } => (
            format!("event {expected} is missing (found {found})"),
            *expected,
        ),
        ChainBreak::HeadMismatch { expected, .. } => (
            "the history does not end in the trusted head: events were removed or changed"
                .to_string(),
            expected.version,
        ),
    }
}
