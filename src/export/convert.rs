//! GGUF to safetensors: every tensor decoded to f32 through the codecs (exactly as llama.cpp
//! dequantizes), optionally rounded to BF16/F16, renamed to transformers names with llama.cpp's
//! Q/K row permutation and Gemma's norm shift undone, plus a `config.json` from the metadata.
//! Streams through the memory map a chunk (or a row, for permuted tensors) at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ExportError;
use super::atomic::Transaction;
use super::hf_config::config_from_gguf;
use super::safetensors::{self, PlannedTensor};
use crate::cancel::Cancel;
use crate::checkpoint::hf_names::{Transform, gguf_row_of_hf_row, hf_name, transform};
use crate::checkpoint::{Checkpoint, DEFAULT_CHUNK_ELEMS, Format, TensorInfo};
use crate::codec::{self, DType};

/// What `convert` is asked to do.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// Output folder (created if missing).
    pub out_dir: PathBuf,
    /// Stored type of the output tensors: F32, BF16 or F16.
    pub dtype: DType,
    /// Keep GGUF names and layouts (no renaming, no permutation, no norm shift, no config).
    pub keep_names: bool,
    /// Replace existing output files.
    pub overwrite: bool,
}

/// What `convert` wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConvertReport {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Tensors written.
    pub tensors: usize,
    /// GGUF tensors left out, with the reason.
    pub skipped: Vec<String>,
    /// Tensors whose values were changed back to transformers' form (permutation, norm shift).
    pub transformed: Vec<String>,
    /// What the folder lacks or approximates (the tokenizer).
    pub notes: Vec<String>,
}

struct Job<'a> {
    source: &'a TensorInfo,
    /// How the GGUF tensor differs from its transformers form (undone while writing).
    transform: Transform,
}

/// Converts a GGUF checkpoint into `model.safetensors` (+ `config.json`) in `opts.out_dir`.
/// `progress(done, total)` is called with bytes of source data handled.
pub fn gguf_to_safetensors(
    ckpt: &Checkpoint,
    opts: &ConvertOptions,
    cancel: &Cancel,
    progress: &dyn Fn(u64, u64),
) -> Result<ConvertReport, ExportError> {
    if ckpt.format() != Format::Gguf {
        return Err(ExportError::Unsupported { message: "convert reads GGUF checkpoints".into() });
    }
    if !matches!(opts.dtype, DType::F32 | DType::BF16 | DType::F16) {
        return Err(ExportError::Unsupported {
            message: format!("output dtype {} is not one of F32, BF16, F16", opts.dtype),
        });
    }
    let model = ckpt.model_config();
    let arch = model.map(|m| m.architecture.clone()).unwrap_or_default();
    let heads = model.and_then(|m| m.num_heads).unwrap_or(1).max(1);
    let kv_heads = model.and_then(|m| m.num_kv_heads).unwrap_or(heads).max(1);

    let mut planned = Vec::new();
    let mut jobs = Vec::new();
    let mut report = ConvertReport {
        files: Vec::new(),
        tensors: 0,
        skipped: Vec::new(),
        transformed: Vec::new(),
        notes: Vec::new(),
    };
    for t in ckpt.tensors() {
        if !t.dtype.can_decode() {
            return Err(ExportError::Unsupported {
                message: format!("tensor {:?}: decoding {} is not supported yet", t.name, t.dtype),
            });
        }
        let (name, transform) = if opts.keep_names {
            (t.name.clone(), Transform::None)
        } else {
            match hf_name(&t.name, &arch) {
                Some(name) => (name, transform(&t.name, &arch, heads, kv_heads)),
                None if t.name == "rope_freqs.weight" => {
                    report.skipped.push(format!("{} (transformers computes it from the config)", t.name));
                    continue;
                }
                None => {
                    return Err(ExportError::Unsupported {
                        message: format!(
                            "no transformers name is known for tensor {:?} of architecture {arch:?}; \
                             use --keep-names to keep GGUF names",
                            t.name
                        ),
                    });
                }
            }
        };
        if let Transform::Rows { heads } = transform {
            let rows = t.shape.first().copied().unwrap_or(0);
            if t.shape.is_empty() || t.shape.len() > 2 || rows % (2 * heads) != 0 {
                return Err(ExportError::Unsupported {
                    message: format!("tensor {:?}: {rows} rows do not split into {heads} heads of even size", t.name),
                });
            }
        }
        if transform != Transform::None {
            report.transformed.push(name.clone());
        }
        planned.push(PlannedTensor { name, dtype: opts.dtype, shape: t.shape.clone() });
        jobs.push(Job { source: t, transform });
    }

    // `-o` names a folder: an existing file there (the input itself, most likely) is refused
    // by name rather than by the OS's "File exists".
    if opts.out_dir.exists() && !opts.out_dir.is_dir() {
        let inputs: Vec<&Path> = ckpt.files().iter().map(|f| f.path()).collect();
        let is_input = super::atomic::is_one_of(&opts.out_dir, &inputs);
        return Err(if is_input {
            ExportError::WouldOverwriteInput { path: opts.out_dir.clone() }
        } else {
            ExportError::Unsupported {
                message: format!("the output must be a folder, and {} is a file", opts.out_dir.display()),
            }
        });
    }
    // A folder made here and left empty by a failure is removed again.
    let made_folder = !opts.out_dir.exists();
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| ExportError::io(&opts.out_dir, e))?;
    let written = write_folder(ckpt, opts, &planned, &jobs, &mut report, cancel, progress);
    if written.is_err() && made_folder {
        let _only_if_empty = std::fs::remove_dir(&opts.out_dir);
    }
    written.map(|()| report)
}

