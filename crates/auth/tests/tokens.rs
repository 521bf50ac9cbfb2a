//! Tokens as an attacker would send them, against a verifier following a real
//! issuer over HTTP: only a well-formed, in-date token, signed by a published key
//! with an accepted algorithm, for us, from our issuer, names a caller.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aftersales_auth::issuer::{Issuer, SigningKey};
use aftersales_auth::{AuthError, Principal, Role, Verifier, VerifierSettings};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

const AUDIENCE: &str = "aftersales";

fn operator() -> Principal {
    Principal::new("ops-1", Role::Operator)
}

async fn issuer_and_verifier() -> (Issuer, Verifier) {
    let issuer = Issuer::serve("127.0.0.1:0".parse().unwrap(), std::future::pending())
        .await
        .unwrap();
    let mut settings = VerifierSettings::new(issuer.url(), AUDIENCE);
    settings.refetch_interval = Duration::ZERO;
    (issuer, Verifier::new(settings).unwrap())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The token's three parts.
fn parts(token: &str) -> [String; 3] {
    let mut it = token.split('.').map(str::to_owned);
    [it.next().unwrap(), it.next().unwrap(), it.next().unwrap()]
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

#[tokio::test]
async fn a_good_token_names_its_caller() {
    let (issuer, verifier) = issuer_and_verifier().await;
    let agent = Principal {
        subject: "agent-7".into(),
        role: Role::SupportAgent,
        on_behalf_of: Some("c-42".into()),
        centers: Vec::new(),
    };
    let token = issuer
        .token(&agent, AUDIENCE, Duration::from_secs(900))
        .unwrap();
    assert_eq!(verifier.verify(&token).await.unwrap(), agent);
    let technician = Principal {
        subject: "tech-1".into(),
        role: Role::Technician,
        on_behalf_of: None,
        centers: vec!["sc-berlin-01".into()],
    };
    let token = issuer
        .token(&technician, AUDIENCE, Duration::from_secs(900))
        .unwrap();
    assert_eq!(verifier.verify(&token).await.unwrap(), technician);
}

#[tokio::test]
async fn forged_and_broken_tokens_are_unauthenticated() {
    let (issuer, verifier) = issuer_and_verifier().await;
    let good_claims = issuer.claims(&operator(), AUDIENCE, Duration::from_secs(900));
    let good = issuer.sign(&good_claims).unwrap();
    let [header, payload, signature] = parts(&good);
    let kid: String = serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(&header).unwrap())
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = good_claims.clone();
        change(&mut claims);
        issuer.sign(&claims).unwrap()
    };
    let stranger = SigningKey::generate().unwrap();
    let [_, _, strangers_signature] = parts(&stranger.sign(&good_claims).unwrap());
    let public_jwk = issuer_public_jwk(&issuer, &kid).await;

    let mut cases: Vec<(&str, String)> = vec![
        ("no token at all", String::new()),
        ("not a JWT", "hello".into()),
        (
            "a signature from another key under the issuer's kid",
            format!("{header}.{payload}.{strangers_signature}"),
        ),
        (
            "alg none",
            format!(
                "{}.{payload}.",
                encode(&json!({"alg": "none", "typ": "JWT", "kid": kid}))
            ),
        ),
        (
            "a claim edited after signing",
            format!(
                "{header}.{}.{signature}",
                encode(&{
                    let mut c = good_claims.clone();
                    c["sub"] = json!("someone-else");
                    c
                })
            ),
        ),
        ("expired", with(&|c| c["exp"] = json!(now() - 120))),
        ("not yet valid", with(&|c| c["nbf"] = json!(now() + 600))),
        (
            "another issuer",
            with(&|c| c["iss"] = json!("http://evil.example")),
        ),
        (
            "another audience",
            with(&|c| c["aud"] = json!("someone-else")),
        ),
        (
            "no expiry",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        ("an unpublished key", stranger.sign(&good_claims).unwrap()),
    ];
    // Key confusion: HS256 with the issuer's public key as the shared secret.
    for secret in [
        public_jwk.to_string().into_bytes(),
        URL_SAFE_NO_PAD
            .decode(public_jwk["x"].as_str().unwrap())
            .unwrap(),
    ] {
        let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        hs.kid = Some(kid.clone());
        let token = jsonwebtoken::encode(
            &hs,
            &good_claims,
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .unwrap();
        cases.push(("HS256 signed with the public key", token));
    }
    for (what, token) in &cases {
        let refused = verifier.verify(token).await;
        assert!(
            matches!(refused, Err(AuthError::Unauthenticated(_))),
            "{what}: {refused:?}"
        );
    }
    // The good one still verifies: nothing above poisoned the key cache.
    assert_eq!(verifier.verify(&good).await.unwrap(), operator());
}

#[tokio::test]
async fn verifying_does_not_ask_the_issuer_each_time() {
    let (issuer, verifier) = issuer_and_verifier().await;
    let token = issuer
        .token(&operator(), AUDIENCE, Duration::from_secs(900))
        .unwrap();
    for _ in 0..200 {
        verifier.verify(&token).await.unwrap();
    }
    assert_eq!(issuer.key_fetches(), 1, "the keys, fetched once and cached");
}

#[tokio::test]
async fn a_token_without_a_known_role_has_no_rights() {
    let (issuer, verifier) = issuer_and_verifier().await;
    let mut claims = issuer.claims(&operator(), AUDIENCE, Duration::from_secs(900));
    claims["aftersales_role"] = json!("admin");
    let refused = verifier.verify(&issuer.sign(&claims).unwrap()).await;
    assert!(
        matches!(refused, Err(AuthError::PermissionDenied(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_and_old_tokens_stay_valid() {
    let (issuer, verifier) = issuer_and_verifier().await;
    let old = issuer
        .token(&operator(), AUDIENCE, Duration::from_secs(900))
        .unwrap();
    assert!(verifier.verify(&old).await.is_ok());
    issuer.rotate().unwrap();
    let new = issuer
        .token(&operator(), AUDIENCE, Duration::from_secs(900))
        .unwrap();
    assert_ne!(parts(&old)[0], parts(&new)[0], "a new kid");
    assert_eq!(verifier.verify(&new).await.unwrap(), operator());
    assert_eq!(verifier.verify(&old).await.unwrap(), operator());
}

#[tokio::test]
async fn an_unreachable_issuer_is_unavailable_not_a_bad_token() {
    let mut settings = VerifierSettings::new("http://127.0.0.1:9", AUDIENCE);
    settings.refetch_interval = Duration::ZERO;
    let verifier = Verifier::new(settings).unwrap();
    let (issuer, _) = issuer_and_verifier().await;
    let token = issuer
        .token(&operator(), AUDIENCE, Duration::from_secs(900))
        .unwrap();
    let refused = verifier.verify(&token).await;
    assert!(
        matches!(refused, Err(AuthError::Unavailable(_))),
        "{refused:?}"
    );
}

/// The issuer's published JWK with id `kid`, as anyone can fetch it.
async fn issuer_public_jwk(issuer: &Issuer, kid: &str) -> Value {
    let body = reqwest::get(format!("{}/jwks.json", issuer.url()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let set: Value = serde_json::from_slice(&body).unwrap();
    set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap()
        .clone()
}
