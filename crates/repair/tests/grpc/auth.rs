//! Repair calling warranty as itself: with authentication on, repair's own token
//! (client credentials at the issuer) gets coverage answered and the claim of a
//! covered repair recorded, which no person's token may do.

use std::time::Duration;

use aftersales_auth::issuer::Issuer;
use aftersales_auth::{Principal, Role, ServiceToken};
use aftersales_proto::repair as pb;
use aftersales_proto::repair::repair_service_client::RepairServiceClient;
use aftersales_proto::warranty as wpb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_runtime::config::Common;
use aftersales_runtime::telemetry::traced;
use aftersales_testkit::shared_postgres;
use tonic::Code;

use crate::harness::*;

fn person(subject: &str, role: Role) -> Principal {
    Principal {
        subject: subject.into(),
        role,
        on_behalf_of: None,
        centers: vec!["sc-berlin-01".into()],
    }
}

#[tokio::test]
async fn repair_asks_warranty_with_its_own_token() {
    let issuer = Issuer::serve("127.0.0.1:0".parse().unwrap(), std::future::pending())
        .await
        .unwrap();
    issuer.register_client(
        "repair",
        "repair-secret-0123456789",
        Principal::new("repair", Role::Service),
        "aftersales",
    );
    let authenticated = |database: String| Common {
        oidc_issuer: Some(issuer.url().to_owned()),
        allow_unauthenticated: false,
        ..Common::test(database)
    };
    let warranty = aftersales_warranty::server::start(aftersales_warranty::server::Config {
        common: authenticated(shared_postgres().create_database().unwrap()),
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut config = repair_config(
        shared_postgres().create_database().unwrap(),
        Some(format!("http://{}", warranty.addr)),
    );
    config.common = Common {
        oidc_client_id: Some("repair".into()),
        oidc_client_secret: Some("repair-secret-0123456789".into()),
        ..authenticated(shared_postgres().create_database().unwrap())
    };
    let repair = aftersales_repair::server::start(config).await.unwrap();
    let token = |who: &Principal| {
        Some(ServiceToken::fixed(
            issuer
                .token(who, "aftersales", Duration::from_secs(900))
                .unwrap(),
        ))
    };
    let channel = |addr: std::net::SocketAddr| {
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy()
    };
    let operator = person("ops-1", Role::Operator);
    let technician = person("tech-1", Role::Technician);
    let mut w = WarrantyServiceClient::new(traced(channel(warranty.addr), token(&operator)));
    let r = RepairServiceClient::new(traced(channel(repair.addr), token(&technician)));

    let imei = imei(7_001);
    w.register_device(wpb::RegisterDeviceRequest {
        device_id: device(&imei),
        model: "Aurora 5".into(),
        purchase_date: days_ago(30),
        country_of_purchase: Some(aftersales_proto::common::CountryCode { value: "DE".into() }),
        channel: wpb::SalesChannel::OnlineStore.into(),
        customer_id: "cust-1".into(),
        ..Default::default()
    })
    .await
    .unwrap();

    // Coverage is answered: repair's own token got through to warranty (the
    // service token is fetched in the background, so the first open may find it
    // not granted yet and leave coverage pending; a second device shows it).
    let order = aftersales_testkit::eventually(
        || {
            let mut r = r.clone();
            let imei = imei.clone();
            async move {
                r.open_repair(aftersales_runtime::request::with_command_id(
                    walk_in(&imei),
                    uuid::Uuid::new_v4(),
                ))
                .await
                .map(tonic::Response::into_inner)
            }
        },
        |order| {
            order
                .as_ref()
                .is_ok_and(|o| o.coverage.as_ref().is_some_and(|c| c.decided))
        },
    )
    .await
    .unwrap();
    assert!(order.coverage.as_ref().unwrap().covered, "{order:?}");

    // A person's token may not record a claim, whatever their role.
    let claim = wpb::RecordClaimRequest {
        device_id: device(&imei),
        repair_order_id: "r-1".into(),
        fault_category: wpb::FaultCategory::Display.into(),
        under_legal_guarantee: false,
        ..Default::default()
    };
    for who in [&operator, &technician] {
        let refused = WarrantyServiceClient::new(traced(channel(warranty.addr), token(who)))
            .record_claim(claim.clone())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    }

    // Objects: another customer's order, and an order at another center, answer
    // exactly as an order that does not exist.
    let as_whom =
        |who: &Principal| RepairServiceClient::new(traced(channel(repair.addr), token(who)));
    let customer = |id: &str| Principal {
        centers: Vec::new(),
        ..person(id, Role::Customer)
    };
    let missing = code(
        as_whom(&customer("cust-1"))
            .get_repair(crate::harness::order(
                "00000000-0000-0000-0000-000000000000",
            ))
            .await,
    );
    assert_eq!(missing.0, Code::NotFound);
    let expected = |id: &str| (Code::NotFound, format!("repair order {id} not found"));
    assert!(
        as_whom(&customer("cust-1"))
            .get_repair(crate::harness::order(&order.order_id))
            .await
            .is_ok()
    );
    assert_eq!(
        code(
            as_whom(&customer("bob"))
                .get_repair(crate::harness::order(&order.order_id))
                .await
        ),
        expected(&order.order_id)
    );
    let paris = Principal {
        centers: vec!["sc-paris-01".into()],
        ..person("tech-paris", Role::Technician)
    };
    let check_in = aftersales_proto::repair::CheckInDeviceRequest {
        order_id: order.order_id.clone(),
        condition_notes: "ok".into(),
        ..Default::default()
    };
    assert_eq!(
        code(as_whom(&paris).check_in_device(check_in.clone()).await),
        expected(&order.order_id)
    );
    let refused = as_whom(&paris)
        .list_repairs_by_center(aftersales_proto::repair::ListRepairsByCenterRequest {
            service_center_id: "sc-berlin-01".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    // Bob lists none of the device's repairs; their customer sees them.
    let by_device = |who: Principal| {
        let mut client = as_whom(&who);
        let imei = imei.clone();
        async move {
            client
                .list_repairs_by_device(aftersales_proto::repair::ListRepairsByDeviceRequest {
                    device_id: device(&imei),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .repairs
                .len()
        }
    };
    // (The list is a read model: the customer's view first, once it has the order.)
    aftersales_testkit::eventually(|| by_device(customer("cust-1")), |n| *n >= 1).await;
    assert_eq!(by_device(customer("bob")).await, 0);
    // Depot staff ("*") work on every center's orders; Berlin's own technician too.
    let depot = Principal {
        centers: vec!["*".into()],
        ..person("tech-depot", Role::Technician)
    };
    as_whom(&depot).check_in_device(check_in).await.unwrap();
    // A mail-in order has no center until it is sent back: the depot takes it,
    // a center's technician does not see it.
    let mail_in = as_whom(&operator)
        .open_repair(pb::OpenRepairRequest {
            channel: pb::Channel::MailIn.into(),
            service_center_id: String::new(),
            contact_address: Some(aftersales_proto::common::Address {
                recipient: "Ana Weber".into(),
                lines: vec!["Torstrasse 1".into()],
                city: "Berlin".into(),
                postal_code: "10119".into(),
                country: Some(aftersales_proto::common::CountryCode { value: "DE".into() }),
                ..Default::default()
            }),
            ..walk_in(&imei)
        })
        .await
        .unwrap()
        .into_inner()
        .order_id;
    assert!(
        as_whom(&depot)
            .get_repair(crate::harness::order(&mail_in))
            .await
            .is_ok()
    );
    assert_eq!(
        code(
            as_whom(&technician)
                .get_repair(crate::harness::order(&mail_in))
                .await
        ),
        expected(&mail_in)
    );

    // What the customer told is hers: staff see it withheld and open it for a
    // purpose, and each opening is a step of the timeline she sees.
    let mut berlin = as_whom(&technician);
    let mut owner = as_whom(&customer("cust-1"));
    let this = || crate::harness::order(&order.order_id);
    let own = owner.get_repair(this()).await.unwrap().into_inner();
    assert_eq!(
        (own.symptoms.as_str(), own.personal_withheld),
        (walk_in(&imei).symptoms.as_str(), false)
    );
    let staff_view = berlin.get_repair(this()).await.unwrap().into_inner();
    assert_eq!(
        (staff_view.symptoms.as_str(), staff_view.personal_withheld),
        ("", true)
    );
    let checklist = pb::DataProtection {
        backup_reminded: true,
        find_my_device_off: true,
        passcode: pb::PasscodeHandling::CustomerUnlocks.into(),
    };
    let recorded = berlin
        .record_data_protection(pb::RecordDataProtectionRequest {
            order_id: order.order_id.clone(),
            data_protection: Some(checklist),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(recorded.data_protection, None, "withheld from staff too");
    let steps = |mut client: RepairServiceClient<_>| {
        let this = this();
        async move {
            client
                .get_repair_timeline(this)
                .await
                .unwrap()
                .into_inner()
                .steps
        }
    };
    let before = steps(owner.clone()).await.len();
    let opening =
        |categories: &[pb::DataCategory], purpose: pb::AccessPurpose| pb::OpenPersonalDataRequest {
            order_id: order.order_id.clone(),
            categories: categories.iter().map(|c| i32::from(*c)).collect(),
            purpose: purpose.into(),
        };
    let words_and_checklist = [
        pb::DataCategory::CustomerWords,
        pb::DataCategory::DataProtection,
    ];
    // Refused openings write nothing: no purpose, the same twice, an address a
    // walk-in does not have, another center's technician.
    for (bad, expected_code) in [
        (
            opening(&words_and_checklist, pb::AccessPurpose::Unspecified),
            Code::InvalidArgument,
        ),
        (
            opening(
                &[
                    pb::DataCategory::CustomerWords,
                    pb::DataCategory::CustomerWords,
                ],
                pb::AccessPurpose::Diagnosis,
            ),
            Code::InvalidArgument,
        ),
        (
            opening(
                &[pb::DataCategory::ContactAddress],
                pb::AccessPurpose::Diagnosis,
            ),
            Code::FailedPrecondition,
        ),
    ] {
        assert_eq!(code(berlin.open_personal_data(bad).await).0, expected_code);
    }
    assert_eq!(
        code(
            as_whom(&paris)
                .open_personal_data(opening(&words_and_checklist, pb::AccessPurpose::Diagnosis))
                .await
        ),
        expected(&order.order_id)
    );
    assert_eq!(steps(owner.clone()).await.len(), before);
    let opened = berlin
        .open_personal_data(opening(&words_and_checklist, pb::AccessPurpose::Diagnosis))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.symptoms, own.symptoms);
    assert_eq!(opened.data_protection, Some(checklist));
    assert_eq!(opened.contact_address, None);
    // The same opening again, and the customer reading her own: no new step.
    berlin
        .open_personal_data(opening(&words_and_checklist, pb::AccessPurpose::Diagnosis))
        .await
        .unwrap();
    let hers = owner
        .open_personal_data(opening(&words_and_checklist, pb::AccessPurpose::Complaint))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hers.data_protection, Some(checklist));
    let seen = steps(owner.clone()).await;
    assert_eq!(seen.len(), before + 1, "{seen:?}");
    let access = seen.last().unwrap();
    assert_eq!(
        (access.event_type.as_str(), access.actor.as_str()),
        ("PersonalDataAccessed", "technician:tech-1")
    );
    assert_eq!(
        access.access,
        Some(pb::DataAccess {
            categories: words_and_checklist.iter().map(|c| i32::from(*c)).collect(),
            purpose: pb::AccessPurpose::Diagnosis.into(),
        })
    );
    assert!(
        seen.iter()
            .any(|s| s.event_type == "DataProtectionRecorded" && s.actor == "technician:tech-1")
    );
    assert_eq!(
        access.stage,
        i32::from(pb::Stage::Received),
        "an opening moves no stage"
    );

    // Berlin's technician diagnoses and starts the covered repair: repair
    // records the claim as itself, for the technician, and warranty's history
    // says both.
    berlin
        .diagnose(aftersales_proto::repair::DiagnoseRequest {
            order_id: order.order_id.clone(),
            fault_category: wpb::FaultCategory::Display.into(),
            fault_codes: vec!["LCD-01".into()],
            technician: "tech-1".into(),
        })
        .await
        .unwrap();
    berlin
        .start_repair(aftersales_proto::repair::StartRepairRequest {
            order_id: order.order_id.clone(),
            technician: "tech-1".into(),
        })
        .await
        .unwrap();
    let history = w
        .get_device_history(wpb::GetDeviceHistoryRequest {
            device_id: device(&imei),
            as_of: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let claim = history
        .events
        .iter()
        .find(|e| e.event_type == "ClaimRecorded")
        .expect("a claim");
    assert_eq!(claim.actor, "service:repair for technician:tech-1");
    repair.stop().await.unwrap();
    warranty.stop().await.unwrap();
}
