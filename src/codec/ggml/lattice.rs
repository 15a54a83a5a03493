//! ggml's lattice ("codebook") types: groups of eight (IQ1, IQ2) or four (IQ3) values are one
//! index into a fixed grid of points ([`super::iq_grids`]), with signs from a table or from
//! explicit bits and a scale per sub-block of 32 (16 for IQ2_XS/IQ2_S). Each decoder follows
//! ggml's `dequantize_row_iq*` (and gguf-py): the same f32 products in the same order.

use super::f16_at;
use super::iq_grids::{IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS_IQ2XS};

/// The offset added to IQ1 grid values (negated by a per-group bit).
const IQ1S_DELTA: f32 = 0.125;

/// Byte `j` of a grid entry.
#[inline]
fn byte(entry: u64, j: usize) -> u8 {
    (entry >> (8 * j)) as u8
}

/// `v` negated when bit `j` of `signs` is set.
#[inline]
fn signed(v: f32, signs: u8, j: usize) -> f32 {
    if signs & (1 << j) != 0 { -v } else { v }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Eight values `scale · grid[j] · sign_j` of one 8-value grid point, at `y[at..at + 8]`.
#[inline]
fn put8(y: &mut [f32], at: usize, scale: f32, entry: u64, signs: u8) {
    let bytes = entry.to_le_bytes();
    for (j, v) in y[at..at + 8].iter_mut().enumerate() {
        *v = signed(scale * f32::from(bytes[j]), signs, j);
    }
}

/// IQ2_XXS: `d: f16, qs: [u16; 32]` (256 values, 66 bytes). Per 32 values two u32: four grid
/// indices (bytes) and four 7-bit sign indices plus a 4-bit scale in the top bits.
pub(super) fn decode_iq2_xxs(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for ib in 0..8 {
        let (grid, aux) = (u32_at(b, 2 + 8 * ib), u32_at(b, 6 + 8 * ib));
        let db = d * (0.5 + (aux >> 28) as f32) * 0.25;
        for l in 0..4 {
            let entry = IQ2XXS_GRID[(grid >> (8 * l)) as u8 as usize];
            let signs = KSIGNS_IQ2XS[((aux >> (7 * l)) & 127) as usize];
            put8(y, 32 * ib + 8 * l, db, entry, signs);
        }
    }
}

/// IQ2_XS: `d: f16, qs: [u16; 32], scales: [u8; 8]` (74 bytes). Each u16 is a 9-bit grid index
/// and a 7-bit sign index; each scale byte holds two 4-bit scales of 16 values.
pub(super) fn decode_iq2_xs(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for ib in 0..8 {
        let s = b[66 + ib];
        let db = [d * (0.5 + f32::from(s & 0x0f)) * 0.25, d * (0.5 + f32::from(s >> 4)) * 0.25];
        for l in 0..4 {
            let q = u16_at(b, 2 + 2 * (4 * ib + l));
            let entry = IQ2XS_GRID[usize::from(q & 511)];
            let signs = KSIGNS_IQ2XS[usize::from(q >> 9)];
            put8(y, 32 * ib + 8 * l, db[l / 2], entry, signs);
        }
    }
}

/// IQ2_S: `d: f16, qs: [u8; 32], signs: [u8; 32], qh: [u8; 8], scales: [u8; 8]` (82 bytes).
/// Grid indices of 10 bits (8 in `qs`, 2 in `qh`), explicit sign bytes.
pub(super) fn decode_iq2_s(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let (qs, signs, qh, scales) = (&b[2..34], &b[34..66], &b[66..74], &b[74..82]);
    for ib in 0..8 {
        let s = scales[ib];
        let db = [d * (0.5 + f32::from(s & 0x0f)) * 0.25, d * (0.5 + f32::from(s >> 4)) * 0.25];
        for l in 0..4 {
            let index = usize::from(qs[4 * ib + l]) | ((usize::from(qh[ib]) << (8 - 2 * l)) & 0x300);
            put8(y, 32 * ib + 8 * l, db[l / 2], IQ2S_GRID[index], signs[4 * ib + l]);
        }
    }
}

/// IQ3_XXS: `d: f16, qs: [u8; 64], scales_and_signs: [u32; 8]` (98 bytes). Each byte of `qs`
/// indexes a 4-value grid point; per 32 values a u32 holds four 7-bit sign indices and a scale.
pub(super) fn decode_iq3_xxs(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..66];
    for ib in 0..8 {
        let aux = u32_at(b, 66 + 4 * ib);
        let db = d * (0.5 + (aux >> 28) as f32) * 0.5;
        for l in 0..4 {
            let signs = KSIGNS_IQ2XS[((aux >> (7 * l)) & 127) as usize];
            let grid = [IQ3XXS_GRID[usize::from(qs[8 * ib + 2 * l])], IQ3XXS_GRID[usize::from(qs[8 * ib + 2 * l + 1])]];
            let out = &mut y[32 * ib + 8 * l..32 * ib + 8 * l + 8];
            for (j, v) in out.iter_mut().enumerate() {
                let entry = u64::from(grid[j / 4]);
                *v = signed(db * f32::from(byte(entry, j % 4)), signs, j);
            }
        }
    }
}

