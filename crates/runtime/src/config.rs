//! The configuration every service binary shares, and each service's defaults read
//! from its own flags, so nothing restates them (`aftersales up`, tests).
//!
//! Connection strings can hold passwords: they are [`SecretString`]s, which print as
//! `[REDACTED]` in `Debug`, and `--help` never shows their environment values.

use std::convert::Infallible;

use aftersales_core::{SharedClock, SystemClock};
use aftersales_eventstore::{AnyEventStore, StoreError};
use secrecy::{ExposeSecret as _, SecretString};

/// Flags and environment variables of every service.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// The service's own database: postgres://… or sqlite:path. Unset:
    /// `sqlite:data/<service>.db`.
    #[arg(long, env = "DATABASE_URL", value_parser = secret, hide_env_values = true)]
    pub database_url: Option<SecretString>,
    /// PostgreSQL only: the role that owns the database runs the migrations and
    /// grants `DATABASE_URL`'s role what a service needs (append to and read the
    /// log, never change it). Unset: `DATABASE_URL`'s role migrates itself.
    #[arg(long, env = "DATABASE_OWNER_URL", value_parser = secret, hide_env_values = true)]
    pub database_owner_url: Option<SecretString>,
    /// NATS with JetStream; unset runs without a broker (embedded mode).
    #[arg(long, env = "NATS_URL", value_parser = secret, hide_env_values = true)]
    pub nats_url: Option<SecretString>,
    /// This deployment's region: lower-case letters, digits and '-'.
    #[arg(long, env = "AFTERSALES_REGION", default_value = "local")]
    pub region: String,
    /// The region directory (TOML: each region's countries and service URLs);
    /// unset, this region is home for every country.
    #[arg(long, env = "AFTERSALES_REGIONS_FILE")]
    pub regions_file: Option<std::path::PathBuf>,
    /// JetStream replicas of the service's stream (3 in production).
    #[arg(long, env = "AFTERSALES_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,
    /// Seconds between reporting NOT_SERVING and refusing new calls on shutdown.
    #[arg(long, env = "AFTERSALES_DRAIN_GRACE_SECONDS", default_value_t = 5)]
    pub drain_grace_seconds: u64,
    /// Seconds a unary call may take (or the caller's shorter `grpc-timeout`);
    /// past it, DEADLINE_EXCEEDED. Live streams are not cut by it.
    #[arg(long, env = "AFTERSALES_CALL_TIMEOUT_SECONDS", default_value_t = 30)]
    pub call_timeout_seconds: u64,
    /// Calls one connection may have in flight; more are refused with
    /// RESOURCE_EXHAUSTED rather than queued.
    #[arg(
        long,
        env = "AFTERSALES_MAX_CALLS_PER_CONNECTION",
        default_value_t = 64
    )]
    pub max_calls_per_connection: usize,
    /// HTTP/2 streams one connection may open at once (calls and live streams).
    #[arg(
        long,
        env = "AFTERSALES_MAX_STREAMS_PER_CONNECTION",
        default_value_t = 256
    )]
    pub max_streams_per_connection: u32,
    /// Live streams (watches) this process serves at once, all callers
    /// together; past it, RESOURCE_EXHAUSTED.
    #[arg(long, env = "AFTERSALES_MAX_LIVE_STREAMS", default_value_t = 10_000)]
    pub max_live_streams: usize,
    /// Log as JSON lines.
    #[arg(long, env = "AFTERSALES_LOG_JSON")]
    pub log_json: bool,
    /// The OpenID Connect issuer whose tokens callers present, e.g.
    /// `https://login.example.com/realms/aftersales`; its keys are found by
    /// discovery. Required unless `--allow-unauthenticated`.
    #[arg(long, env = "AFTERSALES_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// The audience tokens must be issued for.
    #[arg(long, env = "AFTERSALES_OIDC_AUDIENCE", default_value = "aftersales")]
    pub oidc_audience: String,
    /// This service's client id at the issuer, for its own token when it calls
    /// other services (client credentials).
    #[arg(long, env = "AFTERSALES_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// The client secret that goes with `--oidc-client-id`.
    #[arg(long, env = "AFTERSALES_OIDC_CLIENT_SECRET", value_parser = secret, hide_env_values = true)]
    pub oidc_client_secret: Option<SecretString>,
    /// Take calls without tokens (a development machine only): every RPC is
    /// open and `x-actor` names the actor.
    #[arg(long, env = "AFTERSALES_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
    /// Days an `x-command-id` stays bound to its request; older keys are
    /// forgotten (a retry that late still finds its events).
    #[arg(long, env = "AFTERSALES_COMMAND_KEY_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub command_key_days: u32,
    /// Days a consumer remembers it handled an event (to apply a redelivery once);
    /// longer than any redelivery can come.
    #[arg(long, env = "AFTERSALES_HANDLED_EVENT_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub handled_event_days: u32,
    /// Days a resolved dead letter is kept (open ones stay until resolved).
    #[arg(long, env = "AFTERSALES_DEAD_LETTER_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub dead_letter_days: u32,
    /// Serve gRPC over TLS with this certificate chain (PEM), with `--tls-key`.
    #[arg(long, env = "AFTERSALES_TLS_CERT")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of `--tls-cert`.
    #[arg(long, env = "AFTERSALES_TLS_KEY")]
    pub tls_key: Option<std::path::PathBuf>,
    /// A CA (PEM) trusted besides the system's roots when calling another
    /// service at an `https://` URL.
    #[arg(long, env = "AFTERSALES_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// The key (PKCS #8 P-256, DER) the service signs its published chain heads
    /// with; made there the first time. Unset: a key for this run only, so heads
    /// published before a restart can no longer be checked.
    #[arg(long, env = "AFTERSALES_NOTARY_KEY_FILE")]
    pub notary_key_file: Option<std::path::PathBuf>,
    /// The region's keyring of personal-data keys, one for all its services:
    /// postgres://… or sqlite:path. Unset with a SQLite database: `keys.db` beside
    /// it; required with PostgreSQL.
    #[arg(long, env = "AFTERSALES_KEYRING_URL", value_parser = secret, hide_env_values = true)]
    pub keyring_url: Option<SecretString>,
    /// The key-encryption key wrapping every data key (64 hex digits), made there
    /// the first time. Unset with a SQLite keyring: `keys.kek` beside it; required
    /// with PostgreSQL.
    #[arg(long, env = "AFTERSALES_KEY_ENCRYPTION_KEY_FILE")]
    pub key_encryption_key_file: Option<std::path::PathBuf>,
    /// The key-encryption key in AWS KMS instead of a file: a key id, ARN or
    /// alias. Calls are signed with `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
    /// (and `AWS_SESSION_TOKEN`); the region is the ARN's, or `AWS_REGION`. With
    /// a key file too, the file is the previous key: it still opens the keys it
    /// wrapped until `aftersales keyring rewrap` has moved them.
    #[arg(long, env = "AFTERSALES_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,
    /// Another endpoint speaking the AWS KMS API (a VPC endpoint, a FIPS one).
    #[arg(long, env = "AFTERSALES_KMS_ENDPOINT", requires = "kms_key_id")]
    pub kms_endpoint: Option<String>,
    /// How often an erasure waiting for an obligation (a parcel on its way) is
    /// looked at again.
    #[arg(long, env = "AFTERSALES_ERASURE_SWEEP_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub erasure_sweep_seconds: u64,
    /// A keyring already open (`aftersales up` shares one, tests make one in memory).
    #[arg(skip)]
    pub keyring: Option<std::sync::Arc<aftersales_eventstore::Keyring>>,
    /// Where the service reads the time: the system's, or a test's manual clock.
    #[arg(skip = SystemClock::shared())]
    pub clock: SharedClock,
}

