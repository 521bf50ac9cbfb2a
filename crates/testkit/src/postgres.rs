//! A throwaway PostgreSQL cluster: `initdb` into a temporary directory, then
//! `postgres` on a free loopback port.
//!
//! PostgreSQL refuses to run as root, and CI runs as root, so as root both run as the
//! `postgres` system user that Debian's package creates.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{TestkitError, find_on_path, free_port, process, read_log_tail};

const INSTALL_HINT: &str = "apt-get install -y postgresql (or run scripts/test, which does)";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How the cluster trades durability for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostgresOptions {
    /// `fsync=off`: for functional tests, where a crash of the test machine loses
    /// nothing of value.
    Fast,
    /// PostgreSQL's durable defaults (`fsync=on`, `synchronous_commit=on`): for
    /// benchmarks, so figures mean what they would in production.
    Durable,
}

/// A running PostgreSQL cluster. Dropping it stops the server and removes its files.
#[derive(Debug)]
pub struct PostgresServer {
    child: Child,
    port: u16,
    bin_dir: PathBuf,
    run_as: Option<(u32, u32)>,
    dir: tempfile::TempDir,
}

/// One cluster for the whole test binary, started on first use with
/// [`PostgresOptions::Fast`]. Give each test its own database with
/// [`PostgresServer::create_database`].
///
/// # Panics
/// If the server cannot be started; the message says what to install.
pub fn shared_postgres() -> &'static PostgresServer {
    static SHARED: OnceLock<PostgresServer> = OnceLock::new();
    SHARED.get_or_init(|| match PostgresServer::start(PostgresOptions::Fast) {
        Ok(server) => server,
        Err(error) => panic!("cannot start the test PostgreSQL: {error}"),
    })
}

impl PostgresServer {
    /// Initialises and starts a new cluster.
    pub fn start(options: PostgresOptions) -> Result<Self, TestkitError> {
        let bin_dir = find_bin_dir()?;
        let run_as = postgres_user_if_root()?;
        let dir = tempfile::Builder::new()
            .prefix("aftersales-pg-")
            .tempdir()
            .map_err(TestkitError::io("creating the PostgreSQL directory"))?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(TestkitError::io("restricting the PostgreSQL directory"))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).map_err(
                TestkitError::io("handing the directory to the postgres user"),
            )?;
        }
        let data = dir.path().join("data");

        let mut initdb = Command::new(bin_dir.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"])
            .current_dir(dir.path());
        run_checked(as_user(&mut initdb, run_as))?;

        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            match start_postmaster(&bin_dir, dir.path(), &data, port, options, run_as) {
                Ok(child) => {
                    process::own(child.id(), libc::SIGQUIT, dir.path().to_path_buf());
                    return Ok(Self {
                        child,
                        port,
                        bin_dir,
                        run_as,
                        dir,
                    });
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or(TestkitError::NotReady {
            server: "postgres",
            seconds: READY_TIMEOUT.as_secs(),
            log: String::new(),
        }))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `database` as the `postgres` superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a fresh, uniquely named database and returns its URL.
    pub fn create_database(&self) -> Result<String, TestkitError> {
        let name = unique_name();
        self.createdb(&name, "postgres")?;
        Ok(self.url(&name))
    }

    /// A fresh database set up as a deployment sets one up: owned by a role that
    /// runs the migrations, and a second role the service runs as, which is not
    /// the owner and not a superuser.
    pub fn create_database_with_roles(&self) -> Result<DatabaseRoles, TestkitError> {
        let name = unique_name();
        let (owner, service) = (format!("{name}_owner"), format!("{name}_service"));
        self.psql(
            "postgres",
            &format!("CREATE ROLE {owner} LOGIN; CREATE ROLE {service} LOGIN;"),
        )?;
        self.createdb(&name, &owner)?;
        self.psql(&name, &format!("REVOKE ALL ON DATABASE {name} FROM PUBLIC; GRANT CONNECT ON DATABASE {name} TO {service};"))?;
        let url = |role: &str| format!("postgres://{role}@127.0.0.1:{}/{name}", self.port);
        Ok(DatabaseRoles {
            owner_url: url(&owner),
            service_url: url(&service),
            superuser_url: self.url(&name),
        })
    }

    fn createdb(&self, name: &str, owner: &str) -> Result<(), TestkitError> {
        let mut createdb = Command::new(self.bin_dir.join("createdb"));
        createdb
            .args(["-h", "127.0.0.1", "-U", "postgres", "-O", owner, "-p"])
            .arg(self.port.to_string())
            .arg(name)
            .current_dir(self.dir.path());
        run_checked(as_user(&mut createdb, self.run_as))
    }

    fn psql(&self, database: &str, sql: &str) -> Result<(), TestkitError> {
        let mut psql = Command::new(self.bin_dir.join("psql"));
        psql.args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .args(["-p", &self.port.to_string(), "-d", database, "-c", sql])
        .current_dir(self.dir.path());
        run_checked(as_user(&mut psql, self.run_as))
    }
}

/// The URLs of a database made by [`PostgresServer::create_database_with_roles`].
#[derive(Debug, Clone)]
pub struct DatabaseRoles {
    /// The database's owner: runs the migrations (`DATABASE_OWNER_URL`).
    pub owner_url: String,
    /// The role the service runs as (`DATABASE_URL`).
    pub service_url: String,
    /// The cluster's superuser, for a test that plays someone who has it.
    pub superuser_url: String,
}

fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        process::stop(&mut self.child, libc::SIGQUIT);
        process::disown(self.child.id());
    }
}

