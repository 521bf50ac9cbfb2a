//! What the provider keeps in its SQLite file: staff accounts, sign-in sessions
//! with their refresh tokens, and the issuer's signing keys.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aftersales_auth::issuer::SigningKey;
use aftersales_auth::{Principal, Role};
use sqlx::Row as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::IdentityError;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A staff account as stored.
#[derive(Debug, Clone)]
pub struct Account {
    pub username: String,
    pub principal: Principal,
    pub password_hash: String,
    pub totp_secret: Option<String>,
}

/// What using a refresh token came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// A new refresh token for the same session, and whom it names.
    Rotated {
        principal: Principal,
        refresh_token: String,
    },
    /// Unknown, expired, revoked, or used before (which revokes its session).
    Refused,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

pub(crate) fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// A fresh random value, URL-safe: session ids and refresh tokens.
pub fn random_token() -> Result<String, IdentityError> {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    let mut bytes = [0_u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| IdentityError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

pub(crate) fn digest(value: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, value.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn centers_to_column(centers: &[String]) -> String {
    centers.join(",")
}

fn centers_from_column(column: &str) -> Vec<String> {
    column
        .split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

fn principal(subject: String, role: &str, centers: &str) -> Result<Principal, IdentityError> {
    let role = Role::parse(role).ok_or_else(|| IdentityError::Corrupt(format!("role {role}")))?;
    Ok(Principal {
        centers: centers_from_column(centers),
        ..Principal::new(subject, role)
    })
}

impl Store {
    /// Opens (creating it if missing) and migrates the database at `url`
    /// (`sqlite:path`, or `sqlite::memory:` for a test).
    pub async fn open(url: &str) -> Result<Self, IdentityError> {
        let options: SqliteConnectOptions = url.parse()?;
        // Each connection to `:memory:` would be a database of its own.
        let connections = if url.contains(":memory:") { 1 } else { 4 };
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
            .connect_with(
                options
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .foreign_keys(true),
            )
            .await?;
        MIGRATIONS.run(&pool).await?;
        Ok(Self { pool })
    }

    /// A transaction that writes: it takes SQLite's write lock at once, so two
    /// writers queue (busy timeout) instead of one failing on upgrading a read.
    async fn write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, IdentityError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// The signing keys kept, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKey>, IdentityError> {
        let rows = sqlx::query("SELECT pkcs8 FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let der: Vec<u8> = row.try_get("pkcs8")?;
                SigningKey::from_pkcs8(&der).map_err(|e| IdentityError::Corrupt(e.to_string()))
            })
            .collect()
    }

    pub async fn keep_signing_key(&self, key: &SigningKey) -> Result<(), IdentityError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, pkcs8, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (kid) DO NOTHING",
        )
        .bind(key.kid())
        .bind(key.pkcs8())
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Adds a staff account; [`IdentityError::Exists`] if the username or
    /// subject is taken.
    pub async fn add_account(&self, account: &Account) -> Result<(), IdentityError> {
        let inserted = sqlx::query(
            "INSERT INTO accounts (username, subject, role, centers, password_hash, totp_secret, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(&account.username)
        .bind(&account.principal.subject)
        .bind(account.principal.role.as_str())
        .bind(centers_to_column(&account.principal.centers))
        .bind(&account.password_hash)
        .bind(&account.totp_secret)
        .bind(now())
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            Ok(())
        } else {
            Err(IdentityError::Exists(account.username.clone()))
        }
    }

    pub async fn account(&self, username: &str) -> Result<Option<Account>, IdentityError> {
        let row = sqlx::query(
            "SELECT username, subject, role, centers, password_hash, totp_secret \
             FROM accounts WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Account {
                username: row.try_get("username")?,
                principal: principal(
                    row.try_get("subject")?,
                    row.try_get("role")?,
                    row.try_get("centers")?,
                )?,
                password_hash: row.try_get("password_hash")?,
                totp_secret: row.try_get("totp_secret")?,
            })
        })
        .transpose()
    }

    /// Starts a session for `principal` lasting `lifetime`; its first refresh token.
    pub async fn start_session(
        &self,
        principal: &Principal,
        lifetime: Duration,
    ) -> Result<String, IdentityError> {
        let session = random_token()?;
        let refresh = random_token()?;
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO sessions (session_id, subject, role, centers, started_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&session)
        .bind(&principal.subject)
        .bind(principal.role.as_str())
        .bind(centers_to_column(&principal.centers))
        .bind(now())
        .bind(now().saturating_add(seconds(lifetime)))
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO refresh_tokens (token_digest, session_id) VALUES ($1, $2)")
            .bind(digest(&refresh))
            .bind(&session)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(refresh)
    }

    /// Uses `refresh`: a new one for the same session, or refused. A token used
    /// twice means it leaked, so its session ends for everyone holding it.
    pub async fn rotate(&self, refresh: &str) -> Result<Rotation, IdentityError> {
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "SELECT t.session_id, t.used, s.subject, s.role, s.centers, s.expires_at, s.revoked_at \
             FROM refresh_tokens t JOIN sessions s ON s.session_id = t.session_id \
             WHERE t.token_digest = $1",
        )
        .bind(digest(refresh))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Rotation::Refused);
        };
        let session: String = row.try_get("session_id")?;
        let used: i64 = row.try_get("used")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        let revoked_at: Option<i64> = row.try_get("revoked_at")?;
        if revoked_at.is_some() || expires_at <= now() {
            return Ok(Rotation::Refused);
        }
        if used != 0 {
            sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE session_id = $2")
                .bind(now())
                .bind(&session)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::warn!("a refresh token was used twice; its session is revoked");
            return Ok(Rotation::Refused);
        }
        // Marked used only if no concurrent rotation got there first.
        let marked =
            sqlx::query("UPDATE refresh_tokens SET used = 1 WHERE token_digest = $1 AND used = 0")
                .bind(digest(refresh))
                .execute(&mut *tx)
                .await?;
        if marked.rows_affected() != 1 {
            return Ok(Rotation::Refused);
        }
        let next = random_token()?;
        sqlx::query("INSERT INTO refresh_tokens (token_digest, session_id) VALUES ($1, $2)")
            .bind(digest(&next))
            .bind(&session)
            .execute(&mut *tx)
            .await?;
        let principal = principal(
            row.try_get("subject")?,
            row.try_get("role")?,
            row.try_get("centers")?,
        )?;
        tx.commit().await?;
        Ok(Rotation::Rotated {
            principal,
            refresh_token: next,
        })
    }

    /// Ends the session `refresh` belongs to (sign-out). False if it is unknown.
    pub async fn revoke(&self, refresh: &str) -> Result<bool, IdentityError> {
        let revoked = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE revoked_at IS NULL AND session_id = \
             (SELECT session_id FROM refresh_tokens WHERE token_digest = $2)",
        )
        .bind(now())
        .bind(digest(refresh))
        .execute(&self.pool)
        .await?;
        Ok(revoked.rows_affected() == 1)
    }

    /// Forgets sessions that ended more than a day ago, with their tokens.
    pub async fn forget_ended_sessions(&self) -> Result<u64, IdentityError> {
        let cutoff = now().saturating_sub(86_400);
        let mut tx = self.write().await?;
        sqlx::query(
            "DELETE FROM refresh_tokens WHERE session_id IN \
             (SELECT session_id FROM sessions WHERE expires_at < $1 OR revoked_at < $1)",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        let forgotten =
            sqlx::query("DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(forgotten.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn store() -> Store {
        Store::open("sqlite::memory:").await.unwrap()
    }

    fn agent() -> Principal {
        Principal::new("agent-1", Role::SupportAgent)
    }

    #[tokio::test]
    async fn a_refresh_token_rotates_once_and_a_reused_one_ends_the_session() {
        let store = store().await;
        let first = store
            .start_session(&agent(), Duration::from_secs(60))
            .await
            .unwrap();
        let Rotation::Rotated {
            principal,
            refresh_token: second,
        } = store.rotate(&first).await.unwrap()
        else {
            panic!("a fresh token rotates");
        };
        assert_eq!(principal, agent());
        // The first again: someone else holds a copy, so the session ends ...
        assert_eq!(store.rotate(&first).await.unwrap(), Rotation::Refused);
        // ... and the legitimate holder's newer token stops working too.
        assert_eq!(store.rotate(&second).await.unwrap(), Rotation::Refused);
    }

    #[tokio::test]
    async fn a_revoked_or_expired_session_mints_nothing() {
        let store = store().await;
        let refresh = store
            .start_session(&agent(), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(store.revoke(&refresh).await.unwrap());
        assert!(!store.revoke(&refresh).await.unwrap(), "revoked once");
        assert_eq!(store.rotate(&refresh).await.unwrap(), Rotation::Refused);
        let expired = store.start_session(&agent(), Duration::ZERO).await.unwrap();
        assert_eq!(store.rotate(&expired).await.unwrap(), Rotation::Refused);
        assert_eq!(store.rotate("made-up").await.unwrap(), Rotation::Refused);
    }

    #[tokio::test]
    async fn accounts_are_unique_by_username_and_subject_and_keys_are_kept() {
        let store = store().await;
        let account = Account {
            username: "tech".into(),
            principal: Principal {
                centers: vec!["sc-1".into(), "sc-2".into()],
                ..Principal::new("tech-1", Role::Technician)
            },
            password_hash: "x".into(),
            totp_secret: None,
        };
        store.add_account(&account).await.unwrap();
        assert!(matches!(
            store.add_account(&account).await,
            Err(IdentityError::Exists(_))
        ));
        let found = store.account("tech").await.unwrap().unwrap();
        assert_eq!(found.principal, account.principal);
        assert!(store.account("nobody").await.unwrap().is_none());

        let key = SigningKey::generate().unwrap();
        store.keep_signing_key(&key).await.unwrap();
        let kept = store.signing_keys().await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].kid(), key.kid());
    }
}
