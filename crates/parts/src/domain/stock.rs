//! One part's stock at one location (a service center or a depot) as a decider:
//! units on hand, the repair orders holding some, the line of orders waiting for
//! the next, and replenishments on order with the law's delivery clock.
//!
//! The line is first come, first served: units freed by a release or brought by
//! a delivery go to the oldest waiting order, and a later order never jumps one
//! that needs more than is free.

use std::collections::BTreeMap;

use aftersales_eventstore::{Decider, DomainEvent};
use chrono::{DateTime, Datelike as _, NaiveDate, Utc, Weekday};
use serde::{Deserialize, Serialize};

use super::DomainError;

/// Orders one part at one location keeps in line at most.
pub const MAX_WAITING: usize = 1_000;
/// Replenishments one part at one location has open at most.
pub const MAX_OPEN_REPLENISHMENTS: usize = 100;
/// Units one command moves at most.
pub const MAX_QUANTITY: u32 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub order: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replenishment {
    pub quantity: u32,
    pub ordered_at: DateTime<Utc>,
    pub expected_on: NaiveDate,
    pub due_by: NaiveDate,
    pub overdue: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StockState {
    pub on_hand: u32,
    /// Units held, by repair order.
    pub reserved: BTreeMap<String, u32>,
    /// Oldest first.
    pub waiting: Vec<Waiting>,
    /// Open replenishments by id.
    pub replenishments: BTreeMap<String, Replenishment>,
    pub reorder_point: u32,
    /// Reported low and not refilled above the reorder point since.
    pub low: bool,
}

impl StockState {
    pub fn reserved_total(&self) -> u32 {
        self.reserved.values().sum()
    }

    pub fn available(&self) -> u32 {
        self.on_hand.saturating_sub(self.reserved_total())
    }

    pub fn on_order(&self) -> u32 {
        self.replenishments.values().map(|r| r.quantity).sum()
    }

    /// The day the replenishments on order bring enough units for the line up
    /// to and including place `position` (1 is next), if they ever do.
    pub fn expected_for(&self, position: usize) -> Option<NaiveDate> {
        let needed: u32 = self.waiting.iter().take(position).map(|w| w.quantity).sum();
        let mut arriving: Vec<&Replenishment> = self.replenishments.values().collect();
        arriving.sort_by_key(|r| r.expected_on);
        let mut units = self.available();
        for replenishment in arriving {
            units = units.saturating_add(replenishment.quantity);
            if units >= needed {
                return Some(replenishment.expected_on);
            }
        }
        None
    }

    fn waiting_total(&self) -> u32 {
        self.waiting.iter().map(|w| w.quantity).sum()
    }

    /// Where `order` is in line, 1 being next.
    pub fn position(&self, order: &str) -> Option<usize> {
        self.waiting
            .iter()
            .position(|w| w.order == order)
            .map(|i| i + 1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Receive {
        quantity: u32,
        replenishment_id: Option<String>,
    },
    OrderReplenishment {
        replenishment_id: String,
        quantity: u32,
        ordered_at: DateTime<Utc>,
        expected_on: NaiveDate,
        due_by: NaiveDate,
    },
    SetReorderPoint {
        point: u32,
    },
    /// A unit for a repair, or a place in line; what the line needs beyond
    /// what is free and on order is ordered from the depot as `restock`.
    Reserve {
        order: String,
        quantity: u32,
        restock: Restock,
    },
    Release {
        order: String,
        reason: String,
    },
    Consume {
        order: String,
        serial: String,
    },
    /// Flags replenishments whose delivery clock ran out before `today`.
    FlagOverdue {
        today: NaiveDate,
    },
}

/// The depot order a backorder places when what is on order falls short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restock {
    pub replenishment_id: String,
    pub ordered_at: DateTime<Utc>,
    /// The law's latest delivery day, which the depot is held to.
    pub due_by: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    StockReceived {
        quantity: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replenishment_id: Option<String>,
        /// What that replenishment had on order (it may deliver more or less).
        #[serde(default)]
        no_longer_on_order: u32,
    },
    ReplenishmentOrdered {
        replenishment_id: String,
        quantity: u32,
        ordered_at: DateTime<Utc>,
        expected_on: NaiveDate,
        due_by: NaiveDate,
    },
    ReorderPointSet {
        point: u32,
    },
    PartReserved {
        order: String,
        quantity: u32,
        from_waitlist: bool,
    },
    PartBackordered {
        order: String,
        quantity: u32,
        /// When the units on order reach this place in line; none when
        /// nothing on order does.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_on: Option<NaiveDate>,
    },
    ReservationReleased {
        order: String,
        quantity: u32,
        was_waiting: bool,
        reason: String,
    },
    PartConsumed {
        order: String,
        serial: String,
    },
    StockLow {
        available: u32,
        reorder_point: u32,
        on_order: u32,
    },
    ReplenishmentOverdue {
        replenishment_id: String,
        ordered_at: DateTime<Utc>,
        due_by: NaiveDate,
    },
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Self::StockReceived { .. } => "StockReceived",
            Self::ReplenishmentOrdered { .. } => "ReplenishmentOrdered",
            Self::ReorderPointSet { .. } => "ReorderPointSet",
            Self::PartReserved { .. } => "PartReserved",
            Self::PartBackordered { .. } => "PartBackordered",
            Self::ReservationReleased { .. } => "ReservationReleased",
            Self::PartConsumed { .. } => "PartConsumed",
            Self::StockLow { .. } => "StockLow",
            Self::ReplenishmentOverdue { .. } => "ReplenishmentOverdue",
        }
    }
}

