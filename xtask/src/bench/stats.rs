//! Medians and spreads of repeated measurements.

/// Order statistics of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// First and third quartiles (linear interpolation between order statistics).
    pub q1: f64,
    pub q3: f64,
}

/// Quantile `q` in [0, 1] of sorted, non-empty `v` (type 7: linear interpolation).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

impl Summary {
    /// None for an empty sample; NaNs are left out.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Summary {
            n: v.len(),
            median: quantile(&v, 0.5),
            min: v[0],
            max: v[v.len() - 1],
            q1: quantile(&v, 0.25),
            q3: quantile(&v, 0.75),
        })
    }

    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "n": self.n, "median": self.median, "min": self.min, "max": self.max,
            "q1": self.q1, "q3": self.q3,
        })
    }
}

/// Each value divided by `base` (a ratio to the bare median); empty when `base` is not
/// a positive number.
pub fn ratios(values: &[f64], base: f64) -> Vec<f64> {
    if !(base.is_finite() && base > 0.0) {
        return Vec::new();
    }
    values.iter().map(|v| v / base).collect()
}

/// Throughput cost in percent of `ratio` (0.97 -> 3.0 %).
pub fn cost_pct(ratio: f64) -> f64 {
    (1.0 - ratio) * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_quartiles() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).expect("summary");
        assert_eq!((s.n, s.median, s.min, s.max), (5, 3.0, 1.0, 5.0));
        assert_eq!((s.q1, s.q3), (2.0, 4.0));
        let even = Summary::of(&[4.0, 1.0, 3.0, 2.0]).expect("summary");
        assert_eq!(even.median, 2.5);
        assert_eq!(even.q1, 1.75);
        assert_eq!(even.q3, 3.25);
        let one = Summary::of(&[7.0]).expect("summary");
        assert_eq!((one.median, one.q1, one.q3), (7.0, 7.0, 7.0));
    }

    #[test]
    fn empty_and_nan() {
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[f64::NAN]).is_none());
        assert_eq!(Summary::of(&[f64::NAN, 2.0]).map(|s| s.n), Some(1));
    }

    #[test]
    fn ratios_and_cost() {
        assert_eq!(ratios(&[1.0, 0.5], 2.0), vec![0.5, 0.25]);
        assert!(ratios(&[1.0], 0.0).is_empty());
        assert!((cost_pct(0.97) - 3.0).abs() < 1e-9);
        assert!((cost_pct(1.02) + 2.0).abs() < 1e-9);
    }
}
