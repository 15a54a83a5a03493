//! `export` as a library: what it writes reads back as the preview decoded it, bit for bit; CPU
//! and GPU write the same bytes; a plan a format cannot carry is refused before anything is
//! written, and a failed or cancelled export leaves nothing behind.

use std::path::Path;

use weightbench::analysis::Cancel;
use weightbench::checkpoint::{Checkpoint, GgufValue};
use weightbench::codec::DType;
use weightbench::compute::Backend;
use weightbench::compute::cpu::CpuBackend;
use weightbench::export::ExportError;
use weightbench::export::model::{ExportFormat, ExportOptions, ExportReport, export};
use weightbench::quant::plan::ModelIdentity;
use weightbench::quant::{Plan, Resolved, preview_tensor};

use crate::fixtures::{Gguf, Spec, TempDir, gpu, write_safetensors};

fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            (u * u * u * 0.4) as f32
        })
        .collect()
}

/// A llama-named GGUF of F32 tensors: two matrices of whole 256-value rows, one of 96-value
/// rows (no K-quant block fits), a norm.
fn small_gguf(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.join("small.gguf");
    let mut g = Gguf::new("llama");
    g.kv_u32("llama.attention.head_count", 4).kv_u32("llama.block_count", 1).kv_str("general.name", "small");
    g.f32("token_embd.weight", &[40, 96], &weights(40 * 96, 1))
        .f32("blk.0.attn_norm.weight", &[256], &weights(256, 2))
        .f32("blk.0.attn_q.weight", &[64, 256], &weights(64 * 256, 3))
        .f32("blk.0.ffn_down.weight", &[32, 512], &weights(32 * 512, 4));
    g.write(&path);
    path
}

fn resolve(ckpt: &Checkpoint, plan: &Plan) -> Vec<Resolved> {
    plan.resolve(&weightbench::quant::plan::described(ckpt.tensors()), &ModelIdentity::default()).unwrap().0
}

fn run(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    plan: &Plan,
    format: ExportFormat,
    out: &Path,
) -> Result<ExportReport, ExportError> {
    export(
        backend,
        ckpt,
        &resolve(ckpt, plan),
        None,
        format,
        out,
        &ExportOptions::default(),
        &Cancel::new(),
        &|_, _| {},
    )
}

/// The preview's decoded values of every tensor.
fn preview_decoded(ckpt: &Checkpoint, plan: &Plan) -> Vec<(String, Vec<f32>, f64)> {
    resolve(ckpt, plan)
        .iter()
        .zip(ckpt.tensors())
        .map(|(r, t)| {
            let mut values = Vec::new();
            let mut put = |_: u64, v: &[f32]| -> Result<(), weightbench::compute::ComputeError> {
                values.extend_from_slice(v);
                Ok(())
            };
            let row = preview_tensor(&CpuBackend, ckpt, t, r, None, Some(&mut put), &Cancel::new()).unwrap();
            (t.name.clone(), values, row.sse)
        })
        .collect()
}

const PLAN: &str = "[[rule]]\nmatch = \"*.weight\"\nscheme = \"q4_k\"\n\
                    [tensor.\"blk.0.ffn_down.weight\"]\nscheme = \"q8_0\"\n";

#[test]
fn a_gguf_export_reads_back_as_the_preview_decoded_it_with_the_sources_keys() {
    let dir = TempDir::new();
    let ckpt = Checkpoint::open(small_gguf(&dir)).unwrap();
    let plan = Plan::parse_toml(PLAN, "plan.toml").unwrap();
    let out = dir.join("out.gguf");
    let report = run(&CpuBackend, &ckpt, &plan, ExportFormat::Gguf, &out).unwrap();
    let got = Checkpoint::open(&out).unwrap();
    let dtype = |n: &str| got.tensor(n).unwrap().dtype.name();
    // q4_k where rows are whole 256-value blocks, its fallback (q5_0) on 96-value rows, the
    // override, and the norm F32.
    assert_eq!(
        [dtype("blk.0.attn_q.weight"), dtype("token_embd.weight"), dtype("blk.0.ffn_down.weight")],
        ["Q4_K", "Q5_0", "Q8_0"]
    );
    assert_eq!(dtype("blk.0.attn_norm.weight"), "F32");
    for ((name, want, sse), row) in preview_decoded(&ckpt, &plan).iter().zip(&report.tensors) {
        let values = got.decode_all(got.tensor(name).unwrap()).unwrap();
        let same = values.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same && values.len() == want.len(), "{name}: the file's values are the preview's");
        assert_eq!(row.sse, *sse, "{name}: the export reports the preview's error");
    }
    let info = got.gguf().unwrap();
    assert!(matches!(info.get("general.name"), Some(GgufValue::String(s)) if s == "small"));
    assert!(matches!(info.get("llama.attention.head_count"), Some(GgufValue::U32(4))));
    assert!(matches!(info.get("general.quantization_version"), Some(GgufValue::U32(2))));
    // Q4_K holds the most values (64 × 256), so the file says Q4_K_M (15), as llama.cpp would.
    assert!(matches!(info.get("general.file_type"), Some(GgufValue::U32(15))));
    assert_eq!(report.files, vec![out.clone()]);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&out).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644, "an output is readable by others, unlike its temporary");
}

