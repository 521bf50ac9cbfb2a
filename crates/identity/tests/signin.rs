//! Signing in over HTTP as people do, with tokens checked by the same verifier
//! the services use. Codes go to a stand-in sender here; the real path through
//! the notification service and an SMTP listener is the CLI's `up` test.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aftersales_auth::{Principal, Role, Verifier, VerifierSettings};
use aftersales_identity::codes::SendFuture;
use aftersales_identity::{CodeSender, NewAccount, Provider, Store, secrets};
use serde_json::Value;

const AUDIENCE: &str = "aftersales";
const ONE_TIME_CODE: &str = "urn:aftersales:params:oauth:grant-type:one-time-code";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// Knows one customer's address and keeps the codes it was asked to send.
#[derive(Debug, Default)]
struct Outbox {
    sent: Mutex<Vec<(String, String)>>,
}

impl CodeSender for Outbox {
    fn send<'a>(&'a self, address: &'a str, code: &'a str, _language: &'a str) -> SendFuture<'a> {
        self.sent
            .lock()
            .unwrap()
            .push((address.to_owned(), code.to_owned()));
        let customer = (address == "anna@example.com").then(|| "cust-anna".to_owned());
        Box::pin(async move { Ok(customer) })
    }
}

impl Outbox {
    fn last_code(&self) -> String {
        self.sent.lock().unwrap().last().unwrap().1.clone()
    }
}

struct Running {
    provider: Provider,
    outbox: Arc<Outbox>,
    verifier: Verifier,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(db: &str, listen: &str) -> Running {
    let store = Store::open(db).await.unwrap();
    let outbox = Arc::new(Outbox::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let provider = Provider::serve(
        listen.parse().unwrap(),
        store,
        AUDIENCE,
        outbox.clone(),
        async move {
            let _ = stopped.await;
        },
    )
    .await
    .unwrap();
    let mut settings = VerifierSettings::new(provider.url(), AUDIENCE);
    settings.refetch_interval = Duration::ZERO;
    Running {
        verifier: Verifier::new(settings).unwrap(),
        provider,
        outbox,
        http: reqwest::Client::new(),
        _stop: stop,
    }
}

impl Running {
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.provider.url()))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn password(&self, username: &str, password: &str, totp: &str) -> (u16, Value) {
        self.post(
            "/token",
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("totp", totp),
            ],
        )
        .await
    }

    async fn principal(&self, answer: &Value) -> Principal {
        self.verifier
            .verify(answer["access_token"].as_str().unwrap())
            .await
            .unwrap()
    }
}

fn technician() -> Principal {
    Principal {
        centers: vec!["sc-berlin-01".into()],
        ..Principal::new("tech-1", Role::Technician)
    }
}

async fn add(
    provider: &Provider,
    username: &str,
    principal: Principal,
    totp: bool,
) -> Option<String> {
    provider
        .add_account(NewAccount {
            username: username.into(),
            password: "a long enough password".into(),
            principal,
            totp,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn staff_sign_in_with_a_password_and_operators_also_with_their_authenticator() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("identity.db").display());
    let p = start(&db, "127.0.0.1:0").await;
    add(&p.provider, "tech", technician(), false).await;
    let secret = add(
        &p.provider,
        "ops",
        Principal::new("ops-1", Role::Operator),
        true,
    )
    .await
    .unwrap();

    let (status, answer) = p.password("tech", "a long enough password", "").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(p.principal(&answer).await, technician());
    assert_eq!(answer["expires_in"], 900);
    assert!(answer["refresh_token"].as_str().is_some());

    let (status, answer) = p.password("tech", "a long enough passworD", "").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, unknown) = p.password("nobody", "a long enough password", "").await;
    assert_eq!(status, 400);
    assert_eq!(
        unknown, answer,
        "an unknown user answers like a wrong password"
    );

    // The operator's password alone is not enough; with the code it is.
    let (status, _) = p.password("ops", "a long enough password", "").await;
    assert_eq!(status, 400);
    let code = secrets::totp_now(&secret).unwrap();
    let (status, answer) = p.password("ops", "a long enough password", &code).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(p.principal(&answer).await.role, Role::Operator);
    let (status, _) = p.password("ops", "a long enough password", &code).await;
    assert_eq!(status, 400, "an authenticator code is taken once");

    // Guessing: after ten tries the account waits, whatever the password.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(p.password("tech", "wrong wrong wrong", "").await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let (status, _) = p.password("tech", "a long enough password", "").await;
    assert_eq!(status, 429, "the right password waits too");
}

