//! The CPU kernels on plain `f32` slices: the reference that every GPU kernel is tested
//! against. Integer results (bin and outlier counts) are defined by comparisons against f32
//! thresholds computed once, so any implementation following the same rule gets the same counts.

use super::{BinScale, Moments};

/// Values per block of the moment kernel: each block is summed in two passes (mean, then
/// central sums) while it sits in cache, and blocks are merged exactly in a fixed order.
pub const MOMENT_BLOCK: usize = 4096;

impl Moments {
    /// The moments of nothing.
    pub fn empty() -> Self {
        Moments { min: f32::INFINITY, max: f32::NEG_INFINITY, min_abs_nonzero: f32::INFINITY, ..Default::default() }
    }

    /// Population variance of the finite values.
    pub fn variance(&self) -> f64 {
        if self.n == 0 { f64::NAN } else { self.m2 / self.n as f64 }
    }

    /// Population standard deviation.
    pub fn std(&self) -> f64 {
        self.variance().sqrt()
    }

    /// Skewness m3 / m2^1.5 (population); NaN when the variance is zero.
    pub fn skewness(&self) -> f64 {
        let n = self.n as f64;
        let m2 = self.m2 / n;
        if m2 > 0.0 { (self.m3 / n) / m2.powf(1.5) } else { f64::NAN }
    }

    /// Excess kurtosis m4 / m2² − 3 (population); NaN when the variance is zero.
    pub fn kurtosis(&self) -> f64 {
        let n = self.n as f64;
        let m2 = self.m2 / n;
        if m2 > 0.0 { (self.m4 / n) / (m2 * m2) - 3.0 } else { f64::NAN }
    }

    /// Total values, finite or not.
    pub fn count(&self) -> u64 {
        self.n + self.nan + self.pos_inf + self.neg_inf
    }
}

/// Moments of one block, two passes in f64: the block mean, then central sums about it.
pub fn block_moments(values: &[f32]) -> Moments {
    let mut m = Moments::empty();
    let mut sum = 0f64;
    for &x in values {
        if x.is_finite() {
            m.n += 1;
            sum += f64::from(x);
            m.min = m.min.min(x);
            m.max = m.max.max(x);
            if x == 0.0 {
                m.zeros += 1;
            } else {
                m.min_abs_nonzero = m.min_abs_nonzero.min(x.abs());
            }
        } else if x.is_nan() {
            m.nan += 1;
        } else if x > 0.0 {
            m.pos_inf += 1;
        } else {
            m.neg_inf += 1;
        }
    }
    if m.n == 0 {
        return m;
    }
    m.mean = sum / m.n as f64;
    let (mut s2, mut s3, mut s4) = (0f64, 0f64, 0f64);
    for &x in values.iter().filter(|x| x.is_finite()) {
        let d = f64::from(x) - m.mean;
        let d2 = d * d;
        s2 += d2;
        s3 += d2 * d;
        s4 += d2 * d2;
    }
    m.m2 = s2;
    m.m3 = s3;
    m.m4 = s4;
    m
}

/// Exact merge of the moments of two disjoint sets (Pébay 2008, eqs. 2.1–2.4).
pub fn merge_moments(a: &Moments, b: &Moments) -> Moments {
    let mut m = Moments {
        min: a.min.min(b.min),
        max: a.max.max(b.max),
        min_abs_nonzero: a.min_abs_nonzero.min(b.min_abs_nonzero),
        nan: a.nan + b.nan,
        pos_inf: a.pos_inf + b.pos_inf,
        neg_inf: a.neg_inf + b.neg_inf,
        zeros: a.zeros + b.zeros,
        ..Moments::default()
    };
    if a.n == 0 || b.n == 0 {
        let src = if a.n == 0 { b } else { a };
        return Moments { n: src.n, mean: src.mean, m2: src.m2, m3: src.m3, m4: src.m4, ..m };
    }
    let (na, nb) = (a.n as f64, b.n as f64);
    let n = na + nb;
    let delta = b.mean - a.mean;
    let d2 = delta * delta;
    m.n = a.n + b.n;
    m.mean = a.mean + delta * nb / n;
    m.m2 = a.m2 + b.m2 + d2 * na * nb / n;
    m.m3 = a.m3 + b.m3 + d2 * delta * na * nb * (na - nb) / (n * n) + 3.0 * delta * (na * b.m2 - nb * a.m2) / n;
    m.m4 = a.m4
        + b.m4
        + d2 * d2 * na * nb * (na * na - na * nb + nb * nb) / (n * n * n)
        + 6.0 * d2 * (na * na * b.m2 + nb * nb * a.m2) / (n * n)
        + 4.0 * delta * (na * b.m3 - nb * a.m3) / n;
    m
}

