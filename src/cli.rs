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
    /// Checkpoint to open in the window: a .safetensors or .gguf file, a
    /// *.safetensors.index.json, or a folder holding one (Hugging Face layout).
    pub path: Option<PathBuf>,

    /// Window only: the view to open on.
    #[arg(long, value_enum)]
    pub view: Option<crate::app::StartView>,

    /// Window only: the tensor to select first (exact name); default the largest.
    #[arg(long)]
    pub select: Option<String>,

    /// Window only: start a whole-model job on opening.
    #[arg(long, value_enum)]
    pub run: Option<crate::app::StartJob>,

    /// Where kernels run: the GPU when a hardware adapter exists (auto), the CPU, or the GPU on
    /// any adapter including software Vulkan. A GPU failure falls back to the CPU with a notice.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub backend: crate::compute::select::BackendChoice,

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
    /// Per-tensor statistics: moments, special values, 3σ/6σ outliers and a histogram.
    ///
    /// Moments are accumulated in f64 by exact block merging over the finite values; NaN and
    /// ±Inf are counted and left out. Histogram counts equal numpy.histogram(values,
    /// bins=thresholds) for the reported f32 thresholds (parse them as float32).
    Stats(StatsArgs),
    /// Per-channel view of one weight matrix: abs-max, L2 and kurtosis per row and column, the
    /// most outlying channels, and a tiled abs-max map.
    Channels(ChannelsArgs),
    /// Singular values and WeightWatcher's spectral metrics (alpha, D, xmin, ...) of 2-D tensors.
    Spectrum(SpectrumArgs),
}

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

