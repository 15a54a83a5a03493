//! llama.cpp GGUF names and Hugging Face transformers names, both ways, from one table, for the
//! Llama family (llama — which covers Mistral and SmolLM —, qwen2, gemma, gemma2, gemma3); and
//! how values differ between the two forms: llama.cpp's converter interleaves the rotary halves
//! of each head's Q and K rows (`permute` in convert_hf_to_gguf.py), and Gemma's stores RMSNorm
//! weights as `1 + w`.

/// Architectures (GGUF `general.architecture`) whose names this module maps.
pub const MAPPED_ARCHITECTURES: [&str; 6] = ["llama", "mistral", "qwen2", "gemma", "gemma2", "gemma3"];

/// GGUF architecture, transformers class, transformers `model_type`.
const ARCHITECTURES: [(&str, &str, &str); 7] = [
    ("llama", "LlamaForCausalLM", "llama"),
    ("mistral", "MistralForCausalLM", "mistral"),
    ("qwen2", "Qwen2ForCausalLM", "qwen2"),
    ("gemma", "GemmaForCausalLM", "gemma"),
    ("gemma2", "Gemma2ForCausalLM", "gemma2"),
    ("gemma3", "Gemma3ForCausalLM", "gemma3_text"),
    ("bert", "BertModel", "bert"),
];

/// The transformers class and `model_type` of a GGUF architecture. Mistral GGUF files are
/// written as `llama` by llama.cpp and load as Llama; a file that says `mistral` gets Llama's
/// class too, as transformers' own GGUF loader does.
pub fn hf_architecture(gguf_arch: &str) -> Option<(&'static str, &'static str)> {
    let arch = if gguf_arch == "mistral" { "llama" } else { gguf_arch };
    ARCHITECTURES.iter().find(|(a, _, _)| *a == arch).map(|(_, class, model_type)| (*class, *model_type))
}

/// The GGUF architecture of a transformers `model_type`.
pub fn gguf_architecture(model_type: &str) -> Option<&'static str> {
    ARCHITECTURES
        .iter()
        .find(|(_, _, m)| *m == model_type || (*m == "gemma3_text" && model_type == "gemma3"))
        .map(|(a, _, _)| *a)
}

/// The GGUF architecture of a transformers class name.
pub fn gguf_architecture_of_class(class: &str) -> Option<&'static str> {
    ARCHITECTURES.iter().find(|(_, c, _)| *c == class).map(|(a, _, _)| *a)
}

