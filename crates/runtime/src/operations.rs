//! `aftersales.operations.v1.Operations`, served by every service beside its own
//! API: how far its read models, relay and consumers are behind, and its
//! consumers' dead letters, listed and applied again. The policy gives it to
//! operators only.

use std::sync::{Arc, OnceLock};

use aftersales_eventstore::{AnyEventStore, EventStore as _, StoreError};
use aftersales_messaging::{
    AnyHandler, DeadLetters, JetStreamConsumer, LogConsumer, MessagingError,
};
use aftersales_proto::operations::{
    Backlog, ConsumerBacklog, DeadLetter, GetBacklogRequest, Lag, ListDeadLettersRequest,
    ListDeadLettersResponse, ReplayDeadLetterRequest, ReplayDeadLetterResponse, ReplayOutcome,
    operations_server::{Operations, OperationsServer},
};
use tonic::{Request, Response, Status};

/// The gRPC name reported by health and reflection.
pub const SERVICE_NAME: &str = "aftersales.operations.v1.Operations";

pub(crate) type EmbeddedConsumer = LogConsumer<AnyEventStore, AnyEventStore, AnyHandler>;
pub(crate) type NatsConsumer = JetStreamConsumer<AnyEventStore, AnyHandler>;

/// Where the service's consumers run; set once they do.
pub(crate) enum Consumers {
    /// Following the other services' logs in this process (`aftersales up`).
    Embedded(Vec<Arc<EmbeddedConsumer>>),
    Nats {
        consumers: Vec<Arc<NatsConsumer>>,
        dead_letters: Box<DeadLetters>,
    },
}

impl Consumers {
    fn transport(&self) -> &'static str {
        match self {
            Self::Embedded(_) => "embedded",
            Self::Nats { .. } => "nats",
        }
    }

    fn names(&self) -> Vec<&str> {
        match self {
            Self::Embedded(all) => all
                .iter()
                .map(|c| c.subscription().consumer.as_str())
                .collect(),
            Self::Nats { consumers, .. } => consumers
                .iter()
                .map(|c| c.subscription().consumer.as_str())
                .collect(),
        }
    }
}

/// One service's answers; cheap to clone.
#[derive(Clone)]
pub(crate) struct Service {
    name: &'static str,
    store: AnyEventStore,
    projections: Vec<&'static str>,
    /// The relay's checkpoint name, when the service publishes to NATS.
    relay: Arc<OnceLock<String>>,
    consumers: Arc<OnceLock<Consumers>>,
}

impl Service {
    pub(crate) fn new(
        name: &'static str,
        store: AnyEventStore,
        projections: Vec<&'static str>,
    ) -> Self {
        Self {
            name,
            store,
            projections,
            relay: Arc::default(),
            consumers: Arc::default(),
        }
    }

    pub(crate) fn server(&self) -> OperationsServer<Self> {
        OperationsServer::new(self.clone())
    }

    /// Once the relay runs: its checkpoint's name.
    pub(crate) fn relaying(&self, checkpoint: String) {
        let _ = self.relay.set(checkpoint);
    }

    /// Once the consumers run. Set at most once; later calls are ignored.
    pub(crate) fn consuming(&self, consumers: Consumers) {
        let _ = self.consumers.set(consumers);
    }

    /// How far a reader whose checkpoint is `name` is behind this service's log.
    async fn lag(&self, name: String, checkpoint: &str, last: u64) -> Result<Lag, StoreError> {
        let at = self.store.load_checkpoint(checkpoint).await?.position;
        let oldest = self.store.read_all(at, 1).await?;
        Ok(Lag {
            name,
            positions_behind: last.saturating_sub(at),
            oldest_pending_at: oldest.first().map(|e| timestamp(e.metadata.recorded_at)),
        })
    }

