//! Statistics of tensors stored in 8- or 16-bit scalar types (BF16, F16, the F8 types, 8- and
//! 16-bit integers) from one read of the stored bytes that counts each bit pattern.
//!
//! Such a tensor holds at most 65536 distinct values, so a count per pattern is all the
//! statistics need: the moments are sums over the distinct values (in f64, about the exact mean),
//! and each distinct value is placed in its bin and tested against the outlier bounds once, by
//! the comparison rule of the per-value kernels ([`super::HistogramCounts`]). The counts are the
//! ones the f32 path gets; the moments are at least as accurate. One pass over half (or a quarter)
//! of the bytes replaces the decode to f32 and both passes over it.

use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::kernels::{histogram_bins, sigma_bounds};
use super::{BinScale, ComputeError, HistogramCounts, Moments, StatsRequest, StatsResult};
use crate::cancel::Cancel;
use crate::codec::{self, DType};

/// Tensors with fewer values take the f32 path: scanning the pattern table would cost more
/// than the values themselves.
pub const MIN_VALUES: u64 = 1 << 16;

/// Values counted by one task into its thread's tables (u32 counts, far from overflowing).
const TASK_VALUES: usize = 1 << 21;

/// Bits per value of a type whose statistics can be taken from pattern counts: a scalar type
/// of one or two bytes.
pub fn pattern_bits(dtype: DType) -> Option<u32> {
    let bytes = dtype.block_bytes();
    (dtype.block_elems() == 1 && dtype.can_decode() && bytes <= 2).then_some(bytes as u32 * 8)
}

/// Each bit pattern that occurs in `bytes` (little-endian elements of `bits` bits, 8 or 16) with
/// its count, in pattern order; a trailing partial element is ignored.
pub fn count_patterns(bytes: &[u8], bits: u32, cancel: &Cancel) -> Result<Vec<(u32, u64)>, ComputeError> {
    let width = (bits / 8).clamp(1, 2) as usize;
    let count_task = |chunk: &[u8]| {
        if cancel.is_cancelled() {
            return Err(ComputeError::Cancelled);
        }
        Ok(SCRATCH.with_borrow_mut(|tables| {
            let (even, odd) = tables.split_at_mut(1 << 16);
            if width == 1 {
                count_u8(chunk, even);
                take_counts(&mut even[..256], &mut odd[..256])
            } else {
                count_u16(chunk, even, odd);
                take_counts(even, odd)
            }
        }))
    };
    if bytes.len() <= TASK_VALUES * width {
        return count_task(bytes);
    }
    let parts: Vec<Vec<(u32, u64)>> =
        bytes.par_chunks(TASK_VALUES * width).map(count_task).collect::<Result<_, _>>()?;
    let mut total = vec![0u64; 1 << (8 * width)];
    for (p, c) in parts.iter().flatten() {
        total[*p as usize] += c;
    }
    Ok(total.iter().enumerate().filter(|(_, c)| **c != 0).map(|(p, &c)| (p as u32, c)).collect())
}

thread_local! {
    /// Two tables of 65536 counters per thread, all zero between tasks: allocating and zeroing
    /// fresh ones per tensor would cost as much as counting a small tensor.
    static SCRATCH: std::cell::RefCell<Box<[u32]>> = std::cell::RefCell::new(vec![0u32; 2 << 16].into_boxed_slice());
}

/// Counts the bytes of `bytes` into `table`.
fn count_u8(bytes: &[u8], table: &mut [u32]) {
    let Some(table) = table.first_chunk_mut::<256>() else { return };
    bytes.iter().for_each(|&b| table[usize::from(b)] += 1);
}

/// Counts the 16-bit little-endian patterns of `bytes` into two tables, alternate values.
fn count_u16(bytes: &[u8], even: &mut [u32], odd: &mut [u32]) {
    let (Some(even), Some(odd)) = (even.first_chunk_mut::<{ 1 << 16 }>(), odd.first_chunk_mut::<{ 1 << 16 }>()) else {
        return;
    };
    // Neighbouring values often share a pattern; with one table each increment would then
    // wait for the one before. Four values are read as one word.
    let (words, tail) = bytes.as_chunks::<8>();
    for &w in words {
        let w = u64::from_le_bytes(w);
        even[(w & 0xffff) as usize] += 1;
        odd[(w >> 16 & 0xffff) as usize] += 1;
        even[(w >> 32 & 0xffff) as usize] += 1;
        odd[(w >> 48) as usize] += 1;
    }
    for p in tail.chunks_exact(2) {
        even[usize::from(u16::from_le_bytes([p[0], p[1]]))] += 1;
    }
}

