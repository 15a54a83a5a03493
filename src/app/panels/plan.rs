//! The plan editor: one row per tensor with its scheme, bytes and error, edited by row, in bulk
//! and by rules, with undo and redo; the budget always in sight; previews measured in the
//! background as edits land; the error across layers; automatic allocation with its Pareto
//! frontier; export; and a comparison with another checkpoint.

use std::collections::BTreeMap;

use egui_extras::{Column as Col, TableBuilder};
use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints, Points, VLine};

use super::save::save_buttons_ui;
use crate::app::plan_editor::{Detail, PRESET_SCHEMES, Totals};
use crate::app::{Computed, ExportChoice, WorkbenchApp};
use crate::checkpoint::Role;
use crate::format;
use crate::quant::TensorPreview;

/// Sort columns of the plan table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanColumn {
    /// Checkpoint order.
    Order,
    /// Name.
    Name,
    /// Parameters.
    Params,
    /// Scheme.
    Scheme,
    /// Bytes under the plan.
    Bytes,
    /// Bits per weight.
    Bpw,
    /// ‖W − Ŵ‖/‖W‖.
    RelError,
    /// Signal to quantization noise.
    Sqnr,
    /// Importance-weighted sse.
    Weighted,
}

/// One table row, copied out of the session for drawing.
#[derive(Clone, Debug)]
struct Row {
    index: usize,
    name: String,
    layer: Option<u32>,
    role: Role,
    shape: Vec<u64>,
    params: u64,
    dtype: String,
    scheme: String,
    by: String,
    fallback: Option<String>,
    bytes: u64,
    exact: bool,
    preview: Option<Result<std::sync::Arc<TensorPreview>, String>>,
    pinned: bool,
    diff: Option<f64>,
}

impl Row {
    fn ready(&self) -> Option<&TensorPreview> {
        self.preview.as_ref().and_then(|p| p.as_ref().ok()).map(|p| p.as_ref())
    }
}

fn rows(app: &WorkbenchApp) -> Vec<Row> {
    let Some(s) = &app.session else { return Vec::new() };
    let diff: BTreeMap<usize, f64> = match &s.diff {
        Some((Computed::Ready(d), _)) => d.rows.iter().filter_map(|(i, d)| Some((*i, d.rel_error?))).collect(),
        _ => BTreeMap::new(),
    };
    s.ckpt
        .tensors()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let r = s.plan.resolved_of(i);
            let (bytes, exact) = s.plan.bytes_of(t, i);
            Row {
                index: i,
                name: t.name.clone(),
                layer: t.layer,
                role: t.role,
                shape: t.shape.clone(),
                params: t.numel(),
                dtype: t.dtype.name().to_owned(),
                scheme: r.map(|r| r.scheme.clone()).unwrap_or_else(|| "?".into()),
                by: r.map(|r| r.by.clone()).unwrap_or_default(),
                fallback: r.and_then(|r| r.fallback_reason.clone()),
                bytes,
                exact,
                preview: match s.plan.preview_of(i) {
                    Some(Computed::Ready(p)) => Some(Ok(p.clone())),
                    Some(Computed::Failed(e)) => Some(Err(e.clone())),
                    _ => None,
                },
                pinned: s.plan.is_pinned(&t.name),
                diff: diff.get(&i).copied(),
            }
        })
        .collect()
}

fn sort(rows: &mut [Row], column: PlanColumn, ascending: bool) {
    let key = |r: &Row| -> f64 {
        let p = r.ready();
        match column {
            PlanColumn::Params => r.params as f64,
            PlanColumn::Bytes => r.bytes as f64,
            PlanColumn::Bpw => 8.0 * r.bytes as f64 / r.params.max(1) as f64,
            PlanColumn::RelError => p.and_then(|p| p.rel_error).unwrap_or(f64::NEG_INFINITY),
            PlanColumn::Sqnr => p.and_then(|p| p.sqnr_db).unwrap_or(f64::INFINITY),
            PlanColumn::Weighted => p.and_then(|p| p.weighted_sse).unwrap_or(f64::NEG_INFINITY),
            _ => r.index as f64,
        }
    };
    match column {
        PlanColumn::Name => rows.sort_by(|a, b| a.name.cmp(&b.name)),
        PlanColumn::Scheme => rows.sort_by(|a, b| a.scheme.cmp(&b.scheme).then(a.index.cmp(&b.index))),
        _ => rows.sort_by(|a, b| key(a).total_cmp(&key(b)).then(a.index.cmp(&b.index))),
    }
    if !ascending {
        rows.reverse();
    }
}

/// The colour of a relative error: green below 1%, through yellow, to red at 30% and above.
fn error_colour(rel: f64, dark: bool) -> egui::Color32 {
    let t = ((rel.max(1e-6).log10() + 2.0) / (0.5f64.log10() + 2.0 - 0.02)).clamp(0.0, 1.0);
    let c = colorous::RED_YELLOW_GREEN.eval_continuous(1.0 - t);
    let alpha = if dark { 90 } else { 110 };
    egui::Color32::from_rgba_unmultiplied(c.r, c.g, c.b, alpha)
}

/// The plan view.
pub fn plan_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    if app.session.is_none() {
        return;
    }
    app.request_previews();
    shortcuts(app, ui);
    toolbar_ui(app, ui);
    budget_ui(app, ui);
    messages_ui(app, ui);
    bulk_ui(app, ui);
    let mut all = rows(app);
    let (column, ascending) = app.plan_sort;
    sort(&mut all, column, ascending);
    // The table shows the rows the filter keeps; the chart and totals cover every tensor.
    let shown: Vec<Row> = {
        let pattern = app.plan_filter.trim();
        let re = crate::quant::plan::pattern_regex(if pattern.is_empty() { "*" } else { pattern }).ok();
        all.iter()
            .filter(|r| re.as_ref().is_none_or(|re| re.is_match(&r.name)))
            .filter(|r| app.plan_role.is_none_or(|f| family(r.role) == f))
            .cloned()
            .collect()
    };
    egui::Panel::bottom("plan_detail").default_size(400.0).min_size(250.0).resizable(true).show(ui, |ui| {
        detail_ui(app, ui, &all);
    });
    table_ui(app, ui, &shown);
    dialogs_ui(app, ui);
}

