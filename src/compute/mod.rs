//! The kernel backend. [`Backend`] has one method per kernel family; [`cpu::CpuBackend`] (rayon)
//! is the reference implementation, [`gpu::GpuBackend`] (wgpu) mirrors it, and
//! [`select::SelectedBackend`] runs the backend the user chose, falling back to the CPU when the
//! GPU fails. Analysis code is written against the trait only.
//!
//! Kernels read any [`ValueSource`]: a checkpoint tensor ([`TensorRef`]), values in memory, or
//! chunks made on demand; each backend decides how bytes travel (the CPU decodes through the
//! codecs into host memory; the GPU uploads stored bytes and decodes on the device). Every kernel
//! returns its result with the [`Provenance`] of the backend that actually ran it ([`Ran`]).
//! Quantization kernels stream: chunks in, codes out to a [`CodeSink`], error accumulated.

pub mod cpu;
pub mod floats;
pub mod gpu;
pub mod kernels;
pub mod patterns;
pub mod provenance;
pub mod select;
#[cfg(target_arch = "x86_64")]
mod simd_x86;
pub mod source;

use serde::{Deserialize, Serialize};

pub use floats::FloatFormat;
pub use provenance::{BackendKind, Provenance, Ran};
pub use source::{BlocksSource, FnSource, SliceSource, Stored, TensorRef, ValueSource};

use crate::cancel::Cancel;
use crate::checkpoint::CheckpointError;
pub use crate::codec::int::{Arith, GroupError, GroupParams, IntSpec};

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
    /// The GPU has no kernel for this input (a search that runs only on the CPU); callers run
    /// the CPU's and say why.
    #[error("{0}")]
    NotOnGpu(String),
    /// The sink of a streaming kernel refused its output.
    #[error("{0}")]
    Sink(String),
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatsResult {
    /// Moments and counts.
    pub moments: Moments,
    /// Histogram.
    pub histogram: HistogramCounts,
    /// Values with |x − mean| > 3·std and > 6·std (population std of the finite values).
    pub outliers: [u64; 2],
}

/// Per-channel statistics of a matrix `[rows, cols]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

/// A region of a matrix cut into tiles of `tile_rows × tile_cols` (the last row and column of
/// tiles may be smaller): what the region kernel summarises.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TileRegion {
    /// The rows of the region.
    pub rows: std::ops::Range<usize>,
    /// The columns of the region.
    pub cols: std::ops::Range<usize>,
    /// Rows per tile (at least 1).
    pub tile_rows: usize,
    /// Columns per tile (at least 1).
    pub tile_cols: usize,
}

impl TileRegion {
    /// Tiles down.
    pub fn grid_rows(&self) -> usize {
        self.rows.len().div_ceil(self.tile_rows.max(1))
    }

    /// Tiles across.
    pub fn grid_cols(&self) -> usize {
        self.cols.len().div_ceil(self.tile_cols.max(1))
    }
}

/// The running summaries of one tile (or of any set of values merged in row-major order): what
/// every heatmap mode is made from. The maxima and the extreme are exact on every backend; the
/// sums agree to about 1e-12 relative (f64 on the CPU, compensated f32 pairs on the GPU).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TileSummary {
    /// max |x| of the finite values.
    pub max_abs: f32,
    /// The first finite value of largest |x|, sign kept.
    pub extreme: f32,
    /// max |x| · |importance of its column| (0 without importance).
    pub salience: f32,
    /// Σ x.
    pub sum: f64,
    /// Σ x².
    pub sum_sq: f64,
    /// Finite values.
    pub count: u64,
    /// NaN and ±Inf values (left out of everything else).
    pub non_finite: u64,
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

/// Where a quantization kernel delivers its output: whole groups, in order.
pub trait CodeSink {
    /// Called once before anything is delivered, with the number of groups to come. A kernel
    /// that starts over (after a GPU fallback) calls it again: everything received before is
    /// to be forgotten.
    fn begin(&mut self, groups: u64) -> Result<(), ComputeError>;

    /// The codes of consecutive whole groups starting at group `first_group`: the parameters of
    /// each group and `group` codes each, in order.
    fn put(&mut self, first_group: u64, params: &[GroupParams], codes: &[i8]) -> Result<(), ComputeError>;
}

/// A sink that keeps every group's parameters and every code in memory (tests, small tensors,
/// previews that draw the codes).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CollectCodes {
    /// One (scale, zero point) per group.
    pub params: Vec<GroupParams>,
    /// One code per value.
    pub codes: Vec<i8>,
}

impl CodeSink for CollectCodes {
    fn begin(&mut self, groups: u64) -> Result<(), ComputeError> {
        self.params.clear();
        self.codes.clear();
        self.params.reserve(usize::try_from(groups).unwrap_or(0).min(1 << 24));
        Ok(())
    }

    fn put(&mut self, first_group: u64, params: &[GroupParams], codes: &[i8]) -> Result<(), ComputeError> {
        if first_group != self.params.len() as u64 {
            return Err(ComputeError::Sink(format!(
                "groups arrived out of order: {first_group} after {}",
                self.params.len()
            )));
        }
        self.params.extend_from_slice(params);
        self.codes.extend_from_slice(codes);
        Ok(())
    }
}

