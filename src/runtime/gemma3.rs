//! Gemma 3's text forward pass (gemma-3-270m and its siblings' text towers): embeddings scaled by
//! √hidden, RMSNorms of `(1 + w)` around both the attention and the MLP (four per block), RMSNorm
//! of each head's queries and keys, RoPE with a local base on sliding-window layers and the
//! global base (and linear scaling) on the full-attention ones (every sixth, or as
//! `layer_types` says), attention scaled by `query_pre_attn_scalar^-½`, a GELU (tanh) gated MLP,
//! the head tied to the embedding. f32, as transformers computes on the CPU.

use super::linalg::{gelu_tanh, linear, rms_norm};
use super::llama::{Mask, attention, rope_tables, rotate_half};
use super::weights::WeightSource;
use super::{AttentionMap, Decoder, EMBED, HEAD, Pass, RuntimeError, Swap, layer_swapped, record_inputs, swapped};
use crate::cancel::Cancel;
use crate::checkpoint::{Checkpoint, ModelConfig};

/// What the Gemma 3 pass needs, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Gemma3Config {
    /// Embedding width.
    pub hidden: usize,
    /// Feed-forward width.
    pub intermediate: usize,
    /// Blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
    /// Vocabulary.
    pub vocab: usize,
    /// RoPE base of the full-attention layers.
    pub rope_global: f32,
    /// Linear RoPE scaling of the full-attention layers (1 without).
    pub rope_global_linear: f32,
    /// RoPE base of the sliding-window layers.
    pub rope_local: f32,
    /// The sliding window (keys a query sees on local layers, itself included).
    pub window: usize,
    /// Whether each layer attends through the sliding window.
    pub sliding: Vec<bool>,
    /// Attention scale.
    pub scale: f32,
    /// RMSNorm epsilon.
    pub eps: f32,
    /// Cap of the final logits (`cap · tanh(x / cap)`), if any.
    pub final_softcap: Option<f32>,
}

impl Gemma3Config {
    /// From the typed configuration and the raw `config.json` (when the checkpoint has one),
    /// with transformers' defaults where it is silent (local base 10000, every sixth layer
    /// global, `query_pre_attn_scalar` = head width).
    pub fn from_checkpoint(ckpt: &Checkpoint, c: &ModelConfig) -> Result<Self, String> {
        let need = |v: Option<u64>, what: &str| {
            v.map(|v| v as usize).ok_or_else(|| format!("the configuration has no {what}"))
        };
        let raw = ckpt.config().map(|j| j.get("text_config").filter(|t| t.is_object()).unwrap_or(j));
        let num = |k: &str| raw.and_then(|j| j.get(k)).and_then(serde_json::Value::as_f64);
        let layers = need(c.num_layers, "number of layers")?;
        let head_dim = need(c.head_dim, "head width")?;
        let heads = need(c.num_heads, "number of attention heads")?;
        let kv_heads = need(c.num_kv_heads, "number of key/value heads")?;
        if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(format!("{heads} attention heads cannot share {kv_heads} key/value heads"));
        }
        let types = raw.and_then(|j| j.get("layer_types")).and_then(serde_json::Value::as_array);
        let sliding = match types {
            Some(t) => t.iter().map(|v| v.as_str() == Some("sliding_attention")).collect(),
            None => {
                let pattern = num("sliding_window_pattern").map_or(6, |p| p as usize).max(1);
                (0..layers).map(|l| (l + 1) % pattern != 0).collect()
            }
        };
        let rope_global_linear = match &c.rope_scaling {
            None => 1.0,
            Some(s) if s.kind == "linear" => s.factor.unwrap_or(1.0) as f32,
            Some(s) => {
                return Err(format!(
                    "RoPE scaling `{}` is not supported by the runtime yet (none and linear are)",
                    s.kind
                ));
            }
        };
        Ok(Self {
            hidden: need(c.hidden_size, "hidden size")?,
            intermediate: need(c.intermediate_size, "intermediate size")?,
            layers,
            heads,
            kv_heads,
            head_dim,
            vocab: need(c.vocab_size, "vocabulary size")?,
            rope_global: c.rope_theta.unwrap_or(1_000_000.0) as f32,
            rope_global_linear,
            rope_local: num("rope_local_base_freq").unwrap_or(10_000.0) as f32,
            window: c.sliding_window.map_or(usize::MAX, |w| w as usize),
            sliding,
            scale: 1.0 / (num("query_pre_attn_scalar").unwrap_or(head_dim as f64) as f32).sqrt(),
            eps: c.norm_eps.unwrap_or(1e-6) as f32,
            final_softcap: num("final_logit_softcapping").map(|v| v as f32),
        })
    }
}

