//! `weightbench export`: the compressed model a plan describes ([`crate::export::model`]).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use crate::cancel::Cancel;
use crate::compute::{Backend, ComputeError};
use crate::export::model::{ExportFormat, ExportOptions, export_plan};
use crate::quant::preview::{PreviewReport, share_awq_alphas};

/// Output formats, as the command line names them.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    /// A GGUF file of llama.cpp block types (from a GGUF source).
    Gguf,
    /// A folder with model.safetensors of fake-quantized weights and the source's other files.
    Safetensors,
    /// A compressed-tensors folder (vLLM, transformers): integers packed, FP8, the rest dense.
    Ct,
    /// llama.cpp's `--tensor-type-file` (one anchored line per tensor), and the command line.
    LlamaPlan,
    /// GPTQModel's quantization config with `dynamic` per-module overrides (JSON).
    GptqPlan,
    /// This plan resolved per tensor (TOML): fallbacks and AWQ's shared α written out.
    Plan,
}

/// Arguments of `weightbench export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Checkpoint (file or folder).
    pub path: PathBuf,
    /// The plan or the scheme.
    #[command(flatten)]
    pub source: super::PlanSource,
    /// What to write.
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// Only tensors whose name matches this regular expression (a part of the model, e.g. to try
    /// a scheme on a few tensors of a large checkpoint).
    #[arg(long)]
    pub tensor: Option<String>,
    /// The output: a file for gguf, a folder for safetensors.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Importance per input channel (an imatrix file, or `weight`), as for `quantize`: drives
    /// llama.cpp's weighted searches and the weighted errors.
    #[arg(long)]
    pub importance: Option<String>,
    /// Calibration text (a UTF-8 file): the model runs on it (windows of 512 tokens) and the
    /// inputs of every linear layer give the importance (their mean squares, as an imatrix) and,
    /// for `+gptq`, the Hessian. Transformers folders and GGUF files of the supported architectures.
    #[arg(long, conflicts_with = "importance")]
    pub calibration: Option<PathBuf>,
    /// Replace existing outputs.
    #[arg(long)]
    pub overwrite: bool,
    /// Shard safetensors and ct outputs into files of at most this size (e.g. 5GB, 500MB), with
    /// model.safetensors.index.json, as transformers does.
    #[arg(long, value_parser = crate::export::safetensors::parse_size)]
    pub max_shard_size: Option<u64>,
    /// safetensors: store each low-rank tensor as its two factors, `<module>.lora_A.weight`
    /// (r × in) and `<module>.lora_B.weight` (out × r), instead of their product.
    #[arg(long)]
    pub factors: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(args: &ExportArgs, backend: &dyn Backend, out: &mut dyn Write) -> Result<()> {
    let plan = args.source.load()?;
    let mut ckpt = super::open_for_one_pass(&args.path)?;
    if let Some(pattern) = &args.tensor {
        let re = regex::Regex::new(pattern).context("invalid --tensor regular expression")?;
        if ckpt.retain_tensors(|t| re.is_match(&t.name)) == 0 {
            bail!("no tensor of {} matches {pattern:?}", args.path.display());
        }
    }
    let ckpt = ckpt;
    let hessians = plan.resolve_all(&ckpt)?.0.iter().any(|r| r.parsed.needs_hessian());
    let importance =
        super::importance(&ckpt, args.importance.as_deref(), args.calibration.as_deref(), hessians, backend)?;
    let cancel = super::cancel_on_interrupt();
    let format = match args.format {
        FormatArg::Gguf => ExportFormat::Gguf,
        FormatArg::Safetensors => ExportFormat::Safetensors,
        FormatArg::Ct => ExportFormat::Ct,
        FormatArg::LlamaPlan | FormatArg::GptqPlan | FormatArg::Plan => {
            return write_plan(args, &ckpt, &plan, importance.as_ref(), backend, &cancel, out);
        }
    };
    let bar = super::progress_bar(ckpt.total_params(), "exporting");
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} values ({eta})") {
        bar.set_style(style);
    }
    let options =
        ExportOptions { overwrite: args.overwrite, max_shard_size: args.max_shard_size, factors: args.factors };
    let report =
        export_plan(backend, &ckpt, &plan, importance.as_ref(), format, &args.output, &options, &cancel, &|done, _| {
            bar.set_position(done)
        })
        .map_err(|e| match e {
            crate::export::ExportError::Cancelled => anyhow::anyhow!("cancelled (Ctrl-C): nothing was written"),
            other => anyhow::Error::new(other),
        })
        .with_context(|| format!("cannot export {} as {format:?}", args.path.display()))?;
    bar.finish_and_clear();
    let stored: u64 = ckpt.tensors().iter().map(|t| t.bytes).sum();
    let preview = PreviewReport::finish(report.tensors.clone(), stored, stored);
    if args.json {
        return super::write_json(
            out,
            &serde_json::json!({
                "format": report.format,
                "files": report.files,
                "data_bytes": report.data_bytes,
                "notes": report.notes,
                "tensors": preview.tensors,
                "total": preview.total,
            }),
        );
    }
    let t = &preview.total;
    writeln!(
        out,
        "{} tensors: {} bytes as planned, {:.3} bpw, rel_error {}, sse {:.4e}",
        t.tensors,
        t.bytes,
        t.bpw,
        t.rel_error.map_or("-".into(), |x| format!("{x:.3e}")),
        t.sse
    )?;
    for f in &report.files {
        writeln!(out, "wrote {}", f.display())?;
    }
    for n in &report.notes {
        writeln!(out, "note: {n}")?;
    }
    writeln!(out, "{}", super::computed_on(preview.tensors.iter().map(|t| &t.computed)))?;
    Ok(())
}

