//! GGUF files: reading, decoding, refusing broken ones, and converting to safetensors.

use std::path::Path;

use weightbench::analysis::Cancel;
use weightbench::checkpoint::{Checkpoint, CheckpointError, Format, Role};
use weightbench::codec::DType;
use weightbench::export::ExportError;
use weightbench::export::convert::{ConvertOptions, gguf_to_safetensors};

use crate::fixtures::{Gguf, TempDir, gguf_string, q8_0_block, real_model};

pub fn small_llama() -> Gguf {
    let mut g = Gguf::new("llama");
    g.kv_u32("llama.block_count", 1).kv_strings("general.tags", &["a", "b"]);
    g.f32("token_embd.weight", &[4, 32], &(0..128).map(|i| i as f32).collect::<Vec<_>>());
    let mut codes = [0i8; 32];
    codes[0] = 5;
    codes[31] = -7;
    let mut q8 = q8_0_block(0.5, &codes);
    q8.extend(q8_0_block(-2.0, &[1; 32]));
    g.tensor("blk.0.attn_q.weight", &[2, 32], 8, q8);
    let f16: Vec<u8> = [1.0f32, -0.5].iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect();
    g.tensor("blk.0.attn_norm.weight", &[2], 1, f16);
    g
}

#[test]
fn a_gguf_file_opens_with_metadata_shapes_and_roles() {
    let dir = TempDir::new();
    let path = dir.join("tiny.gguf");
    small_llama().write(&path);
    let ckpt = Checkpoint::open(&path).unwrap();
    assert_eq!(ckpt.format(), Format::Gguf);
    assert_eq!(ckpt.architecture(), Some("llama"));
    assert_eq!(ckpt.metadata()["llama.block_count"], serde_json::json!(1));
    assert_eq!(ckpt.metadata()["general.tags"], serde_json::json!(["a", "b"]));
    let gguf = ckpt.gguf().unwrap();
    assert_eq!((gguf.version, gguf.alignment), (3, 32));

    let embd = ckpt.require("token_embd.weight").unwrap();
    assert_eq!((embd.shape.clone(), embd.dtype, embd.role, embd.layer), (vec![4, 32], DType::F32, Role::Embed, None));
    assert_eq!(embd.offset % 32, 0, "tensor data is aligned");
    assert_eq!(ckpt.decode_all(embd).unwrap()[127], 127.0);

    let q = ckpt.require("blk.0.attn_q.weight").unwrap();
    assert_eq!((q.dtype.name(), q.shape.clone(), q.layer, q.role), ("Q8_0", vec![2, 32], Some(0), Role::AttnQ));
    let values = ckpt.decode_all(q).unwrap();
    assert_eq!((values[0], values[1], values[31], values[32]), (2.5, 0.0, -3.5, -2.0));
    let norm = ckpt.require("blk.0.attn_norm.weight").unwrap();
    assert_eq!(ckpt.decode_all(norm).unwrap(), [1.0, -0.5]);
}

#[test]
fn a_folder_with_one_gguf_opens_it() {
    let dir = TempDir::new();
    small_llama().write(&dir.join("model-q8.gguf"));
    let ckpt = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(ckpt.tensors().len(), 3);
}

#[test]
fn split_gguf_parts_open_together() {
    let dir = TempDir::new();
    let mut a = Gguf::new("llama");
    a.kv_u32("split.count", 2).f32("token_embd.weight", &[2], &[1.0, 2.0]);
    let mut b = Gguf::new("llama");
    b.kv_u32("split.count", 2).f32("output.weight", &[2], &[3.0, 4.0]);
    a.write(&dir.join("m-00001-of-00002.gguf"));
    b.write(&dir.join("m-00002-of-00002.gguf"));
    let ckpt = Checkpoint::open(dir.join("m-00001-of-00002.gguf")).unwrap();
    assert_eq!(ckpt.files().len(), 2);
    assert_eq!(ckpt.decode_all(ckpt.require("output.weight").unwrap()).unwrap(), [3.0, 4.0]);
    std::fs::remove_file(dir.join("m-00002-of-00002.gguf")).unwrap();
    let err = Checkpoint::open(dir.join("m-00001-of-00002.gguf")).err().unwrap();
    assert!(err.to_string().contains("part 2 of 2"), "{err}");
}

