//! Headless commands, one file each. Each prints a human table by default and one JSON object
//! with `--json`; every number the GUI shows can be had here (DESIGN.md, invariant 1). Every
//! computed result says which backend produced it (`backend`, `device`, `fallback`).
//!
//! The top-level parser (the window's options and the global `--backend`) lives in the binary;
//! this module knows nothing of the window.

mod channels;
mod convert;
mod diff;
mod export;
mod heatmap;
mod heatmap_png;
mod info;
mod plan;
mod quantize;
mod report;
mod runtime;
mod salience;
mod spectrum;
mod stats;

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use clap::Subcommand;
use clap::builder::TypedValueParser;

pub use channels::ChannelsArgs;
pub use convert::{ConvertArgs, OutDtype};
pub use diff::DiffArgs;
pub use export::ExportArgs;
pub use heatmap::HeatmapArgs;
pub use info::{InfoArgs, InfoJson, TensorJson};
pub use plan::{AutoArgs, ObjectiveArg, PlanCommand};
pub use quantize::QuantizeArgs;
pub use runtime::{AttentionArgs, EmbedArgs, EvalArgs, ImatrixArgs};
pub use salience::SalienceArgs;
pub use spectrum::SpectrumArgs;
pub use stats::StatsArgs;

use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::compute::Backend;
use crate::compute::select::{BackendChoice, SelectedBackend};

/// Headless commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the tensors of a checkpoint: name, dtype, shape, size, file, offset, layer and role.
    Info(InfoArgs),
    /// Convert a GGUF checkpoint to safetensors with transformers names and a config.json.
    ///
    /// Every tensor is dequantized exactly as llama.cpp does, llama.cpp's Q/K row permutation
    /// (Llama) and norm shift (Gemma) are undone, and config.json is built from the GGUF
    /// metadata, so that the folder loads in transformers. A byte-level BPE tokenizer (llama.cpp's
    /// `gpt2` model) is rebuilt as tokenizer.json and tokenizer_config.json.
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
    /// The salience map of one weight matrix: per tile, the max of |W_ij| times the importance
    /// of input channel j (its column norm, or a llama.cpp imatrix).
    Salience(SalienceArgs),
    /// A heatmap of any region of a matrix at any resolution, down to single weights: per tile
    /// its abs-max, signed mean, signed extreme, rms or salience, as JSON or a PNG with a legend.
    Heatmap(HeatmapArgs),
    /// What a quantization plan (or one scheme) costs each tensor: exact bytes, bits per
    /// weight, and the error of the decoded values (sse, rel_error, sqnr_db, max_abs_error,
    /// weighted_sse with importance), with totals.
    ///
    /// Schemes: llama.cpp block types (q8_0 q4_0 q4_1 q5_0 q5_1 q2_k..q6_k, byte-identical to
    /// llama.cpp), compressed-tensors integers (int4_g128, int8_ch, int4_g128_asym), f16, bf16,
    /// fp8_e4m3[_ch], nf4, lowrank_r<N> / lowrank_e<F> [+scheme], keep.
    Quantize(QuantizeArgs),
    /// Compare two checkpoints tensor by tensor: rel_error, sse, max_abs_error, cosine
    /// similarity and the spectrum of the difference (top singular values, stable rank, rank
    /// holding 90% of the energy).
    ///
    /// Safetensors or GGUF on either side; GGUF names are matched to transformers names for the
    /// Llama family with llama.cpp's Q/K row permutation and Gemma's norm offset undone. Tensors
    /// found on one side only, or with different shapes, are listed.
    Diff(DiffArgs),
    /// Write the compressed model a plan describes, with the encoders the preview runs: GGUF
    /// (llama.cpp block types, from a GGUF source) or fake-quantized safetensors.
    Export(ExportArgs),
    /// Quantization plans: `plan auto` chooses a scheme per tensor for a size budget (a
    /// multiple-choice knapsack with its LP bound and gap) and writes the plan and its Pareto
    /// frontier.
    Plan {
        /// What to do with plans.
        #[command(subcommand)]
        command: PlanCommand,
    },
    /// Run the model on a text: perplexity, and with a plan the perplexity of the planned model,
    /// the KL divergence of its next-token distributions from the original's (mean and 99th
    /// percentile) and how often both choose the same next token. Llama family and Gemma 3 (BERT has
    /// no language-model head).
    Eval(EvalArgs),
    /// Attention probabilities of one layer's heads on a text, with the attention sinks (tokens
    /// that receive far more than their share in many heads) and, with a plan, how far the
    /// planned model's maps move. Llama family, Gemma 3 and BERT.
    Attention(AttentionArgs),
    /// Run the model on calibration text and write llama.cpp's importance matrix (GGUF): per
    /// linear layer, the sum of each input channel's squared activation and the tokens seen, for
    /// `llama-quantize --imatrix` and for our own `--importance`. Llama family and Gemma 3; BERT under its transformers names.
    Imatrix(ImatrixArgs),
    /// The sentence embedding of a text from a BERT encoder (mean pooling, normalised when the
    /// folder's sentence-transformers modules say so), and with a plan the cosine similarity of
    /// the planned model's embedding to the original's.
    Embed(EmbedArgs),
    /// Compute what the window's views show (statistics and histograms, spectra, channel
    /// profiles and tile maps, salience with --importance, a plan's preview with --plan/--scheme)
    /// into one report file that the window opens without the checkpoint (`weightbench
    /// report.wbr`). `--shards A-B` computes the part stored in those files, for fleets.
    Analyze(report::AnalyzeArgs),
    /// Join reports of parts of one checkpoint (`analyze --shards`) into one; any order gives
    /// the same file.
    MergeReports(report::MergeArgs),
}

