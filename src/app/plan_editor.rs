//! The plan editor's state, apart from drawing: the plan being edited with undo and redo, its
//! resolution on the open checkpoint, the previews measured so far (by tensor and scheme, so an
//! undo finds its numbers again), the selection, pins, and the totals against the budget.
//!
//! Every edit goes through [`PlanEditor::edit`], which keeps the previous plan for undo and
//! resolves the new one; a plan that does not fit the checkpoint is kept with its error (shown
//! in the window) rather than applied half-way.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::Computed;
use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::quant::auto::{Objective, ParetoPoint};
use crate::quant::inspect::{ErrorMap, RowLevels};
use crate::quant::plan::{Override, Rule};
use crate::quant::scheme::RankCut;
use crate::quant::{Plan, Resolved, Scheme, TensorPreview};

/// Undo steps kept.
const UNDO_DEPTH: usize = 200;

/// Schemes the picker offers (any other can be typed).
pub const PRESET_SCHEMES: [&str; 24] = [
    "keep",
    "f16",
    "bf16",
    "q8_0",
    "q6_k",
    "q5_k",
    "q5_0",
    "q4_k",
    "q4_0",
    "q3_k",
    "q2_k",
    "iq4_nl",
    "iq4_xs",
    "int8_ch",
    "int4_g128",
    "int4_g128_asym",
    "int3_g64",
    "fp8_e4m3_ch",
    "nf4",
    "lowrank_r64",
    "lowrank_e0.95",
    "welore",
    "int4_g128+slim",
    "int4_g128+pow",
];

/// A finished automatic allocation, kept to draw its frontier and to place the current plan on it.
#[derive(Clone, Debug)]
pub struct AutoResult {
    /// The frontier (bpw of the free tensors, least objective).
    pub frontier: Vec<ParetoPoint>,
    /// The tensors it allocated over.
    pub free: Vec<usize>,
    /// What it minimised.
    pub objective: Objective,
    /// The budget it was given, in bits per weight of the free tensors.
    pub target_bpw: f64,
}

/// The plan being edited.
pub struct PlanEditor {
    /// The plan now.
    pub plan: Plan,
    undo: Vec<Plan>,
    redo: Vec<Plan>,
    /// What the plan gives every tensor, or why it does not fit the checkpoint.
    pub resolved: Result<Vec<Resolved>, String>,
    /// The resolution's warnings (rules matching nothing, ...).
    pub warnings: Vec<String>,
    /// Previews by (tensor, scheme).
    pub previews: HashMap<(usize, String), Computed<TensorPreview>>,
    /// Selected rows (tensor indices).
    pub selection: BTreeSet<usize>,
    /// The row a shift-click extends from.
    pub anchor: Option<usize>,
    /// The budget, in bits per weight over all tensors.
    pub target_bpw: f64,
    /// The scheme text of the bulk assignment.
    pub bulk_scheme: String,
    /// The rule editor's new pattern and scheme.
    pub new_rule: (String, String),
    /// The rule under the pointer (its rows are highlighted).
    pub hovered_rule: Option<usize>,
    /// The last automatic allocation.
    pub auto: Option<Arc<AutoResult>>,
    /// The last problem with an edit, shown above the table.
    pub error: Option<String>,
    /// Error maps by (tensor, scheme).
    pub error_maps: HashMap<(usize, String), Computed<ErrorMap>>,
    /// Their pictures.
    pub error_textures: HashMap<(usize, String), egui::TextureHandle>,
    /// The row whose group levels are shown: (tensor, scheme, row) and the encoded row.
    pub row_levels: Option<((usize, String, usize), Computed<RowLevels>)>,
    /// The group of that row that is shown.
    pub group: usize,
    /// What the selected tensor's detail shows.
    pub detail: Detail,
}

/// What the selected tensor's detail shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// |W − Ŵ| tiles.
    ErrorMap,
    /// A group's values and the levels they were rounded to.
    Grid,
    /// Singular values with the low-rank cut.
    SingularValues,
}

