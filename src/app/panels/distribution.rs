//! The distribution of the selected tensor: histogram (linear or log counts, x or log10|x|),
//! a fitted normal, ±3σ/±6σ markers, and a second tensor to compare with.

use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints, VLine};

use super::save::{save_buttons_ui, stem};
use super::{not_ready_ui, selected_header_ui};
use crate::analysis::stats::TensorStats;
use crate::app::jobs::ResultKind;
use crate::app::{Computed, WorkbenchApp};

/// The distribution view.
pub fn distribution_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    let Some(index) = selected_header_ui(app, ui) else { return };
    let key = app.stats_key();
    app.request(index, ResultKind::Stats(key));
    let compare = app.session.as_ref().and_then(|s| s.compare);
    if let Some(c) = compare {
        app.request(c, ResultKind::Stats(key));
    }
    ui.horizontal(|ui| {
        ui.checkbox(&mut app.options.log_counts, "log counts");
        ui.checkbox(&mut app.options.log_abs, "log10 |x|");
        ui.checkbox(&mut app.options.normal_overlay, "normal fit");
        compare_picker_ui(app, ui, index);
    });
    let Some(session) = &app.session else { return };
    let state = session.stats.get(&(index, key));
    let Some(stats) = state.and_then(Computed::ready).cloned() else {
        not_ready_ui(ui, state, "the histogram");
        return;
    };
    let other = compare.and_then(|c| session.stats.get(&(c, key)).and_then(Computed::ready).cloned());
    summary_ui(ui, &stats);
    let log_counts = app.options.log_counts;
    let normal = app.options.normal_overlay && !app.options.log_abs;
    let height = (ui.available_height() - 40.0).max(160.0);
    let plot = Plot::new("distribution")
        .height(height)
        .legend(Legend::default())
        .x_axis_label(if app.options.log_abs { "log10 |x|" } else { "value" })
        .y_axis_label(match (log_counts, other.is_some()) {
            (true, _) => "log10(count)",
            (false, true) => "density",
            (false, false) => "count",
        });
    let response = plot.show(ui, |p| {
        let density = other.is_some();
        p.bar_chart(bars(&stats, log_counts, density).color(egui::Color32::from_rgb(68, 119, 170)));
        if let Some(o) = &other {
            p.line(outline(o, log_counts).color(egui::Color32::from_rgb(238, 102, 119)).width(2.0));
        }
        if normal && stats.std > 0.0 {
            p.line(normal_line(&stats, log_counts, density).color(egui::Color32::from_rgb(204, 187, 68)).width(1.5));
        }
        if !app.options.log_abs && stats.std > 0.0 {
            for (k, name) in [(3.0, "±3σ"), (6.0, "±6σ")] {
                for sign in [-1.0, 1.0] {
                    let x = stats.mean + sign * k * stats.std;
                    if x >= f64::from(stats.min) && x <= f64::from(stats.max) {
                        p.vline(
                            VLine::new(name, x).color(egui::Color32::GRAY).style(egui_plot::LineStyle::dashed_dense()),
                        );
                    }
                }
            }
        }
    });
    let rect = response.response.rect;
    let (csv_stats, json_stats) = (stats.clone(), stats.clone());
    save_buttons_ui(
        app,
        ui,
        &stem(&stats.name, "histogram"),
        Some(rect),
        move || {
            let h = &csv_stats.histogram;
            let mut s = String::from("lower_edge,upper_edge,count\n");
            for (i, c) in h.counts.iter().enumerate() {
                s.push_str(&format!("{},{},{c}\n", h.edges[i], h.edges[i + 1]));
            }
            s
        },
        move || super::save::pretty_json(json_stats.as_ref()),
    );
}

