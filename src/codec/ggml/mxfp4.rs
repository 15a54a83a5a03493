//! MXFP4 (OCP microscaling): 32 FP4 E2M1 values sharing one E8M0 scale.

/// E2M1 values, doubled (ggml's `kvalues_mxfp4`); the scale is halved to match.
pub const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// `2^(e - 127) / 2` as f32, exactly as ggml's `ggml_e8m0_to_fp32_half`.
#[inline]
pub fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits = if e < 2 { 0x0020_0000u32 << e } else { u32::from(e - 1) << 23 };
    f32::from_bits(bits)
}

/// MXFP4: `e: u8, qs: [u8; 16]` (32 values, 17 bytes); `y = d * kvalues[q]`.
pub fn decode_mxfp4(b: &[u8], y: &mut [f32]) {
    let d = e8m0_to_f32_half(b[0]);
    let qs = &b[1..17];
    for l in 0..16 {
        y[l] = d * f32::from(KVALUES_MXFP4[(qs[l] & 0x0f) as usize]);
        y[l + 16] = d * f32::from(KVALUES_MXFP4[(qs[l] >> 4) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mxfp4_hand_values() {
        assert_eq!(e8m0_to_f32_half(127), 0.5);
        assert_eq!(e8m0_to_f32_half(1), 2f64.powi(-127) as f32);
        assert_eq!(e8m0_to_f32_half(0), 2f64.powi(-128) as f32);
        let mut b = vec![0u8; 17];
        b[0] = 128; // scale 2^1 / 2 = 1
        b[1] = 0xf7; // value 0: 12 -> 12; value 16: -12
        let mut y = [0.0; 32];
        decode_mxfp4(&b, &mut y);
        assert_eq!((y[0], y[16], y[1]), (12.0, -12.0, 0.0));
    }
}