/// The command line's names of the backends, parsed into [`BackendChoice`].
pub fn backend_parser() -> impl clap::builder::TypedValueParser<Value = BackendChoice> {
    clap::builder::PossibleValuesParser::new(BackendChoice::ALL.map(BackendChoice::as_str))
        .map(|s| s.parse::<BackendChoice>().unwrap_or_default())
}

/// Runs a headless command, writing to `out`; kernels run on the backend `choice` selects,
/// started only if the command computes something.
pub fn run(command: &Command, choice: BackendChoice, out: &mut dyn Write) -> Result<()> {
    let backend = SelectedBackend::new(choice);
    let result = match command {
        Command::Info(args) => info::run(args, out),
        Command::Convert(args) => convert::run(args, out),
        Command::Stats(args) => stats::run(args, &backend, out),
        Command::Channels(args) => channels::run(args, &backend, out),
        Command::Spectrum(args) => spectrum::run(args, &backend, out),
        Command::Salience(args) => salience::run(args, &backend, out),
        Command::Heatmap(args) => heatmap::run(args, &backend, out),
        Command::Quantize(args) => quantize::run(args, &backend, out),
        Command::Diff(args) => diff::run(args, &backend, out),
        Command::Export(args) => export::run(args, &backend, out),
        Command::Plan { command } => plan::run(command, &backend, out),
        Command::Eval(args) => runtime::run_eval(args, &backend, out),
        Command::Attention(args) => runtime::run_attention(args, &backend, out),
        Command::Imatrix(args) => runtime::run_imatrix(args, &backend, out),
        Command::Embed(args) => runtime::run_embed(args, &backend, out),
        Command::Analyze(args) => report::run_analyze(args, &backend, out),
        Command::MergeReports(args) => report::run_merge(args, out),
    };
    for notice in backend.take_notices() {
        eprintln!("note: {notice}");
    }
    result
}

/// Where a command's schemes come from: a plan file or one scheme for every tensor.
#[derive(Debug, clap::Args)]
pub struct PlanSource {
    /// A plan (TOML, or JSON by its extension): rules and per-tensor overrides.
    #[arg(long, conflicts_with = "scheme", required_unless_present = "scheme")]
    pub plan: Option<std::path::PathBuf>,
    /// One scheme for every selected tensor (with the fallbacks a plan's rule gets), e.g.
    /// q4_k, int4_g128, nf4, lowrank_r64+int8_ch.
    #[arg(long)]
    pub scheme: Option<String>,
}

impl PlanSource {
    /// The plan named.
    fn load(&self) -> Result<crate::quant::Plan> {
        use crate::quant::Plan;
        Ok(match (&self.plan, &self.scheme) {
            (Some(p), _) => Plan::load(p)?,
            (None, Some(s)) => Plan::single(s)?,
            (None, None) => anyhow::bail!("give --plan FILE or --scheme NAME"),
        })
    }
}

