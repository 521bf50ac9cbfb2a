//! Personal data sealed per person: nothing readable is stored, the owner's key
//! opens it, destroying the key erases it everywhere while every chain verifies.

use std::sync::Arc;

use aftersales_core::ErrorKind;
use aftersales_eventstore::keyring::KmsFuture;
use aftersales_eventstore::personal::ERASED;
use aftersales_eventstore::{
    CommandHandler, Decider, DomainEvent, EventStore as _, HandleError, KeyError, Keyring, Kms,
    LocalKms, PersonalData, read_whole_stream,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::harness::{Backend, ctx, stream};

struct Contact;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Event {
    ContactNoted {
        customer: String,
        email: String,
        lines: Vec<String>,
        country: String,
    },
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        "ContactNoted"
    }

    fn personal(&self) -> Option<PersonalData<'_>> {
        let Self::ContactNoted { customer, .. } = self;
        Some(PersonalData {
            subject: customer,
            fields: &["/email", "/lines"],
        })
    }
}

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

impl std::error::Error for Refused {}

impl Decider for Contact {
    type Command = Event;
    type Event = Event;
    type State = Vec<Event>;
    type Error = Refused;

    fn initial_state() -> Vec<Event> {
        Vec::new()
    }

    fn decide(_: &Vec<Event>, command: &Event) -> Result<Vec<Event>, Refused> {
        Ok(vec![command.clone()])
    }

    fn evolve(mut state: Vec<Event>, event: &Event) -> Vec<Event> {
        state.push(event.clone());
        state
    }
}

fn noted(customer: &str, email: &str) -> Event {
    Event::ContactNoted {
        customer: customer.into(),
        email: email.into(),
        lines: vec!["Hauptstraße 5".into()],
        country: "DE".into(),
    }
}

async fn raw_payloads(b: &Backend) -> String {
    let sql = "SELECT payload FROM events ORDER BY position";
    let rows: Vec<Vec<u8>> = match &b.store {
        aftersales_eventstore::AnyEventStore::Postgres(s) => {
            sqlx::query_scalar(sql).fetch_all(s.pool()).await.unwrap()
        }
        aftersales_eventstore::AnyEventStore::Sqlite(s) => {
            sqlx::query_scalar(sql).fetch_all(s.writer()).await.unwrap()
        }
    };
    rows.iter()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

pub async fn personal_data_is_sealed_and_erased_with_its_key(b: Backend) {
    let keyring = Arc::new(Keyring::ephemeral().unwrap());
    let store = b.store.clone().with_keyring(Arc::clone(&keyring), "test");
    let handler = CommandHandler::<Contact, _>::new(store.clone());
    let (ana, bo) = (stream("contact"), stream("contact"));
    let mut context = ctx(0);
    context.command_id = Some(Uuid::now_v7());
    handler
        .handle(&ana, &noted("c-ana", "ana@example.com"), &context)
        .await
        .unwrap();
    handler
        .handle(&bo, &noted("c-bo", "bo@example.com"), &ctx(1))
        .await
        .unwrap();

    let raw = raw_payloads(&b).await;
    for plain in ["ana@example.com", "bo@example.com", "Hauptstra"] {
        assert!(!raw.contains(plain), "{plain} stored in the clear: {raw}");
    }
    assert!(
        raw.contains("\"country\":\"DE\""),
        "what is not personal stays: {raw}"
    );
    let loaded = handler.load(&ana).await.unwrap();
    assert_eq!(loaded.state, vec![noted("c-ana", "ana@example.com")]);

    // A retried command seals to the same bytes: still one event.
    let again = handler
        .handle(&ana, &noted("c-ana", "ana@example.com"), &context)
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(b.count().await, 2);

    assert!(keyring.destroy("test/c-ana").await.unwrap());
    let erased = read_whole_stream(&store, &ana).await.unwrap();
    let Event::ContactNoted {
        email,
        lines,
        country,
        customer,
    } = erased[0].decode().unwrap();
    assert_eq!((email.as_str(), lines), (ERASED, vec![ERASED.to_owned()]));
    assert_eq!((country.as_str(), customer.as_str()), ("DE", "c-ana"));
    assert!(matches!(
        erased[0].personal,
        aftersales_eventstore::Personal::Erased { .. }
    ));
    // Bo is untouched, and both chains still verify.
    let other = handler.load(&bo).await.unwrap();
    assert_eq!(other.state, vec![noted("c-bo", "bo@example.com")]);
    for s in [&ana, &bo] {
        let report = store.verify_stream(s, None).await.unwrap();
        assert_eq!(report.first_break, None);
        assert_eq!(report.events_checked, 1);
    }
    // A reader without the keyring sees the stored form: erased-looking, never plain.
    let unopened = read_whole_stream(&b.store, &bo).await.unwrap();
    let Event::ContactNoted { email, .. } = unopened[0].decode().unwrap();
    assert_eq!(email, ERASED);
}

/// A key service that is down.
#[derive(Debug)]
struct Down;

impl Kms for Down {
    fn id(&self) -> &str {
        "down"
    }

    fn wrap<'a>(&'a self, _: &'a [u8]) -> KmsFuture<'a, Vec<u8>> {
        Box::pin(async { Err(KeyError::Unavailable("connection refused".into())) })
    }

    fn unwrap<'a>(&'a self, _: &'a [u8]) -> KmsFuture<'a, Vec<u8>> {
        Box::pin(async { Err(KeyError::Unavailable("connection refused".into())) })
    }
}

pub async fn without_its_keys_personal_data_is_refused_and_nothing_written(b: Backend) {
    // No keyring at all: refused, never stored in the clear.
    let plain = CommandHandler::<Contact, _>::new(b.store.clone());
    let error = plain
        .handle(&stream("contact"), &noted("c-1", "c1@example.com"), &ctx(0))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("keyring"), "{error}");
    assert_eq!(b.count().await, 0);

    // The key service down: a new person's write is UNAVAILABLE and writes nothing.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("keys.db").display());
    let kms: Arc<dyn Kms> = Arc::new(LocalKms::generate().unwrap());
    let up = Arc::new(Keyring::connect(&url, kms).await.unwrap());
    let known = stream("contact");
    CommandHandler::<Contact, _>::new(b.store.clone().with_keyring(Arc::clone(&up), "test"))
        .handle(&known, &noted("c-known", "known@example.com"), &ctx(1))
        .await
        .unwrap();
    let down = Arc::new(Keyring::connect(&url, Arc::new(Down)).await.unwrap());
    let handler = CommandHandler::<Contact, _>::new(b.store.clone().with_keyring(down, "test"));
    let error = handler
        .handle(
            &stream("contact"),
            &noted("c-new", "new@example.com"),
            &ctx(2),
        )
        .await
        .unwrap_err();
    let HandleError::Store(error) = error else {
        panic!("expected a store error, got {error}");
    };
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    assert_eq!(b.count().await, 1);

    // A process that had the known key in hand still reads it.
    let still = CommandHandler::<Contact, _>::new(b.store.clone().with_keyring(up, "test"));
    assert_eq!(
        still.load(&known).await.unwrap().state,
        vec![noted("c-known", "known@example.com")]
    );
}

