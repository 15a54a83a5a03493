//! What is computed from tensors, written against the [`crate::compute::Backend`] trait:
//! statistics and histograms ([`stats`]), per-channel outliers and tiled maps ([`channels`]),
//! singular values and WeightWatcher's spectral metrics ([`spectrum`], [`powerlaw`]).

pub mod channels;
pub mod imatrix;
pub mod powerlaw;
pub mod salience;
pub mod spectrum;
pub mod stats;

pub use crate::cancel::Cancel;

use crate::checkpoint::CheckpointError;
use crate::compute::ComputeError;

/// Why an analysis did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// Reading the tensor failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A kernel failed.
    #[error(transparent)]
    Compute(ComputeError),
    /// The caller cancelled the work.
    #[error("cancelled")]
    Cancelled,
}

impl From<ComputeError> for AnalysisError {
    fn from(e: ComputeError) -> Self {
        match e {
            ComputeError::Cancelled => AnalysisError::Cancelled,
            ComputeError::Checkpoint(c) => AnalysisError::Checkpoint(c),
            other => AnalysisError::Compute(other),
        }
    }
}

/// Tensors of at most this many values are analysed several at a time, one per thread: for
/// them the fork and join of a tensor's own parallel passes would cost more than the passes.
/// Larger ones run one after another with every thread on each, so memory stays within one
/// large tensor plus a small tensor per thread.
pub const SMALL_TENSOR_VALUES: u64 = 1 << 22;

/// Runs `analyse` over `tensors` (small ones several at a time, large ones one after another)
/// and returns the results in the order of `tensors`; `progress(i)` is called as tensor `i`
/// finishes (from any thread). The first error ends the run.
pub fn each_tensor<T: Send>(
    tensors: &[&crate::checkpoint::TensorInfo],
    analyse: impl Fn(&crate::checkpoint::TensorInfo) -> Result<T, AnalysisError> + Sync,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<T>, AnalysisError> {
    use rayon::prelude::*;
    let mut out: Vec<Option<T>> = std::iter::repeat_with(|| None).take(tensors.len()).collect();
    let (small, large): (Vec<usize>, Vec<usize>) =
        (0..tensors.len()).partition(|&i| tensors[i].numel() <= SMALL_TENSOR_VALUES);
    let small_results: Vec<(usize, T)> = small
        .par_iter()
        .map(|&i| {
            let r = analyse(tensors[i])?;
            progress(i);
            Ok((i, r))
        })
        .collect::<Result<_, AnalysisError>>()?;
    for (i, r) in small_results {
        out[i] = Some(r);
    }
    for i in large {
        out[i] = Some(analyse(tensors[i])?);
        progress(i);
    }
    Ok(out.into_iter().flatten().collect())
}
