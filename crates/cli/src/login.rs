//! Signing the tool in: `aftersales login` at the identity provider (a staff
//! password, with an authenticator code for operators, or a customer's one-time
//! code), the tokens kept in the user's config directory readable by them only,
//! renewed with the refresh token when the access token runs out, and revoked
//! by `aftersales logout`.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The grant type of a customer's one-time code at the identity provider.
const ONE_TIME_CODE_GRANT: &str = "urn:aftersales:params:oauth:grant-type:one-time-code";
/// Renewed this long before it runs out, so a call never carries a dying token.
const RENEW_BEFORE_SECS: u64 = 60;

#[derive(Debug, clap::Args)]
pub struct Login {
    /// A staff account's username (password sign-in).
    #[arg(long, conflicts_with_all = ["email", "phone"])]
    username: Option<String>,
    /// The password; asked for when left out.
    #[arg(
        long,
        env = "AFTERSALES_PASSWORD",
        hide_env_values = true,
        requires = "username"
    )]
    password: Option<String>,
    /// The authenticator app's current code (operators).
    #[arg(long, requires = "username")]
    totp: Option<String>,
    /// A customer's registered email: a one-time code is sent there.
    #[arg(long, conflicts_with = "phone")]
    email: Option<String>,
    /// A customer's registered phone number: a one-time code is sent there.
    #[arg(long)]
    phone: Option<String>,
    /// The one-time code already received; without it one is sent and asked for.
    #[arg(long)]
    code: Option<String>,
}

/// Where the tokens are kept, and which provider gave them.
#[derive(Debug, Serialize, Deserialize)]
struct Credentials {
    issuer: String,
    access_token: String,
    refresh_token: Option<String>,
    /// Unix seconds.
    expires_at: u64,
}

#[derive(Debug, Deserialize)]
struct Granted {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: u64,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The user's config directory for the tool.
pub fn config_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    var("AFTERSALES_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| var("XDG_CONFIG_HOME").map(|d| PathBuf::from(d).join("aftersales")))
        .or_else(|| var("HOME").map(|d| PathBuf::from(d).join(".config").join("aftersales")))
}

fn credentials_path() -> Result<PathBuf, String> {
    config_dir()
        .map(|d| d.join("credentials.json"))
        .ok_or_else(|| "no config directory: set AFTERSALES_CONFIG_DIR or HOME".to_owned())
}

fn load() -> Option<Credentials> {
    let text = std::fs::read_to_string(credentials_path().ok()?).ok()?;
    serde_json::from_str(&text).ok()
}

/// Written readable by the user only (0600, in a 0700 directory), replaced whole.
fn save(credentials: &Credentials) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let path = credentials_path()?;
    let dir = path.parent().ok_or("no config directory")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let partial = path.with_extension("json.partial");
    let _ = std::fs::remove_file(&partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    let json = serde_json::to_vec_pretty(credentials).map_err(|e| e.to_string())?;
    file.write_all(&json)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    std::fs::rename(&partial, &path).map_err(|e| format!("{}: {e}", path.display()))
}

async fn post(
    issuer: &str,
    path: &str,
    form: &[(&str, &str)],
) -> Result<reqwest::Response, String> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?
        .post(format!("{issuer}{path}"))
        .form(form)
        .send()
        .await
        .map_err(|e| format!("cannot reach the identity provider at {issuer}: {e}"))
}

/// A staff member's access token by password (and the authenticator's code,
/// for those who have one), not kept: for tools that act as several people at once.
pub async fn password_token(
    issuer: &str,
    username: &str,
    password: &str,
    totp: &str,
) -> Result<String, String> {
    let form = [
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
        ("totp", totp),
    ];
    grant(issuer, &form)
        .await
        .map(|credentials| credentials.access_token)
        .map_err(|e| format!("{username}: {e}"))
}

/// The provider's answer to a token request, or a sentence saying why not.
async fn grant(issuer: &str, form: &[(&str, &str)]) -> Result<Credentials, String> {
    let response = post(issuer, "/token", form).await?;
    let status = response.status();
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        let wait = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("a few");
        return Err(format!("too many attempts; try again in {wait} seconds"));
    }
    if !status.is_success() {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let reason = body["error_description"]
            .as_str()
            .or(body["error"].as_str())
            .unwrap_or("refused");
        return Err(format!("sign-in refused: {reason}"));
    }
    let granted: Granted = response
        .json()
        .await
        .map_err(|e| format!("the identity provider answered oddly: {e}"))?;
    Ok(Credentials {
        issuer: issuer.to_owned(),
        access_token: granted.access_token,
        refresh_token: granted.refresh_token,
        expires_at: now() + granted.expires_in,
    })
}

