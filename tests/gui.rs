//! The real app driven through egui_kittest: it opens the demo, selects tensors, switches views,
//! runs and cancels a whole-model job, filters and navigates the tree, and shows errors — with
//! all work off the UI thread. A few small snapshots pin the look of the main views.

use std::time::{Duration, Instant};

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use weightbench::app::jobs::{ModelJobKind, StatsKey};
use weightbench::app::{Computed, HISTOGRAM_BINS, View, WorkbenchApp};

use crate::fixtures::demo;

/// Steps the app until `done` holds, for at most `seconds` (jobs run on worker threads).
pub fn step_until(
    harness: &mut Harness<'_, WorkbenchApp>,
    seconds: u64,
    what: &str,
    done: impl Fn(&WorkbenchApp) -> bool,
) {
    let start = Instant::now();
    while !done(harness.state()) {
        assert!(start.elapsed() < Duration::from_secs(seconds), "timed out waiting for {what}");
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.run_steps(2);
}

/// Holds the pointer at `pos` until the window shows `text` (a tooltip takes a few frames).
pub fn hover_until_shown(harness: &mut Harness<'_, WorkbenchApp>, pos: egui::Pos2, text: &str) -> bool {
    for _ in 0..90 {
        harness.hover_at(pos);
        harness.step();
        if shows(harness, text) {
            return true;
        }
    }
    false
}

/// Whether any widget shows `text` (as its label or, for plain labels, its value).
pub fn shows(harness: &Harness<'_, WorkbenchApp>, text: &str) -> bool {
    let text = text.to_owned();
    harness
        .query_all_by(move |n| {
            n.label().is_some_and(|l| l.contains(text.as_str())) || n.value().is_some_and(|v| v.contains(text.as_str()))
        })
        .next()
        .is_some()
}

const KEY: StatsKey = StatsKey { bins: HISTOGRAM_BINS, log_abs: false };

fn selected_stats_ready(app: &WorkbenchApp) -> bool {
    app.session
        .as_ref()
        .is_some_and(|s| s.selected.is_some_and(|i| matches!(s.stats.get(&(i, KEY)), Some(Computed::Ready(_)))))
}

fn open_demo(size: [f32; 2]) -> Harness<'static, WorkbenchApp> {
    open_at(size, demo())
}

fn open_at(size: [f32; 2], path: std::path::PathBuf) -> Harness<'static, WorkbenchApp> {
    let mut harness =
        Harness::builder().with_size(size).build_eframe(move |cc| WorkbenchApp::new(&cc.egui_ctx, Some(path)));
    step_until(&mut harness, 60, "the demo to open", |app| app.session.is_some());
    step_until(&mut harness, 60, "the first histogram", selected_stats_ready);
    harness
}

fn selected_name(app: &WorkbenchApp) -> String {
    let s = app.session.as_ref().unwrap();
    s.ckpt.tensors()[s.selected.unwrap()].name.clone()
}

#[test]
fn opens_the_demo_and_shows_a_selected_tensor() {
    let mut harness = open_demo([1280.0, 800.0]);
    // The largest tensor is selected first: the word embeddings.
    assert_eq!(selected_name(harness.state()), "embeddings.word_embeddings.weight");
    assert!(shows(&harness, "Histogram of 11720448 finite values"));

    // Select a tensor inside a layer: open the layer, click the query weight.
    harness.get_by_label_contains("layer 2 (").click();
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, "attention.self.query.weight").click();
    harness.run_steps(1);
    assert_eq!(selected_name(harness.state()), "encoder.layer.2.attention.self.query.weight");
    step_until(&mut harness, 60, "the query weight's histogram", selected_stats_ready);
    assert!(shows(&harness, "[384, 384]"), "the shape is shown");
    assert!(shows(&harness, "Histogram of 147456 finite values"));
    assert!(shows(&harness, "attn.q"), "the role is shown");
    assert!(shows(&harness, "computed on the cpu"), "the backend that computed it is shown");
}