struct Block {
    attn_norm: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    q_norm: Vec<f32>,
    k_norm: Vec<f32>,
    o: Vec<f32>,
    post_attn_norm: Vec<f32>,
    pre_mlp_norm: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    down: Vec<f32>,
    post_mlp_norm: Vec<f32>,
}

/// A loaded Gemma 3 text model.
pub struct Gemma3Model {
    /// Its configuration.
    pub cfg: Gemma3Config,
    embed: Vec<f32>,
    blocks: Vec<Block>,
    norm: Vec<f32>,
    head: Option<Vec<f32>>,
}

impl Gemma3Model {
    /// Loads every weight from `src`.
    pub fn load(
        cfg: Gemma3Config,
        src: &WeightSource<'_>,
        progress: &dyn Fn(usize, usize),
    ) -> Result<Self, RuntimeError> {
        let (d, f, hd) = (cfg.hidden, cfg.intermediate, cfg.head_dim);
        let (qd, kd) = (cfg.heads * hd, cfg.kv_heads * hd);
        let embed = src.load("model.embed_tokens.weight", cfg.vocab * d)?;
        // Grown block by block: the layer count is the configuration's word, and a hostile one
        // (billions) must end at the first missing tensor, not in one huge allocation.
        let mut blocks = Vec::new();
        for l in 0..cfg.layers {
            let p = |s: &str| format!("model.layers.{l}.{s}");
            blocks.push(Block {
                attn_norm: src.load(&p("input_layernorm.weight"), d)?,
                q: src.load(&p("self_attn.q_proj.weight"), qd * d)?,
                k: src.load(&p("self_attn.k_proj.weight"), kd * d)?,
                v: src.load(&p("self_attn.v_proj.weight"), kd * d)?,
                q_norm: src.load(&p("self_attn.q_norm.weight"), hd)?,
                k_norm: src.load(&p("self_attn.k_norm.weight"), hd)?,
                o: src.load(&p("self_attn.o_proj.weight"), d * qd)?,
                post_attn_norm: src.load(&p("post_attention_layernorm.weight"), d)?,
                pre_mlp_norm: src.load(&p("pre_feedforward_layernorm.weight"), d)?,
                gate: src.load(&p("mlp.gate_proj.weight"), f * d)?,
                up: src.load(&p("mlp.up_proj.weight"), f * d)?,
                down: src.load(&p("mlp.down_proj.weight"), d * f)?,
                post_mlp_norm: src.load(&p("post_feedforward_layernorm.weight"), d)?,
            });
            progress(l + 1, cfg.layers);
        }
        let norm = src.load("model.norm.weight", d)?;
        let head = if src.has("lm_head.weight") { Some(src.load("lm_head.weight", cfg.vocab * d)?) } else { None };
        Ok(Self { cfg, embed, blocks, norm, head })
    }
}

impl Decoder for Gemma3Model {
    /// The embeddings of `tokens`, scaled by √hidden (from the swapped table when `swap`
    /// replaces it).
    fn embed(&self, tokens: &[u32], swap: Swap<'_>) -> Result<Vec<f32>, RuntimeError> {
        let c = &self.cfg;
        let scale = (c.hidden as f32).sqrt();
        super::embed(swapped(swap, EMBED, &self.embed), tokens, c.hidden, c.vocab, scale)
    }

