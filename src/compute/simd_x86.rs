//! Hand-vectorised AVX2 versions of the hottest CPU kernels (x86-64 with AVX2 and FMA,
//! detected at run time). LLVM's auto-vectoriser turns the portable lane-wise loops of
//! [`super::kernels`] into shuffle-heavy code; here every step is one 256-bit instruction.
//! Results follow the same rules as the portable kernels (moments to rounding, counts exactly).

use pulp::x86::{V3, V4};
use pulp::{f32x4, f32x8, f64x4, u32x8};

use super::Moments;
use super::kernels::{COUNT_WAYS, HistogramIsa, LinearGuess, MAGNITUDE, MANTISSA_SHIFT, add_central_sums};

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

/// Length of the counts array [`regular_histogram`] counts into: `COUNT_WAYS` copies of the
/// bins, [`way_stride`] apart, then the slot that unclear lanes are sent to (and that is
/// ignored). A power of two, so a masked index needs no bounds check.
pub const WAYS_LEN: usize = 1 << 14;

/// Distance (in counters) between the copies of the bins: an odd multiple of 64 counters
/// (256 bytes), so the same bin in two copies is never a multiple of 4 KiB apart. Loads and
/// stores 4 KiB apart look dependent to the CPU, and neighbouring values often share a bin.
pub fn way_stride(bins: usize) -> usize {
    (bins.div_ceil(64) | 1) * 64
}

/// Values whose bins are found (vectorised) before they are counted (scalar), as one round.
const ROUND_GROUPS: usize = 64;

/// The linear-bin histogram of [`super::kernels`] with the outlier counts of up to two bound
/// pairs, vectorised: a value whose guess is clear of its bin's ends is counted into `ways`
/// (`COUNT_WAYS` interleaved copies of the bins) and, if outside a bound pair, into
/// `outliers`; the other values, and the tail, go to `unclear`, which counts both. Returns
/// false, having done nothing, when the CPU lacks `isa`, there are more than two bound pairs or
/// the copies of the bins do not fit in `ways`.
pub fn regular_histogram(
    isa: HistogramIsa,
    values: &[f32],
    guess: &LinearGuess,
    bounds: &[(f32, f32)],
    ways: &mut [u32; WAYS_LEN],
    outliers: &mut [u64],
    unclear: &mut dyn FnMut(&[f32]),
) -> bool {
    if bounds.len() > 2 || outliers.len() < bounds.len() || COUNT_WAYS * way_stride(guess.bins) >= WAYS_LEN {
        return false;
    }
    match isa {
        HistogramIsa::Portable => return false,
        HistogramIsa::Avx512 => {
            let Some(simd) = V4::try_new() else { return false };
            simd.vectorize(WideHistogram { simd, values, guess, bounds, ways, outliers, unclear });
        }
        HistogramIsa::Avx2 => {
            let Some(simd) = V3::try_new() else { return false };
            simd.vectorize(RegularHistogram { simd, values, guess, bounds, ways, outliers, unclear });
        }
    }
    true
}

/// Counts a round of slots found by a vector loop, one scalar increment each.
#[inline(always)]
fn count_slots(slots: &[u32], ways: &mut [u32; WAYS_LEN]) {
    for &i in slots {
        ways[i as usize & (WAYS_LEN - 1)] += 1;
    }
}

/// Appends the values of `groups` whose bit in `clear` is not set (lane `l` is bit `l`).
#[inline(always)]
fn push_unclear<const N: usize>(groups: &[[f32; N]], clear: &[u16], all: u16, out: &mut Vec<f32>) {
    for (a, &m) in groups.iter().zip(clear) {
        if m != all {
            out.extend((0..N).filter(|l| m >> l & 1 == 0).map(|l| a[l]));
        }
    }
}

/// Sixteen-lane groups per round of the AVX-512 kernel.
const WIDE_ROUND_GROUPS: usize = 32;

struct WideHistogram<'a> {
    simd: V4,
    values: &'a [f32],
    guess: &'a LinearGuess,
    bounds: &'a [(f32, f32)],
    ways: &'a mut [u32; WAYS_LEN],
    outliers: &'a mut [u64],
    unclear: &'a mut dyn FnMut(&[f32]),
}

