//! Read models of the parts log: each part's stock level at each location, the
//! serials fitted, and accessory orders by their payment and by their customer. Rebuilt from the log with
//! `aftersales_eventstore::projection::rebuild`.

use aftersales_eventstore::{
    AnyEventStore, Projection, RecordedEvent, StoreError, StoreTransaction, on_connection,
};
use chrono::{DateTime, Utc};

use crate::app::parse_stock_stream;
use crate::domain::stock::Event;

/// The read models' tables, one set for both backends.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Every rebuildable read model of the parts log.
pub fn all(_store: &AnyEventStore) -> aftersales_eventstore::Projections {
    vec![
        std::sync::Arc::new(StockLevels),
        std::sync::Arc::new(OrderPayments),
        std::sync::Arc::new(CustomerOrders),
    ]
}

/// How the read models write times: sortable as text.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Stock levels by location and part, kept by each event's change: a hot part's
/// long stream is never read back. A row remembers the stream version it is at,
/// so an event applied again (two replicas following one log, or a batch
/// replayed after a crash) changes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct StockLevels;

/// What one event changes in a level row.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Delta {
    on_hand: i64,
    reserved: i64,
    on_order: i64,
    waiting: i64,
    reorder_point: Option<i64>,
    low: bool,
}

fn delta(event: &Event) -> Delta {
    let n = i64::from;
    match event {
        Event::StockReceived {
            quantity,
            no_longer_on_order,
            ..
        } => Delta {
            on_hand: n(*quantity),
            on_order: -n(*no_longer_on_order),
            ..Delta::default()
        },
        Event::ReplenishmentOrdered { quantity, .. } => Delta {
            on_order: n(*quantity),
            ..Delta::default()
        },
        Event::ReorderPointSet { point } => Delta {
            reorder_point: Some(n(*point)),
            ..Delta::default()
        },
        Event::PartReserved {
            quantity,
            from_waitlist,
            ..
        } => Delta {
            reserved: n(*quantity),
            waiting: if *from_waitlist { -1 } else { 0 },
            ..Delta::default()
        },
        Event::PartBackordered { .. } => Delta {
            waiting: 1,
            ..Delta::default()
        },
        Event::ReservationReleased {
            quantity,
            was_waiting,
            ..
        } => {
            if *was_waiting {
                Delta {
                    waiting: -1,
                    ..Delta::default()
                }
            } else {
                Delta {
                    reserved: -n(*quantity),
                    ..Delta::default()
                }
            }
        }
        Event::PartConsumed { .. } => Delta {
            on_hand: -1,
            reserved: -1,
            ..Delta::default()
        },
        Event::StockLow { .. } => Delta {
            low: true,
            ..Delta::default()
        },
        Event::ReplenishmentOverdue { .. } => Delta::default(),
    }
}

impl Projection for StockLevels {
    fn name(&self) -> &'static str {
        "parts-stock-levels"
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        let Some((location, part_number)) = parse_stock_stream(event.stream_id.as_str()) else {
            return Ok(());
        };
        let domain: Event = event.decode()?;
        let d = delta(&domain);
        let version = i64::try_from(event.stream_version).unwrap_or(i64::MAX);
        // Low stays set until free units rise above the reorder point again.
        let upsert = "INSERT INTO stock_levels \
             (location, part_number, on_hand, reserved, on_order, waiting, reorder_point, low, version) \
             VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, 0), $8, $9) \
             ON CONFLICT (location, part_number) DO UPDATE SET \
             on_hand = stock_levels.on_hand + excluded.on_hand, \
             reserved = stock_levels.reserved + excluded.reserved, \
             on_order = stock_levels.on_order + excluded.on_order, \
             waiting = stock_levels.waiting + excluded.waiting, \
             reorder_point = COALESCE($7, stock_levels.reorder_point), \
             low = CASE WHEN excluded.low = 1 THEN 1 ELSE stock_levels.low END, \
             version = excluded.version \
             WHERE stock_levels.version < excluded.version";
        let settle = "UPDATE stock_levels SET low = 0 \
             WHERE location = $1 AND part_number = $2 AND on_hand - reserved > reorder_point";
        on_connection!(tx.connection(), c => {
            sqlx::query(upsert)
                .bind(location)
                .bind(part_number)
                .bind(d.on_hand)
                .bind(d.reserved)
                .bind(d.on_order)
                .bind(d.waiting)
                .bind(d.reorder_point)
                .bind(i64::from(d.low))
                .bind(version)
                .execute(&mut *c)
                .await?;
            sqlx::query(settle).bind(location).bind(part_number).execute(&mut *c).await?;
        });
        if let Event::PartConsumed { order, serial } = &domain
            && !serial.is_empty()
        {
            let sql = "INSERT INTO consumed_serials \
                       (part_number, serial, location, repair_order_id, consumed_at) \
                       VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
            on_connection!(tx.connection(), c => {
                sqlx::query(sql)
                    .bind(part_number)
                    .bind(serial)
                    .bind(location)
                    .bind(order)
                    .bind(timestamp(event.metadata.recorded_at))
                    .execute(c)
                    .await?;
            });
        }
        Ok(())
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        tx.empty_tables(&["stock_levels"]).await
    }
}

