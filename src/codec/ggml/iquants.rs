//! ggml's non-linear 4-bit types: values are indices into a fixed table of 16 levels
//! (`kvalues_iq4nl` in ggml-common.h) times a scale.

use super::f16_at;
use super::search::{GROUP_MAX_EPS, nearest_int};

/// The 16 levels of IQ4_NL and IQ4_XS.
pub const KVALUES_IQ4NL: [i8; 16] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/// IQ4_NL: `d: f16, qs: [u8; 16]` (32 values); `y = d * kvalues[q]`.
pub(super) fn decode_iq4_nl(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        y[j] = d * f32::from(KVALUES_IQ4NL[(qs[j] & 0x0f) as usize]);
        y[j + 16] = d * f32::from(KVALUES_IQ4NL[(qs[j] >> 4) as usize]);
    }
}

/// IQ4_XS: `d: f16, scales_h: u16, scales_l: [u8; 4], qs: [u8; 128]` (256 values, 136 bytes).
/// Eight sub-blocks of 32 with signed 6-bit scales: `y = (d * (scale - 32)) * kvalues[q]`.
pub(super) fn decode_iq4_xs(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let scales_h = u16::from_le_bytes([b[2], b[3]]);
    let scales_l = &b[4..8];
    let qs = &b[8..136];
    for g in 0..8 {
        let low = (scales_l[g / 2] >> (4 * (g % 2))) & 0x0f;
        let high = ((scales_h >> (2 * g)) & 3) as u8;
        let dl = d * f32::from((low | (high << 4)) as i8 - 32);
        for l in 0..16 {
            let q = qs[g * 16 + l];
            y[g * 32 + l] = dl * f32::from(KVALUES_IQ4NL[(q & 0x0f) as usize]);
            y[g * 32 + 16 + l] = dl * f32::from(KVALUES_IQ4NL[(q >> 4) as usize]);
        }
    }
}

