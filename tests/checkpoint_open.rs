//! Valid checkpoints open, list and decode exactly.

use safetensors::tensor::Dtype;
use weightbench::checkpoint::{Checkpoint, Role};
use weightbench::codec::DType;

use crate::fixtures::{Spec, TempDir, write_safetensors, write_sharded_llama};

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

fn le<T: Copy, const N: usize>(values: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| f(v)).collect()
}

/// (official dtype, our name, raw bytes, hand-computed values)
fn every_dtype() -> Vec<(Dtype, &'static str, Vec<u8>, Vec<f32>)> {
    vec![
        (Dtype::F64, "F64", le(&[1.5f64, -2.25, 1e-40], f64::to_le_bytes), vec![1.5, -2.25, 1e-40f64 as f32]),
        (Dtype::F32, "F32", le(&[1.0f32, -0.0, f32::INFINITY], f32::to_le_bytes), vec![1.0, -0.0, f32::INFINITY]),
        (Dtype::F16, "F16", le(&[0x3c00u16, 0xc000, 0x0001], u16::to_le_bytes), vec![1.0, -2.0, 2f32.powi(-24)]),
        (Dtype::BF16, "BF16", le(&[0x3f80u16, 0xc049, 0x7fc0], u16::to_le_bytes), vec![1.0, -3.140625, f32::NAN]),
        (Dtype::F8_E4M3, "F8_E4M3", vec![0x38, 0x7e, 0x7f, 0x01], vec![1.0, 448.0, f32::NAN, 2f32.powi(-9)]),
        (Dtype::F8_E5M2, "F8_E5M2", vec![0x3c, 0x7c, 0x7d, 0x01], vec![1.0, f32::INFINITY, f32::NAN, 2f32.powi(-16)]),
        (Dtype::F8_E8M0, "F8_E8M0", vec![127, 130, 255], vec![1.0, 8.0, f32::NAN]),
        (Dtype::F8_E4M3FNUZ, "F8_E4M3FNUZ", vec![0x40, 0x80, 0x7f], vec![1.0, f32::NAN, 240.0]),
        (Dtype::F8_E5M2FNUZ, "F8_E5M2FNUZ", vec![0x40, 0x80, 0x7f], vec![1.0, f32::NAN, 57344.0]),
        (Dtype::I64, "I64", le(&[-3i64, 1 << 40], i64::to_le_bytes), vec![-3.0, 2f32.powi(40)]),
        (Dtype::I32, "I32", le(&[-70000i32, 5], i32::to_le_bytes), vec![-70000.0, 5.0]),
        (Dtype::I16, "I16", le(&[-300i16, 300], i16::to_le_bytes), vec![-300.0, 300.0]),
        (Dtype::I8, "I8", vec![0x80, 0x7f, 0xff], vec![-128.0, 127.0, -1.0]),
        (Dtype::U64, "U64", le(&[7u64], u64::to_le_bytes), vec![7.0]),
        (Dtype::U32, "U32", le(&[4_000_000_000u32], u32::to_le_bytes), vec![4_000_000_000.0]),
        (Dtype::U16, "U16", le(&[65535u16], u16::to_le_bytes), vec![65535.0]),
        (Dtype::U8, "U8", vec![0, 255], vec![0.0, 255.0]),
        (Dtype::BOOL, "BOOL", vec![0, 1], vec![0.0, 1.0]),
    ]
}

#[test]
fn every_dtype_written_by_the_official_writer_decodes_to_hand_computed_values() {
    let dir = TempDir::new();
    let path = dir.join("all.safetensors");
    let cases = every_dtype();
    let specs: Vec<Spec> = cases
        .iter()
        .map(|(dtype, name, bytes, values)| Spec::new(&format!("t_{name}"), *dtype, &[values.len()], bytes.clone()))
        .collect();
    write_safetensors(&path, &specs);

    let ckpt = Checkpoint::open(&path).unwrap();
    assert_eq!(ckpt.tensors().len(), cases.len());
    for (_, name, bytes, expected) in &cases {
        let t = ckpt.require(&format!("t_{name}")).unwrap();
        assert_eq!(t.dtype.name(), *name);
        assert_eq!(t.shape, vec![expected.len() as u64]);
        assert_eq!(ckpt.raw_bytes(t).unwrap(), bytes.as_slice(), "{name}: raw bytes at the reported offset");
        let decoded = ckpt.decode_all(t).unwrap();
        assert!(same_bits(&decoded, expected), "{name}: decoded {decoded:?}, expected {expected:?}");
    }
    assert_eq!(ckpt.metadata().get("format"), Some(&serde_json::json!("pt")));
}

#[test]
fn every_dtype_that_we_name_is_known_to_the_reference_writer() {
    for d in DType::SAFETENSORS {
        let json = format!("\"{}\"", d.name());
        let parsed: Result<Dtype, _> = serde_json::from_str(&json);
        assert!(parsed.is_ok(), "{} is not a safetensors dtype name", d.name());
    }
}

#[test]
fn offsets_are_absolute_file_offsets() {
    let dir = TempDir::new();
    let path = dir.join("m.safetensors");
    write_safetensors(&path, &[Spec::f32("a", &[3], &[1.0, 2.0, 3.0]), Spec::f32("b", &[2, 2], &[4.0, 5.0, 6.0, 7.0])]);
    let file = std::fs::read(&path).unwrap();
    let ckpt = Checkpoint::open(&path).unwrap();
    for t in ckpt.tensors() {
        let start = t.offset as usize;
        let from_file = &file[start..start + t.bytes as usize];
        assert_eq!(from_file, ckpt.raw_bytes(t).unwrap());
    }
    assert_eq!(ckpt.decode_all(ckpt.require("b").unwrap()).unwrap(), [4.0, 5.0, 6.0, 7.0]);
}