fn shortcuts(app: &mut WorkbenchApp, ui: &egui::Ui) {
    let (undo, redo) = ui.input_mut(|i| {
        let redo = i.consume_key(egui::Modifiers::COMMAND | egui::Modifiers::SHIFT, egui::Key::Z);
        let undo = i.consume_key(egui::Modifiers::COMMAND, egui::Key::Z);
        (undo, redo)
    });
    if redo {
        app.plan_redo();
    } else if undo {
        app.plan_undo();
    }
}

fn toolbar_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    let Some(s) = &app.session else { return };
    let (can_undo, can_redo) = s.plan.can_undo_redo();
    let pending = s.plan.previews.values().filter(|c| matches!(c, Computed::Pending(_))).count();
    let running_auto = s.auto_job.as_ref().is_some_and(|j| j.ended.is_none());
    let s_target = s.plan.target_bpw;
    ui.horizontal(|ui| {
        if ui.add_enabled(can_undo, egui::Button::new("Undo")).on_hover_text("Ctrl+Z").clicked() {
            app.plan_undo();
        }
        if ui.add_enabled(can_redo, egui::Button::new("Redo")).on_hover_text("Ctrl+Shift+Z").clicked() {
            app.plan_redo();
        }
        ui.separator();
        if ui.button("Load plan…").clicked() {
            app.pick_plan(false);
        }
        if ui.button("Save plan…").clicked() {
            app.pick_plan(true);
        }
        ui.separator();
        super::importance_ui(app, ui, "none");
        ui.separator();
        if ui.add_enabled(!running_auto, egui::Button::new("Auto-allocate…")).clicked() {
            let mut d = app.auto_dialog.clone().unwrap_or_default();
            d.target_bpw = s_target;
            app.auto_dialog = Some(d);
        }
        if ui.button("Export…").clicked() {
            app.open_export_dialog();
        }
        if ui
            .button("Compare with…")
            .on_hover_text("diff the open checkpoint against another, tensor by tensor")
            .clicked()
        {
            app.pick_compare();
        }
        ui.separator();
        if pending > 0 {
            ui.spinner();
            ui.weak(format!("measuring {pending} tensors on {}", app.backend_label()));
        } else {
            ui.weak(format!("previews computed on {}", app.backend_label()));
        }
    });
}

fn budget_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    let Some(s) = &mut app.session else { return };
    let totals: Totals = s.plan.totals(&s.ckpt);
    let budget = s.plan.budget_bytes(&s.ckpt);
    let over = totals.bytes > budget;
    let source_bpw = 8.0 * totals.source_bytes as f64 / totals.params.max(1) as f64;
    ui.horizontal(|ui| {
        let label = ui.label("Target:");
        ui.add(egui::DragValue::new(&mut s.plan.target_bpw).range(0.5..=32.0).speed(0.05).suffix(" bpw"))
            .labelled_by(label.id);
        let fraction = (totals.bytes as f64 / budget.max(1) as f64) as f32;
        let colour = if over { egui::Color32::from_rgb(200, 60, 50) } else { egui::Color32::from_rgb(60, 150, 90) };
        let text = format!(
            "plan {} ({:.3} bpw{}) of {} budget · source {} ({:.2} bpw){}",
            format::bytes(totals.bytes),
            totals.bpw(),
            if totals.estimated > 0 { format!(", {} estimated", totals.estimated) } else { String::new() },
            format::bytes(budget),
            format::bytes(totals.source_bytes),
            source_bpw,
            if over { " · OVER BUDGET" } else { "" }
        );
        ui.add(egui::ProgressBar::new(fraction.min(1.0)).fill(colour).text(text).desired_width(ui.available_width()));
    });
    ui.horizontal(|ui| {
        let rel = (totals.signal > 0.0).then(|| (totals.sse / totals.signal).sqrt());
        ui.label(format!(
            "error of the {} measured tensors: sse {:.4e}, rel_error {}{}",
            totals.measured,
            totals.sse,
            rel.map_or("—".into(), |r| format!("{r:.3e}")),
            if totals.failed > 0 { format!(" · {} failed (see their rows)", totals.failed) } else { String::new() }
        ));
    });
}

fn messages_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    let Some(s) = &mut app.session else { return };
    let red = ui.visuals().error_fg_color;
    if let Err(e) = &s.plan.resolved {
        ui.colored_label(red, format!("the plan does not fit this checkpoint: {e}"));
    }
    if let Some(e) = s.plan.error.clone() {
        ui.horizontal(|ui| {
            ui.colored_label(red, e);
            if ui.small_button("Dismiss").clicked() {
                s.plan.error = None;
            }
        });
    }
    for w in s.plan.warnings.iter().take(3) {
        ui.weak(w);
    }
}

/// A scheme picker: the presets in a menu and a field for any scheme.
fn scheme_picker(ui: &mut egui::Ui, id: &str, text: &mut String) -> bool {
    let mut chosen = false;
    ui.push_id(id, |ui| {
        egui::ComboBox::from_id_salt("presets")
            .selected_text("presets")
            .width(60.0)
            .show_ui(ui, |ui| {
                for p in PRESET_SCHEMES {
                    if ui.selectable_label(text == p, p).clicked() {
                        *text = p.to_owned();
                        chosen = true;
                    }
                }
            })
            .response
            .accessible_name(format!("{id} scheme presets"));
        let r = ui
            .add(egui::TextEdit::singleline(text).desired_width(130.0).hint_text("scheme"))
            .accessible_name(format!("{id} scheme"));
        chosen |= r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
    });
    chosen
}

