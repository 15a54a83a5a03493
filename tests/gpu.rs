//! Every GPU kernel against its CPU twin, on random and real data (`*_matches_cpu`), and the
//! truth of what each result says about where it was computed. Run on whatever adapter exists
//! — Mesa's lavapipe in CI; without one these tests fail unless WEIGHTBENCH_ALLOW_SKIP=gpu.

use std::sync::Arc;

use weightbench::analysis::Cancel;
use weightbench::analysis::heatmap::{Mode, heatmap};
use weightbench::analysis::spectrum::{SpectrumMethod, spectrum_report};
use weightbench::checkpoint::Checkpoint;
use weightbench::compute::cpu::CpuBackend;
use weightbench::compute::gpu::GpuBackend;
use weightbench::compute::select::{BackendChoice, SelectedBackend};
use weightbench::compute::{
    Backend, BinScale, CollectCodes, FnSource, IntSpec, SliceSource, StatsRequest, TensorRef, TileRegion, ValueSource,
    kernels,
};

use crate::fixtures::{Gguf, Spec, TempDir, demo, gpu, real_model, write_safetensors};

/// Deterministic heavy-tailed values (a Student-t-like mix) with a few special values.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|i| {
            let u = next().max(1e-12);
            let v = next() - 0.5;
            let x = (v / u.powf(0.3)) as f32 * 0.02;
            match i % 9973 {
                0 => 0.0,
                1 => f32::NAN,
                2 => f32::INFINITY,
                3 => -0.0,
                _ => x,
            }
        })
        .collect()
}

fn close(a: f64, b: f64, rel: f64, what: &str) {
    assert!((a - b).abs() <= rel * b.abs().max(1e-30), "{what}: gpu {a} vs cpu {b}");
}

/// The GPU's statistics against the CPU's: counts, extremes, edges and histogram exactly; the
/// moments to 1e-6 relative, so that switching the backend never changes a digit a user reads
/// (the reference checks hold the CPU to 1e-6 of numpy's float64).
fn assert_stats_match(gpu: &dyn Backend, t: &dyn ValueSource, req: &StatsRequest) {
    let cancel = Cancel::new();
    let g = gpu.stats(t, req, &cancel).unwrap();
    assert_eq!((g.on.backend.as_str(), &g.on.fallback), ("gpu", &None), "{}: ran on the GPU", t.name());
    let g = g.value;
    let c = CpuBackend.stats(t, req, &cancel).unwrap();
    let (gm, cm) = (g.moments, c.moments);
    let name = t.name();
    assert_eq!(
        (gm.n, gm.nan, gm.pos_inf, gm.neg_inf, gm.zeros),
        (cm.n, cm.nan, cm.pos_inf, cm.neg_inf, cm.zeros),
        "{name}: counts"
    );
    assert_eq!((gm.min, gm.max, gm.min_abs_nonzero), (cm.min, cm.max, cm.min_abs_nonzero), "{name}: extremes");
    // Within 1e-6 relative, or 1e-9 absolute near zero (as the reference checks against numpy);
    // both undefined (a constant tensor's skewness) counts as agreeing.
    let tight = |a: f64, b: f64, what: &str| {
        let same = (a.is_nan() && b.is_nan()) || (a - b).abs() <= (1e-6 * b.abs()).max(1e-9);
        assert!(same, "{name}: {what} gpu {a} vs cpu {b}");
    };
    tight(gm.mean, cm.mean, "mean");
    tight(gm.std(), cm.std(), "std");
    tight(gm.skewness(), cm.skewness(), "skewness");
    tight(gm.kurtosis(), cm.kurtosis(), "kurtosis");
    assert_eq!(g.histogram.edges, c.histogram.edges, "{name}: edges");
    assert_eq!(g.histogram.counts, c.histogram.counts, "{name}: histogram counts");
    assert_eq!(g.outliers, c.outliers, "{name}: outlier counts");
}

