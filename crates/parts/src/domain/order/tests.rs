#![allow(clippy::wildcard_enum_match_arm)]

use super::*;
use crate::domain::prices::{Price, PriceLists};

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 4).unwrap()
}

fn want(number: &str, quantity: u32) -> Wanted {
    Wanted {
        number: number.into(),
        quantity,
    }
}

fn priced(
    country: &str,
    wanted: &[Wanted],
    model: Option<&str>,
) -> Result<Vec<OrderLine>, DomainError> {
    let catalog = Catalog::builtin().unwrap();
    let lists = PriceLists::builtin(&catalog).unwrap();
    price(&catalog, lists.get(country).unwrap(), wanted, model, day())
}

fn address(country: &str) -> PostalAddress {
    PostalAddress {
        recipient: "Lena Weber".into(),
        lines: vec!["Invalidenstr. 1".into()],
        city: "Berlin".into(),
        postal_code: "10115".into(),
        country: country.into(),
        ..PostalAddress::default()
    }
}

fn place(lines: Vec<OrderLine>) -> Command {
    Command::Place {
        customer_id: "cust-1".into(),
        country: "DE".into(),
        currency: "EUR".into(),
        tax_display: TaxDisplay::Included,
        device: None,
        lines,
        address: address("DE"),
        payment_id: "pay_1".into(),
        withdrawal_days: 14,
        replacing: None,
        today: day(),
    }
}

fn run(state: Option<OrderState>, command: &Command) -> (Option<OrderState>, Vec<Event>) {
    let events = AccessoryOrder::decide(&state, command).unwrap();
    let after = events.iter().fold(state, AccessoryOrder::evolve);
    (after, events)
}

#[test]
fn a_cart_is_priced_from_the_country_list_with_its_tax() {
    let lines = priced(
        "DE",
        &[want("ACC-CHG-30W", 2), want("ACC-CBL-C1M", 1)],
        None,
    )
    .unwrap();
    // 19 % VAT, rounded half up per line: 2 × 24.90 net is 49.80 + 9.46.
    assert_eq!(
        lines[0].unit,
        Price {
            net: 2490,
            tax: 473,
            gross: 2963
        }
    );
    assert_eq!(
        lines[0].total,
        Price {
            net: 4980,
            tax: 946,
            gross: 5926
        }
    );
    assert_eq!(
        lines[1].total,
        Price {
            net: 1490,
            tax: 283,
            gross: 1773
        }
    );
    assert_eq!(
        (lines[0].kind.as_str(), lines[1].kind.as_str()),
        ("charger", "cable")
    );
    // India: rupees with 18 % GST.
    let india = priced("IN", &[want("ACC-CHG-30W", 1)], None).unwrap();
    assert_eq!(
        india[0].unit,
        Price {
            net: 148_900,
            tax: 26_802,
            gross: 175_702
        }
    );
}

#[test]
fn bad_lines_are_refused_with_the_field_named() {
    let cases = [
        (vec![], "lines"),
        (vec![want("ACC-NOPE", 1)], "lines.number"),
        (vec![want("A5-DSP", 1)], "lines.number"),
        (vec![want("ACC-CHG-30W", 0)], "lines.quantity"),
        (vec![want("ACC-CHG-30W", 11)], "lines.quantity"),
        (
            vec![want("ACC-CHG-30W", 1), want("ACC-CHG-30W", 1)],
            "lines.number",
        ),
    ];
    for (wanted, field) in cases {
        match priced("DE", &wanted, None) {
            Err(DomainError::Invalid { field: f, .. }) => assert_eq!(f, field, "{wanted:?}"),
            other => panic!("{wanted:?}: {other:?}"),
        }
    }
    // A case for another model does not fit.
    assert!(matches!(
        priced("DE", &[want("ACC-CASE-A4", 1)], Some("Aurora 5")),
        Err(DomainError::Invalid {
            field: "lines.number",
            ..
        })
    ));
    assert!(priced("DE", &[want("ACC-CASE-A5", 1)], Some("Aurora 5")).is_ok());
}

