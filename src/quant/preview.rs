//! The preview: what a plan costs each tensor in bytes and error, and in total. It runs the
//! encoders the exporters run, with a sink that keeps nothing, and measures the decoded values.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::encode::{DecodedSink, DiscardBytes, Job, encode};
use super::plan::Resolved;
use super::scheme::Scheme;
use crate::cancel::Cancel;
use crate::checkpoint::imatrix::Imatrix;
use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::codec::int::GroupError;
use crate::compute::{Backend, ComputeError, Provenance, TensorRef, ValueSource};

/// Where the importance of each input channel comes from.
#[derive(Clone, Debug)]
pub enum Importance {
    /// A llama.cpp imatrix (mean squared activations), looked up by tensor name or its GGUF
    /// name under the architecture `arch`; also drives llama.cpp's weighted block searches.
    Imatrix(Arc<Imatrix>, String),
    /// The column L2 norms of the weight itself (`--importance weight`).
    ColumnNorms,
}

impl Importance {
    /// Whether it came from calibration text and so carries the Hessians `+gptq` reads.
    pub fn has_hessians(&self) -> bool {
        matches!(self, Importance::Imatrix(m, _) if !m.hessians.is_empty())
    }
}

/// The preview of one tensor (read back from a report's stored rows, too).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorPreview {
    /// The tensor.
    pub name: String,
    /// The scheme it gets.
    pub scheme: String,
    /// The scheme asked for, when a fallback replaced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    /// Why the fallback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// Its shape.
    pub shape: Vec<u64>,
    /// Its stored type.
    pub dtype: String,
    /// Values.
    pub params: u64,
    /// Exact bytes the scheme stores.
    pub bytes: u64,
    /// 8 · bytes / params.
    pub bpw: f64,
    /// ‖W − Ŵ‖²_F.
    pub sse: f64,
    /// ‖W − Ŵ‖_F / ‖W‖_F (null for an all-zero tensor).
    pub rel_error: Option<f64>,
    /// 10·log10(‖W‖²_F / ‖W − Ŵ‖²_F) (null when either is zero).
    pub sqnr_db: Option<f64>,
    /// max |W − Ŵ|.
    pub max_abs_error: f64,
    /// Σ_j imp_j · Σ_i (W_ij − Ŵ_ij)², with importance.
    pub weighted_sse: Option<f64>,
    /// NaN and ±Inf values in the tensor.
    pub non_finite: u64,
    /// The rank a low-rank scheme kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank: Option<usize>,
    /// What a method's search chose (`+awq`, `+slim`, `+pow`, `welore`) and the plain
    /// quantizer's error and bytes beside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<super::methods::MethodReport>,
    /// Why this tensor cannot be encoded faithfully (NaN or ±Inf values under a scheme whose
    /// reference gives them no defined code): its row is not to be exported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The model's mean KL divergence (nats per token, original ‖ this tensor alone under its
    /// scheme) over calibration text, when `plan auto --objective kl` measured it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kl: Option<f64>,
    /// Σ W² (for totals).
    #[serde(skip)]
    pub signal: f64,
    /// Who computed it.
    #[serde(flatten)]
    pub computed: Provenance,
}

/// Totals over the tensors of a preview.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Tensors previewed.
    pub tensors: usize,
    /// Values.
    pub params: u64,
    /// Bytes the plan stores for them.
    pub bytes: u64,
    /// 8 · bytes / params over them.
    pub bpw: f64,
    /// Σ sse.
    pub sse: f64,
    /// sqrt(Σ sse / Σ ‖W‖²).
    pub rel_error: Option<f64>,
    /// Σ weighted_sse, with importance.
    pub weighted_sse: Option<f64>,
    /// Bytes of the whole model under the plan: the previewed tensors as planned, every other
    /// tensor as stored.
    pub model_bytes: u64,
    /// Bytes of the whole model as stored.
    pub source_bytes: u64,
}

/// A whole preview.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PreviewReport {
    /// One row per tensor.
    pub tensors: Vec<TensorPreview>,
    /// Totals.
    pub total: Totals,
}