fn bulk_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    let Some(s) = &mut app.session else { return };
    let selected: Vec<usize> = s.plan.selection.iter().copied().collect();
    let mut action = None;
    ui.horizontal(|ui| {
        ui.label(format!("{} selected:", selected.len()));
        let mut text = s.plan.bulk_scheme.clone();
        let enter = scheme_picker(ui, "bulk", &mut text);
        s.plan.bulk_scheme = text;
        let enabled = !selected.is_empty();
        let assign = ui.add_enabled(enabled, egui::Button::new("Assign")).clicked() || enter;
        if assign && enabled {
            action = Some("assign");
        }
        if ui.add_enabled(enabled, egui::Button::new("Clear overrides")).clicked() {
            action = Some("clear");
        }
        if ui.add_enabled(enabled, egui::Button::new("Pin")).clicked() {
            action = Some("pin");
        }
        if ui.add_enabled(enabled, egui::Button::new("Unpin")).clicked() {
            action = Some("unpin");
        }
        ui.separator();
        let label = ui.label("Show:");
        ui.add(egui::TextEdit::singleline(&mut app.plan_filter).desired_width(180.0).hint_text("glob or re:regex"))
            .labelled_by(label.id);
        egui::ComboBox::from_id_salt("plan_role")
            .selected_text(app.plan_role.unwrap_or("every role"))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut app.plan_role, None, "every role");
                for f in FAMILIES {
                    ui.selectable_value(&mut app.plan_role, Some(f), f);
                }
            })
            .response
            .accessible_name("role filter");
        if ui.button("Select shown").clicked() {
            action = Some("select");
        }
        if ui.button("Select none").clicked() {
            action = Some("none");
        }
    });
    let scheme = s.plan.bulk_scheme.clone();
    match action {
        Some("assign") => drop(app.plan_edit(|e, c| e.set_scheme(c, &selected, &scheme))),
        Some("clear") => drop(app.plan_edit(|e, c| e.clear_overrides(c, &selected))),
        Some("pin") => drop(app.plan_edit(|e, c| e.set_pinned(c, &selected, true))),
        Some("unpin") => drop(app.plan_edit(|e, c| e.set_pinned(c, &selected, false))),
        Some("select") => app.plan_select_matching(),
        Some("none") => {
            if let Some(s) = &mut app.session {
                s.plan.selection.clear();
            }
        }
        _ => {}
    }
}

fn table_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui, all: &[Row]) {
    let order: Vec<usize> = all.iter().map(|r| r.index).collect();
    let (column, ascending) = app.plan_sort;
    let (selection, hovered_rule_rows) = match &app.session {
        Some(s) => {
            let rows: std::collections::BTreeSet<usize> =
                match s.plan.hovered_rule.and_then(|k| s.plan.plan.rules.get(k)) {
                    Some(rule) => all.iter().filter(|r| rule.matches(&r.name)).map(|r| r.index).collect(),
                    None => Default::default(),
                };
            (s.plan.selection.clone(), rows)
        }
        None => return,
    };
    let dark = app.dark;
    let mut clicked = None;
    let mut sort_by = None;
    let mut assign: Option<(usize, String)> = None;
    let height = (ui.available_height() - 56.0).max(120.0);
    let modifiers = ui.input(|i| i.modifiers);
    ui.push_id("plan_table", |ui| {
        egui::ScrollArea::horizontal().show(ui, |ui| {
            TableBuilder::new(ui)
                .striped(true)
                .max_scroll_height(height)
                .sense(egui::Sense::click())
                .column(Col::initial(340.0).clip(true).resizable(true))
                .column(Col::initial(84.0).clip(true).resizable(true))
                .column(Col::initial(64.0).clip(true))
                .column(Col::initial(50.0).clip(true))
                .column(Col::initial(170.0).clip(true).resizable(true))
                .columns(Col::initial(70.0).clip(true).resizable(true), 5)
                .column(Col::initial(64.0).clip(true))
                .header(20.0, |mut h| {
                    for (label, col) in [
                        ("tensor", PlanColumn::Name),
                        ("shape", PlanColumn::Order),
                        ("params", PlanColumn::Params),
                        ("dtype", PlanColumn::Order),
                        ("scheme", PlanColumn::Scheme),
                        ("bytes", PlanColumn::Bytes),
                        ("bpw", PlanColumn::Bpw),
                        ("rel_error", PlanColumn::RelError),
                        ("sqnr dB", PlanColumn::Sqnr),
                        ("weighted", PlanColumn::Weighted),
                        ("diff", PlanColumn::Order),
                    ] {
                        h.col(|ui| {
                            let arrow = if column == col && col != PlanColumn::Order {
                                if ascending { " ▲" } else { " ▼" }
                            } else {
                                ""
                            };
                            if ui.button(format!("{label}{arrow}")).clicked() {
                                sort_by = Some(col);
                            }
                        });
                    }
                })
                .body(|body| {
                    body.rows(20.0, all.len(), |mut row| {
                        let r = &all[row.index()];
                        row.set_selected(selection.contains(&r.index));
                        let highlight = hovered_rule_rows.contains(&r.index);
                        row.col(|ui| {
                            let name = if r.pinned { format!("[pinned] {}", r.name) } else { r.name.clone() };
                            let text = egui::RichText::new(name);
                            ui.label(if highlight { text.strong().underline() } else { text })
                                .on_hover_text(format!("{} · layer {:?} · {}", r.role, r.layer, r.by));
                        });
                        row.col(|ui| {
                            ui.label(format!("{:?}", r.shape));
                        });
                        row.col(|ui| {
                            ui.label(format::count(r.params));
                        });
                        row.col(|ui| {
                            ui.label(&r.dtype);
                        });
                        row.col(|ui| {
                            let current = r.scheme.clone();
                            egui::ComboBox::from_id_salt(("scheme", r.index))
                                .selected_text(&current)
                                .width(112.0)
                                .show_ui(ui, |ui| {
                                    for p in PRESET_SCHEMES {
                                        if ui.selectable_label(current == p, p).clicked() && current != p {
                                            assign = Some((r.index, p.to_owned()));
                                        }
                                    }
                                })
                                .response
                                .accessible_name(format!("scheme of {}", r.name));
                            if let Some(why) = &r.fallback {
                                ui.weak("fallback").on_hover_text(why.as_str());
                            }
                        });
                        row.col(|ui| {
                            let b = format::bytes(r.bytes);
                            ui.label(if r.exact { b } else { format!("~{b}") });
                        });
                        row.col(|ui| {
                            ui.label(format!("{:.3}", 8.0 * r.bytes as f64 / r.params.max(1) as f64));
                        });
                        let p = r.ready();
                        row.col(|ui| match (&r.preview, p.and_then(|p| p.rel_error)) {
                            (Some(Err(e)), _) => {
                                ui.colored_label(ui.visuals().error_fg_color, "failed").on_hover_text(e);
                            }
                            (_, Some(rel)) => {
                                let rect = ui.max_rect();
                                ui.painter().rect_filled(rect, 0.0, error_colour(rel, dark));
                                ui.label(format!("{rel:.3e}"));
                            }
                            (Some(Ok(_)), None) => {
                                ui.label("0");
                            }
                            (None, _) => {
                                ui.weak("…");
                            }
                        });
                        row.col(|ui| {
                            ui.label(p.and_then(|p| p.sqnr_db).map_or("·".into(), |v| format!("{v:.1}")));
                        });
                        row.col(|ui| {
                            ui.label(p.and_then(|p| p.weighted_sse).map_or("·".into(), |v| format!("{v:.3e}")));
                        });
                        row.col(|ui| {
                            ui.label(r.diff.map_or("·".into(), |v| format!("{v:.3e}")));
                        });
                        if row.response().clicked() {
                            clicked = Some(r.index);
                        }
                    });
                });
        });
    });
    if let Some(col) = sort_by {
        app.plan_sort = if column == col { (col, !ascending) } else { (col, true) };
    }
    if let Some(i) = clicked {
        if let Some(s) = &mut app.session {
            s.plan.click_row(i, modifiers.shift, modifiers.command, &order);
        }
        app.select_for_plan(i);
    }
    if let Some((i, scheme)) = assign {
        let _shown_in_the_view = app.plan_edit(|e, c| e.set_scheme(c, &[i], &scheme));
    }
    let (csv_rows, json_rows) = (all.to_vec(), all.to_vec());
    save_buttons_ui(
        app,
        ui,
        "plan",
        None,
        move || {
            let mut s = String::from(
                "name,layer,role,shape,params,dtype,scheme,by,bytes,bpw,sse,rel_error,sqnr_db,weighted_sse,pinned\n",
            );
            for r in &csv_rows {
                let p = r.ready();
                let shape: Vec<String> = r.shape.iter().map(u64::to_string).collect();
                let o = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
                s.push_str(&format!(
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                    r.name,
                    r.layer.map(|l| l.to_string()).unwrap_or_default(),
                    r.role,
                    shape.join("x"),
                    r.params,
                    r.dtype,
                    r.scheme,
                    r.by.replace(',', ";"),
                    r.bytes,
                    8.0 * r.bytes as f64 / r.params.max(1) as f64,
                    o(p.map(|p| p.sse)),
                    o(p.and_then(|p| p.rel_error)),
                    o(p.and_then(|p| p.sqnr_db)),
                    o(p.and_then(|p| p.weighted_sse)),
                    r.pinned
                ));
            }
            s
        },
        move || {
            let rows: Vec<serde_json::Value> = json_rows
                .iter()
                .map(|r| {
                    serde_json::json!({"name": r.name, "scheme": r.scheme, "by": r.by, "bytes": r.bytes,
                                       "pinned": r.pinned, "preview": r.ready()})
                })
                .collect();
            super::save::pretty_json(&rows)
        },
    );
}

