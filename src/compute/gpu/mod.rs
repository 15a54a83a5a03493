//! The wgpu backend: WGSL kernels under `shaders/` mirroring the CPU kernels. Tensors travel at
//! their stored size and are decoded on the device (the common float and ggml block types; the
//! rest are decoded on the CPU and uploaded as f32). Tensors larger than one storage binding are
//! processed in chunks sized to the adapter's limits.
//!
//! Tolerances against the CPU reference (see `tests/gpu.rs`): histogram and outlier counts and
//! quantized codes are identical (decided by comparisons and one correctly rounded multiply);
//! mean, std, skewness and kurtosis agree to 1e-6 relative (1e-9 absolute near zero), as the CPU
//! agrees with numpy's float64: the device sums powers of the values about a short shift, with
//! exact products and compensated sums, and the host finishes in f64 (`shaders/moments.wgsl`);
//! channel norms and kurtosis to ~1e-4; Gram matrices to ~1e-5 of their largest entry (Kahan-
//! compensated f32 tiles, partial matrices added in f64).

mod context;
pub mod shaders;

use std::sync::{Arc, OnceLock};

use bytemuck::{Pod, Zeroable};
use rayon::prelude::*;

pub use context::{GpuContext, gpu_error};

use super::kernels::{self, MOMENT_BLOCK};
use super::source::{self, lcm, shape_error};
use super::{
    Arith, BackendKind, BinScale, ChannelResult, CodeSink, ComputeError, Gram, GroupError, GroupParams,
    HistogramCounts, IntSpec, Moments, Provenance, StatsRequest, StatsResult, TileMap, TileRegion, TileSummary,
    ValueSource,
};
use crate::cancel::Cancel;
use crate::codec::DType;

/// Largest number of histogram bins the GPU kernel holds in workgroup memory.
pub const MAX_BINS: usize = 4080;
/// Tensors up to this many f32 bytes keep their decoded chunks on the device between passes.
const RESIDENT_BYTES: u64 = 1 << 30;

/// The four-word parameter block of `common.wgsl` (`Params4`): a count and three words whose
/// meaning each kernel states.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params4 {
    n: u32,
    a: u32,
    b: u32,
    c: u32,
}

/// The parameter block of `gram.wgsl` (`GramParams`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GramParams {
    k_len: u32,
    n: u32,
    stride_k: u32,
    stride_i: u32,
    row0: u32,
    rows: u32,
    pad: [u32; 2],
}

/// The parameter block of `ggml_encode.wgsl` (`EncodeParams`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct EncodeParams {
    n: u32,
    kind: u32,
    cols: u32,
    flags: u32,
    zero: u32,
    col0: u32,
    scales_at: u32,
    _a: u32,
}

/// The parameter block of `float_encode.wgsl` (`FloatParams`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct FloatParams {
    n: u32,
    kind: u32,
    cols: u32,
    flags: u32,
    zero: u32,
    col0: u32,
    imp_at: u32,
    y_at: u32,
    side_at: u32,
    tensor_scale: u32,
    _a: u32,
    _b: u32,
}

/// The parameter block of `quant.wgsl` (`QuantParams`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct QuantParams {
    n: u32,
    group: u32,
    cols: u32,
    flags: u32,
    zero: u32,
    col0: u32,
    imp_at: u32,
    _b: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct HistParams {
    n: u32,
    bins: u32,
    log_abs: u32,
    n_bounds: u32,
    lo: f32,
    hi: f32,
    scale: f32,
    log_lo: f32,
    b0: [f32; 2],
    b1: [f32; 2],
}

/// The matrix parameter block of `common.wgsl` (`MatrixParams`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MatrixParams {
    rows: u32,
    cols: u32,
    tile_rows: u32,
    tile_cols: u32,
    grid_rows: u32,
    grid_cols: u32,
    a: u32,
    b: u32,
}

impl MatrixParams {
    fn new(
        rows: usize,
        cols: usize,
        (tile_rows, tile_cols, grid_rows, grid_cols): (usize, usize, usize, usize),
    ) -> Self {
        Self {
            rows: rows as u32,
            cols: cols as u32,
            tile_rows: tile_rows as u32,
            tile_cols: tile_cols as u32,
            grid_rows: grid_rows as u32,
            grid_cols: grid_cols as u32,
            a: 0,
            b: 0,
        }
    }
}

/// The parameter block of `region.wgsl` (`RegionParams`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RegionParams {
    n_cols: u32,
    offset: u32,
    ra: u32,
    rb: u32,
    col0: u32,
    col1: u32,
    row0: u32,
    tile_rows: u32,
    tile_cols: u32,
    grid_cols: u32,
    ti0: u32,
    n_tiles: u32,
    has_imp: u32,
    zero: u32,
    _a: u32,
    _b: u32,
}

/// Loop iterations after which Mesa's lavapipe ends an invocation (gallivm's loop limit):
/// kernels whose invocations loop longer run on the CPU there.
const LAVAPIPE_LOOP_LIMIT: usize = 65535;

/// Largest chunk of a region (in values) decoded on the device at once: a workgroup's threads
/// then loop at most 2^15 times each (lavapipe stops an invocation after 65535 iterations).
const REGION_CHUNK_VALUES: u64 = 1 << 23;

/// The GPU backend.
pub struct GpuBackend {
    ctx: GpuContext,
}

static HARDWARE: OnceLock<Result<Arc<GpuBackend>, String>> = OnceLock::new();
static ANY: OnceLock<Result<Arc<GpuBackend>, String>> = OnceLock::new();

/// The decode entry point for types the GPU decodes itself.
fn decoder(dtype: DType) -> Option<&'static str> {
    Some(match dtype {
        DType::F32 => "decode_f32",
        DType::F16 => "decode_f16",
        DType::BF16 => "decode_bf16",
        DType::F8E4M3 => "decode_f8_e4m3",
        DType::F8E5M2 => "decode_f8_e5m2",
        DType::Q8_0 => "decode_q8_0",
        DType::Q4_0 => "decode_q4_0",
        DType::Q4_1 => "decode_q4_1",
        DType::Q5_0 => "decode_q5_0",
        DType::Q5_1 => "decode_q5_1",
        DType::Q4K => "decode_q4_k",
        DType::Q5K => "decode_q5_k",
        DType::Q6K => "decode_q6_k",
        _ => return None,
    })
}

/// Whether the GPU decodes `dtype` on the device (others are decoded on the CPU and uploaded).
pub fn decodes_on_device(dtype: DType) -> bool {
    decoder(dtype).is_some()
}

