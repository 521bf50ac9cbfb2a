//! A throwaway key service speaking the AWS KMS API: moto's server (PyPI
//! `moto[server]`, the emulator LocalStack builds on), with IAM enforced after
//! setup, so every call is checked against its SigV4 signature and the
//! caller's policy. Setup makes an IAM user allowed `kms:*`, its access key,
//! and one symmetric key.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{TestkitError, find_on_path, free_port, process, read_log_tail};

const INSTALL_HINT: &str = "pip install 'moto[server]' (scripts/test installs it)";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The unsigned calls setup makes (user, access key, policy, key); every call
/// after them must be signed by a known access key.
const SETUP_CALLS: &str = "4";
const SETUP: &str = r#"
import json, sys, boto3
endpoint = sys.argv[1]
iam = boto3.client("iam", endpoint_url=endpoint, region_name="eu-central-1")
iam.create_user(UserName="aftersales")
access = iam.create_access_key(UserName="aftersales")["AccessKey"]
iam.put_user_policy(UserName="aftersales", PolicyName="kms", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}],
}))
kms = boto3.client("kms", endpoint_url=endpoint, region_name="eu-central-1")
key = kms.create_key(Description="aftersales key-encryption key")["KeyMetadata"]
print(json.dumps({"arn": key["Arn"], "id": access["AccessKeyId"], "secret": access["SecretAccessKey"]}))
"#;

/// A running KMS with one key and one user allowed to use it. Dropping it
/// stops the server.
#[derive(Debug)]
pub struct KmsServer {
    child: Option<Child>,
    port: u16,
    key_arn: String,
    access_key_id: String,
    secret_access_key: String,
    _dir: tempfile::TempDir,
}

impl KmsServer {
    pub fn start() -> Result<Self, TestkitError> {
        let server = find_on_path("moto_server").ok_or(TestkitError::MissingBinary {
            binary: "moto_server",
            searched: "PATH".into(),
            install: INSTALL_HINT,
        })?;
        let dir = tempfile::Builder::new()
            .prefix("aftersales-kms-")
            .tempdir()
            .map_err(TestkitError::io("creating the KMS directory"))?;
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            let log_path = dir.path().join(format!("kms-{port}.log"));
            let log = std::fs::File::create(&log_path)
                .map_err(TestkitError::io("creating the KMS log"))?;
            let mut command = Command::new(&server);
            command
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("INITIAL_NO_AUTH_ACTION_COUNT", SETUP_CALLS)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log);
            let mut child = process::spawn(command, libc::SIGKILL)
                .map_err(TestkitError::io("starting moto_server"))?;
            match wait_ready(&mut child, port, &log_path).and_then(|()| set_up(port)) {
                Ok((key_arn, access_key_id, secret_access_key)) => {
                    process::own(child.id(), libc::SIGTERM, dir.path().to_path_buf());
                    return Ok(Self {
                        child: Some(child),
                        port,
                        key_arn,
                        access_key_id,
                        secret_access_key,
                        _dir: dir,
                    });
                }
                Err(error) => {
                    process::stop(&mut child, libc::SIGKILL);
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or(TestkitError::NotReady {
            server: "moto_server",
            seconds: READY_TIMEOUT.as_secs(),
            log: String::new(),
        }))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The key's ARN (it names region `eu-central-1`).
    pub fn key_arn(&self) -> &str {
        &self.key_arn
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// Stops the server: the key service is now unreachable.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::stop(&mut child, libc::SIGKILL);
            process::disown(child.id());
        }
    }
}

impl Drop for KmsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_ready(child: &mut Child, port: u16, log: &std::path::Path) -> Result<(), TestkitError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(TestkitError::NotReady {
                server: "moto_server",
                seconds: 0,
                log: read_log_tail(log),
            });
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(TestkitError::NotReady {
                server: "moto_server",
                seconds: READY_TIMEOUT.as_secs(),
                log: read_log_tail(log),
            });
        }
        #[allow(clippy::disallowed_methods)] // blocking start-up, outside any runtime
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The user, its access key and the key, made with boto3 (installed with moto).
fn set_up(port: u16) -> Result<(String, String, String), TestkitError> {
    let python = find_on_path("python3").ok_or(TestkitError::MissingBinary {
        binary: "python3",
        searched: "PATH".into(),
        install: INSTALL_HINT,
    })?;
    let output = Command::new(python)
        .args(["-c", SETUP, &format!("http://127.0.0.1:{port}")])
        // Setup's calls are the unsigned ones the server allows.
        .env("AWS_ACCESS_KEY_ID", "setup")
        .env("AWS_SECRET_ACCESS_KEY", "setup")
        .output()
        .map_err(TestkitError::io("setting up the KMS"))?;
    let failed = |why: String| TestkitError::CommandFailed {
        command: "KMS setup (boto3)".into(),
        output: why,
    };
    if !output.status.success() {
        return Err(failed(String::from_utf8_lossy(&output.stderr).into_owned()));
    }
    let made: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| failed(format!("{e}: {}", String::from_utf8_lossy(&output.stdout))))?;
    let field = |name: &str| {
        made.get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| failed(format!("no {name} in {made}")))
    };
    Ok((field("arn")?, field("id")?, field("secret")?))
}
