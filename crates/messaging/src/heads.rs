//! Chain heads kept outside the database: each stream's latest link, signed by
//! the service, in a JetStream stream of its own.
//!
//! The hash chains show an edited or removed event to anyone who trusts the
//! database they are read from; someone who can write to it could rewrite a
//! stream and hash it again. So the service follows its log and, for every
//! stream that grew, publishes its head (version, link, log position) signed
//! with a key the database never holds, on one subject per stream. The stream
//! keeps the last message per subject, refuses deletes and purges, and keeps the
//! rest forever: verification checks a stream against its last published head.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aftersales_core::Shutdown;
use aftersales_eventstore::projection::BatchStreams;
use aftersales_eventstore::{EventStore, RecordedEvent, StreamHead, StreamId};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::consumer::RetryPolicy;
use crate::error::MessagingError;
use crate::names::Names;
use crate::provision::StreamSettings;

/// Heads this process remembers having published, at most.
const PUBLISHED_CACHE: usize = 100_000;

/// What a published head says; the signed claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadClaims {
    /// `aftersales-<service>`.
    pub iss: String,
    pub region: String,
    pub stream: String,
    pub version: u64,
    /// The link of the stream's event at `version`, hex.
    pub hash: String,
    /// The event's position in the service's log.
    pub position: u64,
    /// When it was published, Unix seconds.
    pub iat: i64,
}

