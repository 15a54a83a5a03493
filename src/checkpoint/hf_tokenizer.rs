//! A Hugging Face tokenizer (`tokenizer.json`, `tokenizer_config.json`) rebuilt from a GGUF's
//! `tokenizer.ggml.*` keys, so that `convert` makes a complete transformers folder and the
//! runtime tokenizes a GGUF's text as its own folder would.
//!
//! Built for llama.cpp's `gpt2` model (byte-level BPE: SmolLM, Llama 3, Qwen 2, ...): the
//! vocabulary and merges as stored (already in byte-level form), control and user-defined
//! tokens as added tokens, and the pre-tokenizer llama.cpp's `tokenizer.ggml.pre` names where it
//! is known (`smollm`: single digits, then GPT-2's byte-level split); other names get GPT-2's
//! split and a note. SentencePiece vocabularies (llama.cpp's `llama` model: Gemma, Llama 2)
//! become a BPE model with byte fallback whose merges follow the GGUF's scores
//! ([`super::sentencepiece`]); control and user-defined pieces are added tokens matched in the raw
//! text, as llama.cpp matches them.

use serde_json::{Value, json};

use super::Checkpoint;
use super::gguf::{GgufArray, GgufValue};

/// The rebuilt files, and what was approximated.
pub struct Tokenizer {
    /// `tokenizer.json`.
    pub tokenizer: Value,
    /// `tokenizer_config.json`.
    pub config: Value,
    /// What differs from llama.cpp's tokenizer, if anything is known to.
    pub notes: Vec<String>,
}

fn strings(v: Option<&GgufValue>) -> Option<&GgufArray> {
    match v? {
        GgufValue::Array(a @ GgufArray::Strings { .. }) => Some(a),
        _ => None,
    }
}

/// The tokenizer of a GGUF checkpoint, `None` when it has none, or why it cannot be rebuilt.
pub fn from_gguf(ckpt: &Checkpoint) -> Option<Result<Tokenizer, String>> {
    let info = ckpt.gguf()?;
    let model = match info.get("tokenizer.ggml.model")? {
        GgufValue::String(s) => s.clone(),
        _ => return Some(Err("tokenizer.ggml.model is not a string".into())),
    };
    if model != "gpt2" && model != "llama" {
        return Some(Err(format!(
            "the `{model}` tokenizer is not rebuilt (gpt2 and llama are); take it from the GGUF with \
             AutoTokenizer.from_pretrained(folder, gguf_file=...)"
        )));
    }
    let sentencepiece = model == "llama";
    let Some(tokens) = strings(info.get("tokenizer.ggml.tokens")) else {
        return Some(Err("tokenizer.ggml.tokens is missing".into()));
    };
    let merges: Vec<&str> =
        strings(info.get("tokenizer.ggml.merges")).map(|m| m.strings().collect()).unwrap_or_default();
    let types: Vec<i64> = match info.get("tokenizer.ggml.token_type") {
        Some(GgufValue::Array(a)) => a
            .iter()
            .map(|v| match v {
                GgufValue::I32(x) => i64::from(x),
                other => other.as_u64().map_or(1, |x| x as i64),
            })
            .collect(),
        _ => Vec::new(),
    };
    let id = |key: &str| info.get(key).and_then(GgufValue::as_u64);
    let flag = |key: &str| matches!(info.get(key), Some(GgufValue::Bool(true)));
    let pre = match info.get("tokenizer.ggml.pre") {
        Some(GgufValue::String(s)) => s.clone(),
        _ => "default".into(),
    };
    let mut notes = Vec::new();
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    let pre_tokenizer = match pre.as_str() {
        "smollm" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level.clone()]}),
        "gpt-2" | "default" => byte_level.clone(),
        other => {
            notes.push(format!("llama.cpp's pre-tokenizer `{other}` is approximated by GPT-2's byte-level split"));
            byte_level.clone()
        }
    };
    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    for (i, t) in tokens.strings().enumerate() {
        vocab.insert(t.to_owned(), json!(i));
        let ty = types.get(i).copied().unwrap_or(1);
        if ty == 3 || ty == 4 {
            // llama.cpp matches a SentencePiece vocabulary's user-defined pieces in the raw text.
            added.push(json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                              "normalized": ty == 4 && !sentencepiece, "special": ty == 3}));
        }
    }
    let name = |key: &str| id(key).and_then(|i| tokens.str_at(i as usize)).map(str::to_owned);
    let add_bos = flag("tokenizer.ggml.add_bos_token");
    let post_processor = match (add_bos, name("tokenizer.ggml.bos_token_id"), id("tokenizer.ggml.bos_token_id")) {
        (true, Some(bos), Some(bos_id)) => json!({"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos.clone(): {"id": bos, "ids": [bos_id], "tokens": [bos]}}}),
        _ => Value::Null,
    };
    let mut tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post_processor,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": merges},
    });
    if sentencepiece {
        let pieces: Vec<&str> = tokens.strings().collect();
        let scores: Vec<f32> = match info.get("tokenizer.ggml.scores") {
            Some(GgufValue::Array(a)) => a.iter().map(|v| v.as_f64().unwrap_or(0.0) as f32).collect(),
            _ => return Some(Err("tokenizer.ggml.scores is missing (a SentencePiece vocabulary needs them)".into())),
        };
        let types32: Vec<i32> = types.iter().map(|&t| t as i32).collect();
        let merges = super::sentencepiece::merges_from_scores(&pieces, &scores, &types32);
        let vocab = match tokenizer["model"]["vocab"].take() {
            Value::Object(v) => v,
            _ => serde_json::Map::new(),
        };
        let unk = name("tokenizer.ggml.unknown_token_id");
        let mut parts = super::sentencepiece::tokenizer_parts(
            vocab,
            &merges,
            unk.as_deref(),
            flag("tokenizer.ggml.add_space_prefix"),
        );
        for key in ["normalizer", "pre_tokenizer", "decoder", "model"] {
            tokenizer[key] = parts[key].take();
        }
        notes.retain(|n| !n.contains("pre-tokenizer"));
    }
    let mut config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": false,
        "add_bos_token": add_bos,
        "add_eos_token": flag("tokenizer.ggml.add_eos_token"),
    });
    for (key, field) in [
        ("tokenizer.ggml.bos_token_id", "bos_token"),
        ("tokenizer.ggml.eos_token_id", "eos_token"),
        ("tokenizer.ggml.unknown_token_id", "unk_token"),
        ("tokenizer.ggml.padding_token_id", "pad_token"),
    ] {
        if let Some(t) = name(key) {
            config[field] = json!(t);
        }
    }
    if let Some(GgufValue::String(t)) = info.get("tokenizer.chat_template") {
        config["chat_template"] = json!(t);
    }
    if let Some(n) = ckpt.model_config().and_then(|c| c.max_position) {
        config["model_max_length"] = json!(n);
    }
    Some(Ok(Tokenizer { tokenizer, config, notes }))
}
