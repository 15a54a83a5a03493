//! The few dense operations a forward pass needs, in f32: `x · Wᵀ` through faer (rayon), and
//! norms and activations row by row.

use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

// The inner-dimension block of `matmul` (products over this many terms are summed in f32, the
// blocks' sums in f64) is our own kernel's.
use super::gemm::K_BLOCK;

/// `x · Wᵀ` for `x` of `t × n` and `w` of `out × n` (row-major, as checkpoints store linear
/// layers): `t × out`, with [`matmul`]'s blocked sums, all threads.
pub fn linear(x: &[f32], t: usize, w: &[f32], out: usize, n: usize) -> Vec<f32> {
    if t == 0 || out == 0 {
        return vec![0f32; t * out];
    }
    if let Some(y) = super::gemm::linear_nt(x, t, w, out, n) {
        return y;
    }
    let lhs = MatRef::from_row_major_slice(x, t, n);
    // Without SIMD for our own kernel: bands of output features, each a sequential product on one thread: a band packs only its
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
    x / (1.0 + exp_f32(-x))
}

/// `silu(g) · u` element by element (the gated MLP of the Llama family), vectorised.
pub fn silu_gate(g: &[f32], u: &[f32]) -> Vec<f32> {
    struct Op<'a>(&'a [f32], &'a [f32]);
    impl pulp::WithSimd for Op<'_> {
        type Output = Vec<f32>;
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) -> Vec<f32> {
            self.0.iter().zip(self.1).map(|(g, u)| silu(*g) * u).collect()
        }
    }
    pulp::Arch::new().dispatch(Op(g, u))
}

/// `e^x` in f32 without a call into libm, so that loops over it vectorise: Cephes' `expf` (the
/// reduction by ln 2 in two parts, a degree-6 polynomial, `2^k` built from exponent bits), within
/// 2 ulp of libm's from −87.3 to 88; 0 below −87.3 (where libm's result is subnormal or 0), and
/// capped at `e^88` above (the callers only need it for `x ≤ 0` and in SiLU's denominator).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOW: f32 = -87.336_55;
    let xc = x.clamp(LOW, 88.0);
    // Round to nearest by the 1.5·2²³ trick: plain arithmetic that vectorises everywhere.
    let k = (xc * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
    let r = (xc - k * 0.693_359_4) + k * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 0.166_666_65) * r
        + 0.5;
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(((k as i32 + 127) << 23) as u32);
    if x < LOW { 0.0 } else { y * scale }
}

/// GELU with tanh approximation (`gelu_pytorch_tanh`, Gemma).
pub fn gelu_tanh(x: f32) -> f32 {
    let c = (2.0f32 / std::f32::consts::PI).sqrt();
    0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
}

/// Softmax of `v` in place (max subtracted first, the sum in f64); entries that are −∞ become 0.
/// Vectorised (SIMD chosen at run time): the exponentials through [`exp_f32`], the sum in eight
/// f64 lanes.
pub fn softmax(v: &mut [f32]) {
    struct Op<'a>(&'a mut [f32]);
    impl pulp::WithSimd for Op<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) {
            let v = self.0;
            let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            v.iter_mut().for_each(|x| *x = exp_f32(*x - max));
            let mut lanes = [0f64; 8];
            let chunks = v.chunks_exact(8);
            let rest: f64 = chunks.remainder().iter().map(|&x| f64::from(x)).sum();
            for c in chunks {
                for (l, x) in lanes.iter_mut().zip(c) {
                    *l += f64::from(*x);
                }
            }
            let sum = (lanes.iter().sum::<f64>() + rest) as f32;
            v.iter_mut().for_each(|x| *x /= sum);
        }
    }
    pulp::Arch::new().dispatch(Op(v));
}

/// `log Σ exp(v)` in f64.
pub fn log_sum_exp(v: &[f32]) -> f64 {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    max + v.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The polynomial exponential against f64's over its whole range, in relative error.
    #[test]
    fn exp_f32_is_within_two_ulp() {
        let mut worst = 0f64;
        for i in 0..=2_000_000 {
            let x = -87.3 + 175.3 * i as f32 / 2_000_000.0;
            let exact = f64::from(x).exp();
            let got = f64::from(exp_f32(x));
            worst = worst.max(((got - exact) / exact).abs());
        }
        assert!(worst < 2.0 * f64::from(f32::EPSILON), "worst relative error {worst:e}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    /// Softmax against an f64 softmax, with −∞ entries (masked) and lengths off the 8 lanes.
    #[test]
    fn softmax_matches_f64() {
        for len in [1usize, 7, 8, 9, 100, 513] {
            let mut v: Vec<f32> = (0..len).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.3).collect();
            if len > 2 {
                v[1] = f32::NEG_INFINITY;
            }
            let max = v.iter().copied().fold(f64::NEG_INFINITY, |m, x| m.max(f64::from(x)));
            let sum: f64 = v.iter().map(|&x| (f64::from(x) - max).exp()).sum();
            let want: Vec<f64> = v.iter().map(|&x| (f64::from(x) - max).exp() / sum).collect();
            softmax(&mut v);
            for (g, w) in v.iter().zip(&want) {
                assert!((f64::from(*g) - w).abs() <= 1e-6 * w.max(1e-30) + 1e-12, "{len}: {g} vs {w}");
            }
        }
    }
}