#[test]
fn an_order_is_paid_once_whatever_the_provider_repeats_and_shipped_once() {
    let lines = priced("DE", &[want("ACC-CHG-30W", 2)], None).unwrap();
    let (order, placed) = run(None, &place(lines.clone()));
    assert_eq!(placed.len(), 1);
    assert_eq!(order.as_ref().unwrap().total.gross, 5926);
    // Placed again (a retry): nothing new; other details: refused.
    assert!(run(order.clone(), &place(lines)).1.is_empty());

    let ship = |units: &[(&str, &str)]| Command::Ship {
        shipment_id: "shp-1".into(),
        units: units
            .iter()
            .map(|(number, serial)| PackedUnit {
                number: (*number).into(),
                serial: (*serial).into(),
            })
            .collect(),
        faulty_return: None,
    };
    let two = [("ACC-CHG-30W", "CHG-0001"), ("ACC-CHG-30W", "CHG-0002")];
    assert!(matches!(
        AccessoryOrder::decide(&order, &ship(&two)),
        Err(DomainError::Precondition(why)) if why.contains("waiting for its payment")
    ));

    let settle = |settlement| Command::SettlePayment {
        payment_id: "pay_1".into(),
        settlement,
    };
    // The ending out of order after the success, a stranger's payment, a redelivery.
    let (order, paid) = run(order, &settle(Settlement::Paid));
    assert_eq!(paid.len(), 1);
    for command in [
        settle(Settlement::Paid),
        settle(Settlement::Failed {
            reason: "late".into(),
        }),
        Command::SettlePayment {
            payment_id: "pay_other".into(),
            settlement: Settlement::Paid,
        },
    ] {
        assert!(run(order.clone(), &command).1.is_empty(), "{command:?}");
    }

    for (units, field) in [
        (&two[..1], "units"),
        (
            &[("ACC-CHG-30W", "CHG-0001"), ("ACC-CHG-30W", "CHG-0001")][..],
            "units.serial",
        ),
        (
            &[("ACC-CHG-30W", "CHG-0001"), ("ACC-CHG-30W", "x")][..],
            "units.serial",
        ),
        (
            &[
                ("ACC-CHG-30W", "CHG-0001"),
                ("ACC-CHG-30W", "CHG-0002"),
                ("ACC-CBL-C1M", "C-0001"),
            ][..],
            "units.number",
        ),
    ] {
        match AccessoryOrder::decide(&order, &ship(units)) {
            Err(DomainError::Invalid { field: f, .. }) => assert_eq!(f, field, "{units:?}"),
            other => panic!("{units:?}: {other:?}"),
        }
    }
    let (order, shipped) = run(order, &ship(&two));
    assert_eq!(shipped.len(), 1);
    assert!(
        run(order.clone(), &ship(&two)).1.is_empty(),
        "the same packing again"
    );
    let other = [("ACC-CHG-30W", "CHG-0003"), ("ACC-CHG-30W", "CHG-0004")];
    assert!(matches!(
        AccessoryOrder::decide(&order, &ship(&other)),
        Err(DomainError::Precondition(_))
    ));
    let delivered = Command::MarkDelivered { on: day() };
    let (order, once) = run(order, &delivered);
    assert_eq!(once.len(), 1);
    assert!(run(order, &delivered).1.is_empty());
}

#[test]
fn an_address_elsewhere_or_unprintable_is_refused() {
    let lines = priced("DE", &[want("ACC-CHG-30W", 1)], None).unwrap();
    let mut abroad = place(lines.clone());
    if let Command::Place { address: a, .. } = &mut abroad {
        *a = address("FR");
        a.postal_code = "75001".into();
        a.city = "Paris".into();
    }
    assert!(matches!(
        AccessoryOrder::decide(&None, &abroad),
        Err(DomainError::Invalid {
            field: "address.country",
            ..
        })
    ));
    let mut unprintable = place(lines);
    if let Command::Place { address: a, .. } = &mut unprintable {
        a.postal_code = "1011".into();
    }
    assert!(matches!(
        AccessoryOrder::decide(&None, &unprintable),
        Err(DomainError::Invalid {
            field: "address.postal_code",
            ..
        })
    ));
}

