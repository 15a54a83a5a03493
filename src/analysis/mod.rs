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
