//! The safetensors header parser, and the `safetensors` crate as a second opinion: both accept or
//! both refuse, but for the deliberate differences `tests/differential.rs` names (non-string
//! `__metadata__` values are dropped, not refused; a key given twice is refused).

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use weightbench::checkpoint::{Checkpoint, CheckpointError, MappedFile};

#[path = "common.rs"]
mod common;

/// Whether the header's `__metadata__` holds a value that is not a string.
fn non_string_metadata(data: &[u8]) -> bool {
    let Some(len) = data.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default())) else {
        return false;
    };
    let Some(header) = usize::try_from(len).ok().and_then(|n| data.get(8..8usize.checked_add(n)?)) else {
        return false;
    };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(header) else {
        return false;
    };
    match map.get("__metadata__") {
        Some(serde_json::Value::Object(meta)) => meta.values().any(|v| !v.is_string()),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    if data.starts_with(b"GGUF") {
        return; // the gguf target's
    }
    let file = MappedFile::from_bytes(Path::new("fuzz.safetensors"), data.to_vec());
    let ours = Checkpoint::from_file(file);
    let theirs = safetensors::SafeTensors::deserialize(data);
    match (&ours, &theirs) {
        (Ok(ckpt), Ok(_)) => common::decode_every_tensor(ckpt),
        (Err(e), Err(_)) => common::names_the_file(e, "fuzz.safetensors"),
        (Ok(_), Err(e)) => assert!(non_string_metadata(data), "we accept what safetensors refuses: {e}"),
        (Err(e), Ok(_)) => {
            assert!(matches!(e, CheckpointError::DuplicateTensor { .. }), "we refuse what safetensors accepts: {e}")
        }
    }
});
