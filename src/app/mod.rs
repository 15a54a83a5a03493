//! The desktop workbench (eframe). The app holds only what it draws; files are opened and
//! tensors analysed by [`jobs`] on worker threads, whose results are drained each frame within a
//! time budget and cached per (tensor, parameters), so revisiting a view is instant.

pub mod attention;
pub mod jobs;
pub mod panels;
mod plan_actions;
pub mod plan_editor;
pub mod recent;
pub mod tree;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::analysis::Cancel;
use crate::analysis::channels::ChannelReport;
use crate::analysis::salience::SalienceMap;
use crate::analysis::spectrum::SpectrumReport;
use crate::analysis::stats::TensorStats;
use crate::checkpoint::Checkpoint;
use crate::checkpoint::imatrix::Imatrix;
use crate::compute::select::{BackendChoice, SelectedBackend};
use jobs::{JobResult, Jobs, ModelJobKind, Output, Pick, ResultKind, StatsKey};

/// Bins of the histograms the window shows.
pub const HISTOGRAM_BINS: usize = crate::analysis::report::HISTOGRAM_BINS;
/// Wall time the UI spends taking job results per frame, at most.
const DRAIN_BUDGET: Duration = Duration::from_millis(4);

/// How often the window checks whether the open checkpoint's files changed on disk.
const DISK_CHECK: Duration = Duration::from_millis(500);

/// Views the window can open on (command line `--view`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StartView {
    /// The model overview.
    Overview,
    /// The distribution of the selected tensor.
    Distribution,
    /// The spectrum of the selected tensor.
    Spectrum,
    /// The heatmaps of the selected tensor.
    Heatmap,
    /// The file's metadata.
    Metadata,
    /// The plan editor.
    Plan,
    /// Attention maps of the model run on a prompt.
    Attention,
}

/// Whole-model jobs the window can start on opening (command line `--run`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StartJob {
    /// Statistics of every tensor.
    Stats,
    /// Spectra of every matrix.
    Spectra,
    /// An automatic allocation of the plan (the Auto-allocate dialog's defaults: 5 bpw over the
    /// matrices, from q4_0, q4_k, q5_k, q6_k, q8_0).
    Allocate,
    /// A run of the attention view on its prompt (the middle layer).
    Attention,
}

/// What to do once the first checkpoint is open: the window's command-line options.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Startup {
    /// Window only: the view to open on.
    #[arg(long, value_enum)]
    pub view: Option<StartView>,
    /// Window only: the tensor to select first (exact name); default the largest.
    #[arg(long)]
    pub select: Option<String>,
    /// Window only: start a whole-model job on opening.
    #[arg(long, value_enum)]
    pub run: Option<StartJob>,
    /// Window only: load this plan (TOML or JSON) into the plan editor on opening.
    #[arg(long = "load-plan")]
    pub load_plan: Option<PathBuf>,
}

impl Startup {
    /// Whether any option was given.
    pub fn is_empty(&self) -> bool {
        self.view.is_none() && self.select.is_none() && self.run.is_none() && self.load_plan.is_none()
    }
}

/// Where the bundled demo checkpoint is: `$WEIGHTBENCH_DEMO`, then `assets/demo` beside the
/// executable or in `../share/weightbench/demo`, then the source tree it was built from.
pub fn demo_checkpoint_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WEIGHTBENCH_DEMO") {
        return Some(PathBuf::from(p));
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        candidates.push(dir.join("assets/demo"));
        candidates.push(dir.join("../share/weightbench/demo"));
    }
    candidates.push(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo"));
    candidates.into_iter().find(|p| p.join("model.safetensors").is_file())
}

/// Why no window can open here, in one line that points at the headless commands: on X11/Wayland
/// systems, when neither `DISPLAY` nor `WAYLAND_DISPLAY` (nor `WAYLAND_SOCKET`) is set (a server
/// over ssh, a container). `None` where a display may exist.
pub fn display_problem() -> Option<String> {
    if !cfg!(all(unix, not(target_os = "macos"))) {
        return None;
    }
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if set("DISPLAY") || set("WAYLAND_DISPLAY") || set("WAYLAND_SOCKET") {
        return None;
    }
    Some(
        "no display here (DISPLAY and WAYLAND_DISPLAY are unset), so the window cannot open; the headless \
         commands work without one: weightbench info|stats|spectrum|quantize|export|eval PATH ... (weightbench --help)"
            .into(),
    )
}

