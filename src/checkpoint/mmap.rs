//! Read-only memory maps of checkpoint files.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::error::{CheckpointError, Result};

/// One checkpoint file, mapped read-only. Bytes are paged in by the OS only when touched, so a
/// 100 GB file costs nothing until its tensors are read.
#[derive(Debug)]
pub struct MappedFile {
    path: PathBuf,
    bytes: Bytes,
    /// Size and modification time when opened, to notice the file changing under the map.
    opened: (u64, Option<SystemTime>),
}

/// Where a [`MappedFile`]'s bytes live.
#[derive(Debug)]
enum Bytes {
    /// An empty file (mapping zero bytes fails on Linux).
    Empty,
    /// The file, mapped.
    Mapped(memmap2::Mmap),
    /// Bytes that are not on disk (fuzzing and in-memory tests): never "changed on disk".
    Owned(Vec<u8>),
}

impl MappedFile {
    /// Opens and maps `path`. An empty file is kept unmapped (mapping zero bytes fails on Linux).
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| CheckpointError::io(path, e))?;
        let meta = file.metadata().map_err(|e| CheckpointError::io(path, e))?;
        let len = meta.len();
        let opened = (len, meta.modified().ok());
        if len == 0 {
            return Ok(Self { path: path.to_owned(), bytes: Bytes::Empty, opened });
        }
        // SAFETY: the map is read-only and never handed out mutably. The one hazard of file-backed
        // maps is another process truncating the file while it is mapped: reading the lost pages
        // then raises SIGBUS. Checkpoints are opened for reading and weightbench never writes to
        // its inputs (export writes new files and renames them into place, which leaves the
        // mapped inode intact), so this only happens if a user truncates a model file in place
        // while it is open — the same contract every mmap-based model loader has.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(|e| CheckpointError::io(path, e))?;
        Ok(Self { path: path.to_owned(), bytes: Bytes::Mapped(map), opened })
    }

    /// A file's bytes held in memory under the name `path` (which need not exist): the readers
    /// run on them exactly as on a mapped file, which lets fuzzers feed them without disk I/O.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Self {
        Self { path: path.to_owned(), opened: (bytes.len() as u64, None), bytes: Bytes::Owned(bytes) }
    }

    /// How the file on disk differs from the one mapped (gone, another size, rewritten), or
    /// `None` while it is the same. Reading a mapped file that shrank raises SIGBUS: callers
    /// check this before reading it again and reopen it instead.
    pub fn change_on_disk(&self) -> Option<String> {
        if matches!(self.bytes, Bytes::Owned(_)) {
            return None;
        }
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) => return Some(format!("it can no longer be read ({e})")),
        };
        let (len, modified) = self.opened;
        if meta.len() != len {
            return Some(format!("its size went from {len} to {} bytes", meta.len()));
        }
        if meta.modified().ok() != modified {
            return Some("it was rewritten (its modification time changed)".into());
        }
        None
    }

    /// Lets the OS take back the pages of `range` from this process: streaming a checkpoint
    /// larger than memory then keeps its resident size to the chunks in flight, not the whole
    /// file. The bytes stay readable: a later read pages them in again (from the page cache, or
    /// the disk). Advice only; a failure changes nothing.
    pub fn release(&self, range: std::ops::Range<usize>) {
        if let Bytes::Mapped(map) = &self.bytes
            && range.start < range.end
            && range.end <= map.len()
        {
            // SAFETY: the map is a shared, read-only mapping of a file we never write.
            // MADV_DONTNEED on it only drops page-table entries: the next access faults the
            // file's pages back in, with the same contents, so every slice handed out from
            // `bytes()` keeps reading the same bytes. (It would discard data only in private
            // copy-on-write or anonymous memory, which this is not.)
            #[allow(unsafe_code)]
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, range.start, range.end - range.start)
            };
        }
    }

    /// The file's path as opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All bytes of the file.
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Empty => &[],
            Bytes::Mapped(map) => map,
            Bytes::Owned(bytes) => bytes,
        }
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.bytes().len() as u64
    }

    /// Whether the file has no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }
}
