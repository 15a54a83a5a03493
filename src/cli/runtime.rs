//! `weightbench eval` and `weightbench attention`: the runtime's forward pass headless — the
//! output-level error of a plan (perplexity, KL divergence, top-1 agreement) and the attention
//! maps of a layer with its sinks ([`crate::runtime`]).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;

use crate::cancel::Cancel;
use crate::checkpoint::Checkpoint;
use crate::compute::Backend;
use crate::quant::Plan;
use crate::runtime::eval::{EvalReport, evaluate};
use crate::runtime::tokenizer::TextTokenizer;
use crate::runtime::weights::PlanInput;
use crate::runtime::{Model, Sink, sinks};

/// The text a runtime command reads.
#[derive(Debug, Args)]
pub struct TextArgs {
    /// The text itself.
    #[arg(long, conflicts_with = "text_file", required_unless_present = "text_file")]
    pub text: Option<String>,
    /// A UTF-8 file holding the text.
    #[arg(long)]
    pub text_file: Option<PathBuf>,
}

impl TextArgs {
    fn read(&self) -> Result<String> {
        match (&self.text, &self.text_file) {
            (Some(t), _) => Ok(t.clone()),
            (None, Some(f)) => {
                std::fs::read_to_string(f).with_context(|| format!("cannot read the text file {}", f.display()))
            }
            (None, None) => bail!("give --text or --text-file"),
        }
    }
}

/// An optional plan for the runtime: the planned model runs beside the original.
#[derive(Debug, Args)]
pub struct OptionalPlan {
    /// A plan (TOML or JSON): its tensors are fake-quantized by the preview's encoders.
    #[arg(long, conflicts_with = "scheme")]
    pub plan: Option<PathBuf>,
    /// One scheme for every matrix instead of a plan (e.g. q4_k, int4_g128).
    #[arg(long)]
    pub scheme: Option<String>,
}

impl OptionalPlan {
    fn resolved(&self, ckpt: &Checkpoint) -> Result<Option<Vec<crate::quant::plan::Resolved>>> {
        let plan = match (&self.plan, &self.scheme) {
            (Some(p), _) => Plan::load(p)?,
            (None, Some(s)) => Plan::single(s)?,
            (None, None) => return Ok(None),
        };
        let (resolved, warnings) = plan.resolve_all(ckpt)?;
        for w in warnings {
            eprintln!("warning: {w}");
        }
        Ok(Some(resolved))
    }
}

/// Arguments of `weightbench eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The checkpoint (a transformers folder or a GGUF file).
    pub path: PathBuf,
    /// The text.
    #[command(flatten)]
    pub text: TextArgs,
    /// The plan, if any.
    #[command(flatten)]
    pub plan: OptionalPlan,
    /// Tokens per window (the text is cut into windows of this many tokens, each run alone).
    #[arg(long, default_value_t = 512)]
    pub ctx: usize,
    /// Calibration text for the plan's `+awq` and `+gptq` tensors (as `export --calibration`).
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Write the original model's logits here (f32 little-endian, one row of the vocabulary per
    /// token, windows one after the other), for reference checks.
    #[arg(long)]
    pub logits_out: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct EvalJson<'a> {
    path: String,
    tokenizer: &'a str,
    #[serde(flatten)]
    report: &'a EvalReport,
    vocab: usize,
    token_ids: &'a [u32],
    backend: String,
}

/// The importance measured on calibration text in `file` (windows of 512 tokens): every
/// linear layer's input mean squares, and their Hessians when `hessians`.
pub(super) fn calibration(
    ckpt: &Checkpoint,
    file: &std::path::Path,
    hessians: bool,
    backend: &dyn Backend,
) -> Result<crate::quant::Importance> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the calibration text {}", file.display()))?;
    let ids = TextTokenizer::of(ckpt)?.encode(&text)?;
    let model = load(ckpt, None, backend, "loading the model for calibration")?;
    let bar = super::progress_bar(0, "calibrating");
    let stats = crate::runtime::activations::calibrate(&model, &ids, 512, hessians, &Cancel::new(), &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let arch = ckpt.model_config().map(|c| c.architecture.clone()).unwrap_or_default();
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let source = format!("{name} ({} tokens)", ids.len());
    Ok(crate::quant::Importance::Imatrix(std::sync::Arc::new(stats.to_imatrix(&arch, source)), arch))
}

/// The first `n` tokens of the text in `file`, by the checkpoint's tokenizer.
pub(super) fn tokens_of(ckpt: &Checkpoint, file: &std::path::Path, n: usize) -> Result<Vec<u32>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read the text file {}", file.display()))?;
    let mut ids = TextTokenizer::of(ckpt)?.encode(&text)?;
    ids.truncate(n.max(2));
    Ok(ids)
}

