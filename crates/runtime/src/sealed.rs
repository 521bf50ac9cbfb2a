//! Personal data in public events: a protobuf message sealed with its subject's
//! key ([`aftersales_proto::common::Sealed`]), opened by consumers with the
//! region's keyring.

use aftersales_eventstore::Keyring;
use aftersales_eventstore::personal::{DataKey, KeyError, Sealed};
use aftersales_messaging::HandlerError;
use aftersales_proto::common as pb;
use prost::Message;
use uuid::Uuid;

/// `message` sealed with `key` (the key that opened the stored event it comes from).
pub fn seal<M: Message>(key: &DataKey, message: &M) -> pb::Sealed {
    let sealed = key.seal(&message.encode_to_vec());
    pb::Sealed {
        subject: key.subject().to_owned(),
        key_id: sealed.key.to_string(),
        nonce: sealed.nonce.to_vec(),
        data: sealed.data,
    }
}

/// The message sealed in `sealed`; `None` once its subject is erased.
pub async fn open<M: Message + Default>(
    keyring: &Keyring,
    sealed: &pb::Sealed,
) -> Result<Option<M>, KeyError> {
    let key = Uuid::parse_str(&sealed.key_id)
        .map_err(|e| KeyError::Corrupt(format!("sealed key id: {e}")))?;
    let boxed = Sealed {
        key,
        nonce: sealed
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Corrupt("sealed nonce".into()))?,
        data: sealed.data.clone(),
    };
    let Some(plain) = keyring.open(boxed).await? else {
        return Ok(None);
    };
    M::decode(plain.as_slice())
        .map(Some)
        .map_err(|e| KeyError::Corrupt(format!("sealed message: {e}")))
}

/// What a consumer does when sealed data cannot be opened, by the one retry
/// table: later when the key service is down, never when the bytes are bad.
pub fn handler_error(error: KeyError) -> HandlerError {
    HandlerError::from(aftersales_core::Error::from(
        aftersales_eventstore::StoreError::from(error),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sealed_message_opens_until_its_subject_is_erased() {
        let keyring = Keyring::ephemeral().expect("keyring");
        let key = keyring.for_writing("c-1").await.expect("key");
        let address = pb::Address {
            recipient: "Ana Lima".into(),
            ..pb::Address::default()
        };
        let sealed = seal(&key, &address);
        assert!(!sealed.data.windows(3).any(|w| w == b"Ana"));
        let opened: Option<pb::Address> = open(&keyring, &sealed).await.expect("opens");
        assert_eq!(opened, Some(address));
        keyring.destroy("c-1").await.expect("erased");
        let erased: Option<pb::Address> = open(&keyring, &sealed).await.expect("reads");
        assert_eq!(erased, None);
    }
}