/// A snapshot is not sealed per person, so a stream that carries personal data
/// is never snapshotted: its state would hold the data opened.
pub async fn a_stream_with_personal_data_is_never_snapshotted(b: Backend) {
    let keyring = Arc::new(Keyring::ephemeral().unwrap());
    let store = b.store.clone().with_keyring(Arc::clone(&keyring), "test");
    let handler = CommandHandler::<Contact, _>::new(store.clone()).with_snapshots_every(1);
    let ana = stream("contact");
    for i in 0..3 {
        handler
            .handle(&ana, &noted("c-ana", "ana@example.com"), &ctx(i))
            .await
            .unwrap();
    }
    assert_eq!(store.load_snapshot(&ana).await.unwrap(), None);
    assert_eq!(handler.load(&ana).await.unwrap().state.len(), 3);
}

/// The key-encryption key in a KMS speaking AWS's API, with IAM enforced:
/// data keys are wrapped there and opened there by a process that never saw
/// them; a wrong secret or the service gone leaves writes UNAVAILABLE with
/// nothing stored, while keys in hand still open.
pub async fn an_aws_kms_key_wraps_every_data_key(b: Backend) {
    use aftersales_eventstore::{AwsCredentials, AwsKms};

    let mut server = tokio::task::spawn_blocking(aftersales_testkit::KmsServer::start)
        .await
        .unwrap()
        .unwrap();
    let kms = |secret: &str| -> Arc<dyn Kms> {
        Arc::new(
            AwsKms::new(
                server.key_arn(),
                "",
                Some(&server.endpoint()),
                AwsCredentials {
                    access_key_id: server.access_key_id().to_owned(),
                    secret_access_key: secret.to_owned(),
                    session_token: None,
                },
            )
            .unwrap(),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("keys.db").display());
    let writer = Arc::new(
        Keyring::connect(&url, kms(server.secret_access_key()))
            .await
            .unwrap(),
    );
    let ana = stream("contact");
    CommandHandler::<Contact, _>::new(b.store.clone().with_keyring(Arc::clone(&writer), "test"))
        .handle(&ana, &noted("c-ana", "ana@example.com"), &ctx(0))
        .await
        .unwrap();
    let raw = raw_payloads(&b).await;
    assert!(!raw.contains("ana@example.com"), "{raw}");

    // Another process: nothing cached, the data key unwrapped by the KMS.
    let reader = Arc::new(
        Keyring::connect(&url, kms(server.secret_access_key()))
            .await
            .unwrap(),
    );
    let handler = CommandHandler::<Contact, _>::new(
        b.store.clone().with_keyring(Arc::clone(&reader), "test"),
    );
    assert_eq!(
        handler.load(&ana).await.unwrap().state,
        vec![noted("c-ana", "ana@example.com")]
    );

    // A wrong secret: the signature is refused, nothing is stored.
    let forged = Arc::new(Keyring::connect(&url, kms("not-the-secret")).await.unwrap());
    let error = forged.for_writing("test/c-bo").await.unwrap_err();
    assert!(
        matches!(&error, KeyError::Unavailable(said) if said.contains("Signature")),
        "{error}"
    );
    assert_eq!(
        forged.for_writing("test/c-bo").await.unwrap_err().kind(),
        ErrorKind::Unavailable
    );

    // The key service gone: a new person's write is UNAVAILABLE and writes
    // nothing; the key already in hand still opens Ana's data.
    server.stop();
    let error = CommandHandler::<Contact, _>::new(
        b.store.clone().with_keyring(Arc::clone(&writer), "test"),
    )
    .handle(
        &stream("contact"),
        &noted("c-cy", "cy@example.com"),
        &ctx(1),
    )
    .await
    .unwrap_err();
    let HandleError::Store(error) = error else {
        panic!("expected a store error, got {error}");
    };
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    assert_eq!(b.count().await, 1);
    assert_eq!(
        handler.load(&ana).await.unwrap().state,
        vec![noted("c-ana", "ana@example.com")]
    );
}
