//! The window's panels: top bar (open, recent, compute backend, theme, views), status bar (what
//! is open, whole-model job progress with ETA and cancel, messages), the tensor tree, and the
//! central view.

pub mod attention;
pub mod distribution;
pub mod heatmap;
pub mod metadata;
pub mod overview;
pub mod plan;
pub mod save;
pub mod spectrum;
pub mod tree;

use super::jobs::{ModelJobKind, Pick};
use super::{View, WorkbenchApp};
use crate::compute::select::BackendChoice;
use crate::format;

/// Opening checkpoints, the compute backend, the theme and the view tabs.
pub fn top_bar_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    egui::Panel::top("top_bar").show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.strong("weightbench");
            ui.separator();
            if ui.button("Open file…").clicked() {
                app.pick(Pick::CheckpointFile);
            }
            if ui.button("Open folder…").clicked() {
                app.pick(Pick::CheckpointFolder);
            }
            let recent = app.recent.clone();
            ui.menu_button("Recent", |ui| {
                if recent.is_empty() {
                    ui.weak("nothing opened yet");
                }
                for path in recent {
                    if ui.button(path.display().to_string()).clicked() {
                        app.open(path);
                        ui.close();
                    }
                }
            });
            ui.separator();
            let mut choice = app.backend_choice;
            egui::ComboBox::from_label("Compute")
                .selected_text(format!("{choice:?}").to_lowercase())
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut choice, BackendChoice::Auto, "auto")
                        .on_hover_text("the GPU when a hardware adapter exists, else the CPU");
                    ui.selectable_value(&mut choice, BackendChoice::Gpu, "gpu")
                        .on_hover_text("any GPU adapter, software Vulkan included");
                    ui.selectable_value(&mut choice, BackendChoice::Cpu, "cpu");
                })
                .response
                .on_hover_text(app.backend_label());
            if choice != app.backend_choice {
                app.set_backend(choice);
            }
            if ui.button(if app.dark { "Light theme" } else { "Dark theme" }).clicked() {
                app.dark = !app.dark;
            }
            ui.separator();
            let label = ui.label("Path:");
            let field = egui::TextEdit::singleline(&mut app.path_input)
                .hint_text("a .safetensors or .gguf file, an index.json, or a folder")
                .desired_width((ui.available_width() - 60.0).max(80.0));
            let response = ui.add(field).labelled_by(label.id);
            let enter = response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if (ui.button("Open").clicked() || enter) && !app.path_input.trim().is_empty() {
                app.open(app.path_input.trim().into());
            }
        });
        ui.horizontal(|ui| {
            for view in View::ALL {
                if ui.selectable_label(app.view == view, view.label()).clicked() {
                    app.view = view;
                }
            }
        });
    });
}

/// What is open, the whole-model job's progress, and the last message.
pub fn status_bar_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    egui::Panel::bottom("status_bar").show(ui, |ui| {
        let mut cancel = false;
        if let Some(job) = app.session.as_ref().and_then(|s| s.model_job.as_ref()).filter(|j| j.ended.is_none()) {
            ui.horizontal(|ui| {
                let what = match job.kind {
                    ModelJobKind::Stats => "Computing statistics of every tensor",
                    ModelJobKind::Spectra => "Computing spectra of every matrix",
                };
                let eta = job.eta().map(|d| format!(" · about {} s left", d.as_secs() + 1)).unwrap_or_default();
                cancel = ui.button("Cancel").clicked();
                ui.add(
                    egui::ProgressBar::new(job.fraction())
                        .desired_width(320.0)
                        .text(format!("{what}: {:.0}%{eta}", job.fraction() * 100.0)),
                );
            });
        }
        if cancel {
            app.cancel_model_job();
        }
        let mut cancel_export = false;
        if let Some(job) = app.session.as_ref().and_then(|s| s.export_job.as_ref()).filter(|j| j.result.is_none()) {
            ui.horizontal(|ui| {
                let eta = crate::app::jobs::eta(job.done, job.total, job.elapsed)
                    .map(|d| format!(" · about {} s left", d.as_secs() + 1))
                    .unwrap_or_default();
                cancel_export = ui.button("Cancel").clicked();
                ui.add(egui::ProgressBar::new(job.fraction()).desired_width(320.0).text(format!(
                    "Exporting to {}: {:.0}%{eta}",
                    job.output.display(),
                    job.fraction() * 100.0
                )));
            });
        }
        if cancel_export {
            app.cancel_export();
        }
        ui.horizontal(|ui| {
            if app.backend_starting {
                ui.spinner();
                ui.label("starting the GPU…");
                ui.separator();
            }
            if let Some(path) = &app.opening {
                ui.spinner();
                ui.label(format!("opening {}", path.display()));
            } else if let Some(s) = &app.session {
                let ckpt = &s.ckpt;
                let stored = if ckpt.has_weights() {
                    format!("{} in {} file(s)", format::bytes(ckpt.total_bytes()), ckpt.files().len())
                } else {
                    format!("{} (a report: no weights here)", format::bytes(ckpt.total_bytes()))
                };
                ui.label(format!(
                    "{} · {} · {} tensors · {} parameters · {stored} · computing on {}",
                    ckpt.path().display(),
                    ckpt.architecture().unwrap_or("unknown architecture"),
                    ckpt.tensors().len(),
                    format::count(ckpt.total_params()),
                    app.backend_label()
                ));
            }
            if let Some(message) = app.message.clone() {
                ui.separator();
                ui.colored_label(ui.visuals().warn_fg_color, message);
                if ui.small_button("Dismiss").clicked() {
                    app.message = None;
                }
            }
        });
    });
}

