//! What warranty holds about a customer: the phones registered to them, with
//! their purchases, plans and claims. None of it is personal beyond the
//! customer's id, so erasure has nothing to destroy; it records the request and
//! says what is kept and why.

use aftersales_runtime::privacy::{Answer, CustomerRecords, Erased, Kept, Obligation, Record};

use crate::app::Warranty;

/// Most devices exported for one customer.
const MOST_DEVICES: i64 = 1000;

/// Warranty's part in a customer's rights.
#[derive(Debug, Clone)]
pub struct WarrantyRecords {
    app: Warranty,
}

impl WarrantyRecords {
    pub fn new(app: Warranty) -> Self {
        Self { app }
    }
}

impl CustomerRecords for WarrantyRecords {
    fn export<'a>(&'a self, customer: &'a str) -> Answer<'a, Vec<Record>> {
        Box::pin(async move {
            let mut records = Vec::new();
            for row in self
                .app
                .devices_of_customer(customer, "", MOST_DEVICES)
                .await?
            {
                let device = self.app.device(&row.key, None).await?;
                records.push(Record {
                    kind: "device",
                    id: row.stream_id,
                    data: serde_json::to_value(&device)
                        .map_err(|e| aftersales_core::Error::internal("device").with_source(e))?,
                });
            }
            Ok(records)
        })
    }

    fn obligations<'a>(&'a self, _: &'a str) -> Answer<'a, Vec<Obligation>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn subjects<'a>(&'a self, _: &'a str) -> Answer<'a, Vec<String>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn scrub<'a>(&'a self, _: &'a str) -> Answer<'a, Vec<Erased>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn kept(&self) -> Vec<Kept> {
        vec![Kept {
            what: "phones registered to the customer: purchase, warranty, plans bought, \
                   claims and coverage decisions"
                .into(),
            why: "the legal guarantee runs on them and invoices for plans must be kept as \
                  the law requires; they name the customer by id only"
                .into(),
        }]
    }
}