/// Merges block moments in the given order (a fixed order makes results reproducible).
pub fn merge_all<'a>(blocks: impl IntoIterator<Item = &'a Moments>) -> Moments {
    blocks.into_iter().fold(Moments::empty(), |acc, b| merge_moments(&acc, b))
}

/// Equal-width f32 edges over `[lo, hi]`; a single value gets numpy's `[v − 0.5, v + 0.5]`.
pub fn equal_width_edges(lo: f32, hi: f32, bins: usize) -> Vec<f32> {
    let bins = bins.max(1);
    let (lo, hi) = if lo < hi { (f64::from(lo), f64::from(hi)) } else { (f64::from(lo) - 0.5, f64::from(hi) + 0.5) };
    let mut edges: Vec<f32> = (0..=bins).map(|i| (lo + (hi - lo) * i as f64 / bins as f64) as f32).collect();
    edges[0] = lo as f32;
    edges[bins] = hi as f32;
    for i in 1..edges.len() {
        edges[i] = edges[i].max(edges[i - 1]);
    }
    edges
}

/// The edges and thresholds of a histogram of the given scale over moments `m`.
pub fn histogram_bins(m: &Moments, bins: usize, scale: BinScale) -> (Vec<f32>, Vec<f32>) {
    match scale {
        BinScale::Linear => {
            let edges =
                if m.n == 0 { equal_width_edges(0.0, 0.0, bins) } else { equal_width_edges(m.min, m.max, bins) };
            (edges.clone(), edges)
        }
        BinScale::Log10Abs => {
            let max_abs = m.min.abs().max(m.max.abs());
            if m.min_abs_nonzero.is_infinite() {
                let edges = equal_width_edges(0.0, 0.0, bins);
                return (edges.clone(), edges.iter().map(|e| 10f32.powf(*e)).collect());
            }
            let (lo, hi) = (m.min_abs_nonzero, max_abs);
            let edges = equal_width_edges(lo.log10(), hi.log10(), bins);
            let mut t: Vec<f32> = edges.iter().map(|&e| 10f64.powf(f64::from(e)) as f32).collect();
            // The outer thresholds are the exact extremes, so every non-zero value falls in a bin.
            let last = t.len() - 1;
            t[0] = t[0].min(lo);
            t[last] = t[last].max(hi);
            for i in 1..t.len() {
                t[i] = t[i].max(t[i - 1]);
            }
            (edges, t)
        }
    }
}

/// The bin of `v` (already within `[t[0], t[last]]`), by comparisons against the thresholds,
/// starting from a guess made with `lo` and `scale` (any guess gives the same answer).
#[inline]
pub fn bin_of(v: f32, t: &[f32], lo: f64, scale: f64) -> usize {
    let bins = t.len() - 1;
    let guess = ((f64::from(v) - lo) * scale).max(0.0) as usize;
    let mut i = guess.min(bins - 1);
    while i > 0 && v < t[i] {
        i -= 1;
    }
    while i + 1 < bins && v >= t[i + 1] {
        i += 1;
    }
    i
}

/// Adds the histogram counts of `values` to `counts` (finite values only; for log bins, |x| of
/// the non-zero ones).
pub fn add_histogram_counts(values: &[f32], thresholds: &[f32], scale: BinScale, counts: &mut [u64]) {
    let bins = thresholds.len() - 1;
    let (lo, hi) = (thresholds[0], thresholds[bins]);
    match scale {
        BinScale::Linear => {
            let s = if hi > lo { bins as f64 / (f64::from(hi) - f64::from(lo)) } else { 0.0 };
            for &x in values {
                if x.is_finite() && x >= lo && x <= hi {
                    counts[bin_of(x, thresholds, f64::from(lo), s)] += 1;
                }
            }
        }
        BinScale::Log10Abs => {
            let (llo, lhi) = (f64::from(lo).log10(), f64::from(hi).log10());
            let s = if lhi > llo { bins as f64 / (lhi - llo) } else { 0.0 };
            for &x in values {
                let a = x.abs();
                if x.is_finite() && a != 0.0 && a >= lo && a <= hi {
                    let guess_pos = (f64::from(a).log10() - llo) * s;
                    let i = bin_of_guess(a, thresholds, guess_pos);
                    counts[i] += 1;
                }
            }
        }
    }
}

#[inline]
fn bin_of_guess(v: f32, t: &[f32], guess: f64) -> usize {
    let bins = t.len() - 1;
    let mut i = (guess.max(0.0) as usize).min(bins - 1);
    while i > 0 && v < t[i] {
        i -= 1;
    }
    while i + 1 < bins && v >= t[i + 1] {
        i += 1;
    }
    i
}

