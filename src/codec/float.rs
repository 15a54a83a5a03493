//! Scalar floating-point formats narrower than `f32`, decoded exactly.
//!
//! FP8 follows the OCP 8-bit floating point specification (OFP8, v1.0):
//! - E4M3 ("fn"): bias 7, no infinities, `S.1111.111` is NaN, largest finite value ±448.
//! - E5M2: bias 15, IEEE-754-like: exponent 31 with mantissa 0 is ±Inf, otherwise NaN.
//!
//! The "fnuz" variants (AMD/Graphcore, as in safetensors `F8_E4M3FNUZ`, `F8_E5M2FNUZ`) have one
//! more exponent bias (8 and 16), no infinities, no negative zero, and `0x80` as their only NaN.
//!
//! E8M0 is the OCP MX scale format: `2^(e - 127)`, with `0xFF` as NaN and no sign or zero.
//! Every 8-bit format is decoded through a 256-entry table built at compile time.
//!
//! FP4 and FP6 follow the OCP Microscaling (MX) v1.0 element formats, finite only:
//! E2M1 (bias 1, largest ±6), E2M3 (bias 1, largest ±7.5), E3M2 (bias 3, largest ±28).

/// IEEE half precision to `f32` (exact: every f16 is an f32).
#[inline]
pub fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// bfloat16 to `f32` (exact: bf16 is the top half of an f32).
#[inline]
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// OCP FP8 E4M3 to `f32`.
#[inline]
pub fn f8_e4m3_to_f32(bits: u8) -> f32 {
    F8_E4M3_TABLE[bits as usize]
}

/// OCP FP8 E5M2 to `f32`.
#[inline]
pub fn f8_e5m2_to_f32(bits: u8) -> f32 {
    F8_E5M2_TABLE[bits as usize]
}

/// FP8 E4M3 "fnuz" to `f32`.
#[inline]
pub fn f8_e4m3fnuz_to_f32(bits: u8) -> f32 {
    F8_E4M3FNUZ_TABLE[bits as usize]
}

/// FP8 E5M2 "fnuz" to `f32`.
#[inline]
pub fn f8_e5m2fnuz_to_f32(bits: u8) -> f32 {
    F8_E5M2FNUZ_TABLE[bits as usize]
}

/// OCP MX E8M0 scale to `f32`.
#[inline]
pub fn f8_e8m0_to_f32(bits: u8) -> f32 {
    F8_E8M0_TABLE[bits as usize]
}

/// OCP MX FP4 E2M1 (the low 4 bits of `bits`) to `f32`.
#[inline]
pub fn f4_e2m1_to_f32(bits: u8) -> f32 {
    F4_E2M1_TABLE[usize::from(bits & 0xf)]
}

/// OCP MX FP6 E2M3 (the low 6 bits of `bits`) to `f32`.
#[inline]
pub fn f6_e2m3_to_f32(bits: u8) -> f32 {
    F6_E2M3_TABLE[usize::from(bits & 0x3f)]
}

/// OCP MX FP6 E3M2 (the low 6 bits of `bits`) to `f32`.
#[inline]
pub fn f6_e3m2_to_f32(bits: u8) -> f32 {
    F6_E3M2_TABLE[usize::from(bits & 0x3f)]
}

/// `2^e` for the exponents that 8-bit formats reach, as an exact f32 (normal or subnormal).
const fn pow2(e: i32) -> f32 {
    if e >= -126 {
        f32::from_bits(((e + 127) as u32) << 23)
    } else {
        // Subnormal f32: 2^e = 2^-149 * 2^(e + 149).
        f32::from_bits(1u32 << (e + 149))
    }
}

