//! Saving what a view shows: pictures of plots (PNG, cropped from a screenshot of the window)
//! and their data (CSV or JSON).

use std::path::Path;

use crate::app::{SavePayload, WorkbenchApp};

/// "PNG", "CSV" and "JSON" buttons for a view; `rect` is the plot's screen rectangle.
pub fn save_buttons_ui(
    app: &mut WorkbenchApp,
    ui: &mut egui::Ui,
    stem: &str,
    rect: Option<egui::Rect>,
    csv: impl FnOnce() -> String,
    json: impl FnOnce() -> String,
) {
    ui.horizontal(|ui| {
        ui.weak("Save:");
        if let Some(rect) = rect
            && ui.small_button("PNG").on_hover_text("a picture of the plot").clicked()
        {
            app.save(SavePayload::Picture(rect), format!("{stem}.png"));
        }
        if ui.small_button("CSV").clicked() {
            app.save(SavePayload::Text(csv()), format!("{stem}.csv"));
        }
        if ui.small_button("JSON").clicked() {
            app.save(SavePayload::Text(json()), format!("{stem}.json"));
        }
        let label = ui.weak("into folder");
        ui.add(egui::TextEdit::singleline(&mut app.export_dir).hint_text("ask with a dialog").desired_width(220.0))
            .labelled_by(label.id)
            .on_hover_text("a folder to save into without a dialog (for desktops that have none)");
    });
}

/// Writes the part of a screenshot under `rect` (points) as a PNG.
pub fn write_png(image: &egui::ColorImage, rect: egui::Rect, pixels_per_point: f32, path: &Path) -> Result<(), String> {
    let [w, h] = image.size;
    let x0 = ((rect.min.x * pixels_per_point).max(0.0) as usize).min(w);
    let y0 = ((rect.min.y * pixels_per_point).max(0.0) as usize).min(h);
    let x1 = ((rect.max.x * pixels_per_point) as usize).clamp(x0, w);
    let y1 = ((rect.max.y * pixels_per_point) as usize).clamp(y0, h);
    let mut out = image::RgbaImage::new((x1 - x0) as u32, (y1 - y0) as u32);
    for y in y0..y1 {
        for x in x0..x1 {
            let c = image.pixels[y * w + x];
            out.put_pixel((x - x0) as u32, (y - y0) as u32, image::Rgba([c.r(), c.g(), c.b(), c.a()]));
        }
    }
    let mut png = std::io::Cursor::new(Vec::new());
    out.write_to(&mut png, image::ImageFormat::Png).map_err(|e| e.to_string())?;
    let mut t = crate::export::atomic::Transaction::new(&[], true);
    let mut file = t.create(path).map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut file, png.get_ref()).map_err(|e| e.to_string())?;
    t.finish(file).map_err(|e| e.to_string())?;
    t.commit().map(drop).map_err(|e| e.to_string())
}

/// A view's data as pretty JSON (what the JSON button saves). Serialising plain data does not
/// fail; if it ever did, the file says why instead of being empty.
pub fn pretty_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string())
}

/// A file-name stem from a tensor name.
pub fn stem(name: &str, what: &str) -> String {
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    format!("{safe}.{what}")
}
