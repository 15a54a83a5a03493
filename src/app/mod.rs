//! The desktop workbench (eframe). The app holds only what it draws; files are opened and
//! tensors analysed by [`jobs`] on worker threads, whose results are drained each frame.

pub mod jobs;
mod panels;
pub mod tree;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::analysis::Cancel;
use crate::analysis::stats::TensorStats;
use crate::checkpoint::Checkpoint;
use crate::compute::Backend;
use crate::compute::cpu::CpuBackend;
use crate::compute::select::{BackendChoice, WithFallback, select};
use jobs::{JobResult, Jobs};

/// Bins of the histogram shown for the selected tensor.
pub const HISTOGRAM_BINS: usize = 128;

/// Opens the native window on `path` (or an empty workbench when `None`), computing on the
/// backend `choice` selects (changeable in the window).
pub fn run_native(path: Option<PathBuf>, choice: BackendChoice) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("weightbench")
            .with_inner_size([1280.0, 800.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "weightbench",
        options,
        Box::new(move |cc| {
            let mut app = WorkbenchApp::new(&cc.egui_ctx, path);
            app.set_backend(choice);
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

/// State of the statistics of one tensor.
pub enum StatsState {
    /// Being computed; the flag stops it.
    Pending(Cancel),
    /// Done.
    Ready(Box<TensorStats>),
    /// Failed, with the message.
    Failed(String),
}

/// The open checkpoint and what has been computed for it.
pub struct Session {
    /// The checkpoint (shared with worker threads).
    pub ckpt: Arc<Checkpoint>,
    /// Its tensor tree.
    pub groups: Vec<tree::Group>,
    /// Selected tensor index.
    pub selected: Option<usize>,
    /// Whether the central panel shows the file metadata instead of the selected tensor.
    pub show_metadata: bool,
    /// Statistics by tensor index; revisiting a tensor shows the cached ones.
    pub stats: HashMap<usize, StatsState>,
}

/// The application.
pub struct WorkbenchApp {
    jobs: Jobs,
    backend: Arc<dyn Backend>,
    gpu: Option<Arc<WithFallback>>,
    /// The backend the user chose.
    pub backend_choice: BackendChoice,
    /// The open checkpoint, if any.
    pub session: Option<Session>,
    /// A checkpoint being opened.
    pub opening: Option<PathBuf>,
    /// The path field's text.
    pub path_input: String,
    /// The tree's name filter.
    pub filter: String,
    /// The last error or notice, shown until dismissed.
    pub message: Option<String>,
}

impl WorkbenchApp {
    /// A workbench that starts opening `path`, if given.
    pub fn new(ctx: &egui::Context, path: Option<PathBuf>) -> Self {
        let mut app = Self {
            jobs: Jobs::new(ctx.clone()),
            backend: Arc::new(CpuBackend),
            gpu: None,
            backend_choice: BackendChoice::Cpu,
            session: None,
            opening: None,
            path_input: String::new(),
            filter: String::new(),
            message: None,
        };
        match path {
            Some(path) => app.open(path),
            None => app.message = Some("no checkpoint: open a file or folder".into()),
        }
        app
    }

    /// Switches the compute backend; results computed so far stay cached. Opening a GPU device
    /// takes a moment, once per process.
    pub fn set_backend(&mut self, choice: BackendChoice) {
        let selected = select(choice);
        self.backend = selected.backend;
        self.gpu = selected.gpu;
        self.backend_choice = choice;
        if let Some(notice) = selected.notice {
            self.message = Some(notice);
        }
    }

    /// What the current backend runs on, for display.
    pub fn backend_label(&self) -> String {
        let info = self.backend.info();
        format!("{}: {}", info.kind, info.device)
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
            || self.session.as_ref().is_some_and(|s| s.stats.values().any(|h| matches!(h, StatsState::Pending(_))))
    }

    /// Selects tensor `index` and asks for its histogram unless it is cached.
    pub fn select(&mut self, index: usize) {
        let Some(session) = &mut self.session else { return };
        session.show_metadata = false;
        if session.selected == Some(index) {
            return;
        }
        // Stop the previous tensor's work if it is still running: the user moved on.
        if let Some(prev) = session.selected
            && let Some(StatsState::Pending(cancel)) = session.stats.get(&prev)
        {
            cancel.cancel();
            session.stats.remove(&prev);
        }
        session.selected = Some(index);
        if let std::collections::hash_map::Entry::Vacant(entry) = session.stats.entry(index) {
            let cancel = Cancel::new();
            entry.insert(StatsState::Pending(cancel.clone()));
            self.jobs.stats(self.backend.clone(), session.ckpt.clone(), index, HISTOGRAM_BINS, cancel);
        }
    }

    fn apply(&mut self, result: JobResult) {
        match result {
            JobResult::Opened { path, result } => {
                if self.opening.as_ref() != Some(&path) {
                    return; // superseded by a later open
                }
                self.opening = None;
                match result {
                    Ok(ckpt) => {
                        let groups = tree::groups(&ckpt);
                        self.message = ckpt.warnings().first().cloned();
                        self.session =
                            Some(Session { ckpt, groups, selected: None, show_metadata: false, stats: HashMap::new() });
                        // Start on the largest tensor: usually the most interesting one.
                        let largest = self.session.as_ref().and_then(|s| {
                            s.ckpt.tensors().iter().enumerate().max_by_key(|(_, t)| t.bytes).map(|(i, _)| i)
                        });
                        if let Some(i) = largest {
                            self.select(i);
                        }
                    }
                    Err(message) => self.message = Some(message),
                }
            }
            JobResult::Stats { checkpoint, tensor, result } => {
                let Some(session) = &mut self.session else { return };
                if session.ckpt.path() != checkpoint || !session.stats.contains_key(&tensor) {
                    return;
                }
                let state = match result {
                    Ok(h) => StatsState::Ready(h),
                    Err(e) => StatsState::Failed(e),
                };
                session.stats.insert(tensor, state);
            }
            JobResult::Picked(path) => self.open(path),
            JobResult::Notice(text) => self.message = Some(text),
        }
    }

    /// Takes results of background work; called once per frame before drawing.
    pub fn poll(&mut self, ctx: &egui::Context) {
        for result in self.jobs.drain() {
            self.apply(result);
        }
        if let Some(notice) = self.gpu.as_ref().and_then(|g| g.take_notices().pop()) {
            self.message = Some(notice);
        }
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw.dropped_files.iter().map(|f| f.path().to_owned()).filter(|p| !p.as_os_str().is_empty()).collect()
        });
        if let Some(path) = dropped.into_iter().next() {
            self.open(path);
        }
    }
}

impl eframe::App for WorkbenchApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.poll(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        panels::top_bar_ui(self, ui);
        panels::status_bar_ui(self, ui);
        panels::tree_panel_ui(self, ui);
        panels::central_ui(self, ui);
    }
}
