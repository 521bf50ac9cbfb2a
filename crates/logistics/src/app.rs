//! The logistics use cases: shipments through the decider with their carrier's
//! label, scans found by tracking number, custody per repair order, stalled
//! parcels found by a sweep.

use std::sync::Arc;

use aftersales_core::{Error, ErrorKind, SharedClock};
use aftersales_eventstore::{
    AnyEventStore, CommandContext, CommandHandler, EventStore as _, RECENT_STREAMS, StoreError,
    StoreTransaction, StreamId, on_connection, on_read_pool,
};
use chrono::{DateTime, Utc};
use sqlx::Row as _;

use crate::carrier::Carriers;
use crate::carrier::sandbox::{self, SandboxCarrier};
use crate::domain::DomainError;
use crate::domain::custody::{self, Custody, OrderLogistics, OrderState};
use crate::domain::depots::Depots;
use crate::domain::shipment::{
    Address, Command, Direction, Parcel, Purpose, Shipment, ShipmentInfo, ShipmentState,
};
use crate::domain::tracking::{Scan, Status, resolve_tracking_number};
use crate::projections::timestamp;

/// Why a use case failed: the shared error, its kind saying the gRPC code.
pub type AppResult<T> = Result<T, Error>;

pub fn shipment_stream(shipment_id: &str) -> AppResult<StreamId> {
    StreamId::parse(format!("shipment-{shipment_id}"))
        .map_err(|e| DomainError::invalid("shipment_id", e.to_string()).into())
}

pub fn order_stream(order_id: &str) -> AppResult<StreamId> {
    StreamId::parse(format!("order-{order_id}"))
        .map_err(|e| DomainError::invalid("repair_order_id", e.to_string()).into())
}

/// What a caller asks to ship.
#[derive(Debug, Clone)]
pub struct NewShipment {
    /// Whose parcel it is, when known: its addresses are sealed for them.
    pub customer_id: Option<String>,
    pub direction: Direction,
    pub purpose: Purpose,
    pub from: Address,
    pub to: Address,
    pub parcel: Parcel,
    /// `None` picks the default carrier.
    pub carrier: Option<String>,
    /// The depot at its depot end, by id, when it has one.
    pub depot: Option<String>,
}

/// A phone in a padded box, for parcels the services create themselves.
pub const PHONE_PARCEL: Parcel = Parcel {
    weight_grams: 450,
    length_mm: 220,
    width_mm: 140,
    height_mm: 70,
};

/// A shipment as its log leaves it.
#[derive(Debug, Clone)]
pub struct ShipmentView {
    pub state: ShipmentState,
    pub version: u64,
}

/// What a scan did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOutcome {
    pub shipment_id: String,
    pub duplicate: bool,
    pub status: Option<Status>,
}

/// The logistics service's use cases.
#[derive(Debug, Clone)]
pub struct Logistics {
    clock: SharedClock,
    store: AnyEventStore,
    shipments: CommandHandler<Shipment, AnyEventStore>,
    orders: CommandHandler<OrderLogistics, AnyEventStore>,
    carriers: Carriers,
    depots: Arc<Depots>,
}

impl Logistics {
    pub fn new(
        store: AnyEventStore,
        carriers: Carriers,
        depots: Depots,
        clock: SharedClock,
    ) -> Self {
        Self {
            clock,
            shipments: CommandHandler::new(store.clone()).with_recent_states(RECENT_STREAMS),
            orders: CommandHandler::new(store.clone()).with_recent_states(RECENT_STREAMS),
            store,
            carriers,
            depots: Arc::new(depots),
        }
    }

    /// The time, as this service reads it (the system's, or a test's).
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn store(&self) -> &AnyEventStore {
        &self.store
    }

    pub fn depots(&self) -> &Depots {
        &self.depots
    }

