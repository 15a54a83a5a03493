//! llama.cpp importance-matrix files (GGUF, as `llama-imatrix` writes them) from the runtime's
//! activation statistics: `general.type = "imatrix"`, `imatrix.datasets`, `imatrix.chunk_count`,
//! `imatrix.chunk_size`, and per weight (GGUF name) `<name>.in_sum2` (F32, one row of Σx² per
//! input channel) and `<name>.counts` (F32, the tokens seen). `llama-quantize --imatrix` reads it,
//! and so do our own previews (`--importance`). Architectures without GGUF names here (BERT) are
//! written under their transformers names.

use std::path::{Path, PathBuf};

use super::ExportError;
use super::atomic::Transaction;
use super::gguf::{DEFAULT_ALIGNMENT, GgufTensor};
use crate::cancel::Cancel;
use crate::checkpoint::gguf::{GgufArray, GgufValue};
use crate::checkpoint::hf_names;
use crate::codec::DType;
use crate::runtime::activations::ActivationStats;

/// Writes `stats` (keyed by transformers names of architecture `arch`) to `output` as a GGUF
/// imatrix; `inputs` are never overwritten, `output` only with `overwrite`.
pub fn write_imatrix(
    output: &Path,
    stats: &ActivationStats,
    arch: &str,
    datasets: &[String],
    chunk_size: u32,
    inputs: &[&Path],
    overwrite: bool,
) -> Result<PathBuf, ExportError> {
    let mut entries = Vec::new();
    // Architectures without a GGUF name table here (BERT) keep their transformers names: our
    // `--importance` finds them by name; llama.cpp's own conversion names would not match.
    let mapped = hf_names::MAPPED_ARCHITECTURES.contains(&arch);
    for (name, sums) in &stats.in_sum2 {
        let gguf = match hf_names::gguf_name(name, arch) {
            Some(g) => g,
            None if !mapped => name.clone(),
            None => {
                return Err(ExportError::Unsupported {
                    message: format!("weight {name:?} has no GGUF name for architecture {arch}"),
                });
            }
        };
        let count = stats.counts.get(name).copied().unwrap_or(0);
        entries.push((gguf, sums, count));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut tensors = Vec::with_capacity(2 * entries.len());
    for (gguf, sums, _) in &entries {
        tensors.push(GgufTensor {
            name: format!("{gguf}.in_sum2"),
            dtype: DType::F32,
            shape: vec![1, sums.len() as u64],
        });
        tensors.push(GgufTensor { name: format!("{gguf}.counts"), dtype: DType::F32, shape: vec![1, 1] });
    }
    let mut data = String::new();
    let mut ends = Vec::new();
    for d in datasets {
        data.push_str(d);
        ends.push(data.len());
    }
    let metadata = vec![
        ("general.type".to_owned(), GgufValue::String("imatrix".into())),
        ("imatrix.datasets".to_owned(), GgufValue::Array(GgufArray::Strings { data, ends })),
        ("imatrix.chunk_count".to_owned(), GgufValue::U32(stats.chunks as u32)),
        ("imatrix.chunk_size".to_owned(), GgufValue::U32(chunk_size)),
    ];
    let mut tx = Transaction::new(inputs, overwrite);
    super::gguf::write(&mut tx, output, &metadata, &tensors, DEFAULT_ALIGNMENT, &Cancel::new(), |i, sink| {
        let (_, sums, count) = &entries[i / 2];
        let values: Vec<f32> = if i % 2 == 0 { sums.iter().map(|&s| s as f32).collect() } else { vec![*count as f32] };
        sink.write(bytemuck::cast_slice(&values))
    })?;
    tx.commit()?;
    Ok(output.to_owned())
}
