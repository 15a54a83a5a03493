//! GPU benchmarks, for a machine with a real GPU (see `benches/gpu-device.sh`):
//!
//!     cargo bench --bench gpu -- make DIR H L MLP VOCAB KV DTYPE [tied]   write a synthetic
//!                                                 Llama-shaped checkpoint (heavy-tailed values)
//!     cargo bench --bench gpu -- copy GIB                           device-to-device copy bandwidth
//!     cargo bench --bench gpu -- stats DIR [REPS]                   whole-model stats + 256-bin histograms:
//!                                                                   GPU kernel part (data resident), upload,
//!                                                                   and the CPU path, per model
//!     cargo bench --bench gpu -- spectra DIR                        Gram spectra of every 2-D tensor, GPU vs CPU
//!
//! Prints one JSON object per line.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use weightbench::analysis::Cancel;
use weightbench::analysis::spectrum::{SpectrumMethod, spectra};
use weightbench::analysis::stats::tensor_stats;
use weightbench::checkpoint::Checkpoint;
use weightbench::compute::cpu::CpuBackend;
use weightbench::compute::gpu::GpuBackend;
use weightbench::compute::{Backend, StatsRequest};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.first().map(String::as_str) {
        Some("make") => make(&args[1..]),
        Some("copy") => copy(args.get(1).and_then(|g| g.parse().ok()).unwrap_or(1.0)),
        Some("stats") => {
            stats(args.get(1).context("stats DIR")?, args.get(2).and_then(|r| r.parse().ok()).unwrap_or(3))
        }
        Some("spectra") => spectra_bench(args.get(1).context("spectra DIR")?),
        _ => bail!("usage: gpu make|copy|stats|spectra ..."),
    }
}

fn gpu() -> Result<GpuBackend> {
    let g = GpuBackend::new(false).or_else(|_| GpuBackend::new(true))?;
    eprintln!("GPU: {}", g.provenance().device);
    Ok(g)
}

/// Synthetic weights with a heavy tail: a scaled ratio of uniforms, per-tensor seed.
fn fill(n: usize, seed: u64, out: &mut [f32]) {
    out.par_chunks_mut(1 << 16).enumerate().for_each(|(c, chunk)| {
        let mut s = (seed ^ (c as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
        for v in chunk.iter_mut() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = ((s >> 40) as f32 + 1.0) / (1u64 << 24) as f32;
            let w = ((s & 0xff_ffff) as f32 / (1u64 << 24) as f32) - 0.5;
            *v = w / u.powf(0.3) * 0.02;
        }
    });
    let _ = n;
}

fn make(a: &[String]) -> Result<()> {
    let dir = std::path::PathBuf::from(a.first().context("DIR")?);
    let num = |i: usize| -> Result<u64> { a.get(i).context("missing number")?.parse().context("number") };
    let (hidden, layers, mlp, vocab, kv) = (num(1)?, num(2)?, num(3)?, num(4)?, num(5)?);
    let bf16 = a.get(6).map(String::as_str) == Some("bf16");
    let tied = a.get(7).map(String::as_str) == Some("tied");
    let mut shapes = vec![("model.embed_tokens.weight".to_owned(), vec![vocab, hidden])];
    for l in 0..layers {
        let p = format!("model.layers.{l}.");
        shapes.push((format!("{p}input_layernorm.weight"), vec![hidden]));
        shapes.push((format!("{p}self_attn.q_proj.weight"), vec![hidden, hidden]));
        shapes.push((format!("{p}self_attn.k_proj.weight"), vec![kv, hidden]));
        shapes.push((format!("{p}self_attn.v_proj.weight"), vec![kv, hidden]));
        shapes.push((format!("{p}self_attn.o_proj.weight"), vec![hidden, hidden]));
        shapes.push((format!("{p}post_attention_layernorm.weight"), vec![hidden]));
        shapes.push((format!("{p}mlp.gate_proj.weight"), vec![mlp, hidden]));
        shapes.push((format!("{p}mlp.up_proj.weight"), vec![mlp, hidden]));
        shapes.push((format!("{p}mlp.down_proj.weight"), vec![hidden, mlp]));
    }
    shapes.push(("model.norm.weight".to_owned(), vec![hidden]));
    if !tied {
        shapes.push(("lm_head.weight".to_owned(), vec![vocab, hidden]));
    }
    let width = if bf16 { 2 } else { 4 };
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, shape) in &shapes {
        let bytes = shape.iter().product::<u64>() * width;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": if bf16 { "BF16" } else { "F32" }, "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut text = serde_json::to_vec(&serde_json::Value::Object(header))?;
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    std::fs::create_dir_all(&dir)?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(dir.join("model.safetensors"))?);
    use std::io::Write;
    file.write_all(&(text.len() as u64).to_le_bytes())?;
    file.write_all(&text)?;
    let mut params = 0u64;
    for (i, (_, shape)) in shapes.iter().enumerate() {
        let n = shape.iter().product::<u64>() as usize;
        let mut v = vec![0f32; n];
        fill(n, i as u64 + 1, &mut v);
        if bf16 {
            let b: Vec<u8> = v.par_iter().flat_map_iter(|x| half::bf16::from_f32(*x).to_le_bytes()).collect();
            file.write_all(&b)?;
        } else {
            file.write_all(bytemuck::cast_slice(&v))?;
        }
        params += n as u64;
    }
    file.flush()?;
    println!("{}", serde_json::json!({"what": "make", "params": params, "bytes": offset, "tensors": shapes.len()}));
    Ok(())
}