impl PreviewReport {
    /// Sums the rows; `all_stored` is the stored bytes of every tensor of the checkpoint and
    /// `previewed_stored` those of the previewed ones.
    pub fn finish(tensors: Vec<TensorPreview>, all_stored: u64, previewed_stored: u64) -> Self {
        let params: u64 = tensors.iter().map(|t| t.params).sum();
        let bytes: u64 = tensors.iter().map(|t| t.bytes).sum();
        let sse: f64 = tensors.iter().map(|t| t.sse).sum();
        let signal: f64 = tensors.iter().map(|t| t.signal).sum();
        let weighted: Vec<f64> = tensors.iter().filter_map(|t| t.weighted_sse).collect();
        let total = Totals {
            tensors: tensors.len(),
            params,
            bytes,
            bpw: if params > 0 { 8.0 * bytes as f64 / params as f64 } else { 0.0 },
            sse,
            rel_error: (signal > 0.0).then(|| (sse / signal).sqrt()),
            weighted_sse: (!weighted.is_empty()).then(|| weighted.iter().sum()),
            model_bytes: all_stored - previewed_stored + bytes,
            source_bytes: all_stored,
        };
        PreviewReport { tensors, total }
    }
}

/// The importance vector of `tensor`, if any.
pub fn importance_of(
    backend: &dyn Backend,
    importance: Option<&Importance>,
    src: &dyn ValueSource,
    cancel: &Cancel,
) -> Result<(Option<Vec<f32>>, bool), ComputeError> {
    Ok(match importance {
        None => (None, false),
        Some(Importance::Imatrix(m, arch)) => match m.for_tensor(src.name(), arch) {
            Some(v) => (Some(v.to_vec()), true),
            None => (None, false),
        },
        Some(Importance::ColumnNorms) if src.is_matrix() => {
            let ch = backend.channels(src, 1, cancel)?;
            (Some(ch.value.col_l2.iter().map(|&v| v as f32).collect()), false)
        }
        Some(Importance::ColumnNorms) => (None, false),
    })
}

/// The Hessian of `name`'s inputs, when the importance came from calibration text.
pub fn hessian_of<'a>(
    importance: Option<&'a Importance>,
    name: &str,
) -> Option<&'a crate::checkpoint::imatrix::Hessian> {
    match importance {
        Some(Importance::Imatrix(m, arch)) => m.hessian_for(name, arch).map(|h| &**h),
        _ => None,
    }
}

/// A `+gptq` tensor that calibration ran but whose inputs it never saw (an embedding, a
/// tensor outside the layers the runtime runs) gets plain rounding, saying why; without
/// calibration at all it stays, and its encoder asks for calibration.
fn gptq_without_inputs(resolved: &Resolved, importance: Option<&Importance>) -> Option<Resolved> {
    if !resolved.parsed.needs_hessian()
        || !importance.is_some_and(Importance::has_hessians)
        || hessian_of(importance, &resolved.name).is_some()
    {
        return None;
    }
    let base = resolved.parsed.stored_form().clone();
    let why = format!("no calibration inputs reach it (not a linear layer the model ran): plain {base}");
    Some(Resolved {
        scheme: base.to_string(),
        requested: Some(resolved.requested.clone().unwrap_or_else(|| resolved.scheme.clone())),
        fallback_reason: Some(match &resolved.fallback_reason {
            Some(w) if !w.is_empty() => format!("{w}; {why}"),
            _ => why,
        }),
        parsed: base,
        ..resolved.clone()
    })
}

/// Previews one tensor with its resolved scheme (sending decoded values to `decoded` if given).
pub fn preview_tensor(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    tensor: &TensorInfo,
    resolved: &Resolved,
    importance: Option<&Importance>,
    decoded: Option<DecodedSink<'_>>,
    cancel: &Cancel,
) -> Result<TensorPreview, ComputeError> {
    encode_tensor(
        backend,
        ckpt,
        tensor,
        &TensorRef::new(ckpt, tensor),
        resolved,
        importance,
        &mut DiscardBytes,
        decoded,
        cancel,
    )
}

/// One tensor's values after its planned scheme (encoded, decoded again) sent to `decoded`, for
/// the runtime's fake quantization: the same encoders as [`preview_tensor`], without the
/// comparisons only a report reads (GPTQ's plain-rounding and AWQ alternatives).
pub fn fake_quantize_tensor(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    tensor: &TensorInfo,
    resolved: &Resolved,
    importance: Option<&Importance>,
    decoded: DecodedSink<'_>,
    cancel: &Cancel,
) -> Result<TensorPreview, ComputeError> {
    let src = TensorRef::new(ckpt, tensor);
    let sink = &mut DiscardBytes;
    encode_tensor_as(backend, ckpt, tensor, &src, resolved, importance, sink, Some(decoded), false, cancel)
}