/// Opens the native window on `path` (or an empty workbench when `None`), computing on the
/// backend `choice` selects (changeable in the window).
pub fn run_native(path: Option<PathBuf>, choice: BackendChoice, startup: Startup) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("weightbench")
            .with_inner_size([1360.0, 860.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "weightbench",
        options,
        Box::new(move |cc| {
            let mut app = WorkbenchApp::new(&cc.egui_ctx, path);
            app.set_backend(choice);
            app.startup = Some(startup);
            app.recent = recent::load();
            app.persist_recent = true;
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

/// A result being computed, computed, or failed.
pub enum Computed<T> {
    /// Being computed; the flag stops it.
    Pending(Cancel),
    /// Done.
    Ready(Arc<T>),
    /// Failed, with the message.
    Failed(String),
}

impl<T: Clone> Computed<T> {
    /// A result computed elsewhere (a report's), or why there is none.
    fn from_result(r: &Result<T, String>) -> Self {
        match r {
            Ok(v) => Computed::Ready(Arc::new(v.clone())),
            Err(e) => Computed::Failed(e.clone()),
        }
    }
}

impl<T> Computed<T> {
    /// Stops the computation if it is still running.
    pub fn cancel(&self) {
        if let Computed::Pending(c) = self {
            c.cancel();
        }
    }

    /// The result, when ready.
    pub fn ready(&self) -> Option<&Arc<T>> {
        match self {
            Computed::Ready(v) => Some(v),
            _ => None,
        }
    }
}

/// Which view the central panel shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// One row per tensor, and metrics across layers.
    Overview,
    /// Histogram of the selected tensor.
    Distribution,
    /// Singular values and ESD of the selected tensor.
    Spectrum,
    /// Tiled abs-max and salience maps of the selected tensor.
    Heatmap,
    /// The file's key-values.
    Metadata,
    /// The plan editor: a scheme per tensor, its error, the budget, auto-allocation, export.
    Plan,
    /// The model run on a prompt: attention maps of a layer's heads, sinks, the plan's effect.
    Attention,
}

impl View {
    /// Every view, in tab order.
    pub const ALL: [View; 7] = [
        View::Overview,
        View::Distribution,
        View::Spectrum,
        View::Heatmap,
        View::Plan,
        View::Attention,
        View::Metadata,
    ];

    /// Tab label.
    pub fn label(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Distribution => "Distribution",
            View::Spectrum => "Spectrum",
            View::Heatmap => "Heatmap",
            View::Metadata => "Metadata",
            View::Plan => "Plan",
            View::Attention => "Attention",
        }
    }
}

/// A whole-model job in progress (or just finished).
pub struct ModelJob {
    /// Which job.
    pub kind: ModelJobKind,
    /// Its stop flag.
    pub cancel: Cancel,
    /// When it started.
    pub started: Instant,
    /// Bytes done.
    pub done_bytes: u64,
    /// Bytes in all.
    pub total_bytes: u64,
    /// Set when it ended, with whether it was cancelled.
    pub ended: Option<bool>,
}

impl ModelJob {
    /// Fraction done, 0..=1.
    pub fn fraction(&self) -> f32 {
        if self.total_bytes == 0 { 1.0 } else { (self.done_bytes as f64 / self.total_bytes as f64) as f32 }
    }

    /// Estimated time left, from the rate so far.
    pub fn eta(&self) -> Option<Duration> {
        let f = f64::from(self.fraction());
        (f > 0.0 && f < 1.0).then(|| self.started.elapsed().mul_f64((1.0 - f) / f))
    }
}

/// What a base heatmap picture was drawn for: tensor, mode, its scale's bounds (bits), log scale.
pub type HeatBaseId = (usize, crate::analysis::heatmap::Mode, [u32; 2], bool);

/// Heatmap tiles by region and tile size, the most recent kept up to a bound on their values,
/// with their pictures.
#[derive(Default)]
pub struct HeatCache {
    /// Tiles by key.
    pub tiles: HashMap<jobs::HeatKey, Computed<crate::analysis::heatmap::HeatmapTiles>>,
    /// Their pictures, by key and log scale.
    pub textures: HashMap<(jobs::HeatKey, bool), egui::TextureHandle>,
    /// The base map's picture, with what it was drawn for (tensor, mode, scale bits, log).
    pub base: Option<(HeatBaseId, egui::TextureHandle)>,
    /// Keys, oldest first (of the computed tiles: a report's are never evicted, as the
    /// weights to compute them again are not there).
    order: std::collections::VecDeque<jobs::HeatKey>,
    /// How the map was last drawn (weights → screen; column x, −row y), to find a weight on screen.
    pub shown: Option<egui_plot::PlotTransform>,
}

impl HeatCache {
    /// Tile values kept at most (a few MB): beyond it the oldest regions go.
    const MAX_VALUES: usize = 4 << 20;

    /// Whether `key` is cached or being computed; marks it pending (with `cancel`) if not.
    pub fn want(&mut self, key: &jobs::HeatKey, cancel: &Cancel) -> bool {
        if self.tiles.contains_key(key) {
            return false;
        }
        self.tiles.insert(key.clone(), Computed::Pending(cancel.clone()));
        self.order.push_back(key.clone());
        true
    }

    /// Keeps a map read from a report, outside the bound (never evicted).
    pub fn put_from_report(&mut self, key: jobs::HeatKey, value: crate::analysis::heatmap::HeatmapTiles) {
        self.tiles.insert(key, Computed::Ready(Arc::new(value)));
    }

    /// Stores a result and evicts the oldest regions beyond the bound.
    pub fn put(&mut self, key: jobs::HeatKey, value: Computed<crate::analysis::heatmap::HeatmapTiles>) {
        self.tiles.insert(key, value);
        let size = |c: &Computed<crate::analysis::heatmap::HeatmapTiles>| c.ready().map_or(0, |t| t.values.len());
        let evictable = |cache: &Self| cache.order.iter().filter_map(|k| cache.tiles.get(k)).map(size).sum::<usize>();
        while evictable(self) > Self::MAX_VALUES && self.order.len() > 1 {
            if let Some(old) = self.order.pop_front() {
                self.tiles.remove(&old);
                self.textures.retain(|(k, _), _| *k != old);
            }
        }
    }
}

/// An automatic allocation in progress (or just finished).
pub struct AutoJobState {
    /// Its stop flag.
    pub cancel: Cancel,
    /// Values measured, of all.
    pub done: u64,
    /// Values to measure.
    pub total: u64,
    /// What it measures now.
    pub what: String,
    /// When it started.
    pub started: Instant,
    /// Set when it ended: its summary, or why it made no plan.
    pub ended: Option<Result<String, String>>,
}

/// An export in progress (or just finished).
pub struct ExportJob {
    /// Where it writes.
    pub output: PathBuf,
    /// Its stop flag.
    pub cancel: Cancel,
    /// Values written, of all, and the time taken so far.
    pub done: u64,
    /// Values in the checkpoint.
    pub total: u64,
    /// Time since it started, as last reported.
    pub elapsed: Duration,
    /// Its report, or why it wrote nothing; `None` while running.
    pub result: Option<Result<Arc<crate::export::model::ExportReport>, String>>,
}

impl ExportJob {
    /// Fraction done, 0..=1.
    pub fn fraction(&self) -> f32 {
        if self.total == 0 { 0.0 } else { (self.done as f64 / self.total as f64) as f32 }
    }
}

/// The open checkpoint and what has been computed for it.
pub struct Session {
    /// The checkpoint (shared with worker threads).
    pub ckpt: Arc<Checkpoint>,
    /// Its tensor tree.
    pub groups: Vec<tree::Group>,
    /// Selected tensor index.
    pub selected: Option<usize>,
    /// A second tensor drawn with the selected one in the distribution view.
    pub compare: Option<usize>,
    /// Statistics by (tensor, parameters).
    pub stats: HashMap<(usize, StatsKey), Computed<TensorStats>>,
    /// Spectra by tensor.
    pub spectra: HashMap<usize, Computed<SpectrumReport>>,
    /// Channel reports by tensor.
    pub channels: HashMap<usize, Computed<ChannelReport>>,
    /// Salience maps by tensor (cleared when the importance source changes).
    pub salience: HashMap<usize, Computed<SalienceMap>>,
    /// The whole-model job, if one ran.
    pub model_job: Option<ModelJob>,
    /// The export, if one ran.
    pub export_job: Option<ExportJob>,
    /// The plan being edited.
    pub plan: plan_editor::PlanEditor,
    /// Previews the plan editor waits for.
    pub preview_queue: Arc<jobs::PreviewQueue>,
    /// Stops the preview worker (when the checkpoint closes).
    pub preview_cancel: Cancel,
    /// The automatic allocation, if one runs or ran.
    pub auto_job: Option<AutoJobState>,
    /// A comparison with another checkpoint, and its progress (done, total).
    pub diff: Option<(Computed<jobs::DiffResult>, (usize, usize))>,
    /// Heatmap textures by (tensor, salience, log colour scale).
    pub textures: HashMap<(usize, bool, bool), egui::TextureHandle>,
    /// Heatmap tiles of regions at finer levels (and of the signed and rms modes), bounded.
    pub heat: HeatCache,
    /// A region the heatmap should show next (rows, columns): a channel to zoom to.
    pub heat_focus: Option<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// The attention view.
    pub attention: attention::AttentionState,
}

impl Session {
    /// Takes a report's results as computed (`analyze -o`): the views show them as they would
    /// their own; what the report lacks is computed on demand, and fails for want of weights.
    pub fn fill_from(&mut self, report: &crate::analysis::report::Report) {
        let key = StatsKey { bins: report.histogram_bins, log_abs: false };
        for (i, t) in self.ckpt.tensors().iter().enumerate() {
            let Some(r) = report.tensors.get(&t.name) else { continue };
            if let Some(s) = &r.stats {
                self.stats.insert((i, key), Computed::from_result(s));
            }
            if let Some(s) = &r.spectrum {
                self.spectra.insert(i, Computed::from_result(s));
            }
            if let Some(c) = &r.channels {
                self.channels.insert(i, Computed::from_result(c));
            }
            if let Some(s) = &r.salience {
                self.salience.insert(i, Computed::from_result(s));
            }
            for map in r.heat.iter().flatten().flatten() {
                let (rows, cols) = (map.shape[0], map.shape[1]);
                let key = jobs::HeatKey {
                    tensor: i,
                    mode: map.mode,
                    rows: 0..rows,
                    cols: 0..cols,
                    tile: crate::analysis::heatmap::base_tile(rows, cols),
                };
                self.heat.put_from_report(key, map.clone());
            }
        }
        self.fill_plan_from(report);
    }

    /// The report's plan in the plan view, with the previews stored beside it: its rows show the
    /// measured bytes and errors without the weights.
    fn fill_plan_from(&mut self, report: &crate::analysis::report::Report) {
        let Some(text) = &report.plan_toml else { return };
        let origin = report.plan.as_deref().unwrap_or("the report's plan");
        let plan = match crate::quant::Plan::parse_toml(text, origin) {
            Ok(plan) => plan,
            Err(e) => {
                self.plan.error = Some(format!("the report's plan does not read: {e}"));
                return;
            }
        };
        if self.plan.replace(&self.ckpt, plan).is_err() {
            return;
        }
        for (i, t) in self.ckpt.tensors().iter().enumerate() {
            let Some(row) = report.tensors.get(&t.name).and_then(|r| r.preview.as_ref()) else { continue };
            match serde_json::from_value::<crate::quant::preview::TensorPreview>(row.clone()) {
                Ok(p) => drop(self.plan.previews.insert((i, p.scheme.clone()), Computed::Ready(Arc::new(p)))),
                Err(e) => {
                    let scheme = self.plan.resolved_of(i).map(|r| r.scheme.clone()).unwrap_or_default();
                    self.plan.previews.insert((i, scheme), Computed::Failed(format!("the report's row: {e}")));
                }
            }
        }
    }

    /// Stops the work still running for this checkpoint (it is being replaced).
    pub fn close(&self) {
        self.preview_queue.clear();
        self.preview_cancel.cancel();
        if let Some(a) = &self.auto_job {
            a.cancel.cancel();
        }
        if let Some(e) = &self.export_job {
            e.cancel.cancel();
        }
        if let Some(m) = &self.model_job {
            m.cancel.cancel();
        }
        self.stats.values().for_each(Computed::cancel);
        self.spectra.values().for_each(Computed::cancel);
        self.channels.values().for_each(Computed::cancel);
        self.salience.values().for_each(Computed::cancel);
        if let Some((d, _)) = &self.diff {
            d.cancel();
        }
    }
}

/// Display options of the views.
#[derive(Clone, Debug)]
pub struct ViewOptions {
    /// Histogram counts on a log scale.
    pub log_counts: bool,
    /// Histogram of log10|x|.
    pub log_abs: bool,
    /// Draw the normal with the tensor's mean and std over the histogram.
    pub normal_overlay: bool,
    /// What the heatmap shows.
    pub heat_mode: crate::analysis::heatmap::Mode,
    /// Heatmap colours on a log scale.
    pub log_color: bool,
    /// Metric of the overview's strip chart.
    pub strip_metric: panels::overview::Metric,
    /// Overview sort column and direction.
    pub sort: (panels::overview::Column, bool),
}

impl Default for ViewOptions {
    fn default() -> Self {
        Self {
            log_counts: false,
            log_abs: false,
            normal_overlay: true,
            heat_mode: crate::analysis::heatmap::Mode::Absmax,
            log_color: true,
            strip_metric: panels::overview::Metric::Kurtosis,
            sort: (panels::overview::Column::Order, true),
        }
    }
}

/// What a pending save will write.
pub enum SavePayload {
    /// Text (CSV or JSON).
    Text(String),
    /// A picture of a screen rectangle, taken from the next frame's screenshot.
    Picture(egui::Rect),
}

/// A step of a calibration run: what it is doing, steps done, steps.
pub type CalibrationStep = (&'static str, usize, usize);

/// The application.
pub struct WorkbenchApp {
    jobs: Jobs,
    backend: Arc<SelectedBackend>,
    /// The backend the user chose.
    pub backend_choice: BackendChoice,
    /// Set while the chosen backend's device is being started in the background.
    pub backend_starting: bool,
    /// The open checkpoint, if any.
    pub session: Option<Session>,
    /// A checkpoint being opened.
    pub opening: Option<PathBuf>,
    /// When the open files were last compared with the disk ([`DISK_CHECK`]).
    last_disk_check: Option<Instant>,
    /// The path field's text.
    pub path_input: String,
    /// The tree's name filter.
    pub filter: String,
    /// Whether the filter is a regular expression.
    pub filter_regex: bool,
    /// The current view.
    pub view: View,
    /// Display options.
    pub options: ViewOptions,
    /// Recently opened paths, newest first.
    pub recent: Vec<PathBuf>,
    /// A loaded importance matrix.
    pub imatrix: Option<Arc<Imatrix>>,
    /// A calibration run in progress: its cancel, and its last step.
    pub calibrating: Option<(Cancel, Option<CalibrationStep>)>,
    /// The last error or notice, shown until dismissed.
    pub message: Option<String>,
    /// Data waiting for a save dialog's answer.
    pending_save: Option<SavePayload>,
    /// Dark or light.
    pub dark: bool,
    /// A folder to save into without asking (for desktops without a file dialog).
    pub export_dir: String,
    /// What to do when the first checkpoint opens.
    pub startup: Option<Startup>,
    /// Whether the recent-files list is saved (the real window; not tests).
    pub persist_recent: bool,
    /// The export dialog, while open.
    pub export_dialog: Option<ExportDialog>,
    /// The auto-allocate dialog, while open.
    pub auto_dialog: Option<AutoDialog>,
    /// The plan table's sort column and direction.
    pub plan_sort: (panels::plan::PlanColumn, bool),
    /// The plan view's select-by-name pattern.
    pub plan_filter: String,
    /// The plan view's role filter (a family: attention, mlp, other).
    pub plan_role: Option<&'static str>,
    /// Where automatic allocation caches its measurements (`None`: not cached).
    pub measure_cache: Option<PathBuf>,
}

/// What the export dialog holds.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportDialog {
    /// The format.
    pub format: ExportChoice,
    /// The output path.
    pub output: String,
    /// Replace an existing output.
    pub overwrite: bool,
    /// Low-rank tensors as factors (safetensors).
    pub factors: bool,
}

/// Formats the export dialog offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportChoice {
    /// A GGUF file.
    Gguf,
    /// A compressed-tensors folder.
    Ct,
    /// A fake-quantized safetensors folder.
    Safetensors,
    /// llama-quantize's `--tensor-type-file`.
    LlamaPlan,
    /// GPTQModel's `dynamic` overrides.
    GptqPlan,
}

impl ExportChoice {
    /// Every choice, in the dialog's order.
    pub const ALL: [ExportChoice; 5] = [
        ExportChoice::Gguf,
        ExportChoice::Ct,
        ExportChoice::Safetensors,
        ExportChoice::LlamaPlan,
        ExportChoice::GptqPlan,
    ];

    /// Its label.
    pub fn label(self) -> &'static str {
        match self {
            ExportChoice::Gguf => "GGUF (llama.cpp)",
            ExportChoice::Ct => "compressed-tensors (vLLM, transformers)",
            ExportChoice::Safetensors => "fake-quant safetensors",
            ExportChoice::LlamaPlan => "llama-quantize --tensor-type-file",
            ExportChoice::GptqPlan => "GPTQModel dynamic (JSON)",
        }
    }

    /// The output's default name beside the checkpoint.
    pub fn default_name(self, stem: &str) -> String {
        match self {
            ExportChoice::Gguf => format!("{stem}-plan.gguf"),
            ExportChoice::Ct => format!("{stem}-plan-ct"),
            ExportChoice::Safetensors => format!("{stem}-plan-fakequant"),
            ExportChoice::LlamaPlan => format!("{stem}-tensor-types.txt"),
            ExportChoice::GptqPlan => format!("{stem}-gptq-dynamic.json"),
        }
    }
}