#[tokio::test]
async fn a_support_agent_exchanges_their_token_for_one_that_acts_for_a_customer() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("identity.db").display());
    let p = start(&db, "127.0.0.1:0").await;
    add(
        &p.provider,
        "agent",
        Principal::new("agent-7", Role::SupportAgent),
        false,
    )
    .await;
    add(&p.provider, "tech", technician(), false).await;
    let (_, agent) = p.password("agent", "a long enough password", "").await;
    let agent = agent["access_token"].as_str().unwrap().to_owned();
    let exchange = |token: &str, customer: &str| {
        let (token, customer) = (token.to_owned(), customer.to_owned());
        let p = &p;
        async move {
            p.post(
                "/token",
                &[
                    ("grant_type", TOKEN_EXCHANGE),
                    ("subject_token", &token),
                    (
                        "subject_token_type",
                        "urn:ietf:params:oauth:token-type:access_token",
                    ),
                    ("aftersales_on_behalf_of", &customer),
                ],
            )
            .await
        }
    };

    let (status, acting) = exchange(&agent, "cust-anna").await;
    assert_eq!(status, 200, "{acting}");
    assert!(acting["refresh_token"].is_null(), "no session of its own");
    assert!(acting["expires_in"].as_u64().unwrap() <= 300);
    let principal = p.principal(&acting).await;
    assert_eq!(principal.on_behalf_of.as_deref(), Some("cust-anna"));
    assert_eq!(
        principal.actor(),
        "support_agent:agent-7 for customer:cust-anna"
    );

    // Not twice over, not for another role, not with a bad token or customer.
    let acting = acting["access_token"].as_str().unwrap().to_owned();
    let (_, tech) = p.password("tech", "a long enough password", "").await;
    let tech = tech["access_token"].as_str().unwrap().to_owned();
    for (token, customer, error) in [
        (acting.as_str(), "cust-bob", "invalid_grant"),
        (tech.as_str(), "cust-anna", "invalid_grant"),
        ("not.a.token", "cust-anna", "invalid_grant"),
        (agent.as_str(), "", "invalid_request"),
        (agent.as_str(), "cust anna; drop", "invalid_request"),
    ] {
        let (status, answer) = exchange(token, customer).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(error)),
            "{customer}: {answer}"
        );
    }
}

#[tokio::test]
async fn a_customer_signs_in_with_the_code_sent_to_their_address_and_five_wrong_codes_lock_it() {
    let p = start("sqlite::memory:", "127.0.0.1:0").await;
    let (status, _) = p
        .post("/one-time-code", &[("address", " Anna@Example.com ")])
        .await;
    assert_eq!(status, 200);
    let code = p.outbox.last_code();
    assert_eq!(code.len(), 6);
    let (status, answer) = p
        .post(
            "/token",
            &[
                ("grant_type", ONE_TIME_CODE),
                ("address", "anna@example.com"),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        p.principal(&answer).await,
        Principal::new("cust-anna", Role::Customer)
    );
    // Used once.
    let again = [
        ("grant_type", ONE_TIME_CODE),
        ("address", "anna@example.com"),
        ("code", code.as_str()),
    ];
    assert_eq!(p.post("/token", &again).await.0, 400);

    // An address that is nobody's answers exactly as a registered one.
    let (status, nobody) = p
        .post("/one-time-code", &[("address", "nobody@example.com")])
        .await;
    assert_eq!(status, 200);
    let (_, anna) = p
        .post("/one-time-code", &[("address", "anna@example.com")])
        .await;
    assert_eq!(nobody, anna);

    let real = p.outbox.last_code();
    let wrong = format!("{:06}", (real.parse::<u32>().unwrap() + 1) % 1_000_000);
    let attempt = [
        ("grant_type", ONE_TIME_CODE),
        ("address", "anna@example.com"),
        ("code", wrong.as_str()),
    ];
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(p.post("/token", &attempt).await.0);
    }
    assert_eq!(statuses, [400, 400, 400, 400, 429]);
    let right = [
        ("grant_type", ONE_TIME_CODE),
        ("address", "anna@example.com"),
        ("code", real.as_str()),
    ];
    assert_eq!(p.post("/token", &right).await.0, 429, "locked out");
    assert_eq!(
        p.post("/one-time-code", &[("address", "anna@example.com")])
            .await
            .0,
        429,
        "no new code while locked out"
    );
}

