//! One live stream per repair order, shared by every page open on it: a
//! thousand open pages cost the repair service one `WatchRepair`, not a
//! thousand. Each page is authorized on its own (`GetRepair` with its person's
//! token) before it joins; the shared stream is opened with the first joiner's
//! token and ends when its last page closes (or the service ends it, which the
//! pages' `EventSource` answers by joining again).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aftersales_proto::repair as rpb;
use aftersales_proto::repair::repair_service_client::RepairServiceClient;
use tokio::sync::broadcast;
use tonic::transport::Channel;

/// How many stage changes a slow page may fall behind before it skips ahead.
const BACKLOG: usize = 16;

#[derive(Debug)]
pub struct Feeds {
    repair: RepairServiceClient<Channel>,
    by_order: Arc<Mutex<HashMap<String, broadcast::Sender<i32>>>>,
}

impl Feeds {
    pub fn new(repair: RepairServiceClient<Channel>) -> Self {
        Self {
            repair,
            by_order: Arc::default(),
        }
    }

    /// The stages of `order_id` as they change, from the shared stream (opened
    /// with `token` if none runs). The caller has authorized the person first.
    pub fn join(&self, order_id: &str, token: &str) -> broadcast::Receiver<i32> {
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
                let mut every = tokio::time::interval(std::time::Duration::from_secs(30));
                loop {
                    tokio::select! {
                        message = stream.message() => match message {
                            // Nobody left watching: let the service's stream go.
                            Ok(Some(order)) if sender.send(order.stage).is_ok() => {}
                            Ok(_) | Err(_) => break,
                        },
                        _ = every.tick() => if sender.receiver_count() == 0 { break },
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