/// The current view of the open checkpoint.
pub fn central_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    egui::CentralPanel::default().show(ui, |ui| {
        if app.session.is_none() {
            ui.centered_and_justified(|ui| {
                if app.opening.is_some() {
                    ui.spinner();
                } else {
                    ui.label("Open a checkpoint: Open file…, Open folder…, Recent, a path above, or drop a file here.");
                }
            });
            return;
        }
        match app.view {
            View::Overview => overview::overview_ui(app, ui),
            View::Distribution => distribution::distribution_ui(app, ui),
            View::Spectrum => spectrum::spectrum_ui(app, ui),
            View::Heatmap => heatmap::heatmap_ui(app, ui),
            View::Plan => plan::plan_ui(app, ui),
            View::Attention => attention::attention_ui(app, ui),
            View::Metadata => {
                if let Some(s) = &app.session {
                    metadata::metadata_ui(ui, &s.ckpt);
                }
            }
        }
    });
}

/// The selected tensor's heading and facts; `None` when nothing is selected.
pub fn selected_header_ui(app: &WorkbenchApp, ui: &mut egui::Ui) -> Option<usize> {
    let session = app.session.as_ref()?;
    let Some(index) = session.selected else {
        ui.label("Select a tensor in the tree (arrow keys move through it).");
        return None;
    };
    let t = session.ckpt.tensors().get(index)?;
    ui.horizontal(|ui| {
        ui.heading(&t.name);
        ui.weak(format!(
            "{} · {} · {} · {} · layer {} · {}",
            t.dtype,
            t.shape_string(),
            format::count(t.numel()),
            format::bytes(t.bytes),
            t.layer.map(|l| l.to_string()).unwrap_or_else(|| "—".into()),
            t.role
        ));
    });
    Some(index)
}

/// Where the importance comes from, with the two ways to get one: an imatrix file, or the
/// model run on the shipped calibration text (progress and cancel while it runs).
pub fn importance_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui, without: &str) {
    let source = app.imatrix.as_ref().map(|m| {
        let h = if m.hessians.is_empty() { "" } else { " + Hessians" };
        format!("importance: {}{h}", m.source)
    });
    ui.weak(source.unwrap_or_else(|| format!("importance: {without}")));
    if ui.button("Load imatrix…").on_hover_text("llama.cpp imatrix, GGUF or legacy .dat").clicked() {
        app.pick(Pick::Imatrix);
    }
    match &app.calibrating {
        Some((cancel, progress)) => {
            let cancel = cancel.clone();
            ui.add(egui::Spinner::new());
            ui.label(match progress {
                Some((what, done, total)) => format!("calibrating: {what} {done}/{total}"),
                None => "calibrating…".into(),
            });
            if ui.button("Cancel").clicked() {
                cancel.cancel();
            }
        }
        None => {
            if ui
                .button("Calibrate")
                .on_hover_text(
                    "Run the model (on the CPU) on the shipped calibration text: every linear layer's input mean \
                     squares (an imatrix) and Hessians (for +gptq)",
                )
                .clicked()
            {
                app.start_calibration();
            }
        }
    }
}

/// Where a result was computed: the backend and device, and — in the warning colour, so it
/// cannot be missed — the reason when it ran elsewhere than asked.
pub fn computed_on_ui(ui: &mut egui::Ui, computed: &crate::compute::Provenance) {
    let text = format!("computed on {}", computed.describe());
    if computed.fallback.is_some() {
        ui.colored_label(ui.visuals().warn_fg_color, text);
    } else {
        ui.weak(text);
    }
}

/// A spinner with a label, or an error, for a result that is not ready.
pub fn not_ready_ui<T>(ui: &mut egui::Ui, state: Option<&super::Computed<T>>, what: &str) {
    match state {
        Some(super::Computed::Failed(e)) => {
            ui.colored_label(ui.visuals().error_fg_color, format!("{what} failed: {e}"));
        }
        _ => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("computing {what}…"));
            });
        }
    }
}
