//! Personal data inside events: sealed per person, erased by forgetting a key.
//!
//! An event that carries personal data names whose it is (its subject, a customer
//! id) and where it sits (JSON pointers, [`crate::DomainEvent::personal`]). On
//! append the store seals the event with the subject's data key from the
//! [`Keyring`](crate::keyring::Keyring) and keeps the sealed box in the payload
//! under [`SEALED_FIELD`]; the rest of the payload is the event with [`ERASED`] in
//! each personal field, so the stored bytes read as the event will once the key is
//! gone. A reader with the key decodes the opened event in one parse.
//! The hash chain covers the stored bytes: destroying one key erases the fields
//! wherever they were copied (log, streams, backups) while every chain verifies.
//!
//! Sealing is deterministic (the nonce is a MAC of the plaintext, a synthetic IV):
//! a retried append produces the same bytes and is recognised as a retry, and no
//! nonce is ever used for two plaintexts under one key.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as BASE64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::{hkdf, hmac};
use serde_json::Value;
use uuid::Uuid;

/// What a personal field reads as once its key is destroyed (and what the stored
/// payload holds in its place).
pub const ERASED: &str = "[erased]";

/// The payload member holding the sealed event.
pub const SEALED_FIELD: &str = "_sealed";

/// Bytes of a data key.
pub const DATA_KEY_LEN: usize = 32;

/// Where an event keeps personal data, and whose it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonalData<'a> {
    /// The person it is about: a customer id, never a name or an address.
    pub subject: &'a str,
    /// JSON pointers into the serialized event (`/channel/address/city`). A pointer
    /// that is absent in this event is skipped.
    pub fields: &'static [&'static str],
}

/// An event with personal data, not yet sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsealed {
    pub subject: String,
    /// The whole event, serialized, its personal fields in place.
    pub plaintext: Vec<u8>,
}

/// A sealed box: an event, or a message, under one data key. Stored as one string,
/// `v1.` and the base64 of the key id, the nonce and the ciphertext with its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key: Uuid,
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext and tag.
    pub data: Vec<u8>,
}

const BOX_VERSION: &str = "v1.";

impl Sealed {
    pub fn to_text(&self) -> String {
        let mut bytes = Vec::with_capacity(16 + NONCE_LEN + self.data.len());
        bytes.extend_from_slice(self.key.as_bytes());
        bytes.extend_from_slice(&self.nonce);
        bytes.extend_from_slice(&self.data);
        let mut text = String::from(BOX_VERSION);
        BASE64.encode_string(&bytes, &mut text);
        text
    }

    pub fn parse(text: &[u8]) -> Result<Self, KeyError> {
        let corrupt = || KeyError::Corrupt("not a sealed box".into());
        let encoded = text
            .strip_prefix(BOX_VERSION.as_bytes())
            .ok_or_else(corrupt)?;
        let mut data = BASE64.decode(encoded).map_err(|_| corrupt())?;
        if data.len() < 16 + NONCE_LEN {
            return Err(corrupt());
        }
        let key = Uuid::from_slice(&data[..16]).map_err(|_| corrupt())?;
        let nonce = data[16..16 + NONCE_LEN].try_into().map_err(|_| corrupt())?;
        data.drain(..16 + NONCE_LEN);
        Ok(Self { key, nonce, data })
    }
}

/// What a reader could make of an event's personal fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Personal {
    /// The event carries none.
    #[default]
    None,
    /// Sealed, and this reader has no keyring: the fields read as erased.
    Unopened,
    /// Opened with its subject's key.
    Open(Arc<Opened>),
    /// Its key is destroyed: the fields read as erased, for good.
    Erased { key: Uuid },
}

/// An event opened, and the key that opened it (to seal the same person's data
/// again, for a public event).
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    pub key: Arc<DataKey>,
    /// The event as it was appended, personal fields in place.
    pub payload: Vec<u8>,
}

