//! `config.json` beside the weights, and the model architecture.

use std::path::Path;

use super::error::{CheckpointError, Result};

/// Reads `config.json` in `folder` when it exists. A config that exists but is not valid JSON is
/// an error: silently ignoring it would hide a broken checkpoint.
pub fn read(folder: &Path) -> Result<Option<serde_json::Value>> {
    let path = folder.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CheckpointError::io(path, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| CheckpointError::InvalidHeader { path, message: format!("config.json is not valid JSON: {e}") })
}

/// `architectures[0]`, else `model_type`, else a guess from tensor names.
pub fn architecture(config: Option<&serde_json::Value>, names: &[&str]) -> Option<String> {
    if let Some(config) = config {
        let from_list = config.get("architectures").and_then(|a| a.get(0)).and_then(|a| a.as_str());
        let from_type = config.get("model_type").and_then(|a| a.as_str());
        if let Some(arch) = from_list.or(from_type) {
            return Some(arch.to_owned());
        }
    }
    let any = |needle: &str| names.iter().any(|n| n.contains(needle));
    let guess = if any("encoder.layer.") && any("attention.self.query") {
        "bert"
    } else if any(".attn.c_attn.") {
        "gpt2"
    } else if any("gpt_neox.") {
        "gpt_neox"
    } else if any("self_attn.q_norm") && any("pre_feedforward_layernorm") {
        "gemma3"
    } else if any("self_attn.q_proj") && any("mlp.gate_proj") {
        "llama"
    } else {
        return None;
    };
    Some(guess.to_owned())
}
