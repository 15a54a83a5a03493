//! Two checkpoints compared tensor by tensor: which tensors pair up (across Hugging Face and GGUF
//! naming, llama.cpp's Q/K row permutation and Gemma's `1 + w` norms undone), and for each pair
//! the size of the difference (`sse`, `rel_error`, `max_abs_error`, cosine similarity) and its
//! spectrum (top singular values, stable rank, the rank holding 90% of the energy) — what a
//! fine-tune, a merge, a LoRA or a quantization changed.
//!
//! The sums run on the selected backend's `measure` kernel (f64 lanes, the same kernel that
//! measures a quantization's error); the spectrum on its `gram` kernel over the difference,
//! streamed from both files, with the eigenvalues from faer.

use std::collections::HashMap;
use std::ops::Range;

use serde::Serialize;

use super::{AnalysisError, Cancel};
use crate::checkpoint::hf_names::{Transform, hf_name, transform};
use crate::checkpoint::{Checkpoint, Format, TensorInfo};
use crate::compute::source::{FnSource, Toward, Transformed};
use crate::compute::{Backend, Provenance, ValueSource};

/// Matrices whose smaller side exceeds this get no spectrum (the Gram matrix would take
/// `n² · 8` bytes: 512 MiB at this size).
pub const MAX_SPECTRUM_SIDE: usize = 8192;

/// Singular values listed per tensor by default.
pub const DEFAULT_TOP: usize = 8;

/// One tensor of A and the tensor of B it is compared with, and how B's (or A's) values are
/// brought to the common layout (transformers' order, transformers' norm values).
#[derive(Clone, Debug)]
pub struct Pair<'a> {
    /// The tensor in A.
    pub a: &'a TensorInfo,
    /// Its counterpart in B.
    pub b: &'a TensorInfo,
    /// Applied to A's values.
    pub a_transform: Transform,
    /// Applied to B's values.
    pub b_transform: Transform,
}

/// A tensor found on both sides with different shapes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShapeMismatch {
    /// Name in A.
    pub name: String,
    /// Name in B.
    pub name_b: String,
    /// Shape in A.
    pub shape_a: Vec<u64>,
    /// Shape in B.
    pub shape_b: Vec<u64>,
}

/// How the tensors of A and B pair up.
#[derive(Clone, Debug, Default)]
pub struct Pairing<'a> {
    /// Pairs with equal shapes, in A's order.
    pub pairs: Vec<Pair<'a>>,
    /// Names in A with no counterpart in B.
    pub only_in_a: Vec<String>,
    /// Names in B with no counterpart in A.
    pub only_in_b: Vec<String>,
    /// Counterparts whose shapes differ.
    pub shape_mismatch: Vec<ShapeMismatch>,
}

/// A checkpoint's naming: a key per tensor in transformers' terms and the transform that brings
/// its values to transformers' form.
struct Naming {
    /// GGUF architecture for a GGUF file whose names map to transformers', when the other side
    /// is not GGUF.
    gguf_arch: Option<String>,
    heads: u64,
    kv_heads: u64,
}

impl Naming {
    fn of(ckpt: &Checkpoint, other: &Checkpoint) -> Naming {
        let config = ckpt.model_config();
        let heads = config.and_then(|c| c.num_heads).unwrap_or(1).max(1);
        let kv_heads = config.and_then(|c| c.num_kv_heads).unwrap_or(heads).max(1);
        let cross = ckpt.format() == Format::Gguf && other.format() != Format::Gguf;
        let gguf_arch = cross.then(|| config.map(|c| c.architecture.clone())).flatten();
        Naming { gguf_arch, heads, kv_heads }
    }

    /// The key and transform of tensor `name`.
    fn key(&self, name: &str) -> (String, Transform) {
        match &self.gguf_arch {
            Some(arch) => match hf_name(name, arch) {
                Some(hf) => (hf, transform(name, arch, self.heads, self.kv_heads)),
                None => (name.to_owned(), Transform::None),
            },
            None => (name.to_owned(), Transform::None),
        }
    }
}