pub(super) fn load(ckpt: &Checkpoint, plan: Option<PlanInput<'_>>, backend: &dyn Backend, what: &str) -> Result<Model> {
    let bar = super::progress_bar(0, what);
    let model = Model::load(
        ckpt,
        plan,
        backend,
        &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
        &Cancel::new(),
    )?;
    bar.finish_and_clear();
    Ok(model)
}

pub(super) fn run_eval(args: &EvalArgs, backend: &dyn Backend, out: &mut dyn Write) -> Result<()> {
    let ckpt = super::open(&args.path)?;
    let tokenizer = TextTokenizer::of(&ckpt)?;
    let text = args.text.read()?;
    let ids = tokenizer.encode(&text)?;
    let resolved = args.plan.resolved(&ckpt)?;
    let importance = match (&resolved, &args.calibration) {
        (Some(r), Some(text)) => Some(calibration(&ckpt, text, r.iter().any(|r| r.parsed.needs_hessian()), backend)?),
        _ => None,
    };
    let original = load(&ckpt, None, backend, "loading the model")?;
    let planned = match &resolved {
        Some(r) => Some(load(
            &ckpt,
            Some(PlanInput { resolved: r, importance: importance.as_ref() }),
            backend,
            "fake-quantizing the plan",
        )?),
        None => None,
    };
    let mut logits_file = match &args.logits_out {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => None,
    };
    let mut write_error = None;
    let mut sink = |rows: &[f32]| {
        if let Some(f) = logits_file.as_mut()
            && write_error.is_none()
            && let Err(e) = f.write_all(bytemuck::cast_slice(rows))
        {
            write_error = Some(e);
        }
    };
    let bar = super::progress_bar(0, "windows");
    let report = evaluate(
        &original,
        planned.as_ref(),
        &ids,
        args.ctx,
        &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
        Some(&mut sink),
        &Cancel::new(),
    )?;
    bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(e).context("cannot write the logits");
    }
    if let Some(mut f) = logits_file {
        f.flush().context("cannot write the logits")?;
    }
    if args.json {
        let j = EvalJson {
            path: args.path.display().to_string(),
            tokenizer: &tokenizer.origin,
            report: &report,
            vocab: original.vocab(),
            token_ids: &ids,
            backend: backend.label(),
        };
        serde_json::to_writer_pretty(&mut *out, &j)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{}: {} tokens in windows of {} ({} predicted)",
        args.path.display(),
        report.tokens,
        report.ctx,
        report.predicted
    )?;
    writeln!(out, "perplexity            {:.4}", report.ppl)?;
    if let (Some(p), Some(kl), Some(p99), Some(top1)) =
        (report.ppl_plan, report.kl_mean, report.kl_p99, report.top1_agree)
    {
        writeln!(out, "perplexity with plan  {p:.4} ({:+.2}%)", 100.0 * (p / report.ppl - 1.0))?;
        writeln!(out, "KL(original ‖ plan)   mean {kl:.5} nats, p99 {p99:.5}")?;
        writeln!(out, "top-1 agreement       {:.2}%", 100.0 * top1)?;
    }
    Ok(())
}

