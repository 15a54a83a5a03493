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
fn the_reference_writer_and_we_agree_on_every_dtype_both_ways() {
    // Ours to theirs: every name we read is one the reference crate parses.
    for d in DType::SAFETENSORS {
        let parsed: Result<Dtype, _> = serde_json::from_str(&format!("\"{}\"", d.name()));
        assert!(parsed.is_ok(), "{} is not a safetensors dtype name", d.name());
    }
    // Theirs to ours: a file the reference writer makes with each of its dtypes opens here, with
    // that dtype, shape and byte range (4 values: whole bytes for every width).
    let dir = TempDir::new();
    for name in weightbench::codec::safetensors_names() {
        let dtype: Dtype = serde_json::from_str(&format!("\"{name}\"")).unwrap();
        let bytes = vec![0x11u8; 4 * dtype.bitsize() / 8];
        let path = dir.join(&format!("{name}.safetensors"));
        write_safetensors(&path, &[Spec::new("w", dtype, &[2, 2], bytes.clone())]);
        let ckpt = Checkpoint::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let t = ckpt.require("w").unwrap();
        assert_eq!((t.dtype.name(), t.shape.as_slice()), (*name, &[2u64, 2][..]));
        assert_eq!(ckpt.raw_bytes(t).unwrap(), bytes.as_slice(), "{name}");
        match t.dtype.why_not_analysed() {
            None => assert_eq!(ckpt.decode_all(t).unwrap().len(), 4, "{name}"),
            Some(why) => assert!(ckpt.decode_all(t).is_err() && why.contains("complex"), "{name}: {why}"),
        }
    }
}

#[test]
fn fp4_fp6_and_complex_tensors_from_the_reference_writer() {
    let dir = TempDir::new();
    let path = dir.join("narrow.safetensors");
    // FP4 codes 1 (0.5) and 15 (−6) in one byte; FP6 E2M3 codes 31 (7.5) x4 in three bytes.
    let fp6 = {
        let w = 31u32 | 31 << 6 | 31 << 12 | 31 << 18;
        vec![w as u8, (w >> 8) as u8, (w >> 16) as u8]
    };
    let c64: Vec<u8> = [1.0f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    write_safetensors(
        &path,
        &[
            Spec::new("fp4", Dtype::F4, &[2], vec![0xf1]),
            Spec::new("fp6", Dtype::F6_E2M3, &[4], fp6),
            Spec::new("c", Dtype::C64, &[1], c64),
        ],
    );
    let ckpt = Checkpoint::open(&path).unwrap();
    assert_eq!(ckpt.decode_all(ckpt.require("fp4").unwrap()).unwrap(), [0.5, -6.0]);
    assert_eq!(ckpt.decode_all(ckpt.require("fp6").unwrap()).unwrap(), [7.5; 4]);
    let c = ckpt.require("c").unwrap();
    assert_eq!((c.dtype, c.bytes), (DType::C64, 8));
    // Through the command line: listed by info; analysed tensors skip it, saying why.
    let bin = env!("CARGO_BIN_EXE_weightbench");
    let out = std::process::Command::new(bin).args(["info", "--json", path.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dtypes: Vec<&str> = v["tensors"].as_array().unwrap().iter().map(|t| t["dtype"].as_str().unwrap()).collect();
    assert_eq!(dtypes, ["C64", "F4", "F6_E2M3"]);
    let out = std::process::Command::new(bin).args(["stats", "--json", path.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["skipped"], serde_json::json!(["c"]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("complex values (C64)"));
    assert_eq!(v["tensors"][0]["max"], 0.5);
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

#[test]
fn a_tensor_the_checkpoint_does_not_hold_is_an_error_naming_it_never_an_empty_slice() {
    let dir = TempDir::new();
    let path = dir.join("m.safetensors");
    write_safetensors(&path, &[Spec::f32("a", &[3], &[1.0, 2.0, 3.0])]);
    let ckpt = Checkpoint::open(&path).unwrap();
    let good = ckpt.require("a").unwrap();
    assert_eq!(ckpt.raw_bytes(good).unwrap().len(), 12);
    // A range beyond the file, a file the checkpoint does not have, a length that overflows.
    let mut beyond = good.clone();
    beyond.name = "beyond".into();
    beyond.offset = 1 << 40;
    let mut other_file = good.clone();
    other_file.name = "other".into();
    other_file.file = 7;
    let mut overflow = good.clone();
    overflow.name = "overflow".into();
    overflow.bytes = u64::MAX;
    for t in [&beyond, &other_file, &overflow] {
        let err = ckpt.raw_bytes(t).unwrap_err().to_string();
        assert!(err.contains(&format!("\"{}\"", t.name)) && err.contains("not in the checkpoint"), "{err}");
        assert!(ckpt.decode_all(t).is_err(), "{}", t.name);
    }
    // A shape whose element count overflows 64 bits counts as "too many", without a panic.
    let mut huge = good.clone();
    huge.shape = vec![u64::MAX, 3];
    assert_eq!((huge.checked_numel(), huge.numel()), (None, u64::MAX));
    assert!(ckpt.decode_all(&huge).is_err());
    assert_eq!(ckpt.chunks(&huge, 1 << 20).next(), Some(0..1 << 20), "chunking saturates instead of overflowing");
}

#[test]
fn every_fp4_and_fp6_code_decodes_as_ml_dtypes_does() {
    // tests/data/minifloats.safetensors: the value of every code by ml_dtypes.
    let fixture = Checkpoint::open(crate::fixtures::data("minifloats.safetensors")).unwrap();
    for (name, dtype) in [("f4_e2m1", DType::F4), ("f6_e2m3", DType::F6E2M3), ("f6_e3m2", DType::F6E3M2)] {
        let want = fixture.decode_all(fixture.require(name).unwrap()).unwrap();
        // Every code once, packed as safetensors stores them.
        let codes: Vec<u32> = (0..want.len() as u32).collect();
        let bytes: Vec<u8> = match dtype {
            DType::F4 => codes.chunks(2).map(|p| (p[0] | p[1] << 4) as u8).collect(),
            _ => codes
                .chunks(4)
                .flat_map(|c| {
                    let w = c[0] | c[1] << 6 | c[2] << 12 | c[3] << 18;
                    [w as u8, (w >> 8) as u8, (w >> 16) as u8]
                })
                .collect(),
        };
        let mut got = vec![0f32; want.len()];
        weightbench::codec::decode(dtype, &bytes, &mut got).unwrap();
        assert!(same_bits(&got, &want), "{name}: {got:?} vs ml_dtypes {want:?}");
    }
}
