//! Analysis on constructed data with known answers, and on the real demo model.

use weightbench::analysis::channels::channel_report;
use weightbench::analysis::spectrum::{SpectrumMethod, singular_values, spectrum_report};
use weightbench::analysis::stats::tensor_stats;
use weightbench::analysis::{AnalysisError, Cancel};
use weightbench::checkpoint::Checkpoint;
use weightbench::compute::cpu::CpuBackend;
use weightbench::compute::{BinScale, StatsRequest};

use crate::fixtures::{Spec, TempDir, demo, write_safetensors};

/// A Householder reflection I − 2vvᵀ/vᵀv, an orthogonal n×n matrix (row-major).
fn householder(n: usize, seed: u64) -> Vec<f64> {
    let v: Vec<f64> =
        (0..n).map(|i| (((i as u64 + 1) * (seed * 2654435761 + 97)) % 1009) as f64 / 1009.0 - 0.5).collect();
    let vv: f64 = v.iter().map(|x| x * x).sum();
    let mut h = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            h[i * n + j] = f64::from(u8::from(i == j)) - 2.0 * v[i] * v[j] / vv;
        }
    }
    h
}

/// W = U[:, :k] diag(s) Vᵀ for orthogonal U (m×m) and V (n×n), k = n ≤ m.
fn matrix_with_singular_values(m: usize, s: &[f64]) -> Vec<f32> {
    let n = s.len();
    let (u, v) = (householder(m, 3), householder(n, 7));
    let mut w = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            w[i * n + j] = (0..n).map(|k| u[i * m + k] * s[k] * v[j * n + k]).sum::<f64>() as f32;
        }
    }
    w
}

fn open_one(dir: &TempDir, specs: &[Spec]) -> Checkpoint {
    let path = dir.join("m.safetensors");
    write_safetensors(&path, specs);
    Checkpoint::open(&path).unwrap()
}

#[test]
fn singular_values_of_a_constructed_matrix_by_svd_and_by_gram() {
    let s: Vec<f64> = (0..40).map(|i| 10.0 * 0.9f64.powi(i)).collect();
    let w = matrix_with_singular_values(300, &s);
    let dir = TempDir::new();
    let ckpt = open_one(&dir, &[Spec::f32("w", &[300, 40], &w)]);
    let t = ckpt.require("w").unwrap();
    for method in [SpectrumMethod::Svd, SpectrumMethod::Gram] {
        let (got, used) = singular_values(&CpuBackend, &ckpt, t, method, &Cancel::new()).unwrap();
        assert_eq!(used, method);
        assert_eq!(got.len(), 40);
        for (g, e) in got.iter().zip(&s) {
            // The matrix is stored as f32: its singular values move by about 1e-7·smax.
            assert!((g - e).abs() < 1e-5 * s[0], "{method:?}: {g} vs {e}");
        }
    }
    let r = spectrum_report(&CpuBackend, &ckpt, t, SpectrumMethod::Auto, &Cancel::new()).unwrap();
    assert_eq!((r.method, r.rank), (SpectrumMethod::Gram, 40), "auto takes the Gram route");
    let evals: Vec<f64> = s.iter().map(|v| v * v).collect();
    let sum: f64 = evals.iter().sum();
    assert!((r.log_norm - sum.log10()).abs() < 1e-6);
    assert!((r.log_spectral_norm - 2.0).abs() < 1e-6);
    assert!((r.stable_rank - sum / 100.0).abs() < 1e-5);
    let alpha = r.alpha.unwrap();
    assert!((r.alpha_weighted.unwrap() - alpha * r.log_spectral_norm).abs() < 1e-12);
    assert_eq!(r.num_pl_spikes.unwrap(), evals.iter().filter(|&&l| l >= r.xmin.unwrap()).count());
}

#[test]
fn rank_of_an_exactly_rank_two_matrix() {
    // a bᵀ + c dᵀ with small integers: exact in f32, rank 2 by both methods.
    let (m, n) = (300usize, 50usize);
    let w: Vec<f32> = (0..m * n)
        .map(|k| {
            let (i, j) = ((k / n) as f32, (k % n) as f32);
            (i % 7.0 - 3.0) * (j % 5.0 + 1.0) + (i % 3.0) * (j % 4.0 - 2.0)
        })
        .collect();
    let dir = TempDir::new();
    let ckpt = open_one(&dir, &[Spec::f32("w", &[m, n], &w)]);
    for method in [SpectrumMethod::Svd, SpectrumMethod::Gram] {
        let r = spectrum_report(&CpuBackend, &ckpt, ckpt.require("w").unwrap(), method, &Cancel::new()).unwrap();
        assert_eq!(r.rank, 2, "{method:?}");
    }
}

