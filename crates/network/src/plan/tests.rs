use proptest::prelude::*;

use super::*;

/// A degree of longitude on the equator: distances in this country are
/// positions apart times this.
const DEGREE_KM: f64 = 6371.0088 * std::f64::consts::PI / 180.0;

fn area(id: u32, name: &str, lon: f64, customers: u64, mail_in: Option<f64>) -> Area {
    Area {
        id,
        name: name.into(),
        point: Point::new(0.0, lon),
        customers,
        mail_in_p90_days: mail_in,
    }
}

/// Twelve cities on the equator, three centers (A, E, I), 470 customers.
fn country() -> Vec<Area> {
    vec![
        area(1, "A", 0.0, 100, None),
        area(2, "B", 0.8, 40, None),
        area(3, "C", 2.0, 30, Some(12.0)),
        area(4, "D", 2.6, 50, Some(10.0)),
        area(5, "E", 5.0, 80, None),
        area(6, "F", 5.5, 20, None),
        area(7, "G", 7.0, 10, None),
        area(8, "H", 7.8, 25, None),
        area(9, "I", 10.0, 60, None),
        area(10, "J", 12.0, 15, None),
        area(11, "K", 12.5, 35, None),
        area(12, "L", 14.0, 5, None),
    ]
}

fn centers(areas: &[Area], names: &[&str]) -> Vec<ServicePoint> {
    areas
        .iter()
        .filter(|a| names.contains(&a.name.as_str()))
        .map(|a| ServicePoint {
            name: a.name.clone(),
            point: a.point,
        })
        .collect()
}

fn candidates(areas: &[Area]) -> Vec<Candidate> {
    areas
        .iter()
        .map(|a| Candidate {
            id: a.id,
            name: a.name.clone(),
            point: a.point,
        })
        .collect()
}

