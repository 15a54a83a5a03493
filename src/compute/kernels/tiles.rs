//! Tiled maps of matrices: the grid of at most `max_grid × max_grid` tiles, the per-tile
//! maxima the heatmaps show, and the summaries of a region's tiles at any level of detail.

use crate::compute::TileSummary;

impl TileSummary {
    /// Adds one value (of a column whose importance is `importance`; 0 when there is none).
    /// The first of equal magnitudes stays the extreme, as in a row-major scan.
    pub fn push(&mut self, x: f32, importance: f32) {
        if !x.is_finite() {
            self.non_finite += 1;
            return;
        }
        let a = x.abs();
        if self.count == 0 || a > self.max_abs {
            self.max_abs = a;
            self.extreme = x;
        }
        self.salience = self.salience.max(a * importance.abs());
        self.sum += f64::from(x);
        self.sum_sq += f64::from(x) * f64::from(x);
        self.count += 1;
    }

    /// Adds the summary of values that come after this one's in row-major order.
    pub fn merge(&mut self, o: &TileSummary) {
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
}

/// Adds row `row` of the region (its `values`, the region's columns only) to the tiles of its
/// tile row (`tiles`, `grid_cols` long).
pub fn add_region_row(
    values: &[f32],
    region_cols_start: usize,
    tile_cols: usize,
    importance: Option<&[f32]>,
    tiles: &mut [TileSummary],
) {
    for (k, &x) in values.iter().enumerate() {
        tiles[k / tile_cols].push(x, importance.map_or(0.0, |v| v[region_cols_start + k]));
    }
}

/// Tile sizes and grid of a `rows × cols` matrix cut into at most `max_grid × max_grid` tiles:
/// `(tile_rows, tile_cols, grid_rows, grid_cols)`.
pub fn tiling(rows: usize, cols: usize, max_grid: usize) -> (usize, usize, usize, usize) {
    let (tr, tc) = (rows.div_ceil(max_grid.max(1)).max(1), cols.div_ceil(max_grid.max(1)).max(1));
    (tr, tc, rows.div_ceil(tr), cols.div_ceil(tc))
}

/// Adds the salience of the rows of `block` (row-major, `cols` wide, starting at row `row0`) to
/// `tiles`: per tile, the max of |x| · |importance[column]| in f32.
pub fn add_salience(
    block: &[f32],
    row0: usize,
    cols: usize,
    importance: &[f32],
    (tile_rows, tile_cols, grid_cols): (usize, usize, usize),
    tiles: &mut [f32],
) {
    for (r, row) in block.chunks_exact(cols).enumerate() {
        let base = (row0 + r) / tile_rows * grid_cols;
        for (c, (&x, &s)) in row.iter().zip(importance).enumerate() {
            if x.is_finite() {
                let v = x.abs() * s.abs();
                let tile = &mut tiles[base + c / tile_cols];
                *tile = tile.max(v);
            }
        }
    }
}
