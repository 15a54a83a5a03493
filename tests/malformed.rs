//! Every validation rule has a malformed file that breaks it; each must give a clear, typed error
//! naming the file (and the tensor, where one is involved), and never a panic.

use std::path::Path;

use weightbench::checkpoint::{Checkpoint, CheckpointError};

use crate::fixtures::{Spec, TempDir, write_index, write_raw, write_safetensors};

/// Opens `path`, expects an error that `matches`, and checks its message names the file and
/// contains every fragment.
fn expect_error(path: &Path, matches: impl Fn(&CheckpointError) -> bool, fragments: &[&str]) -> String {
    let err = match Checkpoint::open(path) {
        Ok(_) => panic!("{} opened but should have been refused", path.display()),
        Err(e) => e,
    };
    let message = err.to_string();
    assert!(matches(&err), "unexpected error kind: {err:?}");
    let file_name = path.file_name().unwrap().to_string_lossy();
    assert!(message.contains(file_name.as_ref()), "message does not name the file: {message}");
    for fragment in fragments {
        assert!(message.contains(fragment), "message lacks {fragment:?}: {message}");
    }
    message
}

fn f32_bytes(n: usize) -> Vec<u8> {
    vec![0u8; n * 4]
}

#[test]
fn empty_file() {
    let dir = TempDir::new();
    let path = dir.join("empty.safetensors");
    std::fs::write(&path, b"").unwrap();
    expect_error(&path, |e| matches!(e, CheckpointError::Empty { .. }), &["empty"]);
}

#[test]
fn file_shorter_than_the_length_prefix() {
    let dir = TempDir::new();
    let path = dir.join("short.safetensors");
    std::fs::write(&path, [1, 2, 3, 4, 5]).unwrap();
    expect_error(&path, |e| matches!(e, CheckpointError::Truncated { expected: 8, found: 5, .. }), &["8", "5"]);
}

#[test]
fn header_length_beyond_the_file() {
    let dir = TempDir::new();
    let path = dir.join("beyond.safetensors");
    let mut bytes = 1000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&path, bytes).unwrap();
    expect_error(&path, |e| matches!(e, CheckpointError::Truncated { expected: 1008, found: 10, .. }), &["1008"]);
}

#[test]
fn header_above_100_megabytes() {
    let dir = TempDir::new();
    let path = dir.join("huge-header.safetensors");
    let mut bytes = 200_000_000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&path, bytes).unwrap();
    expect_error(&path, |e| matches!(e, CheckpointError::HeaderTooLarge { found: 200_000_000, .. }), &["200000000"]);
}

#[test]
fn header_not_utf8() {
    let dir = TempDir::new();
    let path = dir.join("latin1.safetensors");
    write_raw(&path, b"{\"caf\xe9\": 1}", &[]);
    expect_error(&path, |e| matches!(e, CheckpointError::InvalidHeader { .. }), &["UTF-8"]);
}

#[test]
fn header_not_json() {
    let dir = TempDir::new();
    let path = dir.join("notjson.safetensors");
    write_raw(&path, b"{\"a\": {\"dtype\": \"F32\", ", &[]);
    expect_error(&path, |e| matches!(e, CheckpointError::InvalidHeader { .. }), &["JSON"]);
    let path = dir.join("array.safetensors");
    write_raw(&path, b"[1, 2]", &[]);
    expect_error(&path, |e| matches!(e, CheckpointError::InvalidHeader { .. }), &["JSON"]);
}

