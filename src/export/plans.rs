//! A plan, resolved per tensor, written for the tools users already run: llama.cpp's
//! `llama-quantize --tensor-type-file` (with the command line), GPTQModel's `dynamic` overrides,
//! and weightbench's own plan TOML. Each says what its target cannot express instead of
//! dropping it silently.
//!
//! llama.cpp searches each line's regex *unanchored* in GGUF tensor names and takes the first
//! match; our plans let the last rule win. Writing one anchored, escaped line per tensor
//! (`^blk\.0\.attn_q\.weight$=q4_k`) sidesteps both. GPTQModel matches `+:`/`-:` regexes with
//! `re.match` on module names (anchored at the start), first match wins: one `^module$` key
//! per module again.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Value, json};

use crate::checkpoint::hf_names::gguf_name;
use crate::checkpoint::{Checkpoint, Format, TensorInfo};
use crate::quant::scheme::IntGroup;
use crate::quant::{Resolved, Scheme};

/// A plan in another tool's terms, and what it could not say.
#[derive(Clone, Debug, Serialize)]
pub struct Translated {
    /// The file's text.
    pub text: String,
    /// How to run the tool with it.
    pub command: Option<String>,
    /// Tensors whose scheme the target cannot express, and why.
    pub cannot_express: Vec<String>,
}

/// The GGUF name of `t` (its own name in a GGUF checkpoint).
fn gguf_tensor_name(ckpt: &Checkpoint, t: &TensorInfo) -> Option<String> {
    if ckpt.format() == Format::Gguf {
        return Some(t.name.clone());
    }
    let arch = ckpt.model_config().map(|c| c.architecture.clone())?;
    gguf_name(&t.name, &arch)
}

/// llama.cpp's `--tensor-type-file` lines for `resolved`, and the `llama-quantize` command.
pub fn llama_cpp(ckpt: &Checkpoint, resolved: &[Resolved]) -> Translated {
    let mut text = String::new();
    let mut cannot = Vec::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for (t, r) in ckpt.tensors().iter().zip(resolved) {
        if t.shape.len() < 2 {
            continue; // llama.cpp keeps norms and biases F32 whatever it is told.
        }
        let Some(name) = gguf_tensor_name(ckpt, t) else {
            cannot.push(format!("{}: no GGUF name is known for it", t.name));
            continue;
        };
        let ty = match &r.parsed {
            Scheme::Ggml(d) => d.name().to_ascii_lowercase(),
            Scheme::F16 => "f16".into(),
            Scheme::Bf16 => "bf16".into(),
            Scheme::Keep if t.dtype.ggml_id().is_some() => t.dtype.name().to_ascii_lowercase(),
            other => {
                cannot.push(format!("{}: `{other}` is no llama.cpp type", t.name));
                continue;
            }
        };
        *counts.entry(ty.clone()).or_default() += t.numel();
        let _ = writeln!(text, "^{}$={ty}", regex::escape(&name));
    }
    let base = counts.iter().max_by_key(|(_, n)| **n).map_or("q8_0".to_owned(), |(t, _)| t.clone());
    let command = format!(
        "llama-quantize --tensor-type-file plan.txt{} INPUT.gguf OUTPUT.gguf {}",
        " [--imatrix imatrix.gguf]",
        base.to_ascii_uppercase()
    );
    Translated { text, command: Some(command), cannot_express: cannot }
}

/// GPTQ's (bits, group size (−1: per channel), symmetric).
type GptqBits = (u32, i64, bool);

/// GPTQModel's quantization config with `dynamic` per-module overrides.
pub fn gptqmodel(ckpt: &Checkpoint, resolved: &[Resolved]) -> Translated {
    let mut dynamic = serde_json::Map::new();
    let mut cannot = Vec::new();
    let mut counts: BTreeMap<GptqBits, u64> = BTreeMap::new();
    let mut per_module: Vec<(String, Option<GptqBits>)> = Vec::new();
    for (t, r) in ckpt.tensors().iter().zip(resolved) {
        let Some(module) = t.name.strip_suffix(".weight").filter(|_| t.shape.len() == 2) else { continue };
        match &r.parsed {
            Scheme::Int { bits, group, asym } if matches!(bits, 2 | 3 | 4 | 8) => {
                let g = match group {
                    IntGroup::Channel => -1,
                    IntGroup::Size(n) => *n as i64,
                };
                *counts.entry((*bits, g, !asym)).or_default() += t.numel();
                per_module.push((module.to_owned(), Some((*bits, g, !asym))));
            }
            Scheme::Keep => per_module.push((module.to_owned(), None)),
            other => cannot.push(format!("{}: `{other}` is no GPTQ integer scheme (2, 3, 4 or 8 bits)", t.name)),
        }
    }
    let base = counts.iter().max_by_key(|(_, n)| **n).map(|(k, _)| *k).unwrap_or((4, 128, true));
    for (module, q) in per_module {
        let key = format!("^{}$", regex::escape(&module));
        match q {
            Some(q) if q == base => {}
            Some((bits, g, sym)) => {
                dynamic.insert(format!("+:{key}"), json!({"bits": bits, "group_size": g, "sym": sym}));
            }
            None => {
                dynamic.insert(format!("-:{key}"), json!({}));
            }
        }
    }
    let config: Value = json!({
        "bits": base.0, "group_size": base.1, "sym": base.2, "desc_act": false,
        "quant_method": "gptq", "dynamic": dynamic,
    });
    let note = "GPTQModel runs GPTQ (error feedback from calibration data) with these bits, groups and \
                symmetry; it will not reproduce weightbench's round-to-nearest codes";
    Translated {
        text: serde_json::to_string_pretty(&config).unwrap_or_default() + "\n",
        command: Some(format!("GPTQModel.load(MODEL, QuantizeConfig(**json.load(open(FILE)))); {note}")),
        cannot_express: cannot,
    }
}

/// The resolved plan as weightbench's TOML: one override per tensor (fallbacks and AWQ's shared
/// α applied), so another run gives exactly these schemes.
pub fn resolved_toml(ckpt: &Checkpoint, resolved: &[Resolved]) -> Translated {
    let mut text = format!(
        "# weightbench plan, resolved per tensor\n[model]\ntensors = {}\nbytes = {}\n\n",
        ckpt.tensors().len(),
        ckpt.tensors().iter().map(|t| t.bytes).sum::<u64>()
    );
    for r in resolved {
        let name = serde_json::to_string(&r.name).unwrap_or_default();
        let _ = writeln!(text, "[tensor.{name}]\nscheme = \"{}\"", r.parsed);
        if let (Some(req), Some(why)) = (&r.requested, &r.fallback_reason) {
            let _ = writeln!(text, "# asked {req}: {why}");
        }
        text.push('\n');
    }
    Translated { text, command: None, cannot_express: Vec::new() }
}