impl PlanEditor {
    /// An editor on `ckpt` with a plan that keeps every tensor.
    pub fn new(ckpt: &Checkpoint) -> Self {
        let mut e = PlanEditor {
            plan: Plan::empty("workbench"),
            undo: Vec::new(),
            redo: Vec::new(),
            resolved: Ok(Vec::new()),
            warnings: Vec::new(),
            previews: HashMap::new(),
            selection: BTreeSet::new(),
            anchor: None,
            target_bpw: 5.0,
            bulk_scheme: "q4_k".into(),
            new_rule: ("*.weight".into(), "q4_k".into()),
            hovered_rule: None,
            auto: None,
            error: None,
            error_maps: HashMap::new(),
            error_textures: HashMap::new(),
            row_levels: None,
            group: 0,
            detail: Detail::ErrorMap,
        };
        e.resolve(ckpt);
        e
    }

    /// Resolves the plan on `ckpt`.
    pub fn resolve(&mut self, ckpt: &Checkpoint) {
        match self.plan.resolve_all(ckpt) {
            Ok((r, w)) => {
                self.resolved = Ok(r);
                self.warnings = w;
            }
            Err(e) => {
                self.resolved = Err(e.to_string());
                self.warnings.clear();
            }
        }
    }

    /// Applies `change` to the plan as one undoable step; a change that leaves a plan the
    /// checkpoint cannot take is taken back, and its error kept in `error`.
    pub fn edit(&mut self, ckpt: &Checkpoint, change: impl FnOnce(&mut Plan)) -> Result<(), String> {
        let before = self.plan.clone();
        change(&mut self.plan);
        self.resolve(ckpt);
        if let Err(e) = &self.resolved {
            let e = e.clone();
            self.plan = before;
            self.resolve(ckpt);
            self.error = Some(e.clone());
            return Err(e);
        }
        self.undo.push(before);
        if self.undo.len() > UNDO_DEPTH {
            self.undo.remove(0);
        }
        self.redo.clear();
        self.error = None;
        Ok(())
    }

    /// Replaces the whole plan (a loaded file, an allocation) as one undoable step.
    pub fn replace(&mut self, ckpt: &Checkpoint, plan: Plan) -> Result<(), String> {
        self.edit(ckpt, |p| *p = plan)
    }

    /// Gives `tensors` `scheme` (as overrides); refused whole, naming the tensor, when one of
    /// them cannot take it.
    pub fn set_scheme(&mut self, ckpt: &Checkpoint, tensors: &[usize], scheme: &str) -> Result<(), String> {
        let parsed: Scheme = scheme.trim().parse().inspect_err(|e: &String| self.error = Some(e.clone()))?;
        let mut named = Vec::with_capacity(tensors.len());
        for &i in tensors {
            let Some(t) = ckpt.tensors().get(i) else { continue };
            if let Err(why) = parsed.check(&t.shape) {
                let e = format!("tensor {} {:?} cannot take `{parsed}`: {why}", t.name, t.shape);
                self.error = Some(e.clone());
                return Err(e);
            }
            named.push(t.name.clone());
        }
        self.edit(ckpt, |p| {
            for name in named {
                let pinned = p.overrides.get(&name).is_some_and(|o| o.pinned);
                p.overrides.insert(name, Override { scheme: parsed.clone(), line: 0, pinned });
            }
        })
    }

    /// Takes the overrides of `tensors` away (their rules decide again).
    pub fn clear_overrides(&mut self, ckpt: &Checkpoint, tensors: &[usize]) -> Result<(), String> {
        let names: Vec<String> =
            tensors.iter().filter_map(|&i| ckpt.tensors().get(i)).map(|t| t.name.clone()).collect();
        self.edit(ckpt, |p| names.iter().for_each(|n| drop(p.overrides.remove(n))))
    }

