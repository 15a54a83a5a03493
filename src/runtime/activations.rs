//! Activation statistics of linear layers: per weight, the sum over tokens of each input
//! channel's squared activation and the number of tokens — llama.cpp's imatrix (`in_sum2`,
//! `counts`), so that the mean square is `in_sum2 / counts`. Keyed by the weight's transformers
//! name; layers that read the same input (q, k, v; gate, up) each get their own copy, as
//! llama.cpp records them.

use std::collections::BTreeMap;

/// Sums of squared inputs by weight.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActivationStats {
    /// Per weight (transformers name): Σ x_j² over tokens, per input channel j (f64).
    pub in_sum2: BTreeMap<String, Vec<f64>>,
    /// Per weight: tokens seen.
    pub counts: BTreeMap<String, u64>,
    /// Windows (llama.cpp's chunks) run.
    pub chunks: u64,
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
