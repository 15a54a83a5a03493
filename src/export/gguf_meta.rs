//! GGUF metadata for a transformers checkpoint: the architecture's keys from `config.json` (as
//! gguf-py's `constants.py` names them and llama.cpp's loader requires them) and the tokenizer
//! from `tokenizer.json` in llama.cpp's `tokenizer.ggml.*` keys.
//!
//! Built for the Llama family (llama, mistral, qwen2) and Gemma 3, with byte-level BPE
//! tokenizers (llama.cpp's `gpt2` model) or SentencePiece ones (its `llama` model: a BPE model
//! with byte fallback, or a Unigram model with its scores; see [`crate::checkpoint::sentencepiece`]).

use serde_json::Value;

use crate::checkpoint::Checkpoint;
use crate::checkpoint::gguf::{GgufArray, GgufValue};

fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> GgufValue {
    let (mut data, mut ends) = (String::new(), Vec::new());
    for s in items {
        data.push_str(s);
        ends.push(data.len());
    }
    GgufValue::Array(GgufArray::Strings { data, ends })
}

fn i32s(values: &[i32]) -> GgufValue {
    GgufValue::Array(GgufArray::Numbers { type_id: 5, bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect() })
}

fn f32s(values: &[f32]) -> GgufValue {
    GgufValue::Array(GgufArray::Numbers { type_id: 6, bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect() })
}