/// The decider of one part's stock at one location.
#[derive(Debug, Clone, Copy)]
pub struct Stock;

fn quantity(value: u32) -> Result<u32, DomainError> {
    if value == 0 || value > MAX_QUANTITY {
        return Err(DomainError::invalid(
            "quantity",
            format!("must be 1 to {MAX_QUANTITY}"),
        ));
    }
    Ok(value)
}

/// The reservations the line gets from what is free in `state`, oldest first.
fn serve_line(state: &StockState) -> Vec<Event> {
    let mut free = state.available();
    let mut served = Vec::new();
    for waiting in &state.waiting {
        if waiting.quantity > free {
            break;
        }
        free -= waiting.quantity;
        served.push(Event::PartReserved {
            order: waiting.order.clone(),
            quantity: waiting.quantity,
            from_waitlist: true,
        });
    }
    served
}

/// `order` joins the line; the shortfall of the whole line against what is
/// free and on order is ordered from the depot in the same append.
fn backorder(state: &StockState, order: &str, q: u32, restock: &Restock) -> Vec<Event> {
    let mut events = Vec::new();
    let needed = state.waiting_total().saturating_add(q);
    let covered = state.available().saturating_add(state.on_order());
    if needed > covered
        && state.replenishments.len() < MAX_OPEN_REPLENISHMENTS
        && !state.replenishments.contains_key(&restock.replenishment_id)
    {
        events.push(Event::ReplenishmentOrdered {
            replenishment_id: restock.replenishment_id.clone(),
            quantity: (needed - covered).min(MAX_QUANTITY),
            ordered_at: restock.ordered_at,
            expected_on: restock.due_by,
            due_by: restock.due_by,
        });
    }
    let mut after = events.iter().fold(state.clone(), Stock::evolve);
    after.waiting.push(Waiting {
        order: order.to_owned(),
        quantity: q,
    });
    events.push(Event::PartBackordered {
        order: order.to_owned(),
        quantity: q,
        expected_on: after.expected_for(after.waiting.len()),
    });
    events
}

impl Decider for Stock {
    type Command = Command;
    type Event = Event;
    type State = StockState;
    type Error = DomainError;

    fn initial_state() -> StockState {
        StockState::default()
    }

