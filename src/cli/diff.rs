//! `weightbench diff A B`: two checkpoints compared tensor by tensor ([`crate::analysis::diff`]).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;

use crate::analysis::AnalysisError;
use crate::analysis::diff::{DEFAULT_TOP, ShapeMismatch, TensorDiff, diff_pair, pair};
use crate::compute::{Backend, ComputeError};

/// Arguments of `weightbench diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The reference checkpoint (file or folder): `rel_error` is relative to its norms.
    pub a: PathBuf,
    /// The checkpoint compared with it.
    pub b: PathBuf,
    /// Only A's tensors whose name matches this regular expression.
    #[arg(long)]
    pub tensor: Option<String>,
    /// Singular values of each difference to list (0: no spectrum, which halves the reading).
    #[arg(long, default_value_t = DEFAULT_TOP)]
    pub top: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Totals {
    tensors: usize,
    values: u64,
    sse: f64,
    rel_error: Option<f64>,
    max_abs_error: f32,
    identical: usize,
}

#[derive(Serialize)]
struct DiffJson<'a> {
    a: String,
    b: String,
    tensors: &'a [TensorDiff],
    only_in_a: &'a [String],
    only_in_b: &'a [String],
    shape_mismatch: &'a [ShapeMismatch],
    skipped: &'a [String],
    totals: Totals,
}

pub(super) fn run(args: &DiffArgs, backend: &dyn Backend, out: &mut dyn Write) -> Result<()> {
    let a = super::open_for_one_pass(&args.a)?;
    let b = super::open_for_one_pass(&args.b)?;
    let re = args.tensor.as_deref().map(regex::Regex::new).transpose()?;
    let pairing = pair(&a, &b, |t| re.as_ref().is_none_or(|re| re.is_match(&t.name)));
    let mut skipped = Vec::new();
    let pairs: Vec<_> = pairing
        .pairs
        .iter()
        .filter(|p| {
            let why = p.a.dtype.why_not_analysed().or_else(|| p.b.dtype.why_not_analysed());
            if let Some(why) = &why {
                eprintln!("skipping {}: {why}", p.a.name);
                skipped.push(p.a.name.clone());
            }
            why.is_none()
        })
        .collect();
    if pairs.is_empty() {
        bail!(
            "no tensor of {} has a counterpart of the same shape in {} ({} only in A, {} only in B, {} of other shapes)",
            args.a.display(),
            args.b.display(),
            pairing.only_in_a.len(),
            pairing.only_in_b.len(),
            pairing.shape_mismatch.len()
        );
    }
    let cancel = super::cancel_on_interrupt();
    let reads = if args.top > 0 { 3 } else { 2 };
    let bar = super::progress_bar(pairs.iter().map(|p| reads * (p.a.bytes + p.b.bytes)).sum(), "comparing");
    let mut results = Vec::with_capacity(pairs.len());
    for p in &pairs {
        let d = diff_pair(backend, &a, &b, p, args.top, &cancel).map_err(|e| match e {
            AnalysisError::Compute(ComputeError::Cancelled) => anyhow::anyhow!("cancelled (Ctrl-C)"),
            other => anyhow::Error::new(other).context(format!("cannot compare tensor {}", p.a.name)),
        })?;
        bar.inc(reads * (p.a.bytes + p.b.bytes));
        results.push(d);
    }
    bar.finish_and_clear();
    let (sse, signal) = results.iter().fold((0.0, 0.0), |(s, n), r| (s + r.sse, n + r.norm_a * r.norm_a));
    let totals = Totals {
        tensors: results.len(),
        values: results.iter().map(|r| r.values).sum(),
        sse,
        rel_error: (signal > 0.0).then(|| (sse / signal).sqrt()),
        max_abs_error: results.iter().map(|r| r.max_abs_error).fold(0.0, f32::max),
        identical: results.iter().filter(|r| r.sse == 0.0 && r.non_finite == 0).count(),
    };
    if args.json {
        return super::write_json(
            out,
            &DiffJson {
                a: args.a.display().to_string(),
                b: args.b.display().to_string(),
                tensors: &results,
                only_in_a: &pairing.only_in_a,
                only_in_b: &pairing.only_in_b,
                shape_mismatch: &pairing.shape_mismatch,
                skipped: &skipped,
                totals,
            },
        );
    }
    let w = results.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let opt = |v: Option<f64>, p: usize| v.map_or_else(|| "-".into(), |v| format!("{v:.p$e}"));
    writeln!(
        out,
        "{:<w$}  {:<12} {:>8} {:>8} {:>11} {:>11} {:>10} {:>12} {:>9} {:>6}",
        "NAME", "SHAPE", "A", "B", "REL_ERROR", "SSE", "MAX_ABS", "1-COSINE", "ST_RANK", "R90"
    )?;
    for r in &results {
        let shape: Vec<String> = r.shape.iter().map(u64::to_string).collect();
        let sp = r.spectrum.as_ref();
        writeln!(
            out,
            "{:<w$}  {:<12} {:>8} {:>8} {:>11} {:>11.4e} {:>10.3e} {:>12} {:>9} {:>6}",
            r.name,
            shape.join("x"),
            r.dtype_a,
            r.dtype_b,
            opt(r.rel_error, 3),
            r.sse,
            r.max_abs_error,
            opt(r.cosine.map(|c| 1.0 - c), 3),
            sp.and_then(|s| s.stable_rank).map_or_else(|| "-".into(), |v| format!("{v:.2}")),
            sp.map_or_else(|| "-".into(), |s| format!("{}/{}", s.rank_90, s.full_rank)),
        )?;
    }
    writeln!(
        out,
        "{} tensors compared ({} identical): sse {:.4e}, rel_error {}, max_abs_error {:.3e}",
        totals.tensors,
        totals.identical,
        totals.sse,
        opt(totals.rel_error, 4),
        totals.max_abs_error
    )?;
    for (what, names) in [("only in A", &pairing.only_in_a), ("only in B", &pairing.only_in_b)] {
        if !names.is_empty() {
            writeln!(out, "{what} ({}): {}", names.len(), names.join(", "))?;
        }
    }
    for m in &pairing.shape_mismatch {
        writeln!(out, "shapes differ: {} {:?} vs {} {:?}", m.name, m.shape_a, m.name_b, m.shape_b)?;
    }
    writeln!(out, "{}", super::computed_on(results.iter().map(|r| &r.computed)))?;
    Ok(())
}
