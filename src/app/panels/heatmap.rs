//! Heatmaps of the selected matrix: the tiled abs-max map, or the salience map (|W| times a
//! per-input-channel importance), drawn as a texture with a perceptual colormap (viridis for
//! abs-max, magma for salience); zoom and pan with the mouse, the exact row, column and value
//! under the cursor, and row/column profiles at the edges.

use egui_plot::{Line, Plot, PlotImage, PlotPoint, PlotPoints};

use super::save::{save_buttons_ui, stem};
use super::{not_ready_ui, selected_header_ui};
use crate::app::jobs::{Pick, ResultKind};
use crate::app::{Computed, WorkbenchApp};

/// What a heatmap draws, whichever map it came from.
struct Grid<'a> {
    rows: usize,
    cols: usize,
    tile_rows: usize,
    tile_cols: usize,
    grid_rows: usize,
    grid_cols: usize,
    tiles: &'a [f32],
    row_profile: Vec<f32>,
    col_profile: Vec<f32>,
}

/// The heatmap view.
pub fn heatmap_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    let Some(index) = selected_header_ui(app, ui) else { return };
    let Some(session) = &app.session else { return };
    if session.ckpt.tensors()[index].shape.len() < 2 {
        ui.label("Heatmaps need a matrix; pick a 2-D weight in the tree.");
        return;
    }
    ui.horizontal(|ui| {
        ui.selectable_value(&mut app.options.salience, false, "abs-max");
        ui.selectable_value(&mut app.options.salience, true, "salience");
        ui.checkbox(&mut app.options.log_color, "log colour scale");
        if app.options.salience {
            ui.separator();
            let source = app.imatrix.as_ref().map(|m| format!("importance: {}", m.source));
            ui.weak(source.unwrap_or_else(|| "importance: column L2 norms (weight-only)".into()));
            if ui.button("Load imatrix…").on_hover_text("llama.cpp imatrix, GGUF or legacy .dat").clicked() {
                app.pick(Pick::Imatrix);
            }
        }
    });
    let salience = app.options.salience;
    app.request(index, if salience { ResultKind::Salience } else { ResultKind::Channels });
    let log = app.options.log_color;
    let Some(session) = &mut app.session else { return };
    let (channels, sal) = (session.channels.get(&index), session.salience.get(&index));
    let (ready_channels, ready_salience) =
        (channels.and_then(Computed::ready).cloned(), sal.and_then(Computed::ready).cloned());
    let grid = match (salience, &ready_channels, &ready_salience) {
        (false, Some(c), _) => Grid {
            rows: c.channels.rows,
            cols: c.channels.cols,
            tile_rows: c.channels.tile_rows,
            tile_cols: c.channels.tile_cols,
            grid_rows: c.channels.grid_rows,
            grid_cols: c.channels.grid_cols,
            tiles: &c.channels.tile_abs_max,
            row_profile: c.channels.row_abs_max.clone(),
            col_profile: c.channels.col_abs_max.clone(),
        },
        (true, _, Some(s)) => Grid {
            rows: s.rows,
            cols: s.cols,
            tile_rows: s.tile_rows,
            tile_cols: s.tile_cols,
            grid_rows: s.grid_rows,
            grid_cols: s.grid_cols,
            tiles: &s.tiles,
            row_profile: profile(&s.tiles, s.grid_rows, s.grid_cols, true),
            col_profile: s.importance.clone(),
        },
        _ => {
            not_ready_ui(
                ui,
                if salience { None } else { channels },
                if salience { "the salience map" } else { "the channel maps" },
            );
            if let (true, Some(Computed::Failed(e))) = (salience, sal) {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            return;
        }
    };
    let computed = if salience {
        ready_salience.as_ref().map(|s| s.computed.clone())
    } else {
        ready_channels.as_ref().map(|c| c.computed.clone())
    };
    ui.horizontal(|ui| {
        ui.weak(format!(
            "{} × {} tiles of {} × {} values",
            grid.grid_rows, grid.grid_cols, grid.tile_rows, grid.tile_cols
        ));
        if let Some(computed) = &computed {
            super::computed_on_ui(ui, computed);
        }
    });
    let texture = session
        .textures
        .entry((index, salience, log))
        .or_insert_with(|| {
            ui.ctx().load_texture(
                format!("heatmap-{index}-{salience}"),
                colour_image(&grid, salience, log),
                egui::TextureOptions::NEAREST,
            )
        })
        .clone();
    let (rows, cols) = (grid.rows as f64, grid.cols as f64);
    let link = egui::Id::unique("heatmap_axes");
    let side = 140.0;
    let main_h = (ui.available_height() - side - 50.0).max(200.0);
    let main_w = (ui.available_width() - side - 50.0).max(200.0);
    let mut rect = None;
    ui.horizontal(|ui| {
        let r = Plot::new("heatmap")
            .width(main_w)
            .height(main_h)
            .link_axis(link, [true, true])
            .x_axis_label("input channel (column)")
            .y_axis_label("output channel (row)")
            .show(ui, |p| {
                p.image(PlotImage::new(
                    "map",
                    texture.id(),
                    PlotPoint::new(cols / 2.0, -rows / 2.0),
                    egui::vec2(cols as f32, rows as f32),
                ));
                let pos = p.pointer_coordinate()?;
                let (c, r) = (pos.x.floor(), (-pos.y).floor());
                (c >= 0.0 && r >= 0.0 && c < cols && r < rows).then(|| {
                    let (ti, tj) = (r as usize / grid.tile_rows, c as usize / grid.tile_cols);
                    let v = grid.tiles[ti * grid.grid_cols + tj];
                    format!("row {r}, column {c}\nmax over its {}×{} tile: {v:.5e}", grid.tile_rows, grid.tile_cols)
                })
            });
        if let Some(text) = &r.inner {
            r.response.clone().on_hover_text_at_pointer(text);
        }
        // Row profile to the right, sharing the row axis.
        let rp: Vec<[f64; 2]> =
            grid.row_profile.iter().enumerate().map(|(i, v)| [f64::from(*v), -(i as f64 + 0.5)]).collect();
        Plot::new("row_profile")
            .width(side)
            .height(main_h)
            .link_axis(link, [false, true])
            .x_axis_label("row max")
            .show(ui, |p| p.line(Line::new("rows", PlotPoints::from(rp))));
        rect = Some(r.response.rect);
    });
    let cp: Vec<[f64; 2]> = grid.col_profile.iter().enumerate().map(|(j, v)| [j as f64 + 0.5, f64::from(*v)]).collect();
    Plot::new("col_profile")
        .width(main_w)
        .height(side - 20.0)
        .link_axis(link, [true, false])
        .x_axis_label(if salience { "importance per input channel" } else { "column max" })
        .show(ui, |p| p.line(Line::new("columns", PlotPoints::from(cp))));
    let name = session.ckpt.tensors()[index].name.clone();
    let tiles = grid.tiles.to_vec();
    let (gr, gc) = (grid.grid_rows, grid.grid_cols);
    let json = if salience {
        ready_salience.map(|s| super::save::pretty_json(s.as_ref()))
    } else {
        ready_channels.map(|c| super::save::pretty_json(c.as_ref()))
    }
    .unwrap_or_default();
    save_buttons_ui(
        app,
        ui,
        &stem(&name, if salience { "salience" } else { "absmax" }),
        rect,
        move || {
            let mut s = String::new();
            for r in 0..gr {
                let row: Vec<String> = tiles[r * gc..(r + 1) * gc].iter().map(f32::to_string).collect();
                s.push_str(&row.join(","));
                s.push('\n');
            }
            s
        },
        move || json,
    );
}