/// IQ3_S: `d: f16, qs: [u8; 64], qh: [u8; 8], signs: [u8; 32], scales: [u8; 4]` (110 bytes).
/// Grid indices of 9 bits (8 in `qs`, 1 in `qh`), explicit sign bytes, odd scales `1 + 2s`.
pub(super) fn decode_iq3_s(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let (qs, qh, signs, scales) = (&b[2..66], &b[66..74], &b[74..106], &b[106..110]);
    for ib in 0..8 {
        let s = scales[ib / 2] >> (4 * (ib % 2)) & 0x0f;
        let db = d * f32::from(1 + 2 * s);
        for l in 0..4 {
            let index = |k: usize| usize::from(qs[8 * ib + k]) | (usize::from((qh[ib] >> k) & 1) << 8);
            let grid = [IQ3S_GRID[index(2 * l)], IQ3S_GRID[index(2 * l + 1)]];
            let sign = signs[4 * ib + l];
            let out = &mut y[32 * ib + 8 * l..32 * ib + 8 * l + 8];
            for (j, v) in out.iter_mut().enumerate() {
                let entry = u64::from(grid[j / 4]);
                *v = signed(db * f32::from(byte(entry, j % 4)), sign, j);
            }
        }
    }
}

/// Eight values `scale · (grid[j] + delta)` of one IQ1 grid point (int8 bytes −1, 0, 1).
#[inline]
fn put8_iq1(y: &mut [f32], scale: f32, index: usize, delta: f32) {
    let entry = IQ1S_GRID[index];
    for (j, v) in y.iter_mut().take(8).enumerate() {
        *v = scale * (f32::from(byte(entry, j) as i8) + delta);
    }
}

/// IQ1_S: `d: f16, qs: [u8; 32], qh: [u16; 8]` (50 bytes). Per 32 values a u16 holds four 3-bit
/// high parts of the 11-bit grid indices, a 3-bit scale and the sign of the offset.
pub(super) fn decode_iq1_s(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..34];
    for ib in 0..8 {
        let qh = u16_at(b, 34 + 2 * ib);
        let dl = d * f32::from(2 * ((qh >> 12) & 7) + 1);
        let delta = if qh & 0x8000 != 0 { -IQ1S_DELTA } else { IQ1S_DELTA };
        for l in 0..4 {
            let index = usize::from(qs[4 * ib + l]) | (usize::from((qh >> (3 * l)) & 7) << 8);
            put8_iq1(&mut y[32 * ib + 8 * l..], dl, index, delta);
        }
    }
}

