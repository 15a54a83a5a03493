//! Per-tensor statistics: moments (f64, exact block merging), counts of special values,
//! outliers at 3σ and 6σ, and a histogram whose counts equal `numpy.histogram(values, bins=t)`
//! for the reported f32 thresholds `t`.

use serde::{Deserialize, Serialize};

use super::{AnalysisError, Cancel};
use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::compute::{Backend, HistogramCounts, Provenance, StatsRequest, TensorRef};

/// Statistics of one tensor, as `weightbench stats --json` prints them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorStats {
    /// Tensor name.
    pub name: String,
    /// Stored dtype.
    pub dtype: String,
    /// Shape.
    pub shape: Vec<u64>,
    /// All values, finite or not.
    pub count: u64,
    /// Finite values (the ones moments and histograms use).
    pub finite: u64,
    /// Mean of the finite values.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Smallest finite value.
    pub min: f32,
    /// Largest finite value.
    pub max: f32,
    /// Largest |x| of the finite values.
    pub abs_max: f32,
    /// Skewness (population); null when the variance is zero.
    pub skewness: f64,
    /// Excess kurtosis m4/m2² − 3 (population); null when the variance is zero.
    pub kurtosis: f64,
    /// NaN values.
    pub nan: u64,
    /// +Inf values.
    pub pos_inf: u64,
    /// −Inf values.
    pub neg_inf: u64,
    /// Exact zeros.
    pub zeros: u64,
    /// Finite values with |x − mean| > 3·std.
    pub outliers_3sigma: u64,
    /// Finite values with |x − mean| > 6·std.
    pub outliers_6sigma: u64,
    /// Histogram: bin `i` holds `thresholds[i] <= v < thresholds[i+1]` (the last bin also
    /// `v == thresholds[bins]`), compared with |x| for log bins.
    pub histogram: HistogramCounts,
    /// Which backend computed it (`backend`, `device`, and `fallback` with the reason when it
    /// ran elsewhere than asked).
    #[serde(flatten)]
    pub computed: Provenance,
}

/// Computes the statistics of `tensor` on `backend`.
pub fn tensor_stats(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    tensor: &TensorInfo,
    req: &StatsRequest,
    cancel: &Cancel,
) -> Result<TensorStats, AnalysisError> {
    let ran = backend.stats(&TensorRef::new(ckpt, tensor), req, cancel)?;
    let r = ran.value;
    let m = r.moments;
    let none = m.n == 0;
    Ok(TensorStats {
        name: tensor.name.clone(),
        dtype: tensor.dtype.name().to_owned(),
        shape: tensor.shape.clone(),
        count: tensor.numel(),
        finite: m.n,
        mean: if none { f64::NAN } else { m.mean },
        std: m.std(),
        min: if none { f32::NAN } else { m.min },
        max: if none { f32::NAN } else { m.max },
        abs_max: if none { f32::NAN } else { m.min.abs().max(m.max.abs()) },
        skewness: m.skewness(),
        kurtosis: m.kurtosis(),
        nan: m.nan,
        pos_inf: m.pos_inf,
        neg_inf: m.neg_inf,
        zeros: m.zeros,
        outliers_3sigma: r.outliers[0],
        outliers_6sigma: r.outliers[1],
        histogram: r.histogram,
        computed: ran.on,
    })
}

/// Statistics of several tensors, in the order of `tensors` (small ones several at a time:
/// [`super::each_tensor`]); `progress(i)` is called as tensor `i` finishes (from any thread).
pub fn tensors_stats(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    tensors: &[&TensorInfo],
    req: &StatsRequest,
    cancel: &Cancel,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<TensorStats>, AnalysisError> {
    super::each_tensor(tensors, |t| tensor_stats(backend, ckpt, t, req, cancel), progress)
}
