//! Tensor names to (layer index, module role), across the common naming schemes.
//!
//! Recognised: Hugging Face Llama/Mistral/Qwen2/Gemma (`model.layers.N.self_attn.q_proj.weight`),
//! GPT-2 (`transformer.h.N.attn.c_attn.weight`), BERT (`encoder.layer.N.attention.self.query.weight`),
//! GPT-NeoX/Falcon (`query_key_value`, `dense_h_to_4h`), Meta Llama (`layers.N.attention.wq`) and
//! llama.cpp's GGUF names (`blk.N.attn_q.weight`, `token_embd`, `output`).

use serde::Serialize;

/// What a tensor does in the network, normalised across naming schemes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Role {
    /// Token, position or segment embedding table.
    #[serde(rename = "embed")]
    Embed,
    /// Attention query projection.
    #[serde(rename = "attn.q")]
    AttnQ,
    /// Attention key projection.
    #[serde(rename = "attn.k")]
    AttnK,
    /// Attention value projection.
    #[serde(rename = "attn.v")]
    AttnV,
    /// Fused query/key/value projection.
    #[serde(rename = "attn.qkv")]
    AttnQkv,
    /// Attention output projection.
    #[serde(rename = "attn.o")]
    AttnO,
    /// Gated MLP gate projection.
    #[serde(rename = "mlp.gate")]
    MlpGate,
    /// Fused gate and up projection.
    #[serde(rename = "mlp.gate_up")]
    MlpGateUp,
    /// MLP up (expanding) projection.
    #[serde(rename = "mlp.up")]
    MlpUp,
    /// MLP down (contracting) projection.
    #[serde(rename = "mlp.down")]
    MlpDown,
    /// Any normalisation's scale or bias.
    #[serde(rename = "norm")]
    Norm,
    /// Output projection to the vocabulary.
    #[serde(rename = "lm_head")]
    LmHead,
    /// Anything else (poolers, rotary caches, position ids, ...).
    #[serde(rename = "other")]
    Other,
}

impl Role {
    /// Every role, in display order (the order of a transformer block).
    pub const ALL: [Role; 13] = [
        Role::Embed,
        Role::Norm,
        Role::AttnQ,
        Role::AttnK,
        Role::AttnV,
        Role::AttnQkv,
        Role::AttnO,
        Role::MlpGate,
        Role::MlpGateUp,
        Role::MlpUp,
        Role::MlpDown,
        Role::LmHead,
        Role::Other,
    ];

