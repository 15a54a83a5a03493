//! GPTQ (Frantar et al. 2023, "GPTQ: Accurate Post-Training Quantization for Generative
//! Pre-trained Transformers"): a layer's input channels are rounded one at a time, and each
//! rounding error is spread over the channels not yet rounded so that the layer's output on the
//! calibration inputs changes least. With `H = E[x xᵀ]` of the layer's inputs, damped by
//! λ = 1% of its mean diagonal, and `U` the upper Cholesky factor of `H⁻¹`, channel `i` of a
//! row is rounded to `q`, and `w_j −= (w_i − q) / U_ii · U_ij` for every later `j` — the
//! paper's Algorithm 1 without its lazy batches (each row is independent given `U`, so rows run
//! in parallel instead).
//!
//! The base quantizer's scales are fixed when the algorithm enters a group (an `int*` group,
//! a ggml block), from the group's values as they are then, errors of earlier channels included
//! (AutoGPTQ reads them from a copy that lacks the updates inside its current batch; we take
//! the updated values). Within the group each value is rounded to the nearest point of that
//! fixed grid, so the stored parts are exactly the base quantizer's, and any reader of the base
//! format reads them. Runs on the CPU: each channel waits for the errors of those before it.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use faer::{Mat, Side};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::encode::{DecodedSink, DiscardBytes, Encoded, Job, Part, PartSink, write_int_codes};
use super::scheme::Scheme;
use crate::cancel::Cancel;
use crate::checkpoint::imatrix::Hessian;
use crate::codec::int::{Arith, GroupParams, IntSpec};
use crate::codec::{DType, ggml};
use crate::compute::cpu::CpuBackend;
use crate::compute::source::shape_error;
use crate::compute::{Backend, ComputeError};

/// GPTQ's damping, relative to the mean of the Hessian's diagonal (the paper's 1%).
pub const DAMP: f64 = 0.01;

/// Rows rounded together (they share each row of `U` while it is in cache).
const ROWS_PER_TASK: usize = 8;

/// The output error `Σ_r (w_r − ŵ_r)ᵀ H (w_r − ŵ_r)` — the expected squared change of the
/// layer's output per token, summed over output channels — of GPTQ, plain rounding and AWQ.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputErrors {
    /// With GPTQ.
    pub gptq: f64,
    /// With the base quantizer's plain rounding.
    pub plain: f64,
    /// With AWQ's scales on the same base (α searched on the Hessian's diagonal).
    pub awq: Option<f64>,
    /// `Σ_r w_rᵀ H w_r`: the output's own second moment, for relative errors.
    pub signal: f64,
    /// Calibration tokens the Hessian averages.
    pub tokens: u64,
}

/// `Σ_r d_rᵀ H d_r` for the rows of `d = w − y` (`rows × n`).
pub fn output_error(w: &[f32], y: &[f32], h: &Hessian) -> f64 {
    let n = h.n;
    let rows = w.len() / n.max(1);
    if rows == 0 {
        return 0.0;
    }
    let d = Mat::<f64>::from_fn(rows, n, |r, j| f64::from(w[r * n + j]) - f64::from(y[r * n + j]));
    let hm = Mat::<f64>::from_fn(n, n, |i, j| f64::from(h.values[i * n + j]));
    let dh = &d * &hm;
    (0..n).into_par_iter().map(|j| (0..rows).map(|r| d[(r, j)] * dh[(r, j)]).sum::<f64>()).sum()
}

/// `U` and the dead channels of [`inverse_cholesky`].
type Factor = (Vec<f64>, Vec<bool>);

/// Factors kept by [`factor_of`]: enough for the tensors sharing one input that run together.
const FACTORS_KEPT: usize = 4;

/// The latest factors, by a fingerprint of their Hessian (its size, tokens and every value).
static FACTORS: Mutex<Vec<(u64, Arc<Factor>)>> = Mutex::new(Vec::new());

/// [`inverse_cholesky`] of `h`, computed once for the tensors that share it: q, k and v (gate
/// and up) read one Hessian, and its O(n³) factorisation is GPTQ's costliest step on small rows.
fn factor_of(h: &Hessian) -> Result<Arc<Factor>, String> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (h.n, h.tokens).hash(&mut hasher);
    h.values.iter().for_each(|v| v.to_bits().hash(&mut hasher));
    let key = hasher.finish();
    let kept =
        FACTORS.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|(k, _)| *k == key).map(|(_, f)| f.clone());
    if let Some(f) = kept {
        return Ok(f);
    }
    let f = Arc::new(inverse_cholesky(h)?);
    let mut all = FACTORS.lock().unwrap_or_else(|e| e.into_inner());
    all.push((key, f.clone()));
    if all.len() > FACTORS_KEPT {
        all.remove(0);
    }
    Ok(f)
}