#[test]
fn types_without_a_decoder_open_but_decoding_says_why() {
    let dir = TempDir::new();
    let path = dir.join("q8_1.gguf");
    let mut g = Gguf::new("llama");
    g.tensor("blk.0.ffn_up.weight", &[1, 32], 9, vec![0; 36]); // Q8_1, an intermediate format
    g.write(&path);
    let ckpt = Checkpoint::open(&path).unwrap();
    let t = ckpt.require("blk.0.ffn_up.weight").unwrap();
    assert_eq!(t.dtype.name(), "Q8_1");
    let err = ckpt.decode_all(t).unwrap_err().to_string();
    assert!(err.contains("Q8_1") && err.contains("not supported") && err.contains("q8_1.gguf"), "{err}");
}

// ---- malformed files: each gives a clear error naming the file, none panics ----

fn expect(path: &Path, fragments: &[&str]) -> CheckpointError {
    let err = Checkpoint::open(path).err().unwrap_or_else(|| panic!("{} should be refused", path.display()));
    let message = err.to_string();
    assert!(message.contains(&path.file_name().unwrap().to_string_lossy().to_string()), "{message}");
    for f in fragments {
        assert!(message.contains(f), "message lacks {f:?}: {message}");
    }
    err
}

fn write_bytes(dir: &TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn wrong_magic() {
    let dir = TempDir::new();
    let mut bytes = small_llama().build();
    bytes[0..4].copy_from_slice(b"GGML");
    let path = write_bytes(&dir, "magic.gguf", &bytes);
    expect(&path, &["magic"]);
}

#[test]
fn unsupported_versions() {
    let dir = TempDir::new();
    for (version, fragment) in [(1u32, "version 1"), (4, "version 4"), (3u32.swap_bytes(), "big-endian")] {
        let mut g = small_llama();
        g.version = version;
        let path = write_bytes(&dir, "version.gguf", &g.build());
        expect(&path, &[fragment]);
    }
}

#[test]
fn every_truncation_of_a_header_is_refused_without_panic() {
    let dir = TempDir::new();
    let bytes = small_llama().build();
    let path = dir.join("cut.gguf");
    for len in 1..bytes.len() {
        std::fs::write(&path, &bytes[..len]).unwrap();
        let err = Checkpoint::open(&path).err();
        assert!(err.is_some(), "a file cut at {len} of {} bytes opened", bytes.len());
    }
}

#[test]
fn truncated_tensor_data() {
    let dir = TempDir::new();
    let bytes = small_llama().build();
    let path = write_bytes(&dir, "short-data.gguf", &bytes[..bytes.len() - 1]);
    let err = expect(&path, &["blk.0.attn_norm.weight"]);
    assert!(matches!(err, CheckpointError::Truncated { .. }), "{err:?}");
}

#[test]
fn misaligned_offset() {
    let dir = TempDir::new();
    let mut bytes = small_llama().build();
    // The offset field of the second tensor info is 8 bytes before the name of the third: find
    // it by searching for the encoded name of the third tensor.
    let third = gguf_string("blk.0.attn_norm.weight");
    let at = bytes.windows(third.len()).position(|w| w == third.as_slice()).unwrap();
    bytes[at - 8] += 4;
    let path = write_bytes(&dir, "misaligned.gguf", &bytes);
    expect(&path, &["not a multiple of the alignment 32"]);
}

#[test]
fn absurd_counts_and_lengths_are_refused_before_allocating() {
    let dir = TempDir::new();
    let good = small_llama().build();
    // tensor count and kv count fields
    for (at, fragment) in [(8usize, "tensors cannot fit"), (16, "metadata entries cannot fit")] {
        let mut bytes = good.clone();
        bytes[at..at + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
        let path = write_bytes(&dir, "counts.gguf", &bytes);
        expect(&path, &[fragment]);
    }
    // the first key's string length
    let mut bytes = good.clone();
    bytes[24..32].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let path = write_bytes(&dir, "strlen.gguf", &bytes);
    expect(&path, &["string of 1152921504606846976 bytes"]);
    // an array count
    let mut g = Gguf::new("llama");
    let mut v = 6u32.to_le_bytes().to_vec();
    v.extend_from_slice(&(1u64 << 40).to_le_bytes());
    g.kvs.push(("huge".into(), 9, v));
    let path = write_bytes(&dir, "array.gguf", &g.build());
    expect(&path, &["\"huge\"", "array claims 1099511627776 elements"]);
}

#[test]
fn unknown_tensor_type_and_value_type() {
    let dir = TempDir::new();
    let mut g = Gguf::new("llama");
    g.tensor("t", &[32], 99, vec![0; 32]);
    let path = write_bytes(&dir, "type.gguf", &g.build());
    let err = expect(&path, &["\"t\"", "GGML type 99"]);
    assert!(matches!(err, CheckpointError::UnknownDtype { .. }));
    let mut g = Gguf::new("llama");
    g.kvs.push(("weird".into(), 13, vec![0; 8]));
    let path = write_bytes(&dir, "value.gguf", &g.build());
    expect(&path, &["\"weird\"", "unknown value type 13"]);
}

#[test]
fn duplicates_dims_alignment_and_overlaps() {
    let dir = TempDir::new();
    let mut g = Gguf::new("llama");
    g.f32("t", &[1], &[1.0]).f32("t", &[1], &[2.0]);
    expect(&write_bytes(&dir, "dup-tensor.gguf", &g.build()), &["\"t\"", "twice"]);

    let mut g = Gguf::new("llama");
    g.kv_u32("k", 1).kv_u32("k", 2);
    expect(&write_bytes(&dir, "dup-key.gguf", &g.build()), &["\"k\"", "twice"]);

    let mut g = Gguf::new("llama");
    g.f32("t", &[1, 1, 1, 1, 1], &[1.0]);
    expect(&write_bytes(&dir, "dims.gguf", &g.build()), &["5 dimensions"]);

    let mut g = Gguf::new("llama");
    g.kv_u32("general.alignment", 48);
    expect(&write_bytes(&dir, "align.gguf", &g.build()), &["general.alignment"]);

    let mut g = Gguf::new("llama");
    g.tensor("q", &[1, 16], 8, vec![0; 34]); // 16 values are not a whole Q8_0 block
    expect(&write_bytes(&dir, "rows.gguf", &g.build()), &["\"q\"", "not whole Q8_0 blocks"]);

    // Two tensors pointing at the same bytes.
    let mut g = Gguf::new("llama");
    g.f32("a", &[16], &[0.0; 16]).f32("b", &[16], &[0.0; 16]);
    let mut bytes = g.build();
    set_data_offset(&mut bytes, "b", 1, 0);
    expect(&write_bytes(&dir, "overlap.gguf", &bytes), &["overlaps"]);
}

/// Rewrites the data offset of the (1-D, `dims`-dimensional) tensor `name` in a built file.
fn set_data_offset(bytes: &mut [u8], name: &str, dims: usize, offset: u64) {
    let name = gguf_string(name);
    let at = bytes.windows(name.len()).rposition(|w| w == name.as_slice()).unwrap();
    let offset_at = at + name.len() + 4 + 8 * dims + 4;
    bytes[offset_at..offset_at + 8].copy_from_slice(&offset.to_le_bytes());
}

#[test]
fn an_overlap_is_found_with_an_empty_tensor_sorted_between() {
    // a: bytes [0, 64); b: [32, 96) overlaps it; the empty z at 32 sorts between the two, and a
    // check of neighbours only let this file through.
    let dir = TempDir::new();
    let mut g = Gguf::new("llama");
    g.f32("a", &[16], &[1.0; 16]).f32("z", &[0], &[]).f32("b", &[16], &[2.0; 16]);
    let mut bytes = g.build();
    set_data_offset(&mut bytes, "z", 1, 32);
    set_data_offset(&mut bytes, "b", 1, 32);
    let err = expect(&write_bytes(&dir, "overlap-empty.gguf", &bytes), &["\"b\"", "overlaps", "\"a\""]);
    assert!(matches!(err, CheckpointError::InvalidTensor { .. }), "{err:?}");
    // Empty tensors anywhere are fine on their own.
    let mut g = Gguf::new("llama");
    g.f32("a", &[16], &[1.0; 16]).f32("z", &[0], &[]).f32("b", &[16], &[2.0; 16]);
    let mut bytes = g.build();
    set_data_offset(&mut bytes, "z", 1, 32);
    let ckpt = Checkpoint::open(write_bytes(&dir, "empty-inside.gguf", &bytes)).unwrap();
    assert_eq!(ckpt.decode_all(ckpt.require("b").unwrap()).unwrap(), [2.0; 16]);
}

#[test]
fn a_huge_metadata_array_costs_its_own_bytes_not_thirty_two_times_them() {
    // 96 MiB of UINT8 in one array: kept as those bytes. As one value object per element it
    // took ~3 GiB and aborted under any realistic memory limit.
    let n: usize = 96 << 20;
    let mut value = 0u32.to_le_bytes().to_vec();
    value.extend((n as u64).to_le_bytes());
    value.resize(value.len() + n, 7);
    let mut g = Gguf::new("llama");
    g.kvs.push(("test.huge".into(), 9, value));
    g.f32("token_embd.weight", &[4], &[1.0; 4]);
    let dir = TempDir::new();
    let path = dir.join("huge-array.gguf");
    g.write(&path);
    let ckpt = Checkpoint::open(&path).unwrap();
    let array = ckpt.gguf().unwrap().get("test.huge").and_then(|v| v.as_array()).unwrap();
    assert_eq!((array.len(), array.get(n - 1)), (n, Some(weightbench::checkpoint::GgufValue::U8(7))));
    assert!(array.heap_bytes() <= n + 64, "{} bytes held for {n}", array.heap_bytes());
    // The real command under an address-space limit of 1.5 GB.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v 1500000 && exec {} info --json {}", env!("CARGO_BIN_EXE_weightbench"), path.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["metadata"]["test.huge"]["len"], n as u64);
}

#[test]
fn string_and_nested_arrays_read_back_element_by_element() {
    let mut g = Gguf::new("llama");
    g.kv_strings("tokenizer.ggml.tokens", &["<s>", "", "héllo", "world"]);
    let mut nested = 9u32.to_le_bytes().to_vec();
    nested.extend(2u64.to_le_bytes());
    for items in [&[1i32, 2][..], &[3]] {
        nested.extend(5u32.to_le_bytes());
        nested.extend((items.len() as u64).to_le_bytes());
        items.iter().for_each(|v| nested.extend(v.to_le_bytes()));
    }
    g.kvs.push(("test.nested".into(), 9, nested));
    g.f32("t", &[1], &[0.0]);
    let dir = TempDir::new();
    let ckpt = Checkpoint::open(write_bytes(&dir, "arrays.gguf", &g.build())).unwrap();
    let gguf = ckpt.gguf().unwrap();
    let tokens = gguf.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()).unwrap();
    assert_eq!(tokens.strings().collect::<Vec<_>>(), ["<s>", "", "héllo", "world"]);
    assert_eq!(tokens.element_type(), 8);
    assert_eq!(ckpt.metadata()["test.nested"], serde_json::json!([[1, 2], [3]]));
    assert_eq!(ckpt.metadata()["tokenizer.ggml.tokens"], serde_json::json!(["<s>", "", "héllo", "world"]));
}

// ---- conversion ----

/// llama.cpp's permutation of Q/K rows: HF row (h, j, i) goes to GGUF row (h, i, j).
fn llama_cpp_permute(w: &[f32], rows: usize, cols: usize, heads: usize) -> Vec<f32> {
    let hd = rows / heads;
    let mut out = vec![0.0; w.len()];
    for h in 0..heads {
        for j in 0..2 {
            for i in 0..hd / 2 {
                let hf = h * hd + j * hd / 2 + i;
                let gg = h * hd + 2 * i + j;
                out[gg * cols..(gg + 1) * cols].copy_from_slice(&w[hf * cols..(hf + 1) * cols]);
            }
        }
    }
    out
}

fn llama_for_conversion() -> (Gguf, Vec<f32>, Vec<f32>) {
    let (heads, kv_heads, hd, hidden) = (4usize, 2usize, 8usize, 32usize);
    let q: Vec<f32> = (0..heads * hd * hidden).map(|i| (i as f32 * 0.37).sin()).collect();
    let k: Vec<f32> = (0..kv_heads * hd * hidden).map(|i| (i as f32 * 0.11).cos()).collect();
    let mut g = Gguf::new("llama");
    g.kv_u32("llama.block_count", 1)
        .kv_u32("llama.embedding_length", hidden as u32)
        .kv_u32("llama.feed_forward_length", 64)
        .kv_u32("llama.attention.head_count", heads as u32)
        .kv_u32("llama.attention.head_count_kv", kv_heads as u32)
        .kv_u32("llama.context_length", 128)
        .kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
        .kv_f32("llama.rope.freq_base", 10000.0)
        .kv_u32("tokenizer.ggml.bos_token_id", 1);
    g.f32("token_embd.weight", &[10, hidden as u64], &vec![0.25; 10 * hidden]);
    g.f32(
        "blk.0.attn_q.weight",
        &[(heads * hd) as u64, hidden as u64],
        &llama_cpp_permute(&q, heads * hd, hidden, heads),
    );
    g.f32(
        "blk.0.attn_k.weight",
        &[(kv_heads * hd) as u64, hidden as u64],
        &llama_cpp_permute(&k, kv_heads * hd, hidden, kv_heads),
    );
    g.f32("blk.0.attn_norm.weight", &[hidden as u64], &vec![1.5; hidden]);
    g.f32("output_norm.weight", &[hidden as u64], &vec![0.5; hidden]);
    g.f32("rope_freqs.weight", &[4], &[1.0; 4]);
    (g, q, k)
}

fn options(out: &Path) -> ConvertOptions {
    ConvertOptions { out_dir: out.to_owned(), dtype: DType::F32, keep_names: false, overwrite: false }
}

#[test]
fn convert_restores_transformers_names_layout_and_config() {
    let dir = TempDir::new();
    let (g, q, k) = llama_for_conversion();
    let src = dir.join("tiny-llama.gguf");
    g.write(&src);
    let ckpt = Checkpoint::open(&src).unwrap();
    let out = dir.join("hf");
    let report = gguf_to_safetensors(&ckpt, &options(&out), &Cancel::new(), &|_, _| {}).unwrap();
    assert_eq!(report.tensors, 5);
    assert_eq!(report.skipped.len(), 1, "rope_freqs is computed by transformers");

    let hf = Checkpoint::open(&out).unwrap();
    assert_eq!(hf.architecture(), Some("LlamaForCausalLM"));
    assert_eq!(hf.decode_all(hf.require("model.layers.0.self_attn.q_proj.weight").unwrap()).unwrap(), q);
    assert_eq!(hf.decode_all(hf.require("model.layers.0.self_attn.k_proj.weight").unwrap()).unwrap(), k);
    assert!(hf.tensor("model.layers.0.input_layernorm.weight").is_some());
    assert!(hf.tensor("model.norm.weight").is_some());
    assert!(hf.tensor("lm_head.weight").is_none());
    let config = hf.config().unwrap();
    assert_eq!(config["model_type"], "llama");
    assert_eq!(config["num_attention_heads"], 4);
    assert_eq!(config["num_key_value_heads"], 2);
    assert_eq!(config["hidden_size"], 32);
    assert_eq!(config["tie_word_embeddings"], true);
    assert_eq!(config["rms_norm_eps"].as_f64().unwrap() as f32, 1e-5);
    // Only the two output files, no temporary leftovers.
    let mut names: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["config.json", "model.safetensors"]);
}

