//! The attention view: a prompt (the shipped one by default), a layer, and a run of the model in
//! the background; then every head of the layer as a thumbnail, the chosen head as a large map
//! with the tokens on both axes (zoom and pan; the tooltip gives the query and key tokens and the
//! exact probability), the layer's attention sinks listed and marked on the map, and — with the
//! plan applied — the planned model's map or its difference from the original. Labels keep to
//! glyphs the bundled fonts have.

use egui::{Color32, ColorImage, TextureOptions};
use egui_plot::{GridMark, Plot, PlotImage, PlotPoint, VLine};

use crate::analysis::heatmap::Mode;
use crate::app::attention::{AttentionRun, Shown};
use crate::app::{Computed, WorkbenchApp};
use crate::colormap::{Scale, colour};
use crate::quant::scheme::Scheme;

/// Side of a head's thumbnail, in points.
const THUMB: f32 = 84.0;

/// Probabilities as a picture: magma from 0 to the largest (√-scaled so that small weights
/// show), or a diverging map for a difference.
fn image(values: &[f32], t: usize, signed: bool) -> ColorImage {
    let max = values.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    let pixels = values
        .iter()
        .map(|&v| {
            let [r, g, b] = if signed {
                colour(Mode::Mean, Scale { min: -max, max, log: false, signed: true }.position(v))
            } else {
                colour(Mode::Salience, (v / max).max(0.0).sqrt())
            };
            Color32::from_rgb(r, g, b)
        })
        .collect();
    ColorImage::new([t, t], pixels)
}

/// The values the large map shows for head `h`.
fn shown_values(run: &AttentionRun, h: usize, shown: Shown) -> Vec<f32> {
    let orig = &run.maps[h].probs;
    match (shown, run.plan_maps.as_ref().map(|p| &p[h].probs)) {
        (Shown::Plan, Some(p)) => p.clone(),
        (Shown::Difference, Some(p)) => p.iter().zip(orig).map(|(a, b)| a - b).collect(),
        _ => orig.clone(),
    }
}

