//! How much one tensor under a scheme costs the model's output: the mean KL divergence of the
//! next-token distributions (original ‖ with that tensor alone fake-quantized) over calibration
//! tokens — the objective of `plan auto --objective kl`. The original's block inputs and
//! log-probabilities are computed once; each measurement runs only the blocks from the one that
//! reads the tensor (the embedding: all of them; the LM head: none) and the logits.

use super::eval::log_probs;
use super::weights::{PlanInput, WeightSource};
use super::{Model, RuntimeError};
use crate::cancel::Cancel;
use crate::checkpoint::{Checkpoint, Format, TensorInfo, hf_names};
use crate::compute::Backend;
use crate::quant::{Importance, Resolved};

/// Rows of logits made at once.
const ROWS: usize = 64;

/// The original model's pass over the calibration tokens, kept for measuring tensors.
pub struct Sensitivity<'m> {
    model: &'m Model,
    tokens: Vec<u32>,
    inputs: Vec<Vec<f32>>,
    hidden: Vec<f32>,
    /// Log-probabilities of the original, `T × vocab`.
    base: Vec<f32>,
}

impl<'m> Sensitivity<'m> {
    /// Runs `model` once over `tokens`.
    pub fn new(model: &'m Model, tokens: &[u32], cancel: &Cancel) -> Result<Self, RuntimeError> {
        if tokens.len() < 2 {
            return Err(RuntimeError::Input("the KL sensitivity needs at least 2 calibration tokens".into()));
        }
        let (inputs, hidden) = model.block_inputs(tokens, cancel)?;
        let vocab = model.vocab();
        let mut base = Vec::with_capacity(tokens.len() * vocab);
        for start in (0..tokens.len()).step_by(ROWS) {
            let end = (start + ROWS).min(tokens.len());
            let logits = model.logits(&hidden, start..end);
            for row in logits.chunks_exact(vocab) {
                base.extend(log_probs(row).into_iter().map(|v| v as f32));
            }
        }
        Ok(Self { model, tokens: tokens.to_vec(), inputs, hidden, base })
    }

    /// Tokens measured over.
    pub fn tokens(&self) -> usize {
        self.tokens.len()
    }

    /// Mean KL(original ‖ swapped) per token, in nats, with transformers weight `name` replaced
    /// by `values`.
    pub fn kl(&self, name: &str, values: &[f32], cancel: &Cancel) -> Result<f64, RuntimeError> {
        let swap = (name, values);
        let hidden = self.model.forward_swapped(&self.tokens, &self.inputs, &self.hidden, swap, cancel)?;
        let vocab = self.model.vocab();
        let t = self.tokens.len();
        let mut total = 0f64;
        for start in (0..t).step_by(ROWS) {
            if cancel.is_cancelled() {
                return Err(RuntimeError::Cancelled);
            }
            let end = (start + ROWS).min(t);
            let logits = self.model.logits_swapped(&hidden, start..end, Some(swap));
            for (k, row) in logits.chunks_exact(vocab).enumerate() {
                let q = log_probs(row);
                let p = &self.base[(start + k) * vocab..(start + k + 1) * vocab];
                total += p.iter().zip(&q).map(|(&lp, &lq)| (f64::from(lp)).exp() * (f64::from(lp) - lq)).sum::<f64>();
            }
        }
        Ok((total / t as f64).max(0.0))
    }
}

/// The transformers name of checkpoint tensor `t` (its own name unless the checkpoint is GGUF).
pub fn hf_name_of(ckpt: &Checkpoint, t: &TensorInfo) -> Option<String> {
    if ckpt.format() != Format::Gguf {
        return Some(t.name.clone());
    }
    let arch = ckpt.model_config()?.architecture.clone();
    hf_names::hf_name(&t.name, &arch)
}

/// The KL sensitivity of tensor `t` under `resolved`: its values fake-quantized by the
/// preview's encoders (in transformers' layout), swapped into `sens`'s model.
pub fn tensor_kl(
    sens: &Sensitivity<'_>,
    ckpt: &Checkpoint,
    t: &TensorInfo,
    resolved: &Resolved,
    importance: Option<&Importance>,
    backend: &dyn Backend,
    cancel: &Cancel,
) -> Result<f64, RuntimeError> {
    if resolved.parsed.is_keep() {
        return Ok(0.0);
    }
    let hf = hf_name_of(ckpt, t).ok_or_else(|| RuntimeError::Input(format!("{}: no transformers name", t.name)))?;
    let arch = ckpt.model_config().map(|c| c.architecture.clone()).unwrap_or_default();
    let (heads, kv_heads) = sens.model.heads_and_kv();
    let plan = [resolved.clone()];
    let input = PlanInput { resolved: &plan, importance };
    let src = WeightSource::new(ckpt, &arch, (heads as u64, kv_heads as u64), Some(input), backend, cancel.clone());
    let values = src.load(&hf, t.numel() as usize)?;
    sens.kl(&hf, &values, cancel)
}
