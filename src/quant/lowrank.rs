//! Low-rank schemes: W ≈ A·B with A = U_r·S_r (rows × r) and B = V_rᵀ (r × cols) from the thin
//! SVD (faer, f64, on the CPU), the rank fixed or chosen by the energy kept, the factors stored
//! in the tensor's type or quantized by another scheme (`lowrank_r64+int8_ch`).

use faer::Mat;

use super::encode::{CollectBytes, DecodedSink, Encoded, Job, Part, PartSink, encode_in_memory};
use super::methods::MethodReport;
use super::scheme::{RankCut, Scheme, rows_cols};
use crate::cancel::Cancel;
use crate::codec::DType;
use crate::codec::int::{Arith, GroupError};
use crate::compute::SliceSource;
use crate::compute::cpu::CpuBackend;
use crate::compute::source::shape_error;
use crate::compute::{Backend, ComputeError};

/// Encodes `job` as a rank cut of its SVD.
pub fn encode(
    backend: &dyn Backend,
    job: &Job<'_>,
    cut: RankCut,
    factors: Option<&Scheme>,
    sink: &mut dyn PartSink,
    decoded: Option<DecodedSink<'_>>,
    cancel: &Cancel,
) -> Result<Encoded, ComputeError> {
    let src = job.src;
    let (rows, cols) = rows_cols(src.shape()).ok_or_else(|| shape_error(src, "a low rank needs a matrix"))?;
    let (rows, cols) = (rows as usize, cols as usize);
    let ran = backend.values(src, cancel)?;
    let w = ran.value;
    let m = Mat::<f64>::from_fn(rows, cols, |i, j| f64::from(w[i * cols + j]));
    if cancel.is_cancelled() {
        return Err(ComputeError::Cancelled);
    }
    let svd = m.thin_svd().map_err(|e| ComputeError::Numerical {
        tensor: src.name().to_owned(),
        message: format!("SVD did not converge: {e:?}"),
    })?;
    drop(m);
    let s: Vec<f64> = svd.S().column_vector().iter().copied().collect();
    let r = Scheme::rank_of(cut, &s).max(1);
    if let RankCut::Welore(t) = cut {
        // WeLore keeps a matrix whole where its rank at the threshold saves nothing.
        let low = Scheme::LowRank { cut, factors: factors.map(|f| Box::new(f.clone())) };
        let low_bytes = low.bytes(src.shape(), job.dtype, job.stored_bytes, Some(r));
        let report = |kept: bool| MethodReport {
            method: "welore".into(),
            parameter: "rank".into(),
            value: r as f64,
            objective: "sse".into(),
            searched: Vec::new(),
            plain_sse: 0.0,
            plain_weighted_sse: job.importance.map(|_| 0.0),
            plain_bytes: job.stored_bytes,
            folds_into: None,
            shared_with: Vec::new(),
            output_error: None,
            preview_only: kept.then(|| {
                format!(
                    "σ/σ₁ ≥ {t} keeps rank {r}, whose factors ({low_bytes} bytes) would not be smaller than the \
                     matrix: kept whole"
                )
            }),
        };
        if low_bytes >= job.stored_bytes {
            drop(svd);
            let mut enc = super::encode::keep(job, sink, decoded, cancel)?;
            enc.method = Some(report(true));
            enc.on = ran.on.merge(&enc.on);
            return Ok(enc);
        }
        let mut enc = finish(backend, job, rows, cols, r, &s, svd.U(), svd.V(), &w, factors, sink, decoded, cancel)?;
        enc.on = enc.on.merge(&ran.on);
        enc.method = Some(report(false));
        return Ok(enc);
    }
    let mut enc = finish(backend, job, rows, cols, r, &s, svd.U(), svd.V(), &w, factors, sink, decoded, cancel)?;
    enc.on = enc.on.merge(&ran.on);
    Ok(enc)
}

