//! Choosing one candidate scheme per tensor to minimise the summed error under a size budget: a
//! multiple-choice knapsack. The LP relaxation is solved exactly by the greedy walk along each
//! tensor's lower convex hull of (bytes, error) points, which gives a lower bound on any
//! allocation; the integer answer is that walk without its fractional step, repaired by the best
//! upgrades the leftover bytes allow, and — when the instance is small enough — proven optimal
//! by branch and bound on the same bound. Every answer reports its bound and gap.

use serde::Serialize;

/// One candidate of one tensor: its exact bytes and its objective (error).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Choice {
    /// Bytes it stores.
    pub bytes: u64,
    /// Its objective (sse, weighted sse, rel_error², ...).
    pub objective: f64,
}

/// An allocation: the index of the chosen candidate for every tensor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Allocation {
    /// Chosen candidate per tensor.
    pub picks: Vec<usize>,
    /// Σ bytes.
    pub bytes: u64,
    /// Σ objective.
    pub objective: f64,
    /// The LP relaxation's optimum: no allocation within the budget does better.
    pub lower_bound: f64,
    /// (objective − lower_bound) / lower_bound (0 when the bound is 0 and so is the objective).
    pub gap: f64,
    /// Whether branch and bound proved this allocation optimal.
    pub proven_optimal: bool,
}

/// Why no allocation exists.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AllocateError {
    /// Even the smallest candidate of every tensor exceeds the budget.
    #[error(
        "a budget of {budget} bytes is below the smallest reachable size, {min} bytes (every tensor at its smallest candidate)"
    )]
    TooSmall {
        /// The budget.
        budget: u64,
        /// The smallest reachable total.
        min: u64,
    },
    /// A tensor has no candidate.
    #[error("tensor {0} has no candidate")]
    NoCandidate(usize),
}

/// The lower convex hull of one tensor's candidates, by increasing bytes: dominated candidates
/// (more bytes and no less error) and those above the hull are left out. Returns indices.
fn hull(choices: &[Choice]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..choices.len()).collect();
    idx.sort_by(|&a, &b| {
        choices[a].bytes.cmp(&choices[b].bytes).then(choices[a].objective.total_cmp(&choices[b].objective))
    });
    // Pareto: strictly decreasing error as bytes grow.
    let mut pareto: Vec<usize> = Vec::new();
    for i in idx {
        if pareto
            .last()
            .is_none_or(|&l| choices[i].objective < choices[l].objective && choices[i].bytes > choices[l].bytes)
        {
            pareto.push(i);
        }
    }
    // Lower convex hull (slopes increasing, i.e. the error saved per byte decreasing).
    let mut h: Vec<usize> = Vec::new();
    for i in pareto {
        while h.len() >= 2 {
            let (a, b) = (choices[h[h.len() - 2]], choices[h[h.len() - 1]]);
            let c = choices[i];
            // b is above the segment a–c when (b − a) × (c − a) ≤ 0 in (bytes, objective).
            let cross = (b.bytes as f64 - a.bytes as f64) * (c.objective - a.objective)
                - (b.objective - a.objective) * (c.bytes as f64 - a.bytes as f64);
            if cross <= 0.0 {
                h.pop();
            } else {
                break;
            }
        }
        h.push(i);
    }
    h
}

/// One step up a tensor's hull: from hull position `pos` to `pos + 1`.
#[derive(Clone, Copy, Debug)]
struct Step {
    item: usize,
    pos: usize,
    bytes: u64,
    saving: f64,
}