fn ask(prompt: &str) -> Result<String, String> {
    eprint!("{prompt}: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let line = line.trim().to_owned();
    if line.is_empty() {
        Err(format!("no {prompt} given"))
    } else {
        Ok(line)
    }
}

pub async fn login(args: Login, issuer: &str) -> Result<(), String> {
    let credentials = if let Some(username) = &args.username {
        let password = match args.password {
            Some(p) => p,
            None => ask("password")?,
        };
        let totp = args.totp.unwrap_or_default();
        let form = [
            ("grant_type", "password"),
            ("username", username.as_str()),
            ("password", password.as_str()),
            ("totp", totp.as_str()),
        ];
        grant(issuer, &form).await.map_err(|e| {
            if totp.is_empty() {
                format!("{e} (operators also give --totp)")
            } else {
                e
            }
        })?
    } else if let Some(address) = args.email.as_ref().or(args.phone.as_ref()) {
        let code = match args.code {
            Some(code) => code,
            None => {
                let sent = post(issuer, "/one-time-code", &[("address", address)]).await?;
                match sent.status() {
                    s if s.is_success() => {}
                    reqwest::StatusCode::TOO_MANY_REQUESTS => {
                        return Err("too many codes asked for; try again later".into());
                    }
                    s => return Err(format!("the code could not be sent ({s})")),
                }
                eprintln!(
                    "a code is on its way to {address} if it is registered; it works for 10 minutes"
                );
                ask("code")?
            }
        };
        let form = [
            ("grant_type", ONE_TIME_CODE_GRANT),
            ("address", address.as_str()),
            ("code", code.as_str()),
        ];
        grant(issuer, &form).await?
    } else {
        return Err("give --username (staff) or --email / --phone (customers)".into());
    };
    save(&credentials)?;
    println!("signed in; {}", describe(&credentials.access_token));
    Ok(())
}

/// Ends the session at the provider and forgets the tokens.
pub async fn logout() -> Result<(), String> {
    let Some(credentials) = load() else {
        println!("not signed in");
        return Ok(());
    };
    if let Some(refresh) = &credentials.refresh_token {
        let revoked = post(&credentials.issuer, "/revoke", &[("token", refresh)]).await?;
        if !revoked.status().is_success() {
            return Err(format!(
                "the identity provider refused: {}",
                revoked.status()
            ));
        }
    }
    let path = credentials_path()?;
    std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("signed out");
    Ok(())
}

pub fn whoami() -> Result<(), String> {
    let credentials = load().ok_or("not signed in; `aftersales login`")?;
    println!("{}", describe(&credentials.access_token));
    Ok(())
}

/// Who a token names and until when, read from its claims (the services check
/// the signature; this only says what the tool holds).
fn describe(token: &str) -> String {
    use base64::Engine as _;
    let claims: serde_json::Value = token
        .split('.')
        .nth(1)
        .and_then(|c| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .ok()
        })
        .and_then(|c| serde_json::from_slice(&c).ok())
        .unwrap_or_default();
    let until = claims["exp"]
        .as_i64()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or_else(|| "?".to_owned(), |t| t.to_rfc3339());
    format!(
        "{} as {} (token until {until}, renewed as needed)",
        claims["sub"].as_str().unwrap_or("?"),
        claims["aftersales_role"].as_str().unwrap_or("?"),
    )
}

/// The signed-in user's access token, renewed first if it runs out within a
/// minute (the new refresh token is kept). `None` if not signed in.
pub async fn current_token() -> Result<Option<String>, String> {
    let Some(credentials) = load() else {
        return Ok(None);
    };
    if credentials.expires_at > now() + RENEW_BEFORE_SECS {
        return Ok(Some(credentials.access_token));
    }
    let Some(refresh) = &credentials.refresh_token else {
        return Err("the sign-in has expired; `aftersales login` again".into());
    };
    let mut renewed = grant(
        &credentials.issuer,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await
    .map_err(|e| format!("{e}; `aftersales login` again"))?;
    renewed.refresh_token = renewed.refresh_token.or(credentials.refresh_token);
    save(&renewed)?;
    Ok(Some(renewed.access_token))
}
