//! The first ggml formats: blocks of 32 values with one f16 scale (and a minimum for the `_1`
//! types). Layouts as in ggml-common.h; the low nibbles hold values 0..16, the high nibbles 16..32.

// Index loops mirror ggml's C line by line: that is what keeps the bytes identical to it.
#![allow(clippy::needless_range_loop)]

use super::f16_at;
use super::search::{Search, largest_magnitude, make_qkx, make_qx_quants};

/// Q4_0: `d: f16, qs: [u8; 16]`; `y = (q - 8) * d`.
pub(super) fn decode_q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        y[j] = d * f32::from((qs[j] & 0x0f) as i8 - 8);
        y[j + 16] = d * f32::from((qs[j] >> 4) as i8 - 8);
    }
}

/// Q4_1: `d: f16, m: f16, qs: [u8; 16]`; `y = q * d + m`.
pub(super) fn decode_q4_1(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qs = &b[4..20];
    for j in 0..16 {
        y[j] = d * f32::from(qs[j] & 0x0f) + m;
        y[j + 16] = d * f32::from(qs[j] >> 4) + m;
    }
}

/// The 5th bits of the 32 values of a Q5 block, bit `i` for value `i`.
#[inline]
fn high_bits(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Q5_0: `d: f16, qh: u32, qs: [u8; 16]`; `y = (q - 16) * d` with `q` of 5 bits.
pub(super) fn decode_q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = high_bits(&b[2..6]);
    let qs = &b[6..22];
    for j in 0..16 {
        let h0 = (((qh >> j) & 1) << 4) as u8;
        let h1 = (((qh >> (j + 16)) & 1) << 4) as u8;
        y[j] = d * f32::from(((qs[j] & 0x0f) | h0) as i8 - 16);
        y[j + 16] = d * f32::from(((qs[j] >> 4) | h1) as i8 - 16);
    }
}

/// Q5_1: `d: f16, m: f16, qh: u32, qs: [u8; 16]`; `y = q * d + m` with `q` of 5 bits.
pub(super) fn decode_q5_1(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qh = high_bits(&b[4..8]);
    let qs = &b[8..24];
    for j in 0..16 {
        let h0 = (((qh >> j) & 1) << 4) as u8;
        let h1 = (((qh >> (j + 16)) & 1) << 4) as u8;
        y[j] = d * f32::from((qs[j] & 0x0f) | h0) + m;
        y[j + 16] = d * f32::from((qs[j] >> 4) | h1) + m;
    }
}

/// Q8_0: `d: f16, qs: [i8; 32]`; `y = q * d`.
pub(super) fn decode_q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (out, &q) in y.iter_mut().zip(&b[2..34]) {
        *out = d * f32::from(q as i8);
    }
}

// ---- encoders: ggml's `quantize_row_*_ref`, and with importance its `quantize_row_*_impl` ----

#[inline(always)]
fn push_f16(out: &mut Vec<u8>, v: f32) {
    out.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
}