/// The LP relaxation: the greedy walk up every hull by best saving per byte. Returns the
/// integer part (hull positions), its bytes and objective, and the LP bound.
fn greedy(items: &[Vec<Choice>], hulls: &[Vec<usize>], budget: u64) -> (Vec<usize>, u64, f64, f64) {
    let mut pos = vec![0usize; items.len()];
    let mut bytes: u64 = hulls.iter().zip(items).map(|(h, c)| c[h[0]].bytes).sum();
    let mut objective: f64 = hulls.iter().zip(items).map(|(h, c)| c[h[0]].objective).sum();
    let mut steps: Vec<Step> = Vec::new();
    for (item, (h, c)) in hulls.iter().zip(items).enumerate() {
        for p in 0..h.len().saturating_sub(1) {
            let (a, b) = (c[h[p]], c[h[p + 1]]);
            steps.push(Step { item, pos: p, bytes: b.bytes - a.bytes, saving: a.objective - b.objective });
        }
    }
    // Convexity makes each tensor's steps come in order of decreasing ratio.
    steps.sort_by(|x, y| (y.saving / y.bytes as f64).total_cmp(&(x.saving / x.bytes as f64)));
    let mut bound = objective;
    for s in steps {
        if pos[s.item] != s.pos {
            continue;
        }
        if bytes + s.bytes <= budget {
            bytes += s.bytes;
            objective -= s.saving;
            bound -= s.saving;
            pos[s.item] += 1;
        } else {
            // The fractional step: the LP optimum takes part of it, and stops.
            let left = (budget - bytes) as f64;
            bound -= s.saving * left / s.bytes as f64;
            break;
        }
    }
    (pos, bytes, objective, bound.min(objective))
}

/// Repairs an allocation: while an upgrade of one tensor to any of its candidates fits the
/// leftover bytes, takes the one that lowers the objective most.
fn repair(items: &[Vec<Choice>], picks: &mut [usize], budget: u64) {
    let mut bytes: u64 = picks.iter().zip(items).map(|(&p, c)| c[p].bytes).sum();
    loop {
        let mut best: Option<(usize, usize, f64)> = None;
        for (i, c) in items.iter().enumerate() {
            let cur = c[picks[i]];
            for (k, cand) in c.iter().enumerate() {
                let gain = cur.objective - cand.objective;
                if gain > 0.0 && bytes - cur.bytes + cand.bytes <= budget && best.is_none_or(|(_, _, g)| gain > g) {
                    best = Some((i, k, gain));
                }
            }
        }
        match best {
            Some((i, k, _)) => {
                bytes = bytes - items[i][picks[i]].bytes + items[i][k].bytes;
                picks[i] = k;
            }
            None => return,
        }
    }
}

/// The LP relaxation of a suffix of the tensors as a function of its budget: the hull steps of
/// all of them by saving per byte, with running sums, so that one value costs a binary search.
struct SuffixLp {
    base_bytes: u64,
    base_objective: f64,
    cum_bytes: Vec<u64>,
    cum_saving: Vec<f64>,
    ratio: Vec<f64>,
}

