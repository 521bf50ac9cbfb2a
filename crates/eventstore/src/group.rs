//! Group commit for appends through a store's pool.
//!
//! An append that arrives while earlier ones are being written waits for a writer
//! and is then written together with every other append waiting by then, in one
//! transaction: one commit for the group, where each append alone costs a commit
//! (and on PostgreSQL a round trip) of its own. An append that finds a writer free
//! is written at once, so a quiet store answers as fast as before. Each backend
//! says how a group is written ([`GroupWrite`]); a group whose refusal cannot be
//! pinned on one append is written again append by append, so every append gets
//! its own answer, never another's refusal.
//!
//! Writers run as tasks of their own: a caller that gives up waiting cannot cut
//! short the write of the others in its group.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::append::{ChainedEvent, InsertError};
use crate::error::StoreError;
use crate::event::StreamId;

/// Most rows in one group.
const GROUP_ROWS: usize = 1_000;

/// The rows' positions in order, or why the insert was refused.
pub(crate) type Answer = Result<Vec<u64>, InsertError>;

/// How a backend writes appends, together and alone.
pub(crate) trait GroupWrite: Clone + Send + Sync + 'static {
    /// Writes `appends` (each a stream and its chained rows) in one transaction
    /// and commits: an answer per append, in order, where a refused append wrote
    /// nothing and says so. `None` when nothing was written and the refusal cannot
    /// be told apart: each append is then written alone.
    fn write_together(
        &self,
        appends: &[(&StreamId, &[ChainedEvent])],
    ) -> impl Future<Output = Option<Vec<Answer>>> + Send;

    /// Writes one append in a transaction of its own.
    fn write_alone(
        &self,
        stream: &StreamId,
        rows: &[ChainedEvent],
    ) -> impl Future<Output = Answer> + Send;
}

struct Waiting {
    stream: StreamId,
    rows: Vec<ChainedEvent>,
    answer: oneshot::Sender<Answer>,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("stream", &self.stream)
            .field("rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(crate) struct GroupCommit {
    waiting: Mutex<Vec<Waiting>>,
    writers: Arc<Semaphore>,
}

impl GroupCommit {
    /// At most `writers` groups written at the same time: more overlap the
    /// writes, fewer make larger groups.
    pub(crate) fn new(writers: usize) -> Self {
        Self {
            waiting: Mutex::default(),
            writers: Arc::new(Semaphore::new(writers.max(1))),
        }
    }

    /// Inserts `rows` into `stream` through `backend`, with whatever other appends
    /// are waiting.
    pub(crate) async fn insert<W: GroupWrite>(
        self: &Arc<Self>,
        backend: &W,
        stream: &StreamId,
        rows: &[ChainedEvent],
    ) -> Answer {
        let (answer, answered) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Waiting {
                stream: stream.clone(),
                rows: rows.to_vec(),
                answer,
            });
        self.start_writers(backend);
        // A writer answers every append it takes, unless the runtime is stopping.
        answered
            .await
            .unwrap_or(Err(InsertError::Store(StoreError::Database(
                sqlx::Error::WorkerCrashed,
            ))))
    }

    /// Starts a writer for the waiting appends while one is free. A writer that
    /// finishes starts again: nothing waits while a writer is free.
    fn start_writers<W: GroupWrite>(self: &Arc<Self>, backend: &W) {
        while let Ok(permit) = Arc::clone(&self.writers).try_acquire_owned() {
            let group = self.take_group();
            if group.is_empty() {
                drop(permit);
                // An append that came after the look and found no writer free
                // (this one held the permit) counts on whoever frees one to look
                // again: so does this.
                if self.nothing_waits() {
                    return;
                }
                continue;
            }
            tokio::spawn(Arc::clone(self).write(backend.clone(), group, permit));
        }
    }

    fn nothing_waits(&self) -> bool {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    fn take_group(&self) -> Vec<Waiting> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let mut rows = 0;
        let take = waiting
            .iter()
            .take_while(|w| {
                rows += w.rows.len();
                rows <= GROUP_ROWS
            })
            .count()
            // An append over the cap goes alone.
            .max(1)
            .min(waiting.len());
        waiting.drain(..take).collect()
    }

    async fn write<W: GroupWrite>(
        self: Arc<Self>,
        backend: W,
        group: Vec<Waiting>,
        permit: OwnedSemaphorePermit,
    ) {
        let appends: Vec<(&StreamId, &[ChainedEvent])> = group
            .iter()
            .map(|w| (&w.stream, w.rows.as_slice()))
            .collect();
        let together = match appends.as_slice() {
            [(stream, rows)] => Some(vec![backend.write_alone(stream, rows).await]),
            _ => backend.write_together(&appends).await,
        };
        let answers = match together {
            Some(answers) => answers,
            None => {
                let mut answers = Vec::with_capacity(appends.len());
                for (stream, rows) in &appends {
                    answers.push(backend.write_alone(stream, rows).await);
                }
                answers
            }
        };
        drop(appends);
        for (waiting, answer) in group.into_iter().zip(answers) {
            let _ = waiting.answer.send(answer);
        }
        drop(permit);
        self.start_writers(&backend);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Writes nothing, after letting other tasks run.
    #[derive(Clone, Default)]
    struct Yielding {
        appends: Arc<AtomicUsize>,
    }

    impl GroupWrite for Yielding {
        async fn write_together(
            &self,
            appends: &[(&StreamId, &[ChainedEvent])],
        ) -> Option<Vec<Answer>> {
            tokio::task::yield_now().await;
            self.appends.fetch_add(appends.len(), Ordering::SeqCst);
            Some(appends.iter().map(|_| Ok(Vec::new())).collect())
        }

        async fn write_alone(&self, _: &StreamId, _: &[ChainedEvent]) -> Answer {
            tokio::task::yield_now().await;
            self.appends.fetch_add(1, Ordering::SeqCst);
            Ok(Vec::new())
        }
    }

    /// Every append is answered however appends and finishing writers
    /// interleave: one that arrives just as the last writer looks at an empty
    /// queue is not left waiting for a writer nobody starts. One appender, so
    /// no later append rescues a stranded one; the race is narrow, and this
    /// only gives it many chances.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_append_is_answered_while_writers_come_and_go() {
        let group = Arc::new(GroupCommit::new(1));
        let backend = Yielding::default();
        let stream = StreamId::parse("group-1").expect("a stream id");
        let mut appenders = tokio::task::JoinSet::new();
        for _ in 0..1 {
            let (group, backend, stream) = (Arc::clone(&group), backend.clone(), stream.clone());
            appenders.spawn(async move {
                for _ in 0..20_000 {
                    group
                        .insert(&backend, &stream, &[])
                        .await
                        .expect("answered");
                }
            });
        }
        let all = async { while appenders.join_next().await.is_some() {} };
        tokio::time::timeout(std::time::Duration::from_secs(30), all)
            .await
            .expect("an append was left waiting");
        assert_eq!(backend.appends.load(Ordering::SeqCst), 20_000);
    }
}
