//! `weightbench plan auto`: measures candidate schemes on every selected tensor with the
//! quantization engine, chooses one per tensor to minimise the summed error under a size budget
//! (`quant::allocate`, with its LP bound and gap), and writes the plan and the Pareto frontier.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use crate::cancel::Cancel;
use crate::checkpoint::TensorInfo;
use crate::compute::{Backend, ComputeError};
use crate::export::atomic::Transaction;
use crate::quant::allocate::{Choice, allocate, pareto};
use crate::quant::cache::{Measure, MeasureCache, default_dir, file_identity};
use crate::quant::plan::{ModelIdentity, fallback, pattern_regex};
use crate::quant::preview::{TensorPreview, awq_groups, shared_alpha, with_alpha};
use crate::quant::scheme::Method;
use crate::quant::{Resolved, Scheme, preview_tensor};

/// `weightbench plan ...`
#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Choose a scheme per tensor to minimise the total error within a size budget, and write
    /// the plan (TOML) and its Pareto frontier (JSON and CSV beside it).
    Auto(AutoArgs),
}

/// What the allocator minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Σ ‖W − Ŵ‖²_F.
    Sse,
    /// Σ_j imp_j · Σ_i (W_ij − Ŵ_ij)² (needs --importance).
    #[value(name = "weighted_sse")]
    WeightedSse,
    /// Σ rel_error².
    Rel,
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
    /// What to minimise.
    #[arg(long, value_enum, default_value = "sse")]
    pub objective: Objective,
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
struct ParetoPoint {
    bpw: f64,
    bytes: u64,
    objective: f64,
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
    {
        bail!("candidate `{c}` scales input channels by their importance: give --importance FILE|weight");
    }
    if args.objective == Objective::WeightedSse && args.importance.is_none() {
        bail!("--objective weighted_sse needs --importance FILE|weight");
    }
    let pin = args.pin.as_deref().map(pattern_regex).transpose().map_err(anyhow::Error::msg).context("--pin")?;
    let ckpt = super::open(&args.path)?;
    let importance = super::importance(&ckpt, args.importance.as_deref())?;
    let (tensors, _) = super::select(&ckpt, args.tensor.as_deref(), |_| true)?;
    let (pinned, free): (Vec<&TensorInfo>, Vec<&TensorInfo>) =
        tensors.iter().copied().partition(|t| pin.as_ref().is_some_and(|p| p.is_match(&t.name)));
    if free.is_empty() {
        bail!("every selected tensor is pinned: nothing to allocate");
    }
    // Each tensor's distinct schemes after the fallbacks a rule would give them.
    let mut options: Vec<Vec<(Scheme, Option<String>)>> = Vec::with_capacity(free.len());
    for t in &free {
        let mut seen: Vec<(Scheme, Option<String>)> = Vec::new();
        for c in &candidates {
            if let Ok((s, why)) = fallback(c, &t.shape)
                && !seen.iter().any(|(x, _)| *x == s)
            {
                seen.push((s, why));
            }
        }
        if seen.is_empty() {
            bail!("tensor {} {:?} takes none of the candidates", t.name, t.shape);
        }
        options.push(seen);
    }
    let cancel = Cancel::new();
    {
        let c = cancel.clone();
        let _ = ctrlc::set_handler(move || c.cancel());
    }
    let total: u64 = options.iter().zip(&free).map(|(o, t)| o.len() as u64 * t.numel()).sum();
    let bar = indicatif::ProgressBar::hidden();
    bar.set_length(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template("measuring {msg} {wide_bar} {pos}/{len} values ({eta})")
    {
        bar.set_style(style);
    }
    let mut cache = match (args.no_cache, args.cache_dir.clone().or_else(default_dir)) {
        (false, Some(dir)) => MeasureCache::open(&dir, &ckpt),
        _ => MeasureCache::disabled(),
    };
    let importance_id = match args.importance.as_deref() {
        None => "none".to_owned(),
        Some("weight") => "weight".to_owned(),
        Some(file) => file_identity(Path::new(file)),
    };
    let backend_id = if backend.asks_gpu() { "gpu" } else { "cpu" };
    let started = Instant::now();
    let mut fresh = 0usize;
    let mut measure = |t: &TensorInfo, s: &Scheme, why: &Option<String>, cache: &mut MeasureCache| {
        if started.elapsed() > Duration::from_secs(1) && bar.is_hidden() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        bar.set_message(format!("{} as {s}", t.name));
        let resolved = Resolved {
            name: t.name.clone(),
            scheme: s.to_string(),
            requested: None,
            fallback_reason: why.clone(),
            by: "candidate".into(),
            parsed: s.clone(),
        };
        let key = MeasureCache::key(&t.name, &resolved.scheme, &importance_id, backend_id);
        if let Some(m) = cache.get(&key) {
            return Ok(m.to_preview(t, &resolved));
        }
        let row = preview_tensor(backend, &ckpt, t, &resolved, importance.as_ref(), None, &cancel).map_err(|e| {
            // What was measured before the stop is kept for the next run.
            if let Err(w) = cache.save() {
                eprintln!("note: {w}");
            }
            match e {
                ComputeError::Cancelled => anyhow::anyhow!("cancelled (Ctrl-C): nothing was written"),
                other => anyhow::Error::new(other),
            }
        })?;
        cache.put(key, Measure::of(&row));
        fresh += 1;
        Ok::<_, anyhow::Error>(row)
    };
    // A `+awq` candidate is measured with the α its fold group shares (q, k, v after one norm;
    // gate and up after another): each member's own search, then the α minimising their sum.
    let mut searching: Vec<Scheme> = Vec::new();
    for (s, _) in options.iter().flatten() {
        if matches!(s, Scheme::With { method: Method::Awq { alpha: None }, .. }) && !searching.contains(s) {
            searching.push(s.clone());
        }
    }
    for c in &searching {
        let holders: Vec<usize> = (0..free.len()).filter(|&i| options[i].iter().any(|(s, _)| s == c)).collect();
        let tensors: Vec<&TensorInfo> = holders.iter().map(|&i| free[i]).collect();
        let schemes: Vec<&Scheme> = holders.iter().map(|_| c).collect();
        for g in awq_groups(&ckpt, &tensors, &schemes) {
            let mut curves = Vec::new();
            for &k in &g.members {
                let i = holders[k];
                let why = options[i].iter().find(|(s, _)| s == c).and_then(|(_, w)| w.clone());
                let row = measure(free[i], c, &why, &mut cache)?;
                curves.push(row.method.map(|m| m.searched).unwrap_or_default());
            }
            let refs: Vec<&[[f64; 2]]> = curves.iter().map(Vec::as_slice).collect();
            if let Some(alpha) = shared_alpha(&refs) {
                for &k in &g.members {
                    for (s, _) in options[holders[k]].iter_mut().filter(|(s, _)| s == c) {
                        *s = with_alpha(c, alpha);
                    }
                }
            }
        }
    }
    let mut measured: Vec<Vec<TensorPreview>> = Vec::with_capacity(free.len());
    for (t, opts) in free.iter().zip(&options) {
        let mut rows = Vec::with_capacity(opts.len());
        for (s, why) in opts {
            rows.push(measure(t, s, why, &mut cache)?);
            bar.inc(t.numel());
        }
        measured.push(rows);
    }
    bar.finish_and_clear();
    if let Err(w) = cache.save() {
        eprintln!("note: {w}");
    }
    let measuring_s = started.elapsed().as_secs_f64();
    let objective_of = |r: &TensorPreview| match args.objective {
        Objective::Sse => r.sse,
        Objective::WeightedSse => r.weighted_sse.unwrap_or(r.sse),
        Objective::Rel => r.rel_error.map_or(0.0, |x| x * x),
    };
    let items: Vec<Vec<Choice>> = measured
        .iter()
        .map(|rows| {
            rows.iter()
                .map(|r| Choice {
                    bytes: r.bytes,
                    objective: if r.error.is_some() { f64::INFINITY } else { objective_of(r) },
                })
                .collect()
        })
        .collect();
    let params: u64 = free.iter().map(|t| t.numel()).sum();
    let budget = match (args.target_bytes, args.target_bpw) {
        (Some(b), _) => b,
        (None, Some(bpw)) if bpw > 0.0 => (bpw * params as f64 / 8.0) as u64,
        _ => bail!("give --target-bpw B (> 0) or --target-bytes N"),
    };
    let most: u64 = items.iter().map(|c| c.iter().map(|x| x.bytes).max().unwrap_or(0)).sum();
    let least: u64 = items.iter().map(|c| c.iter().map(|x| x.bytes).min().unwrap_or(0)).sum();
    let reach = |b: u64| 8.0 * b as f64 / params as f64;
    let solving = Instant::now();
    let a = allocate(&items, budget).map_err(|e| {
        anyhow::anyhow!("{e}; reachable: {least}..{most} bytes ({:.3}..{:.3} bpw)", reach(least), reach(most))
    })?;
    let solve_s = solving.elapsed().as_secs_f64();
    if budget > most {
        eprintln!(
            "note: the budget ({budget} bytes) exceeds what the candidates can use; the largest candidate everywhere \
             takes {most} bytes ({:.3} bpw)",
            reach(most)
        );
    }
    let frontier: Vec<ParetoPoint> = pareto(&items, args.pareto_points)
        .into_iter()
        .map(|(_, bytes, objective)| ParetoPoint { bpw: reach(bytes), bytes, objective })
        .collect();
    let chosen: Vec<TensorChoice> = free
        .iter()
        .zip(&measured)
        .zip(&a.picks)
        .zip(&items)
        .map(|(((t, rows), &k), choices)| TensorChoice {
            name: t.name.clone(),
            scheme: rows[k].scheme.clone(),
            bytes: rows[k].bytes,
            objective: choices[k].objective,
        })
        .collect();
    let identity = ModelIdentity {
        tensors: Some(ckpt.tensors().len() as u64),
        bytes: Some(ckpt.tensors().iter().map(|t| t.bytes).sum()),
    };
    let toml =
        plan_toml(&identity, args, &a, &free, &measured, &pinned.iter().map(|t| t.name.as_str()).collect::<Vec<_>>());
    let csv = frontier.iter().fold(String::from("bpw,bytes,objective\n"), |mut s, p| {
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
    tx.write_text(&json_path, &serde_json::to_string_pretty(&frontier)?)?;
    tx.write_text(&csv_path, &csv)?;
    tx.commit()?;
    let pinned_bytes: u64 = pinned.iter().map(|t| t.bytes).sum();
    let report = serde_json::json!({
        "target_bpw": reach(budget),
        "achieved_bpw": reach(a.bytes),
        "bytes": a.bytes,
        "objective": a.objective,
        "lower_bound": a.lower_bound,
        "gap": a.gap,
        "proven_optimal": a.proven_optimal,
        "objective_kind": args.objective,
        "pinned_bytes": pinned_bytes,
        "model_bytes": identity.bytes.unwrap_or(0) - free.iter().map(|t| t.bytes).sum::<u64>() + a.bytes,
        "plan": args.output.display().to_string(),
        "measured": fresh,
        "cached": cache.hits,
        "measuring_s": measuring_s,
        "solve_s": solve_s,
        "pareto": frontier,
        "tensors": chosen,
    });
    if args.json {
        super::write_json(out, &report)?;
    } else {
        writeln!(
            out,
            "{} tensors: {} bytes, {:.3} bpw (target {:.3}); {:?} {:.6e}, lower bound {:.6e}, gap {:.4}%{}",
            free.len(),
            a.bytes,
            reach(a.bytes),
            reach(budget),
            args.objective,
            a.objective,
            a.lower_bound,
            100.0 * a.gap,
            if a.proven_optimal { " (proven optimal)" } else { "" }
        )?;
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        chosen.iter().for_each(|c| *counts.entry(c.scheme.as_str()).or_default() += 1);
        writeln!(out, "schemes: {counts:?}; pinned: {} tensors", pinned.len())?;
        writeln!(
            out,
            "measured {fresh} (tensor, scheme) pairs in {measuring_s:.2} s, {} from the cache{}; solved in {:.1} ms",
            cache.hits,
            cache.path().map_or(String::new(), |p| format!(" ({})", p.display())),
            solve_s * 1e3
        )?;
        writeln!(out, "wrote {}, {} and {}", args.output.display(), json_path.display(), csv_path.display())?;
    }
    Ok(())
}

/// TOML string escaping for names (basic strings).
fn quoted(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{:04X}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
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
        args.objective,
        a.objective,
        a.lower_bound,
        100.0 * a.gap,
        a.bytes
    );
    let _ =
        writeln!(s, "[model]\ntensors = {}\nbytes = {}\n", identity.tensors.unwrap_or(0), identity.bytes.unwrap_or(0));
    for name in pinned {
        let _ = writeln!(s, "[tensor.{}]  # pinned\nscheme = \"keep\"\n", quoted(name));
    }
    for ((t, rows), &k) in free.iter().zip(measured).zip(&a.picks) {
        for r in rows {
            let _ = writeln!(
                s,
                "# {:<22} {:>12} B  sse {:.4e}  rel_error {}",
                r.scheme,
                r.bytes,
                r.sse,
                r.rel_error.map_or("-".into(), |x| format!("{x:.4e}"))
            );
        }
        let _ = writeln!(s, "[tensor.{}]\nscheme = \"{}\"\n", quoted(&t.name), rows[k].scheme);
    }
    s
}