#[test]
fn a_plan_gguf_cannot_carry_is_refused_up_front_naming_each_tensor_and_nothing_is_written() {
    let dir = TempDir::new();
    let src = small_gguf(&dir);
    let ckpt = Checkpoint::open(&src).unwrap();
    let out = dir.join("out.gguf");
    let plan = Plan::single("int4_g32").unwrap();
    let err = run(&CpuBackend, &ckpt, &plan, ExportFormat::Gguf, &out).unwrap_err().to_string();
    assert!(err.contains("blk.0.attn_q.weight") && err.contains("int4_g32") && err.contains("no GGUF type"), "{err}");
    assert!(!err.contains("attn_norm"), "the norm is kept F32 and fine: {err}");
    let awq = Plan::single("q4_0+awq").unwrap();
    let err = run(&CpuBackend, &ckpt, &awq, ExportFormat::Gguf, &out).unwrap_err().to_string();
    assert!(err.contains("AWQ's input scales are not folded") && err.contains("fake-quant"), "{err}");
    assert!(!out.exists());
    // The output may never be the input.
    let err = run(&CpuBackend, &ckpt, &Plan::single("q8_0").unwrap(), ExportFormat::Gguf, &src).unwrap_err();
    assert!(matches!(err, ExportError::WouldOverwriteInput { .. }), "{err}");
    // A cancelled export leaves no file, not even a temporary.
    let resolved = resolve(&ckpt, &Plan::single("q8_0").unwrap());
    let cancel = Cancel::new();
    cancel.cancel();
    let err = export(
        &CpuBackend,
        &ckpt,
        &resolved,
        None,
        ExportFormat::Gguf,
        &out,
        &ExportOptions::default(),
        &cancel,
        &|_, _| {},
    );
    assert!(matches!(err, Err(ExportError::Cancelled)), "{err:?}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "only the source remains: {left:?}");
}

#[test]
fn a_fake_quant_export_holds_the_decoded_values_in_the_source_type_and_the_folders_files() {
    let dir = TempDir::new();
    let folder = dir.join("model");
    std::fs::create_dir_all(&folder).unwrap();
    let w = weights(48 * 128, 7);
    let bf16: Vec<u8> = w.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect();
    write_safetensors(
        &folder.join("model.safetensors"),
        &[
            Spec::new("layer.weight", safetensors::Dtype::BF16, &[48, 128], bf16),
            Spec::f32("layer.bias", &[48], &w[..48]),
        ],
    );
    std::fs::write(folder.join("config.json"), "{\"model_type\": \"bert\"}").unwrap();
    std::fs::write(folder.join("tokenizer.json"), "{}").unwrap();
    let ckpt = Checkpoint::open(&folder).unwrap();
    let plan = Plan::single("int4_g32").unwrap();
    let out = dir.join("fake");
    let report = run(&CpuBackend, &ckpt, &plan, ExportFormat::Safetensors, &out).unwrap();
    assert_eq!(report.files.len(), 3, "{:?}", report.files);
    assert_eq!(std::fs::read(out.join("tokenizer.json")).unwrap(), b"{}");
    let got = Checkpoint::open(out.join("model.safetensors")).unwrap();
    for (name, want, _) in preview_decoded(&ckpt, &plan) {
        let t = got.tensor(&name).unwrap();
        assert_eq!(t.dtype, ckpt.tensor(&name).unwrap().dtype, "{name}: stored in the source's type");
        let values = got.decode_all(t).unwrap();
        // compressed-tensors computes bf16 tensors' codes in bf16: the decoded values are bf16 values.
        assert!(values.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}");
    }
    // A refused or failing export into a new folder leaves no folder behind.
    let bad = dir.join("bad");
    let err = run(&CpuBackend, &ckpt, &Plan::single("q4_k").unwrap(), ExportFormat::Gguf, &bad);
    assert!(err.is_err() && !bad.exists());
}

#[test]
fn cpu_and_gpu_exports_are_byte_identical() {
    let Some(gpu) = gpu() else { return };
    let dir = TempDir::new();
    let ckpt = Checkpoint::open(small_gguf(&dir)).unwrap();
    for (scheme, format, name) in [
        ("q8_0", ExportFormat::Gguf, "q8.gguf"),
        ("q4_0", ExportFormat::Gguf, "q4.gguf"),
        ("int4_g32", ExportFormat::Safetensors, "int4"),
    ] {
        let plan = Plan::single(scheme).unwrap();
        let (c, g) = (dir.join(&format!("cpu-{name}")), dir.join(&format!("gpu-{name}")));
        run(&CpuBackend, &ckpt, &plan, format, &c).unwrap();
        let report = run(gpu.as_ref(), &ckpt, &plan, format, &g).unwrap();
        assert!(report.tensors.iter().any(|r| r.computed.backend == "gpu"), "{scheme}: the GPU encoded");
        let file = |p: &Path| if format == ExportFormat::Gguf { p.to_owned() } else { p.join("model.safetensors") };
        assert_eq!(std::fs::read(file(&c)).unwrap(), std::fs::read(file(&g)).unwrap(), "{scheme}");
    }
}

#[test]
fn a_compressed_tensors_export_lays_out_packed_weights_and_its_quantization_config() {
    let dir = TempDir::new();
    let folder = dir.join("model");
    std::fs::create_dir_all(&folder).unwrap();
    write_safetensors(
        &folder.join("model.safetensors"),
        &[
            Spec::f32("model.layers.0.mlp.up_proj.weight", &[48, 128], &weights(48 * 128, 1)),
            Spec::f32("model.layers.0.mlp.down_proj.weight", &[128, 48], &weights(48 * 128, 2)),
            Spec::f32("model.layers.0.self_attn.q_proj.weight", &[32, 128], &weights(32 * 128, 3)),
            Spec::f32("model.norm.weight", &[128], &weights(128, 4)),
        ],
    );
    std::fs::write(folder.join("config.json"), "{\"model_type\": \"llama\", \"hidden_size\": 128}").unwrap();
    let ckpt = Checkpoint::open(&folder).unwrap();
    let plan = Plan::parse_toml(
        "[[rule]]\nmatch = \"*.weight\"\nscheme = \"int4_g32_asym\"\n\
         [tensor.\"model.layers.0.mlp.down_proj.weight\"]\nscheme = \"fp8_e4m3_ch\"\n\
         [tensor.\"model.layers.0.self_attn.q_proj.weight\"]\nscheme = \"keep\"\n",
        "plan.toml",
    )
    .unwrap();
    let out = dir.join("ct");
    run(&CpuBackend, &ckpt, &plan, ExportFormat::Ct, &out).unwrap();
    let got = Checkpoint::open(out.join("model.safetensors")).unwrap();
    let t = |n: &str| {
        let t = got.tensor(n).unwrap_or_else(|| panic!("{n} missing"));
        (t.dtype.name(), t.shape.clone())
    };
    let up = "model.layers.0.mlp.up_proj";
    // 128 4-bit values per row: 16 words; zero points of 48 rows packed along them: 6 words.
    assert_eq!(t(&format!("{up}.weight_packed")), ("I32", vec![48, 16]));
    assert_eq!(t(&format!("{up}.weight_scale")), ("F32", vec![48, 4]));
    assert_eq!(t(&format!("{up}.weight_zero_point")), ("I32", vec![6, 4]));
    assert_eq!(t(&format!("{up}.weight_shape")), ("I64", vec![2]));
    assert_eq!(got.decode_all(got.tensor(&format!("{up}.weight_shape")).unwrap()).unwrap(), [48.0, 128.0]);
    assert_eq!(t("model.layers.0.mlp.down_proj.weight"), ("F8_E4M3", vec![128, 48]));
    assert_eq!(t("model.layers.0.mlp.down_proj.weight_scale"), ("F32", vec![128, 1]));
    assert_eq!(t("model.layers.0.self_attn.q_proj.weight"), ("F32", vec![32, 128]));
    assert_eq!(t("model.norm.weight"), ("F32", vec![128]));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "llama", "the source's config, extended");
    let q = &config["quantization_config"];
    assert_eq!(
        (q["quant_method"].as_str(), q["format"].as_str()),
        (Some("compressed-tensors"), Some("mixed-precision"))
    );
    let groups: Vec<&serde_json::Value> = q["config_groups"].as_object().unwrap().values().collect();
    let packed = groups.iter().find(|g| g["format"] == "pack-quantized").unwrap();
    assert_eq!(packed["targets"], serde_json::json!([up]));
    assert_eq!(packed["weights"]["group_size"], 32);
    assert_eq!(packed["weights"]["symmetric"], false);
    assert_eq!(q["ignore"], serde_json::json!(["model.layers.0.self_attn.q_proj"]));
    // What compressed-tensors has no format for is refused, naming the tensor.
    let err = run(&CpuBackend, &ckpt, &Plan::single("q4_0").unwrap(), ExportFormat::Ct, &dir.join("no")).unwrap_err();
    assert!(err.to_string().contains("up_proj.weight") && err.to_string().contains("q4_0"), "{err}");
    assert!(!dir.join("no").exists());
    // The GPU's packed codes are the CPU's.
    if let Some(gpu) = gpu() {
        let g = dir.join("ct-gpu");
        run(gpu.as_ref(), &ckpt, &plan, ExportFormat::Ct, &g).unwrap();
        assert_eq!(
            std::fs::read(out.join("model.safetensors")).unwrap(),
            std::fs::read(g.join("model.safetensors")).unwrap()
        );
    }
}