/// IQ1_M: `qs: [u8; 32], qh: [u8; 16], scales: [u16; 4]` (56 bytes). The f16 super-block scale
/// is spread over the top nibbles of the four scale words; each word also holds four 3-bit
/// scales of 16 values. Each `qh` byte holds two 3-bit index high parts and two offset signs.
pub(super) fn decode_iq1_m(b: &[u8], y: &mut [f32]) {
    let (qs, qh) = (&b[0..32], &b[32..48]);
    let sc = [u16_at(b, 48), u16_at(b, 50), u16_at(b, 52), u16_at(b, 54)];
    let bits = (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000);
    let d = half::f16::from_bits(bits).to_f32();
    for ib in 0..8 {
        let word = sc[ib / 2];
        let shift = 6 * (ib % 2);
        let dl = [d * f32::from(2 * ((word >> shift) & 7) + 1), d * f32::from(2 * ((word >> (shift + 3)) & 7) + 1)];
        for l in 0..4 {
            let h = qh[2 * ib + l / 2];
            let (high, negative) =
                if l % 2 == 0 { (h & 0x07, h & 0x08 != 0) } else { ((h >> 4) & 0x07, h & 0x80 != 0) };
            let index = usize::from(qs[4 * ib + l]) | (usize::from(high) << 8);
            let delta = if negative { -IQ1S_DELTA } else { IQ1S_DELTA };
            put8_iq1(&mut y[32 * ib + 8 * l..], dl[l / 2], index, delta);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_bytes(v: f32) -> [u8; 2] {
        half::f16::from_f32(v).to_le_bytes()
    }

    #[test]
    fn iq2_xxs_hand_values() {
        let mut b = [0u8; 66];
        b[0..2].copy_from_slice(&f16_bytes(2.0));
        b[2] = 1; // first point: grid entry 1 = [0x2b, 8, 8, 8, 8, 8, 8, 8] (byte 0 is the low byte)
        // Scale 3 in the top bits; sign index 1 = 0b1000_0001: values 0 and 7 negative.
        b[6..10].copy_from_slice(&((3u32 << 28) | 1).to_le_bytes());
        let mut y = [0.0; 256];
        decode_iq2_xxs(&b, &mut y);
        let db = 2.0 * 3.5 * 0.25;
        assert_eq!(&y[..8], &[-db * 43.0, db * 8.0, db * 8.0, db * 8.0, db * 8.0, db * 8.0, db * 8.0, -db * 8.0]);
        assert_eq!(y[32], 2.0 * 0.5 * 0.25 * 8.0); // second sub-block: scale 0, grid 0, no signs
    }

    #[test]
    fn iq1_s_hand_values() {
        let mut b = [0u8; 50];
        b[0..2].copy_from_slice(&f16_bytes(1.0));
        b[2] = 1; // grid entry 1 = [1, -1, -1, ...]
        b[34..36].copy_from_slice(&(0x8000u16 | (2 << 12)).to_le_bytes()); // scale 2·2+1, delta −1/8
        let mut y = [0.0; 256];
        decode_iq1_s(&b, &mut y);
        assert_eq!((y[0], y[1]), (5.0 * (1.0 - 0.125), 5.0 * (-1.0 - 0.125)));
    }

    #[test]
    fn iq1_m_scale_is_gathered_from_four_nibbles() {
        let mut b = [0u8; 56];
        let d = half::f16::from_f32(0.75).to_bits();
        for (k, at) in [48, 50, 52, 54].into_iter().enumerate() {
            let nibble = (d >> (4 * k)) & 0xf;
            b[at..at + 2].copy_from_slice(&(nibble << 12).to_le_bytes());
        }
        let mut y = [0.0; 256];
        decode_iq1_m(&b, &mut y);
        // Grid entry 0 is all −1; scales 0 → 1; delta +1/8.
        assert_eq!(y[0], 0.75 * (-1.0 + 0.125));
    }
}
