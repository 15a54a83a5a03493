//! The CPU backend (rayon): the reference implementation of every kernel.
//!
//! A source whose f32 values fit in [`RESIDENT_LIMIT_BYTES`] is decoded once, in parallel, into
//! host memory and every pass runs over it; a larger one is decoded again for each pass, a chunk
//! at a time. Either way peak memory stays within one tensor's f32 size plus per-thread buffers.
//! The statistics of 8- and 16-bit scalar tensors skip the decode: [`super::patterns`] counts
//! their bit patterns in one pass over the stored bytes.

use std::borrow::Cow;

use rayon::prelude::*;

use super::kernels::{self, MOMENT_BLOCK};
use super::patterns;
use super::source::{self, require_matrix, shape_error};
use super::{
    BackendKind, ChannelResult, CodeSink, ComputeError, Gram, GroupError, GroupParams, HistogramCounts, IntSpec,
    Moments, Provenance, StatsRequest, StatsResult, TileMap, TileRegion, TileSummary, ValueSource,
};
use crate::cancel::Cancel;
use crate::checkpoint::DEFAULT_CHUNK_ELEMS;
use crate::codec::int;

/// Largest tensor (in f32 bytes) decoded once and kept in memory for all passes.
pub const RESIDENT_LIMIT_BYTES: u64 = 2 << 30;

/// Moment blocks computed by one rayon task.
const BLOCKS_PER_TASK: usize = 16;

/// The rayon CPU backend.
#[derive(Clone, Debug, Default)]
pub struct CpuBackend;

/// A source's values as the CPU kernels see them.
pub enum Values<'a> {
    /// Decoded once into memory (or borrowed from a source that already holds f32 values).
    Resident(Cow<'a, [f32]>),
    /// Read chunk by chunk on each pass.
    Streamed(&'a dyn ValueSource),
}

impl<'a> Values<'a> {
    /// Borrows the source's f32 values when it has them, decodes it into memory when it fits
    /// the resident limit, else streams it.
    pub fn load(src: &'a dyn ValueSource, cancel: &Cancel) -> Result<Self, ComputeError> {
        if let Some(values) = src.as_f32() {
            return Ok(Values::Resident(Cow::Borrowed(values)));
        }
        if src.numel().saturating_mul(4) > RESIDENT_LIMIT_BYTES {
            return Ok(Values::Streamed(src));
        }
        Ok(Values::Resident(Cow::Owned(decode_parallel(src, cancel)?)))
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
            Values::Streamed(src) => {
                let ranges: Vec<_> = source::chunks(*src, block as u64).collect();
                ranges
                    .par_iter()
                    .map(|range| {
                        if cancel.is_cancelled() {
                            return Err(ComputeError::Cancelled);
                        }
                        let mut buf = Vec::new();
                        src.read(range.clone(), &mut buf)?;
                        Ok(f(range.start as usize, &buf))
                    })
                    .collect()
            }
        }
    }
}

/// Decodes a whole source to f32 with all threads, a chunk per task.
pub fn decode_parallel(src: &dyn ValueSource, cancel: &Cancel) -> Result<Vec<f32>, ComputeError> {
    let n = usize::try_from(src.numel())
        .map_err(|_| shape_error(src, format!("{} values do not fit in this machine's memory", src.numel())))?;
    let mut out = vec![0f32; n];
    let step = source::chunks(src, DEFAULT_CHUNK_ELEMS).next().map(|r| (r.end - r.start) as usize).unwrap_or(1);
    out.par_chunks_mut(step.max(1)).enumerate().try_for_each(|(i, dst)| {
        if cancel.is_cancelled() {
            return Err(ComputeError::Cancelled);
        }
        let start = (i * step) as u64;
        let mut buf = Vec::new();
        src.read(start..start + dst.len() as u64, &mut buf)?;
        dst.copy_from_slice(&buf);
        Ok(())
    })?;
    Ok(out)
}