/// One keyring in memory for every service a test process starts, as a region
/// has one for all its services.
fn test_keyring() -> Option<std::sync::Arc<aftersales_eventstore::Keyring>> {
    static KEYRING: std::sync::OnceLock<Option<std::sync::Arc<aftersales_eventstore::Keyring>>> =
        std::sync::OnceLock::new();
    KEYRING
        .get_or_init(|| {
            aftersales_eventstore::Keyring::ephemeral()
                .ok()
                .map(std::sync::Arc::new)
        })
        .clone()
}

impl Default for Common {
    fn default() -> Self {
        defaults()
    }
}

impl Common {
    /// What tests run a service with: `database_url`, region `test`, no drain
    /// wait, no authentication (tests of authentication set an issuer), and the
    /// test process's keyring in memory.
    pub fn test(database_url: impl Into<String>) -> Self {
        Self {
            database_url: Some(database_url.into().into()),
            region: "test".into(),
            drain_grace_seconds: 0,
            allow_unauthenticated: true,
            keyring: test_keyring(),
            ..Self::default()
        }
    }

    /// The service's own token for calling others, renewed while it is held: with
    /// an issuer and client credentials; `None` without authentication.
    pub fn service_token(
        &self,
    ) -> Result<Option<std::sync::Arc<aftersales_auth::ServiceToken>>, String> {
        match (&self.oidc_issuer, &self.oidc_client_id, &self.oidc_client_secret) {
            (None, _, _) => Ok(None),
            (Some(issuer), Some(id), Some(secret)) => Ok(Some(aftersales_auth::ServiceToken::start(
                aftersales_auth::ClientCredentials {
                    issuer: issuer.clone(),
                    client_id: id.clone(),
                    client_secret: secret.expose_secret().to_owned(),
                },
            ))),
            (Some(_), _, _) => Err(
                "calling another service needs AFTERSALES_OIDC_CLIENT_ID and AFTERSALES_OIDC_CLIENT_SECRET"
                    .into(),
            ),
        }
    }