/// Pairs the tensors of `a` and `b` (only A's tensors that `keep` accepts).
pub fn pair<'a>(a: &'a Checkpoint, b: &'a Checkpoint, keep: impl Fn(&TensorInfo) -> bool) -> Pairing<'a> {
    let (na, nb) = (Naming::of(a, b), Naming::of(b, a));
    let mut by_key: HashMap<String, (&TensorInfo, Transform)> = HashMap::new();
    for t in b.tensors() {
        let (key, tr) = nb.key(&t.name);
        by_key.insert(key, (t, tr));
    }
    let mut used = vec![false; b.tensors().len()];
    let mut out = Pairing::default();
    for t in a.tensors() {
        let (key, a_transform) = na.key(&t.name);
        // Whichever side is the GGUF file among a GGUF and a transformers one is keyed by
        // transformers names, so the keys meet.
        let Some(&(tb, b_transform)) = by_key.get(&key) else {
            if keep(t) {
                out.only_in_a.push(t.name.clone());
            }
            continue;
        };
        if let Some(i) = b.index_of(&tb.name) {
            used[i] = true;
        }
        if !keep(t) {
            continue;
        }
        if t.shape != tb.shape {
            out.shape_mismatch.push(ShapeMismatch {
                name: t.name.clone(),
                name_b: tb.name.clone(),
                shape_a: t.shape.clone(),
                shape_b: tb.shape.clone(),
            });
            continue;
        }
        out.pairs.push(Pair { a: t, b: tb, a_transform, b_transform });
    }
    out.only_in_b = b.tensors().iter().zip(&used).filter(|(_, u)| !**u).map(|(t, _)| t.name.clone()).collect();
    out
}

/// The spectrum of a difference W_A − W_B.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DiffSpectrum {
    /// The largest singular values, descending.
    pub top_singular_values: Vec<f64>,
    /// Σσ² / σ₁² (null when the difference is zero).
    pub stable_rank: Option<f64>,
    /// The fewest singular values holding 90% of Σσ² (0 when the difference is zero).
    pub rank_90: usize,
    /// min(rows, cols): the most the rank could be.
    pub full_rank: usize,
}

/// The difference of one pair.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorDiff {
    /// Name in A.
    pub name: String,
    /// Name in B.
    pub name_b: String,
    /// Shape (equal on both sides).
    pub shape: Vec<u64>,
    /// Stored type in A.
    pub dtype_a: String,
    /// Stored type in B.
    pub dtype_b: String,
    /// What was undone to compare them (`q/k row permutation of N heads`, `norm offset 1`).
    pub aligned: Vec<String>,
    /// Positions compared (both finite).
    pub values: u64,
    /// Positions where A or B is NaN or ±Inf (left out of every sum).
    pub non_finite: u64,
    /// Σ (a − b)².
    pub sse: f64,
    /// ‖A − B‖ / ‖A‖ (null when A is zero).
    pub rel_error: Option<f64>,
    /// max |a − b|.
    pub max_abs_error: f32,
    /// ⟨A, B⟩ / (‖A‖‖B‖) (null when either is zero).
    pub cosine: Option<f64>,
    /// ‖A‖_F.
    pub norm_a: f64,
    /// ‖B‖_F.
    pub norm_b: f64,
    /// The spectrum of A − B (matrices only; null for vectors, or when not asked for).
    pub spectrum: Option<DiffSpectrum>,
    /// Why a matrix has no spectrum, when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spectrum_skipped: Option<String>,
    /// Who computed it.
    #[serde(flatten)]
    pub computed: Provenance,
}

fn describe(t: Transform) -> Option<String> {
    match t {
        Transform::None => None,
        Transform::Rows { heads } => Some(format!("llama.cpp's q/k row permutation of {heads} heads undone")),
        Transform::Offset(d) => Some(format!("norm stored as w + {d} brought back to w")),
    }
}

