//! What is computed from tensors. Every function streams tensor bytes in chunks through the
//! memory map, so memory stays bounded whatever the tensor's size, and checks a [`Cancel`] flag
//! between chunks so long work can be stopped.

mod cancel;
pub mod histogram;

pub use cancel::Cancel;
pub use histogram::{Histogram, histogram};

use crate::checkpoint::CheckpointError;

/// Why an analysis did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// Reading the tensor failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The caller cancelled the work.
    #[error("cancelled")]
    Cancelled,
}
