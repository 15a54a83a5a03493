//! ggml's K-quants: super-blocks of 256 values in sub-blocks of 16 or 32, with scales (and
//! minimums) quantized to 4, 6 or 8 bits against f16 super-block scales. Layouts as in
//! ggml-common.h; the bit-plane orders follow `dequantize_row_q*_K` in ggml-quants.c.

// Index loops mirror ggml's C line by line: that is what keeps the bytes identical to it.
#![allow(clippy::needless_range_loop)]

use super::search::{GROUP_MAX_EPS, Search, make_q3_quants, make_qkx, make_qp_quants, make_qx_quants, nearest_int};
use super::{QK_K, f16_at};

/// Q2_K: `scales: [u8; 16], qs: [u8; 64], d: f16, dmin: f16` (84 bytes).
/// Sub-block `g` of 16 values: `y = d * (scales[g] & 15) * q - dmin * (scales[g] >> 4)`, `q` of 2 bits.
pub(super) fn decode_q2_k(b: &[u8], y: &mut [f32]) {
    let scales = &b[0..16];
    let qs = &b[16..80];
    let d = f16_at(b, 80);
    let dmin = f16_at(b, 82);
    for half in 0..2 {
        for shift in 0..4 {
            for l in 0..32 {
                let e = half * 128 + shift * 32 + l;
                let g = e / 16;
                let dl = d * f32::from(scales[g] & 0x0f);
                let ml = dmin * f32::from(scales[g] >> 4);
                let q = (qs[half * 32 + l] >> (2 * shift)) & 3;
                y[e] = dl * f32::from(q) - ml;
            }
        }
    }
}

/// Q3_K: `hmask: [u8; 32], qs: [u8; 64], scales: [u8; 12], d: f16` (110 bytes).
/// 16 signed 6-bit scales; `q` of 2 bits minus 4 where the high-mask bit is clear.
pub(super) fn decode_q3_k(b: &[u8], y: &mut [f32]) {
    let hmask = &b[0..32];
    let qs = &b[32..96];
    let sc = &b[96..108];
    let d = f16_at(b, 108);
    let mut scales = [0f32; 16];
    for (i, s) in scales.iter_mut().enumerate() {
        let low = if i < 8 { sc[i] & 0x0f } else { sc[i - 8] >> 4 };
        let high = (sc[8 + i % 4] >> (2 * (i / 4))) & 3;
        *s = f32::from((low | (high << 4)) as i8 - 32);
    }
    for half in 0..2 {
        for shift in 0..4 {
            for l in 0..32 {
                let e = half * 128 + shift * 32 + l;
                let low = ((qs[half * 32 + l] >> (2 * shift)) & 3) as i8;
                let bit = (hmask[l] >> (e / 32)) & 1;
                let q = if bit == 1 { low } else { low - 4 };
                y[e] = (d * scales[e / 16]) * f32::from(q);
            }
        }
    }
}

/// The 8 scales and 8 minimums of Q4_K/Q5_K, 6 bits each, packed in 12 bytes.
pub(super) fn scale_min_k4(sc: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut scales = [0u8; 8];
    let mut mins = [0u8; 8];
    for j in 0..4 {
        scales[j] = sc[j] & 0x3f;
        mins[j] = sc[j + 4] & 0x3f;
        scales[j + 4] = (sc[j + 8] & 0x0f) | ((sc[j] >> 2) & 0x30);
        mins[j + 4] = (sc[j + 8] >> 4) | ((sc[j + 4] >> 2) & 0x30);
    }
    (scales, mins)
}

/// Q4_K: `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]` (144 bytes).
/// Sub-block `g` of 32: `y = (d * sc[g]) * q - dmin * m[g]`, `q` of 4 bits.
pub(super) fn decode_q4_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let (sc, m) = scale_min_k4(&b[4..16]);
    let qs = &b[16..144];
    for chunk in 0..4 {
        for nibble in 0..2 {
            let g = chunk * 2 + nibble;
            let dl = d * f32::from(sc[g]);
            let ml = dmin * f32::from(m[g]);
            for l in 0..32 {
                let q = (qs[chunk * 32 + l] >> (4 * nibble)) & 0x0f;
                y[g * 32 + l] = dl * f32::from(q) - ml;
            }
        }
    }
}

