//! Methods from the papers our users read, as suffixes on a base quantizer, each searching one
//! parameter per tensor and reporting the plain base quantizer's error beside its own:
//!
//! - `+awq` (AWQ, Lin et al. 2024): per-input-channel scales s = imp^α, normalised as AWQ does
//!   (s / √(max s · min s)); the base quantizer encodes W·diag(s) (rounded to the tensor's type)
//!   and Ŵ = Q(W·diag(s))·diag(1/s). α on a grid of 21 points in [0, 1] minimises the
//!   importance-weighted error; α = 0 is plain rounding, so the search never does worse. The
//!   scales fold into the layer before ([`awq_fold`]); where none can take them the tensor is
//!   preview-only.
//! - `+slim` (SliM-LLM, Huang et al. 2024): groups ranked by salience Σ_j imp_j·w_j² within each
//!   row; the `m` most salient get one bit more and the `m` least salient one bit less, so every
//!   row keeps its code bits; `m` (0, G/16, G/8, G/4, G/2) minimises the error. Widths are
//!   tagged with 2 bits per group, counted in the bytes.
//! - `+pow` (NUPES, Yvinec et al. 2023): values companded by sign(w)|w|^γ before the uniform
//!   grid and expanded by |·|^(1/γ) after; γ on a grid in [0.4, 1.2] (1 is plain rounding).
//!   Preview and fake-quant only: no inference kernel decodes a power grid.
//!
//! The base quantizer always runs on the selected backend's kernels (GPU included); the search
//! around it (scaling, ranking, companding, the error against W) runs on the CPU.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::encode::{CollectBytes, DecodedSink, DiscardBytes, Encoded, Job, Part, PartSink, encode};
use super::scheme::{IntGroup, Method, Scheme, rows_cols};
use crate::cancel::Cancel;
use crate::codec::int::{Arith, GroupError, IntSpec};
use crate::compute::cpu::CpuBackend;
use crate::compute::source::shape_error;
use crate::compute::{Backend, CollectCodes, ComputeError, SliceSource};

/// What a method's search chose, and what the plain base quantizer gives at its bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodReport {
    /// `awq`, `slim`, `pow` or `welore`.
    pub method: String,
    /// The parameter searched: `alpha`, `gamma`, `salient_groups_per_row`, `rank`.
    pub parameter: String,
    /// Its chosen value.
    pub value: f64,
    /// The objective searched: `weighted_sse` with importance, else `sse`.
    pub objective: String,
    /// The objective at each grid point: `[value, objective]`.
    pub searched: Vec<[f64; 2]>,
    /// The plain base quantizer's ‖W − Ŵ‖²_F.
    pub plain_sse: f64,
    /// The plain base quantizer's weighted error, with importance.
    pub plain_weighted_sse: Option<f64>,
    /// The plain base quantizer's bytes.
    pub plain_bytes: u64,
    /// AWQ: the tensor whose output channels take the scales (1/s), so that the model computes
    /// the same function.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folds_into: Option<String>,
    /// AWQ: the other tensors whose scales fold into the same layer, which share this α (one
    /// scale vector folds into one norm).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_with: Vec<String>,
    /// GPTQ: the layer's output error (E‖(W − Ŵ)x‖² over the calibration inputs) of GPTQ, of
    /// plain rounding and of AWQ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_error: Option<super::gptq::OutputErrors>,
    /// Why exporters can only fake-quantize this tensor (no layer takes AWQ's scales; a power
    /// grid no inference kernel decodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview_only: Option<String>,
}

/// Encodes `job` with `base` wrapped by `method`.
pub fn encode_with_method(
    backend: &dyn Backend,
    job: &Job<'_>,
    method: Method,
    base: &Scheme,
    sink: &mut dyn PartSink,
    decoded: Option<DecodedSink<'_>>,
    cancel: &Cancel,
) -> Result<Encoded, ComputeError> {
    let src = job.src;
    let (rows, cols) = rows_cols(src.shape()).ok_or_else(|| shape_error(src, "a method needs a matrix"))?;
    let (rows, cols) = (rows as usize, cols as usize);
    let ran = backend.values(src, cancel)?;
    let w = ran.value;
    let plain_bytes = base.bytes(src.shape(), job.dtype, job.stored_bytes, None);
    let mut enc = match method {
        Method::Awq { alpha } => awq(backend, job, base, alpha, &w, cols, sink, decoded, cancel)?,
        Method::Pow => pow(backend, job, base, &w, sink, decoded, cancel)?,
        Method::Slim => slim(backend, job, base, &w, rows, cols, sink, decoded, cancel)?,
        Method::Gptq => gptq(backend, job, base, &w, cols, sink, decoded, cancel)?,
    };
    enc.on = enc.on.merge(&ran.on).merge(&CpuBackend.provenance());
    if let Some(r) = enc.method.as_mut() {
        r.plain_bytes = plain_bytes;
    }
    Ok(enc)
}

