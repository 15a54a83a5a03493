//! Looking at one tensor's quantization error up close: the tiled map of |W − Ŵ| (max over each
//! tile, with row and column profiles), made from the very decoded values a preview and an export
//! produce; and one row encoded alone, for the levels a group of it was rounded to.

use std::ops::Range;

use serde::Serialize;

use super::preview::{Importance, TensorPreview, encode_tensor};
use super::scheme::{IntGroup, Scheme, rows_cols};
use super::{DiscardBytes, Resolved};
use crate::cancel::Cancel;
use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::compute::kernels::tiling;
use crate::compute::source::SliceSource;
use crate::compute::{Backend, ComputeError, TensorRef, ValueSource};

/// The tiled error map of one tensor under one scheme.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorMap {
    /// The tensor.
    pub name: String,
    /// The scheme.
    pub scheme: String,
    /// Rows and columns of the matrix.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Rows per tile.
    pub tile_rows: usize,
    /// Columns per tile.
    pub tile_cols: usize,
    /// Tiles down.
    pub grid_rows: usize,
    /// Tiles across.
    pub grid_cols: usize,
    /// max |W − Ŵ| per tile, row-major.
    pub tiles: Vec<f32>,
    /// max |W − Ŵ| per row.
    pub row_max: Vec<f32>,
    /// max |W − Ŵ| per column.
    pub col_max: Vec<f32>,
    /// The row the preview reports for the same encoding.
    pub preview: TensorPreview,
}

/// The error map of `tensor` under `resolved`, on a grid of at most `grid` tiles per side: the
/// tensor is encoded as a preview would (same encoder, same backend), and each chunk of decoded
/// values is compared with the stored values of the same positions as it arrives.
pub fn error_map(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    tensor: &TensorInfo,
    resolved: &Resolved,
    importance: Option<&Importance>,
    grid: usize,
    cancel: &Cancel,
) -> Result<ErrorMap, ComputeError> {
    let (rows, cols) = rows_cols(&tensor.shape).ok_or_else(|| ComputeError::Shape {
        tensor: tensor.name.clone(),
        message: "an error map needs a matrix".into(),
    })?;
    let (rows, cols) = (rows as usize, cols as usize);
    let (tile_rows, tile_cols, grid_rows, grid_cols) = tiling(rows, cols, grid);
    let mut tiles = vec![0f32; grid_rows * grid_cols];
    let mut row_max = vec![0f32; rows];
    let mut col_max = vec![0f32; cols];
    let src = TensorRef::new(ckpt, tensor);
    let mut original = Vec::new();
    let mut compare = |first: u64, decoded: &[f32]| -> Result<(), ComputeError> {
        let range: Range<u64> = first..first + decoded.len() as u64;
        src.read(range, &mut original)?;
        for (k, (w, v)) in original.iter().zip(decoded).enumerate() {
            let at = first as usize + k;
            let (r, c) = (at / cols, at % cols);
            let e = (w - v).abs();
            // NaN errors (a NaN weight) count as the largest.
            let e = if e.is_nan() { f32::INFINITY } else { e };
            let t = &mut tiles[(r / tile_rows) * grid_cols + c / tile_cols];
            *t = t.max(e);
            row_max[r] = row_max[r].max(e);
            col_max[c] = col_max[c].max(e);
        }
        Ok(())
    };
    let preview = encode_tensor(
        backend,
        ckpt,
        tensor,
        &src,
        resolved,
        importance,
        &mut DiscardBytes,
        Some(&mut compare),
        cancel,
    )?;
    Ok(ErrorMap {
        name: tensor.name.clone(),
        scheme: resolved.scheme.clone(),
        rows,
        cols,
        tile_rows,
        tile_cols,
        grid_rows,
        grid_cols,
        tiles,
        row_max,
        col_max,
        preview,
    })
}

/// Values a scheme rounds together along a row (a block, a group, the whole row), when every
/// row is encoded on its own — so one row encoded alone gives what the whole tensor gives it.
pub fn row_group(scheme: &Scheme, cols: u64) -> Option<u64> {
    match scheme {
        Scheme::Ggml(d) => Some(d.block_elems() as u64),
        Scheme::Int { group: IntGroup::Size(n), .. } => Some(*n as u64),
        Scheme::Int { group: IntGroup::Channel, .. } | Scheme::Fp8 { per_channel: true } => Some(cols),
        Scheme::Nf4 if cols.is_multiple_of(crate::quant::scheme::NF4_BLOCK as u64) => {
            Some(crate::quant::scheme::NF4_BLOCK as u64)
        }
        _ => None,
    }
}

/// One row of a matrix and its decoded values under a scheme.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RowLevels {
    /// The row.
    pub row: usize,
    /// Values rounded together (see [`row_group`]).
    pub group: usize,
    /// The stored values.
    pub values: Vec<f32>,
    /// The decoded values.
    pub decoded: Vec<f32>,
}

impl RowLevels {
    /// The distinct levels group `g` of the row was rounded to, ascending, and its values.
    pub fn group_levels(&self, g: usize) -> (Vec<f32>, &[f32]) {
        let start = (g * self.group).min(self.values.len());
        let end = (start + self.group).min(self.values.len());
        let mut levels: Vec<f32> = self.decoded[start..end].to_vec();
        levels.sort_by(f32::total_cmp);
        levels.dedup();
        (levels, &self.values[start..end])
    }
}

/// Row `row` of `tensor` encoded alone with `resolved` (exact for the schemes [`row_group`]
/// names: their rows are encoded independently). Importance from an imatrix is used as the
/// preview uses it; column norms would differ on one row and are left out.
pub fn encode_row(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    tensor: &TensorInfo,
    resolved: &Resolved,
    importance: Option<&Importance>,
    row: usize,
    cancel: &Cancel,
) -> Result<RowLevels, ComputeError> {
    let shape_error = |m: String| ComputeError::Shape { tensor: tensor.name.clone(), message: m };
    let (rows, cols) = rows_cols(&tensor.shape).ok_or_else(|| shape_error("a row needs a matrix".into()))?;
    let group = row_group(&resolved.parsed, cols)
        .ok_or_else(|| shape_error(format!("`{}` does not encode rows on their own", resolved.scheme)))?;
    if row as u64 >= rows {
        return Err(shape_error(format!("row {row} of {rows}")));
    }
    let mut values = Vec::new();
    TensorRef::new(ckpt, tensor).read(row as u64 * cols..(row as u64 + 1) * cols, &mut values)?;
    let one = TensorInfo { shape: vec![1, cols], bytes: tensor.bytes / rows.max(1), ..tensor.clone() };
    let src = SliceSource::new(tensor.name.clone(), &[1, cols], &values)?;
    let importance = importance.filter(|i| matches!(i, Importance::Imatrix(..)));
    let mut decoded = Vec::with_capacity(values.len());
    let mut keep = |_: u64, v: &[f32]| -> Result<(), ComputeError> {
        decoded.extend_from_slice(v);
        Ok(())
    };
    encode_tensor(backend, ckpt, &one, &src, resolved, importance, &mut DiscardBytes, Some(&mut keep), cancel)?;
    Ok(RowLevels { row, group: group as usize, values, decoded })
}
