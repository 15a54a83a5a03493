//! ggml's K-quants: super-blocks of 256 values in sub-blocks of 16 or 32, with scales (and
//! minimums) quantized to 4, 6 or 8 bits against f16 super-block scales. Layouts as in
//! ggml-common.h; the bit-plane orders follow `dequantize_row_q*_K` in ggml-quants.c.

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
fn scale_min_k4(sc: &[u8]) -> ([u8; 8], [u8; 8]) {
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
