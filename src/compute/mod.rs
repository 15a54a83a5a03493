//! The kernel backend. [`Backend`] has one method per kernel family; [`cpu::CpuBackend`] (rayon)
//! is the reference implementation, and the GPU implementation mirrors it. Analysis code is
//! written against the trait only.
//!
//! Kernels read tensors through [`TensorRef`] (checkpoint + tensor), so each backend decides
//! how bytes travel: the CPU decodes through the codecs into host memory; a GPU backend uploads
//! the stored bytes and decodes on the device.

pub mod cpu;
pub mod gpu;
pub mod kernels;
pub mod patterns;
pub mod select;
#[cfg(target_arch = "x86_64")]
mod simd_x86;

use serde::Serialize;

use crate::cancel::Cancel;
use crate::checkpoint::{Checkpoint, CheckpointError, TensorInfo};

/// A tensor to compute on.
#[derive(Clone, Copy)]
pub struct TensorRef<'a> {
    /// The checkpoint holding it.
    pub ckpt: &'a Checkpoint,
    /// The tensor.
    pub tensor: &'a TensorInfo,
}

impl<'a> TensorRef<'a> {
    /// A reference to `tensor` in `ckpt`.
    pub fn new(ckpt: &'a Checkpoint, tensor: &'a TensorInfo) -> Self {
        Self { ckpt, tensor }
    }

    /// `(rows, cols)` of the tensor seen as a matrix: `[dim0, product of the rest]`.
    pub fn matrix_shape(&self) -> (usize, usize) {
        let rows = self.tensor.shape.first().copied().unwrap_or(1) as usize;
        let cols = self.tensor.shape.iter().skip(1).product::<u64>() as usize;
        (rows, cols)
    }
}

/// Why a kernel did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// Reading the tensor failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The caller cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The input does not fit the kernel (e.g. a 1-D tensor for a matrix kernel).
    #[error("tensor {tensor:?}: {message}")]
    Shape {
        /// The tensor.
        tensor: String,
        /// What is wrong.
        message: String,
    },
    /// The GPU failed (no adapter, device lost, out of memory, input too large for its
    /// buffers); callers fall back to the CPU.
    #[error("GPU: {0}")]
    Gpu(String),
    /// A linear-algebra routine failed to converge.
    #[error("tensor {tensor:?}: {message}")]
    Numerical {
        /// The tensor.
        tensor: String,
        /// What failed.
        message: String,
    },
}

/// How the histogram bins values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BinScale {
    /// Equal-width bins over [min, max] of the finite values.
    Linear,
    /// Equal-width bins of log10(|x|) over the finite non-zero values.
    Log10Abs,
}

/// What the statistics kernel computes.
#[derive(Clone, Copy, Debug)]
pub struct StatsRequest {
    /// Number of histogram bins (at least 1).
    pub bins: usize,
    /// Linear or log10(|x|) bins.
    pub scale: BinScale,
}

impl Default for StatsRequest {
    fn default() -> Self {
        Self { bins: 256, scale: BinScale::Linear }
    }
}

/// Moments of the finite values as exact-merge sums (Pébay's formulas), plus counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Moments {
    /// Finite values.
    pub n: u64,
    /// Their mean.
    pub mean: f64,
    /// Σ (x − mean)².
    pub m2: f64,
    /// Σ (x − mean)³.
    pub m3: f64,
    /// Σ (x − mean)⁴.
    pub m4: f64,
    /// Smallest finite value (+∞ when none).
    pub min: f32,
    /// Largest finite value (−∞ when none).
    pub max: f32,
    /// Smallest non-zero |x| of the finite values (+∞ when none).
    pub min_abs_nonzero: f32,
    /// NaN values.
    pub nan: u64,
    /// +∞ values.
    pub pos_inf: u64,
    /// −∞ values.
    pub neg_inf: u64,
    /// Values equal to zero (either sign).
    pub zeros: u64,
}

/// A histogram whose bin membership is defined by comparisons against f32 thresholds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistogramCounts {
    /// Bin scale.
    pub scale: BinScale,
    /// `bins + 1` edges, non-decreasing: values for linear bins, log10(|x|) for log bins.
    pub edges: Vec<f32>,
    /// The f32 values compared against: equal to `edges` for linear bins, `|x|` thresholds
    /// (10^edge) for log bins. Bin `i` holds `t[i] <= v < t[i+1]`, the last also `v == t[bins]`.
    pub thresholds: Vec<f32>,
    /// Count per bin.
    pub counts: Vec<u64>,
}