#[test]
fn plans_for_other_tools_give_each_tensor_its_scheme_under_their_matching_rules() {
    use weightbench::export::plans;
    let dir = TempDir::new();
    let ckpt = Checkpoint::open(small_gguf(&dir)).unwrap();
    let plan =
        Plan::parse_toml(&format!("{PLAN}[tensor.\"token_embd.weight\"]\nscheme = \"int4_g32\"\n"), "p").unwrap();
    let resolved = resolve(&ckpt, &plan);
    // llama.cpp: regexes searched unanchored, the first that matches wins.
    let t = plans::llama_cpp(&ckpt, &resolved);
    let lines: Vec<(regex::Regex, String)> = t
        .text
        .lines()
        .map(|l| {
            let (re, ty) = l.rsplit_once('=').unwrap();
            (regex::Regex::new(re).unwrap(), ty.to_owned())
        })
        .collect();
    for (tensor, r) in ckpt.tensors().iter().zip(&resolved) {
        let first = lines.iter().find(|(re, _)| re.is_match(&tensor.name)).map(|(_, ty)| ty.as_str());
        match &r.parsed {
            weightbench::quant::Scheme::Ggml(d) => assert_eq!(first, Some(d.name().to_ascii_lowercase().as_str())),
            _ => assert_eq!(first, None, "{}", tensor.name),
        }
    }
    assert_eq!(t.cannot_express.len(), 1, "{:?}", t.cannot_express);
    assert!(t.cannot_express[0].contains("token_embd") && t.command.unwrap().contains("--tensor-type-file"));
    // GPTQModel: keys matched from the start of module names, first match wins; the base config
    // is the most common integer scheme.
    let g = plans::gptqmodel(&ckpt, &resolved);
    let v: serde_json::Value = serde_json::from_str(&g.text).unwrap();
    assert_eq!((v["bits"].as_u64(), v["group_size"].as_i64()), (Some(4), Some(32)));
    assert_eq!(g.cannot_express.len(), 2, "the q4_k and q8_0 matrices: {:?}", g.cannot_express);
    // weightbench's own plan, resolved: read back, it gives every tensor the same scheme.
    let own = plans::resolved_toml(&ckpt, &resolved);
    let again = resolve(&ckpt, &Plan::parse_toml(&own.text, "resolved.toml").unwrap());
    assert_eq!(
        again.iter().map(|r| r.parsed.to_string()).collect::<Vec<_>>(),
        resolved.iter().map(|r| r.parsed.to_string()).collect::<Vec<_>>()
    );
}

