//! The Llama family's forward pass (llama, mistral, qwen2 — which covers SmolLM2): RMSNorm,
//! RoPE with the configuration's base (and linear scaling), grouped-query attention, SwiGLU,
//! tied or separate LM head, Q/K/V biases where the checkpoint has them. f32 throughout, as
//! transformers computes on the CPU; matmuls through faer, heads in parallel (rayon).
//!
//! Memory: the weights (f32), the activations of one layer, and one T × T score matrix per head
//! being computed; attention probabilities are kept only for the (layer, head) pairs asked for.

use faer::{MatRef, Par};
use rayon::prelude::*;

use super::linalg::{add_bias, linear, matmul, rms_norm, silu_gate, softmax};
use super::weights::WeightSource;
use super::{AttentionMap, Decoder, EMBED, HEAD, Pass, RuntimeError, Swap, layer_swapped, record_inputs, swapped};
use crate::cancel::Cancel;
use crate::checkpoint::ModelConfig;

/// What the Llama pass needs from the configuration, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
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
    /// RoPE base.
    pub rope_theta: f32,
    /// Linear RoPE scaling factor (positions are divided by it); 1 without scaling.
    pub rope_linear: f32,
    /// RMSNorm epsilon.
    pub eps: f32,
}

impl LlamaConfig {
    /// From a typed model configuration, or what is missing or unsupported.
    pub fn from_model(c: &ModelConfig) -> Result<Self, String> {
        let need = |v: Option<u64>, what: &str| {
            v.map(|v| v as usize).ok_or_else(|| format!("the configuration has no {what}"))
        };
        let heads = need(c.num_heads, "number of attention heads")?;
        let kv_heads = need(c.num_kv_heads, "number of key/value heads")?;
        if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(format!("{heads} attention heads cannot share {kv_heads} key/value heads"));
        }
        let rope_linear = match &c.rope_scaling {
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
            layers: need(c.num_layers, "number of layers")?,
            heads,
            kv_heads,
            head_dim: need(c.head_dim, "head width")?,
            vocab: need(c.vocab_size, "vocabulary size")?,
            rope_theta: c.rope_theta.unwrap_or(10000.0) as f32,
            rope_linear,
            eps: c.norm_eps.unwrap_or(1e-6) as f32,
        })
    }
}

/// One block's weights.
struct Block {
    attn_norm: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    q_bias: Option<Vec<f32>>,
    k_bias: Option<Vec<f32>>,
    v_bias: Option<Vec<f32>>,
    o: Vec<f32>,
    mlp_norm: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    down: Vec<f32>,
}

/// A loaded Llama-family model.
pub struct LlamaModel {
    /// Its configuration.
    pub cfg: LlamaConfig,
    embed: Vec<f32>,
    blocks: Vec<Block>,
    norm: Vec<f32>,
    /// The LM head when it is not the embedding.
    head: Option<Vec<f32>>,
}

impl LlamaModel {
    /// Loads every weight from `src` (`progress(done, total)` after each block).
    pub fn load(
        cfg: LlamaConfig,
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
            let bias = |s: &str, n: usize| -> Result<Option<Vec<f32>>, RuntimeError> {
                let name = p(s);
                if src.has(&name) { src.load(&name, n).map(Some) } else { Ok(None) }
            };
            blocks.push(Block {
                attn_norm: src.load(&p("input_layernorm.weight"), d)?,
                q: src.load(&p("self_attn.q_proj.weight"), qd * d)?,
                k: src.load(&p("self_attn.k_proj.weight"), kd * d)?,
                v: src.load(&p("self_attn.v_proj.weight"), kd * d)?,
                q_bias: bias("self_attn.q_proj.bias", qd)?,
                k_bias: bias("self_attn.k_proj.bias", kd)?,
                v_bias: bias("self_attn.v_proj.bias", kd)?,
                o: src.load(&p("self_attn.o_proj.weight"), d * qd)?,
                mlp_norm: src.load(&p("post_attention_layernorm.weight"), d)?,
                gate: src.load(&p("mlp.gate_proj.weight"), f * d)?,
                up: src.load(&p("mlp.up_proj.weight"), f * d)?,
                down: src.load(&p("mlp.down_proj.weight"), d * f)?,
            });
            progress(l + 1, cfg.layers);
        }
        let norm = src.load("model.norm.weight", d)?;
        let head = if src.has("lm_head.weight") { Some(src.load("lm_head.weight", cfg.vocab * d)?) } else { None };
        Ok(Self { cfg, embed, blocks, norm, head })
    }
}