#[test]
fn chunked_decoding_equals_whole_decoding() {
    let dir = TempDir::new();
    let path = dir.join("m.safetensors");
    let values: Vec<f32> = (0..10_000).map(|i| (i as f32 * 0.37).sin()).collect();
    let bf16: Vec<u8> = values.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect();
    write_safetensors(&path, &[Spec::new("w", Dtype::BF16, &[100, 100], bf16)]);
    let ckpt = Checkpoint::open(&path).unwrap();
    let t = ckpt.require("w").unwrap();
    let whole = ckpt.decode_all(t).unwrap();
    let mut joined = Vec::new();
    let mut buf = Vec::new();
    let chunks: Vec<_> = ckpt.chunks(t, 999).collect();
    assert_eq!(chunks.len(), 11);
    for range in chunks {
        ckpt.decode_range(t, range, &mut buf).unwrap();
        joined.extend_from_slice(&buf);
    }
    assert_eq!(joined, whole);
    assert_eq!(whole[1], half::bf16::from_f32(0.37f32.sin()).to_f32());
}

#[test]
fn zero_size_and_scalar_tensors_are_allowed() {
    let dir = TempDir::new();
    let path = dir.join("m.safetensors");
    write_safetensors(
        &path,
        &[Spec::f32("empty", &[0, 4], &[]), Spec::f32("scalar", &[], &[2.5]), Spec::f32("v", &[2], &[1.0, 2.0])],
    );
    let ckpt = Checkpoint::open(&path).unwrap();
    let empty = ckpt.require("empty").unwrap();
    assert_eq!((empty.numel(), empty.bytes), (0, 0));
    assert!(ckpt.decode_all(empty).unwrap().is_empty());
    assert_eq!(ckpt.chunks(empty, 16).count(), 0);
    let scalar = ckpt.require("scalar").unwrap();
    assert_eq!(scalar.numel(), 1);
    assert_eq!(ckpt.decode_all(scalar).unwrap(), [2.5]);
}

#[test]
fn sharded_checkpoint_opens_from_its_index_and_from_its_folder() {
    let dir = TempDir::new();
    let map = write_sharded_llama(dir.path());
    for opened in
        [Checkpoint::open(dir.join("model.safetensors.index.json")).unwrap(), Checkpoint::open(dir.path()).unwrap()]
    {
        assert_eq!(opened.files().len(), 3);
        assert_eq!(opened.tensors().len(), map.len());
        assert_eq!(opened.architecture(), Some("LlamaForCausalLM"));
        assert_eq!(opened.metadata().get("total_size"), Some(&serde_json::json!(0)));
        for (k, (name, shard)) in map.iter().enumerate() {
            let t = opened.require(name).unwrap();
            assert!(opened.file_path(t).ends_with(shard), "{name} should come from {shard}");
            let expected: Vec<f32> = (0..8).map(|i| (k * 100 + i) as f32).collect();
            assert_eq!(opened.decode_all(t).unwrap(), expected, "{name}");
        }
        let q1 = opened.require("model.layers.1.self_attn.q_proj.weight").unwrap();
        assert_eq!((q1.layer, q1.role), (Some(1), Role::AttnQ));
        assert_eq!(opened.require("lm_head.weight").unwrap().role, Role::LmHead);
        // Reading order: embeddings, layers in order, then the head.
        let names: Vec<&str> = opened.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names.first(), Some(&"model.embed_tokens.weight"));
        assert_eq!(names.iter().position(|n| n.contains("layers.1.")).unwrap(), 3);
        assert!(names[5..].contains(&"lm_head.weight"));
    }
}

#[test]
fn shards_without_an_index_open_as_one_checkpoint() {
    let dir = TempDir::new();
    write_safetensors(&dir.join("a.safetensors"), &[Spec::f32("x", &[1], &[1.0])]);
    write_safetensors(&dir.join("b.safetensors"), &[Spec::f32("y", &[1], &[2.0])]);
    let ckpt = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(ckpt.files().len(), 2);
    assert_eq!(ckpt.decode_all(ckpt.require("y").unwrap()).unwrap(), [2.0]);
}

#[test]
fn tensors_in_shards_but_not_in_the_index_are_left_out_with_a_warning() {
    let dir = TempDir::new();
    write_safetensors(&dir.join("s1.safetensors"), &[Spec::f32("x", &[1], &[1.0]), Spec::f32("stray", &[1], &[9.0])]);
    crate::fixtures::write_index(&dir.join("model.safetensors.index.json"), &[("x", "s1.safetensors")]);
    let ckpt = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(ckpt.tensors().len(), 1);
    assert!(ckpt.warnings()[0].contains("stray"), "{:?}", ckpt.warnings());
}

#[test]
fn architecture_is_guessed_from_names_without_config() {
    let dir = TempDir::new();
    let path = dir.join("gpt2.safetensors");
    write_safetensors(
        &path,
        &[Spec::f32("h.0.attn.c_attn.weight", &[1], &[0.0]), Spec::f32("h.0.mlp.c_fc.weight", &[1], &[0.0])],
    );
    let ckpt = Checkpoint::open(&path).unwrap();
    assert_eq!(ckpt.architecture(), Some("gpt2"));
    assert_eq!(ckpt.require("h.0.attn.c_attn.weight").unwrap().role, Role::AttnQkv);
}
