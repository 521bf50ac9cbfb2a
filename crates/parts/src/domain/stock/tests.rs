#![allow(clippy::wildcard_enum_match_arm)]

use proptest::prelude::*;

use super::*;

fn run(state: &StockState, command: Command) -> (StockState, Vec<Event>) {
    let events = Stock::decide(state, &command).unwrap();
    let after = events.iter().fold(state.clone(), Stock::evolve);
    (after, events)
}

fn restock(order: &str) -> Restock {
    Restock {
        replenishment_id: format!("r-{order}"),
        ordered_at: "2026-12-07T09:00:00Z".parse().unwrap(),
        due_by: NaiveDate::from_ymd_opt(2026, 12, 21).unwrap(),
    }
}

fn reserve(order: &str) -> Command {
    Command::Reserve {
        order: order.into(),
        quantity: 1,
        restock: restock(order),
    }
}

fn receive(quantity: u32) -> Command {
    Command::Receive {
        quantity,
        replenishment_id: None,
    }
}

#[test]
fn the_last_unit_goes_to_one_order_and_the_next_waits_in_line() {
    let (state, _) = run(&StockState::default(), receive(1));
    let (state, first) = run(&state, reserve("o-1"));
    assert!(
        matches!(&first[..], [Event::PartReserved { order, from_waitlist: false, .. }] if order == "o-1")
    );
    let (state, second) = run(&state, reserve("o-2"));
    // Nothing free or on order: the depot is asked for one, due by the law's day.
    assert!(matches!(
        &second[..],
        [
            Event::ReplenishmentOrdered { quantity: 1, .. },
            Event::PartBackordered { order, expected_on: Some(day), .. },
        ] if order == "o-2" && day.to_string() == "2026-12-21"
    ));
    let (state, _) = run(&state, reserve("o-3"));
    assert_eq!(state.position("o-3"), Some(2));
    // Asking again changes nothing.
    assert!(Stock::decide(&state, &reserve("o-2")).unwrap().is_empty());

    let (state, released) = run(
        &state,
        Command::Release {
            order: "o-1".into(),
            reason: "cancelled".into(),
        },
    );
    assert!(matches!(
        &released[..],
        [
            Event::ReservationReleased { order: a, was_waiting: false, .. },
            Event::PartReserved { order: b, from_waitlist: true, .. },
        ] if a == "o-1" && b == "o-2"
    ));
    assert_eq!(state.position("o-3"), Some(1));
    assert_eq!(state.available(), 0);
}

