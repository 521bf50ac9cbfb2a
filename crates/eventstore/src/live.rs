//! Live watchers fed by one follower of the log per process.
//!
//! A watcher (a customer following her repair, a page open on an inbox) asks for
//! the events of one key. One task follows the log for all of them and hands each
//! event to the watchers of its key, so an idle watcher costs a channel and
//! nothing else: no query, no timer.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::broadcast;

use crate::event::RecordedEvent;
use crate::follow::{FollowOptions, follow};
use crate::store::EventStore;

/// Events a slow watcher may fall behind by before it is told it missed some.
const BACKLOG: usize = 64;

/// Which watchers an event concerns: the key they watch, if any.
type KeyOf<K> = dyn Fn(&RecordedEvent) -> Option<K> + Send + Sync;

/// The watchers of a process, by key, and how an event finds its key.
pub struct LiveFeed<K> {
    inner: Arc<Inner<K>>,
}

struct Inner<K> {
    watchers: Mutex<HashMap<K, broadcast::Sender<Arc<RecordedEvent>>>>,
    key_of: Box<KeyOf<K>>,
}

impl<K> Clone for LiveFeed<K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K> std::fmt::Debug for LiveFeed<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveFeed").finish_non_exhaustive()
    }
}

/// What a watcher gets next.
#[derive(Debug)]
pub enum Live {
    /// An event of the watched key.
    Event(Arc<RecordedEvent>),
    /// The watcher fell behind and some events were dropped: read the current
    /// state again.
    Missed,
    /// The feed is gone (the process is stopping).
    Closed,
}

impl<K: Eq + Hash + Clone + Send + 'static> LiveFeed<K> {
    /// A feed whose events reach the watchers of `key_of(event)`.
    pub fn new(key_of: impl Fn(&RecordedEvent) -> Option<K> + Send + Sync + 'static) -> Self {
        Self {
            inner: Arc::new(Inner {
                watchers: Mutex::default(),
                key_of: Box::new(key_of),
            }),
        }
    }

    /// Watches `key` from now on. Subscribe before reading the current state, so
    /// that nothing committed in between is missed (it may come twice).
    pub fn watch(&self, key: K) -> Watcher<K> {
        let mut watchers = self.lock();
        let receiver = watchers
            .entry(key.clone())
            .or_insert_with(|| broadcast::channel(BACKLOG).0)
            .subscribe();
        Watcher {
            feed: self.clone(),
            key,
            receiver: Some(receiver),
        }
    }

    /// Keys with at least one watcher.
    pub fn watched_keys(&self) -> usize {
        self.lock().len()
    }

    /// Follows `store`'s log from its end until `stop`, handing every event to
    /// the watchers of its key. A read error is logged and the follower starts
    /// again from where it stood.
    pub async fn run<S: EventStore + Clone>(
        &self,
        store: S,
        poll_interval: Duration,
        stop: impl Future<Output = ()>,
    ) {
        let follower = async {
            let mut from = None;
            loop {
                let after = match from {
                    Some(checkpoint) => checkpoint,
                    None => match store.log_end().await {
                        Ok(end) => end,
                        Err(error) => {
                            tracing::warn!(%error, "live feed cannot find the log's end; retrying");
                            tokio::time::sleep(poll_interval).await;
                            continue;
                        }
                    },
                };
                let options = FollowOptions {
                    batch_size: 500,
                    poll_interval,
                };
                let mut events = std::pin::pin!(follow(store.clone(), after, options));
                from = Some(after);
                while let Some(next) = events.next().await {
                    match next {
                        Ok(event) => {
                            from = Some(event.checkpoint);
                            self.publish(event);
                        }
                        Err(error) => {
                            tracing::warn!(%error, "live feed lost the log; following again");
                            tokio::time::sleep(poll_interval).await;
                        }
                    }
                }
            }
        };
        tokio::select! {
            () = follower => {}
            () = stop => {}
        }
        // Watchers see the feed close rather than wait for ever.
        self.lock().clear();
    }

    /// Hands `event` to the watchers of its key, if it has any.
    pub fn publish(&self, event: RecordedEvent) {
        let Some(key) = (self.inner.key_of)(&event) else {
            return;
        };
        if let Some(sender) = self.lock().get(&key) {
            // No receiver left is not an error: the last one is being dropped.
            let _ = sender.send(Arc::new(event));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, broadcast::Sender<Arc<RecordedEvent>>>> {
        // The map stays consistent whatever panicked while holding it.
        self.inner
            .watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One watcher of one key; dropping it stops the watch.
pub struct Watcher<K: Eq + Hash + Clone + Send + 'static> {
    feed: LiveFeed<K>,
    key: K,
    receiver: Option<broadcast::Receiver<Arc<RecordedEvent>>>,
}

impl<K: Eq + Hash + Clone + Send + 'static> std::fmt::Debug for Watcher<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

impl<K: Eq + Hash + Clone + Send + 'static> Watcher<K> {
    /// The next event of the watched key.
    pub async fn next(&mut self) -> Live {
        let Some(receiver) = self.receiver.as_mut() else {
            return Live::Closed;
        };
        match receiver.recv().await {
            Ok(event) => Live::Event(event),
            Err(broadcast::error::RecvError::Lagged(_)) => Live::Missed,
            Err(broadcast::error::RecvError::Closed) => Live::Closed,
        }
    }
}

impl<K: Eq + Hash + Clone + Send + 'static> Drop for Watcher<K> {
    fn drop(&mut self) {
        drop(self.receiver.take());
        let mut watchers = self.feed.lock();
        if watchers
            .get(&self.key)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            watchers.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(stream: &str, version: u64) -> RecordedEvent {
        crate::testing::recorded(stream, version, "Tested")
    }

    fn by_stream() -> LiveFeed<String> {
        LiveFeed::new(|e: &RecordedEvent| Some(e.stream_id.as_str().to_owned()))
    }

    #[tokio::test]
    async fn an_event_reaches_every_watcher_of_its_key_and_no_other() {
        let feed = by_stream();
        let mut a1 = feed.watch("order-a".to_owned());
        let mut a2 = feed.watch("order-a".to_owned());
        let mut b = feed.watch("order-b".to_owned());
        feed.publish(event("order-a", 1));
        for watcher in [&mut a1, &mut a2] {
            assert!(matches!(watcher.next().await, Live::Event(e) if e.stream_version == 1));
        }
        let nothing = tokio::time::timeout(Duration::from_millis(50), b.next()).await;
        assert!(nothing.is_err(), "order-b saw order-a's event");
    }

    #[tokio::test]
    async fn the_last_watcher_gone_forgets_the_key() {
        let feed = by_stream();
        let a1 = feed.watch("order-a".to_owned());
        let a2 = feed.watch("order-a".to_owned());
        assert_eq!(feed.watched_keys(), 1);
        drop(a1);
        assert_eq!(feed.watched_keys(), 1, "one watcher is left");
        drop(a2);
        assert_eq!(feed.watched_keys(), 0);
        // An event for a key nobody watches is dropped, not kept.
        feed.publish(event("order-a", 2));
        assert_eq!(feed.watched_keys(), 0);
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_is_told_so() {
        let feed = by_stream();
        let mut slow = feed.watch("order-a".to_owned());
        for version in 1..=u64::try_from(BACKLOG).unwrap() + 1 {
            feed.publish(event("order-a", version));
        }
        assert!(matches!(slow.next().await, Live::Missed));
        assert!(matches!(slow.next().await, Live::Event(_)), "and goes on");
    }
}
