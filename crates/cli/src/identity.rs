//! `up`'s identity provider: where it keeps its data, how its customers' codes
//! reach them (the notification service, called as a service), the services'
//! own clients, and the demo accounts.

use std::path::Path;
use std::sync::OnceLock;

use aftersales_auth::{ClientCredentials, Principal, Role, ServiceToken};
use aftersales_identity::codes::SendFuture;
use aftersales_identity::{CodeSender, NewAccount, Provider};
use aftersales_proto::notification as npb;
use aftersales_proto::notification::notification_service_client::NotificationServiceClient;
use aftersales_runtime::telemetry::{TracedChannel, traced};

pub const AUDIENCE: &str = "aftersales";
/// The provider's own client, for calling the notification service.
const IDENTITY_CLIENT: &str = "aftersales-identity";

/// Sends codes through the notification service once it is up.
#[derive(Debug, Default)]
pub struct NotificationCodes {
    client: OnceLock<NotificationServiceClient<TracedChannel>>,
}

impl CodeSender for NotificationCodes {
    fn send<'a>(&'a self, address: &'a str, code: &'a str, language: &'a str) -> SendFuture<'a> {
        Box::pin(async move {
            let mut client = self
                .client
                .get()
                .cloned()
                .ok_or("the notification service is starting")?;
            match client
                .send_sign_in_code(npb::SignInCodeRequest {
                    address: address.to_owned(),
                    code: code.to_owned(),
                    language: language.to_owned(),
                })
                .await
            {
                Ok(sent) => Ok(Some(sent.into_inner().customer_id)),
                Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
                Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
            }
        })
    }
}

/// A random secret for a client registered in this process.
fn secret() -> Result<String, String> {
    aftersales_identity::store::random_token().map_err(|e| e.to_string())
}

/// Registers `client_id` as a service at the provider; its credentials.
pub fn service_client(provider: &Provider, client_id: &str) -> Result<ClientCredentials, String> {
    let secret = secret()?;
    provider.issuer().register_client(
        client_id,
        &secret,
        Principal::new(client_id, Role::Service),
        AUDIENCE,
    );
    Ok(ClientCredentials {
        issuer: provider.url().to_owned(),
        client_id: client_id.to_owned(),
        client_secret: secret,
    })
}

impl NotificationCodes {
    /// Points the sender at the notification service, calling as the provider's
    /// own service client.
    pub fn connect(
        &self,
        provider: &Provider,
        notification: std::net::SocketAddr,
    ) -> Result<(), String> {
        let credentials = service_client(provider, IDENTITY_CLIENT)?;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{notification}"))
            .map_err(|e| e.to_string())?
            .connect_lazy();
        let client =
            NotificationServiceClient::new(traced(channel, Some(ServiceToken::start(credentials))));
        let _ = self.client.set(client);
        Ok(())
    }
}

/// One demo account as printed.
struct Demo {
    role: Role,
    username: &'static str,
    centers: &'static [&'static str],
    totp: bool,
}

const DEMO: [Demo; 6] = [
    Demo {
        role: Role::Technician,
        username: "tech-berlin",
        centers: &["sc-berlin-01"],
        totp: false,
    },
    Demo {
        // The central repair depot: mail-in repairs, and every center's.
        role: Role::Technician,
        username: "tech-depot",
        centers: &[aftersales_runtime::auth::ALL_CENTERS],
        totp: false,
    },
    Demo {
        role: Role::CenterManager,
        username: "manager-berlin",
        centers: &["sc-berlin-01"],
        totp: false,
    },
    Demo {
        role: Role::SupportAgent,
        username: "agent-de-anna",
        centers: &[],
        totp: false,
    },
    Demo {
        role: Role::Operator,
        username: "ops",
        centers: &[],
        totp: true,
    },
    Demo {
        role: Role::Auditor,
        username: "auditor",
        centers: &[],
        totp: false,
    },
];

/// Creates the demo staff accounts once, keeping their passwords (and the
/// operator's authenticator secret) in `demo-accounts.txt` under `data_dir`,
/// readable by the user only; prints them every time.
pub async fn demo_accounts(provider: &Provider, data_dir: &Path) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = data_dir.join("demo-accounts.txt");
    if !path.exists() {
        let mut lines = String::from("# role username password [authenticator secret]\n");
        for demo in &DEMO {
            // Letters and digits only: a leading `-` would read as a flag on the command line.
            let password = secret()?
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(20)
                .collect::<String>();
            let totp = provider
                .add_account(NewAccount {
                    username: demo.username.into(),
                    password: password.clone(),
                    principal: Principal {
                        centers: demo.centers.iter().map(|c| (*c).to_owned()).collect(),
                        ..Principal::new(demo.username, demo.role)
                    },
                    totp: demo.totp,
                })
                .await
                .map_err(|e| format!("demo account {}: {e}", demo.username))?;
            lines.push_str(&format!(
                "{} {} {password} {}\n",
                demo.role,
                demo.username,
                totp.unwrap_or_default()
            ));
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        file.write_all(lines.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("demo sign-in (also in {}):", path.display());
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [role, username, password, rest @ ..] = fields.as_slice() {
            let totp = rest.first().map_or_else(String::new, |secret| {
                format!(
                    " --totp <code>   (authenticator: {})",
                    aftersales_identity::secrets::totp_uri(secret, "Aftersales", username)
                )
            });
            println!(
                "  {role:<15} aftersales login --username {username} --password {password}{totp}"
            );
        }
    }
    println!(
        "  {:<15} aftersales login --email demo-lena@example.com   (a one-time code by email: needs --smtp-url)",
        "customer"
    );
    Ok(())
}