    /// The normalised name used in JSON and in the GUI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Embed => "embed",
            Role::AttnQ => "attn.q",
            Role::AttnK => "attn.k",
            Role::AttnV => "attn.v",
            Role::AttnQkv => "attn.qkv",
            Role::AttnO => "attn.o",
            Role::MlpGate => "mlp.gate",
            Role::MlpGateUp => "mlp.gate_up",
            Role::MlpUp => "mlp.up",
            Role::MlpDown => "mlp.down",
            Role::Norm => "norm",
            Role::LmHead => "lm_head",
            Role::Other => "other",
        }
    }

    /// Position in [`Role::ALL`], for sorting tensors of a layer in block order.
    pub fn order(self) -> usize {
        Role::ALL.iter().position(|&r| r == self).unwrap_or(Role::ALL.len())
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a tensor sits in reading order: 0 for embeddings before the blocks, 1 for the blocks,
/// 2 for what comes after (final norm, output head, poolers, caches).
pub fn stage(name: &str, layer: Option<u32>, role: Role) -> u8 {
    match layer {
        Some(_) => 1,
        None if role == Role::Embed || name.to_ascii_lowercase().contains("embed") => 0,
        None => 2,
    }
}

/// Sort key for reading order: stage, block index, role in block order.
pub fn reading_order(name: &str, layer: Option<u32>, role: Role) -> (u8, u32, usize) {
    (stage(name, layer, role), layer.unwrap_or(0), role.order())
}

/// Path components that introduce a block index (`layers.7`, `h.7`, `blk.7`, ...).
const LAYER_CONTAINERS: [&str; 7] = ["layers", "layer", "h", "blk", "blocks", "block", "decoder_layers"];

/// Parameter suffixes that say which tensor of a module this is, not which module.
const PARAM_SUFFIXES: [&str; 6] = ["weight", "bias", "scale", "weight_scale", "qweight", "scales"];

/// Splits a tensor name into its block index (if it belongs to a repeated block) and role.
pub fn classify(name: &str) -> (Option<u32>, Role) {
    let parts: Vec<&str> = name.split('.').collect();
    let mut layer = None;
    let mut module_start = 0;
    for (i, pair) in parts.windows(2).enumerate() {
        if LAYER_CONTAINERS.contains(&pair[0])
            && let Ok(n) = pair[1].parse::<u32>()
        {
            layer = Some(n);
            module_start = i + 2;
            break;
        }
    }
    let mut module: Vec<&str> = parts[module_start..].to_vec();
    if module.len() > 1 && module.last().is_some_and(|p| PARAM_SUFFIXES.contains(p)) {
        module.pop();
    }
    // A name without a block index keeps its full path, so `lm_head` and `model.norm` are seen.
    let role = role_of(&module, layer.is_some());
    (layer, role)
}

fn role_of(module: &[&str], in_block: bool) -> Role {
    let last = module.last().copied().unwrap_or("");
    let has = |s: &str| module.contains(&s);
    let lower_any = |needle: &str| module.iter().any(|p| p.to_ascii_lowercase().contains(needle));

    if lower_any("norm") || last.starts_with("ln_") || last == "ln_f" || last == "ln" {
        return Role::Norm;
    }
    if !in_block {
        if matches!(last, "lm_head" | "output" | "embed_out") || has("lm_head") {
            return Role::LmHead;
        }
        let lower = last.to_ascii_lowercase();
        if lower.contains("embed") || lower.contains("embd") || matches!(last, "wte" | "wpe") {
            return Role::Embed;
        }
        return Role::Other;
    }
    // Fused projections first: their names contain the plain ones.
    match last {
        "c_attn" | "qkv_proj" | "query_key_value" | "Wqkv" | "attn_qkv" | "qkv" => return Role::AttnQkv,
        "gate_up_proj" => return Role::MlpGateUp,
        "q_proj" | "query" | "attn_q" | "wq" => return Role::AttnQ,
        "k_proj" | "key" | "attn_k" | "wk" => return Role::AttnK,
        "v_proj" | "value" | "attn_v" | "wv" => return Role::AttnV,
        "o_proj" | "attn_output" | "wo" | "out_proj" => return Role::AttnO,
        "gate_proj" | "ffn_gate" | "w1" => return Role::MlpGate,
        "up_proj" | "ffn_up" | "c_fc" | "fc1" | "w3" | "dense_h_to_4h" => return Role::MlpUp,
        "down_proj" | "ffn_down" | "fc2" | "w2" | "dense_4h_to_h" => return Role::MlpDown,
        _ => {}
    }
    let in_attention = has("attn") || has("attention") || has("self_attn") || has("self_attention");
    match last {
        // GPT-2 `attn.c_proj` / `mlp.c_proj`; BERT and NeoX `attention.output.dense` / `output.dense`.
        "c_proj" | "dense" if in_attention => Role::AttnO,
        "c_proj" => Role::MlpDown,
        "dense" if has("intermediate") => Role::MlpUp,
        "dense" if has("output") => Role::MlpDown,
        _ => Role::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, layer: Option<u32>, role: Role) {
        assert_eq!(classify(name), (layer, role), "{name}");
    }

    #[test]
    fn llama_mistral_qwen2() {
        check("model.embed_tokens.weight", None, Role::Embed);
        check("model.layers.0.self_attn.q_proj.weight", Some(0), Role::AttnQ);
        check("model.layers.12.self_attn.k_proj.weight", Some(12), Role::AttnK);
        check("model.layers.12.self_attn.v_proj.bias", Some(12), Role::AttnV);
        check("model.layers.3.self_attn.o_proj.weight", Some(3), Role::AttnO);
        check("model.layers.3.mlp.gate_proj.weight", Some(3), Role::MlpGate);
        check("model.layers.3.mlp.up_proj.weight", Some(3), Role::MlpUp);
        check("model.layers.3.mlp.down_proj.weight", Some(3), Role::MlpDown);
        check("model.layers.3.input_layernorm.weight", Some(3), Role::Norm);
        check("model.layers.3.post_attention_layernorm.weight", Some(3), Role::Norm);
        check("model.norm.weight", None, Role::Norm);
        check("lm_head.weight", None, Role::LmHead);
    }

    #[test]
    fn gemma3() {
        check("model.layers.5.self_attn.q_norm.weight", Some(5), Role::Norm);
        check("model.layers.5.pre_feedforward_layernorm.weight", Some(5), Role::Norm);
        check("model.layers.5.post_feedforward_layernorm.weight", Some(5), Role::Norm);
        check("language_model.model.layers.5.mlp.down_proj.weight", Some(5), Role::MlpDown);
    }

    #[test]
    fn gpt2() {
        check("transformer.wte.weight", None, Role::Embed);
        check("transformer.wpe.weight", None, Role::Embed);
        check("transformer.h.0.ln_1.weight", Some(0), Role::Norm);
        check("transformer.h.0.attn.c_attn.weight", Some(0), Role::AttnQkv);
        check("transformer.h.0.attn.c_proj.bias", Some(0), Role::AttnO);
        check("transformer.h.11.mlp.c_fc.weight", Some(11), Role::MlpUp);
        check("transformer.h.11.mlp.c_proj.weight", Some(11), Role::MlpDown);
        check("h.2.attn.c_attn.weight", Some(2), Role::AttnQkv);
        check("transformer.ln_f.weight", None, Role::Norm);
        check("h.0.attn.bias", Some(0), Role::Other);
    }

    #[test]
    fn bert() {
        check("embeddings.word_embeddings.weight", None, Role::Embed);
        check("embeddings.position_embeddings.weight", None, Role::Embed);
        check("embeddings.token_type_embeddings.weight", None, Role::Embed);
        check("embeddings.LayerNorm.weight", None, Role::Norm);
        check("embeddings.position_ids", None, Role::Other);
        check("encoder.layer.0.attention.self.query.weight", Some(0), Role::AttnQ);
        check("encoder.layer.0.attention.self.key.bias", Some(0), Role::AttnK);
        check("encoder.layer.0.attention.self.value.weight", Some(0), Role::AttnV);
        check("encoder.layer.0.attention.output.dense.weight", Some(0), Role::AttnO);
        check("encoder.layer.0.attention.output.LayerNorm.weight", Some(0), Role::Norm);
        check("encoder.layer.5.intermediate.dense.weight", Some(5), Role::MlpUp);
        check("encoder.layer.5.output.dense.weight", Some(5), Role::MlpDown);
        check("encoder.layer.5.output.LayerNorm.bias", Some(5), Role::Norm);
        check("bert.encoder.layer.5.output.dense.weight", Some(5), Role::MlpDown);
        check("pooler.dense.weight", None, Role::Other);
    }

    #[test]
    fn gguf_and_meta() {
        check("token_embd.weight", None, Role::Embed);
        check("blk.0.attn_q.weight", Some(0), Role::AttnQ);
        check("blk.0.attn_k.weight", Some(0), Role::AttnK);
        check("blk.0.attn_v.weight", Some(0), Role::AttnV);
        check("blk.0.attn_output.weight", Some(0), Role::AttnO);
        check("blk.0.attn_norm.weight", Some(0), Role::Norm);
        check("blk.0.attn_q_norm.weight", Some(0), Role::Norm);
        check("blk.0.ffn_gate.weight", Some(0), Role::MlpGate);
        check("blk.0.ffn_up.weight", Some(0), Role::MlpUp);
        check("blk.0.ffn_down.weight", Some(0), Role::MlpDown);
        check("blk.0.ffn_norm.weight", Some(0), Role::Norm);
        check("output_norm.weight", None, Role::Norm);
        check("output.weight", None, Role::LmHead);
        check("layers.1.attention.wq.weight", Some(1), Role::AttnQ);
        check("layers.1.feed_forward.w2.weight", Some(1), Role::MlpDown);
        check("tok_embeddings.weight", None, Role::Embed);
    }

    #[test]
    fn neox_and_phi3() {
        check("gpt_neox.layers.0.attention.query_key_value.weight", Some(0), Role::AttnQkv);
        check("gpt_neox.layers.0.attention.dense.weight", Some(0), Role::AttnO);
        check("gpt_neox.layers.0.mlp.dense_h_to_4h.weight", Some(0), Role::MlpUp);
        check("gpt_neox.embed_in.weight", None, Role::Embed);
        check("embed_out.weight", None, Role::LmHead);
        check("model.layers.0.mlp.gate_up_proj.weight", Some(0), Role::MlpGateUp);
        check("model.layers.0.self_attn.qkv_proj.weight", Some(0), Role::AttnQkv);
    }
}
