//! compressed-tensors output (what vLLM and transformers load): each quantized weight stored as
//! the package lays it out — `pack-quantized` for 2–7-bit integers (`weight_packed` int32 rows,
//! `weight_scale` in the tensor's type, `weight_zero_point` packed along the output dimension
//! when asymmetric, `weight_shape`), `int-quantized` for 8-bit (`weight` int8), `float-quantized`
//! for FP8 (`weight` F8_E4M3) — everything else dense, and `config.json` with a
//! `quantization_config`: one config group per distinct scheme with its modules as `targets`,
//! unquantized weights under `ignore`.
//!
//! The parts come from the engine's own encoders (the same bytes the preview measured); their
//! layout is announced before encoding ([`int_parts`], [`float_parts`]) and checked against what
//! the encoder then sends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::ExportError;
use super::atomic::Transaction;
use super::model::{NoParts, compute_error};
use super::safetensors::PlannedTensor;
use crate::cancel::Cancel;
use crate::checkpoint::Checkpoint;
use crate::codec::DType;
use crate::codec::int::Arith;
use crate::compute::{Backend, ComputeError, FloatFormat, TensorRef};
use crate::quant::encode::{CollectBytes, Part, PartSink, float_parts, int_parts};
use crate::quant::preview::{Importance, TensorPreview, encode_tensor};
use crate::quant::scheme::{IntGroup, rows_cols};
use crate::quant::{Resolved, Scheme};

/// Where one output tensor's bytes come from.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// Part `k` of the encoded tensor `t`.
    Part(usize, usize),
    /// `weight_shape` of tensor `t`.
    Shape(usize),
    /// Tensor `t` stored dense in the planned type.
    Dense(usize),
}

/// One config group: a scheme's quantization arguments, format and modules.
struct Group {
    weights: Value,
    format: &'static str,
    targets: Vec<String>,
}

/// What the compressed-tensors folder will hold.
pub(super) struct CtPlan {
    tensors: Vec<PlannedTensor>,
    sources: Vec<Source>,
    /// The first output tensor of each input tensor.
    first: Vec<usize>,
    groups: BTreeMap<String, Group>,
    ignore: Vec<String>,
}

impl CtPlan {
    /// Bytes of tensor data.
    pub(super) fn data_bytes(&self) -> u64 {
        self.tensors.iter().filter_map(PlannedTensor::bytes).sum()
    }
}

fn dtype_of(name: &str) -> DType {
    match name {
        "I8" => DType::I8,
        "I32" => DType::I32,
        "F8_E4M3" => DType::F8E4M3,
        "BF16" => DType::BF16,
        "F16" => DType::F16,
        _ => DType::F32,
    }
}