/// `U` (row-major, upper triangular) with `Uᵀ U = (H + λ I)⁻¹`, and which channels are dead
/// (never active in the calibration text: a zero diagonal, given 1 as GPTQ does).
fn inverse_cholesky(h: &Hessian) -> Result<Factor, String> {
    let n = h.n;
    let dead: Vec<bool> = (0..n).map(|i| h.values[i * n + i] <= 0.0).collect();
    let live_mean = (0..n).filter(|&i| !dead[i]).map(|i| f64::from(h.values[i * n + i])).sum::<f64>()
        / (dead.iter().filter(|d| !**d).count().max(1)) as f64;
    let damp = DAMP * if live_mean > 0.0 { live_mean } else { 1.0 };
    let m = Mat::<f64>::from_fn(n, n, |i, j| {
        if dead[i] || dead[j] {
            if i == j { 1.0 } else { 0.0 }
        } else {
            f64::from(h.values[i * n + j]) + if i == j { damp } else { 0.0 }
        }
    });
    let fail = |what: &str| format!("the damped Hessian is not positive definite ({what})");
    let llt = m.llt(Side::Lower).map_err(|_| fail("Cholesky"))?;
    let inv = faer::linalg::solvers::DenseSolveCore::inverse(&llt);
    let l = inv.llt(Side::Lower).map_err(|_| fail("Cholesky of the inverse"))?;
    let l = l.L();
    // U = Lᵀ: row i of U is column i of L.
    let mut u = vec![0f64; n * n];
    for i in 0..n {
        for j in i..n {
            u[i * n + j] = l[(j, i)];
        }
    }
    Ok((u, dead))
}

/// The base quantizer's grid, fixed group by group.
enum Grid<'a> {
    Int(IntSpec),
    Ggml { dtype: DType, search: Option<&'a [f32]> },
}

impl Grid<'_> {
    fn group(&self) -> usize {
        match self {
            Grid::Int(s) => s.group,
            Grid::Ggml { dtype, .. } => dtype.block_elems(),
        }
    }
}

/// One row's result: decoded values, and codes with group parameters or block bytes.
struct RowOut {
    y: Vec<f32>,
    codes: Vec<i8>,
    params: Vec<GroupParams>,
    bytes: Vec<u8>,
}

/// GPTQ on one row (`x`, updated in place), with `u` of `n × n`.
fn gptq_row(x: &mut [f64], u: &[f64], dead: &[bool], grid: &Grid<'_>) -> Result<RowOut, ComputeError> {
    let n = x.len();
    let g = grid.group();
    let mut out = RowOut { y: vec![0f32; n], codes: Vec::new(), params: Vec::new(), bytes: Vec::new() };
    x.iter_mut().zip(dead).filter(|(_, d)| **d).for_each(|(v, _)| *v = 0.0);
    let mut group = vec![0f32; g];
    for g0 in (0..n).step_by(g) {
        group.iter_mut().zip(&x[g0..g0 + g]).for_each(|(o, v)| *o = *v as f32);
        match grid {
            Grid::Int(spec) => {
                let group_vals: Vec<f32> = group.iter().map(|&v| spec.arith.round(v)).collect();
                let p = spec.group_params(&group_vals);
                out.params.push(p);
                for i in g0..g0 + g {
                    let c = spec.code(spec.arith.round(x[i] as f32), p);
                    out.codes.push(c);
                    let v = spec.decode(c, p);
                    out.y[i] = v;
                    spread(x, u, i, f64::from(v));
                }
            }
            Grid::Ggml { dtype, search } => {
                let mut block = Vec::with_capacity(dtype.block_bytes());
                ggml::encode_row(*dtype, &group, search.map(|s| &s[g0..g0 + g]), &mut block)
                    .map_err(|e| ComputeError::Sink(e.to_string()))?;
                let grid = ggml::grid::block_grid(*dtype, &block).map_err(|e| ComputeError::Sink(e.to_string()))?;
                for i in g0..g0 + g {
                    let (q, v) = grid.round(i - g0, x[i] as f32);
                    ggml::grid::set_code(*dtype, &mut block, i - g0, q);
                    out.y[i] = v;
                    spread(x, u, i, f64::from(v));
                }
                out.bytes.extend_from_slice(&block);
            }
        }
    }
    Ok(out)
}

