//! `aftersales.parts.v1.PartsService` over the use cases in [`crate::app`].

use aftersales_core::Error;
use aftersales_eventstore::CommandContext;
use aftersales_proto::common::Money;
use aftersales_proto::parts as pb;
use aftersales_proto::parts::parts_service_server::PartsService;
use aftersales_runtime::auth::{Caller, Owner};
use aftersales_runtime::errors::{invalid, status};
use aftersales_runtime::request::{Requests, timestamp_from_proto, timestamp_to_proto};
use chrono::NaiveDate;
use tonic::{Request, Response, Status};

use crate::app::{
    Override, Parts, Quote, QuoteRequest, RepairPrices, ReservationStatus, ReservationView,
    StockRow, StockView,
};
use crate::domain::order::{PackedUnit, Payment, Stage, Wanted};
use crate::domain::prices::{Price, Tax, TaxDisplay};
use crate::orders::{AccessoryClaim, AccessoryOrders, NewOrder, OrderView};

/// Lines a quote request may change at most.
const MAX_OVERRIDES: usize = 32;

#[derive(Debug, Clone)]
pub struct PartsApi {
    app: Parts,
    orders: AccessoryOrders,
    requests: Requests,
}

impl PartsApi {
    pub fn new(app: Parts, orders: AccessoryOrders, requests: Requests) -> Self {
        Self {
            app,
            orders,
            requests,
        }
    }

    fn context<T: prost::Message>(&self, request: &Request<T>) -> Result<CommandContext, Status> {
        self.requests.context(request)
    }

    /// The customer an order request is for: a customer's own (they see theirs
    /// only), or the one staff name; none when staff name none.
    fn customer_of(request: &Request<pb::AccessoryOrderRef>) -> Option<String> {
        let named = &request.get_ref().customer_id;
        (Caller::of(request).is_customer() || !named.is_empty()).then(|| named.clone())
    }

    fn order(&self, view: &OrderView) -> pb::AccessoryOrder {
        order_to_proto(
            view,
            self.app.price_list(&view.state.country).map(|l| &l.tax),
        )
    }

    /// The day asked for, or today.
    fn day(&self, as_of: Option<prost_types::Timestamp>) -> Result<NaiveDate, Status> {
        Ok(match as_of {
            Some(t) => timestamp_from_proto("as_of", Some(&t))?.date_naive(),
            None => self.app.now().date_naive(),
        })
    }

    /// A location's stock is its staff's (a depot's staff see every center's).
    fn may_touch_location(caller: &Caller, location: &str) -> Result<(), Status> {
        if caller.may_touch(Owner {
            customer: None,
            center: Some(location.trim()),
        }) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "you do not work at {}",
                location.trim()
            )))
        }
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn country(value: Option<aftersales_proto::common::CountryCode>) -> Result<String, Status> {
    let value = value.map(|c| c.value).unwrap_or_default();
    aftersales_core::types::CountryCode::parse("country", &value)
        .map(|c| c.to_string())
        .map_err(|e| status(e.into()))
}

/// A signed count from the API as a positive quantity.
fn quantity(field: &'static str, value: i32) -> Result<u32, Status> {
    u32::try_from(value)
        .ok()
        .filter(|q| *q > 0)
        .ok_or_else(|| invalid(field, "must be a positive number of units"))
}

fn count(value: impl TryInto<i32>) -> i32 {
    value.try_into().unwrap_or(i32::MAX)
}

fn money(minor_units: i64, currency: &str) -> Money {
    Money {
        minor_units,
        currency: currency.to_owned(),
    }
}

fn price(p: Price, currency: &str, display: TaxDisplay) -> pb::Price {
    pb::Price {
        net: Some(money(p.net, currency)),
        tax: Some(money(p.tax, currency)),
        gross: Some(money(p.gross, currency)),
        shown: Some(money(p.shown(display), currency)),
    }
}

fn tax(t: &Tax) -> pb::Tax {
    pb::Tax {
        name: t.name.clone(),
        rate_basis_points: t.rate_basis_points,
        display: match t.display {
            TaxDisplay::Included => pb::TaxDisplay::Included,
            TaxDisplay::Excluded => pb::TaxDisplay::Excluded,
        }
        .into(),
        note: t.note.clone(),
    }
}

