//! `aftersales.privacy.v1.Privacy`, served by every service for what it holds
//! about a customer: a copy of it, and its erasure.
//!
//! Each service says what it holds ([`CustomerRecords`]); erasing is the same
//! everywhere: while an obligation needs the data the request is recorded
//! (`ErasureRequested`, and a row in `pending_erasures` a sweep revisits), then
//! the customer's keys in the service's scope are destroyed, its read models
//! drop what they copied, and `CustomerErased` records the receipt, once. Every
//! step may run again after a crash: destroying a destroyed key and scrubbing
//! scrubbed rows change nothing, and the receipt is written once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aftersales_core::{Error, SharedClock, Shutdown};
use aftersales_eventstore::{
    AnyEventStore, CommandContext, CommandHandler, Decider, DomainEvent, EventStore as _,
    HandleError, StreamId, on_connection, on_read_pool,
};
use aftersales_proto::privacy as pb;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tonic::{Request, Response, Status};

use crate::auth::{Caller, Owner};
use crate::errors::status;
use crate::request::Requests;

/// The gRPC name reported by health and reflection.
pub const SERVICE_NAME: &str = "aftersales.privacy.v1.Privacy";

/// A service's answer, boxed so [`CustomerRecords`] can be held as a trait object.
pub type Answer<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// One thing a service holds about a customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: &'static str,
    pub id: String,
    pub data: serde_json::Value,
}

/// Something that still needs the customer's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Obligation {
    pub what: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erased {
    pub what: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    pub what: String,
    pub why: String,
}

/// What one service holds about customers, and how it lets go of it.
pub trait CustomerRecords: Send + Sync + 'static {
    /// Everything held about `customer`, personal fields opened.
    fn export<'a>(&'a self, customer: &'a str) -> Answer<'a, Vec<Record>>;
    /// What still needs the data; erasure waits while there is any.
    fn obligations<'a>(&'a self, customer: &'a str) -> Answer<'a, Vec<Obligation>>;
    /// Ids of this service's scope besides the customer's own whose keys erasure
    /// destroys (the customer's parcels, say).
    fn subjects<'a>(&'a self, customer: &'a str) -> Answer<'a, Vec<String>>;
    /// Removes what read models copied of the customer's personal data.
    fn scrub<'a>(&'a self, customer: &'a str) -> Answer<'a, Vec<Erased>>;
    /// What stays after erasure, and why.
    fn kept(&self) -> Vec<Kept>;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Event {
    ErasureRequested {
        customer_id: String,
        requested_at: DateTime<Utc>,
        waiting_for: Vec<Obligation>,
    },
    CustomerErased {
        customer_id: String,
        erased_at: DateTime<Utc>,
        /// Keys destroyed.
        keys: u64,
        erased: Vec<Erased>,
        kept: Vec<Kept>,
    },
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Self::ErasureRequested { .. } => "ErasureRequested",
            Self::CustomerErased { .. } => "CustomerErased",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
struct Progress {
    requested_at: Option<DateTime<Utc>>,
    waiting_for: Vec<Obligation>,
    erased_at: Option<DateTime<Utc>>,
    erased: Vec<Erased>,
    kept: Vec<Kept>,
}

#[derive(Debug)]
enum Command {
    Request {
        customer_id: String,
        waiting_for: Vec<Obligation>,
        now: DateTime<Utc>,
    },
    Complete {
        customer_id: String,
        keys: u64,
        erased: Vec<Erased>,
        kept: Vec<Kept>,
        now: DateTime<Utc>,
    },
}

/// One customer's erasure in one service (stream `erasure-<customer>`).
struct Erasure;

impl Decider for Erasure {
    type Command = Command;
    type Event = Event;
    type State = Progress;
    type Error = std::convert::Infallible;

    fn initial_state() -> Progress {
        Progress::default()
    }

    fn decide(state: &Progress, command: &Command) -> Result<Vec<Event>, Self::Error> {
        if state.erased_at.is_some() {
            return Ok(vec![]);
        }
        Ok(match command {
            Command::Request {
                customer_id,
                waiting_for,
                now,
            } => {
                if state.requested_at.is_some() && state.waiting_for == *waiting_for {
                    vec![]
                } else {
                    vec![Event::ErasureRequested {
                        customer_id: customer_id.clone(),
                        requested_at: state.requested_at.unwrap_or(*now),
                        waiting_for: waiting_for.clone(),
                    }]
                }
            }
            Command::Complete {
                customer_id,
                keys,
                erased,
                kept,
                now,
            } => {
                let requested = state
                    .requested_at
                    .is_none()
                    .then(|| Event::ErasureRequested {
                        customer_id: customer_id.clone(),
                        requested_at: *now,
                        waiting_for: vec![],
                    });
                requested
                    .into_iter()
                    .chain([Event::CustomerErased {
                        customer_id: customer_id.clone(),
                        erased_at: *now,
                        keys: *keys,
                        erased: erased.clone(),
                        kept: kept.clone(),
                    }])
                    .collect()
            }
        })
    }

    fn evolve(mut state: Progress, event: &Event) -> Progress {
        match event {
            Event::ErasureRequested {
                requested_at,
                waiting_for,
                ..
            } => {
                state.requested_at = Some(*requested_at);
                state.waiting_for.clone_from(waiting_for);
            }
            Event::CustomerErased {
                erased_at,
                erased,
                kept,
                ..
            } => {
                state.erased_at = Some(*erased_at);
                state.waiting_for.clear();
                state.erased.clone_from(erased);
                state.kept.clone_from(kept);
            }
        }
        state
    }
}

fn handled(error: HandleError<std::convert::Infallible>) -> Error {
    match error {
        HandleError::Store(store) => store.into(),
        other @ (HandleError::Domain(_)
        | HandleError::Codec(_)
        | HandleError::Contention { .. }) => Error::internal("erasure").with_source(other),
    }
}

/// A customer id as a stream's suffix: printable ASCII without spaces.
fn customer(value: &str) -> Result<StreamId, Error> {
    if value.is_empty() || value.len() > 100 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            "customer_id",
            "must be 1 to 100 printable ASCII characters without spaces",
        ));
    }
    StreamId::parse(format!("erasure-{value}")).map_err(|e| Error::invalid("customer_id", e.reason))
}