    /// Creates a shipment and its label in `tx`: the label is asked of the
    /// carrier first (carriers are idempotent by shipment id), so a shipment
    /// never exists without one.
    pub async fn create_shipment_in(
        &self,
        tx: &mut StoreTransaction,
        shipment_id: &str,
        new: NewShipment,
        ctx: &CommandContext,
    ) -> AppResult<ShipmentView> {
        let carrier_name = new
            .carrier
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| self.carriers.default_name().to_owned());
        let carrier = self.carriers.get(&carrier_name).ok_or_else(|| {
            DomainError::invalid(
                "carrier",
                format!("{carrier_name:?} is not a configured carrier"),
            )
        })?;
        let customer_id = match new.customer_id {
            Some(customer) => Some(customer),
            None => match &new.purpose {
                Purpose::RepairOrder(order) => self.order(order).await?.customer_id,
                Purpose::AccessoryReplacement(_) => None,
            },
        };
        let info = ShipmentInfo {
            customer_id,
            shipment_id: shipment_id.to_owned(),
            direction: new.direction,
            purpose: new.purpose,
            from: new.from,
            to: new.to,
            parcel: new.parcel,
            carrier: carrier_name,
            depot: new.depot,
        };
        let stream = shipment_stream(shipment_id)?;
        // Validate before asking the carrier for anything.
        let label = carrier.issue_label(&info).await?;
        let command = Command::Create {
            info,
            label,
            now: ctx.now,
        };
        let handled = self.shipments.handle_in(tx, &stream, &command, ctx).await?;
        let state = handled
            .state
            .ok_or_else(|| Error::internal("a created shipment has no state"))?;
        if let Some(label) = &state.label {
            let issued = timestamp(state.label_issued_at.unwrap_or(ctx.now));
            let sql = "INSERT INTO tracking_numbers (carrier, tracking_number, shipment_id, issued_at) \
                       VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
            on_connection!(tx.connection(), c => {
                sqlx::query(sql)
                    .bind(state.info.carrier.clone())
                    .bind(label.tracking_number.clone())
                    .bind(shipment_id.to_owned())
                    .bind(issued)
                    .execute(c)
                    .await
                    .map_err(StoreError::from)?;
            });
        }
        Ok(ShipmentView {
            state,
            version: handled.version,
        })
    }

    /// Creates a shipment on its own. A repeated `x-command-id` gives the same
    /// shipment.
    pub async fn create_shipment(
        &self,
        new: NewShipment,
        ctx: &CommandContext,
    ) -> AppResult<ShipmentView> {
        let shipment_id = ctx.derived_id(b"shipment").to_string();
        let mut tx = self.store.begin().await?;
        let view = self
            .create_shipment_in(&mut tx, &shipment_id, new, ctx)
            .await?;
        tx.commit().await?;
        Ok(view)
    }

    pub async fn shipment(&self, shipment_id: &str) -> AppResult<ShipmentView> {
        let loaded = self.shipments.load(&shipment_stream(shipment_id)?).await?;
        let state = loaded
            .state
            .ok_or_else(|| DomainError::NotFound(format!("shipment {shipment_id}")))?;
        Ok(ShipmentView {
            state,
            version: loaded.version,
        })
    }

    async fn run(
        &self,
        shipment_id: &str,
        command: &Command,
        ctx: &CommandContext,
    ) -> AppResult<(ShipmentView, bool)> {
        let handled = self
            .shipments
            .handle(&shipment_stream(shipment_id)?, command, ctx)
            .await?;
        let changed = !handled.events.is_empty();
        let state = handled
            .state
            .ok_or_else(|| DomainError::NotFound(format!("shipment {shipment_id}")))?;
        Ok((
            ShipmentView {
                state,
                version: handled.version,
            },
            changed,
        ))
    }

    pub async fn cancel(
        &self,
        shipment_id: &str,
        reason: String,
        ctx: &CommandContext,
    ) -> AppResult<ShipmentView> {
        Ok(self
            .run(shipment_id, &Command::Cancel { reason }, ctx)
            .await?
            .0)
    }

    /// The shipment a carrier's tracking number stands for at `occurred_at`.
    pub async fn find_by_tracking_number(
        &self,
        carrier: &str,
        tracking_number: &str,
        occurred_at: DateTime<Utc>,
    ) -> AppResult<String> {
        let sql = "SELECT shipment_id, issued_at FROM tracking_numbers \
                   WHERE carrier = $1 AND tracking_number = $2";
        let rows: Vec<(String, String)> = on_read_pool!(&self.store, pool => {
            sqlx::query(sql)
                .bind(carrier)
                .bind(tracking_number)
                .fetch_all(pool)
                .await.map_err(StoreError::from)?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, sqlx::Error>>().map_err(StoreError::from)?
        });
        let labelled: Vec<(String, DateTime<Utc>)> = rows
            .into_iter()
            .map(|(id, at)| {
                DateTime::parse_from_rfc3339(&at)
                    .map(|t| (id, t.with_timezone(&Utc)))
                    .map_err(|e| Error::internal(format!("tracking_numbers.issued_at: {e}")))
            })
            .collect::<AppResult<_>>()?;
        resolve_tracking_number(&labelled, occurred_at)
            .map(str::to_owned)
            .ok_or_else(|| {
                DomainError::NotFound(format!(
                    "tracking number {tracking_number} of carrier {carrier}"
                ))
                .into()
            })
    }

    /// A carrier scan, by tracking number: from the webhook, gRPC or the sandbox.
    pub async fn record_scan(
        &self,
        carrier: &str,
        tracking_number: &str,
        scan: Scan,
        ctx: &CommandContext,
    ) -> AppResult<ScanOutcome> {
        let shipment_id = self
            .find_by_tracking_number(carrier, tracking_number, scan.occurred_at)
            .await?;
        let (view, changed) = self
            .run(&shipment_id, &Command::RecordScan(scan), ctx)
            .await?;
        Ok(ScanOutcome {
            shipment_id,
            duplicate: !changed,
            status: view.state.tracking.status(),
        })
    }

    /// Every shipment of a repair order, oldest first.
    pub async fn shipments_of_order(&self, order_id: &str) -> AppResult<Vec<ShipmentView>> {
        let sql = "SELECT shipment_id FROM shipments WHERE repair_order_id = $1 \
                   ORDER BY created_at, shipment_id";
        let ids: Vec<String> = on_read_pool!(&self.store, pool => {
            sqlx::query_scalar(sql).bind(order_id).fetch_all(pool).await.map_err(StoreError::from)?
        });
        let mut views = Vec::with_capacity(ids.len());
        for id in ids {
            views.push(self.shipment(&id).await?);
        }
        Ok(views)
    }

    /// What logistics knows of a repair order.
    pub async fn order(&self, order_id: &str) -> AppResult<OrderState> {
        Ok(self.orders.load(&order_stream(order_id)?).await?.state)
    }

    /// What logistics knows of a repair order as `tx` sees it: an order opened
    /// by an earlier event of the same batch included.
    pub async fn order_in(
        &self,
        tx: &mut StoreTransaction,
        order_id: &str,
    ) -> AppResult<OrderState> {
        Ok(self
            .orders
            .load_in(tx, &order_stream(order_id)?)
            .await?
            .state)
    }

    pub fn orders(&self) -> &CommandHandler<OrderLogistics, AnyEventStore> {
        &self.orders
    }

    pub fn shipments(&self) -> &CommandHandler<Shipment, AnyEventStore> {
        &self.shipments
    }

    /// Who held the order's device, from repair's steps and the carrier's scans.
    pub async fn custody(&self, order_id: &str) -> AppResult<Vec<Custody>> {
        let order = self.order(order_id).await?;
        let shipments = self.shipments_of_order(order_id).await?;
        if !order.known && shipments.is_empty() {
            return Err(DomainError::NotFound(format!("repair order {order_id}")).into());
        }
        let mut evidence = order.evidence;
        for view in &shipments {
            let info = &view.state.info;
            let depot = match info.direction {
                Direction::Inbound => &info.to.recipient,
                Direction::Outbound => &info.from.recipient,
            };
            for scan in view.state.tracking.scans() {
                if let Some(holder) =
                    custody::holder_after_scan(info.direction, scan.status, &info.carrier, depot)
                {
                    evidence.push(Custody {
                        at: scan.occurred_at,
                        holder,
                        evidence: scan.status.as_str().to_owned(),
                        location: scan.location.clone(),
                        shipment_id: Some(info.shipment_id.clone()),
                    });
                }
            }
        }
        Ok(custody::timeline(evidence))
    }

    /// Raises `ShipmentStalled` for every live shipment not heard of in
    /// `silent_for`. Returns how many were raised.
    pub async fn sweep_stalled(
        &self,
        silent_for: chrono::Duration,
        ctx: &CommandContext,
    ) -> AppResult<usize> {
        let cutoff = timestamp(ctx.now - silent_for);
        let sql = "SELECT shipment_id FROM shipments \
                   WHERE active = 1 AND stalled = 0 AND last_activity_at < $1";
        let ids: Vec<String> = on_read_pool!(&self.store, pool => {
            sqlx::query_scalar(sql).bind(cutoff).fetch_all(pool).await.map_err(StoreError::from)?
        });
        let mut raised = 0;
        for id in ids {
            let command = Command::MarkStalled {
                now: ctx.now,
                silent_for,
            };
            match self.run(&id, &command, ctx).await {
                Ok((_, true)) => raised += 1,
                // Heard of since the read model was written, or already raised.
                Ok((_, false)) => {}
                Err(e) if e.kind() == ErrorKind::FailedPrecondition => {}
                Err(e) => return Err(e),
            }
        }
        Ok(raised)
    }

    /// Plays `script` again on every live sandbox parcel, as a carrier keeps
    /// scanning whatever happened to us: scans already recorded come back as
    /// duplicates (scripted carrier event ids are fixed), the missing ones land.
    /// For a restart after a crash cut scripts short. Returns how many parcels.
    pub async fn resume_sandbox(
        &self,
        script: &str,
        step_millis: u32,
        ctx: &CommandContext,
    ) -> AppResult<usize> {
        let sql = "SELECT shipment_id FROM shipments WHERE active = 1 AND carrier = $1";
        let ids: Vec<String> = on_read_pool!(&self.store, pool => {
            sqlx::query_scalar(sql).bind(sandbox::NAME).fetch_all(pool).await.map_err(StoreError::from)?
        });
        for id in &ids {
            let view = self.shipment(id).await?;
            self.play_sandbox(&view, script, step_millis, ctx.clone())?;
        }
        Ok(ids.len())
    }

    /// Plays a sandbox script on a shipment in the background: each scan goes
    /// through [`Self::record_scan`] like a carrier's. Returns the scans to come.
    pub fn play_sandbox(
        &self,
        view: &ShipmentView,
        script_name: &str,
        step_millis: u32,
        ctx: CommandContext,
    ) -> AppResult<usize> {
        let info = &view.state.info;
        if info.carrier != sandbox::NAME {
            return Err(DomainError::Precondition(format!(
                "shipment {} is with carrier {}, not the sandbox",
                info.shipment_id, info.carrier
            ))
            .into());
        }
        let label = view.state.label.clone().ok_or_else(|| {
            DomainError::Precondition(format!("shipment {} has no label", info.shipment_id))
        })?;
        let name = if script_name.is_empty() {
            "delivered"
        } else {
            script_name
        };
        let steps = sandbox::script(name).ok_or_else(|| {
            DomainError::invalid(
                "script",
                format!("unknown; one of {}", sandbox::SCRIPTS.join(", ")),
            )
        })?;
        let count = steps.len();
        let app = self.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            for (step, scripted) in steps.into_iter().enumerate() {
                if step > 0 || step_millis > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(u64::from(step_millis)))
                        .await;
                }
                let now = app.now();
                let scan = Scan {
                    carrier_event_id: sandbox::scripted_event_id(
                        &label.tracking_number,
                        &name,
                        step,
                    ),
                    status: scripted.status,
                    location: scripted.location.to_owned(),
                    description: scripted.description.to_owned(),
                    occurred_at: now,
                    recorded_at: now,
                };
                let ctx = CommandContext {
                    command_id: None,
                    actor: format!("carrier:{}", sandbox::NAME),
                    now,
                    ..ctx.clone()
                };
                if let Err(error) = app
                    .record_scan(sandbox::NAME, &label.tracking_number, scan, &ctx)
                    .await
                {
                    tracing::warn!(%error, tracking_number = %label.tracking_number, "sandbox scan refused; the script stops");
                    return;
                }
            }
        });
        Ok(count)
    }
}

/// The built-in carriers: the sandbox, with `tracking_digits` digit numbers.
pub fn builtin_carriers(tracking_digits: u32) -> Result<Carriers, String> {
    Carriers::new(
        vec![Arc::new(SandboxCarrier::new(tracking_digits)?)],
        sandbox::NAME,
    )
}
