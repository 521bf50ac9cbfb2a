//! The warranty use cases over the event store: commands through the device
//! decider, questions answered from the log (as of any time) or from projections.

use std::sync::Arc;

use aftersales_core::types::CountryCode;
use aftersales_core::{Error, ErrorKind};
use aftersales_eventstore::Decider as _;
use aftersales_eventstore::{
    AnyEventStore, ChainBreak, CommandContext, CommandHandler, EventStore as _, RecordedEvent,
    StateCache, StreamHead, StreamId, VerifyReport, read_whole_stream,
};
use aftersales_payments::{PaymentError, PaymentProvider, PaymentRequest, PaymentStatus};
use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::coverage::{self, Decision};
use crate::domain::device::{Command, Device, DeviceState, PurchaseProof, Settlement};
use crate::domain::{
    AccessoryKind, DeviceKey, DomainError, FaultCategory, PolicyTable, SalesChannel,
};
use crate::projections::{self, DeviceRow};

/// Why a use case failed: the shared error, its kind saying the gRPC code.
pub type AppResult<T> = Result<T, Error>;

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
}

/// What the provider's refusal means to a caller.
fn payment_error(error: PaymentError) -> Error {
    match error {
        PaymentError::Invalid(why) => DomainError::invalid("payment_method", why).into(),
        PaymentError::KeyReused(key) => Error::already_exists(format!(
            "the payment key {key} was used for another payment"
        )),
        PaymentError::NotFound(id) => Error::new(
            ErrorKind::Internal,
            format!("the provider does not know payment {id}"),
        ),
        PaymentError::Unavailable(why) => Error::unavailable(why),
    }
}

/// The warranty service's use cases.
#[derive(Debug, Clone)]
pub struct Warranty {
    store: AnyEventStore,
    devices: CommandHandler<Device, AnyEventStore>,
    /// Current device states for questions; commands always load fresh.
    cache: Arc<StateCache<Device>>,
    policies: Arc<PolicyTable>,
    payments: Arc<dyn PaymentProvider>,
}

fn stream(key: &DeviceKey) -> AppResult<StreamId> {
    StreamId::parse(key.stream_name())
        .map_err(|e| DomainError::invalid("device_id", e.to_string()).into())
}

impl Warranty {
    pub fn new(
        store: AnyEventStore,
        policies: Arc<PolicyTable>,
        payments: Arc<dyn PaymentProvider>,
    ) -> Self {
        Self {
            devices: CommandHandler::new(store.clone()).with_snapshots_every(100),
            cache: Arc::new(StateCache::new(100_000)),
            store,
            policies,
            payments,
        }
    }

    /// The cache of device states; [`StateCache::follow`] must run for it to see
    /// other processes' writes.
    pub fn cache(&self) -> &Arc<StateCache<Device>> {
        &self.cache
    }

    pub fn store(&self) -> &AnyEventStore {
        &self.store
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
            today: ctx.now.date_naive(),
        };
        Ok(self.run(&r.key, command, ctx).await?.0)
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

    /// Decides coverage from the log as it stood at `as_of` (or now), for that day.
    /// With `record`, the decision is appended to the device's history.
    pub async fn check_coverage(
        &self,
        key: &DeviceKey,
        fault: FaultCategory,
        as_of: Option<DateTime<Utc>>,
        record: bool,
        ctx: &CommandContext,
    ) -> AppResult<Decision> {
        // A decision kept for the record is made on the log itself, not the cache.
        let device = match (record, as_of) {
            (true, None) => self
                .devices
                .load(&stream(key)?)
                .await?
                .state
                .ok_or_else(|| DomainError::NotFound(key.to_string()))?,
            _ => self.device(key, as_of).await?,
        };
        let on = as_of.unwrap_or(ctx.now).date_naive();
        let decision = coverage::decide(&device, fault, on);
        if record {
            let command = Command::RecordDecision {
                fault,
                decision: decision.clone(),
            };
            self.run(key, command, ctx).await?;
        }
        Ok(decision)
    }