/// Encodes one tensor, read from `src` (the tensor itself, or its values in another layout),
/// with its resolved scheme: the stored parts go to `sink`, the decoded values to `decoded`,
/// and the row says what it cost — the preview with a sink that keeps nothing, an export with
/// one that writes, so that both report the same numbers.
#[allow(clippy::too_many_arguments)]
pub fn encode_tensor(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    tensor: &TensorInfo,
    src: &dyn ValueSource,
    resolved: &Resolved,
    importance: Option<&Importance>,
    sink: &mut dyn super::encode::PartSink,
    decoded: Option<DecodedSink<'_>>,
    cancel: &Cancel,
) -> Result<TensorPreview, ComputeError> {
    encode_tensor_as(backend, ckpt, tensor, src, resolved, importance, sink, decoded, true, cancel)
}

/// [`encode_tensor`], with the alternatives a method compares itself with measured only when
/// `compare`.
#[allow(clippy::too_many_arguments)]
fn encode_tensor_as(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    tensor: &TensorInfo,
    src: &dyn ValueSource,
    resolved: &Resolved,
    importance: Option<&Importance>,
    sink: &mut dyn super::encode::PartSink,
    decoded: Option<DecodedSink<'_>>,
    compare: bool,
    cancel: &Cancel,
) -> Result<TensorPreview, ComputeError> {
    let plain;
    let resolved = match gptq_without_inputs(resolved, importance) {
        Some(r) => {
            plain = r;
            &plain
        }
        None => resolved,
    };
    let (imp, is_imatrix) = importance_of(backend, importance, src, cancel)?;
    let job = Job {
        src,
        dtype: tensor.dtype,
        stored_bytes: tensor.bytes,
        importance: imp.as_deref(),
        search: if is_imatrix { imp.as_deref() } else { None },
        hessian: hessian_of(importance, &resolved.name),
        compare,
    };
    let mut enc = encode(backend, &job, &resolved.parsed, sink, decoded, cancel)?;
    if let Some(m) = enc.method.as_mut()
        && m.method == "awq"
    {
        let shape_of = |n: &str| ckpt.tensor(n).map(|t| t.shape.clone());
        match super::methods::awq_fold(&tensor.name, &shape_of) {
            Ok(into) => m.folds_into = Some(into),
            Err(why) => m.preview_only = Some(why),
        }
    }
    let mut r = row(tensor, resolved, &enc.error, enc.bytes, enc.rank, imp.is_some(), enc.on);
    r.method = enc.method;
    Ok(r)
}

pub(super) fn row(
    tensor: &TensorInfo,
    resolved: &Resolved,
    e: &GroupError,
    bytes: u64,
    rank: Option<usize>,
    weighted: bool,
    computed: Provenance,
) -> TensorPreview {
    let params = tensor.numel();
    TensorPreview {
        name: tensor.name.clone(),
        scheme: resolved.scheme.clone(),
        requested: resolved.requested.clone(),
        fallback_reason: resolved.fallback_reason.clone(),
        shape: tensor.shape.clone(),
        dtype: tensor.dtype.name().to_owned(),
        params,
        bytes,
        bpw: if params > 0 { 8.0 * bytes as f64 / params as f64 } else { 0.0 },
        sse: e.sq_err,
        rel_error: (e.signal > 0.0).then(|| (e.sq_err / e.signal).sqrt()),
        sqnr_db: (e.signal > 0.0 && e.sq_err > 0.0).then(|| 10.0 * (e.signal / e.sq_err).log10()),
        max_abs_error: f64::from(e.max_abs_err),
        weighted_sse: weighted.then_some(e.weighted_sq_err),
        non_finite: e.non_finite,
        rank,
        method: None,
        error: (e.non_finite > 0 && !matches!(resolved.parsed, Scheme::Keep | Scheme::F16 | Scheme::Bf16)).then(|| {
            format!(
                "{} NaN/±Inf values: {} gives them no defined code (the reference encoders turn them into \
                 garbage); keep the tensor, store it as f16/bf16, or clean it",
                e.non_finite, resolved.scheme
            )
        }),
        kl: None,
        signal: e.signal,
        computed,
    }
}