/// Below the table: the rules, the error by layer, the frontier, the selected tensor and the
/// comparison, side by side.
fn detail_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui, all: &[Row]) {
    ui.columns(2, |cols| {
        egui::ScrollArea::vertical().id_salt("plan_overview_col").show(&mut cols[0], |ui| {
            rules_ui(app, ui);
            diff_ui(app, ui);
            ui.separator();
            pareto_ui(app, ui);
            layer_chart_ui(app, ui, all);
        });
        egui::ScrollArea::vertical().id_salt("plan_selected_col").show(&mut cols[1], |ui| selected_ui(app, ui, all));
    });
}

fn rules_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    let Some(s) = &mut app.session else { return };
    let mut action: Option<(usize, &str)> = None;
    let mut add = false;
    egui::CollapsingHeader::new(format!(
        "Rules ({}; a later match wins, overrides win over rules)",
        s.plan.plan.rules.len()
    ))
    .default_open(true)
    .show(ui, |ui| {
        let mut hovered = None;
        for (k, r) in s.plan.plan.rules.iter().enumerate() {
            let resp = ui
                .horizontal(|ui| {
                    ui.monospace(format!("{}. {} : {}", k + 1, r.pattern, r.scheme));
                    if ui.small_button("up").clicked() {
                        action = Some((k, "up"));
                    }
                    if ui.small_button("down").clicked() {
                        action = Some((k, "down"));
                    }
                    if ui.small_button("remove").on_hover_text("remove the rule").clicked() {
                        action = Some((k, "remove"));
                    }
                })
                .response;
            if resp.hovered() {
                hovered = Some(k);
            }
        }
        s.plan.hovered_rule = hovered;
        ui.horizontal_wrapped(|ui| {
            let label = ui.label("match");
            ui.add(egui::TextEdit::singleline(&mut s.plan.new_rule.0).desired_width(120.0)).labelled_by(label.id);
            ui.label("scheme");
            let mut scheme = s.plan.new_rule.1.clone();
            add |= scheme_picker(ui, "rule", &mut scheme);
            s.plan.new_rule.1 = scheme;
            add |= ui.button("Add rule").clicked();
        });
    });
    let (pattern, scheme) = s.plan.new_rule.clone();
    if add {
        let _shown_in_the_view = app.plan_edit(|e, c| e.add_rule(c, &pattern, &scheme));
    }
    if let Some((k, what)) = action {
        let _shown_in_the_view = app.plan_edit(|e, c| match what {
            "up" => e.move_rule(c, k, true),
            "down" => e.move_rule(c, k, false),
            _ => e.remove_rule(c, k),
        });
    }
}

/// The families of roles the chart stacks and the filter offers.
const FAMILIES: [&str; 3] = ["attention", "mlp", "other"];

/// The family a role's bar is stacked in.
pub fn family(role: Role) -> &'static str {
    match role {
        Role::AttnQ | Role::AttnK | Role::AttnV | Role::AttnQkv | Role::AttnO => "attention",
        Role::MlpGate | Role::MlpGateUp | Role::MlpUp | Role::MlpDown => "mlp",
        _ => "other",
    }
}