fn copy(gib: f64) -> Result<()> {
    let g = gpu()?;
    let ctx = g.context();
    let bytes = ((gib * (1u64 << 30) as f64) as u64).min(ctx.max_binding()) / 4 * 4;
    let a = ctx.storage(bytes)?;
    let b = ctx.storage(bytes)?;
    let reps = 10;
    let run = || -> Result<()> {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        for _ in 0..reps {
            enc.copy_buffer_to_buffer(a.get(), 0, b.get(), 0, bytes);
        }
        ctx.queue.submit([enc.finish()]);
        ctx.device.poll(wgpu::PollType::wait_indefinitely())?;
        Ok(())
    };
    run()?;
    let start = Instant::now();
    run()?;
    let secs = start.elapsed().as_secs_f64();
    let gbps = 2.0 * bytes as f64 * reps as f64 / secs / 1e9;
    println!("{}", serde_json::json!({"what": "copy", "bytes": bytes, "read_plus_write_GBps": gbps}));
    Ok(())
}

fn stats(dir: &str, reps: usize) -> Result<()> {
    let g = gpu()?;
    let ckpt = Checkpoint::open(dir)?;
    let ctx = g.context();
    let (mut kernel, mut upload, mut source_bytes, mut values) = (0f64, 0f64, 0u64, 0u64);
    for t in ckpt.tensors() {
        let raw = ckpt.raw_bytes(t)?;
        let start = Instant::now();
        let src = ctx.upload(raw)?;
        ctx.device.poll(wgpu::PollType::wait_indefinitely())?;
        upload += start.elapsed().as_secs_f64();
        g.stats_on_device(src.get(), t.dtype, t.numel(), 256)?; // warm-up: pipelines, buffers
        let start = Instant::now();
        for _ in 0..reps {
            g.stats_on_device(src.get(), t.dtype, t.numel(), 256)?;
        }
        kernel += start.elapsed().as_secs_f64() / reps as f64;
        source_bytes += raw.len() as u64;
        values += t.numel();
    }
    // Bytes the kernels move: stored bytes read and f32 written by decode, f32 read by the
    // moments pass (its second pass per block hits cache) and by the histogram pass.
    let moved = source_bytes + values * 4 * 3;
    let start = Instant::now();
    for t in ckpt.tensors() {
        tensor_stats(&CpuBackend, &ckpt, t, &StatsRequest::default(), &Cancel::new())?;
    }
    let cpu = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for t in ckpt.tensors() {
        tensor_stats(&g, &ckpt, t, &StatsRequest::default(), &Cancel::new())?;
    }
    let gpu_end_to_end = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"what": "stats", "tensors": ckpt.tensors().len(), "values": values, "source_bytes": source_bytes,
            "kernel_seconds": kernel, "kernel_moved_GBps": moved as f64 / kernel / 1e9,
            "kernel_source_GBps": source_bytes as f64 / kernel / 1e9, "upload_seconds": upload,
            "gpu_end_to_end_seconds": gpu_end_to_end, "cpu_seconds": cpu, "cpu_threads": rayon::current_num_threads()})
    );
    Ok(())
}

fn spectra_bench(dir: &str) -> Result<()> {
    let g = gpu()?;
    let ckpt = Checkpoint::open(dir)?;
    let tensors: Vec<_> = ckpt.tensors().iter().filter(|t| t.shape.len() == 2 && !t.dtype.is_integer()).collect();
    let cancel = Cancel::new();
    let time = |b: &dyn Backend| -> Result<(f64, Vec<Option<f64>>)> {
        let start = Instant::now();
        let r = spectra(b, &ckpt, &tensors, SpectrumMethod::Gram, &cancel, &|_| {})?;
        Ok((start.elapsed().as_secs_f64(), r.iter().map(|x| x.alpha).collect()))
    };
    let _ = time(&g)?; // warm-up
    let (gpu_s, ga) = time(&g)?;
    let (cpu_s, ca) = time(&CpuBackend)?;
    let worst = ga.iter().zip(&ca).filter_map(|(a, b)| Some((a.as_ref()? - b.as_ref()?).abs())).fold(0f64, f64::max);
    let gram_only = {
        let start = Instant::now();
        for t in &tensors {
            g.gram(&weightbench::compute::TensorRef::new(&ckpt, t), &cancel)?;
        }
        start.elapsed().as_secs_f64()
    };
    let cpu_gram_only = {
        let start = Instant::now();
        for t in &tensors {
            CpuBackend.gram(&weightbench::compute::TensorRef::new(&ckpt, t), &cancel)?;
        }
        start.elapsed().as_secs_f64()
    };
    println!(
        "{}",
        serde_json::json!({"what": "spectra", "matrices": tensors.len(), "gpu_seconds": gpu_s, "cpu_seconds": cpu_s,
            "ratio": cpu_s / gpu_s, "gram_gpu_seconds": gram_only, "gram_cpu_seconds": cpu_gram_only,
            "max_alpha_difference": worst, "cpu_threads": rayon::current_num_threads()})
    );
    Ok(())
}