/// Whole-model tensors: (GGUF, transformers).
const GLOBAL: [(&str, &str); 3] = [
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// Which architectures a block module exists in.
#[derive(Clone, Copy)]
enum In {
    /// Every mapped architecture.
    All,
    /// Gemma 2 and 3 (four norms per block).
    Gemma23,
    /// Every mapped architecture but Gemma 2 and 3.
    NotGemma23,
}

impl In {
    fn holds(self, arch: &str) -> bool {
        let gemma23 = matches!(arch, "gemma2" | "gemma3");
        match self {
            In::All => true,
            In::Gemma23 => gemma23,
            In::NotGemma23 => !gemma23,
        }
    }
}

/// Block modules: (GGUF, transformers, where). Within one architecture each side is unique, so
/// the table reads both ways.
const BLOCK: [(&str, &str, In); 14] = [
    ("attn_q", "self_attn.q_proj", In::All),
    ("attn_k", "self_attn.k_proj", In::All),
    ("attn_v", "self_attn.v_proj", In::All),
    ("attn_output", "self_attn.o_proj", In::All),
    ("attn_q_norm", "self_attn.q_norm", In::All),
    ("attn_k_norm", "self_attn.k_norm", In::All),
    ("attn_norm", "input_layernorm", In::All),
    ("ffn_gate", "mlp.gate_proj", In::All),
    ("ffn_up", "mlp.up_proj", In::All),
    ("ffn_down", "mlp.down_proj", In::All),
    ("ffn_norm", "post_attention_layernorm", In::NotGemma23),
    ("ffn_norm", "pre_feedforward_layernorm", In::Gemma23),
    ("post_attention_norm", "post_attention_layernorm", In::Gemma23),
    ("post_ffw_norm", "post_feedforward_layernorm", In::Gemma23),
];

/// The transformers name of a GGUF tensor, or `None` when there is none (e.g. `rope_freqs`, which
/// transformers computes instead of loading) or the name is not known for `arch`.
pub fn hf_name(gguf_name: &str, arch: &str) -> Option<String> {
    if !MAPPED_ARCHITECTURES.contains(&arch) {
        return None;
    }
    if let Some((_, hf)) = GLOBAL.iter().find(|(g, _)| *g == gguf_name) {
        return Some((*hf).to_owned());
    }
    let (layer, module, param) = split_block(gguf_name.strip_prefix("blk.")?)?;
    let (_, hf, _) = BLOCK.iter().find(|(g, _, w)| *g == module && w.holds(arch))?;
    Some(format!("model.layers.{layer}.{hf}.{param}"))
}

/// The GGUF name of a transformers tensor (the inverse of [`hf_name`]).
pub fn gguf_name(hf_name: &str, arch: &str) -> Option<String> {
    if !MAPPED_ARCHITECTURES.contains(&arch) {
        return None;
    }
    if let Some((g, _)) = GLOBAL.iter().find(|(_, h)| *h == hf_name) {
        return Some((*g).to_owned());
    }
    let (layer, module, param) = split_block(hf_name.strip_prefix("model.layers.")?)?;
    let (g, _, _) = BLOCK.iter().find(|(_, h, w)| *h == module && w.holds(arch))?;
    Some(format!("blk.{layer}.{g}.{param}"))
}

/// `(layer, module, param)` of `"<layer>.<module>.<weight|bias>"`.
fn split_block(rest: &str) -> Option<(u32, &str, &str)> {
    let (layer, rest) = rest.split_once('.')?;
    let layer: u32 = layer.parse().ok()?;
    let (module, param) = rest.rsplit_once('.')?;
    matches!(param, "weight" | "bias").then_some((layer, module, param))
}

/// How one form of a tensor's values differs from the other, beyond the name.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Transform {
    /// Same values, same layout.
    None,
    /// Rows of the Q or K projection of `heads` heads, in llama.cpp's order (rotary halves of
    /// each head interleaved) on the GGUF side and transformers' (halves one after the other)
    /// on the other.
    Rows {
        /// Heads in this projection (attention heads for Q, KV heads for K).
        heads: u64,
    },
    /// Values differ by a constant: GGUF = transformers + this amount (Gemma's `1 + w` norms).
    Offset(f32),
}

/// How GGUF tensor `gguf_name` differs from its transformers form; `heads` and `kv_heads` from
/// the configuration. Q and K weights and biases of llama and mistral are permuted.
pub fn transform(gguf_name: &str, arch: &str, heads: u64, kv_heads: u64) -> Transform {
    let permuted = matches!(arch, "llama" | "mistral");
    let param = gguf_name.rsplit('.').next().unwrap_or("");
    let module = gguf_name.strip_suffix(param).unwrap_or(gguf_name);
    if permuted && module.ends_with(".attn_q.") {
        return Transform::Rows { heads };
    }
    if permuted && module.ends_with(".attn_k.") {
        return Transform::Rows { heads: kv_heads };
    }
    if arch.starts_with("gemma") && gguf_name.ends_with("norm.weight") {
        return Transform::Offset(1.0);
    }
    Transform::None
}

/// For Q/K rows of `heads` heads of `rows / heads` rows each: the GGUF row that holds
/// transformers row `row` (reading GGUF into transformers' order). llama.cpp reshapes each
/// head's rows as (2, d/2) and swaps the axes — `w.reshape(n, 2, rows/n/2, cols).swapaxes(1, 2)`
/// — so transformers row `(h, j, i)` (half `j`, index `i`) sits at GGUF row `(h, i, j)`.
pub fn gguf_row_of_hf_row(row: u64, rows: u64, heads: u64) -> u64 {
    let head_dim = rows / heads.max(1);
    let half = (head_dim / 2).max(1);
    let (h, rem) = (row / head_dim.max(1), row % head_dim.max(1));
    let (j, i) = (rem / half, rem % half);
    h * head_dim + 2 * i + j
}

