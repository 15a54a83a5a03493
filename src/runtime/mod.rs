//! The model runtime: a small forward pass over a checkpoint's own weights, for what needs
//! activations — attention maps, and the output-level error of a plan (perplexity and the KL
//! divergence of next-token distributions). Weights come straight from the checkpoint engine
//! ([`weights`]), fake-quantized by a plan with the preview's encoders when one is given; text
//! is tokenized by the model's own tokenizer ([`tokenizer`]).
//!
//! Architectures: the Llama family ([`llama`]: llama, mistral, qwen2 — SmolLM2) and Gemma 3's
//! text model ([`gemma3`]), and BERT's encoder ([`bert`]: attention maps and activation
//! statistics; it has no language-model head, so no perplexity).

pub mod activations;
pub mod bert;
pub mod eval;
pub mod gemm;
pub mod gemma3;
pub mod linalg;
pub mod llama;
pub mod sensitivity;
pub mod tokenizer;
pub mod weights;

use serde::Serialize;

use crate::cancel::Cancel;
use crate::checkpoint::Checkpoint;
use crate::compute::{Backend, ComputeError};

/// Why the runtime could not run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Reading or fake-quantizing a tensor failed.
    #[error(transparent)]
    Compute(#[from] ComputeError),
    /// A tensor the architecture needs is not in the checkpoint.
    #[error("{file}: the tensor {tensor} that the forward pass needs is missing")]
    Missing {
        /// The checkpoint.
        file: String,
        /// The tensor (transformers name).
        tensor: String,
    },
    /// A tensor does not have the configuration's shape.
    #[error("tensor {tensor:?}: {message}")]
    Shape {
        /// The tensor.
        tensor: String,
        /// What is wrong.
        message: String,
    },
    /// The model cannot be run (architecture, configuration).
    #[error("{0}")]
    Unsupported(String),
    /// The tokenizer could not be loaded or failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The input cannot be run (empty text, an id outside the vocabulary).
    #[error("{0}")]
    Input(String),
    /// The caller cancelled.
    #[error("cancelled")]
    Cancelled,
}

/// The attention probabilities of one head: `tokens × tokens`, row `i` the distribution of
/// query `i` over keys `0..=i` (zeros after it) in a decoder, over every key in an encoder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttentionMap {
    /// Layer (from 0).
    pub layer: usize,
    /// Head (from 0).
    pub head: usize,
    /// Tokens.
    pub tokens: usize,
    /// Whether a query sees only the keys up to itself (a decoder).
    pub causal: bool,
    /// Row-major probabilities.
    pub probs: Vec<f32>,
}

/// A model ready to run.
pub enum Model {
    /// Llama family.
    Llama(llama::LlamaModel),
    /// Gemma 3 (text).
    Gemma3(gemma3::Gemma3Model),
    /// BERT (an encoder).
    Bert(bert::BertModel),
}

impl Model {
    /// Loads the model of `ckpt`, fake-quantized by `plan` when given (`progress(done, total)`
    /// while its layers load).
    pub fn load(
        ckpt: &Checkpoint,
        plan: Option<weights::PlanInput<'_>>,
        backend: &dyn Backend,
        progress: &dyn Fn(usize, usize),
        cancel: &Cancel,
    ) -> Result<Self, RuntimeError> {
        let path = ckpt.path().display();
        let cfg = ckpt.model_config().ok_or_else(|| {
            RuntimeError::Unsupported(format!("{path}: no model configuration (config.json or GGUF metadata)"))
        })?;
        // A configuration's fault is reported against the file that holds it.
        let config_file = match ckpt.format() {
            crate::checkpoint::Format::Gguf => ckpt.path().to_owned(),
            _ => tokenizer::folder_of(ckpt.path()).join("config.json"),
        };
        let unsupported = |m: String| RuntimeError::Unsupported(format!("{}: {m}", config_file.display()));
        let source = |heads: usize, kv_heads: usize| {
            let heads = (heads as u64, kv_heads as u64);
            weights::WeightSource::new(ckpt, &cfg.architecture, heads, plan, backend, cancel.clone())
        };
        match cfg.architecture.as_str() {
            "llama" | "mistral" | "qwen2" => {
                let lc = llama::LlamaConfig::from_model(cfg).map_err(unsupported)?;
                let src = source(lc.heads, lc.kv_heads);
                Ok(Model::Llama(llama::LlamaModel::load(lc, &src, progress)?))
            }
            "gemma3" => {
                let gc = gemma3::Gemma3Config::from_checkpoint(ckpt, cfg).map_err(unsupported)?;
                let src = source(gc.heads, gc.kv_heads);
                Ok(Model::Gemma3(gemma3::Gemma3Model::load(gc, &src, progress)?))
            }
            "bert" => {
                let bc = bert::BertConfig::from_model(cfg).map_err(unsupported)?;
                let src = source(bc.heads, bc.heads);
                Ok(Model::Bert(bert::BertModel::load(bc, &src, progress)?))
            }
            other => Err(RuntimeError::Unsupported(format!(
                "{path}: the runtime runs the Llama family (llama, mistral, qwen2), Gemma 3 and BERT so far; `{other}` is not implemented yet"
            ))),
        }
    }