#[test]
fn tensor_entry_of_the_wrong_shape() {
    let dir = TempDir::new();
    let path = dir.join("entry.safetensors");
    write_raw(&path, br#"{"w": {"dtype": "F32", "shape": [1]}}"#, &f32_bytes(1));
    expect_error(&path, |e| matches!(e, CheckpointError::InvalidHeader { .. }), &["\"w\"", "data_offsets"]);
}

#[test]
fn header_nested_absurdly_deep() {
    let dir = TempDir::new();
    let path = dir.join("deep.safetensors");
    let depth = 100_000;
    let header = format!("{{\"__metadata__\": {}{}}}", "[".repeat(depth), "]".repeat(depth));
    write_raw(&path, header.as_bytes(), &[]);
    expect_error(&path, |e| matches!(e, CheckpointError::InvalidHeader { .. }), &["recursion"]);
    let path = dir.join("deep-entry.safetensors");
    // Valid JSON but for its depth, inside an entry: skipped without recursion (serde_json
    // ignores unknown fields iteratively), so the entry is judged on what it lacks.
    let header = format!("{{\"w\": {{\"dtype\": \"F32\", \"x\": {}0{}}}}}", "{\"a\":".repeat(depth), "}".repeat(depth));
    write_raw(&path, header.as_bytes(), &[]);
    expect_error(
        &path,
        |e| matches!(e, CheckpointError::InvalidHeader { .. }),
        &["tensor \"w\"", "missing field `shape`"],
    );
}

#[test]
fn name_given_twice_in_one_header() {
    let dir = TempDir::new();
    let path = dir.join("twice.safetensors");
    let header = br#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                      "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#;
    write_raw(&path, header, &f32_bytes(2));
    expect_error(
        &path,
        |e| matches!(e, CheckpointError::DuplicateTensor { tensor, .. } if tensor == "w"),
        &["\"w\"", "twice"],
    );
}

#[test]
fn unknown_dtype() {
    let dir = TempDir::new();
    let path = dir.join("dtype.safetensors");
    write_raw(&path, br#"{"w": {"dtype": "F7", "shape": [1], "data_offsets": [0, 1]}}"#, &[0]);
    expect_error(
        &path,
        |e| matches!(e, CheckpointError::UnknownDtype { tensor, dtype, .. } if tensor == "w" && dtype == "F7"),
        &["\"w\"", "\"F7\""],
    );
}

#[test]
fn offsets_out_of_bounds() {
    let dir = TempDir::new();
    let path = dir.join("oob.safetensors");
    write_raw(&path, br#"{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}"#, &f32_bytes(2));
    expect_error(
        &path,
        |e| matches!(e, CheckpointError::InvalidTensor { tensor, .. } if tensor == "w"),
        &["\"w\"", "[0, 16]", "8 bytes", "truncated"],
    );
}

#[test]
fn reversed_range() {
    let dir = TempDir::new();
    let path = dir.join("reversed.safetensors");
    write_raw(&path, br#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}"#, &f32_bytes(1));
    expect_error(&path, |e| matches!(e, CheckpointError::InvalidTensor { .. }), &["\"w\"", "reversed"]);
}

#[test]
fn overlapping_ranges() {
    let dir = TempDir::new();
    let path = dir.join("overlap.safetensors");
    let header = br#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#;
    write_raw(&path, header, &f32_bytes(3));
    expect_error(&path, |e| matches!(e, CheckpointError::InvalidTensor { .. }), &["\"b\"", "overlaps", "\"a\""]);
}

#[test]
fn shape_disagrees_with_range() {
    let dir = TempDir::new();
    let path = dir.join("size.safetensors");
    write_raw(&path, br#"{"w": {"dtype": "BF16", "shape": [3, 2], "data_offsets": [0, 8]}}"#, &[0; 8]);
    expect_error(&path, |e| matches!(e, CheckpointError::InvalidTensor { .. }), &["\"w\"", "needs 12 bytes", "hold 8"]);
}

#[test]
fn shape_overflowing_64_bits() {
    let dir = TempDir::new();
    let path = dir.join("overflow.safetensors");
    let header = br#"{"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 4]}}"#;
    write_raw(&path, header, &f32_bytes(1));
    expect_error(&path, |e| matches!(e, CheckpointError::InvalidTensor { .. }), &["\"w\"", "overflows"]);
}

#[test]
fn bytes_belonging_to_no_tensor() {
    let dir = TempDir::new();
    let path = dir.join("hole.safetensors");
    let header = br#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                      "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}"#;
    write_raw(&path, header, &f32_bytes(3));
    expect_error(&path, |e| matches!(e, CheckpointError::Unindexed { .. }), &["[4, 8)", "\"b\""]);
    let path = dir.join("trailing.safetensors");
    write_raw(&path, br#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#, &f32_bytes(2));
    expect_error(&path, |e| matches!(e, CheckpointError::Unindexed { .. }), &["ends at byte 4", "8-byte"]);
}

#[test]
fn duplicate_names_across_shards() {
    let dir = TempDir::new();
    write_safetensors(&dir.join("s1.safetensors"), &[Spec::f32("x", &[1], &[1.0])]);
    write_safetensors(&dir.join("s2.safetensors"), &[Spec::f32("x", &[1], &[2.0]), Spec::f32("y", &[1], &[3.0])]);
    write_index(&dir.join("model.safetensors.index.json"), &[("x", "s1.safetensors"), ("y", "s2.safetensors")]);
    // The error names the second file, so check through the folder-level path too.
    let err = Checkpoint::open(dir.path()).err().unwrap();
    assert!(matches!(&err, CheckpointError::DuplicateTensor { tensor, .. } if tensor == "x"), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("s1.safetensors") && message.contains("s2.safetensors"), "{message}");
}

#[test]
fn duplicate_names_in_the_index() {
    let dir = TempDir::new();
    write_safetensors(&dir.join("s1.safetensors"), &[Spec::f32("x", &[1], &[1.0])]);
    let index = dir.join("model.safetensors.index.json");
    std::fs::write(&index, r#"{"weight_map": {"x": "s1.safetensors", "x": "s1.safetensors"}}"#).unwrap();
    expect_error(&index, |e| matches!(e, CheckpointError::DuplicateTensor { .. }), &["\"x\"", "weight_map"]);
}

#[test]
fn index_names_a_missing_shard() {
    let dir = TempDir::new();
    write_safetensors(&dir.join("s1.safetensors"), &[Spec::f32("x", &[1], &[1.0])]);
    let index = dir.join("model.safetensors.index.json");
    write_index(&index, &[("x", "s1.safetensors"), ("y", "s2.safetensors")]);
    expect_error(
        &index,
        |e| matches!(e, CheckpointError::MissingShard { shard, tensor, .. } if shard == "s2.safetensors" && tensor == "y"),
        &["s2.safetensors", "\"y\""],
    );
}

#[test]
fn index_maps_a_tensor_its_shard_lacks() {
    let dir = TempDir::new();
    write_safetensors(&dir.join("s1.safetensors"), &[Spec::f32("x", &[1], &[1.0])]);
    write_safetensors(&dir.join("s2.safetensors"), &[Spec::f32("y", &[1], &[1.0])]);
    let index = dir.join("model.safetensors.index.json");
    // y exists, but in s2, not in s1 where the index says it is.
    write_index(&index, &[("x", "s1.safetensors"), ("y", "s1.safetensors"), ("z", "s2.safetensors")]);
    let message = expect_error(&index, |e| matches!(e, CheckpointError::MissingTensor { .. }), &["s1.safetensors"]);
    assert!(message.contains("\"y\""), "{message}");
}

#[test]
fn index_with_a_path_outside_its_folder() {
    let dir = TempDir::new();
    let index = dir.join("model.safetensors.index.json");
    write_index(&index, &[("x", "../elsewhere.safetensors")]);
    expect_error(&index, |e| matches!(e, CheckpointError::InvalidHeader { .. }), &["not a file name"]);
}

#[test]
fn index_not_json() {
    let dir = TempDir::new();
    let index = dir.join("model.safetensors.index.json");
    std::fs::write(&index, "weight_map: x").unwrap();
    expect_error(&index, |e| matches!(e, CheckpointError::InvalidHeader { .. }), &["JSON"]);
}

#[test]
fn folder_without_a_checkpoint() {
    let dir = TempDir::new();
    std::fs::write(dir.join("README.md"), "nothing here").unwrap();
    let err = Checkpoint::open(dir.path()).err().unwrap();
    assert!(matches!(err, CheckpointError::NotACheckpoint { .. }), "{err:?}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}

#[test]
fn broken_config_json_is_reported() {
    let dir = TempDir::new();
    write_safetensors(&dir.join("model.safetensors"), &[Spec::f32("x", &[1], &[1.0])]);
    std::fs::write(dir.join("config.json"), "{ not json").unwrap();
    let err = Checkpoint::open(dir.path()).err().unwrap();
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn a_random_byte_flip_never_panics() {
    // Every single-byte corruption of a header either opens or gives an error; none panics.
    let dir = TempDir::new();
    let good = dir.join("good.safetensors");
    write_safetensors(
        &good,
        &[Spec::f32("a", &[2, 2], &[1.0, 2.0, 3.0, 4.0]), Spec::new("b", safetensors::Dtype::BF16, &[3], vec![0; 6])],
    );
    let bytes = std::fs::read(&good).unwrap();
    let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let path = dir.join("flipped.safetensors");
    for i in 0..header_end {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut corrupt = bytes.clone();
            corrupt[i] ^= flip;
            std::fs::write(&path, &corrupt).unwrap();
            if let Ok(ckpt) = Checkpoint::open(&path) {
                for t in ckpt.tensors() {
                    ckpt.decode_all(t).unwrap();
                }
            }
        }
    }
}