/// Tensors whose `+awq` scales fold into the same layer: q, k and v after one norm, gate and up
/// after another. One scale vector folds into a layer, so they must share α.
#[derive(Clone, Debug, PartialEq)]
pub struct AwqGroup {
    /// The layer the scales fold into.
    pub into: String,
    /// Indices of the members (into the caller's tensors), at least two.
    pub members: Vec<usize>,
}

/// The groups among `tensors` whose resolved schemes search AWQ's α (`+awq`), by fold target.
pub fn awq_groups(ckpt: &Checkpoint, tensors: &[&TensorInfo], schemes: &[&Scheme]) -> Vec<AwqGroup> {
    let shape_of = |n: &str| ckpt.tensor(n).map(|t| t.shape.clone());
    let mut by_target: std::collections::BTreeMap<String, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, (t, s)) in tensors.iter().zip(schemes).enumerate() {
        if let Scheme::With { method: super::scheme::Method::Awq { alpha: None }, .. } = s
            && let Ok(into) = super::methods::awq_fold(&t.name, &shape_of)
        {
            by_target.entry(into).or_default().push(i);
        }
    }
    by_target.into_iter().filter(|(_, m)| m.len() > 1).map(|(into, members)| AwqGroup { into, members }).collect()
}

/// The α shared by tensors with AWQ search curves `curves` (`[α, objective]` on one grid): the
/// one minimising their summed objective (the smaller on ties), in hundredths.
pub fn shared_alpha(curves: &[&[[f64; 2]]]) -> Option<u8> {
    let first = curves.first()?;
    let mut best: Option<(f64, f64)> = None;
    for (k, point) in first.iter().enumerate() {
        let total: f64 = curves.iter().map(|c| c.get(k).map_or(f64::INFINITY, |p| p[1])).sum();
        if best.is_none_or(|(_, b)| total < b) {
            best = Some((point[0], total));
        }
    }
    best.map(|(a, _)| (a * 100.0).round() as u8)
}

/// `scheme` with AWQ's α fixed at `alpha` hundredths (unchanged when it is no `+awq`).
pub fn with_alpha(scheme: &Scheme, alpha: u8) -> Scheme {
    match scheme {
        Scheme::With { method: super::scheme::Method::Awq { .. }, base } => {
            Scheme::With { method: super::scheme::Method::Awq { alpha: Some(alpha) }, base: base.clone() }
        }
        other => other.clone(),
    }
}

/// Gives the tensors of each AWQ fold group one α: each member's own search, then every member
/// set to `+awq@α` with the α minimising their summed objective. Returns the groups.
pub fn share_awq_alphas(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    tensors: &[&TensorInfo],
    resolved: &mut [Resolved],
    importance: Option<&Importance>,
    cancel: &Cancel,
) -> Result<Vec<AwqGroup>, ComputeError> {
    let parsed: Vec<&Scheme> = resolved.iter().map(|r| &r.parsed).collect();
    let groups = awq_groups(ckpt, tensors, &parsed);
    for g in &groups {
        let mut curves = Vec::with_capacity(g.members.len());
        for &i in &g.members {
            let row = preview_tensor(backend, ckpt, tensors[i], &resolved[i], importance, None, cancel)?;
            curves.push(row.method.map(|m| m.searched).unwrap_or_default());
        }
        let refs: Vec<&[[f64; 2]]> = curves.iter().map(Vec::as_slice).collect();
        if let Some(alpha) = shared_alpha(&refs) {
            for &i in &g.members {
                resolved[i].parsed = with_alpha(&resolved[i].parsed, alpha);
            }
        }
    }
    Ok(groups)
}

/// Names in each row's method report the other members of its AWQ fold group.
pub fn note_shared_alphas(rows: &mut [TensorPreview], groups: &[AwqGroup]) {
    for g in groups {
        let names: Vec<String> = g.members.iter().map(|&i| rows[i].name.clone()).collect();
        for &i in &g.members {
            let others: Vec<String> = names.iter().filter(|n| **n != rows[i].name).cloned().collect();
            if let Some(m) = rows[i].method.as_mut() {
                m.shared_with = others;
            }
        }
    }
}
