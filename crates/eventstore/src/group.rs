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

use tokio::sync::oneshot;

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

/// The appends waiting and the groups being written, under one lock: an append
/// either finds a writer free when it arrives, or is taken by the look that a
/// finishing writer makes once it has given its place back. No append waits for
/// a writer nobody starts.
#[derive(Debug, Default)]
struct Queue {
    waiting: Vec<Waiting>,
    writing: usize,
}

#[derive(Debug)]
pub(crate) struct GroupCommit {
    queue: Mutex<Queue>,
    writers: usize,
}

/// A writer's place: given back when its group is answered, or when its task is
/// dropped with the runtime.
struct Writing(Arc<GroupCommit>);

impl Drop for Writing {
    fn drop(&mut self) {
        self.0.queue().writing -= 1;
    }
}

impl GroupCommit {
    /// At most `writers` groups written at the same time: more overlap the
    /// writes, fewer make larger groups.
    pub(crate) fn new(writers: usize) -> Self {
        Self {
            queue: Mutex::default(),
            writers: writers.max(1),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
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
        self.queue().waiting.push(Waiting {
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
        while let Some(group) = self.next_group() {
            let writing = Writing(Arc::clone(self));
            tokio::spawn(Arc::clone(self).write(backend.clone(), group, writing));
        }
    }

    /// The appends the next writer takes, and its place taken; `None` when
    /// nothing waits or every writer is busy.
    fn next_group(&self) -> Option<Vec<Waiting>> {
        let mut queue = self.queue();
        if queue.waiting.is_empty() || queue.writing >= self.writers {
            return None;
        }
        queue.writing += 1;
        let mut rows = 0;
        let take = queue
            .waiting
            .iter()
            .take_while(|w| {
                rows += w.rows.len();
                rows <= GROUP_ROWS
            })
            .count()
            // An append over the cap goes alone.
            .max(1);
        Some(queue.waiting.drain(..take).collect())
    }

    async fn write<W: GroupWrite>(
        self: Arc<Self>,
        backend: W,
        group: Vec<Waiting>,
        writing: Writing,
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
        drop(writing);
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
        groups: Arc<AtomicUsize>,
    }

    impl GroupWrite for Yielding {
        async fn write_together(
            &self,
            appends: &[(&StreamId, &[ChainedEvent])],
        ) -> Option<Vec<Answer>> {
            tokio::task::yield_now().await;
            self.groups.fetch_add(1, Ordering::SeqCst);
            self.appends.fetch_add(appends.len(), Ordering::SeqCst);
            Some(appends.iter().map(|_| Ok(Vec::new())).collect())
        }

        async fn write_alone(&self, _: &StreamId, _: &[ChainedEvent]) -> Answer {
            tokio::task::yield_now().await;
            self.groups.fetch_add(1, Ordering::SeqCst);
            self.appends.fetch_add(1, Ordering::SeqCst);
            Ok(Vec::new())
        }
    }

    /// Every append is answered however appends and finishing writers
    /// interleave: one that arrives just as the last writer looks at an empty
    /// queue is not left waiting for a writer nobody starts. One appender, so
    /// no later append rescues a stranded one. The queue's single lock makes
    /// that race impossible; this gives it many chances all the same.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_append_is_answered_while_writers_come_and_go() {
        let group = Arc::new(GroupCommit::new(1));
        let backend = Yielding::default();
        let stream = StreamId::parse("group-1").expect("a stream id");
        let appender = async {
            for _ in 0..20_000 {
                group
                    .insert(&backend, &stream, &[])
                    .await
                    .expect("answered");
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), appender)
            .await
            .expect("an append was left waiting");
        assert_eq!(backend.appends.load(Ordering::SeqCst), 20_000);
        // The last writer gives its place back just after it answers.
        let given_back = async {
            while group.queue().writing > 0 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), given_back)
            .await
            .expect("every writer gave its place back");
    }

    /// Appends that arrive while every writer is busy wait, and are written
    /// together once one is free.
    #[tokio::test]
    async fn appends_that_wait_for_a_writer_are_written_together() {
        let group = Arc::new(GroupCommit::new(1));
        let backend = Yielding::default();
        let stream = StreamId::parse("group-1").expect("a stream id");
        // The one writer's place, taken as a writer takes it.
        group.queue().writing += 1;
        let busy = Writing(Arc::clone(&group));
        let appends: Vec<_> = (0..3)
            .map(|_| {
                let (group, backend, stream) =
                    (Arc::clone(&group), backend.clone(), stream.clone());
                tokio::spawn(async move { group.insert(&backend, &stream, &[]).await })
            })
            .collect();
        while group.queue().waiting.len() < 3 {
            tokio::task::yield_now().await;
        }
        assert_eq!(backend.appends.load(Ordering::SeqCst), 0, "no writer free");
        drop(busy);
        group.start_writers(&backend);
        for append in appends {
            append.await.expect("a task").expect("answered");
        }
        assert_eq!(
            backend.groups.load(Ordering::SeqCst),
            1,
            "one group of three"
        );
    }
}