fn price_list(prices: &RepairPrices<'_>, catalog_version: u32) -> pb::RepairPriceList {
    let (currency, display) = (&prices.list.currency, prices.list.tax.display);
    pb::RepairPriceList {
        model: prices.model.clone(),
        country: prices.list.country.clone(),
        currency: currency.clone(),
        tax: Some(tax(&prices.list.tax)),
        version: prices.version.version,
        valid_from: prices.version.valid_from.to_string(),
        lines: prices
            .lines
            .iter()
            .map(|l| pb::RepairPriceLine {
                fault: l.operation.fault.clone(),
                operation: l.operation.name.clone(),
                part_numbers: l.operation.parts.clone(),
                labour_minutes: l.operation.labour_minutes,
                parts: Some(price(l.parts, currency, display)),
                labour: Some(price(l.labour, currency, display)),
                total: Some(price(l.total, currency, display)),
            })
            .collect(),
        catalog_version,
    }
}

fn quote(q: &Quote<'_>, request: &QuoteRequest) -> pb::ProposedQuote {
    let (currency, display) = (&q.list.currency, q.list.tax.display);
    pb::ProposedQuote {
        model: request.model.clone(),
        country: request.country.clone(),
        fault: request.fault.clone(),
        operation: q.operation.name.clone(),
        lines: q
            .lines
            .iter()
            .map(|l| pb::QuoteLine {
                line: l.line.clone(),
                description: l.description.clone(),
                is_labour: l.is_labour,
                list_price: Some(price(l.list, currency, display)),
                charged: Some(price(l.charged, currency, display)),
                override_reason: l.override_reason.clone().unwrap_or_default(),
            })
            .collect(),
        tax: Some(tax(&q.list.tax)),
        total: Some(price(q.total, currency, display)),
        customer_pays: Some(money(q.customer_pays, currency)),
        covered_value: Some(money(q.covered_value, currency)),
        price_list_version: q.version.version,
    }
}

pub fn stock_to_proto(view: &StockView) -> pb::StockLevel {
    let s = &view.state;
    pb::StockLevel {
        location: view.location.clone(),
        part_number: view.part_number.clone(),
        on_hand: count(s.on_hand),
        reserved: count(s.reserved_total()),
        available: count(s.available()),
        on_order: count(s.on_order()),
        waiting_orders: s.waiting.iter().map(|w| w.order.clone()).collect(),
        reorder_point: count(s.reorder_point),
        low: s.low,
        replenishments: s
            .replenishments
            .iter()
            .map(|(id, r)| pb::Replenishment {
                replenishment_id: id.clone(),
                quantity: count(r.quantity),
                ordered_at: Some(timestamp_to_proto(r.ordered_at)),
                expected_on: r.expected_on.to_string(),
                due_by: r.due_by.to_string(),
                overdue: r.overdue,
            })
            .collect(),
        version: view.version,
    }
}

fn row_to_proto(row: StockRow) -> pb::StockLevel {
    pb::StockLevel {
        location: row.location,
        part_number: row.part_number,
        on_hand: count(row.on_hand),
        reserved: count(row.reserved),
        available: count(row.on_hand - row.reserved),
        on_order: count(row.on_order),
        // The list gives counts; GetStock names the orders in line.
        waiting_orders: Vec::new(),
        reorder_point: count(row.reorder_point),
        low: row.low,
        replenishments: Vec::new(),
        version: u64::try_from(row.version).unwrap_or_default(),
    }
}

fn reservation_to_proto(view: &ReservationView) -> pb::Reservation {
    pb::Reservation {
        location: view.stock.location.clone(),
        part_number: view.stock.part_number.clone(),
        repair_order_id: view.order.clone(),
        status: match view.status {
            ReservationStatus::Reserved => pb::ReservationStatus::Reserved,
            ReservationStatus::Waiting => pb::ReservationStatus::Waiting,
            ReservationStatus::None => pb::ReservationStatus::None,
        }
        .into(),
        quantity: count(view.quantity),
        position: view
            .position
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or_default(),
        expected_on: view.expected_on.map(|d| d.to_string()).unwrap_or_default(),
        consumed_serials: view.consumed_serials.clone(),
        stock: Some(stock_to_proto(&view.stock)),
    }
}