#[test]
fn a_delivery_serves_the_line_oldest_first_and_nobody_jumps_it() {
    let mut state = StockState::default();
    for command in [
        Command::Reserve {
            order: "big".into(),
            quantity: 3,
            restock: restock("big"),
        },
        reserve("small"),
    ] {
        state = run(&state, command).0;
    }
    // Two free units: not enough for the oldest, so the younger waits too.
    let (state, events) = run(&state, receive(2));
    assert_eq!(events.len(), 1, "{events:?}");
    let (state, _) = run(&state, reserve("newcomer"));
    assert_eq!(state.position("newcomer"), Some(3));
    let (state, events) = run(&state, receive(2));
    let served: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::PartReserved { order, .. } => Some(order.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(served, ["big", "small"]);
    assert_eq!(state.waiting.len(), 1);
}

#[test]
fn a_part_is_fitted_only_from_a_reservation() {
    let (state, _) = run(&StockState::default(), receive(1));
    let consume = |order: &str| Command::Consume {
        order: order.into(),
        serial: "SN-1".into(),
    };
    let refused = Stock::decide(&state, &consume("o-1")).unwrap_err();
    assert!(matches!(refused, DomainError::Precondition(ref why) if why.contains("holds no unit")));
    let (state, _) = run(&state, reserve("o-1"));
    let (state, _) = run(&state, consume("o-1"));
    assert_eq!((state.on_hand, state.reserved_total()), (0, 0));
    // Releasing after fitting lets nothing go.
    let release = Command::Release {
        order: "o-1".into(),
        reason: "closed".into(),
    };
    assert!(Stock::decide(&state, &release).unwrap().is_empty());
}

#[test]
fn low_stock_is_reported_once_per_fall_to_the_reorder_point() {
    let (state, _) = run(&StockState::default(), receive(3));
    let (state, _) = run(&state, Command::SetReorderPoint { point: 1 });
    let (state, events) = run(&state, reserve("o-1"));
    assert!(!events.iter().any(|e| matches!(e, Event::StockLow { .. })));
    let (state, events) = run(&state, reserve("o-2"));
    assert!(matches!(
        events.last(),
        Some(Event::StockLow {
            available: 1,
            reorder_point: 1,
            ..
        })
    ));
    let (state, events) = run(&state, reserve("o-3"));
    assert!(
        !events.iter().any(|e| matches!(e, Event::StockLow { .. })),
        "{events:?}"
    );
    // Refilled above the point, then down again: a second report.
    let (state, _) = run(&state, receive(5));
    assert!(!state.low);
    let (_, events) = run(
        &state,
        Command::Reserve {
            order: "o-4".into(),
            quantity: 4,
            restock: restock("o-4"),
        },
    );
    assert!(matches!(events.last(), Some(Event::StockLow { .. })));
}

#[test]
fn a_replenishment_past_its_legal_day_is_flagged_once() {
    let ordered_at = "2026-12-04T09:00:00Z".parse().unwrap();
    let day = |d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
    let (state, _) = run(
        &StockState::default(),
        Command::OrderReplenishment {
            replenishment_id: "r-1".into(),
            quantity: 5,
            ordered_at,
            expected_on: day(9),
            due_by: add_working_days(day(4), 10),
        },
    );
    assert_eq!(state.on_order(), 5);
    // Ten working days from Friday 4 December: Friday 18 December.
    assert_eq!(state.replenishments["r-1"].due_by, day(18));
    assert!(
        run(&state, Command::FlagOverdue { today: day(18) })
            .1
            .is_empty()
    );
    let (state, events) = run(&state, Command::FlagOverdue { today: day(19) });
    assert_eq!(events.len(), 1);
    assert!(
        run(&state, Command::FlagOverdue { today: day(21) })
            .1
            .is_empty()
    );
    let (state, _) = run(
        &state,
        Command::Receive {
            quantity: 5,
            replenishment_id: Some("r-1".into()),
        },
    );
    assert_eq!((state.on_hand, state.on_order()), (5, 0));
}

#[test]
fn bad_quantities_and_unknown_replenishments_are_refused() {
    let state = StockState::default();
    for command in [
        receive(0),
        receive(MAX_QUANTITY + 1),
        Command::Reserve {
            order: "o".into(),
            quantity: 0,
            restock: restock("o"),
        },
    ] {
        let error = Stock::decide(&state, &command).unwrap_err();
        assert!(
            matches!(
                error,
                DomainError::Invalid {
                    field: "quantity",
                    ..
                }
            ),
            "{error}"
        );
    }
    let unknown = Command::Receive {
        quantity: 1,
        replenishment_id: Some("r-x".into()),
    };
    assert!(matches!(
        Stock::decide(&state, &unknown),
        Err(DomainError::NotFound(_))
    ));
}

#[derive(Debug, Clone)]
enum Step {
    Receive(u32),
    Reserve(u8, u32),
    Release(u8),
    Consume(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1u32..4).prop_map(Step::Receive),
        (0u8..6, 1u32..3).prop_map(|(o, q)| Step::Reserve(o, q)),
        (0u8..6).prop_map(Step::Release),
        (0u8..6).prop_map(Step::Consume),
    ]
}

proptest! {
    /// Whatever happens, units are never held beyond what is on hand, an order
    /// is never both holding and waiting, and nobody waits while enough is free
    /// for the oldest in line.
    #[test]
    fn reservations_never_exceed_stock(steps in proptest::collection::vec(step(), 1..60)) {
        let mut state = StockState::default();
        for step in steps {
            let command = match step {
                Step::Receive(q) => receive(q),
                Step::Reserve(o, q) => Command::Reserve { order: format!("o-{o}"), quantity: q, restock: restock(&format!("o-{o}")) },
                Step::Release(o) => Command::Release { order: format!("o-{o}"), reason: "r".into() },
                Step::Consume(o) => Command::Consume { order: format!("o-{o}"), serial: "s".into() },
            };
            if let Ok(events) = Stock::decide(&state, &command) {
                state = events.iter().fold(state, Stock::evolve);
            }
            prop_assert!(state.reserved_total() <= state.on_hand);
            for waiting in &state.waiting {
                prop_assert!(!state.reserved.contains_key(&waiting.order));
            }
            if let Some(oldest) = state.waiting.first() {
                prop_assert!(oldest.quantity > state.available());
            }
        }
    }
}
