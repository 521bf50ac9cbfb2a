//! Following the log live, from a checkpoint.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::Stream;

use crate::error::StoreError;
use crate::event::{Checkpoint, RecordedEvent};
use crate::store::EventStore;

/// How a follower reads.
#[derive(Debug, Clone, Copy)]
pub struct FollowOptions {
    /// Events fetched per read.
    pub batch_size: usize,
    /// How long an idle follower waits before polling again. Appends made through
    /// the same store value wake it at once; this bounds the delay for appends
    /// made by other processes.
    pub poll_interval: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// What a store tells its followers in this process: each commit that appended
/// events through it wakes them and is counted.
#[derive(Debug, Default)]
pub struct Appends {
    notify: tokio::sync::Notify,
    commits: AtomicU64,
}

impl Appends {
    /// A commit that appended events has finished.
    pub(crate) fn committed(&self) {
        self.commits.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_waiters();
    }

    /// Commits that appended through the store so far: every one of them had
    /// finished when the count was read.
    pub(crate) fn count(&self) -> u64 {
        self.commits.load(Ordering::Acquire)
    }

    pub(crate) fn notify(&self) -> &tokio::sync::Notify {
        &self.notify
    }
}

/// The longest an idle reader waits before it looks at the log again.
pub const IDLE_WAIT_MAX: Duration = Duration::from_secs(1);

/// How long a reader that found nothing waits before it reads again: its base
/// interval at first, doubling while the log stays quiet, up to
/// [`IDLE_WAIT_MAX`]. This process's appends wake readers at once whatever the
/// wait; it only bounds how late another process's appends are seen, so a quiet
/// service costs a few reads a second, not tens.
#[derive(Debug, Clone, Copy)]
pub struct IdleWait {
    base: Duration,
    next: Duration,
}

impl IdleWait {
    pub fn new(base: Duration) -> Self {
        Self { base, next: base }
    }

    /// The reader found events: the next wait is the base interval again.
    pub fn busy(&mut self) {
        self.next = self.base;
    }

    /// The reader found nothing: how long to wait now.
    pub fn idle(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(IDLE_WAIT_MAX.max(self.base));
        wait
    }
}

/// Every event after `after`, in follow order, forever: each exactly once, none
/// skipped. Save each event's [`RecordedEvent::checkpoint`] once it is handled to
/// resume from there. A read error ends the stream with that error.
pub fn follow<S: EventStore>(
    store: S,
    after: Checkpoint,
    options: FollowOptions,
) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send {
    struct State<S> {
        store: S,
        checkpoint: Checkpoint,
        buffer: VecDeque<RecordedEvent>,
        failed: bool,
        wait: IdleWait,
    }
    let state = State {
        store,
        checkpoint: after,
        buffer: VecDeque::new(),
        failed: false,
        wait: IdleWait::new(options.poll_interval),
    };
    futures::stream::unfold(state, move |mut state| async move {
        if state.failed {
            return None;
        }
        loop {
            if let Some(event) = state.buffer.pop_front() {
                state.checkpoint = event.checkpoint;
                return Some((Ok(event), state));
            }
            let read = {
                // Registered before the read, so an append between the read and the
                // wait still wakes us.
                let appended = state.store.appended().notified();
                let read = state
                    .store
                    .read_log(state.checkpoint, options.batch_size)
                    .await;
                if matches!(&read, Ok(events) if events.is_empty()) {
                    let _ = tokio::time::timeout(state.wait.idle(), appended).await;
                } else {
                    state.wait.busy();
                }
                read
            };
            match read {
                Ok(events) => state.buffer.extend(events),
                Err(error) => {
                    state.failed = true;
                    return Some((Err(error), state));
                }
            }
        }
    })
}