/// Spreads the rounding error of channel `i` (rounded to `q`) over the channels after it.
#[inline]
fn spread(x: &mut [f64], u: &[f64], i: usize, q: f64) {
    let n = x.len();
    let row = &u[i * n..(i + 1) * n];
    let e = (x[i] - q) / row[i];
    x[i] = q;
    x[i + 1..].iter_mut().zip(&row[i + 1..]).for_each(|(v, h)| *v -= e * h);
}

/// GPTQ of the matrix `w` (`rows × cols`) with the base quantizer `base`: the stored parts go to
/// `sink`, the decoded values to `decoded`; returns the decoded values, bytes stored, and — when
/// the job asks to compare — the output errors of GPTQ, plain rounding and AWQ.
#[allow(clippy::too_many_arguments)]
pub(super) fn encode(
    backend: &dyn Backend,
    job: &Job<'_>,
    base: &Scheme,
    w: &[f32],
    cols: usize,
    sink: &mut dyn PartSink,
    decoded: Option<DecodedSink<'_>>,
    cancel: &Cancel,
) -> Result<(Vec<f32>, Encoded, Option<Outcome>), ComputeError> {
    let h = job.hessian.ok_or_else(|| {
        shape_error(
            job.src,
            "+gptq needs the Hessian of the layer's inputs: give calibration text (--calibration FILE, \
             or Calibrate in the window)",
        )
    })?;
    if h.n != cols || h.values.len() != cols * cols {
        return Err(shape_error(job.src, format!("the Hessian is {0} × {0} for {cols} input channels", h.n)));
    }
    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
        return Err(shape_error(job.src, format!("GPTQ needs finite weights; value {i} is {}", w[i])));
    }
    let factor = factor_of(h).map_err(|m| shape_error(job.src, m))?;
    let (u, dead) = (&factor.0, &factor.1);
    let grid = match base {
        Scheme::Int { .. } => Grid::Int(
            base.int_spec(cols as u64, Arith::of(job.dtype))
                .ok_or_else(|| shape_error(job.src, "not an integer scheme"))?,
        ),
        Scheme::Ggml(d) => Grid::Ggml { dtype: *d, search: job.search },
        other => return Err(shape_error(job.src, format!("+gptq does not apply to {other}"))),
    };
    base.check(job.src.shape()).map_err(|m| shape_error(job.src, m))?;
    let outs: Vec<RowOut> = w
        .par_chunks(cols * ROWS_PER_TASK)
        .map(|chunk| -> Result<Vec<RowOut>, ComputeError> {
            if cancel.is_cancelled() {
                return Err(ComputeError::Cancelled);
            }
            chunk
                .chunks(cols)
                .map(|row| {
                    let mut x: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
                    gptq_row(&mut x, u, dead, &grid)
                })
                .collect()
        })
        .collect::<Result<Vec<Vec<RowOut>>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    let y: Vec<f32> = outs.iter().flat_map(|o| o.y.iter().copied()).collect();
    let bytes = match &grid {
        Grid::Int(spec) => {
            let params: Vec<GroupParams> = outs.iter().flat_map(|o| o.params.iter().copied()).collect();
            let codes: Vec<i8> = outs.iter().flat_map(|o| o.codes.iter().copied()).collect();
            write_int_codes(*spec, job.src.shape(), &params, &codes, sink, decoded)?
        }
        Grid::Ggml { dtype, .. } => {
            let all: Vec<u8> = outs.iter().flat_map(|o| o.bytes.iter().copied()).collect();
            let part = Part {
                role: "codes".into(),
                dtype: dtype.name().to_owned(),
                shape: job.src.shape().to_vec(),
                bytes: all.len() as u64,
            };
            sink.begin(std::slice::from_ref(&part))?;
            sink.put(0, &all)?;
            if let Some(d) = decoded {
                d(0, &y)?;
            }
            all.len() as u64
        }
    };
    let error = super::methods::error_of(w, &y, cols, job.importance);
    let enc = Encoded { error, bytes, rank: None, on: CpuBackend.provenance(), method: None };
    if !job.compare {
        return Ok((y, enc, None));
    }
    let (plain_y, _) = super::methods::encode_values(backend, job, w, base, job.search, &mut DiscardBytes, cancel)?;
    let plain = super::methods::error_of(w, &plain_y, cols, job.importance);
    // AWQ on the same base, its α searched on the Hessian's diagonal (the imatrix) unless an
    // importance was given.
    let diag: Vec<f32> = (0..cols).map(|i| h.values[i * cols + i]).collect();
    let inner = Job { importance: Some(job.importance.unwrap_or(&diag)), ..*job };
    let mut awq_y = vec![0f32; w.len()];
    let mut put = |first: u64, v: &[f32]| -> Result<(), ComputeError> {
        awq_y[first as usize..first as usize + v.len()].copy_from_slice(v);
        Ok(())
    };
    super::methods::awq(backend, &inner, base, None, w, cols, &mut DiscardBytes, Some(&mut put), cancel)?;
    let errors = OutputErrors {
        gptq: output_error(w, &y, h),
        plain: output_error(w, &plain_y, h),
        awq: Some(output_error(w, &awq_y, h)),
        signal: output_error(w, &vec![0f32; w.len()], h),
        tokens: h.tokens,
    };
    Ok((y, enc, Some(Outcome { errors, plain_sse: plain.sq_err, plain_weighted_sse: plain.weighted_sq_err })))
}