fn write(dir: &TempDir, specs: &[Spec]) -> Checkpoint {
    let path = dir.join("t.safetensors");
    write_safetensors(&path, specs);
    Checkpoint::open(&path).unwrap()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Random blocks of a ggml type with finite f16 scales at the given offsets.
fn random_blocks(block_bytes: usize, blocks: usize, f16_at: &[usize], seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut out = Vec::with_capacity(block_bytes * blocks);
    for _ in 0..blocks {
        let mut b: Vec<u8> = (0..block_bytes)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect();
        for &at in f16_at {
            let v = ((s % 2001) as f32 - 1000.0) * 1e-5;
            b[at..at + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
            s = s.rotate_left(7) ^ 0x9e37;
        }
        out.extend(b);
    }
    out
}

#[test]
fn decode_matches_cpu_for_every_device_decoder() {
    let Some(gpu) = gpu() else { return };
    let dir = TempDir::new();
    // Float types through safetensors, random bit patterns (NaN and Inf included).
    let raw: Vec<u8> = (0..8192u32).flat_map(|i| (i.wrapping_mul(2654435761)).to_le_bytes()).collect();
    use safetensors::Dtype as D;
    let ckpt = write(
        &dir,
        &[
            Spec::new("f32", D::F32, &[8192], raw.clone()),
            Spec::new("f16", D::F16, &[16384], raw.clone()),
            Spec::new("bf16", D::BF16, &[16384], raw.clone()),
            Spec::new("e4m3", D::F8_E4M3, &[32768], raw.clone()),
            Spec::new("e5m2", D::F8_E5M2, &[32768], raw.clone()),
        ],
    );
    // ggml blocks through GGUF: (type id, block bytes, values per block, f16 offsets).
    let kinds: [(u32, usize, usize, &[usize]); 8] = [
        (8, 34, 32, &[0]),
        (2, 18, 32, &[0]),
        (3, 20, 32, &[0, 2]),
        (6, 22, 32, &[0]),
        (7, 24, 32, &[0, 2]),
        (12, 144, 256, &[0, 2]),
        (13, 176, 256, &[0, 2]),
        (14, 210, 256, &[208]),
    ];
    let mut g = Gguf::new("llama");
    for (k, &(id, bytes, per, f16s)) in kinds.iter().enumerate() {
        g.tensor(&format!("q{id}"), &[8, (per * 4) as u64], id, random_blocks(bytes, 32, f16s, k as u64 + 7));
    }
    let gguf_path = dir.join("q.gguf");
    g.write(&gguf_path);
    let gguf = Checkpoint::open(&gguf_path).unwrap();
    for ckpt in [&ckpt, &gguf] {
        for t in ckpt.tensors() {
            assert!(weightbench::compute::gpu::decodes_on_device(t.dtype), "{}", t.dtype);
            let n = t.numel();
            let on_gpu = gpu.decode_to_vec(&TensorRef::new(ckpt, t), 0..n).unwrap();
            let on_cpu = ckpt.decode_all(t).unwrap();
            let mut mismatched = 0;
            for (a, b) in on_gpu.iter().zip(&on_cpu) {
                // Bit-identical, NaN payloads aside. Block types allow the one rounding that a
                // fused multiply-add (which WGSL permits) changes: 1 ulp.
                let same = a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
                let ulp = (a.to_bits() as i64 - b.to_bits() as i64).abs() <= 1 && t.dtype.block_elems() > 1;
                if !same && !ulp {
                    mismatched += 1;
                }
            }
            assert_eq!(mismatched, 0, "{} ({}): {mismatched} values differ", t.name, t.dtype);
        }
    }
}

#[test]
fn histogram_and_outlier_kernel_matches_cpu_exactly() {
    let Some(gpu) = gpu() else { return };
    let v = values(200_003, 1);
    let m = kernels::merge_all(&v.chunks(4096).map(kernels::block_moments).collect::<Vec<_>>());
    let bounds = [kernels::outlier_bounds(m.mean, m.std(), 3.0), kernels::outlier_bounds(m.mean, m.std(), 6.0)];
    for (bins, scale) in
        [(256, BinScale::Linear), (97, BinScale::Linear), (4080, BinScale::Linear), (128, BinScale::Log10Abs)]
    {
        let (_, t) = kernels::histogram_bins(&m, bins, scale);
        let (g_counts, g_out) = gpu.histogram_counts(&v, &t, scale, &bounds).unwrap();
        let mut c_counts = vec![0u64; bins];
        let mut c_out = [0u64; 2];
        kernels::add_histogram_and_outliers(&v, &t, scale, &bounds, &mut c_counts, &mut c_out);
        assert_eq!(g_counts, c_counts, "{bins} {scale:?} bins");
        assert_eq!(g_out, c_out);
    }
}

#[test]
fn stats_match_cpu_on_random_and_real_tensors() {
    let Some(gpu) = gpu() else { return };
    let dir = TempDir::new();
    let v = values(150_001, 2);
    let bf16: Vec<u8> = v.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect();
    let ckpt = write(
        &dir,
        &[
            Spec::new("r32", safetensors::Dtype::F32, &[150_001], f32_bytes(&v)),
            Spec::new("r16", safetensors::Dtype::BF16, &[150_001], bf16),
        ],
    );
    for t in ckpt.tensors() {
        assert_stats_match(gpu.as_ref(), &TensorRef::new(&ckpt, t), &StatsRequest::default());
        assert_stats_match(
            gpu.as_ref(),
            &TensorRef::new(&ckpt, t),
            &StatsRequest { bins: 64, scale: BinScale::Log10Abs },
        );
    }
    let demo = Checkpoint::open(demo()).unwrap();
    for name in [
        "encoder.layer.0.attention.self.query.weight",
        "embeddings.LayerNorm.weight",
        "encoder.layer.5.output.dense.weight",
        "encoder.layer.0.output.dense.bias",
    ] {
        let t = demo.require(name).unwrap();
        assert_stats_match(gpu.as_ref(), &TensorRef::new(&demo, t), &StatsRequest::default());
    }
    // The F32 original: every tensor, the small biases (one block each) included.
    if let Some(path) = real_model("all-MiniLM-L6-v2") {
        let m = Checkpoint::open(path).unwrap();
        for t in m.tensors().iter().filter(|t| t.dtype.is_float()) {
            assert_stats_match(gpu.as_ref(), &TensorRef::new(&m, t), &StatsRequest::default());
        }
    }
    // Quantized real weights, decoded on the device.
    if let Some(path) = real_model("gemma-3-270m/gemma-3-270m-q4_k_m.gguf") {
        let g = Checkpoint::open(path).unwrap();
        for name in ["blk.0.attn_output.weight", "blk.0.ffn_down.weight", "blk.0.attn_q.weight", "blk.0.attn_v.weight"]
        {
            let t = g.require(name).unwrap();
            assert_stats_match(gpu.as_ref(), &TensorRef::new(&g, t), &StatsRequest::default());
        }
    }
}

#[test]
fn values_too_large_for_f32_powers_fall_back_to_the_cpu_and_say_so() {
    let Some(gpu) = gpu() else { return };
    let v: Vec<f32> = (0..10_000).map(|i| if i % 7 == 0 { 3.0e12 } else { (i as f32).cos() }).collect();
    let src = SliceSource::vector("huge", &v);
    let ran = SelectedBackend::with_gpu(gpu).stats(&src, &StatsRequest::default(), &Cancel::new()).unwrap();
    assert_eq!(ran.on.backend, "cpu");
    assert!(ran.on.fallback.as_deref().is_some_and(|f| f.contains("too large")), "{:?}", ran.on);
    assert!(ran.value.moments.m4.is_finite() && ran.value.moments.kurtosis().is_finite());
}

#[test]
fn chunked_processing_matches_one_buffer() {
    let Some(_) = gpu() else { return };
    // A device of its own whose bindings are capped at 64 KiB: 100k values take many chunks.
    let small = GpuBackend::new(true).unwrap();
    small.context().cap_binding(64 << 10);
    let dir = TempDir::new();
    let v = values(100_000, 3);
    let w: Vec<f32> = v.iter().map(|x| if x.is_finite() { *x } else { 0.5 }).collect();
    let ckpt = write(&dir, &[Spec::f32("v", &[100_000], &v), Spec::f32("w", &[2000, 50], &w)]);
    assert_stats_match(&small, &TensorRef::new(&ckpt, ckpt.require("v").unwrap()), &StatsRequest::default());
    let t = &TensorRef::new(&ckpt, ckpt.require("w").unwrap());
    let (g, c) = (small.gram(t, &Cancel::new()).unwrap(), CpuBackend.gram(t, &Cancel::new()).unwrap());
    let max = c.values.iter().fold(0f64, |m, v| m.max(v.abs()));
    assert!(g.values.iter().zip(&c.values).all(|(a, b)| (a - b).abs() <= 1e-5 * max));
    // Too large for one buffer: channels go through in chunks of rows, on the GPU, with the
    // CPU's maxima.
    let selected = SelectedBackend::with_gpu(Arc::new(small));
    let r = selected.channels(t, 16, &Cancel::new()).unwrap();
    assert_eq!((r.on.backend.as_str(), r.on.fallback.as_deref()), ("gpu", None));
    assert_eq!(r.value.col_abs_max, CpuBackend.channels(t, 16, &Cancel::new()).unwrap().col_abs_max);
    // A tile row larger than a buffer cannot be cut: the CPU does it, and the result says so —
    // the backend that ran (the CPU, not the GPU that was asked) and why.
    let wide: Vec<f32> = (0..64 * 40_000).map(|i| (i % 97) as f32).collect();
    let wide = SliceSource::new("wide", &[64, 40_000], &wide).unwrap();
    let r = selected.channels(&wide, 16, &Cancel::new()).unwrap();
    assert_eq!(r.value.col_abs_max, CpuBackend.channels(&wide, 16, &Cancel::new()).unwrap().col_abs_max);
    assert_eq!(r.on.backend, "cpu", "the CPU did the work: {:?}", r.on);
    assert!(r.on.fallback.as_deref().is_some_and(|f| f.contains("larger than one GPU buffer")), "{:?}", r.on);
    let notices = selected.take_notices();
    assert!(notices.len() == 1 && notices[0].contains("computed on the CPU"), "{notices:?}");
    // What fits ran on the GPU and says so, with no fallback.
    let s = selected.gram(t, &Cancel::new()).unwrap();
    assert_eq!((s.on.backend.as_str(), s.on.fallback.as_deref()), ("gpu", None));
}

#[test]
fn channels_match_cpu() {
    let Some(gpu) = gpu() else { return };
    let demo = Checkpoint::open(demo()).unwrap();
    for name in ["encoder.layer.3.output.dense.weight", "embeddings.position_embeddings.weight"] {
        let t = &TensorRef::new(&demo, demo.require(name).unwrap());
        let g = gpu.channels(t, 64, &Cancel::new()).unwrap();
        let c = CpuBackend.channels(t, 64, &Cancel::new()).unwrap();
        assert_eq!(
            (g.grid_rows, g.grid_cols, g.tile_rows, g.tile_cols),
            (c.grid_rows, c.grid_cols, c.tile_rows, c.tile_cols)
        );
        assert_eq!(g.row_abs_max, c.row_abs_max, "{name}: max is exact");
        assert_eq!(g.col_abs_max, c.col_abs_max);
        assert_eq!(g.tile_abs_max, c.tile_abs_max);
        for (a, b) in g.row_l2.iter().zip(&c.row_l2).chain(g.col_l2.iter().zip(&c.col_l2)) {
            close(*a, *b, 1e-5, "L2");
        }
        for (a, b) in g.row_kurtosis.iter().zip(&c.row_kurtosis).chain(g.col_kurtosis.iter().zip(&c.col_kurtosis)) {
            assert!((a - b).abs() <= 1e-3 * (1.0 + b.abs()), "{name}: kurtosis gpu {a} vs cpu {b}");
        }
    }
}

#[test]
fn salience_tiles_match_cpu_exactly() {
    let Some(gpu) = gpu() else { return };
    let demo = Checkpoint::open(demo()).unwrap();
    let t = &TensorRef::new(&demo, demo.require("encoder.layer.3.output.dense.weight").unwrap());
    let importance: Vec<f32> = (0..1536).map(|j| ((j * 7919) % 1000) as f32 / 250.0).collect();
    let g = gpu.salience_tiles(t, &importance, 64, &Cancel::new()).unwrap();
    let c = CpuBackend.salience_tiles(t, &importance, 64, &Cancel::new()).unwrap();
    assert_eq!(g, c, "products are correctly rounded on both sides and max is exact");
}

/// Gram matrices past one binding, on a device whose bindings are capped at 64 KiB: tall and
/// wide inputs larger than a binding, outputs of several bands, and a Q8_0 matrix whose column
/// bands start inside storage blocks. Each runs on the GPU and agrees with the CPU's f64 Gram.
#[test]
fn gram_matrices_larger_than_one_buffer_on_either_side_match_cpu() {
    let Some(gpu) = gpu() else { return };
    let small = GpuBackend::new(true).unwrap();
    small.context().cap_binding(64 << 10);
    let dir = TempDir::new();
    let v: Vec<f32> = values(3000 * 150, 8).into_iter().map(|x| if x.is_finite() { x } else { -0.25 }).collect();
    let ckpt = write(
        &dir,
        &[
            Spec::f32("wide", &[50, 2000], &v[..100_000]),
            Spec::f32("tall_big_gram", &[3000, 150], &v),
            Spec::f32("wide_big_gram", &[150, 3000], &v),
        ],
    );
    let mut g = Gguf::new("llama");
    g.tensor("q8_wide", &[96, 2048], 8, random_blocks(34, 96 * 2048 / 32, &[0], 9));
    let gguf_path = dir.join("q.gguf");
    g.write(&gguf_path);
    let gguf = Checkpoint::open(&gguf_path).unwrap();
    let cases = [(&ckpt, "wide"), (&ckpt, "tall_big_gram"), (&ckpt, "wide_big_gram"), (&gguf, "q8_wide")];
    for (c, name) in cases {
        let t = &TensorRef::new(c, c.require(name).unwrap());
        let cpu = CpuBackend.gram(t, &Cancel::new()).unwrap();
        let max = cpu.values.iter().fold(0f64, |m, v| m.max(v.abs()));
        for backend in [gpu.as_ref(), &small] {
            let g = backend.gram(t, &Cancel::new()).unwrap_or_else(|e| panic!("{name} did not run on the GPU: {e}"));
            assert_eq!((g.n, g.of_columns), (cpu.n, cpu.of_columns), "{name}");
            let worst = g.values.iter().zip(&cpu.values).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
            assert!(worst <= 1e-5 * max, "{name}: Gram differs by {worst} of {max}");
        }
    }
    // Rows longer than lavapipe's loop limit go in bands of columns rather than to the CPU.
    let long: Vec<f32> = (0..4 * 70_000).map(|i| ((i * 37 % 1001) as f32 - 500.0) * 1e-3).collect();
    let src = SliceSource::new("long rows", &[4, 70_000], &long).unwrap();
    let (g, cpu) = (gpu.gram(&src, &Cancel::new()).unwrap(), CpuBackend.gram(&src, &Cancel::new()).unwrap());
    let max = cpu.values.iter().fold(0f64, |m, v| m.max(v.abs()));
    assert!(g.values.iter().zip(&cpu.values).all(|(a, b)| (a - b).abs() <= 1e-5 * max));
}

#[test]
fn gram_and_spectra_match_cpu() {
    let Some(gpu) = gpu() else { return };
    let dir = TempDir::new();
    let v: Vec<f32> = values(300 * 40, 4).into_iter().map(|x| if x.is_finite() { x } else { 0.1 }).collect();
    let ckpt = write(&dir, &[Spec::f32("tall", &[300, 40], &v), Spec::f32("wide", &[40, 300], &v)]);
    let demo = Checkpoint::open(demo()).unwrap();
    let cases = [
        (&ckpt, "tall"),
        (&ckpt, "wide"),
        (&demo, "encoder.layer.1.attention.self.key.weight"),
        (&demo, "encoder.layer.1.intermediate.dense.weight"),
    ];
    for (c, name) in cases {
        let t = c.require(name).unwrap();
        let r = &TensorRef::new(c, t);
        let (g, cpu) = (gpu.gram(r, &Cancel::new()).unwrap(), CpuBackend.gram(r, &Cancel::new()).unwrap());
        assert_eq!((g.n, g.of_columns), (cpu.n, cpu.of_columns));
        let max = cpu.values.iter().fold(0f64, |m, v| m.max(v.abs()));
        let worst = g.values.iter().zip(&cpu.values).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
        assert!(worst <= 1e-5 * max, "{name}: Gram differs by {worst} of {max}");
        let sg = spectrum_report(gpu.as_ref(), c, t, SpectrumMethod::Gram, &Cancel::new()).unwrap();
        let sc = spectrum_report(&CpuBackend, c, t, SpectrumMethod::Gram, &Cancel::new()).unwrap();
        assert_eq!((sg.computed.backend.as_str(), sc.computed.backend.as_str()), ("gpu", "cpu"));
        let smax = sc.singular_values[0];
        for (a, b) in sg.singular_values.iter().zip(&sc.singular_values).filter(|(_, b)| **b >= 1e-2 * smax) {
            close(*a, *b, 1e-4, "singular value");
        }
        // Both fit a power law (every matrix here has more than 8 eigenvalues), and agree.
        let (a, b) = (sg.alpha.expect("gpu alpha"), sc.alpha.expect("cpu alpha"));
        assert!((a - b).abs() < 0.01, "{name}: alpha {a} vs {b}");
    }
}

#[test]
fn integer_quantization_matches_cpu_exactly_and_streams_in_order() {
    let Some(gpu) = gpu() else { return };
    let dir = TempDir::new();
    let v = values(64 * 256, 5);
    let ckpt = write(&dir, &[Spec::f32("w", &[64, 256], &v)]);
    let demo = Checkpoint::open(demo()).unwrap();
    let cases = [(&ckpt, "w"), (&demo, "encoder.layer.2.attention.output.dense.weight")];
    for (c, name) in cases {
        let t = &TensorRef::new(c, c.require(name).unwrap());
        for spec in [
            IntSpec::symmetric(4, 32),
            IntSpec { asym: true, ..IntSpec::symmetric(8, 128) },
            IntSpec { arith: weightbench::codec::int::Arith::Bf16, ..IntSpec::symmetric(3, 64) },
            IntSpec { asym: true, arith: weightbench::codec::int::Arith::F16, ..IntSpec::symmetric(4, 128) },
        ] {
            let (mut g_sink, mut c_sink) = (CollectCodes::default(), CollectCodes::default());
            let g = gpu.quantize_int(t, &spec, None, &mut g_sink, &Cancel::new()).unwrap();
            let cpu = CpuBackend.quantize_int(t, &spec, None, &mut c_sink, &Cancel::new()).unwrap();
            assert_eq!(g_sink.params, c_sink.params, "{name} {spec:?}: scales and zero points");
            assert_eq!(g_sink.codes, c_sink.codes, "{name} {spec:?}: codes");
            assert_eq!(c_sink.codes.len() as u64, t.numel());
            assert_eq!((g.values, g.max_abs_err), (cpu.values, cpu.max_abs_err), "{name} {spec:?}");
            close(g.sq_err, cpu.sq_err, 1e-5, "squared error");
            close(g.signal, cpu.signal, 1e-5, "signal");
            // Weighted by an importance per column, on both.
            let imp: Vec<f32> = (0..t.matrix_shape().1).map(|j| 1.0 + (j % 7) as f32).collect();
            let gw = gpu.quantize_int(t, &spec, Some(&imp), &mut CollectCodes::default(), &Cancel::new()).unwrap();
            let cw =
                CpuBackend.quantize_int(t, &spec, Some(&imp), &mut CollectCodes::default(), &Cancel::new()).unwrap();
            close(gw.weighted_sq_err, cw.weighted_sq_err, 1e-5, "weighted squared error");
            assert!(cw.weighted_sq_err > cw.sq_err, "importance ≥ 1 weighs every error up");
        }
    }
    let bad = gpu.quantize_int(
        &TensorRef::new(&ckpt, ckpt.require("w").unwrap()),
        &IntSpec::symmetric(4, 100),
        None,
        &mut CollectCodes::default(),
        &Cancel::new(),
    );
    assert!(bad.is_err(), "groups must divide the rows");
}

#[test]
fn kernels_take_values_from_memory_and_from_a_forward_only_stream() {
    let Some(gpu) = gpu() else { return };
    // A residual that exists only in memory, and the same values produced on demand by a
    // stream that refuses to go backwards (as activations of a forward pass would be).
    let v: Vec<f32> = values(96 * 128, 6).into_iter().map(|x| if x.is_finite() { x } else { 0.25 }).collect();
    let slice = SliceSource::new("residual", &[96, 128], &v).unwrap();
    let next = std::sync::Mutex::new(0u64);
    let stream = FnSource::new("stream", &[96, 128], 1, |range: std::ops::Range<u64>, out: &mut Vec<f32>| {
        let mut at = next.lock().unwrap();
        assert!(range.start >= *at, "a one-pass kernel read {range:?} after {at}");
        *at = range.end;
        out.clear();
        out.extend_from_slice(&v[range.start as usize..range.end as usize]);
        Ok(())
    });
    let spec = IntSpec::symmetric(4, 32);
    let mut from_slice = CollectCodes::default();
    let mut from_stream = CollectCodes::default();
    let mut on_gpu = CollectCodes::default();
    let a = CpuBackend.quantize_int(&slice, &spec, None, &mut from_slice, &Cancel::new()).unwrap();
    let b = CpuBackend.quantize_int(&stream, &spec, None, &mut from_stream, &Cancel::new()).unwrap();
    let g = gpu.quantize_int(&slice, &spec, None, &mut on_gpu, &Cancel::new()).unwrap();
    assert_eq!(from_slice, from_stream);
    assert_eq!(from_slice, on_gpu);
    assert_eq!((a.sq_err, a.values), (b.sq_err, b.values));
    assert_eq!(g.values, a.values);
    // The other kernels read the slice too.
    assert_stats_match(gpu.as_ref(), &slice, &StatsRequest::default());
    let (gg, cg) = (gpu.gram(&slice, &Cancel::new()).unwrap(), CpuBackend.gram(&slice, &Cancel::new()).unwrap());
    let max = cg.values.iter().fold(0f64, |m, x| m.max(x.abs()));
    assert!(gg.values.iter().zip(&cg.values).all(|(x, y)| (x - y).abs() <= 1e-5 * max));
    assert_eq!(gpu.values(&slice, &Cancel::new()).unwrap(), v);
}

#[test]
fn a_fallback_starts_the_sink_over_and_says_where_the_codes_came_from() {
    let Some(_) = gpu() else { return };
    // A device of its own with small buffers, so the tensor takes many chunks; the source loses
    // "the device" while the second chunk is read, after the first chunk's codes were delivered.
    let small = GpuBackend::new(true).unwrap();
    small.context().cap_binding(64 << 10);
    let v: Vec<f32> = (0..64 * 4096).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    let reads = std::sync::atomic::AtomicUsize::new(0);
    let src = FnSource::new("flaky", &[64, 4096], 1, |range: std::ops::Range<u64>, out: &mut Vec<f32>| {
        if reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            return Err(weightbench::compute::ComputeError::Gpu("device lost (simulated)".into()));
        }
        out.clear();
        out.extend_from_slice(&v[range.start as usize..range.end as usize]);
        Ok(())
    });
    let selected = SelectedBackend::with_gpu(Arc::new(small));
    let spec = IntSpec::symmetric(8, 128);
    let mut sink = CollectCodes::default();
    let ran = selected.quantize_int(&src, &spec, None, &mut sink, &Cancel::new()).unwrap();
    assert_eq!(ran.on.backend, "cpu");
    assert!(ran.on.fallback.as_deref().is_some_and(|f| f.contains("device lost")), "{:?}", ran.on);
    let mut reference = CollectCodes::default();
    let slice = SliceSource::new("v", &[64, 4096], &v).unwrap();
    CpuBackend.quantize_int(&slice, &spec, None, &mut reference, &Cancel::new()).unwrap();
    assert_eq!(sink, reference, "nothing of the failed attempt is left in the sink");
}

#[test]
fn each_choice_runs_where_it_says() {
    let Some(_) = gpu() else { return };
    let v: Vec<f32> = (0..5000).map(|i| (i as f32).sin()).collect();
    let src = SliceSource::vector("v", &v);
    let run = |choice| SelectedBackend::new(choice).stats(&src, &StatsRequest::default(), &Cancel::new()).unwrap().on;
    let cpu = run(BackendChoice::Cpu);
    assert_eq!((cpu.backend.as_str(), cpu.fallback.as_deref()), ("cpu", None));
    // `gpu` takes any adapter (lavapipe here): the GPU ran, nothing fell back.
    let gpu = run(BackendChoice::Gpu);
    assert_eq!((gpu.backend.as_str(), gpu.fallback.as_deref()), ("gpu", None));
    assert_ne!(gpu.device, cpu.device);
    // `auto` takes only hardware adapters: the GPU where one exists, else the CPU — which is
    // then the choice itself, not a fallback.
    let hardware = GpuBackend::shared(false).is_ok();
    let auto = run(BackendChoice::Auto);
    assert_eq!(auto.backend, if hardware { "gpu" } else { "cpu" });
    assert_eq!(auto.fallback, None);
    // Nothing is started before a kernel needs it.
    let lazy = SelectedBackend::new(BackendChoice::Gpu);
    assert!(lazy.label_now().contains("starts with the first computation"), "{}", lazy.label_now());
    assert!(lazy.start().contains("gpu"), "{}", lazy.label_now());
}

/// Collects a block kernel's bytes in order.
#[derive(Default)]
struct Bytes(Vec<u8>);

impl weightbench::compute::ByteSink for Bytes {
    fn begin(&mut self, bytes: u64) -> Result<(), weightbench::compute::ComputeError> {
        self.0.clear();
        self.0.reserve(bytes as usize);
        Ok(())
    }
    fn put(&mut self, _first: u64, _part: usize, bytes: &[u8]) -> Result<(), weightbench::compute::ComputeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

#[test]
fn legacy_ggml_blocks_from_the_gpu_are_the_cpus_bytes() {
    use weightbench::codec::DType;
    let Some(gpu) = gpu() else { return };
    let fixture = Checkpoint::open(crate::fixtures::data("ggml_encode.safetensors")).unwrap();
    let demo = Checkpoint::open(demo()).unwrap();
    let dir = TempDir::new();
    // Heavy tails, exact ties, zero and constant rows, positive-only rows.
    let mut v = values(96 * 256, 11);
    v.iter_mut().for_each(|x| *x = if x.is_finite() { *x } else { 0.0 });
    v[256..512].fill(0.0);
    v[512..768].fill(0.75);
    v[768..1024].iter_mut().enumerate().for_each(|(i, x)| *x = (i % 9) as f32 * 0.125);
    let ckpt = write(&dir, &[Spec::f32("w", &[96, 256], &v)]);
    let cases = [
        (&ckpt, "w"),
        (&fixture, "input.synthetic"),
        (&fixture, "input.minilm"),
        (&demo, "encoder.layer.3.intermediate.dense.weight"),
    ];
    for (c, name) in cases {
        let t = &TensorRef::new(c, c.require(name).unwrap());
        let imp: Vec<f32> = (0..t.matrix_shape().1).map(|j| 0.5 + (j % 5) as f32).collect();
        for dtype in [DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1] {
            let (mut g_sink, mut c_sink) = (Bytes::default(), Bytes::default());
            let g = gpu.encode_ggml(t, dtype, None, Some(&imp), &mut g_sink, &Cancel::new()).unwrap();
            let c = CpuBackend.encode_ggml(t, dtype, None, Some(&imp), &mut c_sink, &Cancel::new()).unwrap();
            let bb = dtype.block_bytes();
            let differ = g_sink.0.chunks(bb).zip(c_sink.0.chunks(bb)).filter(|(a, b)| a != b).count();
            assert_eq!(g_sink.0.len(), c_sink.0.len(), "{name} {dtype}");
            assert_eq!(differ, 0, "{name} {dtype}: {differ} blocks differ");
            assert_eq!((g.values, g.max_abs_err), (c.values, c.max_abs_err), "{name} {dtype}");
            close(g.sq_err, c.sq_err, 1e-5, "squared error");
            close(g.weighted_sq_err, c.weighted_sq_err, 1e-5, "weighted squared error");
        }
    }
    // The searches stay on the CPU, and say so.
    let t = &TensorRef::new(&ckpt, ckpt.require("w").unwrap());
    for (dtype, search) in [(DType::Q4K, None), (DType::Q4_0, Some(vec![1.0f32; 256]))] {
        let err =
            gpu.encode_ggml(t, dtype, search.as_deref(), None, &mut Bytes::default(), &Cancel::new()).unwrap_err();
        assert!(matches!(err, weightbench::compute::ComputeError::NotOnGpu(_)), "{err}");
    }
}

#[test]
fn abs_max_on_the_gpu_is_the_cpus_with_short_groups_and_non_finite_values() {
    let Some(gpu) = gpu() else { return };
    let mut v = values(5000, 21);
    v[4999] = -7.5; // in the short last group
    v[17] = f32::INFINITY;
    let src = SliceSource::vector("v", &v);
    let c = CpuBackend.abs_max(&src, &Cancel::new()).unwrap();
    assert_eq!(c, 7.5);
    assert_eq!(gpu.abs_max(&src, &Cancel::new()).unwrap(), c);
}

#[test]
fn the_papers_methods_run_their_base_quantizer_on_the_gpu_and_give_the_cpus_bytes() {
    use weightbench::quant::{CollectBytes, Job, Scheme, encode};
    let Some(gpu) = gpu() else { return };
    let demo = Checkpoint::open(demo()).unwrap();
    let t = &TensorRef::new(&demo, demo.require("encoder.layer.3.attention.self.query.weight").unwrap());
    let imp: Vec<f32> =
        (0..t.matrix_shape().1).map(|j| if j % 37 == 0 { 50.0 } else { 0.5 + (j % 5) as f32 }).collect();
    for scheme in ["int4_g128+awq", "q4_0+awq", "int4_g64+slim", "int4_ch+pow"] {
        let s: Scheme = scheme.parse().unwrap();
        let job = Job {
            src: t,
            dtype: t.tensor.dtype,
            stored_bytes: t.tensor.bytes,
            importance: Some(&imp),
            search: None,
            hessian: None,
            compare: true,
        };
        let (mut gs, mut cs) = (CollectBytes::default(), CollectBytes::default());
        let g = encode(gpu.as_ref(), &job, &s, &mut gs, None, &Cancel::new()).unwrap();
        let c = encode(&CpuBackend, &job, &s, &mut cs, None, &Cancel::new()).unwrap();
        // The base quantizer ran on the GPU, the search around it on the CPU.
        assert_eq!(g.on.backend, "cpu+gpu", "{scheme}: {:?}", g.on);
        assert_eq!(gs, cs, "{scheme}: the same parts and bytes");
        let (gm, cm) = (g.method.unwrap(), c.method.unwrap());
        assert_eq!(gm.value, cm.value, "{scheme}: the same parameter chosen");
        close(g.error.weighted_sq_err, c.error.weighted_sq_err, 1e-9, scheme);
    }
}

/// The region kernel's tiles against the CPU's: maxima, extremes (sign and the first of equal
/// magnitudes), salience and counts bit for bit; the sums to 1e-9 (f64 against compensated f32).
fn assert_region_tiles_match(gpu: &dyn Backend, t: &dyn ValueSource, region: &TileRegion, importance: Option<&[f32]>) {
    let cancel = Cancel::new();
    let g = gpu.region_tiles(t, region, importance, &cancel).unwrap();
    assert_eq!((g.on.backend.as_str(), g.on.fallback.as_deref()), ("gpu", None), "{}: ran on the GPU", t.name());
    let c = CpuBackend.region_tiles(t, region, importance, &cancel).unwrap();
    assert_eq!(g.value.len(), region.grid_rows() * region.grid_cols());
    assert_eq!(g.value.len(), c.len());
    for (k, (a, b)) in g.value.iter().zip(&c).enumerate() {
        let what = format!("{} {region:?} tile {k}", t.name());
        assert_eq!(
            (a.max_abs.to_bits(), a.extreme.to_bits(), a.salience.to_bits(), a.count, a.non_finite),
            (b.max_abs.to_bits(), b.extreme.to_bits(), b.salience.to_bits(), b.count, b.non_finite),
            "{what}: {a:?} vs {b:?}"
        );
        let l1_bound = (b.sum_sq * b.count as f64).sqrt();
        assert!((a.sum - b.sum).abs() <= 1e-9 * l1_bound, "{what}: sum {} vs {}", a.sum, b.sum);
        assert!((a.sum_sq - b.sum_sq).abs() <= 1e-9 * b.sum_sq, "{what}: sum of squares {} vs {}", a.sum_sq, b.sum_sq);
    }
}

#[test]
fn region_tiles_match_cpu_at_every_level_and_across_chunks() {
    let Some(gpu) = gpu() else { return };
    let dir = TempDir::new();
    let (rows, cols) = (517, 203);
    let mut v = values(rows * cols, 11);
    // Ties of magnitude with opposite signs in one tile: the first one met is the extreme.
    v[5 * cols + 3] = 0.75;
    v[6 * cols + 2] = -0.75;
    let h: Vec<half::f16> = v.iter().map(|x| half::f16::from_f32(*x)).collect();
    use safetensors::Dtype as D;
    let ckpt = write(
        &dir,
        &[
            Spec::f32("w", &[rows, cols], &v),
            Spec::new("h", D::F16, &[rows, cols], h.iter().flat_map(|x| x.to_le_bytes()).collect()),
        ],
    );
    let mut g = Gguf::new("llama");
    g.tensor("q8", &[96, 64], 8, random_blocks(34, 64 * 96 / 32, &[0], 5));
    let gguf_path = dir.join("q.gguf");
    g.write(&gguf_path);
    let gguf = Checkpoint::open(&gguf_path).unwrap();
    let importance: Vec<f32> = (0..cols).map(|j| ((j * 7919) % 1000) as f32 / 250.0 - 1.0).collect();
    // A device of its own with 64 KiB bindings: a region's rows take many chunks, which start
    // and end inside tiles.
    let small = GpuBackend::new(true).unwrap();
    small.context().cap_binding(64 << 10);
    let regions = [
        TileRegion { rows: 0..rows, cols: 0..cols, tile_rows: 9, tile_cols: 4 },
        TileRegion { rows: 13..500, cols: 7..190, tile_rows: 10, tile_cols: 11 },
        TileRegion { rows: 100..110, cols: 50..61, tile_rows: 1, tile_cols: 1 },
        TileRegion { rows: 0..rows, cols: 0..cols, tile_rows: rows, tile_cols: cols },
    ];
    for name in ["w", "h"] {
        let t = &TensorRef::new(&ckpt, ckpt.require(name).unwrap());
        for region in &regions {
            for backend in [gpu.as_ref(), &small] {
                assert_region_tiles_match(backend, t, region, Some(&importance));
                assert_region_tiles_match(backend, t, region, None);
            }
        }
    }
    let t = &TensorRef::new(&gguf, gguf.require("q8").unwrap());
    for region in [
        TileRegion { rows: 0..96, cols: 0..64, tile_rows: 7, tile_cols: 5 },
        TileRegion { rows: 30..31, cols: 33..64, tile_rows: 1, tile_cols: 1 },
    ] {
        assert_region_tiles_match(&small, t, &region, None);
    }
    // Through the heatmap: every mode on the GPU is the CPU's (mean and rms to 1e-6), and says
    // where it ran.
    let info = ckpt.require("w").unwrap();
    let cancel = Cancel::new();
    for mode in [Mode::Absmax, Mode::Mean, Mode::Extreme, Mode::Rms, Mode::Salience] {
        let on_gpu =
            heatmap(gpu.as_ref(), &ckpt, info, 3..rows, 1..cols, (40, 30), mode, Some(&importance), &cancel).unwrap();
        let on_cpu =
            heatmap(&CpuBackend, &ckpt, info, 3..rows, 1..cols, (40, 30), mode, Some(&importance), &cancel).unwrap();
        assert_eq!(on_gpu.computed.backend, "gpu");
        for (a, b) in
            on_gpu.values.iter().chain(&on_gpu.row_profile).zip(on_cpu.values.iter().chain(&on_cpu.row_profile))
        {
            if matches!(mode, Mode::Mean | Mode::Rms) {
                assert!((a - b).abs() <= 1e-6 * b.abs().max(1e-3), "{mode:?}: {a} vs {b}");
            } else {
                assert_eq!(a.to_bits(), b.to_bits(), "{mode:?}");
            }
        }
        assert_eq!(on_gpu.non_finite, on_cpu.non_finite);
    }
}

/// Kernels whose invocations loop once per row give the CPU's results on a tall matrix too:
/// lavapipe ends an invocation after 65535 loop iterations, so there they run in shorter
/// chunks or on the CPU, and say so.
#[test]
fn tall_matrices_past_the_software_loop_limit_match_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let (rows, cols) = (70_000, 3);
    let v: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 1013) as f32 / 1013.0 - 0.5).collect();
    let src = SliceSource::new("tall", &[rows as u64, cols as u64], &v).unwrap();
    let cancel = Cancel::new();
    let selected = SelectedBackend::with_gpu(gpu.clone());
    let ch = selected.channels(&src, 4, &cancel).unwrap();
    let cpu = CpuBackend.channels(&src, 4, &cancel).unwrap();
    assert_eq!(ch.value.col_abs_max, cpu.col_abs_max);
    assert_eq!(ch.value.tile_abs_max, cpu.tile_abs_max);
    // The columns' loops run over chunks of rows short enough for lavapipe: the GPU did it.
    assert_eq!((ch.on.backend.as_str(), ch.on.fallback.as_deref()), ("gpu", None));
    let g = selected.gram(&src, &cancel).unwrap();
    assert_eq!((g.on.backend.as_str(), g.on.fallback.as_deref()), ("gpu", None));
    let c = CpuBackend.gram(&src, &cancel).unwrap();
    let max = c.values.iter().fold(0f64, |m, v| m.max(v.abs()));
    // 70k rows of f32 products (the shader's Kahan steps are not protected from the compiler's
    // reassociation, unlike the moments'): 1e-4 of the largest entry, where a chunk cut short
    // by the loop limit would miss a tenth of the rows.
    for (a, b) in g.value.values.iter().zip(&c.values) {
        assert!((a - b).abs() <= 1e-4 * max, "gram {a} vs {b}");
    }
    let importance = [1.0f32, 2.0, 0.5];
    let s = selected.salience_tiles(&src, &importance, 2, &cancel).unwrap();
    assert_eq!(s.value, CpuBackend.salience_tiles(&src, &importance, 2, &cancel).unwrap());
}