async fn refresh(p: &Running, token: &str) -> (u16, Value) {
    p.post(
        "/token",
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

#[tokio::test]
async fn refresh_tokens_rotate_a_reused_one_ends_the_session_and_sign_out_revokes() {
    let p = start("sqlite::memory:", "127.0.0.1:0").await;
    add(&p.provider, "tech", technician(), false).await;
    let (_, signed_in) = p.password("tech", "a long enough password", "").await;
    let first = signed_in["refresh_token"].as_str().unwrap().to_owned();
    let (status, renewed) = refresh(&p, &first).await;
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(p.principal(&renewed).await, technician());
    let second = renewed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    // The first one again: stolen, so the whole session ends.
    assert_eq!(refresh(&p, &first).await.0, 400);
    assert_eq!(refresh(&p, &second).await.0, 400);

    // Sign-out.
    let (_, signed_in) = p.password("tech", "a long enough password", "").await;
    let token = signed_in["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(p.post("/revoke", &[("token", &token)]).await.0, 200);
    assert_eq!(refresh(&p, &token).await.0, 400);
    assert_eq!(
        p.post("/revoke", &[("token", "never-issued")]).await.0,
        200,
        "revocation says nothing about tokens the caller does not hold"
    );
}

#[tokio::test]
async fn discovery_names_every_grant_and_keys_and_sessions_outlive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("identity.db").display());
    let first = start(&db, "127.0.0.1:0").await;
    let listen = first
        .provider
        .url()
        .trim_start_matches("http://")
        .to_owned();
    add(&first.provider, "tech", technician(), false).await;
    let discovery: Value = first
        .http
        .get(format!(
            "{}/.well-known/openid-configuration",
            first.provider.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for grant in [
        "client_credentials",
        "password",
        "refresh_token",
        ONE_TIME_CODE,
        TOKEN_EXCHANGE,
    ] {
        assert!(
            discovery["grant_types_supported"]
                .as_array()
                .unwrap()
                .contains(&Value::from(grant)),
            "{grant}"
        );
    }
    let (_, signed_in) = first.password("tech", "a long enough password", "").await;
    drop(first);
    // The first provider lets go of its address once its shutdown is through.
    for _ in 0..200 {
        if std::net::TcpListener::bind(&listen).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let second = start(&db, &listen).await;
    assert_eq!(
        second.principal(&signed_in).await,
        technician(),
        "the access token from before the restart still verifies"
    );
    let (status, _) = second
        .post(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                (
                    "refresh_token",
                    signed_in["refresh_token"].as_str().unwrap(),
                ),
            ],
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn oversized_and_malformed_requests_are_refused_and_write_nothing() {
    let p = start("sqlite::memory:", "127.0.0.1:0").await;
    let huge = "x".repeat(10_000);
    let (status, _) = p.password("tech", &huge, "").await;
    assert_eq!(status, 413);
    let (status, answer) = p.post("/token", &[("grant_type", "implicit")]).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (status, _) = p
        .post("/one-time-code", &[("address", &"a".repeat(300))])
        .await;
    assert_eq!(status, 400);
    assert!(p.outbox.sent.lock().unwrap().is_empty(), "nothing was sent");
    let refused = p
        .provider
        .add_account(NewAccount {
            username: "bad name!".into(),
            password: "a long enough password".into(),
            principal: technician(),
            totp: false,
        })
        .await;
    assert!(refused.is_err());
    assert!(
        p.provider
            .store()
            .account("bad name!")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_proxy_on_this_machine_has_attempts_counted_per_browser() {
    let p = start("sqlite::memory:", "127.0.0.1:0").await;
    let send = |from: &'static str, n: usize| {
        let http = p.http.clone();
        let url = format!("{}/one-time-code", p.provider.url());
        async move {
            http.post(url)
                .header("x-forwarded-for", from)
                .form(&[("address", format!("someone-{n}@example.com"))])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Fifty requests from one browser, then it waits; another browser does not.
    let mut statuses = Vec::new();
    for n in 0..51 {
        statuses.push(send("203.0.113.7", n).await);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(send("198.51.100.9", 99).await, 200);
}
