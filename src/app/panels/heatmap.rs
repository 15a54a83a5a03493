//! Heatmaps of the selected matrix, from the whole matrix down to the single weight: a base map of
//! the whole matrix (the tiled abs-max and salience maps of the channel kernels, or the region
//! kernel's signed mean, signed extreme and rms), and — as the user zooms and pans — tiles of the
//! visible region at the screen's resolution, computed in the background and drawn over the base
//! map once they arrive. At the deepest zoom a tile is one weight and the tooltip gives its exact
//! value. A colour legend with its numbers stands beside the map; row and column profiles follow
//! the visible region; the most outlying channels are listed with a button that zooms to them.

use std::ops::Range;
use std::sync::Arc;

use egui_plot::{Line, Plot, PlotImage, PlotPoint, PlotPoints};

use super::save::{save_buttons_ui, stem};
use super::{not_ready_ui, selected_header_ui};
use crate::analysis::heatmap::{HeatmapTiles, Mode};
use crate::app::jobs::{HeatKey, ResultKind};
use crate::app::{Computed, WorkbenchApp};
use crate::colormap::{Scale, colour};

/// Rows, columns and tile size (rows, columns) of a region to ask for.
type Region = (Range<usize>, Range<usize>, (usize, usize));

/// A map to draw: its region, tile sizes and one number per tile.
#[derive(Clone)]
struct Layer {
    rows: Range<usize>,
    cols: Range<usize>,
    tile_rows: usize,
    tile_cols: usize,
    grid_rows: usize,
    grid_cols: usize,
    values: Arc<Vec<f32>>,
}

impl Layer {
    fn of_tiles(t: &HeatmapTiles) -> Layer {
        Layer {
            rows: t.rows.clone(),
            cols: t.cols.clone(),
            tile_rows: t.tile_rows,
            tile_cols: t.tile_cols,
            grid_rows: t.grid_rows,
            grid_cols: t.grid_cols,
            values: Arc::new(t.values.clone()),
        }
    }

    fn value_at(&self, r: usize, c: usize) -> Option<f32> {
        if !self.rows.contains(&r) || !self.cols.contains(&c) {
            return None;
        }
        self.values
            .get((r - self.rows.start) / self.tile_rows * self.grid_cols + (c - self.cols.start) / self.tile_cols)
            .copied()
    }

    fn image(&self, mode: Mode, scale: &Scale) -> egui::ColorImage {
        let pixels = self
            .values
            .iter()
            .map(|&v| {
                let [r, g, b] = colour(mode, scale.position(v));
                egui::Color32::from_rgb(r, g, b)
            })
            .collect();
        egui::ColorImage::new([self.grid_cols, self.grid_rows], pixels)
    }
}

/// The finer region to ask for, given the visible bounds and the plot's size in pixels: tiles
/// of a power-of-two size near one per pixel, the region snapped outward to whole tiles (so that
/// panning a little asks for the same region again), or `None` when the base map is as fine.
fn wanted_region(
    bounds: &egui_plot::PlotBounds,
    px: egui::Vec2,
    shape: (usize, usize),
    base_tile: (usize, usize),
) -> Option<Region> {
    let (rows, cols) = shape;
    let c0 = bounds.min()[0].floor().max(0.0) as usize;
    let c1 = (bounds.max()[0].ceil().max(0.0) as usize).min(cols);
    let r0 = (-bounds.max()[1]).floor().max(0.0) as usize;
    let r1 = ((-bounds.min()[1]).ceil().max(0.0) as usize).min(rows);
    if c0 >= c1 || r0 >= r1 {
        return None;
    }
    // Zoomed out (most of the matrix on screen): the base map is all there is to see.
    if 2 * (r1 - r0) > rows && 2 * (c1 - c0) > cols {
        return None;
    }
    let tile = |span: usize, pixels: f32| ((span as f32 / pixels.max(1.0)).ceil() as usize).max(1).next_power_of_two();
    let (tr, tc) = (tile(r1 - r0, px.y), tile(c1 - c0, px.x));
    // Only for a picture at least twice as fine as the base map in one direction.
    if 2 * tr > base_tile.0 && 2 * tc > base_tile.1 {
        return None;
    }
    let snap = |a: usize, b: usize, t: usize, n: usize| (a / (16 * t) * 16 * t, (b.div_ceil(16 * t) * 16 * t).min(n));
    let ((r0, r1), (c0, c1)) = (snap(r0, r1, tr, rows), snap(c0, c1, tc, cols));
    Some((r0..r1, c0..c1, (tr, tc)))
}