/// The importance a `--importance` argument names (an imatrix file, or `weight` for the
/// column norms), or the one measured on `--calibration` text (with Hessians when asked).
fn importance(
    ckpt: &Checkpoint,
    arg: Option<&str>,
    calibration: Option<&Path>,
    hessians: bool,
    backend: &dyn Backend,
) -> Result<Option<crate::quant::Importance>> {
    use crate::quant::Importance;
    if let Some(text) = calibration {
        return Ok(Some(runtime::calibration(ckpt, text, hessians, backend)?));
    }
    Ok(match arg {
        None => None,
        Some("weight") => Some(Importance::ColumnNorms),
        Some(file) => {
            let m = crate::checkpoint::imatrix::read_imatrix(Path::new(file))
                .with_context(|| format!("cannot read the importance matrix {file}"))?;
            let arch = ckpt.model_config().map(|c| c.architecture.clone()).unwrap_or_default();
            Some(Importance::Imatrix(std::sync::Arc::new(m), arch))
        }
    })
}

/// GPTQ's output errors beside plain rounding's and AWQ's, relative to the output's own size.
fn output_error_line(o: &crate::quant::gptq::OutputErrors) -> String {
    let rel = |e: f64| if o.signal > 0.0 { format!("{:.3e}", (e / o.signal).sqrt()) } else { "-".into() };
    format!(
        "layer output error over {} calibration tokens (√(E‖ΔW·x‖² / E‖W·x‖²)): gptq {}, plain rounding {}, awq {}",
        o.tokens,
        rel(o.gptq),
        rel(o.plain),
        o.awq.map_or("-".into(), rel)
    )
}

fn open(path: &Path) -> Result<Checkpoint> {
    Checkpoint::open(path).with_context(|| format!("cannot open checkpoint {}", path.display()))
}

/// Opens a checkpoint for the commands that pass over its tensors one after another (statistics,
/// spectra, reports, quantization, export): every tensor, not only the large ones, gives its pages
/// back as it is read, so a whole-model pass keeps a resident size of the chunks in flight however
/// many tensors the model has. (A tensor read again, as a plan's candidates are, comes back from
/// the page cache.)
fn open_for_one_pass(path: &Path) -> Result<Checkpoint> {
    let mut ckpt = open(path)?;
    ckpt.set_release_from(0);
    Ok(ckpt)
}

/// Tensors of `ckpt` matching `pattern` and `keep`; tensors whose values cannot be read are
/// reported on stderr, with the reason, and left out.
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
        match t.dtype.why_not_analysed() {
            None => chosen.push(t),
            Some(why) => {
                eprintln!("skipping {}: {why}", t.name);
                skipped.push(t.name.clone());
            }
        }
    }
    if chosen.is_empty() {
        anyhow::bail!("no tensor of {} matches", ckpt.path().display());
    }
    Ok((chosen, skipped))
}

/// Writes one JSON value and a newline.
fn write_json(out: &mut dyn Write, value: &impl serde::Serialize) -> Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// The `--json` output of the per-tensor commands: `{"tensors": [...], "skipped": [...]}`.
fn write_tensors_json(out: &mut dyn Write, results: &impl serde::Serialize, skipped: &[String]) -> Result<()> {
    write_json(out, &serde_json::json!({"tensors": results, "skipped": skipped}))
}

/// A fresh cancel flag that Ctrl-C (SIGINT) sets. One process-wide handler points at the latest
/// command's flag: a second `ctrlc` handler is refused, and commands may run twice in a process.
fn cancel_on_interrupt() -> crate::analysis::Cancel {
    use std::sync::{Mutex, Once};
    static CURRENT: Mutex<Option<crate::analysis::Cancel>> = Mutex::new(None);
    static INSTALL: Once = Once::new();
    let cancel = crate::analysis::Cancel::new();
    if let Ok(mut current) = CURRENT.lock() {
        *current = Some(cancel.clone());
    }
    INSTALL.call_once(|| {
        // ctrlc runs the handler on its own thread, where taking a lock is allowed.
        let _ = ctrlc::set_handler(|| {
            if let Ok(current) = CURRENT.lock()
                && let Some(c) = current.as_ref()
            {
                c.cancel();
            }
        });
    });
    cancel
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

/// A line saying where results were computed, for the human tables: the backends and devices
/// that ran, and every fallback.
fn computed_on<'a>(all: impl IntoIterator<Item = &'a crate::compute::Provenance>) -> String {
    let mut merged: Option<crate::compute::Provenance> = None;
    for p in all {
        merged = Some(match merged {
            None => p.clone(),
            Some(m) => m.merge(p),
        });
    }
    merged.map(|p| format!("computed on {}", p.describe())).unwrap_or_default()
}