    /// Runs blocks `from..` on `h` (the input of block `from`) and the final norm.
    fn blocks_from(
        &self,
        mut h: Vec<f32>,
        from: usize,
        mut pass: Pass<'_, '_>,
        cancel: &Cancel,
    ) -> Result<(Vec<f32>, Vec<AttentionMap>), RuntimeError> {
        let c = &self.cfg;
        let (d, hd) = (c.hidden, c.head_dim);
        let t = h.len() / d.max(1);
        let global = rope_tables(t, hd, c.rope_global, c.rope_global_linear);
        let local = rope_tables(t, hd, c.rope_local, 1.0);
        let (record, swap) = (pass.record, pass.swap);
        let mut stats = pass.stats.take();
        let mut maps = Vec::new();
        for (l, b) in self.blocks.iter().enumerate().skip(from) {
            if cancel.is_cancelled() {
                return Err(RuntimeError::Cancelled);
            }
            if let Some(inputs) = pass.inputs.as_deref_mut() {
                inputs.push(h.clone());
            }
            let sliding = c.sliding.get(l).copied().unwrap_or(false);
            let x = rms_norm(&h, &b.attn_norm, c.eps, 1.0);
            record_inputs(
                stats.as_deref_mut(),
                l,
                &["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
                &x,
                d,
            );
            let (qd, kd) = (c.heads * hd, c.kv_heads * hd);
            let q = linear(&x, t, layer_swapped(swap, l, "self_attn.q_proj.weight", &b.q), qd, d);
            let k = linear(&x, t, layer_swapped(swap, l, "self_attn.k_proj.weight", &b.k), kd, d);
            let v = linear(&x, t, layer_swapped(swap, l, "self_attn.v_proj.weight", &b.v), kd, d);
            let q = rms_norm(&q, &b.q_norm, c.eps, 1.0);
            let k = rms_norm(&k, &b.k_norm, c.eps, 1.0);
            let (mut q, mut k) = (q, k);
            let (cos, sin) = if sliding { &local } else { &global };
            rotate_half(&mut q, c.heads, hd, cos, sin);
            rotate_half(&mut k, c.kv_heads, hd, cos, sin);
            // `attention` scales by 1/√hd; Gemma's scale is folded into the queries instead.
            let fold = c.scale * (hd as f32).sqrt();
            if fold != 1.0 {
                q.iter_mut().for_each(|v| *v *= fold);
            }
            let want: Vec<usize> = record.iter().filter(|(rl, _)| *rl == l).map(|(_, hh)| *hh).collect();
            let mask = Mask::Causal { window: sliding.then_some(c.window) };
            let (attn, recorded) = attention(&q, &k, &v, t, c.heads, c.kv_heads, hd, mask, &want);
            maps.extend(recorded.into_iter().map(|(head, probs)| AttentionMap {
                layer: l,
                head,
                tokens: t,
                causal: true,
                probs,
            }));
            record_inputs(stats.as_deref_mut(), l, &["self_attn.o_proj"], &attn, qd);
            let o = linear(&attn, t, layer_swapped(swap, l, "self_attn.o_proj.weight", &b.o), d, qd);
            let o = rms_norm(&o, &b.post_attn_norm, c.eps, 1.0);
            h.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            let x = rms_norm(&h, &b.pre_mlp_norm, c.eps, 1.0);
            let f = c.intermediate;
            record_inputs(stats.as_deref_mut(), l, &["mlp.gate_proj", "mlp.up_proj"], &x, d);
            let g = linear(&x, t, layer_swapped(swap, l, "mlp.gate_proj.weight", &b.gate), f, d);
            let u = linear(&x, t, layer_swapped(swap, l, "mlp.up_proj.weight", &b.up), f, d);
            let a: Vec<f32> = g.iter().zip(&u).map(|(g, u)| gelu_tanh(*g) * u).collect();
            record_inputs(stats.as_deref_mut(), l, &["mlp.down_proj"], &a, f);
            let m = linear(&a, t, layer_swapped(swap, l, "mlp.down_proj.weight", &b.down), d, f);
            let m = rms_norm(&m, &b.post_mlp_norm, c.eps, 1.0);
            h.iter_mut().zip(&m).for_each(|(a, b)| *a += b);
        }
        Ok((rms_norm(&h, &self.norm, c.eps, 1.0), maps))
    }

    /// Logits of hidden rows `rows`, with the head swapped when `swap` replaces it (or the
    /// embedding it is tied to).
    fn logits(&self, hidden: &[f32], rows: std::ops::Range<usize>, swap: Swap<'_>) -> Vec<f32> {
        let d = self.cfg.hidden;
        let head = match &self.head {
            Some(h) => swapped(swap, HEAD, h),
            None => swapped(swap, EMBED, &self.embed),
        };
        let mut out = linear(&hidden[rows.start * d..rows.end * d], rows.len(), head, self.cfg.vocab, d);
        if let Some(cap) = self.cfg.final_softcap {
            out.iter_mut().for_each(|v| *v = cap * (*v / cap).tanh());
        }
        out
    }
}
