//! What logistics holds about a customer: their parcels (addresses and labels,
//! each sealed under its own key) and their mail-in orders' addresses (sealed
//! under the customer's). Erasure waits for parcels on their way, then destroys
//! all of those keys; tracking without addresses stays.

use std::collections::BTreeSet;

use aftersales_core::Error;
use aftersales_eventstore::{StoreError, on_read_pool};
use aftersales_runtime::privacy::{Answer, CustomerRecords, Erased, Kept, Obligation, Record};
use sqlx::Row as _;

use crate::app::Logistics;

/// Logistics' part in a customer's rights.
#[derive(Debug, Clone)]
pub struct LogisticsRecords {
    app: Logistics,
}

/// One of the customer's parcels, as the read model has it.
struct Parcel {
    id: String,
    order: Option<String>,
    inbound: bool,
    status: String,
    active: bool,
}

impl LogisticsRecords {
    pub fn new(app: Logistics) -> Self {
        Self { app }
    }

    async fn parcels(&self, customer: &str) -> Result<Vec<Parcel>, Error> {
        Ok(on_read_pool!(self.app.store(), pool => {
            sqlx::query(
                "SELECT shipment_id, repair_order_id, direction, status, active FROM shipments \
                 WHERE customer_id = $1 ORDER BY created_at",
            )
            .bind(customer)
            .fetch_all(pool)
            .await
            .map_err(StoreError::from)?
            .iter()
            .map(|row| {
                Ok(Parcel {
                    id: row.try_get(0)?,
                    order: row.try_get(1)?,
                    inbound: row.try_get::<String, _>(2)? == "inbound",
                    status: row.try_get(3)?,
                    active: row.try_get::<i32, _>(4)? != 0,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::from)?
        }))
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::internal("export").with_source(e))
}

impl CustomerRecords for LogisticsRecords {
    fn export<'a>(&'a self, customer: &'a str) -> Answer<'a, Vec<Record>> {
        Box::pin(async move {
            let parcels = self.parcels(customer).await?;
            let mut records = Vec::new();
            let orders: BTreeSet<&str> =
                parcels.iter().filter_map(|p| p.order.as_deref()).collect();
            for order in orders {
                records.push(Record {
                    kind: "repair_order_logistics",
                    id: order.to_owned(),
                    data: json(&self.app.order(order).await?)?,
                });
            }
            for parcel in &parcels {
                records.push(Record {
                    kind: "shipment",
                    id: parcel.id.clone(),
                    data: json(&self.app.shipment(&parcel.id).await?.state)?,
                });
            }
            Ok(records)
        })
    }

    /// A parcel on its way, or a phone received at the depot that has yet to go
    /// back (its return parcel is made from the order's address).
    fn obligations<'a>(&'a self, customer: &'a str) -> Answer<'a, Vec<Obligation>> {
        Box::pin(async move {
            let parcels = self.parcels(customer).await?;
            let returned: BTreeSet<&str> = parcels
                .iter()
                .filter(|p| !p.inbound)
                .filter_map(|p| p.order.as_deref())
                .collect();
            let mut waiting: Vec<Obligation> = parcels
                .iter()
                .filter(|p| p.active)
                .map(|p| Obligation {
                    what: "a parcel on its way: the carrier needs its addresses".into(),
                    id: p.id.clone(),
                })
                .collect();
            waiting.extend(
                parcels
                    .iter()
                    .filter(|p| p.inbound && p.status == "delivered")
                    .filter_map(|p| p.order.as_deref())
                    .filter(|order| !returned.contains(order))
                    .map(|order| Obligation {
                        what: "a phone at the depot: its return parcel needs the address".into(),
                        id: order.to_owned(),
                    }),
            );
            Ok(waiting)
        })
    }

    /// Each parcel is sealed under its own key.
    fn subjects<'a>(&'a self, customer: &'a str) -> Answer<'a, Vec<String>> {
        Box::pin(async move {
            Ok(self
                .parcels(customer)
                .await?
                .into_iter()
                .map(|p| p.id)
                .collect())
        })
    }

    fn scrub<'a>(&'a self, customer: &'a str) -> Answer<'a, Vec<Erased>> {
        Box::pin(async move {
            let parcels = self.parcels(customer).await?;
            let orders: BTreeSet<_> = parcels.iter().filter_map(|p| p.order.clone()).collect();
            let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
            Ok(vec![
                Erased {
                    what: "parcels: both addresses and the label printing them".into(),
                    count: count(parcels.len()),
                },
                Erased {
                    what: "mail-in orders: the customer's address".into(),
                    count: count(orders.len()),
                },
            ])
        })
    }

    fn kept(&self) -> Vec<Kept> {
        vec![Kept {
            what: "parcels' tracking: carrier, tracking number, scans and times".into(),
            why: "proof of who held the device when, for the repair's audit; without any \
                  address"
                .into(),
        }]
    }
}