/// What the auto-allocate dialog holds.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoDialog {
    /// Bits per weight over the free tensors.
    pub target_bpw: f64,
    /// Candidate schemes and whether each is on.
    pub candidates: Vec<(String, bool)>,
    /// More candidates, comma-separated.
    pub extra: String,
    /// What to minimise.
    pub objective: crate::quant::auto::Objective,
}

impl Default for AutoDialog {
    fn default() -> Self {
        let on = ["q4_0", "q4_k", "q5_k", "q6_k", "q8_0"];
        let all = ["q2_k", "q3_k", "q4_0", "q4_k", "q5_0", "q5_k", "q6_k", "q8_0", "iq4_nl", "int4_g128", "int8_ch"];
        AutoDialog {
            target_bpw: 5.0,
            candidates: all.iter().map(|c| ((*c).to_owned(), on.contains(c))).collect(),
            extra: String::new(),
            objective: crate::quant::auto::Objective::Sse,
        }
    }
}

impl WorkbenchApp {
    /// A workbench that starts opening `path`, if given, computing on the CPU.
    pub fn new(ctx: &egui::Context, path: Option<PathBuf>) -> Self {
        let mut app = Self {
            jobs: Jobs::new(ctx.clone()),
            backend: Arc::new(SelectedBackend::new(BackendChoice::Cpu)),
            backend_choice: BackendChoice::Cpu,
            backend_starting: false,
            session: None,
            opening: None,
            last_disk_check: None,
            path_input: String::new(),
            filter: String::new(),
            filter_regex: false,
            view: View::Distribution,
            options: ViewOptions::default(),
            recent: Vec::new(),
            imatrix: None,
            calibrating: None,
            message: None,
            pending_save: None,
            dark: true,
            export_dir: String::new(),
            startup: None,
            persist_recent: false,
            export_dialog: None,
            auto_dialog: None,
            plan_sort: (panels::plan::PlanColumn::Order, true),
            plan_filter: String::new(),
            plan_role: None,
            measure_cache: crate::quant::cache::default_dir(),
        };
        match path {
            Some(path) => app.open(path),
            None => app.message = Some("no checkpoint: open a file or folder".into()),
        }
        app
    }

