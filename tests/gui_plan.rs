//! The plan editor driven through egui_kittest on the demo checkpoint: schemes assigned in bulk
//! and refused with a readable reason, undo and redo from the keyboard and the buttons, the
//! budget and the errors following every edit, auto-allocation filling the plan and its frontier,
//! an export read back against the previews, a comparison, and plans saved and loaded.

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use weightbench::app::{Computed, ExportChoice, View, WorkbenchApp};
use weightbench::checkpoint::Checkpoint;

use crate::fixtures::{TempDir, demo};
use crate::gui::{shows, step_until};

/// Every tensor's current scheme measured.
fn all_measured(app: &WorkbenchApp) -> bool {
    let s = app.session.as_ref().unwrap();
    (0..s.ckpt.tensors().len()).all(|i| matches!(s.plan.preview_of(i), Some(Computed::Ready(_))))
}

fn open_plan_view() -> Harness<'static, WorkbenchApp> {
    let path = demo();
    let mut harness = Harness::builder()
        .with_size([1360.0, 860.0])
        .build_eframe(move |cc| WorkbenchApp::new(&cc.egui_ctx, Some(path)));
    step_until(&mut harness, 60, "the demo to open", |app| app.session.is_some());
    harness.get_by_role_and_label(Role::Button, "Plan").click();
    step_until(&mut harness, 120, "every tensor's preview", all_measured);
    harness
}

fn index_of(app: &WorkbenchApp, name: &str) -> usize {
    app.session.as_ref().unwrap().ckpt.tensors().iter().position(|t| t.name == name).unwrap()
}

fn scheme_of(app: &WorkbenchApp, name: &str) -> String {
    let s = app.session.as_ref().unwrap();
    s.plan.resolved_of(index_of(app, name)).unwrap().scheme.clone()
}

fn plan_bytes(app: &WorkbenchApp) -> u64 {
    let s = app.session.as_ref().unwrap();
    s.plan.totals(&s.ckpt).bytes
}

#[test]
fn schemes_are_assigned_in_bulk_refused_with_a_reason_and_undone_and_redone() {
    let mut harness = open_plan_view();
    assert!(shows(&harness, "of 13.5 MiB budget"), "the budget bar is in sight (5 bpw of 22.7M parameters)");
    let before = plan_bytes(harness.state());
    let ffn = "encoder.layer.2.intermediate.dense.weight";
    assert_eq!(scheme_of(harness.state(), ffn), "keep");
    // Select every feed-forward expansion by pattern.
    harness.state_mut().plan_filter = "*.intermediate.dense.weight".into();
    harness.get_by_role_and_label(Role::Button, "Select shown").click();
    harness.run_steps(2);
    assert_eq!(harness.state().session.as_ref().unwrap().plan.selection.len(), 6);
    // q4_k needs rows of whole 256-value blocks; these have 384 columns: refused, said, nothing changed.
    harness.state_mut().session.as_mut().unwrap().plan.bulk_scheme = "q4_k".into();
    harness.get_by_role_and_label(Role::Button, "Assign").click();
    harness.run_steps(2);
    assert!(shows(&harness, "cannot take `q4_k`"), "the window says why");
    assert_eq!(scheme_of(harness.state(), ffn), "keep");
    // q8_0 fits: the six tensors change, the budget follows at once, the errors once measured.
    harness.state_mut().session.as_mut().unwrap().plan.bulk_scheme = "q8_0".into();
    harness.get_by_role_and_label(Role::Button, "Assign").click();
    harness.run_steps(2);
    assert_eq!(scheme_of(harness.state(), ffn), "q8_0");
    let after = plan_bytes(harness.state());
    let params = 6 * 1536 * 384;
    assert_eq!(before - after, params * 2 - params / 32 * 34, "F16 to q8_0 on six 1536×384 matrices");
    step_until(&mut harness, 120, "the edited tensors' previews", all_measured);
    let s = harness.state().session.as_ref().unwrap();
    let totals = s.plan.totals(&s.ckpt);
    assert!(totals.sse > 0.0 && totals.measured == 104, "{totals:?}");
    // Undo from the keyboard, redo with the button.
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    harness.run_steps(2);
    assert_eq!(scheme_of(harness.state(), ffn), "keep", "Ctrl+Z takes the edit back");
    assert_eq!(plan_bytes(harness.state()), before);
    harness.get_by_role_and_label(Role::Button, "Redo").click();
    harness.run_steps(2);
    assert_eq!(scheme_of(harness.state(), ffn), "q8_0");
    harness.key_press_modifiers(egui::Modifiers::COMMAND | egui::Modifiers::SHIFT, egui::Key::Z);
    harness.run_steps(1);
    assert_eq!(scheme_of(harness.state(), ffn), "q8_0", "nothing left to redo");
    // The previews of the undone and redone plans were kept: nothing is measured again.
    assert!(all_measured(harness.state()));
    // A rule: every weight to q8_0 but the overrides; its rows known to the editor.
    let s = harness.state_mut().session.as_mut().unwrap();
    s.plan.new_rule = ("*.weight".into(), "q8_0".into());
    harness.get_by_role_and_label(Role::Button, "Add rule").click();
    harness.run_steps(2);
    assert_eq!(scheme_of(harness.state(), "encoder.layer.0.attention.self.query.weight"), "q8_0");
    assert_eq!(scheme_of(harness.state(), "encoder.layer.0.attention.self.query.bias"), "keep", "1-D stay kept");
}

