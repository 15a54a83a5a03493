//! The few dense operations a forward pass needs, in f32: `x · Wᵀ` through faer (rayon), and
//! norms and activations row by row.

use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Inner-dimension block of [`matmul`]: products over this many terms are summed in f32, the
/// blocks' sums in f64.
const K_BLOCK: usize = 128;

/// `x · Wᵀ` for `x` of `t × n` and `w` of `out × n` (row-major, as checkpoints store linear
/// layers): `t × out`, with [`matmul`]'s blocked sums, all threads.
pub fn linear(x: &[f32], t: usize, w: &[f32], out: usize, n: usize) -> Vec<f32> {
    if t == 0 || out == 0 {
        return vec![0f32; t * out];
    }
    let lhs = MatRef::from_row_major_slice(x, t, n);
    // Bands of output features, each a sequential product on one thread: a band packs only its
    // own rows of W, no thread waits at a barrier between faer's K blocks, and a band's f32 block
    // sums and f64 accumulator stay in cache while its K blocks are added.
    let per = BAND;
    let bands: Vec<(usize, Vec<f32>)> = (0..out)
        .step_by(per)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|o0| {
            let o1 = (o0 + per).min(out);
            let rhs = MatRef::from_row_major_slice(&w[o0 * n..o1 * n], o1 - o0, n).transpose();
            (o0, matmul(lhs, rhs, 1.0, Par::Seq))
        })
        .collect();
    if let [(_, only)] = bands.as_slice()
        && only.len() == t * out
    {
        return bands.into_iter().next().map(|(_, y)| y).unwrap_or_default();
    }
    let mut y = vec![0f32; t * out];
    for (o0, band) in &bands {
        let width = band.len() / t;
        for (row, part) in y.chunks_exact_mut(out).zip(band.chunks_exact(width)) {
            row[*o0..*o0 + width].copy_from_slice(part);
        }
    }
    y
}

/// Output features per band of [`linear`].
const BAND: usize = 128;

/// `alpha · lhs · rhs` (row-major `m × n`). The inner dimension is cut into blocks of
/// [`K_BLOCK`] whose f32 products are added in f64: one f32 sum over a 1536-long row left the
/// logits of SmolLM2 twice as far from float64's as transformers' (whose BLAS blocks its sums
/// the same way).
pub fn matmul(lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>, alpha: f32, par: Par) -> Vec<f32> {
    let (m, k, n) = (lhs.nrows(), lhs.ncols(), rhs.ncols());
    let mut part = vec![0f32; m * n];
    if k <= K_BLOCK {
        let dst = MatMut::from_row_major_slice_mut(&mut part, m, n);
        faer::linalg::matmul::matmul(dst, Accum::Replace, lhs, rhs, alpha, par);
        return part;
    }
    let mut acc = vec![0f64; m * n];
    let mut k0 = 0;
    while k0 < k {
        let kb = K_BLOCK.min(k - k0);
        let dst = MatMut::from_row_major_slice_mut(&mut part, m, n);
        faer::linalg::matmul::matmul(dst, Accum::Replace, lhs.subcols(k0, kb), rhs.subrows(k0, kb), alpha, par);
        acc.iter_mut().zip(&part).for_each(|(a, p)| *a += f64::from(*p));
        k0 += kb;
    }
    acc.into_iter().map(|v| v as f32).collect()
}

/// Adds `bias` to every row of `y` (rows of `bias.len()`).
pub fn add_bias(y: &mut [f32], bias: &[f32]) {
    for row in y.chunks_exact_mut(bias.len().max(1)) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
}

/// RMSNorm of each row, as transformers computes it in f32: `x / sqrt(mean(x²) + eps) · w`
/// (Gemma: `· (1 + w)`, given as `offset` = 1).
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, offset: f32) -> Vec<f32> {
    let d = w.len();
    let mut out = vec![0f32; x.len()];
    for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        // Sums in f64: the rounding of a long f32 sum would be the largest error left.
        let ms = (row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / d as f64) as f32;
        let r = 1.0 / (ms + eps).sqrt();
        for ((o, v), g) in o.iter_mut().zip(row).zip(w) {
            *o = (offset + g) * (v * r);
        }
    }
    out
}

/// LayerNorm of each row with weight and bias (population variance, as torch).
pub fn layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32) -> Vec<f32> {
    let d = w.len();
    let mut out = vec![0f32; x.len()];
    for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mean = (row.iter().map(|&v| f64::from(v)).sum::<f64>() / d as f64) as f32;
        let var = (row.iter().map(|&v| f64::from(v - mean) * f64::from(v - mean)).sum::<f64>() / d as f64) as f32;
        let r = 1.0 / (var + eps).sqrt();
        for (((o, v), g), bb) in o.iter_mut().zip(row).zip(w).zip(b) {
            *o = (v - mean) * r * g + bb;
        }
    }
    out
}

/// SiLU.
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// GELU with tanh approximation (`gelu_pytorch_tanh`, Gemma).
pub fn gelu_tanh(x: f32) -> f32 {
    let c = (2.0f32 / std::f32::consts::PI).sqrt();
    0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
}

/// Softmax of `v` in place (max subtracted first); entries that are −∞ become 0.
pub fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += f64::from(*x);
    }
    let sum = sum as f32;
    v.iter_mut().for_each(|x| *x /= sum);
}

/// `log Σ exp(v)` in f64.
pub fn log_sum_exp(v: &[f32]) -> f64 {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    max + v.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln()
}
