//! The window's panels: top bar (open), status bar, tensor tree, and the selected tensor.

use egui_plot::{Bar, BarChart, Plot};

use super::{StatsState, WorkbenchApp};
use crate::checkpoint::TensorInfo;
use crate::format;

/// Opening checkpoints: native dialogs, and a path field for desktops without one.
pub fn top_bar_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    egui::Panel::top("top_bar").show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.strong("weightbench");
            ui.separator();
            if ui.button("Open file…").clicked() {
                app.jobs.pick(false);
            }
            if ui.button("Open folder…").clicked() {
                app.jobs.pick(true);
            }
            ui.separator();
            ui.separator();
            let mut choice = app.backend_choice;
            egui::ComboBox::from_label("Compute")
                .selected_text(format!("{choice:?}").to_lowercase())
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut choice, crate::compute::select::BackendChoice::Auto, "auto")
                        .on_hover_text("the GPU when a hardware adapter exists, else the CPU");
                    ui.selectable_value(&mut choice, crate::compute::select::BackendChoice::Gpu, "gpu")
                        .on_hover_text("any GPU adapter, software Vulkan included");
                    ui.selectable_value(&mut choice, crate::compute::select::BackendChoice::Cpu, "cpu");
                })
                .response
                .on_hover_text(app.backend_label());
            if choice != app.backend_choice {
                app.set_backend(choice);
            }
            ui.separator();
            let label = ui.label("Path:");
            let field = egui::TextEdit::singleline(&mut app.path_input)
                .hint_text("a .safetensors file, an index.json, or a folder")
                .desired_width(ui.available_width() - 60.0);
            let response = ui.add(field).labelled_by(label.id);
            let enter = response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if (ui.button("Open").clicked() || enter) && !app.path_input.trim().is_empty() {
                app.open(app.path_input.trim().into());
            }
        });
    });
}

/// What is open, and the last message.
pub fn status_bar_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    egui::Panel::bottom("status_bar").show(ui, |ui| {
        ui.horizontal(|ui| {
            if let Some(path) = &app.opening {
                ui.spinner();
                ui.label(format!("opening {}", path.display()));
            } else if let Some(s) = &app.session {
                let ckpt = &s.ckpt;
                ui.label(format!(
                    "{} · {} · {} tensors · {} parameters · {} in {} file(s) · computing on {}",
                    ckpt.path().display(),
                    ckpt.architecture().unwrap_or("unknown architecture"),
                    ckpt.tensors().len(),
                    format::count(ckpt.total_params()),
                    format::bytes(ckpt.total_bytes()),
                    ckpt.files().len(),
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

/// The tensor tree, grouped by layer, with a name filter.
pub fn tree_panel_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    egui::Panel::left("tensor_tree").default_size(340.0).resizable(true).show(ui, |ui| {
        ui.horizontal(|ui| {
            let label = ui.label("Filter:");
            ui.text_edit_singleline(&mut app.filter).labelled_by(label.id);
        });
        ui.separator();
        let Some(session) = &app.session else {
            ui.label("No checkpoint open.");
            return;
        };
        let filter = app.filter.to_lowercase();
        let mut clicked = None;
        let mut metadata_clicked = false;
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            let keys = session.ckpt.metadata().len();
            let label = format!("{} metadata ({keys} keys)", session.ckpt.format().as_str());
            if ui.selectable_label(session.show_metadata, label).clicked() {
                metadata_clicked = true;
            }
            for group in &session.groups {
                let tensors = session.ckpt.tensors();
                let visible: Vec<usize> = group
                    .tensors
                    .iter()
                    .copied()
                    .filter(|&i| filter.is_empty() || tensors[i].name.to_lowercase().contains(&filter))
                    .collect();
                if visible.is_empty() {
                    continue;
                }
                let open_by_default = group.prefix.is_empty() || !filter.is_empty();
                egui::CollapsingHeader::new(format!("{} ({})", group.label, visible.len()))
                    .id_salt(&group.label)
                    .default_open(open_by_default)
                    .open(if filter.is_empty() { None } else { Some(true) })
                    .show(ui, |ui| {
                        for i in visible {
                            let t = &tensors[i];
                            let short = t.name.strip_prefix(group.prefix.as_str()).unwrap_or(&t.name);
                            ui.horizontal(|ui| {
                                let selected = session.selected == Some(i);
                                if ui.selectable_label(selected, short).on_hover_text(&t.name).clicked() {
                                    clicked = Some(i);
                                }
                                ui.weak(format!("{} {}", t.role, t.dtype));
                            });
                        }
                    });
            }
        });
        if let Some(i) = clicked {
            app.select(i);
        }
        if metadata_clicked && let Some(session) = &mut app.session {
            session.show_metadata = true;
        }
    });
}

/// The selected tensor: its facts and its histogram.
pub fn central_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    egui::CentralPanel::default().show(ui, |ui| {
        let Some(session) = &app.session else {
            ui.centered_and_justified(|ui| {
                if app.opening.is_some() {
                    ui.spinner();
                } else {
                    ui.label("Open a checkpoint: Open file…, Open folder…, a path above, or drop a file here.");
                }
            });
            return;
        };
        if session.show_metadata {
            metadata_ui(ui, &session.ckpt);
            return;
        }
        let Some(index) = session.selected else {
            ui.label("Select a tensor in the tree.");
            return;
        };
        let Some(t) = session.ckpt.tensors().get(index) else { return };
        ui.heading(&t.name);
        details_ui(ui, t, &session.ckpt.file_path(t).display().to_string());
        ui.separator();
        match session.stats.get(&index) {
            Some(StatsState::Ready(s)) => {
                ui.label(format!(
                    "mean {:.4e} · std {:.4e} · min {} · max {} · skewness {:.3} · kurtosis {:.3} · \
                     outliers >3σ {} · >6σ {} · zeros {}",
                    s.mean, s.std, s.min, s.max, s.skewness, s.kurtosis, s.outliers_3sigma, s.outliers_6sigma, s.zeros
                ));
                ui.weak(format!("computed on the {}", s.backend));
                let h = &s.histogram;
                let non_finite = s.nan + s.pos_inf + s.neg_inf;
                ui.label(format!(
                    "Histogram of {} finite values in {} bins over [{}, {}]{}",
                    s.finite,
                    h.counts.len(),
                    h.edges.first().copied().unwrap_or(0.0),
                    h.edges.last().copied().unwrap_or(0.0),
                    if non_finite > 0 { format!(" · {non_finite} NaN/Inf left out") } else { String::new() }
                ));
                histogram_plot_ui(ui, &h.edges, &h.counts);
            }
            Some(StatsState::Pending(_)) => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("computing histogram…");
                });
            }
            Some(StatsState::Failed(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("histogram failed: {e}"));
            }
            None => {}
        }
    });
}

