//! ggml's ternary types (BitNet b1.58): values in {-1, 0, 1} times an f16 scale.

use super::f16_at;

const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// A base-3 digit packed by TQ1_0: the byte times a power of three (wrapping, as ggml's uint8
/// arithmetic does), then `(x * 3) >> 8` gives the digit 0..=2, minus 1.
#[inline]
fn trit(byte: u8, pow: u8) -> f32 {
    let x = byte.wrapping_mul(pow);
    f32::from(((u16::from(x) * 3) >> 8) as i8 - 1)
}

/// TQ1_0: `qs: [u8; 48], qh: [u8; 4], d: f16` (256 values, 54 bytes); five trits per byte of
/// `qs`, four per byte of `qh`.
pub(super) fn decode_tq1_0(b: &[u8], y: &mut [f32]) {
    let qs = &b[0..48];
    let qh = &b[48..52];
    let d = f16_at(b, 52);
    for (p, &pow) in POW3.iter().enumerate() {
        for l in 0..32 {
            y[p * 32 + l] = d * trit(qs[l], pow);
        }
        for l in 0..16 {
            y[160 + p * 16 + l] = d * trit(qs[32 + l], pow);
        }
    }
    for (p, &pow) in POW3[..4].iter().enumerate() {
        for l in 0..4 {
            y[240 + p * 4 + l] = d * trit(qh[l], pow);
        }
    }
}

/// TQ2_0: `qs: [u8; 64], d: f16` (256 values, 66 bytes); 2 bits per value, `y = d * (q - 1)`.
pub(super) fn decode_tq2_0(b: &[u8], y: &mut [f32]) {
    let qs = &b[0..64];
    let d = f16_at(b, 64);
    for half in 0..2 {
        for shift in 0..4 {
            for l in 0..32 {
                let q = ((qs[half * 32 + l] >> (2 * shift)) & 3) as i8 - 1;
                y[half * 128 + shift * 32 + l] = d * f32::from(q);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tq1_0_packs_five_trits_per_byte() {
        // Digits (most significant first) 2,0,1,2,1 = 2*81 + 0*27 + 1*9 + 2*3 + 1 = 178; ggml stores
        // ceil(178 * 256 / 243) = 188 so that multiplying by 3^p and taking the top bits recovers them.
        let mut b = vec![0u8; 54];
        b[0] = 188;
        b[52..54].copy_from_slice(&half::f16::from_f32(2.0).to_le_bytes());
        let mut y = [0.0; 256];
        decode_tq1_0(&b, &mut y);
        let digits: Vec<f32> = (0..5).map(|p| y[p * 32]).collect();
        assert_eq!(digits, [2.0, -2.0, 0.0, 2.0, 0.0]);
    }

    #[test]
    fn tq2_0_hand_values() {
        let mut b = vec![0u8; 66];
        b[0] = 0b00_01_10_00; // values 0, 32, 64, 96: q = 0, 2, 1, 0
        b[64..66].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        let mut y = [0.0; 256];
        decode_tq2_0(&b, &mut y);
        assert_eq!((y[0], y[32], y[64], y[96]), (-0.5, 0.5, 0.0, -0.5));
    }
}