/// Q5_K: `d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128]` (176 bytes).
/// As Q4_K with a 5th bit per value from `qh`.
pub(super) fn decode_q5_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let (sc, m) = scale_min_k4(&b[4..16]);
    let qh = &b[16..48];
    let qs = &b[48..176];
    for chunk in 0..4 {
        for nibble in 0..2 {
            let g = chunk * 2 + nibble;
            let dl = d * f32::from(sc[g]);
            let ml = dmin * f32::from(m[g]);
            for l in 0..32 {
                let low = (qs[chunk * 32 + l] >> (4 * nibble)) & 0x0f;
                let high = ((qh[l] >> g) & 1) << 4;
                y[g * 32 + l] = dl * f32::from(low | high) - ml;
            }
        }
    }
}

/// Q6_K: `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16` (210 bytes).
/// Sub-block `g` of 16: `y = (d * scales[g]) * (q - 32)`, `q` of 6 bits.
pub(super) fn decode_q6_k(b: &[u8], y: &mut [f32]) {
    let ql = &b[0..128];
    let qh = &b[128..192];
    let scales = &b[192..208];
    let d = f16_at(b, 208);
    for half in 0..2 {
        for l in 0..32 {
            for k in 0..4 {
                // Values half*128 + k*32 + l: low nibbles from ql (k = 0, 1 low; 2, 3 high),
                // two high bits from qh at shift 2k.
                let low = (ql[half * 64 + (k % 2) * 32 + l] >> (4 * (k / 2))) & 0x0f;
                let high = ((qh[half * 32 + l] >> (2 * k)) & 3) << 4;
                let q = (low | high) as i8 - 32;
                let e = half * 128 + k * 32 + l;
                y[e] = (d * f32::from(scales[e / 16] as i8)) * f32::from(q);
            }
        }
    }
}

/// Q8_K: `d: f32, qs: [i8; 256], bsums: [i16; 16]` (292 bytes); `y = d * q`. Used by ggml for
/// intermediate results rather than for stored weights.
pub(super) fn decode_q8_k(b: &[u8], y: &mut [f32]) {
    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    for (out, &q) in y.iter_mut().zip(&b[4..4 + QK_K]) {
        *out = d * f32::from(q as i8);
    }
}

// ---- encoders: ggml's `quantize_row_q*_K_ref`, and with importance `quantize_row_q*_K_impl` ----

fn f16_bits(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_le_bytes()
}

/// Four 2-bit codes per byte, as Q2_K and Q3_K store their low bits.
fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8]) {
    for (half, j) in [0usize, 128].into_iter().enumerate() {
        for i in 0..32 {
            qs[half * 32 + i] = l[j + i] | (l[j + i + 32] << 2) | (l[j + i + 64] << 4) | (l[j + i + 96] << 6);
        }
    }
}

/// Σx² of a super-block, in order.
fn sum_sq(x: &[f32]) -> f32 {
    let mut s = 0f32;
    for &v in x {
        s += v * v;
    }
    s
}

/// `qw · √(σ² + x²)` for a sub-block.
fn imatrix_weights<const N: usize>(x: &[f32], qw: &[f32], sigma2: f32) -> [f32; N] {
    let mut w = [0f32; N];
    for l in 0..N {
        w[l] = qw[l] * (sigma2 + x[l] * x[l]).sqrt();
    }
    w
}

