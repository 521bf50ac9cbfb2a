//! Planning for a large country: 5,000 candidate cities and a million
//! customers, next to a brute-force evaluation of one candidate set (every
//! customer against every point) in the same run.
//!
//! `cargo bench -p aftersales-network --bench plan`

#![allow(unsafe_code)] // a counting allocator: GlobalAlloc is an unsafe trait

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use aftersales_network::{Area, Candidate, Planner, Point, ServicePoint};
use rand::RngExt as _;

const CANDIDATES: usize = 5_000;
const CUSTOMERS: usize = 1_000_000;

/// The same country every run: a seeded stream of numbers.
struct Numbers(rand::rngs::SmallRng);

impl Numbers {
    /// In [0, 1).
    fn unit(&mut self) -> f64 {
        self.0.random::<f64>()
    }
}

/// The system allocator, counting the bytes live and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Starts measuring: the peak so far becomes what is live now.
fn mark() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

/// MiB allocated at the peak since `mark`, above what was live then.
#[allow(clippy::cast_precision_loss)]
fn peak_mib(since: usize) -> f64 {
    PEAK.load(Ordering::Relaxed).saturating_sub(since) as f64 / (1024.0 * 1024.0)
}

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let mut n = Numbers(rand::SeedableRng::seed_from_u64(23));
    // 5,000 cities across a country of India's extent, populations skewed
    // (a few metros, many towns).
    let cities: Vec<(Point, f64)> = (0..CANDIDATES)
        .map(|_| {
            let point = Point::new(8.0 + 27.0 * n.unit(), 68.0 + 29.0 * n.unit());
            (point, 1.0 / (0.002 + n.unit()))
        })
        .collect();
    let total: f64 = cities.iter().map(|c| c.1).sum();
    // Customers drawn by population.
    let mut cumulative = Vec::with_capacity(cities.len());
    let mut sum = 0.0;
    for c in &cities {
        sum += c.1 / total;
        cumulative.push(sum);
    }
    let customers: Vec<u32> = (0..CUSTOMERS)
        .map(|_| {
            let u = n.unit();
            let i = cumulative.partition_point(|&c| c < u).min(cities.len() - 1);
            u32::try_from(i).unwrap_or(u32::MAX)
        })
        .collect();
    let existing: Vec<ServicePoint> = [
        (19.07, 72.88),
        (28.61, 77.21),
        (12.97, 77.59),
        (22.57, 88.36),
    ]
    .iter()
    .map(|&(lat, lon)| ServicePoint {
        name: format!("{lat},{lon}"),
        point: Point::new(lat, lon),
    })
    .collect();
    let candidates: Vec<Candidate> = cities
        .iter()
        .enumerate()
        .map(|(i, c)| Candidate {
            id: u32::try_from(i).unwrap_or(u32::MAX),
            name: format!("city {i}"),
            point: c.0,
        })
        .collect();
    let planner = Planner {
        within_km: 50.0,
        new_points: 25,
        walk_in_p90_days: 4.0,
        mail_in_p90_days: 9.0,
    };
    let before = mark();
    // The planner: a million customers counted into their cities, then 25 points.
    let started = Instant::now();
    let mut counts: HashMap<u32, u64> = HashMap::new();
    for &c in &customers {
        *counts.entry(c).or_default() += 1;
    }
    let areas: Vec<Area> = counts
        .iter()
        .map(|(&city, &customers)| Area {
            id: city,
            name: format!("city {city}"),
            point: cities[city as usize].0,
            customers,
            mail_in_p90_days: None,
        })
        .collect();
    let counted = started.elapsed();
    let plan = match planner.plan(&areas, &existing, &candidates) {
        Ok(plan) => plan,
        Err(e) => panic!("{e}"),
    };
    let planned = started.elapsed();
    let planner_mib = peak_mib(before);

    // The baseline: the plan's points evaluated once, customer by customer.
    let mut points: Vec<Point> = existing.iter().map(|e| e.point).collect();
    points.extend(plan.choices.iter().map(|c| c.candidate.point));
    let before = mark();
    let one_by_one: Vec<Area> = customers
        .iter()
        .map(|&city| Area {
            id: city,
            name: String::new(),
            point: cities[city as usize].0,
            customers: 1,
            mail_in_p90_days: None,
        })
        .collect();
    let started = Instant::now();
    let brute = planner.figures(&one_by_one, &points);
    let baseline_mib = peak_mib(before);
    let evaluated = started.elapsed();
    assert_eq!(brute.beyond_reach, plan.after.beyond_reach);

    println!(
        "plan: {CANDIDATES} candidate cities, {CUSTOMERS} customers in {} areas, 4 centers, 25 new points, 50 km",
        areas.len()
    );
    println!(
        "  planner (count customers into cities, then lazy greedy): {:.3} s ({:.3} s counting), {planner_mib:.1} MiB allocated at peak",
        planned.as_secs_f64(),
        counted.as_secs_f64(),
    );
    println!(
        "  baseline (one candidate set, every customer against every point): {:.3} s, {baseline_mib:.1} MiB at peak; planner / baseline {:.2}x",
        evaluated.as_secs_f64(),
        planned.as_secs_f64() / evaluated.as_secs_f64()
    );
    println!(
        "  beyond reach {} → {} of {}; expected p90 {:.2} → {:.2} days",
        plan.before.beyond_reach,
        plan.after.beyond_reach,
        plan.before.customers,
        plan.before.expected_p90_days,
        plan.after.expected_p90_days
    );
    println!("  process peak resident {} MiB", resident_kib() / 1024);
}