fn layer_chart_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui, all: &[Row]) {
    ui.strong("Error by layer (sse, stacked by role); click a bar to select its largest tensor");
    let mut stacks: BTreeMap<(&str, u32), (f64, usize, f64)> = BTreeMap::new();
    for r in all {
        if let (Some(layer), Some(p)) = (r.layer, r.ready()) {
            let e = stacks.entry((family(r.role), layer)).or_insert((0.0, r.index, -1.0));
            e.0 += p.sse;
            if p.sse > e.2 {
                (e.1, e.2) = (r.index, p.sse);
            }
        }
    }
    if stacks.is_empty() {
        ui.weak("no layer measured yet");
        return;
    }
    let families = FAMILIES;
    let mut charts: Vec<BarChart> = Vec::new();
    for f in families {
        let bars: Vec<Bar> = stacks
            .iter()
            .filter(|((g, _), _)| *g == f)
            .map(|((_, layer), (sse, _, _))| {
                Bar::new(f64::from(*layer), *sse).width(0.8).name(format!("{f} layer {layer}"))
            })
            .collect();
        if bars.is_empty() {
            continue;
        }
        let refs: Vec<&BarChart> = charts.iter().collect();
        charts.push(BarChart::new(f, bars).stack_on(&refs));
    }
    let response = Plot::new("plan_layers")
        .height(170.0)
        .legend(Legend::default())
        .x_axis_label("layer")
        .y_axis_label("sse")
        .allow_scroll(false)
        .show(ui, |p| {
            for c in charts {
                p.bar_chart(c);
            }
            p.pointer_coordinate()
        });
    let rect = response.response.rect;
    let data: Vec<(String, u32, f64)> =
        stacks.iter().map(|((f, l), (sse, _, _))| ((*f).to_owned(), *l, *sse)).collect();
    let json_data: Vec<serde_json::Value> =
        data.iter().map(|(f, l, e)| serde_json::json!({"layer": l, "family": f, "sse": e})).collect();
    if response.response.clicked()
        && let Some(at) = response.inner
    {
        let layer = at.x.round().max(0.0) as u32;
        // The stack under the pointer: walk the families bottom-up.
        let mut base = 0.0;
        for f in families {
            if let Some((sse, index, _)) = stacks.get(&(f, layer)) {
                if at.y <= base + sse || f == "other" {
                    app.select_for_plan(*index);
                    break;
                }
                base += sse;
            }
        }
    }
    save_buttons_ui(
        app,
        ui,
        "plan_error_by_layer",
        Some(rect),
        move || {
            data.iter().fold(String::from("layer,family,sse\n"), |mut s, (f, l, e)| {
                s.push_str(&format!("{l},{f},{e}\n"));
                s
            })
        },
        move || super::save::pretty_json(&json_data),
    );
}

fn pareto_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    let Some(s) = &app.session else { return };
    if let Some(job) = s.auto_job.as_ref().filter(|j| j.ended.is_none()) {
        let mut cancel = false;
        ui.horizontal(|ui| {
            let f = if job.total > 0 { job.done as f32 / job.total as f32 } else { 0.0 };
            let eta = crate::app::jobs::eta(job.done, job.total, job.started.elapsed())
                .map(|d| format!(" · about {} s left", d.as_secs() + 1))
                .unwrap_or_default();
            cancel = ui.button("Cancel").clicked();
            ui.add(egui::ProgressBar::new(f).text(format!("allocating: {}{eta}", job.what)));
        });
        if cancel {
            app.cancel_auto();
        }
        return;
    }
    let Some(auto) = s.plan.auto.clone() else { return };
    let marker = s.plan.frontier_marker(&s.ckpt);
    ui.strong(format!("Pareto frontier of the last allocation ({:?}); the cross is the plan now", auto.objective));
    // The objective spans decades between the smallest and the largest plans: log scale.
    let log = |v: f64| v.max(1e-30).log10();
    let line: Vec<[f64; 2]> = auto.frontier.iter().map(|p| [p.bpw, log(p.objective)]).collect();
    let response = Plot::new("plan_pareto")
        .height(170.0)
        .legend(Legend::default())
        .x_axis_label("bpw (allocated tensors)")
        .y_axis_label(format!("log10 {:?}", auto.objective))
        .show(ui, |p| {
            p.line(Line::new("frontier", PlotPoints::from(line.clone())).width(1.5));
            p.vline(VLine::new("target", auto.target_bpw));
            if let Some([x, y]) = marker {
                p.points(Points::new("this plan", vec![[x, log(y)]]).radius(6.0).shape(egui_plot::MarkerShape::Cross));
            }
        });
    let rect = response.response.rect;
    let frontier = auto.frontier.clone();
    let (csv_f, json_f) = (frontier.clone(), frontier);
    save_buttons_ui(
        app,
        ui,
        "plan_pareto",
        Some(rect),
        move || {
            csv_f.iter().fold(String::from("bpw,bytes,objective\n"), |mut s, p| {
                s.push_str(&format!("{},{},{}\n", p.bpw, p.bytes, p.objective));
                s
            })
        },
        move || super::save::pretty_json(&json_f),
    );
    match marker {
        Some([bpw, objective]) => {
            let best =
                auto.frontier.iter().filter(|p| p.bpw <= bpw + 1e-9).map(|p| p.objective).fold(f64::INFINITY, f64::min);
            if best.is_finite() && best > 0.0 {
                ui.weak(format!(
                    "this plan: {bpw:.3} bpw, {objective:.4e} — {:.1}% above the best at its size",
                    100.0 * (objective / best - 1.0)
                ));
            }
        }
        None => {
            ui.weak("the plan's marker appears once every allocated tensor is measured");
        }
    }
}

