//! A transformers `config.json` built from GGUF metadata, for the architectures whose tensor
//! names [`crate::checkpoint::hf_names`] maps. Only what the GGUF file states is written (plus
//! the class names); everything else is left to transformers' defaults, as its own GGUF loader
//! does.

use serde_json::{Map, Value, json};

use crate::checkpoint::{Checkpoint, GgufValue};
use crate::codec::DType;

/// The config, or `None` for an architecture without a transformers mapping.
pub fn config_from_gguf(ckpt: &Checkpoint, out_dtype: DType) -> Option<Value> {
    let gguf = ckpt.gguf()?;
    let arch = gguf.get("general.architecture")?.as_str()?;
    let key = |k: &str| gguf.get(&format!("{arch}.{k}"));
    let uint = |k: &str| key(k).and_then(GgufValue::as_u64);
    let float = |k: &str| key(k).and_then(GgufValue::as_f64);
    let token = |k: &str| gguf.get(&format!("tokenizer.ggml.{k}")).and_then(GgufValue::as_u64);

    let (class, model_type) = match arch {
        "llama" | "mistral" => ("LlamaForCausalLM", "llama"),
        "qwen2" => ("Qwen2ForCausalLM", "qwen2"),
        "gemma" => ("GemmaForCausalLM", "gemma"),
        "gemma2" => ("Gemma2ForCausalLM", "gemma2"),
        "gemma3" => ("Gemma3ForCausalLM", "gemma3_text"),
        _ => return None,
    };
    let vocab = uint("vocab_size")
        .or_else(|| match gguf.get("tokenizer.ggml.tokens") {
            Some(GgufValue::Array(tokens)) => Some(tokens.len() as u64),
            _ => None,
        })
        .or_else(|| ckpt.tensor("token_embd.weight").and_then(|t| t.shape.first().copied()));

    let mut c = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            c.insert(k.to_owned(), v);
        }
    };
    put("architectures", Some(json!([class])));
    put("model_type", Some(json!(model_type)));
    put("vocab_size", vocab.map(Value::from));
    put("hidden_size", uint("embedding_length").map(Value::from));
    put("intermediate_size", uint("feed_forward_length").map(Value::from));
    put("num_hidden_layers", uint("block_count").map(Value::from));
    put("num_attention_heads", uint("attention.head_count").map(Value::from));
    put(
        "num_key_value_heads",
        uint("attention.head_count_kv").or_else(|| uint("attention.head_count")).map(Value::from),
    );
    put("max_position_embeddings", uint("context_length").map(Value::from));
    put("rms_norm_eps", float("attention.layer_norm_rms_epsilon").map(|v| json!(v as f32)));
    put("rope_theta", float("rope.freq_base").map(|v| json!(v as f32)));
    put("head_dim", uint("attention.key_length").map(Value::from));
    put("sliding_window", uint("attention.sliding_window").map(Value::from));
    if arch == "gemma3" {
        put("query_pre_attn_scalar", uint("attention.key_length").map(Value::from));
    }
    put("bos_token_id", token("bos_token_id").map(Value::from));
    put("eos_token_id", token("eos_token_id").map(Value::from));
    put("pad_token_id", token("padding_token_id").map(Value::from));
    put("tie_word_embeddings", Some(json!(ckpt.tensor("output.weight").is_none())));
    let torch_dtype = match out_dtype {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        _ => "float32",
    };
    put("torch_dtype", Some(json!(torch_dtype)));
    Some(Value::Object(c))
}