/// Kernel parameters of a histogram over `n` values against `thresholds`, with up to two outlier
/// bound pairs.
fn hist_params(thresholds: &[f32], scale: BinScale, bounds: &[(f32, f32)], n: u64) -> HistParams {
    let bins = thresholds.len() - 1;
    let (lo, hi) = (thresholds[0], thresholds[bins]);
    let (s, log_lo) = match scale {
        BinScale::Linear => (if hi > lo { (bins as f64 / (f64::from(hi) - f64::from(lo))) as f32 } else { 0.0 }, 0.0),
        BinScale::Log10Abs => {
            let (llo, lhi) = (f64::from(lo).log10(), f64::from(hi).log10());
            (if lhi > llo { (bins as f64 / (lhi - llo)) as f32 } else { 0.0 }, llo as f32)
        }
    };
    let b = |i: usize| bounds.get(i).map(|&(l, h)| [l, h]).unwrap_or([0.0, 0.0]);
    HistParams {
        n: n as u32,
        bins: bins as u32,
        log_abs: u32::from(scale == BinScale::Log10Abs),
        n_bounds: bounds.len().min(2) as u32,
        lo,
        hi,
        scale: s,
        log_lo,
        b0: b(0),
        b1: b(1),
    }
}

impl GpuBackend {
    /// Opens a device. With `allow_cpu`, software adapters (lavapipe) are accepted.
    pub fn new(allow_cpu: bool) -> Result<Self, ComputeError> {
        Ok(Self { ctx: GpuContext::new(allow_cpu)? })
    }

    /// The process-wide backend (one device per process), opened on first use.
    pub fn shared(allow_cpu: bool) -> Result<Arc<Self>, ComputeError> {
        let cell = if allow_cpu { &ANY } else { &HARDWARE };
        cell.get_or_init(|| Self::new(allow_cpu).map(Arc::new).map_err(|e| e.to_string())).clone().map_err(gpu_error)
    }

    /// The device context.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Whether the adapter is a software (CPU) implementation.
    pub fn is_software(&self) -> bool {
        self.ctx.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The provenance of work done here.
    pub fn provenance(&self) -> Provenance {
        let i = &self.ctx.info;
        Provenance::new(BackendKind::Gpu, format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type))
    }

    /// Values per chunk for `src`: a multiple of its storage block and of `align` (moment blocks,
    /// or whole rows), with both the stored bytes and the f32 values within one binding.
    fn chunk_values(&self, src: &dyn ValueSource, align: u64) -> u64 {
        let max_values = self.ctx.max_binding() / 4;
        let unit = lcm(src.block_elems().max(1), align.max(1));
        let fit = (max_values / unit).max(1) * unit;
        fit.min(src.numel().div_ceil(unit) * unit).max(unit)
    }

    /// Rows per chunk for kernels that work in whole tile rows of `tile_rows`: as many as fit one
    /// binding (on lavapipe, also fewer than its loop limit, as a column's loop runs over them).
    fn tile_row_chunk(&self, src: &dyn ValueSource, cols: usize, tile_rows: usize) -> Result<usize, ComputeError> {
        let fit_rows = (self.ctx.max_binding() / 4 / cols.max(1) as u64) as usize;
        let loop_rows = if self.is_software() { LAVAPIPE_LOOP_LIMIT - 1 } else { usize::MAX };
        match fit_rows.min(loop_rows) / tile_rows.max(1) * tile_rows {
            0 => Err(gpu_error(format!("{tile_rows} tile rows of {} are larger than one GPU buffer", src.name()))),
            rows => Ok(rows),
        }
    }