/// The heatmap view.
pub fn heatmap_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    let Some(index) = selected_header_ui(app, ui) else { return };
    let Some(session) = &app.session else { return };
    let t = &session.ckpt.tensors()[index];
    if t.shape.len() < 2 {
        ui.label("Heatmaps need a matrix; pick a 2-D weight in the tree.");
        return;
    }
    let shape = (t.shape[0] as usize, (t.numel() / t.shape[0].max(1)) as usize);
    let dtype = t.dtype;
    ui.horizontal(|ui| {
        for m in [Mode::Absmax, Mode::Mean, Mode::Extreme, Mode::Rms, Mode::Salience] {
            let label = if m == Mode::Salience { "salience" } else { m.label() };
            ui.selectable_value(&mut app.options.heat_mode, m, label);
        }
        ui.checkbox(&mut app.options.log_color, "log colour scale");
        if app.options.heat_mode == Mode::Salience {
            ui.separator();
            super::importance_ui(app, ui, "column L2 norms (weight-only)");
        }
    });
    let mode = app.options.heat_mode;
    // The base map of the whole matrix, and the channel report (profiles' fallback, the list).
    app.request(index, ResultKind::Channels);
    if mode == Mode::Salience {
        app.request(index, ResultKind::Salience);
    }
    let log = app.options.log_color && !mode.signed();
    let Some(session) = &app.session else { return };
    let channels = session.channels.get(&index).and_then(Computed::ready).cloned();
    let salience = session.salience.get(&index).and_then(Computed::ready).cloned();
    let importance = salience.as_ref().map(|s| Arc::new(s.importance.clone()));
    let base_key = HeatKey {
        tensor: index,
        mode,
        rows: 0..shape.0,
        cols: 0..shape.1,
        tile: crate::analysis::heatmap::base_tile(shape.0, shape.1),
    };
    let (base, computed) = match (mode, &channels, &salience) {
        (Mode::Absmax, Some(c), _) => {
            let ch = &c.channels;
            let layer = Layer {
                rows: 0..ch.rows,
                cols: 0..ch.cols,
                tile_rows: ch.tile_rows,
                tile_cols: ch.tile_cols,
                grid_rows: ch.grid_rows,
                grid_cols: ch.grid_cols,
                values: Arc::new(ch.tile_abs_max.clone()),
            };
            (layer, c.computed.clone())
        }
        (Mode::Salience, _, Some(s)) => {
            let layer = Layer {
                rows: 0..s.rows,
                cols: 0..s.cols,
                tile_rows: s.tile_rows,
                tile_cols: s.tile_cols,
                grid_rows: s.grid_rows,
                grid_cols: s.grid_cols,
                values: Arc::new(s.tiles.clone()),
            };
            (layer, s.computed.clone())
        }
        (Mode::Mean | Mode::Extreme | Mode::Rms, _, _) => match session.heat.tiles.get(&base_key) {
            Some(Computed::Ready(t)) => (Layer::of_tiles(t), t.computed.clone()),
            other => {
                let failed = matches!(other, Some(Computed::Failed(_)));
                not_ready_ui(ui, other, &format!("the {} map", mode.label()));
                if !failed {
                    app.request_heat(base_key, None);
                }
                return;
            }
        },
        (Mode::Salience, _, None) => {
            not_ready_ui(ui, session.salience.get(&index), "the salience map");
            return;
        }
        (Mode::Absmax, None, _) => {
            not_ready_ui(ui, session.channels.get(&index), "the channel maps");
            return;
        }
    };
    // The finest layer computed for the region on screen (asked for below).
    let focus = app.session.as_mut().and_then(|s| s.heat_focus.take());
    let wanted = app.session.as_ref().and_then(|s| {
        let id = ui.make_persistent_id(("heat_wanted", index, mode));
        let key: Option<HeatKey> = ui.data(|d| d.get_temp(id));
        key.filter(|k| s.heat.tiles.contains_key(k))
    });
    let fine = wanted.as_ref().and_then(|k| app.session.as_ref()?.heat.tiles.get(k)?.ready().cloned());
    let fine_layer = fine.as_ref().map(|t| Layer::of_tiles(t));
    // One scale for both layers (so a colour reads the same in both), fitted to all they hold.
    let all: Vec<f32> = base.values.iter().chain(fine_layer.iter().flat_map(|l| l.values.iter())).copied().collect();
    let scale = Scale::fit(&all, mode, log);
    ui.horizontal(|ui| {
        ui.weak(format!(
            "base map {} × {} tiles of {} × {}{}",
            base.grid_rows,
            base.grid_cols,
            base.tile_rows,
            base.tile_cols,
            fine.as_ref().map_or(String::new(), |f| format!(
                " · on screen: rows {:?}, columns {:?} in tiles of {} × {}{}",
                f.rows,
                f.cols,
                f.tile_rows,
                f.tile_cols,
                if f.single_weights() { " (single weights)" } else { "" }
            ))
        ));
        super::computed_on_ui(ui, &computed);
    });
    let Some(session) = &mut app.session else { return };
    let texture = |ctx: &egui::Context, cache: &mut crate::app::HeatCache, key: HeatKey, layer: &Layer| {
        cache
            .textures
            .entry((key.clone(), log))
            .or_insert_with(|| {
                ctx.load_texture(format!("heat-{key:?}"), layer.image(mode, &scale), egui::TextureOptions::NEAREST)
            })
            .clone()
    };
    // The base map's picture follows the scale of the layer drawn over it: cached per key only.
    let base_id = (index, mode, [scale.min.to_bits(), scale.max.to_bits()], log);
    let base_texture = match &session.heat.base {
        Some((id, tex)) if *id == base_id => tex.clone(),
        _ => {
            let tex = ui.ctx().load_texture(
                format!("heat-base-{index}"),
                base.image(mode, &scale),
                egui::TextureOptions::NEAREST,
            );
            session.heat.base = Some((base_id, tex.clone()));
            tex
        }
    };
    let fine_texture = match (&wanted, &fine_layer) {
        (Some(k), Some(l)) => Some(texture(ui.ctx(), &mut session.heat, k.clone(), l)),
        _ => None,
    };
    let (rows, cols) = (shape.0 as f64, shape.1 as f64);
    let side = 140.0;
    let legend_w = 90.0;
    let main_h = (ui.available_height() - side - 80.0).max(200.0);
    let main_w = (ui.available_width() - side - legend_w - 60.0).max(200.0);
    let mut rect = None;
    let mut asked: Option<Region> = None;
    let mut hover: Option<(usize, usize)> = None;
    let mut shown_bounds: Option<egui_plot::PlotBounds> = None;
    let mut shown_transform: Option<egui_plot::PlotTransform> = None;
    let mut row_click: Option<usize> = None;
    let base_tile = (base.tile_rows, base.tile_cols);
    let profiles = fine_layer.clone().unwrap_or_else(|| base.clone());
    ui.horizontal(|ui| {
        let resp = Plot::new(("heatmap", index))
            .width(main_w)
            .height(main_h)
            .x_axis_label("input channel (column)")
            .y_axis_label("output channel (row)")
            .show(ui, |p| {
                if let Some((rr, cc)) = &focus {
                    p.set_plot_bounds_x(cc.start as f64..=cc.end as f64);
                    p.set_plot_bounds_y(-(rr.end as f64)..=-(rr.start as f64));
                }
                p.image(PlotImage::new(
                    "map",
                    base_texture.id(),
                    PlotPoint::new(cols / 2.0, -rows / 2.0),
                    egui::vec2(cols as f32, rows as f32),
                ));
                if let (Some(tex), Some(l)) = (&fine_texture, &fine_layer) {
                    let (h, w) = (l.rows.len() as f64, l.cols.len() as f64);
                    p.image(PlotImage::new(
                        "detail",
                        tex.id(),
                        PlotPoint::new(l.cols.start as f64 + w / 2.0, -(l.rows.start as f64) - h / 2.0),
                        egui::vec2(w as f32, h as f32),
                    ));
                }
                asked = wanted_region(&p.plot_bounds(), p.transform().frame().size(), shape, base_tile);
                let pos = p.pointer_coordinate()?;
                let (c, r) = (pos.x.floor(), (-pos.y).floor());
                (c >= 0.0 && r >= 0.0 && c < cols && r < rows).then(|| {
                    hover = Some((r as usize, c as usize));
                })
            });
        if let Some((r, c)) = hover {
            let text = match fine_layer.as_ref().filter(|l| l.value_at(r, c).is_some()) {
                Some(l) if l.tile_rows == 1 && l.tile_cols == 1 && matches!(mode, Mode::Extreme | Mode::Mean) => {
                    let v = l.value_at(r, c).unwrap_or(f32::NAN);
                    format!("row {r}, column {c}\nvalue {v:.7e} (stored as {dtype}{})", stored_bits(dtype, v))
                }
                Some(l) => format!(
                    "row {r}, column {c}\n{} over its {}×{} tile: {:.5e}",
                    mode.label(),
                    l.tile_rows,
                    l.tile_cols,
                    l.value_at(r, c).unwrap_or(f32::NAN)
                ),
                None => format!(
                    "row {r}, column {c}\n{} over its {}×{} tile: {:.5e}",
                    mode.label(),
                    base.tile_rows,
                    base.tile_cols,
                    base.value_at(r, c).unwrap_or(f32::NAN)
                ),
            };
            resp.response.clone().on_hover_text_at_pointer(text);
        }
        legend_ui(ui, mode, &scale, legend_w, main_h);
        shown_bounds = Some(*resp.transform.bounds());
        shown_transform = Some(resp.transform);
        // Row profile to the right, sharing the row axis.
        let rp: Vec<[f64; 2]> = profile(&profiles, true).into_iter().map(|(at, v)| [f64::from(v), -at]).collect();
        // The profiles follow the map's axes (one way: they never move the map).
        let follow = shown_bounds;
        let rows_plot = Plot::new(("row_profile", index))
            .width(side)
            .height(main_h)
            .x_axis_label(format!("row {} (click a peak)", mode.label()))
            .show(ui, |p| {
                if let Some(b) = follow {
                    p.set_plot_bounds_y(b.min()[1]..=b.max()[1]);
                }
                p.line(Line::new("rows", PlotPoints::from(rp)));
                p.pointer_coordinate()
            });
        if rows_plot.response.clicked()
            && let Some(at) = rows_plot.inner
        {
            row_click = Some(((-at.y).max(0.0) as usize).min(shape.0.saturating_sub(1)));
        }
        rect = Some(resp.response.rect);
    });
    let cp: Vec<[f64; 2]> = profile(&profiles, false).into_iter().map(|(at, v)| [at, f64::from(v)]).collect();
    let col_click = Plot::new(("col_profile", index))
        .width(main_w)
        .height(side - 20.0)
        .x_axis_label(format!("column {} (click a peak to centre on its channel)", mode.label()))
        .show(ui, |p| {
            if let Some(b) = shown_bounds {
                p.set_plot_bounds_x(b.min()[0]..=b.max()[0]);
            }
            p.line(Line::new("columns", PlotPoints::from(cp)));
            p.pointer_coordinate()
        });
    if col_click.response.clicked()
        && let Some(at) = col_click.inner
        && let Some(s) = &mut app.session
    {
        let c = (at.x.max(0.0) as usize).min(shape.1.saturating_sub(1));
        s.heat_focus = Some(zoom_to(shape, Some(peak_along(&base, c, true)), Some(c)));
    }
    if let Some(s) = &mut app.session {
        s.heat.shown = shown_transform;
    }
    if let (Some(r), Some(s)) = (row_click, &mut app.session) {
        s.heat_focus = Some(zoom_to(shape, Some(r), Some(peak_along(&base, r, false))));
    }
    // A region is asked for once the view has settled on it (two frames alike), so that the
    // first frame's provisional bounds and every step of a zoom do not start a job each.
    if let Some((rr, cc, tile)) = asked {
        let key = HeatKey { tensor: index, mode, rows: rr, cols: cc, tile };
        let (last_id, id) =
            (ui.make_persistent_id(("heat_last", index, mode)), ui.make_persistent_id(("heat_wanted", index, mode)));
        let settled = ui.data(|d| d.get_temp::<HeatKey>(last_id)).is_some_and(|k| k == key);
        ui.data_mut(|d| d.insert_temp(last_id, key.clone()));
        if settled {
            ui.data_mut(|d| d.insert_temp(id, key.clone()));
            app.request_heat(key, if mode == Mode::Salience { importance.clone() } else { None });
        }
    }
    channels_ui(app, ui, index, shape, &base);
    let Some(session) = &app.session else { return };
    let name = session.ckpt.tensors()[index].name.clone();
    let shown = fine.clone();
    let (csv_layer, json) = (profiles.clone(), shown.map(|t| super::save::pretty_json(t.as_ref())));
    save_buttons_ui(
        app,
        ui,
        &stem(&name, mode.label().replace(' ', "_").as_str()),
        rect,
        move || {
            let mut s = format!(
                "# rows {:?}, columns {:?}, tiles of {} x {}\n",
                csv_layer.rows, csv_layer.cols, csv_layer.tile_rows, csv_layer.tile_cols
            );
            for r in 0..csv_layer.grid_rows {
                let row: Vec<String> = csv_layer.values[r * csv_layer.grid_cols..(r + 1) * csv_layer.grid_cols]
                    .iter()
                    .map(f32::to_string)
                    .collect();
                s.push_str(&row.join(","));
                s.push('\n');
            }
            s
        },
        move || json.unwrap_or_else(|| "{}".into()),
    );
}