/// Everything the statistics kernel returns for one tensor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatsResult {
    /// Moments and counts.
    pub moments: Moments,
    /// Histogram.
    pub histogram: HistogramCounts,
    /// Values with |x − mean| > 3·std and > 6·std (population std of the finite values).
    pub outliers: [u64; 2],
}

/// Per-channel statistics of a matrix `[rows, cols]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChannelResult {
    /// Rows (output channels).
    pub rows: usize,
    /// Columns (input channels).
    pub cols: usize,
    /// Per row: max |x|.
    pub row_abs_max: Vec<f32>,
    /// Per row: L2 norm.
    pub row_l2: Vec<f64>,
    /// Per row: excess kurtosis.
    pub row_kurtosis: Vec<f64>,
    /// Per column: max |x|.
    pub col_abs_max: Vec<f32>,
    /// Per column: L2 norm.
    pub col_l2: Vec<f64>,
    /// Per column: excess kurtosis.
    pub col_kurtosis: Vec<f64>,
    /// Tile height in rows.
    pub tile_rows: usize,
    /// Tile width in columns.
    pub tile_cols: usize,
    /// Tiles down.
    pub grid_rows: usize,
    /// Tiles across.
    pub grid_cols: usize,
    /// Max |x| per tile, row-major `[grid_rows, grid_cols]`.
    pub tile_abs_max: Vec<f32>,
}

/// A tiled map of a matrix: one value per tile of `tile_rows × tile_cols` values.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TileMap {
    /// Tile height in rows.
    pub tile_rows: usize,
    /// Tile width in columns.
    pub tile_cols: usize,
    /// Tiles down.
    pub grid_rows: usize,
    /// Tiles across.
    pub grid_cols: usize,
    /// Row-major `[grid_rows, grid_cols]` values.
    pub values: Vec<f32>,
}

/// The Gram matrix of a tensor's smaller side, in f64.
#[derive(Clone, Debug, PartialEq)]
pub struct Gram {
    /// Its order: `min(rows, cols)`.
    pub n: usize,
    /// Whether it is `WᵀW` (columns) rather than `WWᵀ` (rows).
    pub of_columns: bool,
    /// Row-major `n × n`, symmetric.
    pub values: Vec<f64>,
}

/// Symmetric integer round-to-nearest quantization with groups of consecutive values along rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtnSpec {
    /// Bits per code (2..=8): codes lie in [−(2^(bits−1)−1), 2^(bits−1)−1].
    pub bits: u32,
    /// Values per group (must divide the row length).
    pub group: usize,
}

/// Codes, scales and error of an RTN quantization.
#[derive(Clone, Debug, PartialEq)]
pub struct RtnResult {
    /// Scale per group (absmax / qmax), row-major group order.
    pub scales: Vec<f32>,
    /// Code per value.
    pub codes: Vec<i8>,
    /// Σ (x − code·scale)² over the finite values.
    pub sq_err: f64,
}

/// Which implementation a backend is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackendInfo {
    /// `cpu` or `gpu`.
    pub kind: &'static str,
    /// The device: CPU threads, or the GPU adapter's name.
    pub device: String,
}

/// A kernel backend: one method per kernel family.
pub trait Backend: Send + Sync {
    /// What this backend runs on.
    fn info(&self) -> BackendInfo;

    /// Moments, counts, histogram and outlier counts of the tensor's values.
    fn stats(&self, t: TensorRef<'_>, req: &StatsRequest, cancel: &Cancel) -> Result<StatsResult, ComputeError>;

    /// Per-row and per-column abs-max, L2 and kurtosis, and a tiled abs-max map of at most
    /// `max_grid × max_grid` tiles.
    fn channels(&self, t: TensorRef<'_>, max_grid: usize, cancel: &Cancel) -> Result<ChannelResult, ComputeError>;

    /// The Gram matrix of the smaller side of the tensor seen as a matrix.
    fn gram(&self, t: TensorRef<'_>, cancel: &Cancel) -> Result<Gram, ComputeError>;

    /// The salience map: per tile of at most `max_grid × max_grid` tiles, the max of
    /// |x_ij| · |importance_j| (one importance per column).
    fn salience_tiles(
        &self,
        t: TensorRef<'_>,
        importance: &[f32],
        max_grid: usize,
        cancel: &Cancel,
    ) -> Result<TileMap, ComputeError>;

    /// Quantizes the tensor with symmetric RTN in groups: codes, scales and squared error.
    fn quantize_rtn(&self, t: TensorRef<'_>, spec: &RtnSpec, cancel: &Cancel) -> Result<RtnResult, ComputeError>;
}
