//! The file's key-values as a table (long GGUF arrays summarised).

use crate::checkpoint::Checkpoint;

/// The metadata view.
pub fn metadata_ui(ui: &mut egui::Ui, ckpt: &Checkpoint) {
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
