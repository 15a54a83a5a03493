//! Reports that travel: `analyze -o report.wbr` computes what the views show, `--shards` a part,
//! `merge-reports` joins parts in any order to the same bytes, and the window opens a report
//! without the checkpoint.

use std::path::Path;

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use weightbench::analysis::Cancel;
use weightbench::analysis::heatmap::{Mode, base_tile, heatmaps};
use weightbench::analysis::report::{HEAT_MODES, Report, VERSION};
use weightbench::analysis::spectrum::{SpectrumMethod, spectrum_report};
use weightbench::analysis::stats::tensor_stats;
use weightbench::app::jobs::HeatKey;
use weightbench::app::jobs::StatsKey;
use weightbench::app::{Computed, WorkbenchApp};
use weightbench::checkpoint::Checkpoint;
use weightbench::compute::cpu::CpuBackend;
use weightbench::compute::{BinScale, StatsRequest};

use crate::cli::weightbench;
use crate::fixtures::{TempDir, write_sharded_llama};

fn analyze(ckpt: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["analyze", "--backend", "cpu", ckpt.to_str().unwrap(), "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = weightbench(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A temporary folder holding `model/`, the three-shard Llama fixture.
fn sharded_model() -> (TempDir, std::path::PathBuf) {
    let dir = TempDir::new();
    let model = dir.join("model");
    std::fs::create_dir(&model).unwrap();
    write_sharded_llama(&model);
    (dir, model)
}

/// A whole report holds each view's result exactly as the engine computes it; parts of it
/// (by files) merged in either order give the same bytes as each other and as the whole.
#[test]
fn parts_merged_in_any_order_give_the_whole_report() {
    let (dir, model) = sharded_model();
    let (whole, a, b) = (dir.join("whole.wbr"), dir.join("a.wbr"), dir.join("b.wbr"));
    analyze(&model, &whole, &["--importance", "weight"]);
    analyze(&model, &a, &["--importance", "weight", "--shards", "1"]);
    analyze(&model, &b, &["--importance", "weight", "--shards", "2-3"]);

    let report = Report::read(&whole).unwrap();
    assert_eq!((report.version, report.parts.len()), (VERSION, 1));
    assert_eq!(report.tensors.len(), 7);
    let ckpt = Checkpoint::open(&model).unwrap();
    let t = ckpt.require("model.layers.0.mlp.down_proj.weight").unwrap();
    let results = &report.tensors[&t.name];
    let request = StatsRequest { bins: report.histogram_bins, scale: BinScale::Linear };
    let stats = tensor_stats(&CpuBackend, &ckpt, t, &request, &Cancel::new()).unwrap();
    assert_eq!(results.stats.as_ref().unwrap().as_ref().unwrap(), &stats);
    let spectrum = spectrum_report(&CpuBackend, &ckpt, t, SpectrumMethod::Auto, &Cancel::new()).unwrap();
    assert_eq!(results.spectrum.as_ref().unwrap().as_ref().unwrap(), &spectrum);
    assert!(results.channels.as_ref().unwrap().is_ok() && results.salience.as_ref().unwrap().is_ok());
    let heat = heatmaps(&CpuBackend, &ckpt, t, 0..2, 0..4, (2, 4), &HEAT_MODES, None, &Cancel::new()).unwrap();
    assert_eq!(results.heat.as_ref().unwrap().as_ref().unwrap(), &heat, "the signed and rms base maps");
    for (name, r) in &report.tensors {
        let views =
            [r.stats.is_some(), r.spectrum.is_some(), r.channels.is_some(), r.salience.is_some(), r.heat.is_some()];
        assert_eq!(views, [true; 5], "{name}: every view of a matrix");
    }

    let part = Report::read(&a).unwrap();
    assert_eq!(part.tensors.len(), 2, "file 1 holds two tensors");
    let (ab, ba) = (dir.join("ab.wbr"), dir.join("ba.wbr"));
    for (out, first, second) in [(&ab, &a, &b), (&ba, &b, &a)] {
        let o = weightbench(&[
            "merge-reports",
            first.to_str().unwrap(),
            second.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("the whole checkpoint"));
    }
    let bytes = std::fs::read(&ab).unwrap();
    assert_eq!(bytes, std::fs::read(&ba).unwrap(), "the order of the parts does not matter");
    assert_eq!(bytes, std::fs::read(&whole).unwrap(), "the parts make the whole");
}

/// What cannot be joined or read says why, naming the file; nothing is written.
#[test]
fn reports_that_do_not_fit_are_refused_with_a_reason() {
    let (dir, model) = sharded_model();
    let (a, other) = (dir.join("a.wbr"), dir.join("other.wbr"));
    analyze(&model, &a, &["--shards", "1"]);
    analyze(&crate::fixtures::demo(), &other, &["--shards", "1"]);
    let out = dir.join("merged.wbr");
    let o = weightbench(&["merge-reports", a.to_str().unwrap(), other.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("differ in their checkpoint"), "{o:?}");
    assert!(!out.exists());

    // A newer format, a damaged file, a checkpoint given where a report is expected.
    let mut bytes = std::fs::read(&a).unwrap();
    let newer = Report { version: VERSION + 1, ..Report::read(&a).unwrap() }.to_bytes();
    let e = Report::from_bytes(Path::new("newer.wbr"), &newer).unwrap_err().to_string();
    assert!(e.contains("newer.wbr") && e.contains("newer weightbench"), "{e}");
    bytes.truncate(bytes.len() / 2);
    let e = Report::from_bytes(Path::new("cut.wbr"), &bytes).unwrap_err().to_string();
    assert!(e.contains("cut.wbr") && e.contains("damaged"), "{e}");
    let shard = model.join("model-00001-of-00003.safetensors");
    let o = weightbench(&["merge-reports", shard.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a weightbench report"), "{o:?}");
    // A report is not a checkpoint: the headless commands say what it is.
    let o = weightbench(&["info", a.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("weightbench report"), "{o:?}");
    // Files beyond the checkpoint's, and the report over an input.
    let o = weightbench(&["analyze", model.to_str().unwrap(), "--shards", "2-4", "-o", out.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("has 3 file(s)"), "{o:?}");
    let o = weightbench(&["analyze", model.to_str().unwrap(), "--overwrite", "-o", shard.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(Checkpoint::open(&shard).is_ok(), "the input is untouched");
}

/// The window opens a report without its checkpoint: the views show the report's results, and
/// one that needs the weights says they are not here.
#[test]
fn the_window_opens_a_report_without_the_checkpoint() {
    let (dir, model) = sharded_model();
    let report_path = dir.join("r.wbr");
    analyze(&model, &report_path, &[]);
    std::fs::remove_dir_all(&model).unwrap();
    let path = report_path.clone();
    let mut harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_eframe(move |cc| WorkbenchApp::new(&cc.egui_ctx, Some(path)));
    crate::gui::step_until(&mut harness, 60, "the report to open", |app| app.session.is_some());
    let report = Report::read(&report_path).unwrap();
    let s = harness.state().session.as_ref().unwrap();
    assert_eq!(s.ckpt.tensors().len(), 7);
    assert!(!s.ckpt.has_weights());
    let key = StatsKey { bins: report.histogram_bins, log_abs: false };
    for (i, t) in s.ckpt.tensors().iter().enumerate() {
        let ready =
            s.stats.get(&(i, key)).and_then(|c| c.ready()).unwrap_or_else(|| panic!("{} has statistics", t.name));
        assert_eq!(Some(&**ready), report.tensors[&t.name].stats.as_ref().and_then(|r| r.as_ref().ok()));
    }
    assert!(crate::gui::shows(&harness, "a report of"), "the window says what it shows");
    // The heatmap's signed and rms modes show the report's base maps.
    harness.get_by_role_and_label(Role::Button, "Heatmap").click();
    for mode in [Mode::Mean, Mode::Extreme, Mode::Rms] {
        harness.state_mut().options.heat_mode = mode;
        harness.run_steps(3);
        let s = harness.state().session.as_ref().unwrap();
        let i = s.selected.unwrap();
        let t = &s.ckpt.tensors()[i];
        let key = HeatKey { tensor: i, mode, rows: 0..2, cols: 0..4, tile: base_tile(2, 4) };
        let shown = s.heat.tiles.get(&key).and_then(|c| c.ready()).unwrap_or_else(|| panic!("{mode:?}: no base map"));
        let stored = report.tensors[&t.name].heat.as_ref().unwrap().as_ref().unwrap();
        assert_eq!(Some(&**shown), stored.iter().find(|m| m.mode == mode), "{mode:?}");
        assert!(crate::gui::shows(&harness, mode.label()), "{mode:?}");
    }
    // What the report does not hold needs the weights: the log-scale histogram says they are
    // not here, and the window goes on.
    harness.get_by_role_and_label(Role::Button, "Distribution").click();
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::CheckBox, "log10 |x|").click();
    let selected = harness.state().session.as_ref().and_then(|s| s.selected).unwrap();
    let log_key = StatsKey { bins: report.histogram_bins, log_abs: true };
    let failed = |app: &WorkbenchApp| match app.session.as_ref().and_then(|s| s.stats.get(&(selected, log_key))) {
        Some(Computed::Failed(e)) => Some(e.clone()),
        _ => None,
    };
    crate::gui::step_until(&mut harness, 60, "the log-scale statistics to fail", |app| failed(app).is_some());
    let e = failed(harness.state()).unwrap();
    assert!(e.contains("r.wbr") && e.contains("weights are not in it"), "{e}");
    assert!(crate::gui::shows(&harness, "weights are not in it"), "the view says why");
}

/// A report made with a plan opens with that plan in the plan view, each row's preview the
/// stored one (bytes and errors without the weights), and nothing left to measure.
#[test]
fn the_window_shows_a_reports_plan_with_its_stored_previews() {
    let (dir, model) = sharded_model();
    let report_path = dir.join("r.wbr");
    analyze(&model, &report_path, &["--scheme", "int8_ch"]);
    std::fs::remove_dir_all(&model).unwrap();
    let report = Report::read(&report_path).unwrap();
    assert!(report.plan_toml.as_deref().is_some_and(|t| t.contains("int8_ch")), "{:?}", report.plan_toml);
    let path = report_path.clone();
    let mut harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_eframe(move |cc| WorkbenchApp::new(&cc.egui_ctx, Some(path)));
    crate::gui::step_until(&mut harness, 60, "the report to open", |app| app.session.is_some());
    harness.get_by_role_and_label(Role::Button, "Plan").click();
    harness.run_steps(4);
    let s = harness.state().session.as_ref().unwrap();
    assert!(s.plan.missing(&s.ckpt).is_empty(), "every row's preview came from the report");
    let mut shown = 0;
    for (i, t) in s.ckpt.tensors().iter().enumerate() {
        let stored = report.tensors[&t.name].preview.as_ref().unwrap_or_else(|| panic!("{} has a stored row", t.name));
        let Some(Computed::Ready(p)) = s.plan.preview_of(i) else { panic!("{}: no preview in the plan view", t.name) };
        assert_eq!(p.scheme, stored["scheme"].as_str().unwrap(), "{}", t.name);
        assert_eq!(p.bytes, stored["bytes"].as_u64().unwrap(), "{}", t.name);
        assert_eq!(p.sse, stored["sse"].as_f64().unwrap(), "{}", t.name);
        shown += usize::from(p.scheme == "int8_ch");
    }
    assert!(shown >= 4, "the matrices get int8_ch ({shown})");
    let totals = s.plan.totals(&s.ckpt);
    let stored_bytes: u64 =
        report.tensors.values().filter_map(|r| r.preview.as_ref()).map(|p| p["bytes"].as_u64().unwrap()).sum();
    assert_eq!(totals.bytes, stored_bytes, "the plan's total is the stored rows' sum");
    assert!(crate::gui::shows(&harness, "int8_ch"), "the rows show their scheme");
}
