//! The GGUF reader: any bytes after the magic give a checkpoint whose every tensor decodes to one
//! value per element (or says its type is not decoded), or an error naming the file.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use weightbench::checkpoint::{Checkpoint, METADATA_ARRAY_ITEMS, MappedFile};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    // Every input is a GGUF file: the magic is not worth the fuzzer's time.
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(data.strip_prefix(b"GGUF").unwrap_or(data));
    match Checkpoint::from_file(MappedFile::from_bytes(Path::new("fuzz.gguf"), bytes)) {
        Ok(ckpt) => {
            common::decode_every_tensor(&ckpt);
            if let Some(info) = ckpt.gguf() {
                for (_, value) in &info.metadata {
                    let _ = value.to_json(METADATA_ARRAY_ITEMS);
                }
            }
        }
        Err(e) => common::names_the_file(&e, "fuzz.gguf"),
    }
});