/// Writes the planned tensors and the config into `opts.out_dir` as one transaction.
fn write_folder(
    ckpt: &Checkpoint,
    opts: &ConvertOptions,
    planned: &[PlannedTensor],
    jobs: &[Job<'_>],
    report: &mut ConvertReport,
    cancel: &Cancel,
    progress: &dyn Fn(u64, u64),
) -> Result<(), ExportError> {
    let inputs: Vec<&Path> = ckpt.files().iter().map(|f| f.path()).collect();
    let total: u64 = jobs.iter().map(|j| j.source.bytes).sum();
    let mut done = 0u64;
    let source_name = ckpt.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let metadata = BTreeMap::from([
        ("format".to_owned(), "pt".to_owned()),
        ("source".to_owned(), format!("converted from {source_name} by weightbench {}", env!("CARGO_PKG_VERSION"))),
    ]);
    // The weights and the config appear together or not at all.
    let mut transaction = Transaction::new(&inputs, opts.overwrite);
    let target = opts.out_dir.join("model.safetensors");
    safetensors::write(&mut transaction, &target, &metadata, planned, cancel, |i, sink| {
        let job = &jobs[i];
        write_tensor(ckpt, job, opts.dtype, cancel, &mut |bytes| sink.write(bytes))?;
        done += job.source.bytes;
        progress(done, total);
        Ok(())
    })?;
    report.tensors = planned.len();
    if !opts.keep_names
        && let Some(config) = config_from_gguf(ckpt, opts.dtype)
    {
        let text = serde_json::to_string_pretty(&config)
            .map_err(|e| ExportError::Unsupported { message: format!("config.json: {e}") })?;
        transaction.write_text(&opts.out_dir.join("config.json"), &text)?;
        match crate::checkpoint::hf_tokenizer::from_gguf(ckpt) {
            Some(Ok(t)) => {
                let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
                transaction.write_text(&opts.out_dir.join("tokenizer.json"), &pretty(&t.tokenizer))?;
                transaction.write_text(&opts.out_dir.join("tokenizer_config.json"), &pretty(&t.config))?;
                report.notes.extend(t.notes);
            }
            Some(Err(why)) => report.notes.push(format!("tokenizer not written: {why}")),
            None => report.notes.push("the GGUF has no tokenizer".into()),
        }
    }
    report.files = transaction.commit()?;
    Ok(())
}

/// Decodes one tensor, applies its transform, encodes it and hands the bytes to `write`.
fn write_tensor(
    ckpt: &Checkpoint,
    job: &Job<'_>,
    dtype: DType,
    cancel: &Cancel,
    write: &mut dyn FnMut(&[u8]) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let t = job.source;
    let mut values = Vec::new();
    let mut bytes = Vec::new();
    let mut emit = |values: &mut Vec<f32>, write: &mut dyn FnMut(&[u8]) -> Result<(), ExportError>| {
        if let Transform::Offset(delta) = job.transform {
            values.iter_mut().for_each(|v| *v -= delta);
        }
        bytes.clear();
        codec::encode(dtype, values, &mut bytes)
            .map_err(|e| ExportError::Unsupported { message: format!("tensor {:?}: {e}", t.name) })?;
        write(&bytes)
    };
    match job.transform {
        Transform::Rows { heads } => {
            let rows = t.shape[0];
            let row_len = t.numel() / rows.max(1);
            for row in 0..rows {
                if cancel.is_cancelled() {
                    return Err(ExportError::Cancelled);
                }
                let src = gguf_row_of_hf_row(row, rows, heads);
                ckpt.decode_range(t, src * row_len..(src + 1) * row_len, &mut values)?;
                emit(&mut values, write)?;
            }
        }
        _ => {
            for range in ckpt.chunks(t, DEFAULT_CHUNK_ELEMS) {
                if cancel.is_cancelled() {
                    return Err(ExportError::Cancelled);
                }
                ckpt.decode_range(t, range, &mut values)?;
                emit(&mut values, write)?;
            }
        }
    }
    Ok(())
}