impl HeadClaims {
    /// The head these claims name, if their link is 32 bytes of hex.
    pub fn head(&self) -> Option<StreamHead> {
        let bytes = (0..self.hash.len())
            .step_by(2)
            .map(|i| {
                self.hash
                    .get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()?;
        Some(StreamHead {
            version: self.version,
            hash: bytes.try_into().ok()?,
        })
    }
}

/// Signs heads, and opens the ones it signed.
pub trait Seal: Send + Sync {
    /// The signed form of `claims` (an ES256 JWS, say), or why it cannot be.
    fn sign(&self, claims: &HeadClaims) -> Result<String, String>;
    /// The claims of `token` if this seal signed it.
    fn open(&self, token: &str) -> Option<HeadClaims>;
}

/// A signed head as published: the token and where it sits in JetStream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub token: String,
    pub sequence: u64,
}

/// One service's published heads: the stream they are kept in, publishing and
/// reading them back.
#[derive(Clone)]
pub struct Heads {
    js: jetstream::Context,
    names: Names,
    service: String,
}

impl std::fmt::Debug for Heads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heads")
            .field("service", &self.service)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl Heads {
    /// Creates or updates the service's heads stream.
    pub async fn provision(
        js: jetstream::Context,
        names: Names,
        service: &str,
        settings: &StreamSettings,
    ) -> Result<Self, MessagingError> {
        settings.validate()?;
        let config = stream::Config {
            name: names.heads_stream(service),
            subjects: vec![names.heads_subjects(service)],
            description: Some(format!(
                "Aftersales {service} chain heads, region {}",
                names.region()
            )),
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            num_replicas: settings.replicas,
            // The newest head of each stream is what verification needs.
            max_messages_per_subject: 1,
            deny_delete: true,
            deny_purge: true,
            allow_direct: true,
            persist_mode: Some(stream::PersistenceMode::Default),
            ..Default::default()
        };
        js.create_or_update_stream(config)
            .await
            .map_err(MessagingError::nats)?;
        Ok(Self {
            js,
            names,
            service: service.to_owned(),
        })
    }

    /// Publishes `token` as `stream`'s head and waits for JetStream to keep it.
    pub async fn publish(&self, stream: &StreamId, token: String) -> Result<(), MessagingError> {
        let subject = self.names.head_subject(&self.service, stream.as_str());
        self.js
            .publish(subject, Bytes::from(token))
            .await
            .map_err(MessagingError::nats)?
            .await
            .map_err(MessagingError::nats)?;
        Ok(())
    }

    /// The last head published for `stream`, if any.
    pub async fn last(&self, stream: &StreamId) -> Result<Option<Published>, MessagingError> {
        let subject = self.names.head_subject(&self.service, stream.as_str());
        let kept = self
            .js
            .get_stream_no_info(self.names.heads_stream(&self.service))
            .await
            .map_err(MessagingError::nats)?;
        match kept.direct_get_last_for_subject(subject).await {
            Ok(message) => Ok(Some(Published {
                token: String::from_utf8(message.payload.to_vec()).map_err(|_| {
                    MessagingError::Malformed("a published head is not text".into())
                })?,
                sequence: message.sequence,
            })),
            Err(error) if error.kind() == stream::DirectGetErrorKind::NotFound => Ok(None),
            Err(error) => Err(MessagingError::nats(error)),
        }
    }

    /// The checkpoint name the publisher keeps its place in the log under.
    pub fn checkpoint_name(&self) -> String {
        format!("heads:{}", self.names.heads_stream(&self.service))
    }

    /// Follows the service's log until `shutdown` and publishes the head of
    /// every stream that grew, signed by `seal`: once per batch read, so a busy
    /// stream is signed once, not once per event. A head is only published
    /// when the stream still holds the one published before it and every link
    /// since recomputes: a history rewritten in the database is never signed,
    /// and its last good head stays published. The place in the log is saved
    /// after the batch's heads are kept, so a crash publishes some heads again,
    /// never skips one.
    pub async fn publish_from<S: EventStore>(
        &self,
        store: S,
        seal: Arc<dyn Seal>,
        shutdown: Shutdown,
    ) {
        let retry = RetryPolicy {
            max_attempts: u32::MAX,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        };
        let what = format!("chain heads of {}", self.service);
        let published = tokio::sync::Mutex::new(BTreeMap::new());
        crate::supervise::supervise(shutdown, &what, &retry, |shutdown| {
            self.publish_until_error(&store, seal.as_ref(), &published, shutdown)
        })
        .await;
    }

    async fn publish_until_error<S: EventStore>(
        &self,
        store: &S,
        seal: &dyn Seal,
        published: &tokio::sync::Mutex<BTreeMap<StreamId, StreamHead>>,
        mut shutdown: Shutdown,
    ) -> Result<(), MessagingError> {
        const BATCH: usize = 1000;
        let name = self.checkpoint_name();
        let mut at = store.load_checkpoint(&name).await?;
        let mut wait = aftersales_eventstore::IdleWait::new(Duration::from_millis(200));
        while !shutdown.is_requested() {
            let appended = store.appended().notified();
            let batch = store.read_log(at, BATCH).await?;
            let Some(last) = batch.last() else {
                tokio::select! {
                    () = appended => {}
                    () = tokio::time::sleep(wait.idle()) => {}
                    () = shutdown.requested() => {}
                }
                continue;
            };
            wait.busy();
            let next = last.checkpoint;
            // Each stream's newest event: one stream's can come out of order in the log.
            let mut grown: BTreeMap<&StreamId, &RecordedEvent> = BTreeMap::new();
            for event in &batch {
                let newest = grown.entry(&event.stream_id).or_insert(event);
                if event.stream_version > newest.stream_version {
                    *newest = event;
                }
            }
            let held = BatchStreams::new(&batch);
            let held = &held;
            #[allow(clippy::disallowed_methods)] // the moment of signing
            let now = chrono::Utc::now().timestamp();
            let publishing = grown.into_values().map(|event| async move {
                let before = match published.lock().await.get(&event.stream_id).copied() {
                    Some(head) => Some(head),
                    None => self
                        .last(&event.stream_id)
                        .await?
                        .and_then(|p| seal.open(&p.token))
                        .and_then(|claims| claims.head()),
                };
                if before.is_some_and(|b| b.version >= event.stream_version) {
                    return Ok(());
                }
                if let Err(why) = extends(store, held, &event.stream_id, before, event).await? {
                    metrics::counter!("aftersales_heads_refused_total", "service" => self.service.clone())
                        .increment(1);
                    tracing::error!(
                        stream = %event.stream_id,
                        version = event.stream_version,
                        "chain head not published: {why}; the history in the database differs from what was published"
                    );
                    return Ok(());
                }
                let claims = HeadClaims {
                    iss: format!("aftersales-{}", self.service),
                    region: self.names.region().to_owned(),
                    stream: event.stream_id.as_str().to_owned(),
                    version: event.stream_version,
                    hash: event.hash.iter().map(|b| format!("{b:02x}")).collect(),
                    position: event.position,
                    iat: now,
                };
                let token = seal.sign(&claims).map_err(MessagingError::Malformed)?;
                self.publish(&event.stream_id, token).await?;
                let mut published = published.lock().await;
                // A cache of what this process published: bounded, since a
                // forgotten head is read back from JetStream.
                if published.len() >= PUBLISHED_CACHE {
                    published.clear();
                }
                published.insert(
                    event.stream_id.clone(),
                    StreamHead {
                        version: event.stream_version,
                        hash: event.hash,
                    },
                );
                Ok::<_, MessagingError>(())
            });
            futures::future::try_join_all(publishing).await?;
            metrics::counter!("aftersales_heads_published_events_total", "service" => self.service.clone())
                .increment(batch.len() as u64);
            store.save_checkpoint(&name, next).await?;
            at = next;
        }
        Ok(())
    }
}

/// Whether `stream`, as stored, runs from `before` (or its start) to `event`
/// with every link recomputing; if not, why. The stored events come from `batch`
/// where it holds all of them (the log's rows, as a read of the stream would
/// return them), otherwise they are read.
async fn extends<S: EventStore>(
    store: &S,
    batch: &BatchStreams<'_>,
    stream: &StreamId,
    before: Option<StreamHead>,
    event: &RecordedEvent,
) -> Result<Result<(), String>, MessagingError> {
    let from = before.map_or(1, |b| b.version);
    let mut check = Links::new(from, before);
    if let Some(held) = batch.span(stream, from, event.stream_version) {
        if let Err(why) = check.extend(held.iter().copied()) {
            return Ok(Err(why));
        }
    } else {
        let wanted = usize::try_from(event.stream_version - from + 1).unwrap_or(usize::MAX);
        let mut read = 0usize;
        while read < wanted {
            let page = store
                .read_stream(stream, check.expected, (wanted - read).min(1000))
                .await?;
            if page.is_empty() {
                return Ok(Err(format!(
                    "the stream ends before version {}",
                    check.expected
                )));
            }
            if let Err(why) = check.extend(page.iter()) {
                return Ok(Err(why));
            }
            read += page.len();
        }
    }
    Ok(if check.previous == event.hash {
        Ok(())
    } else {
        Err(format!("version {} has changed", event.stream_version))
    })
}

/// A stream's events checked one after another from a published head (or the
/// stream's start).
struct Links {
    before: Option<StreamHead>,
    previous: [u8; 32],
    expected: u64,
}

impl Links {
    fn new(from: u64, before: Option<StreamHead>) -> Self {
        Self {
            before,
            previous: aftersales_eventstore::chain::GENESIS,
            expected: from,
        }
    }

