//! The end of the log as the last reader saw it, kept for the followers that ask
//! right after: one commit wakes every follower of a store (relay, live feed,
//! read models, consumers), and each would read and open the same few events.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::follow::Appends;
use crate::{Checkpoint, RecordedEvent, StoreError};

/// How old a read may be and still answer another, for commits made elsewhere
/// (another process, another store on the same database): a fraction of a
/// follower's poll interval, which bounds how late it sees them anyway.
pub(crate) const REUSE: Duration = Duration::from_millis(20);

/// The most events a kept read holds: followers read pages of a thousand or so.
const KEPT_AT_MOST: usize = 4096;

/// When a reader looked, and how many commits appended through this store had
/// finished by then.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen {
    asked_at: Instant,
    commits: u64,
}

impl Seen {
    pub(crate) fn now(appends: &Appends) -> Self {
        // The commits first: a read that starts after this saw all of them.
        let commits = appends.count();
        Self {
            asked_at: Instant::now(),
            commits,
        }
    }

    /// Whether what was read as of `self` answers a caller who asked at `later`:
    /// no commit through this store since, and not long ago for the others.
    pub(crate) fn serves(&self, later: &Self) -> bool {
        self.commits >= later.commits
            && later.asked_at.saturating_duration_since(self.asked_at) <= REUSE
    }
}

/// The last read of the log that came back short, so ended at the log's end.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    kept: tokio::sync::Mutex<Option<TailRead>>,
}

/// Every event after `after` as of `seen`.
#[derive(Debug)]
struct TailRead {
    seen: Seen,
    after: Checkpoint,
    events: Vec<RecordedEvent>,
}

impl TailRead {
    /// What a read after `from` of at most `limit` events would have returned
    /// then, if this read holds it: `from` is not before `after`.
    fn answer(&self, from: Checkpoint, limit: usize) -> Option<Vec<RecordedEvent>> {
        (from >= self.after).then(|| {
            let first = self.events.partition_point(|e| e.checkpoint <= from);
            self.events[first..].iter().take(limit).cloned().collect()
        })
    }
}

impl Tail {
    /// At most `limit` events after `after`: from the kept read while it serves,
    /// else from `read`, which says as of when it read. One reads at a time, so
    /// the followers woken together wait for the first and share its answer.
    pub(crate) async fn read<Fut>(
        &self,
        appends: &Appends,
        after: Checkpoint,
        limit: usize,
        read: impl FnOnce() -> Fut,
    ) -> Result<Vec<RecordedEvent>, StoreError>
    where
        Fut: Future<Output = Result<(Seen, Vec<RecordedEvent>), StoreError>>,
    {
        let asked = Seen::now(appends);
        let mut kept = self.kept.lock().await;
        if let Some(events) = kept
            .as_ref()
            .filter(|read| read.seen.serves(&asked))
            .and_then(|read| read.answer(after, limit))
        {
            return Ok(events);
        }
        let (seen, events) = read().await?;
        if events.len() < limit && events.len() <= KEPT_AT_MOST {
            *kept = Some(TailRead {
                seen,
                after,
                events: events.clone(),
            });
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_serves_until_a_commit_or_the_reuse_window_passes() {
        let appends = Appends::default();
        let read = Seen::now(&appends);
        assert!(read.serves(&Seen::now(&appends)));
        let late = Seen {
            asked_at: read.asked_at + REUSE + Duration::from_millis(1),
            commits: read.commits,
        };
        assert!(!read.serves(&late));
        appends.committed();
        assert!(!read.serves(&Seen::now(&appends)));
    }
}
