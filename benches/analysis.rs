//! Timings of the CPU analysis, printed as one JSON object per line for
//! `benches/analysis_vs_peers.py`, which runs numpy and WeightWatcher on the same data in the
//! same run and prints the ratios.
//!
//!     cargo bench --bench analysis -- read DIR        read every tensor byte (two ways, and through a fresh
//!                                                     map), pass 1 alone, the statistics (also on a fresh
//!                                                     map) and the decode-to-f32 path, in turns
//!     cargo bench --bench analysis -- stats DIR       statistics + 256-bin histogram of every tensor
//!     cargo bench --bench analysis -- kernels DIR NAME the statistics kernels on one tensor, per value
//!     cargo bench --bench analysis -- patterns DIR NAME counting the bit patterns of one 8/16-bit tensor
//!     cargo bench --bench analysis -- spectra DIR     spectrum (auto method) of every 2-D tensor
//!     cargo bench --bench analysis -- svd N FILE      write a random N×N f32 matrix to FILE, time its singular values
//!     cargo bench --bench analysis -- tensor DIR NAME singular values of one tensor (svd and gram)

use std::time::Instant;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use weightbench::analysis::Cancel;
use weightbench::analysis::spectrum::{SpectrumMethod, singular_values, spectra};
use weightbench::analysis::stats::tensors_stats;
use weightbench::checkpoint::Checkpoint;
use weightbench::compute::StatsRequest;
use weightbench::compute::cpu::CpuBackend;

