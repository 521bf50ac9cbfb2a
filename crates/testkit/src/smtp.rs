//! A throwaway SMTP server: `aiosmtpd` (PyPI) storing every message it accepts
//! into a Maildir in a temporary directory.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{TestkitError, find_on_path, free_port, process, read_log_tail};

const INSTALL_HINT: &str = "pip install aiosmtpd (scripts/test installs it)";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running SMTP listener. Dropping it stops the server and removes its mail.
#[derive(Debug)]
pub struct SmtpServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Starts `python3 -m aiosmtpd` on a free loopback port.
    pub fn start() -> Result<Self, TestkitError> {
        let python = find_on_path("python3").ok_or(TestkitError::MissingBinary {
            binary: "python3",
            searched: "PATH".into(),
            install: INSTALL_HINT,
        })?;
        let probe = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(TestkitError::io("running python3"))?;
        if !probe.success() {
            return Err(TestkitError::MissingBinary {
                binary: "aiosmtpd",
                searched: "python3 modules".into(),
                install: INSTALL_HINT,
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("aftersales-smtp-")
            .tempdir()
            .map_err(TestkitError::io("creating the SMTP directory"))?;
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            let log_path = dir.path().join(format!("smtp-{port}.log"));
            let log = std::fs::File::create(&log_path)
                .map_err(TestkitError::io("creating the SMTP log"))?;
            let mut command = Command::new(&python);
            command
                .args(["-m", "aiosmtpd", "-n", "-u", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(dir.path().join("maildir"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log);
            let mut child = process::spawn(command, libc::SIGKILL)
                .map_err(TestkitError::io("starting aiosmtpd"))?;
            match wait_ready(&mut child, port, &log_path) {
                Ok(()) => {
                    process::own(child.id(), libc::SIGTERM, dir.path().to_path_buf());
                    return Ok(Self {
                        child: Some(child),
                        port,
                        dir,
                    });
                }
                Err(error) => {
                    process::stop(&mut child, libc::SIGKILL);
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or(TestkitError::NotReady {
            server: "aiosmtpd",
            seconds: READY_TIMEOUT.as_secs(),
            log: String::new(),
        }))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:<port>`, plain text, for a client that must not ask for TLS.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, raw (headers and body), oldest first.
    pub fn messages(&self) -> Vec<String> {
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.dir.path().join("maildir").join(sub)) {
                files.extend(entries.filter_map(Result::ok).map(|e| e.path()));
            }
        }
        let mut messages: Vec<(std::time::SystemTime, String)> = files
            .into_iter()
            .filter_map(|path| {
                let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
                Some((modified, std::fs::read_to_string(&path).ok()?))
            })
            .collect();
        messages.sort_by_key(|(at, _)| *at);
        messages.into_iter().map(|(_, text)| text).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::stop(&mut child, libc::SIGTERM);
            process::disown(child.id());
        }
    }
}

/// Ready means the server greets with `220`.
fn wait_ready(child: &mut Child, port: u16, log: &std::path::Path) -> Result<(), TestkitError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(TestkitError::NotReady {
                server: "aiosmtpd",
                seconds: 0,
                log: read_log_tail(log),
            });
        }
        if let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut line = String::new();
            if BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("220") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(TestkitError::NotReady {
                server: "aiosmtpd",
                seconds: READY_TIMEOUT.as_secs(),
                log: read_log_tail(log),
            });
        }
        #[allow(clippy::disallowed_methods)] // blocking start-up, outside any runtime
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A received message with its quoted-printable parts decoded: what the reader
/// reads, for assertions on the text.
pub fn readable(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