/// A device lost in the middle of a job — the real thing, wgpu's `Device::destroy`, as a driver
/// reset does it, while the third chunk is read: the job finishes on the CPU with the CPU's own
/// result, says why once, and later jobs go to the CPU straight away, saying so.
#[test]
fn a_device_lost_midway_finishes_on_the_cpu_with_a_notice() {
    let Some(_) = gpu() else { return };
    let own = Arc::new(GpuBackend::new(true).unwrap());
    own.context().cap_binding(64 << 10);
    let v: Vec<f32> = (0..200_000).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    let reads = std::sync::atomic::AtomicUsize::new(0);
    let device = own.clone();
    let src = FnSource::new("w", &[200_000], 1, |range: std::ops::Range<u64>, out: &mut Vec<f32>| {
        if reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 2 {
            device.context().destroy();
        }
        out.clear();
        out.extend_from_slice(&v[range.start as usize..range.end as usize]);
        Ok(())
    });
    let selected = SelectedBackend::with_gpu(own.clone());
    let request = StatsRequest::default();
    let ran = selected.stats(&src, &request, &Cancel::new()).unwrap();
    assert!(reads.load(std::sync::atomic::Ordering::SeqCst) > 3, "the GPU had begun");
    let cpu = CpuBackend.stats(&SliceSource::vector("w", &v), &request, &Cancel::new()).unwrap();
    assert_eq!(ran.value, cpu, "nothing of the GPU's part is left in the result");
    assert_eq!(ran.on.backend, "cpu");
    assert!(ran.on.fallback.as_deref().is_some_and(|f| f.contains("lost")), "{:?}", ran.on);
    let notices = selected.take_notices();
    assert!(
        notices.len() == 1 && notices[0].contains("computed on the CPU") && notices[0].contains("lost"),
        "{notices:?}"
    );
    // The next job does not try the dead device again: the CPU, with the reason, no new notice.
    let again = selected.gram(&SliceSource::new("m", &[100, 20], &v[..2000]).unwrap(), &Cancel::new()).unwrap();
    assert_eq!(again.on.backend, "cpu");
    assert!(again.on.fallback.as_deref().is_some_and(|f| f.contains("lost")), "{:?}", again.on);
    assert!(selected.take_notices().is_empty());
}