/// A block length that is a multiple of the source's storage block and near `target`.
fn aligned_block(src: &dyn ValueSource, target: usize) -> usize {
    let b = src.block_elems().max(1) as usize;
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

impl CpuBackend {
    /// The provenance of work done here.
    pub fn provenance(&self) -> Provenance {
        Provenance::new(BackendKind::Cpu, format!("rayon, {} threads", rayon::current_num_threads()))
    }

    /// Moments, counts, histogram and outliers ([`super::Backend::stats`]).
    pub fn stats(
        &self,
        src: &dyn ValueSource,
        req: &StatsRequest,
        cancel: &Cancel,
    ) -> Result<StatsResult, ComputeError> {
        // One- and two-byte scalar types: one pass counting bit patterns, no decode.
        if src.numel() >= patterns::MIN_VALUES
            && let Some(stored) = src.stored()
            && stored.dtype.byte_len(src.numel()) == Some(stored.bytes.len() as u64)
            && let Some(r) = patterns::stats_of_patterns(stored.dtype, stored.bytes, req, cancel, &|bytes| {
                src.release_stored(bytes)
            })?
        {
            return Ok(r);
        }
        let values = Values::load(src, cancel)?;
        stats_of(&values, req, aligned_block(src, MOMENT_BLOCK), cancel)
    }

    /// Per-channel statistics and the abs-max map ([`super::Backend::channels`]).
    pub fn channels(
        &self,
        src: &dyn ValueSource,
        max_grid: usize,
        cancel: &Cancel,
    ) -> Result<ChannelResult, ComputeError> {
        let (rows, cols) = require_matrix(src, "channel statistics")?;
        let values = Values::load(src, cancel)?;
        channel_stats(&values, rows, cols, max_grid.max(1), cancel)
    }

    /// The Gram matrix of the smaller side ([`super::Backend::gram`]).
    pub fn gram(&self, src: &dyn ValueSource, cancel: &Cancel) -> Result<Gram, ComputeError> {
        let (rows, cols) = require_matrix(src, "a Gram matrix")?;
        let values = Values::load(src, cancel)?;
        gram_of(&values, rows, cols, cancel)
    }

    /// The tiled salience map ([`super::Backend::salience_tiles`]).
    pub fn salience_tiles(
        &self,
        src: &dyn ValueSource,
        importance: &[f32],
        max_grid: usize,
        cancel: &Cancel,
    ) -> Result<TileMap, ComputeError> {
        let (rows, cols) = check_importance(src, importance)?;
        let (tr, tc, gr, gc) = kernels::tiling(rows, cols, max_grid);
        let values = Values::load(src, cancel)?;
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

    /// The summaries of a region's tiles ([`super::Backend::region_tiles`]): one task per tile
    /// row, each reading its rows' segments from the source (`source::segment`).
    pub fn region_tiles(
        &self,
        src: &dyn ValueSource,
        region: &TileRegion,
        importance: Option<&[f32]>,
        cancel: &Cancel,
    ) -> Result<Vec<TileSummary>, ComputeError> {
        let (_, n_cols) = check_region(src, region, importance)?;
        let (grid_rows, grid_cols) = (region.grid_rows(), region.grid_cols());
        let bands: Vec<Vec<TileSummary>> = (0..grid_rows)
            .into_par_iter()
            .map(|ti| {
                let mut tiles = vec![TileSummary::default(); grid_cols];
                let mut buf = Vec::new();
                let r0 = region.rows.start + ti * region.tile_rows;
                for r in r0..(r0 + region.tile_rows).min(region.rows.end) {
                    if cancel.is_cancelled() {
                        return Err(ComputeError::Cancelled);
                    }
                    let first = (r * n_cols + region.cols.start) as u64;
                    let row = source::segment(src, first..first + region.cols.len() as u64, &mut buf)?;
                    kernels::add_region_row(row, region.cols.start, region.tile_cols, importance, &mut tiles);
                }
                Ok(tiles)
            })
            .collect::<Result<_, _>>()?;
        Ok(bands.concat())
    }

    /// Every value in memory ([`super::Backend::values`]).
    pub fn values(&self, src: &dyn ValueSource, cancel: &Cancel) -> Result<Vec<f32>, ComputeError> {
        match src.as_f32() {
            Some(values) => Ok(values.to_vec()),
            None => decode_parallel(src, cancel),
        }
    }

    /// Integer codes, streamed to `sink` ([`super::Backend::quantize_int`]): the source is read
    /// once, in order, a batch of whole groups at a time; each batch is quantized with all
    /// threads and delivered before the next is read.
    pub fn quantize_int(
        &self,
        src: &dyn ValueSource,
        spec: &IntSpec,
        importance: Option<&[f32]>,
        sink: &mut dyn CodeSink,
        cancel: &Cancel,
    ) -> Result<GroupError, ComputeError> {
        let cols = super::begin_int(src, spec, importance, sink)?;
        let group = spec.group;
        // Batches of whole groups and whole storage blocks, near 4 Mi values.
        let unit = source::lcm(src.block_elems().max(1), group as u64);
        let (batch, task) = source::batch_and_task(unit);
        let mut total = GroupError::default();
        let mut buf = Vec::new();
        let (mut params, mut codes) = (Vec::new(), Vec::new());
        for range in source::chunks(src, batch) {
            if cancel.is_cancelled() {
                return Err(ComputeError::Cancelled);
            }
            let values = source::values_in(src, range.clone(), &mut buf)?;
            // Tasks of many groups each, joined in order; a group never crosses a row.
            let col0 = (range.start % cols as u64) as usize;
            let parts: Vec<(Vec<GroupParams>, Vec<i8>, GroupError)> = values
                .par_chunks(task)
                .enumerate()
                .map(|(t, chunk)| {
                    let (mut p, mut c, mut e) = (Vec::new(), Vec::with_capacity(chunk.len()), GroupError::default());
                    let at = int::Columns { first: (col0 + t * task) % cols, count: cols, importance };
                    pulp::Arch::new().dispatch(IntTile { chunk, spec, at, params: &mut p, codes: &mut c, err: &mut e });
                    (p, c, e)
                })
                .collect();
            params.clear();
            codes.clear();
            for (p, c, e) in parts {
                params.extend(p);
                codes.extend(c);
                total.add(&e);
            }
            sink.put(range.start / group as u64, &params, &codes)?;
        }
        Ok(total)
    }
}

impl CpuBackend {
    /// llama.cpp block types, streamed to `sink` ([`super::Backend::encode_ggml`]): batches of
    /// whole rows, each split over threads by rows; every tile is encoded, decoded and measured
    /// under a `pulp` dispatch (the widest vector instructions this CPU has, the same IEEE
    /// operations, so the same bytes).
    pub fn encode_ggml(
        &self,
        src: &dyn ValueSource,
        dtype: crate::codec::DType,
        search: Option<&[f32]>,
        importance: Option<&[f32]>,
        sink: &mut dyn super::ByteSink,
        cancel: &Cancel,
    ) -> Result<GroupError, ComputeError> {
        self.encode_ggml_rows(src, dtype, search, importance, sink, true, cancel)
    }

    /// llama.cpp block types without the error (`measure` false): the bytes only, for a caller
    /// that measures them elsewhere (the GPU, after a search that runs only here).
    #[allow(clippy::too_many_arguments)]
    pub fn encode_ggml_rows(
        &self,
        src: &dyn ValueSource,
        dtype: crate::codec::DType,
        search: Option<&[f32]>,
        importance: Option<&[f32]>,
        sink: &mut dyn super::ByteSink,
        measure: bool,
        cancel: &Cancel,
    ) -> Result<GroupError, ComputeError> {
        let cols = super::begin_blocks(src, dtype, importance, search, sink)?;
        let unit = source::lcm(cols as u64, src.block_elems().max(1));
        let (batch, task) = source::batch_and_task(unit);
        let mut total = GroupError::default();
        let mut buf = Vec::new();
        for range in source::chunks(src, batch) {
            if cancel.is_cancelled() {
                return Err(ComputeError::Cancelled);
            }
            let values = source::values_in(src, range.clone(), &mut buf)?;
            let tiles: Vec<(Vec<u8>, GroupError)> = values
                .par_chunks(task)
                .map(|rows| pulp::Arch::new().dispatch(GgmlTile { dtype, rows, cols, search, importance, measure }))
                .collect();
            let mut at = range.start;
            for ((bytes, e), rows) in tiles.into_iter().zip(values.chunks(task)) {
                total.add(&e);
                sink.put(at, 0, &bytes)?;
                at += rows.len() as u64;
            }
        }
        Ok(total)
    }
}

impl CpuBackend {
    /// The largest finite magnitude ([`super::Backend::abs_max`]).
    pub fn abs_max(&self, src: &dyn ValueSource, cancel: &Cancel) -> Result<f32, ComputeError> {
        let mut m = 0f32;
        let mut buf = Vec::new();
        for range in source::chunks(src, 4 * DEFAULT_CHUNK_ELEMS) {
            if cancel.is_cancelled() {
                return Err(ComputeError::Cancelled);
            }
            let values = source::values_in(src, range, &mut buf)?;
            m = values.par_iter().filter(|x| x.is_finite()).map(|x| x.abs()).reduce(|| 0.0, f32::max).max(m);
        }
        Ok(m)
    }

    /// The error of `decoded` against `src` ([`super::Backend::measure`]).
    pub fn measure(
        &self,
        src: &dyn ValueSource,
        decoded: &dyn ValueSource,
        importance: Option<&[f32]>,
        cancel: &Cancel,
    ) -> Result<GroupError, ComputeError> {
        let cols = super::begin_measure(src, decoded, importance)?;
        let unit = source::lcm(source::lcm(src.block_elems().max(1), decoded.block_elems().max(1)), cols as u64);
        let (batch, task) = source::batch_and_task(unit);
        let mut total = GroupError::default();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for range in source::chunks(src, batch) {
            if cancel.is_cancelled() {
                return Err(ComputeError::Cancelled);
            }
            src.read(range.clone(), &mut x)?;
            decoded.read(range.clone(), &mut y)?;
            let col0 = (range.start % cols as u64) as usize;
            let parts: Vec<GroupError> = x
                .par_chunks(task)
                .zip(y.par_chunks(task))
                .enumerate()
                .map(|(k, (a, b))| {
                    let mut e = GroupError::default();
                    e.push_slice(a, b, (col0 + k * task) % cols, cols, importance);
                    e
                })
                .collect();
            parts.iter().for_each(|e| total.add(e));
        }
        Ok(total)
    }

    /// Float formats ([`super::Backend::encode_float`]).
    pub fn encode_float(
        &self,
        src: &dyn ValueSource,
        format: &super::FloatFormat,
        importance: Option<&[f32]>,
        sink: &mut dyn super::ByteSink,
        cancel: &Cancel,
    ) -> Result<GroupError, ComputeError> {
        super::floats::encode_float_cpu(src, format, importance, sink, cancel)
    }
}

/// One task of integer groups as a `pulp` operation (vectorised for this CPU).
struct IntTile<'a> {
    chunk: &'a [f32],
    spec: &'a IntSpec,
    at: int::Columns<'a>,
    params: &'a mut Vec<GroupParams>,
    codes: &'a mut Vec<i8>,
    err: &'a mut GroupError,
}

impl pulp::WithSimd for IntTile<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        int::encode(self.chunk, self.spec, self.at, self.params, self.codes, self.err);
    }
}