    /// How calls are authenticated: tokens from `oidc_issuer`, or none at all
    /// when that is explicitly allowed. Neither, or both, is a configuration error.
    pub fn authorization(&self) -> Result<crate::auth::Authorization, String> {
        let policy = aftersales_auth::Policy::builtin().map_err(|e| e.to_string())?;
        match (&self.oidc_issuer, self.allow_unauthenticated) {
            (Some(issuer), false) => {
                let settings = aftersales_auth::VerifierSettings::new(
                    issuer.clone(),
                    self.oidc_audience.clone(),
                );
                let verifier =
                    aftersales_auth::Verifier::new(settings).map_err(|e| e.to_string())?;
                Ok(crate::auth::Authorization::new(verifier, policy))
            }
            (None, true) => {
                tracing::warn!(
                    "authentication is off: every RPC is open to anyone who can reach it"
                );
                Ok(crate::auth::Authorization::off(policy))
            }
            (None, false) => Err("no identity provider: set AFTERSALES_OIDC_ISSUER \
                 (or AFTERSALES_ALLOW_UNAUTHENTICATED=true on a development machine)"
                .into()),
            (Some(_), true) => Err(
                "AFTERSALES_OIDC_ISSUER and AFTERSALES_ALLOW_UNAUTHENTICATED contradict each other"
                    .into(),
            ),
        }
    }

    /// The region directory, with this service's region in it.
    pub fn regions(&self) -> Result<crate::regions::Regions, String> {
        let Some(path) = &self.regions_file else {
            return Ok(crate::regions::Regions::single(&self.region));
        };
        let regions = crate::regions::Regions::load(path).map_err(|e| e.to_string())?;
        if regions.get(&self.region).is_none() {
            return Err(format!(
                "AFTERSALES_REGION {:?} is not in the region directory {}",
                self.region,
                path.display()
            ));
        }
        Ok(regions)
    }

    /// Refuses secrets that are still the deployment files' placeholders.
    pub fn refuse_placeholders(&self) -> Result<(), String> {
        let secrets = [
            ("DATABASE_URL", self.database_url.as_ref()),
            ("DATABASE_OWNER_URL", self.database_owner_url.as_ref()),
            ("AFTERSALES_KEYRING_URL", self.keyring_url.as_ref()),
            ("NATS_URL", self.nats_url.as_ref()),
            (
                "AFTERSALES_OIDC_CLIENT_SECRET",
                self.oidc_client_secret.as_ref(),
            ),
        ];
        for (variable, value) in secrets {
            if let Some(value) = value {
                refuse_placeholder(variable, value.expose_secret())?;
            }
        }
        Ok(())
    }