/// An allocation the device refuses (out of memory, as when other processes hold the GPU's
/// memory): the job finishes on the CPU with the CPU's result and a notice; the device itself
/// is fine, so once memory is free again the next job runs on it.
#[test]
fn an_allocation_that_fails_finishes_on_the_cpu_with_a_notice() {
    let Some(_) = gpu() else { return };
    let own = Arc::new(GpuBackend::new(true).unwrap());
    own.context().cap_binding(64 << 10);
    own.context().fail_allocations_beyond(32 << 10);
    let v: Vec<f32> = (0..64 * 1024).map(|i| ((i * 31) % 977) as f32 / 977.0 - 0.5).collect();
    let src = SliceSource::new("m", &[64, 1024], &v).unwrap();
    let spec = IntSpec::symmetric(4, 128);
    let selected = SelectedBackend::with_gpu(own.clone());
    let mut sink = CollectCodes::default();
    let ran = selected.quantize_int(&src, &spec, None, &mut sink, &Cancel::new()).unwrap();
    assert_eq!(ran.on.backend, "cpu");
    assert!(ran.on.fallback.as_deref().is_some_and(|f| f.contains("out of memory")), "{:?}", ran.on);
    let notices = selected.take_notices();
    assert!(notices.len() == 1 && notices[0].contains("out of memory"), "{notices:?}");
    let mut reference = CollectCodes::default();
    CpuBackend.quantize_int(&src, &spec, None, &mut reference, &Cancel::new()).unwrap();
    assert_eq!(sink, reference);
    // Memory free again: the GPU takes the next job, and its codes are the CPU's.
    own.context().fail_allocations_beyond(u64::MAX);
    let mut on_gpu = CollectCodes::default();
    let ran = selected.quantize_int(&src, &spec, None, &mut on_gpu, &Cancel::new()).unwrap();
    assert_eq!((ran.on.backend.as_str(), ran.on.fallback.as_deref()), ("gpu", None));
    assert_eq!(on_gpu, reference);
}