fn selected_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui, all: &[Row]) {
    let Some(s) = &app.session else { return };
    let Some(i) = s.selected else {
        ui.weak("Click a row to see its tensor's error up close.");
        return;
    };
    let Some(r) = all.iter().find(|r| r.index == i) else { return };
    ui.strong(format!("{}: {}", r.name, r.scheme));
    ui.weak(format!("{} · {:?} · {} · {}", r.dtype, r.shape, r.by, r.fallback.clone().unwrap_or_default()));
    if let Some(p) = r.ready() {
        ui.label(format!(
            "{} ({:.3} bpw) · sse {:.4e} · rel_error {} · sqnr {} dB · max |error| {:.3e}{}",
            format::bytes(p.bytes),
            p.bpw,
            p.sse,
            p.rel_error.map_or("—".into(), |x| format!("{x:.3e}")),
            p.sqnr_db.map_or("—".into(), |x| format!("{x:.1}")),
            p.max_abs_error,
            p.rank.map(|k| format!(" · rank {k}")).unwrap_or_default()
        ));
        super::computed_on_ui(ui, &p.computed);
        if let Some(m) = &p.method {
            ui.weak(format!(
                "{} {} = {} ({})",
                m.method,
                m.parameter,
                m.value,
                m.preview_only.clone().unwrap_or_default()
            ));
            if let Some(o) = &m.output_error {
                let rel = |e: f64| if o.signal > 0.0 { format!("{:.3e}", (e / o.signal).sqrt()) } else { "-".into() };
                ui.label(format!(
                    "layer output error on {} calibration tokens: GPTQ {} · plain rounding {} · AWQ {}",
                    o.tokens,
                    rel(o.gptq),
                    rel(o.plain),
                    o.awq.map_or("-".into(), rel)
                ))
                .on_hover_text("sqrt(E|(W - Q(W)) x|^2 / E|W x|^2) over the calibration inputs x");
            }
        }
    }
    if r.shape.len() < 2 {
        return;
    }
    let Some(s) = &mut app.session else { return };
    ui.horizontal(|ui| {
        ui.selectable_value(&mut s.plan.detail, Detail::ErrorMap, "Error map");
        ui.selectable_value(&mut s.plan.detail, Detail::Grid, "Levels of a group");
        ui.selectable_value(&mut s.plan.detail, Detail::SingularValues, "Singular values");
    });
    match s.plan.detail {
        Detail::ErrorMap => error_map_ui(app, ui, i),
        Detail::Grid => grid_ui(app, ui, i),
        Detail::SingularValues => lowrank_cut_ui(app, ui, i),
    }
}

/// |W - Q(W)| tiles of the selected tensor under its scheme: zoom and pan, the tile under the
/// cursor in a tooltip, a click opens that position's group in "Levels of a group".
fn error_map_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui, i: usize) {
    app.request_error_map(i);
    let log = app.options.log_color;
    let Some(s) = &mut app.session else { return };
    let Some(scheme) = s.plan.resolved_of(i).map(|r| r.scheme.clone()) else { return };
    let key = (i, scheme.clone());
    let map = match s.plan.error_maps.get(&key) {
        Some(Computed::Ready(m)) => m.clone(),
        Some(Computed::Failed(e)) => {
            ui.colored_label(ui.visuals().error_fg_color, e.clone());
            return;
        }
        _ => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("encoding and comparing…");
            });
            return;
        }
    };
    let texture = s
        .plan
        .error_textures
        .entry(key)
        .or_insert_with(|| {
            ui.ctx().load_texture(
                format!("error-map-{i}-{scheme}"),
                error_image(&map, log),
                egui::TextureOptions::NEAREST,
            )
        })
        .clone();
    ui.horizontal(|ui| {
        ui.weak(format!(
            "{} × {} tiles of {} × {} values, max |W - Q(W)| each; largest {:.3e}",
            map.grid_rows,
            map.grid_cols,
            map.tile_rows,
            map.tile_cols,
            map.tiles.iter().copied().fold(0f32, f32::max)
        ));
        ui.checkbox(&mut app.options.log_color, "log colour scale");
    });
    let (rows, cols) = (map.rows as f64, map.cols as f64);
    let response = Plot::new(("plan_error_map", i))
        .height(230.0)
        .data_aspect(1.0)
        .x_axis_label("input channel (column)")
        .y_axis_label("output channel (row)")
        .show(ui, |p| {
            p.image(egui_plot::PlotImage::new(
                "error",
                texture.id(),
                egui_plot::PlotPoint::new(cols / 2.0, -rows / 2.0),
                egui::vec2(cols as f32, rows as f32),
            ));
            let pos = p.pointer_coordinate()?;
            let (c, r) = (pos.x.floor(), (-pos.y).floor());
            (c >= 0.0 && r >= 0.0 && c < cols && r < rows).then_some((r as usize, c as usize))
        });
    if let Some((r, c)) = response.inner {
        let v = map.tiles[(r / map.tile_rows) * map.grid_cols + c / map.tile_cols];
        let text = format!(
            "row {r}, column {c}\nmax |W - Q(W)| over its {}×{} tile: {v:.5e}\nrow max {:.4e}, column max {:.4e}\nclick: the levels of this group",
            map.tile_rows, map.tile_cols, map.row_max[r], map.col_max[c]
        );
        response.response.clone().on_hover_text_at_pointer(text);
        if response.response.clicked()
            && let Some(s) = &mut app.session
        {
            let cols_u = map.cols as u64;
            let group = s
                .plan
                .resolved_of(i)
                .and_then(|x| crate::quant::inspect::row_group(&x.parsed, cols_u))
                .unwrap_or(cols_u)
                .max(1);
            s.plan.group = c / group as usize;
            s.plan.detail = Detail::Grid;
            app.request_row_levels(i, r);
        }
    }
    let rect = response.response.rect;
    let name = map.name.clone();
    let (csv_map, json_map) = (map.clone(), map);
    save_buttons_ui(
        app,
        ui,
        &super::save::stem(&name, "error_map"),
        Some(rect),
        move || {
            let mut s = String::new();
            for r in 0..csv_map.grid_rows {
                let row: Vec<String> = csv_map.tiles[r * csv_map.grid_cols..(r + 1) * csv_map.grid_cols]
                    .iter()
                    .map(f32::to_string)
                    .collect();
                s.push_str(&row.join(","));
                s.push('\n');
            }
            s
        },
        move || super::save::pretty_json(json_map.as_ref()),
    );
}

/// The error tiles as colours (inferno), linear or log scaled.
fn error_image(m: &crate::quant::inspect::ErrorMap, log: bool) -> egui::ColorImage {
    let finite: Vec<f32> = m.tiles.iter().copied().filter(|v| v.is_finite() && *v > 0.0).collect();
    let max = finite.iter().copied().fold(0f32, f32::max);
    let min = finite.iter().copied().fold(f32::INFINITY, f32::min);
    let (lmin, lmax) = (f64::from(min).log10(), f64::from(max).log10());
    let pixels = m
        .tiles
        .iter()
        .map(|&v| {
            let t = if v.is_infinite() {
                1.0
            } else if !(v > 0.0 && max > 0.0) {
                0.0
            } else if log && lmax > lmin {
                (f64::from(v).log10() - lmin) / (lmax - lmin)
            } else {
                f64::from(v / max)
            };
            let c = colorous::INFERNO.eval_continuous(t.clamp(0.0, 1.0));
            egui::Color32::from_rgb(c.r, c.g, c.b)
        })
        .collect();
    egui::ColorImage::new([m.grid_cols, m.grid_rows], pixels)
}