    /// The server's TLS, if configured.
    pub fn server_tls(&self) -> Result<Option<tonic::transport::ServerTlsConfig>, String> {
        crate::tls::server(self.tls_cert.as_deref(), self.tls_key.as_deref())
    }

    /// An endpoint for calling another service at `url` (TLS for `https://`).
    pub fn endpoint(&self, url: &str) -> Result<tonic::transport::Endpoint, String> {
        crate::tls::endpoint(url, self.tls_ca.as_deref())
    }

    /// A channel to another service at `url` (the value of `variable`), traced
    /// and carrying this service's token; connected on first use. `None` when
    /// no URL is set.
    pub fn service_channel(
        &self,
        url: Option<&str>,
        variable: &str,
    ) -> Result<Option<crate::telemetry::TracedChannel>, String> {
        let Some(url) = url else { return Ok(None) };
        let token = self.service_token()?;
        let endpoint = self
            .endpoint(url)
            .map_err(|e| format!("{variable}: {e}"))?
            .connect_timeout(std::time::Duration::from_secs(2))
            .connect_lazy();
        Ok(Some(crate::telemetry::traced(endpoint, token)))
    }

    /// The same with NATS at `nats_url`.
    #[must_use]
    pub fn with_nats(mut self, nats_url: impl Into<String>) -> Self {
        self.nats_url = Some(nats_url.into().into());
        self
    }

    /// The database to use, `sqlite:data/<service>.db` when none is set.
    pub fn database_url(&self, service: &str) -> SecretString {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite:data/{service}.db").into())
    }

    /// Opens the service's own store (a new SQLite file's directory is created, so
    /// a fresh machine needs no set-up) with the store's migrations applied.
    pub async fn open_store(&self, service: &str) -> Result<AnyEventStore, StoreError> {
        let url = self.database_url(service);
        let url = url.expose_secret();
        if let Some(path) = url.strip_prefix("sqlite:")
            && let Some(parent) = std::path::Path::new(path.trim_start_matches("//")).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(StoreError::from)?;
        }
        AnyEventStore::connect(url).await
    }

    /// The region's keyring: the one handed in, or the one configured (see
    /// [`Common::keyring_url`]), opened.
    pub async fn keyring(
        &self,
        service: &str,
    ) -> Result<std::sync::Arc<aftersales_eventstore::Keyring>, String> {
        if let Some(keyring) = &self.keyring {
            return Ok(std::sync::Arc::clone(keyring));
        }
        let database = self.database_url(service);
        let beside_database = database
            .expose_secret()
            .strip_prefix("sqlite:")
            .map(|path| {
                std::path::Path::new(path.trim_start_matches("//"))
                    .parent()
                    .map(std::path::Path::to_path_buf)
                    .unwrap_or_default()
            });
        let url = match (&self.keyring_url, &beside_database) {
            (Some(url), _) => url.expose_secret().to_owned(),
            (None, Some(dir)) => format!("sqlite:{}", dir.join("keys.db").display()),
            (None, None) => {
                return Err("AFTERSALES_KEYRING_URL is required with a PostgreSQL \
                     database: one keyring for every service of the region"
                    .into());
            }
        };
        let (kms, previous) = self.key_encryption_key(&url, |name| std::env::var(name).ok())?;
        let keyring = aftersales_eventstore::Keyring::connect(&url, kms)
            .await
            .map_err(|e| format!("AFTERSALES_KEYRING_URL: {e}"))?;
        Ok(std::sync::Arc::new(match previous {
            Some(previous) => keyring.with_previous(previous),
            None => keyring,
        }))
    }

    /// What wraps the keyring's keys: the AWS KMS key when one is named
    /// (`env` gives its credentials and region), with the key file, if one is
    /// given too, as the previous key; else the key file.
    fn key_encryption_key(
        &self,
        keyring_url: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Kek, Option<Kek>), String> {
        if let Some(key_id) = &self.kms_key_id {
            let credentials = aftersales_eventstore::AwsCredentials::from_env(&env).ok_or(
                "AFTERSALES_KMS_KEY_ID: calls to AWS KMS are signed with AWS_ACCESS_KEY_ID \
                 and AWS_SECRET_ACCESS_KEY, and one is not set",
            )?;
            let var = |name: &str| env(name).filter(|v| !v.is_empty());
            let region = var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_default();
            let kms = aftersales_eventstore::AwsKms::new(
                key_id,
                &region,
                self.kms_endpoint.as_deref(),
                credentials,
            )
            .map_err(|e| format!("AFTERSALES_KMS_KEY_ID: {e}"))?;
            // Never made here: a previous key that is missing opens nothing.
            let previous = match &self.key_encryption_key_file {
                Some(file) if file.exists() => Some(
                    aftersales_eventstore::LocalKms::load_or_create(file)
                        .map(|k| std::sync::Arc::new(k) as Kek)
                        .map_err(|e| format!("AFTERSALES_KEY_ENCRYPTION_KEY_FILE: {e}"))?,
                ),
                Some(file) => {
                    return Err(format!(
                        "AFTERSALES_KEY_ENCRYPTION_KEY_FILE: {} does not exist; beside \
                         AFTERSALES_KMS_KEY_ID it is the previous key, read and never made",
                        file.display()
                    ));
                }
                None => None,
            };
            return Ok((std::sync::Arc::new(kms), previous));
        }
        let key_file = match (
            &self.key_encryption_key_file,
            keyring_url.strip_prefix("sqlite:"),
        ) {
            (Some(file), _) => file.clone(),
            (None, Some(path)) => {
                std::path::Path::new(path.trim_start_matches("//")).with_extension("kek")
            }
            (None, None) => {
                return Err(
                    "AFTERSALES_KEY_ENCRYPTION_KEY_FILE or AFTERSALES_KMS_KEY_ID \
                     is required with a PostgreSQL keyring"
                        .into(),
                );
            }
        };
        let kms = aftersales_eventstore::LocalKms::load_or_create(&key_file)
            .map_err(|e| format!("AFTERSALES_KEY_ENCRYPTION_KEY_FILE: {e}"))?;
        Ok((std::sync::Arc::new(kms), None))
    }

    /// The NATS URL, exposed for connecting.
    pub fn nats_url(&self) -> Option<&str> {
        self.nats_url.as_ref().map(|u| u.expose_secret())
    }
}

