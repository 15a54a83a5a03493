//! Histograms whose bin membership is defined by comparisons against f32 thresholds computed
//! once: any implementation following the rule (the vectorised kernels here, the GPU's) gets the
//! same counts, equal to `numpy.histogram(values, bins=thresholds)`.

use super::outliers::add_outlier_counts;
use crate::compute::{BinScale, Moments};

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
    add_histogram_and_outliers(values, thresholds, scale, &[], counts, &mut []);
}

/// One pass over `values`: histogram counts (as [`add_histogram_counts`]) and, for each bound
/// pair, the count of finite values outside it (as [`add_outlier_counts`]).
pub fn add_histogram_and_outliers(
    values: &[f32],
    thresholds: &[f32],
    scale: BinScale,
    bounds: &[(f32, f32)],
    counts: &mut [u64],
    outliers: &mut [u64],
) {
    add_histogram_and_outliers_with(HistogramIsa::best(), values, thresholds, scale, bounds, counts, outliers);
}

/// The instruction sets the linear histogram kernel has a hand-vectorised version for.
/// All give the same counts; [`HistogramIsa::best`] is the one used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistogramIsa {
    /// Lane-wise Rust that the compiler vectorises as it can (any CPU).
    Portable,
    /// AVX2 and FMA: eight lanes.
    Avx2,
    /// AVX-512 (F, BW, CD, DQ, VL): sixteen lanes, comparisons into mask registers. The kernel
    /// is bound by instructions per value, which this halves.
    Avx512,
}

impl HistogramIsa {
    /// Those this CPU has, worst first.
    pub fn available() -> Vec<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            let mut isas = vec![Self::Portable];
            if pulp::x86::V3::try_new().is_some() {
                isas.push(Self::Avx2);
            }
            if pulp::x86::V4::try_new().is_some() {
                isas.push(Self::Avx512);
            }
            isas
        }
        #[cfg(not(target_arch = "x86_64"))]
        vec![Self::Portable]
    }

    /// The best this CPU has.
    pub fn best() -> Self {
        Self::available().last().copied().unwrap_or(Self::Portable)
    }
}

/// [`add_histogram_and_outliers`] with the vectorised kernel of `isa` (or the portable one,
/// where this CPU lacks `isa`): for tests and benchmarks that compare them.
pub fn add_histogram_and_outliers_with(
    isa: HistogramIsa,
    values: &[f32],
    thresholds: &[f32],
    scale: BinScale,
    bounds: &[(f32, f32)],
    counts: &mut [u64],
    outliers: &mut [u64],
) {
    pulp::Arch::new().dispatch(HistogramKernel { isa, values, thresholds, scale, bounds, counts, outliers });
}

struct HistogramKernel<'a> {
    isa: HistogramIsa,
    values: &'a [f32],
    thresholds: &'a [f32],
    scale: BinScale,
    bounds: &'a [(f32, f32)],
    counts: &'a mut [u64],
    outliers: &'a mut [u64],
}

impl pulp::WithSimd for HistogramKernel<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let t = self.thresholds;
        let bins = t.len() - 1;
        let (lo, hi) = (t[0], t[bins]);
        // Local u32 counts: cheaper increments (callers pass blocks far below 2^32 values).
        let mut local = vec![0u32; bins];
        let mut outliers_done = false;
        match self.scale {
            BinScale::Linear => {
                let s = if hi > lo { (bins as f64 / (f64::from(hi) - f64::from(lo))) as f32 } else { 0.0 };
                if regular_bins(t) {
                    outliers_done =
                        count_regular_bins(self.isa, self.values, t, s, &mut local, self.bounds, self.outliers);
                } else {
                    count_bins(self.values, t, false, &mut local, |x| {
                        (x >= lo && x <= hi).then_some((x, ((x - lo) * s) as usize))
                    });
                }
            }
            BinScale::Log10Abs => {
                let (llo, lhi) = (f64::from(lo).log10(), f64::from(hi).log10());
                let s = if lhi > llo { bins as f64 / (lhi - llo) } else { 0.0 };
                // log10 only guesses; the comparisons with the thresholds decide, so the wide
                // correction is used.
                count_bins(self.values, t, false, &mut local, |x| {
                    let a = x.abs();
                    (a != 0.0 && a >= lo && a <= hi)
                        .then(|| ((f64::from(a).log10() - llo) * s).max(0.0) as usize)
                        .map(|g| (a, g))
                });
            }
        }
        for (c, l) in self.counts.iter_mut().zip(&local) {
            *c += u64::from(*l);
        }
        if outliers_done {
            return;
        }
        for (count, &(lo, hi)) in self.outliers.iter_mut().zip(self.bounds) {
            // NaN compares false both ways, so it is never counted; ±Inf is excluded explicitly.
            *count += self.values.iter().map(|&x| u64::from((x < lo || x > hi) && x.is_finite())).sum::<u64>();
        }
    }
}

