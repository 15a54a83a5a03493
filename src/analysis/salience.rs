//! Salience maps: |W| scaled by a per-input-channel importance, tiled for a heatmap.
//!
//! Weight-only importance is each input column's L2 norm; activation-aware importance comes from
//! a loaded vector (llama.cpp imatrix: the mean of squared activations per input channel), as
//! AWQ-style methods weigh weights by the activations they multiply.

use serde::{Deserialize, Serialize};

use super::{AnalysisError, Cancel};
use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::compute::{Backend, Provenance, TensorRef, ValueSource};

/// Where an importance vector came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportanceSource {
    /// Column L2 norms of the weight itself.
    ColumnNorms,
    /// An imported vector (file name).
    Imported(String),
}

/// A tiled salience map of a matrix `[rows, cols]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// Which backend computed it (both kernels: the column norms, when used, and the tiles).
    #[serde(flatten)]
    pub computed: Provenance,
}

/// Computes the salience map of `tensor` on `backend`; `importance` (one value per column)
/// replaces the column norms when given.
pub fn salience_map(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    tensor: &TensorInfo,
    importance: Option<(&[f32], String)>,
    max_grid: usize,
    cancel: &Cancel,
) -> Result<SalienceMap, AnalysisError> {
    let t = TensorRef::new(ckpt, tensor);
    let (rows, cols) = t.matrix_shape();
    let (importance, source, norms_on) = match importance {
        Some((v, name)) => (v.to_vec(), ImportanceSource::Imported(name), None),
        None => {
            let c = backend.channels(&t, 1, cancel)?;
            (c.value.col_l2.iter().map(|&n| n as f32).collect(), ImportanceSource::ColumnNorms, Some(c.on))
        }
    };
    let ran = backend.salience_tiles(&t, &importance, max_grid, cancel)?;
    let computed = match norms_on {
        Some(on) => on.merge(&ran.on),
        None => ran.on,
    };
    let map = ran.value;
    Ok(SalienceMap {
        name: tensor.name.clone(),
        source,
        rows,
        cols,
        tile_rows: map.tile_rows,
        tile_cols: map.tile_cols,
        grid_rows: map.grid_rows,
        grid_cols: map.grid_cols,
        tiles: map.values,
        importance,
        computed,
    })
}
