//! BERT's encoder (all-MiniLM-L6-v2, the bundled demo): word, learned position and token-type
//! embeddings under a LayerNorm, then blocks of bidirectional attention and a GELU (erf) MLP,
//! each followed by a residual LayerNorm (post-norm). No language-model head: attention maps and
//! activation statistics, not perplexity. f32, as transformers computes on the CPU.

use super::activations::ActivationStats;
use super::linalg::{add_bias, layer_norm, linear};
use super::llama::{Mask, attention};
use super::weights::WeightSource;
use super::{AttentionMap, RuntimeError};
use crate::cancel::Cancel;
use crate::checkpoint::ModelConfig;

/// What the BERT pass needs, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct BertConfig {
    /// Embedding width.
    pub hidden: usize,
    /// Feed-forward width.
    pub intermediate: usize,
    /// Blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Vocabulary.
    pub vocab: usize,
    /// Learned positions.
    pub max_position: usize,
    /// LayerNorm epsilon.
    pub eps: f32,
}

impl BertConfig {
    /// From the typed configuration.
    pub fn from_model(c: &ModelConfig) -> Result<Self, String> {
        let need = |v: Option<u64>, what: &str| {
            v.map(|v| v as usize).ok_or_else(|| format!("the configuration has no {what}"))
        };
        let (hidden, heads) = (need(c.hidden_size, "hidden size")?, need(c.num_heads, "number of attention heads")?);
        if heads == 0 || !hidden.is_multiple_of(heads) {
            return Err(format!("{hidden} is not {heads} heads wide"));
        }
        Ok(Self {
            hidden,
            intermediate: need(c.intermediate_size, "intermediate size")?,
            layers: need(c.num_layers, "number of layers")?,
            heads,
            vocab: need(c.vocab_size, "vocabulary size")?,
            max_position: need(c.max_position, "number of positions")?,
            eps: c.norm_eps.unwrap_or(1e-12) as f32,
        })
    }
}

/// A linear layer with its bias.
struct Dense {
    w: Vec<f32>,
    b: Vec<f32>,
}

struct Block {
    q: Dense,
    k: Dense,
    v: Dense,
    attn_out: Dense,
    attn_norm: (Vec<f32>, Vec<f32>),
    up: Dense,
    down: Dense,
    out_norm: (Vec<f32>, Vec<f32>),
}

/// A loaded BERT encoder.
pub struct BertModel {
    /// Its configuration.
    pub cfg: BertConfig,
    /// The prefix of its tensor names (`bert.` in a BertFor… checkpoint, else empty).
    prefix: String,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embed_norm: (Vec<f32>, Vec<f32>),
    blocks: Vec<Block>,
}

impl BertModel {
    /// Loads every weight from `src`.
    pub fn load(
        cfg: BertConfig,
        src: &WeightSource<'_>,
        progress: &dyn Fn(usize, usize),
    ) -> Result<Self, RuntimeError> {
        let (d, f) = (cfg.hidden, cfg.intermediate);
        let prefix = if src.has("embeddings.word_embeddings.weight") { "" } else { "bert." }.to_owned();
        let load = |name: &str, n: usize| src.load(&format!("{prefix}{name}"), n);
        let dense = |name: &str, out: usize, inp: usize| -> Result<Dense, RuntimeError> {
            Ok(Dense { w: load(&format!("{name}.weight"), out * inp)?, b: load(&format!("{name}.bias"), out)? })
        };
        let norm = |name: &str| -> Result<(Vec<f32>, Vec<f32>), RuntimeError> {
            Ok((load(&format!("{name}.weight"), d)?, load(&format!("{name}.bias"), d)?))
        };
        let word = load("embeddings.word_embeddings.weight", cfg.vocab * d)?;
        let position = load("embeddings.position_embeddings.weight", cfg.max_position * d)?;
        let token_type = load("embeddings.token_type_embeddings.weight", 2 * d)
            .or_else(|_| load("embeddings.token_type_embeddings.weight", d))?;
        let embed_norm = norm("embeddings.LayerNorm")?;
        // Grown block by block: the layer count is the configuration's word, and a hostile one
        // (billions) must end at the first missing tensor, not in one huge allocation.
        let mut blocks = Vec::new();
        for l in 0..cfg.layers {
            let p = |s: &str| format!("encoder.layer.{l}.{s}");
            blocks.push(Block {
                q: dense(&p("attention.self.query"), d, d)?,
                k: dense(&p("attention.self.key"), d, d)?,
                v: dense(&p("attention.self.value"), d, d)?,
                attn_out: dense(&p("attention.output.dense"), d, d)?,
                attn_norm: norm(&p("attention.output.LayerNorm"))?,
                up: dense(&p("intermediate.dense"), f, d)?,
                down: dense(&p("output.dense"), d, f)?,
                out_norm: norm(&p("output.LayerNorm"))?,
            });
            progress(l + 1, cfg.layers);
        }
        Ok(Self { cfg, prefix, word, position, token_type, embed_norm, blocks })
    }