#[test]
fn statistics_of_known_values() {
    // 500 × {−1, +1}, one 100, zeros, NaN and infinities.
    let mut v: Vec<f32> = (0..1000).map(|i| if i % 2 == 0 { -1.0 } else { 1.0 }).collect();
    v.extend([100.0, 0.0, 0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::INFINITY]);
    let dir = TempDir::new();
    let ckpt = open_one(&dir, &[Spec::f32("v", &[v.len()], &v)]);
    let s = tensor_stats(
        &CpuBackend,
        &ckpt,
        ckpt.require("v").unwrap(),
        &StatsRequest { bins: 10, ..Default::default() },
        &Cancel::new(),
    )
    .unwrap();
    let finite: Vec<f64> = v.iter().filter(|x| x.is_finite()).map(|&x| f64::from(x)).collect();
    let n = finite.len() as f64;
    let mean = finite.iter().sum::<f64>() / n;
    let c = |p: i32| finite.iter().map(|x| (x - mean).powi(p)).sum::<f64>() / n;
    assert_eq!((s.count, s.finite, s.nan, s.pos_inf, s.neg_inf, s.zeros), (1007, 1003, 1, 2, 1, 2));
    assert!((s.mean - mean).abs() < 1e-15);
    assert!((s.std - c(2).sqrt()).abs() < 1e-13);
    assert!((s.skewness - c(3) / c(2).powf(1.5)).abs() < 1e-10);
    assert!((s.kurtosis - (c(4) / (c(2) * c(2)) - 3.0)).abs() < 1e-9);
    assert_eq!((s.min, s.max, s.abs_max), (-1.0, 100.0, 100.0));
    // Only 100 is beyond 3σ (σ ≈ 3.3) and 6σ.
    assert_eq!((s.outliers_3sigma, s.outliers_6sigma), (1, 1));
    let h = &s.histogram;
    assert_eq!((h.edges[0], h.edges[10]), (-1.0, 100.0));
    assert_eq!(h.counts.iter().sum::<u64>(), 1003);
    assert_eq!(h.counts[0], 1002, "−1, 0 and +1 fall in the first of ten bins of width 10.1");
    assert_eq!(h.counts[9], 1);

    let log = tensor_stats(
        &CpuBackend,
        &ckpt,
        ckpt.require("v").unwrap(),
        &StatsRequest { bins: 2, scale: BinScale::Log10Abs },
        &Cancel::new(),
    )
    .unwrap();
    assert_eq!(log.histogram.edges, [0.0, 1.0, 2.0]);
    assert_eq!(log.histogram.counts, [1000, 1], "|x| = 1 and |x| = 100; zeros left out");
}

#[test]
fn quantized_tensors_have_the_statistics_of_their_decoded_values() {
    let dir = TempDir::new();
    let path = dir.join("q.gguf");
    let mut g = crate::fixtures::Gguf::new("llama");
    let codes: [i8; 32] = std::array::from_fn(|i| i as i8 - 16);
    let mut data = crate::fixtures::q8_0_block(0.5, &codes);
    data.extend(crate::fixtures::q8_0_block(-0.25, &codes));
    g.tensor("q", &[2, 32], 8, data);
    g.write(&path);
    let ckpt = Checkpoint::open(&path).unwrap();
    let t = ckpt.require("q").unwrap();
    let decoded = ckpt.decode_all(t).unwrap();
    let plain = open_one(&dir, &[Spec::f32("q", &[2, 32], &decoded)]);
    let a = tensor_stats(&CpuBackend, &ckpt, t, &StatsRequest::default(), &Cancel::new()).unwrap();
    let b = tensor_stats(&CpuBackend, &plain, plain.require("q").unwrap(), &StatsRequest::default(), &Cancel::new())
        .unwrap();
    assert_eq!(
        (a.mean, a.std, a.kurtosis, a.histogram.counts.clone()),
        (b.mean, b.std, b.kurtosis, b.histogram.counts)
    );
    assert_eq!(a.dtype, "Q8_0");
}