/// Decodes a sign/exponent/mantissa byte with `m_bits` mantissa bits and the given bias.
/// Special values are handled by the callers.
const fn minifloat(bits: u8, m_bits: u32, bias: i32) -> f32 {
    let sign = if bits & 0x80 != 0 { -1.0 } else { 1.0 };
    let e_mask = (1u32 << (7 - m_bits)) - 1;
    let exp = ((bits as u32) >> m_bits) & e_mask;
    let man = (bits as u32) & ((1 << m_bits) - 1);
    let scale = (1u32 << m_bits) as f32;
    let value = if exp == 0 {
        // Subnormal: 0.m * 2^(1 - bias)
        (man as f32 / scale) * pow2(1 - bias)
    } else {
        (1.0 + man as f32 / scale) * pow2(exp as i32 - bias)
    };
    sign * value
}

/// A table of a narrow format whose codes, shifted left by `shift`, take the byte layout that
/// [`minifloat`] reads (sign in bit 7).
const fn narrow_table<const N: usize>(shift: u32, m_bits: u32, bias: i32) -> [f32; N] {
    let mut t = [0.0f32; N];
    let mut i = 0;
    while i < N {
        t[i] = minifloat((i << shift) as u8, m_bits, bias);
        i += 1;
    }
    t
}

// s.ee.m -> s.ee.m0000 (5 mantissa bits of which the first is m), s.ee.mmm -> s.ee.mmm00,
// s.eee.mm -> s.eee.mm00.
const F4_E2M1_TABLE: [f32; 16] = narrow_table(4, 5, 1);
const F6_E2M3_TABLE: [f32; 64] = narrow_table(2, 5, 1);
const F6_E3M2_TABLE: [f32; 64] = narrow_table(2, 4, 3);

const F8_E4M3_TABLE: [f32; 256] = {
    let mut t = [0.0f32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if i & 0x7f == 0x7f { f32::NAN } else { minifloat(i as u8, 3, 7) };
        i += 1;
    }
    t
};

const F8_E5M2_TABLE: [f32; 256] = {
    let mut t = [0.0f32; 256];
    let mut i = 0;
    while i < 256 {
        let exp = (i >> 2) & 0x1f;
        let man = i & 0x3;
        t[i] = if exp == 0x1f {
            if man != 0 {
                f32::NAN
            } else if i & 0x80 != 0 {
                f32::NEG_INFINITY
            } else {
                f32::INFINITY
            }
        } else {
            minifloat(i as u8, 2, 15)
        };
        i += 1;
    }
    t
};

const fn fnuz_table(m_bits: u32, bias: i32) -> [f32; 256] {
    let mut t = [0.0f32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if i == 0x80 { f32::NAN } else { minifloat(i as u8, m_bits, bias) };
        i += 1;
    }
    t
}

const F8_E4M3FNUZ_TABLE: [f32; 256] = fnuz_table(3, 8);
const F8_E5M2FNUZ_TABLE: [f32; 256] = fnuz_table(2, 16);

