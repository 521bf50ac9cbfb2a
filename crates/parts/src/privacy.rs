//! What parts holds about a customer: their accessory orders and replacements,
//! whose delivery address is sealed under the customer's key. Erasure waits for
//! an order still to reach them or come back, then destroys that key; what was
//! sold, for how much and with which serials stays, as invoices must.

use aftersales_core::Error;
use aftersales_runtime::privacy::{Answer, CustomerRecords, Erased, Kept, Obligation, Record};

use crate::domain::order::Stage;
use crate::orders::{AccessoryOrders, OrderView};

/// Parts' part in a customer's rights.
#[derive(Debug, Clone)]
pub struct PartsRecords {
    orders: AccessoryOrders,
}

impl PartsRecords {
    pub fn new(orders: AccessoryOrders) -> Self {
        Self { orders }
    }

    async fn orders(&self, customer: &str) -> Result<Vec<OrderView>, Error> {
        let ids = crate::projections::orders_of(self.orders.store(), customer).await?;
        let mut orders = Vec::with_capacity(ids.len());
        for id in ids {
            orders.push(self.orders.get(&id, Some(customer)).await?);
        }
        Ok(orders)
    }
}

/// Whether the order still needs the customer's address: a parcel to make or
/// on its way (out, back, or the faulty unit's).
fn needs_address(order: &OrderView) -> bool {
    let faulty_on_its_way = order
        .state
        .faulty_back
        .as_ref()
        .is_some_and(|back| back.received_on.is_none());
    faulty_on_its_way
        || matches!(
            order.state.stage(),
            Stage::AwaitingPayment | Stage::Paid | Stage::Shipped | Stage::ReturnRequested
        )
}

impl CustomerRecords for PartsRecords {
    fn export<'a>(&'a self, customer: &'a str) -> Answer<'a, Vec<Record>> {
        Box::pin(async move {
            let mut records = Vec::new();
            for order in self.orders(customer).await? {
                let kind = match order.state.replacing {
                    Some(_) => "accessory_replacement",
                    None => "accessory_order",
                };
                records.push(Record {
                    kind,
                    id: order.order_id.clone(),
                    data: serde_json::to_value(&order.state)
                        .map_err(|e| Error::internal("export").with_source(e))?,
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
                .iter()
                .filter(|order| needs_address(order))
                .map(|order| Obligation {
                    what:
                        "an accessory order not yet delivered or back: its parcel needs the address"
                            .into(),
                    id: order.order_id.clone(),
                })
                .collect())
        })
    }

    /// Everything is sealed under the customer's own key.
    fn subjects<'a>(&'a self, _customer: &'a str) -> Answer<'a, Vec<String>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// No read model copies the address; the count says what the key held.
    fn scrub<'a>(&'a self, customer: &'a str) -> Answer<'a, Vec<Erased>> {
        Box::pin(async move {
            let orders = self.orders(customer).await?;
            Ok(vec![Erased {
                what: "accessory orders and replacements: the delivery address".into(),
                count: u64::try_from(orders.len()).unwrap_or(u64::MAX),
            }])
        })
    }

    fn kept(&self) -> Vec<Kept> {
        vec![Kept {
            what: "accessory orders: what was sold or replaced, prices with tax, payment and \
                   refund ids, units' serials, dates"
                .into(),
            why: "the invoice records tax law requires to be kept (in Germany ten years, \
                  §147 AO), and the serials the accessories' warranty rests on; under the \
                  customer's pseudonymous id, without the address"
                .into(),
        }]
    }
}