fn compare_picker_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui, index: usize) {
    let Some(session) = &mut app.session else { return };
    let names: Vec<&str> = session.ckpt.tensors().iter().map(|t| t.name.as_str()).collect();
    let current = session.compare.and_then(|c| names.get(c).copied()).unwrap_or("nothing");
    let mut choice = session.compare;
    egui::ComboBox::from_label("compare with").selected_text(current).width(260.0).show_ui(ui, |ui| {
        ui.selectable_value(&mut choice, None, "nothing");
        for (i, name) in names.iter().enumerate() {
            if i != index {
                ui.selectable_value(&mut choice, Some(i), *name);
            }
        }
    });
    session.compare = choice;
}

fn summary_ui(ui: &mut egui::Ui, s: &TensorStats) {
    ui.horizontal_wrapped(|ui| {
        ui.label(format!(
            "mean {:.4e} · std {:.4e} · min {} · max {} · skewness {:.3} · kurtosis {:.3} · >3σ {} · >6σ {} · zeros {}",
            s.mean, s.std, s.min, s.max, s.skewness, s.kurtosis, s.outliers_3sigma, s.outliers_6sigma, s.zeros
        ));
        let non_finite = s.nan + s.pos_inf + s.neg_inf;
        if non_finite > 0 {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("NaN {} · +Inf {} · −Inf {}", s.nan, s.pos_inf, s.neg_inf),
            );
        }
        super::computed_on_ui(ui, &s.computed);
    });
    ui.label(format!(
        "Histogram of {} finite values in {} bins over [{}, {}]",
        s.finite,
        s.histogram.counts.len(),
        s.histogram.edges.first().copied().unwrap_or(0.0),
        s.histogram.edges.last().copied().unwrap_or(0.0)
    ));
}

fn height(count: f64, total: f64, width: f64, log: bool, density: bool) -> f64 {
    let v = if density && total > 0.0 && width > 0.0 { count / (total * width) } else { count };
    if log { if v > 0.0 { v.log10() } else { f64::NAN } } else { v }
}

fn bars(s: &TensorStats, log: bool, density: bool) -> BarChart {
    let h = &s.histogram;
    let total = h.counts.iter().sum::<u64>() as f64;
    let bars = h
        .counts
        .iter()
        .enumerate()
        .filter(|(_, c)| !log || **c > 0)
        .map(|(i, &c)| {
            let (lo, hi) = (f64::from(h.edges[i]), f64::from(h.edges[i + 1]));
            Bar::new((lo + hi) / 2.0, height(c as f64, total, hi - lo, log, density)).width(hi - lo)
        })
        .collect();
    BarChart::new(s.name.clone(), bars)
}

/// The second tensor as a step outline of its density.
fn outline(s: &TensorStats, log: bool) -> Line<'static> {
    let h = &s.histogram;
    let total = h.counts.iter().sum::<u64>() as f64;
    let mut points = Vec::with_capacity(h.counts.len() * 2);
    for (i, &c) in h.counts.iter().enumerate() {
        let (lo, hi) = (f64::from(h.edges[i]), f64::from(h.edges[i + 1]));
        let y = height(c as f64, total, hi - lo, log, true);
        points.push([lo, y]);
        points.push([hi, y]);
    }
    Line::new(s.name.clone(), PlotPoints::from(points))
}

fn normal_line(s: &TensorStats, log: bool, density: bool) -> Line<'static> {
    let h = &s.histogram;
    let bins = h.counts.len().max(1) as f64;
    let width = (f64::from(s.max) - f64::from(s.min)) / bins;
    let total = s.finite as f64;
    let (lo, hi) = (f64::from(s.min), f64::from(s.max));
    let points: Vec<[f64; 2]> = (0..=400)
        .map(|i| {
            let x = lo + (hi - lo) * i as f64 / 400.0;
            let z = (x - s.mean) / s.std;
            let pdf = (-0.5 * z * z).exp() / (s.std * (2.0 * std::f64::consts::PI).sqrt());
            let y = if density { pdf } else { pdf * total * width };
            [x, if log { if y > 0.0 { y.log10() } else { f64::NAN } } else { y }]
        })
        .collect();
    Line::new(format!("normal(μ={:.3e}, σ={:.3e})", s.mean, s.std), PlotPoints::from(points))
}