#[test]
fn convert_undoes_gemma_norm_shift_and_rounds_to_bf16() {
    let dir = TempDir::new();
    let mut g = Gguf::new("gemma3");
    g.kv_u32("gemma3.attention.head_count", 1);
    g.f32("blk.0.attn_q_norm.weight", &[3], &[1.5, 1.0, 0.25]);
    g.f32("blk.0.ffn_norm.weight", &[2], &[2.0, 1.0]);
    g.f32("blk.0.attn_q.weight", &[1, 2], &[1.0 + 2f32.powi(-9), 3.0]);
    let src = dir.join("g.gguf");
    g.write(&src);
    let ckpt = Checkpoint::open(&src).unwrap();
    let out = dir.join("hf");
    let opts = ConvertOptions { dtype: DType::BF16, ..options(&out) };
    gguf_to_safetensors(&ckpt, &opts, &Cancel::new(), &|_, _| {}).unwrap();
    let hf = Checkpoint::open(&out).unwrap();
    let t = |n: &str| hf.decode_all(hf.require(n).unwrap()).unwrap();
    assert_eq!(t("model.layers.0.self_attn.q_norm.weight"), [0.5, 0.0, -0.75]);
    assert_eq!(t("model.layers.0.pre_feedforward_layernorm.weight"), [1.0, 0.0]);
    assert_eq!(hf.require("model.layers.0.self_attn.q_proj.weight").unwrap().dtype, DType::BF16);
    assert_eq!(t("model.layers.0.self_attn.q_proj.weight"), [1.0, 3.0], "rounded to nearest even");
    assert_eq!(hf.config().unwrap()["model_type"], "gemma3_text");
}

