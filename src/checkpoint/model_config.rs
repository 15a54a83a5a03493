//! A model's configuration, typed: what the runtime, the exporters and the views need to know
//! about a checkpoint beyond its tensors — sizes, heads, RoPE, norms, vocabulary — built the same
//! way from a Hugging Face `config.json` or from GGUF metadata (`<arch>.*` keys). Values a source
//! does not state stay `None`; nothing is guessed beyond the defaults the formats themselves
//! define (`num_key_value_heads` = heads, `head_dim` = hidden / heads).

use serde::Serialize;
use serde_json::Value;

use super::GgufInfo;
use super::gguf::GgufValue;
use super::hf_names;

/// How a block normalises its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// RMSNorm (Llama, Qwen2, Gemma).
    RmsNorm,
    /// LayerNorm with a bias (BERT, GPT-2).
    LayerNorm,
}

/// RoPE frequency scaling.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RopeScaling {
    /// `linear`, `yarn`, `llama3`, ... as the source names it.
    pub kind: String,
    /// The scaling factor.
    pub factor: Option<f64>,
    /// The context length the model was trained with before scaling.
    pub original_context_length: Option<u64>,
}

/// The configuration of a transformer checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ModelConfig {
    /// GGUF architecture name (`llama`, `qwen2`, `gemma3`, `bert`, ...): the family key used
    /// across the workbench; a Hugging Face `model_type` is mapped to it.
    pub architecture: String,
    /// The Hugging Face `model_type`, where known (`llama`, `gemma3_text`, `bert`, ...).
    pub model_type: Option<String>,
    /// Embedding width.
    pub hidden_size: Option<u64>,
    /// Feed-forward width.
    pub intermediate_size: Option<u64>,
    /// Number of blocks.
    pub num_layers: Option<u64>,
    /// Attention heads.
    pub num_heads: Option<u64>,
    /// Key/value heads (grouped-query attention); the heads when not stated.
    pub num_kv_heads: Option<u64>,
    /// Width of one head; hidden / heads when not stated.
    pub head_dim: Option<u64>,
    /// Vocabulary size.
    pub vocab_size: Option<u64>,
    /// Longest context.
    pub max_position: Option<u64>,
    /// RoPE base frequency.
    pub rope_theta: Option<f64>,
    /// Dimensions rotated by RoPE (the head width when not stated).
    pub rope_dims: Option<u64>,
    /// RoPE scaling, if any.
    pub rope_scaling: Option<RopeScaling>,
    /// Normalisation.
    pub norm: Option<NormKind>,
    /// Normalisation epsilon.
    pub norm_eps: Option<f64>,
    /// Whether the LM head shares the embedding matrix.
    pub tie_word_embeddings: Option<bool>,
    /// Sliding attention window, for models with local layers.
    pub sliding_window: Option<u64>,
    /// Activation of the feed-forward block.
    pub activation: Option<String>,
    /// Beginning-of-sequence token.
    pub bos_token_id: Option<u64>,
    /// End-of-sequence token.
    pub eos_token_id: Option<u64>,
    /// Padding token.
    pub pad_token_id: Option<u64>,
}

