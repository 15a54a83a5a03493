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
/// Blocks without NaN or infinities take a vectorised path (SIMD chosen at run time).
pub fn block_moments(values: &[f32]) -> Moments {
    pulp::Arch::new().dispatch(MomentsKernel(values))
}

struct MomentsKernel<'a>(&'a [f32]);

impl pulp::WithSimd for MomentsKernel<'_> {
    type Output = Moments;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> Moments {
        #[cfg(target_arch = "x86_64")]
        let finite = super::simd_x86::finite_block_moments(self.0).or_else(|| finite_block_moments(self.0));
        #[cfg(not(target_arch = "x86_64"))]
        let finite = finite_block_moments(self.0);
        finite.unwrap_or_else(|| general_block_moments(self.0))
    }
}

/// Lanes of the vectorised loops: independent accumulators that LLVM maps onto SIMD registers.
const LANES: usize = 8;

/// Lanes of the f64 accumulators: one 256-bit register each.
const F64_LANES: usize = 4;

/// The f32 bits without the sign.
pub(super) const MAGNITUDE: u32 = 0x7fff_ffff;

/// Moments of a block of finite values, or `None` when the block holds NaN or an infinity.
/// Written lane-wise with branch-free integer tests so that every loop vectorises: zeros are
/// magnitudes of 0, non-finite values magnitudes at or above the infinity's bits, and the
/// smallest non-zero magnitude is the smallest `magnitude − 1` (a zero wraps to the largest).
#[inline(always)]
fn finite_block_moments(values: &[f32]) -> Option<Moments> {
    let mut m = Moments::empty();
    if values.is_empty() {
        return Some(m);
    }
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    let mut lo = [f32::INFINITY; LANES];
    let mut hi = [f32::NEG_INFINITY; LANES];
    let mut least = [u32::MAX; LANES];
    let mut zeros = [0u32; LANES];
    let mut special = [0u32; LANES];
    for c in chunks {
        for l in 0..LANES {
            let x = c[l];
            let mag = x.to_bits() & MAGNITUDE;
            lo[l] = if x < lo[l] { x } else { lo[l] };
            hi[l] = if x > hi[l] { x } else { hi[l] };
            least[l] = least[l].min(mag.wrapping_sub(1));
            zeros[l] += mag.wrapping_sub(1) >> 31;
            special[l] |= (mag + 0x0080_0000) >> 31;
        }
    }
    let mut least_all = least.iter().copied().fold(u32::MAX, u32::min);
    for &x in rest {
        let mag = x.to_bits() & MAGNITUDE;
        if mag >= f32::INFINITY.to_bits() {
            return None;
        }
        m.min = m.min.min(x);
        m.max = m.max.max(x);
        least_all = least_all.min(mag.wrapping_sub(1));
        m.zeros += u64::from(mag == 0);
    }
    if special.iter().any(|&f| f != 0) {
        return None;
    }
    for l in 0..LANES {
        m.min = m.min.min(lo[l]);
        m.max = m.max.max(hi[l]);
        m.zeros += u64::from(zeros[l]);
    }
    m.min_abs_nonzero = if least_all == u32::MAX { f32::INFINITY } else { f32::from_bits(least_all + 1) };
    m.n = values.len() as u64;
    // Sums in f64, one SIMD register of lanes per accumulator.
    let chunks = values.chunks_exact(F64_LANES);
    let rest = chunks.remainder();
    let mut sum = [0f64; F64_LANES];
    for c in chunks.clone() {
        for l in 0..F64_LANES {
            sum[l] += f64::from(c[l]);
        }
    }
    let total = sum.iter().sum::<f64>() + rest.iter().map(|&x| f64::from(x)).sum::<f64>();
    m.mean = total / m.n as f64;
    let mean = m.mean;
    let (mut s2, mut s3, mut s4) = ([0f64; F64_LANES], [0f64; F64_LANES], [0f64; F64_LANES]);
    for c in chunks {
        for l in 0..F64_LANES {
            let d = f64::from(c[l]) - mean;
            let d2 = d * d;
            s2[l] += d2;
            s3[l] += d2 * d;
            s4[l] += d2 * d2;
        }
    }
    let mut sums = [s2.iter().sum::<f64>(), s3.iter().sum::<f64>(), s4.iter().sum::<f64>()];
    add_central_sums(rest, mean, &mut sums);
    [m.m2, m.m3, m.m4] = sums;
    Some(m)
}

