//! Moments of f32 values: per block, two passes in f64 (the block mean, then central sums
//! about it) while the block sits in cache; blocks merged exactly (Pébay) in a fixed order.

use crate::compute::Moments;

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
        let finite = crate::compute::simd_x86::finite_block_moments(self.0).or_else(|| finite_block_moments(self.0));
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
pub(in crate::compute) const MAGNITUDE: u32 = 0x7fff_ffff;

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
pub(in crate::compute) fn add_central_sums(values: &[f32], mean: f64, sums: &mut [f64; 3]) {
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

/// `(mean, M2, M3, M4)` of `n` values from their power sums about a shift `c`:
/// `P[k-1] = Σ (x − c)^k`. With `a = P1/n` the mean is `c + a` and the central sums follow
/// exactly (`M2 = P2 − n·a²`, `M3 = P3 − 3a·P2 + 2n·a³`, `M4 = P4 − 4a·P3 + 6a²·P2 − 3n·a⁴`):
/// a shift near the mean keeps the terms small, so no precision is lost to it.
pub fn central_from_shifted(n: u64, c: f64, p: [f64; 4]) -> (f64, f64, f64, f64) {
    let nf = n as f64;
    let a = p[0] / nf;
    let a2 = a * a;
    let m2 = (p[1] - nf * a2).max(0.0);
    let m3 = p[2] - 3.0 * a * p[1] + 2.0 * nf * a2 * a;
    let m4 = (p[3] - 4.0 * a * p[2] + 6.0 * a2 * p[1] - 3.0 * nf * a2 * a2).max(0.0);
    (c + a, m2, m3, m4)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::kernels::test_weights as weights;

    fn naive(values: &[f64]) -> (f64, f64, f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let c = |p: i32| values.iter().map(|x| (x - mean).powi(p)).sum::<f64>();
        (mean, c(2), c(3), c(4))
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
    fn shifted_sums_give_the_central_ones() {
        let values: Vec<f64> = (0..1000).map(|i| 3.0 + ((i * 7919) % 1000) as f64 / 997.0).collect();
        let (mean, m2, m3, m4) = naive(&values);
        // Shifts near the data (as the GPU picks them) lose nothing; far ones would cancel digits away.
        for c in [0.0, 3.2, 3.5, 3.75] {
            let p = [1, 2, 3, 4].map(|k| values.iter().map(|x| (x - c).powi(k)).sum::<f64>());
            let (gm, g2, g3, g4) = central_from_shifted(1000, c, p);
            assert!((gm - mean).abs() < 1e-12 * mean, "shift {c}");
            assert!((g2 - m2).abs() < 1e-9 * m2 && (g4 - m4).abs() < 1e-9 * m4, "shift {c}");
            assert!((g3 - m3).abs() < 1e-9 * m2.powf(1.5), "shift {c}");
        }
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
}
