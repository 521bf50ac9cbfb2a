//! The platform the journeys run: the four service binaries as OS processes on
//! the test kit's PostgreSQL, nats-server and SMTP listener. Shared with the
//! benchmarks of this package.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aftersales_testkit::{NatsServer, SmtpServer, shared_postgres};

/// The binaries the journeys and benchmarks start.
const BINARIES: [(&str, &str); 7] = [
    ("aftersales-cli", "aftersales"),
    ("aftersales-warranty", "aftersales-warranty"),
    ("aftersales-repair", "aftersales-repair"),
    ("aftersales-logistics", "aftersales-logistics"),
    ("aftersales-notification", "aftersales-notification"),
    ("aftersales-parts", "aftersales-parts"),
    ("aftersales-support", "aftersales-support"),
];

/// A service binary from this workspace's target directory. Tests build one if it
/// is missing; a benchmark (running from the release directory) builds them all
/// once, in one cargo run so that they share one feature resolution, since it must
/// not measure an old build (cargo does nothing when they are fresh).
pub fn binary(name: &str) -> PathBuf {
    static RELEASE_BUILT: OnceLock<()> = OnceLock::new();
    let exe = std::env::current_exe().unwrap();
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .to_path_buf();
    let path = dir.join(name);
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    if dir.ends_with("release") {
        RELEASE_BUILT.get_or_init(|| {
            let mut command = cargo_build(cargo);
            command.arg("--release");
            for (package, _) in BINARIES {
                command.args(["-p", package]);
            }
            assert!(command.status().unwrap().success(), "building the binaries");
        });
    } else if !path.exists() {
        let package = BINARIES
            .iter()
            .find(|(_, bin)| *bin == name)
            .map_or(name, |(package, _)| *package);
        let status = cargo_build(cargo)
            .args(["-p", package, "--bin", name])
            .status()
            .unwrap();
        assert!(status.success(), "building {name}");
    }
    path
}

/// Where service processes start from instead of this build, when set: another
/// build's binaries, for a benchmark's baseline on the same machine.
pub static SERVICES_FROM: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// `cargo build`, without what cargo set for the running test or bench about its
/// own package: build scripts that watch those variables (ring's does) would run
/// again, and everything above them be rebuilt, on every switch between a plain
/// build and this one.
fn cargo_build(cargo: &str) -> Command {
    let mut command = Command::new(cargo);
    command.arg("build");
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let per_package = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|prefix| key.starts_with(prefix))
            || ["OUT_DIR", "CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR"].contains(&key);
        if per_package {
            command.env_remove(key);
        }
    }
    command
}

/// One service process; killed when dropped.
#[derive(Debug)]
pub struct Service {
    pub name: &'static str,
    pub addr: SocketAddr,
    env: Vec<(String, String)>,
    /// Where its logs go (appended across restarts); the test's stderr otherwise.
    log: Option<PathBuf>,
    child: Option<Child>,
    /// Its metrics endpoint, once its banner has named it.
    metrics: Arc<OnceLock<String>>,
}

impl Service {
    pub fn spawn(name: &'static str, env: Vec<(String, String)>) -> Self {
        Self::spawn_logging(name, env, None)
    }

    pub fn spawn_logging(
        name: &'static str,
        env: Vec<(String, String)>,
        logs: Option<&std::path::Path>,
    ) -> Self {
        let mut service = Self {
            name,
            addr: "127.0.0.1:0".parse().unwrap(),
            env,
            log: logs.map(|dir| dir.join(format!("{name}.log"))),
            child: None,
            metrics: Arc::default(),
        };
        service.start();
        service
    }

