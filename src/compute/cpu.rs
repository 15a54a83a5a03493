//! The CPU backend (rayon): the reference implementation of every kernel.
//!
//! A tensor whose f32 values fit in [`RESIDENT_LIMIT_BYTES`] is decoded once, in parallel, into
//! host memory and every pass runs over it; a larger one is decoded again for each pass, a chunk
//! at a time. Either way peak memory stays within one tensor's f32 size plus per-thread buffers.
//! The statistics of 8- and 16-bit scalar tensors skip the decode: [`super::patterns`] counts
//! their bit patterns in one pass over the stored bytes.

use std::borrow::Cow;

use rayon::prelude::*;

use super::kernels::{self, MOMENT_BLOCK};
use super::patterns;
use super::{
    Backend, BackendInfo, ChannelResult, ComputeError, Gram, HistogramCounts, Moments, RtnResult, RtnSpec,
    StatsRequest, StatsResult, TensorRef, TileMap,
};
use crate::cancel::Cancel;
use crate::checkpoint::DEFAULT_CHUNK_ELEMS;

/// Largest tensor (in f32 bytes) decoded once and kept in memory for all passes.
pub const RESIDENT_LIMIT_BYTES: u64 = 2 << 30;

/// Moment blocks computed by one rayon task.
const BLOCKS_PER_TASK: usize = 16;

/// The rayon CPU backend.
#[derive(Clone, Debug, Default)]
pub struct CpuBackend;

