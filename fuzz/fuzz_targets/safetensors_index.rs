//! The parser of `model.safetensors.index.json`: any bytes give an index or an error naming the
//! file; an accepted index names each tensor once.

#![no_main]

use std::collections::HashSet;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use weightbench::checkpoint::sharded::parse_index;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    match parse_index(Path::new("fuzz.safetensors.index.json"), data) {
        Ok(index) => {
            let mut seen = HashSet::new();
            for (name, _) in &index.weight_map.entries {
                assert!(seen.insert(name), "{name} accepted twice");
            }
            assert!(index.weight_map.duplicate.is_none());
        }
        Err(e) => common::names_the_file(&e, "fuzz.safetensors.index.json"),
    }
});