/// Adds Σd², Σd³, Σd⁴ (d = x − mean) over the finite values to `sums`: the scalar loop of the
/// general path and of every vectorised kernel's tail.
pub(super) fn add_central_sums(values: &[f32], mean: f64, sums: &mut [f64; 3]) {
    for &x in values.iter().filter(|x| x.is_finite()) {
        let d = f64::from(x) - mean;
        let d2 = d * d;
        sums[0] += d2;
        sums[1] += d2 * d;
        sums[2] += d2 * d2;
    }
}

/// The same with NaN and infinities counted and left out (branchy, for the rare blocks with them).
fn general_block_moments(values: &[f32]) -> Moments {
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
    let mut sums = [0.0; 3];
    add_central_sums(values, m.mean, &mut sums);
    [m.m2, m.m3, m.m4] = sums;
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
pub(super) const COUNT_WAYS: usize = 16;

/// Values whose bins are found together, as one vector.
const GROUP: usize = 8;

/// 2²³: adding it to a float in `[0, 2²³)` leaves its integer part in the mantissa's bits.
pub(super) const MANTISSA_SHIFT: f32 = 8_388_608.0;

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
pub(super) struct LinearGuess {
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
        use super::simd_x86::{WAYS_LEN, regular_histogram, way_stride};
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

/// Tile sizes and grid of a `rows × cols` matrix cut into at most `max_grid × max_grid` tiles:
/// `(tile_rows, tile_cols, grid_rows, grid_cols)`.
pub fn tiling(rows: usize, cols: usize, max_grid: usize) -> (usize, usize, usize, usize) {
    let (tr, tc) = (rows.div_ceil(max_grid.max(1)).max(1), cols.div_ceil(max_grid.max(1)).max(1));
    (tr, tc, rows.div_ceil(tr), cols.div_ceil(tc))
}

/// Adds the salience of the rows of `block` (row-major, `cols` wide, starting at row `row0`) to
/// `tiles`: per tile, the max of |x| · |importance[column]| in f32.
pub fn add_salience(
    block: &[f32],
    row0: usize,
    cols: usize,
    importance: &[f32],
    (tile_rows, tile_cols, grid_cols): (usize, usize, usize),
    tiles: &mut [f32],
) {
    for (r, row) in block.chunks_exact(cols).enumerate() {
        let base = (row0 + r) / tile_rows * grid_cols;
        for (c, (&x, &s)) in row.iter().zip(importance).enumerate() {
            if x.is_finite() {
                let v = x.abs() * s.abs();
                let tile = &mut tiles[base + c / tile_cols];
                *tile = tile.max(v);
            }
        }
    }
}

/// Largest code of symmetric RTN with `bits` bits.
pub fn rtn_qmax(bits: u32) -> u32 {
    (1u32 << (bits.clamp(2, 8) - 1)) - 1
}

/// Checks that an RTN spec fits a tensor whose rows have `cols` values.
pub fn check_rtn(t: super::TensorRef<'_>, spec: &super::RtnSpec, cols: usize) -> Result<(), super::ComputeError> {
    if !(2..=8).contains(&spec.bits) || spec.group == 0 || !cols.is_multiple_of(spec.group) {
        return Err(super::ComputeError::Shape {
            tensor: t.tensor.name.clone(),
            message: format!(
                "RTN with {} bits and groups of {} needs 2..=8 bits and groups dividing the row length {cols}",
                spec.bits, spec.group
            ),
        });
    }
    Ok(())
}

/// Max |x| of each group of `group` consecutive finite values.
pub fn group_absmax(values: &[f32], group: usize) -> Vec<f32> {
    values.chunks(group).map(|g| g.iter().filter(|x| x.is_finite()).fold(0f32, |m, x| m.max(x.abs()))).collect()
}

/// `(scale, 1/scale)` per group: scale = absmax / qmax with IEEE f32 division, and a zero
/// reciprocal for an all-zero group.
pub fn rtn_scales(absmax: &[f32], qmax: u32) -> Vec<(f32, f32)> {
    absmax
        .iter()
        .map(|&a| {
            let scale = a / qmax as f32;
            (scale, if scale > 0.0 { 1.0 / scale } else { 0.0 })
        })
        .collect()
}

/// Codes `clamp(round_ties_even(x · inv), −qmax, qmax)` and the squared error, in f64, of the
/// dequantized values `code · scale` (non-finite values get code 0 and no error).
pub fn rtn_codes(values: &[f32], group: usize, scales: &[(f32, f32)], qmax: u32, codes: &mut Vec<i8>) -> f64 {
    let qm = qmax as f32;
    let mut err = 0f64;
    for (g, chunk) in values.chunks(group).enumerate() {
        let (scale, inv) = scales[g];
        for &x in chunk {
            if x.is_finite() {
                let code = (x * inv).round_ties_even().clamp(-qm, qm);
                let d = x - code * scale;
                err += f64::from(d * d);
                codes.push(code as i8);
            } else {
                codes.push(0);
            }
        }
    }
    err
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

    /// Deterministic heavy-tailed values (a product of uniforms, signed), with exact zeros,
    /// repeated values and tiny magnitudes sprinkled in.
    fn weights(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed | 1;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        (0..n)
            .map(|i| match i % 97 {
                0 => 0.0,
                1 => -0.0,
                2 => 1.0e-30,
                3 => 0.0625,
                _ => (next() - 0.5) * next() * next() * 0.2,
            })
            .collect()
    }

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
    fn vectorised_moments_match_the_portable_kernel() {
        for (n, seed) in [(0, 1), (7, 2), (8, 3), (13, 4), (4096, 5), (4101, 6)] {
            let values = weights(n, seed);
            let fast = block_moments(&values);
            let portable = finite_block_moments(&values).expect("finite");
            let general = general_block_moments(&values);
            for other in [&portable, &general] {
                assert_eq!((fast.n, fast.zeros, fast.min, fast.max), (other.n, other.zeros, other.min, other.max));
                assert_eq!(fast.min_abs_nonzero.to_bits(), other.min_abs_nonzero.to_bits());
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-30);
                assert!(close(fast.mean, other.mean) || n == 0, "n={n}: mean {} vs {}", fast.mean, other.mean);
                assert!(close(fast.m2, other.m2) && close(fast.m4, other.m4), "n={n}");
                assert!((fast.m3 - other.m3).abs() <= 1e-12 * fast.m2.powf(1.5) * (n as f64).sqrt().max(1.0), "n={n}");
            }
        }
        // A NaN or an infinity anywhere (vector part or tail) sends the block to the general path.
        for at in [0, 5, 8, 4095, 4100] {
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let mut values = weights(4101, 7);
                values[at] = bad;
                let m = block_moments(&values);
                assert_eq!((m.n, m.nan + m.pos_inf + m.neg_inf), (4100, 1), "{bad} at {at}");
            }
        }
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
    fn rtn_rounds_half_to_even_and_clamps() {
        assert_eq!(rtn_qmax(4), 7);
        assert_eq!(rtn_qmax(8), 127);
        let values = [0.5f32, 1.5, 2.5, -2.5, 7.0, -7.0, 0.0, f32::NAN];
        let absmax = group_absmax(&values, 8);
        assert_eq!(absmax, [7.0]);
        let scales = rtn_scales(&absmax, 7);
        assert_eq!(scales, [(1.0, 1.0)]);
        let mut codes = Vec::new();
        let err = rtn_codes(&values, 8, &scales, 7, &mut codes);
        assert_eq!(codes, [0, 2, 2, -2, 7, -7, 0, 0]);
        assert_eq!(err, 0.25 + 0.25 + 0.25 + 0.25);
        assert_eq!(rtn_scales(&[0.0], 7), [(0.0, 0.0)]);
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
