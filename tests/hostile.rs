//! The hostile-input corpus: malformed files for every reader — safetensors (single and sharded),
//! GGUF, plans, imatrix files, config and tokenizer JSON — made by [`corpus`] and committed under
//! `tests/data/hostile/` (one folder per case; `UPDATE_CORPUS=1` rewrites it). Each case names the
//! command a user would run on it and the words its error must contain; the command line must
//! answer every one with that message, exit status 1, no panic, within a time bound, and the
//! window must show it for every checkpoint among them and go on working.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use weightbench::app::WorkbenchApp;

use crate::fixtures::Gguf;
use crate::gguf::small_llama;

/// One malformed input.
struct Case {
    /// Folder name under `tests/data/hostile/`.
    name: &'static str,
    /// Files of the case (relative path, bytes).
    files: Vec<(&'static str, Vec<u8>)>,
    /// The command's arguments: `{case}` is the case's folder, `{demo}` the bundled demo.
    args: &'static [&'static str],
    /// Words the error message must contain (besides the offending file's name).
    expect: &'static [&'static str],
    /// The file the message must name (relative to the case's folder).
    names: &'static str,
}

const INFO: &[&str] = &["info", "{case}/model.safetensors"];
const INFO_DIR: &[&str] = &["info", "{case}"];
const INFO_GGUF: &[&str] = &["info", "{case}/model.gguf"];
const PLAN: &[&str] = &["quantize", "{demo}", "--plan", "{case}/plan.toml", "--dry-run"];
const PLAN_JSON: &[&str] = &["quantize", "{demo}", "--plan", "{case}/plan.json", "--dry-run"];
const IMATRIX: &[&str] = &[
    "quantize",
    "{demo}",
    "--scheme",
    "q4_k",
    "--importance",
    "{case}/x.imatrix.gguf",
    "--dry-run",
    "--backend",
    "cpu",
];
const EVAL: &[&str] = &["eval", "{case}", "--text", "a short text to run"];

/// A safetensors file from its header text and data.
fn st(header: &str, data: &[u8]) -> Vec<u8> {
    st_bytes(header.as_bytes(), data)
}

fn st_bytes(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header);
    v.extend_from_slice(data);
    v
}

/// A valid one-tensor safetensors file (4 f32 values).
fn st_ok() -> Vec<u8> {
    st(r#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#, &[0u8; 16])
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The GGUF header fields at fixed offsets: version (4), tensor count (8), metadata count (16).
fn patch(mut bytes: Vec<u8>, at: usize, with: &[u8]) -> Vec<u8> {
    bytes[at..at + with.len()].copy_from_slice(with);
    bytes
}

/// A tiny Llama-shaped transformers folder (one block, vocabulary 8, hidden 8) with a broken
/// `config.json` or `tokenizer.json` given as `config`/`tokenizer`.
fn llama_folder(config: Option<&str>, tokenizer: Option<&str>) -> Vec<(&'static str, Vec<u8>)> {
    let (v, d, f) = (8usize, 8usize, 16usize);
    let names: Vec<(String, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), vec![v, d]),
        ("model.norm.weight".into(), vec![d]),
        ("model.layers.0.input_layernorm.weight".into(), vec![d]),
        ("model.layers.0.post_attention_layernorm.weight".into(), vec![d]),
        ("model.layers.0.self_attn.q_proj.weight".into(), vec![d, d]),
        ("model.layers.0.self_attn.k_proj.weight".into(), vec![d, d]),
        ("model.layers.0.self_attn.v_proj.weight".into(), vec![d, d]),
        ("model.layers.0.self_attn.o_proj.weight".into(), vec![d, d]),
        ("model.layers.0.mlp.gate_proj.weight".into(), vec![f, d]),
        ("model.layers.0.mlp.up_proj.weight".into(), vec![f, d]),
        ("model.layers.0.mlp.down_proj.weight".into(), vec![d, f]),
    ];
    let mut header = String::from("{");
    let mut data = Vec::new();
    for (i, (name, shape)) in names.iter().enumerate() {
        let n: usize = shape.iter().product();
        let start = data.len();
        data.extend(f32s(&(0..n).map(|k| ((k * 7 % 13) as f32 - 6.0) * 0.05).collect::<Vec<_>>()));
        let sep = if i == 0 { "" } else { "," };
        header.push_str(&format!(
            r#"{sep}"{name}":{{"dtype":"F32","shape":{shape:?},"data_offsets":[{start},{}]}}"#,
            data.len()
        ));
    }
    header.push('}');
    let good_config = format!(
        r#"{{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":{v},"hidden_size":{d},
        "intermediate_size":{f},"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":2,
        "rms_norm_eps":1e-5,"rope_theta":10000.0,"max_position_embeddings":64,"tie_word_embeddings":true}}"#
    );
    let good_tokenizer = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
        "normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
        "model":{"type":"WordLevel","vocab":{"[UNK]":0,"a":1,"short":2,"text":3,"to":4,"run":5,"x":6,"y":7},
        "unk_token":"[UNK]"}}"#;
    vec![
        ("model.safetensors", st(&header, &data)),
        ("config.json", config.unwrap_or(&good_config).as_bytes().to_vec()),
        ("tokenizer.json", tokenizer.unwrap_or(good_tokenizer).as_bytes().to_vec()),
    ]
}