/// A key-encryption key, as the keyring holds it.
type Kek = std::sync::Arc<dyn aftersales_eventstore::Kms>;

/// An error if `value` is a placeholder (`CHANGE_ME`, `change-me`, …) rather
/// than a secret someone chose.
pub fn refuse_placeholder(variable: &str, value: &str) -> Result<(), String> {
    let folded = value.to_ascii_lowercase().replace('-', "_");
    if folded.contains("change_me") || folded.contains("changeme") {
        Err(format!(
            "{variable} is still a placeholder: supply the real secret"
        ))
    } else {
        Ok(())
    }
}

/// A secret from a flag or the environment.
pub fn secret(value: &str) -> Result<SecretString, Infallible> {
    Ok(SecretString::from(value))
}

/// `T` with every flag at its default, ignoring the environment: the one place a
/// service's defaults live is its flags.
pub fn defaults<T: clap::Args + clap::FromArgMatches>() -> T {
    let command =
        T::augment_args(clap::Command::new("defaults")).mut_args(|arg| arg.env(None::<&str>));
    match command
        .try_get_matches_from(["defaults"])
        .and_then(|matches| T::from_arg_matches(&matches))
    {
        Ok(parsed) => parsed,
        // Every flag has a default or is optional; a test below holds each service to it.
        Err(error) => panic!("a flag without a default: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_must_be_in_the_directory_it_is_given() {
        let mut common: Common = defaults();
        assert_eq!(
            common
                .regions()
                .expect("one region")
                .home_of("DE")
                .map(|r| r.name.clone()),
            Some("local".to_owned())
        );
        common.regions_file = Some(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../deploy/k8s/base/regions.toml"
            )
            .into(),
        );
        let refused = common.regions().expect_err("local is not in it");
        assert!(
            refused.contains("\"local\" is not in the region directory"),
            "{refused}"
        );
        common.region = "ap-south".into();
        let regions = common.regions().expect("ap-south is");
        assert_eq!(regions.others("ap-south").count(), 3);
    }

    #[test]
    fn defaults_ignore_the_environment_and_secrets_never_print() {
        let common: Common = defaults();
        assert_eq!(common.region, "local");
        assert_eq!(common.drain_grace_seconds, 5);
        assert!(common.database_url.is_none());
        let configured = Common {
            database_url: Some("postgres://svc:hunter2@db/svc".into()),
            nats_url: Some("nats://user:s3cret@nats:4222".into()),
            ..common
        };
        let printed = format!("{configured:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert_eq!(
            configured.database_url("warranty").expose_secret(),
            "postgres://svc:hunter2@db/svc"
        );
        assert_eq!(
            Common::default().database_url("repair").expose_secret(),
            "sqlite:data/repair.db"
        );
    }
}