    async fn dead_letters(&self, wanted: &str) -> Result<Vec<DeadLetter>, MessagingError> {
        let mut all = Vec::new();
        match self.consumers.get() {
            None => {}
            Some(Consumers::Embedded(consumers)) => {
                for c in consumers
                    .iter()
                    .filter(|c| wanted.is_empty() || c.subscription().consumer == wanted)
                {
                    all.extend(c.dead_letters().await?.into_iter().map(|l| DeadLetter {
                        consumer: l.consumer,
                        id: u64::try_from(l.id).unwrap_or_default(),
                        event_id: l.event_id.to_string(),
                        event_type: l.event_type,
                        attempts: l.attempts,
                        error: l.error,
                        failed_at: Some(timestamp(l.failed_at)),
                    }));
                }
            }
            Some(Consumers::Nats {
                consumers,
                dead_letters,
            }) => {
                for c in consumers
                    .iter()
                    .filter(|c| wanted.is_empty() || c.subscription().consumer == wanted)
                {
                    let letters = dead_letters.list(&c.subscription().consumer).await?;
                    all.extend(letters.into_iter().map(|l| {
                        DeadLetter {
                            consumer: l.consumer,
                            id: l.sequence,
                            event_id: l.event_id.map(|e| e.to_string()).unwrap_or_default(),
                            event_type: l.event_type.unwrap_or_default(),
                            attempts: u32::try_from(l.attempts).unwrap_or(u32::MAX),
                            error: l.error,
                            failed_at: chrono::DateTime::parse_from_rfc3339(&l.failed_at)
                                .ok()
                                .map(|t| timestamp(t.to_utc())),
                        }
                    }));
                }
            }
        }
        Ok(all)
    }
}

/// One page of `letters`, by consumer then id, after the letter `token`
/// names (`consumer@id`, as the last page's next token), and the next token.
fn page_of(
    mut letters: Vec<DeadLetter>,
    page_size: u32,
    token: &str,
) -> Result<(Vec<DeadLetter>, String), Status> {
    letters.sort_by(|a, b| (&a.consumer, a.id).cmp(&(&b.consumer, b.id)));
    let start = if token.is_empty() {
        0
    } else {
        let (after, id) = token
            .rsplit_once('@')
            .and_then(|(c, id)| Some((c, id.parse::<u64>().ok()?)))
            .ok_or_else(|| crate::errors::invalid("page_token", "is not one this service gave"))?;
        letters.partition_point(|l| (l.consumer.as_str(), l.id) <= (after, id))
    };
    let size = DEAD_LETTERS_PAGE.size(page_size);
    let rest = letters.split_off(start);
    let more = rest.len() > size;
    let page: Vec<DeadLetter> = rest.into_iter().take(size).collect();
    let next = match page.last() {
        Some(last) if more => format!("{}@{}", last.consumer, last.id),
        _ => String::new(),
    };
    Ok((page, next))
}

/// Dead letters per page.
const DEAD_LETTERS_PAGE: crate::paging::Limit = crate::paging::Limit {
    default: 100,
    max: 500,
};

fn timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or_default(),
    }
}

fn unavailable(error: impl std::fmt::Display) -> Status {
    tracing::warn!(%error, "operations: a store or NATS did not answer");
    Status::unavailable(format!("not available now: {error}"))
}

fn unknown_consumer(consumers: Option<&Consumers>, consumer: &str) -> Status {
    let known = consumers.map(Consumers::names).unwrap_or_default();
    Status::not_found(format!(
        "no consumer {consumer:?} runs here; they are: {}",
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    ))
}

/// Longest consumer name a request may carry.
const MAX_CONSUMER_NAME: usize = 128;