#[test]
fn convert_never_overwrites_its_input_or_existing_output() {
    let dir = TempDir::new();
    // A GGUF file that happens to be named model.safetensors: converting into its own folder
    // would replace it.
    let src = dir.join("model.safetensors");
    small_llama().write(&src);
    let before = std::fs::read(&src).unwrap();
    let ckpt = Checkpoint::open(&src).unwrap();
    let err = gguf_to_safetensors(&ckpt, &options(dir.path()), &Cancel::new(), &|_, _| {}).unwrap_err();
    assert!(matches!(err, ExportError::WouldOverwriteInput { .. }), "{err:?}");
    assert_eq!(std::fs::read(&src).unwrap(), before);

    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("model.safetensors"), b"keep me").unwrap();
    let err = gguf_to_safetensors(&ckpt, &options(&out), &Cancel::new(), &|_, _| {}).unwrap_err();
    assert!(matches!(err, ExportError::Exists { .. }), "{err:?}");
    assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), b"keep me");
    let opts = ConvertOptions { overwrite: true, keep_names: true, ..options(&out) };
    gguf_to_safetensors(&ckpt, &opts, &Cancel::new(), &|_, _| {}).unwrap();
    assert_eq!(Checkpoint::open(&out).unwrap().tensors().len(), 3);
}

