//! Exporting a checkpoint under a plan, with the encoders the preview runs: every tensor goes
//! through [`crate::quant::preview::encode_tensor`] with a sink that writes, so the numbers an
//! export reports are the preview's, and the bytes it writes are what the preview measured.
//!
//! - `gguf`: a GGUF v3 file of llama.cpp block types (and F32/F16/BF16), from a GGUF source:
//!   names and every key-value carried over, `general.file_type` and
//!   `general.quantization_version` set for the new types, 1-D tensors F32 as llama.cpp keeps
//!   them. A plan whose schemes GGUF cannot store is refused before anything is written.
//! - `safetensors`: fake-quantized weights — the decoded values in the source's type (F32 for a
//!   quantized GGUF source), same names — and the other files of a Hugging Face folder copied.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::ExportError;
use super::atomic::Transaction;
use super::gguf::{DEFAULT_ALIGNMENT, GgufTensor};
use super::safetensors::{PlannedTensor, TensorSink};
use crate::cancel::Cancel;
use crate::checkpoint::gguf::GgufValue;
use crate::checkpoint::hf_names::{Transform, gguf_name, transform as hf_transform};
use crate::checkpoint::{Checkpoint, Format, TensorInfo};
use crate::codec::DType;
use crate::compute::source::{Toward, Transformed};
use crate::compute::{Backend, ComputeError, TensorRef};
use crate::quant::encode::{Part, PartSink};
use crate::quant::preview::{Importance, TensorPreview, encode_tensor};
use crate::quant::{Resolved, Scheme};

/// What `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// A GGUF file llama.cpp loads.
    Gguf,
    /// A safetensors folder of fake-quantized weights.
    Safetensors,
    /// A compressed-tensors folder (vLLM, transformers): integer and FP8 schemes stored packed,
    /// the rest dense, `config.json` with its `quantization_config`.
    Ct,
}

/// How an export writes.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExportOptions {
    /// Replace existing outputs.
    pub overwrite: bool,
    /// Shard safetensors outputs above this many bytes (with an index).
    pub max_shard_size: Option<u64>,
    /// Store low-rank tensors as their two factors (`lora_A`, `lora_B`) in a safetensors export.
    pub factors: bool,
}

/// What an export wrote.
#[derive(Clone, Debug, Serialize)]
pub struct ExportReport {
    /// The format.
    pub format: ExportFormat,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// One row per tensor: the scheme, bytes and errors, as the preview reports them.
    pub tensors: Vec<TensorPreview>,
    /// Bytes of tensor data written.
    pub data_bytes: u64,
    /// What the output lacks or approximates.
    pub notes: Vec<String>,
}

/// `general.file_type` (llama.cpp's `llama_ftype`) of a model whose matrices are mostly `d`.
fn file_type(d: DType) -> u32 {
    match d {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::Q4_0 => 2,
        DType::Q4_1 => 3,
        DType::Q8_0 => 7,
        DType::Q5_0 => 8,
        DType::Q5_1 => 9,
        DType::Q2K => 10,
        DType::Q3K => 12,
        DType::Q4K => 15,
        DType::Q5K => 17,
        DType::Q6K => 18,
        DType::IQ4NL => 25,
        DType::IQ4XS => 30,
        DType::BF16 => 32,
        _ => 0,
    }
}

/// The GGUF type a resolved scheme stores `t` as, or why GGUF cannot store it.
fn gguf_type(t: &TensorInfo, scheme: &Scheme) -> Result<DType, String> {
    if t.shape.len() < 2 {
        // llama.cpp keeps norms and biases F32.
        return Ok(DType::F32);
    }
    match scheme.stored_form() {
        Scheme::Keep if t.dtype.ggml_id().is_some() => Ok(t.dtype),
        Scheme::Keep => Err(format!("it is stored as {}, which GGUF has no type for", t.dtype)),
        Scheme::Ggml(d) => Ok(*d),
        Scheme::F16 => Ok(DType::F16),
        Scheme::Bf16 => Ok(DType::BF16),
        Scheme::With { method, .. } => Err(format!(
            "`{scheme}`: {} — export it as safetensors (fake-quant), or choose the plain scheme",
            match method {
                crate::quant::scheme::Method::Awq { .. } =>
                    "AWQ's input scales are not folded into the layer before yet",
                crate::quant::scheme::Method::Slim => "no inference kernel reads mixed bit widths inside a tensor",
                crate::quant::scheme::Method::Pow => "no inference kernel decodes a power grid",
                crate::quant::scheme::Method::Gptq => "its base has no GGUF type",
            }
        )),
        other => Err(format!(
            "`{other}` has no GGUF type (llama.cpp runs its own block types: q8_0, q4_k, q6_k, iq4_nl, ...); \
             export it as safetensors (fake-quant) or choose a block type"
        )),
    }
}

