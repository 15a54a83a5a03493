//! Tiled maps of matrices: the grid of at most `max_grid × max_grid` tiles, and the per-tile
//! maxima the heatmaps show.

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