/// One tile of whole rows as a `pulp` operation: encode, decode, measure.
struct GgmlTile<'a> {
    dtype: crate::codec::DType,
    rows: &'a [f32],
    cols: usize,
    search: Option<&'a [f32]>,
    importance: Option<&'a [f32]>,
    measure: bool,
}

impl pulp::WithSimd for GgmlTile<'_> {
    type Output = (Vec<u8>, GroupError);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> (Vec<u8>, GroupError) {
        let mut bytes = Vec::new();
        let mut e = GroupError::default();
        // Shapes were checked by `begin_blocks`.
        if crate::codec::ggml::encode_rows(self.dtype, self.rows, self.cols, self.search, &mut bytes).is_ok()
            && self.measure
        {
            let mut y = vec![0f32; self.rows.len()];
            if crate::codec::decode(self.dtype, &bytes, &mut y).is_ok() {
                e.push_slice(self.rows, &y, 0, self.cols, self.importance);
            }
        }
        (bytes, e)
    }
}

/// `(rows, cols)` of a matrix whose columns `importance` weighs, or why it does not fit.
pub fn check_importance(src: &dyn ValueSource, importance: &[f32]) -> Result<(usize, usize), ComputeError> {
    let (rows, cols) = require_matrix(src, "a salience map")?;
    if importance.len() != cols {
        return Err(shape_error(
            src,
            format!("the importance vector has {} values for {cols} input channels", importance.len()),
        ));
    }
    Ok((rows, cols))
}