    /// Attention heads and key/value heads (the layouts of Q and K in GGUF files).
    pub fn heads_and_kv(&self) -> (usize, usize) {
        match self {
            Model::Llama(m) => (m.cfg.heads, m.cfg.kv_heads),
            Model::Gemma3(m) => (m.cfg.heads, m.cfg.kv_heads),
            Model::Bert(m) => (m.cfg.heads, m.cfg.heads),
        }
    }

    /// Layers and heads per layer.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Model::Llama(m) => (m.cfg.layers, m.cfg.heads),
            Model::Gemma3(m) => (m.cfg.layers, m.cfg.heads),
            Model::Bert(m) => (m.cfg.layers, m.cfg.heads),
        }
    }

    /// The vocabulary size.
    pub fn vocab(&self) -> usize {
        match self {
            Model::Llama(m) => m.cfg.vocab,
            Model::Gemma3(m) => m.cfg.vocab,
            Model::Bert(m) => m.cfg.vocab,
        }
    }

    /// Final hidden states of `tokens` and the attention maps of `record` ((layer, head) pairs).
    pub fn forward(
        &self,
        tokens: &[u32],
        record: &[(usize, usize)],
        cancel: &Cancel,
    ) -> Result<(Vec<f32>, Vec<AttentionMap>), RuntimeError> {
        self.forward_with(tokens, record, None, cancel)
    }

    /// [`Model::forward`], adding every linear layer's inputs to `stats` when given.
    pub fn forward_with(
        &self,
        tokens: &[u32],
        record: &[(usize, usize)],
        stats: Option<&mut activations::ActivationStats>,
        cancel: &Cancel,
    ) -> Result<(Vec<f32>, Vec<AttentionMap>), RuntimeError> {
        if tokens.is_empty() {
            return Err(RuntimeError::Input("the text has no tokens".into()));
        }
        match (self, self.decoder()) {
            (_, Some(d)) => d.forward(tokens, record, stats, cancel),
            (Model::Bert(m), None) => m.forward(tokens, record, stats, cancel),
            _ => Err(RuntimeError::Unsupported("no forward pass".into())),
        }
    }

    /// The decoder, for models that predict tokens.
    fn decoder(&self) -> Option<&dyn Decoder> {
        match self {
            Model::Llama(m) => Some(m),
            Model::Gemma3(m) => Some(m),
            Model::Bert(_) => None,
        }
    }

    /// Whether the model predicts tokens (an encoder such as BERT does not).
    pub fn has_lm_head(&self) -> bool {
        !matches!(self, Model::Bert(_))
    }

    /// Logits of the hidden rows `rows` (empty for a model without a language-model head).
    pub fn logits(&self, hidden: &[f32], rows: std::ops::Range<usize>) -> Vec<f32> {
        self.logits_swapped(hidden, rows, None)
    }

    /// [`Model::logits`] with a weight swapped (the head, or the embedding it is tied to).
    pub fn logits_swapped(&self, hidden: &[f32], rows: std::ops::Range<usize>, swap: Swap<'_>) -> Vec<f32> {
        self.decoder().map_or_else(Vec::new, |d| d.logits(hidden, rows, swap))
    }

    /// The input of every block on `tokens`, and the final hidden states.
    pub fn block_inputs(&self, tokens: &[u32], cancel: &Cancel) -> Result<(Vec<Vec<f32>>, Vec<f32>), RuntimeError> {
        let mut inputs = Vec::new();
        let pass = Pass { record: &[], stats: None, swap: None, inputs: Some(&mut inputs) };
        let d = self.decoder().ok_or_else(|| self.no_head("a tensor's KL sensitivity"))?;
        let (h, _) = d.blocks_from(d.embed(tokens, None)?, 0, pass, cancel)?;
        Ok((inputs, h))
    }

    /// The final hidden states with one weight swapped, run from the first block that reads it
    /// (`inputs` and `hidden` from [`Model::block_inputs`] on the same `tokens`).
    pub fn forward_swapped(
        &self,
        tokens: &[u32],
        inputs: &[Vec<f32>],
        hidden: &[f32],
        swap: (&str, &[f32]),
        cancel: &Cancel,
    ) -> Result<Vec<f32>, RuntimeError> {
        let (name, _) = swap;
        let pass = Pass { record: &[], stats: None, swap: Some(swap), inputs: None };
        let from = match layer_of(name) {
            Some(l) if l < inputs.len() => l,
            Some(l) => return Err(RuntimeError::Input(format!("the model has no layer {l}"))),
            None if name == HEAD => return Ok(hidden.to_vec()),
            None if name == EMBED => 0,
            None => return Err(RuntimeError::Input(format!("{name} is no weight the forward pass swaps"))),
        };
        let d = self.decoder().ok_or_else(|| self.no_head("a tensor's KL sensitivity"))?;
        let h = if name == EMBED { d.embed(tokens, Some(swap))? } else { inputs[from].clone() };
        Ok(d.blocks_from(h, from, pass, cancel)?.0)
    }

    fn no_head(&self, what: &str) -> RuntimeError {
        RuntimeError::Unsupported(format!("{what} needs a language-model head; BERT is an encoder"))
    }
}

