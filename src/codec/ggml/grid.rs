//! The affine grid of an encoded block: with a block's scales (and minimums) fixed, the value at
//! position `i` with code `q` is `step[i] · q + offset[i]`, computed by the same f32 operations
//! as the decoders. GPTQ needs this: it fixes a block's scales when it enters the block and then
//! rounds each value on its own, after the error of the values before it has been spread onto it.
//!
//! Codes are signed where the format centres them (Q4_0: stored code − 8), so that the value is
//! always `step · q + offset`; [`set_code`] stores them back in the block's own layout.

use super::{DType, f16_at};
use crate::codec::DTypeError;

/// The formats whose blocks have an affine grid per value.
pub const AFFINE: [DType; 8] =
    [DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q4K, DType::Q5K, DType::Q6K];

/// One block's grid.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockGrid {
    /// Per value: the grid's step.
    pub step: Vec<f32>,
    /// Per value: the value of code 0.
    pub offset: Vec<f32>,
    /// The smallest code.
    pub qmin: i32,
    /// The largest code.
    pub qmax: i32,
}

impl BlockGrid {
    /// The code nearest to `x` at position `i`, and the value it decodes to.
    #[inline]
    pub fn round(&self, i: usize, x: f32) -> (i32, f32) {
        let (step, offset) = (self.step[i], self.offset[i]);
        if step == 0.0 || !x.is_finite() {
            let q = 0i32.clamp(self.qmin, self.qmax);
            return (q, step * q as f32 + offset);
        }
        let q = ((x - offset) / step).round().clamp(self.qmin as f32, self.qmax as f32) as i32;
        (q, step * q as f32 + offset)
    }
}

/// The grid of one block of `dtype` (one of [`AFFINE`]).
pub fn block_grid(dtype: DType, b: &[u8]) -> Result<BlockGrid, DTypeError> {
    if b.len() != dtype.block_bytes() || !AFFINE.contains(&dtype) {
        return Err(DTypeError::Unsupported(dtype));
    }
    let n = dtype.block_elems();
    let same = |step: f32, offset: f32, qmin: i32, qmax: i32| BlockGrid {
        step: vec![step; n],
        offset: vec![offset; n],
        qmin,
        qmax,
    };
    Ok(match dtype {
        DType::Q4_0 => same(f16_at(b, 0), 0.0, -8, 7),
        DType::Q4_1 => same(f16_at(b, 0), f16_at(b, 2), 0, 15),
        DType::Q5_0 => same(f16_at(b, 0), 0.0, -16, 15),
        DType::Q5_1 => same(f16_at(b, 0), f16_at(b, 2), 0, 31),
        DType::Q8_0 => same(f16_at(b, 0), 0.0, -128, 127),
        DType::Q4K | DType::Q5K => {
            let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
            let (sc, m) = super::kquants::scale_min_k4(&b[4..16]);
            let mut g = same(0.0, 0.0, 0, if dtype == DType::Q4K { 15 } else { 31 });
            for i in 0..n {
                g.step[i] = d * f32::from(sc[i / 32]);
                g.offset[i] = -(dmin * f32::from(m[i / 32]));
            }
            g
        }
        _ => {
            // Q6_K: scales per 16 values, d last.
            let d = f16_at(b, 208);
            let mut g = same(0.0, 0.0, -32, 31);
            for i in 0..n {
                g.step[i] = d * f32::from(b[192 + i / 16] as i8);
            }
            g
        }
    })
}

/// Replaces bits `shift..shift + width` of `byte` with `v`.
#[inline]
fn put(byte: &mut u8, shift: u32, width: u32, v: u8) {
    let mask = (((1u16 << width) - 1) as u8) << shift;
    *byte = (*byte & !mask) | ((v << shift) & mask);
}

/// Stores code `q` (within the grid's range) at position `i` of block `b` of `dtype`.
pub fn set_code(dtype: DType, b: &mut [u8], i: usize, q: i32) {
    // The 16 + 16 nibble layout of the legacy types: value j low, j + 16 high.
    let nibble = |b: &mut [u8], at: usize, s: u8| put(&mut b[at + i % 16], 4 * (i / 16) as u32, 4, s);
    let fifth = |b: &mut [u8], at: usize, s: u8| put(&mut b[at + i / 8], (i % 8) as u32, 1, s >> 4);
    match dtype {
        DType::Q4_0 => nibble(b, 2, (q + 8) as u8),
        DType::Q4_1 => nibble(b, 4, q as u8),
        DType::Q5_0 => {
            let s = (q + 16) as u8;
            fifth(b, 2, s);
            nibble(b, 6, s);
        }
        DType::Q5_1 => {
            let s = q as u8;
            fifth(b, 4, s);
            nibble(b, 8, s);
        }
        DType::Q8_0 => b[2 + i] = q as i8 as u8,
        DType::Q4K | DType::Q5K => {
            let (g, l) = (i / 32, i % 32);
            let s = q as u8;
            let qs = if dtype == DType::Q4K { 16 } else { 48 };
            put(&mut b[qs + (g / 2) * 32 + l], 4 * (g % 2) as u32, 4, s);
            if dtype == DType::Q5K {
                put(&mut b[16 + l], g as u32, 1, s >> 4);
            }
        }
        DType::Q6K => {
            let s = (q + 32) as u8;
            let (half, k, l) = (i / 128, (i % 128) / 32, i % 32);
            put(&mut b[half * 64 + (k % 2) * 32 + l], 4 * (k / 2) as u32, 4, s);
            put(&mut b[128 + half * 32 + l], 2 * k as u32, 2, s >> 4);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((s >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.2
            })
            .collect()
    }

    #[test]
    fn the_grid_reproduces_the_decoder_and_set_code_its_layout() {
        for dtype in AFFINE {
            let n = dtype.block_elems();
            for seed in 1..6 {
                let x = row(n, seed);
                let mut bytes = Vec::new();
                super::super::encode_row(dtype, &x, None, &mut bytes).unwrap();
                let mut y = vec![0f32; n];
                super::super::decode_block(dtype, &bytes, &mut y).unwrap();
                let g = block_grid(dtype, &bytes).unwrap();
                // Every decoded value is on the grid, and rounding it finds its own code: storing
                // those codes again gives the same bytes.
                let mut again = bytes.clone();
                for (i, &v) in y.iter().enumerate() {
                    let (q, value) = g.round(i, v);
                    assert_eq!(value, v, "{dtype} seed {seed} value {i}");
                    set_code(dtype, &mut again, i, q);
                }
                assert_eq!(again, bytes, "{dtype} seed {seed}");
                // Arbitrary codes decode to step · q + offset.
                let mut s = seed;
                for i in 0..n {
                    s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    let q = g.qmin + (s >> 16) as i32 % (g.qmax - g.qmin + 1);
                    set_code(dtype, &mut again, i, q);
                }
                super::super::decode_block(dtype, &again, &mut y).unwrap();
                let mut s = seed;
                for (i, &v) in y.iter().enumerate() {
                    s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    let q = g.qmin + (s >> 16) as i32 % (g.qmax - g.qmin + 1);
                    assert_eq!(v, g.step[i] * q as f32 + g.offset[i], "{dtype} {i} code {q}");
                }
            }
        }
        assert!(block_grid(DType::Q2K, &[0u8; 84]).is_err());
    }
}