/// Max over tiles along rows (or columns) of a tile grid.
fn profile(tiles: &[f32], grid_rows: usize, grid_cols: usize, by_row: bool) -> Vec<f32> {
    if by_row {
        (0..grid_rows).map(|r| tiles[r * grid_cols..(r + 1) * grid_cols].iter().fold(0f32, |a, b| a.max(*b))).collect()
    } else {
        (0..grid_cols).map(|c| (0..grid_rows).map(|r| tiles[r * grid_cols + c]).fold(0f32, f32::max)).collect()
    }
}

/// The tile grid as colours: viridis (abs-max) or magma (salience), linear or log scaled.
fn colour_image(g: &Grid<'_>, salience: bool, log: bool) -> egui::ColorImage {
    let finite: Vec<f32> = g.tiles.iter().copied().filter(|v| v.is_finite() && *v > 0.0).collect();
    let max = finite.iter().copied().fold(0f32, f32::max);
    let min = finite.iter().copied().fold(f32::INFINITY, f32::min);
    let (lmin, lmax) = (f64::from(min).log10(), f64::from(max).log10());
    let map = if salience { colorous::MAGMA } else { colorous::VIRIDIS };
    let pixels = g
        .tiles
        .iter()
        .map(|&v| {
            let t = if !(v.is_finite() && v > 0.0 && max > 0.0) {
                0.0
            } else if log && lmax > lmin {
                (f64::from(v).log10() - lmin) / (lmax - lmin)
            } else {
                f64::from(v / max)
            };
            let c = map.eval_continuous(t.clamp(0.0, 1.0));
            egui::Color32::from_rgb(c.r, c.g, c.b)
        })
        .collect();
    egui::ColorImage::new([g.grid_cols, g.grid_rows], pixels)
}