/// The rows of `table` (`vocab` rows of `d`) for `tokens`, each times `scale`.
pub(crate) fn embed(
    table: &[f32],
    tokens: &[u32],
    d: usize,
    vocab: usize,
    scale: f32,
) -> Result<Vec<f32>, RuntimeError> {
    let mut h = Vec::with_capacity(tokens.len() * d);
    for &tok in tokens {
        let row = table
            .get(tok as usize * d..(tok as usize + 1) * d)
            .ok_or_else(|| RuntimeError::Input(format!("token id {tok} is outside the vocabulary of {vocab}")))?;
        h.extend(row.iter().map(|v| v * scale));
    }
    Ok(h)
}

/// A weight replaced for one pass: its transformers name and values (the KL sensitivity of
/// one tensor under a scheme).
pub type Swap<'a> = Option<(&'a str, &'a [f32])>;

/// What the decoders (the Llama family, Gemma 3) share: embeddings, the blocks from any block
/// on, and logits, each with a weight swapped if asked; the forward pass is the three in order.
pub trait Decoder {
    /// The embeddings of `tokens`.
    fn embed(&self, tokens: &[u32], swap: Swap<'_>) -> Result<Vec<f32>, RuntimeError>;
    /// Blocks `from..` on `h` (the input of block `from`) and the final norm.
    fn blocks_from(
        &self,
        h: Vec<f32>,
        from: usize,
        pass: Pass<'_, '_>,
        cancel: &Cancel,
    ) -> Result<(Vec<f32>, Vec<AttentionMap>), RuntimeError>;
    /// Logits of hidden rows `rows`.
    fn logits(&self, hidden: &[f32], rows: std::ops::Range<usize>, swap: Swap<'_>) -> Vec<f32>;
    /// The final hidden states and the attention maps of `record`, linear inputs into `stats`.
    fn forward(
        &self,
        tokens: &[u32],
        record: &[(usize, usize)],
        stats: Option<&mut activations::ActivationStats>,
        cancel: &Cancel,
    ) -> Result<(Vec<f32>, Vec<AttentionMap>), RuntimeError> {
        let h = self.embed(tokens, None)?;
        self.blocks_from(h, 0, Pass { record, stats, swap: None, inputs: None }, cancel)
    }
}

/// The token embedding's transformers name.
pub const EMBED: &str = "model.embed_tokens.weight";
/// A separate LM head's transformers name.
pub const HEAD: &str = "lm_head.weight";

/// What one pass over the blocks records: attention maps of `record`, linear inputs in
/// `stats`, each block's input hidden states in `inputs`; with `swap` a weight replaced.
pub struct Pass<'r, 's> {
    /// (layer, head) pairs whose attention probabilities to keep.
    pub record: &'r [(usize, usize)],
    /// Linear layers' input statistics.
    pub stats: Option<&'s mut activations::ActivationStats>,
    /// A weight replaced.
    pub swap: Swap<'r>,
    /// Each block's input, pushed in order.
    pub inputs: Option<&'s mut Vec<Vec<f32>>>,
}

/// `own`, or the swapped values when `swap` replaces `name`.
pub(crate) fn swapped<'a>(swap: Swap<'a>, name: &str, own: &'a [f32]) -> &'a [f32] {
    match swap {
        Some((n, v)) if n == name => v,
        _ => own,
    }
}

/// `own`, or the swapped values when `swap` replaces `model.layers.{layer}.{field}`.
pub(crate) fn layer_swapped<'a>(swap: Swap<'a>, layer: usize, field: &str, own: &'a [f32]) -> &'a [f32] {
    match swap {
        Some((n, v)) if layer_of(n) == Some(layer) && n == format!("model.layers.{layer}.{field}") => v,
        _ => own,
    }
}

/// The block a transformers weight name belongs to (`model.layers.{l}.…`).
pub fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("model.layers.")?.split_once('.')?.0.parse().ok()
}

/// Adds `x` (`rows × n`), the input of layer `layer`'s `modules`, to `stats` when given.
pub(crate) fn record_inputs(
    stats: Option<&mut activations::ActivationStats>,
    layer: usize,
    modules: &[&str],
    x: &[f32],
    n: usize,
) {
    if let Some(s) = stats {
        let names: Vec<String> = modules.iter().map(|m| format!("model.layers.{layer}.{m}.weight")).collect();
        s.add(&names, x, n);
    }
}

/// A token that receives far more attention than its share in many heads (an attention sink,
/// as the first token usually is).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sink {
    /// Its position.
    pub index: usize,
    /// The heads in which it is a sink.
    pub heads: Vec<usize>,
    /// The mean attention it receives from the queries that see it, averaged over those heads.
    pub mean_attention: f64,
}