    /// Decodes `n` values of `dtype` stored in the device buffer `src` into a new f32 buffer.
    pub fn decode_buffer(
        &self,
        src: &wgpu::Buffer,
        dtype: DType,
        n: u64,
    ) -> Result<context::PooledBuffer<'_>, ComputeError> {
        let entry = decoder(dtype).ok_or_else(|| gpu_error(format!("no device decoder for {dtype}")))?;
        let dst = self.ctx.storage(n * 4)?;
        let params = self.ctx.uniform(bytemuck::bytes_of(&Params4 { n: n as u32, a: 0, b: 0, c: 0 }))?;
        self.ctx.dispatch("decode.wgsl", entry, &[(0, src), (1, dst.get()), (2, &params)], n.div_ceil(256) as u32)?;
        Ok(dst)
    }

    /// The statistics pipeline (decode, moments, 256-bin histogram and outliers) over `n` values
    /// of `dtype` already on the device in `src`: the kernel part alone, for benchmarks.
    pub fn stats_on_device(
        &self,
        src: &wgpu::Buffer,
        dtype: DType,
        n: u64,
        bins: usize,
    ) -> Result<StatsResult, ComputeError> {
        let values = self.decode_buffer(src, dtype, n)?;
        let moments = kernels::merge_all(&self.moments_of(values.get(), n)?);
        let (edges, thresholds) = kernels::histogram_bins(&moments, bins, BinScale::Linear);
        let params = hist_params(&thresholds, BinScale::Linear, &kernels::sigma_bounds(&moments), n);
        let t_buf = self.ctx.upload(bytemuck::cast_slice(&thresholds))?;
        let (counts, outliers) = self.histogram_of(values.get(), n, t_buf.get(), &params)?;
        Ok(StatsResult {
            moments,
            histogram: HistogramCounts { scale: BinScale::Linear, edges, thresholds, counts },
            outliers,
        })
    }

    /// The values `range` of `src` in a device buffer of f32: stored bytes uploaded and decoded
    /// on the device when a device decoder exists, values read on the host and uploaded otherwise.
    pub fn decode(
        &self,
        src: &dyn ValueSource,
        range: std::ops::Range<u64>,
    ) -> Result<context::PooledBuffer<'_>, ComputeError> {
        let n = range.end - range.start;
        if let Some(values) = src.as_f32() {
            let part = values
                .get(range.start as usize..range.end as usize)
                .ok_or_else(|| shape_error(src, format!("range {range:?} is outside the values")))?;
            return self.ctx.upload(bytemuck::cast_slice(part));
        }
        match src.stored().filter(|s| decoder(s.dtype).is_some()) {
            Some(stored) => {
                let b = stored.dtype.block_elems() as u64;
                let bb = stored.dtype.block_bytes() as u64;
                let start = (range.start / b * bb) as usize;
                let end = (range.end.div_ceil(b) * bb) as usize;
                let bytes = stored
                    .bytes
                    .get(start..end)
                    .ok_or_else(|| shape_error(src, format!("bytes {start}..{end} are outside the tensor")))?;
                let buf = self.ctx.upload(bytes)?;
                self.decode_buffer(buf.get(), stored.dtype, n)
            }
            None => {
                let mut values = Vec::new();
                src.read(range, &mut values)?;
                self.ctx.upload(bytemuck::cast_slice(&values))
            }
        }
    }

    /// Decodes `range` of `src` on the device and reads the values back (for tests and tools).
    pub fn decode_to_vec(&self, src: &dyn ValueSource, range: std::ops::Range<u64>) -> Result<Vec<f32>, ComputeError> {
        let n = (range.end - range.start) as usize;
        let buf = self.decode(src, range)?;
        self.ctx.read_f32(buf.get(), n)
    }

    /// Histogram and outlier counts of host `values` against `thresholds` and `bounds` (at most
    /// two pairs): the kernel alone, for comparison with the CPU kernel.
    pub fn histogram_counts(
        &self,
        values: &[f32],
        thresholds: &[f32],
        scale: BinScale,
        bounds: &[(f32, f32)],
    ) -> Result<(Vec<u64>, [u64; 2]), ComputeError> {
        let bins = thresholds.len().saturating_sub(1);
        if bins == 0 || bins > MAX_BINS || bounds.len() > 2 {
            return Err(gpu_error(format!("{bins} bins or {} bound pairs are out of range", bounds.len())));
        }
        let params = hist_params(thresholds, scale, bounds, values.len() as u64);
        let buf = self.ctx.upload(bytemuck::cast_slice(values))?;
        let t_buf = self.ctx.upload(bytemuck::cast_slice(thresholds))?;
        self.histogram_of(buf.get(), values.len() as u64, t_buf.get(), &params)
    }

    /// Block moments of `n` values in `buf`: the device's shifted, compensated power sums turned
    /// into central sums about each block's exact mean, in f64.
    fn moments_of(&self, buf: &wgpu::Buffer, n: u64) -> Result<Vec<Moments>, ComputeError> {
        let blocks = n.div_ceil(MOMENT_BLOCK as u64) as usize;
        let counts = self.ctx.storage((blocks * 5 * 4) as u64)?;
        let stats = self.ctx.storage((blocks * 12 * 4) as u64)?;
        let params = self.ctx.uniform(bytemuck::bytes_of(&Params4 { n: n as u32, a: 0, b: 0, c: 0 }))?;
        self.ctx.dispatch(
            "moments.wgsl",
            "block_moments",
            &[(0, buf), (1, counts.get()), (2, stats.get()), (3, &params)],
            blocks as u32,
        )?;
        let c = self.ctx.read_u32(counts.get(), blocks * 5)?;
        let s = self.ctx.read_f32(stats.get(), blocks * 12)?;
        (0..blocks)
            .map(|b| {
                let (c, s) = (&c[b * 5..b * 5 + 5], &s[b * 12..b * 12 + 12]);
                let mut m = Moments::empty();
                m.n = u64::from(c[0]);
                (m.nan, m.pos_inf, m.neg_inf, m.zeros) = (c[1].into(), c[2].into(), c[3].into(), c[4].into());
                if m.n > 0 {
                    let pair = |k: usize| f64::from(s[2 * k - 1]) + f64::from(s[2 * k]);
                    let central =
                        kernels::central_from_shifted(m.n, f64::from(s[0]), [pair(1), pair(2), pair(3), pair(4)]);
                    (m.mean, m.m2, m.m3, m.m4) = central;
                    (m.min, m.max) = (s[9], s[10]);
                    if s[11] < f32::MAX {
                        m.min_abs_nonzero = s[11];
                    }
                    // Fourth powers of values beyond ~1e9 overflow f32; the CPU sums in f64.
                    if ![m.mean, m.m2, m.m3, m.m4].iter().all(|v| v.is_finite()) {
                        return Err(gpu_error("values too large for the GPU's f32 power sums"));
                    }
                }
                Ok(m)
            })
            .collect()
    }

    /// Histogram and outlier counts of `n` values in `buf`.
    fn histogram_of(
        &self,
        buf: &wgpu::Buffer,
        n: u64,
        thresholds: &wgpu::Buffer,
        params: &HistParams,
    ) -> Result<(Vec<u64>, [u64; 2]), ComputeError> {
        let bins = params.bins as usize;
        let counts = self.ctx.storage(((bins + 2) * 4) as u64)?;
        self.ctx.clear(counts.get(), ((bins + 2) * 4) as u64)?;
        let uniform = self.ctx.uniform(bytemuck::bytes_of(params))?;
        // A grid-stride loop: enough workgroups to fill the device, each taking many values.
        let groups = n.div_ceil(256 * 16).clamp(1, 8192) as u32;
        self.ctx.dispatch(
            "histogram.wgsl",
            "histogram",
            &[(0, buf), (1, thresholds), (2, counts.get()), (3, &uniform)],
            groups,
        )?;
        let c = self.ctx.read_u32(counts.get(), bins + 2)?;
        Ok((c[..bins].iter().map(|&v| u64::from(v)).collect(), [u64::from(c[bins]), u64::from(c[bins + 1])]))
    }
}

/// The kernels ([`super::Backend`] wraps each with this backend's provenance).
impl GpuBackend {
    /// Moments, counts, histogram and outliers ([`super::Backend::stats`]).
    pub fn stats(
        &self,
        src: &dyn ValueSource,
        req: &StatsRequest,
        cancel: &Cancel,
    ) -> Result<StatsResult, ComputeError> {
        let bins = req.bins.max(1);
        if bins > MAX_BINS {
            return Err(gpu_error(format!("{bins} bins exceed the GPU kernel's {MAX_BINS}")));
        }
        let n = src.numel();
        let chunk = self.chunk_values(src, MOMENT_BLOCK as u64);
        let ranges: Vec<_> = (0..n.div_ceil(chunk)).map(|i| i * chunk..((i + 1) * chunk).min(n)).collect();
        let resident = n * 4 <= RESIDENT_BYTES;
        let mut kept = Vec::new();
        let mut blocks = Vec::new();
        for r in &ranges {
            if cancel.is_cancelled() {
                return Err(ComputeError::Cancelled);
            }
            let buf = self.decode(src, r.clone())?;
            blocks.extend(self.moments_of(buf.get(), r.end - r.start)?);
            if resident {
                kept.push(buf);
            }
        }
        let moments = kernels::merge_all(&blocks);
        let (edges, thresholds) = kernels::histogram_bins(&moments, bins, req.scale);
        let bounds = kernels::sigma_bounds(&moments);
        let params = |len: u64| hist_params(&thresholds, req.scale, &bounds, len);
        let t_buf = self.ctx.upload(bytemuck::cast_slice(&thresholds))?;
        let mut counts = vec![0u64; bins];
        let mut outliers = [0u64; 2];
        for (i, r) in ranges.iter().enumerate() {
            if cancel.is_cancelled() {
                return Err(ComputeError::Cancelled);
            }
            let len = r.end - r.start;
            let fresh;
            let buf = match kept.get(i) {
                Some(b) => b.get(),
                None => {
                    fresh = self.decode(src, r.clone())?;
                    fresh.get()
                }
            };
            let (c, o) = self.histogram_of(buf, len, t_buf.get(), &params(len))?;
            counts.iter_mut().zip(&c).for_each(|(a, b)| *a += b);
            outliers[0] += o[0];
            outliers[1] += o[1];
        }
        Ok(StatsResult {
            moments,
            histogram: HistogramCounts { scale: req.scale, edges, thresholds, counts },
            outliers,
        })
    }