    /// Pins or unpins `tensors`: a pinned tensor keeps its scheme when allocating.
    pub fn set_pinned(&mut self, ckpt: &Checkpoint, tensors: &[usize], pinned: bool) -> Result<(), String> {
        let current = self.resolved.as_ref().ok().cloned().unwrap_or_default();
        let changes: Vec<(String, Scheme)> = tensors
            .iter()
            .filter_map(|&i| Some((ckpt.tensors().get(i)?.name.clone(), current.get(i)?.parsed.clone())))
            .collect();
        self.edit(ckpt, |p| {
            for (name, scheme) in changes {
                match p.overrides.get_mut(&name) {
                    Some(o) => o.pinned = pinned,
                    None if pinned => drop(p.overrides.insert(name, Override { scheme, line: 0, pinned })),
                    None => {}
                }
            }
        })
    }

    /// Whether tensor `name` is pinned.
    pub fn is_pinned(&self, name: &str) -> bool {
        self.plan.overrides.get(name).is_some_and(|o| o.pinned)
    }

    /// Appends a rule (it wins over the earlier ones).
    pub fn add_rule(&mut self, ckpt: &Checkpoint, pattern: &str, scheme: &str) -> Result<(), String> {
        let rule = scheme
            .trim()
            .parse::<Scheme>()
            .and_then(|s| Rule::new(pattern.trim(), s))
            .inspect_err(|e| self.error = Some(e.clone()))?;
        self.edit(ckpt, |p| p.rules.push(rule))
    }

    /// Removes rule `k`.
    pub fn remove_rule(&mut self, ckpt: &Checkpoint, k: usize) -> Result<(), String> {
        self.edit(ckpt, |p| {
            if k < p.rules.len() {
                p.rules.remove(k);
            }
        })
    }

    /// Moves rule `k` one place earlier (`up`) or later.
    pub fn move_rule(&mut self, ckpt: &Checkpoint, k: usize, up: bool) -> Result<(), String> {
        self.edit(ckpt, |p| {
            let j = if up { k.checked_sub(1) } else { Some(k + 1) };
            if let Some(j) = j.filter(|&j| j < p.rules.len() && k < p.rules.len()) {
                p.rules.swap(k, j);
            }
        })
    }

    /// Whether there is an edit to undo, and one to redo.
    pub fn can_undo_redo(&self) -> (bool, bool) {
        (!self.undo.is_empty(), !self.redo.is_empty())
    }

    /// Takes the last edit back.
    pub fn undo(&mut self, ckpt: &Checkpoint) -> bool {
        let Some(prev) = self.undo.pop() else { return false };
        self.redo.push(std::mem::replace(&mut self.plan, prev));
        self.resolve(ckpt);
        true
    }

    /// Makes the last undone edit again.
    pub fn redo(&mut self, ckpt: &Checkpoint) -> bool {
        let Some(next) = self.redo.pop() else { return false };
        self.undo.push(std::mem::replace(&mut self.plan, next));
        self.resolve(ckpt);
        true
    }

    /// The current scheme of tensor `i`.
    pub fn resolved_of(&self, i: usize) -> Option<&Resolved> {
        self.resolved.as_ref().ok()?.get(i)
    }

    /// The preview of tensor `i` under its current scheme, when measured.
    pub fn preview_of(&self, i: usize) -> Option<&Computed<TensorPreview>> {
        let r = self.resolved_of(i)?;
        self.previews.get(&(i, r.scheme.clone()))
    }