/// Stores the rank-`r` factors of the SVD and measures Ŵ = Â·B̂ against `w`.
#[allow(clippy::too_many_arguments)]
fn finish(
    backend: &dyn Backend,
    job: &Job<'_>,
    rows: usize,
    cols: usize,
    r: usize,
    s: &[f64],
    u: faer::MatRef<'_, f64>,
    v: faer::MatRef<'_, f64>,
    w: &[f32],
    factors: Option<&Scheme>,
    sink: &mut dyn PartSink,
    decoded: Option<DecodedSink<'_>>,
    cancel: &Cancel,
) -> Result<Encoded, ComputeError> {
    let src = job.src;
    let a: Vec<f32> = (0..rows).flat_map(|i| (0..r).map(move |k| (u[(i, k)] * s[k]) as f32)).collect();
    let b: Vec<f32> = (0..r).flat_map(|k| (0..cols).map(move |j| v[(j, k)] as f32)).collect();
    let arith = Arith::of(job.dtype);
    let cpu = CpuBackend.provenance();
    let (a_hat, b_hat, parts, bytes, mut on) = match factors {
        None => {
            let round = |x: &f32| arith.round(*x);
            let (a_hat, b_hat): (Vec<f32>, Vec<f32>) = (a.iter().map(round).collect(), b.iter().map(round).collect());
            let mut ab = Vec::new();
            let mut bb = Vec::new();
            let store = arith.dtype();
            crate::codec::encode(store, &a_hat, &mut ab).map_err(|e| ComputeError::Sink(e.to_string()))?;
            crate::codec::encode(store, &b_hat, &mut bb).map_err(|e| ComputeError::Sink(e.to_string()))?;
            let parts = vec![
                Part {
                    role: "a".into(),
                    dtype: store.name().into(),
                    shape: vec![rows as u64, r as u64],
                    bytes: ab.len() as u64,
                },
                Part {
                    role: "b".into(),
                    dtype: store.name().into(),
                    shape: vec![r as u64, cols as u64],
                    bytes: bb.len() as u64,
                },
            ];
            let bytes = (ab.len() + bb.len()) as u64;
            (a_hat, b_hat, vec![(parts, vec![ab, bb])], bytes, cpu.clone())
        }
        Some(inner) => {
            let name = src.name();
            let store = if matches!(job.dtype, DType::F16 | DType::BF16) { job.dtype } else { DType::F32 };
            let (mut ca, mut cb) = (CollectBytes::default(), CollectBytes::default());
            let a_shape = [rows as u64, r as u64];
            let b_shape = [r as u64, cols as u64];
            inner.check(&a_shape).map_err(|e| shape_error(src, format!("factor A: {e}")))?;
            inner.check(&b_shape).map_err(|e| shape_error(src, format!("factor B: {e}")))?;
            let a_src = SliceSource::new(format!("{name}:A"), &a_shape, &a)?;
            let b_src = SliceSource::new(format!("{name}:B"), &b_shape, &b)?;
            let (a_hat, ea) = encode_in_memory(backend, &a_src, store, inner, &mut ca, cancel)?;
            let (b_hat, eb) = encode_in_memory(backend, &b_src, store, inner, &mut cb, cancel)?;
            let prefix = |c: CollectBytes, p: &str| {
                let parts = c.parts.into_iter().map(|mut part| {
                    part.role = format!("{p}.{}", part.role);
                    part
                });
                (parts.collect::<Vec<_>>(), c.bytes)
            };
            (a_hat, b_hat, vec![prefix(ca, "a"), prefix(cb, "b")], ea.bytes + eb.bytes, ea.on.merge(&eb.on))
        }
    };
    let all: Vec<Part> = parts.iter().flat_map(|(p, _)| p.iter().cloned()).collect();
    sink.begin(&all)?;
    let mut k = 0;
    for (_, blobs) in &parts {
        for blob in blobs {
            sink.put(k, blob)?;
            k += 1;
        }
    }
    sink.factors(&a_hat, &b_hat, r)?;
    // Ŵ = Â·B̂ in f32, a block of rows at a time.
    let am = faer::MatRef::from_row_major_slice(&a_hat, rows, r);
    let bm = faer::MatRef::from_row_major_slice(&b_hat, r, cols);
    let mut error = GroupError::default();
    let mut decoded = decoded;
    let block = (1usize << 20).div_ceil(cols).max(1);
    let mut start = 0;
    while start < rows {
        if cancel.is_cancelled() {
            return Err(ComputeError::Cancelled);
        }
        let n = block.min(rows - start);
        let prod = am.subrows(start, n) * bm;
        let y: Vec<f32> = (0..n).flat_map(|i| (0..cols).map(move |j| (i, j))).map(|(i, j)| prod[(i, j)]).collect();
        let x = &w[start * cols..(start + n) * cols];
        error.push_slice(x, &y, 0, cols, job.importance);
        if let Some(d) = decoded.as_deref_mut() {
            d((start * cols) as u64, &y)?;
        }
        start += n;
    }
    on = on.merge(&cpu);
    Ok(Encoded { error, bytes, rank: Some(r), on, method: None })
}
