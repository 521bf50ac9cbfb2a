//! The parts use cases: price lists and quotes from the catalog, and stock
//! commands through the decider, one stream per part and location.

use std::sync::Arc;

use aftersales_core::types::{CenterId, OrderId};
use aftersales_core::{Error, SharedClock};
use aftersales_eventstore::{
    AnyEventStore, CommandContext, CommandHandler, EventStore as _, HandleError, RECENT_STREAMS,
    StoreError, StreamId, on_connection, on_read_pool,
};
use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::catalog::{Catalog, Item, Operation};
use crate::domain::prices::{Price, PriceList, PriceLists, Tax, Version, price_operation};
use crate::domain::stock::{self, Command, Restock, Stock, StockState};
use crate::domain::{DomainError, text};

/// Why a use case failed: the shared error, its kind saying the gRPC code.
pub type AppResult<T> = Result<T, Error>;

/// The stream of `part` at `location`.
pub fn stock_stream(location: &str, part: &str) -> AppResult<StreamId> {
    StreamId::parse(format!("stock-{location}/{part}"))
        .map_err(|e| DomainError::invalid("location", e.to_string()).into())
}

/// The location and part a stock stream stands for.
pub fn parse_stock_stream(stream: &str) -> Option<(&str, &str)> {
    stream.strip_prefix("stock-")?.split_once('/')
}

/// One priced line of a model's public repair price list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceListLine<'a> {
    pub operation: &'a Operation,
    pub parts: Price,
    pub labour: Price,
    pub total: Price,
}

#[derive(Debug, Clone)]
pub struct RepairPrices<'a> {
    pub model: String,
    pub list: &'a PriceList,
    pub version: &'a Version,
    pub lines: Vec<PriceListLine<'a>>,
}

/// A technician's price instead of the list's, for one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// A part number of the operation, or `labour`.
    pub line: String,
    pub net_minor_units: i64,
    pub currency: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteLine {
    pub line: String,
    pub description: String,
    pub is_labour: bool,
    pub list: Price,
    pub charged: Price,
    pub override_reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Quote<'a> {
    pub operation: &'a Operation,
    pub list: &'a PriceList,
    pub version: &'a Version,
    pub lines: Vec<QuoteLine>,
    pub total: Price,
    pub customer_pays: i64,
    /// What a covered repair would have cost the customer.
    pub covered_value: i64,
}

/// What to quote.
#[derive(Debug, Clone)]
pub struct QuoteRequest {
    pub model: String,
    pub country: String,
    pub fault: String,
    pub covered: bool,
    pub overrides: Vec<Override>,
    pub day: NaiveDate,
}

/// A part's stock at a location as its log leaves it.
#[derive(Debug, Clone)]
pub struct StockView {
    pub location: String,
    pub part_number: String,
    pub state: StockState,
    pub version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatus {
    Reserved,
    Waiting,
    None,
}

#[derive(Debug, Clone)]
pub struct ReservationView {
    pub order: String,
    pub status: ReservationStatus,
    pub quantity: u32,
    pub position: Option<usize>,
    pub expected_on: Option<NaiveDate>,
    pub consumed_serials: Vec<String>,
    pub stock: StockView,
}

/// One row of a location's stock list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockRow {
    pub location: String,
    pub part_number: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub on_order: i64,
    pub waiting: i64,
    pub reorder_point: i64,
    pub low: bool,
    pub version: i64,
}

/// A `stock_levels` row: part, on hand, reserved, on order, waiting, reorder point, low, version.
type LevelRow = (String, i64, i64, i64, i64, i64, i64, i64);

/// Commands on one stream wait for each other in this process, so a hot part
/// costs no lost append races here (other processes still race, and retry).
const LOCK_STRIPES: usize = 256;

/// The parts service's use cases.
#[derive(Debug, Clone)]
pub struct Parts {
    clock: SharedClock,
    store: AnyEventStore,
    stock: CommandHandler<Stock, AnyEventStore>,
    catalog: Arc<Catalog>,
    prices: Arc<PriceLists>,
    locks: Arc<Vec<tokio::sync::Mutex<()>>>,
}

/// The longest reason or serial kept.
const MAX_TEXT: usize = 500;
const MAX_SERIAL: usize = 64;