    pub async fn check_accessory_coverage(
        &self,
        key: &DeviceKey,
        serial: &str,
        fault: FaultCategory,
        as_of: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> AppResult<Decision> {
        let device = self.device(key, as_of).await?;
        let on = as_of.unwrap_or(now).date_naive();
        coverage::decide_accessory(&device, serial, fault, on)
            .ok_or_else(|| DomainError::NotFound(format!("accessory {serial}")).into())
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
        // that cannot be bought; decided again, with it, when recorded.
        let current = self.device(key, None).await?;
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
            .map_err(payment_error)?;
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
            let settlement = match payment.status {
                PaymentStatus::Pending => continue,
                PaymentStatus::Succeeded => Settlement::Paid,
                PaymentStatus::Failed { reason } => Settlement::Failed { reason },
            };
            let Some(key) = DeviceKey::from_stream_name(&stream_id) else {
                continue;
            };
            let command = Command::SettlePlanPayment {
                payment_id,
                settlement,
            };
            self.run(&key, command, ctx).await?;
            settled += 1;
        }
        Ok(settled)
    }

    /// Cancels the active plan; the refund in minor units and its currency.
    pub async fn cancel_plan(
        &self,
        key: &DeviceKey,
        ctx: &CommandContext,
    ) -> AppResult<(DeviceState, i64, String)> {
        let command = Command::CancelPlan {
            today: ctx.now.date_naive(),
        };
        let stream = stream(key)?;
        let handled = self.devices.handle(&stream, &command, ctx).await?;
        self.cache.forget(&stream);
        let refund = handled.events.iter().find_map(|e| {
            if let crate::domain::Event::ExtendedWarrantyCancelled {
                refund_minor,
                currency,
                ..
            } = e
            {
                Some((*refund_minor, currency.clone()))
            } else {
                None
            }
        });
        let (refund, currency) = refund.unwrap_or((0, String::new()));
        let state = handled
            .state
            .ok_or_else(|| DomainError::NotFound(key.to_string()))?;
        Ok((state, refund, currency))
    }

    pub async fn register_accessory(
        &self,
        key: &DeviceKey,
        serial: &str,
        kind: AccessoryKind,
        purchase_date: NaiveDate,
        ctx: &CommandContext,
    ) -> AppResult<DeviceState> {
        let command = Command::RegisterAccessory {
            serial: serial.trim().to_owned(),
            kind,
            purchase_date,
            today: ctx.now.date_naive(),
        };
        Ok(self.run(key, command, ctx).await?.0)
    }

    pub async fn void(
        &self,
        key: &DeviceKey,
        reason: &str,
        evidence: Vec<String>,
        ctx: &CommandContext,
    ) -> AppResult<DeviceState> {
        let command = Command::Void {
            reason: reason.to_owned(),
            evidence,
            today: ctx.now.date_naive(),
        };
        Ok(self.run(key, command, ctx).await?.0)
    }

    pub async fn transfer(
        &self,
        key: &DeviceKey,
        to: &str,
        ctx: &CommandContext,
    ) -> AppResult<DeviceState> {
        let command = Command::TransferOwnership { to: to.to_owned() };
        Ok(self.run(key, command, ctx).await?.0)
    }

    /// Records a claim once per repair order; `true` if it was recorded before.
    pub async fn record_claim(
        &self,
        key: &DeviceKey,
        repair_order_id: &str,
        fault: FaultCategory,
        under_legal_guarantee: bool,
        ctx: &CommandContext,
    ) -> AppResult<(DeviceState, bool)> {
        let command = Command::RecordClaim {
            repair_order_id: repair_order_id.trim().to_owned(),
            fault,
            under_legal_guarantee,
            today: ctx.now.date_naive(),
        };
        self.run(key, command, ctx).await
    }

    /// Every event of the device's history recorded up to `as_of`, with hashes.
    pub async fn history(
        &self,
        key: &DeviceKey,
        as_of: Option<DateTime<Utc>>,
    ) -> AppResult<Vec<RecordedEvent>> {
        let events = read_whole_stream(&self.store, &stream(key)?).await?;
        if events.is_empty() {
            return Err(DomainError::NotFound(key.to_string()).into());
        }
        Ok(events
            .into_iter()
            .filter(|e| as_of.is_none_or(|t| e.metadata.recorded_at <= t))
            .collect())
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
