//! The service's signed chain heads, as verification asks for them.
//!
//! On NATS, every service publishes the head of each stream that grows
//! ([`aftersales_messaging::heads`]), signed with its notary key
//! (`AFTERSALES_NOTARY_KEY_FILE`). A service's API holds a [`Notary`] to check a
//! stream against the head last published for it: a history rewritten and hashed
//! again by someone with the database, but not the key, no longer ends in it.

use std::sync::{Arc, OnceLock};

use aftersales_auth::issuer::SigningKey;
use aftersales_eventstore::{StreamHead, StreamId};
use aftersales_messaging::heads::{HeadClaims, Heads, Seal};
use chrono::{DateTime, Utc};

/// What verification checks a stream against, once the service is on NATS.
#[derive(Debug, Clone, Default)]
pub struct Notary(Arc<OnceLock<Attached>>);

#[derive(Debug)]
struct Attached {
    heads: Heads,
    key: Arc<SigningKey>,
    /// The key is kept (`AFTERSALES_NOTARY_KEY_FILE`): a head signed by any
    /// other is forged, not a leftover of an earlier run's key.
    kept: bool,
}

/// Heads signed as ES256 JWSs with the service's notary key.
struct KeySeal(Arc<SigningKey>);

impl Seal for KeySeal {
    fn sign(&self, claims: &HeadClaims) -> Result<String, String> {
        let claims = serde_json::to_value(claims).map_err(|e| e.to_string())?;
        self.0.sign(&claims).map_err(|e| e.to_string())
    }

    fn open(&self, token: &str) -> Option<HeadClaims> {
        serde_json::from_value(self.0.verify(token).ok()?).ok()
    }
}

/// A head this service published and signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedHead {
    pub head: StreamHead,
    pub position: u64,
    pub published_at: DateTime<Utc>,
    /// Its sequence in the heads stream.
    pub sequence: u64,
    /// The signing key's id.
    pub key_id: String,
}

impl PublishedHead {
    /// How a verdict names it.
    pub fn describe(&self) -> String {
        format!(
            "the head published at {} (version {}, heads stream sequence {}, key {})",
            self.published_at.to_rfc3339(),
            self.head.version,
            self.sequence,
            self.key_id
        )
    }
}

/// What the notary knows of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// Heads are not published (no NATS): nothing outside the database to check.
    NotPublishing,
    /// None published yet (a stream younger than the publisher's last batch).
    NotYet,
    Published(PublishedHead),
    /// A message on the stream's subject this service's key did not sign, or
    /// that names another stream: someone wrote to the heads stream.
    Forged(String),
    /// Signed by the key (this id) of an earlier run: without a kept key the
    /// service cannot tell it from a forgery, so it checks nothing against it.
    EarlierKey(String),
}

#[derive(Debug, thiserror::Error)]
#[error("reading the published chain heads: {0}")]
pub struct NotaryError(String);

/// What a stream is verified against, and how the verdict says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    /// The head the stream must still contain, unchanged.
    pub head: Option<StreamHead>,
    /// What it was checked against, in words.
    pub against: String,
    /// A forged published head: the history cannot be called intact.
    pub forged: Option<String>,
}

impl Notary {
    /// Heads are published through `heads`, signed and checked with `key`,
    /// which is `kept` across restarts or made for this run.
    pub(crate) fn attach(&self, heads: Heads, key: Arc<SigningKey>, kept: bool) {
        let _ = self.0.set(Attached { heads, key, kept });
    }

    /// What `key` signs heads with and opens them by.
    pub(crate) fn seal(key: Arc<SigningKey>) -> Arc<dyn Seal> {
        Arc::new(KeySeal(key))
    }

    /// What `stream` is verified against: the head the caller `given` keeps,
    /// else the head last published for it. Without one the verdict rests on
    /// the database alone, and says so.
    pub async fn trust(&self, stream: &StreamId, given: Option<StreamHead>) -> Trust {
        if let Some(head) = given {
            return Trust {
                head: Some(head),
                against: format!("the head given (version {})", head.version),
                forged: None,
            };
        }
        let alone = |why: String| Trust {
            head: None,
            against: format!("its own hashes only: {why}"),
            forged: None,
        };
        match self.anchor(stream).await {
            Ok(Anchor::Published(published)) => Trust {
                head: Some(published.head),
                against: published.describe(),
                forged: None,
            },
            Ok(Anchor::NotPublishing) => {
                alone("this service publishes no chain heads (it runs without NATS)".into())
            }
            Ok(Anchor::NotYet) => alone("no head of it is published yet".into()),
            Ok(Anchor::EarlierKey(kid)) => alone(format!(
                "its published head is signed by key {kid} of an earlier run \
                 (AFTERSALES_NOTARY_KEY_FILE keeps one key across restarts)"
            )),
            Ok(Anchor::Forged(why)) => Trust {
                head: None,
                against: "the published heads".into(),
                forged: Some(why),
            },
            Err(error) => alone(error.to_string()),
        }
    }

    /// The head last published for `stream`, checked against this service's key.
    pub async fn anchor(&self, stream: &StreamId) -> Result<Anchor, NotaryError> {
        let Some(attached) = self.0.get() else {
            return Ok(Anchor::NotPublishing);
        };
        let Some(published) = attached
            .heads
            .last(stream)
            .await
            .map_err(|e| NotaryError(e.to_string()))?
        else {
            return Ok(Anchor::NotYet);
        };
        let forged = |why: &str| {
            Ok(Anchor::Forged(format!(
                "the message at heads stream sequence {} {why}",
                published.sequence
            )))
        };
        let Ok(claims) = attached.key.verify(&published.token) else {
            let signer = SigningKey::key_id_of(&published.token);
            if !attached.kept
                && let Some(other) = signer.filter(|kid| kid != attached.key.kid())
            {
                return Ok(Anchor::EarlierKey(other));
            }
            return forged("is not signed by this service's notary key");
        };
        let Ok(claims) = serde_json::from_value::<HeadClaims>(claims) else {
            return forged("is not a chain head");
        };
        if claims.stream != stream.as_str() {
            return forged("names another stream");
        }
        let Some(head) = claims.head() else {
            return forged("has no 32-byte link");
        };
        Ok(Anchor::Published(PublishedHead {
            head,
            position: claims.position,
            published_at: DateTime::from_timestamp(claims.iat, 0).unwrap_or_default(),
            sequence: published.sequence,
            key_id: attached.key.kid().to_owned(),
        }))
    }
}
