//! A transformers `config.json` from a checkpoint's typed configuration
//! ([`crate::checkpoint::ModelConfig`], here built from GGUF metadata), for the architectures
//! whose tensor names [`crate::checkpoint::hf_names`] maps. Only what the source states is
//! written (plus the class names); everything else is left to transformers' defaults, as its
//! own GGUF loader does.

use serde_json::{Map, Value, json};

use crate::checkpoint::hf_names::{MAPPED_ARCHITECTURES, hf_architecture};
use crate::checkpoint::{Checkpoint, ModelConfig};
use crate::codec::DType;

/// The config of a GGUF checkpoint, or `None` for an architecture without a transformers mapping.
pub fn config_from_gguf(ckpt: &Checkpoint, out_dtype: DType) -> Option<Value> {
    ckpt.gguf()?;
    hf_config(ckpt.model_config()?, out_dtype)
}

/// The `config.json` of `m` for weights stored as `out_dtype`.
pub fn hf_config(m: &ModelConfig, out_dtype: DType) -> Option<Value> {
    if !MAPPED_ARCHITECTURES.contains(&m.architecture.as_str()) {
        return None;
    }
    let (class, model_type) = hf_architecture(&m.architecture)?;
    let mut c = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            c.insert(k.to_owned(), v);
        }
    };
    put("architectures", Some(json!([class])));
    put("model_type", Some(json!(model_type)));
    put("vocab_size", m.vocab_size.map(Value::from));
    put("hidden_size", m.hidden_size.map(Value::from));
    put("intermediate_size", m.intermediate_size.map(Value::from));
    put("num_hidden_layers", m.num_layers.map(Value::from));
    put("num_attention_heads", m.num_heads.map(Value::from));
    put("num_key_value_heads", m.num_kv_heads.map(Value::from));
    put("max_position_embeddings", m.max_position.map(Value::from));
    put("rms_norm_eps", m.norm_eps.map(|v| json!(v as f32)));
    put("rope_theta", m.rope_theta.map(|v| json!(v as f32)));
    put("head_dim", m.head_dim.map(Value::from));
    put("sliding_window", m.sliding_window.map(Value::from));
    if m.architecture == "gemma3" {
        put("query_pre_attn_scalar", m.head_dim.map(Value::from));
    }
    put("bos_token_id", m.bos_token_id.map(Value::from));
    put("eos_token_id", m.eos_token_id.map(Value::from));
    put("pad_token_id", m.pad_token_id.map(Value::from));
    put("tie_word_embeddings", m.tie_word_embeddings.map(Value::from));
    let torch_dtype = match out_dtype {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        _ => "float32",
    };
    put("torch_dtype", Some(json!(torch_dtype)));
    Some(Value::Object(c))
}
