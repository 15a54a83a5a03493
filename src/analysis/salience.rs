//! Salience maps: |W| scaled by a per-input-channel importance, tiled for a heatmap.
//!
//! Weight-only importance is each input column's L2 norm; activation-aware importance comes from
//! a loaded vector (llama.cpp imatrix: the mean of squared activations per input channel), as
//! AWQ-style methods weigh weights by the activations they multiply.

use serde::Serialize;

use super::{AnalysisError, Cancel};
use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::compute::ComputeError;
use crate::compute::cpu::decode_parallel;

/// Where an importance vector came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportanceSource {
    /// Column L2 norms of the weight itself.
    ColumnNorms,
    /// An imported vector (file name).
    Imported(String),
}

/// A tiled salience map of a matrix `[rows, cols]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SalienceMap {
    /// Tensor name.
    pub name: String,
    /// Importance used.
    pub source: ImportanceSource,
    /// Rows and columns of the matrix.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Tile height.
    pub tile_rows: usize,
    /// Tile width.
    pub tile_cols: usize,
    /// Tiles down.
    pub grid_rows: usize,
    /// Tiles across.
    pub grid_cols: usize,
    /// Max of |w_ij| · importance_j per tile, row-major.
    pub tiles: Vec<f32>,
    /// Importance per input column.
    pub importance: Vec<f32>,
}

/// Computes the salience map of `tensor`; `importance` (one value per column) replaces the
/// column norms when given.
pub fn salience_map(
    ckpt: &Checkpoint,
    tensor: &TensorInfo,
    importance: Option<(&[f32], String)>,
    max_grid: usize,
    cancel: &Cancel,
) -> Result<SalienceMap, AnalysisError> {
    let t = crate::compute::TensorRef::new(ckpt, tensor);
    let (rows, cols) = t.matrix_shape();
    if tensor.shape.len() < 2 || rows == 0 || cols == 0 {
        return Err(AnalysisError::Compute(ComputeError::Shape {
            tensor: tensor.name.clone(),
            message: format!("a salience map needs a matrix; the shape is {}", tensor.shape_string()),
        }));
    }
    let values = decode_parallel(t, cancel)?;
    let (importance, source) = match importance {
        Some((v, _)) if v.len() != cols => {
            return Err(AnalysisError::Compute(ComputeError::Shape {
                tensor: tensor.name.clone(),
                message: format!("the importance vector has {} values for {cols} input channels", v.len()),
            }));
        }
        Some((v, name)) => (v.to_vec(), ImportanceSource::Imported(name)),
        None => {
            let mut norms = vec![0f64; cols];
            for row in values.chunks_exact(cols) {
                for (n, &x) in norms.iter_mut().zip(row) {
                    if x.is_finite() {
                        *n += f64::from(x) * f64::from(x);
                    }
                }
            }
            (norms.into_iter().map(|n| n.sqrt() as f32).collect(), ImportanceSource::ColumnNorms)
        }
    };
    let max_grid = max_grid.max(1);
    let (tile_rows, tile_cols) = (rows.div_ceil(max_grid), cols.div_ceil(max_grid));
    let (grid_rows, grid_cols) = (rows.div_ceil(tile_rows), cols.div_ceil(tile_cols));
    let mut tiles = vec![0f32; grid_rows * grid_cols];
    for (r, row) in values.chunks_exact(cols).enumerate() {
        if r % 1024 == 0 && cancel.is_cancelled() {
            return Err(AnalysisError::Cancelled);
        }
        let tr = r / tile_rows;
        for (c, (&x, &s)) in row.iter().zip(&importance).enumerate() {
            if x.is_finite() {
                let v = x.abs() * s.abs();
                let tile = &mut tiles[tr * grid_cols + c / tile_cols];
                *tile = tile.max(v);
            }
        }
    }
    Ok(SalienceMap {
        name: tensor.name.clone(),
        source,
        rows,
        cols,
        tile_rows,
        tile_cols,
        grid_rows,
        grid_cols,
        tiles,
        importance,
    })
}
