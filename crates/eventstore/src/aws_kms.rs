//! A key-encryption key held in AWS KMS, or any service that speaks its API:
//! data keys are wrapped with `Encrypt` and unwrapped with `Decrypt`, every
//! call signed with SigV4, so the key-encryption key never leaves the KMS and
//! its use is in the KMS's own audit trail. Both calls name the key and an
//! encryption context, so a blob wrapped for another purpose or under another
//! key does not open.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;

use crate::keyring::{Kms, KmsFuture};
use crate::personal::KeyError;

/// How long one call may take before the key service counts as unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound to every wrapped key: unwrapping needs the same context.
const CONTEXT_KEY: &str = "aftersales";
const CONTEXT_VALUE: &str = "personal-data-key";

/// Credentials to sign calls with (an access key, and a session token when
/// they are temporary).
#[derive(Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl AwsCredentials {
    /// From `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, if set,
    /// `AWS_SESSION_TOKEN` (what a pod's or instance's role hands a process),
    /// as `env` gives them; `None` without both keys.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        Some(Self {
            access_key_id: var("AWS_ACCESS_KEY_ID")?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
            session_token: var("AWS_SESSION_TOKEN"),
        })
    }
}

/// A key in AWS KMS (a key id, ARN or alias), reached at the region's
/// endpoint or at `endpoint`.
pub struct AwsKms {
    id: String,
    key_id: String,
    region: String,
    endpoint: String,
    credentials: AwsCredentials,
    http: reqwest::Client,
}

