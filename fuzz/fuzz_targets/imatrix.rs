//! The imatrix reader (llama.cpp's legacy binary format and its GGUF format): any bytes give
//! vectors of finite, non-negative values or an error naming the file.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use weightbench::checkpoint::MappedFile;
use weightbench::checkpoint::imatrix::parse_imatrix;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    match parse_imatrix(MappedFile::from_bytes(Path::new("fuzz.imatrix"), data.to_vec())) {
        Ok(imatrix) => {
            for (name, values) in &imatrix.vectors {
                assert!(values.iter().all(|v| v.is_finite() && *v >= 0.0), "{name}");
            }
            let _ = imatrix.fingerprint();
        }
        Err(e) => common::names_the_file(&e, "fuzz.imatrix"),
    }
});