/// An order as the contract has it, its prices shown as its country shows them.
fn order_to_proto(view: &OrderView, tax_of: Option<&Tax>) -> pb::AccessoryOrder {
    let o = &view.state;
    let display = o.tax_display;
    let status = match o.stage() {
        Stage::AwaitingPayment => pb::AccessoryOrderStatus::AwaitingPayment,
        Stage::PaymentFailed => pb::AccessoryOrderStatus::PaymentFailed,
        Stage::Paid => pb::AccessoryOrderStatus::Paid,
        Stage::Shipped => pb::AccessoryOrderStatus::Shipped,
        Stage::Delivered => pb::AccessoryOrderStatus::Delivered,
        Stage::ReturnRequested => pb::AccessoryOrderStatus::ReturnRequested,
        Stage::Returned => pb::AccessoryOrderStatus::Returned,
        Stage::Refunded => pb::AccessoryOrderStatus::Refunded,
    };
    let (payment_id, payment_failure) = match &o.payment {
        Payment::Pending { payment_id } | Payment::Paid { payment_id } => (payment_id.as_str(), ""),
        Payment::Failed { payment_id, reason } => (payment_id.as_str(), reason.as_str()),
        Payment::NotDue => ("", ""),
    };
    let replacement = o.replacing.as_ref().map(|r| {
        let back = o.faulty_back.as_ref();
        pb::AccessoryReplacement {
            faulty_serial: r.faulty_serial.clone(),
            fault: r.fault.clone(),
            covered: r.covered,
            reason: r.reason.clone(),
            not_charged: r
                .covered
                .then(|| price(o.list_value(), &o.currency, display)),
            faulty_return_shipment_id: back
                .map(|b| b.label.shipment_id.clone())
                .unwrap_or_default(),
            faulty_return_carrier: back.map(|b| b.label.carrier.clone()).unwrap_or_default(),
            faulty_return_tracking_number: back
                .map(|b| b.label.tracking_number.clone())
                .unwrap_or_default(),
            faulty_received_on: back
                .and_then(|b| b.received_on)
                .map(|d| d.to_string())
                .unwrap_or_default(),
        }
    });
    pb::AccessoryOrder {
        order_id: view.order_id.clone(),
        customer_id: o.customer_id.clone(),
        device_id: o
            .device
            .as_deref()
            .and_then(|d| aftersales_core::types::DeviceKey::from_name("device", d).ok())
            .map(|key| aftersales_proto::common::DeviceId::from(&key)),
        lines: o
            .lines
            .iter()
            .map(|l| pb::AccessoryOrderLine {
                number: l.number.clone(),
                name: l.name.clone(),
                kind: l.kind.clone(),
                quantity: l.quantity,
                unit: Some(price(l.unit, &o.currency, display)),
                total: Some(price(l.total, &o.currency, display)),
            })
            .collect(),
        total: Some(price(o.total, &o.currency, display)),
        tax: tax_of.map(tax),
        address: Some((&o.address).into()),
        status: status.into(),
        payment_id: payment_id.to_owned(),
        payment_failure: payment_failure.to_owned(),
        shipment_id: o.shipment_id.clone().unwrap_or_default(),
        units: o
            .units
            .iter()
            .map(|u| pb::PackedUnit {
                number: u.number.clone(),
                serial: u.serial.clone(),
            })
            .collect(),
        placed_on: o.placed_on.to_string(),
        delivered_on: o.delivered_on.map(|d| d.to_string()).unwrap_or_default(),
        version: view.version,
        withdrawal_ends: o
            .withdrawal_ends()
            .map(|d| d.to_string())
            .unwrap_or_default(),
        return_shipment_id: o
            .giving_back
            .as_ref()
            .map(|b| b.shipment_id.clone())
            .unwrap_or_default(),
        refund_id: o
            .giving_back
            .as_ref()
            .and_then(|b| b.refund_id.clone())
            .unwrap_or_default(),
        replacement,
    }
}

fn answer<T, U>(result: Result<T, Error>, to: impl FnOnce(&T) -> U) -> Answer<U> {
    result.map(|v| Response::new(to(&v))).map_err(status)
}

#[tonic::async_trait]
impl PartsService for PartsApi {
    async fn get_repair_price_list(
        &self,
        request: Request<pb::GetRepairPriceListRequest>,
    ) -> Answer<pb::RepairPriceList> {
        let r = request.into_inner();
        let country = country(r.country)?;
        let day = self.day(r.as_of)?;
        let prices = self
            .app
            .repair_prices(&r.model, &country, day)
            .map_err(status)?;
        Ok(Response::new(price_list(
            &prices,
            self.app.catalog().version,
        )))
    }

    async fn list_price_lists(
        &self,
        _request: Request<pb::ListPriceListsRequest>,
    ) -> Answer<pb::PriceListIndex> {
        Ok(Response::new(pb::PriceListIndex {
            models: self
                .app
                .catalog()
                .models()
                .map(|m| m.name.clone())
                .collect(),
            countries: self.app.price_countries(),
        }))
    }

