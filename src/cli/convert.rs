//! `weightbench convert`: a GGUF checkpoint to a transformers safetensors folder. Decodes on the
//! CPU through the codecs; starts no device.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

/// Output element types of `convert`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum OutDtype {
    /// 32-bit float: the exact dequantized values.
    F32,
    /// bfloat16, rounded to nearest even.
    Bf16,
    /// IEEE half, rounded to nearest even.
    F16,
}

/// Arguments of `weightbench convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The GGUF file (or folder holding one).
    pub path: PathBuf,
    /// Output folder; model.safetensors and config.json are written there.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Stored type of the output tensors.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: OutDtype,
    /// Keep GGUF names and layouts: plain dequantization, no renaming, no permutation, no config.
    #[arg(long)]
    pub keep_names: bool,
    /// Replace output files that already exist.
    #[arg(long)]
    pub overwrite: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(args: &ConvertArgs, out: &mut dyn Write) -> Result<()> {
    use crate::export::convert::{ConvertOptions, gguf_to_safetensors};
    let ckpt = super::open_for_one_pass(&args.path)?;
    let dtype = match args.dtype {
        OutDtype::F32 => crate::codec::DType::F32,
        OutDtype::Bf16 => crate::codec::DType::BF16,
        OutDtype::F16 => crate::codec::DType::F16,
    };
    let opts =
        ConvertOptions { out_dir: args.output.clone(), dtype, keep_names: args.keep_names, overwrite: args.overwrite };
    let bar = super::progress_bar(ckpt.total_bytes(), "converting");
    let cancel = super::cancel_on_interrupt();
    let report = match gguf_to_safetensors(&ckpt, &opts, &cancel, &|done, _| bar.set_position(done)) {
        Ok(report) => report,
        Err(crate::export::ExportError::Cancelled) => bail!("cancelled (Ctrl-C): nothing was written"),
        Err(e) => return Err(e).with_context(|| format!("cannot convert {}", args.path.display())),
    };
    bar.finish_and_clear();
    if args.json {
        super::write_json(out, &report)?;
    } else {
        for f in &report.files {
            writeln!(out, "wrote {}", f.display())?;
        }
        writeln!(
            out,
            "{} tensors, {} with values restored to transformers' layout",
            report.tensors,
            report.transformed.len()
        )?;
        for s in &report.skipped {
            writeln!(out, "skipped {s}")?;
        }
        for n in &report.notes {
            writeln!(out, "note: {n}")?;
        }
    }
    Ok(())
}
