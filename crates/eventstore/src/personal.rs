//! Personal data inside events: sealed per person, erased by forgetting a key.
//!
//! An event that carries personal data names whose it is (its subject, a customer
//! id) and where it sits (JSON pointers, [`crate::DomainEvent::personal`]). On
//! append the store writes the event with [`ERASED`] in each personal field, so the
//! stored bytes read as the event will once the key is gone, and seals what was
//! there (each value and where it goes back) with the subject's data key from the
//! [`Keyring`](crate::keyring::Keyring), kept in the payload under
//! [`SEALED_FIELD`]. A reader with the key puts the values back by copying bytes
//! and decodes the event in one parse. (Boxes written before held the whole event;
//! they open the same way.)
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
    /// What to seal: the personal values blanked in the stored event, each with
    /// where it goes back ([`split`]).
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
    /// The event with its personal fields in place.
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
        let plain = self.open_in_place(sealed.nonce, &mut data)?.len();
        data.truncate(plain);
        Ok(data)
    }

    /// Opens ciphertext and tag sealed with this key under `nonce`, in place.
    fn open_in_place<'b>(
        &self,
        nonce: [u8; NONCE_LEN],
        data: &'b mut [u8],
    ) -> Result<&'b mut [u8], KeyError> {
        self.aead
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&self.aad),
                data,
            )
            .map_err(|_| KeyError::Corrupt("sealed data fails its tag".into()))
    }
}

/// First byte of a sealed list of blanked values (a whole event, as boxes
/// written before it held, starts with `{`).
const VALUES_TAG: u8 = 1;

/// A blanked field as the stored payload holds it.
const ERASED_LITERAL: &[u8] = b"\"[erased]\"";

/// Serializes `value` (an event) for the log with [`ERASED`] in each non-empty
/// string under the fields `personal` names, and returns beside it what was there,
/// to be sealed: `None` when the event holds none of the fields.
///
/// The sealed list holds each original string literal and where its
/// `"[erased]"` sits in the stored bytes, in order, so opening is a copy.
pub fn split(
    mut value: Value,
    personal: &PersonalData<'_>,
) -> Result<(Vec<u8>, Option<Unsealed>), serde_json::Error> {
    let marker = blank_marker();
    let mut originals = Vec::new();
    let mut found = false;
    for pointer in personal.fields {
        if let Some(field) = value.pointer_mut(pointer) {
            blank(field, marker, &mut originals);
            found = true;
        }
    }
    let marked = serde_json::to_vec(&value)?;
    if !found {
        return Ok((marked, None));
    }
    // Each blanked string serializes as `"\u0001<marker><n>\u0001"`.
    let open = format!("\"\\u0001{marker}");
    let close = b"\\u0001\"";
    let mut payload = Vec::with_capacity(marked.len());
    let mut plaintext = vec![VALUES_TAG];
    let mut seen = vec![false; originals.len()];
    let (mut cursor, mut last_end) = (0, 0);
    for at in memchr::memmem::find_iter(&marked, open.as_bytes()) {
        let digits = at + open.len();
        let Some(length) = marked[digits..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .filter(|&n| marked[digits + n..].starts_with(close))
        else {
            continue;
        };
        let index = std::str::from_utf8(&marked[digits..digits + length])
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n < originals.len() && !seen[n]);
        let Some(index) = index else {
            continue;
        };
        seen[index] = true;
        payload.extend_from_slice(&marked[cursor..at]);
        let gap = payload.len() - last_end;
        payload.extend_from_slice(ERASED_LITERAL);
        last_end = payload.len();
        cursor = digits + length + close.len();
        let literal = serde_json::to_vec(&originals[index])?;
        push_varint(&mut plaintext, gap);
        push_varint(&mut plaintext, literal.len());
        plaintext.extend_from_slice(&literal);
    }
    if seen.contains(&false) {
        return Err(serde::ser::Error::custom(
            "a personal field could not be found again in the serialized event",
        ));
    }
    payload.extend_from_slice(&marked[cursor..]);
    Ok((
        payload,
        Some(Unsealed {
            subject: personal.subject.to_owned(),
            plaintext,
        }),
    ))
}

/// A per-process random mark: no string in an event can be taken for a blanked one.
fn blank_marker() -> &'static str {
    static MARKER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    MARKER.get_or_init(|| Uuid::new_v4().simple().to_string())
}