impl pulp::NullaryFnOnce for WideHistogram<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        use core::arch::x86_64::{__m512, __m512i, _CMP_GT_OQ, _CMP_LT_OQ, _MM_FROUND_TO_NEG_INF};
        let Self { simd, values, guess, bounds, ways, outliers, unclear } = self;
        let f = simd.avx512f;
        let bins = guess.bins;
        let stride = way_stride(bins);
        let (head, tail) = pulp::as_arrays::<16, f32>(values);
        let lo = f._mm512_set1_ps(guess.lo);
        let s = f._mm512_set1_ps(guess.s);
        let clear_lo = f._mm512_set1_ps(guess.clear_lo);
        let clear_hi = f._mm512_set1_ps(guess.clear_hi);
        let shift = f._mm512_set1_ps(MANTISSA_SHIFT);
        let shift_bits = f._mm512_set1_epi32(MANTISSA_SHIFT.to_bits() as i32);
        let nb = f._mm512_set1_epi32(bins as i32);
        let ignored = f._mm512_set1_epi32((COUNT_WAYS * stride) as i32);
        let one = f._mm512_set1_epi32(1);
        // Lane l counts into way l.
        let way_base: __m512i = pulp::cast::<[u32; 16], _>(core::array::from_fn(|l| (l * stride) as u32));
        let bound = |i: usize| bounds.get(i).copied().unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let (b0, b1) = (bound(0), bound(1));
        let (lo0, hi0) = (f._mm512_set1_ps(b0.0), f._mm512_set1_ps(b0.1));
        let (lo1, hi1) = (f._mm512_set1_ps(b1.0), f._mm512_set1_ps(b1.1));
        let total = |v: __m512i| -> u64 { pulp::cast::<__m512i, [u32; 16]>(v).iter().map(|&c| u64::from(c)).sum() };
        let mut slow = Vec::new();
        for round in head.chunks(WIDE_ROUND_GROUPS) {
            let mut at = [[0u32; 16]; WIDE_ROUND_GROUPS];
            let mut clear_lanes = [0u16; WIDE_ROUND_GROUPS];
            let mut out0 = f._mm512_setzero_si512();
            let mut out1 = f._mm512_setzero_si512();
            for (g, a) in round.iter().enumerate() {
                let x: __m512 = pulp::cast(*a);
                let q = f._mm512_mul_ps(f._mm512_sub_ps(x, lo), s);
                let fl = f._mm512_roundscale_ps::<_MM_FROUND_TO_NEG_INF>(q);
                let r = f._mm512_sub_ps(q, fl);
                // Ordered comparisons: NaN is never clear.
                let k = f._mm512_cmp_ps_mask::<_CMP_GT_OQ>(r, clear_lo);
                let k = f._mm512_mask_cmp_ps_mask::<_CMP_LT_OQ>(k, r, clear_hi);
                // fl + 2²³ holds the integer fl in its mantissa when 0 ≤ fl < 2²³; any other fl
                // (negative, huge, NaN) leaves a difference of bits at or above `bins`.
                let bin = f._mm512_sub_epi32(f._mm512_castps_si512(f._mm512_add_ps(fl, shift)), shift_bits);
                let k = f._mm512_mask_cmplt_epu32_mask(k, bin, nb);
                at[g] = pulp::cast(f._mm512_mask_add_epi32(ignored, k, bin, way_base));
                clear_lanes[g] = k;
                let o0 = f._mm512_mask_cmp_ps_mask::<_CMP_LT_OQ>(k, x, lo0)
                    | f._mm512_mask_cmp_ps_mask::<_CMP_GT_OQ>(k, x, hi0);
                let o1 = f._mm512_mask_cmp_ps_mask::<_CMP_LT_OQ>(k, x, lo1)
                    | f._mm512_mask_cmp_ps_mask::<_CMP_GT_OQ>(k, x, hi1);
                out0 = f._mm512_mask_add_epi32(out0, o0, out0, one);
                out1 = f._mm512_mask_add_epi32(out1, o1, out1, one);
            }
            count_slots(at[..round.len()].as_flattened(), ways);
            for (o, v) in outliers.iter_mut().zip([out0, out1]) {
                *o += total(v);
            }
            push_unclear(round, &clear_lanes, u16::MAX, &mut slow);
            if !slow.is_empty() {
                unclear(&slow);
                slow.clear();
            }
        }
        if !tail.is_empty() {
            unclear(tail);
        }
    }
}

