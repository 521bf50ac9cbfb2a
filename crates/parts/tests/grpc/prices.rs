//! Published price lists and quotes from them: tax as each country shows it,
//! technicians' prices with their reasons, and what a covered repair is worth.

use aftersales_proto::common::Money;
use aftersales_proto::parts as pb;
use aftersales_runtime::errors::field_violations;
use tonic::Code;

use crate::{Server, country};

fn march_2026() -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: 1_772_712_000, // 2026-03-05
        nanos: 0,
    })
}

fn money(m: &Option<Money>) -> (i64, &str) {
    let m = m.as_ref().unwrap();
    (m.minor_units, m.currency.as_str())
}

fn quote(model: &str, code: &str, fault: &str) -> pb::ProposeQuoteRequest {
    pb::ProposeQuoteRequest {
        model: model.into(),
        country: country(code),
        fault: fault.into(),
        covered: false,
        overrides: Vec::new(),
        as_of: march_2026(),
    }
}

#[tokio::test]
async fn the_german_price_list_shows_prices_with_vat_by_version() {
    let mut server = Server::start().await;
    let request = |as_of| pb::GetRepairPriceListRequest {
        model: "Aurora 5".into(),
        country: country("DE"),
        as_of,
    };
    let list = server
        .client
        .get_repair_price_list(request(march_2026()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((list.currency.as_str(), list.version), ("EUR", 1));
    let tax = list.tax.unwrap();
    assert_eq!(
        (tax.name.as_str(), tax.rate_basis_points, tax.display()),
        ("MwSt.", 1900, pb::TaxDisplay::Included)
    );
    assert_eq!(list.lines.len(), 12);
    let display = list.lines.iter().find(|l| l.fault == "display").unwrap();
    assert_eq!(display.part_numbers, ["A5-DSP"]);
    // 158.90 net + 19 % (30.19) = 189.09; 40 minutes at 60.00/h = 40.00 + 7.60.
    let parts = display.parts.as_ref().unwrap();
    assert_eq!(money(&parts.net), (15890, "EUR"));
    assert_eq!(money(&parts.tax), (3019, "EUR"));
    assert_eq!(
        money(&display.labour.as_ref().unwrap().gross),
        (4760, "EUR")
    );
    assert_eq!(
        money(&display.total.as_ref().unwrap().shown),
        (23669, "EUR")
    );

    // From July 2026 the second version is in force.
    let july = Some(prost_types::Timestamp {
        seconds: 1_783_000_000,
        nanos: 0,
    });
    let later = server
        .client
        .get_repair_price_list(request(july))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (later.version, later.valid_from.as_str()),
        (2, "2026-07-01")
    );

    // Unknown models and countries without a list are NOT_FOUND; a malformed country is invalid.
    for (model, code, expected) in [
        ("Aurora 9", "DE", Code::NotFound),
        ("Aurora 5", "BR", Code::NotFound),
        ("Aurora 5", "de", Code::InvalidArgument),
    ] {
        let refused = server
            .client
            .get_repair_price_list(pb::GetRepairPriceListRequest {
                model: model.into(),
                country: country(code),
                as_of: None,
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), expected, "{model} {code}: {refused:?}");
    }
}

#[tokio::test]
async fn a_quote_comes_from_the_list_in_each_country_with_its_own_tax() {
    let mut server = Server::start().await;
    let de = server
        .client
        .propose_quote(quote("Aurora 5", "DE", "display"))
        .await
        .unwrap()
        .into_inner();
    let lines: Vec<_> = de
        .lines
        .iter()
        .map(|l| (l.line.as_str(), l.is_labour))
        .collect();
    assert_eq!(lines, [("A5-DSP", false), ("labour", true)]);
    assert_eq!(money(&de.customer_pays), (23669, "EUR"));
    assert_eq!(money(&de.covered_value), (0, "EUR"));

    // The same repair in India: rupees, GST at 18 % included in what is shown.
    let india = server
        .client
        .propose_quote(quote("Aurora 5", "IN", "display"))
        .await
        .unwrap()
        .into_inner();
    let tax = india.tax.as_ref().unwrap();
    assert_eq!((tax.name.as_str(), tax.rate_basis_points), ("GST", 1800));
    // 9,539.00 net + 1,717.02 GST; labour 40 min at 1,200.00/h = 800.00 + 144.00.
    let total = india.total.as_ref().unwrap();
    assert_eq!(money(&total.net), (953_900 + 80_000, "INR"));
    assert_eq!(money(&total.tax), (171_702 + 14_400, "INR"));
    assert_eq!(money(&india.customer_pays), (1_220_002, "INR"));

    // In the United States the price is shown before sales tax.
    let us = server
        .client
        .propose_quote(quote("Aurora 5", "US", "battery"))
        .await
        .unwrap()
        .into_inner();
    let total = us.total.as_ref().unwrap();
    assert_eq!(money(&total.shown), money(&total.net));
    assert_eq!(us.tax.unwrap().display(), pb::TaxDisplay::Excluded);
}

#[tokio::test]
async fn a_technicians_price_needs_a_reason_and_the_countrys_currency() {
    let mut server = Server::start().await;
    let with = |line: &str, net: Money, reason: &str| {
        let mut request = quote("Aurora 5", "DE", "display");
        request.overrides.push(pb::PriceOverride {
            line: line.into(),
            net: Some(net),
            reason: reason.into(),
        });
        request
    };
    let eur = |minor_units| Money {
        minor_units,
        currency: "EUR".into(),
    };
    let cases = [
        (with("labour", eur(2000), ""), "overrides.reason"),
        (
            with(
                "labour",
                Money {
                    minor_units: 2000,
                    currency: "INR".into(),
                },
                "loyal customer",
            ),
            "overrides.net.currency",
        ),
        (with("labour", eur(-1), "loyal customer"), "overrides.net"),
        (
            with("A5-BAT", eur(100), "not on this quote"),
            "overrides.line",
        ),
    ];
    for (request, field) in cases {
        let refused = server.client.propose_quote(request).await.unwrap_err();
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "{field}: {refused:?}"
        );
        let violations = field_violations(&refused);
        assert_eq!(violations[0].0, field, "{violations:?}");
    }
    let changed = server
        .client
        .propose_quote(with("labour", eur(2000), "Second visit for the same fault"))
        .await
        .unwrap()
        .into_inner();
    let labour = changed.lines.iter().find(|l| l.is_labour).unwrap();
    assert_eq!(labour.override_reason, "Second visit for the same fault");
    assert_eq!(
        money(&labour.list_price.as_ref().unwrap().net),
        (4000, "EUR")
    );
    assert_eq!(
        money(&labour.charged.as_ref().unwrap().gross),
        (2380, "EUR")
    );
    assert_eq!(money(&changed.customer_pays), (18909 + 2380, "EUR"));
}

#[tokio::test]
async fn a_covered_repair_shows_the_price_the_customer_did_not_pay() {
    let mut server = Server::start().await;
    let mut request = quote("Aurora 5 Pro", "FR", "battery");
    request.covered = true;
    let covered = server
        .client
        .propose_quote(request)
        .await
        .unwrap()
        .into_inner();
    let total = covered.total.as_ref().unwrap();
    assert_eq!(money(&covered.customer_pays), (0, "EUR"));
    assert_eq!(covered.covered_value, total.shown);
    assert!(money(&covered.covered_value).0 > 0);

    let refused = server
        .client
        .propose_quote(quote("Aurora 5", "DE", "spilled coffee"))
        .await
        .unwrap_err();
    assert_eq!(field_violations(&refused)[0].0, "fault");
}
