//! Group commit for appends through the pool.
//!
//! An append that arrives while earlier ones are being written waits for a writer
//! and is then inserted together with every other append waiting by then: one
//! statement and one commit for the group, where each append alone costs a round
//! trip and a commit. An append that finds a writer free is written at once, so a
//! quiet store answers as fast as before. The insert of a group is one statement,
//! so it is written whole or not at all; if it is refused (a version taken, an
//! event id stored already) each append of the group is inserted again on its
//! own, and gets its own answer.
//!
//! Writers run as tasks of their own: a caller that gives up waiting cannot cut
//! short the write of the others in its group.

use std::sync::{Arc, Mutex, PoisonError};

use sqlx::postgres::PgPool;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::insert_appends;
use crate::append::{ChainedEvent, InsertError};
use crate::error::StoreError;
use crate::event::StreamId;

/// Groups written at the same time. More overlap the statements' round trips;
/// fewer make larger groups.
const WRITERS: usize = 4;

/// Most rows in one group's statement.
const GROUP_ROWS: usize = 1_000;

type Answer = Result<Vec<u64>, InsertError>;

struct Waiting {
    stream: StreamId,
    rows: Vec<ChainedEvent>,
    answer: oneshot::Sender<Answer>,
}

#[derive(Debug)]
pub(crate) struct GroupCommit {
    waiting: Mutex<Vec<Waiting>>,
    writers: Arc<Semaphore>,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("stream", &self.stream)
            .field("rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self {
            waiting: Mutex::default(),
            writers: Arc::new(Semaphore::new(WRITERS)),
        }
    }
}

impl GroupCommit {
    /// Inserts `rows` into `stream`, with whatever other appends are waiting; the
    /// rows' positions in order, or why the insert was refused.
    pub(crate) async fn insert(
        self: &Arc<Self>,
        pool: &PgPool,
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
        self.start_writers(pool);
        // A writer answers every append it takes, unless the runtime is stopping.
        answered
            .await
            .unwrap_or(Err(InsertError::Store(StoreError::Database(
                sqlx::Error::WorkerCrashed,
            ))))
    }

    /// Starts a writer for the waiting appends while one is free. A writer that
    /// finishes starts again: nothing waits while a writer is free.
    fn start_writers(self: &Arc<Self>, pool: &PgPool) {
        while let Ok(permit) = Arc::clone(&self.writers).try_acquire_owned() {
            let group = self.take_group();
            if group.is_empty() {
                return;
            }
            tokio::spawn(Arc::clone(self).write(pool.clone(), group, permit));
        }
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

    async fn write(
        self: Arc<Self>,
        pool: PgPool,
        group: Vec<Waiting>,
        permit: OwnedSemaphorePermit,
    ) {
        let together = {
            let appends: Vec<(&StreamId, &[ChainedEvent])> = group
                .iter()
                .map(|w| (&w.stream, w.rows.as_slice()))
                .collect();
            insert_appends(&pool, &appends).await
        };
        match together {
            Ok(positions) => {
                for (waiting, positions) in group.into_iter().zip(positions) {
                    let _ = waiting.answer.send(Ok(positions));
                }
            }
            Err(refused) if group.len() == 1 => {
                if let Some(waiting) = group.into_iter().next() {
                    let _ = waiting.answer.send(Err(refused));
                }
            }
            // Nothing of the group was written: each on its own says whose it was.
            Err(_) => {
                for waiting in group {
                    let alone = insert_appends(&pool, &[(&waiting.stream, &waiting.rows)])
                        .await
                        .map(|mut positions| positions.pop().unwrap_or_default());
                    let _ = waiting.answer.send(alone);
                }
            }
        }
        drop(permit);
        self.start_writers(&pool);
    }
}
