//! `aftersales parts`: the published repair prices, quotes from them, a
//! location's stock and reservations, and accessory orders.

use aftersales_proto::common::{CountryCode, Money};
use aftersales_proto::parts as ppb;
use aftersales_proto::parts::parts_service_client::PartsServiceClient;
use aftersales_runtime::telemetry::TracedChannel;
use serde_json::json;

use crate::client::{Endpoints, failed};

#[derive(Debug, clap::Subcommand)]
pub enum Parts {
    /// A model's published repair prices in a country (no sign-in needed).
    Prices {
        #[arg(long)]
        model: String,
        /// ISO country code, e.g. DE.
        #[arg(long)]
        country: String,
    },
    /// The quote for repairing a fault, from the country's price list.
    Quote {
        #[arg(long)]
        model: String,
        #[arg(long)]
        country: String,
        /// The fault category: display, battery, camera, charging, ...
        #[arg(long)]
        fault: String,
        /// Covered by warranty: the customer pays nothing.
        #[arg(long)]
        covered: bool,
    },
    /// Every part's stock at a service center or depot.
    Stock {
        #[arg(long)]
        location: String,
        /// Only parts at or under their reorder point.
        #[arg(long)]
        low: bool,
    },
    /// Units arriving at a location (a delivery, or a first count).
    Receive {
        #[arg(long)]
        location: String,
        #[arg(long)]
        part: String,
        #[arg(long)]
        quantity: i32,
        /// The replenishment this delivers.
        #[arg(long, default_value = "")]
        replenishment: String,
    },
    /// Hold a unit for a repair order, or join the line for the next one.
    Reserve {
        #[arg(long)]
        location: String,
        #[arg(long)]
        part: String,
        #[arg(long)]
        order: String,
    },
    /// Let go of a repair order's units; the next in line gets them.
    Release {
        #[arg(long)]
        location: String,
        #[arg(long)]
        part: String,
        #[arg(long)]
        order: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Order accessories for delivery, paid through the payment provider.
    Order {
        #[arg(long)]
        customer: String,
        /// An accessory and how many, e.g. ACC-CHG-30W:2 (repeat for more).
        #[arg(long = "item", required = true, value_name = "NUMBER:QUANTITY")]
        items: Vec<String>,
        /// The phone they are for (a case must fit it; on delivery they join its warranty).
        #[arg(long)]
        imei: Option<String>,
        #[command(flatten)]
        delivery: Delivery,
        /// The provider checkout's payment method (the sandbox's: sandbox-ok, ...).
        #[arg(long, default_value = "sandbox-ok")]
        payment_method: String,
    },
    /// Replace a faulty accessory of a phone: free of charge when its warranty
    /// covers the fault (the faulty one then comes back where asked), paid at
    /// the list price when it does not.
    Replace {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        imei: String,
        /// The faulty accessory's serial, as registered with the phone.
        #[arg(long)]
        serial: String,
        /// The fault: charging, audio, connectivity, ...
        #[arg(long)]
        fault: String,
        /// The catalog accessory to send in its place, e.g. ACC-CHG-30W.
        #[arg(long)]
        number: String,
        #[command(flatten)]
        delivery: Delivery,
        /// Needed only when it is not covered (the sandbox's: sandbox-ok, ...).
        #[arg(long, default_value = "")]
        payment_method: String,
    },
    /// An accessory order: its lines, payment, parcel and delivery.
    OrderStatus {
        #[arg(long)]
        order: String,
        /// The customer it is for (what a customer must give).
        #[arg(long, default_value = "")]
        customer: String,
    },
    /// Send a delivered accessory order back within the withdrawal period: a
    /// label to the depot, and a full refund once it is there.
    Return {
        #[arg(long)]
        order: String,
        /// The customer it is for (what a customer must give).
        #[arg(long, default_value = "")]
        customer: String,
    },
    /// Pack a paid accessory order at the depot and hand it to logistics.
    Ship {
        #[arg(long)]
        order: String,
        /// A unit packed, NUMBER=SERIAL (one per unit ordered).
        #[arg(long = "unit", required = true, value_name = "NUMBER=SERIAL")]
        units: Vec<String>,
    },
}

/// Where an accessory order goes.
#[derive(Debug, clap::Args)]
pub struct Delivery {
    /// The delivery address's street lines; its country's prices and tax apply.
    #[arg(long, num_args = 1.., value_name = "LINE", required = true)]
    address: Vec<String>,
    #[arg(long)]
    city: String,
    #[arg(long, default_value = "")]
    postal_code: String,
    #[arg(long, default_value = "")]
    region: String,
    #[arg(long)]
    country: String,
}

impl Delivery {
    /// The address, for `recipient`.
    fn to(self, recipient: &str) -> aftersales_proto::common::Address {
        aftersales_proto::common::Address {
            recipient: recipient.to_owned(),
            lines: self.address,
            city: self.city,
            region: self.region,
            postal_code: self.postal_code,
            country: country(&self.country),
            phone: String::new(),
        }
    }
}

fn print_order(o: &ppb::AccessoryOrder, as_json: bool) {
    let status = o
        .status()
        .as_str_name()
        .trim_start_matches("ACCESSORY_ORDER_STATUS_")
        .to_ascii_lowercase();
    if as_json {
        let lines: Vec<_> = o
            .lines
            .iter()
            .map(|l| {
                json!({"number": l.number, "name": l.name, "quantity": l.quantity,
                "total": l.total.as_ref().and_then(|t| t.shown.as_ref()).map(|m| m.minor_units)})
            })
            .collect();
        println!(
            "{}",
            json!({"order_id": o.order_id, "customer_id": o.customer_id, "status": status,
                "lines": lines, "total": o.total.as_ref().and_then(|t| t.shown.as_ref()).map(|m| m.minor_units),
                "currency": o.total.as_ref().and_then(|t| t.shown.as_ref()).map(|m| m.currency.clone()),
                "payment_id": o.payment_id, "payment_failure": o.payment_failure,
                "shipment_id": o.shipment_id, "placed_on": o.placed_on, "delivered_on": o.delivered_on,
                "withdrawal_ends": o.withdrawal_ends, "return_shipment_id": o.return_shipment_id,
"refund_id": o.refund_id,
                "replacement": o.replacement.as_ref().map(|r| json!({
                    "faulty_serial": r.faulty_serial, "covered": r.covered, "reason": r.reason,
                    "faulty_return_shipment_id": r.faulty_return_shipment_id,
                    "faulty_return_carrier": r.faulty_return_carrier,
                    "faulty_return_tracking_number": r.faulty_return_tracking_number,
                    "faulty_received_on": r.faulty_received_on})),
                "units": o.units.iter().map(|u| json!({"number": u.number, "serial": u.serial})).collect::<Vec<_>>()})
        );
        return;
    }
    println!("order {} for {}: {status}", o.order_id, o.customer_id);
    for l in &o.lines {
        println!(
            "  {:>2} x {:<14} {:<32} {:>14}",
            l.quantity,
            l.number,
            l.name,
            shown(l.total.as_ref())
        );
    }
    println!("  total {}", shown(o.total.as_ref()));
    if let Some(tax) = &o.tax {
        println!("  {}", tax.note);
    }
    if !o.payment_failure.is_empty() {
        println!("  payment failed: {}", o.payment_failure);
    }
    if !o.shipment_id.is_empty() {
        println!("  parcel {} (aftersales shipment track)", o.shipment_id);
    }
    if !o.withdrawal_ends.is_empty() {
        println!("  may be sent back until {}", o.withdrawal_ends);
    }
    if !o.return_shipment_id.is_empty() {
        println!("  coming back in parcel {}", o.return_shipment_id);
    }
    if let Some(r) = &o.replacement {
        match &r.not_charged {
            Some(list) => println!(
                "  replaces {} under warranty ({}): {} not charged",
                r.faulty_serial,
                r.reason,
                shown(Some(list))
            ),
            None => println!("  replaces {} ({})", r.faulty_serial, r.reason),
        }
        if !r.faulty_return_tracking_number.is_empty() {
            println!(
                "  the faulty unit goes back with {} {}{}",
                r.faulty_return_carrier,
                r.faulty_return_tracking_number,
                if r.faulty_received_on.is_empty() {
                    String::new()
                } else {
                    format!(", received {}", r.faulty_received_on)
                }
            );
        }
    }
}

/// `NUMBER<sep>VALUE`, both present, or what is wrong with it.
fn pair<'a>(flag: &str, value: &'a str, sep: char) -> Result<(&'a str, &'a str), String> {
    value
        .split_once(sep)
        .map(|(a, b)| (a.trim(), b.trim()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| format!("{flag}: {value:?} is not NUMBER{sep}VALUE"))
}

pub async fn client(endpoints: &Endpoints) -> Result<PartsServiceClient<TracedChannel>, String> {
    Ok(PartsServiceClient::new(
        endpoints.channel("parts", &endpoints.parts_url).await?,
    ))
}

/// Fills `location` up to `units` of every part `model`'s repairs call for, as
/// a center's staff count in a delivery: what the demo's and the load
/// generator's repairs fit. Counting again adds only what is missing; a model
/// the catalog lacks needs nothing.
pub async fn stock_for_repairs(
    parts: &mut PartsServiceClient<TracedChannel>,
    location: &str,
    model: &str,
    units: i32,
) -> Result<(), String> {
    let index = parts
        .list_price_lists(ppb::ListPriceListsRequest {})
        .await
        .map_err(|s| format!("price lists: {}", failed(s)))?
        .into_inner();
    // Every country's list prices the same operations and parts.
    let Some(any_country) = index.countries.first() else {
        return Ok(());
    };
    if !index.models.iter().any(|m| m == model) {
        return Ok(());
    }
    let list = parts
        .get_repair_price_list(ppb::GetRepairPriceListRequest {
            model: model.into(),
            country: country(any_country),
            as_of: None,
        })
        .await
        .map_err(|s| format!("price list: {}", failed(s)))?
        .into_inner();
    let mut numbers: Vec<String> = list
        .lines
        .into_iter()
        .flat_map(|line| line.part_numbers)
        .collect();
    numbers.sort();
    numbers.dedup();
    for part_number in numbers {
        let level = parts
            .get_stock(ppb::StockRef {
                location: location.into(),
                part_number: part_number.clone(),
            })
            .await
            .map_err(|s| format!("stock: {}", failed(s)))?
            .into_inner();
        let missing = units.saturating_sub(level.on_hand);
        if missing > 0 {
            parts
                .receive_stock(ppb::ReceiveStockRequest {
                    location: location.into(),
                    part_number,
                    quantity: missing,
                    replenishment_id: String::new(),
                })
                .await
                .map_err(|s| format!("receive stock: {}", failed(s)))?;
        }
    }
    Ok(())
}

fn country(code: &str) -> Option<CountryCode> {
    Some(CountryCode {
        value: code.trim().to_ascii_uppercase(),
    })
}

/// `12345` `EUR` as `123.45 EUR` (every listed currency has two minor digits).
fn amount(money: Option<&Money>) -> String {
    money.map_or_else(String::new, |m| {
        let sign = if m.minor_units < 0 { "-" } else { "" };
        let units = m.minor_units.unsigned_abs();
        format!("{sign}{}.{:02} {}", units / 100, units % 100, m.currency)
    })
}

fn shown(price: Option<&ppb::Price>) -> String {
    amount(price.and_then(|p| p.shown.as_ref()))
}

fn level_json(l: &ppb::StockLevel) -> serde_json::Value {
    json!({"location": l.location, "part_number": l.part_number, "on_hand": l.on_hand,
        "reserved": l.reserved, "available": l.available, "on_order": l.on_order,
        "waiting_orders": l.waiting_orders, "reorder_point": l.reorder_point, "low": l.low})
}

fn print_reservation(r: &ppb::Reservation, as_json: bool) {
    let status = match r.status() {
        ppb::ReservationStatus::Reserved => "reserved",
        ppb::ReservationStatus::Waiting => "waiting",
        ppb::ReservationStatus::None | ppb::ReservationStatus::Unspecified => "none",
    };
    if as_json {
        println!(
            "{}",
            json!({"repair_order_id": r.repair_order_id, "status": status, "quantity": r.quantity,
                "position": r.position, "expected_on": r.expected_on,
                "consumed_serials": r.consumed_serials, "stock": r.stock.as_ref().map(level_json)})
        );
        return;
    }
    match r.status() {
        ppb::ReservationStatus::Waiting => println!(
            "{} waits for {} at {}: number {} in line{}",
            r.repair_order_id,
            r.part_number,
            r.location,
            r.position,
            if r.expected_on.is_empty() {
                ", nothing on order".to_owned()
            } else {
                format!(", expected {}", r.expected_on)
            }
        ),
        ppb::ReservationStatus::Reserved
        | ppb::ReservationStatus::None
        | ppb::ReservationStatus::Unspecified => println!(
            "{} {status} {} x {} at {}",
            r.repair_order_id, r.quantity, r.part_number, r.location
        ),
    }
}

pub async fn parts(command: Parts, endpoints: &Endpoints) -> Result<(), String> {
    let mut parts = client(endpoints).await?;
    match command {
        Parts::Prices {
            model,
            country: code,
        } => {
            let list = parts
                .get_repair_price_list(ppb::GetRepairPriceListRequest {
                    model,
                    country: country(&code),
                    as_of: None,
                })
                .await
                .map_err(failed)?
                .into_inner();
            let tax = list.tax.clone().unwrap_or_default();
            if endpoints.json {
                let lines: Vec<_> = list
                    .lines
                    .iter()
                    .map(|l| {
                        let total = l.total.clone().unwrap_or_default();
                        json!({"fault": l.fault, "operation": l.operation, "part_numbers": l.part_numbers,
                            "labour_minutes": l.labour_minutes,
                            "net": total.net.map(|m| m.minor_units), "tax": total.tax.map(|m| m.minor_units),
                            "gross": total.gross.map(|m| m.minor_units), "shown": total.shown.map(|m| m.minor_units)})
                    })
                    .collect();
                println!(
                    "{}",
                    json!({"model": list.model, "country": list.country, "currency": list.currency,
                        "version": list.version, "valid_from": list.valid_from,
                        "tax": {"name": tax.name, "rate_basis_points": tax.rate_basis_points, "note": tax.note},
                        "lines": lines})
                );
                return Ok(());
            }
            println!(
                "{} repair prices in {}, list v{} from {}",
                list.model, list.country, list.version, list.valid_from
            );
            println!("{:<22} {:<48} {:>16}", "fault", "operation", "price");
            for l in &list.lines {
                println!(
                    "{:<22} {:<48} {:>16}",
                    l.fault,
                    l.operation,
                    shown(l.total.as_ref())
                );
            }
            println!("{}", tax.note);
        }
        Parts::Quote {
            model,
            country: code,
            fault,
            covered,
        } => {
            let quote = parts
                .propose_quote(ppb::ProposeQuoteRequest {
                    model,
                    country: country(&code),
                    fault,
                    covered,
                    overrides: Vec::new(),
                    as_of: None,
                })
                .await
                .map_err(failed)?
                .into_inner();
            if endpoints.json {
                let lines: Vec<_> = quote
                    .lines
                    .iter()
                    .map(|l| json!({"line": l.line, "description": l.description, "is_labour": l.is_labour,
                        "shown": l.charged.as_ref().and_then(|p| p.shown.as_ref()).map(|m| m.minor_units)}))
                    .collect();
                println!(
                    "{}",
                    json!({"operation": quote.operation, "lines": lines,
                        "customer_pays": quote.customer_pays.as_ref().map(|m| m.minor_units),
                        "covered_value": quote.covered_value.as_ref().map(|m| m.minor_units),
                        "currency": quote.customer_pays.as_ref().map(|m| m.currency.clone())})
                );
                return Ok(());
            }
            println!("{}", quote.operation);
            for l in &quote.lines {
                println!("  {:<48} {:>16}", l.description, shown(l.charged.as_ref()));
            }
            println!(
                "  {:<48} {:>16}",
                "customer pays",
                amount(quote.customer_pays.as_ref())
            );
            if covered {
                println!(
                    "  {:<48} {:>16}",
                    "covered by warranty",
                    amount(quote.covered_value.as_ref())
                );
            }
        }
        Parts::Stock { location, low } => {
            let levels = parts
                .list_stock(ppb::ListStockRequest {
                    location,
                    low_only: low,
                })
                .await
                .map_err(failed)?
                .into_inner()
                .levels;
            if endpoints.json {
                let rows: Vec<_> = levels.iter().map(level_json).collect();
                println!("{}", json!(rows));
                return Ok(());
            }
            println!(
                "{:<14} {:>8} {:>9} {:>10} {:>9} {:>8}",
                "part", "on hand", "reserved", "available", "on order", "reorder"
            );
            for l in &levels {
                println!(
                    "{:<14} {:>8} {:>9} {:>10} {:>9} {:>8}{}",
                    l.part_number,
                    l.on_hand,
                    l.reserved,
                    l.available,
                    l.on_order,
                    l.reorder_point,
                    if l.low { "  low" } else { "" }
                );
            }
        }
        Parts::Receive {
            location,
            part,
            quantity,
            replenishment,
        } => {
            let level = parts
                .receive_stock(ppb::ReceiveStockRequest {
                    location,
                    part_number: part,
                    quantity,
                    replenishment_id: replenishment,
                })
                .await
                .map_err(failed)?
                .into_inner();
            if endpoints.json {
                println!("{}", level_json(&level));
            } else {
                println!(
                    "{} at {}: {} on hand, {} available, {} waiting",
                    level.part_number,
                    level.location,
                    level.on_hand,
                    level.available,
                    level.waiting_orders.len()
                );
            }
        }
        Parts::Reserve {
            location,
            part,
            order,
        } => {
            let reservation = parts
                .reserve_part(ppb::ReservePartRequest {
                    location,
                    part_number: part,
                    repair_order_id: order,
                    quantity: 1,
                })
                .await
                .map_err(failed)?
                .into_inner();
            print_reservation(&reservation, endpoints.json);
        }
        Parts::Release {
            location,
            part,
            order,
            reason,
        } => {
            let reservation = parts
                .release_reservation(ppb::ReleaseReservationRequest {
                    location,
                    part_number: part,
                    repair_order_id: order,
                    reason,
                })
                .await
                .map_err(failed)?
                .into_inner();
            print_reservation(&reservation, endpoints.json);
        }
        Parts::Order {
            customer,
            items,
            imei,
            delivery,
            payment_method,
        } => {
            let mut lines = Vec::with_capacity(items.len());
            for item in &items {
                let (number, quantity) = pair("--item", item, ':')?;
                let quantity = quantity
                    .parse()
                    .map_err(|_| format!("--item: {quantity:?} is not a number of units"))?;
                lines.push(ppb::AccessoryLine {
                    number: number.to_owned(),
                    quantity,
                });
            }
            let device_id = imei.map(|imei| aftersales_proto::common::DeviceId {
                kind: Some(aftersales_proto::common::device_id::Kind::Imei(imei)),
            });
            let order = parts
                .place_accessory_order(ppb::PlaceAccessoryOrderRequest {
                    address: Some(delivery.to(&customer)),
                    customer_id: customer,
                    device_id,
                    lines,
                    payment_method,
                })
                .await
                .map_err(failed)?
                .into_inner();
            print_order(&order, endpoints.json);
        }
        Parts::Replace {
            customer,
            imei,
            serial,
            fault,
            number,
            delivery,
            payment_method,
        } => {
            let order = parts
                .replace_accessory(ppb::ReplaceAccessoryRequest {
                    address: Some(delivery.to(&customer)),
                    customer_id: customer,
                    device_id: Some(aftersales_proto::common::DeviceId {
                        kind: Some(aftersales_proto::common::device_id::Kind::Imei(imei)),
                    }),
                    accessory_serial: serial,
                    fault,
                    number,
                    payment_method,
                })
                .await
                .map_err(failed)?
                .into_inner();
            print_order(&order, endpoints.json);
        }
        Parts::OrderStatus { order, customer } => {
            let order = parts
                .get_accessory_order(ppb::AccessoryOrderRef {
                    order_id: order,
                    customer_id: customer,
                })
                .await
                .map_err(failed)?
                .into_inner();
            print_order(&order, endpoints.json);
        }
        Parts::Return { order, customer } => {
            let order = parts
                .return_accessory_order(ppb::AccessoryOrderRef {
                    order_id: order,
                    customer_id: customer,
                })
                .await
                .map_err(failed)?
                .into_inner();
            print_order(&order, endpoints.json);
        }
        Parts::Ship { order, units } => {
            let mut packed = Vec::with_capacity(units.len());
            for unit in &units {
                let (number, serial) = pair("--unit", unit, '=')?;
                packed.push(ppb::PackedUnit {
                    number: number.to_owned(),
                    serial: serial.to_owned(),
                });
            }
            let order = parts
                .ship_accessory_order(ppb::ShipAccessoryOrderRequest {
                    order_id: order,
                    units: packed,
                })
                .await
                .map_err(failed)?
                .into_inner();
            print_order(&order, endpoints.json);
        }
    }
    Ok(())
}
