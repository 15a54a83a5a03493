//! `weightbench quantize --dry-run`: what a plan (or one scheme for every tensor) costs each
//! tensor in bytes and error, and in total — the encoders the exporters run, measured on the
//! decoded values. `--decoded FILE` also writes the decoded values (f32 safetensors), so that
//! every error can be recomputed independently.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;

use crate::cancel::Cancel;
use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::codec::DType;
use crate::compute::{Backend, ComputeError};
use crate::export::atomic::Transaction;
use crate::export::safetensors::PlannedTensor;
use crate::quant::plan::ModelIdentity;
use crate::quant::preview::{PreviewReport, TensorPreview, note_shared_alphas, share_awq_alphas};
use crate::quant::{Importance, Plan, Resolved, preview_tensor};

/// Arguments of `weightbench quantize`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// Checkpoint (file or folder).
    pub path: PathBuf,
    /// The plan or the scheme.
    #[command(flatten)]
    pub source: super::PlanSource,
    /// Only tensors whose name matches this regular expression.
    #[arg(long)]
    pub tensor: Option<String>,
    /// Importance of each input channel: a llama.cpp imatrix (GGUF or legacy .dat; it also
    /// drives llama.cpp's weighted searches for the block types), or `weight` for the column L2
    /// norms. Adds `weighted_sse`.
    #[arg(long)]
    pub importance: Option<String>,
    /// Calibration text (a UTF-8 file): the model runs on it (windows of 512 tokens) and the
    /// inputs of every linear layer give the importance (their mean squares, as an imatrix) and,
    /// for `+gptq`, the Hessian. Transformers folders and GGUF files of the supported architectures.
    #[arg(long, conflicts_with = "importance")]
    pub calibration: Option<PathBuf>,
    /// Measure only; write no model (exporting is `weightbench export`). Required for now.
    #[arg(long)]
    pub dry_run: bool,
    /// Also write the decoded values of every previewed tensor to this safetensors file (F32).
    #[arg(long)]
    pub decoded: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct PlanJson<'a> {
    origin: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a ModelIdentity>,
    rules: Vec<serde_json::Value>,
    tensor: BTreeMap<&'a str, String>,
}

fn plan_json(plan: &Plan) -> PlanJson<'_> {
    PlanJson {
        origin: &plan.origin,
        model: plan.model.as_ref(),
        rules: plan
            .rules
            .iter()
            .map(|r| serde_json::json!({"match": r.pattern, "scheme": r.scheme.to_string(), "line": r.line}))
            .collect(),
        tensor: plan.overrides.iter().map(|(n, o)| (n.as_str(), o.scheme.to_string())).collect(),
    }
}