/// One service's privacy answers; cheap to clone.
#[derive(Clone)]
pub(crate) struct Service {
    name: &'static str,
    store: AnyEventStore,
    records: Arc<dyn CustomerRecords>,
    erasures: CommandHandler<Erasure, AnyEventStore>,
    requests: Arc<Requests>,
    clock: SharedClock,
}

impl Service {
    pub(crate) fn new(
        name: &'static str,
        store: AnyEventStore,
        records: Arc<dyn CustomerRecords>,
        region: &str,
        clock: SharedClock,
    ) -> Self {
        Self {
            name,
            erasures: CommandHandler::new(store.clone()),
            store,
            records,
            requests: Arc::new(Requests::new(region, clock.clone())),
            clock,
        }
    }

    pub(crate) fn server(&self) -> pb::privacy_server::PrivacyServer<Self> {
        pb::privacy_server::PrivacyServer::new(self.clone())
    }

    /// Erases `customer` now, or records that it waits; the receipt either way.
    pub(crate) async fn erase(
        &self,
        customer_id: &str,
        ctx: &CommandContext,
    ) -> Result<pb::ErasureReceipt, Error> {
        let stream = customer(customer_id)?;
        let progress = self.erasures.load(&stream).await.map_err(handled)?.state;
        if progress.erased_at.is_some() {
            return Ok(self.receipt(customer_id, &progress));
        }
        let waiting_for = self.records.obligations(customer_id).await?;
        if !waiting_for.is_empty() {
            let mut tx = self.store.begin().await?;
            let done = self
                .erasures
                .handle_in(
                    &mut tx,
                    &stream,
                    &Command::Request {
                        customer_id: customer_id.to_owned(),
                        waiting_for,
                        now: ctx.now,
                    },
                    ctx,
                )
                .await
                .map_err(handled)?;
            let requested = done
                .state
                .requested_at
                .unwrap_or(ctx.now)
                .timestamp_micros();
            on_connection!(tx.connection(), c => {
                sqlx::query(
                    "INSERT INTO pending_erasures (customer_id, requested_at) VALUES ($1, $2) \
                     ON CONFLICT (customer_id) DO NOTHING",
                )
                .bind(customer_id.to_owned())
                .bind(requested)
                .execute(c)
                .await
                .map_err(aftersales_eventstore::StoreError::from)?;
            });
            tx.commit().await?;
            return Ok(self.receipt(customer_id, &done.state));
        }
        let mut keys = 0;
        if let Some(sealing) = self.store.sealing() {
            let mut subjects = vec![customer_id.to_owned()];
            subjects.extend(self.records.subjects(customer_id).await?);
            for subject in subjects {
                let destroyed = sealing
                    .keyring()
                    .destroy(&sealing.subject(&subject))
                    .await
                    .map_err(aftersales_eventstore::StoreError::from)?;
                keys += u64::from(destroyed);
            }
        }
        let erased = self.records.scrub(customer_id).await?;
        let mut tx = self.store.begin().await?;
        let done = self
            .erasures
            .handle_in(
                &mut tx,
                &stream,
                &Command::Complete {
                    customer_id: customer_id.to_owned(),
                    keys,
                    erased,
                    kept: self.records.kept(),
                    now: ctx.now,
                },
                ctx,
            )
            .await
            .map_err(handled)?;
        on_connection!(tx.connection(), c => {
            sqlx::query("DELETE FROM pending_erasures WHERE customer_id = $1")
                .bind(customer_id.to_owned())
                .execute(c)
                .await
                .map_err(aftersales_eventstore::StoreError::from)?;
        });
        tx.commit().await?;
        tracing::info!(service = self.name, keys, "customer erased");
        Ok(self.receipt(customer_id, &done.state))
    }

