//! llama.cpp GGUF tensor names to Hugging Face transformers names, for the Llama family
//! (llama — which covers Mistral and SmolLM —, qwen2, gemma, gemma2, gemma3).

/// Architectures (GGUF `general.architecture`) whose names [`hf_name`] maps.
pub const MAPPED_ARCHITECTURES: [&str; 6] = ["llama", "mistral", "qwen2", "gemma", "gemma2", "gemma3"];

/// The transformers name of a GGUF tensor, or `None` when there is none (e.g. `rope_freqs`, which
/// transformers computes instead of loading) or the name is not known for `arch`.
pub fn hf_name(gguf_name: &str, arch: &str) -> Option<String> {
    if !MAPPED_ARCHITECTURES.contains(&arch) {
        return None;
    }
    match gguf_name {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        "output.weight" => return Some("lm_head.weight".into()),
        _ => {}
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: u32 = layer.parse().ok()?;
    let (module, param) = rest.rsplit_once('.')?;
    if !matches!(param, "weight" | "bias") {
        return None;
    }
    let gemma = arch.starts_with("gemma");
    let hf_module = match module {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "attn_norm" => "input_layernorm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        // Gemma 2/3 have four norms per block; the others have two.
        "ffn_norm" if gemma && arch != "gemma" => "pre_feedforward_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "post_attention_norm" if gemma => "post_attention_layernorm",
        "post_ffw_norm" if gemma => "post_feedforward_layernorm",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf_module}.{param}"))
}

/// How a GGUF tensor's values differ from the transformers tensor, beyond the name.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HfTransform {
    /// Same values, same layout.
    None,
    /// llama.cpp's converter interleaved the rotary halves of each head's rows for Q and K
    /// (`permute` in convert_hf_to_gguf.py); rows are put back with this many heads.
    UnpermuteRows {
        /// Heads in this projection (attention heads for Q, KV heads for K).
        heads: u64,
    },
    /// Gemma's converter stored RMSNorm weights as `1 + w`; this amount is added back.
    Add(f32),
}

/// The transform that turns GGUF tensor `gguf_name` back into its transformers form.
/// `heads` and `kv_heads` come from the GGUF metadata.
pub fn hf_transform(gguf_name: &str, arch: &str, heads: u64, kv_heads: u64) -> HfTransform {
    let permuted = matches!(arch, "llama" | "mistral");
    if permuted && gguf_name.ends_with("attn_q.weight") {
        return HfTransform::UnpermuteRows { heads };
    }
    if permuted && gguf_name.ends_with("attn_k.weight") {
        return HfTransform::UnpermuteRows { heads: kv_heads };
    }
    if arch.starts_with("gemma") && gguf_name.ends_with("norm.weight") {
        return HfTransform::Add(-1.0);
    }
    HfTransform::None
}

/// For a Q/K weight permuted by llama.cpp with `heads` heads of `rows / heads` rows: the GGUF row
/// that holds transformers row `row`. llama.cpp reshapes each head's rows as (2, d/2) and swaps
/// the axes, so transformers row `(h, j, i)` — half `j`, index `i` — sits at GGUF row `(h, i, j)`.
pub fn unpermuted_source_row(row: u64, rows: u64, heads: u64) -> u64 {
    let head_dim = rows / heads;
    let half = head_dim / 2;
    let (h, rem) = (row / head_dim, row % head_dim);
    let (j, i) = (rem / half, rem % half);
    h * head_dim + 2 * i + j
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_names() {
        assert_eq!(hf_name("blk.3.attn_q.weight", "llama").as_deref(), Some("model.layers.3.self_attn.q_proj.weight"));
        assert_eq!(
            hf_name("blk.3.ffn_norm.weight", "llama").as_deref(),
            Some("model.layers.3.post_attention_layernorm.weight")
        );
        assert_eq!(hf_name("blk.0.attn_v.bias", "qwen2").as_deref(), Some("model.layers.0.self_attn.v_proj.bias"));
        assert_eq!(hf_name("output.weight", "llama").as_deref(), Some("lm_head.weight"));
        assert_eq!(hf_name("rope_freqs.weight", "llama"), None);
        assert_eq!(hf_name("blk.0.attn_q.weight", "rwkv6"), None);
    }

    #[test]
    fn gemma3_names_and_norm_shift() {
        assert_eq!(
            hf_name("blk.2.ffn_norm.weight", "gemma3").as_deref(),
            Some("model.layers.2.pre_feedforward_layernorm.weight")
        );
        assert_eq!(
            hf_name("blk.2.post_ffw_norm.weight", "gemma3").as_deref(),
            Some("model.layers.2.post_feedforward_layernorm.weight")
        );
        assert_eq!(hf_transform("blk.2.attn_q_norm.weight", "gemma3", 4, 1), HfTransform::Add(-1.0));
        assert_eq!(hf_transform("blk.2.attn_q.weight", "gemma3", 4, 1), HfTransform::None);
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // llama.cpp: w.reshape(heads, 2, d/2, cols).swapaxes(1, 2).reshape(rows, cols):
        // GGUF row (h, i, j) = HF row (h, j, i).
        let (heads, head_dim) = (3u64, 8u64);
        let rows = heads * head_dim;
        let permuted_from: Vec<u64> = (0..rows)
            .map(|g| {
                let (h, rem) = (g / head_dim, g % head_dim);
                let (i, j) = (rem / 2, rem % 2);
                h * head_dim + j * (head_dim / 2) + i
            })
            .collect();
        for hf_row in 0..rows {
            let gguf_row = unpermuted_source_row(hf_row, rows, heads);
            assert_eq!(permuted_from[gguf_row as usize], hf_row);
        }
        assert_eq!(hf_transform("blk.1.attn_k.weight", "llama", 9, 3), HfTransform::UnpermuteRows { heads: 3 });
    }
}
