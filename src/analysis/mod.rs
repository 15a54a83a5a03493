//! What is computed from tensors, written against the [`crate::compute::Backend`] trait:
//! statistics and histograms ([`stats`]), per-channel outliers and tiled maps ([`channels`]),
//! singular values and WeightWatcher's spectral metrics ([`spectrum`], [`powerlaw`]).

pub mod channels;
pub mod diff;
pub mod heatmap;
/// llama.cpp importance matrices (read with the checkpoint files; here for the analyses that use them).
pub use crate::checkpoint::imatrix;
pub mod powerlaw;
pub mod report;
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

/// Calls `visit(i)` for every index of `tensors`: the small ones several at a time (one per
/// thread), then the large ones one after another (each with every thread inside). The first
/// error stops the scheduling of more work and is returned.
pub fn try_for_each_tensor<E: Send>(
    tensors: &[&crate::checkpoint::TensorInfo],
    visit: impl Fn(usize) -> Result<(), E> + Sync,
) -> Result<(), E> {
    use rayon::prelude::*;
    let (small, large): (Vec<usize>, Vec<usize>) =
        (0..tensors.len()).partition(|&i| tensors[i].numel() <= SMALL_TENSOR_VALUES);
    small.par_iter().try_for_each(|&i| visit(i))?;
    large.into_iter().try_for_each(visit)
}

/// Runs `analyse` over `tensors` ([`try_for_each_tensor`]) and returns the results in the order
/// of `tensors`; `progress(i)` is called as tensor `i` finishes (from any thread). The first
/// error ends the run.
pub fn each_tensor<T: Send>(
    tensors: &[&crate::checkpoint::TensorInfo],
    analyse: impl Fn(&crate::checkpoint::TensorInfo) -> Result<T, AnalysisError> + Sync,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<T>, AnalysisError> {
    let slots: Vec<std::sync::Mutex<Option<T>>> = tensors.iter().map(|_| std::sync::Mutex::new(None)).collect();
    try_for_each_tensor(tensors, |i| -> Result<(), AnalysisError> {
        let r = analyse(tensors[i])?;
        progress(i);
        if let Ok(mut slot) = slots[i].lock() {
            *slot = Some(r);
        }
        Ok(())
    })?;
    Ok(slots.into_iter().filter_map(|slot| slot.into_inner().ok().flatten()).collect())
}
