//! The output-level error of a plan: perplexity of the original and the planned model over a
//! text, and the KL divergence of their next-token distributions (original ‖ plan) with the
//! agreement of their top choices — over windows of `ctx` tokens, logits made a block of rows
//! at a time so that memory holds two blocks of `rows × vocab`, never a window's.

use serde::Serialize;

use super::linalg::log_sum_exp;
use super::{Model, RuntimeError};
use crate::cancel::Cancel;

/// Rows of logits made at once.
const LOGIT_ROWS: usize = 64;

/// What `eval` reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EvalReport {
    /// Tokens of the text.
    pub tokens: usize,
    /// Tokens predicted (each window's first token is context only).
    pub predicted: usize,
    /// Window length.
    pub ctx: usize,
    /// Perplexity of the original model.
    pub ppl: f64,
    /// Perplexity of the planned model, when a plan was given.
    pub ppl_plan: Option<f64>,
    /// Mean KL(original ‖ plan) in nats per predicted token.
    pub kl_mean: Option<f64>,
    /// Its 99th percentile.
    pub kl_p99: Option<f64>,
    /// Share of positions where both models' most likely next token is the same.
    pub top1_agree: Option<f64>,
    /// Wall time of the original model's forward passes and logits (loading not included).
    pub seconds: f64,
}

/// Where a caller receives the original model's logits, a block of rows at a time.
pub type LogitsSink<'a> = &'a mut dyn FnMut(&[f32]);

/// Per position: log-probabilities of the row (f64), from logits.
pub(crate) fn log_probs(row: &[f32]) -> Vec<f64> {
    let lse = log_sum_exp(row);
    row.iter().map(|&x| f64::from(x) - lse).collect()
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| if x > bv { (i, x) } else { (bi, bv) }).0
}

/// Evaluates `original` (and `planned`, if given) on `tokens` in windows of `ctx`;
/// `progress(done, total)` after each window. `logits_out` receives each window's original
/// logits (row-major, rows × vocab) when given, for reference checks.
pub fn evaluate(
    original: &Model,
    planned: Option<&Model>,
    tokens: &[u32],
    ctx: usize,
    progress: &dyn Fn(usize, usize),
    mut logits_out: Option<LogitsSink<'_>>,
    cancel: &Cancel,
) -> Result<EvalReport, RuntimeError> {
    if tokens.len() < 2 {
        return Err(RuntimeError::Input("perplexity needs at least two tokens".into()));
    }
    if !original.has_lm_head() {
        return Err(RuntimeError::Unsupported(
            "this model is an encoder without a language-model head: there is no perplexity to measure \
             (attention and imatrix run on it)"
                .into(),
        ));
    }
    let ctx = ctx.max(2);
    let windows: Vec<&[u32]> = tokens.chunks(ctx).filter(|w| w.len() >= 2).collect();
    let (mut nll, mut nll_plan, mut kls, mut agree, mut predicted) = (0f64, 0f64, Vec::new(), 0usize, 0usize);
    let mut seconds = 0.0;
    for (wi, w) in windows.iter().enumerate() {
        let started = std::time::Instant::now();
        let (h, _) = original.forward(w, &[], cancel)?;
        seconds += started.elapsed().as_secs_f64();
        let hp = match planned {
            Some(p) => Some(p.forward(w, &[], cancel)?),
            None => None,
        };
        let mut start = 0;
        while start < w.len() {
            if cancel.is_cancelled() {
                return Err(RuntimeError::Cancelled);
            }
            let end = (start + LOGIT_ROWS).min(w.len());
            let started = std::time::Instant::now();
            let la = original.logits(&h, start..end);
            seconds += started.elapsed().as_secs_f64();
            if let Some(out) = logits_out.as_deref_mut() {
                out(&la);
            }
            let lb = match (&hp, planned) {
                (Some((hp, _)), Some(p)) => Some(p.logits(hp, start..end)),
                _ => None,
            };
            let v = original.vocab();
            for i in start..end.min(w.len() - 1) {
                let r = i - start;
                let ra = &la[r * v..(r + 1) * v];
                let pa = log_probs(ra);
                let next = w[i + 1] as usize;
                nll -= pa[next];
                predicted += 1;
                if let Some(lb) = &lb {
                    let rb = &lb[r * v..(r + 1) * v];
                    let pb = log_probs(rb);
                    nll_plan -= pb[next];
                    kls.push(pa.iter().zip(&pb).map(|(a, b)| a.exp() * (a - b)).sum::<f64>().max(0.0));
                    agree += usize::from(argmax(ra) == argmax(rb));
                }
            }
            start = end;
        }
        progress(wi + 1, windows.len());
    }
    let n = predicted.max(1) as f64;
    let mut report =
        EvalReport { tokens: tokens.len(), predicted, ctx, ppl: (nll / n).exp(), seconds, ..Default::default() };
    if planned.is_some() {
        kls.sort_by(f64::total_cmp);
        report.ppl_plan = Some((nll_plan / n).exp());
        report.kl_mean = Some(kls.iter().sum::<f64>() / n);
        report.kl_p99 = kls.get(((kls.len() as f64 * 0.99).ceil() as usize).saturating_sub(1)).copied();
        report.top1_agree = Some(agree as f64 / n);
    }
    Ok(report)
}
