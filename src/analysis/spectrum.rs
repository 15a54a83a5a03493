//! Singular values of weight matrices and the empirical-spectral-density metrics that
//! WeightWatcher reports, computed as WeightWatcher 0.7 computes them for the same matrix:
//! eigenvalues λ = s² of WᵀW; `alpha`, `xmin`, `D` from [`super::powerlaw::fit`] over the
//! eigenvalues above 1e-5; `alpha_weighted = alpha · log10 λmax`; `log_norm = log10 Σλ`;
//! `log_spectral_norm = log10 λmax`; `stable_rank = Σλ / λmax`; `num_pl_spikes` = eigenvalues ≥
//! xmin; `rank` = singular values above `smax · N · ε` (N the larger dimension), as numpy's
//! `matrix_rank`.
//!
//! Two methods: `gram` (eigenvalues of the smaller Gram matrix, accumulated by the backend in
//! f64; any size, which is how embeddings and LM heads of 128k rows are handled, and the faster
//! one: the default) and `svd` (faer's SVD of the f64 matrix; exact down to the smallest
//! singular values, for when those matter).
//! With `gram`, eigenvalues carry an absolute error of about ε·λmax, so `rank` counts singular
//! values above `smax · √(N·ε)` there, the level that error allows.

use serde::{Deserialize, Serialize};

use super::powerlaw::{self, PowerLawFit};
use super::{AnalysisError, Cancel};
use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::compute::{Backend, ComputeError, Provenance, TensorRef, ValueSource};

/// Eigenvalues at or below this are left out of the power-law fit (WeightWatcher's EVALS_THRESH).
pub const EVALS_THRESHOLD: f64 = 1e-5;

/// How singular values are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpectrumMethod {
    /// `gram` (the default).
    Auto,
    /// Direct SVD of the f64 matrix.
    Svd,
    /// Eigenvalues of the smaller Gram matrix.
    Gram,
}

/// The spectrum of one matrix, as `weightbench spectrum --json` prints it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpectrumReport {
    /// Tensor name.
    pub name: String,
    /// Shape (matrices of higher rank are seen as `[dim0, rest]`).
    pub shape: Vec<u64>,
    /// Method used.
    pub method: SpectrumMethod,
    /// Singular values, descending.
    pub singular_values: Vec<f64>,
    /// Power-law exponent of the ESD tail (null when there are fewer than 8 eigenvalues).
    pub alpha: Option<f64>,
    /// Start of the fitted tail.
    pub xmin: Option<f64>,
    /// Kolmogorov–Smirnov distance of the fit.
    #[serde(rename = "D")]
    pub d: Option<f64>,
    /// Standard error of alpha.
    pub sigma: Option<f64>,
    /// alpha · log10(λmax).
    pub alpha_weighted: Option<f64>,
    /// log10(Σ λ) = log10(‖W‖_F²).
    pub log_norm: f64,
    /// log10(λmax) = log10(‖W‖₂²).
    pub log_spectral_norm: f64,
    /// Σ λ / λmax.
    pub stable_rank: f64,
    /// Eigenvalues ≥ xmin.
    pub num_pl_spikes: Option<usize>,
    /// Numerical rank.
    pub rank: usize,
    /// Which backend ran the kernel under it (the Gram matrix, or the decoding of the matrix
    /// for the direct SVD); the eigen- or singular-value decomposition itself runs on the CPU
    /// (faer).
    #[serde(flatten)]
    pub computed: Provenance,
}