fn read_json(path: &std::path::Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

/// GGUF key-values in file order.
pub type KeyValues = Vec<(String, GgufValue)>;

/// The key-values of a GGUF file for `ckpt` (a transformers folder) and what they approximate,
/// or why they cannot be made.
pub fn from_transformers(ckpt: &Checkpoint) -> Result<(KeyValues, Vec<String>), String> {
    let m = ckpt.model_config().ok_or("the checkpoint has no config.json with a known architecture")?;
    let arch = m.architecture.as_str();
    if !matches!(arch, "llama" | "mistral" | "qwen2" | "gemma3") {
        return Err(format!(
            "GGUF export from transformers checkpoints is built for llama, mistral, qwen2 and gemma3, not `{arch}` (yet)"
        ));
    }
    let need = |v: Option<u64>, what: &str| v.ok_or_else(|| format!("config.json lacks {what}"));
    let heads = need(m.num_heads, "num_attention_heads")?;
    let hidden = need(m.hidden_size, "hidden_size")?;
    let u32v = |v: u64| GgufValue::U32(u32::try_from(v).unwrap_or(u32::MAX));
    let name = ckpt.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut kv: Vec<(String, GgufValue)> = vec![
        ("general.architecture".into(), GgufValue::String(arch.into())),
        ("general.name".into(), GgufValue::String(name)),
        (format!("{arch}.context_length"), u32v(need(m.max_position, "max_position_embeddings")?)),
        (format!("{arch}.embedding_length"), u32v(hidden)),
        (format!("{arch}.feed_forward_length"), u32v(need(m.intermediate_size, "intermediate_size")?)),
        (format!("{arch}.block_count"), u32v(need(m.num_layers, "num_hidden_layers")?)),
        (format!("{arch}.attention.head_count"), u32v(heads)),
        (format!("{arch}.attention.head_count_kv"), u32v(m.num_kv_heads.unwrap_or(heads))),
        (format!("{arch}.rope.freq_base"), GgufValue::F32(m.rope_theta.unwrap_or(10000.0) as f32)),
        (format!("{arch}.attention.layer_norm_rms_epsilon"), GgufValue::F32(m.norm_eps.unwrap_or(1e-5) as f32)),
        (format!("{arch}.rope.dimension_count"), u32v(m.rope_dims.or(m.head_dim).unwrap_or(hidden / heads.max(1)))),
    ];
    if let Some(v) = m.vocab_size {
        kv.push((format!("{arch}.vocab_size"), u32v(v)));
    }
    if arch == "gemma3" {
        // Gemma's heads are wider than hidden / heads; llama.cpp reads the width from here.
        let head_dim = need(m.head_dim, "head_dim")?;
        kv.push((format!("{arch}.attention.key_length"), u32v(head_dim)));
        kv.push((format!("{arch}.attention.value_length"), u32v(head_dim)));
        if let Some(w) = m.sliding_window {
            kv.push((format!("{arch}.attention.sliding_window"), u32v(w)));
        }
    }
    let mut notes = Vec::new();
    match &m.rope_scaling {
        Some(s) if matches!(s.kind.as_str(), "linear" | "yarn") && s.factor.is_some() => {
            kv.push((format!("{arch}.rope.scaling.type"), GgufValue::String(s.kind.clone())));
            kv.push((format!("{arch}.rope.scaling.factor"), GgufValue::F32(s.factor.unwrap_or(1.0) as f32)));
            if let Some(n) = s.original_context_length {
                kv.push((format!("{arch}.rope.scaling.original_context_length"), u32v(n)));
            }
        }
        Some(s) if !s.kind.is_empty() && s.kind != "default" => {
            notes.push(format!("RoPE scaling `{}` is not written to the GGUF (linear and yarn are)", s.kind));
        }
        _ => {}
    }
    let folder = ckpt.path();
    let tokenizer = read_json(&folder.join("tokenizer.json"))
        .map_err(|e| format!("{e}: GGUF needs the tokenizer (tokenizer.json)"))?;
    let config = read_json(&folder.join("tokenizer_config.json")).unwrap_or(Value::Null);
    tokenizer_keys(&tokenizer, &config, &mut kv, &mut notes)?;
    Ok((kv, notes))
}

/// llama.cpp's `tokenizer.ggml.*` keys of a byte-level BPE or SentencePiece `tokenizer.json`.
fn tokenizer_keys(
    tokenizer: &Value,
    config: &Value,
    kv: &mut Vec<(String, GgufValue)>,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let model = &tokenizer["model"];
    let unigram = model["type"] == "Unigram";
    let sentencepiece = unigram || (model["type"] == "BPE" && model["byte_fallback"] == true);
    if model["type"] != "BPE" && !unigram {
        return Err(format!("a `{}` tokenizer model has no llama.cpp form here (BPE and Unigram do)", model["type"]));
    }
    let mut by_id: Vec<Option<String>> = Vec::new();
    let mut put = |id: u64, token: &str| {
        let Ok(id) = usize::try_from(id) else { return };
        if by_id.len() <= id && id < 1 << 24 {
            by_id.resize(id + 1, None);
        }
        if let Some(slot) = by_id.get_mut(id) {
            *slot = Some(token.to_owned());
        }
    };
    let mut unigram_scores: Vec<f32> = Vec::new();
    if unigram {
        let pieces = model["vocab"].as_array().ok_or("tokenizer.json has no model.vocab")?;
        for (id, piece) in pieces.iter().enumerate() {
            put(id as u64, piece[0].as_str().ok_or("a Unigram piece is not [text, score]")?);
            unigram_scores.push(piece[1].as_f64().unwrap_or(0.0) as f32);
        }
    } else {
        let vocab = model["vocab"].as_object().ok_or("tokenizer.json has no model.vocab")?;
        for (token, id) in vocab {
            put(id.as_u64().ok_or("a vocabulary id is not a number")?, token);
        }
    }
    let mut types: Vec<i32> = Vec::new();
    let mut added: Vec<(usize, bool)> = Vec::new();
    for a in tokenizer["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(content)) = (a["id"].as_u64(), a["content"].as_str()) else { continue };
        put(id, content);
        added.push((id as usize, a["special"] == true));
    }
    if by_id.iter().any(Option::is_none) {
        return Err("the vocabulary has gaps in its ids".into());
    }
    let tokens: Vec<String> = by_id.into_iter().flatten().collect();
    types.resize(tokens.len(), 1);
    for (id, special) in added {
        types[id] = if special { 3 } else { 4 };
    }
    let pairs: Vec<(String, String)> = model["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| match m {
            Value::String(s) => s.split_once(' ').map(|(l, r)| (l.to_owned(), r.to_owned())),
            Value::Array(pair) => Some((pair.first()?.as_str()?.to_owned(), pair.get(1)?.as_str()?.to_owned())),
            _ => None,
        })
        .collect();
    if sentencepiece {
        let scores = if unigram {
            unigram_scores.resize(tokens.len(), 0.0);
            unigram_scores
        } else {
            crate::checkpoint::sentencepiece::scores_from_merges(&tokens, &pairs)
        };
        let unk = model["unk_token"].as_str();
        for (i, t) in tokens.iter().enumerate() {
            if types[i] == 1 && crate::checkpoint::sentencepiece::is_byte_token(t) {
                types[i] = 6;
            } else if types[i] == 1 && Some(t.as_str()) == unk {
                types[i] = 2;
            }
        }
        kv.push(("tokenizer.ggml.model".into(), GgufValue::String("llama".into())));
        kv.push(("tokenizer.ggml.pre".into(), GgufValue::String("default".into())));
        kv.push(("tokenizer.ggml.tokens".into(), strings(tokens.iter().map(String::as_str))));
        kv.push(("tokenizer.ggml.scores".into(), f32s(&scores)));
        kv.push(("tokenizer.ggml.token_type".into(), i32s(&types)));
        let prefix = crate::checkpoint::sentencepiece::prepends_space(&tokenizer["normalizer"]);
        kv.push(("tokenizer.ggml.add_space_prefix".into(), GgufValue::Bool(prefix)));
        special_keys(&tokens, config, kv);
        return Ok(());
    }
    let merges: Vec<String> = pairs.iter().map(|(l, r)| format!("{l} {r}")).collect();
    let pre = &tokenizer["pre_tokenizer"];
    let is_byte_level = |p: &Value| p["type"] == "ByteLevel";
    let pre_name = match pre["type"].as_str() {
        Some("ByteLevel") => "gpt-2",
        Some("Sequence") => {
            let parts = pre["pretokenizers"].as_array().cloned().unwrap_or_default();
            match parts.as_slice() {
                [d, b] if d["type"] == "Digits" && d["individual_digits"] == true && is_byte_level(b) => "smollm",
                _ => {
                    notes.push("the tokenizer's pre-tokenizer has no llama.cpp name here: `default` written".into());
                    "default"
                }
            }
        }
        _ => {
            notes.push("the tokenizer's pre-tokenizer has no llama.cpp name here: `default` written".into());
            "default"
        }
    };
    kv.push(("tokenizer.ggml.model".into(), GgufValue::String("gpt2".into())));
    kv.push(("tokenizer.ggml.pre".into(), GgufValue::String(pre_name.into())));
    kv.push(("tokenizer.ggml.tokens".into(), strings(tokens.iter().map(String::as_str))));
    kv.push(("tokenizer.ggml.token_type".into(), i32s(&types)));
    kv.push(("tokenizer.ggml.merges".into(), strings(merges.iter().map(String::as_str))));
    special_keys(&tokens, config, kv);
    Ok(())
}

