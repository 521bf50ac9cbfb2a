//! Percentiles, and a figure judged against the network's median.
//!
//! A center's figure is *far from the network* when it is worse than the median
//! of every center's figure by half of it again (at least 1.5× the median) and by
//! a margin that keeps small numbers from crying wolf (a center at 2% QC failures
//! against a median of 1% is not news). Only figures from at least
//! [`MIN_ORDERS`] orders are judged.

/// Orders a figure must rest on before it is judged.
pub const MIN_ORDERS: usize = 5;

/// How much worse than the median flags a figure.
pub const RATIO: f64 = 1.5;

/// The nearest-rank percentile (`q` in 0..=1) of `values`, which it sorts.
pub fn percentile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    // ceil(q × n), at least the first: the smallest value with q of them at or below.
    let rank = (0..n)
        .find(|&i| index_f64(i + 1) >= q * index_f64(n))
        .unwrap_or(n - 1);
    values.get(rank).copied()
}

/// The median; the mean of the two middle values when their number is even.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// A figure where lower is better, judged against the others.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    pub value: f64,
    pub median: f64,
    pub far: bool,
}

/// Judges each figure (lower is better) against the median of all of them;
/// `None` figures (too few orders) are neither judged nor counted.
pub fn judge(figures: &[Option<f64>], margin: f64) -> Vec<Option<Judged>> {
    let known: Vec<f64> = figures.iter().flatten().copied().collect();
    let Some(median) = median(&known) else {
        return vec![None; figures.len()];
    };
    figures
        .iter()
        .map(|f| {
            f.map(|value| Judged {
                value,
                median,
                far: value >= RATIO * median && value - median >= margin,
            })
        })
        .collect()
}

#[allow(clippy::cast_precision_loss)]
fn index_f64(i: usize) -> f64 {
    i as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v = vec![5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(percentile(&mut v, 0.5), Some(3.0));
        assert_eq!(percentile(&mut v, 0.9), Some(5.0));
        assert_eq!(percentile(&mut v, 0.0), Some(1.0));
        assert_eq!(percentile(&mut v, 0.2), Some(1.0));
        assert_eq!(percentile(&mut v, 0.21), Some(2.0));
        let mut ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&mut ten, 0.9), Some(9.0));
        assert_eq!(percentile(&mut [], 0.5), None);
        assert_eq!(percentile(&mut v, 1.5), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn far_means_half_again_and_past_the_margin() {
        let judged = judge(&[Some(2.0), Some(2.2), Some(3.2), Some(2.9), None], 0.5);
        // Median of the four known: 2.55; 1.5 × that is 3.825.
        let far: Vec<_> = judged.iter().map(|j| j.map(|j| j.far)).collect();
        assert_eq!(
            far,
            [Some(false), Some(false), Some(false), Some(false), None]
        );
        let judged = judge(&[Some(2.0), Some(2.0), Some(4.0)], 0.5);
        assert!(judged[2].is_some_and(|j| j.far && j.median == 2.0));
        // 1.5× a tiny median, but within the margin.
        let judged = judge(&[Some(0.01), Some(0.01), Some(0.02)], 0.05);
        assert!(judged.iter().flatten().all(|j| !j.far));
        assert_eq!(judge(&[None, None], 0.1), [None, None]);
    }
}
