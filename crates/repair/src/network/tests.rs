use super::*;

fn t(day: u32, hour: u32) -> DateTime<Utc> {
    use chrono::TimeZone as _;
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
        + Duration::days(i64::from(day))
        + Duration::hours(i64::from(hour))
}

fn center(id: &str, city: &str, lat: f64, lon: f64) -> ServiceCenter {
    ServiceCenter {
        id: id.into(),
        name: format!("{city} center"),
        country: "IN".into(),
        city: city.into(),
        address: vec!["1 Road".into()],
        latitude: lat,
        longitude: lon,
        open_days: vec!["mon".into()],
        hours: "09:00-18:00".into(),
        capabilities: Vec::new(),
        daily_capacity: 10,
    }
}

fn centers() -> Vec<ServiceCenter> {
    vec![
        center("in-blr", "Bengaluru", 12.9719, 77.5937),
        center("in-del", "New Delhi", 28.6358, 77.2245),
    ]
}

/// A walk-in at `center`, opened on `day`, checked in at once and ready a day later.
fn walk_in(order: &str, customer: &str, device: &str, center: &str, day: u32) -> Fact {
    Fact {
        order_id: order.into(),
        customer_id: customer.into(),
        device: device.into(),
        mail_in: false,
        center_id: center.into(),
        country: String::new(),
        area: None,
        opened_at: t(day, 0),
        week: monday(t(day, 0)),
        fault: "display".into(),
        technician: "tech-a".into(),
        received_at: Some(t(day, 1)),
        ready_at: Some(t(day + 1, 1)),
        finished_at: Some(t(day + 1, 5)),
        repaired: true,
        quoted: false,
        declined: false,
        qc_passes: 1,
        qc_failures: 0,
        cancelled: false,
    }
}

fn mail_in(order: &str, customer: &str, city: &str, day: u32, back_after_days: u32) -> Fact {
    let area = Gazetteer::builtin().resolve("IN", city).map(|c| c.id);
    assert!(area.is_some(), "{city}");
    Fact {
        mail_in: true,
        center_id: String::new(),
        country: "IN".into(),
        area,
        received_at: Some(t(day + 2, 0)),
        ready_at: Some(t(day + 3, 0)),
        finished_at: Some(t(day + back_after_days, 0)),
        ..walk_in(order, customer, &format!("dev-{order}"), "", day)
    }
}

fn city(name: &str) -> Option<u32> {
    Gazetteer::builtin().resolve("IN", name).map(|c| c.id)
}

/// Customers placed alike: (mail-in, country, city, center, customers, repairs,
/// devices, mail-ins).
fn placed(
    mail_in: bool,
    country: &str,
    area: Option<u32>,
    center: &str,
    counts: [u64; 4],
) -> Placed {
    Placed {
        mail_in,
        country: country.into(),
        area,
        center: center.into(),
        customers: counts[0],
        repairs: counts[1],
        devices: counts[2],
        mail_ins: counts[3],
    }
}

const DAY: i64 = 86_400;

#[test]
fn each_placement_counts_in_its_city() {
    let facts = DemandFacts {
        placed: vec![
            // Three mail in from Nagpur (one walked into Bengaluru before).
            placed(true, "IN", city("Nagpur"), "", [3, 4, 4, 3]),
            // An address naming no city the gazetteer knows.
            placed(true, "IN", None, "", [1, 1, 1, 1]),
            // Another country's mail-ins and a center abroad are not India's.
            placed(true, "DE", city("Nagpur"), "", [5, 5, 5, 5]),
            placed(false, "", None, "de-ber", [7, 7, 7, 0]),
            placed(false, "", None, "in-blr", [1, 1, 1, 0]),
            placed(false, "", None, "in-del", [1, 1, 1, 0]),
        ],
        round_trips: vec![
            (city("Nagpur"), 6 * DAY),
            (city("Nagpur"), 8 * DAY),
            (city("Nagpur"), 10 * DAY),
            (None, 9 * DAY),
        ],
        walk_ins: vec![DAY; 4],
    };
    let d = demand("IN", &facts, &centers());
    let by_city: Vec<_> = d
        .areas
        .iter()
        .map(|a| {
            (
                a.city.as_str(),
                a.customers,
                a.devices,
                a.repairs,
                a.mail_ins,
            )
        })
        .collect();
    assert_eq!(
        by_city,
        [
            ("Nagpur", 3, 4, 4, 3),
            // Ties by GeoNames id.
            ("New Delhi", 1, 1, 1, 0),
            ("Bengaluru", 1, 1, 1, 0)
        ]
    );
    assert_eq!(d.unplaced_customers, 1);
    let nagpur = &d.areas[0];
    // Round trips of 6, 8 and 10 days: nearest-rank p50 8, p90 10.
    assert_eq!(nagpur.mail_in_p50_days, Some(8.0));
    assert_eq!(nagpur.mail_in_p90_days, Some(10.0));
    let (nearest, km) = nagpur.nearest_center.clone().unwrap_or_default();
    // Nagpur is nearer New Delhi (about 850 km) than Bengaluru (about 920 km).
    assert_eq!(nearest, "in-del");
    assert!((820.0..880.0).contains(&km), "{km}");
    // Walk-ins: check-in to ready, one day each, four of them in India.
    assert_eq!(d.walk_in_p90_days, Some(1.0));
    // Every India mail-in that came back, the unplaced one too: 6, 8, 9, 10.
    assert_eq!(d.mail_in_p90_days, Some(10.0));
}

