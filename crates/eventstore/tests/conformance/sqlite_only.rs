//! SQLite-specific settings of the store.

use aftersales_eventstore::AnyEventStore;

use crate::harness::Backend;

/// Eight readers per database and several databases per process: each reader's
/// page cache is small, the writer's SQLite's default.
#[tokio::test]
async fn readers_keep_a_small_page_cache() {
    let b = Backend::sqlite().await;
    let AnyEventStore::Sqlite(store) = &b.store else {
        unreachable!()
    };
    let cache = |pool| async move {
        sqlx::query_scalar::<_, i64>("PRAGMA cache_size")
            .fetch_one(pool)
            .await
            .unwrap()
    };
    assert_eq!(cache(store.reader()).await, -256, "KiB");
    assert_eq!(cache(store.writer()).await, -2000, "SQLite's default");
}
