//! When an order is expected to be ready for return, from how long the center's
//! past orders spent in each stage: the 90th percentile of every stage still
//! ahead, added up. An upper estimate on purpose: a customer told "by Friday"
//! should rather have it Thursday than Monday.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::order::{Channel, OrderState, Stage};

/// Fewest past orders through a stage for its figure to count: with fewer, no
/// date is promised.
pub const MIN_ORDERS: usize = 3;

/// The stages an order passes through before it is ready, in order.
const PATH: [Stage; 8] = [
    Stage::Opened,
    Stage::AwaitingDevice,
    Stage::Received,
    Stage::Diagnosed,
    Stage::Quoted,
    Stage::Approved,
    Stage::InRepair,
    Stage::QcPassed,
];

/// The 90th percentile of `seconds` (nearest rank).
pub fn p90(seconds: &[i64]) -> Option<i64> {
    let mut sorted = seconds.to_vec();
    sorted.sort_unstable();
    let rank = (sorted.len() * 90)
        .div_ceil(100)
        .clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

/// When `order`, in its stage since `entered`, is expected to be ready for
/// return, given each stage's seconds per past order at its center. `None`
/// once it is ready or over, or where some stage ahead has too few past
/// orders to go by.
pub fn ready_by(
    order: &OrderState,
    entered: DateTime<Utc>,
    now: DateTime<Utc>,
    history: &BTreeMap<Stage, Vec<i64>>,
) -> Option<DateTime<Utc>> {
    let at = PATH.iter().position(|s| *s == order.stage)?;
    let mail_in = matches!(order.channel, Channel::MailIn { .. });
    let quoted = !order.coverage.is_covered() || order.quote.is_some();
    let ahead = PATH[at..].iter().filter(|stage| match stage {
        Stage::Opened => !mail_in,
        Stage::AwaitingDevice => mail_in,
        Stage::Quoted | Stage::Approved => quoted,
        Stage::Received
        | Stage::Diagnosed
        | Stage::InRepair
        | Stage::QcPassed
        | Stage::ReadyForReturn
        | Stage::Closed
        | Stage::Cancelled => true,
    });
    let mut remaining = 0_i64;
    for stage in ahead {
        let seconds = history.get(stage).filter(|s| s.len() >= MIN_ORDERS)?;
        let typical = p90(seconds)?;
        remaining += if *stage == order.stage {
            // Time already spent in the current stage counts against its figure.
            (typical - (now - entered).num_seconds()).max(0)
        } else {
            typical
        };
    }
    Some(now + Duration::seconds(remaining))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::domain::order::Coverage;
    use aftersales_core::types::DeviceKey;

    fn order(stage: Stage, covered: bool) -> OrderState {
        OrderState {
            fault_date: None,
            data_protection: None,
            last_accesses: Vec::new(),
            parts_plan: None,
            depot: None,
            order_id: "o".into(),
            stage,
            device: DeviceKey::imei("490154203237518").unwrap(),
            channel: Channel::WalkIn {
                center_id: "sc-berlin-01".into(),
                visit_on: None,
            },
            customer_id: "c".into(),
            symptoms: String::new(),
            coverage: Coverage::Decided {
                covered,
                reason: String::new(),
                policy_id: "eu".into(),
                policy_version: 1,
            },
            condition: None,
            fault: None,
            quote: None,
            repaired: true,
            parts: Vec::new(),
            qc_failures: 0,
        }
    }

    const HOUR: i64 = 3600;

    fn history(hours: &[(Stage, i64)]) -> BTreeMap<Stage, Vec<i64>> {
        hours
            .iter()
            .map(|(stage, h)| (*stage, vec![h * HOUR; MIN_ORDERS]))
            .collect()
    }

    fn all_stages(hours: i64) -> BTreeMap<Stage, Vec<i64>> {
        history(&PATH.map(|s| (s, hours)))
    }

    #[test]
    fn the_stages_ahead_add_up_less_what_the_current_one_has_taken() {
        let now = DateTime::UNIX_EPOCH + Duration::days(20_000);
        // Covered walk-in at check-in: received, diagnosed, in repair, QC.
        let got = ready_by(
            &order(Stage::Received, true),
            now - Duration::hours(1),
            now,
            &all_stages(10),
        );
        assert_eq!(got, Some(now + Duration::hours(9 + 30)));
        // Not covered: the quote and its approval lie ahead too.
        let got = ready_by(
            &order(Stage::Received, false),
            now - Duration::hours(1),
            now,
            &all_stages(10),
        );
        assert_eq!(got, Some(now + Duration::hours(9 + 50)));
        // Longer in its stage than usual: that stage adds nothing more.
        let got = ready_by(
            &order(Stage::QcPassed, true),
            now - Duration::hours(30),
            now,
            &all_stages(10),
        );
        assert_eq!(got, Some(now));
    }

    #[test]
    fn no_date_without_enough_history_or_once_ready() {
        let now = DateTime::UNIX_EPOCH;
        let mut thin = all_stages(10);
        thin.insert(Stage::InRepair, vec![HOUR; MIN_ORDERS - 1]);
        assert_eq!(
            ready_by(&order(Stage::Received, true), now, now, &thin),
            None
        );
        for stage in [Stage::ReadyForReturn, Stage::Closed, Stage::Cancelled] {
            assert_eq!(
                ready_by(&order(stage, true), now, now, &all_stages(1)),
                None
            );
        }
    }

    #[test]
    fn the_90th_percentile_is_a_value_seen() {
        assert_eq!(p90(&[]), None);
        assert_eq!(p90(&[5]), Some(5));
        assert_eq!(p90(&(1..=10).rev().collect::<Vec<_>>()), Some(9));
        assert_eq!(p90(&(1..=100).collect::<Vec<_>>()), Some(90));
    }
}