/// GPTQ, reported beside plain rounding and AWQ on the layer's output error.
#[allow(clippy::too_many_arguments)]
fn gptq(
    backend: &dyn Backend,
    job: &Job<'_>,
    base: &Scheme,
    w: &[f32],
    cols: usize,
    sink: &mut dyn PartSink,
    decoded: Option<DecodedSink<'_>>,
    cancel: &Cancel,
) -> Result<Encoded, ComputeError> {
    let (_, mut enc, out) = super::gptq::encode(backend, job, base, w, cols, sink, decoded, cancel)?;
    // Without the comparison (the runtime's fake quantization) there is no report to make.
    let Some(out) = out else { return Ok(enc) };
    let weighted = job.importance.is_some();
    enc.method = Some(MethodReport {
        method: "gptq".into(),
        parameter: "damp".into(),
        value: super::gptq::DAMP,
        objective: "output_error".into(),
        searched: Vec::new(),
        plain_sse: out.plain_sse,
        plain_weighted_sse: weighted.then_some(out.plain_weighted_sse),
        plain_bytes: 0,
        folds_into: None,
        shared_with: Vec::new(),
        output_error: Some(out.errors),
        preview_only: None,
    });
    Ok(enc)
}

/// The objective a search minimises.
fn objective(e: &GroupError, weighted: bool) -> f64 {
    if weighted { e.weighted_sq_err } else { e.sq_err }
}

/// Encodes values held in memory with `base`, returning the decoded values.
#[allow(clippy::too_many_arguments)]
pub(super) fn encode_values(
    backend: &dyn Backend,
    job: &Job<'_>,
    values: &[f32],
    base: &Scheme,
    search: Option<&[f32]>,
    sink: &mut dyn PartSink,
    cancel: &Cancel,
) -> Result<(Vec<f32>, Encoded), ComputeError> {
    let src = SliceSource::new(job.src.name(), job.src.shape(), values)?;
    let inner = Job {
        src: &src,
        dtype: job.dtype,
        stored_bytes: job.stored_bytes,
        importance: None,
        search,
        hessian: None,
        ..*job
    };
    let mut out = vec![0f32; values.len()];
    let mut put = |first: u64, v: &[f32]| -> Result<(), ComputeError> {
        out[first as usize..first as usize + v.len()].copy_from_slice(v);
        Ok(())
    };
    let enc = encode(backend, &inner, base, sink, Some(&mut put), cancel)?;
    Ok((out, enc))
}

/// The error of `y` against `w`, weighed by `importance` per column.
pub(super) fn error_of(w: &[f32], y: &[f32], cols: usize, importance: Option<&[f32]>) -> GroupError {
    let cols = cols.max(1);
    let rows_per = (1usize << 16).div_ceil(cols).max(1);
    w.par_chunks(rows_per * cols)
        .zip(y.par_chunks(rows_per * cols))
        .map(|(a, b)| {
            let mut e = GroupError::default();
            e.push_slice(a, b, 0, cols, importance);
            e
        })
        .reduce(GroupError::default, |mut a, b| {
            a.add(&b);
            a
        })
}