/// Whether a linear guess is always within one bin of the answer: thresholds strictly
/// increasing, bins far wider than the rounding of values of this magnitude, and a range whose
/// width is a finite f32 (else `x − t[0]` overflows for values near the top).
fn regular_bins(t: &[f32]) -> bool {
    let bins = t.len() - 1;
    let (lo, hi) = (t[0], t[bins]);
    let ulp = f64::from(lo.abs().max(hi.abs())) * f64::from(f32::EPSILON);
    t.windows(2).all(|w| w[0] < w[1])
        && (hi - lo).is_finite()
        && (f64::from(hi) - f64::from(lo)) / bins as f64 > 64.0 * ulp
}

/// Independent copies of the counts that consecutive values go to in turn: weights cluster
/// near zero, so neighbours often share a bin, and one counter would make every increment
/// wait for the previous one.
pub(in crate::compute) const COUNT_WAYS: usize = 16;

/// Values whose bins are found together, as one vector.
const GROUP: usize = 8;

/// 2²³: adding it to a float in `[0, 2²³)` leaves its integer part in the mantissa's bits.
pub(in crate::compute) const MANTISSA_SHIFT: f32 = 8_388_608.0;

/// How far (in bins) a bin guess `(x − t[0])·s` may be from the exact position of `x`, plus how
/// far any threshold lies from its ideal place `t[0] + i·w`. A value whose guess lies further
/// than this from both ends of its bin is in that bin by the comparison rule; others are
/// placed by comparisons.
fn guess_margin(t: &[f32]) -> f64 {
    let bins = t.len() - 1;
    let (lo, hi) = (f64::from(t[0]), f64::from(t[bins]));
    let w = (hi - lo) / bins as f64;
    let threshold_error =
        t.iter().enumerate().map(|(i, &e)| ((f64::from(e) - lo) / w - i as f64).abs()).fold(0.0, f64::max);
    // f32 subtraction and product, each within 2⁻²⁴ relative, on a position of at most `bins`.
    threshold_error + bins as f64 * 2f64.powi(-21)
}

/// A linear bin guess `(x − lo)·s` and the band within which it decides a value's bin alone:
/// a guess whose fractional part lies in `(clear_lo, clear_hi)` and whose bin is below `bins`.
#[derive(Clone, Copy, Debug)]
pub(in crate::compute) struct LinearGuess {
    pub lo: f32,
    pub s: f32,
    pub clear_lo: f32,
    pub clear_hi: f32,
    pub bins: usize,
}