#[test]
fn switches_views_and_each_computes_what_it_shows() {
    let mut harness = open_demo([1280.0, 800.0]);
    harness.get_by_label_contains("layer 1 (").click();
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, "attention.self.value.weight").click();
    harness.run_steps(1);

    harness.get_by_role_and_label(Role::Button, "Spectrum").click();
    harness.run_steps(1);
    assert_eq!(harness.state().view, View::Spectrum);
    step_until(&mut harness, 60, "the spectrum", |app| {
        let s = app.session.as_ref().unwrap();
        s.spectra.get(&s.selected.unwrap()).is_some_and(|c| c.ready().is_some())
    });
    assert!(shows(&harness, "alpha"));
    assert!(shows(&harness, "stable rank"));

    harness.get_by_role_and_label(Role::Button, "Heatmap").click();
    harness.run_steps(1);
    step_until(&mut harness, 60, "the channel maps", |app| {
        let s = app.session.as_ref().unwrap();
        s.channels.get(&s.selected.unwrap()).is_some_and(|c| c.ready().is_some())
    });
    assert!(shows(&harness, "log colour scale"));
    harness.get_by_role_and_label(Role::Button, "salience").click();
    step_until(&mut harness, 60, "the salience map", |app| {
        let s = app.session.as_ref().unwrap();
        s.salience.get(&s.selected.unwrap()).is_some_and(|c| c.ready().is_some())
    });
    assert!(shows(&harness, "column L2 norms"));

    harness.get_by_role_and_label(Role::Button, "Overview").click();
    harness.run_steps(2);
    assert!(shows(&harness, "Compute statistics of every tensor"));
    assert!(shows(&harness, "pooler.dense.weight"), "the table lists tensors");

    // Going back to a tensor already computed is instant: the cache answers, no job starts.
    harness.get_by_role_and_label(Role::Button, "Spectrum").click();
    harness.run_steps(1);
    assert!(!harness.state().busy());
}

#[test]
fn a_whole_model_job_reports_progress_and_can_be_cancelled() {
    // 5000 small matrices: the job sends two results per tensor into a bounded channel that only
    // drains while the UI runs, so it cannot finish before the cancel arrives.
    let dir = tempfile::tempdir().unwrap();
    let specs: Vec<crate::fixtures::Spec> = (0..5000)
        .map(|i| {
            crate::fixtures::Spec::f32(
                &format!("model.layers.{i}.mlp.up_proj.weight"),
                &[8, 8],
                &[(i % 7) as f32 * 0.1 + 0.05; 64],
            )
        })
        .collect();
    crate::fixtures::write_safetensors(&dir.path().join("model.safetensors"), &specs);
    let path = dir.path().to_owned();
    let mut harness =
        Harness::builder().with_size([1280.0, 800.0]).build_eframe(|cc| WorkbenchApp::new(&cc.egui_ctx, Some(path)));
    step_until(&mut harness, 60, "the checkpoint to open", |app| app.session.is_some());
    harness.get_by_role_and_label(Role::Button, "Overview").click();
    harness.run_steps(1);
    harness.get_by_role_and_label(Role::Button, "Compute spectra of every matrix").click();
    harness.run_steps(2);
    let job = |app: &WorkbenchApp| app.session.as_ref().and_then(|s| s.model_job.as_ref()).map(|j| (j.kind, j.ended));
    assert_eq!(job(harness.state()), Some((ModelJobKind::Spectra, None)));
    assert!(shows(&harness, "Computing spectra of every matrix"), "a progress bar says what runs");
    // Some results first (the job thread may start late on a loaded machine), then the cancel.
    step_until(&mut harness, 60, "the first results", |app| {
        app.session.as_ref().and_then(|s| s.model_job.as_ref()).is_some_and(|j| j.done_bytes > 0)
    });
    // Through accesskit: kittest's simulated pointer click on this button does not register while
    // results stream in (a real mouse click under Xvfb with xdotool does cancel the job).
    harness.get_by_role_and_label(Role::Button, "Cancel").click_accesskit();
    step_until(&mut harness, 60, "the job to stop", |app| job(app).is_some_and(|(_, ended)| ended.is_some()));
    let s = harness.state().session.as_ref().unwrap();
    let j = s.model_job.as_ref().unwrap();
    assert_eq!(j.ended, Some(true), "cancelled before it finished");
    assert!(j.done_bytes > 0 && j.done_bytes < j.total_bytes, "{} of {}", j.done_bytes, j.total_bytes);
    let done = s.spectra.values().filter(|c| c.ready().is_some()).count();
    assert!(done > 0 && done < 5000, "partial results are kept: {done} of 5000 matrices");
}