#[inline(always)]
fn min_max(block: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in block {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// `1/d`, or 0 for `d == 0` (C's `d ? 1.0f/d : 0.0f`).
#[inline(always)]
fn inverse(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// σ², the mean square of the whole row, in the weights `qw · √(σ² + x²)` of ggml's
/// importance-weighted legacy encoders.
fn row_sigma2(row: &[f32]) -> f32 {
    let mut sum_x2 = 0f32;
    for &v in row {
        sum_x2 += v * v;
    }
    sum_x2 / row.len() as f32
}

fn block_weights(block: &[f32], qw: &[f32], sigma2: f32) -> [f32; 32] {
    let mut w = [0f32; 32];
    for j in 0..32 {
        w[j] = qw[j] * (sigma2 + block[j] * block[j]).sqrt();
    }
    w
}

/// The 5th bits of 32 codes, bit `j` for code `j`.
#[inline(always)]
fn fifth_bits(codes: &[u8; 32]) -> [u8; 4] {
    let mut qh = 0u32;
    for j in 0..16 {
        qh |= u32::from((codes[j] & 0x10) >> 4) << j;
        qh |= u32::from((codes[j + 16] & 0x10) >> 4) << (j + 16);
    }
    qh.to_le_bytes()
}

#[inline(always)]
fn push_nibbles(out: &mut Vec<u8>, codes: &[u8; 32]) {
    for j in 0..16 {
        out.push((codes[j] & 0x0f) | ((codes[j + 16] & 0x0f) << 4));
    }
}

const LEGACY_SEARCH: Search = Search { rmin: -0.9, rdelta: 0.05, nstep: 36, use_mad: false };

/// Q8_0 of whole blocks (importance is not used by ggml for Q8_0).
#[inline(always)]
pub(super) fn encode_q8_0(row: &[f32], _qw: Option<&[f32]>, out: &mut Vec<u8>) {
    for block in row.chunks_exact(32) {
        let amax = abs_max(block);
        let d = amax / 127.0;
        let id = inverse(d);
        push_f16(out, d);
        let mut q = [0u8; 32];
        for (c, &v) in q.iter_mut().zip(block) {
            *c = round_half_away(v * id) as i8 as u8;
        }
        out.extend_from_slice(&q);
    }
}

/// C's `roundf` (half away from zero) for the codes of Q8_0, inline and branch-free so that it
/// vectorises: the truncation is exact below 2^23 and the remainder decides. Magnitudes of 2^22
/// and more (integers already) are clamped there; NaN gives 0 (as `NaN.round() as i8` does).
#[inline(always)]
fn round_half_away(x: f32) -> f32 {
    const BIG: f32 = 4_194_304.0;
    let c = x.clamp(-BIG, BIG);
    let t = c as i32 as f32;
    let f = c - t;
    t + f32::from(u8::from(f >= 0.5)) - f32::from(u8::from(f <= -0.5))
}

/// max |v| of a block, as ggml's loop `if (amax < fabsf(v)) amax = fabsf(v)` finds it (NaN never
/// wins), in eight independent lanes: the maximum is the same whatever the order.
#[inline(always)]
fn abs_max(block: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    for c in block.chunks_exact(8) {
        for k in 0..8 {
            let a = c[k].abs();
            lanes[k] = if lanes[k] < a { a } else { lanes[k] };
        }
    }
    let mut amax = 0f32;
    for &a in &lanes {
        amax = if amax < a { a } else { amax };
    }
    amax
}

/// Each 32-value block of `row` with its importance weights `qw · √(σ² + x²)` when `qw` is given.
#[inline(always)]
fn weighted_blocks<'a>(row: &'a [f32], qw: Option<&'a [f32]>) -> impl Iterator<Item = (&'a [f32], Option<[f32; 32]>)> {
    let sigma2 = qw.map(|_| row_sigma2(row));
    row.chunks_exact(32).enumerate().map(move |(b, block)| {
        let w = qw.zip(sigma2).map(|(qw, sigma2)| block_weights(block, &qw[32 * b..32 * b + 32], sigma2));
        (block, w)
    })
}

/// A block of the `_0` types (Q4_0: `nmax` 8, Q5_0: 16): codes `0..2·nmax` around `nmax` and
/// the scale `d`. Without weights, ggml's reference: `d = max / -nmax` for the value of largest
/// magnitude, codes `min(2·nmax − 1, trunc(x/d + nmax + ½))`.
#[inline(always)]
fn symmetric_block(block: &[f32], w: Option<[f32; 32]>, nmax: i32) -> (f32, [u8; 32]) {
    let mut codes = [0u8; 32];
    let d = match w {
        Some(w) => {
            let mut l = [0i8; 32];
            let d = make_qx_quants(nmax, block, &mut l, Some(&w));
            codes.iter_mut().zip(l).for_each(|(c, l)| *c = l as u8);
            d
        }
        None => {
            let d = largest_magnitude(block).1 / -(nmax as f32);
            let id = inverse(d);
            let (bias, top) = (nmax as f32 + 0.5, (2 * nmax - 1) as i8);
            for (c, &v) in codes.iter_mut().zip(block) {
                *c = (((v * id) + bias) as i8).min(top) as u8;
            }
            d
        }
    };
    (d, codes)
}

/// A block of the `_1` types (Q4_1: `nmax` 15, Q5_1: 31): codes `0..=nmax` above a minimum,
/// `(d, m, codes)`. Without weights, ggml's reference: `d = (max − min)/nmax`, codes
/// `trunc((x − min)/d + ½)` — at most `nmax`, so the `min(nmax)` that Q4_1's C applies and Q5_1's
/// does not changes nothing.
#[inline(always)]
fn affine_block(block: &[f32], w: Option<[f32; 32]>, nmax: i32) -> (f32, f32, [u8; 32]) {
    let mut codes = [0u8; 32];
    match w {
        Some(w) => {
            let mut aux = [0u8; 32];
            let (d, the_min) = make_qkx(nmax, block, Some(&w), &mut codes, &mut aux, &LEGACY_SEARCH, true);
            (d, -the_min, codes)
        }
        None => {
            let (min, max) = min_max(block);
            let d = (max - min) / nmax as f32;
            let id = inverse(d);
            for (c, &v) in codes.iter_mut().zip(block) {
                *c = ((((v - min) * id) + 0.5) as i8).min(nmax as i8) as u8;
            }
            (d, min, codes)
        }
    }
}

/// Packs one block of a legacy type from its f16 scale (and minimum) bits and 32 codes, as the
/// encoders above lay it out (for codes made elsewhere: the GPU encoder).
pub(super) fn pack_block(dtype: super::DType, d: u16, m: u16, codes: &[u8; 32], out: &mut Vec<u8>) {
    use super::DType;
    out.extend_from_slice(&d.to_le_bytes());
    match dtype {
        DType::Q8_0 => out.extend_from_slice(codes),
        DType::Q4_0 => push_nibbles(out, codes),
        DType::Q4_1 => {
            out.extend_from_slice(&m.to_le_bytes());
            push_nibbles(out, codes);
        }
        DType::Q5_0 => {
            out.extend_from_slice(&fifth_bits(codes));
            push_nibbles(out, codes);
        }
        _ => {
            out.extend_from_slice(&m.to_le_bytes());
            out.extend_from_slice(&fifth_bits(codes));
            push_nibbles(out, codes);
        }
    }
}

/// Q4_0 of whole blocks; with importance `qw` (one per value of the row), the weighted search.
#[inline(always)]
pub(super) fn encode_q4_0(row: &[f32], qw: Option<&[f32]>, out: &mut Vec<u8>) {
    for (block, w) in weighted_blocks(row, qw) {
        let (d, codes) = symmetric_block(block, w, 8);
        push_f16(out, d);
        push_nibbles(out, &codes);
    }
}

/// Q4_1 of whole blocks; with importance, the weighted search.
#[inline(always)]
pub(super) fn encode_q4_1(row: &[f32], qw: Option<&[f32]>, out: &mut Vec<u8>) {
    for (block, w) in weighted_blocks(row, qw) {
        let (d, m, codes) = affine_block(block, w, 15);
        push_f16(out, d);
        push_f16(out, m);
        push_nibbles(out, &codes);
    }
}

/// Q5_0 of whole blocks; with importance, the weighted search.
#[inline(always)]
pub(super) fn encode_q5_0(row: &[f32], qw: Option<&[f32]>, out: &mut Vec<u8>) {
    for (block, w) in weighted_blocks(row, qw) {
        let (d, codes) = symmetric_block(block, w, 16);
        push_f16(out, d);
        out.extend_from_slice(&fifth_bits(&codes));
        push_nibbles(out, &codes);
    }
}

/// Q5_1 of whole blocks; with importance, the weighted search.
#[inline(always)]
pub(super) fn encode_q5_1(row: &[f32], qw: Option<&[f32]>, out: &mut Vec<u8>) {
    for (block, w) in weighted_blocks(row, qw) {
        let (d, m, codes) = affine_block(block, w, 31);
        push_f16(out, d);
        push_f16(out, m);
        out.extend_from_slice(&fifth_bits(&codes));
        push_nibbles(out, &codes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_rounding_is_roundf() {
        let mut x = -300.0f32;
        while x < 300.0 {
            for v in [x, f32::from_bits(x.to_bits() + 1), f32::from_bits(x.to_bits().wrapping_sub(1))] {
                assert_eq!(round_half_away(v) as i8, v.round() as i8, "{v}");
            }
            x += 0.125;
        }
        for v in [0.49999997f32, -0.49999997, 2.5, -2.5, 4194303.5, -4194302.5] {
            assert_eq!(round_half_away(v), v.round(), "{v}");
        }
        assert_eq!(round_half_away(f32::NAN) as i8, f32::NAN.round() as i8);
        let block: Vec<f32> = (0..32).map(|i| if i == 5 { f32::NAN } else { (i as f32 - 20.0) * 0.5 }).collect();
        assert_eq!(abs_max(&block), 10.0);
    }

    fn block(d: f32, m: Option<f32>, rest: &[u8]) -> Vec<u8> {
        let mut b = half::f16::from_f32(d).to_le_bytes().to_vec();
        if let Some(m) = m {
            b.extend_from_slice(&half::f16::from_f32(m).to_le_bytes());
        }
        b.extend_from_slice(rest);
        b
    }

    #[test]
    fn q4_0_hand_values() {
        let mut qs = [0x88u8; 16]; // every value 8 - 8 = 0
        qs[0] = 0x0f; // value 0: 15 - 8 = 7; value 16: 0 - 8 = -8
        let mut y = [0.0; 32];
        decode_q4_0(&block(0.5, None, &qs), &mut y);
        assert_eq!((y[0], y[16], y[1], y[31]), (3.5, -4.0, 0.0, 0.0));
    }

    #[test]
    fn q4_1_hand_values() {
        let mut qs = [0u8; 16];
        qs[3] = 0xa2; // value 3: 2, value 19: 10
        let mut y = [0.0; 32];
        decode_q4_1(&block(0.25, Some(-1.0), &qs), &mut y);
        assert_eq!((y[3], y[19], y[0]), (-0.5, 1.5, -1.0));
    }

    #[test]
    fn q5_hand_values() {
        // value 0: low nibble 1, high bit set -> 17; value 17: low 0, high bit 17 set -> 16.
        let qh = (1u32 | (1 << 17)).to_le_bytes();
        let mut qs = [0u8; 16];
        qs[0] = 0x01;
        let mut rest = qh.to_vec();
        rest.extend_from_slice(&qs);
        let mut y = [0.0; 32];
        decode_q5_0(&block(2.0, None, &rest), &mut y);
        assert_eq!((y[0], y[17], y[1]), ((17.0 - 16.0) * 2.0, 0.0, -32.0));
        decode_q5_1(&block(2.0, Some(0.5), &rest), &mut y);
        assert_eq!((y[0], y[17], y[1]), (34.5, 32.5, 0.5));
    }

    #[test]
    fn q8_0_hand_values() {
        let mut qs = [0u8; 32];
        qs[0] = 127;
        qs[1] = 0x80; // -128
        let mut y = [0.0; 32];
        decode_q8_0(&block(0.125, None, &qs), &mut y);
        assert_eq!((y[0], y[1], y[2]), (15.875, -16.0, 0.0));
    }
}