/// Singular values of the matrix `src` (descending), the method used, and who ran the kernel.
pub fn singular_values_of(
    backend: &dyn Backend,
    src: &dyn ValueSource,
    method: SpectrumMethod,
    cancel: &Cancel,
) -> Result<(Vec<f64>, SpectrumMethod, Provenance), AnalysisError> {
    let (rows, cols) = crate::compute::source::require_matrix(src, "a spectrum")?;
    let method = match method {
        SpectrumMethod::Auto => SpectrumMethod::Gram,
        m => m,
    };
    let numerical =
        |message: String| AnalysisError::Compute(ComputeError::Numerical { tensor: src.name().to_owned(), message });
    let (mut s, on) = match method {
        SpectrumMethod::Svd => {
            let ran = backend.values(src, cancel)?;
            let m = faer::Mat::<f64>::from_fn(rows, cols, |i, j| f64::from(ran.value[i * cols + j]));
            drop(ran.value);
            let s = m.singular_values().map_err(|e| numerical(format!("SVD did not converge: {e:?}")))?;
            (s, ran.on)
        }
        _ => {
            let ran = backend.gram(src, cancel)?;
            let g = ran.value;
            let m = faer::Mat::<f64>::from_fn(g.n, g.n, |i, j| g.values[i * g.n + j]);
            let eig = m
                .self_adjoint_eigenvalues(faer::Side::Lower)
                .map_err(|e| numerical(format!("eigenvalues did not converge: {e:?}")))?;
            (eig.into_iter().map(|l| l.max(0.0).sqrt()).collect(), ran.on)
        }
    };
    s.sort_by(|a, b| b.total_cmp(a));
    Ok((s, method, on))
}

/// Singular values of `tensor` (descending) and the method used.
pub fn singular_values(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    tensor: &TensorInfo,
    method: SpectrumMethod,
    cancel: &Cancel,
) -> Result<(Vec<f64>, SpectrumMethod), AnalysisError> {
    let (s, method, _) = singular_values_of(backend, &TensorRef::new(ckpt, tensor), method, cancel)?;
    Ok((s, method))
}

/// The spectrum and ESD metrics of `tensor`.
pub fn spectrum_report(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    tensor: &TensorInfo,
    method: SpectrumMethod,
    cancel: &Cancel,
) -> Result<SpectrumReport, AnalysisError> {
    let (s, method, computed) = singular_values_of(backend, &TensorRef::new(ckpt, tensor), method, cancel)?;
    let (rows, cols) = TensorRef::new(ckpt, tensor).matrix_shape();
    let evals: Vec<f64> = s.iter().map(|v| v * v).collect();
    let lambda_max = evals.first().copied().unwrap_or(0.0);
    let norm: f64 = evals.iter().sum();
    let fit: Option<PowerLawFit> =
        powerlaw::fit(&evals.iter().copied().filter(|&l| l > EVALS_THRESHOLD).collect::<Vec<_>>());
    let big_n = rows.max(cols) as f64;
    let smax = s.first().copied().unwrap_or(0.0);
    let tol = match method {
        SpectrumMethod::Gram => smax * (big_n * f64::EPSILON).sqrt(),
        _ => smax * big_n * f64::EPSILON,
    };
    let log_spectral_norm = lambda_max.log10();
    Ok(SpectrumReport {
        name: tensor.name.clone(),
        shape: tensor.shape.clone(),
        method,
        alpha: fit.map(|f| f.alpha),
        xmin: fit.map(|f| f.xmin),
        d: fit.map(|f| f.d),
        sigma: fit.map(|f| f.sigma),
        alpha_weighted: fit.map(|f| f.alpha * log_spectral_norm),
        log_norm: norm.log10(),
        log_spectral_norm,
        stable_rank: if lambda_max > 0.0 { norm / lambda_max } else { f64::NAN },
        num_pl_spikes: fit.map(|f| evals.iter().filter(|&&l| l >= f.xmin).count()),
        rank: s.iter().filter(|&&v| v > tol).count(),
        singular_values: s,
        computed,
    })
}

/// Spectra of several tensors, in the order of `tensors` (small ones several at a time, one
/// thread each, large ones one after another with every thread: [`super::each_tensor`]);
/// `progress(i)` is called as tensor `i` finishes.
pub fn spectra(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    tensors: &[&TensorInfo],
    method: SpectrumMethod,
    cancel: &Cancel,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<SpectrumReport>, AnalysisError> {
    super::each_tensor(tensors, |t| spectrum_report(backend, ckpt, t, method, cancel), progress)
}