impl Parts {
    pub fn new(
        store: AnyEventStore,
        catalog: Catalog,
        prices: PriceLists,
        clock: SharedClock,
    ) -> Self {
        Self {
            clock,
            stock: CommandHandler::new(store.clone())
                .with_recent_states(RECENT_STREAMS)
                .with_snapshots_every(500)
                .with_max_attempts(20),
            store,
            catalog: Arc::new(catalog),
            prices: Arc::new(prices),
            locks: Arc::new(
                (0..LOCK_STRIPES)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
            ),
        }
    }

    /// The built-in catalog and price lists.
    pub fn builtin(store: AnyEventStore, clock: SharedClock) -> Result<Self, String> {
        let catalog = Catalog::builtin()?;
        let prices = PriceLists::builtin(&catalog)?;
        Ok(Self::new(store, catalog, prices, clock))
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn store(&self) -> &AnyEventStore {
        &self.store
    }

    /// The handler of stock commands; its clones share the states it remembers.
    pub fn stock_handler(&self) -> &CommandHandler<Stock, AnyEventStore> {
        &self.stock
    }

    /// The countries with a price list, as ISO codes.
    pub fn price_countries(&self) -> Vec<String> {
        self.prices.countries().map(str::to_owned).collect()
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The country's price list, if it has one.
    pub fn price_list(&self, country: &str) -> Option<&PriceList> {
        self.prices.get(country)
    }

    fn model(&self, model: &str) -> Result<&str, DomainError> {
        text("model", model, 100, true)?;
        self.catalog
            .model(model)
            .map(|m| m.name.as_str())
            .ok_or_else(|| DomainError::NotFound(format!("model {model:?} in the catalog")))
    }

    fn list_on(
        &self,
        country: &str,
        day: NaiveDate,
    ) -> Result<(&PriceList, &Version), DomainError> {
        let list = self
            .prices
            .get(country)
            .ok_or_else(|| DomainError::NotFound(format!("a price list for {country}")))?;
        let version = list.version_on(day).ok_or_else(|| {
            DomainError::NotFound(format!("a {country} price list in force on {day}"))
        })?;
        Ok((list, version))
    }

    /// A model's published repair prices in `country` on `day`.
    pub fn repair_prices(
        &self,
        model: &str,
        country: &str,
        day: NaiveDate,
    ) -> AppResult<RepairPrices<'_>> {
        let model = self.model(model)?;
        let (list, version) = self.list_on(country, day)?;
        let mut lines = Vec::new();
        for operation in self.catalog.operations_for(model) {
            let priced = price_operation(operation, version, &list.tax)?;
            lines.push(PriceListLine {
                operation,
                parts: priced.parts,
                labour: priced.labour,
                total: priced.total,
            });
        }
        Ok(RepairPrices {
            model: model.to_owned(),
            list,
            version,
            lines,
        })
    }

    /// The lines for repairing `fault`, priced from the list, with a
    /// technician's prices where given (each with its reason).
    pub fn quote(&self, request: &QuoteRequest) -> AppResult<Quote<'_>> {
        let model = self.model(&request.model)?;
        if !self.catalog.is_fault(&request.fault) {
            return Err(DomainError::invalid(
                "fault",
                format!("{:?} is not a fault category", request.fault),
            )
            .into());
        }
        let (list, version) = self.list_on(&request.country, request.day)?;
        let operation = self
            .catalog
            .operation(model, &request.fault)
            .ok_or_else(|| {
                DomainError::NotFound(format!("an operation for {} on {model}", request.fault))
            })?;
        let tax: &Tax = &list.tax;
        let mut lines = Vec::new();
        for number in &operation.parts {
            let net = *version
                .parts
                .get(number)
                .ok_or_else(|| DomainError::NotFound(format!("a price for {number}")))?;
            let description = self
                .catalog
                .item(number)
                .map(|i| i.name().to_owned())
                .unwrap_or_default();
            let list_price = Price::of(net, tax);
            lines.push(QuoteLine {
                line: number.clone(),
                description,
                is_labour: false,
                list: list_price,
                charged: list_price,
                override_reason: None,
            });
        }
        let labour = Price::of(
            crate::domain::prices::labour_net(version.labour_per_hour, operation.labour_minutes),
            tax,
        );
        lines.push(QuoteLine {
            line: "labour".into(),
            description: format!("{} ({} min)", operation.name, operation.labour_minutes),
            is_labour: true,
            list: labour,
            charged: labour,
            override_reason: None,
        });
        let mut seen = std::collections::BTreeSet::new();
        for o in &request.overrides {
            if !seen.insert(o.line.as_str()) {
                return Err(DomainError::invalid(
                    "overrides.line",
                    format!("{} is changed twice", o.line),
                )
                .into());
            }
            let line = lines.iter_mut().find(|l| l.line == o.line).ok_or_else(|| {
                DomainError::invalid(
                    "overrides.line",
                    format!("{:?} is not a line of this quote", o.line),
                )
            })?;
            if o.currency != list.currency {
                return Err(DomainError::invalid(
                    "overrides.net.currency",
                    format!(
                        "{} prices are in {}, not {:?}",
                        list.country, list.currency, o.currency
                    ),
                )
                .into());
            }
            if o.net_minor_units < 0 {
                return Err(DomainError::invalid("overrides.net", "must not be negative").into());
            }
            text("overrides.reason", &o.reason, MAX_TEXT, true)?;
            line.charged = Price::of(o.net_minor_units, tax);
            line.override_reason = Some(o.reason.trim().to_owned());
        }
        let total = lines
            .iter()
            .fold(Price::default(), |sum, l| sum + l.charged);
        let shown = total.shown(list.tax.display);
        Ok(Quote {
            operation,
            list,
            version,
            lines,
            total,
            customer_pays: if request.covered { 0 } else { shown },
            covered_value: if request.covered { shown } else { 0 },
        })
    }