#[test]
fn large_outputs_are_sharded_with_an_index_that_reads_back_whole() {
    let dir = TempDir::new();
    let folder = dir.join("model");
    std::fs::create_dir_all(&folder).unwrap();
    let specs: Vec<Spec> =
        (0..5).map(|k| Spec::f32(&format!("layers.{k}.weight"), &[32, 64], &weights(32 * 64, k + 10))).collect();
    write_safetensors(&folder.join("model.safetensors"), &specs);
    let ckpt = Checkpoint::open(&folder).unwrap();
    let plan = Plan::single("int8_ch").unwrap();
    // Each fake-quant tensor takes 8 KiB, each int8_ch module 2 KiB and 128 bytes: three shards.
    for (format, limit) in [(ExportFormat::Safetensors, 20_000), (ExportFormat::Ct, 5_000)] {
        let out = dir.join(&format!("{format:?}"));
        let options = ExportOptions { max_shard_size: Some(limit), ..ExportOptions::default() };
        let resolved = resolve(&ckpt, &plan);
        let report =
            export(&CpuBackend, &ckpt, &resolved, None, format, &out, &options, &Cancel::new(), &|_, _| {}).unwrap();
        let names: Vec<String> =
            report.files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert!(names.contains(&"model.safetensors.index.json".to_owned()), "{names:?}");
        assert!(!names.contains(&"model.safetensors".to_owned()));
        let shards = names.iter().filter(|n| n.starts_with("model-0000")).count();
        assert!(shards >= 2, "{format:?}: {names:?}");
        let got = Checkpoint::open(&out).unwrap();
        if format == ExportFormat::Safetensors {
            for (name, want, _) in preview_decoded(&ckpt, &plan) {
                let values = got.decode_all(got.tensor(&name).unwrap()).unwrap();
                assert!(values.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}");
            }
        } else {
            assert_eq!(got.tensors().len(), 10, "weight and weight_scale of each module");
        }
    }
    assert_eq!(weightbench::export::safetensors::parse_size("5GB"), Ok(5_000_000_000));
    assert_eq!(weightbench::export::safetensors::parse_size("2 GiB"), Ok(2 << 30));
    assert!(weightbench::export::safetensors::parse_size("5 parsecs").is_err());
}

