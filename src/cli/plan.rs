//! `weightbench plan auto`: measures candidate schemes on every selected tensor with the
//! quantization engine, chooses one per tensor to minimise the summed error under a size budget
//! (`quant::allocate`, with its LP bound and gap), and writes the plan and the Pareto frontier.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::cancel::Cancel;
use crate::checkpoint::TensorInfo;
use crate::compute::Backend;
use crate::export::atomic::Transaction;
use crate::quant::Scheme;
use crate::quant::auto::{AutoError, AutoRequest, Budget, auto_allocate};
use crate::quant::cache::{MeasureCache, default_dir, file_identity};
use crate::quant::plan::{ModelIdentity, pattern_regex, toml_quoted};
use crate::quant::preview::TensorPreview;

/// `weightbench plan ...`
#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Choose a scheme per tensor to minimise the total error within a size budget, and write
    /// the plan (TOML) and its Pareto frontier (JSON and CSV beside it).
    Auto(AutoArgs),
}

use crate::quant::auto::Objective;

/// What the allocator minimises (`--objective`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectiveArg {
    /// Σ ‖W − Ŵ‖²_F.
    Sse,
    /// Σ_j imp_j · Σ_i (W_ij − Ŵ_ij)² (needs --importance).
    #[value(name = "weighted_sse")]
    WeightedSse,
    /// Σ rel_error².
    Rel,
    /// Σ of each tensor's KL sensitivity: the model's mean KL divergence on the --calibration
    /// text (its first --kl-tokens tokens) with that tensor alone under the candidate.
    Kl,
}

impl From<ObjectiveArg> for Objective {
    fn from(o: ObjectiveArg) -> Objective {
        match o {
            ObjectiveArg::Sse => Objective::Sse,
            ObjectiveArg::WeightedSse => Objective::WeightedSse,
            ObjectiveArg::Rel => Objective::Rel,
            ObjectiveArg::Kl => Objective::Kl,
        }
    }
}

/// Arguments of `weightbench plan auto`.
#[derive(Debug, Args)]
pub struct AutoArgs {
    /// Checkpoint (file or folder).
    pub path: PathBuf,
    /// Average bits per weight over the selected, unpinned tensors.
    #[arg(long, conflicts_with = "target_bytes", required_unless_present = "target_bytes")]
    pub target_bpw: Option<f64>,
    /// Total bytes of the selected, unpinned tensors.
    #[arg(long)]
    pub target_bytes: Option<u64>,
    /// Candidate schemes, comma-separated (each tensor takes their fallbacks as a plan's rule).
    #[arg(long, value_delimiter = ',', default_value = "q4_0,q4_k,q5_k,q6_k,q8_0")]
    pub candidates: Vec<String>,
    /// Only tensors whose name matches this regular expression.
    #[arg(long)]
    pub tensor: Option<String>,
    /// Tensors matching this pattern (glob or re:) keep their dtype and are outside the budget.
    #[arg(long)]
    pub pin: Option<String>,
    /// Importance per input channel: an imatrix file, or `weight` for the column norms.
    #[arg(long)]
    pub importance: Option<String>,
    /// Calibration text (a UTF-8 file): the model runs on it (windows of 512 tokens) and the
    /// inputs of every linear layer give the importance (their mean squares, as an imatrix) and,
    /// for `+gptq`, the Hessian. Transformers folders and GGUF files of the supported architectures.
    #[arg(long, conflicts_with = "importance")]
    pub calibration: Option<PathBuf>,
    /// What to minimise.
    #[arg(long, value_enum, default_value = "sse")]
    pub objective: ObjectiveArg,
    /// Tokens of the calibration text the kl objective runs the model on.
    #[arg(long, default_value_t = 256)]
    pub kl_tokens: usize,
    /// Budgets on the Pareto frontier.
    #[arg(long, default_value_t = 32)]
    pub pareto_points: usize,
    /// Where to write the plan (TOML); the frontier goes beside it (.pareto.json, .pareto.csv).
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Replace existing outputs.
    #[arg(long)]
    pub overwrite: bool,
    /// Measure everything again instead of reusing earlier runs' measurements.
    #[arg(long)]
    pub no_cache: bool,
    /// Where measurements are kept between runs (default: $XDG_CACHE_HOME/weightbench).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct TensorChoice {
    name: String,
    scheme: String,
    bytes: u64,
    objective: f64,
}

pub(super) fn run(command: &PlanCommand, backend: &dyn Backend, out: &mut dyn Write) -> Result<()> {
    match command {
        PlanCommand::Auto(args) => auto(args, backend, out),
    }
}

