//! The write path as a command sees it, against the library a Rust team would
//! otherwise pick and against a raw insert, on one durable PostgreSQL.
//!
//! `cargo bench --manifest-path benches/peer/Cargo.toml` (a release build). One
//! PostgreSQL with `fsync=on` and `synchronous_commit=on`, started by the test kit;
//! 32 writers; each command loads its stream (at most 20 events: a writer moves to a
//! new stream after 20), decides, and appends one event. Measured in two
//! interleaved rounds (forward, then backward), each variant on fresh streams:
//!
//! - `raw insert`: one single-row `INSERT` into a table of the same shape as the
//!   event log (same columns, constraints and indexes), no read, no decision;
//! - `CommandHandler`: load (one read), decide, append (head cache);
//! - `CommandHandler, recent states`: as above, but the state a command left is
//!   remembered, so the next command on the stream is one insert;
//! - `cqrs-es + postgres-es`: `CqrsFramework::execute` on `PostgresEventRepository`
//!   (load all events, handle, insert in a transaction).
//!
//! `BENCH_COMMANDS_PER_WRITER` (default 600) sets the sample size per variant and round.

#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aftersales_eventstore::{AnyEventStore, CommandContext, CommandHandler, Decider, StreamId};
use aftersales_testkit::{PostgresOptions, PostgresServer};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const WRITERS: usize = 32;
const EVENTS_PER_STREAM: usize = 20;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A repair ticket that collects technician notes: the same rule on both sides.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Ticket {
    notes: usize,
    last: String,
}

#[derive(Debug, Clone)]
struct Note(String);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
enum TicketEvent {
    Noted { text: String },
}

#[derive(Debug, thiserror::Error)]
enum TicketError {
    #[error("a ticket holds at most {EVENTS_PER_STREAM} notes")]
    Full,
}

impl aftersales_eventstore::DomainEvent for TicketEvent {
    fn event_type(&self) -> &'static str {
        "Noted"
    }
}

fn decide(ticket: &Ticket, note: &Note) -> Result<TicketEvent, TicketError> {
    if ticket.notes >= EVENTS_PER_STREAM {
        return Err(TicketError::Full);
    }
    Ok(TicketEvent::Noted {
        text: note.0.clone(),
    })
}

fn evolve(mut ticket: Ticket, event: &TicketEvent) -> Ticket {
    let TicketEvent::Noted { text } = event;
    ticket.notes += 1;
    ticket.last.clone_from(text);
    ticket
}

struct Tickets;

impl Decider for Tickets {
    type Command = Note;
    type Event = TicketEvent;
    type State = Ticket;
    type Error = TicketError;

    fn initial_state() -> Ticket {
        Ticket::default()
    }

    fn decide(state: &Ticket, command: &Note) -> Result<Vec<TicketEvent>, TicketError> {
        decide(state, command).map(|event| vec![event])
    }

    fn evolve(state: Ticket, event: &TicketEvent) -> Ticket {
        evolve(state, event)
    }
}

impl cqrs_es::DomainEvent for TicketEvent {
    fn event_type(&self) -> String {
        aftersales_eventstore::DomainEvent::event_type(self).to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl cqrs_es::Aggregate for Ticket {
    const TYPE: &'static str = "ticket";
    type Command = Note;
    type Event = TicketEvent;
    type Error = TicketError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Note,
        _: &(),
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), TicketError> {
        let event = decide(self, &command)?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: TicketEvent) {
        *self = evolve(std::mem::take(self), &event);
    }
}

/// The note every command carries: about the size of a technician's remark.
fn note(writer: usize, i: usize) -> Note {
    Note(format!(
        "writer {writer} note {i}: display replaced, seal renewed, tested ok"
    ))
}

/// A fixed time: the benchmark measures writing, not clocks.
fn recorded_at() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap()
}

fn context() -> CommandContext {
    CommandContext {
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        ..CommandContext::system("staff:tech-7", "eu-central", recorded_at())
    }
}

#[derive(Clone)]
enum Variant {
    Raw(sqlx::PgPool),
    Ours(CommandHandler<Tickets, AnyEventStore>),
    Cqrs(Arc<postgres_es::PostgresCqrs<Ticket>>),
}

