//! `weightbench analyze` and `weightbench merge-reports`: reports that travel
//! ([`crate::analysis::report`]). A server next to a 400B checkpoint computes what the views show
//! into one file; the window opens it without the checkpoint. Fleets split the work by files
//! (`--shards A-B`) and join the parts in any order.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::analysis::Cancel;
use crate::analysis::report::{Part, Report, ReportError, analyze_tensor};
use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::compute::{Backend, ComputeError};
use crate::export::atomic;
use crate::quant::preview::{Importance, share_awq_alphas};

/// Arguments of `weightbench analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Checkpoint (file or folder).
    pub path: PathBuf,
    /// The report to write (conventionally `*.wbr`).
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Only the tensors stored in these of the checkpoint's files (1-based, inclusive: `1-10`,
    /// or `3`), for one part of the work; `merge-reports` joins the parts.
    #[arg(long)]
    pub shards: Option<Part>,
    /// Importance per input channel (an imatrix file, or `weight`): adds salience maps.
    #[arg(long)]
    pub importance: Option<String>,
    /// A plan (TOML or JSON): adds each tensor's preview (bytes and error as planned).
    #[arg(long, conflicts_with = "scheme")]
    pub plan: Option<PathBuf>,
    /// One scheme for every tensor: adds each tensor's preview, as `--plan`.
    #[arg(long)]
    pub scheme: Option<String>,
    /// Replace an existing report.
    #[arg(long)]
    pub overwrite: bool,
}

/// Arguments of `weightbench merge-reports`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The parts (`analyze --shards`), in any order.
    #[arg(required = true, num_args = 1..)]
    pub parts: Vec<PathBuf>,
    /// The joined report.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Replace an existing report.
    #[arg(long)]
    pub overwrite: bool,
}

pub(super) fn run_analyze(args: &AnalyzeArgs, backend: &dyn Backend, out: &mut dyn Write) -> Result<()> {
    let ckpt = super::open_for_one_pass(&args.path)?;
    let files = ckpt.files().len();
    let part = args.shards.unwrap_or(Part { first: 1, last: files.max(1) });
    if part.last > files {
        bail!("--shards {part}: {} has {files} file(s)", args.path.display());
    }
    let plan = match (&args.plan, &args.scheme) {
        (Some(p), _) => Some(crate::quant::Plan::load(p)?),
        (None, Some(s)) => Some(crate::quant::Plan::single(s)?),
        (None, None) => None,
    };
    let importance = super::importance(&ckpt, args.importance.as_deref(), None, false, backend)?;
    let mut report =
        Report::new(&ckpt, vec![part], args.importance.clone(), plan.as_ref().map(|p| (p.origin.clone(), p.to_toml())));
    let tensors: Vec<&TensorInfo> = ckpt.tensors().iter().filter(|t| report.covers(t)).collect();
    let cancel = super::cancel_on_interrupt();
    let bar = super::progress_bar(tensors.iter().map(|t| t.bytes).sum(), "analysing");
    let results = Mutex::new(std::collections::BTreeMap::new());
    crate::analysis::try_for_each_tensor(&tensors, |i| -> Result<(), ReportError> {
        let t = tensors[i];
        let salience = salience_input(&ckpt, t, importance.as_ref());
        let r = analyze_tensor(backend, &ckpt, t, salience.as_ref().map(|(v, s)| (*v, s.as_str())), &cancel)?;
        bar.inc(t.bytes);
        if let Ok(mut all) = results.lock() {
            all.insert(t.name.clone(), r);
        }
        Ok(())
    })
    .map_err(|e| match e {
        ReportError::Cancelled => anyhow::anyhow!("cancelled (Ctrl-C): nothing was written"),
        other => anyhow::Error::new(other),
    })?;
    bar.finish_and_clear();
    report.tensors = results.into_inner().unwrap_or_default();
    if let Some(plan) = &plan {
        add_previews(&mut report, &ckpt, &tensors, plan, importance.as_ref(), backend, &cancel)?;
    }
    let inputs: Vec<&Path> = ckpt.files().iter().map(|f| f.path()).collect();
    let written = write(&report, &args.output, &inputs, args.overwrite)?;
    let failed = report.tensors.values().filter(|r| failures(r) > 0).count();
    writeln!(
        out,
        "{} tensors of files {part} of {} analysed ({failed} with a view that failed); wrote {} ({} bytes)",
        report.tensors.len(),
        files,
        args.output.display(),
        written
    )?;
    Ok(())
}