fn auto(args: &AutoArgs, backend: &dyn Backend, out: &mut dyn Write) -> Result<()> {
    let candidates: Vec<Scheme> = args
        .candidates
        .iter()
        .map(|c| c.parse::<Scheme>().map_err(anyhow::Error::msg))
        .collect::<Result<_>>()
        .context("--candidates")?;
    if candidates.is_empty() {
        bail!("--candidates names no scheme");
    }
    if let Some(c) = candidates.iter().find(|c| c.needs_importance())
        && args.importance.is_none()
        && args.calibration.is_none()
    {
        bail!("candidate `{c}` scales input channels by their importance: give --importance FILE|weight");
    }
    let objective = Objective::from(args.objective);
    if objective == Objective::WeightedSse && args.importance.is_none() && args.calibration.is_none() {
        bail!("--objective weighted_sse needs --importance FILE|weight");
    }
    let budget = match (args.target_bytes, args.target_bpw) {
        (Some(b), _) => Budget::Bytes(b),
        (None, Some(bpw)) if bpw > 0.0 => Budget::Bpw(bpw),
        _ => bail!("give --target-bpw B (> 0) or --target-bytes N"),
    };
    let pin = args.pin.as_deref().map(pattern_regex).transpose().map_err(anyhow::Error::msg).context("--pin")?;
    let ckpt = super::open_for_one_pass(&args.path)?;
    let hessians = candidates.iter().any(|c| c.needs_hessian());
    let importance =
        super::importance(&ckpt, args.importance.as_deref(), args.calibration.as_deref(), hessians, backend)?;
    let (tensors, _) = super::select(&ckpt, args.tensor.as_deref(), |_| true)?;
    let cancel = super::cancel_on_interrupt();
    let bar = indicatif::ProgressBar::hidden();
    if let Ok(style) = indicatif::ProgressStyle::with_template("measuring {msg} {wide_bar} {pos}/{len} values ({eta})")
    {
        bar.set_style(style);
    }
    let mut cache = match (args.no_cache, args.cache_dir.clone().or_else(default_dir)) {
        (false, Some(dir)) => MeasureCache::open(&dir, &ckpt),
        _ => MeasureCache::disabled(),
    };
    let mut importance_id = match args.importance.as_deref() {
        None if args.calibration.is_some() => {
            format!("calibration {}", args.calibration.as_deref().map(file_identity).unwrap_or_default())
        }
        None => "none".to_owned(),
        Some("weight") => "weight".to_owned(),
        Some(file) => file_identity(Path::new(file)),
    };
    // The kl objective: the original model's pass over the calibration tokens, kept.
    let kl_model = match (objective, args.calibration.as_deref()) {
        (Objective::Kl, Some(text)) => {
            let ids = super::runtime::tokens_of(&ckpt, text, args.kl_tokens)?;
            importance_id.push_str(&format!(" | kl on {} tokens of {}", ids.len(), file_identity(text)));
            Some((super::runtime::load(&ckpt, None, backend, "loading the model for the KL objective")?, ids))
        }
        (Objective::Kl, None) => bail!("--objective kl runs the model on calibration text: give --calibration FILE"),
        _ => None,
    };
    let sensitivity = match &kl_model {
        Some((model, ids)) => Some(crate::runtime::sensitivity::Sensitivity::new(model, ids, &cancel)?),
        None => None,
    };
    let measure_kl = |t: &TensorInfo, r: &crate::quant::Resolved, cancel: &Cancel| -> Result<f64, String> {
        let Some(sens) = &sensitivity else { return Err("no model".into()) };
        crate::runtime::sensitivity::tensor_kl(sens, &ckpt, t, r, importance.as_ref(), backend, cancel)
            .map_err(|e| e.to_string())
    };
    let is_pinned = |t: &TensorInfo| pin.as_ref().is_some_and(|p| p.is_match(&t.name));
    let request = AutoRequest {
        candidates: &candidates,
        tensors,
        pinned: &is_pinned,
        importance: importance.as_ref(),
        importance_id,
        objective,
        budget,
        pareto_points: args.pareto_points,
        sensitivity: sensitivity.is_some().then_some(&measure_kl as &crate::quant::auto::SensitivityFn<'_>),
    };
    let started = Instant::now();
    let outcome = auto_allocate(backend, &ckpt, &request, &mut cache, &cancel, &|done, total, what| {
        // A bar only for runs long enough to watch.
        if started.elapsed() > Duration::from_secs(1) && bar.is_hidden() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        bar.set_length(total);
        bar.set_position(done);
        bar.set_message(what.to_owned());
    });
    bar.finish_and_clear();
    let o = match outcome {
        Ok(o) => o,
        Err(AutoError::Cancelled) => bail!("cancelled (Ctrl-C): nothing was written"),
        Err(AutoError::Invalid(m)) => bail!("{m}"),
        Err(AutoError::Compute(e)) => return Err(e.into()),
    };
    for n in &o.notes {
        eprintln!("note: {n}");
    }
    let a = &o.allocation;
    let objective_of = |r: &TensorPreview| if r.error.is_some() { f64::INFINITY } else { objective.of(r) };
    let chosen: Vec<TensorChoice> = o
        .chosen()
        .map(|(t, r)| TensorChoice {
            name: t.name.clone(),
            scheme: r.scheme.clone(),
            bytes: r.bytes,
            objective: objective_of(r),
        })
        .collect();
    let identity = ModelIdentity::of(&ckpt);
    let pinned: Vec<&str> = o.pinned.iter().map(|t| t.name.as_str()).collect();
    let toml = plan_toml(&identity, args, a, &o.free, &o.measured, &pinned);
    let csv = o.frontier.iter().fold(String::from("bpw,bytes,objective\n"), |mut s, p| {
        let _ = writeln!(s, "{},{},{}", p.bpw, p.bytes, p.objective);
        s
    });
    // plan4.5.toml → plan4.5.pareto.json (with_extension would cut at the last dot of "4.5").
    let stem = args.output.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "plan".into());
    let beside = |ext: &str| args.output.with_file_name(format!("{stem}.{ext}"));
    let (json_path, csv_path) = (beside("pareto.json"), beside("pareto.csv"));
    let inputs: Vec<&Path> = ckpt.files().iter().map(|f| f.path()).collect();
    let mut tx = Transaction::new(&inputs, args.overwrite);
    tx.write_text(&args.output, &toml)?;
    tx.write_text(&json_path, &serde_json::to_string_pretty(&o.frontier)?)?;
    tx.write_text(&csv_path, &csv)?;
    tx.commit()?;
    let pinned_bytes: u64 = o.pinned.iter().map(|t| t.bytes).sum();
    let free_bytes: u64 = o.free.iter().map(|t| t.bytes).sum();
    let (measuring_s, solve_s, fresh) = (o.measuring_s, o.solve_s, o.measured_now);
    let report = serde_json::json!({
        "target_bpw": o.bpw(o.budget),
        "achieved_bpw": o.bpw(a.bytes),
        "bytes": a.bytes,
        "objective": a.objective,
        "lower_bound": a.lower_bound,
        "gap": a.gap,
        "proven_optimal": a.proven_optimal,
        "objective_kind": objective,
        "pinned_bytes": pinned_bytes,
        "model_bytes": identity.bytes.unwrap_or(0) - free_bytes + a.bytes,
        "plan": args.output.display().to_string(),
        "measured": fresh,
        "cached": o.cached,
        "measuring_s": measuring_s,
        "solve_s": solve_s,
        "pareto": o.frontier,
        "tensors": chosen,
    });
    if args.json {
        super::write_json(out, &report)?;
    } else {
        writeln!(
            out,
            "{} tensors: {} bytes, {:.3} bpw (target {:.3}); {:?} {:.6e}, lower bound {:.6e}, gap {:.4}%{}",
            o.free.len(),
            a.bytes,
            o.bpw(a.bytes),
            o.bpw(o.budget),
            objective,
            a.objective,
            a.lower_bound,
            100.0 * a.gap,
            if a.proven_optimal { " (proven optimal)" } else { "" }
        )?;
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        chosen.iter().for_each(|c| *counts.entry(c.scheme.as_str()).or_default() += 1);
        writeln!(out, "schemes: {counts:?}; pinned: {} tensors", o.pinned.len())?;
        writeln!(
            out,
            "measured {fresh} (tensor, scheme) pairs in {measuring_s:.2} s, {} from the cache{}; solved in {:.1} ms",
            o.cached,
            cache.path().map_or(String::new(), |p| format!(" ({})", p.display())),
            solve_s * 1e3
        )?;
        writeln!(out, "wrote {}, {} and {}", args.output.display(), json_path.display(), csv_path.display())?;
    }
    Ok(())
}