#[test]
fn weights_and_config_are_written_together_or_not_at_all() {
    // An existing config.json (no --overwrite): the conversion fails, and the weights it had
    // finished must not be left behind without their config.
    let dir = TempDir::new();
    let src = dir.join("m.gguf");
    small_llama().write(&src);
    let ckpt = Checkpoint::open(&src).unwrap();
    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("config.json"), "{}").unwrap();
    let err = gguf_to_safetensors(&ckpt, &options(&out), &Cancel::new(), &|_, _| {}).unwrap_err();
    assert!(matches!(err, ExportError::Exists { .. }), "{err:?}");
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["config.json"], "no weights, no temporaries");
    assert_eq!(std::fs::read_to_string(out.join("config.json")).unwrap(), "{}");

    // With --overwrite, a commit that fails half-way (a folder named config.json) puts the
    // replaced weights back.
    std::fs::remove_file(out.join("config.json")).unwrap();
    std::fs::write(out.join("model.safetensors"), b"old weights").unwrap();
    std::fs::create_dir(out.join("config.json")).unwrap();
    std::fs::write(out.join("config.json").join("x"), "x").unwrap();
    let opts = ConvertOptions { overwrite: true, ..options(&out) };
    assert!(gguf_to_safetensors(&ckpt, &opts, &Cancel::new(), &|_, _| {}).is_err());
    assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), b"old weights");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2, "the two things that were there, nothing more");

    // A folder the conversion made for itself is gone again after a failure.
    let fresh = dir.join("fresh");
    let mut g = Gguf::new("llama");
    g.tensor("blk.0.ffn_up.weight", &[1, 32], 9, vec![0; 36]); // Q8_1: no decoder
    g.write(&dir.join("bad.gguf"));
    let bad = Checkpoint::open(dir.join("bad.gguf")).unwrap();
    assert!(gguf_to_safetensors(&bad, &options(&fresh), &Cancel::new(), &|_, _| {}).is_err());
    assert!(!fresh.exists());
}

