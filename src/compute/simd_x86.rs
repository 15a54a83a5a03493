//! Hand-vectorised AVX2 versions of the hottest CPU kernels (x86-64 with AVX2 and FMA,
//! detected at run time). LLVM's auto-vectoriser turns the portable lane-wise loops of
//! [`super::kernels`] into shuffle-heavy code; here every step is one 256-bit instruction.
//! Results follow the same rules as the portable kernels (moments to rounding, counts exactly).

use pulp::x86::V3;
use pulp::{f32x4, f32x8, f64x4, u32x8};

use super::Moments;
use super::kernels::{COUNT_WAYS, LinearGuess, MAGNITUDE, MANTISSA_SHIFT, add_central_sums};

/// Moments of a block of finite values, or `None` when the block holds NaN or an infinity or
/// AVX2 is not available.
pub fn finite_block_moments(values: &[f32]) -> Option<Moments> {
    let simd = V3::try_new()?;
    simd.vectorize(FiniteMoments { simd, values })
}

struct FiniteMoments<'a> {
    simd: V3,
    values: &'a [f32],
}

impl pulp::NullaryFnOnce for FiniteMoments<'_> {
    type Output = Option<Moments>;

    #[inline(always)]
    fn call(self) -> Option<Moments> {
        let Self { simd, values } = self;
        let mut m = Moments::empty();
        if values.is_empty() {
            return Some(m);
        }
        let (head, tail) = pulp::as_arrays::<8, f32>(values);
        let load = |a: &[f32; 8]| -> f32x8 { pulp::cast(*a) };
        let halves = |x: f32x8| -> (f64x4, f64x4) {
            let [a, b]: [f32x4; 2] = pulp::cast(x);
            (simd.convert_f32x4_to_f64x4(a), simd.convert_f32x4_to_f64x4(b))
        };

        // Pass 1: range, zeros, smallest non-zero magnitude, a flag for NaN/Inf, and the sum.
        let mut lo = simd.splat_f32x8(f32::INFINITY);
        let mut hi = simd.splat_f32x8(f32::NEG_INFINITY);
        let mut least = simd.splat_u32x8(u32::MAX);
        let mut zeros = simd.splat_u32x8(0);
        let mut special = simd.splat_u32x8(0);
        let (mut sum_a, mut sum_b) = (simd.splat_f64x4(0.0), simd.splat_f64x4(0.0));
        let magnitude = simd.splat_u32x8(MAGNITUDE);
        let one = simd.splat_u32x8(1);
        let min_exponent = simd.splat_u32x8(0x0080_0000);
        for a in head {
            let x = load(a);
            lo = simd.min_f32x8(lo, x);
            hi = simd.max_f32x8(hi, x);
            let bits: u32x8 = pulp::cast(x);
            let mag = simd.and_u32x8(bits, magnitude);
            let below = simd.wrapping_sub_u32x8(mag, one);
            least = simd.min_u32x8(least, below);
            // A zero magnitude wraps to all ones: its top bit counts it.
            zeros = simd.wrapping_add_u32x8(zeros, simd.shr_const_u32x8::<31>(below));
            // Magnitudes from the infinity's bits upward reach the top bit.
            special = simd.or_u32x8(special, simd.wrapping_add_u32x8(mag, min_exponent));
            let (xa, xb) = halves(x);
            sum_a = simd.add_f64x4(sum_a, xa);
            sum_b = simd.add_f64x4(sum_b, xb);
        }
        let special: [u32; 8] = pulp::cast(special);
        if special.iter().any(|&s| s >> 31 != 0) || tail.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let lanes = |v: f64x4| -> f64 { pulp::cast::<f64x4, [f64; 4]>(v).iter().sum() };
        let mut total = lanes(sum_a) + lanes(sum_b);
        let lo: [f32; 8] = pulp::cast(lo);
        let hi: [f32; 8] = pulp::cast(hi);
        let least: [u32; 8] = pulp::cast(least);
        let zeros: [u32; 8] = pulp::cast(zeros);
        let mut least = least.iter().copied().fold(u32::MAX, u32::min);
        for l in 0..8 {
            m.min = m.min.min(lo[l]);
            m.max = m.max.max(hi[l]);
            m.zeros += u64::from(zeros[l]);
        }
        for &x in tail {
            let mag = x.to_bits() & MAGNITUDE;
            total += f64::from(x);
            m.min = m.min.min(x);
            m.max = m.max.max(x);
            least = least.min(mag.wrapping_sub(1));
            m.zeros += u64::from(mag == 0);
        }
        m.min_abs_nonzero = if least == u32::MAX { f32::INFINITY } else { f32::from_bits(least + 1) };
        m.n = values.len() as u64;
        m.mean = total / m.n as f64;

        // Pass 2: central sums about the block mean (fused multiply-adds).
        let mean = simd.splat_f64x4(m.mean);
        let zero = simd.splat_f64x4(0.0);
        let (mut s2a, mut s3a, mut s4a) = (zero, zero, zero);
        let (mut s2b, mut s3b, mut s4b) = (zero, zero, zero);
        for a in head {
            let (xa, xb) = halves(load(a));
            let da = simd.sub_f64x4(xa, mean);
            let db = simd.sub_f64x4(xb, mean);
            let d2a = simd.mul_f64x4(da, da);
            let d2b = simd.mul_f64x4(db, db);
            s2a = simd.add_f64x4(s2a, d2a);
            s2b = simd.add_f64x4(s2b, d2b);
            s3a = simd.mul_add_f64x4(d2a, da, s3a);
            s3b = simd.mul_add_f64x4(d2b, db, s3b);
            s4a = simd.mul_add_f64x4(d2a, d2a, s4a);
            s4b = simd.mul_add_f64x4(d2b, d2b, s4b);
        }
        let mut sums = [lanes(s2a) + lanes(s2b), lanes(s3a) + lanes(s3b), lanes(s4a) + lanes(s4b)];
        add_central_sums(tail, m.mean, &mut sums);
        [m.m2, m.m3, m.m4] = sums;
        Some(m)
    }
}

