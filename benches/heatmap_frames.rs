//! Frame times of the heatmap while tiles stream, on a 131072 × 8192 F16 embedding (2 GiB, made
//! here in a temporary folder): the real app through egui_kittest opens it, computes the
//! whole-matrix map, then zooms in eight steps towards one weight — each step waits, frame by
//! frame, until the finer tiles of the visible region arrive — and prints the step times.
//!
//!     cargo bench --bench heatmap_frames [-- ROWS COLS]

use std::io::Write;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use weightbench::app::{View, WorkbenchApp};

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench").map(|a| a.parse::<usize>());
    let rows = args.next().and_then(Result::ok).unwrap_or(131_072);
    let cols = args.next().and_then(Result::ok).unwrap_or(8192);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temporary folder: {e}"));
    let path = dir.path().join("embedding.safetensors");
    let made = Instant::now();
    write_embedding(&path, rows, cols);
    eprintln!("wrote {rows} x {cols} F16 in {:.1} s", made.elapsed().as_secs_f64());
    let mut harness = Harness::builder()
        .with_size([1360.0, 860.0])
        .build_eframe(|cc| WorkbenchApp::new(&cc.egui_ctx, Some(path.clone())));
    let start = Instant::now();
    while harness.state().session.is_none() {
        harness.step();
        assert!(start.elapsed() < Duration::from_secs(60), "the checkpoint did not open");
    }
    harness.state_mut().select(0);
    harness.state_mut().view = View::Heatmap;
    let mut times = Vec::new();
    let base = |app: &WorkbenchApp| {
        app.session.as_ref().is_some_and(|s| s.channels.get(&0).is_some_and(|c| c.ready().is_some()))
    };
    let started = Instant::now();
    while !base(harness.state()) {
        times.push(step(&mut harness));
        assert!(started.elapsed() < Duration::from_secs(600), "the base map did not finish");
    }
    eprintln!("base map: {} frames in {:.1} s", times.len(), started.elapsed().as_secs_f64());
    // Zoom towards (row 70001, column 4097) in eight steps, each 4× narrower.
    let (r, c) = (70_001usize, 4_097usize);
    for level in 1..=8u32 {
        let (h, w) = ((rows >> (2 * level)).max(24), (cols >> level).max(24));
        let region = (r.saturating_sub(h / 2)..(r + h / 2).min(rows), c.saturating_sub(w / 2)..(c + w / 2).min(cols));
        if let Some(s) = harness.state_mut().session.as_mut() {
            s.heat_focus = Some(region.clone());
        }
        let t0 = Instant::now();
        let done = |app: &WorkbenchApp| {
            app.session.as_ref().is_some_and(|s| {
                s.heat.tiles.iter().any(|(k, v)| {
                    v.ready().is_some()
                        && k.rows.contains(&r)
                        && k.cols.contains(&c)
                        && k.rows.len() <= 4 * region.0.len()
                })
            })
        };
        let mut frames = 0;
        while !done(harness.state()) && t0.elapsed() < Duration::from_secs(60) {
            times.push(step(&mut harness));
            frames += 1;
        }
        eprintln!("zoom {level}: {frames} frames, tiles after {:.2} s", t0.elapsed().as_secs_f64());
    }
    times.sort();
    let pick = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    let over = |ms: u64| times.iter().filter(|t| **t > Duration::from_millis(ms)).count();
    println!(
        "{}",
        serde_json::json!({"rows": rows, "cols": cols, "frames": times.len(), "p50_ms": pick(0.5), "p95_ms": pick(0.95),
                           "p99_ms": pick(0.99), "max_ms": pick(1.0), "over_16ms": over(16), "over_50ms": over(50)})
    );
}

fn step(harness: &mut Harness<'_, WorkbenchApp>) -> Duration {
    let t = Instant::now();
    harness.step();
    let took = t.elapsed();
    std::thread::sleep(Duration::from_millis(8));
    took
}

/// A safetensors file of one F16 tensor `embed.weight` [rows, cols] of small varied values.
fn write_embedding(path: &std::path::Path, rows: usize, cols: usize) {
    let bytes = rows * cols * 2;
    let header =
        format!("{{\"embed.weight\":{{\"dtype\":\"F16\",\"shape\":[{rows},{cols}],\"data_offsets\":[0,{bytes}]}}}}");
    let mut header = header.into_bytes();
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap_or_else(|e| panic!("{e}")));
    let ok = |r: std::io::Result<()>| r.unwrap_or_else(|e| panic!("cannot write the embedding: {e}"));
    ok(f.write_all(&(header.len() as u64).to_le_bytes()));
    ok(f.write_all(&header));
    let mut s = 0x9E37_79B9u32;
    let mut row = vec![0u8; cols * 2];
    for _ in 0..rows {
        for v in row.chunks_exact_mut(2) {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            // f16 bits of magnitudes 2^-10 .. 2^-2, either sign.
            let bits = ((s & 0x8000) as u16) | (0x1800 + (s >> 16) as u16 % 0x2000);
            v.copy_from_slice(&bits.to_le_bytes());
        }
        ok(f.write_all(&row));
    }
    ok(f.flush());
}