/// The stored bits of `v` when the type holds it exactly (F16, BF16, F32), for the tooltip.
fn stored_bits(dtype: crate::codec::DType, v: f32) -> String {
    use crate::codec::DType;
    match dtype {
        DType::F16 => format!(" 0x{:04x}", half::f16::from_f32(v).to_bits()),
        DType::BF16 => format!(" 0x{:04x}", half::bf16::from_f32(v).to_bits()),
        DType::F32 => format!(" 0x{:08x}", v.to_bits()),
        _ => ", decoded".into(),
    }
}

/// The region that centres a channel (a row, a column, or both) at a zoom deep enough to see
/// single weights around it.
fn zoom_to(shape: (usize, usize), row: Option<usize>, col: Option<usize>) -> (Range<usize>, Range<usize>) {
    let around = |at: Option<usize>, n: usize, span: usize| match at {
        Some(x) => x.saturating_sub(span / 2)..(x.saturating_sub(span / 2) + span).min(n),
        None => 0..n,
    };
    (around(row, shape.0, 48), around(col, shape.1, 48))
}

/// Per tile row (or column) of a layer: its position (centre) and the largest |value|, sign kept.
fn profile(l: &Layer, by_row: bool) -> Vec<(f64, f32)> {
    let (n, m) = if by_row { (l.grid_rows, l.grid_cols) } else { (l.grid_cols, l.grid_rows) };
    (0..n)
        .map(|i| {
            let v = (0..m)
                .map(|j| if by_row { l.values[i * l.grid_cols + j] } else { l.values[j * l.grid_cols + i] })
                .filter(|v| v.is_finite())
                .fold(0f32, |a, v| if v.abs() > a.abs() { v } else { a });
            let at = if by_row {
                l.rows.start as f64 + (i as f64 + 0.5) * l.tile_rows as f64
            } else {
                l.cols.start as f64 + (i as f64 + 0.5) * l.tile_cols as f64
            };
            (at, v)
        })
        .collect()
}