fn best_of<T>(n: usize, mut f: impl FnMut() -> Result<T>) -> Result<(f64, T)> {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..n {
        let start = Instant::now();
        let v = f()?;
        best = best.min(start.elapsed().as_secs_f64());
        last = Some(v);
    }
    Ok((best, last.context("no run")?))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let cancel = Cancel::new();
    match args.first().map(String::as_str) {
        Some("read") => {
            // The two ways to read every tensor byte, and the statistics, in turns (the speed of
            // this machine drifts between runs); the best time of each.
            let ckpt = Checkpoint::open(&args[1])?;
            let tensors: Vec<_> = ckpt.tensors().iter().collect();
            let mut best = [f64::INFINITY; 7];
            for _ in 0..10 {
                for (k, b) in best.iter_mut().enumerate() {
                    let start = Instant::now();
                    match k {
                        4 => drop(std::hint::black_box(read_words(&Checkpoint::open(&args[1])?))),
                        6 => drop(std::hint::black_box(decoded_stats(&ckpt, &cancel)?)),
                        5 => {
                            let fresh = Checkpoint::open(&args[1])?;
                            let all: Vec<_> = fresh.tensors().iter().collect();
                            drop(tensors_stats(&CpuBackend, &fresh, &all, &StatsRequest::default(), &cancel, &|_| {})?)
                        }
                        0 => drop(std::hint::black_box(read_words(&ckpt))),
                        1 => drop(std::hint::black_box(read_bytes(&ckpt))),
                        2 => drop(std::hint::black_box(moments_only(&ckpt))),
                        _ => drop(tensors_stats(
                            &CpuBackend,
                            &ckpt,
                            &tensors,
                            &StatsRequest::default(),
                            &cancel,
                            &|_| {},
                        )?),
                    }
                    *b = b.min(start.elapsed().as_secs_f64());
                }
            }
            println!(
                "{}",
                serde_json::json!({"what": "read", "bytes": ckpt.total_bytes(), "values": ckpt.total_params(),
                                   "read_words_seconds": best[0], "read_bytes_seconds": best[1],
                                   "moments_only_seconds": best[2], "stats_seconds": best[3],
                                   "fresh_read_words_seconds": best[4], "fresh_stats_seconds": best[5],
                                   "decoded_stats_seconds": best[6]})
            );
        }
        Some("stats") => {
            let ckpt = Checkpoint::open(&args[1])?;
            let tensors: Vec<_> = ckpt.tensors().iter().collect();
            let (secs, n) = best_of(9, || {
                Ok(tensors_stats(&CpuBackend, &ckpt, &tensors, &StatsRequest::default(), &cancel, &|_| {})?.len())
            })?;
            println!(
                "{}",
                serde_json::json!({"what": "stats", "seconds": secs, "tensors": n, "values": ckpt.total_params()})
            );
        }
        Some("kernels") => {
            // One thread, one tensor in memory: the two statistics kernels alone, per value.
            use weightbench::compute::{BinScale, kernels};
            let ckpt = Checkpoint::open(&args[1])?;
            let t = ckpt.require(args.get(2).context("kernels DIR NAME")?)?;
            let mut v = Vec::new();
            ckpt.decode_range(t, 0..t.numel(), &mut v)?;
            let moments = |v: &[f32]| v.chunks(4096).map(kernels::block_moments).collect::<Vec<_>>();
            let m = kernels::merge_all(&moments(&v));
            let (_, thresholds) = kernels::histogram_bins(&m, 256, BinScale::Linear);
            let bounds = kernels::sigma_bounds(&m);
            // Each vectorised version of the histogram, in turns, so drifts of the machine's
            // speed touch them alike; the best time of each.
            let isas = kernels::HistogramIsa::available();
            let mut hist = vec![f64::INFINITY; isas.len()];
            let mut total = 0;
            for _ in 0..5 {
                for (best, &isa) in hist.iter_mut().zip(&isas) {
                    let (secs, n) = best_of(5, || {
                        let mut counts = vec![0u64; 256];
                        let mut outliers = [0u64; 2];
                        for c in v.chunks(1 << 16) {
                            kernels::add_histogram_and_outliers_with(
                                isa,
                                c,
                                &thresholds,
                                BinScale::Linear,
                                &bounds,
                                &mut counts,
                                &mut outliers,
                            );
                        }
                        Ok(counts.iter().sum::<u64>())
                    })?;
                    *best = best.min(secs);
                    total = n;
                }
            }
            let (mom, _) = best_of(15, || Ok(moments(&v).len()))?;
            let per_value = |secs: f64| secs * 1e9 / v.len() as f64;
            let histogram: serde_json::Map<String, serde_json::Value> =
                isas.iter().zip(&hist).map(|(isa, &secs)| (format!("{isa:?}"), per_value(secs).into())).collect();
            println!(
                "{}",
                serde_json::json!({"what": "kernels", "tensor": t.name, "values": v.len(), "counted": total,
                                   "histogram_ns_per_value": histogram, "moments_ns_per_value": per_value(mom)})
            );
        }
        Some("patterns") => {
            // One thread: counting the bit patterns of one 8- or 16-bit tensor, per value.
            use weightbench::compute::patterns;
            let ckpt = Checkpoint::open(&args[1])?;
            let t = ckpt.require(args.get(2).context("patterns DIR NAME")?)?;
            let bits = patterns::pattern_bits(t.dtype).context("not an 8- or 16-bit type")?;
            let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
            let (secs, distinct) = pool
                .install(|| best_of(300, || Ok(patterns::count_patterns(ckpt.raw_bytes(t)?, bits, &cancel)?.len())))?;
            println!(
                "{}",
                serde_json::json!({"what": "patterns", "tensor": t.name, "values": t.numel(), "distinct": distinct,
                                   "ns_per_value": secs * 1e9 / t.numel() as f64})
            );
        }
        Some("spectra") => {
            let ckpt = Checkpoint::open(&args[1])?;
            let tensors: Vec<_> =
                ckpt.tensors().iter().filter(|t| t.shape.len() == 2 && !t.dtype.is_integer()).collect();
            let (secs, n) =
                best_of(
                    1,
                    || Ok(spectra(&CpuBackend, &ckpt, &tensors, SpectrumMethod::Auto, &cancel, &|_| {})?.len()),
                )?;
            println!("{}", serde_json::json!({"what": "spectra", "seconds": secs, "tensors": n}));
        }
        Some("svd") | Some("tensor") => {
            let (ckpt, name) = if args[0] == "svd" {
                let n: usize = args.get(1).context("svd N FILE")?.parse()?;
                let path = std::path::PathBuf::from(args.get(2).context("svd N FILE")?);
                write_random(&path, n)?;
                (Checkpoint::open(&path)?, "w".to_owned())
            } else {
                (Checkpoint::open(&args[1])?, args.get(2).context("tensor DIR NAME")?.clone())
            };
            let t = ckpt.require(&name)?;
            for method in [SpectrumMethod::Svd, SpectrumMethod::Gram] {
                let (secs, s) = best_of(1, || Ok(singular_values(&CpuBackend, &ckpt, t, method, &cancel)?.0))?;
                println!(
                    "{}",
                    serde_json::json!({"what": "singular_values", "method": format!("{method:?}").to_lowercase(),
                                       "shape": t.shape, "seconds": secs, "smax": s[0], "smin": s[s.len() - 1]})
                );
            }
        }
        _ => bail!("usage: analysis read|stats|spectra DIR | svd N FILE | tensor DIR NAME | kernels DIR NAME"),
    }
    Ok(())
}