/// One group of one row: the histogram of its values and the levels they were rounded to, from
/// the row encoded alone with the tensor's scheme.
fn grid_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui, i: usize) {
    let Some(s) = &mut app.session else { return };
    let Some(t) = s.ckpt.tensors().get(i) else { return };
    let Some(r) = s.plan.resolved_of(i).cloned() else { return };
    let (rows, cols) = (t.shape[0] as usize, (t.numel() / t.shape[0].max(1)) as usize);
    let Some(group) = crate::quant::inspect::row_group(&r.parsed, cols as u64) else {
        ui.weak(format!(
            "`{}` does not round rows group by group on their own (a per-tensor scale, a low rank, a method \
             that looks at the whole matrix): no per-group levels to show",
            r.scheme
        ));
        return;
    };
    let groups = cols.div_ceil(group as usize).max(1);
    let mut row = s
        .plan
        .row_levels
        .as_ref()
        .filter(|((t, sc, _), _)| *t == i && *sc == r.scheme)
        .map_or(0, |((_, _, row), _)| *row);
    ui.horizontal(|ui| {
        let label = ui.label("row");
        ui.add(egui::DragValue::new(&mut row).range(0..=rows.saturating_sub(1))).labelled_by(label.id);
        let label = ui.label("group");
        ui.add(egui::DragValue::new(&mut s.plan.group).range(0..=groups - 1)).labelled_by(label.id);
        ui.weak(format!("of {groups}, {group} values each (click the error map to pick one)"));
    });
    app.request_row_levels(i, row);
    let Some(s) = &app.session else { return };
    let g = s.plan.group;
    let levels = match &s.plan.row_levels {
        Some((_, Computed::Ready(l))) => l.clone(),
        Some((_, Computed::Failed(e))) => {
            ui.colored_label(ui.visuals().error_fg_color, e.clone());
            return;
        }
        _ => {
            ui.spinner();
            return;
        }
    };
    let (grid, values) = levels.group_levels(g);
    let (lo, hi) =
        values.iter().chain(&grid).fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let bins = 32usize;
    let width = f64::from((hi - lo).max(f32::MIN_POSITIVE)) / bins as f64;
    let mut counts = vec![0u32; bins];
    for &v in values {
        let k = ((f64::from(v - lo) / width) as usize).min(bins - 1);
        counts[k] += 1;
    }
    let bars: Vec<Bar> = counts
        .iter()
        .enumerate()
        .map(|(k, &n)| Bar::new(f64::from(lo) + (k as f64 + 0.5) * width, f64::from(n)).width(width))
        .collect();
    ui.weak(format!(
        "row {}, group {g}: {} values rounded to {} distinct levels (lines)",
        levels.row,
        values.len(),
        grid.len()
    ));
    Plot::new(("plan_group_levels", i))
        .height(200.0)
        .legend(Legend::default())
        .x_axis_label("value")
        .y_axis_label("count")
        .show(ui, |p| {
            p.bar_chart(BarChart::new("values of the group", bars));
            for (k, level) in grid.iter().enumerate() {
                let line = VLine::new(if k == 0 { "levels" } else { "" }, f64::from(*level)).width(1.0);
                p.vline(line);
            }
        });
}

/// For a matrix: its singular values with the low-rank cut marked; dragging on the plot sets
/// the rank (`lowrank_rK`) when the drag ends.
fn lowrank_cut_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui, i: usize) {
    let Some(s) = &app.session else { return };
    let Some(t) = s.ckpt.tensors().get(i) else { return };
    if t.shape.len() < 2 {
        return;
    }
    let rank = match s.plan.resolved_of(i).map(|r| &r.parsed) {
        Some(crate::quant::Scheme::LowRank { .. }) => match s.plan.preview_of(i) {
            Some(Computed::Ready(p)) => p.rank,
            _ => None,
        },
        _ => None,
    };
    let spectrum = s.spectra.get(&i).and_then(|c| c.ready()).cloned();
    let Some(spectrum) = spectrum else {
        if ui.button("Show singular values (to set a low rank by dragging)").clicked() {
            app.request(i, crate::app::jobs::ResultKind::Spectrum);
        }
        return;
    };
    ui.weak("singular values; drag across the plot to set a low rank (lowrank_rK)");
    let sv: Vec<[f64; 2]> =
        spectrum.singular_values.iter().enumerate().map(|(k, v)| [(k + 1) as f64, v.max(1e-30).log10()]).collect();
    let cut_id = ui.make_persistent_id(("plan_lowrank_cut", i));
    let dragging: Option<f64> = ui.data(|d| d.get_temp(cut_id));
    let response = Plot::new(("plan_sv", i))
        .height(150.0)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .x_axis_label("rank")
        .y_axis_label("log10 σ")
        .show(ui, |p| {
            p.line(Line::new("σ", PlotPoints::from(sv)));
            if let Some(k) = dragging.or(rank.map(|k| k as f64)) {
                p.vline(VLine::new("cut", k).width(2.0));
            }
            p.pointer_coordinate()
        });
    let full = spectrum.singular_values.len().max(1);
    if (response.response.dragged() || response.response.clicked())
        && let Some(at) = response.inner
    {
        ui.data_mut(|d| d.insert_temp(cut_id, at.x.round().clamp(1.0, full as f64)));
    }
    if response.response.drag_stopped() || response.response.clicked() {
        if let Some(k) = ui.data(|d| d.get_temp::<f64>(cut_id)) {
            let scheme = format!("lowrank_r{}", k as usize);
            let _shown_in_the_view = app.plan_edit(|e, c| e.set_scheme(c, &[i], &scheme));
        }
        ui.data_mut(|d| d.remove::<f64>(cut_id));
    }
}

fn diff_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    let Some(s) = &app.session else { return };
    let Some((state, (done, total))) = &s.diff else { return };
    ui.separator();
    match state {
        Computed::Pending(_) => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("comparing: {done} of {total} tensors"));
            });
        }
        Computed::Failed(e) => {
            ui.colored_label(ui.visuals().error_fg_color, format!("comparison failed: {e}"));
        }
        Computed::Ready(d) => {
            let sse: f64 = d.rows.iter().map(|(_, r)| r.sse).sum();
            ui.label(format!(
                "compared with {}: {} tensors, Σ sse {:.4e} (the diff column: |A - B|/|A|){}",
                d.other.display(),
                d.rows.len(),
                sse,
                if d.unpaired.is_empty() { String::new() } else { format!("; {} unpaired", d.unpaired.len()) }
            ));
            for u in d.unpaired.iter().take(5) {
                ui.weak(u);
            }
        }
    }
}