/// A vertical colour bar with five numbers.
fn legend_ui(ui: &mut egui::Ui, mode: Mode, scale: &Scale, width: f32, height: f32) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(width, height), egui::Sense::hover());
    let bar = egui::Rect::from_min_size(rect.min + egui::vec2(2.0, 8.0), egui::vec2(16.0, height - 16.0));
    let painter = ui.painter_at(rect);
    let steps = 64;
    for k in 0..steps {
        let t = 1.0 - k as f32 / (steps - 1) as f32;
        let [r, g, b] = colour(mode, t);
        let y0 = bar.top() + bar.height() * k as f32 / steps as f32;
        let y1 = bar.top() + bar.height() * (k + 1) as f32 / steps as f32;
        painter.rect_filled(
            egui::Rect::from_min_max(egui::pos2(bar.left(), y0), egui::pos2(bar.right(), y1)),
            0.0,
            egui::Color32::from_rgb(r, g, b),
        );
    }
    for k in 0..5 {
        let t = 1.0 - k as f32 / 4.0;
        let y = bar.top() + bar.height() * (1.0 - t);
        // Labels (not painted text), so that screen readers and tests read the numbers too.
        let at = egui::Rect::from_min_size(egui::pos2(bar.right() + 4.0, y - 7.0), egui::vec2(width - 24.0, 14.0));
        ui.put(at, egui::Label::new(egui::RichText::new(format!("{:.2e}", scale.value_at(t))).size(11.0)));
    }
}