fn blank(value: &mut Value, marker: &str, originals: &mut Vec<String>) {
    match value {
        Value::String(text) if !text.is_empty() => {
            let mark = format!("\u{1}{marker}{}\u{1}", originals.len());
            originals.push(std::mem::replace(text, mark));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| blank(v, marker, originals)),
        Value::Object(members) => members
            .values_mut()
            .for_each(|v| blank(v, marker, originals)),
        Value::String(_) | Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn push_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        // Seven bits at a time, low first; the cast keeps the low byte.
        #[allow(clippy::cast_possible_truncation)]
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)]
    out.push(n as u8);
}

fn take_varint(input: &mut &[u8]) -> Option<usize> {
    let mut n: usize = 0;
    for shift in (0..usize::BITS).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        n |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte < 0x80 {
            return Some(n);
        }
    }
    None
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

/// A stored payload's sealed box, and the payload without it.
#[derive(Debug, Clone, Copy)]
pub struct Boxed<'a> {
    /// The stored event's members before the box (no closing brace).
    members: &'a [u8],
    text: &'a [u8],
}

impl<'a> Boxed<'a> {
    /// The sealed box a stored payload carries, if any: its last member, where
    /// [`seal_into`] puts it.
    pub fn find(payload: &'a [u8]) -> Option<Self> {
        const MARK: &[u8] = b"\"_sealed\":\"";
        // `…,"_sealed":"v1.<base64>"}`: the box is the last string, and base64
        // holds no quote, so one scan back from its end finds its start.
        let inner = payload.strip_suffix(b"\"}")?;
        let open = memchr::memrchr(b'"', inner)?;
        let members = inner[..=open].strip_suffix(MARK)?;
        Some(Self {
            members: members.strip_suffix(b",").unwrap_or(members),
            text: &inner[open + 1..],
        })
    }

    /// Decodes the box into `scratch` (one buffer for a page of events) and
    /// returns the id of the key it was sealed with.
    pub fn decode_into(&self, scratch: &mut Vec<u8>) -> Result<Uuid, KeyError> {
        let corrupt = || KeyError::Corrupt("not a sealed box".into());
        let encoded = self
            .text
            .strip_prefix(BOX_VERSION.as_bytes())
            .ok_or_else(corrupt)?;
        scratch.clear();
        BASE64.decode_vec(encoded, scratch).map_err(|_| corrupt())?;
        let id = scratch.get(..16).ok_or_else(corrupt)?;
        Uuid::from_slice(id).map_err(|_| corrupt())
    }

    /// The event with its personal fields in place: the box [`Self::decode_into`]
    /// left in `scratch`, opened with `key`.
    pub fn open(&self, key: &DataKey, scratch: &mut [u8]) -> Result<Vec<u8>, KeyError> {
        let corrupt = || KeyError::Corrupt("not a sealed box".into());
        if scratch.get(..16) != Some(key.id.as_bytes().as_slice()) {
            return Err(KeyError::Corrupt("sealed under another key".into()));
        }
        let (nonce, data) = scratch[16..]
            .split_at_mut_checked(NONCE_LEN)
            .ok_or_else(corrupt)?;
        let nonce = (&*nonce).try_into().map_err(|_| corrupt())?;
        self.event(key.open_in_place(nonce, data)?)
    }

