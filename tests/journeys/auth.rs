//! The warranty binary behind a token issuer, driven by the `aftersales` tool: no
//! token is refused, a staff token registers, and a customer sees their own phone
//! only.

use std::process::{Command, Output};
use std::time::Duration;

use aftersales_auth::issuer::Issuer;
use aftersales_auth::{Principal, Role};
use aftersales_testkit::shared_postgres;

use crate::{Service, binary, imei};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_signs_its_calls_with_the_token_it_is_given() {
    let issuer = Issuer::serve("127.0.0.1:0".parse().unwrap(), std::future::pending())
        .await
        .unwrap();
    let warranty = Service::spawn(
        "warranty",
        vec![
            (
                "DATABASE_URL".into(),
                shared_postgres().create_database().unwrap(),
            ),
            ("AFTERSALES_REGION".into(), "e2e".into()),
            ("AFTERSALES_OIDC_ISSUER".into(), issuer.url().to_owned()),
        ],
    );
    let token = |subject: &str, role: Role| {
        let who = Principal {
            subject: subject.into(),
            role,
            on_behalf_of: None,
            centers: Vec::new(),
        };
        issuer
            .token(&who, "aftersales", Duration::from_secs(900))
            .unwrap()
    };
    let device = imei(950);
    let tool = |token: Option<String>, args: &[&str]| -> Output {
        let mut command = Command::new(binary("aftersales"));
        command
            .args(args)
            .env("AFTERSALES_WARRANTY_URL", warranty.url())
            .env_remove("AFTERSALES_TOKEN");
        if let Some(token) = token {
            command.env("AFTERSALES_TOKEN", token);
        }
        command.output().unwrap()
    };
    let register = [
        "device",
        "register",
        "--imei",
        &device,
        "--model",
        "Aurora 5",
        "--purchased",
        "today",
        "--country",
        "DE",
        "--customer",
        "c-1",
    ];
    let refused = tool(None, &register);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("Unauthenticated"), "{why}");

    let done = tool(Some(token("ops-1", Role::Operator)), &register);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );

    let show = ["device", "show", "--imei", &device];
    let own = tool(Some(token("c-1", Role::Customer)), &show);
    assert!(
        own.status.success(),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );
    let other = tool(Some(token("c-2", Role::Customer)), &show);
    assert!(!other.status.success());
    let why = String::from_utf8_lossy(&other.stderr);
    assert!(why.contains("NotFound"), "{why}");
}