impl Decoder for LlamaModel {
    /// The embeddings of `tokens` (from the swapped table when `swap` replaces it).
    fn embed(&self, tokens: &[u32], swap: Swap<'_>) -> Result<Vec<f32>, RuntimeError> {
        let c = &self.cfg;
        super::embed(swapped(swap, EMBED, &self.embed), tokens, c.hidden, c.vocab, 1.0)
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
        let (cos, sin) = rope_tables(t, hd, c.rope_theta, c.rope_linear);
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
            let x = rms_norm(&h, &b.attn_norm, c.eps, 0.0);
            record_inputs(
                stats.as_deref_mut(),
                l,
                &["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
                &x,
                d,
            );
            let (qd, kd) = (c.heads * hd, c.kv_heads * hd);
            let mut q = linear(&x, t, layer_swapped(swap, l, "self_attn.q_proj.weight", &b.q), qd, d);
            let mut k = linear(&x, t, layer_swapped(swap, l, "self_attn.k_proj.weight", &b.k), kd, d);
            let mut v = linear(&x, t, layer_swapped(swap, l, "self_attn.v_proj.weight", &b.v), kd, d);
            for (y, bias) in [(&mut q, &b.q_bias), (&mut k, &b.k_bias), (&mut v, &b.v_bias)] {
                if let Some(bias) = bias {
                    add_bias(y, bias);
                }
            }
            rotate_half(&mut q, c.heads, hd, &cos, &sin);
            rotate_half(&mut k, c.kv_heads, hd, &cos, &sin);
            let want: Vec<usize> = record.iter().filter(|(rl, _)| *rl == l).map(|(_, hh)| *hh).collect();
            let (attn, recorded) =
                attention(&q, &k, &v, t, c.heads, c.kv_heads, hd, Mask::Causal { window: None }, &want);
            maps.extend(recorded.into_iter().map(|(head, probs)| AttentionMap {
                layer: l,
                head,
                tokens: t,
                causal: true,
                probs,
            }));
            record_inputs(stats.as_deref_mut(), l, &["self_attn.o_proj"], &attn, qd);
            let o = linear(&attn, t, layer_swapped(swap, l, "self_attn.o_proj.weight", &b.o), d, qd);
            h.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            let x = rms_norm(&h, &b.mlp_norm, c.eps, 0.0);
            let f = c.intermediate;
            record_inputs(stats.as_deref_mut(), l, &["mlp.gate_proj", "mlp.up_proj"], &x, d);
            let g = linear(&x, t, layer_swapped(swap, l, "mlp.gate_proj.weight", &b.gate), f, d);
            let u = linear(&x, t, layer_swapped(swap, l, "mlp.up_proj.weight", &b.up), f, d);
            let a = silu_gate(&g, &u);
            record_inputs(stats.as_deref_mut(), l, &["mlp.down_proj"], &a, f);
            let down = linear(&a, t, layer_swapped(swap, l, "mlp.down_proj.weight", &b.down), d, f);
            h.iter_mut().zip(&down).for_each(|(a, b)| *a += b);
        }
        Ok((rms_norm(&h, &self.norm, c.eps, 0.0), maps))
    }

    /// Logits of hidden rows `rows` (`rows.len() × vocab`), with the head swapped when `swap`
    /// replaces it (or the embedding it is tied to).
    fn logits(&self, hidden: &[f32], rows: std::ops::Range<usize>, swap: Swap<'_>) -> Vec<f32> {
        let d = self.cfg.hidden;
        let head = match &self.head {
            Some(h) => swapped(swap, HEAD, h),
            None => swapped(swap, EMBED, &self.embed),
        };
        linear(&hidden[rows.start * d..rows.end * d], rows.len(), head, self.cfg.vocab, d)
    }
}

/// cos and sin of RoPE angles, `T × head_dim/2`, computed in f32 as transformers does
/// (`inv_freq = 1 / base^(2i/d)`, angle = position · inv_freq).
pub fn rope_tables(t: usize, hd: usize, theta: f32, linear_factor: f32) -> (Vec<f32>, Vec<f32>) {
    let half = hd / 2;
    let inv: Vec<f32> = (0..half).map(|i| 1.0 / theta.powf((2 * i) as f32 / hd as f32)).collect();
    let mut cos = Vec::with_capacity(t * half);
    let mut sin = Vec::with_capacity(t * half);
    for p in 0..t {
        let pos = p as f32 / linear_factor;
        for f in &inv {
            let a = pos * f;
            cos.push(a.cos());
            sin.push(a.sin());
        }
    }
    (cos, sin)
}