/// Q2_K of whole super-blocks; with importance `qw` (one per value of the row), the weighted
/// search.
pub(super) fn encode_q2_k(row: &[f32], qw: Option<&[f32]>, out: &mut Vec<u8>) {
    for (i, x) in row.chunks_exact(QK_K).enumerate() {
        let mut l = [0u8; QK_K];
        let mut aux = [0u8; 16];
        let (mut scales, mut mins) = ([0f32; 16], [0f32; 16]);
        let mut b = [0u8; 84];
        let (d, dmin);
        match qw {
            None => {
                let search = Search { rmin: -0.5, rdelta: 0.1, nstep: 15, use_mad: true };
                let (mut max_scale, mut max_min) = (0f32, 0f32);
                for j in 0..16 {
                    let xs = &x[16 * j..16 * j + 16];
                    let mut w = [0f32; 16];
                    w.iter_mut().zip(xs).for_each(|(w, v)| *w = v.abs());
                    (scales[j], mins[j]) = make_qkx(3, xs, Some(&w), &mut l[16 * j..], &mut aux, &search, false);
                    if scales[j] > max_scale {
                        max_scale = scales[j];
                    }
                    if mins[j] > max_min {
                        max_min = mins[j];
                    }
                }
                if max_scale > 0.0 {
                    let iscale = 15.0 / max_scale;
                    for j in 0..16 {
                        b[j] = nearest_int(iscale * scales[j]) as u8;
                    }
                    d = f16_bits(max_scale / 15.0);
                } else {
                    d = f16_bits(0.0);
                }
                if max_min > 0.0 {
                    let iscale = 15.0 / max_min;
                    for j in 0..16 {
                        b[j] |= (nearest_int(iscale * mins[j]) << 4) as u8;
                    }
                    dmin = f16_bits(max_min / 15.0);
                } else {
                    dmin = f16_bits(0.0);
                }
            }
            Some(qw) => {
                let qw = &qw[QK_K * i..QK_K * i + QK_K];
                let sigma2 = sum_sq(x) / QK_K as f32;
                let search = Search { rmin: -0.9, rdelta: 0.05, nstep: 36, use_mad: false };
                let mut sw = [0f32; 16];
                for j in 0..16 {
                    let xs = &x[16 * j..16 * j + 16];
                    let w: [f32; 16] = imatrix_weights(xs, &qw[16 * j..], sigma2);
                    for v in w {
                        sw[j] += v;
                    }
                    (scales[j], mins[j]) = make_qkx(3, xs, Some(&w), &mut l[16 * j..], &mut aux, &search, true);
                }
                let (mut ls, mut lm) = ([0u8; 16], [0u8; 16]);
                let dm = make_qp_quants(15, &scales, &mut ls, &sw);
                let mm = make_qp_quants(15, &mins, &mut lm, &sw);
                d = f16_bits(dm);
                dmin = f16_bits(mm);
                for j in 0..16 {
                    b[j] = ls[j] | (lm[j] << 4);
                }
            }
        }
        let (dv, mv) = (f32::from(half::f16::from_le_bytes(d)), f32::from(half::f16::from_le_bytes(dmin)));
        for j in 0..16 {
            let dl = dv * f32::from(b[j] & 0x0f);
            if dl == 0.0 {
                continue;
            }
            let ml = mv * f32::from(b[j] >> 4);
            for ii in 0..16 {
                l[16 * j + ii] = nearest_int((x[16 * j + ii] + ml) / dl).clamp(0, 3) as u8;
            }
        }
        pack_2bit(&l, &mut b[16..80]);
        b[80..82].copy_from_slice(&d);
        b[82..84].copy_from_slice(&dmin);
        out.extend_from_slice(&b);
    }
}

