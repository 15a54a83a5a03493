//! Decode throughput per tensor type: every tensor of a GGUF (or safetensors) file decoded to
//! f32 through the checkpoint reader, on one thread and on all threads (rayon over chunks).
//! Prints one JSON object per dtype: values decoded and the best of `--repeat` runs.
//! `benches/decode_vs_ggufpy.py` runs it beside gguf-py on the same file and prints ratios.
//!
//!     cargo bench --bench decode -- FILE [--repeat N]

use std::collections::BTreeMap;
use std::time::Instant;

use rayon::prelude::*;
use weightbench::checkpoint::{Checkpoint, DEFAULT_CHUNK_ELEMS};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let path = args.first().ok_or_else(|| anyhow::anyhow!("usage: decode FILE [--repeat N]"))?;
    let repeat: usize = match args.iter().position(|a| a == "--repeat") {
        Some(i) => args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(3),
        None => 3,
    };
    let ckpt = Checkpoint::open(path)?;
    let mut by_type: BTreeMap<&str, Vec<&weightbench::checkpoint::TensorInfo>> = BTreeMap::new();
    for t in ckpt.tensors().iter().filter(|t| t.dtype.can_decode()) {
        by_type.entry(t.dtype.name()).or_default().push(t);
    }
    for (dtype, tensors) in by_type {
        let values: u64 = tensors.iter().map(|t| t.numel()).sum();
        let mut best_single = f64::INFINITY;
        let mut best_parallel = f64::INFINITY;
        for _ in 0..repeat {
            let start = Instant::now();
            let mut buf = Vec::new();
            let mut sink = 0f32;
            for t in &tensors {
                for range in ckpt.chunks(t, DEFAULT_CHUNK_ELEMS) {
                    ckpt.decode_range(t, range, &mut buf)?;
                    sink += buf[buf.len() / 2];
                }
            }
            std::hint::black_box(sink);
            best_single = best_single.min(start.elapsed().as_secs_f64());

            let start = Instant::now();
            let chunks: Vec<_> =
                tensors.iter().flat_map(|t| ckpt.chunks(t, DEFAULT_CHUNK_ELEMS).map(move |r| (*t, r))).collect();
            let sink: f32 = chunks
                .par_iter()
                .map(|(t, range)| {
                    let mut buf = Vec::new();
                    ckpt.decode_range(t, range.clone(), &mut buf).map(|()| buf[buf.len() / 2])
                })
                .collect::<Result<Vec<f32>, _>>()?
                .iter()
                .sum();
            std::hint::black_box(sink);
            best_parallel = best_parallel.min(start.elapsed().as_secs_f64());
        }
        println!(
            "{}",
            serde_json::json!({"dtype": dtype, "values": values, "seconds_1_thread": best_single,
                               "seconds_all_threads": best_parallel, "threads": rayon::current_num_threads()})
        );
    }
    Ok(())
}