/// Channel statistics and salience of a matrix past a buffer (a 128k × 16k embedding is 8 GiB of f32; here
/// bindings capped at 64 KiB cut a 2000 × 96 matrix into 12 chunks of tile rows): the same
/// numbers, bit for bit, as one pass over the whole matrix on the same device, and the CPU's
/// within float rounding.
#[test]
fn channels_past_one_buffer_are_chunked_with_the_result_of_one_pass() {
    let Some(gpu) = gpu() else { return };
    let (rows, cols) = (2000, 96);
    let v: Vec<f32> = (0..rows * cols)
        .map(|i| {
            if i % 9973 == 0 { f32::NAN } else { ((i * 7919) % 1013) as f32 / 1013.0 - 0.4 + (i / cols) as f32 * 1e-4 }
        })
        .collect();
    let src = SliceSource::new("emb", &[rows as u64, cols as u64], &v).unwrap();
    let cancel = Cancel::new();
    let whole = gpu.channels(&src, 64, &cancel).unwrap();
    let small = GpuBackend::new(true).unwrap();
    small.context().cap_binding(64 << 10);
    let chunked = small.channels(&src, 64, &cancel).unwrap();
    assert_eq!(chunked.row_abs_max, whole.row_abs_max);
    assert_eq!(chunked.tile_abs_max, whole.tile_abs_max);
    assert_eq!(chunked.col_abs_max, whole.col_abs_max);
    for (a, b) in [
        (&chunked.col_l2, &whole.col_l2),
        (&chunked.col_kurtosis, &whole.col_kurtosis),
        (&chunked.row_kurtosis, &whole.row_kurtosis),
    ] {
        assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())));
    }
    let cpu = CpuBackend.channels(&src, 64, &cancel).unwrap();
    assert_eq!(chunked.col_abs_max, cpu.col_abs_max);
    assert_eq!(chunked.tile_abs_max, cpu.tile_abs_max);
    for (a, b) in chunked.col_l2.iter().zip(&cpu.col_l2) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "column L2 {a} vs {b}");
    }
    for (a, b) in chunked.col_kurtosis.iter().zip(&cpu.col_kurtosis) {
        assert!((a - b).abs() <= 1e-3 * (1.0 + b.abs()), "column kurtosis {a} vs {b}");
    }
    // The salience map goes through in the same chunks, with the CPU's maxima.
    let importance: Vec<f32> = (0..cols).map(|j| 1.0 + j as f32 * 0.01).collect();
    let salience = small.salience_tiles(&src, &importance, 64, &cancel).unwrap();
    assert_eq!(salience, CpuBackend.salience_tiles(&src, &importance, 64, &cancel).unwrap());
}