/// A tensor's values as the CPU kernels see them.
pub enum Values<'a> {
    /// Decoded once into memory (or borrowed from a caller that already holds the values).
    Resident(Cow<'a, [f32]>),
    /// Decoded chunk by chunk on each pass.
    Streamed(TensorRef<'a>),
}

impl<'a> Values<'a> {
    /// Decodes `t` into memory when it fits the resident limit, else streams it.
    pub fn load(t: TensorRef<'a>, cancel: &Cancel) -> Result<Self, ComputeError> {
        // F32 little-endian bytes that are 4-aligned in the map are used in place: no copy.
        #[cfg(target_endian = "little")]
        if t.tensor.dtype == crate::codec::DType::F32
            && let Ok(values) = bytemuck::try_cast_slice::<u8, f32>(t.ckpt.raw_bytes(t.tensor))
            && values.len() as u64 == t.tensor.numel()
        {
            return Ok(Values::Resident(Cow::Borrowed(values)));
        }
        if t.tensor.numel() * 4 > RESIDENT_LIMIT_BYTES {
            return Ok(Values::Streamed(t));
        }
        Ok(Values::Resident(Cow::Owned(decode_parallel(t, cancel)?)))
    }

    /// Runs `f(first_element_index, block)` over blocks of `block` values (the last may be
    /// shorter), in parallel, returning the results in block order. `block` must be a multiple
    /// of the tensor's storage block.
    pub fn par_blocks<R: Send>(
        &self,
        block: usize,
        cancel: &Cancel,
        f: impl Fn(usize, &[f32]) -> R + Sync + Send,
    ) -> Result<Vec<R>, ComputeError> {
        match self {
            Values::Resident(v) => v
                .par_chunks(block.max(1))
                .enumerate()
                .map(
                    |(i, chunk)| {
                        if cancel.is_cancelled() { Err(ComputeError::Cancelled) } else { Ok(f(i * block, chunk)) }
                    },
                )
                .collect(),
            Values::Streamed(t) => {
                let ranges: Vec<_> = t.ckpt.chunks(t.tensor, block as u64).collect();
                ranges
                    .par_iter()
                    .map(|range| {
                        if cancel.is_cancelled() {
                            return Err(ComputeError::Cancelled);
                        }
                        let mut buf = Vec::new();
                        t.ckpt.decode_range(t.tensor, range.clone(), &mut buf)?;
                        Ok(f(range.start as usize, &buf))
                    })
                    .collect()
            }
        }
    }
}

/// Decodes a whole tensor to f32 with all threads, a chunk per task.
pub fn decode_parallel(t: TensorRef<'_>, cancel: &Cancel) -> Result<Vec<f32>, ComputeError> {
    let n = t.tensor.numel() as usize;
    let mut out = vec![0f32; n];
    let step = t.ckpt.chunks(t.tensor, DEFAULT_CHUNK_ELEMS).next().map(|r| (r.end - r.start) as usize).unwrap_or(1);
    out.par_chunks_mut(step.max(1)).enumerate().try_for_each(|(i, dst)| {
        if cancel.is_cancelled() {
            return Err(ComputeError::Cancelled);
        }
        let start = (i * step) as u64;
        let mut buf = Vec::new();
        t.ckpt.decode_range(t.tensor, start..start + dst.len() as u64, &mut buf)?;
        dst.copy_from_slice(&buf);
        Ok(())
    })?;
    Ok(out)
}

/// A block length that is a multiple of the tensor's storage block and near `target`.
fn aligned_block(t: TensorRef<'_>, target: usize) -> usize {
    let b = t.tensor.dtype.block_elems();
    target.div_ceil(b).max(1) * b
}

/// Statistics of values in memory: both passes of the stats kernel.
pub fn stats_of(
    values: &Values<'_>,
    req: &StatsRequest,
    block: usize,
    cancel: &Cancel,
) -> Result<StatsResult, ComputeError> {
    // Tasks of many blocks keep rayon's overhead off the per-block cost; the blocks are merged
    // in their order all the same, so the result does not depend on the task size.
    let per_task = BLOCKS_PER_TASK * block;
    let tasks = values.par_blocks(per_task, cancel, |_, chunk| {
        chunk.chunks(block.max(1)).map(kernels::block_moments).collect::<Vec<_>>()
    })?;
    finish_stats(values, kernels::merge_all(tasks.iter().flatten()), req, cancel)
}

/// Pass 2: histogram and outlier counts, given the moments of pass 1.
fn finish_stats(
    values: &Values<'_>,
    moments: Moments,
    req: &StatsRequest,
    cancel: &Cancel,
) -> Result<StatsResult, ComputeError> {
    let bins = req.bins.max(1);
    let (edges, thresholds) = kernels::histogram_bins(&moments, bins, req.scale);
    let bounds = kernels::sigma_bounds(&moments);
    let pass = |_: usize, chunk: &[f32]| {
        let mut counts = vec![0u64; bins];
        let mut outliers = [0u64; 2];
        kernels::add_histogram_and_outliers(chunk, &thresholds, req.scale, &bounds, &mut counts, &mut outliers);
        (counts, outliers)
    };
    let parts: Vec<(Vec<u64>, [u64; 2])> = values.par_blocks(1 << 16, cancel, pass)?;
    let mut counts = vec![0u64; bins];
    let mut outliers = [0u64; 2];
    for (c, o) in parts {
        counts.iter_mut().zip(&c).for_each(|(a, b)| *a += b);
        outliers[0] += o[0];
        outliers[1] += o[1];
    }
    Ok(StatsResult { moments, histogram: HistogramCounts { scale: req.scale, edges, thresholds, counts }, outliers })
}

impl Backend for CpuBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo { kind: "cpu", device: format!("{} threads (rayon)", rayon::current_num_threads()) }
    }

    fn stats(&self, t: TensorRef<'_>, req: &StatsRequest, cancel: &Cancel) -> Result<StatsResult, ComputeError> {
        // One- and two-byte scalar types: one pass counting bit patterns, no decode.
        let bytes = t.ckpt.raw_bytes(t.tensor);
        if t.tensor.numel() >= patterns::MIN_VALUES
            && t.tensor.dtype.byte_len(t.tensor.numel()) == Some(bytes.len() as u64)
            && let Some(r) = patterns::stats_of_patterns(t.tensor.dtype, bytes, req, cancel)?
        {
            return Ok(r);
        }
        let values = Values::load(t, cancel)?;
        stats_of(&values, req, aligned_block(t, MOMENT_BLOCK), cancel)
    }

    fn channels(&self, t: TensorRef<'_>, max_grid: usize, cancel: &Cancel) -> Result<ChannelResult, ComputeError> {
        let (rows, cols) = t.matrix_shape();
        if t.tensor.shape.len() < 2 || rows == 0 || cols == 0 {
            return Err(ComputeError::Shape {
                tensor: t.tensor.name.clone(),
                message: format!("channel statistics need a matrix; the shape is {}", t.tensor.shape_string()),
            });
        }
        let values = Values::load(t, cancel)?;
        channel_stats(&values, rows, cols, max_grid.max(1), cancel)
    }

    fn gram(&self, t: TensorRef<'_>, cancel: &Cancel) -> Result<Gram, ComputeError> {
        let (rows, cols) = t.matrix_shape();
        if t.tensor.shape.len() < 2 || rows == 0 || cols == 0 {
            return Err(ComputeError::Shape {
                tensor: t.tensor.name.clone(),
                message: format!("a Gram matrix needs a matrix; the shape is {}", t.tensor.shape_string()),
            });
        }
        let values = Values::load(t, cancel)?;
        gram_of(&values, rows, cols, cancel)
    }

    fn salience_tiles(
        &self,
        t: TensorRef<'_>,
        importance: &[f32],
        max_grid: usize,
        cancel: &Cancel,
    ) -> Result<TileMap, ComputeError> {
        let (rows, cols) = check_importance(t, importance)?;
        let (tr, tc, gr, gc) = kernels::tiling(rows, cols, max_grid);
        let values = Values::load(t, cancel)?;
        // Blocks of whole tile-rows, so each block owns its tiles; joined in order.
        let block = tr * cols * (1usize << 16).div_ceil(tr * cols).max(1);
        let parts = values.par_blocks(block, cancel, |start, chunk| {
            let row0 = start / cols;
            let first_tile_row = row0 / tr;
            let tile_rows_here = (chunk.len() / cols).div_ceil(tr);
            let mut tiles = vec![0f32; tile_rows_here * gc];
            kernels::add_salience(chunk, row0 - first_tile_row * tr, cols, importance, (tr, tc, gc), &mut tiles);
            tiles
        })?;
        Ok(TileMap { tile_rows: tr, tile_cols: tc, grid_rows: gr, grid_cols: gc, values: parts.concat() })
    }

    fn quantize_rtn(&self, t: TensorRef<'_>, spec: &RtnSpec, cancel: &Cancel) -> Result<RtnResult, ComputeError> {
        let (_, cols) = t.matrix_shape();
        kernels::check_rtn(t, spec, cols)?;
        let qmax = kernels::rtn_qmax(spec.bits);
        let values = Values::load(t, cancel)?;
        // Blocks of whole groups, in parallel; results joined in order.
        let block = aligned_block(t, (1 << 16) / spec.group * spec.group).max(spec.group);
        let block = block.div_ceil(spec.group) * spec.group;
        let parts = values.par_blocks(block, cancel, |_, chunk| {
            let scales = kernels::rtn_scales(&kernels::group_absmax(chunk, spec.group), qmax);
            let mut codes = Vec::with_capacity(chunk.len());
            let err = kernels::rtn_codes(chunk, spec.group, &scales, qmax, &mut codes);
            (scales, codes, err)
        })?;
        let mut out =
            RtnResult { scales: Vec::new(), codes: Vec::with_capacity(t.tensor.numel() as usize), sq_err: 0.0 };
        for (scales, codes, err) in parts {
            out.scales.extend(scales.iter().map(|&(s, _)| s));
            out.codes.extend(codes);
            out.sq_err += err;
        }
        Ok(out)
    }
}