    /// Switches the compute backend; results computed so far stay cached (each says where it
    /// was computed). The GPU device, when the choice wants one, is started by a background job:
    /// opening it can take seconds on real drivers, and the window never waits for it.
    pub fn set_backend(&mut self, choice: BackendChoice) {
        self.backend = Arc::new(SelectedBackend::new(choice));
        self.backend_choice = choice;
        self.backend_starting = choice != BackendChoice::Cpu;
        if self.backend_starting {
            self.jobs.start_backend(self.backend.clone());
        }
    }

    /// Computes on `backend` from now on (tests and tools that bring a device of their own).
    pub fn use_backend(&mut self, backend: SelectedBackend) {
        self.backend_choice = backend.choice();
        self.backend = Arc::new(backend);
        self.backend_starting = false;
    }

    /// What the current backend runs on, for display (never starts a device).
    pub fn backend_label(&self) -> String {
        self.backend.label_now()
    }

    /// Starts opening `path` in the background.
    pub fn open(&mut self, path: PathBuf) {
        self.path_input = path.display().to_string();
        self.opening = Some(path.clone());
        self.jobs.open(path);
    }

    /// Whether background work is still running.
    pub fn busy(&self) -> bool {
        self.opening.is_some()
            || self.backend_starting
            || self.session.as_ref().is_some_and(|s| {
                s.model_job.as_ref().is_some_and(|j| j.ended.is_none())
                    || s.export_job.as_ref().is_some_and(|j| j.result.is_none())
                    || s.auto_job.as_ref().is_some_and(|j| j.ended.is_none())
                    || !s.preview_queue.is_empty()
                    || s.plan.previews.values().any(|c| matches!(c, Computed::Pending(_)))
                    || s.stats.values().any(|c| matches!(c, Computed::Pending(_)))
                    || s.spectra.values().any(|c| matches!(c, Computed::Pending(_)))
                    || s.channels.values().any(|c| matches!(c, Computed::Pending(_)))
                    || s.salience.values().any(|c| matches!(c, Computed::Pending(_)))
            })
    }

