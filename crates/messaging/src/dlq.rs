//! Operators' view of the dead-letter stream: list what a consumer gave up on, and
//! put it back for the consumer to try again once the cause is fixed.

use async_nats::jetstream::{self, message::PublishMessage, stream::DirectGetErrorKind};
use uuid::Uuid;

use crate::error::MessagingError;
use crate::names::{Names, header};

/// A message a consumer gave up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its sequence in the dead-letter stream; what [`DeadLetters::replay`] takes.
    pub sequence: u64,
    pub consumer: String,
    /// Where it was first delivered from.
    pub subject: String,
    pub event_id: Option<Uuid>,
    pub event_type: Option<String>,
    pub error: String,
    pub attempts: u64,
    pub failed_at: String,
    pub payload: Vec<u8>,
}

/// The region's dead-letter stream.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    js: jetstream::Context,
    names: Names,
}

impl DeadLetters {
    pub fn new(js: jetstream::Context, names: Names) -> Self {
        Self { js, names }
    }

    /// `consumer`'s dead letters, oldest first.
    pub async fn list(&self, consumer: &str) -> Result<Vec<DeadLetter>, MessagingError> {
        let stream = self
            .js
            .get_stream(self.names.dead_letter_stream())
            .await
            .map_err(MessagingError::nats)?;
        let subject = self.names.dead_letter_subject(consumer);
        let mut letters = Vec::new();
        let mut next = 1;
        loop {
            match stream
                .direct_get_next_for_subject(subject.as_str(), Some(next))
                .await
            {
                Ok(message) => {
                    next = message.sequence + 1;
                    letters.push(dead_letter(
                        message.sequence,
                        consumer,
                        &message.headers,
                        &message.payload,
                    ));
                }
                Err(error) if error.kind() == DirectGetErrorKind::NotFound => return Ok(letters),
                Err(error) => return Err(MessagingError::nats(error)),
            }
        }
    }

    /// Puts the dead letter at `sequence` back to its consumer, which applies it
    /// through its inbox (so at most once) and then removes it. Replaying the same
    /// letter twice is harmless. `false` when no letter is there: never was, or
    /// already applied and removed (an earlier replay may have won the race).
    pub async fn replay(&self, consumer: &str, sequence: u64) -> Result<bool, MessagingError> {
        let stream = self
            .js
            .get_stream(self.names.dead_letter_stream())
            .await
            .map_err(MessagingError::nats)?;
        let message = match stream.direct_get(sequence).await {
            Ok(message) => message,
            Err(error) if error.kind() == DirectGetErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(MessagingError::nats(error)),
        };
        if message.subject.as_str() != self.names.dead_letter_subject(consumer) {
            return Err(MessagingError::Malformed(format!(
                "message {sequence} is not a dead letter of {consumer}"
            )));
        }
        let mut headers = message.headers.clone();
        headers.insert(header::REPLAY_OF, sequence.to_string().as_str());
        let publish = PublishMessage::build()
            .payload(message.payload.clone())
            .headers(headers)
            .message_id(format!("replay:{consumer}:{sequence}"));
        self.js
            .send_publish(self.names.replay_subject(consumer), publish)
            .await
            .map_err(MessagingError::nats)?
            .await
            .map_err(MessagingError::nats)?;
        Ok(true)
    }
}

fn dead_letter(
    sequence: u64,
    consumer: &str,
    headers: &async_nats::HeaderMap,
    payload: &[u8],
) -> DeadLetter {
    let get = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
    DeadLetter {
        sequence,
        consumer: consumer.to_owned(),
        subject: get(header::DLQ_SUBJECT).unwrap_or_default(),
        event_id: get(header::EVENT_ID).and_then(|v| v.parse().ok()),
        event_type: get(header::EVENT_TYPE),
        error: get(header::DLQ_ERROR).unwrap_or_default(),
        attempts: get(header::DLQ_ATTEMPTS)
            .and_then(|v| v.parse().ok())
            .unwrap_or_default(),
        failed_at: get(header::DLQ_FAILED_AT).unwrap_or_default(),
        payload: payload.to_vec(),
    }
}