/// Q3_K of whole super-blocks; with importance, the weighted search.
pub(super) fn encode_q3_k(row: &[f32], qw: Option<&[f32]>, out: &mut Vec<u8>) {
    for (i, x) in row.chunks_exact(QK_K).enumerate() {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let mut sc = [0u8; 12];
        let d: [u8; 2];
        // The 16 signed 6-bit scales `ls` (offset 32) into their 12 bytes.
        let pack = |sc: &mut [u8; 12], j: usize, ls: u8| {
            if j < 8 {
                sc[j] = ls & 0x0f;
            } else {
                sc[j - 8] |= (ls & 0x0f) << 4;
            }
            sc[j % 4 + 8] |= (ls >> 4) << (2 * (j / 4));
        };
        match qw {
            None => {
                let (mut max_scale, mut amax) = (0f32, 0f32);
                for j in 0..16 {
                    scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..]);
                    let scale = scales[j].abs();
                    if scale > amax {
                        amax = scale;
                        max_scale = scales[j];
                    }
                }
                if max_scale != 0.0 {
                    let iscale = -32.0 / max_scale;
                    for j in 0..16 {
                        let ls = i32::from(nearest_int(iscale * scales[j]) as i8).clamp(-32, 31) + 32;
                        pack(&mut sc, j, ls as u8);
                    }
                    d = f16_bits(1.0 / iscale);
                } else {
                    d = f16_bits(0.0);
                }
            }
            Some(qw) => {
                let qw = &qw[QK_K * i..QK_K * i + QK_K];
                let sigma2 = 2.0 * sum_sq(x) / QK_K as f32;
                let mut sw = [0f32; 16];
                for j in 0..16 {
                    let xs = &x[16 * j..16 * j + 16];
                    let w: [f32; 16] = imatrix_weights(xs, &qw[16 * j..], sigma2);
                    let mut sumw = 0f32;
                    for v in w {
                        sumw += v;
                    }
                    sw[j] = sumw;
                    scales[j] = make_qx_quants(4, xs, &mut l[16 * j..], Some(&w));
                }
                let mut ls = [0i8; 16];
                let d_block = make_qx_quants(32, &scales, &mut ls, Some(&sw));
                for j in 0..16 {
                    pack(&mut sc, j, ls[j] as u8);
                }
                d = f16_bits(d_block);
            }
        }
        let dv = f32::from(half::f16::from_le_bytes(d));
        for j in 0..16 {
            let low = if j < 8 { sc[j] & 0x0f } else { sc[j - 8] >> 4 };
            let s = i32::from(low | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
            let dl = dv * s as f32;
            if dl == 0.0 {
                continue;
            }
            for ii in 0..16 {
                l[16 * j + ii] = (nearest_int(x[16 * j + ii] / dl).clamp(-4, 3) + 4) as i8;
            }
        }
        let mut b = [0u8; 110];
        let (mut m, mut hm) = (0usize, 1u8);
        let mut low = [0u8; QK_K];
        for j in 0..QK_K {
            let mut v = l[j] as u8;
            if v > 3 {
                b[m] |= hm;
                v -= 4;
            }
            low[j] = v;
            m += 1;
            if m == 32 {
                m = 0;
                hm <<= 1;
            }
        }
        pack_2bit(&low, &mut b[32..96]);
        b[96..108].copy_from_slice(&sc);
        b[108..110].copy_from_slice(&d);
        out.extend_from_slice(&b);
    }
}

/// The 8 scales and 8 minimums of Q4_K/Q5_K (6 bits each) into their 12 bytes.
fn pack_scale_min_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; 12] {
    let mut sc = [0u8; 12];
    for j in 0..8 {
        if j < 4 {
            sc[j] = ls[j];
            sc[j + 4] = lm[j];
        } else {
            sc[j + 4] = (ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4);
            sc[j - 4] |= (ls[j] >> 4) << 6;
            sc[j] |= (lm[j] >> 4) << 6;
        }
    }
    sc
}