impl SuffixLp {
    fn new(items: &[Vec<Choice>], hulls: &[Vec<usize>]) -> Self {
        let base_bytes = hulls.iter().zip(items).map(|(h, c)| c[h[0]].bytes).sum();
        let base_objective = hulls.iter().zip(items).map(|(h, c)| c[h[0]].objective).sum();
        let mut steps: Vec<(u64, f64)> = Vec::new();
        for (h, c) in hulls.iter().zip(items) {
            for w in h.windows(2) {
                steps.push((c[w[1]].bytes - c[w[0]].bytes, c[w[0]].objective - c[w[1]].objective));
            }
        }
        steps.sort_by(|x, y| (y.1 / y.0 as f64).total_cmp(&(x.1 / x.0 as f64)));
        let (mut cum_bytes, mut cum_saving, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        let (mut b, mut sv) = (0u64, 0f64);
        for (db, ds) in steps {
            b += db;
            sv += ds;
            cum_bytes.push(b);
            cum_saving.push(sv);
            ratio.push(ds / db as f64);
        }
        SuffixLp { base_bytes, base_objective, cum_bytes, cum_saving, ratio }
    }

    /// The least objective the suffix reaches, fractionally, within `budget` (∞ below its minimum).
    fn value(&self, budget: u64) -> f64 {
        if budget < self.base_bytes {
            return f64::INFINITY;
        }
        let left = budget - self.base_bytes;
        let k = self.cum_bytes.partition_point(|&b| b <= left);
        let (done_bytes, done_saving) = if k == 0 { (0, 0.0) } else { (self.cum_bytes[k - 1], self.cum_saving[k - 1]) };
        let partial = self.ratio.get(k).map_or(0.0, |r| r * (left - done_bytes) as f64);
        self.base_objective - done_saving - partial
    }
}

/// A partial allocation of the first tensors: its bytes and objective, and how it was reached.
#[derive(Clone, Copy)]
struct State {
    bytes: u64,
    objective: f64,
    parent: u32,
    choice: u32,
}

/// The exact optimum by dynamic programming over the non-dominated (bytes, objective) partial
/// allocations, tensor by tensor, each state dropped when it plus the LP bound of the rest
/// cannot beat `incumbent`. Returns a better allocation, `Some(None)` when `incumbent` is
/// optimal, and `None` when more than `max_states` states would be needed.
#[allow(clippy::type_complexity)]
fn exact(
    items: &[Vec<Choice>],
    hulls: &[Vec<usize>],
    budget: u64,
    incumbent: f64,
    max_states: usize,
) -> Option<Option<(Vec<usize>, f64)>> {
    let n = items.len();
    let suffix: Vec<SuffixLp> = (0..=n).map(|i| SuffixLp::new(&items[i..], &hulls[i..])).collect();
    let cutoff = incumbent - 1e-12 * incumbent.abs();
    let mut levels: Vec<Vec<State>> = vec![vec![State { bytes: 0, objective: 0.0, parent: 0, choice: 0 }]];
    let mut total = 1usize;
    for i in 0..n {
        let mut next: Vec<State> = Vec::new();
        for (si, st) in levels[i].iter().enumerate() {
            for (k, c) in items[i].iter().enumerate() {
                let bytes = st.bytes + c.bytes;
                if bytes > budget {
                    continue;
                }
                let objective = st.objective + c.objective;
                if objective + suffix[i + 1].value(budget - bytes) >= cutoff {
                    continue;
                }
                next.push(State { bytes, objective, parent: si as u32, choice: k as u32 });
            }
        }
        next.sort_by(|a, b| a.bytes.cmp(&b.bytes).then(a.objective.total_cmp(&b.objective)));
        let mut kept: Vec<State> = Vec::with_capacity(next.len());
        for st in next {
            if kept.last().is_none_or(|l| st.objective < l.objective) {
                kept.push(st);
            }
        }
        total += kept.len();
        if total > max_states {
            return None;
        }
        if kept.is_empty() {
            return Some(None);
        }
        levels.push(kept);
    }
    let (mut at, best) = levels[n]
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.objective.total_cmp(&b.1.objective))
        .map(|(k, st)| (k, st.objective))?;
    let mut picks = vec![0usize; n];
    for i in (0..n).rev() {
        let st = levels[i + 1][at];
        picks[i] = st.choice as usize;
        at = st.parent as usize;
    }
    Some(Some((picks, best)))
}

/// Branch and bound over tensors (each tensor's candidates tried best-first), pruned by the LP
/// bound of the rest; gives up after `max_nodes` nodes.
struct Search<'a> {
    items: &'a [Vec<Choice>],
    hulls: &'a [Vec<usize>],
    /// For each tensor index i: the smallest bytes of tensors i.. (feasibility).
    min_rest: Vec<u64>,
    best: f64,
    best_picks: Vec<usize>,
    nodes: u64,
    max_nodes: u64,
}

impl Search<'_> {
    fn lp_rest(&self, from: usize, budget: u64) -> f64 {
        let (_, _, _, bound) = greedy(&self.items[from..], &self.hulls[from..], budget);
        bound
    }

    fn go(&mut self, i: usize, budget: u64, acc: f64, picks: &mut Vec<usize>) -> bool {
        self.nodes += 1;
        if self.nodes > self.max_nodes {
            return false;
        }
        if i == self.items.len() {
            if acc < self.best {
                self.best = acc;
                self.best_picks = picks.clone();
            }
            return true;
        }
        if self.min_rest[i] > budget || acc + self.lp_rest(i, budget) >= self.best * (1.0 - 1e-12) {
            return true;
        }
        let mut order: Vec<usize> = (0..self.items[i].len()).collect();
        order.sort_by(|&a, &b| self.items[i][a].objective.total_cmp(&self.items[i][b].objective));
        for k in order {
            let c = self.items[i][k];
            if c.bytes > budget {
                continue;
            }
            picks.push(k);
            let done = self.go(i + 1, budget - c.bytes, acc + c.objective, picks);
            picks.pop();
            if !done {
                return false;
            }
        }
        true
    }
}