    /// The statistics parameters the distribution view uses now.
    pub fn stats_key(&self) -> StatsKey {
        StatsKey { bins: HISTOGRAM_BINS, log_abs: self.options.log_abs }
    }

    /// Selects tensor `index` (the current view then asks for what it needs).
    pub fn select(&mut self, index: usize) {
        let Some(session) = &mut self.session else { return };
        if session.selected == Some(index) {
            return;
        }
        // Stop the previous tensor's distribution work if still running: the user moved on.
        if let Some(prev) = session.selected {
            let key = StatsKey { bins: HISTOGRAM_BINS, log_abs: self.options.log_abs };
            if let Some(Computed::Pending(cancel)) = session.stats.get(&(prev, key)) {
                cancel.cancel();
                session.stats.remove(&(prev, key));
            }
        }
        session.selected = Some(index);
        if self.view == View::Metadata || self.view == View::Overview {
            self.view = View::Distribution;
        }
    }

    fn apply_startup(&mut self, startup: Startup) {
        if let Some(name) = &startup.select {
            match self.session.as_ref().and_then(|s| s.ckpt.tensors().iter().position(|t| &t.name == name)) {
                Some(i) => self.select(i),
                None => self.message = Some(format!("no tensor named {name:?}")),
            }
        }
        if let Some(view) = startup.view {
            self.view = match view {
                StartView::Overview => View::Overview,
                StartView::Distribution => View::Distribution,
                StartView::Spectrum => View::Spectrum,
                StartView::Heatmap => View::Heatmap,
                StartView::Metadata => View::Metadata,
                StartView::Plan => View::Plan,
                StartView::Attention => View::Attention,
            };
        }
        if let Some(plan) = startup.load_plan {
            self.jobs.load_plan(plan);
        }
        match startup.run {
            Some(StartJob::Stats) => self.start_model_job(ModelJobKind::Stats),
            Some(StartJob::Spectra) => self.start_model_job(ModelJobKind::Spectra),
            Some(StartJob::Allocate) => {
                if let Err(e) = self.start_auto() {
                    self.message = Some(e);
                }
            }
            Some(StartJob::Attention) => {
                if let Some(s) = self.session.as_mut() {
                    let layers = s.ckpt.model_config().and_then(|c| c.num_layers).unwrap_or(1) as usize;
                    s.attention.layer = layers / 2;
                }
                self.start_attention();
            }
            None => {}
        }
    }

    /// Asks for a per-tensor result unless it is cached or being computed.
    pub fn request(&mut self, index: usize, kind: ResultKind) {
        let Some(session) = &mut self.session else { return };
        let cancel = Cancel::new();
        let missing = match kind {
            ResultKind::Stats(key) => insert_pending(&mut session.stats, (index, key), &cancel),
            ResultKind::Spectrum => insert_pending(&mut session.spectra, index, &cancel),
            ResultKind::Channels => insert_pending(&mut session.channels, index, &cancel),
            ResultKind::Salience => insert_pending(&mut session.salience, index, &cancel),
        };
        if missing && let Some(why) = session.ckpt.tensors().get(index).and_then(|t| t.dtype.why_not_analysed()) {
            // Nothing to compute: say why in the view instead of failing in a worker.
            cancel.cancel();
            match kind {
                ResultKind::Stats(key) => drop(session.stats.insert((index, key), Computed::Failed(why))),
                ResultKind::Spectrum => drop(session.spectra.insert(index, Computed::Failed(why))),
                ResultKind::Channels => drop(session.channels.insert(index, Computed::Failed(why))),
                ResultKind::Salience => drop(session.salience.insert(index, Computed::Failed(why))),
            }
            return;
        }
        if missing {
            let importance = if kind == ResultKind::Salience { self.imatrix.clone() } else { None };
            self.jobs.tensor(self.backend.clone(), session.ckpt.clone(), index, kind, importance, cancel);
        }
    }

