//! What repair holds about a customer: their repair orders, with the symptoms
//! they described and, for a mail-in, where the phone is collected from and
//! returned to. Erasure waits while a mail-in order is open (its return parcel
//! needs the address), then destroys the key those were sealed with; the orders
//! themselves stay, by customer id only.

use aftersales_core::Error;
use aftersales_core::types::OrderId;
use aftersales_eventstore::{StoreError, on_read_pool};
use aftersales_runtime::privacy::{Answer, CustomerRecords, Erased, Kept, Obligation, Record};
use sqlx::Row as _;

use crate::app::Repairs;
use crate::domain::order::Stage;

/// Repair's part in a customer's rights.
#[derive(Debug, Clone)]
pub struct RepairRecords {
    app: Repairs,
}

impl RepairRecords {
    pub fn new(app: Repairs) -> Self {
        Self { app }
    }

    /// The customer's orders: (id, channel, stage), oldest first.
    async fn orders(&self, customer: &str) -> Result<Vec<(String, String, String)>, Error> {
        Ok(on_read_pool!(self.app.store(), pool => {
            sqlx::query(
                "SELECT order_id, channel, stage FROM repair_orders WHERE customer_id = $1 \
                 ORDER BY opened_at",
            )
            .bind(customer)
            .fetch_all(pool)
            .await
            .map_err(StoreError::from)?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::from)?
        }))
    }
}

fn finished(stage: &str) -> bool {
    stage == Stage::Closed.as_str() || stage == Stage::Cancelled.as_str()
}

impl CustomerRecords for RepairRecords {
    fn export<'a>(&'a self, customer: &'a str) -> Answer<'a, Vec<Record>> {
        Box::pin(async move {
            let mut records = Vec::new();
            for (id, _, _) in self.orders(customer).await? {
                let (order, _) = self.app.get(&OrderId::parse("order_id", &id)?).await?;
                records.push(Record {
                    kind: "repair_order",
                    id,
                    data: serde_json::to_value(&order)
                        .map_err(|e| Error::internal("repair order").with_source(e))?,
                });
            }
            Ok(records)
        })
    }

    fn obligations<'a>(&'a self, customer: &'a str) -> Answer<'a, Vec<Obligation>> {
        Box::pin(async move {
            Ok(self
                .orders(customer)
                .await?
                .into_iter()
                .filter(|(_, channel, stage)| channel == "mail_in" && !finished(stage))
                .map(|(id, _, _)| Obligation {
                    what: "an open mail-in repair: its return parcel needs the address".into(),
                    id,
                })
                .collect())
        })
    }

    fn subjects<'a>(&'a self, _: &'a str) -> Answer<'a, Vec<String>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn scrub<'a>(&'a self, customer: &'a str) -> Answer<'a, Vec<Erased>> {
        Box::pin(async move {
            let orders = self.orders(customer).await?.len();
            let mut tx = aftersales_eventstore::EventStore::begin(self.app.store()).await?;
            let placed = crate::network::forget_places(&mut tx, customer).await?;
            tx.commit().await?;
            Ok(vec![
                Erased {
                    what: "repair orders: the symptoms described and the mail-in address".into(),
                    count: u64::try_from(orders).unwrap_or(u64::MAX),
                },
                Erased {
                    what: "the city their orders were counted in for network planning".into(),
                    count: placed,
                },
            ])
        })
    }

    fn kept(&self) -> Vec<Kept> {
        vec![Kept {
            what: "repair orders: the device, each step, who did it, parts and prices".into(),
            why: "the guarantee on the repair and its invoice must be kept as the law \
                  requires; they name the customer by id only"
                .into(),
        }]
    }
}
