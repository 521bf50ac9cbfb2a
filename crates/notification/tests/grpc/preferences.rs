//! Preferences, the inbox, the live stream and the operator's resend over gRPC.

use aftersales_proto::notification as pb;
use aftersales_testkit::eventually;
use tonic::Code;
use uuid::Uuid;

use crate::{Harness, notification_id, opened, preferences, publish};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_preferences_are_refused_and_change_nothing() {
    let mut h = Harness::start(0, |_| {}).await;
    let good = preferences("cust-p", &[pb::ChannelKind::Email, pb::ChannelKind::Sms]);
    let saved = h
        .client
        .set_preferences(good.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(saved.version, 1);
    let mut cases: Vec<(pb::Preferences, &str)> = Vec::new();
    let mut p = good.clone();
    p.email = "not-an-email".into();
    cases.push((p, "email"));
    let mut p = good.clone();
    p.phone = "0301234".into();
    cases.push((p, "phone"));
    let mut p = good.clone();
    p.channels.push(i32::from(pb::ChannelKind::Push));
    cases.push((p, "channels"));
    let mut p = good.clone();
    p.opted_out_topics = vec!["gossip".into()];
    cases.push((p, "opted_out_topics"));
    let mut p = good.clone();
    p.quiet_hours = Some(pb::QuietHours {
        start: "22:00".into(),
        end: "07:00".into(),
        time_zone: "Moon/Base".into(),
    });
    cases.push((p, "quiet_hours.time_zone"));
    let mut p = good.clone();
    p.quiet_hours = Some(pb::QuietHours {
        start: "25:00".into(),
        end: "07:00".into(),
        time_zone: "Europe/Berlin".into(),
    });
    cases.push((p, "quiet_hours.start"));
    let mut p = good.clone();
    p.language = "klingon language".into();
    cases.push((p, "language"));
    let mut p = good.clone();
    p.customer_id = " ".into();
    cases.push((p, "customer_id"));
    for (request, field) in cases {
        let status = h.client.set_preferences(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            status.message().starts_with(field),
            "{field}: {}",
            status.message()
        );
    }
    let now = h
        .client
        .get_preferences(pb::CustomerRef {
            customer_id: "cust-p".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now, saved, "nothing refused was stored");
    let unknown = h
        .client
        .get_preferences(pb::CustomerRef {
            customer_id: "someone-new".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (unknown.version, unknown.language.as_str()),
        (0, "en"),
        "defaults"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_pages_marks_read_streams_live_and_an_operator_can_resend() {
    let mut h = Harness::start(0, |_| {}).await;
    h.client
        .set_preferences(preferences("cust-q", &[pb::ChannelKind::Email]))
        .await
        .unwrap();
    let mut watch = h
        .client
        .watch_notifications(pb::CustomerRef {
            customer_id: "cust-q".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let opened_event = Uuid::now_v7();
    publish(
        &h.js,
        "repair",
        "RepairOrderOpened",
        &opened("ord-q", "cust-q"),
        opened_event,
        "m-1",
    )
    .await;
    for (i, kind) in ["RepairStarted", "QcPassed"].iter().enumerate() {
        let started = aftersales_proto::repair::RepairStarted {
            order_id: "ord-q".into(),
            ..Default::default()
        };
        publish(
            &h.js,
            "repair",
            kind,
            &started,
            Uuid::now_v7(),
            &format!("m-{}", i + 2),
        )
        .await;
    }
    // Each message live, in order, however the consumer batched their events.
    for expected in ["repair_opened", "repair_started", "qc_passed"] {
        let live = tokio::time::timeout(std::time::Duration::from_secs(20), watch.message())
            .await
            .unwrap_or_else(|_| panic!("{expected} live"))
            .unwrap()
            .unwrap();
        assert_eq!(live.kind, expected);
    }
    let lister = h.client.clone();
    let list = |token: String| {
        let mut c = lister.clone();
        async move {
            c.list_notifications(pb::ListNotificationsRequest {
                customer_id: "cust-q".into(),
                page_size: 2,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner()
        }
    };
    // Both pages, once all three have arrived.
    let pages = || async {
        let first = list(String::new()).await;
        let second = list(first.next_page_token.clone()).await;
        (first, second)
    };
    let (first, second) = eventually(pages, |(first, second)| {
        let mut kinds: Vec<_> = first
            .notifications
            .iter()
            .chain(&second.notifications)
            .map(|n| n.kind.as_str())
            .collect();
        kinds.sort_unstable();
        // Both pages read after the last arrival (one read between them
        // sees a shorter list, and pages it so).
        first.notifications.len() == 2 && kinds == ["qc_passed", "repair_opened", "repair_started"]
    })
    .await;
    assert_eq!(first.unread, 3);
    assert_eq!(
        (first.notifications.len(), second.notifications.len()),
        (2, 1)
    );
    // Newest first, by arrival: a delivery JetStream hands out again after an
    // interrupted consumer arrives after later ones, and is listed so.
    let arrived: Vec<_> = first
        .notifications
        .iter()
        .chain(&second.notifications)
        .map(|n| n.created_at.as_ref().map(|t| (t.seconds, t.nanos)))
        .collect();
    assert!(
        arrived.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {arrived:?}"
    );
    assert_eq!(second.notifications[0].kind, "repair_opened");

    let id = second.notifications[0].notification_id.clone();
    let foreign = h
        .client
        .mark_read(pb::MarkReadRequest {
            customer_id: "cust-other".into(),
            notification_ids: vec![id.clone()],
        })
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound, "someone else's inbox");
    let marked = h
        .client
        .mark_read(pb::MarkReadRequest {
            customer_id: "cust-q".into(),
            notification_ids: vec![id.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(marked.marked, 1);
    let after = eventually(|| list(String::new()), |p| p.unread == 2).await;
    assert_eq!(after.unread, 2);

    // The operator resends the email: a second one goes, recorded as attempt 2.
    let email = notification_id(opened_event, "email");
    eventually(|| async { h.smtp.messages().len() }, |n| *n >= 1).await;
    let resent = h
        .client
        .resend_notification(pb::ResendRequest {
            notification_id: email.clone(),
            reason: "customer lost it".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resent.notification.unwrap().status, "scheduled");
    let d = eventually(
        || {
            let mut c = h.client.clone();
            let email = email.clone();
            async move {
                c.get_delivery(pb::NotificationRef {
                    notification_id: email,
                })
                .await
                .unwrap()
                .into_inner()
            }
        },
        |d| d.attempts.len() == 2 && d.attempts[1].outcome == "delivered",
    )
    .await;
    assert_eq!(d.attempts.len(), 2);
    // Delivered again at once; resending it again straight away is refused.
    let flood = h
        .client
        .resend_notification(pb::ResendRequest {
            notification_id: email.clone(),
            reason: "and again".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(flood.code(), Code::ResourceExhausted, "{flood:?}");
    let missing = h
        .client
        .get_delivery(pb::NotificationRef {
            notification_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let inbox_resend = h
        .client
        .resend_notification(pb::ResendRequest {
            notification_id: id,
            reason: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(inbox_resend.code(), Code::FailedPrecondition);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferences_retried_with_their_command_id_are_saved_once() {
    use aftersales_runtime::request::with_command_id;
    let mut h = Harness::start(0, |_| {}).await;
    let command_id = Uuid::new_v4();
    let good = preferences("cust-idem", &[pb::ChannelKind::Email]);
    let first = h
        .client
        .set_preferences(with_command_id(good.clone(), command_id))
        .await
        .unwrap()
        .into_inner();
    let again = h
        .client
        .set_preferences(with_command_id(good.clone(), command_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.version, 1);
    assert_eq!(again, first, "the retry answers what the first call saved");

    let mut other = good.clone();
    other.language = "de".into();
    let reused = h
        .client
        .set_preferences(with_command_id(other, command_id))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists, "{reused:?}");
    let saved = h
        .client
        .get_preferences(pb::CustomerRef {
            customer_id: "cust-idem".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(saved.version, 1, "nothing more was saved");
    assert_eq!(saved.language, first.language);

    // Preferences hold contact data: they never leave the service. A relay would
    // have published them within milliseconds.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let stream = aftersales_messaging::Names::new("test")
        .unwrap()
        .service_stream("notification");
    let mut stream = h.js.get_stream(stream).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 0);
    h.stop().await;
}
