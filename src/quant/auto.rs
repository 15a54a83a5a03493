//! Automatic allocation (`plan auto`, and the workbench's Auto-allocate): measure every candidate
//! scheme on every free tensor with the preview's encoders (cached per tensor and scheme), then
//! choose one per tensor to minimise the summed objective under a size budget
//! ([`super::allocate`], with its bound and gap), and trace the Pareto frontier. The command line
//! and the window both run this, so the same request gives the same plan from either.

use std::time::Instant;

use serde::Serialize;

use super::allocate::{Allocation, Choice, allocate, pareto};
use super::cache::{Measure, MeasureCache};
use super::plan::fallback;
use super::preview::{Importance, TensorPreview, awq_groups, shared_alpha, with_alpha};
use super::scheme::Method;
use super::{Resolved, Scheme, preview_tensor};
use crate::cancel::Cancel;
use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::compute::{Backend, ComputeError};

/// What the allocator minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Σ ‖W − Ŵ‖²_F.
    Sse,
    /// Σ_j imp_j · Σ_i (W_ij − Ŵ_ij)² (needs an importance).
    WeightedSse,
    /// Σ rel_error².
    Rel,
    /// Σ of each tensor's KL sensitivity: the model's mean KL divergence over calibration text
    /// with that tensor alone under the scheme (needs a sensitivity measure).
    Kl,
}

impl Objective {
    /// This objective's value for a measured row.
    pub fn of(self, r: &TensorPreview) -> f64 {
        match self {
            Objective::Sse => r.sse,
            Objective::WeightedSse => r.weighted_sse.unwrap_or(r.sse),
            Objective::Rel => r.rel_error.map_or(0.0, |x| x * x),
            Objective::Kl => r.kl.unwrap_or(f64::INFINITY),
        }
    }
}

/// The size to fit in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Budget {
    /// Average bits per weight over the free tensors.
    Bpw(f64),
    /// Total bytes of the free tensors.
    Bytes(u64),
}

/// One point of the Pareto frontier.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParetoPoint {
    /// Bits per weight of the free tensors.
    pub bpw: f64,
    /// Their bytes.
    pub bytes: u64,
    /// The least objective reachable at that size.
    pub objective: f64,
}

/// Why no allocation was made.
#[derive(Debug, thiserror::Error)]
pub enum AutoError {
    /// Stopped by the user; what was measured stays in the cache.
    #[error("cancelled")]
    Cancelled,
    /// The request cannot be met (no candidate, budget out of reach, ...).
    #[error("{0}")]
    Invalid(String),
    /// A measurement failed.
    #[error(transparent)]
    Compute(ComputeError),
}

/// What to allocate.
pub struct AutoRequest<'a> {
    /// Candidate schemes (each tensor takes their fallbacks, as under a plan's rule).
    pub candidates: &'a [Scheme],
    /// The tensors to allocate over, pinned ones included.
    pub tensors: Vec<&'a TensorInfo>,
    /// Which of them keep their scheme and stay outside the budget.
    pub pinned: &'a dyn Fn(&TensorInfo) -> bool,
    /// Importance for methods and the weighted objective.
    pub importance: Option<&'a Importance>,
    /// A name of the importance for the cache key (`none`, `weight`, or the file's identity).
    pub importance_id: String,
    /// What to minimise.
    pub objective: Objective,
    /// The size to fit in.
    pub budget: Budget,
    /// Budgets on the Pareto frontier.
    pub pareto_points: usize,
    /// For the `kl` objective: a tensor's KL sensitivity under a resolved scheme (the runtime's,
    /// supplied by the caller; `quant` sits below the runtime).
    pub sensitivity: Option<&'a SensitivityFn<'a>>,
}

/// Measures the model's KL divergence with one tensor under one scheme.
pub type SensitivityFn<'a> = dyn Fn(&TensorInfo, &Resolved, &Cancel) -> Result<f64, String> + 'a;