/// What GPTQ reports beside its encoding.
#[derive(Debug)]
pub(super) struct Outcome {
    /// The output errors of GPTQ, plain rounding and AWQ.
    pub errors: OutputErrors,
    /// Plain rounding's ‖W − Ŵ‖².
    pub plain_sse: f64,
    /// Plain rounding's importance-weighted error.
    pub plain_weighted_sse: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::SliceSource;
    use crate::quant::encode::CollectBytes;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    /// A Hessian of correlated inputs: x = A z with z white, over `t` samples.
    fn correlated(n: usize, t: usize, seed: u64) -> Hessian {
        let mut s = seed;
        let a: Vec<f32> = (0..n * n).map(|k| lcg(&mut s) + if k % (n + 1) == 0 { 1.0 } else { 0.0 }).collect();
        let mut h = vec![0f64; n * n];
        for _ in 0..t {
            let z: Vec<f32> = (0..n).map(|_| lcg(&mut s)).collect();
            let x: Vec<f64> = (0..n).map(|i| (0..n).map(|j| f64::from(a[i * n + j] * z[j])).sum()).collect();
            for i in 0..n {
                for j in 0..n {
                    h[i * n + j] += x[i] * x[j] / t as f64;
                }
            }
        }
        Hessian { n, values: h.iter().map(|&v| v as f32).collect(), tokens: t as u64 }
    }

    /// The paper's Algorithm 1 with lazy batches of 128 and groups, written as AutoGPTQ's
    /// `fasterquant` (params from the updated weights): a second formulation to check ours by.
    fn reference_int(w: &[f32], rows: usize, cols: usize, h: &Hessian, spec: &IntSpec) -> Vec<f32> {
        let (u, _) = inverse_cholesky(h).unwrap();
        let mut wm: Vec<f64> = w.iter().map(|&v| f64::from(v)).collect();
        let mut q = vec![0f32; rows * cols];
        let block = 128;
        let mut params = vec![GroupParams::default(); rows];
        for i1 in (0..cols).step_by(block) {
            let i2 = (i1 + block).min(cols);
            let mut err = vec![0f64; rows * (i2 - i1)];
            for i in i1..i2 {
                if i % spec.group == 0 {
                    for r in 0..rows {
                        let g: Vec<f32> = (i..i + spec.group).map(|j| wm[r * cols + j] as f32).collect();
                        params[r] = spec.group_params(&g);
                    }
                }
                let d = u[i * cols + i];
                for r in 0..rows {
                    let c = spec.code(wm[r * cols + i] as f32, params[r]);
                    let v = spec.decode(c, params[r]);
                    q[r * cols + i] = v;
                    let e = (wm[r * cols + i] - f64::from(v)) / d;
                    for j in i..i2 {
                        wm[r * cols + j] -= e * u[i * cols + j];
                    }
                    err[r * (i2 - i1) + (i - i1)] = e;
                }
            }
            // The lazy batch update: W[:, i2:] -= Err · U[i1:i2, i2:].
            for r in 0..rows {
                for j in i2..cols {
                    let s: f64 = (i1..i2).map(|k| err[r * (i2 - i1) + (k - i1)] * u[k * cols + j]).sum();
                    wm[r * cols + j] -= s;
                }
            }
        }
        q
    }