/// The sub-block scales, minimums and codes of a Q4_K/Q5_K super-block with `nmax` levels.
/// Returns `(d, dmin, packed scales, codes)`.
fn scale_min_super_block(x: &[f32], qw: Option<&[f32]>, nmax: i32) -> ([u8; 2], [u8; 2], [u8; 12], [u8; QK_K]) {
    let mut l = [0u8; QK_K];
    let mut aux = [0u8; 32];
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    let (d, dmin);
    match qw {
        None => {
            let search = if nmax == 15 {
                Search { rmin: -1.0, rdelta: 0.1, nstep: 20, use_mad: false }
            } else {
                Search { rmin: -0.5, rdelta: 0.1, nstep: 15, use_mad: false }
            };
            let (mut max_scale, mut max_min) = (0f32, 0f32);
            for j in 0..8 {
                let xs = &x[32 * j..32 * j + 32];
                let av_x = (sum_sq(xs) / 32.0).sqrt();
                let mut w = [0f32; 32];
                w.iter_mut().zip(xs).for_each(|(w, v)| *w = av_x + v.abs());
                (scales[j], mins[j]) = make_qkx(nmax, xs, Some(&w), &mut l[32 * j..], &mut aux, &search, false);
                if scales[j] > max_scale {
                    max_scale = scales[j];
                }
                if mins[j] > max_min {
                    max_min = mins[j];
                }
            }
            let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
            let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
            for j in 0..8 {
                ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
                lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
            }
            d = f16_bits(max_scale / 63.0);
            dmin = f16_bits(max_min / 63.0);
        }
        Some(qw) => {
            let sigma2 = 2.0 * sum_sq(x) / QK_K as f32;
            let search = Search { rmin: -0.9, rdelta: 0.05, nstep: 36, use_mad: false };
            let mut sw = [0f32; 8];
            for j in 0..8 {
                let xs = &x[32 * j..32 * j + 32];
                let w: [f32; 32] = imatrix_weights(xs, &qw[32 * j..], sigma2);
                let mut sumw = 0f32;
                for v in w {
                    sumw += v;
                }
                sw[j] = sumw;
                (scales[j], mins[j]) = make_qkx(nmax, xs, Some(&w), &mut l[32 * j..], &mut aux, &search, true);
            }
            let d_block = make_qp_quants(63, &scales, &mut ls, &sw);
            let m_block = make_qp_quants(63, &mins, &mut lm, &sw);
            for j in 0..8 {
                ls[j] = ls[j].min(63);
                lm[j] = lm[j].min(63);
            }
            d = f16_bits(d_block);
            dmin = f16_bits(m_block);
        }
    }
    let sc = pack_scale_min_k4(&ls, &lm);
    let (dv, mv) = (f32::from(half::f16::from_le_bytes(d)), f32::from(half::f16::from_le_bytes(dmin)));
    let (s, m) = scale_min_k4(&sc);
    for j in 0..8 {
        let dl = dv * f32::from(s[j]);
        if dl == 0.0 {
            continue;
        }
        let ml = mv * f32::from(m[j]);
        for ii in 0..32 {
            l[32 * j + ii] = nearest_int((x[32 * j + ii] + ml) / dl).clamp(0, nmax) as u8;
        }
    }
    (d, dmin, sc, l)
}

/// Q4_K of whole super-blocks; with importance, the weighted search.
pub(super) fn encode_q4_k(row: &[f32], qw: Option<&[f32]>, out: &mut Vec<u8>) {
    for (i, x) in row.chunks_exact(QK_K).enumerate() {
        let (d, dmin, sc, l) = scale_min_super_block(x, qw.map(|w| &w[QK_K * i..QK_K * i + QK_K]), 15);
        out.extend_from_slice(&d);
        out.extend_from_slice(&dmin);
        out.extend_from_slice(&sc);
        for j in (0..QK_K).step_by(64) {
            out.extend((0..32).map(|i| l[j + i] | (l[j + i + 32] << 4)));
        }
    }
}