const F8_E8M0_TABLE: [f32; 256] = {
    let mut t = [0.0f32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if i == 0xff {
            f32::NAN
        } else if i >= 1 {
            pow2(i as i32 - 127)
        } else {
            // 2^-127 is an f32 subnormal.
            f32::from_bits(1 << 22)
        };
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_hand_values() {
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc000), -2.0);
        assert_eq!(bf16_to_f32(0x3e20), 0.15625);
        assert_eq!(bf16_to_f32(0x7f80), f32::INFINITY);
        assert!(bf16_to_f32(0x7fc0).is_nan());
        assert_eq!(bf16_to_f32(0x0001), f32::from_bits(0x0001_0000)); // subnormal
        assert_eq!(bf16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn f16_hand_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24)); // smallest subnormal
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14)); // smallest normal
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn e4m3_hand_values() {
        assert_eq!(f8_e4m3_to_f32(0x00), 0.0);
        assert_eq!(f8_e4m3_to_f32(0x80).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f8_e4m3_to_f32(0x38), 1.0); // exp 7, man 0
        assert_eq!(f8_e4m3_to_f32(0x3c), 1.5);
        assert_eq!(f8_e4m3_to_f32(0x7e), 448.0); // largest finite
        assert_eq!(f8_e4m3_to_f32(0xfe), -448.0);
        assert_eq!(f8_e4m3_to_f32(0x01), 2f32.powi(-9)); // smallest subnormal: 1/8 * 2^-6
        assert_eq!(f8_e4m3_to_f32(0x07), 7.0 * 2f32.powi(-9));
        assert_eq!(f8_e4m3_to_f32(0x08), 2f32.powi(-6)); // smallest normal
        assert_eq!(f8_e4m3_to_f32(0x78), 256.0); // exp 15 man 0 is finite in E4M3
        assert!(f8_e4m3_to_f32(0x7f).is_nan());
        assert!(f8_e4m3_to_f32(0xff).is_nan());
        // Exactly two NaN encodings and no infinities.
        let nans = (0..=255u8).filter(|&b| f8_e4m3_to_f32(b).is_nan()).count();
        assert_eq!(nans, 2);
        assert!((0..=255u8).all(|b| !f8_e4m3_to_f32(b).is_infinite()));
    }

    #[test]
    fn e5m2_hand_values() {
        assert_eq!(f8_e5m2_to_f32(0x3c), 1.0); // exp 15 man 0
        assert_eq!(f8_e5m2_to_f32(0x3e), 1.5);
        assert_eq!(f8_e5m2_to_f32(0xc0), -2.0);
        assert_eq!(f8_e5m2_to_f32(0x7b), 57344.0); // largest finite: 1.75 * 2^15
        assert_eq!(f8_e5m2_to_f32(0x01), 2f32.powi(-16)); // smallest subnormal: 1/4 * 2^-14
        assert_eq!(f8_e5m2_to_f32(0x04), 2f32.powi(-14));
        assert_eq!(f8_e5m2_to_f32(0x7c), f32::INFINITY);
        assert_eq!(f8_e5m2_to_f32(0xfc), f32::NEG_INFINITY);
        for b in [0x7d, 0x7e, 0x7f, 0xfd, 0xfe, 0xff] {
            assert!(f8_e5m2_to_f32(b).is_nan(), "{b:#x}");
        }
        // E5M2 is the top byte of an f16: check every value against that identity.
        for b in 0..=255u8 {
            let via_f16 = f16_to_f32(u16::from(b) << 8);
            let direct = f8_e5m2_to_f32(b);
            assert!(via_f16.to_bits() == direct.to_bits() || (via_f16.is_nan() && direct.is_nan()));
        }
    }

    #[test]
    fn fnuz_hand_values() {
        assert_eq!(f8_e4m3fnuz_to_f32(0x40), 1.0); // exp 8 man 0
        assert_eq!(f8_e4m3fnuz_to_f32(0x7f), 240.0); // largest: 1.875 * 2^7
        assert_eq!(f8_e4m3fnuz_to_f32(0xff), -240.0);
        assert_eq!(f8_e4m3fnuz_to_f32(0x01), 2f32.powi(-10)); // 1/8 * 2^-7
        assert_eq!(f8_e5m2fnuz_to_f32(0x40), 1.0); // exp 16 man 0
        assert_eq!(f8_e5m2fnuz_to_f32(0x7f), 57344.0); // exp 31 is finite
        assert_eq!(f8_e5m2fnuz_to_f32(0x01), 2f32.powi(-17)); // 1/4 * 2^-15
        for table in [f8_e4m3fnuz_to_f32 as fn(u8) -> f32, f8_e5m2fnuz_to_f32] {
            assert!(table(0x80).is_nan());
            assert_eq!(table(0x00), 0.0);
            assert_eq!((0..=255u8).filter(|&b| table(b).is_nan()).count(), 1);
            assert!((0..=255u8).all(|b| !table(b).is_infinite()));
        }
    }

    #[test]
    fn e8m0_hand_values() {
        assert_eq!(f8_e8m0_to_f32(127), 1.0);
        assert_eq!(f8_e8m0_to_f32(128), 2.0);
        assert_eq!(f8_e8m0_to_f32(126), 0.5);
        assert_eq!(f8_e8m0_to_f32(254), 2f32.powi(127));
        assert_eq!(f8_e8m0_to_f32(0), 2f64.powi(-127) as f32);
        assert!(f8_e8m0_to_f32(255).is_nan());
    }
}