/// The shape of a matrix `src` of which `region` is a non-empty part with tiles of at least one
/// value, and `importance` (when given) one value per column, or why not.
pub fn check_region(
    src: &dyn ValueSource,
    region: &TileRegion,
    importance: Option<&[f32]>,
) -> Result<(usize, usize), ComputeError> {
    let (rows, cols) = require_matrix(src, "a heatmap")?;
    let TileRegion { rows: r, cols: c, tile_rows, tile_cols } = region;
    if r.is_empty() || c.is_empty() || r.end > rows || c.end > cols || *tile_rows == 0 || *tile_cols == 0 {
        return Err(shape_error(
            src,
            format!(
                "rows {r:?} and columns {c:?} in tiles of {tile_rows} × {tile_cols} are not a region of {rows} × {cols}"
            ),
        ));
    }
    if let Some(imp) = importance
        && imp.len() != cols
    {
        return Err(shape_error(
            src,
            format!("the importance vector has {} values for {cols} input channels", imp.len()),
        ));
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
        Values::Streamed(src) if !of_columns => {
            return Err(shape_error(
                *src,
                "a Gram matrix of rows for a tensor too large to hold in memory is not supported",
            ));
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
                Values::Streamed(src) => {
                    let mut buf = Vec::new();
                    for range in source::chunks(*src, block_len as u64) {
                        if cancel.is_cancelled() {
                            return Err(ComputeError::Cancelled);
                        }
                        src.read(range, &mut buf)?;
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
