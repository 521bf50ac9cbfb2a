//! One live stream per repair order, shared by every page open on it: a
//! thousand open pages cost the repair service one `WatchRepair`, not a
//! thousand, and logistics one look at the order's parcels every few seconds.
//! Each page is authorized on its own (`GetRepair` with its person's token)
//! before it joins; the shared stream is opened with the first joiner's token
//! and ends when its last page closes (or the service ends it, which the
//! pages' `EventSource` answers by joining again).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aftersales_proto::logistics as lpb;
use aftersales_proto::logistics::logistics_service_client::LogisticsServiceClient;
use aftersales_proto::repair as rpb;
use aftersales_proto::repair::repair_service_client::RepairServiceClient;
use tokio::sync::broadcast;
use tonic::transport::Channel;

/// How many changes a slow page may fall behind before it skips ahead.
const BACKLOG: usize = 16;

/// How often an order's parcels are looked at while a page shows them.
const PARCELS_EVERY: std::time::Duration = std::time::Duration::from_secs(3);

/// What changed on an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It moved to this stage.
    Stage(i32),
    /// A parcel of it was scanned, created or cancelled.
    Parcels,
}

#[derive(Debug)]
pub struct Feeds {
    repair: RepairServiceClient<Channel>,
    logistics: LogisticsServiceClient<Channel>,
    by_order: Arc<Mutex<HashMap<String, broadcast::Sender<Change>>>>,
}

impl Feeds {
    pub fn new(
        repair: RepairServiceClient<Channel>,
        logistics: LogisticsServiceClient<Channel>,
    ) -> Self {
        Self {
            repair,
            logistics,
            by_order: Arc::default(),
        }
    }

    /// What changes on `order_id`, from the shared stream (opened with `token`
    /// if none runs; its parcels looked at only for a mail-in). The caller has
    /// authorized the person first.
    pub fn join(&self, order_id: &str, token: &str, mail_in: bool) -> broadcast::Receiver<Change> {
        let Ok(mut feeds) = self.by_order.lock() else {
            // A poisoned map: a feed of one, closed at once.
            return broadcast::channel(1).1;
        };
        if let Some(sender) = feeds.get(order_id) {
            return sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(BACKLOG);
        feeds.insert(order_id.to_owned(), sender.clone());
        let (by_order, mut repair) = (Arc::clone(&self.by_order), self.repair.clone());
        let mut parcels = Parcels {
            logistics: self.logistics.clone(),
            order_id: order_id.to_owned(),
            token: token.to_owned(),
            seen: None,
        };
        let (order_id, request) = (
            order_id.to_owned(),
            crate::pages::authorized(
                rpb::OrderRef {
                    order_id: order_id.to_owned(),
                },
                token,
            ),
        );
        tokio::spawn(async move {
            if let Ok(stream) = repair.watch_repair(request).await {
                let mut stream = stream.into_inner();
                let mut every = tokio::time::interval(PARCELS_EVERY);
                loop {
                    tokio::select! {
                        message = stream.message() => match message {
                            // Nobody left watching: let the service's stream go.
                            Ok(Some(order)) if sender.send(Change::Stage(order.stage)).is_ok() => {}
                            Ok(_) | Err(_) => break,
                        },
                        _ = every.tick() => {
                            if sender.receiver_count() == 0 {
                                break;
                            }
                            if mail_in && parcels.changed().await {
                                let _ = sender.send(Change::Parcels);
                            }
                        }
                    }
                }
            }
            if let Ok(mut feeds) = by_order.lock() {
                feeds.remove(&order_id);
            }
        });
        receiver
    }
}

/// An order's parcels as last seen: each one's id and version.
struct Parcels {
    logistics: LogisticsServiceClient<Channel>,
    order_id: String,
    token: String,
    seen: Option<Vec<(String, u64)>>,
}

impl Parcels {
    /// Whether they changed since the last look (the first look sets the
    /// baseline; a failed look, an expired token say, changes nothing).
    async fn changed(&mut self) -> bool {
        let request = crate::pages::authorized(
            lpb::ListShipmentsByRepairRequest {
                repair_order_id: self.order_id.clone(),
            },
            &self.token,
        );
        let Ok(answer) = self.logistics.list_shipments_by_repair(request).await else {
            return false;
        };
        let now: Vec<_> = answer
            .into_inner()
            .shipments
            .into_iter()
            .map(|s| (s.shipment_id, s.version))
            .collect();
        let changed = self.seen.as_ref().is_some_and(|seen| *seen != now);
        self.seen = Some(now);
        changed
    }
}