/// An order for two chargers, paid, shipped and delivered on `delivered`.
fn delivered(delivered: NaiveDate, withdrawal_days: u32) -> Option<OrderState> {
    let lines = priced("DE", &[want("ACC-CHG-30W", 2)], None).unwrap();
    let mut placing = place(lines);
    if let Command::Place {
        withdrawal_days: days,
        ..
    } = &mut placing
    {
        *days = withdrawal_days;
    }
    let commands = [
        placing,
        Command::SettlePayment {
            payment_id: "pay_1".into(),
            settlement: Settlement::Paid,
        },
        Command::Ship {
            shipment_id: "shp-1".into(),
            units: ["CHG-0001", "CHG-0002"]
                .iter()
                .map(|serial| PackedUnit {
                    number: "ACC-CHG-30W".into(),
                    serial: (*serial).into(),
                })
                .collect(),
            faulty_return: None,
        },
        Command::MarkDelivered { on: delivered },
    ];
    commands
        .iter()
        .fold(None, |state, command| run(state, command).0)
}

#[test]
fn a_return_within_the_withdrawal_period_is_refunded_in_full_once() {
    let on = day();
    let order = delivered(on, 14);
    assert_eq!(
        order.as_ref().unwrap().withdrawal_ends(),
        NaiveDate::from_ymd_opt(2026, 12, 18)
    );
    let request = |today| Command::RequestReturn {
        return_shipment_id: "shp-back".into(),
        today,
    };
    // The fifteenth day is too late.
    let late = NaiveDate::from_ymd_opt(2026, 12, 19).unwrap();
    assert!(matches!(
        AccessoryOrder::decide(&order, &request(late)),
        Err(DomainError::Precondition(why)) if why.contains("ended on 2026-12-18")
    ));
    let last_day = NaiveDate::from_ymd_opt(2026, 12, 18).unwrap();
    let (order, asked) = run(order, &request(last_day));
    assert_eq!(asked.len(), 1);
    assert!(
        run(order.clone(), &request(last_day)).1.is_empty(),
        "asked again"
    );
    // Not refunded before the parcel is back.
    assert!(
        run(
            order.clone(),
            &Command::SettleRefund {
                refund_id: "re_1".into()
            }
        )
        .1
        .is_empty()
    );
    let back = Command::ReceiveReturn {
        on: last_day,
        refund_id: "re_1".into(),
    };
    let (order, returned) = run(order, &back);
    assert!(matches!(
        returned.as_slice(),
        [Event::AccessoryOrderReturned {
            amount_minor: 5926,
            ..
        }]
    ));
    assert!(
        run(order.clone(), &back).1.is_empty(),
        "the parcel's news again"
    );
    let settle = |id: &str| Command::SettleRefund {
        refund_id: id.into(),
    };
    assert!(run(order.clone(), &settle("re_other")).1.is_empty());
    let (order, refunded) = run(order, &settle("re_1"));
    assert_eq!(refunded.len(), 1);
    assert!(
        run(order.clone(), &settle("re_1")).1.is_empty(),
        "refunded once"
    );
    assert_eq!(order.unwrap().stage(), Stage::Refunded);
}

#[test]
fn no_return_before_delivery_or_where_the_law_gives_no_right() {
    let lines = priced("DE", &[want("ACC-CHG-30W", 1)], None).unwrap();
    let (placed, _) = run(None, &place(lines));
    let request = Command::RequestReturn {
        return_shipment_id: "shp-back".into(),
        today: day(),
    };
    assert!(matches!(
        AccessoryOrder::decide(&placed, &request),
        Err(DomainError::Precondition(why)) if why.contains("follows its delivery")
    ));
    let no_right = delivered(day(), 0);
    assert!(matches!(
        AccessoryOrder::decide(&no_right, &request),
        Err(DomainError::Precondition(why)) if why.contains("no right to withdraw")
    ));
}

/// A replacement of charger CHG-OLD for a phone, as warranty judged it.
fn replacement(covered: bool, return_faulty: bool) -> Command {
    let lines = priced("DE", &[want("ACC-CHG-30W", 1)], None).unwrap();
    let mut placing = place(lines);
    if let Command::Place {
        device,
        replacing,
        payment_id,
        ..
    } = &mut placing
    {
        *device = Some("imei:490154203237518".into());
        *replacing = Some(Replacing {
            faulty_serial: "CHG-OLD".into(),
            fault: "charging".into(),
            covered,
            reason: if covered {
                "within_base_warranty"
            } else {
                "expired"
            }
            .into(),
            return_faulty,
        });
        if covered {
            payment_id.clear();
        }
    }
    placing
}