#[test]
fn sixteen_bit_tensors_have_the_statistics_of_their_f32_copies() {
    // The demo's F16 matrices (counted by bit pattern) against F32 copies (decoded, two passes).
    let demo = Checkpoint::open(demo()).unwrap();
    let big: Vec<_> = demo
        .tensors()
        .iter()
        .filter(|t| t.dtype == weightbench::codec::DType::F16 && t.numel() >= 1 << 16)
        .take(4)
        .collect();
    assert_eq!(big.len(), 4, "the demo should hold large F16 matrices");
    let dir = TempDir::new();
    let specs: Vec<Spec> = big
        .iter()
        .map(|t| {
            let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
            Spec::f32(&t.name, &shape, &demo.decode_all(t).unwrap())
        })
        .collect();
    let plain = open_one(&dir, &specs);
    for t in big {
        for req in [StatsRequest::default(), StatsRequest { bins: 1000, scale: BinScale::Log10Abs }] {
            let a = tensor_stats(&CpuBackend, &demo, t, &req, &Cancel::new()).unwrap();
            let b = tensor_stats(&CpuBackend, &plain, plain.require(&t.name).unwrap(), &req, &Cancel::new()).unwrap();
            let what = format!("{} {req:?}", t.name);
            assert_eq!((a.count, a.zeros, a.min, a.max), (b.count, b.zeros, b.min, b.max), "{what}");
            assert_eq!(a.histogram.thresholds, b.histogram.thresholds, "{what}");
            assert_eq!(a.histogram.counts, b.histogram.counts, "{what}");
            assert_eq!((a.outliers_3sigma, a.outliers_6sigma), (b.outliers_3sigma, b.outliers_6sigma), "{what}");
            for (x, y) in [(a.mean, b.mean), (a.std, b.std), (a.skewness, b.skewness), (a.kurtosis, b.kurtosis)] {
                assert!((x - y).abs() <= 1e-9 * y.abs().max(a.std), "{what}: {x} vs {y}");
            }
            assert_eq!(a.dtype, "F16");
        }
    }
}

#[test]
fn channel_statistics_find_an_outlier_input_channel() {
    let (rows, cols) = (64usize, 48usize);
    let w: Vec<f32> = (0..rows * cols)
        .map(|k| {
            let (i, j) = (k / cols, k % cols);
            let base = ((i * 31 + j * 17) % 23) as f32 / 23.0 - 0.5;
            if j == 7 { base * 50.0 + 30.0 } else { base }
        })
        .collect();
    let dir = TempDir::new();
    let ckpt = open_one(&dir, &[Spec::f32("w", &[rows, cols], &w)]);
    let r = channel_report(&CpuBackend, &ckpt, ckpt.require("w").unwrap(), 3, 16, &Cancel::new()).unwrap();
    assert_eq!(r.top_input_channels[0].index, 7);
    assert!(r.top_input_channels[0].ratio_to_median > 50.0);
    let c = &r.channels;
    assert_eq!((c.rows, c.cols, c.tile_rows, c.tile_cols, c.grid_rows, c.grid_cols), (64, 48, 4, 3, 16, 16));
    for j in [0usize, 7, 47] {
        let col: Vec<f64> = (0..rows).map(|i| f64::from(w[i * cols + j])).collect();
        let abs_max = col.iter().fold(0f64, |a, x| a.max(x.abs()));
        let l2 = col.iter().map(|x| x * x).sum::<f64>().sqrt();
        let mean = col.iter().sum::<f64>() / rows as f64;
        let m = |p: i32| col.iter().map(|x| (x - mean).powi(p)).sum::<f64>() / rows as f64;
        assert_eq!(f64::from(c.col_abs_max[j]), abs_max);
        assert!((c.col_l2[j] - l2).abs() < 1e-9 * l2);
        assert!((c.col_kurtosis[j] - (m(4) / (m(2) * m(2)) - 3.0)).abs() < 1e-9);
    }
    for i in [0usize, 63] {
        let row = &w[i * cols..(i + 1) * cols];
        assert_eq!(c.row_abs_max[i], row.iter().fold(0f32, |a, x| a.max(x.abs())));
    }
    // Each tile is the max |x| of its 4 × 3 block.
    for (ti, tj) in [(0usize, 0usize), (5, 2), (15, 15)] {
        let mut expected = 0f32;
        for i in ti * 4..ti * 4 + 4 {
            for j in tj * 3..tj * 3 + 3 {
                expected = expected.max(w[i * cols + j].abs());
            }
        }
        assert_eq!(c.tile_abs_max[ti * 16 + tj], expected);
    }
}