/// Checks that `spec` fits the rows of `src` (and `importance` its columns) and begins `sink`
/// with the number of groups: the start of every integer quantization kernel, whichever backend
/// runs it. Returns the row length.
pub(crate) fn begin_int(
    src: &dyn ValueSource,
    spec: &IntSpec,
    importance: Option<&[f32]>,
    sink: &mut dyn CodeSink,
) -> Result<usize, ComputeError> {
    let (_, cols) = src.matrix_shape();
    spec.check(cols).map_err(|m| source::shape_error(src, m))?;
    if let Some(imp) = importance
        && imp.len() != cols
    {
        return Err(source::shape_error(
            src,
            format!("the importance vector has {} values for {cols} input channels", imp.len()),
        ));
    }
    sink.begin(src.numel() / spec.group as u64)?;
    Ok(cols)
}

/// Where a block-encoding kernel delivers its bytes: whole rows, in order.
pub trait ByteSink {
    /// Called once before anything is delivered, with the number of bytes to come (again after
    /// a GPU fallback that starts over: forget everything received before).
    fn begin(&mut self, bytes: u64) -> Result<(), ComputeError>;

    /// The next bytes of part `part` (0: the codes; 1: the scales of a float format), for the
    /// values from `first_value` of the tensor on. Within one batch the side part comes first.
    fn put(&mut self, first_value: u64, part: usize, bytes: &[u8]) -> Result<(), ComputeError>;

    /// Whether the kernel should also deliver the decoded values ([`ByteSink::decoded`]).
    fn wants_decoded(&self) -> bool {
        false
    }

    /// Decoded values from `first_value` on, when [`ByteSink::wants_decoded`].
    fn decoded(&mut self, _first_value: u64, _values: &[f32]) -> Result<(), ComputeError> {
        Ok(())
    }
}

/// The rows of `src` as whole blocks of `dtype`, and `importance` (per column) and `search`
/// (an imatrix row) of its row length, or why not; the start of every block-encoding kernel.
pub(crate) fn begin_blocks(
    src: &dyn ValueSource,
    dtype: crate::codec::DType,
    importance: Option<&[f32]>,
    search: Option<&[f32]>,
    sink: &mut dyn ByteSink,
) -> Result<usize, ComputeError> {
    let cols = match src.shape() {
        [] | [_] => return Err(source::shape_error(src, format!("{dtype} needs a matrix"))),
        [.., c] => *c as usize,
    };
    if !crate::codec::ggml::can_encode(dtype) {
        return Err(source::shape_error(src, format!("there is no {dtype} encoder")));
    }
    if cols == 0 || !cols.is_multiple_of(dtype.block_elems()) {
        return Err(source::shape_error(src, format!("rows of {cols} are not whole {dtype} blocks")));
    }
    for v in [importance, search].into_iter().flatten() {
        if v.len() != cols {
            return Err(source::shape_error(
                src,
                format!("the importance vector has {} values for {cols} input channels", v.len()),
            ));
        }
    }
    sink.begin(src.numel() / dtype.block_elems() as u64 * dtype.block_bytes() as u64)?;
    Ok(cols)
}

/// The row length for measuring `decoded` against `src`, or why they cannot be compared.
pub(crate) fn begin_measure(
    src: &dyn ValueSource,
    decoded: &dyn ValueSource,
    importance: Option<&[f32]>,
) -> Result<usize, ComputeError> {
    if src.shape() != decoded.shape() {
        return Err(source::shape_error(
            src,
            format!("decoded values of shape {:?} for a tensor of shape {:?}", decoded.shape(), src.shape()),
        ));
    }
    let cols = src.shape().last().copied().unwrap_or(1).max(1) as usize;
    if let Some(imp) = importance
        && imp.len() != cols
    {
        return Err(source::shape_error(
            src,
            format!("the importance vector has {} values for {cols} input channels", imp.len()),
        ));
    }
    Ok(cols)
}

/// A sink that drops the codes: for previews that need only the error.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiscardCodes;

impl CodeSink for DiscardCodes {
    fn begin(&mut self, _groups: u64) -> Result<(), ComputeError> {
        Ok(())
    }

    fn put(&mut self, _first_group: u64, _params: &[GroupParams], _codes: &[i8]) -> Result<(), ComputeError> {
        Ok(())
    }
}

