//! Every person's data key, wrapped by a key-encryption key, in one place per
//! region: erasing a person is destroying their key here.
//!
//! The keys sit in a database every service of the region reaches (`sqlite:` for
//! one machine, `postgres://` for many), each wrapped by a [`Kms`]: a key file
//! here, a cloud or Vault KMS in production. Unwrapped keys are kept in memory for
//! [`CACHE_TTL`], so a key destroyed by one process is unusable everywhere within
//! that time (the erasing process forgets it at once).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use uuid::Uuid;

use crate::personal::{DATA_KEY_LEN, DataKey, KeyError, Sealed};

/// How long an unwrapped key is used without asking the keyring again.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// Most keys kept unwrapped in memory; past this the cache starts afresh.
const CACHE_KEYS: usize = 100_000;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/keyring");

/// A boxed future, for the object-safe [`Kms`].
pub type KmsFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, KeyError>> + Send + 'a>>;

/// A key-encryption key: wraps data keys for storage, unwraps them for use.
pub trait Kms: Send + Sync + std::fmt::Debug {
    /// Names the key-encryption key, stored beside each key it wrapped.
    fn id(&self) -> &str;
    fn wrap<'a>(&'a self, key: &'a [u8]) -> KmsFuture<'a, Vec<u8>>;
    fn unwrap<'a>(&'a self, wrapped: &'a [u8]) -> KmsFuture<'a, Vec<u8>>;
}

/// A key-encryption key kept in a local file (AES-256-GCM): the embedded default.
pub struct LocalKms {
    id: String,
    key: LessSafeKey,
}

impl std::fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKms")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl LocalKms {
    /// The key in `path` (64 hex digits), made (0600) when the file is absent.
    pub fn load_or_create(path: &std::path::Path) -> Result<Self, KeyError> {
        let shown = path.display();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                create_key_file(path)
                    .map_err(|e| KeyError::Unavailable(format!("{shown}: {e}")))?;
                std::fs::read_to_string(path)
                    .map_err(|e| KeyError::Unavailable(format!("{shown}: {e}")))?
            }
            Err(error) => return Err(KeyError::Unavailable(format!("{shown}: {error}"))),
        };
        if text.contains("CHANGE_ME") {
            return Err(KeyError::Corrupt(format!(
                "{shown} is still a placeholder: supply the real key"
            )));
        }
        let secret = unhex(text.trim())
            .filter(|bytes| bytes.len() == DATA_KEY_LEN)
            .ok_or_else(|| KeyError::Corrupt(format!("{shown}: not 64 hex digits")))?;
        Self::from_secret(&secret)
    }

    pub fn from_secret(secret: &[u8]) -> Result<Self, KeyError> {
        let digest = ring::digest::digest(&ring::digest::SHA256, secret);
        let unbound = UnboundKey::new(&AES_256_GCM, secret)
            .map_err(|_| KeyError::Corrupt("a key-encryption key is 32 bytes".into()))?;
        Ok(Self {
            id: format!("local:{}", hex(&digest.as_ref()[..8])),
            key: LessSafeKey::new(unbound),
        })
    }

    /// A key for this process only (tests).
    pub fn generate() -> Result<Self, KeyError> {
        let mut secret = [0u8; DATA_KEY_LEN];
        random(&mut secret)?;
        Self::from_secret(&secret)
    }
}

impl Kms for LocalKms {
    fn id(&self) -> &str {
        &self.id
    }

    fn wrap<'a>(&'a self, key: &'a [u8]) -> KmsFuture<'a, Vec<u8>> {
        Box::pin(async move {
            let mut nonce = [0u8; NONCE_LEN];
            random(&mut nonce)?;
            let mut data = key.to_vec();
            self.key
                .seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(self.id.as_bytes()),
                    &mut data,
                )
                .map_err(|_| KeyError::Corrupt("wrapping failed".into()))?;
            let mut wrapped = nonce.to_vec();
            wrapped.extend_from_slice(&data);
            Ok(wrapped)
        })
    }

    fn unwrap<'a>(&'a self, wrapped: &'a [u8]) -> KmsFuture<'a, Vec<u8>> {
        Box::pin(async move {
            if wrapped.len() < NONCE_LEN {
                return Err(KeyError::Corrupt("wrapped key too short".into()));
            }
            let (nonce, data) = wrapped.split_at(NONCE_LEN);
            let nonce = Nonce::try_assume_unique_for_key(nonce)
                .map_err(|_| KeyError::Corrupt("bad nonce".into()))?;
            let mut data = data.to_vec();
            let key = self
                .key
                .open_in_place(nonce, Aad::from(self.id.as_bytes()), &mut data)
                .map_err(|_| {
                    KeyError::Corrupt(
                        "a data key does not open with this key-encryption key".into(),
                    )
                })?;
            Ok(key.to_vec())
        })
    }
}