/// Why personal data could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key service or the keyring's database cannot be reached now.
    #[error("key service unavailable: {0}")]
    Unavailable(String),
    /// Stored or received bytes are not what was sealed.
    #[error("sealed data is unreadable: {0}")]
    Corrupt(String),
    /// The subject was erased: nothing personal is written for them again.
    #[error("{0} was erased: no personal data is kept for them any more")]
    Erased(String),
    /// A keyring is needed and none is configured.
    #[error("personal data needs a keyring and none is configured")]
    NoKeyring,
    #[error("keyring database error")]
    Database(#[source] sqlx::Error),
}

impl KeyError {
    pub fn kind(&self) -> aftersales_core::ErrorKind {
        use aftersales_core::ErrorKind;
        match self {
            Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::Database(
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed,
            ) => ErrorKind::Unavailable,
            Self::Erased(_) => ErrorKind::FailedPrecondition,
            Self::Database(_) | Self::Corrupt(_) | Self::NoKeyring => ErrorKind::Internal,
        }
    }
}

impl From<sqlx::Error> for KeyError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}

/// One subject's data key, ready to seal and open.
pub struct DataKey {
    id: Uuid,
    subject: String,
    /// Binds every box to this key and its subject.
    aad: Vec<u8>,
    aead: LessSafeKey,
    nonce_mac: hmac::Key,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl PartialEq for DataKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for DataKey {}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl DataKey {
    /// The key `id` of `subject` from its secret bytes. Separate subkeys for the
    /// cipher and for the synthetic nonce are derived with HKDF.
    pub fn new(id: Uuid, subject: &str, secret: &[u8; DATA_KEY_LEN]) -> Result<Self, KeyError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"aftersales.personal.v1").extract(secret);
        let mut cipher = [0u8; DATA_KEY_LEN];
        let mut mac = [0u8; DATA_KEY_LEN];
        let derive = |info: &[u8], out: &mut [u8]| {
            prk.expand(&[info], Len(out.len()))
                .and_then(|okm| okm.fill(out))
                .map_err(|_| KeyError::Corrupt("key derivation failed".into()))
        };
        derive(b"cipher", &mut cipher)?;
        derive(b"nonce", &mut mac)?;
        let unbound = UnboundKey::new(&AES_256_GCM, &cipher)
            .map_err(|_| KeyError::Corrupt("bad data key".into()))?;
        let mut aad = b"aftersales.personal.v1\0".to_vec();
        aad.extend_from_slice(id.as_bytes());
        aad.extend_from_slice(subject.as_bytes());
        Ok(Self {
            id,
            subject: subject.to_owned(),
            aad,
            aead: LessSafeKey::new(unbound),
            nonce_mac: hmac::Key::new(hmac::HMAC_SHA256, &mac),
        })
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Seals `plaintext`. The same plaintext under the same key seals to the same box.
    pub fn seal(&self, plaintext: &[u8]) -> Sealed {
        let mut context = hmac::Context::with_key(&self.nonce_mac);
        context.update(&self.aad);
        context.update(plaintext);
        let tag = context.sign();
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&tag.as_ref()[..NONCE_LEN]);
        let mut data = plaintext.to_vec();
        // Sealing into a Vec fails only past AES-GCM's 64 GiB message limit.
        if self
            .aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&self.aad),
                &mut data,
            )
            .is_err()
        {
            data.clear();
        }
        Sealed {
            key: self.id,
            nonce,
            data,
        }
    }

    /// Opens a box sealed with this key.
    pub fn open(&self, sealed: Sealed) -> Result<Vec<u8>, KeyError> {
        if sealed.key != self.id {
            return Err(KeyError::Corrupt("sealed under another key".into()));
        }
        let mut data = sealed.data;
        let plain = self
            .aead
            .open_in_place(
                Nonce::assume_unique_for_key(sealed.nonce),
                Aad::from(&self.aad),
                &mut data,
            )
            .map_err(|_| KeyError::Corrupt("sealed data fails its tag".into()))?
            .len();
        data.truncate(plain);
        Ok(data)
    }
}

/// Blanks the fields `personal` names in `value` (the event, serialized as
/// `plaintext`): [`ERASED`] in each non-empty string they hold. `None` when the
/// event holds none of them.
pub fn split(
    value: &mut Value,
    plaintext: Vec<u8>,
    personal: &PersonalData<'_>,
) -> Option<Unsealed> {
    let mut found = false;
    for pointer in personal.fields {
        if let Some(field) = value.pointer_mut(pointer) {
            blank(field);
            found = true;
        }
    }
    found.then(|| Unsealed {
        subject: personal.subject.to_owned(),
        plaintext,
    })
}

