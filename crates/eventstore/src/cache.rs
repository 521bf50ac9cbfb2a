//! Current states of recently read streams, kept in memory for questions that are
//! asked far more often than the stream changes (is this device covered?).
//!
//! Commands never use it: they load fresh and append with the expected version.
//! Entries are dropped when the log shows a newer event for their stream
//! ([`StateCache::follow`]), and when this process appends to the stream
//! ([`StateCache::forget`]), so a reader in this process sees its own writes at
//! once and another process's within the follower's delay (in-process appends wake
//! it immediately; otherwise its poll interval).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::decider::Decider;
use crate::error::StoreError;
use crate::event::StreamId;
use crate::handler::{CommandHandler, HandleError, Loaded};
use crate::store::EventStore;

/// A bounded map from stream to its folded state.
pub struct StateCache<D: Decider> {
    entries: Mutex<HashMap<StreamId, Loaded<D::State>>>,
    /// Moves whenever the follower drops something: a load that began before may
    /// have read what was just dropped, so it is not kept.
    generation: AtomicU64,
    capacity: usize,
}

impl<D: Decider> std::fmt::Debug for StateCache<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<D: Decider> StateCache<D> {
    /// Keeps at most `capacity` streams; past that it starts afresh.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            capacity: capacity.max(1),
        }
    }

    /// The current state of `stream`, from memory when it is there.
    pub async fn load<S: EventStore>(
        &self,
        handler: &CommandHandler<D, S>,
        stream: &StreamId,
    ) -> Result<Loaded<D::State>, HandleError<D::Error>> {
        if let Some(hit) = self
            .entries
            .lock()
            .ok()
            .and_then(|e| e.get(stream).cloned())
        {
            return Ok(hit);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let loaded = handler.load(stream).await?;
        if loaded.version > 0
            && let Ok(mut entries) = self.entries.lock()
            && self.generation.load(Ordering::Acquire) == generation
        {
            if entries.len() >= self.capacity {
                entries.clear();
            }
            entries.insert(stream.clone(), loaded.clone());
        }
        Ok(loaded)
    }

    /// Drops `stream`: this process has just changed it.
    pub fn forget(&self, stream: &StreamId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(stream);
        }
    }

    /// Follows the log from its current end and drops every stream that moves on,
    /// until `stop`. Failures are retried after `poll_interval`.
    pub async fn follow<S: EventStore>(
        &self,
        store: &S,
        poll_interval: Duration,
        stop: impl Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut from = loop {
            match store.log_end().await {
                Ok(end) => break end,
                Err(error) => {
                    tracing::warn!(%error, "state cache cannot find the log's end; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(poll_interval) => {}
                        () = &mut stop => return,
                    }
                }
            }
        };
        let mut wait = crate::follow::IdleWait::new(poll_interval);
        loop {
            let appended = store.appended().notified();
            match self.drop_moved(store, &mut from).await {
                Ok(true) => {
                    wait.busy();
                    continue;
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "state cache follower failed; retrying"),
            }
            tokio::select! {
                () = appended => {}
                () = tokio::time::sleep(wait.idle()) => {}
                () = &mut stop => return,
            }
        }
    }

    /// Reads one page after `from`; `true` if there may be more.
    async fn drop_moved<S: EventStore>(
        &self,
        store: &S,
        from: &mut crate::event::Checkpoint,
    ) -> Result<bool, StoreError> {
        const PAGE: usize = 1000;
        let events = store.read_log(*from, PAGE).await?;
        let Some(last) = events.last() else {
            return Ok(false);
        };
        *from = last.checkpoint;
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut entries) = self.entries.lock() {
            for event in &events {
                if entries
                    .get(&event.stream_id)
                    .is_some_and(|cached| cached.version < event.stream_version)
                {
                    entries.remove(&event.stream_id);
                }
            }
        }
        Ok(events.len() == PAGE)
    }
}
