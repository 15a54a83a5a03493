//! The weights a forward pass reads, by their transformers names, as f32 in transformers'
//! layout: straight from the checkpoint (any dtype, GGUF blocks decoded), GGUF names and
//! layouts mapped back ([`crate::checkpoint::hf_names`]: llama's permuted Q/K rows, Gemma's
//! `1 + w` norms), and — with a plan — every planned tensor replaced by its fake-quantized
//! values, made by the same encoders as the preview and the exporters.

use std::collections::HashMap;

use super::RuntimeError;
use crate::cancel::Cancel;
use crate::checkpoint::hf_names::{self, Transform};
use crate::checkpoint::{Checkpoint, Format, TensorInfo};
use crate::compute::{Backend, ComputeError};
use crate::quant::plan::Resolved;
use crate::quant::preview::{Importance, fake_quantize_tensor};
use crate::quant::scheme::Scheme;

/// Reads weights of one checkpoint, with or without a plan.
pub struct WeightSource<'a> {
    ckpt: &'a Checkpoint,
    arch: String,
    heads: u64,
    kv_heads: u64,
    plan: HashMap<String, Resolved>,
    importance: Option<&'a Importance>,
    backend: &'a dyn Backend,
    cancel: Cancel,
}

/// A plan to fake-quantize a model with, and the importance its methods read (`+awq`'s
/// channel importance, `+gptq`'s Hessians).
#[derive(Clone, Copy, Debug)]
pub struct PlanInput<'a> {
    /// Resolved schemes by tensor.
    pub resolved: &'a [Resolved],
    /// The importance, if any.
    pub importance: Option<&'a Importance>,
}

impl<'a> From<&'a [Resolved]> for PlanInput<'a> {
    fn from(resolved: &'a [Resolved]) -> Self {
        PlanInput { resolved, importance: None }
    }
}

impl<'a> WeightSource<'a> {
    /// The weights of `ckpt` (architecture `arch`, with `heads` / `kv_heads` for Q/K layouts),
    /// fake-quantized by `plan` (resolved schemes by tensor name) where it says so.
    pub fn new(
        ckpt: &'a Checkpoint,
        arch: &str,
        (heads, kv_heads): (u64, u64),
        plan: Option<PlanInput<'a>>,
        backend: &'a dyn Backend,
        cancel: Cancel,
    ) -> Self {
        let importance = plan.and_then(|p| p.importance);
        let plan = plan
            .map(|p| p.resolved)
            .unwrap_or_default()
            .iter()
            .filter(|r| !matches!(r.parsed, Scheme::Keep))
            .map(|r| (r.name.clone(), r.clone()))
            .collect();
        Self { ckpt, arch: arch.to_owned(), heads, kv_heads, plan, importance, backend, cancel }
    }

    /// Whether a plan changes any tensor.
    pub fn planned(&self) -> bool {
        !self.plan.is_empty()
    }

    /// The checkpoint's tensor holding transformers tensor `hf`, and how its values differ.
    fn find(&self, hf: &str) -> Option<(&'a TensorInfo, Transform)> {
        if self.ckpt.format() != Format::Gguf {
            return self.ckpt.tensor(hf).map(|t| (t, Transform::None));
        }
        let name = hf_names::gguf_name(hf, &self.arch)?;
        let t = self.ckpt.tensor(&name)?;
        Some((t, hf_names::transform(&name, &self.arch, self.heads, self.kv_heads)))
    }

    /// Whether the checkpoint holds `hf`.
    pub fn has(&self, hf: &str) -> bool {
        self.find(hf).is_some()
    }

    /// The values of transformers tensor `hf` with `numel` values, or a clear error.
    pub fn load(&self, hf: &str, numel: usize) -> Result<Vec<f32>, RuntimeError> {
        let (t, transform) = self.find(hf).ok_or_else(|| RuntimeError::Missing {
            file: self.ckpt.path().display().to_string(),
            tensor: hf.to_owned(),
        })?;
        if t.numel() != numel as u64 {
            return Err(RuntimeError::Shape {
                tensor: t.name.clone(),
                message: format!("has {} values where the configuration needs {numel}", t.numel()),
            });
        }
        let mut values = match self.plan.get(&t.name) {
            Some(resolved) => self.fake_quantized(t, resolved)?,
            None => self.ckpt.decode_all(t).map_err(ComputeError::from)?,
        };
        match transform {
            Transform::None => {}
            Transform::Offset(d) => values.iter_mut().for_each(|v| *v -= d),
            Transform::Rows { heads } => {
                let rows = t.shape.first().copied().unwrap_or(1);
                let cols = (t.numel() / rows.max(1)) as usize;
                let mut out = vec![0f32; values.len()];
                for r in 0..rows {
                    let g = hf_names::gguf_row_of_hf_row(r, rows, heads) as usize;
                    out[r as usize * cols..(r as usize + 1) * cols].copy_from_slice(&values[g * cols..(g + 1) * cols]);
                }
                values = out;
            }
        }
        Ok(values)
    }

    /// `t` encoded with its planned scheme and decoded again (the preview's own values).
    fn fake_quantized(&self, t: &TensorInfo, resolved: &Resolved) -> Result<Vec<f32>, RuntimeError> {
        let mut out = vec![0f32; t.numel() as usize];
        let mut put = |first: u64, v: &[f32]| -> Result<(), ComputeError> {
            let at = first as usize;
            out.get_mut(at..at + v.len())
                .ok_or_else(|| ComputeError::Sink(format!("decoded values past the end of {}", t.name)))?
                .copy_from_slice(v);
            Ok(())
        };
        fake_quantize_tensor(self.backend, self.ckpt, t, resolved, self.importance, &mut put, &self.cancel)?;
        Ok(out)
    }
}