#[test]
fn a_transformers_checkpoint_exports_to_gguf_with_llama_cpps_names_row_order_and_tokenizer() {
    use weightbench::export::convert::{ConvertOptions, gguf_to_safetensors};
    let dir = TempDir::new();
    // A llama GGUF (Q/K rows in llama.cpp's order, a byte-level BPE vocabulary), converted to a
    // transformers folder, exported back to GGUF: the same tensors, bit for bit, and the keys
    // llama.cpp's loader needs.
    let (heads, kv_heads, hidden) = (4u32, 2u32, 32u64);
    let mut g = Gguf::new("llama");
    g.kv_u32("llama.block_count", 1)
        .kv_u32("llama.embedding_length", hidden as u32)
        .kv_u32("llama.feed_forward_length", 64)
        .kv_u32("llama.attention.head_count", heads)
        .kv_u32("llama.attention.head_count_kv", kv_heads)
        .kv_u32("llama.context_length", 128)
        .kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
        .kv_f32("llama.rope.freq_base", 10000.0)
        .kv_str("tokenizer.ggml.model", "gpt2")
        .kv_str("tokenizer.ggml.pre", "smollm")
        .kv_strings("tokenizer.ggml.tokens", &["<|endoftext|>", "a", "b", "ab"])
        .kv_strings("tokenizer.ggml.merges", &["a b"])
        .kv_u32("tokenizer.ggml.eos_token_id", 0);
    g.f32("token_embd.weight", &[4, hidden], &weights(4 * hidden as usize, 1))
        .f32("blk.0.attn_q.weight", &[32, hidden], &weights(32 * hidden as usize, 2))
        .f32("blk.0.attn_k.weight", &[16, hidden], &weights(16 * hidden as usize, 3))
        .f32("blk.0.attn_norm.weight", &[hidden], &weights(hidden as usize, 4));
    let src = dir.join("src.gguf");
    g.write(&src);
    let original = Checkpoint::open(&src).unwrap();
    let hf = dir.join("hf");
    let opts = ConvertOptions { out_dir: hf.clone(), dtype: DType::F32, keep_names: false, overwrite: false };
    gguf_to_safetensors(&original, &opts, &Cancel::new(), &|_, _| {}).unwrap();
    let folder = Checkpoint::open(&hf).unwrap();
    let out = dir.join("back.gguf");
    run(&CpuBackend, &folder, &Plan::single("keep").unwrap(), ExportFormat::Gguf, &out).unwrap();
    let back = Checkpoint::open(&out).unwrap();
    for t in original.tensors() {
        let b = back.tensor(&t.name).unwrap_or_else(|| panic!("{} missing", t.name));
        assert_eq!(b.shape, t.shape);
        let (x, y) = (original.decode_all(t).unwrap(), back.decode_all(b).unwrap());
        assert!(x.iter().zip(&y).all(|(a, b)| a.to_bits() == b.to_bits()), "{}: rows in llama.cpp's order", t.name);
    }
    let info = back.gguf().unwrap();
    for key in [
        "llama.context_length",
        "llama.embedding_length",
        "llama.block_count",
        "llama.attention.layer_norm_rms_epsilon",
        "llama.rope.dimension_count",
        "tokenizer.ggml.model",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.merges",
    ] {
        assert!(info.get(key).is_some(), "{key} missing");
    }
    assert!(matches!(info.get("llama.rope.dimension_count"), Some(GgufValue::U32(8))));
    assert!(matches!(info.get("tokenizer.ggml.pre"), Some(GgufValue::String(s)) if s == "smollm"));
    assert!(matches!(info.get("tokenizer.ggml.eos_token_id"), Some(GgufValue::U32(0))));
}