    /// Per-channel statistics and the abs-max map ([`super::Backend::channels`]). The matrix goes
    /// through the device in chunks of whole tile rows that fit one binding (a 128k × 16k
    /// embedding takes several): rows and tiles are complete in each chunk, and the columns'
    /// sums and central moments carry from one chunk to the next, so any chunking gives the
    /// result of one pass.
    pub fn channels(
        &self,
        src: &dyn ValueSource,
        max_grid: usize,
        cancel: &Cancel,
    ) -> Result<ChannelResult, ComputeError> {
        let (rows, cols) = source::require_matrix(src, "channel statistics")?;
        let tiling = kernels::tiling(rows, cols, max_grid);
        let (tile_rows, tile_cols, grid_rows, grid_cols) = tiling;
        // lavapipe ends an invocation after 65535 loop iterations: a tile's loop must fit, and
        // the columns' loops over a chunk's rows are kept below it.
        if self.is_software() && tile_rows * (tile_cols + 1) > LAVAPIPE_LOOP_LIMIT {
            return Err(ComputeError::NotOnGpu(format!(
                "channel statistics with tiles of {tile_rows} x {tile_cols} run on the CPU: the software GPU stops a kernel after {LAVAPIPE_LOOP_LIMIT} loop iterations"
            )));
        }
        let chunk_rows = self.tile_row_chunk(src, cols, tile_rows)?;
        let col_sums = self.ctx.storage((cols * 4 * 4) as u64)?;
        let col_moments = self.ctx.storage((cols * 2 * 4) as u64)?;
        self.ctx.clear(col_sums.get(), (cols * 4 * 4) as u64)?;
        self.ctx.clear(col_moments.get(), (cols * 2 * 4) as u64)?;
        let chunks: Vec<std::ops::Range<usize>> =
            (0..rows.div_ceil(chunk_rows)).map(|k| k * chunk_rows..((k + 1) * chunk_rows).min(rows)).collect();
        let params_of = |r: &std::ops::Range<usize>| {
            let chunk_grid_rows = r.len().div_ceil(tile_rows);
            MatrixParams::new(r.len(), cols, (tile_rows, tile_cols, chunk_grid_rows, grid_cols))
        };
        let (mut row_stats, mut tile_abs_max) =
            (Vec::with_capacity(rows * 3), Vec::with_capacity(grid_rows * grid_cols));
        let col_groups = cols.div_ceil(256) as u32;
        // The last chunk stays on the device for the second pass when there is only one.
        let mut kept = None;
        for r in &chunks {
            if cancel.is_cancelled() {
                return Err(ComputeError::Cancelled);
            }
            let buf = self.decode(src, (r.start * cols) as u64..(r.end * cols) as u64)?;
            let p = params_of(r);
            let params = self.ctx.uniform(bytemuck::bytes_of(&p))?;
            let row_out = self.ctx.storage((r.len() * 3 * 4) as u64)?;
            let tiles = self.ctx.storage((p.grid_rows as usize * grid_cols * 4) as u64)?;
            self.ctx.dispatch(
                "channels.wgsl",
                "row_stats",
                &[(0, buf.get()), (1, row_out.get()), (2, &params)],
                r.len() as u32,
            )?;
            self.ctx.dispatch(
                "channels.wgsl",
                "col_sums",
                &[(0, buf.get()), (1, col_sums.get()), (2, &params)],
                col_groups,
            )?;
            self.ctx.dispatch(
                "channels.wgsl",
                "tile_absmax",
                &[(0, buf.get()), (1, tiles.get()), (2, &params)],
                (p.grid_rows as usize * grid_cols).div_ceil(256) as u32,
            )?;
            row_stats.extend(self.ctx.read_f32(row_out.get(), r.len() * 3)?);
            tile_abs_max.extend(self.ctx.read_f32(tiles.get(), p.grid_rows as usize * grid_cols)?);
            if chunks.len() == 1 {
                kept = Some((buf, params));
            }
        }
        for r in &chunks {
            if cancel.is_cancelled() {
                return Err(ComputeError::Cancelled);
            }
            let (buf, params) = match kept.take() {
                Some(k) => k,
                None => (
                    self.decode(src, (r.start * cols) as u64..(r.end * cols) as u64)?,
                    self.ctx.uniform(bytemuck::bytes_of(&params_of(r)))?,
                ),
            };
            self.ctx.dispatch(
                "channels.wgsl",
                "col_moments",
                &[(0, buf.get()), (1, col_moments.get()), (2, &params), (4, col_sums.get())],
                col_groups,
            )?;
        }
        let sums = self.ctx.read_f32(col_sums.get(), cols * 4)?;
        let moments = self.ctx.read_f32(col_moments.get(), cols * 2)?;
        let split = |v: &[f32], k: usize| v.chunks_exact(3).map(|x| x[k]).collect::<Vec<f32>>();
        let widen = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<f64>>();
        // The columns' kurtosis as the row kernel finishes a row's (in f32).
        let kurtosis = |s: &[f32], m: &[f32]| {
            let n = s[3].max(1.0);
            let m2 = m[0] / n;
            if m[0] > 0.0 { f64::from((m[1] / n) / (m2 * m2) - 3.0) } else { f64::NAN }
        };
        Ok(ChannelResult {
            rows,
            cols,
            row_abs_max: split(&row_stats, 0),
            row_l2: widen(split(&row_stats, 1)),
            row_kurtosis: widen(split(&row_stats, 2)),
            col_abs_max: sums.chunks_exact(4).map(|s| s[0]).collect(),
            col_l2: sums.chunks_exact(4).map(|s| f64::from(s[2].sqrt())).collect(),
            col_kurtosis: sums.chunks_exact(4).zip(moments.chunks_exact(2)).map(|(s, m)| kurtosis(s, m)).collect(),
            tile_rows,
            tile_cols,
            grid_rows,
            grid_cols,
            tile_abs_max,
        })
    }