/// Sends the single stored part of a tensor (a GGUF block type, or kept bytes) straight to the
/// file, a chunk at a time.
pub(super) struct OnePart<'s, 'f> {
    pub(super) sink: &'s mut TensorSink<'f>,
    pub(super) name: String,
    pub(super) dtype: DType,
}

impl PartSink for OnePart<'_, '_> {
    fn begin(&mut self, parts: &[Part]) -> Result<(), ComputeError> {
        match parts {
            [p] if p.dtype == self.dtype.name() => Ok(()),
            _ => Err(ComputeError::Sink(format!(
                "tensor {:?}: the encoder made {} parts ({}), the file stores one {}",
                self.name,
                parts.len(),
                parts.iter().map(|p| p.dtype.as_str()).collect::<Vec<_>>().join(", "),
                self.dtype
            ))),
        }
    }

    fn put(&mut self, _part: usize, bytes: &[u8]) -> Result<(), ComputeError> {
        self.sink.write(bytes).map_err(|e| ComputeError::Sink(e.to_string()))
    }
}

/// Where a planned safetensors tensor's values come from.
#[derive(Clone, Copy)]
enum Slot {
    /// Tensor `i`, decoded whole.
    Whole(usize),
    /// The r × cols factor (B̂) of low-rank tensor `i`, named `lora_A` as PEFT names it.
    FactorA(usize),
    /// The rows × r factor (Â = U·S) of low-rank tensor `i`, named `lora_B`.
    FactorB(usize),
}

/// The decoded factors of one low-rank tensor.
struct Factors {
    a: Vec<f32>,
    b: Vec<f32>,
    rank: usize,
}

/// Keeps a low-rank encoder's decoded factors and nothing else.
#[derive(Default)]
struct KeepFactors {
    factors: Option<Factors>,
}

impl PartSink for KeepFactors {
    fn begin(&mut self, _parts: &[Part]) -> Result<(), ComputeError> {
        self.factors = None;
        Ok(())
    }
    fn put(&mut self, _part: usize, _bytes: &[u8]) -> Result<(), ComputeError> {
        Ok(())
    }
    fn factors(&mut self, a: &[f32], b: &[f32], rank: usize) -> Result<(), ComputeError> {
        self.factors = Some(Factors { a: a.to_vec(), b: b.to_vec(), rank });
        Ok(())
    }
}

/// Keeps nothing of the stored parts (the safetensors export writes decoded values).
pub(super) struct NoParts;

impl PartSink for NoParts {
    fn begin(&mut self, _parts: &[Part]) -> Result<(), ComputeError> {
        Ok(())
    }
    fn put(&mut self, _part: usize, _bytes: &[u8]) -> Result<(), ComputeError> {
        Ok(())
    }
}

pub(super) fn compute_error(e: ComputeError) -> ExportError {
    match e {
        ComputeError::Cancelled => ExportError::Cancelled,
        other => ExportError::Unsupported { message: other.to_string() },
    }
}

