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
    let mut ckpt =
        Checkpoint::open(path).map_err(|e| ExportError::ReadBack { path: path.to_owned(), message: e.to_string() })?;
    ckpt.set_release_from(0);
    check_tensors(&ckpt, path, tensors, checksums)
}

/// Whether `ckpt` (the written file at `path`, reopened) holds exactly `tensors`, each with the
/// type, shape and CRC-32 of the bytes written (safetensors and GGUF writers alike).
pub(super) fn check_tensors(
    ckpt: &Checkpoint,
    path: &Path,
    tensors: &[PlannedTensor],
    checksums: &[u32],
) -> Result<(), ExportError> {
    let fail = |message: String| ExportError::ReadBack { path: path.to_owned(), message };
    if ckpt.tensors().len() != tensors.len() {
        return Err(fail(format!("{} tensors read back, {} written", ckpt.tensors().len(), tensors.len())));
    }
    for (t, &crc) in tensors.iter().zip(checksums) {
        let got = ckpt.tensor(&t.name).ok_or_else(|| fail(format!("tensor {:?} is missing", t.name)))?;
        if got.dtype != t.dtype || got.shape != t.shape {
            return Err(fail(format!("tensor {:?} reads back as {} {:?}", t.name, got.dtype, got.shape)));
        }
        // Hashed a window at a time, each window's pages given back (when `ckpt` releases this
        // tensor): reading back a large output keeps little of it resident.
        let bytes = ckpt.raw_bytes(got).map_err(|e| fail(e.to_string()))?;
        let mut hasher = crc32fast::Hasher::new();
        for (w, window) in bytes.chunks(crate::checkpoint::RELEASE_WINDOW).enumerate() {
            hasher.update(window);
            let start = (w * crate::checkpoint::RELEASE_WINDOW) as u64;
            ckpt.release_part(got, start..start + window.len() as u64);
        }
        if hasher.finalize() != crc {
            return Err(fail(format!("tensor {:?}: bytes differ from those written", t.name)));
        }
    }
    Ok(())
}

/// Stages `folder/model.safetensors`, or — when the tensors exceed `max_shard` bytes — shards
/// `model-0000K-of-0000N.safetensors` of at most `max_shard` bytes each (a larger tensor gets a
/// shard of its own) and `model.safetensors.index.json` mapping every tensor to its shard, as
/// transformers writes them. `produce(i, sink)` is called with indices into `tensors`, in order.
pub fn write_folder(
    transaction: &mut Transaction,
    folder: &Path,
    metadata: &BTreeMap<String, String>,
    tensors: &[PlannedTensor],
    max_shard: Option<u64>,
    cancel: &Cancel,
    mut produce: impl FnMut(usize, &mut TensorSink<'_>) -> Result<(), ExportError>,
) -> Result<Vec<PathBuf>, ExportError> {
    let sizes: Vec<u64> = tensors.iter().map(|t| t.bytes().unwrap_or(0)).collect();
    let total: u64 = sizes.iter().sum();
    let Some(limit) = max_shard.filter(|&m| total > m) else {
        let file = write(transaction, &folder.join("model.safetensors"), metadata, tensors, cancel, produce)?;
        return Ok(vec![file]);
    };
    // Consecutive tensors in checkpoint order, a new shard when the next would pass the limit.
    let mut shards: Vec<std::ops::Range<usize>> = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, &s) in sizes.iter().enumerate() {
        if i > start && bytes + s > limit {
            shards.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += s;
    }
    shards.push(start..tensors.len());
    let n = shards.len();
    let mut files = Vec::with_capacity(n + 1);
    let mut weight_map = serde_json::Map::new();
    for (k, range) in shards.into_iter().enumerate() {
        let name = format!("model-{:05}-of-{n:05}.safetensors", k + 1);
        for t in &tensors[range.clone()] {
            weight_map.insert(t.name.clone(), serde_json::Value::String(name.clone()));
        }
        let first = range.start;
        files.push(write(transaction, &folder.join(&name), metadata, &tensors[range], cancel, |i, sink| {
            produce(first + i, sink)
        })?);
    }
    let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    let target = folder.join("model.safetensors.index.json");
    transaction.write_text(&target, &serde_json::to_string_pretty(&index).unwrap_or_default())?;
    files.push(target);
    Ok(files)
}

/// Parses a size such as `5GB`, `500MB`, `2GiB` or a number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = (t[..split].trim(), t[split..].trim().to_ascii_lowercase());
    let value: f64 = num.parse().map_err(|_| format!("`{text}` is not a size (e.g. 5GB, 500MB, 2GiB)"))?;
    let scale: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (B, KB, MB, GB, TB, KiB, MiB, GiB)")),
    };
    let bytes = value * scale;
    if !(1.0..1.8e19).contains(&bytes) {
        return Err(format!("`{text}` is not a usable shard size"));
    }
    Ok(bytes as u64)
}
