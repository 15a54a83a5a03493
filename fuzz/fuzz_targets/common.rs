//! What every reader target checks once a file was accepted.

// Each target uses part of it.
#![allow(dead_code)]

use weightbench::checkpoint::Checkpoint;

/// Decodes every tensor of an accepted checkpoint whose values fit a small budget (the readers
/// promise that an accepted tensor's bytes lie inside its file and match its shape): decoding
/// must give exactly one value per element. Tensors of types we do not decode must say so.
pub fn decode_every_tensor(ckpt: &Checkpoint) {
    for t in ckpt.tensors() {
        let elems = t.numel();
        if elems > 1 << 20 {
            continue;
        }
        match ckpt.decode_all(t) {
            Ok(values) => assert_eq!(values.len() as u64, elems, "{}", t.name),
            Err(e) => assert!(!t.dtype.can_decode(), "{}: {e}", t.name),
        }
    }
}

/// The message of a refused file must name it (every error a user sees names its file).
pub fn names_the_file(error: &impl std::fmt::Display, path: &str) {
    let text = error.to_string();
    assert!(text.contains(path), "{text:?} does not name {path}");
}