/// The best allocation of `items` (candidates per tensor) within `budget` bytes.
pub fn allocate(items: &[Vec<Choice>], budget: u64) -> Result<Allocation, AllocateError> {
    if let Some(i) = items.iter().position(Vec::is_empty) {
        return Err(AllocateError::NoCandidate(i));
    }
    let min: u64 = items.iter().map(|c| c.iter().map(|x| x.bytes).min().unwrap_or(0)).sum();
    if min > budget {
        return Err(AllocateError::TooSmall { budget, min });
    }
    let hulls: Vec<Vec<usize>> = items.iter().map(|c| hull(c)).collect();
    let (pos, _, _, lower_bound) = greedy(items, &hulls, budget);
    let mut picks: Vec<usize> = pos.iter().zip(&hulls).map(|(&p, h)| h[p]).collect();
    repair(items, &mut picks, budget);
    let objective: f64 = picks.iter().zip(items).map(|(&p, c)| c[p].objective).sum();
    let gap_of = |objective: f64| {
        if lower_bound > 0.0 {
            ((objective - lower_bound) / lower_bound).max(0.0)
        } else if objective > 0.0 {
            f64::INFINITY
        } else {
            0.0
        }
    };
    // Large tables land within 0.1% of the bound already; otherwise prove it (or find better)
    // by branch and bound, within a node budget.
    if items.len() > 64 && gap_of(objective) < 1e-3 {
        let bytes = picks.iter().zip(items).map(|(&p, c)| c[p].bytes).sum();
        return Ok(Allocation { picks, bytes, objective, lower_bound, gap: gap_of(objective), proven_optimal: false });
    }
    // Branch first on the tensors whose choice matters most (the widest spread of error), so
    // that the LP bound of the many small rest is tight early.
    let spread = |c: &Vec<Choice>| {
        let (lo, hi) =
            c.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| (l.min(x.objective), h.max(x.objective)));
        hi - lo
    };
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| spread(&items[b]).total_cmp(&spread(&items[a])));
    let sorted: Vec<Vec<Choice>> = order.iter().map(|&i| items[i].clone()).collect();
    let sorted_hulls: Vec<Vec<usize>> = order.iter().map(|&i| hulls[i].clone()).collect();
    let mut min_rest = vec![0u64; items.len() + 1];
    for i in (0..items.len()).rev() {
        min_rest[i] = min_rest[i + 1] + sorted[i].iter().map(|x| x.bytes).min().unwrap_or(0);
    }
    let mut search = Search {
        items: &sorted,
        hulls: &sorted_hulls,
        min_rest,
        best: objective,
        best_picks: order.iter().map(|&i| picks[i]).collect(),
        nodes: 0,
        // Enough to prove small and medium tables; beyond it the gap to the bound is reported.
        max_nodes: 100_000,
    };
    let mut proven = search.go(0, budget, 0.0, &mut Vec::with_capacity(items.len()));
    let (mut sorted_picks, mut objective) = (search.best_picks, search.best);
    if !proven {
        // Where the node budget ran out: the exact dynamic programme, within a state budget.
        match exact(&sorted, &sorted_hulls, budget, objective, 4_000_000) {
            Some(Some((better, value))) => {
                sorted_picks = better;
                objective = value;
                proven = true;
            }
            Some(None) => proven = true,
            None => {}
        }
    }
    let mut picks = vec![0usize; items.len()];
    for (k, &i) in order.iter().enumerate() {
        picks[i] = sorted_picks[k];
    }
    let bytes = picks.iter().zip(items).map(|(&p, c)| c[p].bytes).sum();
    Ok(Allocation { picks, bytes, objective, lower_bound, gap: gap_of(objective), proven_optimal: proven })
}