pub(super) fn run(args: &QuantizeArgs, backend: &dyn Backend, out: &mut dyn Write) -> Result<()> {
    if !args.dry_run {
        bail!("quantize only measures for now: pass --dry-run (`weightbench export` writes compressed models)");
    }
    let plan = args.source.load()?;
    let ckpt = super::open_for_one_pass(&args.path)?;
    let (tensors, skipped) = super::select(&ckpt, args.tensor.as_deref(), |_| true)?;
    let shapes = crate::quant::plan::described(tensors.iter().copied());
    let identity = ModelIdentity::of(&ckpt);
    let (resolved, warnings) = plan.resolve(&shapes, &identity)?;
    let hessians = resolved.iter().any(|r| r.parsed.needs_hessian());
    let importance =
        super::importance(&ckpt, args.importance.as_deref(), args.calibration.as_deref(), hessians, backend)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if importance.is_none()
        && let Some(r) = resolved.iter().find(|r| r.parsed.needs_importance())
    {
        bail!(
            "tensor {} gets `{}`, which scales input channels by their importance: give --importance FILE|weight",
            r.name,
            r.scheme
        );
    }
    let cancel = super::cancel_on_interrupt();
    // Tensors whose AWQ scales fold into one layer share one α.
    let mut resolved = resolved;
    let groups = share_awq_alphas(backend, &ckpt, &tensors, &mut resolved, importance.as_ref(), &cancel).map_err(
        |e| match e {
            ComputeError::Cancelled => anyhow::anyhow!("cancelled (Ctrl-C): nothing was written"),
            other => anyhow::Error::new(other),
        },
    )?;
    let mut rows = measure(backend, &ckpt, &tensors, &resolved, importance.as_ref(), args.decoded.as_ref(), &cancel)?;
    note_shared_alphas(&mut rows, &groups);
    let all_stored: u64 = ckpt.tensors().iter().map(|t| t.bytes).sum();
    let previewed_stored: u64 = tensors.iter().map(|t| t.bytes).sum();
    let report = PreviewReport::finish(rows, all_stored, previewed_stored);
    let failed: Vec<&TensorPreview> = report.tensors.iter().filter(|t| t.error.is_some()).collect();
    let mut computed: Option<crate::compute::Provenance> = None;
    for t in &report.tensors {
        computed = Some(computed.map_or_else(|| t.computed.clone(), |c| c.merge(&t.computed)));
    }
    if args.json {
        let mut v = serde_json::json!({
            "path": args.path.display().to_string(),
            "plan": plan_json(&plan),
            "warnings": warnings,
            "skipped": skipped,
            "tensors": report.tensors,
            "total": report.total,
        });
        if let (Some(c), Some(obj)) = (&computed, v.as_object_mut()) {
            obj.insert("backend".into(), c.backend.clone().into());
            obj.insert("device".into(), c.device.clone().into());
            obj.insert("fallback".into(), c.fallback.clone().into());
        }
        super::write_json(out, &v)?;
    } else {
        table(out, &report)?;
        writeln!(out, "{}", super::computed_on(report.tensors.iter().map(|t| &t.computed)))?;
    }
    if !failed.is_empty() {
        let names: Vec<String> =
            failed.iter().map(|t| format!("{}: {}", t.name, t.error.as_deref().unwrap_or(""))).collect();
        bail!("{} tensor(s) cannot be encoded faithfully:\n  {}", failed.len(), names.join("\n  "));
    }
    Ok(())
}

/// Previews every tensor in order, with a progress bar (after the first second) and Ctrl-C.
pub(super) fn measure(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    tensors: &[&TensorInfo],
    resolved: &[Resolved],
    importance: Option<&Importance>,
    decoded: Option<&PathBuf>,
    cancel: &Cancel,
) -> Result<Vec<TensorPreview>> {
    let total: u64 = tensors.iter().map(|t| t.numel()).sum();
    let bar = indicatif::ProgressBar::hidden();
    bar.set_length(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} values ({eta})") {
        bar.set_style(style);
    }
    let started = Instant::now();
    let tick = |bar: &indicatif::ProgressBar, t: &TensorInfo| {
        if started.elapsed() > Duration::from_secs(1) && bar.is_hidden() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        bar.set_message(t.name.clone());
    };
    let cancelled = |e: ComputeError| match e {
        ComputeError::Cancelled => anyhow::anyhow!("cancelled (Ctrl-C): nothing was written"),
        other => anyhow::Error::new(other),
    };
    let mut rows = Vec::with_capacity(tensors.len());
    match decoded {
        None => {
            for (t, r) in tensors.iter().zip(resolved) {
                tick(&bar, t);
                rows.push(preview_tensor(backend, ckpt, t, r, importance, None, cancel).map_err(cancelled)?);
                bar.inc(t.numel());
            }
        }
        Some(path) => {
            let planned: Vec<PlannedTensor> = tensors
                .iter()
                .map(|t| PlannedTensor { name: t.name.clone(), dtype: DType::F32, shape: t.shape.clone() })
                .collect();
            let inputs: Vec<&std::path::Path> = ckpt.files().iter().map(|f| f.path()).collect();
            let mut tx = Transaction::new(&inputs, true);
            crate::export::safetensors::write(&mut tx, path, &BTreeMap::new(), &planned, cancel, |i, sink| {
                tick(&bar, tensors[i]);
                let mut put = |_: u64, values: &[f32]| -> Result<(), ComputeError> {
                    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                    sink.write(&bytes).map_err(|e| ComputeError::Sink(e.to_string()))
                };
                let row = preview_tensor(backend, ckpt, tensors[i], &resolved[i], importance, Some(&mut put), cancel)
                    .map_err(|e| crate::export::ExportError::Unsupported { message: e.to_string() })?;
                rows.push(row);
                bar.inc(tensors[i].numel());
                Ok(())
            })
            .map_err(anyhow::Error::new)?;
            tx.commit()?;
        }
    }
    bar.finish_and_clear();
    Ok(rows)
}