#[test]
fn auto_allocation_fills_the_plan_within_the_budget_and_marks_it_on_the_frontier() {
    let mut harness = open_plan_view();
    let cache = TempDir::new();
    harness.state_mut().measure_cache = Some(cache.path().to_owned());
    harness.get_by_role_and_label(Role::Button, "Auto-allocate…").click();
    harness.run_steps(2);
    let dialog = harness.state_mut().auto_dialog.as_mut().unwrap();
    dialog.target_bpw = 6.0;
    for (c, on) in &mut dialog.candidates {
        *on = matches!(c.as_str(), "q4_0" | "q5_0" | "q8_0");
    }
    harness.get_by_role_and_label(Role::Button, "Run").click();
    step_until(&mut harness, 300, "the allocation", |app| {
        app.session.as_ref().unwrap().auto_job.as_ref().is_some_and(|j| j.ended.is_some())
    });
    let s = harness.state().session.as_ref().unwrap();
    let ended = s.auto_job.as_ref().unwrap().ended.clone().unwrap();
    assert!(ended.as_ref().is_ok_and(|m| m.contains("0 from the cache") && !m.contains("measured 0 ")), "{ended:?}");
    let auto = s.plan.auto.clone().unwrap();
    assert!(auto.frontier.len() > 2 && !auto.free.is_empty());
    let chosen: std::collections::BTreeSet<String> =
        auto.free.iter().map(|&i| s.plan.resolved_of(i).unwrap().scheme.clone()).collect();
    assert!(chosen.iter().all(|c| ["q4_0", "q5_0", "q8_0", "keep"].contains(&c.as_str())), "{chosen:?}");
    // The whole plan within 6 bpw: the budget bar's target is the dialog's.
    let totals = s.plan.totals(&s.ckpt);
    assert_eq!(s.plan.target_bpw, 6.0);
    assert!(totals.bytes <= s.plan.budget_bytes(&s.ckpt) && totals.bpw() > 5.5, "{totals:?}");
    assert!(auto.free.iter().all(|&i| s.ckpt.tensors()[i].shape.len() == 2), "matrices only");
    step_until(&mut harness, 120, "the plan's previews", all_measured);
    let s = harness.state().session.as_ref().unwrap();
    let [bpw, objective] = s.plan.frontier_marker(&s.ckpt).expect("the marker once measured");
    let best = auto.frontier.iter().filter(|p| p.bpw <= bpw + 1e-9).map(|p| p.objective).fold(f64::INFINITY, f64::min);
    assert!(objective <= best * (1.0 + 1e-9) || objective >= best, "on or above the frontier");
    assert!(shows(&harness, "Pareto frontier of the last allocation"));
    // An edit by hand moves the marker off the frontier.
    let i = auto.free.iter().copied().max_by_key(|&i| s.ckpt.tensors()[i].numel()).unwrap();
    let other = if s.plan.resolved_of(i).unwrap().scheme == "q4_0" { "q8_0" } else { "q4_0" };
    harness.state_mut().plan_edit(|e, c| e.set_scheme(c, &[i], other)).unwrap();
    step_until(&mut harness, 120, "the edit's preview", all_measured);
    let s = harness.state().session.as_ref().unwrap();
    assert_ne!(s.plan.frontier_marker(&s.ckpt), Some([bpw, objective]), "the marker follows the plan");
    assert!(harness.state().session.as_ref().unwrap().plan.can_undo_redo().0);
}