/// The non-zero counts of the two tables, summed per pattern, leaving both tables zero.
fn take_counts(even: &mut [u32], odd: &mut [u32]) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    for (k, (e, o)) in even.chunks_exact_mut(16).zip(odd.chunks_exact_mut(16)).enumerate() {
        // Whole runs of unused patterns are skipped with one vector test.
        if e.iter().zip(o.iter()).fold(0, |acc, (a, b)| acc | a | b) == 0 {
            continue;
        }
        for (i, (a, b)) in e.iter_mut().zip(o.iter_mut()).enumerate() {
            if *a != 0 || *b != 0 {
                out.push(((16 * k + i) as u32, u64::from(*a) + u64::from(*b)));
                (*a, *b) = (0, 0);
            }
        }
    }
    out
}

/// The f32 value of every bit pattern of `dtype`, decoded by the codec once per type and kept;
/// `None` when the type is not a one- or two-byte scalar the codec decodes.
pub fn pattern_values(dtype: DType) -> Option<Arc<[f32]>> {
    let bits = pattern_bits(dtype)?;
    static TABLES: Mutex<Vec<(DType, Arc<[f32]>)>> = Mutex::new(Vec::new());
    let mut tables = TABLES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, values)) = tables.iter().find(|(d, _)| *d == dtype) {
        return Some(values.clone());
    }
    let width = (bits / 8).max(1) as usize;
    let patterns = 1usize << (8 * width);
    let bytes: Vec<u8> = (0..patterns).flat_map(|p| p.to_le_bytes().into_iter().take(width)).collect();
    let mut values = vec![0f32; patterns];
    codec::decode(dtype, &bytes, &mut values).ok()?;
    let values: Arc<[f32]> = values.into();
    tables.push((dtype, values.clone()));
    Some(values)
}

/// The statistics of a tensor in which each pattern `p` of `counts` occurs `c` times; pattern
/// `p` means `values[p]`.
pub fn stats_from_counts(counts: &[(u32, u64)], values: &[f32], req: &StatsRequest) -> StatsResult {
    // The finite distinct values with their counts, in pattern order.
    let mut distinct = Vec::with_capacity(counts.len());
    let mut m = Moments::empty();
    for &(p, c) in counts {
        let v = values.get(p as usize).copied().unwrap_or(f32::NAN);
        if v.is_nan() {
            m.nan += c;
        } else if v == f32::INFINITY {
            m.pos_inf += c;
        } else if v == f32::NEG_INFINITY {
            m.neg_inf += c;
        } else {
            distinct.push((v, c));
        }
    }
    let mut sum = 0.0;
    for &(v, c) in &distinct {
        m.n += c;
        sum += c as f64 * f64::from(v);
        m.min = m.min.min(v);
        m.max = m.max.max(v);
        if v == 0.0 {
            m.zeros += c;
        } else {
            m.min_abs_nonzero = m.min_abs_nonzero.min(v.abs());
        }
    }
    if m.n > 0 {
        m.mean = sum / m.n as f64;
        for &(v, c) in &distinct {
            let d = f64::from(v) - m.mean;
            let (c, d2) = (c as f64, d * d);
            m.m2 += c * d2;
            m.m3 += c * d2 * d;
            m.m4 += c * d2 * d2;
        }
    }

    let bins = req.bins.max(1);
    let (edges, thresholds) = histogram_bins(&m, bins, req.scale);
    let bounds = sigma_bounds(&m);
    let mut outliers = [0u64; 2];
    for (o, &(lo, hi)) in outliers.iter_mut().zip(&bounds) {
        *o = distinct.iter().filter(|(v, _)| *v < lo || *v > hi).map(|(_, c)| c).sum();
    }
    // The values compared with the thresholds, ascending. In pattern order they form one or
    // two monotone runs for every type here, which a stable sort merges in linear time.
    let mut compared: Vec<(f32, u64)> = match req.scale {
        BinScale::Linear => distinct,
        BinScale::Log10Abs => distinct.into_iter().filter(|(v, _)| *v != 0.0).map(|(v, c)| (v.abs(), c)).collect(),
    };
    compared.sort_by(|a, b| a.0.total_cmp(&b.0));
    let counts = count_sorted(&compared, &thresholds);
    StatsResult { moments: m, histogram: HistogramCounts { scale: req.scale, edges, thresholds, counts }, outliers }
}

