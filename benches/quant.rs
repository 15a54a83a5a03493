//! Timings of the quantization preview, for `benches/quant_vs_peers.py`, which runs gguf-py's
//! numpy quantizer, llama.cpp's `ggml_quantize_chunk` and compressed-tensors on the same tensors
//! in the same run and prints the ratios.
//!
//!     cargo bench --bench quant -- DIR SCHEME[,SCHEME...] [--repeat N] [--backend cpu|gpu]
//!     cargo bench --bench quant -- alloc [MATRICES CANDIDATES]   the allocator on a synthetic table
//!
//! For each scheme: every matrix of the checkpoint previewed (encoded, decoded, error measured;
//! the plan's fallbacks applied, as `quantize --scheme` does), best of N, on one thread and on
//! all threads (CPU), or on the GPU. Prints one JSON object per scheme with the scheme each
//! tensor got, so that the peers encode exactly the same types.

use std::time::Instant;

use anyhow::{Context, Result};
use weightbench::analysis::Cancel;
use weightbench::checkpoint::Checkpoint;
use weightbench::compute::Backend;
use weightbench::compute::select::{BackendChoice, SelectedBackend};
use weightbench::quant::plan::ModelIdentity;
use weightbench::quant::{Plan, preview_tensor};

/// The allocator alone on a synthetic 70B-shaped table (errors given): solve at a third of the
/// range and a 32-point Pareto frontier, best of 5.
fn alloc(matrices: usize, candidates: usize) {
    use weightbench::quant::allocate::{Choice, allocate, pareto};
    let mut seed = 11u64;
    let mut rng = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let items: Vec<Vec<Choice>> = (0..matrices)
        .map(|_| {
            let size = 1.0 + 20.0 * rng();
            (0..candidates)
                .map(|k| Choice {
                    bytes: (size * 1e6 * (k + 2) as f64 / 8.0) as u64,
                    objective: size * 0.25f64.powi(k as i32) * (0.8 + 0.4 * rng()),
                })
                .collect()
        })
        .collect();
    let min: u64 = items.iter().map(|c| c[0].bytes).sum();
    let max: u64 = items.iter().map(|c| c[candidates - 1].bytes).sum();
    let (mut solve, mut front, mut gap) = (f64::INFINITY, f64::INFINITY, 0.0);
    for _ in 0..5 {
        let t = Instant::now();
        if let Ok(a) = allocate(&items, min + (max - min) / 3) {
            gap = a.gap;
        }
        solve = solve.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        std::hint::black_box(pareto(&items, 32));
        front = front.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{}",
        serde_json::json!({"matrices": matrices, "candidates": candidates, "solve_seconds": solve, "pareto32_seconds": front, "gap": gap})
    );
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.first().map(String::as_str) == Some("alloc") {
        let n = |i: usize, d: usize| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(d);
        alloc(n(1, 560), n(2, 8));
        return Ok(());
    }
    let dir = args.first().context("usage: quant DIR SCHEMES [--repeat N] [--backend cpu|gpu]")?;
    let schemes = args.get(1).context("usage: quant DIR SCHEMES")?;
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let repeat: usize = flag("--repeat").and_then(|n| n.parse().ok()).unwrap_or(3);
    let choice: BackendChoice =
        flag("--backend").map_or(Ok(BackendChoice::Cpu), |b| b.parse()).map_err(anyhow::Error::msg)?;
    let ckpt = Checkpoint::open(dir)?;
    let matrices: Vec<_> = ckpt.tensors().iter().filter(|t| t.shape.len() == 2).collect();
    let shapes = weightbench::quant::plan::described(matrices.iter().copied());
    let backend = SelectedBackend::new(choice);
    let cancel = Cancel::new();
    for scheme in schemes.split(',') {
        let (resolved, _) = Plan::single(scheme)?.resolve(&shapes, &ModelIdentity::default())?;
        let run_all = |backend: &dyn Backend| -> Result<(f64, String)> {
            let start = Instant::now();
            let mut on = String::new();
            for (t, r) in matrices.iter().zip(&resolved) {
                let p = preview_tensor(backend, &ckpt, t, r, None, None, &cancel)?;
                std::hint::black_box(p.sse);
                on = p.computed.backend;
            }
            Ok((start.elapsed().as_secs_f64(), on))
        };
        let best = |threads: Option<usize>| -> Result<(f64, String)> {
            let mut best = (f64::INFINITY, String::new());
            for _ in 0..repeat {
                let r = match threads {
                    Some(n) => rayon::ThreadPoolBuilder::new().num_threads(n).build()?.install(|| run_all(&backend))?,
                    None => run_all(&backend)?,
                };
                if r.0 < best.0 {
                    best = r;
                }
            }
            Ok(best)
        };
        let (one, _) = best(Some(1))?;
        let (all, on) = best(None)?;
        let tensors: Vec<serde_json::Value> = resolved
            .iter()
            .zip(&matrices)
            .map(|(r, t)| serde_json::json!({"name": t.name, "scheme": r.scheme, "shape": t.shape}))
            .collect();
        let values: u64 = matrices.iter().map(|t| t.numel()).sum();
        println!(
            "{}",
            serde_json::json!({
                "scheme": scheme, "values": values, "seconds_1_thread": one, "seconds_all_threads": all,
                "threads": rayon::current_num_threads(), "backend": on, "tensors": tensors,
            })
        );
    }
    Ok(())
}