    /// The event with its personal fields in place, from the opened box.
    fn event(&self, opened: &[u8]) -> Result<Vec<u8>, KeyError> {
        let Some((&VALUES_TAG, mut values)) = opened.split_first() else {
            // A box of the whole event.
            return Ok(opened.to_vec());
        };
        let corrupt = || KeyError::Corrupt("sealed values do not fit their event".into());
        let members = self.members;
        let mut event = Vec::with_capacity(members.len() + values.len() + 1);
        let mut cursor = 0;
        while !values.is_empty() {
            let gap = take_varint(&mut values).ok_or_else(corrupt)?;
            let length = take_varint(&mut values).ok_or_else(corrupt)?;
            let at = cursor + gap;
            let literal = values.get(..length).ok_or_else(corrupt)?;
            values = &values[length..];
            if !members
                .get(at..)
                .is_some_and(|m| m.starts_with(ERASED_LITERAL))
            {
                return Err(corrupt());
            }
            event.extend_from_slice(&members[cursor..at]);
            event.extend_from_slice(literal);
            cursor = at + ERASED_LITERAL.len();
        }
        event.extend_from_slice(&members[cursor..]);
        event.push(b'}');
        Ok(event)
    }
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
    let mut scratch = Vec::new();
    for event in events.iter_mut() {
        let Some(boxed) = Boxed::find(&event.payload) else {
            continue;
        };
        let Some(keyring) = keyring else {
            event.personal = Personal::Unopened;
            continue;
        };
        let id = boxed.decode_into(&mut scratch)?;
        // A page often holds one person's events in a row: their key is at hand.
        let key = match &last {
            Some(key) if key.id() == id => Some(Arc::clone(key)),
            _ => keyring.for_reading(id).await?,
        };
        last.clone_from(&key);
        event.personal = match key {
            Some(key) => {
                let payload = boxed.open(&key, &mut scratch)?;
                Personal::Open(Arc::new(Opened { key, payload }))
            }
            None => Personal::Erased { key: id },
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

    /// `value` stored sealed with `key`: the payload, and the event opened from it.
    fn store_and_open(value: &Value, key: &DataKey) -> Option<(Value, Value)> {
        let (mut payload, unsealed) = split(value.clone(), &FIELDS).expect("splits");
        let unsealed = unsealed?;
        seal_into(&mut payload, key, &unsealed).expect("sealed");
        let stored: Value = serde_json::from_slice(&payload).expect("stored is JSON");
        let event = open(&payload, key).expect("puts the values back");
        Some((
            stored,
            serde_json::from_slice(&event).expect("event is JSON"),
        ))
    }

    fn open(payload: &[u8], key: &DataKey) -> Result<Vec<u8>, KeyError> {
        let boxed = Boxed::find(payload).expect("has a box");
        let mut scratch = Vec::new();
        boxed.decode_into(&mut scratch)?;
        boxed.open(key, &mut scratch)
    }

    #[test]
    fn the_stored_event_reads_erased_and_opens_to_the_original() {
        let key = key("c-1");
        let original = json!({
            "type": "Opened",
            "aaa": ERASED,
            "country": "DE",
            "address": {"recipient": "Ana \"Lima\" \u{1}", "lines": ["Hauptstr. 1 ☎", ""], "country": "DE"},
            "phone": "",
            "zzz": "\u{1}0\u{1}"
        });
        let (stored, opened) = store_and_open(&original, &key).expect("has fields");
        let mut expected = original.clone();
        expected["address"] =
            json!({"recipient": ERASED, "lines": [ERASED, ""], "country": ERASED});
        expected[SEALED_FIELD] = stored[SEALED_FIELD].clone();
        assert_eq!(stored, expected);
        assert_eq!(opened, original);
        let text = serde_json::to_string(&stored).expect("json");
        assert!(!text.contains("Ana") && !text.contains("Haupt"), "{text}");
    }

    #[test]
    fn an_event_without_the_fields_has_nothing_to_seal() {
        assert!(store_and_open(&json!({"type": "Other"}), &key("c-1")).is_none());
    }

    #[test]
    fn a_box_of_the_whole_event_still_opens() {
        let key = key("c-1");
        let event = br#"{"type":"Opened","address":"Ana Lima"}"#.to_vec();
        let mut payload = br#"{"type":"Opened","address":"[erased]"}"#.to_vec();
        let whole = Unsealed {
            subject: "c-1".into(),
            plaintext: event.clone(),
        };
        seal_into(&mut payload, &key, &whole).expect("sealed");
        assert_eq!(open(&payload, &key).expect("event"), event);
        let other = DataKey::new(Uuid::now_v7(), "c-1", &[7; DATA_KEY_LEN]).expect("key");
        assert!(matches!(open(&payload, &other), Err(KeyError::Corrupt(_))));
    }

    #[test]
    fn values_that_do_not_fit_their_event_are_refused() {
        let key = key("c-1");
        let payload = br#"{"type":"Opened","address":"[erased]"}"#;
        for values in [
            vec![VALUES_TAG, 0, 5, b'"', b'A', b'n', b'a', b'"'],
            vec![VALUES_TAG, 27, 50],
            vec![VALUES_TAG, 0xff],
        ] {
            let mut stored = payload.to_vec();
            let unsealed = Unsealed {
                subject: "c-1".into(),
                plaintext: values,
            };
            seal_into(&mut stored, &key, &unsealed).expect("sealed");
            assert!(matches!(open(&stored, &key), Err(KeyError::Corrupt(_))));
        }
    }

    proptest::proptest! {
        #[test]
        fn any_strings_come_back_as_they_were(
            address in proptest::collection::vec(".*", 0..4),
            phone in ".*",
            other in ".*",
        ) {
            let original = json!({"address": {"lines": address}, "phone": phone, "other": other});
            if let Some((stored, opened)) = store_and_open(&original, &key("c-1")) {
                proptest::prop_assert_eq!(&stored["other"], &original["other"]);
                proptest::prop_assert_eq!(opened, original);
            }
        }
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
}
