//! Resident memory while reading a tensor larger than the release threshold: the pages of the
//! map are given back as the kernel goes, so a pass over a checkpoint larger than memory keeps
//! about one window resident (measured from `/proc/self/smaps`, Linux only).

use std::io::Write;
use std::path::Path;

use weightbench::analysis::Cancel;
use weightbench::checkpoint::Checkpoint;
use weightbench::compute::cpu::CpuBackend;
use weightbench::compute::{StatsRequest, TensorRef};

use crate::fixtures::TempDir;

/// The resident bytes of this process's mappings of `path`.
fn resident_bytes_of(path: &Path) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let name = path.to_string_lossy();
    let mut in_file = false;
    let mut total = 0;
    for line in smaps.lines() {
        let header = line.split_whitespace().next().is_some_and(|w| w.contains('-') && !w.ends_with(':'));
        if header {
            in_file = line.ends_with(name.as_ref());
        } else if in_file && let Some(kb) = line.strip_prefix("Rss:") {
            total += kb.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap() * 1024;
        }
    }
    total
}

/// A safetensors file of one BF16 tensor of `rows` × 4096 whose data is a hole: sparse, so it
/// takes no disk, and reads as zeros.
fn sparse_bf16(path: &Path, rows: u64) {
    let header = format!(r#"{{"w":{{"dtype":"BF16","shape":[{rows},4096],"data_offsets":[0,{}]}}}}"#, rows * 4096 * 2);
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    f.set_len(8 + header.len() as u64 + rows * 4096 * 2).unwrap();
}

#[test]
fn statistics_of_a_large_two_byte_tensor_keep_about_one_window_of_its_pages() {
    let dir = TempDir::new();
    let path = dir.join("big.safetensors");
    // 256 MiB of BF16: four windows of the pattern counter.
    sparse_bf16(&path, 32768);
    let ckpt = Checkpoint::open(&path).unwrap();
    let t = ckpt.require("w").unwrap();
    let r = CpuBackend.stats(&TensorRef::new(&ckpt, t), &StatsRequest::default(), &Cancel::new()).unwrap();
    assert_eq!(r.moments.n, 32768 * 4096);
    // Every window was given back as it was counted (the job's end has not released anything yet).
    let resident = resident_bytes_of(&path);
    assert!(resident <= 8 << 20, "{} MiB of the 256 MiB tensor stayed resident", resident >> 20);
    // And the measure itself can see a tensor kept resident: reading every byte maps it.
    let bytes = ckpt.raw_bytes(t).unwrap();
    let sum: u64 = bytes.iter().step_by(4096).map(|&b| u64::from(b)).sum();
    assert_eq!(sum, 0);
    assert!(resident_bytes_of(&path) >= 200 << 20, "the smaps measure saw {} MiB", resident_bytes_of(&path) >> 20);
}
