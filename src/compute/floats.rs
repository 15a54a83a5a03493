//! Float formats a tensor can be re-encoded in — f16, bf16, FP8 E4M3 with scales
//! (compressed-tensors' float8), bitsandbytes' NF4 — and their CPU kernel (the reference; the
//! WGSL twin is `shaders/float_encode.wgsl`). Codes go to part 0 of a [`ByteSink`], scales
//! (FP8 per channel, NF4 abs-max) to part 1, before the codes of the same values.

use rayon::prelude::*;

use super::source::{self, shape_error};
use super::{ByteSink, ComputeError, ValueSource};
use crate::cancel::Cancel;
use crate::codec::int::{Arith, GroupError};
use crate::codec::{DType, f8_e4m3_to_f32, fp8_e4m3_code, fp8_e4m3_scale, nf4};

/// A float format.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FloatFormat {
    /// IEEE half precision (round to nearest even).
    F16,
    /// bfloat16 (round to nearest even).
    Bf16,
    /// FP8 E4M3 with one scale for the tensor (`Some(scale)`, from
    /// [`crate::codec::fp8_e4m3_scale`] of its abs-max) or one per row (`None`), computed in
    /// `arith` (the tensor's type).
    Fp8 {
        /// The tensor's scale; per row when `None`.
        tensor_scale: Option<f32>,
        /// The tensor's arithmetic.
        arith: Arith,
    },
    /// NF4 in flat blocks of 64 with an f32 abs-max each; decoded values rounded to `arith`.
    Nf4 {
        /// The tensor's arithmetic.
        arith: Arith,
    },
}

impl FloatFormat {
    /// Values that must stay together in one batch: whole rows (FP8 per channel, and the
    /// importance's columns), whole NF4 blocks.
    pub fn unit(&self, cols: u64) -> u64 {
        match self {
            FloatFormat::Nf4 { .. } => source::lcm(cols, nf4::BLOCK as u64),
            _ => cols,
        }
    }

    /// Encodes values that start a row (and an NF4 block) and hold whole rows (but for the
    /// tensor's last NF4 block): `(codes, side, decoded)`.
    #[inline(always)]
    pub fn encode_tile(&self, values: &[f32], cols: usize) -> (Vec<u8>, Vec<u8>, Vec<f32>) {
        let mut y = vec![0f32; values.len()];
        let mut side = Vec::new();
        let codes = match *self {
            FloatFormat::F16 | FloatFormat::Bf16 => {
                let d = if *self == FloatFormat::F16 { DType::F16 } else { DType::BF16 };
                let mut b = Vec::with_capacity(values.len() * 2);
                // Infallible for F16/BF16 by construction.
                let _ = crate::codec::encode(d, values, &mut b);
                let _ = crate::codec::decode(d, &b, &mut y);
                b
            }
            FloatFormat::Nf4 { arith } => {
                let mut idx = Vec::with_capacity(values.len());
                for block in values.chunks(nf4::BLOCK) {
                    let start = idx.len();
                    let a = nf4::encode_block(block, block.len() == nf4::BLOCK, &mut idx);
                    for (k, &i) in idx[start..].iter().enumerate() {
                        y[start + k] = arith.round(nf4::decode(i, a));
                    }
                    side.extend_from_slice(&a.to_le_bytes());
                }
                let mut packed = Vec::with_capacity(idx.len() / 2);
                nf4::pack(&idx, &mut packed);
                packed
            }
            FloatFormat::Fp8 { tensor_scale, arith } => {
                let mut codes = Vec::with_capacity(values.len());
                for (r, row) in values.chunks(cols).enumerate() {
                    let scale = match tensor_scale {
                        Some(s) => s,
                        None => {
                            let s = fp8_e4m3_scale(row.iter().fold(0f32, |m, x| m.max(x.abs())), arith);
                            let _ = crate::codec::encode(arith.dtype(), &[s], &mut side);
                            s
                        }
                    };
                    for (k, &x) in row.iter().enumerate() {
                        let c = fp8_e4m3_code(x, scale, arith);
                        codes.push(c);
                        y[r * cols + k] = arith.round(f8_e4m3_to_f32(c) * scale);
                    }
                }
                codes
            }
        };
        (codes, side, y)
    }
}