fn dialogs_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    auto_dialog_ui(app, ui);
    export_dialog_ui(app, ui);
}

fn auto_dialog_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    let Some(mut d) = app.auto_dialog.clone() else { return };
    let mut open = true;
    let mut run = false;
    egui::Window::new("Auto-allocate").open(&mut open).collapsible(false).show(ui.ctx(), |ui| {
        ui.horizontal(|ui| {
            let label = ui.label("Target");
            ui.add(egui::DragValue::new(&mut d.target_bpw).range(0.5..=32.0).speed(0.05).suffix(" bpw"))
                .labelled_by(label.id);
            ui.weak("for the whole model; the matrices not pinned share what vectors and pins leave");
        });
        ui.label("Candidates:");
        ui.horizontal_wrapped(|ui| {
            for (c, on) in &mut d.candidates {
                ui.checkbox(on, c.as_str());
            }
        });
        ui.horizontal(|ui| {
            let label = ui.label("more");
            ui.add(egui::TextEdit::singleline(&mut d.extra).hint_text("e.g. int4_g128+awq, lowrank_r64"))
                .labelled_by(label.id);
        });
        ui.horizontal(|ui| {
            ui.label("Minimise");
            for (o, label) in [
                (crate::quant::auto::Objective::Sse, "sse"),
                (crate::quant::auto::Objective::WeightedSse, "weighted sse"),
                (crate::quant::auto::Objective::Rel, "Σ rel_error²"),
                (crate::quant::auto::Objective::Kl, "KL of the model's output"),
            ] {
                ui.radio_value(&mut d.objective, o, label).on_hover_text(match o {
                    crate::quant::auto::Objective::Kl => {
                        "Each tensor under each candidate measured as the model's mean KL divergence on the first 256 \
                         tokens of the shipped calibration text (language models; on the CPU)"
                    }
                    _ => "the weights' error",
                });
            }
        });
        run = ui.button("Run").clicked();
    });
    app.auto_dialog = open.then_some(d);
    if run {
        match app.start_auto() {
            Ok(()) => app.auto_dialog = None,
            Err(e) => app.message = Some(e),
        }
    }
}

fn export_dialog_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    let export = app
        .session
        .as_ref()
        .and_then(|s| s.export_job.as_ref())
        .map(|j| (j.result.clone(), j.output.clone(), j.done, j.total, j.elapsed));
    let Some(mut d) = app.export_dialog.clone() else { return };
    let mut open = true;
    let (mut start, mut browse, mut cancel, mut open_result, mut diff_result) = (false, false, false, false, false);
    egui::Window::new("Export").open(&mut open).collapsible(false).default_width(560.0).show(ui.ctx(), |ui| {
        let before = d.format;
        for f in ExportChoice::ALL {
            ui.radio_value(&mut d.format, f, f.label());
        }
        if d.format != before {
            let path = std::path::PathBuf::from(&d.output);
            let stem = app
                .session
                .as_ref()
                .and_then(|s| s.ckpt.path().file_stem().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "model".into());
            d.output = path.with_file_name(d.format.default_name(&stem)).display().to_string();
        }
        ui.horizontal(|ui| {
            let label = ui.label("to");
            ui.add(egui::TextEdit::singleline(&mut d.output).desired_width(400.0)).labelled_by(label.id);
            browse = ui.button("Browse…").clicked();
        });
        ui.checkbox(&mut d.overwrite, "replace an existing output");
        if d.format == ExportChoice::Safetensors {
            ui.checkbox(&mut d.factors, "low-rank tensors as lora_A/lora_B factors");
        }
        match &export {
            Some((None, output, done, total, elapsed)) => {
                ui.horizontal(|ui| {
                    cancel = ui.button("Cancel").clicked();
                    let f = if *total > 0 { *done as f32 / *total as f32 } else { 0.0 };
                    let eta = crate::app::jobs::eta(*done, *total, *elapsed)
                        .map(|d| format!(" · about {} s left", d.as_secs() + 1))
                        .unwrap_or_default();
                    ui.add(egui::ProgressBar::new(f).text(format!("{}: {:.0}%{eta}", output.display(), f * 100.0)));
                });
            }
            Some((Some(result), output, ..)) => {
                match result {
                    Ok(r) => {
                        let params: u64 = r.tensors.iter().map(|t| t.params).sum();
                        let (sse, signal) = r.tensors.iter().fold((0.0, 0.0), |(a, b), t| {
                            (a + t.sse, b + t.rel_error.filter(|&x| x > 0.0).map_or(0.0, |x| t.sse / (x * x)))
                        });
                        ui.label(format!(
                            "exported {} tensors: {} of data ({:.3} bpw), rel_error {}, into {}",
                            r.tensors.len(),
                            format::bytes(r.data_bytes),
                            8.0 * r.data_bytes as f64 / params.max(1) as f64,
                            if signal > 0.0 { format!("{:.3e}", (sse / signal).sqrt()) } else { "—".into() },
                            output.display()
                        ));
                        for f in &r.files {
                            ui.weak(f.display().to_string());
                        }
                        for n in &r.notes {
                            ui.weak(format!("note: {n}"));
                        }
                        ui.horizontal(|ui| {
                            open_result = ui.button("Open the result").clicked();
                            diff_result = ui.button("Diff it against the source").clicked();
                        });
                    }
                    Err(e) => {
                        ui.colored_label(ui.visuals().error_fg_color, format!("nothing was written: {e}"));
                    }
                }
                start = ui.button("Export again").clicked();
            }
            None => start = ui.button("Export").clicked(),
        }
    });
    app.export_dialog = open.then_some(d);
    if browse {
        app.pick_export_target();
    }
    if cancel {
        app.cancel_export();
    }
    if start && let Err(e) = app.export_from_dialog() {
        app.message = Some(e);
    }
    if let Some((Some(Ok(r)), output, ..)) = &export {
        let target = if r.files.len() == 1 { r.files[0].clone() } else { output.clone() };
        if diff_result {
            app.start_diff(target.clone());
        }
        if open_result {
            app.export_dialog = None;
            app.open(target);
        }
    }
}