    /// The Gram matrix of the smaller side ([`super::Backend::gram`]), accumulated in f64 on the
    /// host from blocks of vectors: chunks of whole rows decoded on the device for WᵀW; for WWᵀ,
    /// the whole matrix when it fits one binding, else bands of columns gathered on the host.
    /// The output goes in bands of whole rows of C, each one binding, so neither side needs to
    /// fit a single buffer.
    pub fn gram(&self, src: &dyn ValueSource, cancel: &Cancel) -> Result<Gram, ComputeError> {
        let (rows, cols) = source::require_matrix(src, "a Gram matrix")?;
        let of_columns = cols <= rows;
        let n = rows.min(cols);
        let total = src.numel();
        let max_values = self.ctx.max_binding() / 4;
        let band_rows = (max_values / n as u64).min(n as u64) as usize;
        if band_rows == 0 {
            return Err(gpu_error(format!("a row of the {n}x{n} Gram matrix is larger than one GPU buffer")));
        }
        // Each invocation loops about 17/16 times per vector of a block: on lavapipe, which ends
        // an invocation after 65535 iterations, blocks are cut to fewer vectors.
        let max_k = if self.is_software() { LAVAPIPE_LOOP_LIMIT / 17 * 16 } else { usize::MAX };
        let bands: Vec<(usize, usize)> = (0..n).step_by(band_rows).map(|r0| (r0, band_rows.min(n - r0))).collect();
        let outs = bands.iter().map(|&(_, h)| self.ctx.storage((h * n * 4) as u64)).collect::<Result<Vec<_>, _>>()?;
        let mut acc = vec![0f64; n * n];
        let mut add_block = |x: &wgpu::Buffer, k_len: usize, stride_k: usize, stride_i: usize| {
            for (&(row0, h), out) in bands.iter().zip(&outs) {
                let p = GramParams {
                    k_len: k_len as u32,
                    n: n as u32,
                    stride_k: stride_k as u32,
                    stride_i: stride_i as u32,
                    row0: row0 as u32,
                    rows: h as u32,
                    pad: [0; 2],
                };
                let params = self.ctx.uniform(bytemuck::bytes_of(&p))?;
                let grid = (n.div_ceil(16) as u32, h.div_ceil(16) as u32);
                self.ctx.dispatch_grid("gram.wgsl", "gram_tile", &[(0, x), (1, out.get()), (2, &params)], grid)?;
                for (a, v) in acc[row0 * n..(row0 + h) * n].iter_mut().zip(self.ctx.read_f32(out.get(), h * n)?) {
                    *a += f64::from(v);
                }
            }
            Ok::<(), ComputeError>(())
        };
        if of_columns {
            // WᵀW over chunks of whole rows: A(k, i) = W[k, i].
            let mut chunk = self.chunk_values(src, cols as u64);
            if max_k < usize::MAX {
                let unit = lcm(src.block_elems().max(1), cols as u64);
                let fit = (max_k as u64 * cols as u64 / unit) * unit;
                if fit == 0 {
                    return Err(ComputeError::NotOnGpu(format!(
                        "a Gram matrix of {} runs on the CPU: its storage blocks span too many rows for the software GPU",
                        src.name()
                    )));
                }
                chunk = chunk.min(fit);
            }
            let mut start = 0u64;
            while start < total {
                if cancel.is_cancelled() {
                    return Err(ComputeError::Cancelled);
                }
                let end = (start + chunk).min(total);
                let buf = self.decode(src, start..end)?;
                add_block(buf.get(), (end - start) as usize / cols, cols, 1)?;
                start = end;
            }
        } else if total <= max_values && cols <= max_k {
            // WWᵀ of a matrix that fits one binding, decoded on the device: A(k, i) = W[i, k].
            let buf = self.decode(src, 0..total)?;
            add_block(buf.get(), cols, 1, cols)?;
        } else {
            // WWᵀ over bands of columns, each gathered row by row on the host (segments read on
            // whole storage blocks): A(k, i) = band[i · w + k].
            let w = ((max_values / rows as u64) as usize).min(max_k).min(cols);
            if w == 0 {
                return Err(gpu_error(format!("a column of {} is larger than one GPU buffer", src.name())));
            }
            let mut band = vec![0f32; rows * w];
            for c0 in (0..cols).step_by(w) {
                if cancel.is_cancelled() {
                    return Err(ComputeError::Cancelled);
                }
                let width = w.min(cols - c0);
                band[..rows * width].par_chunks_mut(width).enumerate().try_for_each_init(
                    Vec::new,
                    |buf, (r, out)| {
                        let first = (r * cols + c0) as u64;
                        out.copy_from_slice(source::segment(src, first..first + width as u64, buf)?);
                        Ok::<(), ComputeError>(())
                    },
                )?;
                let buf = self.ctx.upload(bytemuck::cast_slice(&band[..rows * width]))?;
                add_block(buf.get(), width, 1, width)?;
            }
        }
        Ok(Gram { n, of_columns, values: acc })
    }

    /// The tiled salience map ([`super::Backend::salience_tiles`]).
    pub fn salience_tiles(
        &self,
        src: &dyn ValueSource,
        importance: &[f32],
        max_grid: usize,
        cancel: &Cancel,
    ) -> Result<TileMap, ComputeError> {
        let (rows, cols) = super::cpu::check_importance(src, importance)?;
        let tiling = kernels::tiling(rows, cols, max_grid);
        let (tr, tc, gr, gc) = tiling;
        if self.is_software() && tr * (tc + 1) > LAVAPIPE_LOOP_LIMIT {
            return Err(ComputeError::NotOnGpu(format!(
                "salience tiles of {tr} × {tc} run on the CPU: the software GPU stops a kernel after {LAVAPIPE_LOOP_LIMIT} loop iterations"
            )));
        }
        // Chunks of whole tile rows that fit one binding: each chunk's tiles are complete.
        let chunk_rows = self.tile_row_chunk(src, cols, tr)?;
        let imp = self.ctx.upload(bytemuck::cast_slice(importance))?;
        let mut values = Vec::with_capacity(gr * gc);
        for start in (0..rows).step_by(chunk_rows) {
            if cancel.is_cancelled() {
                return Err(ComputeError::Cancelled);
            }
            let end = (start + chunk_rows).min(rows);
            let buf = self.decode(src, (start * cols) as u64..(end * cols) as u64)?;
            let chunk_gr = (end - start).div_ceil(tr);
            let p = MatrixParams::new(end - start, cols, (tr, tc, chunk_gr, gc));
            let params = self.ctx.uniform(bytemuck::bytes_of(&p))?;
            let tiles = self.ctx.storage((chunk_gr * gc * 4) as u64)?;
            self.ctx.dispatch(
                "channels.wgsl",
                "tile_salience",
                &[(0, buf.get()), (1, tiles.get()), (2, &params), (3, imp.get())],
                (chunk_gr * gc).div_ceil(256) as u32,
            )?;
            values.extend(self.ctx.read_f32(tiles.get(), chunk_gr * gc)?);
        }
        Ok(TileMap { tile_rows: tr, tile_cols: tc, grid_rows: gr, grid_cols: gc, values })
    }