#[test]
fn a_cancelled_or_failed_conversion_leaves_nothing_behind() {
    let dir = TempDir::new();
    let (g, _, _) = llama_for_conversion();
    let src = dir.join("tiny-llama.gguf");
    g.write(&src);
    let ckpt = Checkpoint::open(&src).unwrap();
    let out = dir.join("out");
    let cancel = Cancel::new();
    let err = gguf_to_safetensors(&ckpt, &options(&out), &cancel, &|_, _| cancel.cancel()).unwrap_err();
    assert!(matches!(err, ExportError::Cancelled), "{err:?}");
    assert!(!out.exists(), "no partial or temporary file, and not the folder made for them");
    std::fs::create_dir(&out).unwrap();
    let err = gguf_to_safetensors(&ckpt, &options(&out), &cancel, &|_, _| cancel.cancel()).unwrap_err();
    assert!(matches!(err, ExportError::Cancelled), "{err:?}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "an existing folder stays, empty");

    let mut g = Gguf::new("llama");
    g.f32("token_embd.weight", &[1], &[1.0]);
    g.tensor("blk.0.ffn_up.weight", &[1, 32], 9, vec![0; 36]); // Q8_1: no decoder
    g.write(&src);
    let ckpt = Checkpoint::open(&src).unwrap();
    let err = gguf_to_safetensors(&ckpt, &options(&out), &Cancel::new(), &|_, _| {}).unwrap_err();
    assert!(err.to_string().contains("Q8_1"), "{err}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
}

// ---- real models ----

#[test]
fn smollm2_gguf_opens_and_its_4_bit_grid_shows() {
    let Some(path) = real_model("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    let ckpt = Checkpoint::open(&path).unwrap();
    assert_eq!(ckpt.architecture(), Some("llama"));
    assert_eq!(ckpt.tensors().len(), 272);
    assert_eq!(ckpt.metadata()["llama.attention.head_count"], 9);
    let count = |d: DType| ckpt.tensors().iter().filter(|t| t.dtype == d).count();
    assert_eq!((count(DType::Q4_1), count(DType::Q8_0), count(DType::F32)), (210, 1, 61));
    let q = ckpt.require("blk.7.attn_q.weight").unwrap();
    assert_eq!(q.shape, [576, 576]);
    let values = ckpt.decode_all(q).unwrap();
    // Q4_1: every block of 32 holds at most 16 distinct values, d*q + m with q in 0..16.
    for block in values.chunks(32) {
        let mut distinct: Vec<u32> = block.iter().map(|v| v.to_bits()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() <= 16);
    }
    let std = (values.iter().map(|v| v * v).sum::<f32>() / values.len() as f32).sqrt();
    assert!(std > 0.01 && std < 1.0, "trained weights, not noise or zeros: rms {std}");
}

#[test]
fn gemma3_gguf_decodes_bit_identically_to_gguf_py_on_every_stored_type() {
    // tests/data/gemma3_blocks.safetensors: gguf-py's dequantize of two ranges of one tensor of
    // each quantized type (scripts/reference/make_fixtures.py).
    let fixture = Checkpoint::open(crate::fixtures::data("gemma3_blocks.safetensors")).unwrap();
    let Some(path) = real_model("gemma-3-270m/gemma-3-270m-q4_k_m.gguf") else { return };
    let ckpt = Checkpoint::open(&path).unwrap();
    assert_eq!(ckpt.architecture(), Some("gemma3"));
    assert_eq!(ckpt.tensors().len(), 236);
    let mut types = std::collections::BTreeSet::new();
    for reference in fixture.tensors() {
        let (name, start) = reference.name.rsplit_once('@').unwrap();
        let start: u64 = start.parse().unwrap();
        let t = ckpt.require(name).unwrap();
        assert_eq!(fixture.metadata()[&reference.name], t.dtype.name(), "{}", reference.name);
        types.insert(t.dtype);
        let want = fixture.decode_all(reference).unwrap();
        let mut got = Vec::new();
        ckpt.decode_range(t, start..start + want.len() as u64, &mut got).unwrap();
        let differ = got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(differ, 0, "{}: {differ} of {} values differ from gguf-py", reference.name, want.len());
    }
    assert_eq!(types.into_iter().collect::<Vec<_>>(), [DType::Q5_0, DType::Q8_0, DType::Q4K, DType::Q6K]);
}

#[test]
fn the_model_configuration_is_typed_the_same_from_gguf_and_from_config_json() {
    let dir = TempDir::new();
    let (g, _, _) = llama_for_conversion();
    let src = dir.join("tiny.gguf");
    g.write(&src);
    let gguf = Checkpoint::open(&src).unwrap();
    let from_gguf = gguf.model_config().unwrap().clone();
    assert_eq!(from_gguf.architecture, "llama");
    assert_eq!(from_gguf.model_type.as_deref(), Some("llama"));
    assert_eq!((from_gguf.rope_theta, from_gguf.max_position), (Some(10000.0), Some(128)));
    assert_eq!((from_gguf.num_heads, from_gguf.num_kv_heads, from_gguf.head_dim), (Some(4), Some(2), Some(8)));
    assert_eq!((from_gguf.vocab_size, from_gguf.norm_eps.map(|e| e as f32)), (Some(10), Some(1e-5)));
    assert_eq!(from_gguf.norm, Some(weightbench::checkpoint::NormKind::RmsNorm));
    let out = dir.join("hf");
    gguf_to_safetensors(&gguf, &options(&out), &Cancel::new(), &|_, _| {}).unwrap();
    let hf = Checkpoint::open(&out).unwrap();
    let from_json = hf.model_config().unwrap();
    for (what, a, b) in [
        ("hidden", from_gguf.hidden_size, from_json.hidden_size),
        ("heads", from_gguf.num_heads, from_json.num_heads),
        ("kv heads", from_gguf.num_kv_heads, from_json.num_kv_heads),
        ("layers", from_gguf.num_layers, from_json.num_layers),
        ("head dim", from_gguf.head_dim, from_json.head_dim),
        ("vocab", from_gguf.vocab_size, from_json.vocab_size),
        ("context", from_gguf.max_position, from_json.max_position),
    ] {
        assert_eq!(a, b, "{what}");
    }
    assert_eq!(from_json.architecture, "llama", "the class name maps back to the GGUF key");
    assert_eq!(from_gguf.rope_theta.map(|t| t as f32), from_json.rope_theta.map(|t| t as f32));
    assert_eq!(from_gguf.tie_word_embeddings, from_json.tie_word_embeddings);
}

#[test]
fn convert_rebuilds_a_byte_level_bpe_tokenizer_from_the_gguf_keys() {
    let dir = TempDir::new();
    let (mut g, _, _) = llama_for_conversion();
    let tokens = ["<|endoftext|>", "a", "b", "ab", "Ġ", "Ġab"];
    g.kv_str("tokenizer.ggml.model", "gpt2").kv_str("tokenizer.ggml.pre", "smollm");
    g.kv_strings("tokenizer.ggml.tokens", &tokens);
    g.kv_strings("tokenizer.ggml.merges", &["a b", "Ġ ab"]);
    let mut types = 5u32.to_le_bytes().to_vec();
    types.extend_from_slice(&(tokens.len() as u64).to_le_bytes());
    for t in [3i32, 1, 1, 1, 1, 1] {
        types.extend_from_slice(&t.to_le_bytes());
    }
    g.kvs.push(("tokenizer.ggml.token_type".into(), 9, types));
    g.kv_u32("tokenizer.ggml.eos_token_id", 0);
    g.kv_str("tokenizer.chat_template", "{{ messages }}");
    let src = dir.join("tok.gguf");
    g.write(&src);
    let out = dir.join("hf");
    let report =
        gguf_to_safetensors(&Checkpoint::open(&src).unwrap(), &options(&out), &Cancel::new(), &|_, _| {}).unwrap();
    assert_eq!(report.files.len(), 4, "{:?}", report.files);
    let read = |n: &str| -> serde_json::Value { serde_json::from_slice(&std::fs::read(out.join(n)).unwrap()).unwrap() };
    let tok = read("tokenizer.json");
    assert_eq!(tok["model"]["type"], "BPE");
    assert_eq!(tok["model"]["vocab"]["Ġab"], 5);
    assert_eq!(tok["model"]["merges"], serde_json::json!(["a b", "Ġ ab"]));
    assert_eq!(tok["added_tokens"][0]["content"], "<|endoftext|>");
    assert_eq!(tok["added_tokens"][0]["special"], true);
    assert_eq!(tok["pre_tokenizer"]["pretokenizers"][0]["type"], "Digits", "smollm splits digits first");
    let config = read("tokenizer_config.json");
    assert_eq!(
        (config["eos_token"].as_str(), config["chat_template"].as_str()),
        (Some("<|endoftext|>"), Some("{{ messages }}"))
    );
    // A vocabulary that cannot be rebuilt (a SentencePiece one without its scores, a model
    // llama.cpp names but we do not rebuild) is said, not faked.
    for (model, why) in [("llama", "scores is missing"), ("rwkv", "not rebuilt")] {
        let (mut g, _, _) = llama_for_conversion();
        g.kv_str("tokenizer.ggml.model", model).kv_strings("tokenizer.ggml.tokens", &["<s>"]);
        g.write(&src);
        let out = dir.join(&format!("hf-{model}"));
        let report =
            gguf_to_safetensors(&Checkpoint::open(&src).unwrap(), &options(&out), &Cancel::new(), &|_, _| {}).unwrap();
        assert!(report.notes.iter().any(|n| n.contains(why)), "{model}: {:?}", report.notes);
        assert!(!out.join("tokenizer.json").exists());
    }
}