/// Special token ids, the BOS flag and the chat template from `tokenizer_config.json`.
fn special_keys(tokens: &[String], config: &Value, kv: &mut Vec<(String, GgufValue)>) {
    let id_of = |field: &str| -> Option<u32> {
        let token = match &config[field] {
            Value::String(s) => s.as_str(),
            Value::Object(o) => o.get("content")?.as_str()?,
            _ => return None,
        };
        tokens.iter().position(|t| t == token).and_then(|i| u32::try_from(i).ok())
    };
    for (field, key) in [
        ("bos_token", "tokenizer.ggml.bos_token_id"),
        ("eos_token", "tokenizer.ggml.eos_token_id"),
        ("unk_token", "tokenizer.ggml.unknown_token_id"),
        ("pad_token", "tokenizer.ggml.padding_token_id"),
    ] {
        if let Some(id) = id_of(field) {
            kv.push((key.into(), GgufValue::U32(id)));
        }
    }
    kv.push(("tokenizer.ggml.add_bos_token".into(), GgufValue::Bool(config["add_bos_token"] == true)));
    if let Some(eos) = config["add_eos_token"].as_bool() {
        kv.push(("tokenizer.ggml.add_eos_token".into(), GgufValue::Bool(eos)));
    }
    if let Some(t) = config["chat_template"].as_str() {
        kv.push(("tokenizer.chat_template".into(), GgufValue::String(t.into())));
    }
}
