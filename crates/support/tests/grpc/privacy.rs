//! A customer's rights over what support holds: their cases and surveys
//! exported with every word, then erased at once: the words gone from the
//! log's reading, the case's steps and clocks and the survey's score kept
//! under the pseudonymous id.

use aftersales_eventstore::personal::ERASED;
use aftersales_proto::privacy::{self as ppb, privacy_client::PrivacyClient};
use aftersales_proto::support as pb;

use crate::{Server, case_ref, case_survey_link, clock_at, entry, not_charging};

/// A customer of this test alone: the keyring is the test process's, and
/// their key is destroyed.
const WHO: &str = "cust-support-erased";

#[tokio::test]
async fn a_customers_cases_are_exported_then_their_words_erased() {
    let clock = clock_at("2026-12-01T09:00:00Z");
    let mut server = Server::start(&clock).await;
    let opened = server
        .client
        .open_case(not_charging(WHO))
        .await
        .unwrap()
        .into_inner();
    server
        .client
        .add_entry(entry(
            &opened.case_id,
            pb::EntryKind::AgentReply,
            "Bitte Kabel tauschen.",
        ))
        .await
        .unwrap();
    server
        .client
        .resolve_case(pb::ResolveCaseRequest {
            case_id: opened.case_id.clone(),
            summary: "Kabel war defekt.".into(),
        })
        .await
        .unwrap();
    let link = case_survey_link(&server, &opened.case_id).await;
    server
        .client
        .answer_survey(pb::AnswerSurveyRequest {
            survey_id: link.survey_id.clone(),
            token: link.token.clone(),
            score: 5,
            comment: "Frau Weber war sehr hilfsbereit".into(),
        })
        .await
        .unwrap();
    let mut privacy = PrivacyClient::connect(format!("http://{}", server.running.addr))
        .await
        .unwrap();
    let request = ppb::ExportCustomerDataRequest {
        customer_id: WHO.into(),
    };
    let exported = aftersales_testkit::eventually(
        || {
            let (mut privacy, request) = (privacy.clone(), request.clone());
            async move {
                privacy
                    .export_customer_data(request)
                    .await
                    .unwrap()
                    .into_inner()
            }
        },
        |e: &ppb::CustomerData| e.records.len() == 2,
    )
    .await;
    assert_eq!(exported.service, "support");
    let record = &exported.records[0];
    assert_eq!(
        (record.kind.as_str(), record.id.as_str()),
        ("support_case", opened.case_id.as_str())
    );
    assert!(
        record.json.contains("lädt seit gestern nicht mehr"),
        "{}",
        record.json
    );
    assert!(
        record.json.contains("Bitte Kabel tauschen."),
        "{}",
        record.json
    );
    let survey = &exported.records[1];
    assert_eq!(
        (survey.kind.as_str(), survey.id.as_str()),
        ("support_survey", link.survey_id.as_str())
    );
    assert!(survey.json.contains("Frau Weber"), "{}", survey.json);

    let receipt = privacy
        .erase_customer(ppb::EraseCustomerRequest {
            customer_id: WHO.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(receipt.state(), ppb::ErasureState::Done);
    let counts: Vec<u64> = receipt.erased.iter().map(|e| e.count).collect();
    assert_eq!(counts, [1, 1], "{receipt:?}");
    assert!(!receipt.kept.is_empty());

    // The case reads on, every word erased; its steps are all there.
    let detail = server
        .client
        .get_case(case_ref(&opened.case_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(detail.subject, ERASED);
    assert_eq!(detail.history.len(), 4);
    assert!(
        detail
            .history
            .iter()
            .filter(|e| !e.text.is_empty())
            .all(|e| e.text == ERASED)
    );
    let again = privacy
        .export_customer_data(request)
        .await
        .unwrap()
        .into_inner();
    assert!(
        !again.records[0].json.contains("Kabel"),
        "{}",
        again.records[0].json
    );
    // The survey's score stays; the comment and the link do not.
    assert!(
        !again.records[1].json.contains("Weber"),
        "{}",
        again.records[1].json
    );
    assert!(
        again.records[1].json.contains(ERASED),
        "{}",
        again.records[1].json
    );
    // The list comes from a read model, which may not have taken the answer yet.
    let answers = aftersales_testkit::eventually(
        || {
            let mut client = server.client.clone();
            async move {
                client
                    .list_survey_answers(pb::ListSurveyAnswersRequest {
                        group_by: pb::QualityGroup::Team.into(),
                        group_id: "de-front".into(),
                        limit: 0,
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .answers
            }
        },
        |answers: &Vec<pb::SurveyAnswer>| !answers.is_empty(),
    )
    .await;
    assert_eq!(answers.len(), 1);
    assert_eq!((answers[0].score, answers[0].comment.as_str()), (5, ERASED));
    server.stop().await;
}