/// Exports `ckpt` with `resolved` (one per tensor of the checkpoint, in its order) to `output`
/// (a file for GGUF, a folder for safetensors); `progress(done, total)` counts values.
#[allow(clippy::too_many_arguments)]
pub fn export(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    resolved: &[Resolved],
    importance: Option<&Importance>,
    format: ExportFormat,
    output: &Path,
    options: &ExportOptions,
    cancel: &Cancel,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<ExportReport, ExportError> {
    let (overwrite, max_shard) = (options.overwrite, options.max_shard_size);
    if options.factors && format != ExportFormat::Safetensors {
        return Err(ExportError::Unsupported {
            message: "--factors stores low-rank factors in a safetensors export; GGUF and compressed-tensors \
                      have no place for them"
                .into(),
        });
    }
    let tensors = ckpt.tensors();
    if resolved.len() != tensors.len() {
        return Err(ExportError::Unsupported {
            message: format!("{} schemes for {} tensors", resolved.len(), tensors.len()),
        });
    }
    for (t, r) in tensors.iter().zip(resolved) {
        if let Some(why) = t.dtype.why_not_analysed()
            && !r.parsed.is_keep()
        {
            return Err(ExportError::Unsupported { message: format!("tensor {:?}: {why}", t.name) });
        }
    }
    let total: u64 = tensors.iter().map(TensorInfo::numel).sum();
    let inputs: Vec<&Path> = ckpt.files().iter().map(|f| f.path()).collect();
    let mut tx = Transaction::new(&inputs, overwrite);
    let mut rows = Vec::with_capacity(tensors.len());
    let mut report_notes: Vec<String> = Vec::new();
    let mut done = 0u64;
    let (files, data_bytes) = match format {
        ExportFormat::Gguf => {
            // Names and layout: a GGUF source keeps its own; a transformers one gets GGUF names
            // and llama.cpp's Q/K row order.
            let (source_meta, alignment, arch_heads) = match ckpt.gguf() {
                Some(info) => {
                    let alignment = match info.get("general.alignment") {
                        Some(GgufValue::U32(a)) => u64::from(*a),
                        _ => DEFAULT_ALIGNMENT,
                    };
                    (info.metadata.clone(), alignment, None)
                }
                None => {
                    let (kv, notes) = super::gguf_meta::from_transformers(ckpt)
                        .map_err(|m| ExportError::Unsupported { message: format!("cannot write GGUF: {m}") })?;
                    report_notes.extend(notes);
                    let m = ckpt.model_config();
                    let heads = m.and_then(|m| m.num_heads).unwrap_or(1).max(1);
                    let kv_heads = m.and_then(|m| m.num_kv_heads).unwrap_or(heads).max(1);
                    let arch = m.map(|m| m.architecture.clone()).unwrap_or_default();
                    (kv, DEFAULT_ALIGNMENT, Some((arch, heads, kv_heads)))
                }
            };
            let mut planned = Vec::with_capacity(tensors.len());
            let mut transforms = Vec::with_capacity(tensors.len());
            let mut problems = Vec::new();
            for (t, r) in tensors.iter().zip(resolved) {
                let (name, tr) = match &arch_heads {
                    None => (t.name.clone(), Transform::None),
                    Some((arch, heads, kv_heads)) => match gguf_name(&t.name, arch) {
                        Some(g) => {
                            let tr = hf_transform(&g, arch, *heads, *kv_heads);
                            (g, tr)
                        }
                        None => {
                            problems.push(format!("tensor {:?}: no GGUF name is known for it in {arch}", t.name));
                            continue;
                        }
                    },
                };
                match gguf_type(t, &r.parsed) {
                    Ok(d) => {
                        planned.push(GgufTensor { name, dtype: d, shape: t.shape.clone() });
                        transforms.push(tr);
                    }
                    Err(why) => problems.push(format!("tensor {:?} ({}): {why}", t.name, r.scheme)),
                }
            }
            if !problems.is_empty() {
                return Err(ExportError::Unsupported {
                    message: format!("the plan cannot be written as GGUF:\n  {}", problems.join("\n  ")),
                });
            }
            let metadata = gguf_metadata(&source_meta, &planned);
            let bytes: u64 = planned.iter().filter_map(GgufTensor::bytes).sum();
            let file = super::gguf::write(&mut tx, output, &metadata, &planned, alignment, cancel, |i, sink| {
                let (t, r) = (&tensors[i], &resolved[i]);
                let src = Transformed::new(ckpt, t, transforms[i], Toward::Gguf).map_err(compute_error)?;
                let row = if t.shape.len() < 2 && (t.dtype != DType::F32 || !r.parsed.is_keep()) {
                    // A vector kept as F32 whatever it was stored as.
                    let keep = Resolved { parsed: Scheme::Keep, ..r.clone() };
                    let mut put = |_: u64, v: &[f32]| -> Result<(), ComputeError> {
                        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                        sink.write(&b).map_err(|e| ComputeError::Sink(e.to_string()))
                    };
                    let mut row =
                        encode_tensor(backend, ckpt, t, &src, &keep, importance, &mut NoParts, Some(&mut put), cancel)
                            .map_err(compute_error)?;
                    row.bytes = t.numel() * 4;
                    row.bpw = 32.0;
                    row
                } else {
                    let mut one = OnePart { sink, name: t.name.clone(), dtype: planned[i].dtype };
                    encode_tensor(backend, ckpt, t, &src, r, importance, &mut one, None, cancel)
                        .map_err(compute_error)?
                };
                done += t.numel();
                progress(done, total);
                rows.push(row);
                Ok(())
            })?;
            (vec![file], bytes)
        }
        ExportFormat::Safetensors => {
            // Kept tensors keep their stored type (integer ids included) and bytes; the rest are
            // decoded values, in their float type or F32.
            let out_dtype = |t: &TensorInfo, r: &Resolved| {
                let kept = r.parsed.is_keep() && DType::SAFETENSORS.contains(&t.dtype) && t.dtype.can_decode();
                if kept || matches!(t.dtype, DType::F32 | DType::F16 | DType::BF16) { t.dtype } else { DType::F32 }
            };
            // With `--factors`, low-rank tensors are factored first (their ranks decide the
            // header's shapes) and their decoded factors held until written.
            let mut factored: BTreeMap<usize, Factors> = BTreeMap::new();
            let mut early_rows: BTreeMap<usize, TensorPreview> = BTreeMap::new();
            if options.factors {
                for (i, (t, r)) in tensors.iter().zip(resolved).enumerate() {
                    if !matches!(r.parsed, Scheme::LowRank { .. }) {
                        continue;
                    }
                    let mut keep = KeepFactors::default();
                    let src = TensorRef::new(ckpt, t);
                    let row = encode_tensor(backend, ckpt, t, &src, r, importance, &mut keep, None, cancel)
                        .map_err(compute_error)?;
                    done += t.numel();
                    progress(done, total);
                    if let Some(f) = keep.factors {
                        factored.insert(i, f);
                        early_rows.insert(i, row);
                    }
                }
            }
            let mut slots = Vec::with_capacity(tensors.len());
            let mut planned = Vec::with_capacity(tensors.len());
            for (i, (t, r)) in tensors.iter().zip(resolved).enumerate() {
                let dtype = out_dtype(t, r);
                match factored.get(&i) {
                    Some(f) => {
                        let module = t.name.strip_suffix(".weight").unwrap_or(&t.name);
                        let (rows, cols) = (t.shape[0], t.numel() / t.shape[0].max(1));
                        planned.push(PlannedTensor {
                            name: format!("{module}.lora_A.weight"),
                            dtype,
                            shape: vec![f.rank as u64, cols],
                        });
                        slots.push(Slot::FactorA(i));
                        planned.push(PlannedTensor {
                            name: format!("{module}.lora_B.weight"),
                            dtype,
                            shape: vec![rows, f.rank as u64],
                        });
                        slots.push(Slot::FactorB(i));
                    }
                    None => {
                        planned.push(PlannedTensor { name: t.name.clone(), dtype, shape: t.shape.clone() });
                        slots.push(Slot::Whole(i));
                    }
                }
            }
            let bytes: u64 = planned.iter().filter_map(PlannedTensor::bytes).sum();
            let made_folder = !output.exists();
            std::fs::create_dir_all(output).map_err(|e| ExportError::io(output, e))?;
            let mut by_tensor: Vec<Option<TensorPreview>> = vec![None; tensors.len()];
            for (i, row) in early_rows {
                by_tensor[i] = Some(row);
            }
            let written = (|| -> Result<Vec<PathBuf>, ExportError> {
                let mut metadata = BTreeMap::new();
                metadata.insert("format".to_owned(), "pt".to_owned());
                metadata.insert(
                    "weightbench".to_owned(),
                    format!(
                        "fake-quantized by weightbench {}: decoded values of each tensor's scheme",
                        env!("CARGO_PKG_VERSION")
                    ),
                );
                if !factored.is_empty() {
                    metadata.insert(
                        "weightbench.lowrank_factors".to_owned(),
                        format!(
                            "{} low-rank tensors are stored as factors: <module>.weight = <module>.lora_B.weight \
                             (out × r) @ <module>.lora_A.weight (r × in), the module's weight itself absent",
                            factored.len()
                        ),
                    );
                }
                let shards = super::safetensors::write_folder(
                    &mut tx,
                    output,
                    &metadata,
                    &planned,
                    max_shard,
                    cancel,
                    |j, sink| {
                        let dtype = planned[j].dtype;
                        let mut buf = Vec::new();
                        let mut write = |v: &[f32]| -> Result<(), ComputeError> {
                            buf.clear();
                            crate::codec::encode(dtype, v, &mut buf).map_err(|e| ComputeError::Sink(e.to_string()))?;
                            sink.write(&buf).map_err(|e| ComputeError::Sink(e.to_string()))
                        };
                        let i = match slots[j] {
                            Slot::FactorA(i) => {
                                return factored.get(&i).map_or(Ok(()), |f| write(&f.b)).map_err(compute_error);
                            }
                            Slot::FactorB(i) => {
                                return factored.get(&i).map_or(Ok(()), |f| write(&f.a)).map_err(compute_error);
                            }
                            Slot::Whole(i) => i,
                        };
                        let (t, r) = (&tensors[i], &resolved[i]);
                        let src = TensorRef::new(ckpt, t);
                        let mut at = 0u64;
                        let mut put = |first: u64, v: &[f32]| -> Result<(), ComputeError> {
                            if first != at {
                                return Err(ComputeError::Sink(format!(
                                    "tensor {:?}: decoded values arrived out of order ({first} after {at})",
                                    t.name
                                )));
                            }
                            at += v.len() as u64;
                            write(v)
                        };
                        let row = if r.parsed.is_keep() && dtype == t.dtype {
                            // The stored bytes as they are, streamed.
                            let mut one = OnePart { sink, name: t.name.clone(), dtype };
                            encode_tensor(backend, ckpt, t, &src, r, importance, &mut one, None, cancel)
                        } else {
                            encode_tensor(backend, ckpt, t, &src, r, importance, &mut NoParts, Some(&mut put), cancel)
                        }
                        .map_err(compute_error)?;
                        if by_tensor[i].is_none() {
                            done += t.numel();
                            progress(done, total);
                        }
                        by_tensor[i] = Some(row);
                        Ok(())
                    },
                )?;
                let mut files = shards;
                if ckpt.format() != Format::Gguf {
                    files.extend(copy_companions(&mut tx, ckpt, output)?);
                }
                Ok(files)
            })();
            if written.is_err() && made_folder {
                let _only_if_empty = std::fs::remove_dir(output);
            }
            rows.extend(by_tensor.into_iter().flatten());
            if !factored.is_empty() {
                report_notes.push(format!(
                    "{} low-rank tensors written as lora_A/lora_B factors (W = lora_B @ lora_A), not as their product",
                    factored.len()
                ));
            }
            (written?, bytes)
        }
        ExportFormat::Ct => {
            let made_folder = !output.exists();
            let plan = super::ct::plan(ckpt, resolved)?;
            std::fs::create_dir_all(output).map_err(|e| ExportError::io(output, e))?;
            let written = super::ct::write(
                &mut tx,
                backend,
                ckpt,
                resolved,
                importance,
                &plan,
                output,
                max_shard,
                cancel,
                &mut |row| {
                    done += row.params;
                    progress(done, total);
                    rows.push(row);
                },
            );
            if written.is_err() && made_folder {
                let _only_if_empty = std::fs::remove_dir(output);
            }
            (written?, plan.data_bytes())
        }
    };
    tx.commit()?;
    Ok(ExportReport { format, files, tensors: rows, data_bytes, notes: report_notes })
}

/// Exports `ckpt` under `plan`: resolves it against the checkpoint (its warnings become notes),
/// refuses a method that needs importance when none is given, shares AWQ's α between tensors
/// folding into one layer, then [`export`]s. The command line and the workbench's job both run
/// this, so a plan exports the same from either.
#[allow(clippy::too_many_arguments)]
pub fn export_plan(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    plan: &crate::quant::Plan,
    importance: Option<&Importance>,
    format: ExportFormat,
    output: &Path,
    options: &ExportOptions,
    cancel: &Cancel,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<ExportReport, ExportError> {
    let tensors: Vec<&TensorInfo> = ckpt.tensors().iter().collect();
    let (mut resolved, warnings) =
        plan.resolve_all(ckpt).map_err(|e| ExportError::Unsupported { message: e.to_string() })?;
    if importance.is_none()
        && let Some(r) = resolved.iter().find(|r| r.parsed.needs_importance())
    {
        return Err(ExportError::Unsupported {
            message: format!(
                "tensor {} gets `{}`, which needs an importance (an imatrix, or `weight`)",
                r.name, r.scheme
            ),
        });
    }
    let calibrated = importance.is_some_and(crate::quant::Importance::has_hessians);
    if !calibrated && let Some(r) = resolved.iter().find(|r| r.parsed.needs_hessian()) {
        return Err(ExportError::Unsupported {
            message: format!(
                "tensor {} gets `{}`, which needs the Hessian of its inputs: calibrate on text (--calibration FILE)",
                r.name, r.scheme
            ),
        });
    }
    let groups = crate::quant::preview::share_awq_alphas(backend, ckpt, &tensors, &mut resolved, importance, cancel)
        .map_err(compute_error)?;
    let mut report = export(backend, ckpt, &resolved, importance, format, output, options, cancel, progress)?;
    crate::quant::preview::note_shared_alphas(&mut report.tensors, &groups);
    let mut notes: Vec<String> = warnings.into_iter().map(|w| format!("plan: {w}")).collect();
    notes.append(&mut report.notes);
    report.notes = notes;
    Ok(report)
}

/// The source's key-values with the new file type, quantization version and a note of who wrote
/// the tensors.
fn gguf_metadata(source: &[(String, GgufValue)], planned: &[GgufTensor]) -> Vec<(String, GgufValue)> {
    let mut counts: BTreeMap<u32, (u64, DType)> = BTreeMap::new();
    for t in planned.iter().filter(|t| t.shape.len() >= 2) {
        let e = counts.entry(t.dtype.ggml_id().unwrap_or(0)).or_insert((0, t.dtype));
        e.0 += t.shape.iter().product::<u64>();
    }
    let main = counts.values().max_by_key(|(n, _)| *n).map_or(DType::F32, |(_, d)| *d);
    let quantized = planned.iter().any(|t| t.dtype.block_elems() > 1);
    let mut out: Vec<(String, GgufValue)> = source
        .iter()
        .filter(|(k, _)| {
            !matches!(k.as_str(), "general.file_type" | "general.quantization_version" | "general.quantized_by")
        })
        .cloned()
        .collect();
    out.push(("general.file_type".into(), GgufValue::U32(file_type(main))));
    if quantized {
        out.push(("general.quantization_version".into(), GgufValue::U32(2)));
    }
    out.push(("general.quantized_by".into(), GgufValue::String(format!("weightbench {}", env!("CARGO_PKG_VERSION")))));
    out
}

/// Copies the non-weight files of a Hugging Face folder (config, tokenizer, ...) into `output`.
pub(super) fn copy_companions(
    tx: &mut Transaction,
    ckpt: &Checkpoint,
    output: &Path,
) -> Result<Vec<PathBuf>, ExportError> {
    let folder = if ckpt.path().is_dir() { ckpt.path().to_owned() } else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&folder).map_err(|e| ExportError::io(&folder, e))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    paths.sort();
    for p in paths {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let weights = [".safetensors", ".safetensors.index.json", ".bin", ".pt", ".pth", ".gguf", ".h5", ".onnx"];
        if weights.iter().any(|w| name.ends_with(w)) || name.starts_with('.') || tx.stages(&output.join(&name)) {
            continue;
        }
        let bytes = std::fs::read(&p).map_err(|e| ExportError::io(&p, e))?;
        let target = output.join(&name);
        tx.write_bytes(&target, &bytes)?;
        out.push(target);
    }
    Ok(out)
}