    /// The summaries of a region's tiles ([`super::Backend::region_tiles`]): chunks of whole
    /// rows decoded on the device, one workgroup per tile of the chunk's tile rows
    /// (`shaders/region.wgsl`), the parts merged in row order on the host.
    pub fn region_tiles(
        &self,
        src: &dyn ValueSource,
        region: &TileRegion,
        importance: Option<&[f32]>,
        cancel: &Cancel,
    ) -> Result<Vec<TileSummary>, ComputeError> {
        let (n_rows, n_cols) = super::cpu::check_region(src, region, importance)?;
        let (grid_rows, grid_cols) = (region.grid_rows(), region.grid_cols());
        let block = src.block_elems().max(1);
        let max_values = (self.ctx.max_binding() / 4).min(REGION_CHUNK_VALUES);
        // Whole rows plus a storage block either side of them must fit one binding.
        let rows_per_chunk = max_values.saturating_sub(2 * block) / n_cols as u64;
        if rows_per_chunk == 0 || grid_cols as u64 * 9 * 4 > self.ctx.max_binding() {
            return Err(gpu_error(format!("a row of {} is larger than one GPU buffer", src.name())));
        }
        let imp_buf = match importance {
            Some(v) => self.ctx.upload(bytemuck::cast_slice(v))?,
            None => self.ctx.upload(bytemuck::cast_slice(&[0f32]))?,
        };
        let numel = (n_rows * n_cols) as u64;
        let mut tiles = vec![TileSummary::default(); grid_rows * grid_cols];
        let mut ra = region.rows.start;
        while ra < region.rows.end {
            if cancel.is_cancelled() {
                return Err(ComputeError::Cancelled);
            }
            let rb = (ra + rows_per_chunk as usize).min(region.rows.end);
            let first = (ra * n_cols) as u64;
            let start = first / block * block;
            let end = ((rb * n_cols) as u64).div_ceil(block) * block;
            let values = self.decode(src, start..end.min(numel))?;
            let ti0 = (ra - region.rows.start) / region.tile_rows;
            let ti1 = (rb - 1 - region.rows.start) / region.tile_rows + 1;
            let n_tiles = (ti1 - ti0) * grid_cols;
            let p = RegionParams {
                n_cols: n_cols as u32,
                offset: (first - start) as u32,
                ra: ra as u32,
                rb: rb as u32,
                col0: region.cols.start as u32,
                col1: region.cols.end as u32,
                row0: region.rows.start as u32,
                tile_rows: region.tile_rows as u32,
                tile_cols: region.tile_cols as u32,
                grid_cols: grid_cols as u32,
                ti0: ti0 as u32,
                n_tiles: n_tiles as u32,
                has_imp: u32::from(importance.is_some()),
                zero: 0,
                _a: 0,
                _b: 0,
            };
            let params = self.ctx.uniform(bytemuck::bytes_of(&p))?;
            let out = self.ctx.storage((n_tiles * 9 * 4) as u64)?;
            self.ctx.dispatch(
                "region.wgsl",
                "region_tiles",
                &[(0, values.get()), (1, out.get()), (2, &params), (3, imp_buf.get())],
                n_tiles as u32,
            )?;
            let words = self.ctx.read_u32(out.get(), n_tiles * 9)?;
            for (k, w) in words.chunks_exact(9).enumerate() {
                let f = |i: usize| f32::from_bits(w[i]);
                let part = TileSummary {
                    max_abs: f(0),
                    extreme: f(1),
                    salience: f(2),
                    sum: f64::from(f(3)) + f64::from(f(4)),
                    sum_sq: f64::from(f(5)) + f64::from(f(6)),
                    count: u64::from(w[7]),
                    non_finite: u64::from(w[8]),
                };
                tiles[ti0 * grid_cols + k].merge(&part);
            }
            ra = rb;
        }
        Ok(tiles)
    }

    /// Every value, decoded on the device chunk by chunk and read back ([`super::Backend::values`]).
    pub fn values(&self, src: &dyn ValueSource, cancel: &Cancel) -> Result<Vec<f32>, ComputeError> {
        let total = src.numel();
        let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        for range in source::chunks(src, self.chunk_values(src, 1)) {
            if cancel.is_cancelled() {
                return Err(ComputeError::Cancelled);
            }
            out.extend(self.decode_to_vec(src, range)?);
        }
        Ok(out)
    }

    /// Integer codes, streamed to `sink` chunk by chunk ([`super::Backend::quantize_int`]):
    /// group min/max on the device, group parameters on the host (the CPU's own function),
    /// codes (with a correctly rounded division) and error on the device.
    pub fn quantize_int(
        &self,
        src: &dyn ValueSource,
        spec: &IntSpec,
        importance: Option<&[f32]>,
        sink: &mut dyn CodeSink,
        cancel: &Cancel,
    ) -> Result<GroupError, ComputeError> {
        let cols = super::begin_int(src, spec, importance, sink)?;
        let group = spec.group as u64;
        let arith = match spec.arith {
            Arith::F32 => 0,
            Arith::F16 => 1,
            Arith::Bf16 => 2,
        };
        let flags = spec.bits | u32::from(spec.asym) << 4 | arith << 5 | u32::from(importance.is_some()) << 7;
        let mut total = GroupError::default();
        for range in source::chunks(src, self.chunk_values(src, group)) {
            if cancel.is_cancelled() {
                return Err(ComputeError::Cancelled);
            }
            let len = (range.end - range.start) as usize;
            let groups = len / spec.group;
            let buf = self.decode(src, range.clone())?;
            let minmax = self.group_minmax(buf.get(), len, spec.group)?;
            let p = QuantParams {
                n: len as u32,
                group: spec.group as u32,
                cols: cols as u32,
                flags,
                zero: 0,
                col0: (range.start % cols as u64) as u32,
                imp_at: (groups * 2) as u32,
                _b: 0,
            };
            let params = self.ctx.uniform(bytemuck::bytes_of(&p))?;
            let gp: Vec<GroupParams> = minmax.chunks_exact(2).map(|m| spec.params(m[0], m[1])).collect();
            let mut packed: Vec<f32> = gp.iter().flat_map(|p| [p.scale, f32::from(p.zero)]).collect();
            packed.extend_from_slice(importance.unwrap_or(&[]));
            let gp_buf = self.ctx.upload(bytemuck::cast_slice(&packed))?;
            let codes = self.ctx.storage((len * 4) as u64)?;
            let wgs = len.div_ceil(256);
            let errs = self.ctx.storage((wgs * 32) as u64)?;
            self.ctx.dispatch(
                "quant.wgsl",
                "rtn",
                &[(3, buf.get()), (4, gp_buf.get()), (5, codes.get()), (6, errs.get()), (7, &params)],
                wgs as u32,
            )?;
            let codes: Vec<i8> = self.ctx.read_u32(codes.get(), len)?.iter().map(|&v| v as i32 as i8).collect();
            total.add(&self.error_partials(errs.get(), wgs)?);
            sink.put(range.start / group, &gp, &codes)?;
        }
        Ok(total)
    }