/// Writes a new key whole under another name and links it into place, so
/// processes starting together all end up with the one that landed first.
fn create_key_file(path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut secret = [0u8; DATA_KEY_LEN];
    random(&mut secret).map_err(std::io::Error::other)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let staged = path.with_extension(format!("new-{}", Uuid::now_v7().simple()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staged)?;
    let written = file
        .write_all(hex(&secret).as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| match std::fs::hard_link(&staged, path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            linked => linked,
        });
    let _ = std::fs::remove_file(&staged);
    written
}

fn random(out: &mut [u8]) -> Result<(), KeyError> {
    SystemRandom::new()
        .fill(out)
        .map_err(|_| KeyError::Unavailable("no randomness".into()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Runs the same sqlx code on either database's pool, or the second arm on the
/// keys in memory (locked).
macro_rules! on_keys {
    ($keys:expr, $pool:ident => $sql:expr, $memory:ident => $in_memory:expr) => {
        match $keys {
            Keys::Postgres($pool) => $sql,
            Keys::Sqlite($pool) => $sql,
            Keys::Memory(keys) => {
                #[allow(unused_mut)]
                let mut $memory = keys
                    .lock()
                    .map_err(|_| KeyError::Unavailable("keyring lock".into()))?;
                $in_memory
            }
        }
    };
}

#[derive(Debug)]
enum Keys {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
    /// In memory, for tests.
    Memory(Mutex<MemoryKeys>),
}

#[derive(Debug, Default)]
struct MemoryKeys {
    /// Subject → (key id, wrapped key).
    live: HashMap<String, (Uuid, Vec<u8>)>,
    erased: std::collections::HashSet<String>,
}

/// A stored key: its id, its wrapped bytes and what wrapped them.
type StoredKey = (Uuid, Vec<u8>, String);

#[derive(Debug, Default)]
struct Cache {
    by_id: HashMap<Uuid, (Instant, Arc<DataKey>)>,
    by_subject: HashMap<String, Uuid>,
}

/// The region's data keys. Cheap to share: clone the `Arc`.
#[derive(Debug)]
pub struct Keyring {
    keys: Keys,
    kms: Arc<dyn Kms>,
    /// Key-encryption keys replaced by `kms`: they still open the keys they
    /// wrapped until [`Keyring::rewrap`] has moved them.
    previous: Vec<Arc<dyn Kms>>,
    cache: Mutex<Cache>,
    /// When keys are made and destroyed, as recorded.
    clock: aftersales_core::SharedClock,
}

impl Keyring {
    /// The keyring in the database at `url` (its tables made if absent), its keys
    /// wrapped by `kms`.
    pub async fn connect(url: &str, kms: Arc<dyn Kms>) -> Result<Self, KeyError> {
        let keys = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = crate::postgres::pool_options(4)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await?;
            crate::store::shared_migrator(&MIGRATIONS)
                .run(&pool)
                .await
                .map_err(|e| KeyError::Unavailable(format!("keyring migration: {e}")))?;
            Keys::Postgres(pool)
        } else if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            if let Some(parent) = std::path::Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent)
                    .map_err(|e| KeyError::Unavailable(format!("keyring directory: {e}")))?;
            }
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5));
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(2)
                .connect_with(options)
                .await?;
            crate::store::shared_migrator(&MIGRATIONS)
                .run(&pool)
                .await
                .map_err(|e| KeyError::Unavailable(format!("keyring migration: {e}")))?;
            Keys::Sqlite(pool)
        } else {
            return Err(KeyError::Unavailable(
                "keyring url: use postgres://… or sqlite:…".into(),
            ));
        };
        Ok(Self::with(keys, kms))
    }

    /// Keys in memory under a key-encryption key of this process: for tests.
    pub fn ephemeral() -> Result<Self, KeyError> {
        Ok(Self::with(
            Keys::Memory(Mutex::default()),
            Arc::new(LocalKms::generate()?),
        ))
    }

    fn with(keys: Keys, kms: Arc<dyn Kms>) -> Self {
        Self {
            keys,
            kms,
            previous: Vec::new(),
            cache: Mutex::default(),
            clock: aftersales_core::SystemClock::shared(),
        }
    }

    /// The current key-encryption key's name.
    pub fn key_encryption_key(&self) -> &str {
        self.kms.id()
    }

    /// Also opens keys wrapped by `kms`, the key-encryption key this one
    /// replaces (new keys are wrapped by the current one only).
    #[must_use]
    pub fn with_previous(mut self, kms: Arc<dyn Kms>) -> Self {
        self.previous.push(kms);
        self
    }

    /// Moves every key wrapped by a previous key-encryption key to the current
    /// one, a hundred at a time; how many it moved. Once it returns, the
    /// previous keys may be retired. A key erased meanwhile stays erased.
    pub async fn rewrap(&self) -> Result<u64, KeyError> {
        let current = self.kms.id();
        let mut moved = 0;
        loop {
            let sql = "SELECT key_id, wrapped, kek FROM data_keys WHERE kek <> $1 \
                       ORDER BY key_id LIMIT 100";
            let batch: Vec<(String, Vec<u8>, String)> = on_keys!(&self.keys,
                pool => sqlx::query_as(sql).bind(current).fetch_all(pool).await?,
                // In memory every key is wrapped by the one key there is.
                _keys => return Ok(0)
            );
            if batch.is_empty() {
                return Ok(moved);
            }
            for (key_id, wrapped, kek) in batch {
                let secret = self.wrapper(&kek)?.unwrap(&wrapped).await?;
                let rewrapped = self.kms.wrap(&secret).await?;
                let sql = "UPDATE data_keys SET wrapped = $1, kek = $2 \
                           WHERE key_id = $3 AND kek = $4";
                moved += on_keys!(&self.keys,
                    pool => sqlx::query(sql)
                        .bind(&rewrapped)
                        .bind(current)
                        .bind(&key_id)
                        .bind(&kek)
                        .execute(pool)
                        .await?
                        .rows_affected(),
                    _keys => 0
                );
            }
        }
    }

    /// The key-encryption key named `kek`: the current one or a previous one.
    fn wrapper(&self, kek: &str) -> Result<&dyn Kms, KeyError> {
        std::iter::once(&self.kms)
            .chain(&self.previous)
            .find(|kms| kms.id() == kek)
            .map(AsRef::as_ref)
            .ok_or_else(|| {
                KeyError::Corrupt(format!(
                    "a data key is wrapped by {kek}, which this keyring does not hold \
                     (give it as the previous key-encryption key)"
                ))
            })
    }

    /// Records when keys are made and destroyed by `clock` (a test's).
    #[must_use]
    pub fn with_clock(mut self, clock: aftersales_core::SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// `subject`'s key, made and stored on first use. Fails (and nothing is stored)
    /// when the key service is unreachable, or the subject was erased.
    pub async fn for_writing(&self, subject: &str) -> Result<Arc<DataKey>, KeyError> {
        if let Some(key) = self.cached_subject(subject) {
            return Ok(key);
        }
        if let Some((id, wrapped, kek)) = self.stored_by_subject(subject).await? {
            return self.unwrapped(id, subject, &wrapped, &kek).await;
        }
        if self.is_erased(subject).await? {
            return Err(KeyError::Erased(subject.to_owned()));
        }
        let mut secret = [0u8; DATA_KEY_LEN];
        random(&mut secret)?;
        let wrapped = self.kms.wrap(&secret).await?;
        let id = Uuid::now_v7();
        // Two writers may race to make the first key: the stored one wins.
        if self.insert(subject, id, &wrapped).await? {
            return self.remember(id, subject, &secret);
        }
        let (id, wrapped, kek) = self
            .stored_by_subject(subject)
            .await?
            .ok_or_else(|| KeyError::Corrupt("a key just stored is missing".into()))?;
        self.unwrapped(id, subject, &wrapped, &kek).await
    }

    /// Key `id`; `None` once it is destroyed.
    pub async fn for_reading(&self, id: Uuid) -> Result<Option<Arc<DataKey>>, KeyError> {
        if let Some(key) = self.cached_id(id) {
            return Ok(Some(key));
        }
        match self.stored_by_id(id).await? {
            Some((subject, wrapped, kek)) => {
                Ok(Some(self.unwrapped(id, &subject, &wrapped, &kek).await?))
            }
            None => Ok(None),
        }
    }

    /// Opens a box; `None` when its key is destroyed (the data is erased).
    pub async fn open(&self, sealed: Sealed) -> Result<Option<Vec<u8>>, KeyError> {
        match self.for_reading(sealed.key).await? {
            Some(key) => key.open(sealed).map(Some),
            None => Ok(None),
        }
    }

    /// Destroys `subject`'s key: whatever was sealed with it is unreadable from now
    /// on. True when there was a key.
    pub async fn destroy(&self, subject: &str) -> Result<bool, KeyError> {
        let now = self.clock.now().timestamp_micros();
        let removed = on_keys!(&self.keys,
            pool => {
                let mut tx = pool.begin().await?;
                let removed = sqlx::query("DELETE FROM data_keys WHERE subject = $1")
                    .bind(subject)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query(
                    "INSERT INTO erased_subjects (subject, erased_at) VALUES ($1, $2) \
                     ON CONFLICT (subject) DO NOTHING",
                )
                .bind(subject)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                removed
            },
            keys => {
                keys.erased.insert(subject.to_owned());
                u64::from(keys.live.remove(subject).is_some())
            }
        );
        self.forget(subject);
        Ok(removed > 0)
    }

    /// Whether `subject` was erased (a subject with a live key was not).
    pub async fn is_erased(&self, subject: &str) -> Result<bool, KeyError> {
        if self.cached_subject(subject).is_some() {
            return Ok(false);
        }
        let sql = "SELECT COUNT(*) FROM erased_subjects WHERE subject = $1";
        Ok(on_keys!(&self.keys,
            pool => sqlx::query_scalar::<_, i64>(sql)
                .bind(subject)
                .fetch_one(pool)
                .await? > 0,
            keys => keys.erased.contains(subject)
        ))
    }

    /// Drops `subject`'s key from this process's memory.
    fn forget(&self, subject: &str) {
        if let Ok(mut cache) = self.cache.lock()
            && let Some(id) = cache.by_subject.remove(subject)
        {
            cache.by_id.remove(&id);
        }
    }

    fn cached_subject(&self, subject: &str) -> Option<Arc<DataKey>> {
        let id = *self.cache.lock().ok()?.by_subject.get(subject)?;
        self.cached_id(id)
    }

    fn cached_id(&self, id: Uuid) -> Option<Arc<DataKey>> {
        let cache = self.cache.lock().ok()?;
        let (at, key) = cache.by_id.get(&id)?;
        (at.elapsed() < CACHE_TTL).then(|| Arc::clone(key))
    }

    async fn unwrapped(
        &self,
        id: Uuid,
        subject: &str,
        wrapped: &[u8],
        kek: &str,
    ) -> Result<Arc<DataKey>, KeyError> {
        let secret = self.wrapper(kek)?.unwrap(wrapped).await?;
        let secret: [u8; DATA_KEY_LEN] = secret
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Corrupt("a data key is 32 bytes".into()))?;
        self.remember(id, subject, &secret)
    }

    /// Key `id` of `subject`, kept in this process's memory for a while.
    fn remember(
        &self,
        id: Uuid,
        subject: &str,
        secret: &[u8; DATA_KEY_LEN],
    ) -> Result<Arc<DataKey>, KeyError> {
        let key = Arc::new(DataKey::new(id, subject, secret)?);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.by_id.len() >= CACHE_KEYS {
                *cache = Cache::default();
            }
            cache.by_id.insert(id, (Instant::now(), Arc::clone(&key)));
            cache.by_subject.insert(subject.to_owned(), id);
        }
        Ok(key)
    }

    async fn stored_by_subject(&self, subject: &str) -> Result<Option<StoredKey>, KeyError> {
        let sql = "SELECT key_id, wrapped, kek FROM data_keys WHERE subject = $1";
        let row: Option<(String, Vec<u8>, String)> = on_keys!(&self.keys,
            pool => sqlx::query_as(sql).bind(subject).fetch_optional(pool).await?,
            keys => return Ok(keys
                .live
                .get(subject)
                .map(|(id, wrapped)| (*id, wrapped.clone(), self.kms.id().to_owned())))
        );
        row.map(|(id, wrapped, kek)| {
            Uuid::parse_str(&id)
                .map(|id| (id, wrapped, kek))
                .map_err(|e| KeyError::Corrupt(format!("stored key id: {e}")))
        })
        .transpose()
    }

    async fn stored_by_id(&self, id: Uuid) -> Result<Option<(String, Vec<u8>, String)>, KeyError> {
        let sql = "SELECT subject, wrapped, kek FROM data_keys WHERE key_id = $1";
        Ok(on_keys!(&self.keys,
            pool => sqlx::query_as(sql)
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?,
            keys => keys
                .live
                .iter()
                .find(|(_, (key, _))| *key == id)
                .map(|(subject, (_, wrapped))| {
                    (subject.clone(), wrapped.clone(), self.kms.id().to_owned())
                })
        ))
    }

    /// Stores key `id` as `subject`'s; false when another writer stored theirs first.
    async fn insert(&self, subject: &str, id: Uuid, wrapped: &[u8]) -> Result<bool, KeyError> {
        let sql = "INSERT INTO data_keys (subject, key_id, wrapped, kek, created_at) \
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT (subject) DO NOTHING";
        let now = self.clock.now().timestamp_micros();
        Ok(on_keys!(&self.keys,
            pool => {
                sqlx::query(sql)
                    .bind(subject)
                    .bind(id.to_string())
                    .bind(wrapped)
                    .bind(self.kms.id())
                    .bind(now)
                    .execute(pool)
                    .await?
                    .rows_affected()
                    == 1
            },
            keys => match keys.live.entry(subject.to_owned()) {
                std::collections::hash_map::Entry::Occupied(_) => false,
                std::collections::hash_map::Entry::Vacant(vacant) => {
                    vacant.insert((id, wrapped.to_vec()));
                    true
                }
            }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_made_once_and_opens_until_destroyed() {
        let keyring = Keyring::ephemeral().expect("keyring");
        let key = keyring.for_writing("c-1").await.expect("key");
        assert_eq!(
            keyring.for_writing("c-1").await.expect("again").id(),
            key.id()
        );
        let sealed = key.seal(b"ana@example.com");
        assert_eq!(
            keyring
                .open(sealed.clone())
                .await
                .expect("opens")
                .as_deref(),
            Some(&b"ana@example.com"[..])
        );
        assert!(keyring.destroy("c-1").await.expect("destroyed"));
        assert_eq!(keyring.open(sealed.clone()).await.expect("reads"), None);
        assert!(!keyring.destroy("c-1").await.expect("again"), "idempotent");
        assert!(keyring.is_erased("c-1").await.expect("reads"));
        assert!(
            matches!(keyring.for_writing("c-1").await, Err(KeyError::Erased(_))),
            "nothing is sealed for an erased subject again"
        );
        assert_eq!(
            keyring.open(sealed.clone()).await.expect("reads"),
            None,
            "still erased"
        );
        assert!(!keyring.is_erased("c-2").await.expect("reads"));
    }

    #[tokio::test]
    async fn keys_move_to_a_new_key_encryption_key_and_open_throughout() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite:{}", dir.path().join("keys.db").display());
        let (old, new): (Arc<dyn Kms>, Arc<dyn Kms>) = (
            Arc::new(LocalKms::generate().expect("old")),
            Arc::new(LocalKms::generate().expect("new")),
        );
        let before = Keyring::connect(&url, Arc::clone(&old)).await.expect("old");
        let mut sealed = Vec::new();
        for subject in ["c-1", "c-2", "c-3"] {
            let key = before.for_writing(subject).await.expect("key");
            sealed.push(key.seal(subject.as_bytes()));
        }
        assert!(before.destroy("c-3").await.expect("erased"));

        // The new key alone does not open what the old one wrapped, and says so.
        let alone = Keyring::connect(&url, Arc::clone(&new)).await.expect("new");
        let refused = alone.open(sealed[0].clone()).await.expect_err("refused");
        assert!(refused.to_string().contains(old.id()), "{refused}");

        // With the old one as previous: everything opens, new keys take the
        // new one, and rewrapping moves the rest (the erased key stays gone).
        let moving = Keyring::connect(&url, Arc::clone(&new))
            .await
            .expect("new")
            .with_previous(Arc::clone(&old));
        assert_eq!(
            moving
                .open(sealed[1].clone())
                .await
                .expect("opens")
                .as_deref(),
            Some(&b"c-2"[..])
        );
        moving.for_writing("c-4").await.expect("a new key");
        assert_eq!(moving.rewrap().await.expect("moved"), 2);
        assert_eq!(moving.rewrap().await.expect("nothing left"), 0);
        let after = Keyring::connect(&url, Arc::clone(&new)).await.expect("new");
        for (i, subject) in ["c-1", "c-2"].iter().enumerate() {
            assert_eq!(
                after
                    .open(sealed[i].clone())
                    .await
                    .expect("opens")
                    .as_deref(),
                Some(subject.as_bytes())
            );
        }
        assert_eq!(after.open(sealed[2].clone()).await.expect("reads"), None);
    }

    #[tokio::test]
    async fn the_key_file_is_made_once_and_refuses_placeholders() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("keys/kek");
        let first = LocalKms::load_or_create(&path).expect("made");
        let again = LocalKms::load_or_create(&path).expect("read");
        assert_eq!(first.id(), again.id());
        let wrapped = first.wrap(&[1; 32]).await.expect("wrap");
        assert_eq!(again.unwrap(&wrapped).await.expect("unwrap"), vec![1; 32]);
        let other = LocalKms::generate().expect("other");
        assert!(other.unwrap(&wrapped).await.is_err());

        let placeholder = dir.path().join("placeholder");
        std::fs::write(&placeholder, "CHANGE_ME").expect("write");
        assert!(LocalKms::load_or_create(&placeholder).is_err());
    }

    /// Two processes making a subject's first key at once agree on one: the
    /// key stored first, which opens what either sealed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_racing_for_a_first_key_agree_on_the_one_stored() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite:{}", dir.path().join("keys.db").display());
        let kms: Arc<dyn Kms> = Arc::new(LocalKms::generate().expect("kms"));
        let one = Keyring::connect(&url, Arc::clone(&kms)).await.expect("one");
        let other = Keyring::connect(&url, kms).await.expect("other");
        for n in 0..50 {
            let subject = format!("c-{n}");
            let (mine, theirs) =
                tokio::join!(one.for_writing(&subject), other.for_writing(&subject));
            let (mine, theirs) = (mine.expect("key"), theirs.expect("key"));
            assert_eq!(mine.id(), theirs.id(), "{subject}");
            let sealed = theirs.seal(b"+4930123456");
            assert_eq!(
                one.open(sealed).await.expect("opens").as_deref(),
                Some(&b"+4930123456"[..])
            );
        }
    }

    #[tokio::test]
    async fn keys_survive_in_a_sqlite_keyring() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite:{}", dir.path().join("keys.db").display());
        let kms: Arc<dyn Kms> = Arc::new(LocalKms::generate().expect("kms"));
        let sealed = {
            let keyring = Keyring::connect(&url, Arc::clone(&kms))
                .await
                .expect("open");
            keyring
                .for_writing("c-9")
                .await
                .expect("key")
                .seal(b"+4930123456")
        };
        let keyring = Keyring::connect(&url, Arc::clone(&kms))
            .await
            .expect("reopen");
        assert_eq!(
            keyring
                .open(sealed.clone())
                .await
                .expect("opens")
                .as_deref(),
            Some(&b"+4930123456"[..])
        );
        keyring.destroy("c-9").await.expect("destroy");
        let keyring = Keyring::connect(&url, kms).await.expect("reopen");
        assert_eq!(keyring.open(sealed.clone()).await.expect("reads"), None);
    }
}