    /// Asks for heatmap tiles unless cached or being computed (salience with `importance`).
    pub fn request_heat(&mut self, key: jobs::HeatKey, importance: Option<Arc<Vec<f32>>>) {
        let Some(session) = &mut self.session else { return };
        let cancel = Cancel::new();
        if session.heat.want(&key, &cancel) {
            self.jobs.heatmap(self.backend.clone(), session.ckpt.clone(), key, importance, cancel);
        }
    }

    /// Starts a whole-model job (replacing a finished one; a running one is left alone).
    pub fn start_model_job(&mut self, kind: ModelJobKind) {
        let Some(session) = &mut self.session else { return };
        if session.model_job.as_ref().is_some_and(|j| j.ended.is_none()) {
            return;
        }
        let key = StatsKey { bins: HISTOGRAM_BINS, log_abs: false };
        let order: Vec<usize> = (0..session.ckpt.tensors().len())
            .filter(|&i| {
                let t = &session.ckpt.tensors()[i];
                let wanted = match kind {
                    ModelJobKind::Stats => session.stats.get(&(i, key)).is_none_or(|c| c.ready().is_none()),
                    ModelJobKind::Spectra => {
                        t.shape.len() >= 2 && !t.dtype.is_integer() && !session.spectra.contains_key(&i)
                    }
                };
                wanted && t.dtype.can_decode() && t.numel() > 0
            })
            .collect();
        let total_bytes = order.iter().map(|&i| session.ckpt.tensors()[i].bytes).sum();
        let cancel = Cancel::new();
        session.model_job = Some(ModelJob {
            kind,
            cancel: cancel.clone(),
            started: Instant::now(),
            done_bytes: 0,
            total_bytes,
            ended: None,
        });
        self.jobs.model(self.backend.clone(), session.ckpt.clone(), kind, order, cancel);
    }

    /// Exports the open checkpoint under `request` in the background (one export at a time).
    pub fn start_export(&mut self, request: jobs::ExportRequest) {
        let Some(session) = &mut self.session else { return };
        if session.export_job.as_ref().is_some_and(|j| j.result.is_none()) {
            self.message = Some("an export is already running".into());
            return;
        }
        let cancel = Cancel::new();
        session.export_job = Some(ExportJob {
            output: request.output.clone(),
            cancel: cancel.clone(),
            done: 0,
            total: session.ckpt.total_params(),
            elapsed: Duration::ZERO,
            result: None,
        });
        self.jobs.export(self.backend.clone(), session.ckpt.clone(), request, cancel);
    }

    /// Cancels the running export (it then removes what it staged).
    pub fn cancel_export(&mut self) {
        if let Some(job) = self.session.as_ref().and_then(|s| s.export_job.as_ref()) {
            job.cancel.cancel();
        }
    }

    /// Cancels the running whole-model job.
    pub fn cancel_model_job(&mut self) {
        if let Some(job) = self.session.as_ref().and_then(|s| s.model_job.as_ref()) {
            job.cancel.cancel();
        }
    }

    /// Opens a file dialog.
    pub fn pick(&self, pick: Pick) {
        self.jobs.pick(pick, None);
    }

    /// Saves `payload` as `suggested` in the export folder when one is set, else asks where with
    /// a save dialog (on a worker thread).
    pub fn save(&mut self, payload: SavePayload, suggested: String) {
        self.pending_save = Some(payload);
        let folder = self.export_dir.trim();
        if folder.is_empty() {
            self.jobs.pick(Pick::Save, Some(suggested));
        } else {
            let path = PathBuf::from(folder).join(suggested);
            self.apply(JobResult::Picked(Pick::Save, path));
        }
    }