/// The file's key-values as a table (long GGUF arrays summarised).
fn metadata_ui(ui: &mut egui::Ui, ckpt: &crate::checkpoint::Checkpoint) {
    ui.heading("Metadata");
    if let Some(g) = ckpt.gguf() {
        ui.label(format!("GGUF version {}, data alignment {} bytes", g.version, g.alignment));
    }
    egui::ScrollArea::both().auto_shrink([false, false]).show(ui, |ui| {
        egui::Grid::new("metadata_table").num_columns(3).striped(true).show(ui, |ui| {
            ui.strong("key");
            ui.strong("type");
            ui.strong("value");
            ui.end_row();
            for (key, value) in ckpt.metadata() {
                ui.label(key);
                let ty = ckpt.gguf().and_then(|g| g.get(key)).map(|v| v.type_name()).unwrap_or("STRING");
                ui.weak(ty);
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                // Long values (chat templates, summarised token lists) are cut for the table.
                let shown: String = text.chars().take(200).collect();
                let suffix = if shown.len() < text.len() { " …" } else { "" };
                ui.label(format!("{shown}{suffix}")).on_hover_text(text.chars().take(4000).collect::<String>());
                ui.end_row();
            }
        });
    });
}

fn details_ui(ui: &mut egui::Ui, t: &TensorInfo, file: &str) {
    egui::Grid::new("tensor_details").num_columns(2).striped(true).show(ui, |ui| {
        let mut row = |key: &str, value: String| {
            ui.label(key);
            ui.label(value);
            ui.end_row();
        };
        row("dtype", t.dtype.name().to_owned());
        row("shape", t.shape_string());
        row("parameters", format!("{} ({})", t.numel(), format::count(t.numel())));
        row("size", format!("{} ({} bytes)", format::bytes(t.bytes), t.bytes));
        row("layer", t.layer.map(|l| l.to_string()).unwrap_or_else(|| "—".into()));
        row("role", t.role.as_str().to_owned());
        row("file", file.to_owned());
        row("offset", t.offset.to_string());
    });
}

fn histogram_plot_ui(ui: &mut egui::Ui, edges: &[f32], counts: &[u64]) {
    let bars: Vec<Bar> = counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let lo = f64::from(edges[i]);
            let hi = f64::from(edges[i + 1]);
            Bar::new((lo + hi) / 2.0, c as f64).width(hi - lo)
        })
        .collect();
    let chart = BarChart::new("count", bars).color(egui::Color32::from_rgb(68, 119, 170));
    Plot::new("histogram").allow_scroll(false).x_axis_label("value").y_axis_label("count").show(ui, |plot| {
        plot.bar_chart(chart);
    });
}