#[test]
fn a_gemma3_folder_exports_to_gguf_with_its_keys_norms_and_sentencepiece_vocabulary() {
    use weightbench::checkpoint::sentencepiece::merges_from_scores;
    use weightbench::export::convert::{ConvertOptions, gguf_to_safetensors};
    let dir = TempDir::new();
    // A Gemma 3 GGUF (norms stored as 1 + w, a SentencePiece vocabulary with scores), converted
    // to a transformers folder (tokenizer.json with merges made from the scores) and exported
    // back: the same tensors bit for bit, Gemma's keys, and a vocabulary whose scores order the
    // merges as the source's did.
    let tokens =
        ["<pad>", "<eos>", "<bos>", "<unk>", "\n\n", "<0x41>", "\u{2581}", "a", "b", "\u{2581}a", "ab", "\u{2581}ab"];
    let scores: [f32; 12] = [-1000.0, -1000.0, -1000.0, -1000.0, -1000.0, 0.0, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0];
    let types: [i32; 12] = [3, 3, 3, 3, 4, 6, 1, 1, 1, 1, 1, 1];
    let hidden = 16u64;
    let mut g = Gguf::new("gemma3");
    g.kv_u32("gemma3.block_count", 1)
        .kv_u32("gemma3.embedding_length", hidden as u32)
        .kv_u32("gemma3.feed_forward_length", 32)
        .kv_u32("gemma3.attention.head_count", 2)
        .kv_u32("gemma3.attention.head_count_kv", 1)
        .kv_u32("gemma3.attention.key_length", 16)
        .kv_u32("gemma3.attention.value_length", 16)
        .kv_u32("gemma3.attention.sliding_window", 64)
        .kv_u32("gemma3.context_length", 256)
        .kv_f32("gemma3.attention.layer_norm_rms_epsilon", 1e-6)
        .kv_f32("gemma3.rope.freq_base", 1e6)
        .kv_str("tokenizer.ggml.model", "llama")
        .kv_str("tokenizer.ggml.pre", "default")
        .kv_strings("tokenizer.ggml.tokens", &tokens)
        .kv_numbers("tokenizer.ggml.scores", 6, 12, &scores.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>())
        .kv_numbers("tokenizer.ggml.token_type", 5, 12, &types.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>())
        .kv_u32("tokenizer.ggml.bos_token_id", 2)
        .kv_u32("tokenizer.ggml.eos_token_id", 1)
        .kv_u32("tokenizer.ggml.unknown_token_id", 3)
        .kv_bool("tokenizer.ggml.add_bos_token", true)
        .kv_bool("tokenizer.ggml.add_space_prefix", false);
    // Norm values in [0.5, 2], where (w − 1) + 1 is exact in f32.
    let norm: Vec<f32> = weights(hidden as usize, 4).iter().map(|v| 1.25 + v.clamp(-0.7, 0.7)).collect();
    g.f32("token_embd.weight", &[12, hidden], &weights(12 * hidden as usize, 1))
        .f32("blk.0.attn_q.weight", &[32, hidden], &weights(32 * hidden as usize, 2))
        .f32("blk.0.attn_norm.weight", &[hidden], &norm)
        .f32("blk.0.post_ffw_norm.weight", &[hidden], &norm);
    let src = dir.join("src.gguf");
    g.write(&src);
    let original = Checkpoint::open(&src).unwrap();
    let hf = dir.join("hf");
    let opts = ConvertOptions { out_dir: hf.clone(), dtype: DType::F32, keep_names: false, overwrite: false };
    gguf_to_safetensors(&original, &opts, &Cancel::new(), &|_, _| {}).unwrap();
    let tokenizer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(hf.join("tokenizer.json")).unwrap()).unwrap();
    assert_eq!(tokenizer["model"]["byte_fallback"], true);
    assert_eq!(tokenizer["model"]["merges"][0], serde_json::json!(["\u{2581}", "a"]), "best score first");
    let out = dir.join("back.gguf");
    let report =
        run(&CpuBackend, &Checkpoint::open(&hf).unwrap(), &Plan::single("keep").unwrap(), ExportFormat::Gguf, &out)
            .unwrap();
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    let back = Checkpoint::open(&out).unwrap();
    for t in original.tensors() {
        let b = back.tensor(&t.name).unwrap_or_else(|| panic!("{} missing", t.name));
        let (x, y) = (original.decode_all(t).unwrap(), back.decode_all(b).unwrap());
        assert!(x.iter().zip(&y).all(|(a, b)| a.to_bits() == b.to_bits()), "{}: the norm's +1 re-applied", t.name);
    }
    let info = back.gguf().unwrap();
    assert!(matches!(info.get("gemma3.attention.key_length"), Some(GgufValue::U32(16))));
    assert!(matches!(info.get("gemma3.attention.sliding_window"), Some(GgufValue::U32(64))));
    assert!(matches!(info.get("tokenizer.ggml.model"), Some(GgufValue::String(s)) if s == "llama"));
    assert!(matches!(info.get("tokenizer.ggml.add_space_prefix"), Some(GgufValue::Bool(false))));
    let array = |key: &str| match info.get(key) {
        Some(GgufValue::Array(a)) => a.clone(),
        other => panic!("{key}: {other:?}"),
    };
    let back_tokens: Vec<String> = array("tokenizer.ggml.tokens").strings().map(str::to_owned).collect();
    assert_eq!(back_tokens, tokens);
    let back_types: Vec<i32> = array("tokenizer.ggml.token_type").iter().map(|v| v.as_f64().unwrap() as i32).collect();
    assert_eq!(back_types, types);
    let back_scores: Vec<f32> = array("tokenizer.ggml.scores").iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_eq!(
        merges_from_scores(&tokens, &back_scores, &back_types),
        merges_from_scores(&tokens, &scores, &types),
        "the scores order the merges as the source's"
    );
}