/// The row length of `src` for a float format (the whole tensor is one row for a vector).
pub(crate) fn begin_float(
    src: &dyn ValueSource,
    format: &FloatFormat,
    importance: Option<&[f32]>,
    sink: &mut dyn ByteSink,
) -> Result<usize, ComputeError> {
    let cols = match src.shape() {
        [] => 1,
        [.., c] => *c as usize,
    };
    if matches!(format, FloatFormat::Fp8 { .. } | FloatFormat::Nf4 { .. }) && !src.is_matrix() {
        return Err(shape_error(src, "FP8 and NF4 take matrices"));
    }
    if let Some(imp) = importance
        && imp.len() != cols
    {
        return Err(shape_error(
            src,
            format!("the importance vector has {} values for {cols} input channels", imp.len()),
        ));
    }
    let n = src.numel();
    sink.begin(match format {
        FloatFormat::F16 | FloatFormat::Bf16 => 2 * n,
        FloatFormat::Fp8 { .. } => n,
        FloatFormat::Nf4 { .. } => n.div_ceil(2),
    })?;
    Ok(cols.max(1))
}

/// The CPU kernel ([`super::Backend::encode_float`]): batches of whole rows and NF4 blocks, split
/// over threads, each tile under a `pulp` dispatch (the same IEEE operations, vectorised).
pub(crate) fn encode_float_cpu(
    src: &dyn ValueSource,
    format: &FloatFormat,
    importance: Option<&[f32]>,
    sink: &mut dyn ByteSink,
    cancel: &Cancel,
) -> Result<GroupError, ComputeError> {
    let cols = begin_float(src, format, importance, sink)?;
    let unit = source::lcm(format.unit(cols as u64), src.block_elems().max(1));
    let (batch, task) = source::batch_and_task(unit);
    let want = sink.wants_decoded();
    let mut total = GroupError::default();
    let mut buf = Vec::new();
    for range in source::chunks(src, batch) {
        if cancel.is_cancelled() {
            return Err(ComputeError::Cancelled);
        }
        let values = source::values_in(src, range.clone(), &mut buf)?;
        let col0 = (range.start % cols as u64) as usize;
        let tiles: Vec<TileOut> = values
            .par_chunks(task)
            .enumerate()
            .map(|(k, tile)| {
                pulp::Arch::new().dispatch(FloatTile {
                    format,
                    tile,
                    cols,
                    col0: (col0 + k * task) % cols,
                    importance,
                    want,
                })
            })
            .collect();
        let mut at = range.start;
        for ((codes, side, y, e), tile) in tiles.into_iter().zip(values.chunks(task)) {
            total.add(&e);
            if !side.is_empty() {
                sink.put(at, 1, &side)?;
            }
            sink.put(at, 0, &codes)?;
            if want {
                sink.decoded(at, &y)?;
            }
            at += tile.len() as u64;
        }
    }
    Ok(total)
}

/// A tile's codes, scales, decoded values (when wanted) and error.
type TileOut = (Vec<u8>, Vec<u8>, Vec<f32>, GroupError);

/// One tile as a `pulp` operation.
struct FloatTile<'a> {
    format: &'a FloatFormat,
    tile: &'a [f32],
    cols: usize,
    col0: usize,
    importance: Option<&'a [f32]>,
    want: bool,
}

impl pulp::WithSimd for FloatTile<'_> {
    type Output = TileOut;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> Self::Output {
        let (codes, side, y) = self.format.encode_tile(self.tile, self.cols);
        let mut e = GroupError::default();
        e.push_slice(self.tile, &y, self.col0, self.cols, self.importance);
        (codes, side, if self.want { y } else { Vec::new() }, e)
    }
}
