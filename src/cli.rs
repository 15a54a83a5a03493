//! Headless commands. Each prints a human table by default and one JSON object with `--json`;
//! every number the GUI shows can be had here (DESIGN.md, invariant 1).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::checkpoint::{Checkpoint, Role, TensorInfo};
use crate::format;

/// weightbench: look inside neural-network checkpoints and compress them.
///
/// With no argument, opens the window on the bundled demo checkpoint; with a PATH, opens that
/// file or folder. Subcommands run the same engine without a window.
#[derive(Debug, Parser)]
#[command(name = "weightbench", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Checkpoint to open in the window: a .safetensors file, a *.safetensors.index.json, or a
    /// folder holding either (Hugging Face layout).
    pub path: Option<PathBuf>,

    /// A headless command.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Headless commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the tensors of a checkpoint: name, dtype, shape, size, file, offset, layer and role.
    Info(InfoArgs),
    /// Convert a GGUF checkpoint to safetensors with transformers names and a config.json.
    ///
    /// Every tensor is dequantized exactly as llama.cpp does, llama.cpp's Q/K row permutation
    /// (Llama) and norm shift (Gemma) are undone, and config.json is built from the GGUF
    /// metadata, so that the folder loads in transformers. The tokenizer is not converted.
    Convert(ConvertArgs),
}

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

/// Arguments of `weightbench info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Checkpoint: a .safetensors file, a *.safetensors.index.json, or a folder holding either.
    pub path: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs a headless command, writing to `out`.
pub fn run(command: &Command, out: &mut dyn Write) -> Result<()> {
    match command {
        Command::Info(args) => info(args, out),
        Command::Convert(args) => convert(args, out),
    }
}

fn open(path: &Path) -> Result<Checkpoint> {
    Checkpoint::open(path).with_context(|| format!("cannot open checkpoint {}", path.display()))
}

/// `info --json`: one object describing the checkpoint and every tensor.
#[derive(Debug, Serialize)]
pub struct InfoJson {
    /// Container format.
    pub format: &'static str,
    /// Path as opened.
    pub path: String,
    /// Data files, in the order `tensors[].file` refers to.
    pub files: Vec<String>,
    /// Architecture from config.json, or guessed from names.
    pub architecture: Option<String>,
    /// Sum of all tensors' element counts.
    pub total_params: u64,
    /// Sum of all tensors' byte sizes.
    pub total_bytes: u64,
    /// File-level metadata (`__metadata__`, index metadata, GGUF key-values).
    pub metadata: std::collections::BTreeMap<String, serde_json::Value>,
    /// Oddities that did not stop the checkpoint from opening.
    pub warnings: Vec<String>,
    /// Every tensor.
    pub tensors: Vec<TensorJson>,
}

/// One tensor in `info --json`.
#[derive(Debug, Serialize)]
pub struct TensorJson {
    /// Name as stored.
    pub name: String,
    /// dtype name (safetensors names).
    pub dtype: String,
    /// Shape.
    pub shape: Vec<u64>,
    /// Path of the file holding it.
    pub file: String,
    /// Absolute byte offset in that file.
    pub offset: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Block index, or null.
    pub layer: Option<u32>,
    /// Normalised role.
    pub role: Role,
}

impl InfoJson {
    /// Builds the description of an opened checkpoint.
    pub fn new(ckpt: &Checkpoint) -> Self {
        let tensor = |t: &TensorInfo| TensorJson {
            name: t.name.clone(),
            dtype: t.dtype.name().to_owned(),
            shape: t.shape.clone(),
            file: ckpt.file_path(t).display().to_string(),
            offset: t.offset,
            bytes: t.bytes,
            layer: t.layer,
            role: t.role,
        };
        Self {
            format: ckpt.format().as_str(),
            path: ckpt.path().display().to_string(),
            files: ckpt.files().iter().map(|f| f.path().display().to_string()).collect(),
            architecture: ckpt.architecture().map(str::to_owned),
            total_params: ckpt.total_params(),
            total_bytes: ckpt.total_bytes(),
            metadata: ckpt.metadata().clone(),
            warnings: ckpt.warnings().to_vec(),
            tensors: ckpt.tensors().iter().map(tensor).collect(),
        }
    }
}

fn info(args: &InfoArgs, out: &mut dyn Write) -> Result<()> {
    let ckpt = open(&args.path)?;
    if args.json {
        serde_json::to_writer(&mut *out, &InfoJson::new(&ckpt))?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "checkpoint    {}", ckpt.path().display())?;
    writeln!(out, "format        {} ({} file(s))", ckpt.format().as_str(), ckpt.files().len())?;
    writeln!(out, "architecture  {}", ckpt.architecture().unwrap_or("unknown"))?;
    writeln!(
        out,
        "tensors       {} tensors, {} parameters, {}",
        ckpt.tensors().len(),
        format::count(ckpt.total_params()),
        format::bytes(ckpt.total_bytes())
    )?;
    for w in ckpt.warnings() {
        writeln!(out, "warning       {w}")?;
    }
    writeln!(out)?;
    let name_width = ckpt.tensors().iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
    let multi = ckpt.files().len() > 1;
    writeln!(
        out,
        "{:<name_width$}  {:<7}  {:<18}  {:>10}  {:>5}  {:<9}{}",
        "NAME",
        "DTYPE",
        "SHAPE",
        "SIZE",
        "LAYER",
        "ROLE",
        if multi { "  FILE" } else { "" }
    )?;
    for t in ckpt.tensors() {
        let file = if multi {
            let name = ckpt.file_path(t).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            format!("  {name}")
        } else {
            String::new()
        };
        writeln!(
            out,
            "{:<name_width$}  {:<7}  {:<18}  {:>10}  {:>5}  {:<9}{file}",
            t.name,
            t.dtype.name(),
            t.shape_string(),
            format::bytes(t.bytes),
            t.layer.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
            t.role.as_str(),
        )?;
    }
    Ok(())
}

fn convert(args: &ConvertArgs, out: &mut dyn Write) -> Result<()> {
    use crate::export::convert::{ConvertOptions, gguf_to_safetensors};
    let ckpt = open(&args.path)?;
    let dtype = match args.dtype {
        OutDtype::F32 => crate::codec::DType::F32,
        OutDtype::Bf16 => crate::codec::DType::BF16,
        OutDtype::F16 => crate::codec::DType::F16,
    };
    let opts =
        ConvertOptions { out_dir: args.output.clone(), dtype, keep_names: args.keep_names, overwrite: args.overwrite };
    let bar = progress_bar(ckpt.total_bytes(), "converting");
    let report = gguf_to_safetensors(&ckpt, &opts, &crate::analysis::Cancel::new(), &|done, _| bar.set_position(done))
        .with_context(|| format!("cannot convert {}", args.path.display()))?;
    bar.finish_and_clear();
    if args.json {
        serde_json::to_writer(&mut *out, &report)?;
        writeln!(out)?;
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
    }
    Ok(())
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} ({eta})") {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar
}

/// Where the bundled demo checkpoint is: `$WEIGHTBENCH_DEMO`, then `assets/demo` beside the
/// executable or in `../share/weightbench/demo`, then the source tree it was built from.
pub fn demo_checkpoint_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WEIGHTBENCH_DEMO") {
        return Some(PathBuf::from(p));
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        candidates.push(dir.join("assets/demo"));
        candidates.push(dir.join("../share/weightbench/demo"));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo"));
    candidates.into_iter().find(|p| p.join("model.safetensors").is_file())
}