    /// The last layer's hidden states (`T × hidden`) and the attention maps of `record`.
    pub fn forward(
        &self,
        tokens: &[u32],
        record: &[(usize, usize)],
        mut stats: Option<&mut ActivationStats>,
        cancel: &Cancel,
    ) -> Result<(Vec<f32>, Vec<AttentionMap>), RuntimeError> {
        let c = &self.cfg;
        let (t, d) = (tokens.len(), c.hidden);
        if t > c.max_position {
            return Err(RuntimeError::Input(format!("{t} tokens: the model has {} positions", c.max_position)));
        }
        let mut h = super::embed(&self.word, tokens, d, c.vocab, 1.0)?;
        for (i, row) in h.chunks_exact_mut(d).enumerate() {
            let pos = &self.position[i * d..(i + 1) * d];
            row.iter_mut().zip(pos).zip(&self.token_type[..d]).for_each(|((x, p), ty)| *x = *x + ty + p);
        }
        let mut h = layer_norm(&h, &self.embed_norm.0, &self.embed_norm.1, c.eps);
        let hd = d / c.heads;
        let mut maps = Vec::new();
        let apply = |x: &[f32], layer: &Dense, out: usize, inp: usize| {
            let mut y = linear(x, t, &layer.w, out, inp);
            add_bias(&mut y, &layer.b);
            y
        };
        for (l, b) in self.blocks.iter().enumerate() {
            if cancel.is_cancelled() {
                return Err(RuntimeError::Cancelled);
            }
            let mut record_inputs = |modules: &[&str], x: &[f32], n: usize| {
                if let Some(s) = stats.as_deref_mut() {
                    let names: Vec<String> =
                        modules.iter().map(|m| format!("{}encoder.layer.{l}.{m}.weight", self.prefix)).collect();
                    s.add(&names, x, n);
                }
            };
            record_inputs(&["attention.self.query", "attention.self.key", "attention.self.value"], &h, d);
            let (q, k, v) = (apply(&h, &b.q, d, d), apply(&h, &b.k, d, d), apply(&h, &b.v, d, d));
            let want: Vec<usize> = record.iter().filter(|(rl, _)| *rl == l).map(|(_, hh)| *hh).collect();
            let (attn, recorded) = attention(&q, &k, &v, t, c.heads, c.heads, hd, Mask::Full, &want);
            maps.extend(recorded.into_iter().map(|(head, probs)| AttentionMap {
                layer: l,
                head,
                tokens: t,
                causal: false,
                probs,
            }));
            record_inputs(&["attention.output.dense"], &attn, d);
            let mut o = apply(&attn, &b.attn_out, d, d);
            o.iter_mut().zip(&h).for_each(|(o, x)| *o += x);
            h = layer_norm(&o, &b.attn_norm.0, &b.attn_norm.1, c.eps);
            record_inputs(&["intermediate.dense"], &h, d);
            let a: Vec<f32> = apply(&h, &b.up, c.intermediate, d).into_iter().map(gelu_erf).collect();
            record_inputs(&["output.dense"], &a, c.intermediate);
            let mut m = apply(&a, &b.down, d, c.intermediate);
            m.iter_mut().zip(&h).for_each(|(m, x)| *m += x);
            h = layer_norm(&m, &b.out_norm.0, &b.out_norm.1, c.eps);
        }
        Ok((h, maps))
    }

    /// The sentence embedding: the mean of the last hidden states over the tokens (mean pooling,
    /// as sentence-transformers does for MiniLM).
    pub fn mean_pool(&self, hidden: &[f32]) -> Vec<f32> {
        let d = self.cfg.hidden;
        let t = (hidden.len() / d.max(1)).max(1);
        let mut out = vec![0f64; d];
        for row in hidden.chunks_exact(d) {
            out.iter_mut().zip(row).for_each(|(o, x)| *o += f64::from(*x));
        }
        out.into_iter().map(|v| (v / t as f64) as f32).collect()
    }
}

/// GELU with the exact erf (BERT's `gelu`).
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x / std::f32::consts::SQRT_2))
}