/// Declares the kernels once: the [`Backend`] trait, and its implementation for the CPU and
/// GPU backends (their inherent methods of the same names, wrapped with their provenance) and
/// for the selected backend (which runs the choice, falling back to the CPU).
macro_rules! kernels {
    ($( $(#[$doc:meta])* fn $name:ident(&self, $src:ident: $src_ty:ty $(, $arg:ident: $ty:ty)* $(,)?) -> $out:ty; )*) => {
        /// A kernel backend: one method per kernel family, each returning its result with the
        /// provenance of the backend that ran it.
        pub trait Backend: Send + Sync {
            /// What runs the kernels when nothing falls back, for display. Never starts a device.
            fn label(&self) -> String;

            /// Whether the GPU was asked for (work only the CPU can do then says why).
            fn asks_gpu(&self) -> bool;

            $( $(#[$doc])* fn $name(&self, $src: $src_ty $(, $arg: $ty)*) -> Result<Ran<$out>, ComputeError>; )*
        }

        impl Backend for cpu::CpuBackend {
            fn label(&self) -> String {
                self.provenance().describe()
            }

            fn asks_gpu(&self) -> bool {
                false
            }

            $( fn $name(&self, $src: $src_ty $(, $arg: $ty)*) -> Result<Ran<$out>, ComputeError> {
                cpu::CpuBackend::$name(self, $src $(, $arg)*).map(|v| Ran::new(v, self.provenance()))
            } )*
        }

        impl Backend for gpu::GpuBackend {
            fn label(&self) -> String {
                self.provenance().describe()
            }

            fn asks_gpu(&self) -> bool {
                true
            }

            $( fn $name(&self, $src: $src_ty $(, $arg: $ty)*) -> Result<Ran<$out>, ComputeError> {
                gpu::GpuBackend::$name(self, $src $(, $arg)*).map(|v| Ran::new(v, self.provenance()))
            } )*
        }

        impl Backend for select::SelectedBackend {
            fn label(&self) -> String {
                self.label_now()
            }

            fn asks_gpu(&self) -> bool {
                self.uses_gpu()
            }

            $( fn $name(&self, $src: $src_ty $(, $arg: $ty)*) -> Result<Ran<$out>, ComputeError> {
                let ran = self.run($src.name(), |backend| backend.$name($src $(, $arg)*));
                $src.finished();
                ran
            } )*
        }
    };
}

kernels! {
    /// Moments, counts, histogram and outlier counts of the values.
    fn stats(&self, src: &dyn ValueSource, req: &StatsRequest, cancel: &Cancel) -> StatsResult;

    /// Per-row and per-column abs-max, L2 and kurtosis of a matrix, and a tiled abs-max map of
    /// at most `max_grid × max_grid` tiles.
    fn channels(&self, src: &dyn ValueSource, max_grid: usize, cancel: &Cancel) -> ChannelResult;

    /// The Gram matrix of the smaller side of the values seen as a matrix.
    fn gram(&self, src: &dyn ValueSource, cancel: &Cancel) -> Gram;

    /// The salience map: per tile of at most `max_grid × max_grid` tiles, the max of
    /// |x_ij| · |importance_j| (one importance per column).
    fn salience_tiles(&self, src: &dyn ValueSource, importance: &[f32], max_grid: usize, cancel: &Cancel) -> TileMap;

    /// The summaries of the tiles of a region of a matrix, row-major (`grid_rows × grid_cols`),
    /// with `importance` (one per column of the whole matrix) for the salience maxima.
    fn region_tiles(&self, src: &dyn ValueSource, region: &TileRegion, importance: Option<&[f32]>, cancel: &Cancel) -> Vec<TileSummary>;

    /// Every value, decoded to f32 in memory (for work that needs the whole matrix at once, such
    /// as a direct SVD).
    fn values(&self, src: &dyn ValueSource, cancel: &Cancel) -> Vec<f32>;

    /// Quantizes the values (rows of the matrix, in groups along each row) to integer codes
    /// ([`crate::codec::int`]), streaming: each chunk's group parameters and codes go to `sink`
    /// in order as they are made, and the error of the decoded values is accumulated (weighed
    /// per column by `importance` too, when given).
    fn quantize_int(&self, src: &dyn ValueSource, spec: &IntSpec, importance: Option<&[f32]>, sink: &mut dyn CodeSink, cancel: &Cancel) -> GroupError;

    /// Encodes the rows as llama.cpp's block type `dtype` (its reference encoders; with
    /// `search`, an imatrix row, its weighted searches), streaming the bytes to `sink` in order
    /// and accumulating the error of the decoded values (weighed per column by `importance`).
    fn encode_ggml(&self, src: &dyn ValueSource, dtype: crate::codec::DType, search: Option<&[f32]>, importance: Option<&[f32]>, sink: &mut dyn ByteSink, cancel: &Cancel) -> GroupError;

    /// The largest magnitude of the finite values (0 when there are none).
    fn abs_max(&self, src: &dyn ValueSource, cancel: &Cancel) -> f32;

    /// The error of `decoded` (the same shape) against the values: Σ (x − y)², Σ x², max |x − y|
    /// and, with an importance per column, the weighted sum — each source decoded where this
    /// backend decodes (the GPU decodes ggml blocks on the device).
    fn measure(&self, src: &dyn ValueSource, decoded: &dyn ValueSource, importance: Option<&[f32]>, cancel: &Cancel) -> GroupError;

    /// Encodes the values in a float format ([`FloatFormat`]: f16, bf16, FP8 E4M3 with scales,
    /// NF4), streaming codes (part 0) and scales (part 1) to `sink` in order and accumulating
    /// the error of the decoded values.
    fn encode_float(&self, src: &dyn ValueSource, format: &FloatFormat, importance: Option<&[f32]>, sink: &mut dyn ByteSink, cancel: &Cancel) -> GroupError;
}
