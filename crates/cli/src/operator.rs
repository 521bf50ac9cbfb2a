//! Commands for operators: rebuild read models, audit a device's history,
//! dead letters, and what the streams hold.

use std::sync::Arc;
use std::time::Instant;

use aftersales_eventstore::projection::{self, AnyProjection};
use aftersales_eventstore::{AnyEventStore, EventStore as _};
use aftersales_messaging::{DeadLetters, Names, open_dead_letters};
use aftersales_proto::common::{DeviceId, device_id};
use aftersales_proto::repair as rpb;
use aftersales_proto::warranty as wpb;
use aftersales_runtime::service::Description;
use futures::StreamExt as _;
use serde_json::json;

use crate::client::{Endpoints, repair_client, warranty};

/// Every service, as it describes itself: the one place services are listed.
pub static SERVICES: [&Description; 6] = [
    &aftersales_warranty::server::SERVICE,
    &aftersales_repair::server::SERVICE,
    &aftersales_logistics::server::SERVICE,
    &aftersales_notification::server::SERVICE,
    &aftersales_parts::server::SERVICE,
    &aftersales_support::server::SERVICE,
];

/// A service named on the command line.
/// The `authorization` block of NATS in `region`: one user per service, allowed
/// its own subjects only, and the replicas of other regions of the directory
/// it reads (`aftersales nats-authorization`).
pub fn nats_authorization(
    region: &str,
    regions: &aftersales_runtime::regions::Regions,
) -> Result<String, String> {
    let names = Names::new(region).map_err(|e| e.to_string())?;
    let users = SERVICES
        .iter()
        .map(|s| {
            let mut subscriptions = (s.subscriptions)().map_err(|e| e.to_string())?;
            subscriptions.extend(
                s.other_region_subscriptions(regions, region)
                    .map_err(|e| e.to_string())?,
            );
            Ok(aftersales_messaging::permissions::ServiceUser {
                service: s.name.to_owned(),
                subscriptions,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(aftersales_messaging::permissions::authorization(
        &names, &users,
    ))
}

pub fn service(name: &str) -> Result<&'static Description, String> {
    SERVICES
        .iter()
        .copied()
        .find(|s| s.name == name)
        .ok_or_else(|| {
            let names: Vec<_> = SERVICES.iter().map(|s| s.name).collect();
            format!("no service {name:?}; they are: {}", names.join(", "))
        })
}

/// Where a service's database is: `--database-url`, or its file under the data
/// directory `aftersales up` uses.
#[derive(Debug, Clone, clap::Args)]
pub struct Database {
    /// The service's database (postgres://… or sqlite:…).
    #[arg(long)]
    database_url: Option<String>,
    /// Where `aftersales up` keeps its SQLite files.
    #[arg(long, env = "AFTERSALES_DATA_DIR", default_value = "data")]
    data_dir: std::path::PathBuf,
}

impl Database {
    async fn open(&self, service: &Description) -> Result<AnyEventStore, String> {
        let url = match &self.database_url {
            Some(url) => url.clone(),
            None => {
                let file = self.data_dir.join(format!("{}.db", service.name));
                if !file.exists() {
                    return Err(format!(
                        "{} has no database at {} (give --database-url or --data-dir)",
                        service.name,
                        file.display()
                    ));
                }
                format!("sqlite:{}", file.display())
            }
        };
        AnyEventStore::connect(&url)
            .await
            .map_err(|e| format!("{}: {e}", service.name))
    }
}

/// Where NATS is, for the distributed form.
#[derive(Debug, Clone, clap::Args)]
pub struct Nats {
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    #[arg(long, env = "AFTERSALES_REGION", default_value = "local")]
    region: String,
}

impl Nats {
    async fn connect(
        &self,
        ca: Option<&std::path::Path>,
    ) -> Result<(async_nats::jetstream::Context, Names), String> {
        let names = Names::new(self.region.clone()).map_err(|e| format!("--region: {e}"))?;
        let connect = aftersales_messaging::connect_trusting(&self.nats_url, "aftersales-cli", ca);
        let js = tokio::time::timeout(std::time::Duration::from_secs(5), connect)
            .await
            .map_err(|_| format!("cannot reach NATS at {}", self.nats_url))?
            .map_err(|e| format!("cannot reach NATS at {}: {e}", self.nats_url))?;
        Ok((js, names))
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum Projections {
    /// Empty a service's read models and fill them again from its log.
    Rebuild {
        #[arg(value_parser = service)]
        service: &'static Description,
        /// One projection by name; all of the service's if left out.
        projection: Option<String>,
        #[command(flatten)]
        database: Database,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum Audit {
    /// Check the hash chains of a device's warranty and repair history.
    Verify {
        #[arg(long)]
        device: String,
    },
    /// A device's whole history as JSON lines, each event with its hash.
    Export {
        #[arg(long)]
        device: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum Dlq {
    /// Messages consumers gave up on: from NATS, or with --embedded from the
    /// services' own databases (`aftersales up`).
    List {
        /// One consumer; every one if left out.
        #[arg(long)]
        consumer: Option<String>,
        #[arg(long)]
        embedded: bool,
        #[command(flatten)]
        nats: Nats,
        #[command(flatten)]
        database: Database,
    },
    /// Put dead letters back for their consumer to try again (NATS).
    Replay {
        #[arg(long)]
        consumer: String,
        /// One letter by its sequence; all of the consumer's if left out.
        #[arg(long)]
        sequence: Option<u64>,
        #[command(flatten)]
        nats: Nats,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum Streams {
    /// Messages and bytes per service stream, and each consumer's backlog.
    Stats {
        #[command(flatten)]
        nats: Nats,
    },
}

/// Rebuilds `selected` in one pass over the log, with a progress bar.
async fn rebuild(
    store: &AnyEventStore,
    selected: &[Arc<dyn AnyProjection>],
    total: u64,
) -> Result<(), String> {
    let names: Vec<_> = selected.iter().map(|p| p.name()).collect();
    let bar = indicatif::ProgressBar::new(total.max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "[{bar:30}] {pos}/{len} events, {per_sec}, {eta} left",
        )
        .map_err(|e| e.to_string())?
        .progress_chars("=> "),
    );
    eprintln!("rebuilding {}", names.join(", "));
    let started = Instant::now();
    let read = projection::rebuild_together(store, selected, |read| bar.set_position(read))
        .await
        .map_err(|e| format!("{}: {e}", names.join(", ")))?;
    bar.finish();
    let seconds = started.elapsed().as_secs_f64().max(0.001);
    #[allow(clippy::cast_precision_loss)] // a rate to show
    let rate = read as f64 / seconds;
    eprintln!(
        "{} read models: {read} events in {seconds:.1} s ({rate:.0} events/s)",
        selected.len()
    );
    Ok(())
}

pub async fn projections(command: Projections) -> Result<(), String> {
    let Projections::Rebuild {
        service,
        projection,
        database,
    } = command;
    let store = database.open(service).await?;
    let total = store.log_end().await.map_err(|e| e.to_string())?.position;
    let wanted = |name: &str| projection.as_deref().is_none_or(|p| p == name);
    service.migrate(&store).await.map_err(|e| e.to_string())?;
    let selected: Vec<_> = (service.projections)(&store)
        .into_iter()
        .filter(|each| wanted(each.name()))
        .collect();
    if selected.is_empty() {
        return Err(format!(
            "{} has no projection {:?}",
            service.name,
            projection.unwrap_or_default()
        ));
    }
    rebuild(&store, &selected, total).await
}

fn device(imei: &str) -> Option<DeviceId> {
    Some(DeviceId {
        kind: Some(device_id::Kind::Imei(imei.to_owned())),
    })
}

fn failed(status: tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

pub async fn audit(command: Audit, endpoints: &Endpoints) -> Result<(), String> {
    match command {
        Audit::Verify { device: imei } => {
            let w = warranty(endpoints)
                .await?
                .verify_device_history(wpb::VerifyDeviceHistoryRequest {
                    device_id: device(&imei),
                    ..Default::default()
                })
                .await
                .map_err(failed)?
                .into_inner();
            let r = match repair_client(endpoints)
                .await?
                .verify_repair_history(rpb::VerifyRepairHistoryRequest {
                    device_id: device(&imei),
                })
                .await
            {
                Ok(r) => Some(r.into_inner()),
                Err(status) if status.code() == tonic::Code::NotFound => None,
                Err(status) => return Err(failed(status)),
            };
            let repair_intact = r.as_ref().is_none_or(|r| r.intact);
            let report = json!({
                "device": imei,
                "warranty": {"intact": w.intact, "events": w.events_checked, "problem": w.problem, "head": w.head_hash, "checked_against": w.checked_against},
                "repair": r.as_ref().map(|r| json!({"intact": r.intact, "orders": r.orders_checked, "events": r.events_checked, "problem": r.problem, "order": r.first_bad_order_id, "checked_against": r.checked_against})),
                "intact": w.intact && repair_intact,
            });
            if endpoints.json {
                println!("{report}");
            } else {
                println!(
                    "warranty: {} ({} events){}",
                    if w.intact { "intact" } else { "BROKEN" },
                    w.events_checked,
                    if w.problem.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", w.problem)
                    }
                );
                println!("          checked against {}", w.checked_against);
                match &r {
                    Some(r) => {
                        println!(
                            "repair:   {} ({} orders, {} events){}",
                            if r.intact { "intact" } else { "BROKEN" },
                            r.orders_checked,
                            r.events_checked,
                            if r.problem.is_empty() {
                                String::new()
                            } else {
                                format!(": order {} {}", r.first_bad_order_id, r.problem)
                            }
                        );
                        for against in &r.checked_against {
                            println!("          checked against {against}");
                        }
                    }
                    None => println!("repair:   no repairs"),
                }
            }
            if w.intact && repair_intact {
                Ok(())
            } else {
                Err(format!("the history of {imei} has been tampered with"))
            }
        }
        Audit::Export { device: imei } => {
            let time = |t: Option<&prost_types::Timestamp>| {
                t.and_then(|t| {
                    chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
                })
                .map(|t| t.to_rfc3339())
            };
            let payload =
                |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap_or(json!(text));
            // Page by page, each written as it comes: a history of any length.
            // The last line counts what was written, for `audit verify` to match.
            let mut warranty = warranty(endpoints).await?;
            let mut page_token = String::new();
            let (mut warranty_events, mut repair_events) = (0u64, 0u64);
            let mut repair_orders: Vec<String> = Vec::new();
            loop {
                let page = warranty
                    .get_device_history(wpb::GetDeviceHistoryRequest {
                        device_id: device(&imei),
                        page_token,
                        ..Default::default()
                    })
                    .await
                    .map_err(failed)?
                    .into_inner();
                warranty_events += page.events.len() as u64;
                for e in &page.events {
                    println!(
                        "{}",
                        json!({"service": "warranty", "stream": format!("device-imei-{imei}"), "version": e.version, "event_id": e.event_id, "type": e.event_type, "recorded_at": time(e.recorded_at.as_ref()), "actor": e.actor, "correlation_id": e.correlation_id, "payload": payload(&e.payload_json), "hash": e.hash})
                    );
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            let mut repair = repair_client(endpoints).await?;
            let mut page_token = String::new();
            loop {
                let page = match repair
                    .get_repair_history(rpb::GetRepairHistoryRequest {
                        device_id: device(&imei),
                        page_token,
                        ..Default::default()
                    })
                    .await
                {
                    Ok(page) => page.into_inner(),
                    Err(status) if status.code() == tonic::Code::NotFound => break,
                    Err(status) => return Err(failed(status)),
                };
                repair_events += page.events.len() as u64;
                for e in page.events {
                    if !repair_orders.contains(&e.order_id) {
                        repair_orders.push(e.order_id.clone());
                    }
                    println!(
                        "{}",
                        json!({"service": "repair", "stream": format!("repair-{}", e.order_id), "version": e.version, "event_id": e.event_id, "type": e.event_type, "recorded_at": time(e.recorded_at.as_ref()), "actor": e.actor, "correlation_id": e.correlation_id, "payload": payload(&e.payload_json), "hash": e.hash})
                    );
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            println!(
                "{}",
                json!({"summary": {"device": imei, "warranty_events": warranty_events, "repair_orders": repair_orders.len(), "repair_events": repair_events}})
            );
            Ok(())
        }
    }
}

/// Every service's durable consumers, with the service.
fn all_consumers() -> Result<Vec<(&'static Description, String)>, String> {
    let mut all = Vec::new();
    for service in SERVICES {
        for consumer in service.consumers().map_err(|e| e.to_string())? {
            all.push((service, consumer));
        }
    }
    Ok(all)
}

pub async fn dlq(command: Dlq, endpoints: &Endpoints) -> Result<(), String> {
    match command {
        Dlq::List {
            consumer,
            embedded,
            nats,
            database,
        } => {
            let wanted = |c: &str| consumer.as_deref().is_none_or(|w| w == c);
            let known = all_consumers()?;
            if let Some(c) = &consumer
                && !known.iter().any(|(_, k)| k == c)
            {
                return Err(format!(
                    "no consumer {c:?}; they are: {}",
                    known
                        .iter()
                        .map(|(_, c)| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let mut count = 0;
            if embedded {
                for service in SERVICES {
                    let consumers: Vec<_> = known
                        .iter()
                        .filter(|(s, c)| s.name == service.name && wanted(c))
                        .map(|(_, c)| c)
                        .collect();
                    if consumers.is_empty() {
                        continue;
                    }
                    let store = database.open(service).await?;
                    for c in consumers {
                        for l in open_dead_letters(&store, c)
                            .await
                            .map_err(|e| e.to_string())?
                        {
                            count += 1;
                            println!(
                                "{}",
                                if endpoints.json {
                                    json!({"consumer": l.consumer, "id": l.id, "event_id": l.event_id.to_string(), "type": l.event_type, "attempts": l.attempts, "error": l.error, "failed_at": l.failed_at.to_rfc3339()}).to_string()
                                } else {
                                    format!(
                                        "{} #{}  {} {}  after {} attempts: {}",
                                        l.consumer,
                                        l.id,
                                        l.event_type,
                                        l.event_id,
                                        l.attempts,
                                        l.error
                                    )
                                }
                            );
                        }
                    }
                }
            } else {
                let (js, names) = nats.connect(endpoints.ca_cert.as_deref()).await?;
                let letters = DeadLetters::new(js, names);
                for (_, c) in known.iter().filter(|(_, c)| wanted(c)) {
                    for l in letters.list(c).await.map_err(|e| e.to_string())? {
                        count += 1;
                        println!(
                            "{}",
                            if endpoints.json {
                                json!({"consumer": l.consumer, "sequence": l.sequence, "subject": l.subject, "event_id": l.event_id.map(|e| e.to_string()), "type": l.event_type, "attempts": l.attempts, "error": l.error, "failed_at": l.failed_at}).to_string()
                            } else {
                                format!(
                                    "{} #{}  {}  after {} attempts: {}",
                                    l.consumer, l.sequence, l.subject, l.attempts, l.error
                                )
                            }
                        );
                    }
                }
            }
            if !endpoints.json {
                eprintln!("{count} dead letters");
            }
            Ok(())
        }
        Dlq::Replay {
            consumer,
            sequence,
            nats,
        } => {
            let (js, names) = nats.connect(endpoints.ca_cert.as_deref()).await?;
            let letters = DeadLetters::new(js, names);
            let sequences = match sequence {
                Some(s) => vec![s],
                None => letters
                    .list(&consumer)
                    .await
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(|l| l.sequence)
                    .collect(),
            };
            let mut put_back = 0;
            for s in &sequences {
                if letters
                    .replay(&consumer, *s)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    put_back += 1;
                } else {
                    eprintln!("no dead letter {s} of {consumer}: never was, or applied since");
                }
            }
            eprintln!("{put_back} put back for {consumer}");
            Ok(())
        }
    }
}

pub async fn streams(command: Streams, endpoints: &Endpoints) -> Result<(), String> {
    let Streams::Stats { nats } = command;
    let (js, names) = nats.connect(endpoints.ca_cert.as_deref()).await?;
    let mut streams: Vec<String> = SERVICES
        .iter()
        .map(|s| names.service_stream(s.name))
        .collect();
    streams.push(names.dead_letter_stream());
    for name in streams {
        let mut stream = match js.get_stream(&name).await {
            Ok(stream) => stream,
            Err(_) => {
                if !endpoints.json {
                    println!("{name}: not created yet");
                }
                continue;
            }
        };
        let info = stream
            .info()
            .await
            .map_err(|e| format!("{name}: {e}"))?
            .clone();
        let mut consumers = Vec::new();
        let mut listing = stream.consumers();
        while let Some(consumer) = listing.next().await {
            let c = consumer.map_err(|e| format!("{name}: {e}"))?;
            consumers.push(json!({"name": c.name, "pending": c.num_pending, "ack_pending": c.num_ack_pending, "redelivered": c.num_redelivered}));
        }
        if endpoints.json {
            println!(
                "{}",
                json!({"stream": name, "messages": info.state.messages, "bytes": info.state.bytes, "first_sequence": info.state.first_sequence, "last_sequence": info.state.last_sequence, "consumers": consumers})
            );
        } else {
            println!(
                "{name}: {} messages, {} bytes, sequences {}..{}",
                info.state.messages,
                info.state.bytes,
                info.state.first_sequence,
                info.state.last_sequence
            );
            for c in &consumers {
                println!(
                    "  {:<32} pending {:>6}  unacknowledged {:>5}  redelivered {:>5}",
                    c["name"].as_str().unwrap_or_default(),
                    c["pending"],
                    c["ack_pending"],
                    c["redelivered"]
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod nats_users {
    #![allow(clippy::unwrap_used)]

    /// The deployment files include the users this tool generates; a service
    /// whose subscriptions change makes this fail until they are regenerated.
    #[test]
    fn the_deployed_nats_users_are_the_generated_ones() {
        let root = format!("{}/../..", env!("CARGO_MANIFEST_DIR"));
        let directory = aftersales_runtime::regions::Regions::load(
            format!("{root}/deploy/k8s/base/regions.toml").as_ref(),
        )
        .unwrap();
        let single = aftersales_runtime::regions::Regions::single("local");
        for (region, path, regions, flag) in [
            ("local", "deploy/nats/authorization.conf", &single, ""),
            (
                "eu-central",
                "deploy/k8s/overlays/eu-central/authorization.conf",
                &directory,
                " --regions-file deploy/k8s/base/regions.toml",
            ),
            (
                "cn-east",
                "deploy/k8s/overlays/cn-east/authorization.conf",
                &directory,
                " --regions-file deploy/k8s/base/regions.toml",
            ),
            (
                "ap-south",
                "deploy/k8s/overlays/ap-south/authorization.conf",
                &directory,
                " --regions-file deploy/k8s/base/regions.toml",
            ),
        ] {
            let file = std::fs::read_to_string(format!("{root}/{path}")).unwrap();
            assert!(
                file == super::nats_authorization(region, regions).unwrap(),
                "{path} is stale: aftersales nats-authorization --region {region}{flag} > {path}"
            );
        }
    }
}
