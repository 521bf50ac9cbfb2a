//! Real, throwaway servers for tests: PostgreSQL, `nats-server` with JetStream, and
//! an SMTP listener.
//!
//! Each server runs from the binaries installed on the machine, on a free loopback
//! port, in its own temporary directory, and is removed when dropped. Tests in one
//! binary normally share one server ([`shared_postgres`]) and give each test its own
//! database, so a suite pays for `initdb` once.
//!
//! A missing binary is an error that names the package to install; `scripts/test`
//! installs them on a fresh machine.
//!
//! - [`postgres`]: `initdb` plus `postgres`, dropping root privileges when needed.
//! - [`nats`]: `nats-server -js`.
//! - [`smtp`]: `aiosmtpd` writing what it receives into a Maildir.
//! - [`kms`]: moto's AWS KMS server, with IAM and signatures enforced.
//! - [`pki`]: a test CA and a `localhost` certificate, for TLS.
//! - [`process`]: the spawner that ties every child's life to the test process.
//! - [`browser`]: headless Chromium over WebDriver, for the web pages.

pub mod browser;
pub mod kms;
pub mod nats;
pub mod pki;
pub mod postgres;
mod process;
pub mod proxy;
pub mod smtp;

pub use kms::KmsServer;
pub use nats::{NatsOptions, NatsServer};
pub use postgres::{DatabaseRoles, PostgresOptions, PostgresServer, shared_postgres};
pub use proxy::TcpProxy;
pub use smtp::SmtpServer;

use std::path::PathBuf;

/// `aftersales up` (the binary at `aftersales`) with every listener on a free
/// loopback port and its data in `data`, its standard output piped (where it
/// says what listens where); more arguments may follow.
pub fn up_on_free_ports(
    aftersales: &std::path::Path,
    data: &std::path::Path,
) -> std::process::Command {
    let mut command = std::process::Command::new(aftersales);
    command.arg("up");
    for listener in [
        "warranty",
        "repair",
        "logistics",
        "notification",
        "parts",
        "support",
        "metrics",
        "issuer",
        "gateway",
    ] {
        command.args([&format!("--{listener}-listen"), "127.0.0.1:0"]);
    }
    command
        .arg("--data-dir")
        .arg(data)
        .stdout(std::process::Stdio::piped());
    command
}

/// The day a test opens a walk-in repair for: empty (the service's today) or,
/// on a Sunday, tomorrow, since the centers the tests use open Monday to
/// Saturday. A booked day does not stop the device being checked in at once.
pub fn walk_in_day() -> String {
    use chrono::Datelike as _;
    #[allow(clippy::disallowed_methods)] // the services under test read the real clock
    let today = chrono::Utc::now().date_naive();
    if today.weekday() == chrono::Weekday::Sun {
        today.succ_opt().map(|d| d.to_string()).unwrap_or_default()
    } else {
        String::new()
    }
}

/// The resident memory (`VmRSS`) of process `pid` in MiB; 0 once it has gone.
pub fn resident_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Why a test server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// A server binary is not installed.
    #[error("`{binary}` not found ({searched}); install it with: {install}")]
    MissingBinary {
        binary: &'static str,
        searched: String,
        install: &'static str,
    },
    /// A helper command ran but failed.
    #[error("`{command}` failed: {output}")]
    CommandFailed { command: String, output: String },
    /// The server did not accept connections in time.
    #[error("{server} did not become ready within {seconds}s; log: {log}")]
    NotReady {
        server: &'static str,
        seconds: u64,
        log: String,
    },
    #[error("i/o error while {action}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
}

impl TestkitError {
    fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let action = action.into();
        move |source| Self::Io { action, source }
    }
}

/// Finds `binary` in `PATH`.
fn find_on_path(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
}

/// A free TCP port on 127.0.0.1. The port is released before returning, so a server
/// started on it may still lose a race; callers retry on a failed start.
pub fn free_port() -> Result<u16, TestkitError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(TestkitError::io("binding a probe socket"))?;
    let port = listener
        .local_addr()
        .map_err(TestkitError::io("reading the probe socket address"))?
        .port();
    Ok(port)
}

fn read_log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(2000);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

/// Polls `f` every 50 ms until `ok` holds of its value, and returns that value.
/// After 20 s it fails the test with the last value it saw, so a failure says what
/// the system did instead.
pub async fn eventually<T: std::fmt::Debug, F: Future<Output = T>>(
    mut f: impl FnMut() -> F,
    ok: impl Fn(&T) -> bool,
) -> T {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let value = f().await;
        if ok(&value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() <= deadline,
            "not true within 20 s; last seen: {value:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