    fn decide(state: &StockState, command: &Command) -> Result<Vec<Event>, DomainError> {
        let mut events = match command {
            Command::Receive {
                quantity: q,
                replenishment_id,
            } => {
                let q = quantity(*q)?;
                let no_longer_on_order = match replenishment_id {
                    Some(id) => {
                        state
                            .replenishments
                            .get(id)
                            .ok_or_else(|| {
                                DomainError::NotFound(format!("open replenishment {id}"))
                            })?
                            .quantity
                    }
                    None => 0,
                };
                if state.on_hand.saturating_add(q) > MAX_QUANTITY {
                    return Err(DomainError::Exhausted(format!(
                        "a location holds at most {MAX_QUANTITY} units of a part"
                    )));
                }
                let received = Event::StockReceived {
                    quantity: q,
                    replenishment_id: replenishment_id.clone(),
                    no_longer_on_order,
                };
                let after = Self::evolve(state.clone(), &received);
                let mut events = vec![received];
                events.extend(serve_line(&after));
                events
            }
            Command::OrderReplenishment {
                replenishment_id,
                quantity: q,
                ordered_at,
                expected_on,
                due_by,
            } => {
                let q = quantity(*q)?;
                if state.replenishments.contains_key(replenishment_id) {
                    return Ok(Vec::new());
                }
                if state.replenishments.len() >= MAX_OPEN_REPLENISHMENTS {
                    return Err(DomainError::Exhausted(format!(
                        "at most {MAX_OPEN_REPLENISHMENTS} replenishments open per part and location"
                    )));
                }
                if expected_on < &ordered_at.date_naive() {
                    return Err(DomainError::invalid(
                        "expected_on",
                        "must not be before the order",
                    ));
                }
                vec![Event::ReplenishmentOrdered {
                    replenishment_id: replenishment_id.clone(),
                    quantity: q,
                    ordered_at: *ordered_at,
                    expected_on: *expected_on,
                    due_by: *due_by,
                }]
            }
            Command::SetReorderPoint { point } => {
                if *point > MAX_QUANTITY {
                    return Err(DomainError::invalid(
                        "reorder_point",
                        format!("must be 0 to {MAX_QUANTITY}"),
                    ));
                }
                if *point == state.reorder_point {
                    return Ok(Vec::new());
                }
                vec![Event::ReorderPointSet { point: *point }]
            }
            Command::Reserve {
                order,
                quantity: q,
                restock,
            } => {
                let q = quantity(*q)?;
                if state.reserved.contains_key(order) || state.position(order).is_some() {
                    return Ok(Vec::new());
                }
                // Nobody jumps the line: free units go to those waiting first.
                if state.waiting.is_empty() && state.available() >= q {
                    vec![Event::PartReserved {
                        order: order.clone(),
                        quantity: q,
                        from_waitlist: false,
                    }]
                } else {
                    if state.waiting.len() >= MAX_WAITING {
                        return Err(DomainError::Exhausted(format!(
                            "{MAX_WAITING} repairs already wait for this part here"
                        )));
                    }
                    backorder(state, order, q, restock)
                }
            }
            Command::Release { order, reason } => {
                let released = if let Some(held) = state.reserved.get(order) {
                    Event::ReservationReleased {
                        order: order.clone(),
                        quantity: *held,
                        was_waiting: false,
                        reason: reason.clone(),
                    }
                } else if let Some(i) = state.position(order) {
                    Event::ReservationReleased {
                        order: order.clone(),
                        quantity: state.waiting[i - 1].quantity,
                        was_waiting: true,
                        reason: reason.clone(),
                    }
                } else {
                    // Released already, consumed, or never asked: nothing to do.
                    return Ok(Vec::new());
                };
                let after = Self::evolve(state.clone(), &released);
                let mut events = vec![released];
                events.extend(serve_line(&after));
                events
            }
            Command::Consume { order, serial } => {
                if !state.reserved.contains_key(order) {
                    let why = if state.position(order).is_some() {
                        "is still waiting for a unit"
                    } else {
                        "holds no unit here"
                    };
                    return Err(DomainError::Precondition(format!(
                        "repair order {order} {why}; a part is fitted from a reservation"
                    )));
                }
                vec![Event::PartConsumed {
                    order: order.clone(),
                    serial: serial.clone(),
                }]
            }
            Command::FlagOverdue { today } => state
                .replenishments
                .iter()
                .filter(|(_, r)| !r.overdue && r.due_by < *today)
                .map(|(id, r)| Event::ReplenishmentOverdue {
                    replenishment_id: id.clone(),
                    ordered_at: r.ordered_at,
                    due_by: r.due_by,
                })
                .collect(),
        };
        // Low stock is reported once each time the free units fall to the point.
        let after = events.iter().fold(state.clone(), Self::evolve);
        if !after.low && after.reorder_point > 0 && after.available() <= after.reorder_point {
            events.push(Event::StockLow {
                available: after.available(),
                reorder_point: after.reorder_point,
                on_order: after.on_order(),
            });
        }
        Ok(events)
    }

    fn evolve(mut state: StockState, event: &Event) -> StockState {
        match event {
            Event::StockReceived {
                quantity,
                replenishment_id,
                ..
            } => {
                state.on_hand = state.on_hand.saturating_add(*quantity);
                if let Some(id) = replenishment_id {
                    state.replenishments.remove(id);
                }
            }
            Event::ReplenishmentOrdered {
                replenishment_id,
                quantity,
                ordered_at,
                expected_on,
                due_by,
            } => {
                state.replenishments.insert(
                    replenishment_id.clone(),
                    Replenishment {
                        quantity: *quantity,
                        ordered_at: *ordered_at,
                        expected_on: *expected_on,
                        due_by: *due_by,
                        overdue: false,
                    },
                );
            }
            Event::ReorderPointSet { point } => state.reorder_point = *point,
            Event::PartReserved {
                order, quantity, ..
            } => {
                state.waiting.retain(|w| w.order != *order);
                state.reserved.insert(order.clone(), *quantity);
            }
            Event::PartBackordered {
                order, quantity, ..
            } => state.waiting.push(Waiting {
                order: order.clone(),
                quantity: *quantity,
            }),
            Event::ReservationReleased { order, .. } => {
                state.reserved.remove(order);
                state.waiting.retain(|w| w.order != *order);
            }
            Event::PartConsumed { order, .. } => {
                state.on_hand = state.on_hand.saturating_sub(1);
                if let Some(held) = state.reserved.get_mut(order) {
                    *held = held.saturating_sub(1);
                    if *held == 0 {
                        state.reserved.remove(order);
                    }
                }
            }
            Event::StockLow { .. } => state.low = true,
            Event::ReplenishmentOverdue {
                replenishment_id, ..
            } => {
                if let Some(r) = state.replenishments.get_mut(replenishment_id) {
                    r.overdue = true;
                }
            }
        }
        if state.available() > state.reorder_point {
            state.low = false;
        }
        state
    }
}

/// The day `working_days` working days (Monday to Friday) after `from`.
pub fn add_working_days(from: NaiveDate, working_days: u32) -> NaiveDate {
    let mut day = from;
    let mut left = working_days;
    while left > 0 {
        day = day.succ_opt().unwrap_or(day);
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            left -= 1;
        }
    }
    day
}

#[cfg(test)]
mod tests;