#[test]
fn export_from_the_plan_view_reads_back_as_previewed_and_diffs_against_the_source() {
    let dir = TempDir::new();
    let mut harness = open_plan_view();
    let plan_path = dir.join("demo.plan.toml");
    let (q, o) = ("encoder.layer.1.attention.self.query.weight", "encoder.layer.4.output.dense.weight");
    let (iq, io) = (index_of(harness.state(), q), index_of(harness.state(), o));
    harness.state_mut().plan_edit(|e, c| e.set_scheme(c, &[iq], "int4_g128")).unwrap();
    harness.state_mut().plan_edit(|e, c| e.set_scheme(c, &[io], "q8_0")).unwrap();
    harness.state_mut().plan_edit(|e, c| e.set_pinned(c, &[io], true)).unwrap();
    step_until(&mut harness, 120, "the edits' previews", all_measured);
    // Saved and loaded back: the same schemes, the pin kept.
    harness.state_mut().save_plan(&plan_path);
    harness.state_mut().plan_edit(|e, c| e.clear_overrides(c, &[iq, io])).unwrap();
    assert_eq!(scheme_of(harness.state(), q), "keep");
    let loaded = weightbench::quant::Plan::load(&plan_path).unwrap();
    harness.state_mut().plan_edit(|e, c| e.replace(c, loaded)).unwrap();
    assert_eq!((scheme_of(harness.state(), q), scheme_of(harness.state(), o)), ("int4_g128".into(), "q8_0".into()));
    assert!(harness.state().session.as_ref().unwrap().plan.is_pinned(o));
    // GGUF has no writer for BERT: refused with the reason, nothing written.
    harness.get_by_role_and_label(Role::Button, "Export…").click();
    harness.run_steps(2);
    let gguf = dir.join("demo.gguf");
    {
        let d = harness.state_mut().export_dialog.as_mut().unwrap();
        d.format = ExportChoice::Gguf;
        d.output = gguf.display().to_string();
    }
    harness.run_steps(1); // the dialog redrawn for GGUF (no factors box): its button moved
    harness.get_by_role_and_label(Role::Button, "Export").click();
    harness.run_steps(2);
    assert!(harness.state().session.as_ref().unwrap().export_job.is_some(), "{:?}", harness.state().message);
    let ended =
        |app: &WorkbenchApp| app.session.as_ref().unwrap().export_job.as_ref().is_some_and(|j| j.result.is_some());
    step_until(&mut harness, 120, "the refused export", ended);
    assert!(shows(&harness, "nothing was written"), "the dialog says why");
    assert!(!gguf.exists());
    // Fake-quant safetensors: written, read back, equal to the previews' numbers.
    let out = dir.join("fakequant");
    {
        let d = harness.state_mut().export_dialog.as_mut().unwrap();
        d.format = ExportChoice::Safetensors;
        d.output = out.display().to_string();
    }
    harness.run_steps(1);
    harness.get_by_role_and_label(Role::Button, "Export again").click();
    harness.run_steps(1);
    step_until(&mut harness, 120, "the export", |app| {
        app.session.as_ref().unwrap().export_job.as_ref().is_some_and(|j| j.result.as_ref().is_some_and(|r| r.is_ok()))
    });
    assert!(shows(&harness, "exported 104 tensors"));
    let s = harness.state().session.as_ref().unwrap();
    let report = s.export_job.as_ref().unwrap().result.clone().unwrap().unwrap();
    for (i, row) in report.tensors.iter().enumerate() {
        let Some(Computed::Ready(p)) = s.plan.preview_of(i) else { panic!("{} not previewed", row.name) };
        assert_eq!((row.sse, row.bytes), (p.sse, p.bytes), "{}: the export's numbers are the preview's", row.name);
    }
    let written = Checkpoint::open(out.join("model.safetensors")).unwrap();
    let source = Checkpoint::open(demo()).unwrap();
    let (a, b) = (source.tensor(q).unwrap(), written.tensor(q).unwrap());
    let (x, y) = (source.decode_all(a).unwrap(), written.decode_all(b).unwrap());
    let sse: f64 = x.iter().zip(&y).map(|(a, b)| f64::from(a - b).powi(2)).sum();
    let Some(Computed::Ready(p)) = s.plan.preview_of(iq) else { panic!() };
    let p = p.clone();
    assert!((sse - p.sse).abs() <= 1e-9 * p.sse.max(1e-30), "the file's error is the preview's: {sse} vs {}", p.sse);
    // Diff the result against the source from the dialog.
    harness.get_by_role_and_label(Role::Button, "Diff it against the source").click_accesskit();
    step_until(&mut harness, 120, "the comparison", |app| {
        matches!(app.session.as_ref().unwrap().diff, Some((Computed::Ready(_), _)))
    });
    let s = harness.state().session.as_ref().unwrap();
    let Some((Computed::Ready(d), _)) = &s.diff else { unreachable!() };
    let row = d.rows.iter().find(|(i, _)| *i == iq).map(|(_, r)| r).unwrap();
    assert!((row.sse - p.sse).abs() <= 1e-6 * p.sse, "the diff finds the preview's error: {} vs {}", row.sse, p.sse);
    assert!(shows(&harness, "compared with"));
    assert_eq!(harness.state().view, View::Plan);
}

