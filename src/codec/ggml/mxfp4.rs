//! FP4 E2M1 block types: MXFP4 (OCP microscaling: 32 values sharing one E8M0 scale) and NVFP4
//! (NVIDIA: 16 values sharing one unsigned E4M3 scale, four such groups per 64-value block).

/// E2M1 values, doubled (ggml's `kvalues_mxfp4`); the scale is halved to match.
pub const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// `2^(e - 127) / 2` as f32, exactly as ggml's `ggml_e8m0_to_fp32_half`.
#[inline]
pub fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits = if e < 2 { 0x0020_0000u32 << e } else { u32::from(e - 1) << 23 };
    f32::from_bits(bits)
}

/// MXFP4: `e: u8, qs: [u8; 16]` (32 values, 17 bytes); `y = d * kvalues[q]`.
pub(super) fn decode_mxfp4(b: &[u8], y: &mut [f32]) {
    let d = e8m0_to_f32_half(b[0]);
    let qs = &b[1..17];
    for l in 0..16 {
        y[l] = d * f32::from(KVALUES_MXFP4[(qs[l] & 0x0f) as usize]);
        y[l + 16] = d * f32::from(KVALUES_MXFP4[(qs[l] >> 4) as usize]);
    }
}

/// An unsigned E4M3 scale (bias 7, no sign bit; 0x7F and 0 read as 0) halved, exactly as ggml's
/// `ggml_ue4m3_to_fp32` and gguf-py (the halving matches the doubled E2M1 values).
#[inline]
pub fn ue4m3_to_f32_half(x: u8) -> f32 {
    if x == 0 || x == 0x7f {
        return 0.0;
    }
    let (exp, man) = (u32::from((x >> 3) & 0x0f), f32::from(x & 0x07));
    // Subnormal: man · 2⁻⁹; normal: (1 + man/8) · 2^(exp − 7) = (8 + man) · 2^(exp − 10). The
    // powers of two are built from their bits; every product is exact in f32.
    let pow2 = |e: u32| f32::from_bits((127 + e - 10) << 23);
    let raw = if exp == 0 { man * pow2(1) } else { (8.0 + man) * pow2(exp) };
    raw * 0.5
}

/// NVFP4: `d: [u8; 4] (UE4M3), qs: [u8; 32]` (64 values, 36 bytes). Group g of 16 values takes
/// scale `d[g]`; its first eight values are the low nibbles of `qs[8g..8g + 8]`, the next eight
/// the high nibbles.
pub(super) fn decode_nvfp4(b: &[u8], y: &mut [f32]) {
    for g in 0..4 {
        let d = ue4m3_to_f32_half(b[g]);
        let qs = &b[4 + 8 * g..12 + 8 * g];
        for l in 0..8 {
            y[16 * g + l] = d * f32::from(KVALUES_MXFP4[(qs[l] & 0x0f) as usize]);
            y[16 * g + 8 + l] = d * f32::from(KVALUES_MXFP4[(qs[l] >> 4) as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvfp4_hand_values() {
        assert_eq!(ue4m3_to_f32_half(0x38), 0.5); // exp 7, man 0: 1.0, halved
        assert_eq!(ue4m3_to_f32_half(0x01), 2f32.powi(-10)); // smallest subnormal, halved
        assert_eq!((ue4m3_to_f32_half(0x7f), ue4m3_to_f32_half(0)), (0.0, 0.0));
        let mut b = [0u8; 36];
        b[1] = 0x40; // group 1 scale: exp 8 → 2, halved 1
        b[12] = 0xf7; // group 1, value 0: 12; value 8: −12
        let mut y = [0.0; 64];
        decode_nvfp4(&b, &mut y);
        assert_eq!((y[16], y[24], y[0]), (12.0, -12.0, 0.0));
    }

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