fn label() -> Label {
    Label {
        shipment_id: "shp-back".into(),
        carrier: "sandbox".into(),
        tracking_number: "SBX123".into(),
    }
}

#[test]
fn a_covered_replacement_costs_nothing_and_asks_the_faulty_unit_back() {
    let (order, _) = run(None, &replacement(true, true));
    let state = order.clone().unwrap();
    assert_eq!(state.stage(), Stage::Paid, "nothing to pay: ready to pack");
    assert_eq!(state.payment, Payment::NotDue);
    assert_eq!(state.total, Price::default());
    assert_eq!(
        state.list_value().gross,
        2963,
        "what the customer did not pay"
    );
    assert_eq!(state.withdrawal_ends(), None);

    let unit = vec![PackedUnit {
        number: "ACC-CHG-30W".into(),
        serial: "CHG-NEW1".into(),
    }];
    let ship = |faulty_return| Command::Ship {
        shipment_id: "shp-1".into(),
        units: unit.clone(),
        faulty_return,
    };
    assert!(matches!(
        AccessoryOrder::decide(&order, &ship(None)),
        Err(DomainError::Precondition(why)) if why.contains("label goes with")
    ));
    let (order, _) = run(order, &ship(Some(label())));
    let receive = Command::ReceiveFaulty {
        shipment_id: "shp-back".into(),
        on: day(),
    };
    let (order, received) = run(order, &receive);
    assert!(matches!(
        received.as_slice(),
        [Event::FaultyAccessoryReceived { .. }]
    ));
    assert!(run(order.clone(), &receive).1.is_empty(), "received once");
    let other = Command::ReceiveFaulty {
        shipment_id: "shp-other".into(),
        on: day(),
    };
    assert!(matches!(
        AccessoryOrder::decide(&order, &other),
        Err(DomainError::NotFound(_))
    ));
    let (order, _) = run(order, &Command::MarkDelivered { on: day() });
    let withdraw = Command::RequestReturn {
        return_shipment_id: "shp-r".into(),
        today: day(),
    };
    assert!(matches!(
        AccessoryOrder::decide(&order, &withdraw),
        Err(DomainError::Precondition(why)) if why.contains("not sold")
    ));
}

#[test]
fn a_replacement_out_of_warranty_is_paid_and_asked_again_only_after_a_failed_payment() {
    let (order, _) = run(None, &replacement(false, false));
    let state = order.clone().unwrap();
    assert_eq!(state.stage(), Stage::AwaitingPayment);
    assert_eq!(state.total.gross, 2963);
    // Asked again while its payment is under way: refused, naming the serial.
    let mut again = replacement(false, false);
    if let Command::Place { address: a, .. } = &mut again {
        a.city = "Potsdam".into();
    }
    assert!(matches!(
        AccessoryOrder::decide(&order, &again),
        Err(DomainError::Precondition(why)) if why.contains("CHG-OLD is being replaced")
    ));
    let failed = Command::SettlePayment {
        payment_id: "pay_1".into(),
        settlement: Settlement::Failed {
            reason: "declined".into(),
        },
    };
    let (order, _) = run(order, &failed);
    if let Command::Place { payment_id, .. } = &mut again {
        *payment_id = "pay_2".into();
    }
    let (order, placed) = run(order, &again);
    assert_eq!(placed.len(), 1, "a new attempt after the failed payment");
    let state = order.unwrap();
    assert_eq!(state.stage(), Stage::AwaitingPayment);
    assert_eq!(
        state.payment,
        Payment::Pending {
            payment_id: "pay_2".into()
        }
    );
}

#[test]
fn a_replacement_is_one_unit_for_a_phone() {
    let mut two = replacement(true, false);
    if let Command::Place { lines, .. } = &mut two {
        *lines = priced("DE", &[want("ACC-CHG-30W", 2)], None).unwrap();
    }
    assert!(matches!(
        AccessoryOrder::decide(&None, &two),
        Err(DomainError::Invalid { field: "lines", .. })
    ));
    let mut no_phone = replacement(true, false);
    if let Command::Place { device, .. } = &mut no_phone {
        *device = None;
    }
    assert!(AccessoryOrder::decide(&None, &no_phone).is_err());
}