fn table(out: &mut dyn Write, report: &PreviewReport) -> Result<()> {
    let w = report.tensors.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let sw = report.tensors.iter().map(|r| r.scheme.len()).max().unwrap_or(6).max(6);
    let weighted = report.total.weighted_sse.is_some();
    writeln!(
        out,
        "{:<w$}  {:<sw$} {:>14} {:>12} {:>6} {:>10} {:>8} {:>10}{}",
        "NAME",
        "SCHEME",
        "SHAPE",
        "BYTES",
        "BPW",
        "REL_ERR",
        "SQNR_DB",
        "MAX_ABS",
        if weighted { "  WEIGHTED_SSE" } else { "" }
    )?;
    let opt = |v: Option<f64>, p: usize| v.map_or("-".to_owned(), |x| format!("{x:.p$}"));
    for r in &report.tensors {
        let shape = r.shape.iter().map(u64::to_string).collect::<Vec<_>>().join("×");
        writeln!(
            out,
            "{:<w$}  {:<sw$} {:>14} {:>12} {:>6.3} {:>10} {:>8} {:>10.3e}{}",
            r.name,
            r.scheme,
            shape,
            r.bytes,
            r.bpw,
            r.rel_error.map_or("-".to_owned(), |x| format!("{x:.3e}")),
            opt(r.sqnr_db, 2),
            r.max_abs_error,
            r.weighted_sse.map_or(String::new(), |x| format!("  {x:.4e}")),
        )?;
        if let (Some(req), Some(why)) = (&r.requested, &r.fallback_reason) {
            writeln!(out, "{:<w$}    ↳ fallback from {req}: {why}", "")?;
        }
        if let Some(m) = &r.method {
            let obj =
                if m.objective == "weighted_sse" { m.plain_weighted_sse.unwrap_or(m.plain_sse) } else { m.plain_sse };
            let mine = if m.objective == "weighted_sse" { r.weighted_sse.unwrap_or(r.sse) } else { r.sse };
            let mut line = format!(
                "{:<w$}    ↳ {} {} = {}: {} {mine:.4e} against plain {obj:.4e} at {} bytes",
                "", m.method, m.parameter, m.value, m.objective, m.plain_bytes
            );
            if let Some(into) = &m.folds_into {
                line.push_str(&format!("; scales fold into {into}"));
            }
            if !m.shared_with.is_empty() {
                line.push_str(&format!(", α shared with {}", m.shared_with.join(", ")));
            }
            if let Some(why) = &m.preview_only {
                line.push_str(&format!("; preview only: {why}"));
            }
            match &m.output_error {
                // GPTQ minimises the layer's output error, not the weights'.
                Some(o) => {
                    writeln!(out, "{:<w$}    ↳ gptq (damping {}): {}", "", m.value, super::output_error_line(o))?
                }
                None => writeln!(out, "{line}")?,
            }
        }
        if let Some(e) = &r.error {
            writeln!(out, "{:<w$}    ✗ {e}", "")?;
        }
    }
    let t = &report.total;
    writeln!(
        out,
        "TOTAL {} tensors: {} params, {} bytes, {:.3} bpw, rel_error {}, sse {:.4e}{}; whole model {} bytes (stored: {})",
        t.tensors,
        t.params,
        t.bytes,
        t.bpw,
        t.rel_error.map_or("-".to_owned(), |x| format!("{x:.3e}")),
        t.sse,
        t.weighted_sse.map_or(String::new(), |x| format!(", weighted_sse {x:.4e}")),
        t.model_bytes,
        t.source_bytes
    )?;
    Ok(())
}