    /// llama.cpp's legacy block types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1; their reference encoders)
    /// on the device, streamed to `sink` ([`super::Backend::encode_ggml`]): one block per
    /// invocation, codes and f16 scales read back and packed into ggml's layout on the host.
    /// The K-quants and IQ4 types, and any type with an importance matrix (llama.cpp's weighted
    /// searches), have no WGSL encoder: those return [`ComputeError::NotOnGpu`].
    pub fn encode_ggml(
        &self,
        src: &dyn ValueSource,
        dtype: DType,
        search: Option<&[f32]>,
        importance: Option<&[f32]>,
        sink: &mut dyn super::ByteSink,
        cancel: &Cancel,
    ) -> Result<GroupError, ComputeError> {
        if !Self::encodes_ggml(dtype, search.is_some()) {
            return Err(ComputeError::NotOnGpu(format!(
                "no WGSL encoder for {dtype}{}: llama.cpp's search ran on the CPU",
                if search.is_some() { " with an importance matrix" } else { "" }
            )));
        }
        let kind = match dtype {
            DType::Q8_0 => 0,
            DType::Q4_0 => 1,
            DType::Q4_1 => 2,
            DType::Q5_0 => 3,
            DType::Q5_1 => 4,
            other => {
                return Err(ComputeError::NotOnGpu(format!(
                    "no WGSL encoder for {other}: llama.cpp's scale search ran on the CPU"
                )));
            }
        };
        if search.is_some() {
            return Err(ComputeError::NotOnGpu(format!(
                "no WGSL encoder for {dtype} with an importance matrix: llama.cpp's weighted search ran on the CPU"
            )));
        }
        let cols = super::begin_blocks(src, dtype, importance, search, sink)?;
        let aux = self.ctx.upload(bytemuck::cast_slice(importance.unwrap_or(&[0.0])))?;
        let mut total = GroupError::default();
        for range in source::chunks(src, self.chunk_values(src, cols as u64)) {
            if cancel.is_cancelled() {
                return Err(ComputeError::Cancelled);
            }
            let len = (range.end - range.start) as usize;
            let blocks = len / 32;
            let buf = self.decode(src, range.clone())?;
            let out = self.ctx.storage(((len + 2 * blocks) * 4) as u64)?;
            let wgs = blocks.div_ceil(64);
            let errs = self.ctx.storage((wgs * 32) as u64)?;
            let p = EncodeParams {
                n: len as u32,
                kind,
                cols: cols as u32,
                flags: u32::from(importance.is_some()),
                zero: 0,
                col0: (range.start % cols as u64) as u32,
                scales_at: len as u32,
                _a: 0,
            };
            let params = self.ctx.uniform(bytemuck::bytes_of(&p))?;
            self.ctx.dispatch(
                "ggml_encode.wgsl",
                "legacy",
                &[(0, buf.get()), (1, aux.get()), (2, out.get()), (3, errs.get()), (4, &params)],
                wgs as u32,
            )?;
            let words = self.ctx.read_u32(out.get(), len + 2 * blocks)?;
            let (codes, scales) = words.split_at(len);
            let mut bytes = Vec::with_capacity(blocks * dtype.block_bytes());
            for (c, s) in codes.chunks_exact(32).zip(scales.chunks_exact(2)) {
                let block: [u8; 32] = std::array::from_fn(|j| c[j] as u8);
                crate::codec::ggml::pack_legacy_block(dtype, s[0] as u16, s[1] as u16, &block, &mut bytes)
                    .map_err(|e| ComputeError::Gpu(e.to_string()))?;
            }
            total.add(&self.error_partials(errs.get(), wgs)?);
            sink.put(range.start, 0, &bytes)?;
        }
        Ok(total)
    }

    /// `(min, max)` of the finite values of each group of `group` consecutive values among the
    /// `len` values of `buf` (the last group may be short), flattened.
    fn group_minmax(&self, buf: &wgpu::Buffer, len: usize, group: usize) -> Result<Vec<f32>, ComputeError> {
        let groups = len.div_ceil(group);
        let minmax = self.ctx.storage((groups * 8) as u64)?;
        let q = QuantParams {
            n: len as u32,
            group: group as u32,
            cols: group as u32,
            flags: 0,
            zero: 0,
            col0: 0,
            imp_at: 0,
            _b: 0,
        };
        let params = self.ctx.uniform(bytemuck::bytes_of(&q))?;
        self.ctx.dispatch(
            "quant.wgsl",
            "group_minmax",
            &[(0, buf), (1, minmax.get()), (2, &params)],
            groups.div_ceil(256) as u32,
        )?;
        self.ctx.read_f32(minmax.get(), groups * 2)
    }

    /// The error partials of `wgs` workgroups (two vec4 each: Σd², Σx², max|d|, finite count;
    /// Σ w·d², non-finite count), summed in f64.
    fn error_partials(&self, errs: &wgpu::Buffer, wgs: usize) -> Result<GroupError, ComputeError> {
        let mut total = GroupError::default();
        for e in self.ctx.read_f32(errs, wgs * 8)?.chunks_exact(8) {
            total.add(&GroupError {
                values: e[3] as u64,
                sq_err: f64::from(e[0]),
                signal: f64::from(e[1]),
                max_abs_err: e[2],
                weighted_sq_err: f64::from(e[4]),
                non_finite: e[5] as u64,
            });
        }
        Ok(total)
    }

    /// Whether the device encodes `dtype` (with an importance matrix when `weighted`): llama.cpp's
    /// legacy types without one; its searches (K-quants, IQ4, any weighted encoder) run on the CPU.
    pub fn encodes_ggml(dtype: DType, weighted: bool) -> bool {
        !weighted && matches!(dtype, DType::Q8_0 | DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1)
    }