#[test]
fn low_rank_tensors_export_as_lora_factors_whose_product_is_the_previews() {
    let dir = TempDir::new();
    let path = dir.join("m.safetensors");
    write_safetensors(
        &path,
        &[
            Spec::f32("a.weight", &[48, 40], &weights(48 * 40, 7)),
            Spec::f32("b.weight", &[16, 24], &weights(16 * 24, 8)),
        ],
    );
    let ckpt = Checkpoint::open(&path).unwrap();
    let plan = Plan::parse_toml(
        "[tensor.\"a.weight\"]\nscheme = \"lowrank_e0.8\"\n[tensor.\"b.weight\"]\nscheme = \"int8_ch\"\n",
        "plan.toml",
    )
    .unwrap();
    let out = dir.join("factors");
    let options = ExportOptions { factors: true, ..ExportOptions::default() };
    let report = export(
        &CpuBackend,
        &ckpt,
        &resolve(&ckpt, &plan),
        None,
        ExportFormat::Safetensors,
        &out,
        &options,
        &Cancel::new(),
        &|_, _| {},
    )
    .unwrap();
    let got = Checkpoint::open(out.join("model.safetensors")).unwrap();
    let names: Vec<&str> = got.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a.lora_A.weight", "a.lora_B.weight", "b.weight"]);
    let (la, lb) = (got.tensor("a.lora_A.weight").unwrap(), got.tensor("a.lora_B.weight").unwrap());
    let rank = la.shape[0];
    assert_eq!((la.shape[1], lb.shape.clone()), (40, vec![48, rank]));
    assert_eq!(report.tensors[0].rank, Some(rank as usize), "the header's rank is the one the preview chose");
    let (a, b) = (got.decode_all(la).unwrap(), got.decode_all(lb).unwrap());
    let preview = preview_decoded(&ckpt, &plan);
    let (_, want, sse) = &preview[0];
    for i in 0..48 {
        for j in 0..40 {
            let prod: f64 =
                (0..rank as usize).map(|k| f64::from(lb_at(&b, rank, i, k)) * f64::from(a[k * 40 + j])).sum();
            assert!(
                (prod - f64::from(want[i * 40 + j])).abs() < 1e-5,
                "lora_B @ lora_A is the preview's Ŵ at ({i}, {j})"
            );
        }
    }
    assert_eq!(report.tensors[0].sse, *sse, "the export reports the preview's error");
    let values = got.decode_all(got.tensor("b.weight").unwrap()).unwrap();
    assert!(values.iter().zip(&preview[1].1).all(|(x, y)| x.to_bits() == y.to_bits()), "others stay whole");
    assert!(report.notes.iter().any(|n| n.contains("lora_A/lora_B")), "{:?}", report.notes);
    // GGUF has no place for factors: refused before anything is written.
    let refused = export(
        &CpuBackend,
        &ckpt,
        &resolve(&ckpt, &plan),
        None,
        ExportFormat::Gguf,
        &dir.join("f.gguf"),
        &options,
        &Cancel::new(),
        &|_, _| {},
    );
    assert!(matches!(refused, Err(ExportError::Unsupported { ref message }) if message.contains("--factors")));
    assert!(!dir.join("f.gguf").exists());
}