#[cfg(test)]
mod kms_tests {
    use super::*;

    #[test]
    fn a_kms_key_id_wraps_keys_in_aws_kms_with_the_environments_credentials() {
        let common = Common {
            kms_key_id: Some(
                "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                    .into(),
            ),
            ..Common::default()
        };
        let url = "postgres://keys@db/keys";
        let missing = common.key_encryption_key(url, |_| None).unwrap_err();
        assert!(missing.contains("AWS_SECRET_ACCESS_KEY"), "{missing}");
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("wJalrXUtnFEMI".to_owned()),
            _ => None,
        };
        let (kms, previous) = common.key_encryption_key(url, env).unwrap();
        assert!(
            kms.id().starts_with("aws-kms:arn:aws:kms:eu-central-1:"),
            "{}",
            kms.id()
        );
        assert!(previous.is_none());
        // A key file beside it is the previous key: read, never made.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keyring.kek");
        let moving = Common {
            key_encryption_key_file: Some(file.clone()),
            ..common.clone()
        };
        let missing_file = moving.key_encryption_key(url, env).map(|_| ()).unwrap_err();
        assert!(missing_file.contains("previous"), "{missing_file}");
        assert!(!file.exists());
        let local = aftersales_eventstore::LocalKms::load_or_create(&file).unwrap();
        let (kms, previous) = moving.key_encryption_key(url, env).unwrap();
        assert!(kms.id().starts_with("aws-kms:"));
        assert_eq!(
            previous.map(|p| p.id().to_owned()),
            Some(aftersales_eventstore::Kms::id(&local).to_owned())
        );
        // An alias names no region: the environment must.
        let alias = Common {
            kms_key_id: Some("alias/aftersales".into()),
            ..Common::default()
        };
        assert!(alias.key_encryption_key(url, env).is_err());
        let with_region = |name: &str| {
            if name == "AWS_REGION" {
                Some("ap-south-1".to_owned())
            } else {
                env(name)
            }
        };
        assert_eq!(
            alias.key_encryption_key(url, with_region).unwrap().0.id(),
            "aws-kms:alias/aftersales"
        );
        // Without either, a PostgreSQL keyring has nothing to wrap its keys.
        let neither = Common::default()
            .key_encryption_key(url, env)
            .map(|_| ())
            .unwrap_err();
        assert!(neither.contains("AFTERSALES_KMS_KEY_ID"), "{neither}");
    }
}

#[cfg(test)]
mod placeholder_tests {
    use super::*;

    #[test]
    fn a_placeholder_secret_stops_the_service_and_names_the_variable() {
        let common = Common {
            nats_url: Some("nats://repair:CHANGE_ME@nats:4222".into()),
            ..Common::test("postgres://repair:a-real-one@db/repair")
        };
        let refused = common.refuse_placeholders().unwrap_err();
        assert!(refused.contains("NATS_URL"), "{refused}");
        assert!(refuse_placeholder("X", "change-me-compose-0123456789").is_err());
        assert!(refuse_placeholder("X", "9f2c4e1d8a7b6c5d").is_ok());
        assert!(
            Common::test("sqlite:data/x.db")
                .refuse_placeholders()
                .is_ok()
        );
    }
}