/// The allocation and everything measured on the way.
pub struct AutoOutcome<'a> {
    /// Tensors allocated over.
    pub free: Vec<&'a TensorInfo>,
    /// Tensors left as they are.
    pub pinned: Vec<&'a TensorInfo>,
    /// Per free tensor, one measured row per distinct candidate (after fallbacks).
    pub measured: Vec<Vec<TensorPreview>>,
    /// The choice per free tensor (an index into its `measured`), bytes, objective, bound, gap.
    pub allocation: Allocation,
    /// The Pareto frontier over the same candidates.
    pub frontier: Vec<ParetoPoint>,
    /// The budget in bytes.
    pub budget: u64,
    /// The largest and smallest totals the candidates reach.
    pub reachable: (u64, u64),
    /// Parameters of the free tensors.
    pub params: u64,
    /// (tensor, scheme) pairs measured now, and taken from the cache.
    pub measured_now: usize,
    /// Pairs taken from the cache.
    pub cached: usize,
    /// Seconds spent measuring, and solving.
    pub measuring_s: f64,
    /// Seconds spent solving.
    pub solve_s: f64,
    /// What the user should know (a budget beyond reach, a cache that could not be saved).
    pub notes: Vec<String>,
}

impl AutoOutcome<'_> {
    /// Bits per weight of `bytes` over the free tensors.
    pub fn bpw(&self, bytes: u64) -> f64 {
        8.0 * bytes as f64 / self.params.max(1) as f64
    }

    /// The chosen row of every free tensor.
    pub fn chosen(&self) -> impl Iterator<Item = (&TensorInfo, &TensorPreview)> {
        self.free.iter().zip(&self.measured).zip(&self.allocation.picks).map(|((t, rows), &k)| (*t, &rows[k]))
    }
}

