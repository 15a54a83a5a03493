//! `weightbench stats`: moments, special values, outliers and a histogram per tensor.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::compute::Backend;

/// Arguments of `weightbench stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Checkpoint (file or folder).
    pub path: PathBuf,
    /// Only tensors whose name matches this regular expression.
    #[arg(long)]
    pub tensor: Option<String>,
    /// Histogram bins.
    #[arg(long, default_value_t = 256)]
    pub bins: usize,
    /// Bin log10(|x|) of the non-zero values instead of x.
    #[arg(long)]
    pub log_abs: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(args: &StatsArgs, backend: &dyn Backend, out: &mut dyn Write) -> Result<()> {
    use crate::analysis::stats::tensors_stats;
    use crate::compute::{BinScale, StatsRequest};
    let ckpt = super::open_for_one_pass(&args.path)?;
    let (tensors, skipped) = super::select(&ckpt, args.tensor.as_deref(), |_| true)?;
    let req = StatsRequest {
        bins: args.bins.max(1),
        scale: if args.log_abs { BinScale::Log10Abs } else { BinScale::Linear },
    };
    let bar = super::progress_bar(tensors.iter().map(|t| t.bytes).sum(), "statistics");
    let cancel = crate::analysis::Cancel::new();
    let results = tensors_stats(backend, &ckpt, &tensors, &req, &cancel, &|i| bar.inc(tensors[i].bytes))?;
    bar.finish_and_clear();
    if args.json {
        return super::write_tensors_json(out, &results, &skipped);
    }
    let w = results.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    writeln!(
        out,
        "{:<w$}  {:<7} {:>11} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>6}",
        "NAME", "DTYPE", "MEAN", "STD", "MIN", "MAX", "SKEW", "KURT", ">3σ", ">6σ"
    )?;
    for r in &results {
        writeln!(
            out,
            "{:<w$}  {:<7} {:>11.3e} {:>10.3e} {:>10.3e} {:>10.3e} {:>8.2} {:>8.2} {:>8} {:>6}{}",
            r.name,
            r.dtype,
            r.mean,
            r.std,
            r.min,
            r.max,
            r.skewness,
            r.kurtosis,
            r.outliers_3sigma,
            r.outliers_6sigma,
            if r.nan + r.pos_inf + r.neg_inf > 0 {
                format!("  NaN {} +Inf {} -Inf {}", r.nan, r.pos_inf, r.neg_inf)
            } else {
                String::new()
            }
        )?;
    }
    writeln!(out, "{}", super::computed_on(results.iter().map(|r| &r.computed)))?;
    Ok(())
}
