//! Heatmaps at any level of detail: a rectangular region of a matrix cut into a grid of tiles,
//! each tile summarised by one number — its largest |x| (abs-max), its mean or its value of
//! largest magnitude with the sign kept (signed views), its root mean square, or its largest
//! |x| · importance of the column (salience) — with row and column profiles of the region. A view
//! asks for the region on screen at the screen's resolution; at the deepest zoom a tile is one
//! weight and its number is that weight, exactly.

use std::ops::Range;

use rayon::prelude::*;
use serde::Serialize;

use super::{AnalysisError, Cancel};
use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::compute::cpu::CpuBackend;
use crate::compute::{Backend, Provenance, TensorRef, ValueSource};

/// What a tile's number is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
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

/// The tiles of one region.
#[derive(Clone, Debug, PartialEq, Serialize)]
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

/// Running summaries of one tile.
#[derive(Clone, Copy, Debug, Default)]
struct Acc {
    max_abs: f32,
    extreme: f32,
    salience: f32,
    sum: f64,
    sum_sq: f64,
    count: u64,
    non_finite: u64,
}

impl Acc {
    fn push(&mut self, x: f32, importance: f32) {
        if !x.is_finite() {
            self.non_finite += 1;
            return;
        }
        let a = x.abs();
        // The first of equal magnitudes keeps its place, as in a row-major scan.
        if self.count == 0 || a > self.max_abs {
            self.max_abs = a;
            self.extreme = x;
        }
        self.salience = self.salience.max(a * importance.abs());
        self.sum += f64::from(x);
        self.sum_sq += f64::from(x) * f64::from(x);
        self.count += 1;
    }

    fn merge(&mut self, o: &Acc) {
        if o.count > 0 && (self.count == 0 || o.max_abs > self.max_abs) {
            self.extreme = o.extreme;
        }
        self.max_abs = self.max_abs.max(o.max_abs);
        self.salience = self.salience.max(o.salience);
        self.sum += o.sum;
        self.sum_sq += o.sum_sq;
        self.count += o.count;
        self.non_finite += o.non_finite;
    }

    fn value(&self, mode: Mode) -> f32 {
        if self.count == 0 {
            return f32::NAN;
        }
        match mode {
            Mode::Absmax => self.max_abs,
            Mode::Extreme => self.extreme,
            Mode::Salience => self.salience,
            Mode::Mean => (self.sum / self.count as f64) as f32,
            Mode::Rms => (self.sum_sq / self.count as f64).sqrt() as f32,
        }
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
    if mode == Mode::Salience && importance.is_none_or(|v| v.len() != n_cols) {
        return Err(shape_error(format!("salience needs one importance per column ({n_cols})")).into());
    }
    let (tile_rows, tile_cols) = (rows.len().div_ceil(grid.0.max(1)).max(1), cols.len().div_ceil(grid.1.max(1)).max(1));
    let (grid_rows, grid_cols) = (rows.len().div_ceil(tile_rows), cols.len().div_ceil(tile_cols));
    let block = src.block_elems().max(1) as usize;
    // One band of tile rows per task: each reads its rows' segments (aligned to whole blocks).
    let bands: Vec<Result<Vec<Acc>, crate::compute::ComputeError>> = (0..grid_rows)
        .into_par_iter()
        .map(|ti| {
            let mut accs = vec![Acc::default(); grid_cols];
            let mut buf = Vec::new();
            let r0 = rows.start + ti * tile_rows;
            for r in r0..(r0 + tile_rows).min(rows.end) {
                if cancel.is_cancelled() {
                    return Err(crate::compute::ComputeError::Cancelled);
                }
                let start = (r * n_cols + cols.start) / block * block;
                let end = ((r * n_cols + cols.end).div_ceil(block) * block).min(n_rows * n_cols);
                src.read(start as u64..end as u64, &mut buf)?;
                let skip = r * n_cols + cols.start - start;
                for (k, &x) in buf[skip..skip + cols.len()].iter().enumerate() {
                    let c = cols.start + k;
                    accs[k / tile_cols].push(x, importance.map_or(0.0, |v| v[c]));
                }
            }
            Ok(accs)
        })
        .collect();
    let mut values = Vec::with_capacity(grid_rows * grid_cols);
    let mut row_profile = Vec::with_capacity(grid_rows);
    let mut col_accs = vec![Acc::default(); grid_cols];
    let mut non_finite = 0;
    for band in bands {
        let band = band?;
        let mut whole = Acc::default();
        for (j, a) in band.iter().enumerate() {
            values.push(a.value(mode));
            whole.merge(a);
            col_accs[j].merge(a);
        }
        non_finite += whole.non_finite;
        row_profile.push(whole.value(mode));
    }
    let mut computed = CpuBackend.provenance();
    if backend.asks_gpu() {
        computed = computed.with_fallback("region tiles run on the CPU only (no WGSL twin yet)");
    }
    Ok(HeatmapTiles {
        name: tensor.name.clone(),
        shape: [n_rows, n_cols],
        rows,
        cols,
        mode,
        tile_rows,
        tile_cols,
        grid_rows,
        grid_cols,
        values,
        row_profile,
        col_profile: col_accs.iter().map(|a| a.value(mode)).collect(),
        non_finite,
        computed,
    })
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