/// Accessory orders by the id of their payment at the provider, and those whose
/// payment has not settled yet.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderPayments;

impl Projection for OrderPayments {
    fn name(&self) -> &'static str {
        "parts-order-payments"
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        let Some(order_id) = event.stream_id.as_str().strip_prefix("accessory-order-") else {
            return Ok(());
        };
        match event.event_type.as_str() {
            "AccessoryOrderPlaced" | "AccessoryReplacementPlaced" => {
                let crate::domain::order::Event::AccessoryOrderPlaced {
                    payment_id,
                    placed_on,
                    ..
                } = event.decode()?
                else {
                    return Ok(());
                };
                if payment_id.is_empty() {
                    return Ok(()); // a replacement under warranty: nothing to pay
                }
                on_connection!(tx.connection(), c => {
                    sqlx::query(
                        "INSERT INTO parts_order_payments (payment_id, order_id) VALUES ($1, $2) \
                         ON CONFLICT (payment_id) DO NOTHING",
                    )
                    .bind(payment_id.clone())
                    .bind(order_id.to_owned())
                    .execute(&mut *c)
                    .await?;
                    sqlx::query(
                        "INSERT INTO parts_pending_payments (payment_id, order_id, placed_on) \
                         VALUES ($1, $2, $3) ON CONFLICT (payment_id) DO NOTHING",
                    )
                    .bind(payment_id)
                    .bind(order_id.to_owned())
                    .bind(placed_on.to_string())
                    .execute(c)
                    .await?;
                });
            }
            "AccessoryOrderPaid" | "AccessoryOrderPaymentFailed" => {
                on_connection!(tx.connection(), c => {
                    sqlx::query("DELETE FROM parts_pending_payments WHERE order_id = $1")
                        .bind(order_id.to_owned())
                        .execute(c)
                        .await?;
                });
            }
            _ => {}
        }
        Ok(())
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        tx.empty_tables(&["parts_order_payments", "parts_pending_payments"])
            .await
    }
}

/// Accessory orders by their customer, for the customer's rights over their data.
#[derive(Debug, Clone, Copy, Default)]
pub struct CustomerOrders;

impl Projection for CustomerOrders {
    fn name(&self) -> &'static str {
        "parts-customer-orders"
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        let Some(order_id) = event.stream_id.as_str().strip_prefix("accessory-order-") else {
            return Ok(());
        };
        if !matches!(
            event.event_type.as_str(),
            "AccessoryOrderPlaced" | "AccessoryReplacementPlaced"
        ) {
            return Ok(());
        }
        let crate::domain::order::Event::AccessoryOrderPlaced {
            customer_id,
            placed_on,
            ..
        } = event.decode()?
        else {
            return Ok(());
        };
        on_connection!(tx.connection(), c => {
            sqlx::query(
                "INSERT INTO parts_customer_orders (order_id, customer_id, placed_on) \
                 VALUES ($1, $2, $3) ON CONFLICT (order_id) DO NOTHING",
            )
            .bind(order_id.to_owned())
            .bind(customer_id)
            .bind(placed_on.to_string())
            .execute(c)
            .await?;
        });
        Ok(())
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        tx.empty_tables(&["parts_customer_orders"]).await
    }
}

/// The customer's accessory orders, oldest first.
pub async fn orders_of(
    store: &AnyEventStore,
    customer_id: &str,
) -> Result<Vec<String>, StoreError> {
    aftersales_eventstore::on_read_pool!(store, pool => {
        Ok(sqlx::query_scalar(
            "SELECT order_id FROM parts_customer_orders WHERE customer_id = $1 \
             ORDER BY placed_on, order_id",
        )
        .bind(customer_id.to_owned())
        .fetch_all(pool)
        .await?)
    })
}

/// The accessory order `payment_id` pays for, once the read model has it.
pub async fn order_of_payment(
    store: &AnyEventStore,
    payment_id: &str,
) -> Result<Option<String>, StoreError> {
    aftersales_eventstore::on_read_pool!(store, pool => {
        Ok(sqlx::query_scalar("SELECT order_id FROM parts_order_payments WHERE payment_id = $1")
            .bind(payment_id.to_owned())
            .fetch_optional(pool)
            .await?)
    })
}

/// Payments of accessory orders not settled yet, oldest first: `(payment id, order id)`.
pub async fn pending_payments(
    store: &AnyEventStore,
    limit: i64,
) -> Result<Vec<(String, String)>, StoreError> {
    aftersales_eventstore::on_read_pool!(store, pool => {
        Ok(sqlx::query_as(
            "SELECT payment_id, order_id FROM parts_pending_payments ORDER BY placed_on LIMIT $1",
        )
        .bind(limit)
        .fetch_all(pool)
        .await?)
    })
}