    /// The catalog entry `part_number` stands for, parsed as the API field.
    pub fn item(&self, part_number: &str) -> AppResult<Item<'_>> {
        text("part_number", part_number, 32, true)?;
        Ok(self.catalog.item(part_number.trim()).ok_or_else(|| {
            DomainError::invalid(
                "part_number",
                format!("{part_number:?} is not in the catalog"),
            )
        })?)
    }

    fn stream(&self, location: &str, part_number: &str) -> AppResult<StreamId> {
        let location = CenterId::parse("location", location)?;
        self.item(part_number)?;
        stock_stream(location.as_str(), part_number.trim())
    }

    fn lock(&self, stream: &StreamId) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash as _, Hasher as _};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        stream.as_str().hash(&mut hasher);
        let stripe = usize::try_from(hasher.finish() % LOCK_STRIPES as u64).unwrap_or(0);
        &self.locks[stripe]
    }

    pub async fn stock(&self, location: &str, part_number: &str) -> AppResult<StockView> {
        let stream = self.stream(location, part_number)?;
        let loaded = self.stock.load(&stream).await?;
        Ok(StockView {
            location: location.trim().to_owned(),
            part_number: part_number.trim().to_owned(),
            state: loaded.state,
            version: loaded.version,
        })
    }

    async fn run(
        &self,
        location: &str,
        part_number: &str,
        command: &Command,
        ctx: &CommandContext,
    ) -> AppResult<StockView> {
        let stream = self.stream(location, part_number)?;
        let _turn = self.lock(&stream).lock().await;
        let handled = self.stock.handle(&stream, command, ctx).await?;
        Ok(StockView {
            location: location.trim().to_owned(),
            part_number: part_number.trim().to_owned(),
            state: handled.state,
            version: handled.version,
        })
    }

    pub async fn receive(
        &self,
        location: &str,
        part_number: &str,
        quantity: u32,
        replenishment_id: Option<String>,
        ctx: &CommandContext,
    ) -> AppResult<StockView> {
        if let Some(id) = &replenishment_id {
            text("replenishment_id", id, 64, true)?;
        }
        let command = Command::Receive {
            quantity,
            replenishment_id,
        };
        self.run(location, part_number, &command, ctx).await
    }

    /// Orders units from the central depot; the legal delivery clock runs from `ctx.now`.
    pub async fn order_replenishment(
        &self,
        location: &str,
        part_number: &str,
        quantity: u32,
        expected_on: Option<NaiveDate>,
        ctx: &CommandContext,
    ) -> AppResult<StockView> {
        let due_by = self.delivery_due(ctx.now.date_naive());
        let command = Command::OrderReplenishment {
            replenishment_id: ctx.derived_id(b"replenishment").to_string(),
            quantity,
            ordered_at: ctx.now,
            expected_on: expected_on.unwrap_or(due_by),
            due_by,
        };
        self.run(location, part_number, &command, ctx).await
    }

    /// The last day the law's delivery clock allows for a depot order placed on `ordered_on`.
    fn delivery_due(&self, ordered_on: NaiveDate) -> NaiveDate {
        stock::add_working_days(ordered_on, self.catalog.delivery_working_days)
    }

    pub async fn set_reorder_point(
        &self,
        location: &str,
        part_number: &str,
        point: u32,
        ctx: &CommandContext,
    ) -> AppResult<StockView> {
        self.run(
            location,
            part_number,
            &Command::SetReorderPoint { point },
            ctx,
        )
        .await
    }

    pub async fn reserve(
        &self,
        location: &str,
        part_number: &str,
        order: &str,
        quantity: u32,
        ctx: &CommandContext,
    ) -> AppResult<ReservationView> {
        let order = OrderId::parse("repair_order_id", order)?;
        let command = Command::Reserve {
            order: order.to_string(),
            quantity,
            restock: Restock {
                replenishment_id: ctx.derived_id(b"backorder").to_string(),
                ordered_at: ctx.now,
                due_by: self.delivery_due(ctx.now.date_naive()),
            },
        };
        let view = self.run(location, part_number, &command, ctx).await?;
        self.reservation_of(view, order.as_str()).await
    }

    pub async fn release(
        &self,
        location: &str,
        part_number: &str,
        order: &str,
        reason: &str,
        ctx: &CommandContext,
    ) -> AppResult<ReservationView> {
        let order = OrderId::parse("repair_order_id", order)?;
        text("reason", reason, MAX_TEXT, false)?;
        let command = Command::Release {
            order: order.to_string(),
            reason: reason.trim().to_owned(),
        };
        let view = self.run(location, part_number, &command, ctx).await?;
        self.reservation_of(view, order.as_str()).await
    }

    /// Fits a reserved unit. Its serial is recorded in the same transaction as
    /// the event, and a serial fitted once is refused everywhere after.
    pub async fn consume(
        &self,
        location: &str,
        part_number: &str,
        order: &str,
        serial: &str,
        ctx: &CommandContext,
    ) -> AppResult<ReservationView> {
        let order = OrderId::parse("repair_order_id", order)?;
        let serialized = matches!(self.item(part_number)?, Item::Part(p) if p.serialized);
        text("serial", serial, MAX_SERIAL, serialized)?;
        let serial = serial.trim().to_owned();
        let stream = self.stream(location, part_number)?;
        let part_number = part_number.trim();
        let command = Command::Consume {
            order: order.to_string(),
            serial: serial.clone(),
        };
        let _turn = self.lock(&stream).lock().await;
        // The same unit reported again for the same order (a retried repair
        // step) is the fitting already recorded.
        if !serial.is_empty()
            && self.fitted_to(part_number, &serial).await?.as_deref() == Some(order.as_str())
        {
            let view = self.stock(location, part_number).await?;
            return self.reservation_of(view, order.as_str()).await;
        }
        let mut attempts = 0;
        let view = loop {
            attempts += 1;
            let mut tx = self.store.begin().await?;
            let handled = match self.stock.handle_in(&mut tx, &stream, &command, ctx).await {
                Err(HandleError::Store(StoreError::WrongExpectedVersion { .. }))
                    if attempts < 5 =>
                {
                    continue;
                }
                other => other?,
            };
            if !serial.is_empty() && !handled.events.is_empty() {
                let sql = "INSERT INTO consumed_serials \
                           (part_number, serial, location, repair_order_id, consumed_at) \
                           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
                let inserted = on_connection!(tx.connection(), c => {
                    sqlx::query(sql)
                        .bind(part_number)
                        .bind(&serial)
                        .bind(location.trim())
                        .bind(order.as_str())
                        .bind(crate::projections::timestamp(ctx.now))
                        .execute(c)
                        .await
                        .map_err(StoreError::from)?
                        .rows_affected()
                });
                if inserted == 0 {
                    tx.rollback().await?;
                    return Err(DomainError::invalid(
                        "serial",
                        format!("{serial} of {part_number} was fitted already"),
                    )
                    .into());
                }
            }
            tx.commit().await?;
            break StockView {
                location: location.trim().to_owned(),
                part_number: part_number.to_owned(),
                state: handled.state,
                version: handled.version,
            };
        };
        self.reservation_of(view, order.as_str()).await
    }

    /// The repair order a unit of `part_number` with `serial` was fitted to, if any.
    async fn fitted_to(&self, part_number: &str, serial: &str) -> AppResult<Option<String>> {
        let sql =
            "SELECT repair_order_id FROM consumed_serials WHERE part_number = $1 AND serial = $2";
        Ok(on_read_pool!(&self.store, pool => {
            sqlx::query_scalar(sql)
                .bind(part_number)
                .bind(serial)
                .fetch_optional(pool)
                .await
                .map_err(StoreError::from)?
        }))
    }

    pub async fn reservation(
        &self,
        location: &str,
        part_number: &str,
        order: &str,
    ) -> AppResult<ReservationView> {
        let order = OrderId::parse("repair_order_id", order)?;
        let view = self.stock(location, part_number).await?;
        self.reservation_of(view, order.as_str()).await
    }

    async fn reservation_of(&self, stock: StockView, order: &str) -> AppResult<ReservationView> {
        let state = &stock.state;
        let (status, quantity, position) = if let Some(held) = state.reserved.get(order) {
            (ReservationStatus::Reserved, *held, None)
        } else if let Some(position) = state.position(order) {
            let quantity = state.waiting[position - 1].quantity;
            (ReservationStatus::Waiting, quantity, Some(position))
        } else {
            (ReservationStatus::None, 0, None)
        };
        let sql = "SELECT serial FROM consumed_serials \
                   WHERE location = $1 AND part_number = $2 AND repair_order_id = $3 ORDER BY serial";
        let consumed_serials: Vec<String> = on_read_pool!(&self.store, pool => {
            sqlx::query_scalar(sql)
                .bind(&stock.location)
                .bind(&stock.part_number)
                .bind(order)
                .fetch_all(pool)
                .await
                .map_err(StoreError::from)?
        });
        Ok(ReservationView {
            order: order.to_owned(),
            status,
            quantity,
            position,
            expected_on: position.and_then(|p| state.expected_for(p)),
            consumed_serials,
            stock,
        })
    }

    /// A location's stock of every part it has seen, from the read model.
    pub async fn list_stock(&self, location: &str, low_only: bool) -> AppResult<Vec<StockRow>> {
        let location = CenterId::parse("location", location)?;
        let sql = "SELECT part_number, on_hand, reserved, on_order, waiting, reorder_point, low, version \
                   FROM stock_levels WHERE location = $1 AND (low = 1 OR $2 = 0) ORDER BY part_number";
        let rows: Vec<LevelRow> = on_read_pool!(&self.store, pool => {
            sqlx::query_as(sql)
                .bind(location.as_str())
                .bind(i64::from(low_only))
                .fetch_all(pool)
                .await
                .map_err(StoreError::from)?
        });
        Ok(rows
            .into_iter()
            .map(
                |(
                    part_number,
                    on_hand,
                    reserved,
                    on_order,
                    waiting,
                    reorder_point,
                    low,
                    version,
                )| StockRow {
                    location: location.to_string(),
                    part_number,
                    on_hand,
                    reserved,
                    on_order,
                    waiting,
                    reorder_point,
                    low: low != 0,
                    version,
                },
            )
            .collect())
    }

    /// Flags replenishments past the law's delivery day; how many were flagged.
    pub async fn flag_overdue(&self, ctx: &CommandContext) -> AppResult<usize> {
        let today = ctx.now.date_naive();
        let sql = "SELECT location, part_number FROM stock_levels WHERE on_order > 0";
        let open: Vec<(String, String)> = on_read_pool!(&self.store, pool => {
            sqlx::query_as(sql).fetch_all(pool).await.map_err(StoreError::from)?
        });
        let mut flagged = 0;
        for (location, part_number) in open {
            let stream = self.stream(&location, &part_number)?;
            let _turn = self.lock(&stream).lock().await;
            let handled = self
                .stock
                .handle(&stream, &Command::FlagOverdue { today }, ctx)
                .await?;
            flagged += handled
                .events
                .iter()
                .filter(|e| matches!(e, stock::Event::ReplenishmentOverdue { .. }))
                .count();
        }
        Ok(flagged)
    }
}