/// Histogram counts of ascending `(value, count)` pairs: bin `i` holds `t[i] <= v < t[i+1]`,
/// the last bin also `v == t[bins]`; values outside `[t[0], t[bins]]` are not counted.
fn count_sorted(sorted: &[(f32, u64)], t: &[f32]) -> Vec<u64> {
    let bins = t.len().saturating_sub(1).max(1);
    let mut counts = vec![0u64; bins];
    let (Some(&lo), Some(&hi)) = (t.first(), t.last()) else { return counts };
    let mut i = 0;
    for &(v, c) in sorted.iter().filter(|(v, _)| *v >= lo && *v <= hi) {
        while i + 1 < bins && v >= t[i + 1] {
            i += 1;
        }
        counts[i] += c;
    }
    counts
}

/// Stored bytes counted between two calls of `done` in [`stats_of_patterns`] (even, so that no
/// two-byte element is split).
const WINDOW_BYTES: usize = crate::checkpoint::RELEASE_WINDOW;

/// The statistics of a tensor of `dtype` stored in `bytes`, or `None` when the type is not a
/// one- or two-byte scalar. Counted in windows of 64 MiB; `done` hears each window's byte range
/// once it is counted, so a large mapped tensor can give its pages back as it goes.
pub fn stats_of_patterns(
    dtype: DType,
    bytes: &[u8],
    req: &StatsRequest,
    cancel: &Cancel,
    done: &dyn Fn(std::ops::Range<u64>),
) -> Result<Option<StatsResult>, ComputeError> {
    let Some(bits) = pattern_bits(dtype) else { return Ok(None) };
    let Some(values) = pattern_values(dtype) else { return Ok(None) };
    let mut total = vec![0u64; 1 << bits];
    for (w, window) in bytes.chunks(WINDOW_BYTES).enumerate() {
        for (p, c) in count_patterns(window, bits, cancel)? {
            total[p as usize] += c;
        }
        let start = (w * WINDOW_BYTES) as u64;
        done(start..start + window.len() as u64);
    }
    let counts: Vec<(u32, u64)> =
        total.iter().enumerate().filter(|(_, c)| **c != 0).map(|(p, &c)| (p as u32, c)).collect();
    Ok(Some(stats_from_counts(&counts, &values, req)))
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::compute::cpu::{Values, stats_of};
    use crate::compute::kernels::{HistogramIsa, MOMENT_BLOCK, add_histogram_and_outliers_with};

    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut state = seed | 1;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// `n` random bit patterns of `width` bytes: every pattern, NaN and infinities included.
    fn random_patterns(n: usize, width: usize, seed: u64) -> Vec<u8> {
        let mut next = xorshift(seed);
        (0..n).flat_map(|_| next().to_le_bytes().into_iter().take(width)).collect()
    }

    /// Weight-like values (a product of uniforms, signed, runs of equal values) with zeros, a
    /// NaN and infinities, stored as `dtype` (F16 or BF16).
    fn weights(n: usize, dtype: DType, seed: u64) -> Vec<u8> {
        let mut next = xorshift(seed);
        let mut u = || (next() >> 40) as f32 / (1u64 << 24) as f32;
        let values: Vec<f32> = (0..n)
            .map(|i| match i % 1009 {
                0 => 0.0,
                1 => -0.0,
                2 => f32::NAN,
                3 => f32::INFINITY,
                4 => f32::NEG_INFINITY,
                5..=40 => 0.03125,
                _ => (u() - 0.5) * u() * u() * 0.2 + 0.001,
            })
            .collect();
        let mut bytes = Vec::new();
        codec::encode(dtype, &values, &mut bytes).unwrap();
        bytes
    }

    /// The pattern path against the f32 path and the per-value comparison rule.
    fn check(dtype: DType, bytes: &[u8], req: &StatsRequest, moments_rel: f64) {
        let cancel = Cancel::new();
        let ours = stats_of_patterns(dtype, bytes, req, &cancel, &|_| {}).unwrap().unwrap();
        let n = bytes.len() / dtype.block_bytes();
        let mut decoded = vec![0f32; n];
        codec::decode(dtype, bytes, &mut decoded).unwrap();
        let reference = stats_of(&Values::Resident(Cow::Borrowed(&decoded)), req, MOMENT_BLOCK, &cancel).unwrap();
        let (a, b) = (&ours.moments, &reference.moments);
        let what = format!("{dtype} {req:?}");
        assert_eq!((a.n, a.nan, a.pos_inf, a.neg_inf, a.zeros), (b.n, b.nan, b.pos_inf, b.neg_inf, b.zeros), "{what}");
        assert_eq!((a.min, a.max, a.min_abs_nonzero), (b.min, b.max, b.min_abs_nonzero), "{what}");
        for (x, y) in [(a.mean, b.mean), (a.m2, b.m2), (a.m3, b.m3), (a.m4, b.m4)] {
            let scale = y.abs().max(b.m2.sqrt() * 1e-3).max(1e-300);
            assert!((x - y).abs() <= moments_rel * scale, "{what}: {x} vs {y}");
        }
        assert_eq!(ours.histogram.edges, reference.histogram.edges, "{what}");
        assert_eq!(ours.histogram.thresholds, reference.histogram.thresholds, "{what}");
        // Counts by the rule, with this result's own thresholds and bounds.
        let bins = ours.histogram.counts.len();
        let (mut counts, mut outliers) = (vec![0u64; bins], [0u64; 2]);
        let bounds = sigma_bounds(&ours.moments);
        let t = &ours.histogram.thresholds;
        add_histogram_and_outliers_with(
            HistogramIsa::Portable,
            &decoded,
            t,
            req.scale,
            &bounds,
            &mut counts,
            &mut outliers,
        );
        assert_eq!(ours.histogram.counts, counts, "{what}");
        assert_eq!(ours.outliers, outliers, "{what}");
        assert_eq!(counts.iter().sum::<u64>() > 0, a.n > a.zeros || req.scale == BinScale::Linear && a.n > 0, "{what}");
    }

    #[test]
    fn pattern_statistics_equal_the_f32_path_for_every_narrow_type() {
        let narrow = [
            DType::BF16,
            DType::F16,
            DType::I16,
            DType::U16,
            DType::F8E4M3,
            DType::F8E5M2,
            DType::F8E4M3Fnuz,
            DType::F8E5M2Fnuz,
            DType::F8E8M0,
            DType::I8,
            DType::U8,
            DType::Bool,
        ];
        for (k, dtype) in narrow.into_iter().enumerate() {
            let width = dtype.block_bytes();
            let bytes = random_patterns(300_000, width, 7 + k as u64);
            for bins in [1, 7, 256] {
                for scale in [BinScale::Linear, BinScale::Log10Abs] {
                    // Random patterns span every magnitude: the moments are compared loosely.
                    check(dtype, &bytes, &StatsRequest { bins, scale }, 1e-6);
                }
            }
        }
    }

    #[test]
    fn pattern_statistics_of_weight_like_values_agree_closely() {
        for dtype in [DType::BF16, DType::F16] {
            let bytes = weights(250_000, dtype, 3);
            for (bins, scale) in [(256, BinScale::Linear), (100, BinScale::Log10Abs), (1000, BinScale::Linear)] {
                check(dtype, &bytes, &StatsRequest { bins, scale }, 1e-10);
            }
        }
    }

    #[test]
    fn only_one_and_two_byte_scalars_use_pattern_counts() {
        assert_eq!(pattern_bits(DType::BF16), Some(16));
        assert_eq!(pattern_bits(DType::F8E4M3), Some(8));
        for dtype in [DType::F32, DType::F64, DType::I32, DType::Q4_0, DType::Q8_0] {
            assert_eq!(pattern_bits(dtype), None, "{dtype}");
            assert!(
                stats_of_patterns(dtype, &[0; 64], &StatsRequest::default(), &Cancel::new(), &|_| {})
                    .unwrap()
                    .is_none()
            );
        }
    }

    #[test]
    fn counts_split_over_tasks_add_up() {
        for width in [1usize, 2] {
            // Patterns with a run of one value, over several tasks and an odd tail.
            let mut bytes = random_patterns(TASK_VALUES * 5 / 2 + 3, width, 5);
            bytes[1000..1000 + 4000 * width].fill(0x42);
            let mut naive = vec![0u64; 1 << (8 * width)];
            for e in bytes.chunks_exact(width) {
                naive[if width == 1 { usize::from(e[0]) } else { usize::from(u16::from_le_bytes([e[0], e[1]])) }] += 1;
            }
            let want: Vec<(u32, u64)> =
                naive.iter().enumerate().filter(|(_, c)| **c != 0).map(|(p, &c)| (p as u32, c)).collect();
            assert_eq!(count_patterns(&bytes, 8 * width as u32, &Cancel::new()).unwrap(), want, "width {width}");
            // The thread's tables are left zero: the next count starts clean.
            assert_eq!(
                count_patterns(&bytes[..64], 8 * width as u32, &Cancel::new())
                    .unwrap()
                    .iter()
                    .map(|p| p.1)
                    .sum::<u64>(),
                (64 / width) as u64
            );
        }
    }

    #[test]
    fn counting_patterns_stops_when_cancelled() {
        let cancel = Cancel::new();
        cancel.cancel();
        let r = count_patterns(&[0u8; 1024], 16, &cancel);
        assert!(matches!(r, Err(ComputeError::Cancelled)));
        let r = count_patterns(&vec![0u8; 3 * TASK_VALUES], 8, &cancel);
        assert!(matches!(r, Err(ComputeError::Cancelled)));
    }
}