impl std::fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKms")
            .field("id", &self.id)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl AwsKms {
    /// `region` may be empty when `key_id` is an ARN, which names it.
    pub fn new(
        key_id: &str,
        region: &str,
        endpoint: Option<&str>,
        credentials: AwsCredentials,
    ) -> Result<Self, KeyError> {
        let key_id = key_id.trim();
        if key_id.is_empty() || key_id.len() > 2048 {
            return Err(KeyError::Corrupt(
                "an AWS KMS key id is 1 to 2048 bytes".into(),
            ));
        }
        let region = if region.is_empty() {
            region_of_arn(key_id).ok_or_else(|| {
                KeyError::Corrupt(format!(
                    "{key_id}: not an ARN, so the region must be given (AWS_REGION)"
                ))
            })?
        } else {
            region.to_owned()
        };
        let endpoint = endpoint.map_or_else(
            || format!("https://kms.{region}.amazonaws.com/"),
            |e| format!("{}/", e.trim_end_matches('/')),
        );
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(KeyError::Corrupt(format!(
                "{endpoint}: an AWS KMS endpoint is an http(s) URL"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| KeyError::Unavailable(format!("AWS KMS client: {e}")))?;
        Ok(Self {
            id: format!("aws-kms:{key_id}"),
            key_id: key_id.to_owned(),
            region,
            endpoint,
            credentials,
            http,
        })
    }

    /// One KMS action, signed; its JSON answer, or why not.
    async fn call(
        &self,
        action: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, KeyError> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};

        let body = serde_json::to_vec(body)
            .map_err(|e| KeyError::Corrupt(format!("AWS KMS request: {e}")))?;
        let target = format!("TrentService.{action}");
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let identity = aws_credential_types::Credentials::new(
            &self.credentials.access_key_id,
            &self.credentials.secret_access_key,
            self.credentials.session_token.clone(),
            None,
            "aftersales",
        )
        .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("kms")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| KeyError::Unavailable(format!("AWS KMS signing: {e}")))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            &self.endpoint,
            headers.iter().copied(),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| KeyError::Unavailable(format!("AWS KMS signing: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| KeyError::Unavailable(format!("AWS KMS signing: {e}")))?
            .into_parts();
        let mut request = self.http.post(&self.endpoint).body(body);
        for (name, value) in headers.iter().copied().chain(instructions.headers()) {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| KeyError::Unavailable(format!("AWS KMS {action}: {e}")))?;
        let status = response.status();
        let text = response
            .bytes()
            .await
            .map_err(|e| KeyError::Unavailable(format!("AWS KMS {action}: {status}: {e}")))?;
        let answer: Option<serde_json::Value> = serde_json::from_slice(&text).ok();
        if status.is_success() {
            return answer.ok_or_else(|| {
                KeyError::Unavailable(format!("AWS KMS {action}: an answer that is not JSON"))
            });
        }
        let said = format!(
            "AWS KMS {action}: {status} {}",
            refusal(answer.as_ref(), &String::from_utf8_lossy(&text))
        );
        let kind = answer
            .as_ref()
            .and_then(|a| a.get("__type"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        // `__type` may carry a namespace before `#`.
        let kind = kind.rsplit('#').next().unwrap_or(kind);
        Err(match kind {
            // The bytes, not the service: they were not wrapped by this key
            // under this context.
            "InvalidCiphertextException" | "IncorrectKeyException" => KeyError::Corrupt(said),
            // Throttled, down, the key disabled or not ours to use: nothing
            // can be wrapped or opened until that changes.
            _ => KeyError::Unavailable(said),
        })
    }

    fn blob(answer: &serde_json::Value, field: &str) -> Result<Vec<u8>, KeyError> {
        answer
            .get(field)
            .and_then(serde_json::Value::as_str)
            .and_then(|b| BASE64.decode(b).ok())
            .ok_or_else(|| KeyError::Corrupt(format!("AWS KMS answered without {field}")))
    }
}

/// What a refusal says: KMS's JSON `__type` and message, or the `<Code>` of
/// an XML error from the endpoint in front of it.
fn refusal(answer: Option<&serde_json::Value>, text: &str) -> String {
    let field = |name: &str| {
        answer
            .and_then(|a| a.get(name))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    if let Some(kind) = field("__type") {
        let message = field("message").or_else(|| field("Message"));
        return format!("{kind}: {}", message.unwrap_or_default());
    }
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find('<')? + start;
        Some(text[start..end].to_owned())
    };
    match (tag("Code"), tag("Message")) {
        (Some(code), message) => format!("{code}: {}", message.unwrap_or_default()),
        (None, _) => text.chars().take(200).collect(),
    }
}

/// The region an ARN names: `arn:aws:kms:<region>:<account>:key/<id>`.
fn region_of_arn(key_id: &str) -> Option<String> {
    let mut parts = key_id.split(':');
    (parts.next() == Some("arn"))
        .then(|| parts.nth(2))
        .flatten()
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
}

impl Kms for AwsKms {
    fn id(&self) -> &str {
        &self.id
    }

    fn wrap<'a>(&'a self, key: &'a [u8]) -> KmsFuture<'a, Vec<u8>> {
        Box::pin(async move {
            let answer = self
                .call(
                    "Encrypt",
                    &json!({
                        "KeyId": self.key_id,
                        "Plaintext": BASE64.encode(key),
                        "EncryptionContext": { CONTEXT_KEY: CONTEXT_VALUE },
                    }),
                )
                .await?;
            Self::blob(&answer, "CiphertextBlob")
        })
    }

    fn unwrap<'a>(&'a self, wrapped: &'a [u8]) -> KmsFuture<'a, Vec<u8>> {
        Box::pin(async move {
            let answer = self
                .call(
                    "Decrypt",
                    &json!({
                        "KeyId": self.key_id,
                        "CiphertextBlob": BASE64.encode(wrapped),
                        "EncryptionContext": { CONTEXT_KEY: CONTEXT_VALUE },
                    }),
                )
                .await?;
            Self::blob(&answer, "Plaintext")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI".into(),
            session_token: None,
        }
    }

    #[test]
    fn the_region_comes_from_the_arn_or_must_be_given() {
        let arn = "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let kms = AwsKms::new(arn, "", None, credentials()).unwrap();
        assert_eq!(kms.region, "eu-central-1");
        assert_eq!(kms.endpoint, "https://kms.eu-central-1.amazonaws.com/");
        assert_eq!(kms.id(), format!("aws-kms:{arn}"));
        assert!(AwsKms::new("alias/aftersales", "", None, credentials()).is_err());
        let alias = AwsKms::new(
            "alias/aftersales",
            "ap-south-1",
            Some("http://127.0.0.1:4566"),
            credentials(),
        )
        .unwrap();
        assert_eq!(alias.endpoint, "http://127.0.0.1:4566/");
        assert!(AwsKms::new("", "ap-south-1", None, credentials()).is_err());
        assert!(AwsKms::new("k", "ap-south-1", Some("ftp://x"), credentials()).is_err());
    }

    #[test]
    fn credentials_never_show_their_secret() {
        let shown = format!("{:?}", credentials());
        assert!(
            shown.contains("AKIDEXAMPLE") && !shown.contains("wJalrXUtnFEMI"),
            "{shown}"
        );
    }
}