/// Compares one pair: the sums on `backend`'s measure kernel, and with `top > 0` the spectrum of
/// the difference from its gram kernel.
pub fn diff_pair(
    backend: &dyn Backend,
    a: &Checkpoint,
    b: &Checkpoint,
    pair: &Pair<'_>,
    top: usize,
    cancel: &Cancel,
) -> Result<TensorDiff, AnalysisError> {
    let sa = Transformed::new(a, pair.a, pair.a_transform, Toward::Transformers)?;
    let sb = Transformed::new(b, pair.b, pair.b_transform, Toward::Transformers)?;
    let ab = backend.measure(&sa, &sb, None, cancel)?;
    let ba = backend.measure(&sb, &sa, None, cancel)?;
    let mut on = ab.on.merge(&ba.on);
    let (e, eb) = (ab.value, ba.value);
    let (na2, nb2) = (e.signal, eb.signal);
    let rel_error = (na2 > 0.0).then(|| (e.sq_err / na2).sqrt());
    let cosine =
        (na2 > 0.0 && nb2 > 0.0).then(|| ((na2 + nb2 - e.sq_err) / (2.0 * (na2 * nb2).sqrt())).clamp(-1.0, 1.0));
    let mut spectrum = None;
    let mut spectrum_skipped = None;
    let (rows, cols) = sa.matrix_shape();
    if top > 0 && sa.is_matrix() && pair.a.shape.len() >= 2 {
        let side = rows.min(cols);
        if side > MAX_SPECTRUM_SIDE {
            spectrum_skipped = Some(format!("its smaller side ({side}) exceeds {MAX_SPECTRUM_SIDE}"));
        } else if e.non_finite > 0 {
            spectrum_skipped = Some(format!("{} positions are NaN or ±Inf", e.non_finite));
        } else {
            let difference =
                FnSource::new(pair.a.name.clone(), &pair.a.shape, sa.block_elems().max(sb.block_elems()), {
                    let (sa, sb) = (&sa, &sb);
                    move |range: Range<u64>, out: &mut Vec<f32>| {
                        let mut other = Vec::new();
                        sa.read(range.clone(), out)?;
                        sb.read(range, &mut other)?;
                        out.iter_mut().zip(&other).for_each(|(x, y)| *x -= y);
                        Ok(())
                    }
                });
            let (s, _, gram_on) = super::spectrum::singular_values_of(
                backend,
                &difference,
                super::spectrum::SpectrumMethod::Gram,
                cancel,
            )?;
            on = on.merge(&gram_on);
            spectrum = Some(spectrum_summary(&s, top));
        }
    }
    let aligned =
        [describe(pair.a_transform).map(|d| format!("A: {d}")), describe(pair.b_transform).map(|d| format!("B: {d}"))]
            .into_iter()
            .flatten()
            .collect();
    Ok(TensorDiff {
        name: pair.a.name.clone(),
        name_b: pair.b.name.clone(),
        shape: pair.a.shape.clone(),
        dtype_a: pair.a.dtype.to_string(),
        dtype_b: pair.b.dtype.to_string(),
        aligned,
        values: e.values,
        non_finite: e.non_finite,
        sse: e.sq_err,
        rel_error,
        max_abs_error: e.max_abs_err,
        cosine,
        norm_a: na2.sqrt(),
        norm_b: nb2.sqrt(),
        spectrum,
        spectrum_skipped,
        computed: on,
    })
}

/// The summary of singular values `s` (descending): the `top` largest, the stable rank and the
/// rank holding 90% of the energy.
pub fn spectrum_summary(s: &[f64], top: usize) -> DiffSpectrum {
    let energy: f64 = s.iter().map(|x| x * x).sum();
    let first = s.first().copied().unwrap_or(0.0);
    let mut rank_90 = 0;
    if energy > 0.0 {
        let mut acc = 0.0;
        for (k, x) in s.iter().enumerate() {
            acc += x * x;
            if acc >= 0.9 * energy * (1.0 - 1e-12) {
                rank_90 = k + 1;
                break;
            }
        }
    }
    DiffSpectrum {
        top_singular_values: s.iter().take(top).copied().collect(),
        stable_rank: (first > 0.0).then(|| energy / (first * first)),
        rank_90,
        full_rank: s.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spectrum_summary_of_known_values() {
        let s = [3.0, 2.0, 1.0, 0.0];
        let d = spectrum_summary(&s, 2);
        assert_eq!(d.top_singular_values, vec![3.0, 2.0]);
        assert!((d.stable_rank.unwrap() - 14.0 / 9.0).abs() < 1e-12);
        // 9 + 4 = 13 of 14 is 92.9% ≥ 90%.
        assert_eq!(d.rank_90, 2);
        let zero = spectrum_summary(&[0.0, 0.0], 8);
        assert_eq!((zero.stable_rank, zero.rank_90), (None, 0));
    }
}