/// `f32` to OCP FP8 E4M3 (`float8_e4m3fn`), rounding to nearest even as torch's conversion does
/// (c10's `fp8e4m3fn_from_fp32_value`): magnitudes from 480 up and NaN become NaN (0x7f), the
/// format having no infinity; subnormals by adding 2^14, whose ulp is E4M3's subnormal step.
pub fn f32_to_f8_e4m3(x: f32) -> u8 {
    const FP8_MAX: u32 = 1087 << 20; // 480.0: the first value that rounds past 448
    const DENORM_MASK: u32 = 141 << 23; // 2^14
    let bits = x.to_bits();
    let sign = ((bits >> 24) & 0x80) as u8;
    let mag = bits & 0x7fff_ffff;
    let code = if mag >= FP8_MAX {
        0x7f
    } else if mag < 121 << 23 {
        // below 2^-6: subnormal (or zero)
        let sum = (f32::from_bits(mag) + f32::from_bits(DENORM_MASK)).to_bits();
        (sum - DENORM_MASK) as u8
    } else {
        let mant_odd = (mag >> 20) & 1;
        let rounded = mag.wrapping_add((7u32.wrapping_sub(127) << 23).wrapping_add(0x7ffff)).wrapping_add(mant_odd);
        (rounded >> 20) as u8
    };
    code | sign
}

/// FP8 E4M3's largest value.
pub const FP8_E4M3_MAX: f32 = 448.0;

/// compressed-tensors' float8 scale of values whose largest magnitude is `absmax`:
/// `absmax / ((448 − (−448)) / 2)` in the tensor's type, a zero scale replaced by that type's
/// epsilon.
pub fn fp8_e4m3_scale(absmax: f32, arith: crate::codec::int::Arith) -> f32 {
    let s = arith.round(absmax / FP8_E4M3_MAX);
    if s == 0.0 { arith.eps() } else { s }
}

/// compressed-tensors' FP8 code of `x`: `x / scale` in the tensor's type, clamped to ±448,
/// rounded to E4M3.
pub fn fp8_e4m3_code(x: f32, scale: f32, arith: crate::codec::int::Arith) -> u8 {
    f32_to_f8_e4m3(arith.round(x / scale).clamp(-FP8_E4M3_MAX, FP8_E4M3_MAX))
}

#[cfg(test)]
mod fp8_tests {
    use super::*;

    #[test]
    fn e4m3_encoding_inverts_decoding_and_rounds_to_even() {
        for code in 0..=255u8 {
            let v = f8_e4m3_to_f32(code);
            if v.is_nan() {
                continue;
            }
            // Every finite code survives a round trip (−0 included).
            assert_eq!(f32_to_f8_e4m3(v), code, "{v}");
        }
        // Halfway between 1.0 (mantissa 0) and 1.125 (mantissa 1): to even, 1.0.
        assert_eq!(f8_e4m3_to_f32(f32_to_f8_e4m3(1.0625)), 1.0);
        assert_eq!(f8_e4m3_to_f32(f32_to_f8_e4m3(1.1875)), 1.25);
        // Smallest subnormal 2^-9; half of it ties to zero.
        assert_eq!(f8_e4m3_to_f32(f32_to_f8_e4m3(2f32.powi(-10))), 0.0);
        assert_eq!(f8_e4m3_to_f32(f32_to_f8_e4m3(3.0 * 2f32.powi(-10))), 2f32.powi(-8));
        assert_eq!(f8_e4m3_to_f32(f32_to_f8_e4m3(460.0)), 448.0);
        assert!(f8_e4m3_to_f32(f32_to_f8_e4m3(480.0)).is_nan());
    }
}
