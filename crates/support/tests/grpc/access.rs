//! Who sees which case, with authentication on: customers their own, agents
//! their team's (also after it moved on), operators and auditors all; what a
//! caller may not see is not found.

use std::time::Duration;

use aftersales_auth::issuer::Issuer;
use aftersales_auth::{Principal, Role, ServiceToken};
use aftersales_proto::support as pb;
use aftersales_proto::support::support_service_client::SupportServiceClient;
use aftersales_runtime::telemetry::traced;
use aftersales_testkit::shared_postgres;
use tonic::Code;

use crate::{case_ref, clock_at, config, entry, not_charging};

#[tokio::test]
async fn customers_see_their_own_cases_and_agents_their_teams() {
    let issuer = Issuer::serve("127.0.0.1:0".parse().unwrap(), std::future::pending())
        .await
        .unwrap();
    let clock = clock_at("2026-12-01T09:00:00Z");
    let mut cfg = config(shared_postgres().create_database().unwrap(), &clock);
    cfg.common.oidc_issuer = Some(issuer.url().to_owned());
    cfg.common.allow_unauthenticated = false;
    let running = aftersales_support::server::start(cfg).await.unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", running.addr))
        .unwrap()
        .connect_lazy();
    let client = |subject: &str, role: Role| {
        let token = issuer
            .token(
                &Principal::new(subject, role),
                "aftersales",
                Duration::from_secs(900),
            )
            .unwrap();
        SupportServiceClient::new(traced(channel.clone(), Some(ServiceToken::fixed(token))))
    };
    let mut customer = client("cust-1", Role::Customer);
    let mut stranger = client("cust-2", Role::Customer);
    let mut anna = client("agent-de-anna", Role::SupportAgent);
    let mut priya = client("agent-in-priya", Role::SupportAgent);
    let mut klaus = client("expert-hw-klaus", Role::SupportAgent);
    let mut auditor = client("audit-1", Role::Auditor);
    let mut technician = client("tech-1", Role::Technician);

    // A customer opens their own case by the web, not someone else's.
    let mut mine = not_charging("cust-1");
    mine.channel = pb::Channel::Web.into();
    let opened = customer.open_case(mine).await.unwrap().into_inner();
    let id = opened.case_id.clone();
    let mut urgent = not_charging("cust-1");
    urgent.channel = pb::Channel::Web.into();
    urgent.priority = pb::Priority::Urgent.into();
    assert_eq!(
        customer.open_case(urgent).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let mut theirs = not_charging("cust-3");
    theirs.channel = pb::Channel::Web.into();
    assert_eq!(
        customer.open_case(theirs).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    // The German front line works on it; India's does not see it.
    anna.add_entry(entry(
        &id,
        pb::EntryKind::InternalNote,
        "Kunde klingt verärgert",
    ))
    .await
    .unwrap();
    anna.add_entry(entry(
        &id,
        pb::EntryKind::AgentReply,
        "Wir kümmern uns darum.",
    ))
    .await
    .unwrap();
    assert_eq!(
        priya.get_case(case_ref(&id)).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        stranger.get_case(case_ref(&id)).await.unwrap_err().code(),
        Code::NotFound
    );
    let queue = |c: &mut SupportServiceClient<_>| {
        let mut c = c.clone();
        async move {
            c.list_cases(pb::ListCasesRequest::default())
                .await
                .unwrap()
                .into_inner()
                .cases
                .len()
        }
    };
    aftersales_testkit::eventually(|| queue(&mut anna), |n| *n == 1).await;
    assert_eq!(queue(&mut priya).await, 0);
    assert_eq!(queue(&mut stranger).await, 0);
    assert_eq!(queue(&mut customer).await, 1);

    // The customer sees the conversation but not the staff's notes, and may
    // only write as themself.
    let seen = customer.get_case(case_ref(&id)).await.unwrap().into_inner();
    assert!(
        seen.history
            .iter()
            .all(|e| e.kind != i32::from(pb::EntryKind::InternalNote))
    );
    assert!(
        seen.history
            .iter()
            .any(|e| e.text == "Wir kümmern uns darum.")
    );
    assert_eq!(
        customer
            .add_entry(entry(&id, pb::EntryKind::AgentReply, "Ich bin der Agent"))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        anna.add_entry(entry(
            &id,
            pb::EntryKind::CustomerMessage,
            "Ich bin die Kundin"
        ))
        .await
        .unwrap_err()
        .code(),
        Code::PermissionDenied
    );

    // The customer asks for an expert: the case moves up, and the team that
    // held it still reads it; the experts now work on it.
    let escalated = customer
        .escalate_case(pb::EscalateCaseRequest {
            case_id: id.clone(),
            reason: pb::EscalationReason::Unspecified.into(),
            note: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(escalated.team_id, "hardware-experts");
    assert_eq!(escalated.agent_id, "expert-hw-klaus");
    let history = klaus
        .get_case(case_ref(&id))
        .await
        .unwrap()
        .into_inner()
        .history;
    assert!(history.iter().any(|e| e.text == "Kunde klingt verärgert"));
    anna.get_case(case_ref(&id)).await.unwrap();

    // Anyone, signed in or not, searches the knowledge base; a customer
    // publishes nothing.
    let mut anonymous = SupportServiceClient::new(traced(channel.clone(), None));
    let found = aftersales_testkit::eventually(
        || {
            let mut a = anonymous.clone();
            async move {
                a.search_articles(pb::SearchArticlesRequest {
                    language: "en".into(),
                    query: "battery".into(),
                    limit: 3,
                })
                .await
                .unwrap()
                .into_inner()
                .hits
            }
        },
        |hits| !hits.is_empty(),
    )
    .await;
    assert_eq!(found[0].article_id, "battery-drain");
    let refused = customer
        .publish_article(pb::PublishArticleRequest {
            article_id: "battery-drain".into(),
            language: "en".into(),
            title: "Mine".into(),
            body: "Mine".into(),
            categories: vec![pb::Category::Hardware.into()],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(
        anonymous.get_case(case_ref(&id)).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    // Auditors read, and change nothing; technicians have no business here.
    auditor.get_case(case_ref(&id)).await.unwrap();
    let refused = auditor
        .resolve_case(pb::ResolveCaseRequest {
            case_id: id.clone(),
            summary: "done".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(
        technician.get_case(case_ref(&id)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    running.stop().await.unwrap();
}
