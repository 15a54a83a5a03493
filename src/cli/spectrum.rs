//! `weightbench spectrum`: singular values and WeightWatcher's metrics of 2-D tensors.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::analysis::spectrum::SpectrumMethod;
use crate::compute::Backend;

/// How singular values are computed, as the command line names it.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum MethodArg {
    /// `gram` (the default).
    Auto,
    /// Direct SVD of the f64 matrix.
    Svd,
    /// Eigenvalues of the smaller Gram matrix.
    Gram,
}

impl From<MethodArg> for SpectrumMethod {
    fn from(m: MethodArg) -> Self {
        match m {
            MethodArg::Auto => SpectrumMethod::Auto,
            MethodArg::Svd => SpectrumMethod::Svd,
            MethodArg::Gram => SpectrumMethod::Gram,
        }
    }
}

/// Arguments of `weightbench spectrum`.
#[derive(Debug, Args)]
pub struct SpectrumArgs {
    /// Checkpoint (file or folder).
    pub path: PathBuf,
    /// Only tensors whose name matches this regular expression (default: every 2-D tensor).
    #[arg(long)]
    pub tensor: Option<String>,
    /// How singular values are computed: eigenvalues of the smaller Gram matrix (auto, the
    /// default: fast, any size) or a direct SVD (exact down to the smallest singular values).
    #[arg(long, value_enum, default_value = "auto")]
    pub method: MethodArg,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(args: &SpectrumArgs, backend: &dyn Backend, out: &mut dyn Write) -> Result<()> {
    let ckpt = super::open_for_one_pass(&args.path)?;
    let (tensors, skipped) =
        super::select(&ckpt, args.tensor.as_deref(), |t| t.shape.len() >= 2 && t.numel() > 0 && !t.dtype.is_integer())?;
    let bar = super::progress_bar(tensors.iter().map(|t| t.bytes).sum(), "spectra");
    let cancel = crate::analysis::Cancel::new();
    let results = crate::analysis::spectrum::spectra(backend, &ckpt, &tensors, args.method.into(), &cancel, &|i| {
        bar.inc(tensors[i].bytes)
    })?;
    bar.finish_and_clear();
    if args.json {
        return super::write_tensors_json(out, &results, &skipped);
    }
    let w = results.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
    writeln!(
        out,
        "{:<w$}  {:<14} {:>6} {:>7} {:>6} {:>10} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6}",
        "NAME", "SHAPE", "METHOD", "ALPHA", "D", "XMIN", "ALPHA_W", "LOG_NRM", "LOG_SPN", "ST_RANK", "SPIKES", "RANK"
    )?;
    for r in &results {
        let shape: Vec<String> = r.shape.iter().map(u64::to_string).collect();
        writeln!(
            out,
            "{:<w$}  {:<14} {:>6} {:>7} {:>6} {:>10} {:>8} {:>8.3} {:>8.3} {:>8.2} {:>6} {:>6}",
            r.name,
            shape.join("x"),
            format!("{:?}", r.method).to_lowercase(),
            opt(r.alpha),
            opt(r.d),
            r.xmin.map(|v| format!("{v:.3e}")).unwrap_or_else(|| "-".into()),
            opt(r.alpha_weighted),
            r.log_norm,
            r.log_spectral_norm,
            r.stable_rank,
            r.num_pl_spikes.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            r.rank
        )?;
    }
    writeln!(out, "{}", super::computed_on(results.iter().map(|r| &r.computed)))?;
    Ok(())
}