fn lb_at(b: &[f32], rank: u64, i: usize, k: usize) -> f32 {
    b[i * rank as usize + k]
}

/// A GGUF export that keeps block-quantized tensors writes their blocks as they are stored (it
/// once declared Q8_0 and wrote the decoded f32 values, which its read-back refused).
#[test]
fn kept_block_tensors_of_a_gguf_source_are_copied_byte_for_byte() {
    let dir = TempDir::new();
    let path = dir.join("q8.gguf");
    let mut g = Gguf::new("llama");
    g.kv_u32("llama.attention.head_count", 4).kv_u32("llama.block_count", 1);
    let blocks: Vec<u8> = (0..64 * 8)
        .flat_map(|b: u32| {
            let mut block = half::f16::from_f32(0.01 + (b % 7) as f32 * 1e-3).to_le_bytes().to_vec();
            block.extend((0..32u32).map(|i| (i.wrapping_mul(37).wrapping_add(b * 11) % 251) as u8));
            block
        })
        .collect();
    g.tensor("blk.0.attn_q.weight", &[64, 256], 8, blocks.clone())
        .f32("blk.0.attn_norm.weight", &[256], &weights(256, 2))
        .f32("blk.0.ffn_down.weight", &[32, 512], &weights(32 * 512, 4));
    g.write(&path);
    let ckpt = Checkpoint::open(&path).unwrap();
    let plan = Plan::parse_toml("[[rule]]\nmatch = \"*\"\nscheme = \"keep\"\n", "keep.toml").unwrap();
    let out = dir.join("kept.gguf");
    run(&CpuBackend, &ckpt, &plan, ExportFormat::Gguf, &out).unwrap();
    let got = Checkpoint::open(&out).unwrap();
    let t = got.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(t.dtype.name(), "Q8_0");
    assert_eq!(got.raw_bytes(t).unwrap(), &blocks[..], "the stored blocks, unchanged");
}

/// Integer tensors (position ids, masks) are ids, not weights: a plan that quantizes everything
/// keeps them, and every format writes them with their stored type and bytes; a kept float
/// tensor is written byte for byte too.
#[test]
fn integer_tensors_are_kept_with_their_type_and_bytes_in_every_format() {
    use safetensors::tensor::Dtype;
    let dir = TempDir::new();
    let ids: Vec<u8> = (0..512i64).flat_map(|i| ((i << 33) + i).to_le_bytes()).collect();
    let norm: Vec<u8> = (0..256u16).flat_map(|i| (0x3c00 + i).to_le_bytes()).collect();
    let path = dir.join("m.safetensors");
    write_safetensors(
        &path,
        &[
            Spec::f32("dense.weight", &[64, 256], &weights(64 * 256, 11)),
            Spec::new("embeddings.position_ids", Dtype::I64, &[1, 512], ids.clone()),
            Spec::new("norm.weight", Dtype::F16, &[256], norm.clone()),
        ],
    );
    let ckpt = Checkpoint::open(&path).unwrap();
    let (resolved, _) = Plan::single("int8_ch")
        .unwrap()
        .resolve(&weightbench::quant::plan::described(ckpt.tensors()), &ModelIdentity::default())
        .unwrap();
    let by_name = |n: &str| resolved.iter().find(|r| r.name == n).unwrap();
    assert_eq!(by_name("embeddings.position_ids").scheme, "keep");
    assert_eq!(by_name("dense.weight").scheme, "int8_ch");
    for format in [ExportFormat::Safetensors, ExportFormat::Ct] {
        let out = dir.join(&format!("{format:?}"));
        run(&CpuBackend, &ckpt, &Plan::single("int8_ch").unwrap(), format, &out).unwrap();
        let written = Checkpoint::open(&out).unwrap();
        let t = written.require("embeddings.position_ids").unwrap();
        assert_eq!((t.dtype, t.shape.as_slice()), (DType::I64, &[1u64, 512][..]), "{format:?}");
        assert_eq!(written.raw_bytes(t).unwrap(), &ids[..], "{format:?}: the ids, bit for bit");
        let n = written.require("norm.weight").unwrap();
        assert_eq!((n.dtype, written.raw_bytes(n).unwrap()), (DType::F16, &norm[..]), "{format:?}: the kept norm");
    }
}