/// `best_index_int8`: the index of the level nearest to `x` (ties to the upper level), by
/// bisection as ggml does.
fn best_index(x: f32) -> usize {
    let v = &KVALUES_IQ4NL;
    if x <= f32::from(v[0]) {
        return 0;
    }
    if x >= f32::from(v[15]) {
        return 15;
    }
    let (mut ml, mut mu) = (0usize, 15usize);
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < f32::from(v[mav]) {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - f32::from(v[mu - 1]) < f32::from(v[mu]) - x { mu - 1 } else { mu }
}

/// ggml's `quantize_row_iq4_nl_impl` for one super-block of `x.len()` values in blocks of 32,
/// with `ntry` = 7 as `quantize_iq4_nl` and `quantize_iq4_xs` call it. Returns the super-block
/// scale, the per-block 6-bit scales (IQ4_XS; empty for one block) and the level indices.
fn iq4_impl(x: &[f32], qw: Option<&[f32]>) -> (f32, Vec<i32>, Vec<u8>) {
    const NTRY: i32 = 7;
    let n = x.len();
    let nb = n / 32;
    let v0 = f32::from(KVALUES_IQ4NL[0]);
    let mut sigma2 = 0f32;
    for &xv in x {
        sigma2 += xv * xv;
    }
    sigma2 *= 2.0 / n as f32;
    let mut l = vec![0u8; n];
    let mut scales = vec![0f32; nb];
    let (mut max_scale, mut amax_scale) = (0f32, 0f32);
    let mut weight = [0f32; 32];
    for ib in 0..nb {
        let xb = &x[32 * ib..32 * ib + 32];
        match qw {
            Some(qw) => {
                for j in 0..32 {
                    weight[j] = qw[32 * ib + j] * (sigma2 + xb[j] * xb[j]).sqrt();
                }
            }
            None => {
                for j in 0..32 {
                    weight[j] = xb[j] * xb[j];
                }
            }
        }
        let (mut amax, mut max) = (0f32, 0f32);
        for &xv in xb {
            if xv.abs() > amax {
                amax = xv.abs();
                max = xv;
            }
        }
        if amax < GROUP_MAX_EPS {
            scales[ib] = 0.0;
            continue;
        }
        let mut d = -max / v0;
        let mut id = 1.0 / d;
        let (mut sumqx, mut sumq2) = (0f32, 0f32);
        for j in 0..32 {
            let k = best_index(id * xb[j]);
            l[32 * ib + j] = k as u8;
            let q = f32::from(KVALUES_IQ4NL[k]);
            let w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        d = sumqx / sumq2;
        let mut best = d * sumqx;
        for itry in -NTRY..=NTRY {
            id = (itry as f32 + v0) / max;
            sumqx = 0.0;
            sumq2 = 0.0;
            for j in 0..32 {
                let q = f32::from(KVALUES_IQ4NL[best_index(id * xb[j])]);
                let w = weight[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        if d.abs() > amax_scale {
            amax_scale = d.abs();
            max_scale = d;
        }
    }
    if nb > 1 {
        let d = -max_scale / 32.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut ls = vec![0i32; nb];
        for ib in 0..nb {
            let li = nearest_int(id * scales[ib]).clamp(-32, 31);
            let dl = d * li as f32;
            let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
            for j in 0..32 {
                l[32 * ib + j] = best_index(idl * x[32 * ib + j]) as u8;
            }
            ls[ib] = li + 32;
        }
        (d, ls, l)
    } else {
        let d = scales[0];
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        for j in 0..n {
            l[j] = best_index(id * x[j]) as u8;
        }
        (d, Vec::new(), l)
    }
}

/// Packs level indices: in each 32, value j in the low nibble and j + 16 in the high one.
fn pack_levels(l: &[u8], out: &mut Vec<u8>) {
    for c in l.chunks_exact(32) {
        for j in 0..16 {
            out.push(c[j] | (c[16 + j] << 4));
        }
    }
}

/// IQ4_NL rows as llama.cpp's `quantize_iq4_nl` encodes them.
pub(super) fn encode_iq4_nl(row: &[f32], qw: Option<&[f32]>, out: &mut Vec<u8>) {
    for (i, x) in row.chunks_exact(32).enumerate() {
        let (d, _, l) = iq4_impl(x, qw.map(|w| &w[32 * i..32 * i + 32]));
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        pack_levels(&l, out);
    }
}

/// IQ4_XS rows as llama.cpp's `quantize_iq4_xs` encodes them.
pub(super) fn encode_iq4_xs(row: &[f32], qw: Option<&[f32]>, out: &mut Vec<u8>) {
    for (i, x) in row.chunks_exact(256).enumerate() {
        let (d, ls, l) = iq4_impl(x, qw.map(|w| &w[256 * i..256 * i + 256]));
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        let mut scales_h = 0u16;
        let mut scales_l = [0u8; 4];
        for (ib, &s) in ls.iter().enumerate() {
            let (lo, hi) = ((s & 0xf) as u8, (s >> 4) as u16);
            scales_l[ib / 2] |= lo << (4 * (ib % 2));
            scales_h |= hi << (2 * ib);
        }
        out.extend_from_slice(&scales_h.to_le_bytes());
        out.extend_from_slice(&scales_l);
        pack_levels(&l, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iq4_nl_hand_values() {
        let mut b = vec![0u8; 18];
        b[0..2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        b[2] = 0xf8; // value 0: level 8 = 1; value 16: level 15 = 113
        let mut y = [0.0; 32];
        decode_iq4_nl(&b, &mut y);
        assert_eq!((y[0], y[16], y[1]), (0.5, 56.5, -63.5));
    }

    #[test]
    fn iq4_xs_hand_values() {
        let mut b = vec![0u8; 136];
        b[0..2].copy_from_slice(&half::f16::from_f32(1.0).to_le_bytes());
        b[2..4].copy_from_slice(&(0b10u16 << 2).to_le_bytes()); // sub-block 1 high bits 2
        b[4] = 0x31; // sub-block 0 low 1, sub-block 1 low 3
        b[8] = 0x98; // value 0: level 8 (= 1); value 16: level 9 (= 13)
        b[24] = 0x00; // value 32 (sub-block 1): level 0 (= -127)
        let mut y = [0.0; 256];
        decode_iq4_xs(&b, &mut y);
        assert_eq!(y[0], (1.0 - 32.0) * 1.0);
        assert_eq!(y[16], (1.0 - 32.0) * 13.0);
        assert_eq!(y[32], ((3 | (2 << 4)) as f32 - 32.0) * -127.0);
    }
}
