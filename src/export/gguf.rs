//! Writing GGUF v3 files: the header (key-values, then tensor infos with offsets known up front),
//! padding to the alignment, and the tensors streamed in, each padded to the alignment as the
//! GGUF spec requires. The file is then read back through the same reader the app uses and each
//! tensor's bytes checked against the checksum taken while writing, before its transaction may
//! rename it into place.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::ExportError;
use super::atomic::Transaction;
use super::safetensors::TensorSink;
use crate::cancel::Cancel;
use crate::checkpoint::Checkpoint;
use crate::checkpoint::gguf::{GgufArray, GgufValue};

/// The alignment llama.cpp writes and expects by default (`general.alignment` absent).
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// A tensor to be written: its GGUF name, stored type (a ggml type) and shape, outermost first
/// (written innermost first, as GGUF stores `ne`).
pub type GgufTensor = super::safetensors::PlannedTensor;

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_array(out: &mut Vec<u8>, a: &GgufArray) {
    out.extend_from_slice(&a.element_type().to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    match a {
        GgufArray::Numbers { bytes, .. } => out.extend_from_slice(bytes),
        GgufArray::Strings { .. } => a.strings().for_each(|s| put_str(out, s)),
        GgufArray::Arrays(items) => items.iter().for_each(|i| put_array(out, i)),
    }
}

/// Appends a value's payload (without its type id).
fn put_value(out: &mut Vec<u8>, v: &GgufValue) {
    match v {
        GgufValue::U8(x) => out.push(*x),
        GgufValue::I8(x) => out.push(*x as u8),
        GgufValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::Bool(x) => out.push(u8::from(*x)),
        GgufValue::String(s) => put_str(out, s),
        GgufValue::Array(a) => put_array(out, a),
        GgufValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

/// The header: magic, version 3, counts, key-values, tensor infos with aligned offsets, padded
/// to the alignment.
fn header(metadata: &[(String, GgufValue)], tensors: &[GgufTensor], alignment: u64) -> Result<Vec<u8>, ExportError> {
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut out, k);
        out.extend_from_slice(&v.type_id().to_le_bytes());
        put_value(&mut out, v);
    }
    let mut offset = 0u64;
    for t in tensors {
        let id = t.dtype.ggml_id().ok_or_else(|| ExportError::Unsupported {
            message: format!("tensor {:?}: GGUF has no type for {}", t.name, t.dtype),
        })?;
        let bytes = t.bytes().ok_or_else(|| ExportError::Unsupported {
            message: format!("tensor {:?}: shape {:?} is not whole {} blocks", t.name, t.shape, t.dtype),
        })?;
        put_str(&mut out, &t.name);
        out.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
        for d in t.shape.iter().rev() {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        offset += bytes.div_ceil(alignment) * alignment;
    }
    out.resize((out.len() as u64).div_ceil(alignment) as usize * alignment as usize, 0);
    Ok(out)
}

/// Stages `target` in `transaction` with `metadata` and `tensors` in order; `produce(i, sink)`
/// must write exactly the bytes of tensor `i`. Nothing appears at `target` until the
/// transaction commits.
pub fn write(
    transaction: &mut Transaction,
    target: &Path,
    metadata: &[(String, GgufValue)],
    tensors: &[GgufTensor],
    alignment: u64,
    cancel: &Cancel,
    mut produce: impl FnMut(usize, &mut TensorSink<'_>) -> Result<(), ExportError>,
) -> Result<PathBuf, ExportError> {
    let mut names = std::collections::HashSet::new();
    if let Some(t) = tensors.iter().find(|t| !names.insert(t.name.as_str())) {
        return Err(ExportError::Unsupported { message: format!("tensor {:?} would be written twice", t.name) });
    }
    if alignment == 0 || !alignment.is_multiple_of(8) {
        return Err(ExportError::Unsupported { message: format!("alignment {alignment} is not a multiple of 8") });
    }
    let head = header(metadata, tensors, alignment)?;
    let mut file = transaction.create(target)?;
    let temp = file.temp_path().to_owned();
    file.write_all(&head).map_err(|e| ExportError::io(&temp, e))?;
    let mut checksums = Vec::with_capacity(tensors.len());
    for (i, t) in tensors.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(ExportError::Cancelled);
        }
        let mut sink = TensorSink::new(&mut file);
        produce(i, &mut sink)?;
        let (written, crc) = sink.finish();
        let expected = t.bytes().unwrap_or(0);
        if written != expected {
            return Err(ExportError::ReadBack {
                path: temp,
                message: format!("tensor {:?}: {written} bytes were produced, {expected} expected", t.name),
            });
        }
        let pad = expected.div_ceil(alignment) * alignment - expected;
        file.write_all(&vec![0u8; pad as usize]).map_err(|e| ExportError::io(&temp, e))?;
        checksums.push(crc);
    }
    let written = transaction.finish(file)?;
    read_back(&written, metadata.len(), tensors, &checksums)?;
    Ok(target.to_owned())
}

/// Re-opens the written file with the checkpoint reader and compares it with what was meant.
fn read_back(path: &Path, keys: usize, tensors: &[GgufTensor], checksums: &[u32]) -> Result<(), ExportError> {
    let fail = |message: String| ExportError::ReadBack { path: path.to_owned(), message };
    let mut ckpt = Checkpoint::open(path).map_err(|e| fail(e.to_string()))?;
    ckpt.set_release_from(0);
    let info = ckpt.gguf().ok_or_else(|| fail("not read as GGUF".into()))?;
    if info.metadata.len() != keys {
        return Err(fail(format!("{} keys read back, {keys} written", info.metadata.len())));
    }
    super::safetensors::check_tensors(&ckpt, path, tensors, checksums)
}