/// The sinks among `maps` (one layer's heads): a token is a sink in a head when the later
/// queries give it on average at least 0.3 of their attention and at least 3 times what a uniform
/// distribution over their visible keys would (1/(i+1) for query i); listed when that holds in
/// at least a quarter of the heads, most heads first. A token needs 4 later queries to be judged
/// (the last tokens, seen by few, would otherwise pass on their attention to themselves).
pub fn sinks(maps: &[AttentionMap]) -> Vec<Sink> {
    const MIN_QUERIES: usize = 4;
    let Some(t) = maps.first().map(|m| m.tokens) else { return Vec::new() };
    let mut found: Vec<Sink> = Vec::new();
    let causal = maps.first().is_some_and(|m| m.causal);
    // In an encoder every query sees every key: all of them judge, against a share of 1/T.
    let judged = if causal {
        t.saturating_sub(MIN_QUERIES)
    } else if t >= MIN_QUERIES {
        t
    } else {
        0
    };
    for j in 0..judged {
        let queries = if causal { j + 1..t } else { 0..t };
        let seen = queries.len() as f64;
        let uniform =
            if causal { queries.clone().map(|i| 1.0 / (i + 1) as f64).sum::<f64>() / seen } else { 1.0 / t as f64 };
        let mut heads = Vec::new();
        let mut total = 0.0;
        for m in maps {
            let received = queries.clone().map(|i| f64::from(m.probs[i * t + j])).sum::<f64>() / seen;
            if received >= 0.3 && received >= 3.0 * uniform {
                heads.push(m.head);
                total += received;
            }
        }
        if !heads.is_empty() && heads.len() * 4 >= maps.len() {
            found.push(Sink { index: j, mean_attention: total / heads.len() as f64, heads });
        }
    }
    found.sort_by(|a, b| b.heads.len().cmp(&a.heads.len()).then(a.index.cmp(&b.index)));
    found
}