/// Counts the values within `[t[0], t[last]]` into `local` for thresholds where a linear guess
/// is rarely ambiguous ([`regular_bins`]). Guesses are made a group at a time (vectorised); a
/// group whose guesses are all clear of their bin ends is counted directly, any other group by
/// comparisons. Both give the counts of the comparison rule. Returns whether the outliers
/// beyond `bounds` were counted into `outliers` on the way (the AVX2 kernel does).
#[inline(always)]
fn count_regular_bins(
    isa: HistogramIsa,
    values: &[f32],
    t: &[f32],
    s: f32,
    local: &mut [u32],
    bounds: &[(f32, f32)],
    outliers: &mut [u64],
) -> bool {
    let bins = t.len() - 1;
    let (lo, hi) = (t[0], t[bins]);
    let margin = guess_margin(t);
    let exact = |x: f32| (x >= lo && x <= hi).then_some((x, ((x - lo) * s) as usize));
    // (A NaN margin, from thresholds no linear guess can follow, also takes the comparisons.)
    if margin.is_nan() || margin >= 0.25 || bins >= 1 << 22 {
        count_bins(values, t, true, local, exact);
        return false;
    }
    let guess = LinearGuess { lo, s, clear_lo: margin as f32, clear_hi: (1.0 - margin) as f32, bins };
    #[cfg(target_arch = "x86_64")]
    {
        use crate::compute::simd_x86::{WAYS_LEN, regular_histogram, way_stride};
        let mut ways = vec![0u32; WAYS_LEN];
        let mut unclear_outliers = [0u64; 2];
        let mut unclear = |group: &[f32]| {
            count_bins(group, t, true, local, exact);
            add_outlier_counts(group, bounds, &mut unclear_outliers);
        };
        if let Ok(fixed) = <&mut [u32; WAYS_LEN]>::try_from(ways.as_mut_slice())
            && regular_histogram(isa, values, &guess, bounds, fixed, outliers, &mut unclear)
        {
            outliers.iter_mut().zip(unclear_outliers).for_each(|(o, u)| *o += u);
            for way in ways.chunks_exact(way_stride(bins)).take(COUNT_WAYS) {
                local.iter_mut().zip(way).for_each(|(c, w)| *c += w);
            }
            return true;
        }
    }
    let mut ways = vec![0u32; COUNT_WAYS * bins];
    let (eps, top, nb) = (guess.clear_lo, guess.clear_hi, bins as f32);
    let groups = values.chunks_exact(GROUP);
    let rest = groups.remainder();
    for group in groups {
        let mut at = [0u32; GROUP];
        let mut unclear = 0u32;
        for (a, &x) in at.iter_mut().zip(group) {
            let q = (x - lo) * s;
            let f = q.floor();
            let r = q - f;
            // NaN fails every comparison, so it is unclear too.
            unclear |= u32::from(!(r > eps && r < top && q >= 0.0 && q < nb));
            // f + 2²³ holds the integer f in its low mantissa bits (0 ≤ f < 2²³ when clear),
            // a conversion that vectorises where a saturating `as` does not.
            *a = (f + MANTISSA_SHIFT).to_bits().wrapping_sub(MANTISSA_SHIFT.to_bits());
        }
        if unclear == 0 {
            for (l, &a) in at.iter().enumerate() {
                ways[(l % COUNT_WAYS) * bins + a as usize] += 1;
            }
        } else {
            count_bins(group, t, true, local, exact);
        }
    }
    count_bins(rest, t, true, local, exact);
    for way in ways.chunks_exact(bins) {
        local.iter_mut().zip(way).for_each(|(c, w)| *c += w);
    }
    false
}

/// Counts values into `local`. `guess` maps a value to the value compared against the
/// thresholds and a guessed bin, or `None` to leave it out.
#[inline(always)]
fn count_bins(
    values: &[f32],
    t: &[f32],
    regular: bool,
    local: &mut [u32],
    guess: impl Fn(f32) -> Option<(f32, usize)>,
) {
    let bins = t.len() - 1;
    let place = |v: f32, g: usize| -> usize {
        let g = g.min(bins - 1);
        if regular {
            // Both comparisons depend only on the guess, not on each other.
            let down = usize::from(g > 0 && v < t[g]);
            let up = usize::from(g + 1 < bins && v >= t[g + 1]);
            g + up - down
        } else {
            settle(v, t, g)
        }
    };
    for &x in values {
        if let Some((v, g)) = guess(x) {
            local[place(v, g)] += 1;
        }
    }
}