impl Variant {
    async fn command(&self, stream: &str, version: usize, note: Note) {
        match self {
            Self::Raw(pool) => {
                let payload = serde_json::to_vec(&TicketEvent::Noted { text: note.0 }).unwrap();
                let ctx = context();
                sqlx::query(
                    "INSERT INTO baseline_events (stream_id, stream_version, event_id, \
                     event_type, schema_version, payload, correlation_id, causation_id, \
                     traceparent, tracestate, actor, region, recorded_at, hash) \
                     VALUES ($1, $2, $3, 'Noted', 1, $4, $5, NULL, $6, NULL, $7, $8, $9, $10)",
                )
                .bind(stream)
                .bind(i64::try_from(version).unwrap())
                .bind(Uuid::now_v7())
                .bind(payload)
                .bind(ctx.correlation_id)
                .bind(ctx.traceparent)
                .bind(ctx.actor)
                .bind(ctx.region)
                .bind(ctx.now)
                .bind(vec![7u8; 32])
                .execute(pool)
                .await
                .unwrap();
            }
            Self::Ours(handler) => {
                let stream = StreamId::parse(stream).unwrap();
                let handled = handler.handle(&stream, &note, &context()).await.unwrap();
                assert_eq!(handled.version, version as u64);
            }
            Self::Cqrs(cqrs) => {
                let metadata = HashMap::from([(
                    "traceparent".to_owned(),
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
                )]);
                cqrs.execute_with_metadata(stream, note, metadata)
                    .await
                    .unwrap();
            }
        }
    }
}

/// Commands per second of `variant` with `WRITERS` writers, each issuing
/// `per_writer` commands on its own streams (prefix `run`).
async fn measure(variant: &Variant, run: &str, per_writer: usize) -> f64 {
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let variant = variant.clone();
            let run = run.to_owned();
            tokio::spawn(async move {
                for i in 0..per_writer {
                    let stream = format!("ticket-{run}-{writer}-{}", i / EVENTS_PER_STREAM);
                    let version = i % EVENTS_PER_STREAM + 1;
                    variant.command(&stream, version, note(writer, i)).await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    (WRITERS * per_writer) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let per_writer = env_usize("BENCH_COMMANDS_PER_WRITER", 600);
    let server = Arc::new(
        tokio::task::spawn_blocking(|| PostgresServer::start(PostgresOptions::Durable).unwrap())
            .await
            .unwrap(),
    );
    let database = || {
        let server = Arc::clone(&server);
        async move {
            tokio::task::spawn_blocking(move || server.create_database().unwrap())
                .await
                .unwrap()
        }
    };
    let ours_url = database().await;
    let cqrs_url = database().await;

    let store = AnyEventStore::connect(&ours_url).await.unwrap();
    let AnyEventStore::Postgres(pg) = &store else {
        unreachable!()
    };
    sqlx::query("CREATE TABLE baseline_events (LIKE events INCLUDING ALL)")
        .execute(pg.pool())
        .await
        .unwrap();
    let raw = Variant::Raw(pg.pool().clone());
    let ours = Variant::Ours(CommandHandler::new(store.clone()));
    let ours_recent = Variant::Ours(CommandHandler::new(store.clone()).with_recent_states(4096));

    let cqrs_pool = sqlx08::postgres::PgPoolOptions::new()
        .max_connections(32)
        .connect(&cqrs_url)
        .await
        .unwrap();
    sqlx08::raw_sql(include_str!("postgres_es.sql"))
        .execute(&cqrs_pool)
        .await
        .unwrap();
    let cqrs = Variant::Cqrs(Arc::new(postgres_es::postgres_cqrs(
        cqrs_pool,
        Vec::new(),
        (),
    )));

    let variants = [
        ("raw insert", &raw),
        ("CommandHandler", &ours),
        ("CommandHandler, recent states", &ours_recent),
        ("cqrs-es + postgres-es", &cqrs),
    ];
    // Warm-up: connections, caches, plans.
    for (name, variant) in variants {
        measure(variant, &format!("warm-{}", name.len()), 10).await;
    }
    let mut rates: HashMap<&str, Vec<f64>> = HashMap::new();
    for round in 0..2 {
        let order: Vec<_> = if round == 0 {
            variants.iter().collect()
        } else {
            variants.iter().rev().collect()
        };
        for (name, variant) in order {
            let run = format!("r{round}-{}", name.len());
            let rate = measure(variant, &run, per_writer).await;
            eprintln!("round {round}: {name}: {rate:.0} commands/s");
            rates.entry(name).or_default().push(rate);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let mean = |name: &str| rates[name].iter().sum::<f64>() / rates[name].len() as f64;
    let shown = |name: &str| {
        rates[name]
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let (raw, cqrs) = (mean("raw insert"), mean("cqrs-es + postgres-es"));
    println!("| variant | commands/s (round 1 / round 2) | mean | vs cqrs-es | vs raw insert |");
    println!("|---|---|---|---|---|");
    for (name, _) in variants {
        let m = mean(name);
        println!(
            "| {name} | {} | {m:.0} | {:.2}x | {:.2}x |",
            shown(name),
            m / cqrs,
            m / raw
        );
    }
    println!(
        "\n{WRITERS} writers, {per_writer} commands each per round, streams of at most \
         {EVENTS_PER_STREAM} events, PostgreSQL fsync=on synchronous_commit=on"
    );
}