#[test]
fn a_cancelled_analysis_stops() {
    let ckpt = Checkpoint::open(demo()).unwrap();
    let cancel = Cancel::new();
    cancel.cancel();
    let t = ckpt.require("embeddings.word_embeddings.weight").unwrap();
    let err = tensor_stats(&CpuBackend, &ckpt, t, &StatsRequest::default(), &cancel).unwrap_err();
    assert!(matches!(err, AnalysisError::Cancelled), "{err:?}");
}

#[test]
fn demo_embedding_spectrum_by_gram_agrees_with_direct_svd() {
    // 30522 × 384: `auto` takes the Gram route; the direct SVD of the same matrix agrees.
    let ckpt = Checkpoint::open(demo()).unwrap();
    let t = ckpt.require("embeddings.word_embeddings.weight").unwrap();
    let (gram, method) = singular_values(&CpuBackend, &ckpt, t, SpectrumMethod::Auto, &Cancel::new()).unwrap();
    assert_eq!(method, SpectrumMethod::Gram);
    let (svd, _) = singular_values(&CpuBackend, &ckpt, t, SpectrumMethod::Svd, &Cancel::new()).unwrap();
    assert_eq!(gram.len(), 384);
    for (a, b) in gram.iter().zip(&svd) {
        assert!((a - b).abs() <= 1e-9 * b.max(1e-3 * svd[0]), "{a} vs {b}");
    }
}

#[test]
fn salience_weighs_each_column_by_its_importance() {
    use weightbench::analysis::salience::{ImportanceSource, salience_map};
    let (rows, cols) = (40usize, 30usize);
    let w: Vec<f32> = (0..rows * cols).map(|k| ((k * 37 % 101) as f32 - 50.0) / 50.0).collect();
    let dir = TempDir::new();
    let ckpt = open_one(&dir, &[Spec::f32("w", &[rows, cols], &w)]);
    let t = ckpt.require("w").unwrap();
    // Weight-only: column L2 norms.
    let m = salience_map(&CpuBackend, &ckpt, t, None, 8, &Cancel::new()).unwrap();
    assert_eq!(m.source, ImportanceSource::ColumnNorms);
    assert_eq!((m.tile_rows, m.tile_cols, m.grid_rows, m.grid_cols), (5, 4, 8, 8));
    let norms: Vec<f32> =
        (0..cols).map(|j| (0..rows).map(|i| f64::from(w[i * cols + j]).powi(2)).sum::<f64>().sqrt() as f32).collect();
    for (a, b) in m.importance.iter().zip(&norms) {
        assert!((a - b).abs() <= 1e-6 * b);
    }
    // Imported: a one-hot importance keeps only that column.
    let mut imp = vec![0f32; cols];
    imp[13] = 2.0;
    let m = salience_map(&CpuBackend, &ckpt, t, Some((&imp, "test".into())), 8, &Cancel::new()).unwrap();
    for ti in 0..8 {
        for tj in 0..8 {
            let expected = if tj == 13 / 4 {
                (ti * 5..ti * 5 + 5).map(|i| w[i * cols + 13].abs() * 2.0).fold(0f32, f32::max)
            } else {
                0.0
            };
            assert_eq!(m.tiles[ti * 8 + tj], expected, "tile {ti},{tj}");
        }
    }
    assert!(salience_map(&CpuBackend, &ckpt, t, Some((&imp[..10], "short".into())), 8, &Cancel::new()).is_err());
}

/// Per tile of `tiles`' layout: the summary computed the plain way, from every value of the tile.
fn reference_tiles(
    w: &[f32],
    cols: usize,
    t: &weightbench::analysis::heatmap::HeatmapTiles,
    importance: &[f32],
) -> Vec<f32> {
    use weightbench::analysis::heatmap::Mode;
    (0..t.grid_rows * t.grid_cols)
        .map(|k| {
            let (rs, cs) = t.tile_span(k);
            let mut xs = Vec::new();
            for r in rs {
                for c in cs.clone() {
                    xs.push((w[r * cols + c], importance[c]));
                }
            }
            let n = xs.len() as f64;
            match t.mode {
                Mode::Absmax => xs.iter().map(|(x, _)| x.abs()).fold(0f32, f32::max),
                Mode::Salience => xs.iter().map(|(x, i)| x.abs() * i.abs()).fold(0f32, f32::max),
                Mode::Extreme => xs.iter().fold(xs[0].0, |e, (x, _)| if x.abs() > e.abs() { *x } else { e }),
                Mode::Mean => (xs.iter().map(|(x, _)| f64::from(*x)).sum::<f64>() / n) as f32,
                Mode::Rms => (xs.iter().map(|(x, _)| f64::from(*x) * f64::from(*x)).sum::<f64>() / n).sqrt() as f32,
            }
        })
        .collect()
}