fn blank(value: &mut Value) {
    match value {
        Value::String(text) if !text.is_empty() => ERASED.clone_into(text),
        Value::Array(items) => items.iter_mut().for_each(blank),
        Value::Object(members) => members.values_mut().for_each(blank),
        Value::String(_) | Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Seals `unsealed` with `key` into a payload: `payload` (a JSON object) gains the
/// sealed box as [`SEALED_FIELD`].
pub fn seal_into(
    payload: &mut Vec<u8>,
    key: &DataKey,
    unsealed: &Unsealed,
) -> Result<(), KeyError> {
    let sealed = key.seal(&unsealed.plaintext).to_text();
    // The payload is a serialized object: its members, then ours.
    if payload.len() < 2 || payload.first() != Some(&b'{') || payload.last() != Some(&b'}') {
        return Err(KeyError::Corrupt("payload is not a JSON object".into()));
    }
    payload.pop();
    if payload.len() > 1 {
        payload.push(b',');
    }
    payload.extend_from_slice(b"\"");
    payload.extend_from_slice(SEALED_FIELD.as_bytes());
    payload.extend_from_slice(b"\":\"");
    payload.extend_from_slice(sealed.as_bytes());
    payload.extend_from_slice(b"\"}");
    Ok(())
}

/// The sealed box a stored payload carries, if any: its last member, where
/// [`seal_into`] puts it (a base64 string holds no quote, so the box ends at the
/// next one).
pub fn sealed_in(payload: &[u8]) -> Result<Option<Sealed>, KeyError> {
    const MARK: &[u8] = b"\"_sealed\":\"";
    // `…,"_sealed":"v1.<base64>"}`: the box is the last string, and base64
    // holds no quote, so one scan back from its end finds its start.
    let Some(inner) = payload.strip_suffix(b"\"}") else {
        return Ok(None);
    };
    let Some(open) = memchr::memrchr(b'"', inner) else {
        return Ok(None);
    };
    if !inner[..=open].ends_with(MARK) {
        return Ok(None);
    }
    Sealed::parse(&inner[open + 1..]).map(Some)
}

/// A store's keyring and the scope its subjects are named in: `repair/c-42` is
/// customer `c-42` as the repair service knows them, erased by repair alone.
#[derive(Debug, Clone)]
pub struct Sealing {
    keyring: Arc<crate::Keyring>,
    scope: Arc<str>,
}

impl Sealing {
    pub fn new(keyring: Arc<crate::Keyring>, scope: &str) -> Self {
        Self {
            keyring,
            scope: scope.into(),
        }
    }

    pub fn keyring(&self) -> &Arc<crate::Keyring> {
        &self.keyring
    }

    /// The keyring's name for `id` (a customer, a parcel) in this scope.
    pub fn subject(&self, id: &str) -> String {
        format!("{}/{id}", self.scope)
    }
}

/// Seals every event's personal fields into its payload, before it is chained.
pub(crate) async fn seal_all(
    sealing: Option<&Sealing>,
    events: &mut [crate::NewEvent],
) -> Result<(), KeyError> {
    for event in events.iter_mut() {
        let Some(mut unsealed) = event.personal.take() else {
            continue;
        };
        let sealing = sealing.ok_or(KeyError::NoKeyring)?;
        unsealed.subject = sealing.subject(&unsealed.subject);
        let key = sealing.keyring.for_writing(&unsealed.subject).await?;
        seal_into(&mut event.payload, &key, &unsealed)?;
    }
    Ok(())
}

/// Opens what each read event sealed, as far as its keys still exist.
pub(crate) async fn open_all(
    sealing: Option<&Sealing>,
    events: &mut [crate::RecordedEvent],
) -> Result<(), KeyError> {
    let keyring = sealing.map(|s| &*s.keyring);
    let mut last: Option<Arc<DataKey>> = None;
    for event in events.iter_mut() {
        let Some(sealed) = sealed_in(&event.payload)? else {
            continue;
        };
        let Some(keyring) = keyring else {
            event.personal = Personal::Unopened;
            continue;
        };
        // A page often holds one person's events in a row: their key is at hand.
        let key = match &last {
            Some(key) if key.id() == sealed.key => Some(Arc::clone(key)),
            _ => keyring.for_reading(sealed.key).await?,
        };
        last.clone_from(&key);
        event.personal = match key {
            Some(key) => {
                let payload = key.open(sealed)?;
                Personal::Open(Arc::new(Opened { key, payload }))
            }
            None => Personal::Erased { key: sealed.key },
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(subject: &str) -> DataKey {
        DataKey::new(Uuid::now_v7(), subject, &[7; DATA_KEY_LEN]).expect("key")
    }

    const FIELDS: PersonalData<'static> = PersonalData {
        subject: "c-1",
        fields: &["/address", "/phone", "/missing"],
    };

    fn split_json(value: &mut Value) -> Option<Unsealed> {
        let plaintext = serde_json::to_vec(value).expect("json");
        split(value, plaintext, &FIELDS)
    }

    #[test]
    fn split_leaves_erased_in_place_and_keeps_the_whole_event() {
        let original = json!({
            "type": "Opened",
            "country": "DE",
            "address": {"recipient": "Ana Lima", "lines": ["Hauptstr. 1", ""], "country": "DE"},
            "phone": ""
        });
        let mut value = original.clone();
        let unsealed = split_json(&mut value).expect("has fields");
        assert_eq!(
            value,
            json!({
                "type": "Opened",
                "country": "DE",
                "address": {"recipient": ERASED, "lines": [ERASED, ""], "country": ERASED},
                "phone": ""
            })
        );
        let kept: Value = serde_json::from_slice(&unsealed.plaintext).expect("json");
        assert_eq!(kept, original);
    }

    #[test]
    fn an_event_without_the_fields_has_nothing_to_seal() {
        let mut value = json!({"type": "Other"});
        assert!(split_json(&mut value).is_none());
    }

    #[test]
    fn sealing_is_deterministic_and_opens_only_with_its_key() {
        let key = key("c-1");
        let first = key.seal(b"Ana Lima");
        assert_eq!(
            first,
            key.seal(b"Ana Lima"),
            "a retry seals to the same bytes"
        );
        assert_ne!(first.nonce, key.seal(b"Ana Lim").nonce);
        assert_eq!(key.open(first.clone()).expect("opens"), b"Ana Lima");
        assert!(!first.data.windows(3).any(|w| w == b"Ana"));
        assert_eq!(
            Sealed::parse(first.to_text().as_bytes()).expect("parses"),
            first
        );

        let other = DataKey::new(first.key, "c-1", &[8; DATA_KEY_LEN]).expect("key");
        assert!(matches!(
            other.open(first.clone()),
            Err(KeyError::Corrupt(_))
        ));
        let mut tampered = first.clone();
        tampered.data[0] ^= 1;
        assert!(matches!(key.open(tampered), Err(KeyError::Corrupt(_))));
        let elsewhere = DataKey::new(first.key, "c-2", &[7; DATA_KEY_LEN]).expect("key");
        assert!(
            elsewhere.open(first).is_err(),
            "a box is bound to its subject"
        );
    }

    #[test]
    fn a_sealed_payload_is_json_with_nothing_readable() {
        let key = key("c-1");
        let mut value = json!({"type": "Opened", "address": {"recipient": "Ana Lima"}});
        let unsealed = split_json(&mut value).expect("fields");
        let mut payload = serde_json::to_vec(&value).expect("json");
        seal_into(&mut payload, &key, &unsealed).expect("sealed");
        let text = String::from_utf8(payload.clone()).expect("utf-8");
        assert!(!text.contains("Ana"), "{text}");
        let stored: Value = serde_json::from_slice(&payload).expect("still JSON");
        assert_eq!(stored["address"]["recipient"], ERASED);
        let sealed = sealed_in(&payload).expect("reads").expect("has a box");
        assert_eq!(key.open(sealed).expect("opens"), unsealed.plaintext);
        assert_eq!(sealed_in(br#"{"type":"Plain"}"#).expect("reads"), None);
    }
}
