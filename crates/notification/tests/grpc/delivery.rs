//! Messages from source events: once per channel whatever the redeliveries,
//! retried through a provider outage, deferred by quiet hours, held back by
//! opt-outs, and reminders that survive a restart.

use std::time::Duration;

use aftersales_proto::logistics as lpb;
use aftersales_proto::notification as pb;
use aftersales_proto::repair as rpb;
use aftersales_testkit::eventually;
use uuid::Uuid;

use crate::{Harness, notification_id, opened, preferences, publish, readable};

async fn delivery(h: &Harness, id: &str) -> Option<pb::Delivery> {
    h.client
        .clone()
        .get_delivery(pb::NotificationRef {
            notification_id: id.into(),
        })
        .await
        .ok()
        .map(tonic::Response::into_inner)
}

async fn inbox(h: &Harness, customer: &str) -> Vec<pb::Notification> {
    h.client
        .clone()
        .list_notifications(pb::ListNotificationsRequest {
            customer_id: customer.into(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .notifications
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_event_delivered_five_times_sends_one_email() {
    let mut h = Harness::start(0, |_| {}).await;
    h.client
        .set_preferences(preferences("cust-a", &[pb::ChannelKind::Email]))
        .await
        .unwrap();
    let event = Uuid::now_v7();
    for attempt in 0..5 {
        publish(
            &h.js,
            "repair",
            "RepairOrderOpened",
            &opened("ord-a", "cust-a"),
            event,
            &format!("m-{attempt}"),
        )
        .await;
    }
    let mail = eventually(|| async { h.smtp.messages() }, |m| !m.is_empty()).await;
    assert_eq!(mail.len(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mail = h.smtp.messages();
    assert_eq!(mail.len(), 1, "one email for five deliveries");
    let email = &readable(&mail[0]);
    assert!(
        email.contains("device ending 7518"),
        "the last four digits: {email}"
    );
    assert!(!email.contains("490154203237518"), "never the whole IMEI");
    assert!(
        email.contains("Subject: Your repair ord-a is open"),
        "{email}"
    );
    assert!(email.contains("To: cust-a@example.com"), "{email}");
    assert!(email.contains("multipart/alternative"), "{email}");
    assert!(
        email.contains("text/plain") && email.contains("text/html"),
        "{email}"
    );
    let id = notification_id(event, "email");
    assert!(
        email.contains(&format!("<{id}@aftersales>")),
        "the Message-ID names the notification"
    );
    let entries = eventually(|| inbox(&h, "cust-a"), |i| !i.is_empty()).await;
    assert_eq!(entries.len(), 1, "one inbox entry too");
    assert_eq!(entries[0].kind, "repair_opened");
    let d = delivery(&h, &id).await.unwrap();
    assert_eq!(d.attempts.len(), 1);
    assert_eq!(d.notification.unwrap().status, "delivered");

    // Retention of the read models, by the service's clock moved on: the sent
    // email's body goes after a month, the inbox entry after a year; the email's
    // record stays. (The log keeps both, sealed, until the customer is erased.)
    let store = aftersales_eventstore::AnyEventStore::connect(&h.database_url)
        .await
        .unwrap();
    let retention = aftersales_notification::projections::Retention {
        inbox_days: 365,
        sent_body_days: 30,
    };
    let forget = |days: i64| {
        let store = store.clone();
        h.clock.advance(chrono::Duration::days(days));
        let now = h.clock.now();
        async move {
            aftersales_notification::projections::forget_past_retention(&store, now, retention)
                .await
                .unwrap()
        }
    };
    assert_eq!(forget(0).await, (0, 0), "nothing is old yet");
    assert_eq!(
        forget(40).await,
        (0, 1),
        "the email's body, not the inbox entry"
    );
    let kept: (String, String) = aftersales_eventstore::on_read_pool!(&store, pool => {
        sqlx::query_as("SELECT status, body FROM notifications WHERE notification_id = $1")
            .bind(&id)
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(kept, ("delivered".to_owned(), String::new()));
    assert_eq!(inbox(&h, "cust-a").await.len(), 1);
    assert_eq!(forget(400).await, (1, 0), "the inbox entry");
    assert!(inbox(&h, "cust-a").await.is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_down_for_three_attempts_then_up_delivers_exactly_once() {
    let mut h = Harness::start(3, |_| {}).await;
    h.client
        .set_preferences(preferences("cust-b", &[pb::ChannelKind::Sms]))
        .await
        .unwrap();
    let event = Uuid::now_v7();
    publish(
        &h.js,
        "repair",
        "RepairOrderOpened",
        &opened("ord-b", "cust-b"),
        event,
        "m-1",
    )
    .await;
    let id = notification_id(event, "sms");
    let d = eventually(
        || delivery(&h, &id),
        |d| {
            d.as_ref()
                .and_then(|d| d.notification.as_ref())
                .is_some_and(|n| n.status == "delivered")
        },
    )
    .await
    .unwrap();
    let outcomes: Vec<_> = d.attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["failed", "failed", "failed", "delivered"]);
    assert!(d.attempts[0].error.contains("503"), "{:?}", d.attempts[0]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.sms.delivered(), 1, "exactly one message arrived");
    let requests = h.sms.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 4);
    assert!(
        requests.iter().all(|r| r.0 == id),
        "one idempotency key for every attempt"
    );
    // Every attempt is an event in the notification's stream.
    let aftersales_eventstore::AnyEventStore::Postgres(pg) = &h.running.as_ref().unwrap().store
    else {
        panic!()
    };
    let attempts: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM events WHERE stream_id = $1 AND event_type = 'AttemptStarted'",
    )
    .bind(format!("notification-{id}"))
    .fetch_one(pg.pool())
    .await
    .unwrap();
    assert_eq!(attempts, 4);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_defer_a_message_but_not_an_urgent_one() {
    let mut h = Harness::start(0, |_| {}).await;
    #[allow(clippy::disallowed_methods)]
    let now = chrono::Utc::now();
    let start = (now - chrono::Duration::hours(1))
        .format("%H:%M")
        .to_string();
    let end_at = now + chrono::Duration::hours(2);
    let mut prefs = preferences("cust-c", &[pb::ChannelKind::Email]);
    prefs.quiet_hours = Some(pb::QuietHours {
        start,
        end: end_at.format("%H:%M").to_string(),
        time_zone: "Etc/UTC".into(),
    });
    h.client.set_preferences(prefs).await.unwrap();
    let event = Uuid::now_v7();
    publish(
        &h.js,
        "repair",
        "RepairOrderOpened",
        &opened("ord-c", "cust-c"),
        event,
        "m-1",
    )
    .await;
    let id = notification_id(event, "email");
    let d = eventually(|| delivery(&h, &id), Option::is_some)
        .await
        .unwrap();
    let n = d.notification.unwrap();
    assert_eq!(n.status, "scheduled");
    let next = d.next_attempt_at.unwrap().seconds;
    let expected = end_at.timestamp() - end_at.timestamp() % 60;
    assert_eq!(next, expected, "deferred to the end of the quiet hours");
    // An exception on the parcel is urgent: it goes now.
    let exception = Uuid::now_v7();
    let urgent = lpb::ShipmentException {
        shipment_id: "shp-1".into(),
        repair_order_id: "ord-c".into(),
        tracking_number: "SB123".into(),
        description: "address not found".into(),
        direction: lpb::Direction::Inbound.into(),
        ..Default::default()
    };
    publish(
        &h.js,
        "logistics",
        "ShipmentException",
        &urgent,
        exception,
        "m-2",
    )
    .await;
    let mail = eventually(|| async { h.smtp.messages() }, |m| !m.is_empty()).await;
    assert_eq!(mail.len(), 1);
    let email = readable(&mail[0]);
    assert!(email.contains("A problem with your parcel"), "{email}");
    assert!(email.contains("address not found"), "{email}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opt_out_holds_except_for_what_the_law_requires() {
    let mut h = Harness::start(0, |_| {}).await;
    let mut prefs = preferences("cust-d", &[pb::ChannelKind::Email]);
    prefs.opted_out_topics = vec!["repair_updates".into()];
    prefs.language = "de".into();
    h.client.set_preferences(prefs).await.unwrap();
    publish(
        &h.js,
        "repair",
        "RepairOrderOpened",
        &opened("ord-d", "cust-d"),
        Uuid::now_v7(),
        "m-1",
    )
    .await;
    let started = rpb::RepairStarted {
        order_id: "ord-d".into(),
        ..Default::default()
    };
    publish(
        &h.js,
        "repair",
        "RepairStarted",
        &started,
        Uuid::now_v7(),
        "m-2",
    )
    .await;
    let cancelled = rpb::RepairCancelled {
        order_id: "ord-d".into(),
        reason: "Kunde hat storniert".into(),
    };
    publish(
        &h.js,
        "repair",
        "RepairCancelled",
        &cancelled,
        Uuid::now_v7(),
        "m-3",
    )
    .await;
    let mail = eventually(|| async { h.smtp.messages() }, |m| !m.is_empty()).await;
    let inbox = eventually(|| inbox(&h, "cust-d"), |i| i.len() == 3).await;
    assert_eq!(inbox.len(), 3, "the inbox keeps every step");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mail = if mail.len() == 1 {
        h.smtp.messages()
    } else {
        mail
    };
    assert_eq!(mail.len(), 1, "only the cancellation is emailed");
    let email = readable(&mail[0]);
    assert!(email.contains("Kunde hat storniert"), "in German: {email}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_due_while_the_service_is_down_fires_once_after_restart() {
    // The default 48 hours, passed on the service's clock while it is down.
    let mut h = Harness::start(0, |_| {}).await;
    h.client
        .set_preferences(preferences("cust-e", &[pb::ChannelKind::Email]))
        .await
        .unwrap();
    publish(
        &h.js,
        "repair",
        "RepairOrderOpened",
        &opened("ord-e", "cust-e"),
        Uuid::now_v7(),
        "m-1",
    )
    .await;
    let quote = rpb::QuoteIssued {
        order_id: "ord-e".into(),
        quote: Some(rpb::Quote {
            revision: 1,
            lines: vec![],
            total: Some(aftersales_proto::common::Money {
                minor_units: 12900,
                currency: "EUR".into(),
            }),
            valid_until: None,
        }),
    };
    publish(
        &h.js,
        "repair",
        "QuoteIssued",
        &quote,
        Uuid::now_v7(),
        "m-2",
    )
    .await;
    let kinds =
        |items: &[pb::Notification]| items.iter().map(|n| n.kind.clone()).collect::<Vec<_>>();
    let before = eventually(
        || inbox(&h, "cust-e"),
        |i| kinds(i).contains(&"quote_issued".to_owned()),
    )
    .await;
    assert!(!kinds(&before).contains(&"reminder_quote_waiting".to_owned()));
    h.stop().await;
    h.clock.advance(chrono::Duration::hours(49)); // due while down
    h.restart().await;
    let after = eventually(
        || inbox(&h, "cust-e"),
        |i| kinds(i).contains(&"reminder_quote_waiting".to_owned()),
    )
    .await;
    let reminder = after
        .iter()
        .find(|n| n.kind == "reminder_quote_waiting")
        .unwrap();
    assert!(reminder.body.contains("EUR 129.00"), "{}", reminder.body);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = inbox(&h, "cust-e").await;
    assert_eq!(
        kinds(&after)
            .iter()
            .filter(|k| *k == "reminder_quote_waiting")
            .count(),
        1
    );
    let reminders = h
        .smtp
        .messages()
        .iter()
        .filter(|m| m.contains("Reminder: your repair quote is waiting"))
        .count();
    assert_eq!(reminders, 1, "one reminder email");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_quote_cancels_its_reminder() {
    let mut h = Harness::start(0, |_| {}).await;
    publish(
        &h.js,
        "repair",
        "RepairOrderOpened",
        &opened("ord-f", "cust-f"),
        Uuid::now_v7(),
        "m-1",
    )
    .await;
    let quote = rpb::QuoteIssued {
        order_id: "ord-f".into(),
        quote: Some(rpb::Quote::default()),
    };
    publish(
        &h.js,
        "repair",
        "QuoteIssued",
        &quote,
        Uuid::now_v7(),
        "m-2",
    )
    .await;
    publish(
        &h.js,
        "repair",
        "QuoteApproved",
        &rpb::QuoteApproved {
            order_id: "ord-f".into(),
            revision: 1,
        },
        Uuid::now_v7(),
        "m-3",
    )
    .await;
    let items = eventually(|| inbox(&h, "cust-f"), |i| i.len() >= 2).await;
    assert_eq!(items.len(), 2);
    // Past when the reminder would have been due, and a few send passes on.
    h.clock.advance(chrono::Duration::hours(49));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        inbox(&h, "cust-f")
            .await
            .iter()
            .all(|n| n.kind != "reminder_quote_waiting"),
        "no reminder for an answered quote"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warranty_events_are_told_and_a_warranty_ending_soon_is_reminded_once() {
    use aftersales_proto::warranty as wpb;
    let mut h = Harness::start(0, |_| {}).await;
    let mut prefs = preferences("cust-w", &[pb::ChannelKind::Push]);
    prefs.push_token = "push-token-0123456789".into();
    prefs.language = "zh-CN".into();
    h.client.set_preferences(prefs).await.unwrap();
    let device = Some(aftersales_proto::common::DeviceId {
        kind: Some(aftersales_proto::common::device_id::Kind::Imei(
            "356938035643809".into(),
        )),
    });
    #[allow(clippy::disallowed_methods)]
    let ends = (chrono::Utc::now() + chrono::Duration::days(20))
        .date_naive()
        .to_string();
    let registered = wpb::DeviceRegistered {
        device_id: device.clone(),
        model: "Aurora 5".into(),
        customer_id: "cust-w".into(),
        base_warranty_end: ends.clone(),
        ..Default::default()
    };
    let event = Uuid::now_v7();
    publish(
        &h.js,
        "warranty",
        "DeviceRegistered",
        &registered,
        event,
        "m-1",
    )
    .await;
    let kinds =
        |items: &[pb::Notification]| items.iter().map(|n| n.kind.clone()).collect::<Vec<_>>();
    // Ending within 30 days: the reminder is due at once.
    let items = eventually(|| inbox(&h, "cust-w"), |i| i.len() == 2).await;
    let mut got = kinds(&items);
    got.sort();
    assert_eq!(got, ["device_registered", "reminder_warranty_expiring"]);
    let reminder = items
        .iter()
        .find(|n| n.kind == "reminder_warranty_expiring")
        .unwrap();
    assert_eq!(reminder.language, "zh-CN");
    assert!(reminder.subject.contains(&ends), "{}", reminder.subject);
    // Both went out by push, in Chinese, with the token.
    let pushed = eventually(
        || async { h.sms.requests.lock().unwrap().len() },
        |n| *n == 2,
    )
    .await;
    assert_eq!(pushed, 2);
    let bodies: Vec<String> = h
        .sms
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.2.clone())
        .collect();
    assert!(
        bodies
            .iter()
            .all(|b| b.contains("push-token-0123456789") && b.contains("\"title\"")),
        "{bodies:?}"
    );
    assert!(bodies.iter().any(|b| b.contains("已登记")), "{bodies:?}");
    // Voided: told, and the (already fired) reminder is not fired again.
    let voided = wpb::WarrantyVoided {
        device_id: device,
        customer_id: "cust-w".into(),
        reason: "tampering found".into(),
    };
    publish(
        &h.js,
        "warranty",
        "WarrantyVoided",
        &voided,
        Uuid::now_v7(),
        "m-2",
    )
    .await;
    let items = eventually(|| inbox(&h, "cust-w"), |i| i.len() == 3).await;
    assert_eq!(kinds(&items)[0], "warranty_voided");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(inbox(&h, "cust-w").await.len(), 3);
    h.stop().await;
}

/// A repair's steps waiting for the service are applied in one batch with the
/// event that opened their order: each step finds the order through the batch's
/// transaction, so the customer hears of them in order, none put back to wait
/// for a retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_in_one_batch_with_their_order_are_told_in_order() {
    let mut h = Harness::start(0, |_| {}).await;
    h.stop().await;
    // The first delivery after the start is a batch of its own; the rest arrive
    // while it is applied and wait to go together.
    publish(
        &h.js,
        "repair",
        "RepairOrderOpened",
        &opened("ord-lead", "cust-lead"),
        Uuid::now_v7(),
        "b-0",
    )
    .await;
    let order = || "ord-batch".to_owned();
    publish(
        &h.js,
        "repair",
        "RepairOrderOpened",
        &opened("ord-batch", "cust-batch"),
        Uuid::now_v7(),
        "b-1",
    )
    .await;
    let received = rpb::DeviceReceived {
        order_id: order(),
        ..Default::default()
    };
    publish(
        &h.js,
        "repair",
        "DeviceReceived",
        &received,
        Uuid::now_v7(),
        "b-2",
    )
    .await;
    let started = rpb::RepairStarted {
        order_id: order(),
        ..Default::default()
    };
    publish(
        &h.js,
        "repair",
        "RepairStarted",
        &started,
        Uuid::now_v7(),
        "b-3",
    )
    .await;
    let passed = rpb::QcPassed { order_id: order() };
    publish(&h.js, "repair", "QcPassed", &passed, Uuid::now_v7(), "b-4").await;
    let ready = rpb::ReadyForReturn {
        order_id: order(),
        ..Default::default()
    };
    publish(
        &h.js,
        "repair",
        "ReadyForReturn",
        &ready,
        Uuid::now_v7(),
        "b-5",
    )
    .await;
    h.restart().await;
    let items = eventually(|| inbox(&h, "cust-batch"), |i| i.len() >= 5).await;
    // Newest first.
    let kinds: Vec<&str> = items.iter().rev().map(|n| n.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "repair_opened",
            "device_received",
            "repair_started",
            "qc_passed",
            "ready_for_pickup"
        ]
    );
    h.stop().await;
}

/// A support case's steps reach the customer in their language: the
/// acknowledgement (which they may turn off for their channels), the answer,
/// the escalation and the resolution (which they may not); a case written down during a phone
/// call is not acknowledged, and one the platform opens says which repair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_cases_are_told_in_the_customers_language() {
    use aftersales_proto::support as spb;
    let mut h = Harness::start(0, |_| {}).await;
    let mut german = preferences("cust-s", &[]);
    german.language = "de".into();
    h.client.set_preferences(german).await.unwrap();
    let mut quiet = preferences("cust-q", &[pb::ChannelKind::Email]);
    quiet.opted_out_topics = vec!["support".into()];
    h.client.set_preferences(quiet).await.unwrap();
    let case_id = "3f2a9c1e-0000-4000-8000-000000000001";
    let opened = |customer: &str, channel: spb::Channel| spb::CaseOpened {
        case_id: case_id.into(),
        customer_id: customer.into(),
        channel: channel.into(),
        repair_order_id: "ord-s".into(),
        ..Default::default()
    };
    let replied = |customer: &str| spb::CaseReplied {
        case_id: case_id.into(),
        customer_id: customer.into(),
        agent_id: "agent-de-anna".into(),
    };
    let escalated = spb::CaseEscalated {
        case_id: case_id.into(),
        customer_id: "cust-s".into(),
        ..Default::default()
    };
    let resolved = spb::CaseResolved {
        case_id: case_id.into(),
        customer_id: "cust-s".into(),
        ..Default::default()
    };
    let js = &h.js;
    let send = |event_type: &'static str, n: u32| (event_type, format!("s-{n}"));
    for (n, channel) in [
        spb::Channel::Web,
        spb::Channel::Phone,
        spb::Channel::Platform,
    ]
    .into_iter()
    .enumerate()
    {
        let (event_type, msg_id) = send("CaseOpened", u32::try_from(n).unwrap());
        publish(
            js,
            "support",
            event_type,
            &opened("cust-s", channel),
            Uuid::now_v7(),
            &msg_id,
        )
        .await;
    }
    publish(
        js,
        "support",
        "CaseReplied",
        &replied("cust-s"),
        Uuid::now_v7(),
        "s-3",
    )
    .await;
    publish(
        js,
        "support",
        "CaseEscalated",
        &escalated,
        Uuid::now_v7(),
        "s-4",
    )
    .await;
    publish(
        js,
        "support",
        "CaseResolved",
        &resolved,
        Uuid::now_v7(),
        "s-5",
    )
    .await;
    publish(
        js,
        "support",
        "CaseOpened",
        &opened("cust-q", spb::Channel::Chat),
        Uuid::now_v7(),
        "s-6",
    )
    .await;
    publish(
        js,
        "support",
        "CaseReplied",
        &replied("cust-q"),
        Uuid::now_v7(),
        "s-7",
    )
    .await;
    // Asked how it went, with the signed link; once more for an erased
    // customer's survey, whose link is gone: nothing to send.
    let link = "https://aftersales.test/survey/5f0c7e0a-0000-4000-8000-000000000001?t=c2lnbmVk";
    let survey = |customer: &str, answer_link: &str| spb::SurveySent {
        survey_id: "5f0c7e0a-0000-4000-8000-000000000001".into(),
        customer_id: customer.into(),
        subject: spb::SurveySubject::Case.into(),
        case_id: case_id.into(),
        answer_link: answer_link.into(),
        ..Default::default()
    };
    publish(
        js,
        "support",
        "SurveySent",
        &survey("cust-s", link),
        Uuid::now_v7(),
        "s-8",
    )
    .await;
    publish(
        js,
        "support",
        "SurveySent",
        &survey("cust-s", ""),
        Uuid::now_v7(),
        "s-9",
    )
    .await;
    publish(
        js,
        "support",
        "SurveySent",
        &survey("cust-q", link),
        Uuid::now_v7(),
        "s-10",
    )
    .await;
    let told = eventually(|| inbox(&h, "cust-s"), |i| i.len() == 6).await;
    let asked = told
        .iter()
        .find(|n| n.subject == "Wie zufrieden waren Sie mit uns im Fall 3F2A9C1E?")
        .unwrap_or_else(|| panic!("{told:?}"))
        .clone();
    assert!(asked.body.contains(link), "{}", asked.body);
    let told: Vec<_> = told.into_iter().filter(|n| n.body != asked.body).collect();
    let mut subjects: Vec<_> = told.iter().map(|n| n.subject.clone()).collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "Ihr Fall 3F2A9C1E ist gelöst",
            "Ihr Fall 3F2A9C1E liegt bei unseren Spezialisten",
            "Neue Antwort in Ihrem Fall 3F2A9C1E",
            "Wir haben Ihre Anfrage erhalten (3F2A9C1E)",
            "Wir kümmern uns um Ihre Reparatur (3F2A9C1E)",
        ]
    );
    let platform = told
        .iter()
        .find(|n| n.subject.starts_with("Wir kümmern"))
        .unwrap();
    assert!(platform.body.contains("ord-s"), "{}", platform.body);
    // Opted out of support news: the inbox keeps all three, but only the
    // answer is emailed (not the acknowledgement, nor the survey).
    eventually(|| inbox(&h, "cust-q"), |i| i.len() == 3).await;
    let mail = eventually(|| async { h.smtp.messages() }, |m| !m.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mail = if mail.len() == 1 {
        h.smtp.messages()
    } else {
        mail
    };
    assert_eq!(mail.len(), 1, "only the answer is emailed");
    assert!(readable(&mail[0]).contains("New answer on your case 3F2A9C1E"));
    h.stop().await;
}