/// The row (or column) of the base map's largest |value| along column (or row) `at`.
fn peak_along(base: &Layer, at: usize, along_column: bool) -> usize {
    let (n, pick): (usize, Box<dyn Fn(usize) -> f32>) = if along_column {
        let j = (at / base.tile_cols).min(base.grid_cols.saturating_sub(1));
        (base.grid_rows, Box::new(move |i| base.values[i * base.grid_cols + j]))
    } else {
        let i = (at / base.tile_rows).min(base.grid_rows.saturating_sub(1));
        (base.grid_cols, Box::new(move |j| base.values[i * base.grid_cols + j]))
    };
    let best = (0..n).max_by(|&a, &b| pick(a).abs().total_cmp(&pick(b).abs())).unwrap_or(0);
    let tile = if along_column { base.tile_rows } else { base.tile_cols };
    best * tile + tile / 2
}

/// The most outlying input and output channels, each with a button that zooms to it (centred on
/// the channel's largest value).
fn channels_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui, index: usize, shape: (usize, usize), base: &Layer) {
    let Some(report) = app.session.as_ref().and_then(|s| s.channels.get(&index)).and_then(Computed::ready).cloned()
    else {
        return;
    };
    let mut go = None;
    ui.horizontal_wrapped(|ui| {
        ui.weak("outlying input channels:");
        for c in report.top_input_channels.iter().take(5) {
            if ui
                .small_button(format!("column {} ({:.1}×)", c.index, c.ratio_to_median))
                .on_hover_text("zoom to this input channel")
                .clicked()
            {
                go = Some(zoom_to(shape, Some(peak_along(base, c.index, true)), Some(c.index)));
            }
        }
        ui.weak("output channels:");
        for r in report.top_output_channels.iter().take(3) {
            if ui
                .small_button(format!("row {} ({:.1}×)", r.index, r.ratio_to_median))
                .on_hover_text("zoom to this output channel")
                .clicked()
            {
                go = Some(zoom_to(shape, Some(r.index), Some(peak_along(base, r.index, false))));
            }
        }
    });
    if let (Some(region), Some(s)) = (go, &mut app.session) {
        s.heat_focus = Some(region);
    }
}