/// Calibrate runs the demo model on the shipped text in the background (progress, then the
/// importance named in the toolbar); `+gptq` then previews with the layer output error of GPTQ
/// beside plain rounding and AWQ, and GPTQ's is the smallest.
#[test]
fn calibration_in_the_window_feeds_gptq_previews() {
    let mut harness = open_plan_view();
    harness.get_by_role_and_label(Role::Button, "Calibrate").click();
    harness.run_steps(2);
    assert!(harness.state().calibrating.is_some(), "a calibration job runs");
    step_until(&mut harness, 180, "the calibration", |app| app.calibrating.is_none());
    let m = harness.state().imatrix.clone().expect("the calibration's importance is loaded");
    assert!(m.source.starts_with("calibration.txt, ") && !m.hessians.is_empty(), "{}", m.source);
    harness.run_steps(2);
    assert!(shows(&harness, "importance: calibration.txt"), "the toolbar names the importance");
    let ffn = "encoder.layer.2.intermediate.dense.weight";
    harness.state_mut().plan_filter = ffn.into();
    harness.get_by_role_and_label(Role::Button, "Select shown").click();
    harness.run_steps(2);
    harness.state_mut().session.as_mut().unwrap().plan.bulk_scheme = "int4_g128+gptq".into();
    harness.get_by_role_and_label(Role::Button, "Assign").click();
    let i = index_of(harness.state(), ffn);
    harness.state_mut().session.as_mut().unwrap().selected = Some(i);
    step_until(&mut harness, 180, "the GPTQ preview", all_measured);
    harness.run_steps(2);
    assert_eq!(scheme_of(harness.state(), ffn), "int4_g128+gptq");
    let s = harness.state().session.as_ref().unwrap();
    let Some(Computed::Ready(p)) = s.plan.preview_of(i) else { panic!("no preview") };
    let o = p.method.as_ref().and_then(|m| m.output_error.clone()).expect("GPTQ's output errors");
    assert!(o.gptq < o.plain && o.gptq < o.awq.unwrap(), "{o:?}");
    assert!(shows(&harness, "layer output error on"), "the detail shows GPTQ beside rounding and AWQ");
}

