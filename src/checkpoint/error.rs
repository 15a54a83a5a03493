//! Errors of opening and reading checkpoints. Every message names the file, and the tensor where
//! one is involved, and says what was expected and what was found. Paths come last.

use std::path::PathBuf;

/// Why a checkpoint could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The operating system refused to open, stat or map a file.
    #[error("cannot read: {error} ({path})")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (in the message, not a separate source, so it is told once).
        error: std::io::Error,
    },
    /// A path that is neither a checkpoint file nor a folder holding one.
    #[error("no checkpoint found: {reason} ({path})")]
    NotACheckpoint {
        /// The path given.
        path: PathBuf,
        /// What was looked for.
        reason: String,
    },
    /// A file of zero bytes.
    #[error("the file is empty ({path})")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A file that ends before the structure it announces.
    #[error("truncated file: {what} needs {expected} bytes but the file has {found} ({path})")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What did not fit.
        what: String,
        /// Bytes needed.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// A header length field above the accepted limit.
    #[error("header of {found} bytes is larger than the {limit}-byte limit ({path})")]
    HeaderTooLarge {
        /// The file.
        path: PathBuf,
        /// The announced length.
        found: u64,
        /// The limit.
        limit: u64,
    },
    /// A header that is not valid UTF-8 or not valid JSON of the expected shape.
    #[error("invalid header: {message} ({path})")]
    InvalidHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// One tensor name given twice, in one header or in two shards.
    #[error("tensor {tensor:?} is defined twice: {where_}; an ambiguous checkpoint is refused ({path})")]
    DuplicateTensor {
        /// The file (the second one, for duplicates across shards).
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Where the two definitions are.
        where_: String,
    },
    /// An element type that this program does not know.
    #[error("tensor {tensor:?}: unknown or unsupported dtype {dtype:?} ({path})")]
    UnknownDtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The dtype as written.
        dtype: String,
    },
    /// A tensor whose entry is inconsistent: range reversed or out of the data section, byte size
    /// not matching its shape, or ranges overlapping.
    #[error("tensor {tensor:?}: {message} ({path})")]
    InvalidTensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// What is wrong, with expected and found values.
        message: String,
    },
    /// A data section with bytes that no tensor covers (the safetensors format forbids holes).
    #[error("data section is not fully indexed: {message} ({path})")]
    Unindexed {
        /// The file.
        path: PathBuf,
        /// Where the uncovered bytes are.
        message: String,
    },
    /// A shard index that names a file that does not exist.
    #[error("the index names shard {shard:?} for tensor {tensor:?}, but that file does not exist ({path})")]
    MissingShard {
        /// The index file.
        path: PathBuf,
        /// The shard as named in the index.
        shard: String,
        /// The first tensor mapped to it.
        tensor: String,
    },
    /// A shard index that maps a tensor to a shard which does not contain it.
    #[error("the index maps tensor {tensor:?} to shard {shard:?}, which does not contain it ({path})")]
    MissingTensor {
        /// The index file.
        path: PathBuf,
        /// The shard.
        shard: String,
        /// The tensor.
        tensor: String,
    },
    /// A request for a tensor that the checkpoint does not hold.
    #[error("no tensor named {tensor:?} in this checkpoint ({path})")]
    NoSuchTensor {
        /// The checkpoint's main path.
        path: PathBuf,
        /// The name asked for.
        tensor: String,
    },
    /// A decode that failed (only on inconsistent internal state; reported, never a panic).
    #[error("tensor {tensor:?}: cannot decode: {message} ({path})")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The codec's message.
        message: String,
    },
}

/// Result of checkpoint operations.
pub type Result<T, E = CheckpointError> = std::result::Result<T, E>;

impl CheckpointError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CheckpointError::Io { path: path.into(), error: source }
    }
}