#[test]
fn a_plan_places_its_points_where_the_customers_are_beyond_reach() {
    let facts = DemandFacts {
        placed: vec![
            placed(true, "IN", city("Nagpur"), "", [6, 6, 6, 6]),
            placed(true, "IN", city("Patna"), "", [2, 2, 2, 2]),
        ],
        round_trips: std::iter::repeat_n((city("Nagpur"), 7 * DAY), 6)
            .chain(std::iter::repeat_n((city("Patna"), 9 * DAY), 2))
            .collect(),
        walk_ins: Vec::new(),
    };
    let d = demand("IN", &facts, &centers());
    let request = PlanRequest {
        country: "IN".into(),
        new_points: 1,
        within_km: 50.0,
        candidates: vec!["Patna".into(), "nagpur".into(), "Bangalore".into()],
    };
    let planned = plan(&request, &d, &centers()).expect("a plan");
    let choice = &planned.plan.choices[0];
    assert_eq!(choice.candidate.name, "Nagpur");
    assert_eq!(
        (choice.before.beyond_reach, choice.after.beyond_reach),
        (8, 2)
    );
    assert!(planned.map_svg.contains("1. Nagpur"));
    assert!(planned.method.contains("over 3 candidate cities"));
    // No walk-ins yet: the walk-in turnaround is assumed, and says so.
    assert!(planned.method.contains("check-in to ready assumed"));
    let refused = |r: PlanRequest| {
        plan(&r, &d, &centers())
            .err()
            .map(|e| e.violations()[0].field.clone())
    };
    let field = |f: &str| Some(f.to_owned());
    assert_eq!(
        refused(PlanRequest {
            new_points: 0,
            ..request.clone()
        }),
        field("new_points")
    );
    assert_eq!(
        refused(PlanRequest {
            new_points: 4,
            ..request.clone()
        }),
        field("new_points")
    );
    assert_eq!(
        refused(PlanRequest {
            within_km: -5.0,
            ..request.clone()
        }),
        field("within_km")
    );
    assert_eq!(
        refused(PlanRequest {
            country: "XX".into(),
            ..request.clone()
        }),
        field("country")
    );
    assert_eq!(
        refused(PlanRequest {
            candidates: vec!["Atlantis".into()],
            ..request.clone()
        }),
        field("candidates")
    );
}

