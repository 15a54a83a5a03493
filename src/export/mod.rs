//! Writers of new files. Each writes to a temporary file in the target folder, reads it back and
//! checks it, then renames it into place; inputs are never overwritten and a failure leaves no
//! partial output behind (DESIGN.md, invariant 6).

pub mod atomic;
pub mod convert;
mod ct;
pub mod gguf;
mod gguf_meta;
pub mod hf_config;
pub mod imatrix;
pub mod model;
pub mod plans;
pub mod safetensors;

use std::path::PathBuf;

use crate::checkpoint::CheckpointError;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Writing failed.
    #[error("cannot write: {error} ({path})")]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The output would replace one of the input files.
    #[error("refusing to overwrite an input file of this export ({path})")]
    WouldOverwriteInput {
        /// The output path.
        path: PathBuf,
    },
    /// The output exists and overwriting was not asked for.
    #[error("the output already exists; pass --overwrite to replace it ({path})")]
    Exists {
        /// The output path.
        path: PathBuf,
    },
    /// Reading the source failed.
    #[error(transparent)]
    Source(#[from] CheckpointError),
    /// The written file did not read back as intended.
    #[error("the written file does not read back as intended: {message} ({path})")]
    ReadBack {
        /// The temporary file.
        path: PathBuf,
        /// What differed.
        message: String,
    },
    /// The input cannot be converted as asked.
    #[error("{message}")]
    Unsupported {
        /// What is not supported and what to do instead.
        message: String,
    },
    /// The caller cancelled the export.
    #[error("cancelled")]
    Cancelled,
}

impl ExportError {
    pub(crate) fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        ExportError::Io { path: path.into(), error }
    }
}