/// Measures and allocates. `progress(done, total, what)` counts values measured (cache hits
/// included); `backend_id` names the backend in the cache key.
pub fn auto_allocate<'a>(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    request: &AutoRequest<'a>,
    cache: &mut MeasureCache,
    cancel: &Cancel,
    progress: &dyn Fn(u64, u64, &str),
) -> Result<AutoOutcome<'a>, AutoError> {
    if request.candidates.is_empty() {
        return Err(AutoError::Invalid("no candidate scheme".into()));
    }
    if let Some(c) = request.candidates.iter().find(|c| c.needs_importance())
        && request.importance.is_none()
    {
        return Err(AutoError::Invalid(format!(
            "candidate `{c}` scales input channels by their importance: give an importance (an imatrix, or `weight`)"
        )));
    }
    if request.objective == Objective::WeightedSse && request.importance.is_none() {
        return Err(AutoError::Invalid("the weighted_sse objective needs an importance".into()));
    }
    if request.objective == Objective::Kl && request.sensitivity.is_none() {
        return Err(AutoError::Invalid("the kl objective needs the model run on calibration text".into()));
    }
    // Integer tensors (ids, masks) are not weights: plans keep them, so they take no part.
    let (pinned, free): (Vec<&TensorInfo>, Vec<&TensorInfo>) =
        request.tensors.iter().copied().filter(|t| !t.dtype.is_integer()).partition(|t| (request.pinned)(t));
    if free.is_empty() {
        return Err(AutoError::Invalid("every selected tensor is pinned: nothing to allocate".into()));
    }
    // Each tensor's distinct schemes after the fallbacks a rule would give them.
    let mut options: Vec<Vec<(Scheme, Option<String>)>> = Vec::with_capacity(free.len());
    for t in &free {
        let mut seen: Vec<(Scheme, Option<String>)> = Vec::new();
        for c in request.candidates {
            if let Ok((s, why)) = fallback(c, &t.shape)
                && !seen.iter().any(|(x, _)| *x == s)
            {
                seen.push((s, why));
            }
        }
        if seen.is_empty() {
            return Err(AutoError::Invalid(format!("tensor {} {:?} takes none of the candidates", t.name, t.shape)));
        }
        options.push(seen);
    }
    let total: u64 = options.iter().zip(&free).map(|(o, t)| o.len() as u64 * t.numel()).sum();
    let backend_id = if backend.asks_gpu() { "gpu" } else { "cpu" };
    let started = Instant::now();
    let mut fresh = 0usize;
    let done = std::cell::Cell::new(0u64);
    let mut measure = |t: &TensorInfo, s: &Scheme, why: &Option<String>, cache: &mut MeasureCache| {
        let resolved = Resolved {
            name: t.name.clone(),
            scheme: s.to_string(),
            requested: None,
            fallback_reason: why.clone(),
            by: "candidate".into(),
            parsed: s.clone(),
        };
        let key = MeasureCache::key(&t.name, &resolved.scheme, &request.importance_id, backend_id);
        let wants_kl = request.objective == Objective::Kl;
        if let Some(m) = cache.get(&key)
            && (m.kl.is_some() || !wants_kl)
        {
            return Ok(m.to_preview(t, &resolved));
        }
        progress(done.get(), total, &format!("{} as {s}", t.name));
        let stopped = |e: ComputeError, cache: &mut MeasureCache| {
            // What was measured before the stop is kept for the next run (best effort: the
            // cache only saves time).
            let _best_effort = cache.save();
            match e {
                ComputeError::Cancelled => AutoError::Cancelled,
                other => AutoError::Compute(other),
            }
        };
        let mut row = match preview_tensor(backend, ckpt, t, &resolved, request.importance, None, cancel) {
            Ok(row) => row,
            Err(e) => return Err(stopped(e, cache)),
        };
        if let (true, Some(measure)) = (wants_kl, request.sensitivity) {
            row.kl = Some(measure(t, &resolved, cancel).map_err(|e| {
                let _best_effort = cache.save();
                if cancel.is_cancelled() {
                    AutoError::Cancelled
                } else {
                    AutoError::Invalid(format!("the KL sensitivity of {} as {s}: {e}", t.name))
                }
            })?);
        }
        cache.put(key, Measure::of(&row));
        fresh += 1;
        Ok::<_, AutoError>(row)
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
        for g in awq_groups(ckpt, &tensors, &schemes) {
            let mut curves = Vec::new();
            for &k in &g.members {
                let i = holders[k];
                let why = options[i].iter().find(|(s, _)| s == c).and_then(|(_, w)| w.clone());
                let row = measure(free[i], c, &why, cache)?;
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
            rows.push(measure(t, s, why, cache)?);
            done.set(done.get() + t.numel());
        }
        measured.push(rows);
    }
    progress(total, total, "solving");
    let mut notes = Vec::new();
    if let Err(w) = cache.save() {
        notes.push(w);
    }
    let measuring_s = started.elapsed().as_secs_f64();
    let items: Vec<Vec<Choice>> = measured
        .iter()
        .map(|rows| {
            rows.iter()
                .map(|r| Choice {
                    bytes: r.bytes,
                    objective: if r.error.is_some() { f64::INFINITY } else { request.objective.of(r) },
                })
                .collect()
        })
        .collect();
    let params: u64 = free.iter().map(|t| t.numel()).sum();
    let budget = match request.budget {
        Budget::Bytes(b) => b,
        Budget::Bpw(bpw) if bpw > 0.0 && bpw.is_finite() => (bpw * params as f64 / 8.0) as u64,
        Budget::Bpw(bpw) => return Err(AutoError::Invalid(format!("a target of {bpw} bits per weight"))),
    };
    let most: u64 = items.iter().map(|c| c.iter().map(|x| x.bytes).max().unwrap_or(0)).sum();
    let least: u64 = items.iter().map(|c| c.iter().map(|x| x.bytes).min().unwrap_or(0)).sum();
    let reach = |b: u64| 8.0 * b as f64 / params.max(1) as f64;
    let solving = Instant::now();
    let allocation = allocate(&items, budget).map_err(|e| {
        AutoError::Invalid(format!(
            "{e}; reachable: {least}..{most} bytes ({:.3}..{:.3} bpw)",
            reach(least),
            reach(most)
        ))
    })?;
    let solve_s = solving.elapsed().as_secs_f64();
    if budget > most {
        notes.push(format!(
            "the budget ({budget} bytes) exceeds what the candidates can use; the largest candidate everywhere takes \
             {most} bytes ({:.3} bpw)",
            reach(most)
        ));
    }
    let frontier = pareto(&items, request.pareto_points)
        .into_iter()
        .map(|(_, bytes, objective)| ParetoPoint { bpw: reach(bytes), bytes, objective })
        .collect();
    Ok(AutoOutcome {
        free,
        pinned,
        measured,
        allocation,
        frontier,
        budget,
        reachable: (least, most),
        params,
        measured_now: fresh,
        cached: cache.hits,
        measuring_s,
        solve_s,
        notes,
    })
}