/// The tensors, config groups and ignored modules `resolved` makes of `ckpt`, or why
/// compressed-tensors cannot carry the plan (every tensor named).
pub(super) fn plan(ckpt: &Checkpoint, resolved: &[Resolved]) -> Result<CtPlan, ExportError> {
    if ckpt.format() == crate::checkpoint::Format::Gguf {
        return Err(ExportError::Unsupported {
            message: "compressed-tensors output needs transformers names: `weightbench convert` the GGUF first".into(),
        });
    }
    let mut out = CtPlan {
        tensors: Vec::new(),
        sources: Vec::new(),
        first: Vec::new(),
        groups: BTreeMap::new(),
        ignore: Vec::new(),
    };
    let mut problems = Vec::new();
    for (i, (t, r)) in ckpt.tensors().iter().zip(resolved).enumerate() {
        out.first.push(out.tensors.len());
        let module = t.name.strip_suffix(".weight");
        let arith = Arith::of(t.dtype);
        let parts: Option<(Vec<Part>, &'static str, Value)> = match (r.parsed.stored_form(), rows_cols(&t.shape)) {
            (Scheme::Int { bits, group, asym }, Some((_, cols))) => {
                let spec = r
                    .parsed
                    .stored_form()
                    .int_spec(cols, arith)
                    .unwrap_or(crate::codec::int::IntSpec::symmetric(*bits, 1));
                let mut weights = json!({"num_bits": bits, "type": "int", "symmetric": !asym, "dynamic": false,
                    "strategy": match group { IntGroup::Channel => "channel", IntGroup::Size(_) => "group" }});
                if let IntGroup::Size(n) = group {
                    weights["group_size"] = json!(n);
                }
                let format = if *bits == 8 { "int-quantized" } else { "pack-quantized" };
                Some((int_parts(&spec, &t.shape), format, weights))
            }
            (Scheme::Fp8 { per_channel }, Some(_)) => {
                let f = FloatFormat::Fp8 { tensor_scale: (!per_channel).then_some(1.0), arith };
                let weights = json!({"num_bits": 8, "type": "float", "symmetric": true, "dynamic": false,
                    "strategy": if *per_channel { "channel" } else { "tensor" }});
                Some((float_parts(&f, &t.shape), "float-quantized", weights))
            }
            _ => None,
        };
        match (parts, module) {
            (Some((parts, format, weights)), Some(module)) => {
                for (k, p) in parts.iter().enumerate() {
                    let name = match (p.role.as_str(), format) {
                        ("codes", "pack-quantized") => "weight_packed",
                        ("codes", _) => "weight",
                        ("scale", _) => "weight_scale",
                        _ => "weight_zero_point",
                    };
                    out.tensors.push(PlannedTensor {
                        name: format!("{module}.{name}"),
                        dtype: dtype_of(&p.dtype),
                        shape: p.shape.clone(),
                    });
                    out.sources.push(Source::Part(i, k));
                }
                if format == "pack-quantized" {
                    out.tensors.push(PlannedTensor {
                        name: format!("{module}.weight_shape"),
                        dtype: DType::I64,
                        shape: vec![2],
                    });
                    out.sources.push(Source::Shape(i));
                }
                let group =
                    out.groups.entry(r.scheme.clone()).or_insert(Group { weights, format, targets: Vec::new() });
                group.targets.push(module.to_owned());
            }
            (Some(_), None) => problems.push(format!(
                "tensor {:?} ({}): compressed-tensors quantizes module weights (`<module>.weight`) only",
                t.name, r.scheme
            )),
            (None, _) => {
                let dtype = match &r.parsed {
                    Scheme::Keep if DType::SAFETENSORS.contains(&t.dtype) && t.dtype.can_decode() => t.dtype,
                    Scheme::Keep => DType::F32,
                    Scheme::F16 => DType::F16,
                    Scheme::Bf16 => DType::BF16,
                    other => {
                        problems.push(format!(
                            "tensor {:?}: `{other}` has no compressed-tensors format (integers int*_ch/_g*, fp8_e4m3, \
                             or keep); export it as fake-quant safetensors",
                            t.name
                        ));
                        continue;
                    }
                };
                if let Some(module) = module
                    && t.shape.len() >= 2
                {
                    out.ignore.push(module.to_owned());
                }
                out.tensors.push(PlannedTensor { name: t.name.clone(), dtype, shape: t.shape.clone() });
                out.sources.push(Source::Dense(i));
            }
        }
    }
    if !problems.is_empty() {
        return Err(ExportError::Unsupported {
            message: format!("the plan cannot be written as compressed-tensors:\n  {}", problems.join("\n  ")),
        });
    }
    Ok(out)
}

/// The `quantization_config` of `plan`.
fn quantization_config(plan: &CtPlan) -> Value {
    let formats: Vec<&str> = {
        let mut f: Vec<&str> = plan.groups.values().map(|g| g.format).collect();
        f.dedup();
        f
    };
    let groups: serde_json::Map<String, Value> = plan
        .groups
        .values()
        .enumerate()
        .map(|(k, g)| {
            (
                format!("group_{k}"),
                json!({"targets": g.targets, "weights": g.weights, "input_activations": null,
                       "output_activations": null, "format": g.format}),
            )
        })
        .collect();
    json!({
        "quant_method": "compressed-tensors",
        "format": match formats.as_slice() { [one] => *one, [] => "dense", _ => "mixed-precision" },
        "quantization_status": "compressed",
        "config_groups": groups,
        "ignore": plan.ignore,
        "kv_cache_scheme": null,
        "sparsity_config": {},
        "version": "0.20.1",
    })
}

/// Checks the announced parts against the plan's and keeps their bytes — all but part 0's when
/// `first_to` is given: part 0 (the first entry in the file, and the largest: the packed codes or
/// the integer weight) goes straight to it, so a tensor's codes are never held whole in memory.
struct Checked<'a, 's, 'f> {
    want: &'a [PlannedTensor],
    inner: CollectBytes,
    first_to: Option<&'s mut super::safetensors::TensorSink<'f>>,
}

impl PartSink for Checked<'_, '_, '_> {
    fn begin(&mut self, parts: &[Part]) -> Result<(), ComputeError> {
        let same = parts.len() == self.want.len()
            && parts.iter().zip(self.want).all(|(p, w)| p.dtype == w.dtype.name() && p.shape == w.shape);
        if !same {
            return Err(ComputeError::Sink(format!(
                "the encoder's parts {:?} are not the ones announced for {:?}",
                parts.iter().map(|p| (&p.dtype, &p.shape)).collect::<Vec<_>>(),
                self.want.first().map(|w| &w.name)
            )));
        }
        self.inner.begin(parts)
    }

    fn put(&mut self, part: usize, bytes: &[u8]) -> Result<(), ComputeError> {
        match (part, self.first_to.as_mut()) {
            (0, Some(sink)) => sink.write(bytes).map_err(|e| ComputeError::Sink(e.to_string())),
            _ => self.inner.put(part, bytes),
        }
    }
}