    fn start(&mut self) {
        let name = format!("aftersales-{}", self.name);
        let from = SERVICES_FROM.lock().unwrap().clone();
        let mut command = Command::new(from.map_or_else(|| binary(&name), |dir| dir.join(&name)));
        let stderr = match &self.log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap(),
            ),
            None => Stdio::inherit(),
        };
        command
            // A benchmark may ask for more, to see where time goes.
            .env(
                "RUST_LOG",
                std::env::var("BENCH_SERVICE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(
                format!("AFTERSALES_{}_LISTEN", self.name.to_uppercase()),
                self.addr.to_string(),
            )
            .env("AFTERSALES_METRICS_LISTEN", "127.0.0.1:0")
            .env("AFTERSALES_DRAIN_GRACE_SECONDS", "0")
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("{} exited at start", self.name))
            .unwrap();
        // `<name> gRPC on <address>`, or the gateway's `http://<address>`.
        let addr = line.rsplit(' ').next().unwrap();
        self.addr = addr.trim_start_matches("http://").parse().unwrap();
        self.metrics = Arc::default();
        let metrics = Arc::clone(&self.metrics);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some((_, url)) = line.split_once(" metrics on ") {
                    let _ = metrics.set(url.to_owned());
                }
            }
        });
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The environment it was started with.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// What its metrics endpoint serves now.
    pub async fn metrics(&self) -> String {
        let url = aftersales_testkit::eventually(
            || async { self.metrics.get().cloned() },
            Option::is_some,
        )
        .await
        .unwrap_or_default();
        reqwest::get(url).await.unwrap().text().await.unwrap()
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// SIGKILL: no shutdown, no flush, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same address and database.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.start()));
            match attempt {
                Ok(()) => return,
                Err(_) if std::time::Instant::now() < deadline => {
                    #[allow(clippy::disallowed_methods)] // a blocking restart, briefly
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        #[allow(unsafe_code)]
        // SAFETY: kill(2) on a child we own.
        unsafe {
            libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM);
        }
        child.wait().ok()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A keyring of its own for a service started alone: a database and, in `dir`, the
/// key-encryption key.
pub fn keyring_env(dir: &std::path::Path) -> Vec<(String, String)> {
    vec![
        (
            "AFTERSALES_KEYRING_URL".into(),
            shared_postgres().create_database().unwrap(),
        ),
        (
            "AFTERSALES_KEY_ENCRYPTION_KEY_FILE".into(),
            dir.join("keyring.kek").display().to_string(),
        ),
    ]
}

/// `env` with `DATABASE_URL` a new database of its own: a second service
/// started like another.
pub fn on_own_database(env: Vec<(String, String)>) -> Vec<(String, String)> {
    env.into_iter()
        .map(|(k, v)| {
            if k == "DATABASE_URL" {
                let own = shared_postgres().create_database().unwrap();
                (k, own)
            } else {
                (k, v)
            }
        })
        .collect()
}

/// The platform: infrastructure and the four processes.
#[derive(Debug)]
pub struct Platform {
    pub nats: NatsServer,
    pub smtp: SmtpServer,
    pub databases: [String; 4],
    /// The region's keyring, shared by the four.
    pub keyring: String,
    /// Where each service's notary key is kept across its restarts.
    pub notary_keys: tempfile::TempDir,
    pub warranty: Service,
    pub repair: Service,
    pub logistics: Service,
    pub notification: Service,
}

impl Platform {
    pub fn start(autoplay_step_millis: u32) -> Self {
        Self::start_with(autoplay_step_millis, &[])
    }

    /// With `extra` environment for every service.
    pub fn start_with(autoplay_step_millis: u32, extra: &[(&str, String)]) -> Self {
        Self::start_logging(autoplay_step_millis, extra, None)
    }

    /// With each service's logs in `<logs>/<service>.log`.
    pub fn start_logging(
        autoplay_step_millis: u32,
        extra: &[(&str, String)],
        logs: Option<&std::path::Path>,
    ) -> Self {
        // `BENCH_NATS_SYNC=default`: the load benchmark's measure of what an
        // fsync per JetStream message costs; everything else runs durable.
        let nats = match std::env::var("BENCH_NATS_SYNC").as_deref() {
            Ok("default") => NatsServer::start_with(aftersales_testkit::NatsOptions::Default),
            _ => NatsServer::start(),
        }
        .unwrap();
        let smtp = SmtpServer::start().unwrap();
        // Each service runs as a role that can append to its log but not change
        // it; its database's owner migrates. Tests look in as the superuser.
        let roles: [aftersales_testkit::DatabaseRoles; 4] =
            std::array::from_fn(|_| shared_postgres().create_database_with_roles().unwrap());
        let databases = roles.each_ref().map(|r| r.superuser_url.clone());
        // Without an issuer among `extra`, calls are not authenticated.
        let authenticated = extra.iter().any(|(k, _)| *k == "AFTERSALES_OIDC_ISSUER");
        let in_kms = extra.iter().any(|(k, _)| *k == "AFTERSALES_KMS_KEY_ID");
        // Each service signs its chain heads with a key kept across restarts.
        let keys = tempfile::tempdir().unwrap();
        // One keyring for the region: a database of its own, its key-encryption
        // key in a file every service reads.
        let keyring_url = shared_postgres().create_database().unwrap();
        let key_encryption_key = keys.path().join("keyring.kek");
        let common = |db: &aftersales_testkit::DatabaseRoles| {
            vec![
                ("DATABASE_URL".to_owned(), db.service_url.clone()),
                ("DATABASE_OWNER_URL".to_owned(), db.owner_url.clone()),
                (
                    "AFTERSALES_NOTARY_KEY_FILE".to_owned(),
                    keys.path()
                        .join(format!(
                            "{}.der",
                            db.service_url.rsplit('/').next().unwrap_or("key")
                        ))
                        .display()
                        .to_string(),
                ),
                ("AFTERSALES_KEYRING_URL".to_owned(), keyring_url.clone()),
                ("NATS_URL".to_owned(), nats.url()),
                ("AFTERSALES_REGION".to_owned(), "e2e".to_owned()),
            ]
            .into_iter()
            // The key-encryption key in a file, unless `extra` names a KMS key.
            .chain((!in_kms).then(|| {
                (
                    "AFTERSALES_KEY_ENCRYPTION_KEY_FILE".to_owned(),
                    key_encryption_key.display().to_string(),
                )
            }))
            .chain((!authenticated).then(|| {
                (
                    "AFTERSALES_ALLOW_UNAUTHENTICATED".to_owned(),
                    "true".to_owned(),
                )
            }))
            .chain(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())))
            .collect::<Vec<_>>()
        };
        let warranty = Service::spawn_logging("warranty", common(&roles[0]), logs);
        let mut repair_env = common(&roles[1]);
        repair_env.push(("AFTERSALES_WARRANTY_URL".into(), warranty.url()));
        let repair = Service::spawn_logging("repair", repair_env, logs);
        let mut logistics_env = common(&roles[2]);
        logistics_env.push(("AFTERSALES_SANDBOX_AUTOPLAY".into(), "delivered".into()));
        logistics_env.push((
            "AFTERSALES_SANDBOX_STEP_MILLIS".into(),
            autoplay_step_millis.to_string(),
        ));
        logistics_env.push(("AFTERSALES_WEBHOOK_LISTEN".into(), "127.0.0.1:0".into()));
        let logistics = Service::spawn_logging("logistics", logistics_env, logs);
        let mut notification_env = common(&roles[3]);
        notification_env.push(("AFTERSALES_SMTP_URL".into(), smtp.url()));
        notification_env.push(("AFTERSALES_SEND_RETRY_BASE_MILLIS".into(), "200".into()));
        notification_env.push(("AFTERSALES_SEND_LEASE_SECONDS".into(), "5".into()));
        let notification = Service::spawn_logging("notification", notification_env, logs);
        Self {
            nats,
            smtp,
            databases,
            keyring: keyring_url,
            notary_keys: keys,
            warranty,
            repair,
            logistics,
            notification,
        }
    }

    pub async fn clients(&self) -> Clients {
        let channel = |url: String| {
            tonic::transport::Endpoint::from_shared(url)
                .unwrap()
                .connect_timeout(Duration::from_secs(2))
                .connect_lazy()
        };
        Clients {
            warranty: aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient::new(
                channel(self.warranty.url()),
            ),
            repair: aftersales_proto::repair::repair_service_client::RepairServiceClient::new(channel(
                self.repair.url(),
            )),
            logistics:
                aftersales_proto::logistics::logistics_service_client::LogisticsServiceClient::new(
                    channel(self.logistics.url()),
                ),
            notification:
                aftersales_proto::notification::notification_service_client::NotificationServiceClient::new(
                    channel(self.notification.url()),
                ),
        }
    }

    /// Emails received whose decoded text contains `needle`.
    pub fn emails_containing(&self, needle: &str) -> usize {
        self.smtp
            .messages()
            .iter()
            .filter(|m| readable(m).contains(needle))
            .count()
    }
}

#[derive(Debug, Clone)]
pub struct Clients {
    pub warranty: aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient<
        tonic::transport::Channel,
    >,
    pub repair: aftersales_proto::repair::repair_service_client::RepairServiceClient<
        tonic::transport::Channel,
    >,
    pub logistics: aftersales_proto::logistics::logistics_service_client::LogisticsServiceClient<
        tonic::transport::Channel,
    >,
    pub notification:
        aftersales_proto::notification::notification_service_client::NotificationServiceClient<
            tonic::transport::Channel,
        >,
}

pub use aftersales_testkit::smtp::readable;

/// A valid IMEI from a number.
pub fn imei(n: u64) -> String {
    let body = format!(
        "{:014}",
        35_100_000_000_000 + u64::from(std::process::id()) * 1000 + n
    );
    let luhn = |s: &str| {
        let sum: u32 = s
            .chars()
            .rev()
            .enumerate()
            .map(|(i, c)| {
                let d = c.to_digit(10).unwrap();
                if i % 2 == 1 {
                    if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
                } else {
                    d
                }
            })
            .sum();
        sum.is_multiple_of(10)
    };
    let check = (0..10).find(|d| luhn(&format!("{body}{d}"))).unwrap();
    format!("{body}{check}")
}