    fn apply(&mut self, result: JobResult) {
        match result {
            JobResult::Opened { path, result, report } => {
                if self.opening.as_ref() != Some(&path) {
                    return; // superseded by a later open
                }
                self.opening = None;
                match result {
                    Ok(ckpt) => {
                        self.recent = recent::remember(std::mem::take(&mut self.recent), &path, self.persist_recent);
                        let groups = tree::groups(&ckpt);
                        self.message = ckpt.warnings().first().cloned();
                        let largest = ckpt.tensors().iter().enumerate().max_by_key(|(_, t)| t.bytes).map(|(i, _)| i);
                        if let Some(old) = &self.session {
                            old.close();
                        }
                        let plan = plan_editor::PlanEditor::new(&ckpt);
                        self.session = Some(Session {
                            plan,
                            preview_queue: Arc::new(jobs::PreviewQueue::default()),
                            preview_cancel: Cancel::new(),
                            auto_job: None,
                            diff: None,
                            ckpt,
                            groups,
                            selected: None,
                            compare: None,
                            stats: HashMap::new(),
                            spectra: HashMap::new(),
                            channels: HashMap::new(),
                            salience: HashMap::new(),
                            model_job: None,
                            export_job: None,
                            textures: HashMap::new(),
                            heat: HeatCache::default(),
                            heat_focus: None,
                            attention: attention::AttentionState::default(),
                        });
                        if let (Some(report), Some(session)) = (&report, &mut self.session) {
                            session.fill_from(report);
                            self.message = Some(format!(
                                "a report of {} ({}, {} of {} tensors, by {}): views that need the weights say so",
                                report.checkpoint.path,
                                report.parts.iter().map(|p| format!("files {p}")).collect::<Vec<_>>().join(", "),
                                report.tensors.len(),
                                report.checkpoint.tensors.len(),
                                report.created_by
                            ));
                        }
                        // Start on the largest tensor: usually the most interesting one.
                        if let Some(i) = largest {
                            self.select(i);
                        }
                        if let Some(startup) = self.startup.take() {
                            self.apply_startup(startup);
                        }
                    }
                    Err(message) => self.message = Some(message),
                }
            }
            JobResult::Tensor { checkpoint, tensor, kind, result } => {
                let Some(session) = &mut self.session else { return };
                if session.ckpt.path() != checkpoint {
                    return;
                }
                match result {
                    Ok(Output::Stats(key, s)) => {
                        session.stats.insert((tensor, key), Computed::Ready(s));
                    }
                    Ok(Output::Spectrum(s)) => {
                        session.spectra.insert(tensor, Computed::Ready(s));
                    }
                    Ok(Output::Channels(c)) => {
                        session.channels.insert(tensor, Computed::Ready(c));
                    }
                    Ok(Output::Salience(s)) => {
                        session.salience.insert(tensor, Computed::Ready(s));
                    }
                    Err(e) if e == "cancelled" => match kind {
                        ResultKind::Stats(key) => drop(session.stats.remove(&(tensor, key))),
                        ResultKind::Spectrum => drop(session.spectra.remove(&tensor)),
                        ResultKind::Channels => drop(session.channels.remove(&tensor)),
                        ResultKind::Salience => drop(session.salience.remove(&tensor)),
                    },
                    Err(e) => match kind {
                        ResultKind::Stats(key) => drop(session.stats.insert((tensor, key), Computed::Failed(e))),
                        ResultKind::Spectrum => drop(session.spectra.insert(tensor, Computed::Failed(e))),
                        ResultKind::Channels => drop(session.channels.insert(tensor, Computed::Failed(e))),
                        ResultKind::Salience => drop(session.salience.insert(tensor, Computed::Failed(e))),
                    },
                }
            }
            JobResult::ModelProgress { kind, done_bytes } => {
                if let Some(job) = self.session.as_mut().and_then(|s| s.model_job.as_mut()).filter(|j| j.kind == kind) {
                    // Tensors finish on several threads, so reports may arrive out of order.
                    job.done_bytes = job.done_bytes.max(done_bytes);
                }
            }
            JobResult::ModelDone { kind, cancelled } => {
                if let Some(job) = self.session.as_mut().and_then(|s| s.model_job.as_mut()).filter(|j| j.kind == kind) {
                    job.ended = Some(cancelled);
                }
                // The strip chart shows what the job just computed, rather than what is missing.
                let metric = self.options.strip_metric;
                match kind {
                    ModelJobKind::Spectra if !cancelled && !metric.needs_spectra() => {
                        self.options.strip_metric = panels::overview::Metric::Alpha;
                    }
                    ModelJobKind::Stats if !cancelled && metric.needs_spectra() => {
                        self.options.strip_metric = panels::overview::Metric::Kurtosis;
                    }
                    _ => {}
                }
            }
            JobResult::ExportProgress { done, total, elapsed } => {
                if let Some(job) = self.session.as_mut().and_then(|s| s.export_job.as_mut()) {
                    (job.done, job.total, job.elapsed) = (done.max(job.done), total, elapsed);
                }
            }
            JobResult::Exported { output, result } => {
                self.message = Some(match &result {
                    Ok(r) => format!(
                        "exported {} tensors ({} bytes of data) to {}",
                        r.tensors.len(),
                        r.data_bytes,
                        output.display()
                    ),
                    Err(e) if e == "cancelled" => "export cancelled: nothing was written".into(),
                    Err(e) => format!("export failed, nothing was written: {e}"),
                });
                if let Some(job) =
                    self.session.as_mut().and_then(|s| s.export_job.as_mut()).filter(|j| j.output == output)
                {
                    job.result = Some(result);
                }
            }
            JobResult::Preview { checkpoint, tensor, scheme, result } => {
                let Some(session) = self.session.as_mut().filter(|s| s.ckpt.path() == checkpoint) else { return };
                let key = (tensor, scheme);
                match result {
                    Ok(row) => drop(session.plan.previews.insert(key, Computed::Ready(row))),
                    Err(e) if e == "cancelled" => drop(session.plan.previews.remove(&key)),
                    Err(e) => drop(session.plan.previews.insert(key, Computed::Failed(e))),
                }
            }
            JobResult::ErrorMap { checkpoint, tensor, scheme, result } => {
                let Some(session) = self.session.as_mut().filter(|s| s.ckpt.path() == checkpoint) else { return };
                let key = (tensor, scheme);
                session.plan.error_textures.remove(&key);
                match result {
                    Ok(m) => drop(session.plan.error_maps.insert(key, Computed::Ready(m))),
                    Err(e) if e == "cancelled" => drop(session.plan.error_maps.remove(&key)),
                    Err(e) => drop(session.plan.error_maps.insert(key, Computed::Failed(e))),
                }
            }
            JobResult::Heatmap { checkpoint, key, result } => {
                let Some(session) = self.session.as_mut().filter(|s| s.ckpt.path() == checkpoint) else { return };
                match result {
                    Ok(t) => session.heat.put(key, Computed::Ready(t)),
                    Err(e) if e == "cancelled" => drop(session.heat.tiles.remove(&key)),
                    Err(e) => session.heat.put(key, Computed::Failed(e)),
                }
            }
            JobResult::RowLevels { checkpoint, tensor, scheme, result } => {
                let Some(session) = self.session.as_mut().filter(|s| s.ckpt.path() == checkpoint) else { return };
                if let Some(((t, s, row), state)) = &mut session.plan.row_levels
                    && *t == tensor
                    && *s == scheme
                    && result.as_ref().map_or(true, |r| r.row == *row)
                {
                    *state = match result {
                        Ok(r) => Computed::Ready(r),
                        Err(e) => Computed::Failed(e),
                    };
                }
            }
            JobResult::AutoProgress { done, total, what } => {
                if let Some(job) = self.session.as_mut().and_then(|s| s.auto_job.as_mut()) {
                    (job.done, job.total, job.what) = (done.max(job.done), total, what);
                }
            }
            JobResult::AutoDone(result) => self.finish_auto(result),
            JobResult::PlanLoaded(path, result) => {
                let Some(session) = &mut self.session else { return };
                self.message = Some(match result {
                    Ok(plan) => match session.plan.replace(&session.ckpt, plan) {
                        Ok(()) => format!("plan {} loaded", path.display()),
                        Err(e) => format!("the plan {} does not fit this checkpoint: {e}", path.display()),
                    },
                    Err(e) => e,
                });
            }
            JobResult::DiffProgress { done, total } => {
                if let Some((_, progress)) = self.session.as_mut().and_then(|s| s.diff.as_mut()) {
                    *progress = (done, total);
                }
            }
            JobResult::Diffed(result) => {
                if let Some((state, _)) = self.session.as_mut().and_then(|s| s.diff.as_mut()) {
                    *state = match result {
                        Ok(d) => Computed::Ready(d),
                        Err(e) => Computed::Failed(e),
                    };
                }
            }
            JobResult::Picked(Pick::PlanLoad, path) => self.jobs.load_plan(path),
            JobResult::Picked(Pick::PlanSave, path) => self.save_plan(&path),
            JobResult::Picked(Pick::ExportTarget, path) => {
                if let Some(d) = &mut self.export_dialog {
                    d.output = path.display().to_string();
                }
            }
            JobResult::Picked(Pick::Compare, path) => self.start_diff(path),
            JobResult::CalibrationProgress { what, done, total } => {
                if let Some((_, p)) = self.calibrating.as_mut() {
                    *p = Some((what, done, total));
                }
            }
            JobResult::Imatrix(Ok(m)) => {
                self.calibrating = None;
                self.message = Some(format!(
                    "importance {}: {} weights{}",
                    m.source,
                    m.vectors.len(),
                    if m.hessians.is_empty() { String::new() } else { " with their Hessians (for +gptq)".into() }
                ));
                self.imatrix = Some(m);
                if let Some(s) = &mut self.session {
                    // Previews measured with the old importance are measured again.
                    s.plan.previews.clear();
                    s.salience.clear();
                    s.textures.retain(|(_, salience, _), _| !salience);
                    s.heat = HeatCache::default();
                }
            }
            JobResult::Imatrix(Err(e)) => {
                self.calibrating = None;
                self.message = Some(e);
            }
            JobResult::Picked(Pick::CheckpointFile | Pick::CheckpointFolder, path) => self.open(path),
            JobResult::Picked(Pick::Imatrix, path) => self.jobs.imatrix(path),
            JobResult::Picked(Pick::Save, path) => match self.pending_save.take() {
                Some(SavePayload::Text(text)) => {
                    // Whole or not at all, like every file the workbench writes.
                    self.message = Some(match crate::export::atomic::write_text(&path, &text, &[], true) {
                        Ok(_) => format!("saved {}", path.display()),
                        Err(e) => format!("cannot save: {e}"),
                    });
                }
                Some(SavePayload::Picture(rect)) => self.jobs.save_picture(rect, path),
                None => {}
            },
            JobResult::BackendStarted { choice, label } => {
                if choice == self.backend_choice {
                    self.backend_starting = false;
                    if label.contains("instead of the GPU") {
                        self.message = Some(format!("computing on {label}"));
                    }
                }
            }
            JobResult::Notice(text) => {
                self.pending_save = None;
                self.message = Some(text);
            }
            JobResult::AttentionProgress { done, total } => {
                if let Some(s) = self.session.as_mut() {
                    s.attention.progress = Some((done, total));
                }
            }
            JobResult::Attention { checkpoint, result } => {
                let Some(session) = self.session.as_mut().filter(|s| s.ckpt.path() == checkpoint) else { return };
                let a = &mut session.attention;
                a.progress = None;
                a.cancel = None;
                a.textures.clear();
                a.run = match result {
                    Ok((run, model)) => {
                        a.model = Some(model);
                        a.head = a.head.min(run.shape.1.saturating_sub(1));
                        if run.plan_maps.is_none() {
                            a.shown = attention::Shown::Original;
                        }
                        Some(Computed::Ready(run))
                    }
                    Err(e) if e == "cancelled" => None,
                    Err(e) => Some(Computed::Failed(e)),
                };
            }
        }
    }