struct RegularHistogram<'a> {
    simd: V3,
    values: &'a [f32],
    guess: &'a LinearGuess,
    bounds: &'a [(f32, f32)],
    ways: &'a mut [u32; WAYS_LEN],
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
        let stride = way_stride(bins);
        let ignored = simd.splat_u32x8((COUNT_WAYS * stride) as u32);
        // Absent bound pairs never count: nothing is below −∞ or above +∞.
        let bound = |i: usize| bounds.get(i).copied().unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let (b0, b1) = (bound(0), bound(1));
        let (lo0, hi0) = (simd.splat_f32x8(b0.0), simd.splat_f32x8(b0.1));
        let (lo1, hi1) = (simd.splat_f32x8(b1.0), simd.splat_f32x8(b1.1));
        // Subtrahends that turn `f + 2²³` into `f + way·stride` for ways 0–7 and 8–15.
        let base = [0, 8].map(|first: usize| {
            let lanes: [u32; 8] = core::array::from_fn(|l| ((first + l) * stride) as u32);
            simd.wrapping_sub_u32x8(shift_bits, pulp::cast(lanes))
        });
        let total = |v: u32x8| -> u64 { pulp::cast::<u32x8, [u32; 8]>(v).iter().map(|&c| u64::from(c)).sum() };
        let mut slow = Vec::new();
        // Each round first finds the slots of its values with vector instructions, then counts
        // them with scalar increments: no call or spill inside either loop.
        for round in head.chunks(ROUND_GROUPS) {
            let mut at = [[0u32; 8]; ROUND_GROUPS];
            let mut clear_lanes = [0u16; ROUND_GROUPS];
            // Outlier counts per lane: a true comparison is all ones, so subtracting it adds one.
            let mut out0 = simd.splat_u32x8(0);
            let mut out1 = simd.splat_u32x8(0);
            for (g, a) in round.iter().enumerate() {
                let x: f32x8 = pulp::cast(*a);
                let q = simd.mul_f32x8(simd.sub_f32x8(x, lo), s);
                let f = simd.floor_f32x8(q);
                let r = simd.sub_f32x8(q, f);
                // Ordered comparisons: NaN is never clear.
                let clear = simd.and_m32x8(
                    simd.and_m32x8(simd.cmp_gt_f32x8(r, clear_lo), simd.cmp_lt_f32x8(r, clear_hi)),
                    simd.and_m32x8(simd.cmp_ge_f32x8(q, zero), simd.cmp_lt_f32x8(q, nb)),
                );
                // Lane l of even groups counts into way l, of odd groups into way 8 + l: the
                // way's offset replaces the float's exponent bits in one integer subtraction.
                let slot = simd.wrapping_sub_u32x8(pulp::cast(simd.add_f32x8(f, shift)), base[g & 1]);
                at[g] = pulp::cast(simd.select_u32x8(clear, slot, ignored));
                clear_lanes[g] = simd.avx._mm256_movemask_ps(pulp::cast(clear)) as u16;
                let o0 = simd.or_m32x8(simd.cmp_lt_f32x8(x, lo0), simd.cmp_gt_f32x8(x, hi0));
                let o1 = simd.or_m32x8(simd.cmp_lt_f32x8(x, lo1), simd.cmp_gt_f32x8(x, hi1));
                out0 = simd.wrapping_sub_u32x8(out0, pulp::cast(simd.and_m32x8(o0, clear)));
                out1 = simd.wrapping_sub_u32x8(out1, pulp::cast(simd.and_m32x8(o1, clear)));
            }
            count_slots(at[..round.len()].as_flattened(), ways);
            for (o, v) in outliers.iter_mut().zip([out0, out1]) {
                *o += total(v);
            }
            push_unclear(round, &clear_lanes, 0xff, &mut slow);
            if !slow.is_empty() {
                unclear(&slow);
                slow.clear();
            }
        }
        if !tail.is_empty() {
            unclear(tail);
        }
    }
}