/// RoPE in transformers' layout (each head's halves rotated together: `rotate_half`).
pub fn rotate_half(x: &mut [f32], heads: usize, hd: usize, cos: &[f32], sin: &[f32]) {
    let half = hd / 2;
    for (p, row) in x.chunks_exact_mut(heads * hd).enumerate() {
        let (c, s) = (&cos[p * half..(p + 1) * half], &sin[p * half..(p + 1) * half]);
        for head in row.chunks_exact_mut(hd) {
            let (a, b) = head.split_at_mut(half);
            for i in 0..half {
                let (x1, x2) = (a[i], b[i]);
                a[i] = x1 * c[i] - x2 * s[i];
                b[i] = x2 * c[i] + x1 * s[i];
            }
        }
    }
}

/// Which keys a query sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mask {
    /// Itself and the keys before it, at most `window` keys in all when given (decoders).
    Causal {
        /// The sliding window, if any.
        window: Option<usize>,
    },
    /// Every key (encoders such as BERT).
    Full,
}

/// Queries per tile of [`attention`].
const QUERY_TILE: usize = 128;

/// Multi-head attention (grouped-query: head `h` reads key/value head `h / (heads / kv_heads)`)
/// under `mask`. Returns the heads' outputs (`T × heads·hd`) and the probabilities of the heads
/// in `record`.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    t: usize,
    heads: usize,
    kv_heads: usize,
    hd: usize,
    mask: Mask,
    record: &[usize],
) -> (Vec<f32>, Vec<(usize, Vec<f32>)>) {
    let group = heads / kv_heads.max(1);
    let scale = 1.0 / (hd as f32).sqrt();
    let per_head: Vec<(Vec<f32>, Option<Vec<f32>>)> = (0..heads)
        .into_par_iter()
        .map(|h| {
            let g = h / group.max(1);
            let qh = MatRef::from_row_major_slice_with_stride(&q[h * hd..], t, hd, heads * hd);
            let kh = MatRef::from_row_major_slice_with_stride(&k[g * hd..], t, hd, kv_heads * hd);
            let vh = MatRef::from_row_major_slice_with_stride(&v[g * hd..], t, hd, kv_heads * hd);
            // Queries in tiles: under a causal mask a tile's queries see only the keys up to its
            // last one, so the scores and the products with V stop there.
            let mut s = vec![0f32; t * t];
            let mut out = vec![0f32; t * hd];
            for i0 in (0..t).step_by(QUERY_TILE) {
                let i1 = (i0 + QUERY_TILE).min(t);
                let keys = if matches!(mask, Mask::Causal { .. }) { i1 } else { t };
                let scores = matmul(qh.subrows(i0, i1 - i0), kh.subrows(0, keys).transpose(), scale, Par::Seq);
                for (r, row) in scores.chunks_exact(keys).enumerate() {
                    let i = i0 + r;
                    let (first, last) = match mask {
                        Mask::Causal { window } => (window.map_or(0, |w| (i + 1).saturating_sub(w)), i + 1),
                        Mask::Full => (0, t),
                    };
                    let p = &mut s[i * t..(i + 1) * t];
                    p[first..last].copy_from_slice(&row[first..last]);
                    softmax(&mut p[first..last]);
                }
                let probs = MatRef::from_row_major_slice_with_stride(&s[i0 * t..], i1 - i0, keys, t);
                let o = matmul(probs, vh.subrows(0, keys), 1.0, Par::Seq);
                out[i0 * hd..i1 * hd].copy_from_slice(&o);
            }
            (out, record.contains(&h).then_some(s))
        })
        .collect();
    let mut attn = vec![0f32; t * heads * hd];
    let mut maps = Vec::new();
    for (h, (out, probs)) in per_head.into_iter().enumerate() {
        for i in 0..t {
            attn[i * heads * hd + h * hd..i * heads * hd + (h + 1) * hd].copy_from_slice(&out[i * hd..(i + 1) * hd]);
        }
        if let Some(p) = probs {
            maps.push((h, p));
        }
    }
    (attn, maps)
}
