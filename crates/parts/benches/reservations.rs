//! Reservations on one hot part against a plain row-locked UPDATE, in the same run.
//!
//! `cargo bench -p aftersales-parts --bench reservations` (a release build). It
//! starts its own PostgreSQL with durable settings (fsync and synchronous_commit
//! on). 32 concurrent repairs reserve units of one part at one location through
//! the service's use case (decide on the stream's remembered state, append one
//! event with the optimistic version check), against 32 writers running
//! `UPDATE stock SET qty = qty - 1 WHERE ... AND qty > 0` on one row of the same
//! database, each in its own autocommit transaction. Two interleaved rounds.
//! Reservations held open pile up in the stream's state (6,400 by the end);
//! a third figure has each repair let its unit go again straight away, so the
//! part holds at most 32, as a real one does between diagnosis and fitting.
//! `BENCH_RESERVATIONS_PER_WRITER` (default 100) sets the sample size.

// A benchmark aborts on any failure, and its counts are far below any cast limit.
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap
)]

use std::sync::Arc;
use std::time::Instant;

use aftersales_core::{SharedClock, SystemClock};
use aftersales_eventstore::{AnyEventStore, CommandContext};
use aftersales_parts::app::Parts;
use aftersales_testkit::{PostgresOptions, PostgresServer};

const WRITERS: usize = 32;
const LOCATION: &str = "sc-berlin-01";
const PART: &str = "A5-DSP";
/// Where reservations are released as soon as they are made.
const SHORT_LIVED: &str = "sc-munich-01";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ctx(parts: &Parts) -> CommandContext {
    CommandContext::system("bench", "bench", parts.now())
}

/// Reservations per second through the use case, `per_writer` each for 32 repairs.
async fn reserve_round(parts: &Parts, round: usize, per_writer: usize) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let parts = parts.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let order = format!("o-{round}-{writer}-{i}");
                parts
                    .reserve(LOCATION, PART, &order, 1, &ctx(&parts))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (WRITERS * per_writer) as f64 / started.elapsed().as_secs_f64()
}

/// Reservations per second through the use case, each released again by the
/// same repair (two commands), so at most 32 are held at once.
async fn reserve_release_round(parts: &Parts, round: usize, per_writer: usize) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let parts = parts.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let order = format!("r-{round}-{writer}-{i}");
                let ctx = ctx(&parts);
                parts
                    .reserve(SHORT_LIVED, PART, &order, 1, &ctx)
                    .await
                    .unwrap();
                parts
                    .release(SHORT_LIVED, PART, &order, "bench", &ctx)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (WRITERS * per_writer) as f64 / started.elapsed().as_secs_f64()
}

/// Row-locked decrements per second on one row, `per_writer` each for 32 writers.
async fn update_round(pool: &sqlx::PgPool, per_writer: usize) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_writer {
                let done = sqlx::query(
                    "UPDATE stock SET qty = qty - 1 WHERE location = $1 AND part = $2 AND qty > 0",
                )
                .bind(LOCATION)
                .bind(PART)
                .execute(&pool)
                .await
                .unwrap();
                assert_eq!(done.rows_affected(), 1);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (WRITERS * per_writer) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let per_writer = env_usize("BENCH_RESERVATIONS_PER_WRITER", 100);
    let server = Arc::new(
        tokio::task::spawn_blocking(|| PostgresServer::start(PostgresOptions::Durable).unwrap())
            .await
            .unwrap(),
    );
    let url = {
        let server = Arc::clone(&server);
        tokio::task::spawn_blocking(move || server.create_database().unwrap())
            .await
            .unwrap()
    };
    let store = AnyEventStore::connect(&url).await.unwrap();
    store
        .run_migrations(&aftersales_parts::projections::MIGRATIONS)
        .await
        .unwrap();
    let AnyEventStore::Postgres(pg) = &store else {
        unreachable!()
    };
    let pool = pg.pool().clone();
    sqlx::query(
        "CREATE TABLE stock (location TEXT NOT NULL, part TEXT NOT NULL, qty BIGINT NOT NULL, \
         PRIMARY KEY (location, part))",
    )
    .execute(&pool)
    .await
    .unwrap();
    let units = WRITERS * per_writer * 3;
    sqlx::query("INSERT INTO stock VALUES ($1, $2, $3)")
        .bind(LOCATION)
        .bind(PART)
        .bind(units as i64)
        .execute(&pool)
        .await
        .unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let parts = Parts::builtin(store.clone(), clock).unwrap();
    parts
        .receive(LOCATION, PART, units as u32, None, &ctx(&parts))
        .await
        .unwrap();
    parts
        .receive(SHORT_LIVED, PART, WRITERS as u32, None, &ctx(&parts))
        .await
        .unwrap();
    // Warm both paths (connections, plans, the remembered state) before timing.
    reserve_round(&parts, 0, 2).await;
    reserve_release_round(&parts, 0, 2).await;
    update_round(&pool, 2).await;

    println!(
        "| round | reservations/s, held | ratio | reservations/s, released again | ratio | row-locked UPDATE/s |"
    );
    println!("|---|---|---|---|---|---|");
    for round in 1..=2 {
        let reserved = reserve_round(&parts, round, per_writer).await;
        let cycled = reserve_release_round(&parts, round, per_writer).await;
        let updated = update_round(&pool, per_writer).await;
        println!(
            "| {round} | {reserved:.0} | {:.2}x | {cycled:.0} | {:.2}x | {updated:.0} |",
            reserved / updated,
            cycled / updated
        );
    }
    let stock = parts.stock(LOCATION, PART).await.unwrap();
    assert_eq!(
        stock.state.reserved_total() as usize,
        WRITERS * (2 + 2 * per_writer)
    );
}