#[test]
fn snapshot_of_the_plan_view() {
    // Through a link at a fixed place: the window shows the checkpoint's path.
    let fixed = std::env::temp_dir().join("weightbench-snapshot-plan-demo");
    let _ = std::fs::remove_file(&fixed);
    std::os::unix::fs::symlink(demo(), &fixed).unwrap();
    let mut harness = Harness::builder()
        .with_size([1100.0, 700.0])
        .build_eframe(move |cc| WorkbenchApp::new(&cc.egui_ctx, Some(fixed)));
    step_until(&mut harness, 60, "the demo to open", |app| app.session.is_some());
    harness.get_by_role_and_label(Role::Button, "Plan").click();
    harness.run_steps(1);
    let plan = "[[rule]]\nmatch = \"*.weight\"\nscheme = \"q5_0\"\n[[rule]]\nmatch = \"*.attention.output.dense.weight\"\n\
                scheme = \"q8_0\"\n[tensor.\"encoder.layer.3.output.dense.weight\"]\nscheme = \"int4_g128\"\npinned = true\n";
    let plan = weightbench::quant::Plan::parse_toml(plan, "snapshot.toml").unwrap();
    harness.state_mut().plan_edit(|e, c| e.replace(c, plan)).unwrap();
    let i = index_of(harness.state(), "encoder.layer.3.output.dense.weight");
    harness.state_mut().select(i);
    step_until(&mut harness, 120, "every preview and the error map", |app| {
        let s = app.session.as_ref().unwrap();
        all_measured(app) && s.plan.error_maps.values().any(|m| matches!(m, Computed::Ready(_)))
    });
    harness.snapshot("plan");
}

/// Auto-allocate with the KL objective: the model runs on the shipped calibration text in the
/// background and each free tensor's candidates are measured by the model's KL divergence; on
/// SmolLM2 with every matrix but two pinned, both take the candidate that costs the output least.
#[test]
fn auto_allocation_by_kl_measures_the_models_output() {
    let Some(path) = crate::fixtures::real_model("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let mut harness = Harness::builder()
        .with_size([1360.0, 860.0])
        .build_eframe(move |cc| WorkbenchApp::new(&cc.egui_ctx, Some(path)));
    step_until(&mut harness, 60, "SmolLM2 to open", |app| app.session.is_some());
    harness.get_by_role_and_label(Role::Button, "Plan").click();
    harness.run_steps(2);
    let free = ["blk.0.attn_k.weight", "blk.0.attn_v.weight"];
    let pinned: Vec<usize> = {
        let s = harness.state().session.as_ref().unwrap();
        s.ckpt.tensors().iter().enumerate().filter(|(_, t)| !free.contains(&t.name.as_str())).map(|(i, _)| i).collect()
    };
    harness.state_mut().plan_edit(|e, c| e.set_pinned(c, &pinned, true)).unwrap();
    harness.state_mut().measure_cache = None;
    harness.get_by_role_and_label(Role::Button, "Auto-allocate…").click();
    harness.run_steps(2);
    let dialog = harness.state_mut().auto_dialog.as_mut().unwrap();
    dialog.target_bpw = 6.0;
    for (c, on) in &mut dialog.candidates {
        *on = matches!(c.as_str(), "q4_0" | "q8_0");
    }
    dialog.objective = weightbench::quant::auto::Objective::Kl;
    harness.get_by_role_and_label(Role::Button, "Run").click();
    step_until(&mut harness, 300, "the allocation", |app| {
        app.session.as_ref().unwrap().auto_job.as_ref().is_some_and(|j| j.ended.is_some())
    });
    let s = harness.state().session.as_ref().unwrap();
    let ended = s.auto_job.as_ref().unwrap().ended.clone().unwrap();
    assert!(ended.as_ref().is_ok_and(|m| m.contains("Kl")), "{ended:?}");
    let auto = s.plan.auto.clone().unwrap();
    assert_eq!(auto.free.len(), 2);
    for &i in &auto.free {
        assert_eq!(s.plan.resolved_of(i).unwrap().scheme, "q8_0", "{}", s.ckpt.tensors()[i].name);
        let Some(Computed::Ready(p)) = s.plan.preview_of(i) else { panic!("no measured row") };
        assert!(p.kl.is_some_and(|kl| kl > 0.0), "{:?}", p.kl);
    }
}
