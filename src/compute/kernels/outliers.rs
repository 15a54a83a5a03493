//! Outlier counts beyond k·σ of the mean, exact in f32: the f64 bounds `mean ± k·std` are turned
//! once into the f32 values that decide the same comparisons.

use crate::compute::Moments;

/// f32 bounds `(lo, hi)` such that, for every f32 `x`, `x < lo || x > hi` exactly when
/// `|x − mean| > k·std` holds for the f64 value `mean ± k·std`: `hi` is the largest f32 not above
/// `mean + k·std`, `lo` the smallest f32 not below `mean − k·std`.
pub fn outlier_bounds(mean: f64, std: f64, k: f64) -> (f32, f32) {
    let hi = mean + k * std;
    let lo = mean - k * std;
    (f32_at_least(lo), f32_at_most(hi))
}

/// The outlier bound pairs of the statistics kernels: beyond 3σ and beyond 6σ of the mean (no
/// outliers at all when the variance is zero).
pub fn sigma_bounds(m: &Moments) -> Vec<(f32, f32)> {
    let std = m.std();
    if m.n > 0 && std > 0.0 {
        [3.0, 6.0].iter().map(|&k| outlier_bounds(m.mean, std, k)).collect()
    } else {
        vec![(f32::NEG_INFINITY, f32::INFINITY); 2]
    }
}

/// The largest f32 ≤ `v`.
pub fn f32_at_most(v: f64) -> f32 {
    let f = v as f32;
    if f64::from(f) > v { f.next_down() } else { f }
}

/// The smallest f32 ≥ `v`.
pub fn f32_at_least(v: f64) -> f32 {
    let f = v as f32;
    if f64::from(f) < v { f.next_up() } else { f }
}

/// Counts finite values outside `[lo, hi]` for each bound pair.
pub fn add_outlier_counts(values: &[f32], bounds: &[(f32, f32)], counts: &mut [u64]) {
    for (count, &(lo, hi)) in counts.iter_mut().zip(bounds) {
        *count += values.iter().filter(|&&x| x.is_finite() && (x < lo || x > hi)).count() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outlier_bounds_are_exact_in_f32() {
        let (lo, hi) = outlier_bounds(0.1, 0.2, 3.0);
        let bound_hi = 0.1 + 0.6;
        assert!(f64::from(hi) <= bound_hi && f64::from(hi.next_up()) > bound_hi);
        assert!(f64::from(lo) >= 0.1 - 0.6 && f64::from(lo.next_down()) < 0.1 - 0.6);
        let mut counts = [0u64; 1];
        add_outlier_counts(&[hi, hi.next_up(), lo, lo.next_down(), f32::NAN], &[(lo, hi)], &mut counts);
        assert_eq!(counts, [2]);
    }
}