#[test]
fn whole_model_statistics_fill_the_table_and_the_strip_chart() {
    let mut harness = open_demo([1280.0, 800.0]);
    harness.get_by_role_and_label(Role::Button, "Overview").click();
    harness.run_steps(1);
    assert!(shows(&harness, "to see this metric across layers"), "no data yet");
    harness.get_by_role_and_label(Role::Button, "Compute statistics of every tensor").click();
    let job = |app: &WorkbenchApp| app.session.as_ref().and_then(|s| s.model_job.as_ref()).map(|j| j.ended);
    step_until(&mut harness, 120, "the statistics job", |app| job(app) == Some(Some(false)));
    let s = harness.state().session.as_ref().unwrap();
    assert_eq!(s.stats.values().filter(|c| c.ready().is_some()).count(), 104);
    assert!(!shows(&harness, "to see this metric across layers"), "the strip chart has data");
}

#[test]
fn the_tree_filters_by_regex_and_moves_with_the_arrow_keys() {
    let mut harness = open_demo([1280.0, 800.0]);
    harness.state_mut().filter_regex = true;
    harness.state_mut().filter = r"layer\.[0-2]\.attention\.self\.query\.weight$".into();
    harness.run_steps(2);
    assert!(shows(&harness, "layer 0 (1)") && shows(&harness, "layer 2 (1)"));
    assert!(!shows(&harness, "layer 3 ("), "other layers are filtered out");
    harness.get_all_by_role_and_label(Role::Button, "attention.self.query.weight").next().unwrap().click();
    harness.run_steps(1);
    let first = selected_name(harness.state());
    assert_eq!(first, "encoder.layer.0.attention.self.query.weight");
    harness.key_press(egui::Key::ArrowDown);
    harness.run_steps(2);
    assert_eq!(selected_name(harness.state()), "encoder.layer.1.attention.self.query.weight");
    harness.key_press(egui::Key::ArrowUp);
    harness.run_steps(2);
    assert_eq!(selected_name(harness.state()), first);
    harness.state_mut().filter = "(unclosed".into();
    harness.run_steps(2);
    assert!(shows(&harness, "invalid regex"));
}

#[test]
fn a_bad_path_shows_an_error_in_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.safetensors");
    std::fs::write(&bad, b"\x04\x00\x00\x00\x00\x00\x00\x00{{{{").unwrap();
    let mut harness =
        Harness::builder().with_size([1000.0, 600.0]).build_eframe(|cc| WorkbenchApp::new(&cc.egui_ctx, Some(bad)));
    step_until(&mut harness, 30, "the open to fail", |app| app.opening.is_none());
    assert!(harness.state().session.is_none());
    assert!(shows(&harness, "broken.safetensors"));
    assert!(shows(&harness, "JSON"), "the reason is shown");
}

#[test]
fn a_gguf_file_shows_its_metadata_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    crate::gguf::small_llama().write(&path);
    let mut harness =
        Harness::builder().with_size([1000.0, 600.0]).build_eframe(|cc| WorkbenchApp::new(&cc.egui_ctx, Some(path)));
    step_until(&mut harness, 30, "the GGUF to open", |app| app.session.is_some());
    harness.get_by_role_and_label(Role::Button, "gguf metadata (3 keys)").click();
    harness.run_steps(2);
    assert_eq!(harness.state().view, View::Metadata);
    assert!(shows(&harness, "general.architecture"));
    assert!(shows(&harness, "llama.block_count"));
    assert!(shows(&harness, "UINT32"), "value types are shown");
    // Selecting a tensor leaves the metadata view.
    harness.get_by_label_contains("layer 0 (").click();
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, "attn_q.weight").click();
    harness.run_steps(2);
    assert_eq!(harness.state().view, View::Distribution);
    step_until(&mut harness, 30, "the Q8_0 histogram", selected_stats_ready);
    assert!(shows(&harness, "Q8_0"));
}