/// Arguments of `weightbench channels`.
#[derive(Debug, Args)]
pub struct ChannelsArgs {
    /// Checkpoint (file or folder).
    pub path: PathBuf,
    /// The tensor (exact name); higher ranks are seen as [dim0, rest].
    #[arg(long)]
    pub tensor: String,
    /// How many of the most outlying channels to list.
    #[arg(long, default_value_t = 16)]
    pub top: usize,
    /// Tiles per side of the abs-max map, at most.
    #[arg(long, default_value_t = 256)]
    pub grid: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
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
    pub method: crate::analysis::spectrum::SpectrumMethod,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
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

/// Runs a headless command, writing to `out`; kernels run on the backend `choice` selects.
pub fn run(command: &Command, choice: crate::compute::select::BackendChoice, out: &mut dyn Write) -> Result<()> {
    let selected = crate::compute::select::select(choice);
    if let Some(notice) = &selected.notice {
        eprintln!("note: {notice}");
    }
    let backend = selected.backend.as_ref();
    let result = match command {
        Command::Info(args) => info(args, out),
        Command::Convert(args) => convert(args, out),
        Command::Stats(args) => stats(args, backend, out),
        Command::Channels(args) => channels(args, backend, out),
        Command::Spectrum(args) => spectrum(args, backend, out),
    };
    if let Some(gpu) = &selected.gpu {
        for notice in gpu.take_notices() {
            eprintln!("note: {notice}");
        }
    }
    result
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

/// Tensors of `ckpt` matching `pattern` and `keep`; tensors whose type cannot be decoded yet are
/// reported on stderr and left out.
fn select<'a>(
    ckpt: &'a Checkpoint,
    pattern: Option<&str>,
    keep: impl Fn(&TensorInfo) -> bool,
) -> Result<(Vec<&'a TensorInfo>, Vec<String>)> {
    let re = pattern.map(regex::Regex::new).transpose().context("invalid --tensor regular expression")?;
    let mut chosen = Vec::new();
    let mut skipped = Vec::new();
    for t in ckpt.tensors() {
        if re.as_ref().is_some_and(|re| !re.is_match(&t.name)) || !keep(t) {
            continue;
        }
        if t.dtype.can_decode() {
            chosen.push(t);
        } else {
            eprintln!("skipping {}: decoding {} is not supported yet", t.name, t.dtype);
            skipped.push(t.name.clone());
        }
    }
    if chosen.is_empty() {
        anyhow::bail!("no tensor of {} matches", ckpt.path().display());
    }
    Ok((chosen, skipped))
}

/// The `--json` output of the per-tensor commands: `{"tensors": [...], "skipped": [...]}` and a
/// newline.
fn write_tensors_json(out: &mut dyn Write, results: &impl serde::Serialize, skipped: &[String]) -> Result<()> {
    serde_json::to_writer(&mut *out, &serde_json::json!({"tensors": results, "skipped": skipped}))?;
    writeln!(out)?;
    Ok(())
}

fn stats(args: &StatsArgs, backend: &dyn crate::compute::Backend, out: &mut dyn Write) -> Result<()> {
    use crate::analysis::stats::tensors_stats;
    use crate::compute::{BinScale, StatsRequest};
    let ckpt = open(&args.path)?;
    let (tensors, skipped) = select(&ckpt, args.tensor.as_deref(), |_| true)?;
    let req = StatsRequest {
        bins: args.bins.max(1),
        scale: if args.log_abs { BinScale::Log10Abs } else { BinScale::Linear },
    };
    let bar = progress_bar(tensors.iter().map(|t| t.bytes).sum(), "statistics");
    let cancel = crate::analysis::Cancel::new();
    let results = tensors_stats(backend, &ckpt, &tensors, &req, &cancel, &|i| bar.inc(tensors[i].bytes))?;
    bar.finish_and_clear();
    if args.json {
        return write_tensors_json(out, &results, &skipped);
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
    Ok(())
}

fn channels(args: &ChannelsArgs, backend: &dyn crate::compute::Backend, out: &mut dyn Write) -> Result<()> {
    use crate::analysis::channels::channel_report;
    let ckpt = open(&args.path)?;
    let t = ckpt.require(&args.tensor)?;
    let report = channel_report(backend, &ckpt, t, args.top, args.grid, &Default::default())?;
    if args.json {
        serde_json::to_writer(&mut *out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{} {}: {} rows (output channels) x {} columns (input channels)",
        t.name,
        t.shape_string(),
        report.channels.rows,
        report.channels.cols
    )?;
    for (title, list, median) in [
        ("input channels (columns)", &report.top_input_channels, report.col_abs_max_median),
        ("output channels (rows)", &report.top_output_channels, report.row_abs_max_median),
    ] {
        writeln!(out, "\ntop {title} by abs-max / median ({median:.4e}):")?;
        writeln!(out, "{:>8} {:>12} {:>9} {:>12} {:>10}", "INDEX", "ABS_MAX", "RATIO", "L2", "KURTOSIS")?;
        for c in list {
            writeln!(
                out,
                "{:>8} {:>12.4e} {:>9.2} {:>12.4e} {:>10.2}",
                c.index, c.abs_max, c.ratio_to_median, c.l2, c.kurtosis
            )?;
        }
    }
    writeln!(
        out,
        "\nabs-max map: {} x {} tiles of {} x {} values (in --json)",
        report.channels.grid_rows, report.channels.grid_cols, report.channels.tile_rows, report.channels.tile_cols
    )?;
    Ok(())
}

fn spectrum(args: &SpectrumArgs, backend: &dyn crate::compute::Backend, out: &mut dyn Write) -> Result<()> {
    let ckpt = open(&args.path)?;
    let (tensors, skipped) =
        select(&ckpt, args.tensor.as_deref(), |t| t.shape.len() >= 2 && t.numel() > 0 && !t.dtype.is_integer())?;
    let bar = progress_bar(tensors.iter().map(|t| t.bytes).sum(), "spectra");
    let cancel = crate::analysis::Cancel::new();
    let results = crate::analysis::spectrum::spectra(backend, &ckpt, &tensors, args.method, &cancel, &|i| {
        bar.inc(tensors[i].bytes)
    })?;
    bar.finish_and_clear();
    if args.json {
        return write_tensors_json(out, &results, &skipped);
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
