//! The real app driven through egui_kittest: it opens the demo, selects tensors and shows their
//! histograms, with the work done off the UI thread.

use std::time::{Duration, Instant};

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use weightbench::app::{StatsState, WorkbenchApp};

use crate::fixtures::demo;

/// Steps the app until `done` holds, for at most `seconds` (jobs run on worker threads).
fn step_until(harness: &mut Harness<'_, WorkbenchApp>, seconds: u64, what: &str, done: impl Fn(&WorkbenchApp) -> bool) {
    let start = Instant::now();
    while !done(harness.state()) {
        assert!(start.elapsed() < Duration::from_secs(seconds), "timed out waiting for {what}");
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.run_steps(2);
}

/// Whether any widget shows `text` (as its label or, for plain labels, its value).
fn shows(harness: &Harness<'_, WorkbenchApp>, text: &str) -> bool {
    let text = text.to_owned();
    harness
        .query_all_by(move |n| {
            n.label().is_some_and(|l| l.contains(text.as_str())) || n.value().is_some_and(|v| v.contains(text.as_str()))
        })
        .next()
        .is_some()
}

fn selected_histogram_ready(app: &WorkbenchApp) -> bool {
    app.session
        .as_ref()
        .is_some_and(|s| s.selected.is_some_and(|i| matches!(s.stats.get(&i), Some(StatsState::Ready(_)))))
}

#[test]
fn opens_the_demo_and_shows_a_selected_tensor() {
    let mut harness =
        Harness::builder().with_size([1280.0, 800.0]).build_eframe(|cc| WorkbenchApp::new(&cc.egui_ctx, Some(demo())));
    step_until(&mut harness, 60, "the demo to open", |app| app.session.is_some());
    step_until(&mut harness, 60, "the first histogram", selected_histogram_ready);
    // The largest tensor is selected first: the word embeddings.
    harness.get_by_role_and_label(Role::Button, "embeddings.word_embeddings.weight").click();
    harness.run_steps(2);
    assert!(shows(&harness, "Histogram of 11720448 finite values"));

    // Select a tensor inside a layer: open the layer, click the query weight.
    harness.get_by_label_contains("layer 2 (").click();
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, "attention.self.query.weight").click();
    harness.run_steps(1);
    let session = harness.state().session.as_ref().unwrap();
    let selected = &session.ckpt.tensors()[session.selected.unwrap()];
    assert_eq!(selected.name, "encoder.layer.2.attention.self.query.weight");
    step_until(&mut harness, 60, "the query weight's histogram", selected_histogram_ready);
    assert!(shows(&harness, "[384, 384]"), "the shape is shown");
    assert!(shows(&harness, "Histogram of 147456 finite values"));
    assert!(shows(&harness, "attn.q"), "the role is shown");
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
    assert!(harness.state().session.as_ref().unwrap().show_metadata);
    assert!(shows(&harness, "general.architecture"));
    assert!(shows(&harness, "llama.block_count"));
    assert!(shows(&harness, "UINT32"), "value types are shown");
    // Selecting a tensor leaves the metadata view.
    harness.get_by_label_contains("layer 0 (").click();
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::Button, "attn_q.weight").click();
    harness.run_steps(2);
    assert!(!harness.state().session.as_ref().unwrap().show_metadata);
    step_until(&mut harness, 30, "the Q8_0 histogram", selected_histogram_ready);
    assert!(shows(&harness, "Q8_0"));
}