/// The Pareto frontier over `points` budgets evenly spaced from the smallest to the largest
/// reachable size: (budget, allocation objective, its bytes) by the fast LP walk and repair.
pub fn pareto(items: &[Vec<Choice>], points: usize) -> Vec<(u64, u64, f64)> {
    let min: u64 = items.iter().map(|c| c.iter().map(|x| x.bytes).min().unwrap_or(0)).sum();
    let max: u64 = items.iter().map(|c| c.iter().map(|x| x.bytes).max().unwrap_or(0)).sum();
    let hulls: Vec<Vec<usize>> = items.iter().map(|c| hull(c)).collect();
    let n = points.max(2);
    let mut out: Vec<(u64, u64, f64)> = Vec::with_capacity(n);
    for k in 0..n {
        let budget = min + ((max - min) as f64 * k as f64 / (n - 1) as f64) as u64;
        let (pos, _, _, _) = greedy(items, &hulls, budget);
        let mut picks: Vec<usize> = pos.iter().zip(&hulls).map(|(&p, h)| h[p]).collect();
        repair(items, &mut picks, budget);
        let bytes = picks.iter().zip(items).map(|(&p, c)| c[p].bytes).sum();
        let objective: f64 = picks.iter().zip(items).map(|(&p, c)| c[p].objective).sum();
        // A larger budget never does worse than a smaller one's answer.
        let objective = out.last().map_or(objective, |&(_, _, prev)| objective.min(prev));
        out.push((budget, bytes, objective));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: &mut u64) -> f64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed >> 11) as f64 / (1u64 << 53) as f64
    }

    fn brute(items: &[Vec<Choice>], budget: u64) -> Option<f64> {
        let mut best: Option<f64> = None;
        let mut idx = vec![0usize; items.len()];
        loop {
            let bytes: u64 = idx.iter().zip(items).map(|(&k, c)| c[k].bytes).sum();
            if bytes <= budget {
                let obj: f64 = idx.iter().zip(items).map(|(&k, c)| c[k].objective).sum();
                best = Some(best.map_or(obj, |b: f64| b.min(obj)));
            }
            let mut i = 0;
            loop {
                if i == items.len() {
                    return best;
                }
                idx[i] += 1;
                if idx[i] < items[i].len() {
                    break;
                }
                idx[i] = 0;
                i += 1;
            }
        }
    }

    #[test]
    fn optimal_on_random_instances_against_brute_force() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        for case in 0..300 {
            let n = 1 + (rng(&mut seed) * 6.0) as usize;
            let items: Vec<Vec<Choice>> = (0..n)
                .map(|_| {
                    let m = 1 + (rng(&mut seed) * 4.0) as usize;
                    (0..m)
                        .map(|_| Choice {
                            bytes: 1 + (rng(&mut seed) * 100.0) as u64,
                            // ties on purpose now and then
                            objective: (rng(&mut seed) * 20.0).round(),
                        })
                        .collect()
                })
                .collect();
            let min: u64 = items.iter().map(|c| c.iter().map(|x| x.bytes).min().unwrap()).sum();
            let max: u64 = items.iter().map(|c| c.iter().map(|x| x.bytes).max().unwrap()).sum();
            let budget = min + ((max - min) as f64 * rng(&mut seed)) as u64;
            let want = brute(&items, budget).unwrap();
            let got = allocate(&items, budget).unwrap();
            assert!(got.proven_optimal, "case {case}");
            assert!(got.bytes <= budget);
            assert!((got.objective - want).abs() < 1e-9, "case {case}: {} vs brute force {want}", got.objective);
            assert!(
                got.lower_bound <= want + 1e-9,
                "case {case}: the bound {} exceeds the optimum {want}",
                got.lower_bound
            );
        }
    }

    #[test]
    fn the_exact_programme_matches_brute_force() {
        let mut seed = 0xdeadbeefu64;
        for case in 0..200 {
            let n = 2 + (rng(&mut seed) * 6.0) as usize;
            let items: Vec<Vec<Choice>> = (0..n)
                .map(|_| {
                    (0..1 + (rng(&mut seed) * 4.0) as usize)
                        .map(|_| Choice {
                            bytes: 1 + (rng(&mut seed) * 50.0) as u64,
                            objective: (rng(&mut seed) * 100.0).round(),
                        })
                        .collect()
                })
                .collect();
            let hulls: Vec<Vec<usize>> = items.iter().map(|c| hull(c)).collect();
            let min: u64 = items.iter().map(|c| c.iter().map(|x| x.bytes).min().unwrap()).sum();
            let max: u64 = items.iter().map(|c| c.iter().map(|x| x.bytes).max().unwrap()).sum();
            let budget = min + ((max - min) as f64 * rng(&mut seed)) as u64;
            let want = brute(&items, budget).unwrap();
            // From an incumbent above the optimum, the programme finds the optimum itself.
            let (picks, got) = exact(&items, &hulls, budget, want + 1.0, 1 << 20).unwrap().unwrap();
            assert!((got - want).abs() < 1e-9, "case {case}: {got} vs {want}");
            assert!(picks.iter().zip(&items).map(|(&k, c)| c[k].bytes).sum::<u64>() <= budget);
            // From the optimum as incumbent, it proves nothing better exists.
            assert!(exact(&items, &hulls, budget, want, 1 << 20).unwrap().is_none(), "case {case}");
        }
    }

    #[test]
    fn budgets_out_of_reach_and_trivial_ones() {
        let items = vec![vec![Choice { bytes: 10, objective: 5.0 }, Choice { bytes: 20, objective: 1.0 }]; 3];
        assert_eq!(allocate(&items, 29), Err(AllocateError::TooSmall { budget: 29, min: 30 }));
        let all = allocate(&items, 1000).unwrap();
        assert_eq!((all.objective, all.bytes, all.gap), (3.0, 60, 0.0));
        let none = allocate(&items, 30).unwrap();
        assert_eq!(none.objective, 15.0);
        assert_eq!(allocate(&[vec![]], 10), Err(AllocateError::NoCandidate(0)));
    }

    #[test]
    fn the_pareto_frontier_falls_as_the_budget_grows() {
        let mut seed = 7u64;
        let items: Vec<Vec<Choice>> = (0..40)
            .map(|_| {
                (0..5)
                    .map(|k| Choice {
                        bytes: 100 * (k + 1) as u64 + (rng(&mut seed) * 30.0) as u64,
                        objective: 1000.0 / (k + 1) as f64 * (0.5 + rng(&mut seed)),
                    })
                    .collect()
            })
            .collect();
        let p = pareto(&items, 25);
        assert_eq!(p.len(), 25);
        for w in p.windows(2) {
            assert!(w[1].2 <= w[0].2, "{w:?}");
            assert!(w[0].1 <= w[0].0 && w[1].0 > w[0].0);
        }
        // The answer is proven optimal, or within 0.1% of the LP bound.
        let mid = (p[0].0 + p[24].0) / 2;
        let a = allocate(&items, mid).unwrap();
        assert!(a.proven_optimal || a.gap < 1e-3, "gap {}", a.gap);
    }

    #[test]
    fn a_model_sized_table_solves_fast_within_a_tenth_of_a_percent_of_the_bound() {
        // 560 matrices × 8 candidates, as a 70B model's table.
        let mut seed = 11u64;
        let items: Vec<Vec<Choice>> = (0..560)
            .map(|_| {
                let size = 1.0 + 20.0 * rng(&mut seed);
                (0..8)
                    .map(|k| Choice {
                        bytes: (size * 1e6 * (k + 2) as f64 / 8.0) as u64,
                        objective: size * (0.25f64).powi(k) * (0.8 + 0.4 * rng(&mut seed)),
                    })
                    .collect()
            })
            .collect();
        let min: u64 = items.iter().map(|c| c[0].bytes).sum();
        let max: u64 = items.iter().map(|c| c[7].bytes).sum();
        let start = std::time::Instant::now();
        let a = allocate(&items, (min + max) / 3).unwrap();
        let took = start.elapsed();
        assert!(a.gap < 1e-3, "gap {} (proven: {})", a.gap, a.proven_optimal);
        assert!(a.bytes <= (min + max) / 3);
        // A loose bound here (debug builds, a busy CI machine); the benchmark measures it.
        assert!(took.as_secs_f64() < 30.0, "{took:?}");
    }
}
