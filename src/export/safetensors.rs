//! Writing safetensors files: header first (sizes are known up front), tensors streamed in,
//! then the file is read back through the same reader the app uses and every tensor's bytes
//! are checked against the checksum taken while writing; only a file that reads back as meant
//! joins its transaction, to be renamed into place with the others.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::ExportError;
use super::atomic::{StagedFile, Transaction};
use crate::cancel::Cancel;
use crate::checkpoint::Checkpoint;
use crate::codec::DType;

/// A tensor to be written: its name, stored type and shape.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedTensor {
    /// Name in the output.
    pub name: String,
    /// Stored element type.
    pub dtype: DType,
    /// Shape, outermost first.
    pub shape: Vec<u64>,
}

impl PlannedTensor {
    /// Bytes the tensor takes.
    pub fn bytes(&self) -> Option<u64> {
        let n = self.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
        self.dtype.byte_len(n)
    }
}

/// Where a producer writes one tensor's bytes; counts and checksums them.
pub struct TensorSink<'a> {
    file: &'a mut StagedFile,
    written: u64,
    crc: crc32fast::Hasher,
}

impl<'a> TensorSink<'a> {
    /// A sink appending to `file`.
    pub(super) fn new(file: &'a mut StagedFile) -> Self {
        TensorSink { file, written: 0, crc: crc32fast::Hasher::new() }
    }

    /// Bytes written and their CRC-32.
    pub(super) fn finish(self) -> (u64, u32) {
        (self.written, self.crc.finalize())
    }

    /// Appends bytes of the current tensor.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        let path = self.file.temp_path().to_owned();
        self.file.write_all(bytes).map_err(|e| ExportError::io(path, e))?;
        self.crc.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// Builds the header: JSON with the tensors in the given order, padded with spaces to a multiple
/// of 8 bytes as the reference writer does.
fn header_bytes(tensors: &[PlannedTensor], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>, ExportError> {
    let mut map = serde_json::Map::new();
    if !metadata.is_empty() {
        map.insert("__metadata__".into(), serde_json::to_value(metadata).unwrap_or_default());
    }
    let mut offset = 0u64;
    for t in tensors {
        let bytes = t.bytes().ok_or_else(|| ExportError::Unsupported {
            message: format!("tensor {:?}: shape {:?} of {} has no whole byte size", t.name, t.shape, t.dtype),
        })?;
        map.insert(
            t.name.clone(),
            serde_json::json!({"dtype": t.dtype.name(), "shape": t.shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut text = serde_json::to_vec(&serde_json::Value::Object(map)).unwrap_or_default();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    Ok(text)
}

/// Stages `target` in `transaction` with `tensors` in order; `produce(i, sink)` must write
/// exactly the bytes of tensor `i`. The transaction refuses inputs and existing files (unless
/// it overwrites); nothing appears at `target` until it commits.
pub fn write(
    transaction: &mut Transaction,
    target: &Path,
    metadata: &BTreeMap<String, String>,
    tensors: &[PlannedTensor],
    cancel: &Cancel,
    mut produce: impl FnMut(usize, &mut TensorSink<'_>) -> Result<(), ExportError>,
) -> Result<PathBuf, ExportError> {
    let mut names = HashSet::new();
    for t in tensors {
        if !DType::SAFETENSORS.contains(&t.dtype) {
            return Err(ExportError::Unsupported { message: format!("safetensors cannot store {}", t.dtype) });
        }
        if !names.insert(t.name.as_str()) {
            return Err(ExportError::Unsupported { message: format!("tensor {:?} would be written twice", t.name) });
        }
    }
    let header = header_bytes(tensors, metadata)?;
    let mut file = transaction.create(target)?;
    let temp = file.temp_path().to_owned();
    file.write_all(&(header.len() as u64).to_le_bytes()).map_err(|e| ExportError::io(&temp, e))?;
    file.write_all(&header).map_err(|e| ExportError::io(&temp, e))?;

    let mut checksums = Vec::with_capacity(tensors.len());
    for (i, t) in tensors.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(ExportError::Cancelled);
        }
        let mut sink = TensorSink { file: &mut file, written: 0, crc: crc32fast::Hasher::new() };
        produce(i, &mut sink)?;
        let expected = t.bytes().unwrap_or(0);
        if sink.written != expected {
            return Err(ExportError::ReadBack {
                path: temp,
                message: format!("tensor {:?}: {} bytes were produced, {expected} expected", t.name, sink.written),
            });
        }
        checksums.push(sink.crc.finalize());
    }
    let written = transaction.finish(file)?;
    read_back(&written, tensors, &checksums)?;
    Ok(target.to_owned())
}

/// Re-opens the written file with the checkpoint reader and compares it with what was meant.
fn read_back(path: &Path, tensors: &[PlannedTensor], checksums: &[u32]) -> Result<(), ExportError> {
    let fail = |message: String| ExportError::ReadBack { path: path.to_owned(), message };
    let ckpt = Checkpoint::open(path).map_err(|e| fail(e.to_string()))?;
    if ckpt.tensors().len() != tensors.len() {
        return Err(fail(format!("{} tensors read back, {} written", ckpt.tensors().len(), tensors.len())));
    }
    for (t, &crc) in tensors.iter().zip(checksums) {
        let got = ckpt.tensor(&t.name).ok_or_else(|| fail(format!("tensor {:?} is missing", t.name)))?;
        if got.dtype != t.dtype || got.shape != t.shape {
            return Err(fail(format!("tensor {:?} reads back as {} {:?}", t.name, got.dtype, got.shape)));
        }
        if crc32fast::hash(ckpt.raw_bytes(got).map_err(|e| fail(e.to_string()))?) != crc {
            return Err(fail(format!("tensor {:?}: bytes differ from those written", t.name)));
        }
    }
    Ok(())
}
