//! Frame times of the real app while whole-model jobs run: drives `WorkbenchApp` through
//! egui_kittest (each step is one full egui pass of our UI code: draining results, layout,
//! tessellation — no GPU rendering), starts the statistics and spectra jobs on a checkpoint,
//! switches views while they run; then, in the plan view, a whole-model preview (a rule giving
//! every weight a block type) and an automatic allocation; and prints the distribution of step
//! times per phase and in all.
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
    let mut phases = Vec::new();
    for (kind, views) in [
        (ModelJobKind::Stats, [View::Overview, View::Distribution, View::Heatmap]),
        (ModelJobKind::Spectra, [View::Overview, View::Spectrum, View::Distribution]),
    ] {
        harness.state_mut().start_model_job(kind);
        let started = Instant::now();
        let mut phase = Vec::new();
        let mut frame = 0usize;
        loop {
            let running =
                harness.state().session.as_ref().and_then(|s| s.model_job.as_ref()).is_some_and(|j| j.ended.is_none());
            if !running {
                break;
            }
            // Switch view every 30 frames, as a user looking around while the job runs.
            harness.state_mut().view = views[(frame / 30) % views.len()];
            phase.push(step(&mut harness));
            frame += 1;
        }
        eprintln!("{kind:?} job: {frame} frames in {:.1} s", started.elapsed().as_secs_f64());
        phases.push((format!("{kind:?} job").to_lowercase(), phase.clone()));
        times.extend(phase);
    }
    // The plan view: a rule gives every weight q8_0 (a whole-model preview in the background).
    harness.state_mut().view = View::Plan;
    step(&mut harness);
    let started = Instant::now();
    if let Err(e) = harness.state_mut().plan_edit(|e, c| e.add_rule(c, "*.weight", "q8_0")) {
        panic!("the rule `*.weight = q8_0` does not fit: {e}");
    }
    let mut phase = Vec::new();
    while !all_measured(harness.state()) {
        phase.push(step(&mut harness));
        assert!(started.elapsed() < Duration::from_secs(600), "the preview did not finish");
    }
    eprintln!("whole-model preview: {} frames in {:.1} s", phase.len(), started.elapsed().as_secs_f64());
    phases.push(("plan preview".into(), phase.clone()));
    times.extend(phase);
    // An automatic allocation, measured afresh (no cache).
    harness.state_mut().measure_cache = None;
    let mut dialog = weightbench::app::AutoDialog { target_bpw: 5.0, ..Default::default() };
    for (c, on) in &mut dialog.candidates {
        *on = matches!(c.as_str(), "q4_0" | "q5_0" | "q8_0");
    }
    harness.state_mut().auto_dialog = Some(dialog);
    if let Err(e) = harness.state_mut().start_auto() {
        panic!("the allocation did not start: {e}");
    }
    let started = Instant::now();
    let mut phase = Vec::new();
    while harness.state().session.as_ref().and_then(|s| s.auto_job.as_ref()).is_some_and(|j| j.ended.is_none()) {
        phase.push(step(&mut harness));
        assert!(started.elapsed() < Duration::from_secs(900), "the allocation did not finish");
    }
    eprintln!("auto-allocation: {} frames in {:.1} s", phase.len(), started.elapsed().as_secs_f64());
    phases.push(("auto-allocation".into(), phase.clone()));
    times.extend(phase);
    let mut summary = serde_json::Map::new();
    for (name, phase) in phases.iter().chain(std::iter::once(&("all".to_owned(), times))) {
        summary.insert(name.clone(), stats(phase.clone()));
    }
    summary.insert("checkpoint".into(), serde_json::json!(path.display().to_string()));
    println!("{}", serde_json::Value::Object(summary));
}

/// One frame, timed; then a pause as a ~60 Hz display would leave (stepping faster would only
/// measure an idle loop).
fn step(harness: &mut Harness<'_, WorkbenchApp>) -> Duration {
    let t = Instant::now();
    harness.step();
    let took = t.elapsed();
    std::thread::sleep(Duration::from_millis(8));
    took
}

fn all_measured(app: &WorkbenchApp) -> bool {
    let Some(s) = &app.session else { return false };
    (0..s.ckpt.tensors().len()).all(|i| matches!(s.plan.preview_of(i), Some(weightbench::app::Computed::Ready(_))))
}

fn stats(mut times: Vec<Duration>) -> serde_json::Value {
    if times.is_empty() {
        return serde_json::json!({"frames": 0});
    }
    times.sort();
    let pick = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    let over16 = times.iter().filter(|t| **t > Duration::from_millis(16)).count();
    let over50 = times.iter().filter(|t| **t > Duration::from_millis(50)).count();
    serde_json::json!({"frames": times.len(), "p50_ms": pick(0.5), "p95_ms": pick(0.95), "p99_ms": pick(0.99),
                       "max_ms": pick(1.0), "over_16ms": over16, "over_50ms": over50})
}