    /// Float formats on the device ([`super::Backend::encode_float`]): codes, scales and the
    /// error on the device (FP8 row scales from the device's row min/max, by the CPU's own
    /// function), packed into bytes on the host.
    pub fn encode_float(
        &self,
        src: &dyn ValueSource,
        format: &super::FloatFormat,
        importance: Option<&[f32]>,
        sink: &mut dyn super::ByteSink,
        cancel: &Cancel,
    ) -> Result<GroupError, ComputeError> {
        use super::FloatFormat;
        let cols = super::floats::begin_float(src, format, importance, sink)?;
        let want = sink.wants_decoded();
        let arith_of = |a: Arith| match a {
            Arith::F32 => 0u32,
            Arith::F16 => 1,
            Arith::Bf16 => 2,
        };
        let (kind, arith, tensor_scale) = match *format {
            FloatFormat::F16 => (0u32, Arith::F32, 0.0f32),
            FloatFormat::Bf16 => (1, Arith::F32, 0.0),
            FloatFormat::Fp8 { tensor_scale, arith } => (2, arith, tensor_scale.unwrap_or(0.0)),
            FloatFormat::Nf4 { arith } => (3, arith, 0.0),
        };
        let per_row = matches!(format, FloatFormat::Fp8 { tensor_scale: None, .. });
        let mut total = GroupError::default();
        for range in source::chunks(src, self.chunk_values(src, format.unit(cols as u64))) {
            if cancel.is_cancelled() {
                return Err(ComputeError::Cancelled);
            }
            let len = (range.end - range.start) as usize;
            let buf = self.decode(src, range.clone())?;
            // aux: FP8 row scales or NF4 levels and midpoints, then the importance.
            let mut aux: Vec<f32> = Vec::new();
            let mut side: Vec<u8> = Vec::new();
            if per_row {
                let mm = self.group_minmax(buf.get(), len, cols)?;
                aux = mm
                    .chunks_exact(2)
                    .map(|m| crate::codec::fp8_e4m3_scale(m[0].abs().max(m[1].abs()), arith))
                    .collect();
                crate::codec::encode(arith.dtype(), &aux, &mut side).map_err(|e| ComputeError::Gpu(e.to_string()))?;
            }
            if kind == 3 {
                aux.extend_from_slice(&crate::codec::nf4::NF4_LEVELS);
                aux.extend_from_slice(&crate::codec::nf4::midpoints());
            }
            let imp_at = aux.len() as u32;
            aux.extend_from_slice(importance.unwrap_or(&[]));
            if aux.is_empty() {
                aux.push(0.0);
            }
            let aux_buf = self.ctx.upload(bytemuck::cast_slice(&aux))?;
            let blocks = len.div_ceil(64);
            let side_at = len as u32;
            let y_at = side_at + if kind == 3 { blocks as u32 } else { 0 };
            let words = y_at as usize + if want { len } else { 0 };
            let out = self.ctx.storage((words * 4) as u64)?;
            let (entry, wgs) =
                if kind == 3 { ("nf4", blocks.div_ceil(64)) } else { ("elementwise", len.div_ceil(256)) };
            let errs = self.ctx.storage((wgs * 32) as u64)?;
            let p = FloatParams {
                n: len as u32,
                kind,
                cols: cols as u32,
                flags: arith_of(arith)
                    | if importance.is_some() { 4 } else { 0 }
                    | if want { 8 } else { 0 }
                    | if per_row { 16 } else { 0 },
                zero: 0,
                col0: (range.start % cols as u64) as u32,
                imp_at,
                y_at,
                side_at,
                tensor_scale: tensor_scale.to_bits(),
                _a: 0,
                _b: 0,
            };
            let params = self.ctx.uniform(bytemuck::bytes_of(&p))?;
            self.ctx.dispatch(
                "float_encode.wgsl",
                entry,
                &[(0, buf.get()), (1, aux_buf.get()), (2, out.get()), (3, errs.get()), (4, &params)],
                wgs as u32,
            )?;
            let words = self.ctx.read_u32(out.get(), words)?;
            let codes = &words[..len];
            let bytes: Vec<u8> = match kind {
                0 | 1 => codes.iter().flat_map(|&c| (c as u16).to_le_bytes()).collect(),
                2 => codes.iter().map(|&c| c as u8).collect(),
                _ => {
                    side = words[len..len + blocks].iter().flat_map(|w| w.to_le_bytes()).collect();
                    let idx: Vec<u8> = codes.iter().map(|&c| c as u8).collect();
                    let mut packed = Vec::with_capacity(len.div_ceil(2));
                    crate::codec::nf4::pack(&idx, &mut packed);
                    packed
                }
            };
            total.add(&self.error_partials(errs.get(), wgs)?);
            if !side.is_empty() {
                sink.put(range.start, 1, &side)?;
            }
            sink.put(range.start, 0, &bytes)?;
            if want {
                let y: Vec<f32> = words[y_at as usize..].iter().map(|&w| f32::from_bits(w)).collect();
                sink.decoded(range.start, &y)?;
            }
        }
        Ok(total)
    }

    /// The largest finite magnitude ([`super::Backend::abs_max`]): groups' min/max on the device,
    /// the few partials on the host.
    pub fn abs_max(&self, src: &dyn ValueSource, cancel: &Cancel) -> Result<f32, ComputeError> {
        const GROUP: usize = 1024;
        let mut m = 0f32;
        for range in source::chunks(src, self.chunk_values(src, GROUP as u64)) {
            if cancel.is_cancelled() {
                return Err(ComputeError::Cancelled);
            }
            let len = (range.end - range.start) as usize;
            let buf = self.decode(src, range)?;
            let mm = self.group_minmax(buf.get(), len, GROUP)?;
            m = mm.iter().fold(m, |a, v| a.max(v.abs()));
        }
        Ok(m)
    }

    /// The error of `decoded` against `src` on the device ([`super::Backend::measure`]): both
    /// decoded there (ggml blocks by the device decoders), reduced per workgroup.
    pub fn measure(
        &self,
        src: &dyn ValueSource,
        decoded: &dyn ValueSource,
        importance: Option<&[f32]>,
        cancel: &Cancel,
    ) -> Result<GroupError, ComputeError> {
        let cols = super::begin_measure(src, decoded, importance)?;
        let imp = self.ctx.upload(bytemuck::cast_slice(importance.unwrap_or(&[0.0])))?;
        let align = lcm(decoded.block_elems().max(1), cols as u64);
        let mut total = GroupError::default();
        for range in source::chunks(src, self.chunk_values(src, align)) {
            if cancel.is_cancelled() {
                return Err(ComputeError::Cancelled);
            }
            let n = (range.end - range.start) as usize;
            let x = self.decode(src, range.clone())?;
            let y = self.decode(decoded, range.clone())?;
            let wgs = n.div_ceil(256);
            let errs = self.ctx.storage((wgs * 32) as u64)?;
            let p = Params4 {
                n: n as u32,
                a: cols as u32,
                b: u32::from(importance.is_some()),
                c: (range.start % cols as u64) as u32,
            };
            let params = self.ctx.uniform(bytemuck::bytes_of(&p))?;
            self.ctx.dispatch(
                "measure.wgsl",
                "measure",
                &[(0, x.get()), (1, y.get()), (2, imp.get()), (3, errs.get()), (4, &params)],
                wgs as u32,
            )?;
            total.add(&self.error_partials(errs.get(), wgs)?);
        }
        Ok(total)
    }
}