/// Writes the plan for another tool (no encoding) and says what it could not express.
fn write_plan(
    args: &ExportArgs,
    ckpt: &crate::checkpoint::Checkpoint,
    plan: &crate::quant::Plan,
    importance: Option<&crate::quant::Importance>,
    backend: &dyn Backend,
    cancel: &Cancel,
    out: &mut dyn Write,
) -> Result<()> {
    use crate::export::plans;
    let tensors: Vec<&crate::checkpoint::TensorInfo> = ckpt.tensors().iter().collect();
    let (mut resolved, warnings) = plan.resolve_all(ckpt)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if importance.is_none()
        && let Some(r) = resolved.iter().find(|r| r.parsed.needs_importance())
    {
        bail!("tensor {} gets `{}`, which needs --importance FILE|weight", r.name, r.scheme);
    }
    // The plan TOML writes AWQ's shared α out.
    share_awq_alphas(backend, ckpt, &tensors, &mut resolved, importance, cancel).map_err(|e| match e {
        ComputeError::Cancelled => anyhow::anyhow!("cancelled (Ctrl-C): nothing was written"),
        other => anyhow::Error::new(other),
    })?;
    let resolved = &resolved;
    let t = match args.format {
        FormatArg::LlamaPlan => plans::llama_cpp(ckpt, resolved),
        FormatArg::GptqPlan => plans::gptqmodel(ckpt, resolved),
        _ => plans::resolved_toml(ckpt, resolved),
    };
    let inputs: Vec<&std::path::Path> = ckpt.files().iter().map(|f| f.path()).collect();
    let mut tx = crate::export::atomic::Transaction::new(&inputs, args.overwrite);
    tx.write_text(&args.output, &t.text)?;
    tx.commit()?;
    if args.json {
        return super::write_json(
            out,
            &serde_json::json!({"files": [args.output], "command": t.command, "cannot_express": t.cannot_express}),
        );
    }
    writeln!(out, "wrote {}", args.output.display())?;
    if let Some(c) = &t.command {
        writeln!(out, "run: {c}")?;
    }
    if !t.cannot_express.is_empty() {
        writeln!(out, "the target cannot express {} tensors' schemes (left to its default):", t.cannot_express.len())?;
        for c in &t.cannot_express {
            writeln!(out, "  {c}")?;
        }
    }
    Ok(())
}
