//! Followers of one store share their reads of the log's end: what each still
//! sees, whatever the others read, and whoever appended.

use std::time::Duration;

use aftersales_eventstore::{AnyEventStore, Checkpoint, EventStore, ExpectedVersion};

use crate::harness::{Backend, events, stream};

/// Followers of one store share their reads of the log's end (and on PostgreSQL
/// the server's answer to where it may be read up to), but never one from
/// before their own question: an append committed before a read is in that
/// read, however many others read at once.
pub async fn shared_reads_still_see_what_committed_before_them(b: Backend) {
    let followers = Followers::asking(&b.store);
    let mut after = Checkpoint::START;
    for i in 0..100 {
        let (stream, expected) = (stream(&format!("s{i}")), ExpectedVersion::NoStream);
        // Half through a transaction, as consumers append.
        let appended = if i % 2 == 0 {
            b.store.append(&stream, expected, events(1)).await.unwrap()
        } else {
            let mut tx = b.store.begin().await.unwrap();
            let appended = tx.append(&stream, expected, events(1)).await.unwrap();
            tx.commit().await.unwrap();
            appended
        };
        let read = b.store.read_log(after, 10).await.unwrap();
        assert_eq!(
            read.iter().map(|e| e.position).collect::<Vec<_>>(),
            vec![appended.last_position],
            "append {i}"
        );
        after = read[0].checkpoint;
    }
    followers.stop().await;
}

/// Four tasks reading on at the log's end without pause, as a busy process's
/// followers do (each asks where the end is, then reads), until stopped: their
/// horizons and reads are there to be shared.
struct Followers {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Followers {
    fn asking(store: &AnyEventStore) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..4)
            .map(|_| {
                let (store, stop) = (store.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut after = Checkpoint::START;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        store.log_end().await.unwrap();
                        if let Some(last) = store.read_log(after, 1000).await.unwrap().last() {
                            after = last.checkpoint;
                        }
                    }
                })
            })
            .collect();
        Self { stop, tasks }
    }

    async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

/// Followers of one process share their reads of the log's end: each still
/// gets every event once, in the log's order, whatever page size it reads with
/// and wherever it stands, while appends go on (directly, in transactions, and
/// several events at once).
pub async fn followers_sharing_reads_each_see_the_whole_log_once_in_order(b: Backend) {
    const APPENDS: usize = 120;
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let store = b.store.clone();
            tokio::spawn(async move {
                for i in 0..APPENDS {
                    let s = stream(&format!("w{w}-{i}"));
                    let n = 1 + i % 3;
                    if i % 2 == 0 {
                        store
                            .append(&s, ExpectedVersion::NoStream, events(n))
                            .await
                            .unwrap();
                    } else {
                        let mut tx = store.begin().await.unwrap();
                        tx.append(&s, ExpectedVersion::NoStream, events(n))
                            .await
                            .unwrap();
                        tx.commit().await.unwrap();
                    }
                }
            })
        })
        .collect();
    let total: usize = 2 * (0..APPENDS).map(|i| 1 + i % 3).sum::<usize>();
    let followers: Vec<_> = [1, 4, 7, 1000]
        .into_iter()
        .map(|page| {
            let store = b.store.clone();
            tokio::spawn(async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                let (mut after, mut seen) = (Checkpoint::START, Vec::new());
                while seen.len() < total && std::time::Instant::now() < deadline {
                    let read = store.read_log(after, page).await.unwrap();
                    assert!(read.len() <= page, "a page of {page} held {}", read.len());
                    if let Some(last) = read.last() {
                        after = last.checkpoint;
                    } else {
                        store.appended().notified().await;
                    }
                    seen.extend(read.iter().map(|e| (e.checkpoint, e.position)));
                }
                (page, seen)
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    // Wake any follower still waiting for an append that came before it waited.
    let wake = {
        let store = b.store.clone();
        tokio::spawn(async move {
            loop {
                store.appended().notify_waiters();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let whole: Vec<_> = b
        .another_process()
        .await
        .read_log(Checkpoint::START, total + 1)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.checkpoint, e.position))
        .collect();
    assert_eq!(whole.len(), total);
    for follower in followers {
        let (page, seen) = follower.await.unwrap();
        assert_eq!(seen, whole, "the follower reading {page} at a time");
    }
    wake.abort();
}

/// Another process's appends wake no follower here: they are seen by polling, by
/// a read that starts a few milliseconds after their commit at worst, however
/// busy this store's followers keep its horizon.
pub async fn reads_see_another_processs_appends_a_moment_later(b: Backend) {
    let elsewhere = b.another_process().await;
    let followers = Followers::asking(&b.store);
    let mut after = Checkpoint::START;
    for i in 0..20 {
        let appended = elsewhere
            .append(
                &stream(&format!("s{i}")),
                ExpectedVersion::NoStream,
                events(1),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        let read = b.store.read_log(after, 10).await.unwrap();
        assert_eq!(
            read.iter().map(|e| e.position).collect::<Vec<_>>(),
            vec![appended.last_position],
            "append {i}, read 30 ms after it committed"
        );
        after = read[0].checkpoint;
    }
    followers.stop().await;
}