fn plan_toml(
    identity: &ModelIdentity,
    args: &AutoArgs,
    a: &crate::quant::allocate::Allocation,
    free: &[&TensorInfo],
    measured: &[Vec<TensorPreview>],
    pinned: &[&str],
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# weightbench plan auto: {} candidates {}", args.path.display(), args.candidates.join(","));
    let _ = writeln!(
        s,
        "# objective {:?}: {:.6e} (lower bound {:.6e}, gap {:.4}%); {} bytes",
        Objective::from(args.objective),
        a.objective,
        a.lower_bound,
        100.0 * a.gap,
        a.bytes
    );
    let _ =
        writeln!(s, "[model]\ntensors = {}\nbytes = {}\n", identity.tensors.unwrap_or(0), identity.bytes.unwrap_or(0));
    for name in pinned {
        let _ = writeln!(s, "[tensor.{}]\nscheme = \"keep\"\npinned = true\n", toml_quoted(name));
    }
    for ((t, rows), &k) in free.iter().zip(measured).zip(&a.picks) {
        for r in rows {
            let _ = writeln!(
                s,
                "# {:<22} {:>12} B  sse {:.4e}  rel_error {}{}",
                r.scheme,
                r.bytes,
                r.sse,
                r.rel_error.map_or("-".into(), |x| format!("{x:.4e}")),
                r.kl.map_or(String::new(), |x| format!("  kl {x:.4e}"))
            );
        }
        let _ = writeln!(s, "[tensor.{}]\nscheme = \"{}\"\n", toml_quoted(&t.name), rows[k].scheme);
    }
    s
}
