//! Where to put K new service points: greedy maximal covering.
//!
//! Demand is areas (cities) with their customers. A customer is *within reach*
//! when a service point is at most `within_km` away; one beyond it mails the phone
//! in. Each round picks the candidate that brings the most customers within reach
//! (objective a), ties broken by the largest fall in the expected turnaround p90
//! (objective b), then by the candidates' order (callers list the most populous
//! first). Coverage is submodular, so the greedy choice covers at least
//! 1 − (1 − 1/K)^K > 1 − 1/e ≈ 63% of what the best K points could (Nemhauser,
//! Wolsey & Fisher, 1978). Gains only shrink as points are added, so a stale gain
//! is an upper bound and candidates are re-evaluated lazily (Minoux's
//! accelerated greedy): the same choices as the plain greedy, far fewer evaluations.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::gazetteer::Point;

/// Where customers are: one city and how many of them live there.
#[derive(Debug, Clone, PartialEq)]
pub struct Area {
    pub id: u32,
    pub name: String,
    pub point: Point,
    pub customers: u64,
    /// The area's own mail-in round trip p90, in days, where it has one.
    pub mail_in_p90_days: Option<f64>,
}

/// A center or collection point that exists today.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePoint {
    pub name: String,
    pub point: Point,
}

/// A city where a new point could go.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: u32,
    pub name: String,
    pub point: Point,
}

/// What a plan is asked for, and the turnaround it assumes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Planner {
    /// How far a customer will travel to a service point.
    pub within_km: f64,
    /// How many new points to place.
    pub new_points: usize,
    /// The network's walk-in turnaround p90, in days.
    pub walk_in_p90_days: f64,
    /// The network's mail-in round trip p90, for areas with none of their own.
    pub mail_in_p90_days: f64,
}

/// A request the planner refuses, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PlanError {
    pub field: &'static str,
    pub reason: String,
}

impl PlanError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// The network's figures for one set of service points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub customers: u64,
    /// Customers farther than `within_km` from every service point.
    pub beyond_reach: u64,
    /// Each customer's turnaround p90 (walk-in within reach, else mail-in),
    /// averaged over customers, in days.
    pub expected_p90_days: f64,
}

/// One new point, in the order chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub candidate: Candidate,
    pub before: Figures,
    pub after: Figures,
    /// Areas it brings within reach.
    pub areas_reached: usize,
    /// Why it was picked, in words.
    pub why: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub before: Figures,
    pub after: Figures,
    pub choices: Vec<Choice>,
}

/// A candidate's gain: customers brought within reach, then customer-days of
/// p90 saved. Compared in that order.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Gain {
    customers: u64,
    days_saved: f64,
}

impl Eq for Gain {}

impl Ord for Gain {
    fn cmp(&self, other: &Self) -> Ordering {
        self.customers
            .cmp(&other.customers)
            .then(self.days_saved.total_cmp(&other.days_saved))
    }
}

impl PartialOrd for Gain {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Areas sorted by latitude, so the ones near a point are a band, not a scan.
struct Index<'a> {
    areas: &'a [Area],
    by_latitude: Vec<(f64, usize)>,
    within_km: f64,
}

impl<'a> Index<'a> {
    fn new(areas: &'a [Area], within_km: f64) -> Self {
        let mut by_latitude: Vec<_> = areas
            .iter()
            .enumerate()
            .map(|(i, a)| (a.point.latitude, i))
            .collect();
        by_latitude.sort_by(|a, b| a.0.total_cmp(&b.0));
        Self {
            areas,
            by_latitude,
            within_km,
        }
    }

    /// The areas within reach of `point`.
    fn near(&self, point: Point) -> impl Iterator<Item = usize> + '_ {
        // A degree of latitude is at least 110.5 km anywhere on the ellipsoid's
        // mean sphere; the band is a superset, the haversine decides.
        let band = self.within_km / 110.5 + 1e-9;
        let from = self
            .by_latitude
            .partition_point(|(lat, _)| *lat < point.latitude - band);
        self.by_latitude[from..]
            .iter()
            .take_while(move |(lat, _)| *lat <= point.latitude + band)
            .map(|&(_, i)| i)
            .filter(move |&i| self.areas[i].point.distance_km(point) <= self.within_km)
    }
}