fn start_postmaster(
    bin_dir: &Path,
    dir: &Path,
    data: &Path,
    port: u16,
    options: PostgresOptions,
    run_as: Option<(u32, u32)>,
) -> Result<Child, TestkitError> {
    let log_path = dir.join(format!("postgres-{port}.log"));
    let log = std::fs::File::create(&log_path).map_err(TestkitError::io("creating the log"))?;
    let log_err = log
        .try_clone()
        .map_err(TestkitError::io("cloning the log handle"))?;
    let durable = options == PostgresOptions::Durable;
    let on_off = |on: bool| if on { "on" } else { "off" };
    let mut postgres = Command::new(bin_dir.join("postgres"));
    postgres
        .arg("-D")
        .arg(data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "max_connections=300"])
        .args(["-c", "shared_buffers=256MB"])
        .arg("-c")
        .arg(format!("fsync={}", on_off(durable)))
        .arg("-c")
        .arg(format!("synchronous_commit={}", on_off(durable)))
        .arg("-c")
        .arg(format!("full_page_writes={}", on_off(durable)));
    // To see which statements cost a benchmark's server most.
    if std::env::var_os("AFTERSALES_PG_STAT_STATEMENTS").is_some() {
        postgres.args(["-c", "shared_preload_libraries=pg_stat_statements"]);
    }
    postgres
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    as_user(&mut postgres, run_as);
    let mut child =
        process::spawn(postgres, libc::SIGQUIT).map_err(TestkitError::io("starting postgres"))?;

    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(TestkitError::NotReady {
                server: "postgres",
                seconds: 0,
                log: read_log_tail(&log_path),
            });
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains("ready to accept connections")
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            return Ok(child);
        }
        if Instant::now() > deadline {
            process::stop(&mut child, libc::SIGQUIT);
            return Err(TestkitError::NotReady {
                server: "postgres",
                seconds: READY_TIMEOUT.as_secs(),
                log: read_log_tail(&log_path),
            });
        }
        #[allow(clippy::disallowed_methods)] // blocking start-up, outside any runtime
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn as_user(command: &mut Command, run_as: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = run_as {
        command.uid(uid).gid(gid).env("HOME", "/tmp");
    }
    command
}

fn run_checked(command: &mut Command) -> Result<(), TestkitError> {
    let rendered = format!("{command:?}");
    let output = command
        .output()
        .map_err(TestkitError::io(format!("running {rendered}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(TestkitError::CommandFailed {
        command: rendered,
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

/// The directory holding `initdb` and `postgres`: `AFTERSALES_PG_BINDIR`, then
/// `pg_config --bindir`, then `PATH`, then the newest `/usr/lib/postgresql/*/bin`.
fn find_bin_dir() -> Result<PathBuf, TestkitError> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os("AFTERSALES_PG_BINDIR").map(PathBuf::from)
        && has_server(&dir)
    {
        return Ok(dir);
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if output.status.success() && has_server(&dir) {
            return Ok(dir);
        }
    }
    if let Some(dir) = find_on_path("initdb").and_then(|p| p.parent().map(Path::to_path_buf))
        && has_server(&dir)
    {
        return Ok(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, dir)| dir)
        .ok_or(TestkitError::MissingBinary {
            binary: "initdb",
            searched: "AFTERSALES_PG_BINDIR, pg_config --bindir, PATH, /usr/lib/postgresql/*/bin"
                .into(),
            install: INSTALL_HINT,
        })
}

/// When running as root, the uid and gid of the `postgres` user.
fn postgres_user_if_root() -> Result<Option<(u32, u32)>, TestkitError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Ok(None);
    }
    let passwd =
        std::fs::read_to_string("/etc/passwd").map_err(TestkitError::io("reading /etc/passwd"))?;
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            if fields.next()? != "postgres" {
                return None;
            }
            let uid = fields.nth(1)?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some(Some((uid, gid)))
        })
        .ok_or(TestkitError::MissingBinary {
            binary: "postgres (system user)",
            searched: "/etc/passwd; PostgreSQL will not run as root".into(),
            install: INSTALL_HINT,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_a_cluster_and_creates_databases() {
        let server = PostgresServer::start(PostgresOptions::Fast).unwrap();
        let first = server.create_database().unwrap();
        let second = server.create_database().unwrap();
        assert_ne!(first, second);
        assert!(std::net::TcpStream::connect(("127.0.0.1", server.port())).is_ok());
        let dir = server.dir.path().to_path_buf();
        drop(server);
        assert!(!dir.exists(), "the cluster's directory is removed on drop");
    }
}