/// `(rows, cols)` of a matrix whose columns `importance` weighs, or why it does not fit.
pub fn check_importance(t: TensorRef<'_>, importance: &[f32]) -> Result<(usize, usize), ComputeError> {
    let (rows, cols) = t.matrix_shape();
    if t.tensor.shape.len() < 2 || rows == 0 || cols == 0 {
        return Err(ComputeError::Shape {
            tensor: t.tensor.name.clone(),
            message: format!("a salience map needs a matrix; the shape is {}", t.tensor.shape_string()),
        });
    }
    if importance.len() != cols {
        return Err(ComputeError::Shape {
            tensor: t.tensor.name.clone(),
            message: format!("the importance vector has {} values for {cols} input channels", importance.len()),
        });
    }
    Ok((rows, cols))
}

/// Per-row/per-column statistics and the tiled abs-max map, over row blocks.
fn channel_stats(
    values: &Values<'_>,
    rows: usize,
    cols: usize,
    max_grid: usize,
    cancel: &Cancel,
) -> Result<ChannelResult, ComputeError> {
    let tile_rows = rows.div_ceil(max_grid);
    let tile_cols = cols.div_ceil(max_grid);
    let (grid_rows, grid_cols) = (rows.div_ceil(tile_rows), cols.div_ceil(tile_cols));
    // Blocks of whole tile-rows, so tiles never straddle two blocks.
    let rows_per_block = tile_rows * (1usize << 16).div_ceil(cols * tile_rows).max(1);
    let block = rows_per_block * cols;

    struct Part {
        row_abs_max: Vec<f32>,
        row_l2: Vec<f64>,
        row_kurtosis: Vec<f64>,
        col: Vec<Moments>,
        col_abs_max: Vec<f32>,
        tiles: Vec<f32>,
    }
    let parts = values.par_blocks(block, cancel, |_, chunk| {
        let n_rows = chunk.len() / cols;
        let mut p = Part {
            row_abs_max: Vec::with_capacity(n_rows),
            row_l2: Vec::with_capacity(n_rows),
            row_kurtosis: Vec::with_capacity(n_rows),
            col: vec![Moments::empty(); cols],
            col_abs_max: vec![0.0; cols],
            tiles: vec![0.0; n_rows.div_ceil(tile_rows) * grid_cols],
        };
        for (r, row) in chunk.chunks_exact(cols).enumerate() {
            let m = kernels::block_moments(row);
            let abs_max = row.iter().fold(0f32, |a, &x| if x.is_finite() { a.max(x.abs()) } else { a });
            let l2 = row.iter().filter(|x| x.is_finite()).map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
            p.row_abs_max.push(abs_max);
            p.row_l2.push(l2);
            p.row_kurtosis.push(m.kurtosis());
            let tile_row = r / tile_rows;
            for (c, &x) in row.iter().enumerate() {
                if x.is_finite() {
                    let a = x.abs();
                    let col = &mut p.col_abs_max[c];
                    *col = col.max(a);
                    let tile = &mut p.tiles[tile_row * grid_cols + c / tile_cols];
                    *tile = tile.max(a);
                }
            }
        }
        // Column moments: one single-value block per element merged in row order would be slow;
        // instead each column of this block is gathered and summed in two passes.
        let mut column = Vec::with_capacity(n_rows);
        for c in 0..cols {
            column.clear();
            column.extend(chunk.iter().skip(c).step_by(cols));
            p.col[c] = kernels::block_moments(&column);
        }
        p
    })?;

    let mut out = ChannelResult {
        rows,
        cols,
        row_abs_max: Vec::with_capacity(rows),
        row_l2: Vec::with_capacity(rows),
        row_kurtosis: Vec::with_capacity(rows),
        col_abs_max: vec![0.0; cols],
        col_l2: vec![0.0; cols],
        col_kurtosis: vec![0.0; cols],
        tile_rows,
        tile_cols,
        grid_rows,
        grid_cols,
        tile_abs_max: Vec::with_capacity(grid_rows * grid_cols),
    };
    let mut col_moments = vec![Moments::empty(); cols];
    for p in parts {
        out.row_abs_max.extend(p.row_abs_max);
        out.row_l2.extend(p.row_l2);
        out.row_kurtosis.extend(p.row_kurtosis);
        out.tile_abs_max.extend(p.tiles);
        for (c, (abs_max, m)) in p.col_abs_max.iter().zip(&p.col).enumerate() {
            out.col_abs_max[c] = out.col_abs_max[c].max(*abs_max);
            col_moments[c] = kernels::merge_moments(&col_moments[c], m);
        }
    }
    for (c, m) in col_moments.iter().enumerate() {
        // Σx² = m2 + n·mean², from the exact merged moments.
        out.col_l2[c] = (m.m2 + m.n as f64 * m.mean * m.mean).sqrt();
        out.col_kurtosis[c] = m.kurtosis();
    }
    Ok(out)
}

