//! Heatmaps at any level of detail: a rectangular region of a matrix cut into a grid of tiles,
//! each tile summarised by one number — its largest |x| (abs-max), its mean or its value of
//! largest magnitude with the sign kept (signed views), its root mean square, or its largest
//! |x| · importance of the column (salience) — with row and column profiles of the region. A view
//! asks for the region on screen at the screen's resolution; at the deepest zoom a tile is one
//! weight and its number is that weight, exactly.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::{AnalysisError, Cancel};
use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::compute::{Backend, Provenance, TensorRef, TileRegion, TileSummary, ValueSource};

/// What a tile's number is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// max |x|.
    Absmax,
    /// The mean (signed).
    Mean,
    /// The value of largest |x|, sign kept.
    Extreme,
    /// sqrt(mean x²).
    Rms,
    /// max |x| · |importance of the column|.
    Salience,
}

impl Mode {
    /// Whether the numbers carry a sign (drawn with a diverging colormap centred on zero).
    pub fn signed(self) -> bool {
        matches!(self, Mode::Mean | Mode::Extreme)
    }

    /// A short label.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Absmax => "abs-max",
            Mode::Mean => "signed mean",
            Mode::Extreme => "signed extreme",
            Mode::Rms => "rms",
            Mode::Salience => "salience",
        }
    }
}

/// Tiles a side, at most, of the map of a whole matrix (the view's base map, and a report's).
pub const BASE_GRID: usize = 256;

/// Rows and columns per tile of the base map of a `rows` × `cols` matrix.
pub fn base_tile(rows: usize, cols: usize) -> (usize, usize) {
    (rows.div_ceil(BASE_GRID).max(1), cols.div_ceil(BASE_GRID).max(1))
}

/// The tiles of one region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeatmapTiles {
    /// The tensor.
    pub name: String,
    /// Its matrix shape (rows, columns).
    pub shape: [usize; 2],
    /// The rows of the region.
    pub rows: Range<usize>,
    /// The columns of the region.
    pub cols: Range<usize>,
    /// What each number is.
    pub mode: Mode,
    /// Rows per tile (the last tile of the region may have fewer).
    pub tile_rows: usize,
    /// Columns per tile (likewise).
    pub tile_cols: usize,
    /// Tiles down.
    pub grid_rows: usize,
    /// Tiles across.
    pub grid_cols: usize,
    /// One number per tile, row-major; NaN where a tile holds no finite value.
    pub values: Vec<f32>,
    /// The same summary over each tile row of the region.
    pub row_profile: Vec<f32>,
    /// The same summary over each tile column of the region.
    pub col_profile: Vec<f32>,
    /// Values that are NaN or ±Inf in the region (left out of every number).
    pub non_finite: u64,
    /// Which backend computed it.
    #[serde(flatten)]
    pub computed: Provenance,
}

impl HeatmapTiles {
    /// The tile holding (row, column), if inside the region.
    pub fn tile_at(&self, row: usize, col: usize) -> Option<usize> {
        if !self.rows.contains(&row) || !self.cols.contains(&col) {
            return None;
        }
        Some((row - self.rows.start) / self.tile_rows * self.grid_cols + (col - self.cols.start) / self.tile_cols)
    }

    /// The positions tile `k` covers.
    pub fn tile_span(&self, k: usize) -> (Range<usize>, Range<usize>) {
        let (ti, tj) = (k / self.grid_cols.max(1), k % self.grid_cols.max(1));
        let r0 = self.rows.start + ti * self.tile_rows;
        let c0 = self.cols.start + tj * self.tile_cols;
        (r0..(r0 + self.tile_rows).min(self.rows.end), c0..(c0 + self.tile_cols).min(self.cols.end))
    }

    /// Whether every tile is one weight (its number is the weight itself in the signed modes).
    pub fn single_weights(&self) -> bool {
        self.tile_rows == 1 && self.tile_cols == 1
    }
}

/// The number of mode `mode` of a summary (NaN when it holds no finite value).
pub fn mode_value(t: &TileSummary, mode: Mode) -> f32 {
    if t.count == 0 {
        return f32::NAN;
    }
    match mode {
        Mode::Absmax => t.max_abs,
        Mode::Extreme => t.extreme,
        Mode::Salience => t.salience,
        Mode::Mean => (t.sum / t.count as f64) as f32,
        Mode::Rms => (t.sum_sq / t.count as f64).sqrt() as f32,
    }
}