#[tonic::async_trait]
impl Operations for Service {
    async fn get_backlog(
        &self,
        _: Request<GetBacklogRequest>,
    ) -> Result<Response<Backlog>, Status> {
        let last = self.store.last_position().await.map_err(unavailable)?;
        let mut projections = Vec::with_capacity(self.projections.len());
        for name in &self.projections {
            projections.push(
                self.lag(
                    (*name).to_owned(),
                    &aftersales_eventstore::projection::checkpoint_of(name),
                    last,
                )
                .await
                .map_err(unavailable)?,
            );
        }
        let relay = match self.relay.get() {
            Some(checkpoint) => Some(
                self.lag("relay".to_owned(), checkpoint, last)
                    .await
                    .map_err(unavailable)?,
            ),
            None => None,
        };
        let mut consumers = Vec::new();
        let consumers_at = self.consumers.get();
        match consumers_at {
            None => {}
            Some(Consumers::Embedded(all)) => {
                for c in all {
                    consumers.push(ConsumerBacklog {
                        consumer: c.subscription().consumer.clone(),
                        source: c.subscription().source.clone(),
                        pending: c.pending().await.map_err(unavailable)?,
                        dead_letters: c.dead_letters().await.map_err(unavailable)?.len() as u64,
                    });
                }
            }
            Some(Consumers::Nats {
                consumers: all,
                dead_letters,
            }) => {
                for c in all {
                    let consumer = &c.subscription().consumer;
                    consumers.push(ConsumerBacklog {
                        consumer: consumer.clone(),
                        source: c.subscription().source.clone(),
                        pending: c.pending().await.map_err(unavailable)?,
                        dead_letters: dead_letters
                            .list(consumer)
                            .await
                            .map_err(unavailable)?
                            .len() as u64,
                    });
                }
            }
        }
        Ok(Response::new(Backlog {
            service: self.name.to_owned(),
            transport: consumers_at.map_or("none", Consumers::transport).to_owned(),
            log_position: last,
            projections,
            relay,
            consumers,
        }))
    }

    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        let ListDeadLettersRequest {
            consumer,
            page_size,
            page_token,
        } = request.into_inner();
        if consumer.len() > MAX_CONSUMER_NAME {
            return Err(crate::errors::invalid("consumer", "longer than 128 bytes"));
        }
        let known = self.consumers.get();
        if !consumer.is_empty() && !known.is_some_and(|k| k.names().contains(&consumer.as_str())) {
            return Err(unknown_consumer(known, &consumer));
        }
        let letters = self.dead_letters(&consumer).await.map_err(unavailable)?;
        let (dead_letters, next_page_token) = page_of(letters, page_size, &page_token)?;
        Ok(Response::new(ListDeadLettersResponse {
            dead_letters,
            next_page_token,
        }))
    }

    async fn replay_dead_letter(
        &self,
        request: Request<ReplayDeadLetterRequest>,
    ) -> Result<Response<ReplayDeadLetterResponse>, Status> {
        let ReplayDeadLetterRequest { consumer, id } = request.into_inner();
        if consumer.is_empty() || consumer.len() > MAX_CONSUMER_NAME {
            return Err(crate::errors::invalid(
                "consumer",
                "a consumer's name, 1 to 128 bytes",
            ));
        }
        let missing = || Status::not_found(format!("{consumer} has no open dead letter {id}"));
        match self.consumers.get() {
            Some(Consumers::Embedded(all)) => {
                let Some(c) = all.iter().find(|c| c.subscription().consumer == consumer) else {
                    return Err(unknown_consumer(self.consumers.get(), &consumer));
                };
                let id = i64::try_from(id).map_err(|_| missing())?;
                match c.replay_dead_letter(id).await.map_err(unavailable)? {
                    None => Err(missing()),
                    Some(Ok(())) => Ok(Response::new(ReplayDeadLetterResponse {
                        outcome: ReplayOutcome::Applied.into(),
                        error: String::new(),
                    })),
                    Some(Err(error)) => Ok(Response::new(ReplayDeadLetterResponse {
                        outcome: ReplayOutcome::FailedAgain.into(),
                        error,
                    })),
                }
            }
            Some(Consumers::Nats {
                consumers,
                dead_letters,
            }) => {
                if !consumers
                    .iter()
                    .any(|c| c.subscription().consumer == consumer)
                {
                    return Err(unknown_consumer(self.consumers.get(), &consumer));
                }
                let open = dead_letters.list(&consumer).await.map_err(unavailable)?;
                if !open.iter().any(|l| l.sequence == id) {
                    return Err(missing());
                }
                // Applied and removed since the list: gone, as a letter never there.
                if !dead_letters
                    .replay(&consumer, id)
                    .await
                    .map_err(unavailable)?
                {
                    return Err(missing());
                }
                Ok(Response::new(ReplayDeadLetterResponse {
                    outcome: ReplayOutcome::Queued.into(),
                    error: String::new(),
                }))
            }
            None => Err(unknown_consumer(None, &consumer)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(consumer: &str, id: u64) -> DeadLetter {
        DeadLetter {
            consumer: consumer.into(),
            id,
            ..DeadLetter::default()
        }
    }

    #[test]
    fn dead_letters_page_by_consumer_then_id_and_a_token_leads_on() {
        let letters = vec![
            letter("b", 1),
            letter("a", 9),
            letter("a", 2),
            letter("b", 3),
        ];
        let (first, next) = page_of(letters.clone(), 3, "").unwrap();
        let ids: Vec<_> = first.iter().map(|l| (l.consumer.as_str(), l.id)).collect();
        assert_eq!(ids, [("a", 2), ("a", 9), ("b", 1)]);
        assert_eq!(next, "b@1");
        let (rest, last) = page_of(letters.clone(), 3, &next).unwrap();
        assert_eq!(rest, [letter("b", 3)]);
        assert!(last.is_empty());
        let (all, none) = page_of(letters.clone(), 0, "").unwrap();
        assert_eq!(
            (all.len(), none.as_str()),
            (4, ""),
            "the default page holds them"
        );
        for forged in ["b", "b@x", "@"] {
            let refused = page_of(letters.clone(), 3, forged).unwrap_err();
            assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{forged}");
        }
    }
}