/// The Gram matrix of the smaller side, accumulated in f64 over row blocks with faer.
fn gram_of(values: &Values<'_>, rows: usize, cols: usize, cancel: &Cancel) -> Result<Gram, ComputeError> {
    use faer::Mat;
    let of_columns = cols <= rows;
    let n = rows.min(cols);
    let mut g = Mat::<f64>::zeros(n, n);
    match values {
        Values::Resident(v) if !of_columns => {
            // W Wᵀ over column blocks: gather each block of columns for all rows.
            let bc = 2048.min(cols);
            for c0 in (0..cols).step_by(bc) {
                if cancel.is_cancelled() {
                    return Err(ComputeError::Cancelled);
                }
                let w = (cols - c0).min(bc);
                let b = Mat::<f64>::from_fn(rows, w, |i, j| f64::from(v[i * cols + c0 + j]));
                g += &b * b.transpose();
            }
        }
        Values::Streamed(t) if !of_columns => {
            return Err(ComputeError::Shape {
                tensor: t.tensor.name.clone(),
                message: "a Gram matrix of rows for a tensor too large to hold in memory is not supported".into(),
            });
        }
        _ => {
            // WᵀW over row blocks, sequentially (faer parallelises each product).
            let rows_per_block = (1usize << 21).div_ceil(cols).clamp(1, rows);
            let block_len = rows_per_block * cols;
            let mut accumulate = |chunk: &[f32]| {
                let r = chunk.len() / cols;
                let b = Mat::<f64>::from_fn(r, cols, |i, j| f64::from(chunk[i * cols + j]));
                g += b.transpose() * &b;
            };
            match values {
                Values::Resident(v) => {
                    for chunk in v.chunks(block_len) {
                        if cancel.is_cancelled() {
                            return Err(ComputeError::Cancelled);
                        }
                        accumulate(chunk);
                    }
                }
                Values::Streamed(t) => {
                    let mut buf = Vec::new();
                    for range in t.ckpt.chunks(t.tensor, block_len as u64) {
                        if cancel.is_cancelled() {
                            return Err(ComputeError::Cancelled);
                        }
                        t.ckpt.decode_range(t.tensor, range, &mut buf)?;
                        accumulate(&buf);
                    }
                }
            }
        }
    }
    let mut values_out = Vec::with_capacity(n * n);
    for i in 0..n {
        for j in 0..n {
            values_out.push(g[(i, j)]);
        }
    }
    Ok(Gram { n, of_columns, values: values_out })
}