#[test]
fn heatmap_tiles_of_any_region_equal_the_plain_summaries_down_to_single_weights() {
    use weightbench::analysis::heatmap::{Mode, heatmap};
    let dir = TempDir::new();
    // 37 × 64, Q8_0 in a GGUF (blocks of 32 along rows) and the same values as F32 safetensors.
    let (rows, cols) = (37usize, 64usize);
    let mut blocks = Vec::new();
    let mut w = Vec::new();
    for b in 0..rows * cols / 32 {
        let d = 0.01 * (1 + b % 5) as f32;
        let codes: [i8; 32] = std::array::from_fn(|i| ((b * 37 + i * 11) % 255) as i8);
        blocks.extend(crate::fixtures::q8_0_block(d, &codes));
        let d16 = half::f16::from_f32(d).to_f32();
        w.extend(codes.iter().map(|&c| d16 * f32::from(c)));
    }
    let gguf = dir.join("m.gguf");
    let mut g = crate::fixtures::Gguf::new("llama");
    g.tensor("blk.0.ffn_down.weight", &[rows as u64, cols as u64], 8, blocks);
    g.write(&gguf);
    let st = dir.join("m.safetensors");
    write_safetensors(&st, &[Spec::f32("m.weight", &[rows, cols], &w)]);
    let importance: Vec<f32> = (0..cols).map(|c| 0.5 + c as f32 / 10.0).collect();
    let cancel = Cancel::new();
    for path in [&gguf, &st] {
        let ckpt = Checkpoint::open(path).unwrap();
        let t = &ckpt.tensors()[0];
        for (region, grid) in [((0..rows, 0..cols), (8, 8)), ((5..30, 7..51), (4, 6)), ((3..9, 13..29), (64, 64))] {
            for mode in [Mode::Absmax, Mode::Mean, Mode::Extreme, Mode::Rms, Mode::Salience] {
                let tiles = heatmap(
                    &CpuBackend,
                    &ckpt,
                    t,
                    region.0.clone(),
                    region.1.clone(),
                    grid,
                    mode,
                    Some(&importance),
                    &cancel,
                )
                .unwrap();
                let want = reference_tiles(&w, cols, &tiles, &importance);
                for (k, (got, want)) in tiles.values.iter().zip(&want).enumerate() {
                    let close = if matches!(mode, Mode::Mean | Mode::Rms) {
                        (got - want).abs() <= 1e-6 * want.abs().max(1e-6)
                    } else {
                        got.to_bits() == want.to_bits()
                    };
                    assert!(close, "{path:?} {region:?} {grid:?} {mode:?} tile {k}: {got} vs {want}");
                }
                assert_eq!(tiles.row_profile.len(), tiles.grid_rows);
                if tiles.single_weights() {
                    let (r, c) = (region.0.start + 2, region.1.start + 3);
                    let at = tiles.tile_at(r, c).unwrap();
                    if mode == Mode::Extreme || mode == Mode::Mean {
                        assert_eq!(tiles.values[at], w[r * cols + c], "one tile, one weight, exactly");
                    }
                }
            }
        }
    }
    // The last partial tiles: 37 rows in tiles of 5 leave a last tile of 2 rows.
    let ckpt = Checkpoint::open(&st).unwrap();
    let t =
        heatmap(&CpuBackend, &ckpt, &ckpt.tensors()[0], 0..rows, 0..cols, (8, 8), Mode::Rms, None, &cancel).unwrap();
    assert_eq!((t.tile_rows, t.grid_rows, t.tile_span(t.values.len() - 1).0), (5, 8, 35..37));
    assert!(matches!(
        heatmap(&CpuBackend, &ckpt, &ckpt.tensors()[0], 0..rows, 0..cols, (8, 8), Mode::Salience, None, &cancel),
        Err(AnalysisError::Compute(_))
    ));
}