pub(super) fn run_merge(args: &MergeArgs, out: &mut dyn Write) -> Result<()> {
    let reports = args.parts.iter().map(|p| Report::read(p)).collect::<Result<Vec<_>, _>>()?;
    let merged = Report::merge(reports)?;
    let inputs: Vec<&Path> = args.parts.iter().map(PathBuf::as_path).collect();
    let written = write(&merged, &args.output, &inputs, args.overwrite)?;
    let files = merged.checkpoint.files.len();
    let parts: Vec<String> = merged.parts.iter().map(Part::to_string).collect();
    let complete = merged.parts.len() == 1 && merged.parts[0] == Part { first: 1, last: files.max(1) };
    writeln!(
        out,
        "{} tensors, files {} of {files}{}; wrote {} ({written} bytes)",
        merged.tensors.len(),
        parts.join(", "),
        if complete { " (the whole checkpoint)" } else { " (not yet the whole checkpoint)" },
        args.output.display()
    )?;
    Ok(())
}

/// The importance salience gets for `t`: an imatrix's vector (or none: its column norms), named.
fn salience_input<'a>(
    ckpt: &Checkpoint,
    t: &TensorInfo,
    importance: Option<&'a Importance>,
) -> Option<(Option<&'a [f32]>, String)> {
    match importance? {
        Importance::ColumnNorms => Some((None, "weight".into())),
        Importance::Imatrix(m, arch) => {
            let arch = if arch.is_empty() { ckpt.architecture().unwrap_or("") } else { arch.as_str() };
            Some((m.for_tensor(&t.name, arch), m.source.clone()))
        }
    }
}

/// Each tensor's preview under `plan`, as `quantize --dry-run --json` reports it.
fn add_previews(
    report: &mut Report,
    ckpt: &Checkpoint,
    tensors: &[&TensorInfo],
    plan: &crate::quant::Plan,
    importance: Option<&Importance>,
    backend: &dyn Backend,
    cancel: &Cancel,
) -> Result<()> {
    let shapes = crate::quant::plan::described(tensors.iter().copied());
    let (mut resolved, warnings) = plan.resolve(&shapes, &crate::quant::plan::ModelIdentity::of(ckpt))?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if importance.is_none()
        && let Some(r) = resolved.iter().find(|r| r.parsed.needs_importance())
    {
        bail!("tensor {} gets `{}`, which needs --importance FILE|weight", r.name, r.scheme);
    }
    share_awq_alphas(backend, ckpt, tensors, &mut resolved, importance, cancel).map_err(|e| match e {
        ComputeError::Cancelled => anyhow::anyhow!("cancelled (Ctrl-C): nothing was written"),
        other => anyhow::Error::new(other),
    })?;
    let rows = super::quantize::measure(backend, ckpt, tensors, &resolved, importance, None, cancel)?;
    for row in rows {
        let value = serde_json::to_value(&row).context("a preview row")?;
        report.tensors.entry(row.name.clone()).or_default().preview = Some(value);
    }
    Ok(())
}

/// How many of a tensor's views failed.
fn failures(r: &crate::analysis::report::Results) -> usize {
    [
        r.stats.as_ref().map(Result::is_err),
        r.spectrum.as_ref().map(Result::is_err),
        r.channels.as_ref().map(Result::is_err),
        r.salience.as_ref().map(Result::is_err),
        r.heat.as_ref().map(Result::is_err),
    ]
    .into_iter()
    .filter(|f| *f == Some(true))
    .count()
}

/// Writes the report crash-safely (staged, renamed into place; never over an input). Returns
/// its size.
fn write(report: &Report, output: &Path, inputs: &[&Path], overwrite: bool) -> Result<usize> {
    let bytes = report.to_bytes();
    let mut tx = atomic::Transaction::new(inputs, overwrite);
    tx.write_bytes(output, &bytes)?;
    tx.commit().with_context(|| format!("cannot write the report {}", output.display()))?;
    Ok(bytes.len())
}