/// The inverse: the transformers row that goes to GGUF row `row` (writing transformers weights
/// in llama.cpp's order, as its converter does).
pub fn hf_row_of_gguf_row(row: u64, rows: u64, heads: u64) -> u64 {
    let head_dim = rows / heads.max(1);
    let half = head_dim / 2;
    let (h, rem) = (row / head_dim.max(1), row % head_dim.max(1));
    let (i, j) = (rem / 2, rem % 2);
    h * head_dim + j * half + i
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
        assert_eq!(gguf_name("model.layers.3.mlp.down_proj.weight", "llama").as_deref(), Some("blk.3.ffn_down.weight"));
    }

    #[test]
    fn every_name_maps_both_ways_in_every_architecture() {
        for arch in MAPPED_ARCHITECTURES {
            let mut names: Vec<String> = GLOBAL.iter().map(|(g, _)| (*g).to_owned()).collect();
            for (g, _, _) in BLOCK.iter().filter(|(_, _, w)| w.holds(arch)) {
                names.push(format!("blk.7.{g}.weight"));
                names.push(format!("blk.0.{g}.bias"));
            }
            let mut seen = std::collections::HashSet::new();
            for name in names {
                let hf = hf_name(&name, arch).unwrap_or_else(|| panic!("{arch}: {name} has no transformers name"));
                assert!(seen.insert(hf.clone()), "{arch}: two GGUF names map to {hf}");
                assert_eq!(gguf_name(&hf, arch).as_deref(), Some(name.as_str()), "{arch}: {hf}");
            }
        }
    }

    #[test]
    fn gemma3_names_and_norm_offset() {
        assert_eq!(
            hf_name("blk.2.ffn_norm.weight", "gemma3").as_deref(),
            Some("model.layers.2.pre_feedforward_layernorm.weight")
        );
        assert_eq!(
            hf_name("blk.2.post_ffw_norm.weight", "gemma3").as_deref(),
            Some("model.layers.2.post_feedforward_layernorm.weight")
        );
        assert_eq!(hf_name("blk.2.post_attention_norm.weight", "gemma"), None, "Gemma 1 has two norms per block");
        assert_eq!(transform("blk.2.attn_q_norm.weight", "gemma3", 4, 1), Transform::Offset(1.0));
        assert_eq!(transform("blk.2.attn_q.weight", "gemma3", 4, 1), Transform::None);
        assert_eq!(transform("blk.1.attn_k.weight", "llama", 9, 3), Transform::Rows { heads: 3 });
        assert_eq!(transform("blk.1.attn_q.bias", "llama", 9, 3), Transform::Rows { heads: 9 });
        assert_eq!(transform("blk.1.attn_q_norm.weight", "llama", 9, 3), Transform::None);
    }

    #[test]
    fn the_row_maps_are_llama_cpps_permute_and_its_inverse() {
        // convert_hf_to_gguf.py: w.reshape(heads, 2, d/2, cols).swapaxes(1, 2).reshape(rows, cols),
        // written out for every row: GGUF row (h, i, j) takes HF row (h, j, i).
        for (heads, head_dim) in [(3u64, 8u64), (9, 64), (1, 2)] {
            let rows = heads * head_dim;
            let half = head_dim / 2;
            for gguf_row in 0..rows {
                let (h, rem) = (gguf_row / head_dim, gguf_row % head_dim);
                let (i, j) = (rem / 2, rem % 2);
                let from_hf = h * head_dim + j * half + i;
                assert_eq!(hf_row_of_gguf_row(gguf_row, rows, heads), from_hf);
                assert_eq!(gguf_row_of_hf_row(from_hf, rows, heads), gguf_row);
            }
        }
    }

    #[test]
    fn architectures_map_both_ways() {
        assert_eq!(hf_architecture("gemma3"), Some(("Gemma3ForCausalLM", "gemma3_text")));
        assert_eq!(hf_architecture("mistral"), Some(("LlamaForCausalLM", "llama")));
        assert_eq!(gguf_architecture("gemma3_text"), Some("gemma3"));
        assert_eq!(gguf_architecture_of_class("Qwen2ForCausalLM"), Some("qwen2"));
        assert_eq!(hf_architecture("rwkv6"), None);
    }
}