impl Planner {
    /// The K candidates that most shrink the customers beyond reach, in order.
    pub fn plan(
        &self,
        areas: &[Area],
        existing: &[ServicePoint],
        candidates: &[Candidate],
    ) -> Result<Plan, PlanError> {
        self.check(candidates.len())?;
        let index = Index::new(areas, self.within_km);
        let mut reached = vec![false; areas.len()];
        for point in existing {
            for i in index.near(point.point) {
                reached[i] = true;
            }
        }
        // Each candidate's areas not yet reached; what it could still bring.
        let mut reaches: Vec<Vec<usize>> = candidates
            .iter()
            .map(|c| index.near(c.point).filter(|&i| !reached[i]).collect())
            .collect();
        let mut heap: BinaryHeap<(Gain, Reverse<usize>, usize)> = reaches
            .iter()
            .enumerate()
            .map(|(c, r)| (self.gain(areas, r, &reached), Reverse(c), 0))
            .collect();
        let before = self.figures_of(areas, &reached);
        let mut now = before;
        let mut choices = Vec::with_capacity(self.new_points);
        while choices.len() < self.new_points {
            let Some((gain, Reverse(c), round)) = heap.pop() else {
                break;
            };
            if round != choices.len() {
                reaches[c].retain(|&i| !reached[i]);
                heap.push((
                    self.gain(areas, &reaches[c], &reached),
                    Reverse(c),
                    choices.len(),
                ));
                continue;
            }
            let newly = std::mem::take(&mut reaches[c]);
            for &i in &newly {
                reached[i] = true;
            }
            let after = self.figures_of(areas, &reached);
            let why = self.why(areas, &newly, gain, now, after);
            choices.push(Choice {
                candidate: candidates[c].clone(),
                before: now,
                after,
                areas_reached: newly.len(),
                why,
            });
            now = after;
        }
        Ok(Plan {
            before,
            after: now,
            choices,
        })
    }

    /// The figures for exactly these service points, every area against every
    /// point: what a plan's figures must equal, and the brute-force baseline.
    pub fn figures(&self, areas: &[Area], points: &[Point]) -> Figures {
        let reached: Vec<bool> = areas
            .iter()
            .map(|a| {
                points
                    .iter()
                    .any(|p| a.point.distance_km(*p) <= self.within_km)
            })
            .collect();
        self.figures_of(areas, &reached)
    }

    fn check(&self, candidates: usize) -> Result<(), PlanError> {
        if !self.within_km.is_finite() || self.within_km <= 0.0 {
            return Err(PlanError::new(
                "within_km",
                "must be a positive number of kilometres",
            ));
        }
        if self.new_points == 0 {
            return Err(PlanError::new("new_points", "must be at least 1"));
        }
        if self.new_points > candidates {
            return Err(PlanError::new(
                "new_points",
                format!("must be at most the {candidates} candidate cities"),
            ));
        }
        for (field, days) in [
            ("walk_in_p90_days", self.walk_in_p90_days),
            ("mail_in_p90_days", self.mail_in_p90_days),
        ] {
            if !days.is_finite() || days < 0.0 {
                return Err(PlanError::new(field, "must be a number of days, 0 or more"));
            }
        }
        Ok(())
    }

    fn mail_in_days(&self, area: &Area) -> f64 {
        area.mail_in_p90_days.unwrap_or(self.mail_in_p90_days)
    }

    /// An area within reach walks in, or mails in if that is faster there.
    fn days(&self, area: &Area, reached: bool) -> f64 {
        let mail_in = self.mail_in_days(area);
        if reached {
            mail_in.min(self.walk_in_p90_days)
        } else {
            mail_in
        }
    }

    fn gain(&self, areas: &[Area], reach: &[usize], reached: &[bool]) -> Gain {
        reach
            .iter()
            .filter(|&&i| !reached[i])
            .map(|&i| &areas[i])
            .fold(
                Gain {
                    customers: 0,
                    days_saved: 0.0,
                },
                |g, a| Gain {
                    customers: g.customers + a.customers,
                    days_saved: g.days_saved
                        + customers_f64(a.customers) * (self.days(a, false) - self.days(a, true)),
                },
            )
    }

    fn figures_of(&self, areas: &[Area], reached: &[bool]) -> Figures {
        let mut figures = Figures {
            customers: 0,
            beyond_reach: 0,
            expected_p90_days: 0.0,
        };
        let mut customer_days = 0.0;
        for (area, &reached) in areas.iter().zip(reached) {
            figures.customers += area.customers;
            if !reached {
                figures.beyond_reach += area.customers;
            }
            customer_days += customers_f64(area.customers) * self.days(area, reached);
        }
        if figures.customers > 0 {
            figures.expected_p90_days = customer_days / customers_f64(figures.customers);
        }
        figures
    }

    fn why(
        &self,
        areas: &[Area],
        newly: &[usize],
        gain: Gain,
        before: Figures,
        after: Figures,
    ) -> String {
        let km = self.within_km;
        let p90 = format!(
            "expected turnaround p90 {:.1} → {:.1} days",
            before.expected_p90_days, after.expected_p90_days
        );
        if gain.customers == 0 {
            return format!(
                "no candidate left brings anyone within {km} km; picked as the first of the \
                 remaining candidates ({p90})"
            );
        }
        let largest = newly
            .iter()
            .map(|&i| &areas[i])
            .max_by_key(|a| a.customers)
            .map(|a| format!(", the largest {} with {}", a.name, a.customers))
            .unwrap_or_default();
        format!(
            "brings {} customers in {} {} within {km} km of a service point, more than any \
             other candidate{largest}; {p90}",
            gain.customers,
            newly.len(),
            if newly.len() == 1 { "city" } else { "cities" },
        )
    }
}

/// Customer counts as weights; exact below 2^53, far beyond any country.
#[allow(clippy::cast_precision_loss)]
fn customers_f64(customers: u64) -> f64 {
    customers as f64
}

#[cfg(test)]
mod tests;