fn planner(new_points: usize) -> Planner {
    Planner {
        within_km: 100.0,
        new_points,
        walk_in_p90_days: 5.0,
        mail_in_p90_days: 9.0,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn the_hand_computed_country() {
    // 100 km is 0.899 degrees here. Beyond reach of A, E, I: C 30, D 50, G 10,
    // H 25, J 15, K 35, L 5 = 170 of 470. C and D reach each other (80), J and K
    // (50), G and H (35), L only itself (5).
    // Customer-days of p90: within reach (A B E F I: 300 × 5) 1500; C 30 × 12,
    // D 50 × 10, the rest at 9: 360 + 500 + 90 + 225 + 135 + 315 + 45 = 1670.
    let origin = Point::new(0.0, 0.0);
    assert!(origin.distance_km(Point::new(0.0, 0.899)) < 100.0);
    assert!(origin.distance_km(Point::new(0.0, 0.9)) > 100.0);
    assert!((origin.distance_km(Point::new(0.0, 1.0)) - DEGREE_KM).abs() < 1e-6);
    let areas = country();
    let existing = centers(&areas, &["A", "E", "I"]);
    let plan = planner(3)
        .plan(&areas, &existing, &candidates(&areas))
        .expect("a valid plan");
    let chosen: Vec<_> = plan
        .choices
        .iter()
        .map(|c| c.candidate.name.as_str())
        .collect();
    // C before D: both bring 80 and save the same 460 customer-days; C is listed first.
    assert_eq!(chosen, ["C", "J", "G"]);
    let beyond: Vec<_> = plan
        .choices
        .iter()
        .map(|c| (c.before.beyond_reach, c.after.beyond_reach))
        .collect();
    assert_eq!(beyond, [(170, 90), (90, 40), (40, 5)]);
    let reached: Vec<_> = plan.choices.iter().map(|c| c.areas_reached).collect();
    assert_eq!(reached, [2, 2, 2]);
    // C and D save 30 × 7 + 50 × 5 = 460, J and K 50 × 4, G and H 35 × 4.
    let days: Vec<_> = plan
        .choices
        .iter()
        .map(|c| c.after.expected_p90_days)
        .collect();
    for (got, want) in days
        .iter()
        .zip([2710.0 / 470.0, 2510.0 / 470.0, 2370.0 / 470.0])
    {
        assert!(close(*got, want), "{got} != {want}");
    }
    assert!(close(plan.before.expected_p90_days, 3170.0 / 470.0));
    assert_eq!(
        (plan.before.customers, plan.before.beyond_reach),
        (470, 170)
    );
    assert_eq!(plan.after, plan.choices[2].after);
    let why = &plan.choices[0].why;
    assert!(
        why.contains("brings 80 customers in 2 cities within 100 km"),
        "{why}"
    );
    assert!(why.contains("the largest D with 50"), "{why}");
    assert!(why.contains("6.7 → 5.8 days"), "{why}");
    // And the plan's figures are what evaluating its points from scratch gives.
    let mut points: Vec<Point> = existing.iter().map(|c| c.point).collect();
    points.extend(plan.choices.iter().map(|c| c.candidate.point));
    assert_eq!(planner(3).figures(&areas, &points), plan.after);
}

#[test]
fn turnaround_breaks_a_tie_in_customers() {
    // X and Y each bring 40 customers; Y's mail-in is slower, so reaching it saves more.
    let areas = vec![
        area(1, "X", 0.0, 40, Some(8.0)),
        area(2, "Y", 10.0, 40, Some(20.0)),
    ];
    let plan = planner(1)
        .plan(&areas, &[], &candidates(&areas))
        .expect("a plan");
    assert_eq!(plan.choices[0].candidate.name, "Y");
    assert!(close(
        plan.after.expected_p90_days,
        (40.0 * 8.0 + 40.0 * 5.0) / 80.0
    ));
}

#[test]
fn a_point_that_brings_nobody_says_so() {
    let areas = vec![area(1, "X", 0.0, 40, None), area(2, "Y", 10.0, 0, None)];
    let plan = planner(2)
        .plan(&areas, &[], &candidates(&areas))
        .expect("a plan");
    assert_eq!(plan.choices[1].candidate.name, "Y");
    assert!(
        plan.choices[1]
            .why
            .starts_with("no candidate left brings anyone")
    );
    assert_eq!(plan.after.beyond_reach, 0);
}

#[test]
fn bad_requests_name_the_field() {
    let areas = country();
    let all = candidates(&areas);
    let refused = |p: Planner, c: &[Candidate]| p.plan(&areas, &[], c).err().map(|e| e.field);
    assert_eq!(refused(planner(0), &all), Some("new_points"));
    assert_eq!(refused(planner(13), &all), Some("new_points"));
    assert_eq!(refused(planner(1), &[]), Some("new_points"));
    for km in [-1.0, 0.0, f64::NAN, f64::INFINITY] {
        let p = Planner {
            within_km: km,
            ..planner(1)
        };
        assert_eq!(refused(p, &all), Some("within_km"), "{km}");
    }
    let p = Planner {
        walk_in_p90_days: -1.0,
        ..planner(1)
    };
    assert_eq!(refused(p, &all), Some("walk_in_p90_days"));
    let p = Planner {
        mail_in_p90_days: f64::NAN,
        ..planner(1)
    };
    assert_eq!(refused(p, &all), Some("mail_in_p90_days"));
    assert!(planner(12).plan(&areas, &[], &all).is_ok());
}

/// The greedy without laziness: every candidate evaluated every round.
fn plain_greedy(
    p: &Planner,
    areas: &[Area],
    existing: &[ServicePoint],
    cands: &[Candidate],
) -> Vec<u32> {
    let mut points: Vec<Point> = existing.iter().map(|e| e.point).collect();
    let mut chosen = Vec::new();
    let mut used = vec![false; cands.len()];
    for _ in 0..p.new_points {
        let reached: Vec<bool> = areas
            .iter()
            .map(|a| {
                points
                    .iter()
                    .any(|q| a.point.distance_km(*q) <= p.within_km)
            })
            .collect();
        let mut best: Option<(Gain, usize)> = None;
        for (c, cand) in cands.iter().enumerate().filter(|(c, _)| !used[*c]) {
            let reach: Vec<usize> = (0..areas.len())
                .filter(|&i| areas[i].point.distance_km(cand.point) <= p.within_km)
                .collect();
            let g = p.gain(areas, &reach, &reached);
            if best.is_none_or(|(b, _)| g > b) {
                best = Some((g, c));
            }
        }
        let Some((_, c)) = best else { break };
        used[c] = true;
        chosen.push(cands[c].id);
        points.push(cands[c].point);
    }
    chosen
}

proptest! {
    #[test]
    fn lazy_greedy_chooses_what_plain_greedy_does(
        cities in prop::collection::vec(
            (0.0f64..4.0, 0.0f64..4.0, 0u64..50, prop::option::of(1.0f64..20.0)),
            1..40,
        ),
        centers in 0usize..3,
        k in 1usize..6,
        km in 20.0f64..200.0,
    ) {
        let areas: Vec<Area> = cities
            .iter()
            .enumerate()
            .map(|(i, &(lat, lon, customers, mail))| Area {
                id: u32::try_from(i).unwrap_or(u32::MAX),
                name: format!("c{i}"),
                point: Point::new(lat, lon),
                customers,
                mail_in_p90_days: mail,
            })
            .collect();
        let existing: Vec<ServicePoint> = areas
            .iter()
            .take(centers)
            .map(|a| ServicePoint { name: a.name.clone(), point: a.point })
            .collect();
        let cands = candidates(&areas);
        let p = Planner { within_km: km, new_points: k.min(cands.len()), ..planner(1) };
        let plan = p.plan(&areas, &existing, &cands).expect("valid");
        let lazy: Vec<u32> = plan.choices.iter().map(|c| c.candidate.id).collect();
        prop_assert_eq!(&lazy, &plain_greedy(&p, &areas, &existing, &cands));
        let mut points: Vec<Point> = existing.iter().map(|e| e.point).collect();
        points.extend(plan.choices.iter().map(|c| c.candidate.point));
        let brute = p.figures(&areas, &points);
        prop_assert_eq!(brute.beyond_reach, plan.after.beyond_reach);
        prop_assert!((brute.expected_p90_days - plan.after.expected_p90_days).abs() < 1e-9);
        for c in &plan.choices {
            prop_assert!(c.after.beyond_reach <= c.before.beyond_reach);
        }
    }
}