#[test]
fn snapshots_of_the_main_views() {
    // The window shows the checkpoint's path: open the demo through a link at a fixed place so the
    // pictures do not depend on where the repository is checked out.
    let fixed = std::env::temp_dir().join("weightbench-snapshot-demo");
    let _ = std::fs::remove_file(&fixed);
    std::os::unix::fs::symlink(demo(), &fixed).unwrap();
    let mut harness = open_at([900.0, 560.0], fixed);
    let index = harness
        .state()
        .session
        .as_ref()
        .unwrap()
        .ckpt
        .tensors()
        .iter()
        .position(|t| t.name == "encoder.layer.3.output.dense.weight")
        .unwrap();
    harness.state_mut().select(index);
    step_until(&mut harness, 60, "the histogram", selected_stats_ready);
    harness.snapshot("distribution");
    harness.get_by_role_and_label(Role::Button, "Heatmap").click();
    step_until(&mut harness, 60, "the heatmap", |app| {
        let s = app.session.as_ref().unwrap();
        s.channels.get(&s.selected.unwrap()).is_some_and(|c| c.ready().is_some())
    });
    harness.snapshot("heatmap");
}

#[test]
fn views_save_their_data_into_the_export_folder() {
    let mut harness = open_demo([1280.0, 800.0]);
    let out = tempfile::tempdir().unwrap();
    harness.state_mut().export_dir = out.path().display().to_string();
    harness.get_by_role_and_label(Role::Button, "CSV").click();
    harness.run_steps(2);
    let csv = std::fs::read_to_string(out.path().join("embeddings.word_embeddings.weight.histogram.csv")).unwrap();
    assert!(csv.starts_with("lower_edge,upper_edge,count\n"));
    assert_eq!(csv.lines().count(), 1 + HISTOGRAM_BINS, "a line per bin");
    let total: u64 = csv.lines().skip(1).map(|l| l.rsplit(',').next().unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(total, 11_720_448);
    harness.get_by_role_and_label(Role::Button, "JSON").click();
    harness.run_steps(2);
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("embeddings.word_embeddings.weight.histogram.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["count"], 11_720_448);
    assert!(shows(&harness, "saved "));
}

#[test]
fn switching_to_the_gpu_starts_it_in_the_background_and_results_say_where_they_ran() {
    let mut harness = open_demo([1280.0, 800.0]);
    assert!(shows(&harness, "computed on the cpu"));
    // Switching returns at once: nothing is started on the UI thread, a job starts the device.
    harness.state_mut().set_backend(weightbench::compute::select::BackendChoice::Gpu);
    assert!(harness.state().backend_starting);
    // The start runs on a job thread: it may already be done when a GPU was started earlier in
    // this process (the adapter is shared), so the label says either.
    let label = harness.state().backend_label();
    assert!(label.contains("starts with the first computation") || label.starts_with("the gpu"), "{label}");
    harness.run_steps(1);
    assert!(
        shows(&harness, "starting the GPU") || !harness.state().backend_starting,
        "while the GPU starts, the status bar says so"
    );
    step_until(&mut harness, 60, "the GPU to start", |app| !app.backend_starting);
    let label = harness.state().backend_label();
    if !label.starts_with("the gpu") {
        crate::fixtures::skip(crate::fixtures::Missing::Gpu, &format!("the GPU did not start: {label}"));
        return;
    }
    // A new result is computed on the GPU and says so; the cached CPU one still says CPU.
    harness.get_by_label_contains("layer 1 (").click();
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, "attention.self.key.weight").click();
    harness.run_steps(1);
    step_until(&mut harness, 60, "the key weight's histogram", selected_stats_ready);
    assert!(shows(&harness, "computed on the gpu"), "the GPU's result names the GPU");
}

#[test]
fn a_fallback_is_shown_in_the_window() {
    // A tensor too large for the capped GPU's buffers is computed on the CPU; the view says so,
    // with the reason, and the window shows a notice.
    let mut harness = open_demo([1280.0, 800.0]);
    let Some(_) = crate::fixtures::gpu() else { return };
    let small = weightbench::compute::gpu::GpuBackend::new(true).unwrap();
    small.context().cap_binding(64 << 10);
    harness
        .state_mut()
        .use_backend(weightbench::compute::select::SelectedBackend::with_gpu(std::sync::Arc::new(small)));
    harness.state_mut().view = View::Heatmap;
    harness.run_steps(2);
    step_until(&mut harness, 60, "the channel maps", |app| {
        app.session
            .as_ref()
            .is_some_and(|s| s.selected.is_some_and(|i| s.channels.get(&i).is_some_and(|c| c.ready().is_some())))
    });
    assert!(shows(&harness, "computed on the cpu"), "the CPU did the work");
    assert!(shows(&harness, "instead of the GPU"), "and the view says it was not the GPU asked for");
    assert!(
        harness.state().message.as_deref().is_some_and(|m| m.contains("computed on the CPU because the GPU failed"))
    );
}

#[test]
fn an_export_runs_as_a_job_with_progress_then_reads_back_and_a_cancelled_one_leaves_nothing() {
    use weightbench::app::jobs::ExportRequest;
    use weightbench::export::model::{ExportFormat, ExportOptions};
    use weightbench::quant::Plan;
    let dir = crate::fixtures::TempDir::new();
    let mut harness = open_demo([1000.0, 700.0]);
    let request = |output: std::path::PathBuf| ExportRequest {
        plan: Plan::single("int8_ch").unwrap(),
        importance: None,
        format: ExportFormat::Safetensors,
        output,
        options: ExportOptions::default(),
    };
    let out = dir.join("int8");
    harness.state_mut().start_export(request(out.clone()));
    assert!(harness.state().busy(), "the export runs in the background");
    step_until(&mut harness, 120, "the export to end", |app| {
        app.session.as_ref().and_then(|s| s.export_job.as_ref()).is_some_and(|j| j.result.is_some())
    });
    let app = harness.state();
    let job = app.session.as_ref().unwrap().export_job.as_ref().unwrap();
    let report = job.result.clone().unwrap().unwrap();
    assert_eq!((job.done, job.total), (job.total, app.session.as_ref().unwrap().ckpt.total_params()));
    assert!(app.message.as_deref().is_some_and(|m| m.starts_with("exported")), "{:?}", app.message);
    // The file holds what the job reported, read back with the checkpoint reader.
    let written = weightbench::checkpoint::Checkpoint::open(out.join("model.safetensors")).unwrap();
    assert_eq!(written.tensors().len(), report.tensors.len());
    assert!(out.join("config.json").exists(), "the folder's companions are copied");

    let cancelled = dir.join("cancelled");
    harness.state_mut().start_export(request(cancelled.clone()));
    harness.state_mut().cancel_export();
    step_until(&mut harness, 120, "the cancelled export to end", |app| {
        app.session.as_ref().and_then(|s| s.export_job.as_ref()).is_some_and(|j| j.result.is_some())
    });
    let job = harness.state().session.as_ref().unwrap().export_job.as_ref().unwrap();
    assert_eq!(job.result.clone().unwrap().err().as_deref(), Some("cancelled"));
    assert!(!cancelled.exists(), "a cancelled export leaves nothing behind");
    assert!(shows(&harness, "export cancelled"), "the window says so");
}

#[test]
fn the_heatmap_zooms_to_the_outlier_channel_down_to_single_weights_with_their_exact_values() {
    use weightbench::analysis::heatmap::Mode;
    let mut harness = open_demo([1280.0, 800.0]);
    let name = "encoder.layer.3.output.dense.weight";
    let index = harness.state().session.as_ref().unwrap().ckpt.tensors().iter().position(|t| t.name == name).unwrap();
    harness.state_mut().select(index);
    harness.get_by_role_and_label(Role::Button, "Heatmap").click();
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, "signed extreme").click();
    step_until(&mut harness, 60, "the signed map and the channel list", |app| {
        let s = app.session.as_ref().unwrap();
        s.channels.get(&index).is_some_and(|c| c.ready().is_some())
            && s.heat.tiles.values().any(|t| t.ready().is_some_and(|t| t.mode == Mode::Extreme))
    });
    assert!(shows(&harness, "3.48e0"), "the legend gives the scale's numbers");
    let button = harness.query_all_by(|n| n.label().is_some_and(|l| l.starts_with("column 358 ("))).next().unwrap();
    button.click_accesskit();
    harness.run_steps(2);
    let single = |app: &WorkbenchApp| {
        app.session.as_ref().unwrap().heat.tiles.values().find_map(|t| {
            t.ready().filter(|t| t.single_weights() && t.cols.contains(&358) && t.mode == Mode::Extreme).cloned()
        })
    };
    step_until(&mut harness, 60, "single-weight tiles around channel 358", |app| single(app).is_some());
    assert!(shows(&harness, "(single weights)"), "the view says it shows single weights");
    let tiles = single(harness.state()).unwrap();
    let ckpt = weightbench::checkpoint::Checkpoint::open(demo()).unwrap();
    let w = ckpt.decode_all(ckpt.tensor(name).unwrap()).unwrap();
    for r in tiles.rows.clone() {
        let at = tiles.tile_at(r, 358).unwrap();
        assert_eq!(tiles.values[at], w[r * 1536 + 358], "row {r}: the tile is the stored weight");
    }
    // Centred on the channel's largest weight: the outlier itself is on screen.
    let peak = tiles.rows.clone().max_by(|&a, &b| w[a * 1536 + 358].abs().total_cmp(&w[b * 1536 + 358].abs())).unwrap();
    assert!(w[peak * 1536 + 358].abs() > 3.0, "{}", w[peak * 1536 + 358]);
    // The pointer on that weight: the tooltip gives its row, column and exact stored value.
    let shown = harness.state().session.as_ref().unwrap().heat.shown.expect("the map was drawn");
    let at = shown.position_from_point(&egui_plot::PlotPoint::new(358.5, -(peak as f64 + 0.5)));
    let dtype = ckpt.tensor(name).unwrap().dtype;
    let expected = format!("row {peak}, column 358\nvalue {:.7e} (stored as {dtype}", w[peak * 1536 + 358]);
    let mut seen = false;
    for _ in 0..90 {
        harness.hover_at(at);
        harness.step();
        if harness.query_all_by(|n| n.label().is_some_and(|l| l.contains(&expected))).next().is_some() {
            seen = true;
            break;
        }
    }
    assert!(seen, "a tooltip reading {expected:?}");
}

