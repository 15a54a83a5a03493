//! The model overview: one row per tensor with its layer, role, dtype, size and the metrics
//! computed so far (std, kurtosis, abs-max, outliers, alpha), sortable; and a strip chart of a
//! metric across layers, one line per role — the picture WeightWatcher users draw by hand.

use std::collections::BTreeMap;

use egui_extras::{Column as Col, TableBuilder};
use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::save::save_buttons_ui;
use crate::app::jobs::{ModelJobKind, StatsKey};
use crate::app::{Computed, HISTOGRAM_BINS, WorkbenchApp};
use crate::checkpoint::Role;
use crate::format;

/// A metric of the strip chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Standard deviation.
    Std,
    /// Excess kurtosis.
    Kurtosis,
    /// Largest |x|.
    AbsMax,
    /// Share of values beyond 6σ.
    Outliers6,
    /// Power-law alpha of the ESD.
    Alpha,
    /// alpha · log10 λmax.
    AlphaWeighted,
    /// Stable rank.
    StableRank,
}

impl Metric {
    /// Every metric, in the menu's order.
    pub const ALL: [Metric; 7] = [
        Metric::Std,
        Metric::Kurtosis,
        Metric::AbsMax,
        Metric::Outliers6,
        Metric::Alpha,
        Metric::AlphaWeighted,
        Metric::StableRank,
    ];

    fn label(self) -> &'static str {
        match self {
            Metric::Std => "std",
            Metric::Kurtosis => "kurtosis",
            Metric::AbsMax => "abs max",
            Metric::Outliers6 => "share beyond 6σ",
            Metric::Alpha => "alpha",
            Metric::AlphaWeighted => "alpha weighted",
            Metric::StableRank => "stable rank",
        }
    }

    /// Whether the metric comes from the spectra (else from the statistics).
    pub fn needs_spectra(self) -> bool {
        matches!(self, Metric::Alpha | Metric::AlphaWeighted | Metric::StableRank)
    }
}

/// A sortable column of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// Reading order.
    Order,
    /// Name.
    Name,
    /// Layer.
    Layer,
    /// Role.
    Role,
    /// Parameters.
    Params,
    /// Bytes.
    Size,
    /// Std.
    Std,
    /// Kurtosis.
    Kurtosis,
    /// Abs-max.
    AbsMax,
    /// Alpha.
    Alpha,
}

/// One row of the table, as the view and the exports see it.
#[derive(Clone, Debug, serde::Serialize)]
struct Row {
    index: usize,
    name: String,
    layer: Option<u32>,
    role: Role,
    dtype: String,
    shape: Vec<u64>,
    params: u64,
    bytes: u64,
    std: Option<f64>,
    kurtosis: Option<f64>,
    abs_max: Option<f32>,
    outliers_6sigma: Option<u64>,
    alpha: Option<f64>,
    alpha_weighted: Option<f64>,
    stable_rank: Option<f64>,
}

fn rows(app: &WorkbenchApp) -> Vec<Row> {
    let Some(s) = &app.session else { return Vec::new() };
    let key = StatsKey { bins: HISTOGRAM_BINS, log_abs: false };
    s.ckpt
        .tensors()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let st = s.stats.get(&(i, key)).and_then(Computed::ready);
            let sp = s.spectra.get(&i).and_then(Computed::ready);
            Row {
                index: i,
                name: t.name.clone(),
                layer: t.layer,
                role: t.role,
                dtype: t.dtype.name().to_owned(),
                shape: t.shape.clone(),
                params: t.numel(),
                bytes: t.bytes,
                std: st.map(|x| x.std),
                kurtosis: st.map(|x| x.kurtosis),
                abs_max: st.map(|x| x.abs_max),
                outliers_6sigma: st.map(|x| x.outliers_6sigma),
                alpha: sp.and_then(|x| x.alpha),
                alpha_weighted: sp.and_then(|x| x.alpha_weighted),
                stable_rank: sp.map(|x| x.stable_rank),
            }
        })
        .collect()
}