    async fn propose_quote(
        &self,
        request: Request<pb::ProposeQuoteRequest>,
    ) -> Answer<pb::ProposedQuote> {
        let r = request.into_inner();
        if r.overrides.len() > MAX_OVERRIDES {
            return Err(invalid(
                "overrides",
                format!("at most {MAX_OVERRIDES} lines may be changed"),
            ));
        }
        let overrides = r
            .overrides
            .into_iter()
            .map(|o| {
                let net = o
                    .net
                    .ok_or_else(|| invalid("overrides.net", "is required"))?;
                Ok(Override {
                    line: o.line.trim().to_owned(),
                    net_minor_units: net.minor_units,
                    currency: net.currency,
                    reason: o.reason,
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let request = QuoteRequest {
            model: r.model.trim().to_owned(),
            country: country(r.country)?,
            fault: r.fault.trim().to_owned(),
            covered: r.covered,
            overrides,
            day: self.day(r.as_of)?,
        };
        let proposed = self.app.quote(&request).map_err(status)?;
        Ok(Response::new(quote(&proposed, &request)))
    }

    async fn get_stock(&self, request: Request<pb::StockRef>) -> Answer<pb::StockLevel> {
        Self::may_touch_location(&Caller::of(&request), &request.get_ref().location)?;
        let r = request.into_inner();
        answer(
            self.app.stock(&r.location, &r.part_number).await,
            stock_to_proto,
        )
    }

    async fn list_stock(
        &self,
        request: Request<pb::ListStockRequest>,
    ) -> Answer<pb::ListStockResponse> {
        Self::may_touch_location(&Caller::of(&request), &request.get_ref().location)?;
        let r = request.into_inner();
        let rows = self
            .app
            .list_stock(&r.location, r.low_only)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListStockResponse {
            levels: rows.into_iter().map(row_to_proto).collect(),
        }))
    }

    async fn receive_stock(
        &self,
        request: Request<pb::ReceiveStockRequest>,
    ) -> Answer<pb::StockLevel> {
        Self::may_touch_location(&Caller::of(&request), &request.get_ref().location)?;
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let quantity = quantity("quantity", r.quantity)?;
        let replenishment = Some(r.replenishment_id.trim().to_owned()).filter(|id| !id.is_empty());
        answer(
            self.app
                .receive(&r.location, &r.part_number, quantity, replenishment, &ctx)
                .await,
            stock_to_proto,
        )
    }

    async fn order_replenishment(
        &self,
        request: Request<pb::OrderReplenishmentRequest>,
    ) -> Answer<pb::StockLevel> {
        Self::may_touch_location(&Caller::of(&request), &request.get_ref().location)?;
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let quantity = quantity("quantity", r.quantity)?;
        let expected_on = match r.expected_on.trim() {
            "" => None,
            day => Some(
                day.parse::<NaiveDate>()
                    .map_err(|_| invalid("expected_on", "must be an ISO date (YYYY-MM-DD)"))?,
            ),
        };
        answer(
            self.app
                .order_replenishment(&r.location, &r.part_number, quantity, expected_on, &ctx)
                .await,
            stock_to_proto,
        )
    }

    async fn set_reorder_point(
        &self,
        request: Request<pb::SetReorderPointRequest>,
    ) -> Answer<pb::StockLevel> {
        Self::may_touch_location(&Caller::of(&request), &request.get_ref().location)?;
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let point = u32::try_from(r.reorder_point)
            .map_err(|_| invalid("reorder_point", "must not be negative"))?;
        answer(
            self.app
                .set_reorder_point(&r.location, &r.part_number, point, &ctx)
                .await,
            stock_to_proto,
        )
    }

    async fn reserve_part(
        &self,
        request: Request<pb::ReservePartRequest>,
    ) -> Answer<pb::Reservation> {
        Self::may_touch_location(&Caller::of(&request), &request.get_ref().location)?;
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let quantity = match r.quantity {
            0 => 1,
            q => quantity("quantity", q)?,
        };
        answer(
            self.app
                .reserve(
                    &r.location,
                    &r.part_number,
                    &r.repair_order_id,
                    quantity,
                    &ctx,
                )
                .await,
            reservation_to_proto,
        )
    }

    async fn get_reservation(
        &self,
        request: Request<pb::ReservationRef>,
    ) -> Answer<pb::Reservation> {
        Self::may_touch_location(&Caller::of(&request), &request.get_ref().location)?;
        let r = request.into_inner();
        answer(
            self.app
                .reservation(&r.location, &r.part_number, &r.repair_order_id)
                .await,
            reservation_to_proto,
        )
    }

    async fn release_reservation(
        &self,
        request: Request<pb::ReleaseReservationRequest>,
    ) -> Answer<pb::Reservation> {
        Self::may_touch_location(&Caller::of(&request), &request.get_ref().location)?;
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        answer(
            self.app
                .release(
                    &r.location,
                    &r.part_number,
                    &r.repair_order_id,
                    &r.reason,
                    &ctx,
                )
                .await,
            reservation_to_proto,
        )
    }

    async fn consume_part(
        &self,
        request: Request<pb::ConsumePartRequest>,
    ) -> Answer<pb::Reservation> {
        Self::may_touch_location(&Caller::of(&request), &request.get_ref().location)?;
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        answer(
            self.app
                .consume(
                    &r.location,
                    &r.part_number,
                    &r.repair_order_id,
                    &r.serial,
                    &ctx,
                )
                .await,
            reservation_to_proto,
        )
    }

    async fn place_accessory_order(
        &self,
        request: Request<pb::PlaceAccessoryOrderRequest>,
    ) -> Answer<pb::AccessoryOrder> {
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let device = match &r.device_id {
            Some(id) => Some(
                aftersales_proto::common::DeviceId::parse(Some(id))
                    .map_err(|e| status(e.into()))?,
            ),
            None => None,
        };
        if r.lines.len() > crate::domain::order::MAX_LINES {
            return Err(invalid("lines", "an order has at most 10 lines"));
        }
        let new = NewOrder {
            customer_id: r.customer_id,
            device,
            lines: r
                .lines
                .into_iter()
                .map(|l| Wanted {
                    number: l.number.trim().to_owned(),
                    quantity: l.quantity,
                })
                .collect(),
            address: r
                .address
                .ok_or_else(|| invalid("address", "is required"))?
                .into(),
            payment_method: r.payment_method,
        };
        let placed = self.orders.place(new, &ctx).await.map_err(status)?;
        Ok(Response::new(self.order(&placed)))
    }

    async fn replace_accessory(
        &self,
        request: Request<pb::ReplaceAccessoryRequest>,
    ) -> Answer<pb::AccessoryOrder> {
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        let claim = AccessoryClaim {
            customer_id: r.customer_id,
            device: aftersales_proto::common::DeviceId::parse(r.device_id.as_ref())
                .map_err(|e| status(e.into()))?,
            faulty_serial: r.accessory_serial,
            fault: r.fault,
            number: r.number,
            address: r
                .address
                .ok_or_else(|| invalid("address", "is required"))?
                .into(),
            payment_method: r.payment_method,
        };
        let placed = self.orders.replace(claim, &ctx).await.map_err(status)?;
        Ok(Response::new(self.order(&placed)))
    }

    async fn get_accessory_order(
        &self,
        request: Request<pb::AccessoryOrderRef>,
    ) -> Answer<pb::AccessoryOrder> {
        let customer = Self::customer_of(&request);
        let r = request.into_inner();
        let view = self
            .orders
            .get(&r.order_id, customer.as_deref())
            .await
            .map_err(status)?;
        Ok(Response::new(self.order(&view)))
    }

    async fn return_accessory_order(
        &self,
        request: Request<pb::AccessoryOrderRef>,
    ) -> Answer<pb::AccessoryOrder> {
        let ctx = self.context(&request)?;
        let customer = Self::customer_of(&request);
        let r = request.into_inner();
        let view = self
            .orders
            .request_return(&r.order_id, customer.as_deref(), &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(self.order(&view)))
    }

    async fn ship_accessory_order(
        &self,
        request: Request<pb::ShipAccessoryOrderRequest>,
    ) -> Answer<pb::AccessoryOrder> {
        let ctx = self.context(&request)?;
        let r = request.into_inner();
        if r.units.len() > 100 {
            return Err(invalid("units", "at most 100 units"));
        }
        let units = r
            .units
            .into_iter()
            .map(|u| PackedUnit {
                number: u.number.trim().to_owned(),
                serial: u.serial.trim().to_owned(),
            })
            .collect();
        let shipped = self
            .orders
            .ship(&r.order_id, units, &ctx)
            .await
            .map_err(status)?;
        Ok(Response::new(self.order(&shipped)))
    }
}
