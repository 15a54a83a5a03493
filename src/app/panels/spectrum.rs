//! The spectrum of the selected matrix: singular values (log-log), the empirical spectral
//! density of the eigenvalues λ = s² with the fitted power-law tail and xmin marked, and the
//! WeightWatcher metrics.

use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints, VLine};

use super::save::{save_buttons_ui, stem};
use super::{not_ready_ui, selected_header_ui};
use crate::analysis::spectrum::{SpectrumMethod, SpectrumReport};
use crate::app::jobs::ResultKind;
use crate::app::{Computed, WorkbenchApp};

/// The spectrum view.
pub fn spectrum_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    let Some(index) = selected_header_ui(app, ui) else { return };
    let Some(session) = &app.session else { return };
    let t = &session.ckpt.tensors()[index];
    if t.shape.len() < 2 || t.dtype.is_integer() {
        ui.label("The spectrum view needs a 2-D weight matrix; pick one in the tree.");
        return;
    }
    app.request(index, ResultKind::Spectrum);
    let Some(session) = &app.session else { return };
    let state = session.spectra.get(&index);
    let Some(r) = state.and_then(Computed::ready).cloned() else {
        not_ready_ui(ui, state, "the singular values");
        return;
    };
    metrics_ui(ui, &r);
    let height = (ui.available_height() - 40.0).max(160.0);
    let width = ui.available_width() / 2.0 - 8.0;
    let mut rect = None;
    ui.horizontal(|ui| {
        let sv: Vec<[f64; 2]> = r
            .singular_values
            .iter()
            .enumerate()
            .filter(|(_, s)| **s > 0.0)
            .map(|(i, s)| [((i + 1) as f64).log10(), s.log10()])
            .collect();
        let left = Plot::new("singular_values")
            .width(width)
            .height(height)
            .x_axis_label("log10 rank")
            .y_axis_label("log10 singular value")
            .show(ui, |p| p.line(Line::new("singular values", PlotPoints::from(sv)).width(2.0)));
        let right = Plot::new("esd")
            .width(width)
            .height(height)
            .legend(Legend::default())
            .x_axis_label("log10 λ")
            .y_axis_label("log10 density")
            .show(ui, |p| esd_ui(p, &r));
        rect = Some(left.response.rect.union(right.response.rect));
    });
    let (a, b) = (r.clone(), r.clone());
    save_buttons_ui(
        app,
        ui,
        &stem(&r.name, "spectrum"),
        rect,
        move || {
            let mut s = String::from("rank,singular_value,eigenvalue\n");
            for (i, v) in a.singular_values.iter().enumerate() {
                s.push_str(&format!("{},{v},{}\n", i + 1, v * v));
            }
            s
        },
        move || super::save::pretty_json(b.as_ref()),
    );
}

fn metrics_ui(ui: &mut egui::Ui, r: &SpectrumReport) {
    let f = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "—".into());
    egui::Grid::new("spectrum_metrics").num_columns(8).striped(true).show(ui, |ui| {
        for (k, v) in [
            ("alpha", f(r.alpha)),
            ("D (KS)", f(r.d)),
            ("xmin", r.xmin.map(|v| format!("{v:.4e}")).unwrap_or_else(|| "—".into())),
            ("alpha weighted", f(r.alpha_weighted)),
        ] {
            ui.label(k);
            ui.strong(v);
        }
        ui.end_row();
        for (k, v) in [
            ("log norm", format!("{:.4}", r.log_norm)),
            ("log spectral norm", format!("{:.4}", r.log_spectral_norm)),
            ("stable rank", format!("{:.2}", r.stable_rank)),
            (
                "spikes / rank",
                format!("{} / {}", r.num_pl_spikes.map(|v| v.to_string()).unwrap_or_else(|| "—".into()), r.rank),
            ),
        ] {
            ui.label(k);
            ui.strong(v);
        }
        ui.end_row();
    });
    ui.horizontal(|ui| {
        let method = if r.method == SpectrumMethod::Svd { "a direct SVD" } else { "the Gram matrix" };
        ui.weak(format!("{} singular values from {method}", r.singular_values.len()));
        super::computed_on_ui(ui, &r.computed);
    });
}

/// Histogram of log10 λ as a density, the fitted power law above xmin, and xmin itself.
fn esd_ui(p: &mut egui_plot::PlotUi<'_>, r: &SpectrumReport) {
    let logs: Vec<f64> = r.singular_values.iter().filter(|s| **s > 0.0).map(|s| (s * s).log10()).collect();
    if logs.is_empty() {
        return;
    }
    let (lo, hi) = logs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let bins = 60usize;
    let w = ((hi - lo) / bins as f64).max(1e-12);
    let mut counts = vec![0usize; bins];
    for v in &logs {
        counts[(((v - lo) / w) as usize).min(bins - 1)] += 1;
    }
    let n = logs.len() as f64;
    // Density of λ (not of log λ) at the bin centre, so the power law is a straight line.
    let bars: Vec<Bar> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(i, &c)| {
            let centre = lo + (i as f64 + 0.5) * w;
            let width_lambda = 10f64.powf(lo + (i + 1) as f64 * w) - 10f64.powf(lo + i as f64 * w);
            Bar::new(centre, (c as f64 / n / width_lambda).log10()).width(w)
        })
        .collect();
    p.bar_chart(BarChart::new("ESD", bars).color(egui::Color32::from_rgb(68, 119, 170)));
    if let (Some(alpha), Some(xmin)) = (r.alpha, r.xmin) {
        let tail = r.num_pl_spikes.unwrap_or(0) as f64 / n;
        let from = xmin.log10();
        let pts: Vec<[f64; 2]> = (0..=50)
            .map(|i| {
                let x = from + (hi - from) * i as f64 / 50.0;
                let lambda = 10f64.powf(x);
                // p(λ) = tail · (α−1)/xmin · (λ/xmin)^−α over the tail's share of eigenvalues.
                let density = tail * (alpha - 1.0) / xmin * (lambda / xmin).powf(-alpha);
                [x, density.log10()]
            })
            .collect();
        p.line(
            Line::new(format!("power law α={alpha:.2}"), PlotPoints::from(pts))
                .color(egui::Color32::from_rgb(238, 102, 119))
                .width(2.0),
        );
        p.vline(VLine::new("xmin", from).color(egui::Color32::GRAY).style(egui_plot::LineStyle::dashed_dense()));
    }
}