/// Reads every tensor byte as fast as this CPU can: 64-byte words folded with XOR, all threads.
/// Bound by memory bandwidth.
fn read_words(ckpt: &Checkpoint) -> u64 {
    ckpt.tensors()
        .par_iter()
        .map(|t| {
            let (head, words, tail) = bytemuck::pod_align_to::<u8, [u64; 8]>(ckpt.raw_bytes(t).unwrap_or(&[]));
            let fold = |c: &[[u64; 8]]| {
                let mut acc = [0u64; 8];
                for w in c {
                    acc.iter_mut().zip(w).for_each(|(a, b)| *a ^= b);
                }
                acc.iter().fold(0, |x, y| x ^ y)
            };
            let rest = head.iter().chain(tail).fold(0u64, |x, &b| x ^ u64::from(b));
            words.par_chunks(1 << 12).map(fold).reduce(|| rest, |x, y| x ^ y)
        })
        .reduce(|| 0, |x, y| x ^ y)
}

/// Reads every tensor byte and sums the bytes (u8 to u64, vectorised by the compiler): bound by
/// the widening arithmetic on this machine, not by memory; the baseline of earlier records.
fn read_bytes(ckpt: &Checkpoint) -> u64 {
    ckpt.tensors()
        .par_iter()
        .map(|t| {
            ckpt.raw_bytes(t)
                .unwrap_or(&[])
                .chunks(1 << 16)
                .map(|c| c.iter().map(|&b| u64::from(b)).sum::<u64>())
                .sum::<u64>()
        })
        .sum()
}

/// The statistics of every tensor by the decode-to-f32 path (the CPU backend's path for types
/// other than 8- and 16-bit scalars), scheduled as `tensors_stats` schedules them.
fn decoded_stats(ckpt: &Checkpoint, cancel: &Cancel) -> Result<usize> {
    use weightbench::compute::cpu::{Values, stats_of};
    use weightbench::compute::kernels::MOMENT_BLOCK;
    let tensors: Vec<_> = ckpt.tensors().iter().collect();
    let done = std::sync::atomic::AtomicUsize::new(0);
    weightbench::analysis::try_for_each_tensor(&tensors, |i| -> Result<()> {
        let t = weightbench::compute::TensorRef::new(ckpt, tensors[i]);
        let values = Values::load(&t, cancel)?;
        std::hint::black_box(stats_of(&values, &StatsRequest::default(), MOMENT_BLOCK, cancel)?);
        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    })?;
    Ok(done.into_inner())
}

/// Pass 1 of the statistics alone (the moment kernel over every F32 tensor, 4096-value blocks).
fn moments_only(ckpt: &Checkpoint) -> usize {
    use weightbench::compute::kernels::block_moments;
    ckpt.tensors()
        .par_iter()
        .filter_map(|t| bytemuck::try_cast_slice::<u8, f32>(ckpt.raw_bytes(t).ok()?).ok())
        .map(|v| v.par_chunks(1 << 16).map(|c| c.chunks(4096).map(block_moments).count()).sum::<usize>())
        .sum()
}

/// An N×N matrix of uniform values in [−1, 1) from a fixed xorshift sequence, as F32.
fn write_random(path: &std::path::Path, n: usize) -> Result<()> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut bytes = Vec::with_capacity(n * n * 4);
    for _ in 0..n * n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let v = (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let header =
        serde_json::json!({"w": {"dtype": "F32", "shape": [n, n], "data_offsets": [0, bytes.len()]}}).to_string();
    let mut header = header.into_bytes();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend(bytes);
    std::fs::write(path, out)?;
    Ok(())
}