/// Q5_K of whole super-blocks; with importance, the weighted search.
pub(super) fn encode_q5_k(row: &[f32], qw: Option<&[f32]>, out: &mut Vec<u8>) {
    for (i, x) in row.chunks_exact(QK_K).enumerate() {
        let (d, dmin, sc, l) = scale_min_super_block(x, qw.map(|w| &w[QK_K * i..QK_K * i + QK_K]), 31);
        let mut qh = [0u8; 32];
        let mut ql = [0u8; 128];
        let (mut m1, mut m2) = (1u8, 2u8);
        for (k, n) in (0..QK_K).step_by(64).enumerate() {
            for j in 0..32 {
                let (mut l1, mut l2) = (l[n + j], l[n + j + 32]);
                if l1 > 15 {
                    l1 -= 16;
                    qh[j] |= m1;
                }
                if l2 > 15 {
                    l2 -= 16;
                    qh[j] |= m2;
                }
                ql[32 * k + j] = l1 | (l2 << 4);
            }
            m1 <<= 2;
            m2 <<= 2;
        }
        out.extend_from_slice(&d);
        out.extend_from_slice(&dmin);
        out.extend_from_slice(&sc);
        out.extend_from_slice(&qh);
        out.extend_from_slice(&ql);
    }
}

/// Q6_K of whole super-blocks; with importance, the weighted search.
pub(super) fn encode_q6_k(row: &[f32], qw: Option<&[f32]>, out: &mut Vec<u8>) {
    for (i, x) in row.chunks_exact(QK_K).enumerate() {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let (mut max_scale, mut max_abs_scale) = (0f32, 0f32);
        for ib in 0..16 {
            let w = qw.map(|w| &w[QK_K * i + 16 * ib..QK_K * i + 16 * ib + 16]);
            scales[ib] = make_qx_quants(32, &x[16 * ib..16 * ib + 16], &mut l[16 * ib..], w);
            if scales[ib].abs() > max_abs_scale {
                max_abs_scale = scales[ib].abs();
                max_scale = scales[ib];
            }
        }
        let mut b = [0u8; 210];
        if max_abs_scale < GROUP_MAX_EPS {
            out.extend_from_slice(&b);
            continue;
        }
        let iscale = -128.0 / max_scale;
        let d = f16_bits(1.0 / iscale);
        let dv = f32::from(half::f16::from_le_bytes(d));
        let mut sc = [0i8; 16];
        for ib in 0..16 {
            sc[ib] = nearest_int(iscale * scales[ib]).min(127) as i8;
        }
        for j in 0..16 {
            let dl = dv * f32::from(sc[j]);
            if dl == 0.0 {
                continue;
            }
            for ii in 0..16 {
                l[16 * j + ii] = (nearest_int(x[16 * j + ii] / dl).clamp(-32, 31) + 32) as i8;
            }
        }
        let l = l.map(|v| v as u8);
        let (ql, rest) = b.split_at_mut(128);
        let (qh, tail) = rest.split_at_mut(64);
        for (k, j) in [0usize, 128].into_iter().enumerate() {
            for i in 0..32 {
                let (q1, q2, q3, q4) = (l[j + i], l[j + i + 32], l[j + i + 64], l[j + i + 96]);
                ql[64 * k + i] = (q1 & 0x0f) | ((q3 & 0x0f) << 4);
                ql[64 * k + i + 32] = (q2 & 0x0f) | ((q4 & 0x0f) << 4);
                qh[32 * k + i] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
            }
        }
        for (t, s) in tail[..16].iter_mut().zip(sc) {
            *t = s as u8;
        }
        tail[16..18].copy_from_slice(&d);
        out.extend_from_slice(&b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16(x: f32) -> [u8; 2] {
        half::f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn q2_k_hand_values() {
        let mut b = vec![0u8; 84];
        b[0] = 0x21; // sub-block 0: scale 1, min 2
        b[16] = 0b1110_0111; // value 0: 3, value 32: 1, value 64: 2, value 96: 3
        b[80..82].copy_from_slice(&f16(0.5));
        b[82..84].copy_from_slice(&f16(0.25));
        let mut y = [0.0; 256];
        decode_q2_k(&b, &mut y);
        assert_eq!(y[0], 0.5 * 3.0 - 0.25 * 2.0);
        assert_eq!(y[1], -0.5); // q = 0
        assert_eq!(y[32], 0.0); // sub-block 2 has scale 0 and min 0
    }

    #[test]
    fn q3_k_hand_values() {
        let mut b = vec![0u8; 110];
        b[0] = 1; // hmask bit 0 of byte 0: value 0 keeps its 2-bit q
        b[32] = 0b11; // value 0: q = 3; value 1: q = 0 - 4
        b[96] = 0x01 | 0x20; // scale 0 low nibble 1; scale 8 low nibble 2
        b[104] = 0b10; // scale 0 high bits 2 -> scale 0 = 1 | 32 = 33 - 32 = 1
        b[108..110].copy_from_slice(&f16(2.0));
        let mut y = [0.0; 256];
        decode_q3_k(&b, &mut y);
        assert_eq!(y[0], 2.0 * 1.0 * 3.0);
        // value 1: hmask bit clear, q = -4, same scale 1.
        assert_eq!(y[1], -8.0);
        // value 128 (sub-block 8): scale = 2 | (0 << 4) - 32 = -30, q = 0 - 4.
        assert_eq!(y[128], 2.0 * -30.0 * -4.0);
    }

    #[test]
    fn q4_k_and_q5_k_hand_values() {
        let mut b = vec![0u8; 144];
        b[0..2].copy_from_slice(&f16(1.0));
        b[2..4].copy_from_slice(&f16(0.5));
        b[4] = 3; // scale of sub-block 0
        b[8] = 2; // min of sub-block 0
        b[12] = 0x45; // sub-block 4: scale low 5, min low 4
        b[16] = 0x9a; // value 0: 10; value 32: 9
        let mut y = [0.0; 256];
        decode_q4_k(&b, &mut y);
        assert_eq!(y[0], 3.0 * 10.0 - 0.5 * 2.0);
        assert_eq!(y[32], 0.0); // sub-block 1: scale 0, min 0
        assert_eq!(y[128], 0.0 - 0.5 * 4.0); // sub-block 4, q = 0

        let mut b5 = vec![0u8; 176];
        b5[0..16].copy_from_slice(&b[0..16]);
        b5[16] = 0b1; // qh: 5th bit of value 0
        b5[48] = 0x0a; // value 0 low nibble 10
        decode_q5_k(&b5, &mut y);
        assert_eq!(y[0], 3.0 * 26.0 - 1.0);
    }

    #[test]
    fn q6_k_hand_values() {
        let mut b = vec![0u8; 210];
        b[0] = 0x21; // value 0 low 1; value 64 low 2
        b[128] = 0b11_00_00_10; // value 0 high 2 -> q = 1 | 32 = 33 - 32 = 1; value 96 high 3
        b[192] = 2; // scale of sub-block 0
        b[196] = (-1i8) as u8; // scale of sub-block 4 (values 64..80)
        b[198] = 3; // scale of sub-block 6 (values 96..112)
        b[208..210].copy_from_slice(&f16(0.5));
        let mut y = [0.0; 256];
        decode_q6_k(&b, &mut y);
        assert_eq!(y[0], 0.5 * 2.0 * 1.0);
        assert_eq!(y[64], -0.5 * (2.0 - 32.0)); // d = 0.5, scale = -1
        assert_eq!(y[96], 0.5 * 3.0 * (48.0 - 32.0));
        assert_eq!(y[1], 0.5 * 2.0 * -32.0);
    }

    #[test]
    fn q8_k_hand_values() {
        let mut b = vec![0u8; 292];
        b[0..4].copy_from_slice(&0.5f32.to_le_bytes());
        b[4] = (-3i8) as u8;
        let mut y = [0.0; 256];
        decode_q8_k(&b, &mut y);
        assert_eq!((y[0], y[1]), (-1.5, 0.0));
    }
}
