//! One test per fault the fuzz targets (`fuzz/`, run by `scripts/fuzz.sh`; results in
//! docs/fuzzing.md) found in the code, once fixed: the input or the smallest one showing the same
//! fault, and what must happen instead. Faults in a target's own checks are mended there.

use weightbench::checkpoint::Checkpoint;

use crate::fixtures::{Gguf, TempDir};

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
