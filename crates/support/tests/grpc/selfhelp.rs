//! Self-diagnosis and software updates over gRPC: a walk in German that ends in
//! a repair with its fault filled in, one that ends in the build that fixes
//! the problem (and, on a phone already running it, in a repair instead), the
//! phone's software status, and bad input refused.

use aftersales_proto::support as pb;
use aftersales_runtime::errors::field_violations;
use tonic::Code;

use crate::{Server, clock_at, country};

const IMEI: &str = "490154203237518";

fn start(tree: &str, language: &str, imei: &str) -> pb::StartSelfHelpRequest {
    pb::StartSelfHelpRequest {
        tree_id: tree.into(),
        language: language.into(),
        device_imei: imei.into(),
    }
}

fn answer(step: &pb::SelfHelpStep, n: u32) -> pb::AnswerSelfHelpRequest {
    pb::AnswerSelfHelpRequest {
        session_id: step.session_id.clone(),
        answer: n,
    }
}

fn report(build: &str, country_code: &str) -> pb::ReportSoftwareBuildRequest {
    pb::ReportSoftwareBuildRequest {
        device_imei: IMEI.into(),
        model: "Aurora 5".into(),
        build: build.into(),
        country: country(country_code),
    }
}

#[tokio::test]
async fn a_walk_in_german_ends_in_a_repair_with_its_fault_filled_in() {
    let clock = clock_at("2026-12-05T09:00:00Z");
    let mut server = Server::start(&clock).await;
    let c = &mut server.client;
    let trees = c
        .list_self_help(pb::ListSelfHelpRequest {
            language: "de".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .trees;
    assert!(trees.iter().any(|t| t.title == "Mein Telefon lädt nicht"));
    let first = c
        .start_self_help(start("not-charging", "de", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first.question,
        "Lädt es mit einem anderen Kabel und Ladegerät?"
    );
    assert_eq!(first.answers, ["Ja", "Nein"]);
    let port = c
        .answer_self_help(answer(&first, 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(port.answers.len(), 3);
    let safe = c
        .answer_self_help(answer(&port, 0))
        .await
        .unwrap()
        .into_inner();
    let end = c
        .answer_self_help(answer(&safe, 1))
        .await
        .unwrap()
        .into_inner();
    assert!(end.ended && !end.deflected);
    let outcome = end.outcome.clone().unwrap();
    assert_eq!(
        (outcome.kind.as_str(), outcome.fault.as_str()),
        ("repair", "charging")
    );
    // Ended: no more answers, and it says why.
    let again = c.answer_self_help(answer(&end, 0)).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    // The lint answer ends in the article, deflected.
    let first = c
        .start_self_help(start("not-charging", "de", ""))
        .await
        .unwrap()
        .into_inner();
    let port = c
        .answer_self_help(answer(&first, 1))
        .await
        .unwrap()
        .into_inner();
    let read = c
        .answer_self_help(answer(&port, 1))
        .await
        .unwrap()
        .into_inner();
    let outcome = read.outcome.unwrap();
    assert!(read.deflected);
    assert_eq!(
        (
            outcome.kind.as_str(),
            outcome.article_id.as_str(),
            outcome.article_title.as_str()
        ),
        ("article", "not-charging", "Ihr Telefon lädt nicht")
    );
    // Two walks, one deflected and one ending in a repair, and one just begun.
    c.start_self_help(start("not-charging", "en", ""))
        .await
        .unwrap();
    let figures = aftersales_testkit::eventually(
        || {
            let mut c = server.client.clone();
            async move {
                c.get_self_help_figures(pb::GetSelfHelpFiguresRequest { from: None })
                    .await
                    .unwrap()
                    .into_inner()
                    .trees
            }
        },
        |trees| {
            trees
                .first()
                .is_some_and(|t| t.started == 3 && t.ended == 2)
        },
    )
    .await;
    let t = &figures[0];
    assert_eq!(
        (t.tree_id.as_str(), t.deflected, t.repairs),
        ("not-charging", 1, 1)
    );
    server.stop().await;
}

#[tokio::test]
async fn a_walk_ends_in_the_build_that_fixes_the_phone() {
    let clock = clock_at("2026-12-05T09:00:00Z");
    let mut server = Server::start(&clock).await;
    let c = &mut server.client;
    // A German Aurora 5 on the September build.
    let status = c
        .report_software_build(report("A5-2026.09.1", "DE"))
        .await
        .unwrap()
        .into_inner();
    assert!(!status.current && status.supported);
    assert_eq!(status.latest_build, "A5-2026.11.1");
    assert!(status.supported_until.is_empty(), "still sold: no end yet");
    let loop_fix = status
        .fixes_waiting
        .iter()
        .find(|f| f.issue == "restart-loop-after-update")
        .unwrap();
    assert_eq!(loop_fix.build, "A5-2026.10.2");

    let walk =
        |c: &mut aftersales_proto::support::support_service_client::SupportServiceClient<_>| {
            let mut c = c.clone();
            async move {
                let first = c
                    .start_self_help(start("restarts-after-update", "en", IMEI))
                    .await
                    .unwrap()
                    .into_inner();
                let starts = c
                    .answer_self_help(answer(&first, 0))
                    .await
                    .unwrap()
                    .into_inner();
                c.answer_self_help(answer(&starts, 0))
                    .await
                    .unwrap()
                    .into_inner()
            }
        };
    let end = walk(c).await;
    let outcome = end.outcome.unwrap();
    assert!(end.deflected);
    assert_eq!(
        (
            outcome.kind.as_str(),
            outcome.build.as_str(),
            outcome.issue_title.as_str()
        ),
        (
            "update",
            "A5-2026.10.2",
            "The phone restarts again and again after an update"
        )
    );
    // Once it runs a build with the fix, updating cannot help: a repair of its software.
    c.report_software_build(report("A5-2026.11.1", "DE"))
        .await
        .unwrap();
    let end = walk(c).await;
    let outcome = end.outcome.unwrap();
    assert_eq!(
        (outcome.kind.as_str(), outcome.fault.as_str()),
        ("repair", "software")
    );
    // China gets its own build.
    c.report_software_build(report("A5-2026.10.2", "CN"))
        .await
        .unwrap();
    let status = c
        .get_software_status(pb::GetSoftwareStatusRequest {
            device_imei: IMEI.into(),
            language: "zh-CN".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.latest_build, "A5-2026.11.1-CN");
    assert_eq!(status.fixes_waiting[0].title, "连接部分路由器时 Wi-Fi 断开");
    server.stop().await;
}

#[tokio::test]
async fn bad_self_help_input_names_the_field_and_writes_nothing() {
    let clock = clock_at("2026-12-05T09:00:00Z");
    let mut server = Server::start(&clock).await;
    let first = server
        .client
        .start_self_help(start("not-charging", "en", ""))
        .await
        .unwrap()
        .into_inner();
    let before = server.events("").await;
    let c = &mut server.client;
    let field = |status: tonic::Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        field_violations(&status)
            .first()
            .map(|(f, _)| f.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        field(
            c.start_self_help(start("no-such-tree", "en", ""))
                .await
                .unwrap_err()
        ),
        "tree_id"
    );
    assert_eq!(
        field(
            c.start_self_help(start("not-charging", "fr", ""))
                .await
                .unwrap_err()
        ),
        "language"
    );
    assert_eq!(
        field(c.answer_self_help(answer(&first, 7)).await.unwrap_err()),
        "answer"
    );
    let mut bad_imei = report("A5-2026.09.1", "DE");
    bad_imei.device_imei = "123".into();
    assert_eq!(
        field(c.report_software_build(bad_imei).await.unwrap_err()),
        "device_imei"
    );
    let mut model = report("A5-2026.09.1", "DE");
    model.model = "Nokia 3310".into();
    assert_eq!(
        field(c.report_software_build(model).await.unwrap_err()),
        "model"
    );
    assert_eq!(
        field(
            c.report_software_build(report("A5-2026.09.1", "Germany"))
                .await
                .unwrap_err()
        ),
        "country"
    );
    let unknown = c
        .get_software_status(pb::GetSoftwareStatusRequest {
            device_imei: IMEI.into(),
            language: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(server.events("").await, before);
    server.stop().await;
}