#[test]
fn first_time_fixes_qc_and_parcels_by_hand() {
    let facts = vec![
        // d1 repaired for display, back for display 30 days after ready: not fixed.
        walk_in("a1", "c1", "d1", "in-blr", 0),
        walk_in("a2", "c1", "d1", "in-blr", 31),
        // d2 back for another fault: fixed first time.
        walk_in("a3", "c2", "d2", "in-blr", 0),
        Fact {
            fault: "battery".into(),
            ..walk_in("a4", "c2", "d2", "in-blr", 10)
        },
        // d3 back for display after 100 days: outside the window, fixed.
        walk_in("a5", "c3", "d3", "in-blr", 0),
        walk_in("a6", "c3", "d3", "in-blr", 101),
        // Two QC failures before a pass; a declined quote, returned unrepaired.
        Fact {
            qc_failures: 2,
            ..walk_in("a7", "c4", "d4", "in-del", 1)
        },
        Fact {
            quoted: true,
            declined: true,
            repaired: false,
            qc_passes: 0,
            ..walk_in("a8", "c5", "d5", "in-del", 1)
        },
        // Mail-ins: 73 h to arrive (slow in), back 2 days after ready (not slow out).
        Fact {
            received_at: Some(t(3, 1)),
            ready_at: Some(t(4, 0)),
            finished_at: Some(t(6, 0)),
            ..mail_in("m1", "c6", "Nagpur", 0, 6)
        },
        // Still not received ten days after opening (slow in, counted from now).
        Fact {
            received_at: None,
            ready_at: None,
            finished_at: None,
            repaired: false,
            qc_passes: 0,
            ..mail_in("m2", "c7", "Nagpur", 0, 3)
        },
    ];
    let now = t(10, 0);
    let from = monday(t(0, 0));
    let q = quality(
        &QualityQuery {
            country: "IN",
            from_week: from,
            by_technician: false,
            only_center: None,
            now,
        },
        &facts,
        &HashMap::new(),
        &centers(),
    );
    let row = |center: &str| {
        q.summary
            .iter()
            .find(|r| r.center_id == center)
            .map(|r| r.figures.clone())
    };
    let blr = row("in-blr").unwrap_or_default();
    assert_eq!((blr.orders, blr.repaired, blr.first_time_fixes), (6, 6, 5));
    let del = row("in-del").unwrap_or_default();
    assert_eq!((del.repaired, del.first_time_fixes), (1, 1));
    // a7: two failures and a pass; a8 never reached QC.
    assert_eq!((del.qc_checks, del.qc_failures), (3, 2));
    assert_eq!(del.qc_failure_rate(), Some(2.0 / 3.0));
    assert_eq!((del.quotes_issued, del.quotes_declined), (1, 1));
    let depot = row("").unwrap_or_default();
    assert_eq!(
        (
            depot.mail_ins,
            depot.parcels_slow_in,
            depot.parcels_slow_out
        ),
        (2, 2, 0)
    );
    // Check-in to ready: 24 h at every walk-in; m1 arrived to ready in 23 h.
    assert_eq!(blr.turnaround_p90_hours, Some(24.0));
    assert_eq!(depot.turnaround_p90_hours, Some(23.0));
    // Weekly rows add up to the window.
    let weekly: u32 = q
        .weeks
        .iter()
        .filter(|r| r.center_id == "in-blr")
        .map(|r| r.figures.orders)
        .sum();
    assert_eq!(weekly, 6);
    assert!(q.weeks.windows(2).all(|w| w[0].week <= w[1].week));
    // One center only: the medians still come from all of them.
    let only = quality(
        &QualityQuery {
            country: "IN",
            from_week: from,
            by_technician: false,
            only_center: Some("in-del"),
            now,
        },
        &facts,
        &HashMap::new(),
        &centers(),
    );
    assert_eq!(only.summary.len(), 1);
    assert!(only.weeks.iter().all(|r| r.center_id == "in-del"));
}

#[test]
fn a_center_far_from_the_median_is_flagged_with_its_figure() {
    let mut facts = Vec::new();
    for (c, center) in ["in-blr", "in-del", "in-bom"].iter().enumerate() {
        for i in 0..10u32 {
            let failures = u32::from(c == 2 && i < 6);
            facts.push(Fact {
                qc_failures: failures,
                ..walk_in(
                    &format!("{center}-{i}"),
                    &format!("c{c}{i}"),
                    &format!("d{c}{i}"),
                    center,
                    i,
                )
            });
        }
    }
    let mut all = centers();
    all.push(center("in-bom", "Mumbai", 19.0728, 72.8826));
    let q = quality(
        &QualityQuery {
            country: "IN",
            from_week: monday(t(0, 0)),
            by_technician: false,
            only_center: None,
            now: t(20, 0),
        },
        &facts,
        &HashMap::new(),
        &all,
    );
    let flagged: Vec<_> = q
        .summary
        .iter()
        .filter(|r| !r.flags.is_empty())
        .map(|r| {
            (
                r.center_id.as_str(),
                r.flags[0].figure,
                r.flags[0].why.clone(),
            )
        })
        .collect();
    // 6 failures in 16 checks (38%) against a median of 0%.
    assert_eq!(
        flagged,
        [(
            "in-bom",
            "qc_failure_rate",
            "QC failures 38% against a network median of 0%".to_owned()
        )]
    );
    assert_eq!(q.summary[0].center_id, "in-bom");
}
