//! Tamper evidence: each kind of edit to the stored history is detected.

use aftersales_eventstore::{ChainBreak, EventStore, ExpectedVersion, StreamId};

use crate::harness::{Backend, events, stream};

async fn tamper_setup(b: &Backend) -> (StreamId, Vec<aftersales_eventstore::RecordedEvent>) {
    let s = stream("audit");
    b.store
        .append(&s, ExpectedVersion::Any, events(5))
        .await
        .unwrap();
    // Another stream's events interleave in the global log and must not matter.
    b.store
        .append(&stream("noise"), ExpectedVersion::Any, events(2))
        .await
        .unwrap();
    let stored = b.store.read_stream(&s, 1, 100).await.unwrap();
    assert!(b.store.verify_stream(&s, None).await.unwrap().is_intact());
    b.disable_guard().await;
    (s, stored)
}

pub async fn hash_chain_detects_edited_payload(b: Backend) {
    let (s, stored) = tamper_setup(&b).await;
    b.exec(&format!(
        "UPDATE events SET payload = payload || payload WHERE position = {}",
        stored[2].position
    ))
    .await;
    let report = b.store.verify_stream(&s, None).await.unwrap();
    assert_eq!(
        report.first_break,
        Some(ChainBreak::HashMismatch {
            version: 3,
            position: stored[2].position
        })
    );
}

pub async fn hash_chain_detects_edited_metadata(b: Backend) {
    let (s, stored) = tamper_setup(&b).await;
    b.exec(&format!(
        "UPDATE events SET actor = 'staff:someone-else' WHERE position = {}",
        stored[1].position
    ))
    .await;
    let report = b.store.verify_stream(&s, None).await.unwrap();
    assert_eq!(
        report.first_break,
        Some(ChainBreak::HashMismatch {
            version: 2,
            position: stored[1].position
        })
    );
}

pub async fn hash_chain_detects_deleted_event(b: Backend) {
    let (s, stored) = tamper_setup(&b).await;
    b.exec(&format!(
        "DELETE FROM events WHERE position = {}",
        stored[1].position
    ))
    .await;
    let report = b.store.verify_stream(&s, None).await.unwrap();
    assert_eq!(
        report.first_break,
        Some(ChainBreak::Gap {
            expected: 2,
            found: 3
        })
    );

    // Renumbering to hide the gap breaks the hashes instead.
    for p in &stored[2..] {
        b.exec(&format!(
            "UPDATE events SET stream_version = stream_version - 1 WHERE position = {}",
            p.position
        ))
        .await;
    }
    let report = b.store.verify_stream(&s, None).await.unwrap();
    assert_eq!(
        report.first_break,
        Some(ChainBreak::HashMismatch {
            version: 2,
            position: stored[2].position
        })
    );
}

pub async fn hash_chain_detects_reordered_events(b: Backend) {
    let (s, stored) = tamper_setup(&b).await;
    let (p2, p3) = (stored[1].position, stored[2].position);
    b.exec(&format!(
        "UPDATE events SET stream_version = 1000 WHERE position = {p2}"
    ))
    .await;
    b.exec(&format!(
        "UPDATE events SET stream_version = 2 WHERE position = {p3}"
    ))
    .await;
    b.exec(&format!(
        "UPDATE events SET stream_version = 3 WHERE position = {p2}"
    ))
    .await;
    let report = b.store.verify_stream(&s, None).await.unwrap();
    assert_eq!(
        report.first_break,
        Some(ChainBreak::HashMismatch {
            version: 2,
            position: p3
        })
    );
}

pub async fn trusted_head_detects_removed_tail(b: Backend) {
    let (s, stored) = tamper_setup(&b).await;
    let anchor = b.store.stream_head(&s).await.unwrap().unwrap();
    assert!(
        b.store
            .verify_stream(&s, Some(anchor))
            .await
            .unwrap()
            .is_intact()
    );
    b.exec(&format!(
        "DELETE FROM events WHERE position = {}",
        stored[4].position
    ))
    .await;
    // The shortened chain is internally consistent...
    assert!(b.store.verify_stream(&s, None).await.unwrap().is_intact());
    // ...but not against the anchor kept elsewhere.
    let report = b.store.verify_stream(&s, Some(anchor)).await.unwrap();
    assert!(
        matches!(report.first_break, Some(ChainBreak::HeadMismatch { .. })),
        "{report:?}"
    );
}

pub async fn history_cannot_be_changed_without_disabling_the_guard(b: Backend) {
    let s = stream("guarded");
    let outcome = b
        .store
        .append(&s, ExpectedVersion::Any, events(2))
        .await
        .unwrap();
    let update = format!(
        "UPDATE events SET payload = payload WHERE position = {}",
        outcome.first_position
    );
    let delete = format!(
        "DELETE FROM events WHERE position = {}",
        outcome.first_position
    );
    let error = b.try_exec(&update).await.unwrap_err();
    assert!(error.to_string().contains("append-only"), "{error}");
    let error = b.try_exec(&delete).await.unwrap_err();
    assert!(error.to_string().contains("append-only"), "{error}");
    assert_eq!(b.count().await, 2);
    assert!(b.store.verify_stream(&s, None).await.unwrap().is_intact());
}
