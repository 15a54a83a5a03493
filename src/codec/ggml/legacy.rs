//! The first ggml formats: blocks of 32 values with one f16 scale (and a minimum for the `_1`
//! types). Layouts as in ggml-common.h; the low nibbles hold values 0..16, the high nibbles 16..32.

use super::f16_at;

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

#[cfg(test)]
mod tests {
    use super::*;

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
