//! A customer's rights over what support holds: their cases exported with
//! every word, then erased at once: the words gone from the log's reading,
//! the case's steps and clocks kept under the pseudonymous id.

use aftersales_eventstore::personal::ERASED;
use aftersales_proto::privacy::{self as ppb, privacy_client::PrivacyClient};
use aftersales_proto::support as pb;

use crate::{Server, case_ref, clock_at, entry, not_charging};

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
        |e: &ppb::CustomerData| !e.records.is_empty(),
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

    let receipt = privacy
        .erase_customer(ppb::EraseCustomerRequest {
            customer_id: WHO.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(receipt.state(), ppb::ErasureState::Done);
    assert_eq!(receipt.erased.first().map(|e| e.count), Some(1));
    assert!(!receipt.kept.is_empty());

    // The case reads on, every word erased; its steps are all there.
    let detail = server
        .client
        .get_case(case_ref(&opened.case_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(detail.subject, ERASED);
    assert_eq!(detail.history.len(), 3);
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
    server.stop().await;
}