/// Arguments of `weightbench attention`.
#[derive(Debug, Args)]
pub struct AttentionArgs {
    /// The checkpoint (a transformers folder or a GGUF file).
    pub path: PathBuf,
    /// The text.
    #[command(flatten)]
    pub text: TextArgs,
    /// The layer (from 0).
    #[arg(long)]
    pub layer: usize,
    /// One head (from 0); all heads of the layer by default.
    #[arg(long)]
    pub head: Option<usize>,
    /// The plan, if any.
    #[command(flatten)]
    pub plan: OptionalPlan,
    /// Print one JSON object (with every probability).
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct HeadJson {
    head: usize,
    /// Rows: queries; columns: keys.
    probs: Vec<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan_probs: Option<Vec<Vec<f32>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan_max_abs_diff: Option<f32>,
}

#[derive(Serialize)]
struct AttentionJson {
    path: String,
    layer: usize,
    token_ids: Vec<u32>,
    tokens: Vec<String>,
    heads: Vec<HeadJson>,
    sinks: Vec<Sink>,
    backend: String,
}

fn rows(probs: &[f32], t: usize) -> Vec<Vec<f32>> {
    probs.chunks_exact(t).map(<[f32]>::to_vec).collect()
}

pub(super) fn run_attention(args: &AttentionArgs, backend: &dyn Backend, out: &mut dyn Write) -> Result<()> {
    let ckpt = super::open(&args.path)?;
    let tokenizer = TextTokenizer::of(&ckpt)?;
    let ids = tokenizer.encode(&args.text.read()?)?;
    let model = load(&ckpt, None, backend, "loading the model")?;
    let (layers, heads) = model.shape();
    if args.layer >= layers {
        bail!("{} has layers 0..{layers}; there is no layer {}", args.path.display(), args.layer);
    }
    if let Some(h) = args.head.filter(|&h| h >= heads) {
        bail!("layer {} has heads 0..{heads}; there is no head {h}", args.layer);
    }
    let all: Vec<(usize, usize)> = (0..heads).map(|h| (args.layer, h)).collect();
    let cancel = Cancel::new();
    let (_, maps) = model.forward(&ids, &all, &cancel)?;
    let found = sinks(&maps);
    let planned = match args.plan.resolved(&ckpt)? {
        Some(r) => {
            let pm = load(&ckpt, Some(r[..].into()), backend, "fake-quantizing the plan")?;
            Some(pm.forward(&ids, &all, &cancel)?.1)
        }
        None => None,
    };
    let t = ids.len();
    let pieces = tokenizer.pieces(&ids);
    let chosen: Vec<usize> = args.head.map_or_else(|| (0..heads).collect(), |h| vec![h]);
    if args.json {
        let heads_json = chosen
            .iter()
            .map(|&h| {
                let m = &maps[h];
                let p = planned.as_ref().map(|p| &p[h]);
                HeadJson {
                    head: h,
                    probs: rows(&m.probs, t),
                    plan_probs: p.map(|p| rows(&p.probs, t)),
                    plan_max_abs_diff: p
                        .map(|p| m.probs.iter().zip(&p.probs).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)),
                }
            })
            .collect();
        let j = AttentionJson {
            path: args.path.display().to_string(),
            layer: args.layer,
            token_ids: ids.clone(),
            tokens: pieces,
            heads: heads_json,
            sinks: found,
            backend: backend.label(),
        };
        serde_json::to_writer(&mut *out, &j)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "{}: layer {} of {layers}, {heads} heads, {t} tokens", args.path.display(), args.layer)?;
    writeln!(out, "attention sinks (a quarter of the heads or more):")?;
    if found.is_empty() {
        writeln!(out, "  none")?;
    }
    for s in &found {
        writeln!(
            out,
            "  token {:>4} {:<16} in {:>2} heads, mean attention received {:.3}",
            s.index,
            pieces[s.index],
            s.heads.len(),
            s.mean_attention
        )?;
    }
    for &h in &chosen {
        let m = &maps[h];
        let last = &m.probs[(t - 1) * t..];
        let (top, p) = last.iter().enumerate().fold((0, 0f32), |b, (j, &p)| if p > b.1 { (j, p) } else { b });
        write!(out, "head {h:>2}: the last token attends most to token {top} ({}) with {p:.3}", pieces[top])?;
        if let Some(pl) = planned.as_ref().map(|p| &p[h]) {
            let d = m.probs.iter().zip(&pl.probs).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            write!(out, "; with the plan max |Δp| {d:.4}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Arguments of `weightbench imatrix`.
#[derive(Debug, Args)]
pub struct ImatrixArgs {
    /// The checkpoint (a transformers folder or a GGUF file).
    pub path: PathBuf,
    /// The calibration text.
    #[command(flatten)]
    pub text: TextArgs,
    /// Tokens per window (llama.cpp's chunk).
    #[arg(long, default_value_t = 512)]
    pub ctx: usize,
    /// The imatrix file to write (GGUF, as llama-imatrix writes it).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Replace an existing output.
    #[arg(long)]
    pub overwrite: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct ImatrixJson {
    output: String,
    tokens: usize,
    chunks: u64,
    weights: usize,
    backend: String,
}

pub(super) fn run_imatrix(args: &ImatrixArgs, backend: &dyn Backend, out: &mut dyn Write) -> Result<()> {
    let ckpt = super::open(&args.path)?;
    let arch = ckpt.model_config().map(|c| c.architecture.clone()).unwrap_or_default();
    let tokenizer = TextTokenizer::of(&ckpt)?;
    let ids = tokenizer.encode(&args.text.read()?)?;
    let model = load(&ckpt, None, backend, "loading the model")?;
    let bar = super::progress_bar(0, "windows");
    let stats =
        crate::runtime::activations::calibrate(&model, &ids, args.ctx, false, &Cancel::new(), &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })?;
    bar.finish_and_clear();
    let datasets: Vec<String> = args
        .text
        .text_file
        .iter()
        .map(|p| p.display().to_string())
        .chain(args.text.text.iter().map(|_| "--text".to_owned()))
        .collect();
    let inputs: Vec<&std::path::Path> = ckpt.files().iter().map(|f| f.path()).collect();
    let written = crate::export::imatrix::write_imatrix(
        &args.output,
        &stats,
        &arch,
        &datasets,
        args.ctx as u32,
        &inputs,
        args.overwrite,
    )?;
    if args.json {
        let j = ImatrixJson {
            output: written.display().to_string(),
            tokens: ids.len(),
            chunks: stats.chunks,
            weights: stats.in_sum2.len(),
            backend: backend.label(),
        };
        serde_json::to_writer_pretty(&mut *out, &j)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{}: {} weights, {} tokens in {} windows of {}",
            written.display(),
            stats.in_sum2.len(),
            ids.len(),
            stats.chunks,
            args.ctx
        )?;
    }
    Ok(())
}

/// Arguments of `weightbench embed`.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// The checkpoint (a BERT transformers folder, as sentence-transformers ships it).
    pub path: PathBuf,
    /// The text.
    #[command(flatten)]
    pub text: TextArgs,
    /// The plan, if any.
    #[command(flatten)]
    pub plan: OptionalPlan,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct EmbedJson {
    tokens: usize,
    dim: usize,
    normalized: bool,
    embedding: Vec<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    embedding_plan: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cosine_plan: Option<f64>,
    token_ids: Vec<u32>,
    backend: String,
}

/// Whether the folder's sentence-transformers pipeline (`modules.json`) ends in `Normalize`.
fn normalizes(ckpt: &Checkpoint) -> bool {
    let modules = ckpt.path().join("modules.json");
    std::fs::read_to_string(modules)
        .ok()
        .and_then(|t| serde_json::from_str::<Vec<serde_json::Value>>(&t).ok())
        .is_some_and(|m| m.iter().any(|v| v["type"].as_str().is_some_and(|t| t.ends_with(".Normalize"))))
}

/// The mean-pooled embedding of `ids` (unit length when `normalize`).
fn embedding(model: &Model, ids: &[u32], normalize: bool) -> Result<Vec<f32>> {
    let Model::Bert(bert) = model else {
        bail!("sentence embeddings come from BERT encoders; this model is a language model (use eval)")
    };
    let (h, _) = model.forward(ids, &[], &Cancel::new())?;
    let mut e = bert.mean_pool(&h);
    if normalize {
        let n = e.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt().max(1e-12);
        e.iter_mut().for_each(|v| *v = (f64::from(*v) / n) as f32);
    }
    Ok(e)
}

pub(super) fn run_embed(args: &EmbedArgs, backend: &dyn Backend, out: &mut dyn Write) -> Result<()> {
    let ckpt = super::open(&args.path)?;
    let ids = TextTokenizer::of(&ckpt)?.encode(&args.text.read()?)?;
    let normalized = normalizes(&ckpt);
    let model = load(&ckpt, None, backend, "loading the model")?;
    let e = embedding(&model, &ids, normalized)?;
    let planned = match args.plan.resolved(&ckpt)? {
        Some(r) => {
            Some(embedding(&load(&ckpt, Some(r[..].into()), backend, "fake-quantizing the plan")?, &ids, normalized)?)
        }
        None => None,
    };
    let cosine = planned.as_ref().map(|p| {
        let dot: f64 = e.iter().zip(p).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
        let norm = |v: &[f32]| v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
        dot / (norm(&e) * norm(p)).max(1e-300)
    });
    if args.json {
        let j = EmbedJson {
            tokens: ids.len(),
            dim: e.len(),
            normalized,
            embedding: e,
            embedding_plan: planned,
            cosine_plan: cosine,
            token_ids: ids,
            backend: backend.label(),
        };
        serde_json::to_writer(&mut *out, &j)?;
        writeln!(out)?;
        return Ok(());
    }
    let head: Vec<String> = e.iter().take(8).map(|v| format!("{v:.5}")).collect();
    writeln!(
        out,
        "{}: {} tokens, a {}-dimensional embedding{}: [{}, ...]",
        args.path.display(),
        ids.len(),
        e.len(),
        if normalized { " (unit length)" } else { "" },
        head.join(", ")
    )?;
    if let Some(c) = cosine {
        writeln!(out, "with the plan: cosine similarity {c:.6} to the original's")?;
    }
    Ok(())
}