fn json_u64(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

fn json_f64(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

impl ModelConfig {
    /// From a Hugging Face `config.json` (for multimodal configs, its `text_config`).
    pub fn from_hf_json(config: &Value) -> Option<Self> {
        let c = config.get("text_config").filter(|t| t.is_object()).unwrap_or(config);
        let model_type = c.get("model_type").or_else(|| config.get("model_type")).and_then(Value::as_str);
        let class = config.get("architectures").and_then(|a| a.get(0)).and_then(Value::as_str);
        let architecture = model_type
            .and_then(hf_names::gguf_architecture)
            .or_else(|| class.and_then(hf_names::gguf_architecture_of_class))
            .map(str::to_owned)
            .or_else(|| model_type.map(str::to_owned))?;
        let num_heads = json_u64(c, "num_attention_heads");
        let hidden = json_u64(c, "hidden_size");
        let layer_norm = matches!(architecture.as_str(), "bert" | "gpt2");
        let rope_scaling = c.get("rope_scaling").filter(|r| r.is_object()).map(|r| RopeScaling {
            kind: r.get("rope_type").or_else(|| r.get("type")).and_then(Value::as_str).unwrap_or("").to_owned(),
            factor: json_f64(r, "factor"),
            original_context_length: json_u64(r, "original_max_position_embeddings"),
        });
        let head_dim = json_u64(c, "head_dim").or_else(|| Some(hidden? / num_heads.filter(|&h| h > 0)?));
        Some(Self {
            architecture,
            model_type: model_type.map(str::to_owned),
            hidden_size: hidden,
            intermediate_size: json_u64(c, "intermediate_size"),
            num_layers: json_u64(c, "num_hidden_layers"),
            num_heads,
            num_kv_heads: json_u64(c, "num_key_value_heads").or(num_heads),
            head_dim,
            vocab_size: json_u64(c, "vocab_size"),
            max_position: json_u64(c, "max_position_embeddings"),
            rope_theta: json_f64(c, "rope_theta"),
            rope_dims: head_dim.filter(|_| !layer_norm),
            rope_scaling,
            norm: Some(if layer_norm { NormKind::LayerNorm } else { NormKind::RmsNorm }),
            norm_eps: json_f64(c, "rms_norm_eps").or_else(|| json_f64(c, "layer_norm_eps")),
            tie_word_embeddings: c.get("tie_word_embeddings").and_then(Value::as_bool),
            sliding_window: json_u64(c, "sliding_window"),
            activation: c
                .get("hidden_activation")
                .or_else(|| c.get("hidden_act"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            bos_token_id: json_u64(c, "bos_token_id"),
            eos_token_id: json_u64(c, "eos_token_id"),
            pad_token_id: json_u64(c, "pad_token_id"),
        })
    }

    /// From GGUF metadata; `has_output` says whether the file has its own `output.weight`
    /// (without one, the head is tied to the embedding), `embedding_rows` the rows of
    /// `token_embd.weight` (the vocabulary when no key states it).
    pub fn from_gguf(gguf: &GgufInfo, has_output: bool, embedding_rows: Option<u64>) -> Option<Self> {
        let arch = gguf.get("general.architecture")?.as_str()?.to_owned();
        let key = |k: &str| gguf.get(&format!("{arch}.{k}"));
        let uint = |k: &str| key(k).and_then(GgufValue::as_u64);
        let float = |k: &str| key(k).and_then(GgufValue::as_f64);
        let token = |k: &str| gguf.get(&format!("tokenizer.ggml.{k}")).and_then(GgufValue::as_u64);
        let num_heads = uint("attention.head_count");
        let hidden = uint("embedding_length");
        let head_dim = uint("attention.key_length").or_else(|| Some(hidden? / num_heads.filter(|&h| h > 0)?));
        let layer_norm = matches!(arch.as_str(), "bert" | "gpt2");
        let vocab = uint("vocab_size")
            .or_else(|| gguf.get("tokenizer.ggml.tokens").and_then(GgufValue::as_array).map(|a| a.len() as u64))
            .or(embedding_rows);
        let rope_scaling =
            key("rope.scaling.type").and_then(GgufValue::as_str).filter(|t| *t != "none").map(|kind| RopeScaling {
                kind: kind.to_owned(),
                factor: float("rope.scaling.factor"),
                original_context_length: uint("rope.scaling.original_context_length"),
            });
        Some(Self {
            model_type: hf_names::hf_architecture(&arch).map(|(_, model_type)| model_type.to_owned()),
            hidden_size: hidden,
            intermediate_size: uint("feed_forward_length"),
            num_layers: uint("block_count"),
            num_heads,
            num_kv_heads: uint("attention.head_count_kv").or(num_heads),
            head_dim,
            vocab_size: vocab,
            max_position: uint("context_length"),
            rope_theta: float("rope.freq_base"),
            rope_dims: uint("rope.dimension_count").or(head_dim.filter(|_| !layer_norm)),
            rope_scaling,
            norm: Some(if layer_norm { NormKind::LayerNorm } else { NormKind::RmsNorm }),
            norm_eps: float("attention.layer_norm_rms_epsilon").or_else(|| float("attention.layer_norm_epsilon")),
            tie_word_embeddings: Some(!has_output),
            sliding_window: uint("attention.sliding_window"),
            activation: None,
            bos_token_id: token("bos_token_id"),
            eos_token_id: token("eos_token_id"),
            pad_token_id: token("padding_token_id"),
            architecture: arch,
        })
    }
}
