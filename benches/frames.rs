//! Frame times of the real app while whole-model jobs run: drives `WorkbenchApp` through
//! egui_kittest (each step is one full egui pass of our UI code: draining results, layout,
//! tessellation — no GPU rendering), starts the statistics and spectra jobs on a checkpoint,
//! switches views while they run, and prints the distribution of step times.
//!
//!     cargo bench --bench frames -- [CHECKPOINT]     (default: the bundled demo)

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use weightbench::app::jobs::ModelJobKind;
use weightbench::app::{View, WorkbenchApp};

fn main() {
    let path = std::env::args()
        .skip(1)
        .find(|a| a != "--bench")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo"));
    let mut harness = Harness::builder()
        .with_size([1360.0, 860.0])
        .build_eframe(|cc| WorkbenchApp::new(&cc.egui_ctx, Some(path.clone())));
    let start = Instant::now();
    while harness.state().session.is_none() {
        harness.step();
        std::thread::sleep(Duration::from_millis(2));
        assert!(start.elapsed() < Duration::from_secs(120), "the checkpoint did not open");
    }
    let mut times = Vec::new();
    for (kind, views) in [
        (ModelJobKind::Stats, [View::Overview, View::Distribution, View::Heatmap]),
        (ModelJobKind::Spectra, [View::Overview, View::Spectrum, View::Distribution]),
    ] {
        harness.state_mut().start_model_job(kind);
        let started = Instant::now();
        let mut frame = 0usize;
        loop {
            let running =
                harness.state().session.as_ref().and_then(|s| s.model_job.as_ref()).is_some_and(|j| j.ended.is_none());
            if !running {
                break;
            }
            // Switch view every 30 frames, as a user looking around while the job runs.
            harness.state_mut().view = views[(frame / 30) % views.len()];
            let t = Instant::now();
            harness.step();
            times.push(t.elapsed());
            frame += 1;
            // A display refreshes every ~16 ms; stepping faster would only measure an idle loop.
            std::thread::sleep(Duration::from_millis(8));
        }
        eprintln!("{kind:?} job: {frame} frames in {:.1} s", started.elapsed().as_secs_f64());
    }
    times.sort();
    let pick = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    let over = times.iter().filter(|t| **t > Duration::from_millis(16)).count();
    println!(
        "{}",
        serde_json::json!({"frames": times.len(), "p50_ms": pick(0.5), "p95_ms": pick(0.95), "p99_ms": pick(0.99),
                           "max_ms": pick(1.0), "over_16ms": over, "checkpoint": path.display().to_string()})
    );
}
