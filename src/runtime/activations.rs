//! Activation statistics of linear layers: per weight, the sum over tokens of each input
//! channel's squared activation and the number of tokens — llama.cpp's imatrix (`in_sum2`,
//! `counts`), so that the mean square is `in_sum2 / counts`. Keyed by the weight's transformers
//! name; layers that read the same input (q, k, v; gate, up) each get their own copy, as
//! llama.cpp records them.

use std::collections::BTreeMap;
use std::sync::Arc;

use faer::{MatRef, Par};

use super::{Model, RuntimeError};
use crate::cancel::Cancel;
use crate::checkpoint::imatrix::{Hessian, Imatrix};

/// Sums of squared inputs by weight.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActivationStats {
    /// Per weight (transformers name): Σ x_j² over tokens, per input channel j (f64).
    pub in_sum2: BTreeMap<String, Vec<f64>>,
    /// Per weight: tokens seen.
    pub counts: BTreeMap<String, u64>,
    /// Windows (llama.cpp's chunks) run.
    pub chunks: u64,
    /// Whether to sum `x xᵀ` too (GPTQ's Hessian): set before the first window.
    pub want_hessians: bool,
    /// Per input (keyed by the first weight that reads it): Σ x xᵀ over tokens, `n × n` (f64).
    pub grams: BTreeMap<String, Vec<f64>>,
    /// Per weight: the key of its input's sum in `grams` (q, k and v share one).
    pub gram_of: BTreeMap<String, String>,
}

impl ActivationStats {
    /// Adds the `t × n` input `x` of each weight in `weights`.
    pub fn add(&mut self, weights: &[String], x: &[f32], n: usize) {
        if n == 0 || weights.is_empty() {
            return;
        }
        let mut sums = vec![0f64; n];
        for row in x.chunks_exact(n) {
            sums.iter_mut().zip(row).for_each(|(s, &v)| *s += f64::from(v) * f64::from(v));
        }
        let t = (x.len() / n) as u64;
        for w in weights {
            let acc = self.in_sum2.entry(w.clone()).or_insert_with(|| vec![0f64; n]);
            acc.iter_mut().zip(&sums).for_each(|(a, s)| *a += s);
            *self.counts.entry(w.clone()).or_insert(0) += t;
        }
        if self.want_hessians {
            let key = weights[0].clone();
            let rows = x.len() / n;
            let xm = MatRef::from_row_major_slice(&x[..rows * n], rows, n);
            let gram = super::linalg::matmul(xm.transpose(), xm, 1.0, Par::rayon(0));
            let acc = self.grams.entry(key.clone()).or_insert_with(|| vec![0f64; n * n]);
            acc.iter_mut().zip(&gram).for_each(|(a, g)| *a += f64::from(*g));
            for w in weights {
                self.gram_of.insert(w.clone(), key.clone());
            }
        }
    }

    /// The statistics as an importance: mean squares (and Hessians, when summed) under each
    /// weight's transformers name and, where one is known for `arch`, its GGUF name.
    pub fn to_imatrix(&self, arch: &str, source: String) -> Imatrix {
        let mut m = Imatrix { vectors: BTreeMap::new(), source, hessians: BTreeMap::new() };
        let names = |hf: &str| {
            let mut v = vec![hf.to_owned()];
            v.extend(crate::checkpoint::hf_names::gguf_name(hf, arch));
            v
        };
        for (w, v) in self.mean_squares() {
            for n in names(&w) {
                m.vectors.insert(n, v.clone());
            }
        }
        let mut made: BTreeMap<&str, Arc<Hessian>> = BTreeMap::new();
        for (w, key) in &self.gram_of {
            let Some(sum) = self.grams.get(key) else { continue };
            let tokens = self.counts.get(w).copied().unwrap_or(0);
            let h = made
                .entry(key.as_str())
                .or_insert_with(|| {
                    let c = tokens.max(1) as f64;
                    let n = (sum.len() as f64).sqrt() as usize;
                    Arc::new(Hessian { n, values: sum.iter().map(|s| (s / c) as f32).collect(), tokens })
                })
                .clone();
            for n in names(w) {
                m.hessians.insert(n, h.clone());
            }
        }
        m
    }

    /// The mean square of each weight's inputs (`in_sum2 / counts`).
    pub fn mean_squares(&self) -> BTreeMap<String, Vec<f32>> {
        self.in_sum2
            .iter()
            .map(|(k, v)| {
                let c = self.counts.get(k).copied().unwrap_or(1).max(1) as f64;
                (k.clone(), v.iter().map(|s| (s / c) as f32).collect())
            })
            .collect()
    }
}

/// Runs `model` over `ids` in windows of `ctx` tokens and returns the inputs' statistics (with
/// Hessians when `hessians`); `progress(done, windows)` after each window.
pub fn calibrate(
    model: &Model,
    ids: &[u32],
    ctx: usize,
    hessians: bool,
    cancel: &Cancel,
    progress: &dyn Fn(usize, usize),
) -> Result<ActivationStats, RuntimeError> {
    let mut stats = ActivationStats { want_hessians: hessians, ..Default::default() };
    let windows: Vec<&[u32]> = ids.chunks(ctx.max(1)).collect();
    for (k, w) in windows.iter().enumerate() {
        model.forward_with(w, &[], Some(&mut stats), cancel)?;
        stats.chunks += 1;
        progress(k + 1, windows.len());
    }
    Ok(stats)
}