    /// Takes `stored`, the next events in version order.
    fn extend<'e>(
        &mut self,
        stored: impl Iterator<Item = &'e RecordedEvent>,
    ) -> Result<(), String> {
        for stored in stored {
            let expected = self.expected;
            if stored.stream_version != expected {
                return Err(format!("version {expected} is missing"));
            }
            match self.before {
                Some(b) if stored.stream_version == b.version => {
                    if stored.hash != b.hash {
                        return Err(format!("version {} is not the one published", b.version));
                    }
                }
                _ => {
                    if aftersales_eventstore::chain::link(&self.previous, stored) != stored.hash {
                        return Err(format!("version {expected} does not match its link"));
                    }
                }
            }
            self.previous = stored.hash;
            self.expected += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use aftersales_eventstore::AnyEventStore;
    use aftersales_eventstore::testing::recorded;

    use super::*;

    /// A stream's events, each linked to the one before as an append links them.
    fn chained(stream: &str, versions: u64) -> Vec<RecordedEvent> {
        let mut previous = aftersales_eventstore::chain::GENESIS;
        (1..=versions)
            .map(|version| {
                let mut event = recorded(stream, version, "Tested");
                event.payload = format!("{{\"n\":{version}}}").into_bytes();
                event.hash = aftersales_eventstore::chain::link(&previous, &event);
                previous = event.hash;
                event
            })
            .collect()
    }

    /// A stream begun in the batch is checked from the batch's own rows: the
    /// store here is empty, so a read would find no stream at all.
    #[tokio::test]
    async fn a_stream_begun_in_the_batch_is_checked_without_a_read() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("h.db").display());
        let store = AnyEventStore::connect(&url).await.unwrap();
        let mut batch = chained("s-new", 2);
        batch.swap(0, 1); // out of order in the log
        let stream = StreamId::parse("s-new").unwrap();
        let newest = batch[0].clone();
        let held = BatchStreams::new(&batch);
        let verdict = extends(&store, &held, &stream, None, &newest)
            .await
            .unwrap();
        assert_eq!(verdict, Ok(()));

        batch[1].payload = b"{\"n\":7}".to_vec(); // version 1, edited
        let held = BatchStreams::new(&batch);
        let verdict = extends(&store, &held, &stream, None, &newest)
            .await
            .unwrap();
        assert_eq!(verdict, Err("version 1 does not match its link".to_owned()));

        // Only its newest event in the batch: read, and not found.
        let held = BatchStreams::new(std::slice::from_ref(&newest));
        let verdict = extends(&store, &held, &stream, None, &newest)
            .await
            .unwrap();
        assert_eq!(verdict, Err("the stream ends before version 1".to_owned()));
    }
}