/// f32 bounds `(lo, hi)` such that, for every f32 `x`, `x < lo || x > hi` exactly when
/// `|x − mean| > k·std` holds for the f64 value `mean ± k·std`: `hi` is the largest f32 not above
/// `mean + k·std`, `lo` the smallest f32 not below `mean − k·std`.
pub fn outlier_bounds(mean: f64, std: f64, k: f64) -> (f32, f32) {
    let hi = mean + k * std;
    let lo = mean - k * std;
    (f32_at_least(lo), f32_at_most(hi))
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
    for &x in values {
        if !x.is_finite() {
            continue;
        }
        for (c, &(lo, hi)) in counts.iter_mut().zip(bounds) {
            if x < lo || x > hi {
                *c += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(values: &[f64]) -> (f64, f64, f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let c = |p: i32| values.iter().map(|x| (x - mean).powi(p)).sum::<f64>();
        (mean, c(2), c(3), c(4))
    }

    #[test]
    fn merged_blocks_equal_the_whole() {
        let values: Vec<f32> = (0..10_000).map(|i| ((i * 7919) % 1000) as f32 / 97.0 - 3.0).collect();
        let blocks: Vec<Moments> = values.chunks(333).map(block_moments).collect();
        let merged = merge_all(&blocks);
        let (mean, m2, m3, m4) = naive(&values.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
        assert_eq!(merged.n, 10_000);
        assert!((merged.mean - mean).abs() < 1e-12 * mean.abs().max(1.0));
        assert!((merged.m2 - m2).abs() < 1e-10 * m2);
        assert!((merged.m3 - m3).abs() < 1e-9 * m3.abs().max(m2));
        assert!((merged.m4 - m4).abs() < 1e-10 * m4);
    }

    #[test]
    fn known_distributions() {
        // Two-point distribution {-1, +1}: mean 0, variance 1, skewness 0, excess kurtosis -2.
        let m = block_moments(&[-1.0, 1.0, -1.0, 1.0]);
        assert_eq!((m.mean, m.variance(), m.skewness(), m.kurtosis()), (0.0, 1.0, 0.0, -2.0));
        // Bernoulli(1/4) on {0, 1}: skewness (1-2p)/sqrt(p q), excess kurtosis (1 - 6pq)/(pq).
        let m = block_moments(&[1.0, 0.0, 0.0, 0.0]);
        let (p, q) = (0.25f64, 0.75f64);
        assert!((m.skewness() - (1.0 - 2.0 * p) / (p * q).sqrt()).abs() < 1e-15);
        assert!((m.kurtosis() - (1.0 - 6.0 * p * q) / (p * q)).abs() < 1e-14);
        assert_eq!(m.zeros, 3);
    }

    #[test]
    fn stable_with_a_large_offset() {
        // A naive sum-of-powers method loses everything here; shifted two-pass blocks do not.
        let values: Vec<f32> = (0..4096).map(|i| 1.0e6 + if i % 2 == 0 { 0.5 } else { -0.5 }).collect();
        let m = merge_all(&values.chunks(100).map(block_moments).collect::<Vec<_>>());
        assert!((m.std() - 0.5).abs() < 1e-12);
        assert!((m.kurtosis() + 2.0).abs() < 1e-9);
    }

    #[test]
    fn non_finite_values_are_counted_and_excluded() {
        let m = block_moments(&[1.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 3.0, 0.0, -0.0]);
        assert_eq!((m.n, m.nan, m.pos_inf, m.neg_inf, m.zeros), (4, 1, 1, 1, 2));
        assert_eq!((m.mean, m.min, m.max, m.min_abs_nonzero), (1.0, 0.0, 3.0, 1.0));
    }

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

    #[test]
    fn log_bins_cover_every_nonzero_value() {
        let values = [1e-3f32, -2e-3, 0.5, -7.0, 0.0, 1e-3];
        let m = block_moments(&values);
        let (edges, t) = histogram_bins(&m, 4, BinScale::Log10Abs);
        assert_eq!(edges.len(), 5);
        assert_eq!((t[0], t[4]), (1e-3, 7.0));
        let mut counts = vec![0u64; 4];
        add_histogram_counts(&values, &t, BinScale::Log10Abs, &mut counts);
        assert_eq!(counts.iter().sum::<u64>(), 5, "the zero is left out");
        assert_eq!(counts[0], 3);
    }

    #[test]
    fn linear_bins_follow_numpy() {
        let t = [0.0f32, 1.0, 2.0, 3.0];
        let mut counts = vec![0u64; 3];
        add_histogram_counts(&[0.0, 0.999, 1.0, 2.5, 3.0, 3.5, f32::NAN], &t, BinScale::Linear, &mut counts);
        assert_eq!(counts, [2, 1, 2]);
        assert_eq!(bin_of(2.5, &t, 0.0, 100.0), 2, "a wrong guess is corrected");
    }
}