/// The linear-bin histogram of [`super::kernels`] with the outlier counts of up to two bound
/// pairs, eight values at a time: a group whose guesses are all clear is counted into `ways`
/// (`COUNT_WAYS` interleaved copies of the bins) and its outliers into `outliers`; any other
/// group, and the tail, goes to `unclear`. Returns false, having done nothing, when AVX2 is
/// missing or there are more than two bound pairs.
pub fn regular_histogram(
    values: &[f32],
    guess: &LinearGuess,
    bounds: &[(f32, f32)],
    ways: &mut [u32],
    outliers: &mut [u64],
    unclear: &mut dyn FnMut(&[f32]),
) -> bool {
    let Some(simd) = V3::try_new() else { return false };
    if bounds.len() > 2 || outliers.len() < bounds.len() || ways.len() < COUNT_WAYS * guess.bins {
        return false;
    }
    simd.vectorize(RegularHistogram { simd, values, guess, bounds, ways, outliers, unclear });
    true
}

struct RegularHistogram<'a> {
    simd: V3,
    values: &'a [f32],
    guess: &'a LinearGuess,
    bounds: &'a [(f32, f32)],
    ways: &'a mut [u32],
    outliers: &'a mut [u64],
    unclear: &'a mut dyn FnMut(&[f32]),
}

impl pulp::NullaryFnOnce for RegularHistogram<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let Self { simd, values, guess, bounds, ways, outliers, unclear } = self;
        let bins = guess.bins;
        let (head, tail) = pulp::as_arrays::<8, f32>(values);
        let lo = simd.splat_f32x8(guess.lo);
        let s = simd.splat_f32x8(guess.s);
        let clear_lo = simd.splat_f32x8(guess.clear_lo);
        let clear_hi = simd.splat_f32x8(guess.clear_hi);
        let zero = simd.splat_f32x8(0.0);
        let nb = simd.splat_f32x8(bins as f32);
        let shift = simd.splat_f32x8(MANTISSA_SHIFT);
        let shift_bits = simd.splat_u32x8(MANTISSA_SHIFT.to_bits());
        // Absent bound pairs never count: nothing is below −∞ or above +∞.
        let bound = |i: usize| bounds.get(i).copied().unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let (b0, b1) = (bound(0), bound(1));
        let (lo0, hi0) = (simd.splat_f32x8(b0.0), simd.splat_f32x8(b0.1));
        let (lo1, hi1) = (simd.splat_f32x8(b1.0), simd.splat_f32x8(b1.1));
        // Outlier counts per lane: a true comparison is all ones, so subtracting it adds one.
        let mut out0 = simd.splat_u32x8(0);
        let mut out1 = simd.splat_u32x8(0);
        // Subtrahends that turn `f + 2²³` into `f + way·bins` for ways 0–7 and 8–15.
        let base = [0, 8].map(|first: usize| {
            let lanes: [u32; 8] = core::array::from_fn(|l| ((first + l) * bins) as u32);
            simd.wrapping_sub_u32x8(shift_bits, pulp::cast(lanes))
        });
        let mut half = 0;
        for a in head {
            let x: f32x8 = pulp::cast(*a);
            let q = simd.mul_f32x8(simd.sub_f32x8(x, lo), s);
            let f = simd.floor_f32x8(q);
            let r = simd.sub_f32x8(q, f);
            // Ordered comparisons: NaN makes a group unclear.
            let clear = simd.and_m32x8(
                simd.and_m32x8(simd.cmp_gt_f32x8(r, clear_lo), simd.cmp_lt_f32x8(r, clear_hi)),
                simd.and_m32x8(simd.cmp_ge_f32x8(q, zero), simd.cmp_lt_f32x8(q, nb)),
            );
            if simd.avx._mm256_movemask_ps(pulp::cast(clear)) != 0xff {
                unclear(a);
                continue;
            }
            // Lane l of even groups counts into way l, of odd groups into way 8 + l: the way's
            // offset replaces the float's exponent bits in one integer subtraction.
            let at: [u32; 8] = pulp::cast(simd.wrapping_sub_u32x8(pulp::cast(simd.add_f32x8(f, shift)), base[half]));
            for &i in &at {
                ways[i as usize] += 1;
            }
            half ^= 1;
            let o0 = simd.or_m32x8(simd.cmp_lt_f32x8(x, lo0), simd.cmp_gt_f32x8(x, hi0));
            let o1 = simd.or_m32x8(simd.cmp_lt_f32x8(x, lo1), simd.cmp_gt_f32x8(x, hi1));
            out0 = simd.wrapping_sub_u32x8(out0, pulp::cast(o0));
            out1 = simd.wrapping_sub_u32x8(out1, pulp::cast(o1));
        }
        if !tail.is_empty() {
            unclear(tail);
        }
        let total = |v: u32x8| -> u64 { pulp::cast::<u32x8, [u32; 8]>(v).iter().map(|&c| u64::from(c)).sum() };
        for (o, v) in outliers.iter_mut().zip([out0, out1]) {
            *o += total(v);
        }
    }
}