fn deep_json(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// Every case.
fn corpus() -> Vec<Case> {
    let ok = st_ok();
    let gg = small_llama().build();
    let mut c = vec![
        // --- safetensors, one file ---
        Case {
            name: "st-empty",
            files: vec![("model.safetensors", vec![])],
            args: INFO,
            expect: &["empty"],
            names: "model.safetensors",
        },
        Case {
            name: "st-short-prefix",
            files: vec![("model.safetensors", vec![1, 2, 3, 4, 5])],
            args: INFO,
            expect: &["length"],
            names: "model.safetensors",
        },
        Case {
            name: "st-header-beyond-file",
            files: vec![("model.safetensors", {
                let mut v = 1000u64.to_le_bytes().to_vec();
                v.extend(b"{}");
                v
            })],
            args: INFO,
            expect: &["header"],
            names: "model.safetensors",
        },
        Case {
            name: "st-header-u64-max",
            files: vec![("model.safetensors", {
                let mut v = u64::MAX.to_le_bytes().to_vec();
                v.extend(b"{}");
                v
            })],
            args: INFO,
            expect: &["header"],
            names: "model.safetensors",
        },
        Case {
            name: "st-header-200mb",
            files: vec![("model.safetensors", {
                let mut v = 200_000_000u64.to_le_bytes().to_vec();
                v.extend(b"{}");
                v
            })],
            args: INFO,
            expect: &["header"],
            names: "model.safetensors",
        },
        Case {
            name: "st-header-zero-length",
            files: vec![("model.safetensors", 0u64.to_le_bytes().to_vec())],
            args: INFO,
            expect: &["header"],
            names: "model.safetensors",
        },
        Case {
            name: "st-header-not-utf8",
            files: vec![("model.safetensors", st_bytes(&[b'{', 0xff, 0xfe, b'}'], &[]))],
            args: INFO,
            expect: &["UTF-8"],
            names: "model.safetensors",
        },
        Case {
            name: "st-header-not-json",
            files: vec![("model.safetensors", st("this is not json", &[]))],
            args: INFO,
            expect: &["JSON"],
            names: "model.safetensors",
        },
        Case {
            name: "st-header-json-array",
            files: vec![("model.safetensors", st("[1,2,3]", &[]))],
            args: INFO,
            expect: &["header"],
            names: "model.safetensors",
        },
        Case {
            name: "st-header-trailing-garbage",
            files: vec![("model.safetensors", st("{}garbage", &[]))],
            args: INFO,
            expect: &["JSON"],
            names: "model.safetensors",
        },
        Case {
            name: "st-header-deeply-nested",
            files: vec![("model.safetensors", st(&format!(r#"{{"__metadata__":{}}}"#, deep_json(10_000)), &[]))],
            args: INFO,
            expect: &["header"],
            names: "model.safetensors",
        },
        Case {
            name: "st-entry-not-object",
            files: vec![("model.safetensors", st(r#"{"w":[1,2]}"#, &[]))],
            args: INFO,
            expect: &["w"],
            names: "model.safetensors",
        },
        Case {
            name: "st-entry-no-offsets",
            files: vec![("model.safetensors", st(r#"{"w":{"dtype":"F32","shape":[1]}}"#, &[0; 4]))],
            args: INFO,
            expect: &["w"],
            names: "model.safetensors",
        },
        Case {
            name: "st-three-offsets",
            files: vec![(
                "model.safetensors",
                st(r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#, &[0; 8]),
            )],
            args: INFO,
            expect: &["w"],
            names: "model.safetensors",
        },
        Case {
            name: "st-unknown-dtype",
            files: vec![(
                "model.safetensors",
                st(r#"{"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}"#, &[0; 4]),
            )],
            args: INFO,
            expect: &["F33"],
            names: "model.safetensors",
        },
        Case {
            name: "st-offsets-out-of-range",
            files: vec![(
                "model.safetensors",
                st(r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, &[0; 8]),
            )],
            args: INFO,
            expect: &["w"],
            names: "model.safetensors",
        },
        Case {
            name: "st-offsets-reversed",
            files: vec![(
                "model.safetensors",
                st(r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#, &[0; 8]),
            )],
            args: INFO,
            expect: &["w"],
            names: "model.safetensors",
        },
        Case {
            name: "st-offsets-u64-overflow",
            files: vec![(
                "model.safetensors",
                st(r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}}"#, &[0; 4]),
            )],
            args: INFO,
            expect: &["w"],
            names: "model.safetensors",
        },
        Case {
            name: "st-empty-tensor-inside-another",
            files: vec![(
                "model.safetensors",
                st(
                    r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}"#,
                    &[0; 8],
                ),
            )],
            args: INFO,
            expect: &["overlaps"],
            names: "model.safetensors",
        },
        Case {
            name: "st-offsets-overlap",
            files: vec![(
                "model.safetensors",
                st(
                    r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                    &[0; 12],
                ),
            )],
            args: INFO,
            expect: &["overlap"],
            names: "model.safetensors",
        },
        Case {
            name: "st-shape-disagrees",
            files: vec![(
                "model.safetensors",
                st(r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, &[0; 8]),
            )],
            args: INFO,
            expect: &["w"],
            names: "model.safetensors",
        },
        Case {
            name: "st-shape-overflows-u64",
            files: vec![(
                "model.safetensors",
                st(r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}}"#, &[0; 4]),
            )],
            args: INFO,
            expect: &["w"],
            names: "model.safetensors",
        },
        Case {
            name: "st-shape-negative",
            files: vec![(
                "model.safetensors",
                st(r#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, &[0; 4]),
            )],
            args: INFO,
            expect: &["w"],
            names: "model.safetensors",
        },
        Case {
            name: "st-bytes-of-no-tensor",
            files: vec![(
                "model.safetensors",
                st(r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, &[0; 8]),
            )],
            args: INFO,
            expect: &["no tensor"],
            names: "model.safetensors",
        },
        Case {
            name: "st-duplicate-key",
            files: vec![(
                "model.safetensors",
                st(
                    r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                    &[0; 8],
                ),
            )],
            args: INFO,
            expect: &["w"],
            names: "model.safetensors",
        },
        Case {
            name: "st-name-lone-surrogate",
            files: vec![(
                "model.safetensors",
                st(r#"{"\ud800":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, &[0; 4]),
            )],
            args: INFO,
            expect: &["JSON"],
            names: "model.safetensors",
        },
        Case {
            name: "st-metadata-not-object",
            files: vec![(
                "model.safetensors",
                st(r#"{"__metadata__":[1,2],"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, &[0; 4]),
            )],
            args: INFO,
            expect: &["__metadata__"],
            names: "model.safetensors",
        },
        Case {
            name: "st-dtype-not-string",
            files: vec![("model.safetensors", st(r#"{"w":{"dtype":5,"shape":[1],"data_offsets":[0,4]}}"#, &[0; 4]))],
            args: INFO,
            expect: &["w"],
            names: "model.safetensors",
        },
        Case {
            name: "st-nan-and-inf-values",
            files: vec![(
                "model.safetensors",
                st(
                    r#"{"w":{"dtype":"F32","shape":[2,32],"data_offsets":[0,256]}}"#,
                    &f32s(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1.0].repeat(16)),
                ),
            )],
            args: &[
                "quantize",
                "{case}/model.safetensors",
                "--scheme",
                "int4_g32+gptq",
                "--dry-run",
                "--calibration",
                "{case}/model.safetensors",
            ],
            expect: &["calibration"],
            names: "model.safetensors",
        },
        // --- safetensors, sharded ---
        Case {
            name: "index-not-json",
            files: vec![("model.safetensors.index.json", b"{not json".to_vec()), ("a.safetensors", ok.clone())],
            args: INFO_DIR,
            expect: &["JSON"],
            names: "model.safetensors.index.json",
        },
        Case {
            name: "index-missing-shard",
            files: vec![
                ("model.safetensors.index.json", br#"{"weight_map":{"w":"gone.safetensors"}}"#.to_vec()),
                ("a.safetensors", ok.clone()),
            ],
            args: INFO_DIR,
            expect: &["gone.safetensors"],
            names: "gone.safetensors",
        },
        Case {
            name: "index-tensor-not-in-shard",
            files: vec![
                (
                    "model.safetensors.index.json",
                    br#"{"weight_map":{"w":"a.safetensors","v":"a.safetensors"}}"#.to_vec(),
                ),
                ("a.safetensors", ok.clone()),
            ],
            args: INFO_DIR,
            expect: &["v"],
            names: "a.safetensors",
        },
        Case {
            name: "index-path-escapes-folder",
            files: vec![
                ("model.safetensors.index.json", br#"{"weight_map":{"w":"../../../../etc/passwd"}}"#.to_vec()),
                ("a.safetensors", ok.clone()),
            ],
            args: INFO_DIR,
            expect: &["passwd"],
            names: "model.safetensors.index.json",
        },
        Case {
            name: "index-deeply-nested",
            files: vec![
                (
                    "model.safetensors.index.json",
                    format!(r#"{{"metadata":{},"weight_map":{{}}}}"#, deep_json(10_000)).into_bytes(),
                ),
                ("a.safetensors", ok.clone()),
            ],
            args: INFO_DIR,
            expect: &["index"],
            names: "model.safetensors.index.json",
        },
        Case {
            name: "index-weight-map-not-object",
            files: vec![
                ("model.safetensors.index.json", br#"{"weight_map":[1,2]}"#.to_vec()),
                ("a.safetensors", ok.clone()),
            ],
            args: INFO_DIR,
            expect: &["weight_map"],
            names: "model.safetensors.index.json",
        },
        Case {
            name: "shards-duplicate-tensor",
            files: vec![
                ("model-00001-of-00002.safetensors", ok.clone()),
                ("model-00002-of-00002.safetensors", ok.clone()),
            ],
            args: INFO_DIR,
            expect: &["w"],
            names: "model-00002-of-00002.safetensors",
        },
        // --- GGUF ---
        Case {
            name: "gguf-wrong-magic",
            files: vec![("model.gguf", patch(gg.clone(), 0, b"GGUX"))],
            args: INFO_GGUF,
            expect: &["GGUF"],
            names: "model.gguf",
        },
        Case {
            name: "gguf-version-99",
            files: vec![("model.gguf", patch(gg.clone(), 4, &99u32.to_le_bytes()))],
            args: INFO_GGUF,
            expect: &["99"],
            names: "model.gguf",
        },
        Case {
            name: "gguf-truncated-header",
            files: vec![("model.gguf", gg[..40].to_vec())],
            args: INFO_GGUF,
            expect: &["model.gguf"],
            names: "model.gguf",
        },
        Case {
            name: "gguf-tensor-count-absurd",
            files: vec![("model.gguf", patch(gg.clone(), 8, &u64::MAX.to_le_bytes()))],
            args: INFO_GGUF,
            expect: &["tensor"],
            names: "model.gguf",
        },
        Case {
            name: "gguf-kv-count-absurd",
            files: vec![("model.gguf", patch(gg.clone(), 16, &(u64::MAX / 2).to_le_bytes()))],
            args: INFO_GGUF,
            expect: &["model.gguf"],
            names: "model.gguf",
        },
        Case {
            name: "gguf-key-length-absurd",
            files: vec![("model.gguf", patch(gg.clone(), 24, &(u64::MAX / 3).to_le_bytes()))],
            args: INFO_GGUF,
            expect: &["model.gguf"],
            names: "model.gguf",
        },
        Case {
            name: "gguf-unknown-value-type",
            files: vec![("model.gguf", {
                let mut g = small_llama();
                g.kvs.push(("x.bad".into(), 77, vec![0; 8]));
                g.build()
            })],
            args: INFO_GGUF,
            expect: &["77"],
            names: "model.gguf",
        },
        Case {
            name: "gguf-unknown-tensor-type",
            files: vec![("model.gguf", {
                let mut g = Gguf::new("llama");
                g.tensor("w", &[1, 32], 99, vec![0; 64]);
                g.build()
            })],
            args: INFO_GGUF,
            expect: &["99"],
            names: "model.gguf",
        },
        Case {
            name: "gguf-five-dims",
            files: vec![("model.gguf", {
                let mut g = Gguf::new("llama");
                g.f32("w", &[1, 1, 1, 1, 2], &[1.0, 2.0]);
                g.build()
            })],
            args: INFO_GGUF,
            expect: &["w"],
            names: "model.gguf",
        },
        Case {
            name: "gguf-element-count-overflow",
            files: vec![("model.gguf", {
                let mut g = Gguf::new("llama");
                g.tensor("w", &[1 << 32, 1 << 32, 1 << 32], 0, vec![0; 32]);
                g.build()
            })],
            args: INFO_GGUF,
            expect: &["w"],
            names: "model.gguf",
        },
        Case {
            name: "gguf-dimension-beyond-i64",
            files: vec![("model.gguf", {
                let mut g = Gguf::new("llama");
                g.tensors.push(("w".into(), vec![1 << 63], 0, vec![0; 4]));
                g.build()
            })],
            args: INFO_GGUF,
            expect: &["w"],
            names: "model.gguf",
        },
        Case {
            name: "gguf-truncated-data",
            files: vec![("model.gguf", gg[..gg.len() - 10].to_vec())],
            args: INFO_GGUF,
            expect: &["model.gguf"],
            names: "model.gguf",
        },
        Case {
            name: "gguf-alignment-not-power-of-two",
            files: vec![("model.gguf", {
                let mut g = small_llama();
                g.kv_u32("general.alignment", 24);
                g.build()
            })],
            args: INFO_GGUF,
            expect: &["alignment"],
            names: "model.gguf",
        },
        Case {
            name: "gguf-duplicate-tensor",
            files: vec![("model.gguf", {
                let mut g = Gguf::new("llama");
                g.f32("w", &[1, 2], &[1.0, 2.0]).f32("w", &[1, 2], &[3.0, 4.0]);
                g.build()
            })],
            args: INFO_GGUF,
            expect: &["w"],
            names: "model.gguf",
        },
        Case {
            name: "gguf-string-array-absurd",
            files: vec![("model.gguf", {
                let mut g = Gguf::new("llama");
                let mut v = 8u32.to_le_bytes().to_vec();
                v.extend((u64::MAX / 16).to_le_bytes());
                g.kvs.push(("tokenizer.ggml.tokens".into(), 9, v));
                g.build()
            })],
            args: INFO_GGUF,
            expect: &["model.gguf"],
            names: "model.gguf",
        },
        Case {
            name: "gguf-key-not-utf8",
            files: vec![("model.gguf", {
                let mut g = Gguf::new("llama");
                g.kv_u32("KEY__", 1);
                let mut b = g.build();
                let at = b.windows(5).position(|w| w == b"KEY__").unwrap();
                b[at..at + 5].copy_from_slice(&[0xff, 0xfe, 0xfd, 0xfc, 0xfb]);
                b
            })],
            args: INFO_GGUF,
            expect: &["UTF-8"],
            names: "model.gguf",
        },
        // --- plans ---
        Case {
            name: "plan-not-toml",
            files: vec![("plan.toml", b"this = is [ not toml".to_vec())],
            args: PLAN,
            expect: &["plan.toml"],
            names: "plan.toml",
        },
        Case {
            name: "plan-unknown-scheme",
            files: vec![("plan.toml", b"[[rule]]\nmatch = \"*\"\nscheme = \"q9_z\"\n".to_vec())],
            args: PLAN,
            expect: &["q9_z"],
            names: "plan.toml",
        },
        Case {
            name: "plan-bad-regex",
            files: vec![("plan.toml", b"[[rule]]\nmatch = \"re:(unclosed\"\nscheme = \"q4_0\"\n".to_vec())],
            args: PLAN,
            expect: &["(unclosed"],
            names: "plan.toml",
        },
        Case {
            name: "plan-unknown-field",
            files: vec![("plan.toml", b"default = \"q8_0\"\n".to_vec())],
            args: PLAN,
            expect: &["default"],
            names: "plan.toml",
        },
        Case {
            name: "plan-absurd-bits",
            files: vec![(
                "plan.toml",
                b"[[rule]]\nmatch = \"*\"\nscheme = \"int99999999999999999999_g128\"\n".to_vec(),
            )],
            args: PLAN,
            expect: &["int99999999999999999999_g128"],
            names: "plan.toml",
        },
        Case {
            name: "plan-not-utf8",
            files: vec![("plan.toml", vec![b'd', 0xff, 0xfe, b'=', b'1'])],
            args: PLAN,
            expect: &["UTF-8"],
            names: "plan.toml",
        },
        Case {
            name: "plan-json-deeply-nested",
            files: vec![(
                "plan.json",
                format!(r#"{{"rule":[{{"match":"*","scheme":"q8_0"}}],"x":{}}}"#, deep_json(10_000)).into_bytes(),
            )],
            args: PLAN_JSON,
            expect: &["plan.json"],
            names: "plan.json",
        },
        Case {
            name: "plan-json-duplicate-key",
            files: vec![("plan.json", br#"{"rule":[],"rule":[]}"#.to_vec())],
            args: PLAN_JSON,
            expect: &["rule"],
            names: "plan.json",
        },
        // --- imatrix ---
        Case {
            name: "imatrix-not-gguf",
            files: vec![("x.imatrix.gguf", b"just some text".to_vec())],
            args: IMATRIX,
            expect: &["x.imatrix.gguf"],
            names: "x.imatrix.gguf",
        },
        Case {
            name: "imatrix-truncated",
            files: vec![("x.imatrix.gguf", imatrix_file(4, 4, 1.0)[..60].to_vec())],
            args: IMATRIX,
            expect: &["x.imatrix.gguf"],
            names: "x.imatrix.gguf",
        },
        Case {
            name: "imatrix-counts-mismatch",
            files: vec![("x.imatrix.gguf", imatrix_file(384, 7, 1.0))],
            args: IMATRIX,
            expect: &["counts"],
            names: "x.imatrix.gguf",
        },
        Case {
            name: "imatrix-nan-values",
            files: vec![("x.imatrix.gguf", imatrix_file(384, 1, f32::NAN))],
            args: IMATRIX,
            expect: &["NaN"],
            names: "x.imatrix.gguf",
        },
        // --- config.json and tokenizer.json for the runtime ---
        Case {
            name: "config-not-json",
            files: llama_folder(Some("{\"vocab_size\": 8,"), None),
            args: EVAL,
            expect: &["config.json"],
            names: "config.json",
        },
        Case {
            name: "config-absurd-sizes",
            files: llama_folder(
                Some(
                    r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":8,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":4000000000,"num_attention_heads":2,"num_key_value_heads":2,"rms_norm_eps":1e-5,"tie_word_embeddings":true}"#,
                ),
                None,
            ),
            args: EVAL,
            expect: &["model.layers.1"],
            names: ".",
        },
        Case {
            name: "config-zero-heads",
            files: llama_folder(
                Some(
                    r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":8,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":0,"num_key_value_heads":0,"rms_norm_eps":1e-5,"tie_word_embeddings":true}"#,
                ),
                None,
            ),
            args: EVAL,
            expect: &["heads"],
            names: "config.json",
        },
        Case {
            name: "config-deeply-nested",
            files: llama_folder(Some(&format!(r#"{{"x":{}}}"#, deep_json(10_000))), None),
            args: EVAL,
            expect: &["config.json"],
            names: "config.json",
        },
        Case {
            name: "tokenizer-not-json",
            files: llama_folder(None, Some("{\"model\": ")),
            args: EVAL,
            expect: &["tokenizer.json"],
            names: "tokenizer.json",
        },
        Case {
            name: "tokenizer-unknown-model",
            files: llama_folder(None, Some(r#"{"version":"1.0","model":{"type":"NoSuchModel"}}"#)),
            args: EVAL,
            expect: &["tokenizer.json"],
            names: "tokenizer.json",
        },
        Case {
            name: "tokenizer-ids-beyond-vocab",
            files: llama_folder(
                None,
                Some(
                    r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,"model":{"type":"WordLevel","vocab":{"[UNK]":0,"a":1000000,"short":2,"text":3,"to":4,"run":5},"unk_token":"[UNK]"}}"#,
                ),
            ),
            args: EVAL,
            expect: &["1000000"],
            names: "tokenizer.json",
        },
    ];
    c.sort_by_key(|c| c.name);
    c
}

/// An imatrix GGUF for the demo's first layer's query (384 columns): `in_sum2` of `n` values all
/// `value`, and `counts` of `counts` values.
fn imatrix_file(n: usize, counts: usize, value: f32) -> Vec<u8> {
    let mut g = Gguf::new("imatrix");
    g.kv_str("general.type", "imatrix");
    g.kv_strings("imatrix.datasets", &["hostile"]);
    g.kv_u32("imatrix.chunk_count", 1);
    g.kv_u32("imatrix.chunk_size", 512);
    let name = "encoder.layer.0.attention.self.query.weight";
    g.f32(&format!("{name}.in_sum2"), &[1, n as u64], &vec![value; n]);
    g.f32(&format!("{name}.counts"), &[1, counts as u64], &vec![1.0; counts]);
    g.build()
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile")
}

/// The committed corpus is what [`corpus`] makes (so the files and the code that explains them
/// never drift apart), and it has at least 50 cases.
#[test]
fn the_committed_corpus_is_what_the_code_makes() {
    let cases = corpus();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let update = std::env::var_os("UPDATE_CORPUS").is_some();
    let root = corpus_dir();
    if update {
        let _ = std::fs::remove_dir_all(&root);
    }
    for case in &cases {
        for (rel, bytes) in &case.files {
            let path = root.join(case.name).join(rel);
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, bytes).unwrap();
            }
            let on_disk = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_CORPUS=1 writes the corpus)", path.display()));
            assert!(on_disk == *bytes, "{} differs from what the code makes (UPDATE_CORPUS=1)", path.display());
        }
    }
}

/// The address space each run of the corpus gets (4 GiB): far above what any case needs (the
/// checkpoints are kilobytes), far below what a header's claimed sizes would take.
const MEMORY_KIB: u64 = 4 << 20;

/// Runs `weightbench` on a case with a time bound: (exit code, stderr), or a failure naming the
/// case when it runs past the bound (and is killed).
fn run_case(case: &Case, bound: Duration) -> (Option<i32>, String) {
    let dir = corpus_dir().join(case.name);
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
    let args: Vec<String> = case
        .args
        .iter()
        .map(|a| a.replace("{case}", &dir.to_string_lossy()).replace("{demo}", &demo.to_string_lossy()))
        .collect();
    let cache = std::env::temp_dir().join(format!("weightbench-hostile-cache-{}", std::process::id()));
    // Through sh for `ulimit -v`: a reader that tries to allocate what a header claims (terabytes)
    // fails here instead of swapping the machine.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {MEMORY_KIB} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_weightbench"))
        .args(&args)
        .env("XDG_CACHE_HOME", cache)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (status.code(), String::from_utf8_lossy(&out.stderr).into_owned());
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{}: still running after {bound:?} ({args:?})", case.name);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every case through the command line: exit status 1, a message that names the file and says
/// what is wrong, no panic, within 30 s and 4 GiB of address space.
#[test]
fn every_hostile_input_fails_cleanly_on_the_command_line() {
    let mut failures = Vec::new();
    for case in corpus() {
        let (code, err) = run_case(&case, Duration::from_secs(30));
        // ".": the message names the case's folder (the checkpoint as a whole).
        let named = match case.names {
            "." => case.name.to_owned(),
            file => Path::new(file).file_name().unwrap().to_string_lossy().into_owned(),
        };
        let ok = code == Some(1)
            && err.starts_with("error: ")
            && !err.contains("panicked")
            && err.contains(&named)
            && case.expect.iter().all(|w| err.contains(w));
        if !ok {
            failures.push(format!("{} (exit {code:?}, wants {:?} and {named:?}):\n{err}", case.name, case.expect));
        }
    }
    assert!(failures.is_empty(), "{} of the corpus failed:\n{}", failures.len(), failures.join("\n"));
}

/// Every broken checkpoint of the corpus opened in the window, one after the other: each leaves
/// no session and shows a message naming the file and the fault; then the demo still opens.
#[test]
fn every_hostile_checkpoint_gives_a_message_in_the_window() {
    let cases: Vec<Case> = corpus().into_iter().filter(|c| c.args[0] == "info").collect();
    assert!(cases.len() >= 40, "{} checkpoint cases", cases.len());
    let mut harness =
        Harness::builder().with_size([1400.0, 700.0]).build_eframe(|cc| WorkbenchApp::new(&cc.egui_ctx, None));
    harness.run_steps(2);
    for case in &cases {
        let path = case.args[1].replace("{case}", &corpus_dir().join(case.name).to_string_lossy());
        harness.state_mut().open(PathBuf::from(path));
        crate::gui::step_until(&mut harness, 30, case.name, |app| app.opening.is_none());
        assert!(harness.state().session.is_none(), "{}: it opened", case.name);
        let named = if case.names == "." { case.name } else { case.names };
        for w in case.expect.iter().chain([&named]) {
            assert!(
                crate::gui::shows(&harness, w),
                "{}: the window does not show {w:?} (message {:?})",
                case.name,
                harness.state().message
            );
        }
    }
    harness.state_mut().open(crate::fixtures::demo());
    crate::gui::step_until(&mut harness, 60, "the demo after the corpus", |app| app.session.is_some());
    let start = Instant::now();
    while !crate::gui::shows(&harness, "Histogram of") {
        assert!(start.elapsed() < Duration::from_secs(60), "the window does not work on after the corpus");
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The runtime cases break only what they say: the same tiny model with its own config and
/// tokenizer runs.
#[test]
fn the_tiny_model_behind_the_runtime_cases_runs() {
    let dir = crate::fixtures::TempDir::new();
    for (rel, bytes) in llama_folder(None, None) {
        std::fs::write(dir.join(rel), bytes).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_weightbench"))
        .args(["eval", &dir.path().to_string_lossy(), "--text", "a short text to run", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tokens"], 5);
    assert!(v["ppl"].as_f64().is_some_and(f64::is_finite));
}
