//! One test per fault the fuzz targets (`fuzz/`, run by `scripts/fuzz.sh`; results in
//! docs/fuzzing.md) found in the code, once fixed: the input or the smallest one showing the same
//! fault, and what must happen instead. Faults in a target's own checks are mended there.

use weightbench::checkpoint::Checkpoint;

use crate::fixtures::{Gguf, TempDir, write_raw};

/// gguf target, 2026-12-06: a tensor with a dimension of 0 and others near 2^62 holds no
/// element, and the reader accepts it (as llama.cpp does, multiplying in ggml's order, zero
/// first). Its element count was then the product in the other order, which overflowed:
/// `info` printed 18 446 744 073.71B parameters (u64::MAX) and debug builds panicked.
#[test]
fn a_zero_dimension_makes_an_empty_tensor_whatever_the_others() {
    let dir = TempDir::new();
    let path = dir.join("zero.gguf");
    Gguf::new("llama").tensor("t", &[1 << 62, 1 << 62, 0], 0, Vec::new()).write(&path);
    let ckpt = Checkpoint::open(&path).unwrap();
    let t = ckpt.require("t").unwrap();
    assert_eq!((t.checked_numel(), t.numel()), (Some(0), 0));
    assert_eq!(ckpt.total_params(), 0);
    assert!(ckpt.decode_all(t).unwrap().is_empty());
    let out = crate::cli::weightbench(&["info", "--json", path.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["total_params"], 0, "{info}");
}

/// safetensors_header target, 2026-12-06: an entry giving `data_offsets` twice was read with the
/// last one, while the `safetensors` crate refuses it ("duplicate field"). Refused now, as a key
/// given twice at the top level already was.
#[test]
fn a_field_given_twice_in_a_safetensors_entry_is_refused() {
    let dir = TempDir::new();
    let path = dir.join("twice.safetensors");
    let header = r#"{"w":{"dtype":"U8","shape":[8],"data_offsets":[32,8],"data_offsets":[0,8]}}"#;
    write_raw(&path, header.as_bytes(), &[1u8; 8]);
    assert!(safetensors::SafeTensors::deserialize(&std::fs::read(&path).unwrap()).is_err(), "the reference refuses it");
    let e = Checkpoint::open(&path).unwrap_err().to_string();
    assert!(e.contains("twice.safetensors") && e.contains("duplicate field `data_offsets`"), "{e}");
    // The same entry with the field once is fine.
    write_raw(&path, br#"{"w":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}"#, &[1u8; 8]);
    assert_eq!(Checkpoint::open(&path).unwrap().tensors().len(), 1);
}