    /// Tensors whose current scheme has no preview yet (nor one being computed), in order.
    pub fn missing(&self, ckpt: &Checkpoint) -> Vec<(usize, Resolved)> {
        let Ok(resolved) = &self.resolved else { return Vec::new() };
        resolved
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                let t = &ckpt.tensors()[*i];
                t.numel() > 0
                    && (t.dtype.why_not_analysed().is_none() || r.parsed.is_keep())
                    && !self.previews.contains_key(&(*i, r.scheme.clone()))
            })
            .map(|(i, r)| (i, r.clone()))
            .collect()
    }

    /// Bytes tensor `i` takes under its scheme, and whether that is exact (a low rank cut by
    /// energy knows its rank only once measured; until then its stored size stands in).
    pub fn bytes_of(&self, t: &TensorInfo, i: usize) -> (u64, bool) {
        let Some(r) = self.resolved_of(i) else { return (t.bytes, false) };
        if let Some(Computed::Ready(p)) = self.previews.get(&(i, r.scheme.clone())) {
            return (p.bytes, true);
        }
        let rank = match &r.parsed {
            Scheme::LowRank { cut: RankCut::Rank(k), .. } => Some(*k),
            Scheme::LowRank { .. } => return (t.bytes, false),
            _ => None,
        };
        (r.parsed.bytes(&t.shape, t.dtype, t.bytes, rank), true)
    }

    /// The plan's totals on `ckpt`.
    pub fn totals(&self, ckpt: &Checkpoint) -> Totals {
        let mut t = Totals { source_bytes: ckpt.total_bytes(), params: ckpt.total_params(), ..Totals::default() };
        for (i, info) in ckpt.tensors().iter().enumerate() {
            let (bytes, exact) = self.bytes_of(info, i);
            t.bytes += bytes;
            t.estimated += u64::from(!exact);
            match self.preview_of(i) {
                Some(Computed::Ready(p)) => {
                    t.sse += p.sse;
                    t.signal += p.rel_error.filter(|&r| r > 0.0).map_or(0.0, |r| p.sse / (r * r));
                    t.measured += 1;
                }
                Some(Computed::Failed(_)) => t.failed += 1,
                _ => {}
            }
        }
        t
    }

    /// Bytes the budget allows.
    pub fn budget_bytes(&self, ckpt: &Checkpoint) -> u64 {
        (self.target_bpw * ckpt.total_params() as f64 / 8.0) as u64
    }

    /// The current plan's place on the last allocation's frontier: (bpw of its free tensors,
    /// Σ objective), once every free tensor is measured.
    pub fn frontier_marker(&self, ckpt: &Checkpoint) -> Option<[f64; 2]> {
        let auto = self.auto.as_ref()?;
        let (mut bytes, mut objective, mut params) = (0u64, 0.0, 0u64);
        for &i in &auto.free {
            let t = ckpt.tensors().get(i)?;
            let Some(Computed::Ready(p)) = self.preview_of(i) else { return None };
            bytes += p.bytes;
            objective += auto.objective.of(p);
            params += t.numel();
        }
        Some([8.0 * bytes as f64 / params.max(1) as f64, objective])
    }

    /// Selects row `i` as a click with `shift` (range from the anchor, in `order`) and `ctrl`
    /// (toggle) would.
    pub fn click_row(&mut self, i: usize, shift: bool, ctrl: bool, order: &[usize]) {
        match (shift, self.anchor) {
            (true, Some(a)) => {
                let (pa, pi) = (order.iter().position(|&x| x == a), order.iter().position(|&x| x == i));
                if let (Some(pa), Some(pi)) = (pa, pi) {
                    if !ctrl {
                        self.selection.clear();
                    }
                    self.selection.extend(order[pa.min(pi)..=pa.max(pi)].iter().copied());
                }
            }
            _ if ctrl => {
                if !self.selection.remove(&i) {
                    self.selection.insert(i);
                }
                self.anchor = Some(i);
            }
            _ => {
                self.selection.clear();
                self.selection.insert(i);
                self.anchor = Some(i);
            }
        }
    }
}

/// A plan's totals on a checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    /// Bytes the plan stores.
    pub bytes: u64,
    /// Tensors whose bytes are estimated until measured.
    pub estimated: u64,
    /// The checkpoint's stored bytes.
    pub source_bytes: u64,
    /// Its parameters.
    pub params: u64,
    /// Σ sse of the measured tensors.
    pub sse: f64,
    /// Σ ‖W‖² of the measured tensors.
    pub signal: f64,
    /// Tensors measured under their current scheme.
    pub measured: usize,
    /// Tensors whose measurement failed.
    pub failed: usize,
}

impl Totals {
    /// Average bits per weight.
    pub fn bpw(&self) -> f64 {
        8.0 * self.bytes as f64 / self.params.max(1) as f64
    }
}
