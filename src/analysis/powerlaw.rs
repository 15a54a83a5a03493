//! Power-law fits of eigenvalue tails, computed the way WeightWatcher 0.7 computes them (its
//! default `WWFit`): for every candidate `xmin` among the sorted eigenvalues, the maximum-
//! likelihood exponent `alpha = 1 + n / Σ ln(x / xmin)` and the Kolmogorov–Smirnov distance `D`
//! between the fitted and the empirical CDF of the tail; the `xmin` with the smallest `D` wins
//! (Clauset, Shalizi & Newman 2009). Below 20 eigenvalues WeightWatcher switches to a
//! bias-corrected `alpha = 1 + (n − 1) / Σ ln(x / xmin)` over tails of at least 8; so does this.

use serde::{Deserialize, Serialize};

/// Fewer eigenvalues than this use the small-sample fit (WeightWatcher's `SMALL_N_CUTOFF`).
pub const SMALL_N_CUTOFF: usize = 20;
/// Smallest tail the small-sample fit considers.
const SMALL_N_MIN_TAIL: usize = 8;

/// A fitted power law.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PowerLawFit {
    /// Exponent of p(x) ∝ x^−alpha above `xmin`.
    pub alpha: f64,
    /// Start of the tail.
    pub xmin: f64,
    /// Kolmogorov–Smirnov distance of the fit.
    pub d: f64,
    /// Standard error of alpha, (alpha − 1)/√n.
    pub sigma: f64,
    /// Values in the tail (≥ xmin) among those fitted.
    pub tail: usize,
}

/// KS distance between the power law (alpha, xmin = tail[0]) and the empirical CDF of the tail
/// whose logarithms are `log_tail`: `(x/xmin)^(1−alpha)` as `exp((1−alpha)(ln x − ln xmin))`.
fn ks_distance(log_tail: &[f64], alpha: f64) -> f64 {
    let log_xmin = log_tail[0];
    let n = log_tail.len() as f64;
    log_tail
        .iter()
        .enumerate()
        .map(|(j, &lx)| (1.0 - ((1.0 - alpha) * (lx - log_xmin)).exp() - j as f64 / n).abs())
        .fold(0.0, f64::max)
}

/// Fits a power law to `data` (positive values; sorted here). Returns `None` for fewer than
/// `SMALL_N_MIN_TAIL` values, as WeightWatcher skips layers that small.
pub fn fit(data: &[f64]) -> Option<PowerLawFit> {
    let mut x: Vec<f64> = data.iter().copied().filter(|v| *v > 0.0 && v.is_finite()).collect();
    x.sort_by(f64::total_cmp);
    let n_all = x.len();
    if n_all < SMALL_N_MIN_TAIL {
        return None;
    }
    let logs: Vec<f64> = x.iter().map(|v| v.ln()).collect();
    // Suffix sums of ln x.
    let mut suffix = vec![0f64; n_all + 1];
    for i in (0..n_all).rev() {
        suffix[i] = suffix[i + 1] + logs[i];
    }
    let small = n_all < SMALL_N_CUTOFF;
    let candidates = n_all - 1;
    let mut alphas = vec![0f64; candidates];
    let mut ds = vec![1f64; candidates];
    for i in 0..candidates {
        let n = (n_all - i) as f64;
        let s = suffix[i] - n * logs[i];
        let alpha = if small {
            if n_all - i < SMALL_N_MIN_TAIL || s <= 1e-12 {
                continue;
            }
            1.0 + (n - 1.0) / s
        } else {
            1.0 + n / s
        };
        alphas[i] = alpha;
        if alpha > 1.0 {
            ds[i] = ks_distance(&logs[i..], alpha);
        }
    }
    // First smallest D, as numpy's argmin.
    let best = (0..candidates).fold(0, |b, i| if ds[i] < ds[b] { i } else { b });
    let alpha = alphas[best];
    Some(PowerLawFit {
        alpha,
        xmin: x[best],
        d: ds[best],
        sigma: (alpha - 1.0) / ((n_all - best) as f64).sqrt(),
        tail: n_all - best,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic samples of a Pareto law p(x) ∝ x^−alpha on [1, ∞) by inverse CDF at evenly
    /// spaced quantiles.
    fn pareto(alpha: f64, n: usize) -> Vec<f64> {
        (0..n).map(|i| (1.0 - (i as f64 + 0.5) / n as f64).powf(-1.0 / (alpha - 1.0))).collect()
    }

    #[test]
    fn recovers_the_exponent_of_a_pareto_sample() {
        for alpha in [2.0, 3.5, 5.0] {
            let f = fit(&pareto(alpha, 2000)).unwrap();
            assert!((f.alpha - alpha).abs() < 0.05, "alpha {alpha}: fitted {}", f.alpha);
            assert!(f.d < 0.02, "KS distance {}", f.d);
        }
    }

    #[test]
    fn finds_the_tail_above_a_bulk() {
        // A uniform bulk on [0.1, 1] then a Pareto tail above 1 with alpha 3: xmin lands near 1.
        let mut data: Vec<f64> = (0..500).map(|i| 0.1 + 0.9 * i as f64 / 500.0).collect();
        data.extend(pareto(3.0, 500));
        let f = fit(&data).unwrap();
        assert!((f.xmin - 1.0).abs() < 0.2, "xmin {}", f.xmin);
        assert!((f.alpha - 3.0).abs() < 0.3, "alpha {}", f.alpha);
        assert_eq!(f.tail, data.iter().filter(|&&v| v >= f.xmin).count());
    }

    #[test]
    fn too_few_values_give_no_fit() {
        assert!(fit(&[1.0, 2.0, 3.0]).is_none());
        assert!(fit(&pareto(3.0, 12)).is_some(), "small-sample fit above 8 values");
    }
}