/// Moves a guessed bin to the one whose thresholds hold `v` (any guess gives the same answer).
#[inline(always)]
fn settle(v: f32, t: &[f32], mut i: usize) -> usize {
    let bins = t.len() - 1;
    while i > 0 && v < t[i] {
        i -= 1;
    }
    while i + 1 < bins && v >= t[i + 1] {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::kernels::test_weights as weights;
    use crate::compute::kernels::{block_moments, sigma_bounds};

    /// Histogram and outlier counts by the definition: a binary search of the thresholds.
    fn naive_counts(values: &[f32], t: &[f32], bounds: &[(f32, f32)]) -> (Vec<u64>, Vec<u64>) {
        let bins = t.len() - 1;
        let mut counts = vec![0u64; bins];
        for &x in values.iter().filter(|x| x.is_finite() && **x >= t[0] && **x <= t[bins]) {
            counts[t.partition_point(|&e| e <= x).clamp(1, bins) - 1] += 1;
        }
        let outliers = bounds
            .iter()
            .map(|&(lo, hi)| values.iter().filter(|x| x.is_finite() && (**x < lo || **x > hi)).count() as u64);
        (counts, outliers.collect())
    }

    #[test]
    fn histogram_paths_follow_the_comparison_rule() {
        for (n, bins) in [(1001, 256), (4096, 1), (4099, 7), (65536, 256), (20000, 1000), (333, 2), (30011, 449)] {
            let mut values = weights(n, n as u64);
            let m = block_moments(&values);
            let (_, t) = histogram_bins(&m, bins, BinScale::Linear);
            // Values exactly on interior thresholds, and non-finite ones, must land by the rule.
            for (i, e) in t.iter().enumerate().take(values.len() / 5) {
                values[5 * i + 4] = *e;
            }
            values[n / 2] = f32::NAN;
            values[n / 3] = f32::INFINITY;
            let bounds = sigma_bounds(&m);
            check_all_isas(&values, &t, &bounds, &format!("n={n} bins={bins}"));
        }
        // A range wider than the largest f32: `x − t[0]` overflows for the top values.
        let mut values = weights(5000, 11);
        values.iter_mut().step_by(3).for_each(|v| *v *= 20.0 * 1.7e38);
        values.extend([f32::MAX, -f32::MAX, 1.0e38, -1.0e38, 2.0e38]);
        for bins in [1, 7, 256] {
            let (_, t) = histogram_bins(&block_moments(&values), bins, BinScale::Linear);
            check_all_isas(&values, &t, &[], &format!("near f32::MAX, bins={bins}"));
        }
    }

    /// Every histogram kernel this CPU has against the comparison rule.
    fn check_all_isas(values: &[f32], t: &[f32], bounds: &[(f32, f32)], what: &str) {
        let bins = t.len() - 1;
        let (want_counts, want_outliers) = naive_counts(values, t, bounds);
        for isa in HistogramIsa::available() {
            let mut counts = vec![0u64; bins];
            let mut outliers = [0u64; 2];
            add_histogram_and_outliers_with(isa, values, t, BinScale::Linear, bounds, &mut counts, &mut outliers);
            assert_eq!(counts, want_counts, "{what} {isa:?}");
            assert_eq!(outliers[..bounds.len()].to_vec(), want_outliers, "{what} {isa:?}");
        }
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
    fn collapsed_thresholds_still_count_by_comparison() {
        // Values 1000 ± a few ulps: 64 bins narrower than the f32 spacing collapse onto a handful
        // of distinct thresholds, and the guess can be many bins off.
        let values: Vec<f32> = (0..1000).map(|i| 1000.0 + (i % 5) as f32 * 1e-4 - 2e-4).collect();
        let m = block_moments(&values);
        let (_, t) = histogram_bins(&m, 64, BinScale::Linear);
        assert!(!regular_bins(&t));
        let mut counts = vec![0u64; 64];
        add_histogram_counts(&values, &t, BinScale::Linear, &mut counts);
        let mut brute = vec![0u64; 64];
        for &x in &values {
            brute[t.partition_point(|&e| e <= x).saturating_sub(1).min(63)] += 1;
        }
        assert_eq!(counts, brute);
        assert_eq!(counts.iter().sum::<u64>(), 1000);
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