fn value(r: &Row, m: Metric) -> Option<f64> {
    match m {
        Metric::Std => r.std,
        Metric::Kurtosis => r.kurtosis,
        Metric::AbsMax => r.abs_max.map(f64::from),
        Metric::Outliers6 => r.outliers_6sigma.map(|o| o as f64 / r.params.max(1) as f64),
        Metric::Alpha => r.alpha,
        Metric::AlphaWeighted => r.alpha_weighted,
        Metric::StableRank => r.stable_rank,
    }
}

/// The overview.
pub fn overview_ui(app: &mut WorkbenchApp, ui: &mut egui::Ui) {
    let running = app.session.as_ref().and_then(|s| s.model_job.as_ref()).is_some_and(|j| j.ended.is_none());
    ui.horizontal(|ui| {
        if ui.add_enabled(!running, egui::Button::new("Compute statistics of every tensor")).clicked() {
            app.start_model_job(ModelJobKind::Stats);
        }
        if ui.add_enabled(!running, egui::Button::new("Compute spectra of every matrix")).clicked() {
            app.start_model_job(ModelJobKind::Spectra);
        }
        ui.separator();
        egui::ComboBox::from_label("across layers").selected_text(app.options.strip_metric.label()).show_ui(ui, |ui| {
            for m in Metric::ALL {
                ui.selectable_value(&mut app.options.strip_metric, m, m.label());
            }
        });
    });
    let mut all = rows(app);
    let metric = app.options.strip_metric;
    strip_chart_ui(ui, &all, metric);
    let (column, ascending) = app.options.sort;
    sort(&mut all, column, ascending);
    let mut clicked = None;
    let mut sort_by = None;
    let height = (ui.available_height() - 30.0).max(120.0);
    let selected = app.session.as_ref().and_then(|s| s.selected);
    ui.push_id("overview_table", |ui| {
        // Columns resize and the table scrolls sideways, so narrow windows reach every column.
        egui::ScrollArea::horizontal().show(ui, |ui| {
            TableBuilder::new(ui)
                .striped(true)
                .max_scroll_height(height)
                .sense(egui::Sense::click())
                .column(Col::initial(300.0).clip(true).resizable(true))
                .columns(Col::initial(66.0).clip(true).resizable(true), 10)
                .header(20.0, |mut h| {
                    for (label, col) in [
                        ("name", Column::Name),
                        ("layer", Column::Layer),
                        ("role", Column::Role),
                        ("dtype", Column::Order),
                        ("shape", Column::Order),
                        ("params", Column::Params),
                        ("size", Column::Size),
                        ("std", Column::Std),
                        ("kurtosis", Column::Kurtosis),
                        ("abs max", Column::AbsMax),
                        ("alpha", Column::Alpha),
                    ] {
                        h.col(|ui| {
                            let arrow = if column == col && col != Column::Order {
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
                    body.rows(18.0, all.len(), |mut row| {
                        let r = &all[row.index()];
                        row.set_selected(selected == Some(r.index));
                        let opt = |v: Option<f64>, digits: usize| {
                            v.map(|v| format!("{v:.digits$}")).unwrap_or_else(|| "·".into())
                        };
                        let cells = [
                            r.name.clone(),
                            r.layer.map(|l| l.to_string()).unwrap_or_else(|| "—".into()),
                            r.role.to_string(),
                            r.dtype.clone(),
                            format!("{:?}", r.shape),
                            format::count(r.params),
                            format::bytes(r.bytes),
                            r.std.map(|v| format!("{v:.3e}")).unwrap_or_else(|| "·".into()),
                            opt(r.kurtosis, 2),
                            r.abs_max.map(|v| format!("{v:.3e}")).unwrap_or_else(|| "·".into()),
                            opt(r.alpha, 3),
                        ];
                        for text in cells {
                            row.col(|ui| {
                                ui.label(text);
                            });
                        }
                        if row.response().clicked() {
                            clicked = Some(r.index);
                        }
                    });
                });
        });
    });
    if let Some(col) = sort_by {
        app.options.sort = if column == col { (col, !ascending) } else { (col, true) };
    }
    if let Some(i) = clicked {
        app.select(i);
    }
    let (csv_rows, json_rows) = (all.clone(), all);
    save_buttons_ui(
        app,
        ui,
        "overview",
        None,
        move || {
            let mut s = String::from(
                "name,layer,role,dtype,shape,params,bytes,std,kurtosis,abs_max,outliers_6sigma,alpha,alpha_weighted,stable_rank\n",
            );
            let o = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
            for r in &csv_rows {
                let shape: Vec<String> = r.shape.iter().map(u64::to_string).collect();
                s.push_str(&format!(
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                    r.name,
                    r.layer.map(|l| l.to_string()).unwrap_or_default(),
                    r.role,
                    r.dtype,
                    shape.join("x"),
                    r.params,
                    r.bytes,
                    o(r.std),
                    o(r.kurtosis),
                    o(r.abs_max.map(f64::from)),
                    r.outliers_6sigma.map(|v| v.to_string()).unwrap_or_default(),
                    o(r.alpha),
                    o(r.alpha_weighted),
                    o(r.stable_rank)
                ));
            }
            s
        },
        move || super::save::pretty_json(&json_rows),
    );
}

fn sort(rows: &mut [Row], column: Column, ascending: bool) {
    let key = |r: &Row| -> f64 {
        match column {
            Column::Layer => r.layer.map_or(-1.0, f64::from),
            Column::Params => r.params as f64,
            Column::Size => r.bytes as f64,
            Column::Std => r.std.unwrap_or(f64::NEG_INFINITY),
            Column::Kurtosis => r.kurtosis.unwrap_or(f64::NEG_INFINITY),
            Column::AbsMax => r.abs_max.map_or(f64::NEG_INFINITY, f64::from),
            Column::Alpha => r.alpha.unwrap_or(f64::NEG_INFINITY),
            _ => r.index as f64,
        }
    };
    match column {
        Column::Name => rows.sort_by(|a, b| a.name.cmp(&b.name)),
        Column::Role => rows.sort_by_key(|r| (r.role.order(), r.index)),
        _ => rows.sort_by(|a, b| key(a).total_cmp(&key(b)).then(a.index.cmp(&b.index))),
    }
    if !ascending {
        rows.reverse();
    }
}

fn strip_chart_ui(ui: &mut egui::Ui, rows: &[Row], metric: Metric) {
    // One point per (role, layer): its largest tensor (the weight, not the bias or a second norm).
    let mut chosen: BTreeMap<(Role, u32), &Row> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.shape.len() >= 2 || !metric.needs_spectra()) {
        if let (Some(layer), Some(v)) = (r.layer, value(r, metric))
            && v.is_finite()
        {
            let entry = chosen.entry((r.role, layer)).or_insert(r);
            if r.params > entry.params {
                *entry = r;
            }
        }
    }
    let mut by_role: BTreeMap<Role, Vec<[f64; 2]>> = BTreeMap::new();
    for ((role, layer), r) in chosen {
        if let Some(v) = value(r, metric) {
            by_role.entry(role).or_default().push([f64::from(layer), v]);
        }
    }
    if by_role.is_empty() {
        ui.weak(if metric.needs_spectra() {
            "Compute spectra of every matrix to see this metric across layers."
        } else {
            "Compute statistics of every tensor to see this metric across layers (or open tensors one by one)."
        });
        return;
    }
    Plot::new("strip_chart")
        .height(200.0)
        .legend(Legend::default())
        .x_axis_label("layer")
        .y_axis_label(metric.label())
        .show(ui, |p| {
            for (role, points) in by_role {
                p.line(Line::new(role.to_string(), PlotPoints::from(points)).width(1.5));
            }
        });
}
