//! The tensor tree, with a name or regex filter and keyboard navigation.

use crate::app::WorkbenchApp;

/// Tensor indices shown by the tree under the current filter, in display order, or the
/// regex error.
pub fn visible(app: &WorkbenchApp) -> Result<Vec<usize>, String> {
    let Some(session) = &app.session else { return Ok(Vec::new()) };
    let tensors = session.ckpt.tensors();
    let matches: Box<dyn Fn(&str) -> bool> = if app.filter.is_empty() {
        Box::new(|_| true)
    } else if app.filter_regex {
        let re = regex::Regex::new(&app.filter).map_err(|e| e.to_string())?;
        Box::new(move |n| re.is_match(n))
    } else {
        let needle = app.filter.to_lowercase();
        Box::new(move |n| n.to_lowercase().contains(&needle))
    };
    Ok(session.groups.iter().flat_map(|g| g.tensors.iter().copied()).filter(|&i| matches(&tensors[i].name)).collect())
}

/// The left panel.
pub fn tree_panel_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    egui::Panel::left("tensor_tree").default_size(360.0).resizable(true).show(ui, |ui| {
        ui.horizontal(|ui| {
            let label = ui.label("Filter:");
            ui.add(egui::TextEdit::singleline(&mut app.filter).desired_width(170.0)).labelled_by(label.id);
            ui.checkbox(&mut app.filter_regex, "regex");
        });
        let visible = match visible(app) {
            Ok(v) => v,
            Err(e) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("invalid regex: {e}"));
                Vec::new()
            }
        };
        ui.separator();
        let Some(session) = &app.session else {
            ui.label("No checkpoint open.");
            return;
        };
        // Arrow keys move the selection through the visible tensors when no field has focus.
        let mut clicked = None;
        let focus_free = ui.memory(|m| m.focused().is_none());
        if focus_free && !visible.is_empty() {
            let (down, up) = ui.input(|i| (i.key_pressed(egui::Key::ArrowDown), i.key_pressed(egui::Key::ArrowUp)));
            let pos = session.selected.and_then(|s| visible.iter().position(|&i| i == s));
            if down {
                clicked = Some(visible[pos.map_or(0, |p| (p + 1).min(visible.len() - 1))]);
            } else if up {
                clicked = Some(visible[pos.map_or(0, |p| p.saturating_sub(1))]);
            }
        }
        let keyboard_move = clicked;
        let mut metadata_clicked = false;
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            let keys = session.ckpt.metadata().len();
            let label = format!("{} metadata ({keys} keys)", session.ckpt.format().as_str());
            if ui.selectable_label(app.view == crate::app::View::Metadata, label).clicked() {
                metadata_clicked = true;
            }
            let filtering = !app.filter.is_empty();
            let tensors = session.ckpt.tensors();
            for group in &session.groups {
                let shown: Vec<usize> = group.tensors.iter().copied().filter(|i| visible.contains(i)).collect();
                if shown.is_empty() {
                    continue;
                }
                let contains_selection = session.selected.is_some_and(|s| shown.contains(&s));
                let open = if filtering || (keyboard_move.is_some() && contains_selection) { Some(true) } else { None };
                egui::CollapsingHeader::new(format!("{} ({})", group.label, shown.len()))
                    .id_salt(&group.label)
                    .default_open(group.prefix.is_empty() || contains_selection)
                    .open(open)
                    .show(ui, |ui| {
                        for i in shown {
                            let t = &tensors[i];
                            let short = t.name.strip_prefix(group.prefix.as_str()).unwrap_or(&t.name);
                            ui.horizontal(|ui| {
                                let selected = session.selected == Some(i);
                                let r = ui.selectable_label(selected, short).on_hover_text(&t.name);
                                if selected && keyboard_move.is_some() {
                                    r.scroll_to_me(None);
                                }
                                if r.clicked() {
                                    clicked = Some(i);
                                }
                                ui.weak(format!("{} {}", t.role, t.dtype));
                            });
                        }
                    });
            }
        });
        if metadata_clicked {
            app.view = crate::app::View::Metadata;
        } else if let Some(i) = clicked {
            app.select(i);
        }
    });
}