    fn receipt(&self, customer_id: &str, progress: &Progress) -> pb::ErasureReceipt {
        let time = |t: DateTime<Utc>| prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
        };
        pb::ErasureReceipt {
            service: self.name.to_owned(),
            customer_id: customer_id.to_owned(),
            state: if progress.erased_at.is_some() {
                pb::ErasureState::Done
            } else {
                pb::ErasureState::Deferred
            }
            .into(),
            requested_at: progress.requested_at.map(time),
            erased_at: progress.erased_at.map(time),
            erased: progress
                .erased
                .iter()
                .map(|e| pb::Erased {
                    what: e.what.clone(),
                    count: e.count,
                })
                .collect(),
            kept: progress
                .kept
                .iter()
                .map(|k| pb::Kept {
                    what: k.what.clone(),
                    why: k.why.clone(),
                })
                .collect(),
            waiting_for: progress
                .waiting_for
                .iter()
                .map(|o| pb::Obligation {
                    what: o.what.clone(),
                    id: o.id.clone(),
                })
                .collect(),
        }
    }

    /// Carries out every deferred erasure whose obligations have ended.
    pub(crate) async fn sweep(&self, region: &str) -> Result<(), Error> {
        let pending: Vec<String> = on_read_pool!(&self.store, pool => {
            sqlx::query_scalar(
                "SELECT customer_id FROM pending_erasures ORDER BY requested_at LIMIT 100",
            )
            .fetch_all(pool)
            .await
            .map_err(aftersales_eventstore::StoreError::from)?
        });
        for customer_id in pending {
            let ctx = CommandContext::system("system:erasure-sweep", region, self.clock.now());
            self.erase(&customer_id, &ctx).await?;
        }
        Ok(())
    }

    /// The sweep, every `every`, until the service stops.
    pub(crate) async fn sweeping(self, region: String, every: Duration, shutdown: Shutdown) {
        loop {
            if let Err(error) = self.sweep(&region).await {
                tracing::warn!(service = self.name, error = %error.chain(), "erasure sweep failed; retrying");
            }
            tokio::select! {
                () = shutdown.stopped() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}

fn authorized<T>(request: &Request<T>, customer_id: &str) -> Result<(), Status> {
    if Caller::of(request).may_touch(Owner {
        customer: Some(customer_id),
        center: None,
    }) {
        Ok(())
    } else {
        Err(Status::not_found("no such customer"))
    }
}

#[tonic::async_trait]
impl pb::privacy_server::Privacy for Service {
    async fn export_customer_data(
        &self,
        request: Request<pb::ExportCustomerDataRequest>,
    ) -> Result<Response<pb::CustomerData>, Status> {
        let customer_id = request.get_ref().customer_id.clone();
        let stream = customer(&customer_id).map_err(status)?;
        authorized(&request, &customer_id)?;
        let records = self.records.export(&customer_id).await.map_err(status)?;
        let progress = self
            .erasures
            .load(&stream)
            .await
            .map_err(|e| status(handled(e)))?
            .state;
        Ok(Response::new(pb::CustomerData {
            service: self.name.to_owned(),
            customer_id: customer_id.clone(),
            records: records
                .into_iter()
                .map(|r| pb::CustomerRecord {
                    kind: r.kind.to_owned(),
                    id: r.id,
                    json: r.data.to_string(),
                })
                .collect(),
            erasure: progress
                .requested_at
                .is_some()
                .then(|| self.receipt(&customer_id, &progress)),
        }))
    }

    async fn erase_customer(
        &self,
        request: Request<pb::EraseCustomerRequest>,
    ) -> Result<Response<pb::ErasureReceipt>, Status> {
        let customer_id = request.get_ref().customer_id.clone();
        customer(&customer_id).map_err(status)?;
        authorized(&request, &customer_id)?;
        let ctx = self.requests.context(&request)?;
        self.erase(&customer_id, &ctx)
            .await
            .map(Response::new)
            .map_err(status)
    }
}

/// A service's answer for a customer as one JSON document (for a person to
/// keep, or a tool to read): each record's JSON parsed in place.
pub fn data_json(data: &pb::CustomerData) -> serde_json::Value {
    let records: Vec<serde_json::Value> = data
        .records
        .iter()
        .map(|r| {
            serde_json::json!({
                "kind": r.kind,
                "id": r.id,
                "data": serde_json::from_str::<serde_json::Value>(&r.json)
                    .unwrap_or_else(|_| serde_json::Value::String(r.json.clone())),
            })
        })
        .collect();
    serde_json::json!({
        "service": data.service,
        "customer_id": data.customer_id,
        "records": records,
        "erasure": data.erasure.as_ref().map(receipt_json),
    })
}

/// An erasure receipt as JSON, its state as `deferred` or `done`.
pub fn receipt_json(receipt: &pb::ErasureReceipt) -> serde_json::Value {
    let time = |t: Option<&prost_types::Timestamp>| {
        t.and_then(|t| DateTime::from_timestamp(t.seconds, 0))
            .map(|t| t.to_rfc3339())
    };
    serde_json::json!({
        "service": receipt.service,
        "state": pb::ErasureState::try_from(receipt.state)
            .map(|s| s.as_str_name().trim_start_matches("ERASURE_STATE_").to_ascii_lowercase())
            .unwrap_or_default(),
        "requested_at": time(receipt.requested_at.as_ref()).unwrap_or_default(),
        "erased_at": time(receipt.erased_at.as_ref()),
        "erased": receipt.erased.iter().map(|e| serde_json::json!({"what": e.what, "count": e.count})).collect::<Vec<_>>(),
        "kept": receipt.kept.iter().map(|k| serde_json::json!({"what": k.what, "why": k.why})).collect::<Vec<_>>(),
        "waiting_for": receipt.waiting_for.iter().map(|o| serde_json::json!({"what": o.what, "id": o.id})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hour: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + i64::from(hour) * 3600, 0).expect("time")
    }

    fn request(waiting: &[&str], hour: u32) -> Command {
        Command::Request {
            customer_id: "c-1".into(),
            waiting_for: waiting
                .iter()
                .map(|id| Obligation {
                    what: "parcel in transit".into(),
                    id: (*id).into(),
                })
                .collect(),
            now: at(hour),
        }
    }

    fn complete(hour: u32) -> Command {
        Command::Complete {
            customer_id: "c-1".into(),
            keys: 1,
            erased: vec![],
            kept: vec![],
            now: at(hour),
        }
    }

    fn run(commands: &[Command]) -> (Progress, usize) {
        let mut state = Erasure::initial_state();
        let mut written = 0;
        for command in commands {
            let events = Erasure::decide(&state, command).expect("decides");
            written += events.len();
            state = events.iter().fold(state, Erasure::evolve);
        }
        (state, written)
    }

    #[test]
    fn a_deferred_erasure_keeps_its_first_request_time_and_completes_once() {
        let (state, written) = run(&[
            request(&["s-1"], 0),
            request(&["s-1"], 1),
            complete(5),
            complete(6),
            request(&[], 7),
        ]);
        assert_eq!(written, 2, "one request, one erasure");
        assert_eq!(state.requested_at, Some(at(0)));
        assert_eq!(state.erased_at, Some(at(5)));
        assert!(state.waiting_for.is_empty());
    }

    #[test]
    fn an_erasure_with_nothing_waiting_records_its_request_and_itself() {
        let (state, written) = run(&[complete(2)]);
        assert_eq!(written, 2);
        assert_eq!(
            (state.requested_at, state.erased_at),
            (Some(at(2)), Some(at(2)))
        );
    }

    #[test]
    fn customer_ids_are_checked_before_anything() {
        for bad in ["", "a b", &"x".repeat(101)] {
            assert!(customer(bad).is_err(), "{bad:?}");
        }
        assert!(customer("c-42").is_ok());
    }
}
