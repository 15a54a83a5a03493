//! ggml's non-linear 4-bit types: values are indices into a fixed table of 16 levels
//! (`kvalues_iq4nl` in ggml-common.h) times a scale.

use super::f16_at;

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
