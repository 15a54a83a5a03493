//! Random damage to valid inputs, thousands of times per reader (a deterministic generator, so
//! every run tries the same files): GGUF checkpoints, imatrix files, safetensors files and plans,
//! each byte-flipped, overwritten with extreme integers, truncated or spliced. A reader may accept
//! what is still valid or refuse with an error that names the file; it may never panic, and what
//! it accepts must decode. (The cargo-fuzz targets the issue asks for are not built yet: these are
//! the in-tree stand-in CI runs every time.)

use std::path::Path;

use weightbench::checkpoint::Checkpoint;
use weightbench::checkpoint::imatrix::read_imatrix;
use weightbench::quant::plan::Plan;

use crate::fixtures::{Gguf, Rng, TempDir};
use crate::gguf::small_llama;

/// A random index below `n`.
fn pick(rng: &mut Rng, n: usize) -> usize {
    rng.below(n as u64) as usize
}

/// `bytes` with one to four random injuries.
fn damage(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for _ in 0..1 + pick(rng, 4) {
        if b.is_empty() {
            break;
        }
        let at = pick(rng, b.len());
        match pick(rng, 5) {
            0 => b[at] ^= 1 << pick(rng, 8),
            1 => {
                // An extreme little-endian integer where a count, length or offset may sit.
                let v: u64 = [u64::MAX, u64::MAX / 2, 1 << 32, 1 << 40, 0, 7][pick(rng, 6)];
                for (i, byte) in v.to_le_bytes().iter().enumerate() {
                    if let Some(slot) = b.get_mut(at + i) {
                        *slot = *byte;
                    }
                }
            }
            2 => b.truncate(at),
            3 => {
                let len = pick(rng, 16);
                let copy: Vec<u8> = b[at..(at + len).min(b.len())].to_vec();
                let to = pick(rng, b.len());
                b.splice(to..to, copy);
            }
            _ => b[at] = [0, 0xff, b'{', b'"', b'['][pick(rng, 5)],
        }
    }
    b
}

/// Opens every damaged copy of `good` as `name`; whatever opens must decode every tensor.
/// Returns (opened, refused).
fn open_damaged(dir: &TempDir, name: &str, good: &[u8], seed: u64, tries: usize) -> (usize, usize) {
    let mut rng = Rng(seed);
    let path = dir.join(name);
    let (mut opened, mut refused) = (0, 0);
    for i in 0..tries {
        let bytes = damage(&mut rng, good);
        std::fs::write(&path, &bytes).unwrap();
        match Checkpoint::open(&path) {
            Ok(ckpt) => {
                opened += 1;
                for t in ckpt.tensors() {
                    if let Err(e) = ckpt.decode_all(t) {
                        let text = e.to_string();
                        assert!(text.contains(name) || text.contains(&t.name), "try {i}: {text}");
                    }
                }
            }
            Err(e) => {
                refused += 1;
                assert!(e.to_string().contains(name), "try {i}: the error names no file: {e}");
            }
        }
    }
    (opened, refused)
}

#[test]
fn damaged_gguf_files_are_refused_or_decode() {
    let dir = TempDir::new();
    let (opened, refused) = open_damaged(&dir, "model.gguf", &small_llama().build(), 11, 3000);
    assert!(opened > 50 && refused > 1000, "opened {opened}, refused {refused}");
}

#[test]
fn damaged_safetensors_files_are_refused_or_decode() {
    let dir = TempDir::new();
    let good = std::fs::read(crate::fixtures::data("minifloats.safetensors")).unwrap();
    let (opened, refused) = open_damaged(&dir, "model.safetensors", &good, 12, 3000);
    assert!(opened > 50 && refused > 1000, "opened {opened}, refused {refused}");
}

#[test]
fn damaged_imatrix_files_are_refused_or_read() {
    let dir = TempDir::new();
    let mut g = Gguf::new("imatrix");
    g.kv_str("general.type", "imatrix").kv_u32("imatrix.chunk_count", 1);
    g.f32("blk.0.attn_q.weight.in_sum2", &[1, 8], &[1.0; 8]).f32("blk.0.attn_q.weight.counts", &[1, 1], &[1.0]);
    let good = g.build();
    let path = dir.join("x.imatrix.gguf");
    let mut rng = Rng(13);
    let (mut read, mut refused) = (0, 0);
    for i in 0..3000 {
        std::fs::write(&path, damage(&mut rng, &good)).unwrap();
        match read_imatrix(&path) {
            Ok(m) => {
                read += 1;
                assert!(m.vectors.values().flatten().all(|v| v.is_finite() && *v >= 0.0), "try {i}");
            }
            Err(e) => {
                refused += 1;
                assert!(e.to_string().contains("x.imatrix.gguf"), "try {i}: {e}");
            }
        }
    }
    assert!(read > 20 && refused > 1000, "read {read}, refused {refused}");
}

#[test]
fn damaged_plans_are_refused_with_their_origin_or_parse() {
    let toml = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo-plan.toml")).unwrap();
    let json = br#"{"rule":[{"match":"*.weight","scheme":"q4_k"},{"match":"re:.*down.*","scheme":"int4_g128+awq"}],"tensor":{"a.weight":{"scheme":"keep"}}}"#;
    let mut rng = Rng(14);
    let (mut parsed, mut refused) = (0, 0);
    for i in 0..4000 {
        let json_case = i % 2 == 1;
        let bytes = damage(&mut rng, if json_case { &json[..] } else { &toml });
        let text = String::from_utf8_lossy(&bytes);
        let result =
            if json_case { Plan::parse_json(&text, "damaged.json") } else { Plan::parse_toml(&text, "damaged.toml") };
        match result {
            Ok(_) => parsed += 1,
            Err(e) => {
                refused += 1;
                assert!(e.to_string().contains("damaged."), "try {i}: the error names no origin: {e}");
            }
        }
    }
    assert!(parsed > 100 && refused > 1000, "parsed {parsed}, refused {refused}");
}
