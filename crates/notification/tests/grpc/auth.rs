//! The notification service behind a real token issuer: a customer reads and
//! changes their own preferences and messages only; another's message answers as
//! one that does not exist.

use std::time::Duration;

use aftersales_auth::issuer::Issuer;
use aftersales_auth::{Principal, Role, ServiceToken};
use aftersales_proto::notification as pb;
use aftersales_proto::notification::notification_service_client::NotificationServiceClient;
use aftersales_runtime::telemetry::{TracedChannel, traced};
use aftersales_testkit::eventually;
use tonic::Code;
use uuid::Uuid;

use crate::{Harness, opened, preferences, publish};

#[tokio::test]
async fn a_customer_reaches_their_own_messages_only() {
    let issuer = Issuer::serve("127.0.0.1:0".parse().unwrap(), std::future::pending())
        .await
        .unwrap();
    let url = issuer.url().to_owned();
    let h = Harness::start(0, move |cfg| {
        cfg.common.oidc_issuer = Some(url.clone());
        cfg.common.allow_unauthenticated = false;
    })
    .await;
    let addr = h.running.as_ref().unwrap().addr;
    let as_customer = |id: &str| -> NotificationServiceClient<TracedChannel> {
        let who = Principal::new(id, Role::Customer);
        let token = issuer
            .token(&who, "aftersales", Duration::from_secs(900))
            .unwrap();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        NotificationServiceClient::new(traced(channel, Some(ServiceToken::fixed(token))))
    };
    let (mut anna, mut bob) = (as_customer("anna"), as_customer("bob"));
    anna.set_preferences(preferences("anna", &[pb::ChannelKind::Email]))
        .await
        .unwrap();
    let refused = bob
        .set_preferences(preferences("anna", &[pb::ChannelKind::Sms]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = bob
        .get_preferences(pb::CustomerRef {
            customer_id: "anna".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    publish(
        &h.js,
        "repair",
        "RepairOrderOpened",
        &opened("ord-anna", "anna"),
        Uuid::now_v7(),
        "m-anna",
    )
    .await;
    let list = |client: &NotificationServiceClient<TracedChannel>| {
        let mut client = client.clone();
        async move {
            client
                .list_notifications(pb::ListNotificationsRequest {
                    customer_id: "anna".into(),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().notifications)
        }
    };
    let annas = eventually(|| list(&anna), |n| n.as_ref().is_ok_and(|n| !n.is_empty()))
        .await
        .unwrap();
    assert_eq!(list(&bob).await.unwrap_err().code(), Code::PermissionDenied);
    let theirs = annas[0].notification_id.clone();
    let made_up = Uuid::now_v7().to_string();
    for id in [&theirs, &made_up] {
        let status = bob
            .get_delivery(pb::NotificationRef {
                notification_id: id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (
                Code::NotFound,
                format!("notification {id} not found").as_str()
            )
        );
    }
    anna.get_delivery(pb::NotificationRef {
        notification_id: theirs,
    })
    .await
    .unwrap();

    // Live streams are capped per caller: Anna's eleventh is refused, Bob's first
    // is not, and closing one of hers makes room again.
    let watch = |client: &NotificationServiceClient<TracedChannel>, customer: &str| {
        let mut client = client.clone();
        let customer = customer.to_owned();
        async move {
            client
                .watch_notifications(pb::CustomerRef {
                    customer_id: customer,
                })
                .await
        }
    };
    let mut open = Vec::new();
    for _ in 0..aftersales_runtime::request::MAX_LIVE_STREAMS {
        open.push(watch(&anna, "anna").await.unwrap());
    }
    let refused = watch(&anna, "anna").await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let bobs = watch(&bob, "bob").await.unwrap();
    drop(open.pop());
    let again = eventually(
        || async { watch(&anna, "anna").await.map(drop).map_err(|s| s.code()) },
        Result::is_ok,
    )
    .await;
    assert!(again.is_ok());
    drop((open, bobs));
}

#[tokio::test]
async fn a_sign_in_code_goes_to_the_registered_address_at_once_for_the_identity_provider_only() {
    use aftersales_eventstore::EventStore as _;

    let issuer = Issuer::serve("127.0.0.1:0".parse().unwrap(), std::future::pending())
        .await
        .unwrap();
    let url = issuer.url().to_owned();
    let h = Harness::start(0, move |cfg| {
        cfg.common.oidc_issuer = Some(url.clone());
        cfg.common.allow_unauthenticated = false;
    })
    .await;
    let addr = h.running.as_ref().unwrap().addr;
    let client = |who: Principal| -> NotificationServiceClient<TracedChannel> {
        let token = issuer
            .token(&who, "aftersales", Duration::from_secs(900))
            .unwrap();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        NotificationServiceClient::new(traced(channel, Some(ServiceToken::fixed(token))))
    };
    let mut anna = client(Principal::new("anna", Role::Customer));
    let mut identity = client(Principal::new("aftersales-identity", Role::Service));
    let mut german = preferences("anna", &[]);
    german.language = "de".into();
    anna.set_preferences(german).await.unwrap();
    let code = |address: &str, code: &str| pb::SignInCodeRequest {
        address: address.into(),
        code: code.into(),
        language: String::new(),
    };

    let refused = anna
        .send_sign_in_code(code("anna@example.com", "123456"))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::PermissionDenied,
        "customers cannot send codes"
    );

    // Typed with other case and spaces; the read model catches up first.
    let sent = eventually(
        || {
            let mut identity = identity.clone();
            async move {
                identity
                    .send_sign_in_code(code(" Anna@Example.com", "402917"))
                    .await
                    .map(|r| r.into_inner().customer_id)
            }
        },
        Result::is_ok,
    )
    .await
    .unwrap();
    assert_eq!(sent, "anna");
    let mail = eventually(|| async { h.smtp.messages() }, |m| !m.is_empty()).await;
    let mail = crate::readable(&mail[0]);
    assert!(mail.contains("anna@example.com"), "{mail}");
    assert!(mail.contains("402917"), "{mail}");
    assert!(mail.contains("Anmeldecode"), "in her language: {mail}");

    for (request, expected) in [
        (code("nobody@example.com", "402917"), Code::NotFound),
        (code("anna@example.com", "40291"), Code::InvalidArgument),
        (code("anna@example.com", "40291x"), Code::InvalidArgument),
        (code(&"a".repeat(300), "402917"), Code::InvalidArgument),
    ] {
        let status = identity.send_sign_in_code(request).await.unwrap_err();
        assert_eq!(status.code(), expected, "{status:?}");
    }

    // A code is a key: neither the log nor the inbox keeps it.
    let store = &h.running.as_ref().unwrap().store;
    let events = store.read_all(0, 10_000).await.unwrap();
    assert!(!events.is_empty());
    assert!(
        events
            .iter()
            .all(|e| !String::from_utf8_lossy(&e.payload).contains("402917")),
        "the code is in the log"
    );
    let inbox = anna
        .list_notifications(pb::ListNotificationsRequest {
            customer_id: "anna".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(inbox.notifications.iter().all(|n| n.kind != "sign_in_code"));

    // The support desk finds her by the address she gave, typed any way; a
    // customer may not look anyone up.
    let mut agent = client(Principal::new("agent-1", Role::SupportAgent));
    let find = |address: &str| pb::FindCustomersRequest {
        address: address.into(),
    };
    let found = agent
        .find_customers(find("ANNA@example.com "))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.customer_ids, vec!["anna".to_owned()]);
    let nobody = agent
        .find_customers(find("nobody@example.com"))
        .await
        .unwrap()
        .into_inner();
    assert!(nobody.customer_ids.is_empty());
    assert_eq!(
        agent.find_customers(find("")).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    assert_eq!(
        anna.find_customers(find("anna@example.com"))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
}