#[test]
fn after_spectra_of_every_matrix_the_strip_chart_shows_alpha_and_the_table_scrolls_to_it() {
    use weightbench::app::panels::overview::Metric;
    let mut harness = open_demo([1000.0, 700.0]);
    harness.get_by_role_and_label(Role::Button, "Overview").click();
    harness.run_steps(1);
    assert_eq!(harness.state().options.strip_metric, Metric::Kurtosis);
    harness.get_by_role_and_label(Role::Button, "Compute spectra of every matrix").click();
    let job = |app: &WorkbenchApp| app.session.as_ref().and_then(|s| s.model_job.as_ref()).map(|j| j.ended);
    step_until(&mut harness, 120, "the spectra job", |app| job(app) == Some(Some(false)));
    assert_eq!(harness.state().options.strip_metric, Metric::Alpha, "the chart switched to what was computed");
    assert!(!shows(&harness, "to see this metric across layers"), "and has data");
    // On a narrow window the alpha column is still in the table (it scrolls sideways).
    assert!(harness.query_all_by(|n| n.label().is_some_and(|l| l.starts_with("alpha"))).next().is_some());
}

/// The attention view on SmolLM2 (its GGUF): the shipped prompt runs in the background, every
/// head of the layer arrives with the first token listed as a sink, the maps are the runtime's
/// own, and the pointer on a cell reads that head's exact probability.
#[test]
fn the_attention_view_runs_the_prompt_and_reads_an_exact_probability_under_the_pointer() {
    use weightbench::app::attention::DEFAULT_PROMPT;
    use weightbench::runtime::Model;
    use weightbench::runtime::tokenizer::TextTokenizer;
    let Some(path) = crate::fixtures::real_model("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let mut harness = open_at([1280.0, 800.0], path.clone());
    harness.get_by_role_and_label(Role::Button, "Attention").click();
    harness.run_steps(2);
    assert!(shows(&harness, "Choose a layer and press Run."));
    harness.state_mut().session.as_mut().unwrap().attention.layer = 15;
    harness.get_by_role_and_label(Role::Button, "Run").click();
    let state = |app: &WorkbenchApp| {
        app.session.as_ref().and_then(|s| {
            s.attention.run.as_ref().map(|r| match r {
                Computed::Ready(run) => Ok(run.clone()),
                Computed::Failed(e) => Err(format!("failed: {e}")),
                Computed::Pending(_) => Err(String::new()),
            })
        })
    };
    step_until(&mut harness, 180, "the attention run", |app| match state(app) {
        Some(Ok(_)) => true,
        Some(Err(e)) => !e.is_empty(),
        None => false,
    });
    let run = state(harness.state()).unwrap().unwrap_or_else(|e| panic!("the run failed: {e:?}"));
    assert_eq!((run.layer, run.maps.len()), (15, 9));
    assert!(run.sinks.first().is_some_and(|s| s.index == 0), "{:?}", run.sinks);
    assert!(shows(&harness, "Attention sinks: 0"), "the sinks are listed");
    // The runtime's own maps for the same prompt.
    let ckpt = weightbench::checkpoint::Checkpoint::open(&path).unwrap();
    let ids = TextTokenizer::of(&ckpt).unwrap().encode(DEFAULT_PROMPT.trim()).unwrap();
    let cancel = weightbench::cancel::Cancel::new();
    let model = Model::load(&ckpt, None, &weightbench::compute::cpu::CpuBackend, &|_, _| {}, &cancel).unwrap();
    let (_, maps) = model.forward(&ids, &[(15, 4)], &cancel).unwrap();
    assert_eq!(maps[0].probs, run.maps[4].probs, "head 4 is the runtime's");
    // Head 4 large; the pointer on query 20, key 1.
    harness.state_mut().session.as_mut().unwrap().attention.head = 4;
    harness.run_steps(2);
    let t = ids.len();
    let at = harness.state().session.as_ref().unwrap().attention.map_transform.expect("the map was drawn");
    // Key 1 (key 0, the sink, carries a marker line with its own hover label).
    let pos = at.position_from_point(&egui_plot::PlotPoint::new(1.5, -20.5));
    let expected = format!(
        "head 4: query 20 “{}”, key 1 “{}”\nprobability {:.6}",
        run.tokens[20],
        run.tokens[1],
        run.maps[4].probs[20 * t + 1]
    );
    assert!(hover_until_shown(&mut harness, pos, &expected), "a tooltip reading {expected:?}");
}

/// With a plan, the attention view runs the planned model beside the original: its maps are
/// distributions that differ from the original's, "plan - original" shows the difference, and
/// the tooltip under the pointer reads the exact change in probability. On the demo (BERT).
#[test]
fn the_attention_view_shows_the_plans_difference_with_its_exact_value() {
    use weightbench::app::attention::Shown;
    let mut harness = open_at([1280.0, 800.0], crate::fixtures::demo());
    harness.state_mut().plan_edit(|p, ckpt| p.add_rule(ckpt, "*.weight", "q4_0")).unwrap();
    harness.get_by_role_and_label(Role::Button, "Attention").click();
    harness.run_steps(2);
    harness.state_mut().session.as_mut().unwrap().attention.layer = 2;
    harness.get_by_role_and_label(Role::CheckBox, "apply the plan").click();
    harness.run_steps(1);
    assert!(harness.state().session.as_ref().unwrap().attention.with_plan, "the plan is applied");
    harness.get_by_role_and_label(Role::Button, "Run").click();
    step_until(&mut harness, 180, "the attention run with the plan", |app| {
        let a = &app.session.as_ref().unwrap().attention;
        matches!(&a.run, Some(Computed::Ready(_)) | Some(Computed::Failed(_)))
    });
    let run = match &harness.state().session.as_ref().unwrap().attention.run {
        Some(Computed::Ready(r)) => r.clone(),
        Some(Computed::Failed(e)) => panic!("the run failed: {e}"),
        _ => unreachable!(),
    };
    let planned = run.plan_maps.as_ref().expect("the planned model's maps");
    let t = run.tokens.len();
    let (orig, plan) = (&run.maps[3].probs, &planned[3].probs);
    for i in 0..t {
        let sum: f64 = plan[i * t..(i + 1) * t].iter().map(|&p| f64::from(p)).sum();
        assert!((sum - 1.0).abs() < 1e-5, "row {i} of the planned map sums to {sum}");
    }
    let largest = orig.iter().zip(plan).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(largest > 1e-4, "q4_0 moves the map ({largest})");
    harness.get_by_role_and_label(Role::Button, "plan - original").click();
    harness.run_steps(2);
    assert_eq!(harness.state().session.as_ref().unwrap().attention.shown, Shown::Difference);
    harness.state_mut().session.as_mut().unwrap().attention.head = 3;
    harness.run_steps(2);
    let at = harness.state().session.as_ref().unwrap().attention.map_transform.expect("the map was drawn");
    let (q, k) = (4usize, 2usize);
    let pos = at.position_from_point(&egui_plot::PlotPoint::new(k as f64 + 0.5, -(q as f64) - 0.5));
    let expected = format!(
        "head 3: query {q} “{}”, key {k} “{}”\nchange in probability {:.6}",
        run.tokens[q],
        run.tokens[k],
        plan[q * t + k] - orig[q * t + k]
    );
    assert!(hover_until_shown(&mut harness, pos, &expected), "a tooltip reading {expected:?}");
}

/// A checkpoint that changes on disk while open (here: grown, then truncated to half) is noticed
/// within a second: its work is cancelled, the window says so and opens it again — the grown file
/// opens, the truncated one gives its error — and nothing reads the lost bytes (no SIGBUS).
#[test]
fn a_checkpoint_changed_on_disk_is_noticed_and_opened_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    std::fs::copy(demo().join("model.safetensors"), &path).unwrap();
    let mut harness = open_at([1100.0, 700.0], path.clone());
    step_until(&mut harness, 60, "the first work to finish", |app| !app.busy());
    let grow = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut &grow, &[0u8; 64]).unwrap();
    drop(grow);
    step_until(&mut harness, 5, "the change to be noticed", |app| {
        app.message.as_deref().is_some_and(|m| m.contains("changed on disk") && m.contains("its size went from"))
    });
    // Reopened: the 64 bytes belong to no tensor, which the reader refuses with its reason.
    step_until(&mut harness, 30, "the reopen", |app| app.opening.is_none());
    assert!(harness.state().session.is_none());
    assert!(
        harness.state().message.as_deref().is_some_and(|m| m.contains("not fully indexed")),
        "{:?}",
        harness.state().message
    );
    // Truncated to half, then opened again from a good copy: the window works on.
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len / 2).unwrap();
    std::fs::copy(demo().join("model.safetensors"), &path).unwrap();
    harness.state_mut().open(path.clone());
    step_until(&mut harness, 60, "the good copy to open", |app| app.session.is_some());
    step_until(&mut harness, 60, "its work", |app| !app.busy());
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len / 2).unwrap();
    step_until(&mut harness, 5, "the truncation to be noticed", |app| {
        app.message.as_deref().is_some_and(|m| m.contains("changed on disk"))
    });
    step_until(&mut harness, 30, "the reopen", |app| app.opening.is_none());
    assert!(harness.state().session.is_none());
    assert!(
        harness.state().message.as_deref().is_some_and(|m| m.contains("model.safetensors")),
        "{:?}",
        harness.state().message
    );
}