/// The tiles of rows × cols of `tensor` (a matrix), on a grid of at most `grid` = (down, across)
/// tiles. `importance` (one value per column of the whole matrix) is needed for salience.
#[allow(clippy::too_many_arguments)]
pub fn heatmap(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    tensor: &TensorInfo,
    rows: Range<usize>,
    cols: Range<usize>,
    grid: (usize, usize),
    mode: Mode,
    importance: Option<&[f32]>,
    cancel: &Cancel,
) -> Result<HeatmapTiles, AnalysisError> {
    let mut maps = heatmaps(backend, ckpt, tensor, rows, cols, grid, &[mode], importance, cancel)?;
    // One mode asked for, one map made.
    maps.pop().ok_or_else(|| {
        crate::compute::ComputeError::Shape { tensor: tensor.name.clone(), message: "no map was made".into() }.into()
    })
}

/// The maps of several `modes` of one region, from one pass over it (as [`heatmap`]).
#[allow(clippy::too_many_arguments)]
pub fn heatmaps(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    tensor: &TensorInfo,
    rows: Range<usize>,
    cols: Range<usize>,
    grid: (usize, usize),
    modes: &[Mode],
    importance: Option<&[f32]>,
    cancel: &Cancel,
) -> Result<Vec<HeatmapTiles>, AnalysisError> {
    let src = TensorRef::new(ckpt, tensor);
    let shape_error = |message: String| crate::compute::ComputeError::Shape { tensor: tensor.name.clone(), message };
    if !src.is_matrix() {
        return Err(shape_error("a heatmap needs a matrix".into()).into());
    }
    let (n_rows, n_cols) = src.matrix_shape();
    if rows.start >= rows.end || cols.start >= cols.end || rows.end > n_rows || cols.end > n_cols {
        return Err(
            shape_error(format!("rows {rows:?} and columns {cols:?} are not a region of {n_rows} × {n_cols}")).into()
        );
    }
    let salience = modes.contains(&Mode::Salience);
    if salience && importance.is_none_or(|v| v.len() != n_cols) {
        return Err(shape_error(format!("salience needs one importance per column ({n_cols})")).into());
    }
    let (tile_rows, tile_cols) = (rows.len().div_ceil(grid.0.max(1)).max(1), cols.len().div_ceil(grid.1.max(1)).max(1));
    let region = TileRegion { rows: rows.clone(), cols: cols.clone(), tile_rows, tile_cols };
    let (grid_rows, grid_cols) = (region.grid_rows(), region.grid_cols());
    let importance = if salience { importance } else { None };
    let ran = backend.region_tiles(&src, &region, importance, cancel)?;
    let tiles = ran.value;
    let mut row_sums = Vec::with_capacity(grid_rows);
    let mut col_sums = vec![TileSummary::default(); grid_cols];
    let mut non_finite = 0;
    for band in tiles.chunks_exact(grid_cols.max(1)) {
        let mut whole = TileSummary::default();
        for (j, t) in band.iter().enumerate() {
            whole.merge(t);
            col_sums[j].merge(t);
        }
        non_finite += whole.non_finite;
        row_sums.push(whole);
    }
    let map = |mode: Mode| HeatmapTiles {
        name: tensor.name.clone(),
        shape: [n_rows, n_cols],
        rows: rows.clone(),
        cols: cols.clone(),
        mode,
        tile_rows,
        tile_cols,
        grid_rows,
        grid_cols,
        values: tiles.iter().map(|t| mode_value(t, mode)).collect(),
        row_profile: row_sums.iter().map(|t| mode_value(t, mode)).collect(),
        col_profile: col_sums.iter().map(|t| mode_value(t, mode)).collect(),
        non_finite,
        computed: ran.on.clone(),
    };
    Ok(modes.iter().map(|&m| map(m)).collect())
}

/// A region `a..b` from text `A..B` (end exclusive), checked against `len`.
pub fn parse_range(text: &str, len: usize) -> Result<Range<usize>, String> {
    let (a, b) = text.split_once("..").ok_or_else(|| format!("`{text}` is not a range A..B"))?;
    let parse = |s: &str, default: usize| -> Result<usize, String> {
        if s.trim().is_empty() { Ok(default) } else { s.trim().parse().map_err(|e| format!("`{s}`: {e}")) }
    };
    let (a, b) = (parse(a, 0)?, parse(b, len)?);
    if a >= b || b > len {
        return Err(format!("{a}..{b} is not a non-empty range within 0..{len}"));
    }
    Ok(a..b)
}