/// Writes the folder: `model.safetensors`, `config.json` with the quantization config, and the
/// source folder's other files.
#[allow(clippy::too_many_arguments)]
pub(super) fn write(
    tx: &mut Transaction,
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    resolved: &[Resolved],
    importance: Option<&Importance>,
    plan: &CtPlan,
    output: &Path,
    max_shard: Option<u64>,
    cancel: &Cancel,
    on_row: &mut dyn FnMut(TensorPreview),
) -> Result<Vec<PathBuf>, ExportError> {
    let tensors = ckpt.tensors();
    let encode = |t: usize, sink: &mut dyn PartSink, decoded: Option<crate::quant::encode::DecodedSink<'_>>| {
        let src = TensorRef::new(ckpt, &tensors[t]);
        encode_tensor(backend, ckpt, &tensors[t], &src, &resolved[t], importance, sink, decoded, cancel)
            .map_err(compute_error)
    };
    let mut stash: Option<(usize, Vec<Vec<u8>>)> = None;
    let mut metadata = BTreeMap::new();
    metadata.insert("format".to_owned(), "pt".to_owned());
    let shards =
        super::safetensors::write_folder(tx, output, &metadata, &plan.tensors, max_shard, cancel, |i, sink| {
            let write = |sink: &mut super::safetensors::TensorSink<'_>, b: &[u8]| sink.write(b);
            match plan.sources[i] {
                Source::Part(t, k) => {
                    if stash.as_ref().is_none_or(|(s, _)| *s != t) {
                        let first = plan.first[t];
                        let count = plan.sources[first..]
                            .iter()
                            .take_while(|s| matches!(s, Source::Part(x, _) if *x == t))
                            .count();
                        // Part 0 is this entry: it streams to the file as it is encoded.
                        let streams = k == 0;
                        let mut checked = Checked {
                            want: &plan.tensors[first..first + count],
                            inner: CollectBytes::default(),
                            first_to: streams.then_some(&mut *sink),
                        };
                        let row = encode(t, &mut checked, None)?;
                        on_row(row);
                        stash = Some((t, checked.inner.bytes));
                        if streams {
                            return Ok(());
                        }
                    }
                    let bytes = stash.as_ref().and_then(|(_, b)| b.get(k)).ok_or_else(|| ExportError::Unsupported {
                        message: format!("tensor {:?}: part {k} was not produced", tensors[t].name),
                    })?;
                    write(sink, bytes)
                }
                Source::Shape(t) => {
                    let shape = &tensors[t].shape;
                    let (rows, cols) = rows_cols(shape).unwrap_or((1, crate::codec::numel(shape).unwrap_or(u64::MAX)));
                    let b: Vec<u8> = [rows as i64, cols as i64].iter().flat_map(|v| v.to_le_bytes()).collect();
                    write(sink, &b)
                }
                Source::Dense(t) => {
                    let dtype = plan.tensors[i].dtype;
                    let mut buf = Vec::new();
                    let same = dtype == tensors[t].dtype;
                    let mut put = |_: u64, v: &[f32]| -> Result<(), ComputeError> {
                        buf.clear();
                        crate::codec::encode(dtype, v, &mut buf).map_err(|e| ComputeError::Sink(e.to_string()))?;
                        sink.write(&buf).map_err(|e| ComputeError::Sink(e.to_string()))
                    };
                    let row = if same && resolved[t].parsed.is_keep() {
                        // The stored bytes as they are, streamed.
                        let mut one = super::model::OnePart { sink, name: tensors[t].name.clone(), dtype };
                        encode(t, &mut one, None)?
                    } else {
                        encode(t, &mut NoParts, Some(&mut put))?
                    };
                    on_row(row);
                    Ok(())
                }
            }
        })?;
    let mut files = shards;
    let mut config: Value = ckpt.config().cloned().unwrap_or_else(|| json!({}));
    config["quantization_config"] = quantization_config(plan);
    let target = output.join("config.json");
    tx.write_text(&target, &serde_json::to_string_pretty(&config).unwrap_or_default())?;
    files.push(target);
    files.extend(super::model::copy_companions(tx, ckpt, output)?);
    Ok(files)
}