/// AWQ's scales for importance `imp` and exponent `alpha`: imp^α clamped below at 1e-4 and
/// divided by √(max · min), as AutoAWQ's `_search_best_scale` does with its activation means.
pub fn awq_scales(imp: &[f32], alpha: f64) -> Vec<f32> {
    let s: Vec<f64> = imp.iter().map(|&x| f64::from(x.max(0.0)).powf(alpha).max(1e-4)).collect();
    let (lo, hi) = s.iter().fold((f64::INFINITY, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    let norm = (lo * hi).sqrt();
    s.iter().map(|&x| (x / norm) as f32).collect()
}

/// Grid points of AWQ's α.
const AWQ_GRID: usize = 20;

#[allow(clippy::too_many_arguments)]
pub(super) fn awq(
    backend: &dyn Backend,
    job: &Job<'_>,
    base: &Scheme,
    fixed: Option<u8>,
    w: &[f32],
    cols: usize,
    sink: &mut dyn PartSink,
    decoded: Option<DecodedSink<'_>>,
    cancel: &Cancel,
) -> Result<Encoded, ComputeError> {
    let imp = job.importance.ok_or_else(|| {
        shape_error(job.src, "+awq scales input channels by their importance: give --importance FILE|weight")
    })?;
    let arith = Arith::of(job.dtype);
    let run = |alpha: f64, sink: &mut dyn PartSink| -> Result<(Vec<f32>, Encoded), ComputeError> {
        let s = awq_scales(imp, alpha);
        let scaled: Vec<f32> =
            w.par_chunks(cols).flat_map_iter(|row| row.iter().zip(&s).map(|(x, s)| arith.round(x * s))).collect();
        // llama.cpp's searches weigh columns by mean x²: the scaled layer sees x / s.
        let search: Option<Vec<f32>> = job.search.map(|q| q.iter().zip(&s).map(|(q, s)| q / (s * s)).collect());
        let (mut y, enc) = encode_values(backend, job, &scaled, base, search.as_deref(), sink, cancel)?;
        y.par_chunks_mut(cols).for_each(|row| row.iter_mut().zip(&s).for_each(|(v, s)| *v /= s));
        Ok((y, enc))
    };
    let mut searched = Vec::with_capacity(AWQ_GRID + 1);
    let (mut best, mut plain) = ((0.0, f64::INFINITY), GroupError::default());
    // A fixed α is measured beside plain rounding (α = 0) only.
    let grid: Vec<f64> = match fixed {
        None => (0..=AWQ_GRID).map(|step| step as f64 / AWQ_GRID as f64).collect(),
        Some(a) => vec![0.0, f64::from(a) / 100.0],
    };
    for (step, &alpha) in grid.iter().enumerate() {
        let (y, _) = run(alpha, &mut DiscardBytes)?;
        let e = error_of(w, &y, cols, Some(imp));
        let obj = objective(&e, true);
        if step == 0 {
            plain = e;
        }
        searched.push([alpha, obj]);
        if obj < best.1 || (fixed.is_some() && step == 1) {
            best = (alpha, obj);
        }
    }
    let (y, enc) = run(best.0, sink)?;
    let error = error_of(w, &y, cols, Some(imp));
    if let Some(d) = decoded {
        d(0, &y)?;
    }
    Ok(Encoded {
        error,
        bytes: enc.bytes,
        rank: None,
        on: enc.on,
        method: Some(MethodReport {
            method: "awq".into(),
            parameter: "alpha".into(),
            value: best.0,
            objective: "weighted_sse".into(),
            searched,
            plain_sse: plain.sq_err,
            plain_weighted_sse: Some(plain.weighted_sq_err),
            plain_bytes: 0,
            folds_into: None,
            shared_with: Vec::new(),
            output_error: None,
            preview_only: None,
        }),
    })
}

/// Grid of NUPES' γ: 0.40, 0.45, ..., 1.20.
fn pow_grid() -> impl Iterator<Item = f64> {
    (8..=24).map(|k| k as f64 * 0.05)
}

fn compand(x: f32, gamma: f64) -> f32 {
    if gamma == 1.0 { x } else { (f64::from(x.abs()).powf(gamma) as f32).copysign(x) }
}

fn pow(
    backend: &dyn Backend,
    job: &Job<'_>,
    base: &Scheme,
    w: &[f32],
    sink: &mut dyn PartSink,
    decoded: Option<DecodedSink<'_>>,
    cancel: &Cancel,
) -> Result<Encoded, ComputeError> {
    let cols = rows_cols(job.src.shape()).map_or(w.len(), |(_, c)| c as usize);
    let weighted = job.importance.is_some();
    let run = |gamma: f64, sink: &mut dyn PartSink| -> Result<(Vec<f32>, Encoded), ComputeError> {
        let companded: Vec<f32> = w.par_iter().map(|&x| compand(x, gamma)).collect();
        let (mut y, enc) = encode_values(backend, job, &companded, base, None, sink, cancel)?;
        y.par_iter_mut().for_each(|v| *v = compand(*v, 1.0 / gamma));
        Ok((y, enc))
    };
    let mut searched = Vec::new();
    let (mut best, mut plain) = ((1.0, f64::INFINITY), GroupError::default());
    for gamma in pow_grid() {
        let (y, _) = run(gamma, &mut DiscardBytes)?;
        let e = error_of(w, &y, cols, job.importance);
        let obj = objective(&e, weighted);
        if (gamma - 1.0).abs() < 1e-9 {
            plain = e;
        }
        searched.push([gamma, obj]);
        // Ties go to plain rounding (γ = 1), then to the γ nearest it.
        if obj < best.1 || (obj == best.1 && (gamma - 1.0).abs() < (best.0 - 1.0f64).abs()) {
            best = (gamma, obj);
        }
    }
    let mut parts = CollectBytes::default();
    let (y, enc) = run(best.0, &mut parts)?;
    let mut all = parts.parts.clone();
    all.push(Part { role: "gamma".into(), dtype: "F32".into(), shape: vec![1], bytes: 4 });
    sink.begin(&all)?;
    for (k, bytes) in parts.bytes.iter().enumerate() {
        sink.put(k, bytes)?;
    }
    sink.put(all.len() - 1, &(best.0 as f32).to_le_bytes())?;
    let error = error_of(w, &y, cols, job.importance);
    if let Some(d) = decoded {
        d(0, &y)?;
    }
    Ok(Encoded {
        error,
        bytes: enc.bytes + 4,
        rank: None,
        on: enc.on,
        method: Some(MethodReport {
            method: "pow".into(),
            parameter: "gamma".into(),
            value: best.0,
            objective: if weighted { "weighted_sse" } else { "sse" }.into(),
            searched,
            plain_sse: plain.sq_err,
            plain_weighted_sse: weighted.then_some(plain.weighted_sq_err),
            plain_bytes: 0,
            folds_into: None,
            shared_with: Vec::new(),
            output_error: None,
            preview_only: Some("a power grid: no inference kernel decodes it, exporters can only fake-quantize".into()),
        }),
    })
}

/// Per group of one width: (sse, weighted sse).
fn group_errors(w: &[f32], c: &CollectCodes, spec: &IntSpec, cols: usize, imp: Option<&[f32]>) -> Vec<(f64, f64)> {
    let n = spec.group;
    w.par_chunks(n)
        .zip(c.codes.par_chunks(n))
        .zip(c.params.par_iter())
        .enumerate()
        .map(|(g, ((x, q), p))| {
            let col0 = (g * n) % cols;
            let (mut se, mut we) = (0f64, 0f64);
            for (k, (&x, &q)) in x.iter().zip(q).enumerate() {
                let d = f64::from(x) - f64::from(spec.decode(q, *p));
                if !d.is_finite() {
                    continue;
                }
                se += d * d;
                we += imp.map_or(0.0, |imp| f64::from(imp[col0 + k])) * d * d;
            }
            (se, we)
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn slim(
    backend: &dyn Backend,
    job: &Job<'_>,
    base: &Scheme,
    w: &[f32],
    rows: usize,
    cols: usize,
    sink: &mut dyn PartSink,
    decoded: Option<DecodedSink<'_>>,
    cancel: &Cancel,
) -> Result<Encoded, ComputeError> {
    let Scheme::Int { bits, group: IntGroup::Size(n), asym: false } = *base else {
        return Err(shape_error(job.src, format!("+slim does not apply to {base}")));
    };
    let arith = Arith::of(job.dtype);
    let specs = [bits - 1, bits, bits + 1].map(|b| IntSpec { bits: b, group: n, asym: false, arith });
    let src = SliceSource::new(job.src.name(), job.src.shape(), w)?;
    let mut on = None;
    let mut codes: Vec<CollectCodes> = Vec::with_capacity(3);
    for spec in &specs {
        let mut c = CollectCodes::default();
        let ran = backend.quantize_int(&src, spec, None, &mut c, cancel)?;
        on = Some(on.map_or(ran.on.clone(), |o: crate::compute::Provenance| o.merge(&ran.on)));
        codes.push(c);
    }
    let imp = job.importance;
    let errs: Vec<Vec<(f64, f64)>> = specs.iter().zip(&codes).map(|(s, c)| group_errors(w, c, s, cols, imp)).collect();
    let groups = cols / n;
    // Salience of each group: Σ imp_j w_j² (imp = 1 without importance); per row, groups in
    // order of salience, most salient first (ties: the earlier group first).
    let order: Vec<Vec<usize>> = w
        .par_chunks(cols)
        .map(|row| {
            let sal: Vec<f64> = (0..groups)
                .map(|g| {
                    (g * n..(g + 1) * n)
                        .map(|j| imp.map_or(1.0, |i| f64::from(i[j])) * f64::from(row[j]) * f64::from(row[j]))
                        .filter(|v| v.is_finite())
                        .sum()
                })
                .collect();
            let mut idx: Vec<usize> = (0..groups).collect();
            idx.sort_by(|&a, &b| sal[b].total_cmp(&sal[a]).then(a.cmp(&b)));
            idx
        })
        .collect();
    let weighted = imp.is_some();
    let pick = |e: (f64, f64)| if weighted { e.1 } else { e.0 };
    let total_for = |m: usize| -> f64 {
        order
            .par_iter()
            .enumerate()
            .map(|(r, idx)| {
                idx.iter()
                    .enumerate()
                    .map(|(rank, &g)| {
                        let width = if rank < m {
                            2
                        } else if rank >= groups - m {
                            0
                        } else {
                            1
                        };
                        pick(errs[width][r * groups + g])
                    })
                    .sum::<f64>()
            })
            .sum()
    };
    let mut candidates: Vec<usize> = [0, groups / 16, groups / 8, groups / 4, groups / 2].into();
    candidates.dedup();
    let mut searched = Vec::new();
    let mut best = (0usize, f64::INFINITY);
    for &m in &candidates {
        let t = total_for(m);
        searched.push([m as f64, t]);
        if t < best.1 {
            best = (m, t);
        }
    }
    let m = best.0;
    // The widths chosen: 0 → bits−1, 1 → bits, 2 → bits+1.
    let mut width = vec![1u8; rows * groups];
    for (r, idx) in order.iter().enumerate() {
        for (rank, &g) in idx.iter().enumerate() {
            width[r * groups + g] = if rank < m {
                2
            } else if rank >= groups - m {
                0
            } else {
                1
            };
        }
    }
    let code_words = (cols * bits as usize).div_ceil(32);
    let tag_words = (2 * groups).div_ceil(32);
    let parts = vec![
        Part {
            role: "codes".into(),
            dtype: "I32".into(),
            shape: vec![rows as u64, code_words as u64],
            bytes: (rows * code_words * 4) as u64,
        },
        Part {
            role: "bits".into(),
            dtype: "I32".into(),
            shape: vec![rows as u64, tag_words as u64],
            bytes: (rows * tag_words * 4) as u64,
        },
        Part {
            role: "scale".into(),
            dtype: arith.dtype().name().to_owned(),
            shape: vec![rows as u64, groups as u64],
            bytes: (rows * groups) as u64 * arith.bytes(),
        },
    ];
    sink.begin(&parts)?;
    let mut y = vec![0f32; w.len()];
    let (mut code_bytes, mut tag_bytes, mut scale_bytes) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rows {
        if cancel.is_cancelled() {
            return Err(ComputeError::Cancelled);
        }
        let mut bits_out = BitWriter::default();
        let mut tags = BitWriter::default();
        let mut scales = Vec::with_capacity(groups);
        for g in 0..groups {
            let k = usize::from(width[r * groups + g]);
            let (spec, c) = (&specs[k], &codes[k]);
            let p = c.params[r * groups + g];
            let span = r * cols + g * n..r * cols + (g + 1) * n;
            for (out, &q) in y[span.clone()].iter_mut().zip(&c.codes[span]) {
                *out = spec.decode(q, p);
                bits_out.push((i32::from(q) + (1 << (spec.bits - 1))) as u32, spec.bits);
            }
            tags.push(k as u32, 2);
            scales.push(p.scale);
        }
        code_bytes.clear();
        tag_bytes.clear();
        scale_bytes.clear();
        bits_out.finish(code_words, &mut code_bytes);
        tags.finish(tag_words, &mut tag_bytes);
        crate::codec::encode(arith.dtype(), &scales, &mut scale_bytes)
            .map_err(|e| ComputeError::Sink(e.to_string()))?;
        sink.put(0, &code_bytes)?;
        sink.put(1, &tag_bytes)?;
        sink.put(2, &scale_bytes)?;
    }
    let error = error_of(w, &y, cols, imp);
    if let Some(d) = decoded {
        d(0, &y)?;
    }
    let plain: (f64, f64) = errs[1].iter().fold((0.0, 0.0), |a, e| (a.0 + e.0, a.1 + e.1));
    let bytes = parts.iter().map(|p| p.bytes).sum();
    Ok(Encoded {
        error,
        bytes,
        rank: None,
        on: on.unwrap_or_else(|| CpuBackend.provenance()),
        method: Some(MethodReport {
            method: "slim".into(),
            parameter: "salient_groups_per_row".into(),
            value: m as f64,
            objective: if weighted { "weighted_sse" } else { "sse" }.into(),
            searched,
            plain_sse: plain.0,
            plain_weighted_sse: weighted.then_some(plain.1),
            plain_bytes: 0,
            folds_into: None,
            shared_with: Vec::new(),
            output_error: None,
            preview_only: Some(
                "mixed bit widths inside a tensor: no inference kernel decodes them yet, exporters can only \
                 fake-quantize"
                    .into(),
            ),
        }),
    })
}

/// Packs values of any width ≤ 8 densely, least significant bits first, into little-endian
/// 32-bit words.
#[derive(Default)]
struct BitWriter {
    words: Vec<u32>,
    acc: u64,
    filled: u32,
}

impl BitWriter {
    fn push(&mut self, v: u32, bits: u32) {
        self.acc |= u64::from(v & ((1 << bits) - 1)) << self.filled;
        self.filled += bits;
        if self.filled >= 32 {
            self.words.push(self.acc as u32);
            self.acc >>= 32;
            self.filled -= 32;
        }
    }

    /// The words, padded with zero words to `words`.
    fn finish(mut self, words: usize, out: &mut Vec<u8>) {
        if self.filled > 0 {
            self.words.push(self.acc as u32);
        }
        self.words.resize(words.max(self.words.len()), 0);
        out.extend(self.words.iter().flat_map(|w| w.to_le_bytes()));
    }
}

/// The tensor whose output channels take AWQ's scales for the input channels of `name`, found
/// among `names` (a checkpoint's tensors, with `shape_of` to check that the channels agree), or
/// why none can.
pub fn awq_fold(name: &str, names: &dyn Fn(&str) -> Option<Vec<u64>>) -> Result<String, String> {
    let Some(stem) = name.strip_suffix(".weight") else {
        return Err("only weights take AWQ's scales".into());
    };
    let Some((prefix, module)) = split_module(stem) else {
        return Err(format!("no layer before {name} is known to take its input scales"));
    };
    let exists = |n: &str| names(n).is_some();
    let first = |cands: &[String]| cands.iter().find(|c| exists(c)).cloned();
    let found = match module {
        "self_attn.q_proj" | "self_attn.k_proj" | "self_attn.v_proj" => {
            first(&[format!("{prefix}.input_layernorm.weight")])
        }
        "attn_q" | "attn_k" | "attn_v" => first(&[format!("{prefix}.attn_norm.weight")]),
        "mlp.gate_proj" | "mlp.up_proj" => first(&[
            format!("{prefix}.pre_feedforward_layernorm.weight"),
            format!("{prefix}.post_attention_layernorm.weight"),
        ]),
        "ffn_gate" | "ffn_up" => first(&[format!("{prefix}.ffn_norm.weight")]),
        "mlp.down_proj" => first(&[format!("{prefix}.mlp.up_proj.weight")]),
        "ffn_down" => first(&[format!("{prefix}.ffn_up.weight")]),
        "self_attn.o_proj" | "attn_output" | "attention.output.dense" => {
            let v = match module {
                "self_attn.o_proj" => format!("{prefix}.self_attn.v_proj.weight"),
                "attn_output" => format!("{prefix}.attn_v.weight"),
                _ => format!("{prefix}.attention.self.value.weight"),
            };
            let (vs, os) = (names(&v), names(name));
            match (vs, os) {
                (Some(vs), Some(os)) if vs.first() == os.last() => Some(v),
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "{v} has fewer output channels than {name} has inputs (grouped-query attention): the \
                         heads sharing a value row would need one scale"
                    ));
                }
                _ => None,
            }
        }
        "attention.self.query" | "attention.self.key" | "attention.self.value" => {
            let layer: Option<u32> = prefix.rsplit('.').next().and_then(|l| l.parse().ok());
            let root = prefix.rsplit_once('.').map_or("", |(r, _)| r);
            let root = root.strip_suffix("encoder.layer").unwrap_or(root);
            match layer {
                Some(0) => first(&[format!("{root}embeddings.LayerNorm.weight")]),
                Some(l) => first(&[format!("{root}encoder.layer.{}.output.LayerNorm.weight", l - 1)]),
                None => None,
            }
        }
        "intermediate.dense" => first(&[format!("{prefix}.attention.output.LayerNorm.weight")]),
        "output.dense" => {
            return Err(
                "a GELU stands between intermediate.dense and output.dense: no linear layer takes the scales".into()
            );
        }
        _ => None,
    };
    found.ok_or_else(|| format!("no layer before {name} is known to take its input scales"))
}

/// `(layer prefix, module)` of a block tensor's stem: `model.layers.3` + `self_attn.q_proj`,
/// `blk.3` + `attn_q`, `encoder.layer.3` + `attention.self.query`.
fn split_module(stem: &str) -> Option<(&str, &str)> {
    for marker in ["layers.", "blk.", "layer.", "h."] {
        if let Some(at) = stem.find(marker) {
            let after = &stem[at + marker.len()..];
            let digits = after.find('.')?;
            if after[..digits].parse::<u32>().is_ok() {
                let split = at + marker.len() + digits;
                return Some((&stem[..split], &stem[split + 1..]));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::SliceSource;

    /// Deterministic pseudo-normal values (xorshift and Box–Muller).
    fn normal(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let (u, v) = (next().max(1e-12), next());
                ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
            })
            .collect()
    }

    /// A 64 × 512 matrix with 8 planted salient input channels: importance 100× the rest.
    fn planted() -> (Vec<f32>, Vec<f32>, [u64; 2]) {
        let (rows, cols) = (64usize, 512usize);
        let w: Vec<f32> = normal(rows * cols, 7).iter().map(|x| x * 0.02).collect();
        let mut imp = vec![1.0f32; cols];
        for j in [3, 70, 141, 200, 255, 300, 377, 480] {
            imp[j] = 100.0;
        }
        (w, imp, [rows as u64, cols as u64])
    }

    /// Equal but for the order of f64 sums.
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
    }

    fn run(scheme: &str, w: &[f32], imp: Option<&[f32]>, shape: &[u64]) -> Encoded {
        let src = SliceSource::new("planted.weight", shape, w).unwrap();
        let job = Job {
            src: &src,
            dtype: crate::codec::DType::F32,
            stored_bytes: w.len() as u64 * 4,
            importance: imp,
            search: None,
            hessian: None,
            compare: true,
        };
        let scheme: Scheme = scheme.parse().unwrap();
        let mut sink = CollectBytes::default();
        let enc = encode(&CpuBackend, &job, &scheme, &mut sink, None, &Cancel::new()).unwrap();
        let parts: u64 = sink.parts.iter().map(|p| p.bytes).sum();
        let got: u64 = sink.bytes.iter().map(|b| b.len() as u64).sum();
        assert_eq!((parts, got), (enc.bytes, enc.bytes), "{scheme}: parts and bytes sent match the bytes counted");
        enc
    }

    #[test]
    fn awq_lowers_the_weighted_error_of_plain_rounding_at_the_same_bytes() {
        let (w, imp, shape) = planted();
        for base in ["int4_g128", "int3_ch", "q4_0", "nf4"] {
            let plain = run(base, &w, Some(&imp), &shape);
            let awq = run(&format!("{base}+awq"), &w, Some(&imp), &shape);
            let r = awq.method.clone().unwrap();
            assert_eq!(awq.bytes, plain.bytes, "{base}");
            assert!(
                close(r.plain_weighted_sse.unwrap(), plain.error.weighted_sq_err),
                "{base}: α = 0 is plain rounding"
            );
            assert!(r.value > 0.0, "{base}: α {}", r.value);
            assert!(
                awq.error.weighted_sq_err < 0.8 * plain.error.weighted_sq_err,
                "{base}: awq {} vs plain {}",
                awq.error.weighted_sq_err,
                plain.error.weighted_sq_err
            );
        }
        let src = SliceSource::new("x.weight", &shape, &w).unwrap();
        let job = Job::of_f32(&src);
        let e = encode(&CpuBackend, &job, &"int4_g128+awq".parse().unwrap(), &mut DiscardBytes, None, &Cancel::new());
        assert!(e.unwrap_err().to_string().contains("--importance"));
    }

    #[test]
    fn slim_gives_salient_groups_a_bit_more_and_keeps_the_code_bits() {
        let (rows, cols) = (64usize, 512usize);
        // Salient groups: in every row, two of the four groups of 128 are 10× larger.
        let mut w: Vec<f32> = normal(rows * cols, 11).iter().map(|x| x * 0.01).collect();
        for r in 0..rows {
            for g in [(r % 4), ((r + 1) % 4)] {
                w[r * cols + g * 128..r * cols + (g + 1) * 128].iter_mut().for_each(|x| *x *= 10.0);
            }
        }
        let shape = [rows as u64, cols as u64];
        let imp = vec![1.0f32; cols];
        let plain = run("int4_g128", &w, Some(&imp), &shape);
        let slim = run("int4_g128+slim", &w, Some(&imp), &shape);
        let r = slim.method.clone().unwrap();
        assert_eq!(r.value, 2.0, "{r:?}");
        assert!(close(r.plain_weighted_sse.unwrap(), plain.error.weighted_sq_err), "m = 0 is plain rounding");
        assert!(
            slim.error.weighted_sq_err < 0.5 * plain.error.weighted_sq_err,
            "{} vs {}",
            slim.error.weighted_sq_err,
            plain.error.weighted_sq_err
        );
        // The same code bits per row; one 32-bit word of width tags per row on top.
        assert_eq!(slim.bytes, plain.bytes + rows as u64 * 4);
    }

    #[test]
    fn slims_stored_parts_decode_to_the_values_it_measured() {
        let (rows, cols, n) = (8usize, 256usize, 32usize);
        let mut w: Vec<f32> = normal(rows * cols, 9).iter().map(|x| x * 0.01).collect();
        w[..64].iter_mut().for_each(|x| *x *= 20.0);
        let src = SliceSource::new("w", &[rows as u64, cols as u64], &w).unwrap();
        let job = Job::of_f32(&src);
        let mut sink = CollectBytes::default();
        let mut decoded = vec![0f32; w.len()];
        let mut put = |first: u64, v: &[f32]| -> Result<(), ComputeError> {
            decoded[first as usize..first as usize + v.len()].copy_from_slice(v);
            Ok(())
        };
        let enc =
            encode(&CpuBackend, &job, &"int4_g32+slim".parse().unwrap(), &mut sink, Some(&mut put), &Cancel::new())
                .unwrap();
        assert!(enc.method.unwrap().value > 0.0);
        let word = |bytes: &[u8], i: usize| u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
        let bits_at = |bytes: &[u8], row_words: usize, r: usize, at: usize, len: u32| -> u32 {
            let (i, off) = (r * row_words + at / 32, at % 32);
            let lo = u64::from(word(bytes, i))
                | u64::from(if off + len as usize > 32 { word(bytes, i + 1) } else { 0 }) << 32;
            ((lo >> off) & ((1 << len) - 1)) as u32
        };
        let (codes, tags, scales) = (&sink.bytes[0], &sink.bytes[1], &sink.bytes[2]);
        let (code_words, tag_words, groups) = (cols * 4 / 32, 1, cols / n);
        for r in 0..rows {
            let mut at = 0;
            let mut widths = [0; 3];
            for g in 0..groups {
                let k = bits_at(tags, tag_words, r, 2 * g, 2) as usize;
                widths[k] += 1;
                let b = 3 + k as u32;
                let scale = f32::from_le_bytes(scales[4 * (r * groups + g)..][..4].try_into().unwrap());
                for j in 0..n {
                    let q = bits_at(codes, code_words, r, at, b) as i32 - (1 << (b - 1));
                    at += b as usize;
                    assert_eq!(q as f32 * scale, decoded[r * cols + g * n + j], "row {r} group {g}");
                }
            }
            assert_eq!(at, cols * 4, "row {r}: the row's code bits are plain int4's");
            assert_eq!(widths[0], widths[2], "as many groups down as up");
        }
    }

    #[test]
    fn pow_fits_heavy_tails_better_than_a_uniform_grid() {
        let (rows, cols) = (64usize, 512usize);
        // Laplace-like weights: x·|x| of normals is sharply peaked with long tails.
        let w: Vec<f32> = normal(rows * cols, 5).iter().map(|x| 0.02 * x * x.abs()).collect();
        let shape = [rows as u64, cols as u64];
        let (_, imp, _) = planted();
        let plain = run("int4_ch", &w, Some(&imp), &shape);
        let pow = run("int4_ch+pow", &w, Some(&imp), &shape);
        let r = pow.method.clone().unwrap();
        assert!(r.value < 1.0, "γ {}", r.value);
        assert!(close(r.plain_weighted_sse.unwrap(), plain.error.weighted_sq_err), "γ = 1 is plain rounding");
        assert!(pow.error.weighted_sq_err < 0.8 * plain.error.weighted_sq_err);
        assert_eq!(pow.bytes, plain.bytes + 4);
        assert!(r.preview_only.is_some());
    }

    #[test]
    fn welores_global_threshold_spends_rank_where_the_spectrum_is_low_rank() {
        // A: rank 8 plus faint noise; B: noise. The same threshold keeps A at rank 8 and B whole
        // (its rank at the threshold would save nothing); a uniform rank of the same total bytes
        // loses most of B.
        let n = 128usize;
        let (u, v) = (normal(n * 8, 1), normal(8 * n, 2));
        let noise = normal(n * n, 3);
        let a: Vec<f32> = (0..n * n)
            .map(|k| {
                let (i, j) = (k / n, k % n);
                (0..8).map(|r| u[i * 8 + r] * v[r * n + j]).sum::<f32>() + 0.01 * noise[k]
            })
            .collect();
        let b = normal(n * n, 4);
        let shape = [n as u64, n as u64];
        let (wa, wb) = (run("welore_t0.1", &a, None, &shape), run("welore_t0.1", &b, None, &shape));
        assert_eq!(wa.rank, Some(8));
        assert_eq!((wb.rank, wb.error.sq_err, wb.bytes), (None, 0.0, (n * n * 4) as u64), "B is kept whole");
        assert!(wb.method.unwrap().preview_only.unwrap().contains("kept whole"));
        let budget = wa.bytes + wb.bytes;
        let k = budget / (2 * 2 * n as u64 * 4);
        let (ua, ub) =
            (run(&format!("lowrank_r{k}"), &a, None, &shape), run(&format!("lowrank_r{k}"), &b, None, &shape));
        assert!(ua.bytes + ub.bytes <= budget);
        let (welore, uniform) = (wa.error.sq_err + wb.error.sq_err, ua.error.sq_err + ub.error.sq_err);
        assert!(welore < 0.1 * uniform, "welore {welore} vs uniform rank {k}: {uniform}");
    }

    #[test]
    fn awq_folds_into_the_norm_or_layer_before_where_the_architecture_allows() {
        let shapes = |n: &str| -> Option<Vec<u64>> {
            match n {
                "model.layers.2.input_layernorm.weight" | "model.layers.2.post_attention_layernorm.weight" => {
                    Some(vec![576])
                }
                "model.layers.2.self_attn.v_proj.weight" => Some(vec![192, 576]),
                "model.layers.2.self_attn.o_proj.weight" => Some(vec![576, 576]),
                "model.layers.2.mlp.up_proj.weight" => Some(vec![1536, 576]),
                "embeddings.LayerNorm.weight" | "encoder.layer.0.output.LayerNorm.weight" => Some(vec![384]),
                "encoder.layer.1.attention.self.value.weight" | "encoder.layer.1.attention.output.dense.weight" => {
                    Some(vec![384, 384])
                }
                "encoder.layer.1.attention.output.LayerNorm.weight" => Some(vec![384]),
                "blk.2.attn_norm.weight" | "blk.2.ffn_norm.weight" | "blk.2.ffn_up.weight" => Some(vec![576]),
                _ => None,
            }
        };
        let fold = |n: &str| awq_fold(n, &shapes);
        assert_eq!(fold("model.layers.2.self_attn.k_proj.weight").unwrap(), "model.layers.2.input_layernorm.weight");
        assert_eq!(
            fold("model.layers.2.mlp.gate_proj.weight").unwrap(),
            "model.layers.2.post_attention_layernorm.weight"
        );
        assert_eq!(fold("model.layers.2.mlp.down_proj.weight").unwrap(), "model.layers.2.mlp.up_proj.weight");
        assert!(fold("model.layers.2.self_attn.o_proj.weight").unwrap_err().contains("grouped-query"));
        assert_eq!(fold("blk.2.attn_q.weight").unwrap(), "blk.2.attn_norm.weight");
        assert_eq!(fold("blk.2.ffn_down.weight").unwrap(), "blk.2.ffn_up.weight");
        assert_eq!(fold("encoder.layer.0.attention.self.query.weight").unwrap(), "embeddings.LayerNorm.weight");
        assert_eq!(
            fold("encoder.layer.1.attention.self.key.weight").unwrap(),
            "encoder.layer.0.output.LayerNorm.weight"
        );
        assert_eq!(
            fold("encoder.layer.1.attention.output.dense.weight").unwrap(),
            "encoder.layer.1.attention.self.value.weight"
        );
        assert_eq!(
            fold("encoder.layer.1.intermediate.dense.weight").unwrap(),
            "encoder.layer.1.attention.output.LayerNorm.weight"
        );
        assert!(fold("encoder.layer.1.output.dense.weight").unwrap_err().contains("GELU"));
        assert!(fold("model.embed_tokens.weight").is_err());
    }
}