    /// Every [`DISK_CHECK`], whether the open checkpoint's files changed on disk (a download
    /// finishing, a file replaced or truncated): then its work is cancelled before anything reads
    /// the changed bytes (a shrunk mapped file raises SIGBUS), the window says so, and the path is
    /// opened again, which validates it afresh.
    fn watch_files(&mut self) {
        if self.opening.is_some() || self.last_disk_check.is_some_and(|t| t.elapsed() < DISK_CHECK) {
            return;
        }
        self.last_disk_check = Some(Instant::now());
        let Some(session) = &self.session else { return };
        let Some((file, why)) = session.ckpt.change_on_disk() else { return };
        session.close();
        let path = session.ckpt.path().to_owned();
        self.session = None;
        self.open(path);
        self.message = Some(format!("{} changed on disk since it was opened: {why}; opening it again", file.display()));
    }

    /// Takes results of background work; called once per frame before drawing.
    pub fn poll(&mut self, ctx: &egui::Context) {
        for result in self.jobs.drain(DRAIN_BUDGET) {
            self.apply(result);
        }
        if let Some(notice) = self.backend.take_notices().pop() {
            self.message = Some(notice);
        }
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw.dropped_files.iter().map(|f| f.path().to_owned()).filter(|p| !p.as_os_str().is_empty()).collect()
        });
        if let Some(path) = dropped.into_iter().next() {
            self.open(path);
        }
        self.watch_files();
        if self.busy() {
            // Results arrive with a repaint request; this keeps progress and spinners moving.
            ctx.request_repaint_after(Duration::from_millis(100));
        }
    }
}

fn insert_pending<K: std::hash::Hash + Eq, T>(map: &mut HashMap<K, Computed<T>>, key: K, cancel: &Cancel) -> bool {
    if map.contains_key(&key) {
        return false;
    }
    map.insert(key, Computed::Pending(cancel.clone()));
    true
}

impl eframe::App for WorkbenchApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.poll(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        ui.ctx().set_theme(if self.dark { egui::Theme::Dark } else { egui::Theme::Light });
        panels::top_bar_ui(self, ui);
        panels::status_bar_ui(self, ui);
        // The plan table lists every tensor itself, and the attention view is about the whole
        // model: their views take the tree's width.
        if !matches!(self.view, View::Plan | View::Attention) {
            panels::tree::tree_panel_ui(self, ui);
        }
        panels::central_ui(self, ui);
    }
}