    #[test]
    fn gptq_equals_the_lazy_batch_algorithm_and_beats_rounding_on_the_output() {
        let (rows, cols) = (12, 256);
        let mut s = 7u64;
        let w: Vec<f32> = (0..rows * cols).map(|_| lcg(&mut s) * 0.1).collect();
        let h = correlated(cols, 600, 3);
        let src = SliceSource::new("w", &[rows as u64, cols as u64], &w).unwrap();
        for scheme in ["int4_g64", "int3_g128_asym", "int4_ch", "q4_k", "q4_0", "q6_k", "q5_1"] {
            let base: Scheme = scheme.parse().unwrap();
            let job = Job {
                src: &src,
                dtype: DType::F32,
                stored_bytes: 0,
                importance: None,
                search: None,
                hessian: Some(&h),
                compare: true,
            };
            let mut parts = CollectBytes::default();
            let (y, enc, out) = encode(&CpuBackend, &job, &base, &w, cols, &mut parts, None, &Cancel::new()).unwrap();
            let out = out.unwrap().errors;
            // Without the comparison: the same values, no report.
            let quick = Job { compare: false, ..job };
            let (y2, _, none) =
                encode(&CpuBackend, &quick, &base, &w, cols, &mut DiscardBytes, None, &Cancel::new()).unwrap();
            assert_eq!(y2, y, "{scheme}");
            assert!(none.is_none());
            assert!(out.gptq < 0.8 * out.plain, "{scheme}: GPTQ {} vs rounding {}", out.gptq, out.plain);
            assert!(out.awq.is_some_and(|a| out.gptq < a), "{scheme}: GPTQ {} vs AWQ {:?}", out.gptq, out.awq);
            // The stored parts decode to the values GPTQ chose.
            let stored: u64 = parts.bytes.iter().map(|b| b.len() as u64).sum();
            assert_eq!(stored, enc.bytes, "{scheme}");
            assert_eq!(enc.bytes, base.bytes(&[rows as u64, cols as u64], DType::F32, 0, None), "{scheme}");
            if let Scheme::Ggml(d) = base {
                let mut back = vec![0f32; w.len()];
                crate::codec::decode(d, &parts.bytes[0], &mut back).unwrap();
                assert_eq!(back, y, "{scheme}");
            }
            if let Some(spec) = base.int_spec(cols as u64, Arith::F32) {
                let r = reference_int(&w, rows, cols, &h, &spec);
                let max = r.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                let differ = r.iter().zip(&y).filter(|(a, b)| a != b).count();
                // Sums in another order can flip a value sitting on a rounding boundary.
                assert!(differ * 1000 <= w.len(), "{scheme}: {differ} of {} values differ (max {max})", w.len());
            }
        }
    }

    #[test]
    fn dead_channels_are_zeroed_and_a_missing_hessian_is_a_clear_error() {
        let (rows, cols) = (4, 64);
        let mut s = 11u64;
        let w: Vec<f32> = (0..rows * cols).map(|_| lcg(&mut s)).collect();
        let mut h = correlated(cols, 200, 5);
        for j in 0..cols {
            h.values[3 * cols + j] = 0.0;
            h.values[j * cols + 3] = 0.0;
        }
        let src = SliceSource::new("blk.0.w", &[rows as u64, cols as u64], &w).unwrap();
        let base: Scheme = "int4_g32".parse().unwrap();
        let mut job = Job { hessian: Some(&h), ..Job::of_f32(&src) };
        let (y, _, _) = encode(&CpuBackend, &job, &base, &w, cols, &mut DiscardBytes, None, &Cancel::new()).unwrap();
        assert!((0..rows).all(|r| y[r * cols + 3] == 0.0));
        job.hessian = None;
        let e = encode(&CpuBackend, &job, &base, &w, cols, &mut DiscardBytes, None, &Cancel::new()).unwrap_err();
        assert!(e.to_string().contains("blk.0.w") && e.to_string().contains("calibration"), "{e}");
    }
}