/// The view.
pub fn attention_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    let Some(session) = app.session.as_mut() else { return };
    let arch = session.ckpt.model_config().map(|c| c.architecture.clone()).unwrap_or_default();
    let layers = session.ckpt.model_config().and_then(|c| c.num_layers).unwrap_or(1).max(1) as usize;
    let planned = session.plan.resolved.as_ref().is_ok_and(|r| r.iter().any(|r| !matches!(r.parsed, Scheme::Keep)));
    let a = &mut session.attention;
    ui.heading("Attention");
    ui.label(format!(
        "The model ({arch}) runs on the prompt on the CPU; every head of the chosen layer is recorded. \
         Llama family, Gemma 3 and BERT so far."
    ));
    ui.add(
        egui::TextEdit::multiline(&mut a.text)
            .desired_rows(3)
            .desired_width(f32::INFINITY)
            .hint_text("a prompt")
            .id_salt("attention-prompt"),
    )
    .on_hover_text("the text the model reads");
    let mut start = false;
    ui.horizontal(|ui| {
        ui.label("layer");
        ui.add(egui::DragValue::new(&mut a.layer).range(0..=layers - 1))
            .on_hover_text("the layer whose heads are recorded");
        ui.add_enabled(planned, egui::Checkbox::new(&mut a.with_plan, "apply the plan"))
            .on_hover_text("run the planned model too (its tensors fake-quantized by the preview's encoders)")
            .on_disabled_hover_text("the plan changes no tensor: set schemes in the Plan view");
        let running = matches!(a.run, Some(Computed::Pending(_)));
        if running {
            ui.spinner();
            if let Some((done, total)) = a.progress {
                ui.label(format!("loading layer {done} of {total}"));
            } else {
                ui.label("running");
            }
            if ui.button("Cancel").clicked()
                && let Some(c) = &a.cancel
            {
                c.cancel();
            }
        } else if ui.button("Run").on_hover_text("run the model on the prompt").clicked() {
            start = true;
        }
    });
    if start {
        app.start_attention();
        return;
    }
    let run = match &a.run {
        None => {
            ui.label("Choose a layer and press Run.");
            return;
        }
        Some(Computed::Pending(_)) => return,
        Some(Computed::Failed(e)) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
            return;
        }
        Some(Computed::Ready(run)) => run.clone(),
    };
    let heads = run.maps.len();
    let t = run.tokens.len();
    ui.horizontal(|ui| {
        ui.label(format!("layer {} of {}, {heads} heads; {}", run.layer, run.shape.0, run.note));
        if run.plan_maps.is_some() {
            ui.separator();
            for (s, label) in
                [(Shown::Original, "original"), (Shown::Plan, "plan"), (Shown::Difference, "plan - original")]
            {
                ui.selectable_value(&mut a.shown, s, label);
            }
        }
    });
    let sinks: Vec<String> = run
        .sinks
        .iter()
        .map(|s| format!("{} “{}” ({} heads, {:.2})", s.index, run.tokens[s.index], s.heads.len(), s.mean_attention))
        .collect();
    ui.label(if sinks.is_empty() {
        "Attention sinks: none in this layer.".to_owned()
    } else {
        format!("Attention sinks: {}", sinks.join(", "))
    })
    .on_hover_text("tokens that later queries give on average at least 0.3 of their attention and 3 times a uniform share, in a quarter of the heads or more");
    let ctx = ui.ctx().clone();
    ui.horizontal_top(|ui| {
        egui::ScrollArea::vertical().id_salt("head-thumbs").max_width(2.0 * THUMB + 24.0).show(ui, |ui| {
            egui::Grid::new("heads").spacing([4.0, 4.0]).show(ui, |ui| {
                for h in 0..heads {
                    let shown = a.shown;
                    let tex = a.textures.entry((h, shown, true)).or_insert_with(|| {
                        let img = image(&shown_values(&run, h, shown), t, shown == Shown::Difference);
                        ctx.load_texture(format!("attn-thumb-{}-{h}-{shown:?}", run.layer), img, TextureOptions::LINEAR)
                    });
                    let image = egui::Image::new(egui::load::SizedTexture::new(tex.id(), egui::vec2(THUMB, THUMB)));
                    let button = egui::Button::image(image).selected(h == a.head);
                    if ui.add(button).on_hover_text(format!("head {h}")).clicked() {
                        a.head = h;
                    }
                    if h % 2 == 1 {
                        ui.end_row();
                    }
                }
            });
        });
        let h = a.head.min(heads.saturating_sub(1));
        let values = shown_values(&run, h, a.shown);
        let signed = a.shown == Shown::Difference;
        let shown = a.shown;
        let tex = a
            .textures
            .entry((h, shown, false))
            .or_insert_with(|| {
                ctx.load_texture(
                    format!("attn-map-{}-{h}-{shown:?}", run.layer),
                    image(&values, t, signed),
                    TextureOptions::NEAREST,
                )
            })
            .clone();
        let tokens = run.tokens.clone();
        let label_of = move |i: f64| -> String {
            let k = i.floor();
            if k >= 0.0 && (k as usize) < tokens.len() {
                format!("{} {}", k as usize, tokens[k as usize])
            } else {
                String::new()
            }
        };
        let ly = label_of.clone();
        // The key axis writes its labels side by side: fewer of them, each cut to 10 characters,
        // so that egui_plot has room to draw them.
        let lx = move |i: f64| -> String {
            let l = label_of(i);
            if l.chars().count() > 10 { format!("{}…", l.chars().take(9).collect::<String>()) } else { l }
        };
        let every = |marks: usize| {
            move |input: egui_plot::GridInput| -> Vec<GridMark> {
                let (lo, hi) = (input.bounds.0.max(0.0) as usize, input.bounds.1.max(0.0) as usize);
                let span = hi.saturating_sub(lo).max(1);
                let step = (span / marks).max(1);
                (lo..=hi).step_by(step).map(|i| GridMark { value: i as f64 + 0.5, step_size: step as f64 }).collect()
            }
        };
        let sinks_at: Vec<usize> = run.sinks.iter().map(|s| s.index).collect();
        let mut hover = None;
        let resp = Plot::new(("attention-map", run.layer, h))
            .data_aspect(1.0)
            .height(ui.available_height().max(300.0))
            .x_axis_label("key token")
            .y_axis_label("query token")
            .x_axis_formatter(move |m, _| lx(m.value))
            .y_axis_formatter(move |m, _| ly(-m.value))
            .x_grid_spacer(every(8))
            .y_grid_spacer(move |input| {
                let flipped = egui_plot::GridInput {
                    bounds: (-input.bounds.1, -input.bounds.0),
                    base_step_size: input.base_step_size,
                };
                every(24)(flipped).into_iter().map(|m| GridMark { value: -m.value, step_size: m.step_size }).collect()
            })
            .show(ui, |p| {
                p.image(PlotImage::new(
                    "map",
                    tex.id(),
                    PlotPoint::new(t as f64 / 2.0, -(t as f64) / 2.0),
                    egui::vec2(t as f32, t as f32),
                ));
                for &s in &sinks_at {
                    p.vline(
                        VLine::new(format!("sink {s}"), s as f64 + 0.5)
                            .color(Color32::from_rgb(0, 200, 255))
                            .width(1.0),
                    );
                }
                if let Some(pos) = p.pointer_coordinate() {
                    let (k, q) = (pos.x.floor(), (-pos.y).floor());
                    if k >= 0.0 && q >= 0.0 && (k as usize) < t && (q as usize) < t {
                        hover = Some((q as usize, k as usize));
                    }
                }
            });
        a.map_transform = Some(resp.transform);
        if let Some((q, k)) = hover {
            let v = values[q * t + k];
            let what = if signed { "change in probability" } else { "probability" };
            let text = format!("head {h}: query {q} “{}”, key {k} “{}”\n{what} {v:.6}", run.tokens[q], run.tokens[k]);
            resp.response.on_hover_text_at_pointer(text);
        }
    });
}
