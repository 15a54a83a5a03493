//! Background work for the GUI. The UI thread never reads tensor bytes or runs a kernel: it asks
//! for work here; each job runs on its own thread (kernels fan out on rayon or the GPU) and sends
//! its results through a bounded channel that the UI drains within a time budget each frame,
//! waking the UI after each send.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use crate::analysis::channels::{ChannelReport, channel_report};
use crate::analysis::report::{Report, TOP_CHANNELS};
use crate::analysis::salience::{SalienceMap, salience_map};
use crate::analysis::spectrum::{SpectrumMethod, SpectrumReport, spectrum_report};
use crate::analysis::stats::{TensorStats, tensor_stats};
use crate::analysis::{AnalysisError, Cancel};
use crate::checkpoint::Checkpoint;
use crate::checkpoint::imatrix::{Imatrix, read_imatrix};
use crate::compute::{Backend, BinScale, StatsRequest};

/// Parameters that select a cached statistics result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StatsKey {
    /// Histogram bins.
    pub bins: usize,
    /// log10|x| bins instead of x.
    pub log_abs: bool,
}

impl StatsKey {
    fn request(self) -> StatsRequest {
        StatsRequest { bins: self.bins, scale: if self.log_abs { BinScale::Log10Abs } else { BinScale::Linear } }
    }
}

/// Which whole-model job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelJobKind {
    /// Statistics of every tensor.
    Stats,
    /// Spectra of every 2-D weight.
    Spectra,
}

/// What one job produced.
pub enum Output {
    /// Statistics of a tensor.
    Stats(StatsKey, Arc<TensorStats>),
    /// Spectrum of a tensor.
    Spectrum(Arc<SpectrumReport>),
    /// Channel report of a tensor.
    Channels(Arc<ChannelReport>),
    /// Salience map of a tensor.
    Salience(Arc<SalienceMap>),
}

/// A finished job or a step of one.
pub enum JobResult {
    /// The attention maps of a prompt (or why there are none), and the model that made them.
    Attention {
        /// Which checkpoint it belongs to.
        checkpoint: PathBuf,
        /// The run and the original model, or the error's message (`cancelled` when cancelled).
        result: Result<(Arc<super::attention::AttentionRun>, Arc<crate::runtime::Model>), String>,
    },
    /// Layers of the model loaded so far, while an attention run loads it.
    AttentionProgress {
        /// Layers loaded.
        done: usize,
        /// Layers.
        total: usize,
    },
    /// A step of a calibration run: what it is doing, and how far.
    CalibrationProgress {
        /// `loading the model` or `running the text`.
        what: &'static str,
        /// Steps done.
        done: usize,
        /// Steps.
        total: usize,
    },
    /// A checkpoint was opened (or failed to open).
    Opened {
        /// The path asked for.
        path: PathBuf,
        /// The checkpoint, or the error's full message.
        result: Result<Arc<Checkpoint>, String>,
        /// When the path was a report (`analyze -o`): its results (the checkpoint then has no
        /// weights).
        report: Option<Arc<Report>>,
    },
    /// A per-tensor result (or why there is none), for the checkpoint at `checkpoint`.
    Tensor {
        /// Which checkpoint it belongs to (its path), so stale results are dropped.
        checkpoint: PathBuf,
        /// Index of the tensor in the checkpoint.
        tensor: usize,
        /// What kind of result was asked for (to clear the pending entry on failure).
        kind: ResultKind,
        /// The output, or the error message (`cancelled` when cancelled).
        result: Result<Output, String>,
    },
    /// A whole-model job finished one tensor.
    ModelProgress {
        /// Which job.
        kind: ModelJobKind,
        /// Bytes of tensors done so far.
        done_bytes: u64,
    },
    /// A whole-model job ended.
    ModelDone {
        /// Which job.
        kind: ModelJobKind,
        /// Whether it was cancelled.
        cancelled: bool,
    },
    /// An importance matrix was loaded (or failed to load).
    Imatrix(Result<Arc<Imatrix>, String>),
    /// A path picked in a native dialog, and for what.
    Picked(Pick, PathBuf),
    /// The device of a backend choice was started (or found missing).
    BackendStarted {
        /// The choice it was started for.
        choice: crate::compute::select::BackendChoice,
        /// What runs the kernels now.
        label: String,
    },
    /// An export wrote `done` of `total` values.
    ExportProgress {
        /// Values encoded and written so far.
        done: u64,
        /// Values in the checkpoint.
        total: u64,
        /// Time since the export started.
        elapsed: std::time::Duration,
    },
    /// An export ended: its report, or why it wrote nothing (`cancelled` when cancelled).
    Exported {
        /// The output asked for.
        output: PathBuf,
        /// The report, or the error's message.
        result: Result<Arc<crate::export::model::ExportReport>, String>,
    },
    /// A plan preview of one tensor under one scheme.
    Preview {
        /// Which checkpoint it belongs to.
        checkpoint: PathBuf,
        /// Index of the tensor.
        tensor: usize,
        /// The scheme it was measured with.
        scheme: String,
        /// The row, or the error's message (`cancelled` when cancelled).
        result: Result<Arc<crate::quant::TensorPreview>, String>,
    },
    /// The error map of one tensor under one scheme.
    ErrorMap {
        /// Which checkpoint it belongs to.
        checkpoint: PathBuf,
        /// Index of the tensor.
        tensor: usize,
        /// The scheme.
        scheme: String,
        /// The map, or the error's message.
        result: Result<Arc<crate::quant::inspect::ErrorMap>, String>,
    },
    /// Tiles of a region of a tensor (the heatmap's level of detail).
    Heatmap {
        /// Which checkpoint it belongs to.
        checkpoint: PathBuf,
        /// What was asked for.
        key: HeatKey,
        /// The tiles, or the error's message.
        result: Result<Arc<crate::analysis::heatmap::HeatmapTiles>, String>,
    },
    /// One row of a tensor encoded alone, for the levels of its groups.
    RowLevels {
        /// Which checkpoint it belongs to.
        checkpoint: PathBuf,
        /// Index of the tensor.
        tensor: usize,
        /// The scheme.
        scheme: String,
        /// The row, or the error's message.
        result: Result<Arc<crate::quant::inspect::RowLevels>, String>,
    },
    /// An automatic allocation measured `done` of `total` values.
    AutoProgress {
        /// Values measured (cache hits included).
        done: u64,
        /// Values to measure.
        total: u64,
        /// What it measures now.
        what: String,
    },
    /// An automatic allocation ended.
    AutoDone(Result<Arc<AutoDone>, String>),
    /// A plan file was read (or failed to be).
    PlanLoaded(PathBuf, Result<crate::quant::Plan, String>),
    /// A comparison compared `done` of `total` tensors.
    DiffProgress {
        /// Tensors compared.
        done: usize,
        /// Tensors to compare.
        total: usize,
    },
    /// A comparison ended.
    Diffed(Result<Arc<DiffResult>, String>),
    /// Something to tell the user that is not a result.
    Notice(String),
}

/// A region of a tensor's heatmap at one tile size: what the cache of tiles is keyed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeatKey {
    /// Index of the tensor.
    pub tensor: usize,
    /// What each tile shows.
    pub mode: crate::analysis::heatmap::Mode,
    /// Rows of the region.
    pub rows: std::ops::Range<usize>,
    /// Columns of the region.
    pub cols: std::ops::Range<usize>,
    /// Rows and columns per tile.
    pub tile: (usize, usize),
}

/// What an automatic allocation chose, and everything it measured.
pub struct AutoDone {
    /// The scheme chosen per free tensor (tensor index, scheme).
    pub chosen: Vec<(usize, String)>,
    /// Every measured row (tensor index, row), to fill the editor's previews.
    pub rows: Vec<(usize, crate::quant::TensorPreview)>,
    /// The frontier and the tensors it is over.
    pub result: crate::app::plan_editor::AutoResult,
    /// One line for the window: bytes, bpw, objective, bound and gap, measured and cached.
    pub summary: String,
}

/// Calibration tokens the window's KL objective runs the model on.
pub const KL_TOKENS: usize = 256;

/// What an automatic allocation is asked to do.
#[derive(Clone)]
pub struct AutoJob {
    /// Candidate schemes.
    pub candidates: Vec<crate::quant::Scheme>,
    /// Tensors (by name) that keep their scheme.
    pub pinned: std::collections::BTreeSet<String>,
    /// Importance for methods and the weighted objective.
    pub importance: Option<crate::quant::Importance>,
    /// What to minimise.
    pub objective: crate::quant::auto::Objective,
    /// Bytes the free tensors (the matrices not pinned) may take.
    pub budget_bytes: u64,
    /// Where measurements are cached (`None`: not cached).
    pub cache_dir: Option<PathBuf>,
}

/// A comparison of the open checkpoint (A) with another (B).
pub struct DiffResult {
    /// B.
    pub other: PathBuf,
    /// One row per pair, by A's tensor index.
    pub rows: Vec<(usize, crate::analysis::diff::TensorDiff)>,
    /// A's tensors with no counterpart in B, B's with none in A, and pairs of other shapes.
    pub unpaired: Vec<String>,
}

/// The previews a plan editor waits for, front first; a worker takes them one at a time, so an
/// edit pushed to the front is measured next even while a whole-model preview runs.
#[derive(Default)]
pub struct PreviewQueue {
    state: std::sync::Mutex<(std::collections::VecDeque<(usize, crate::quant::Resolved)>, bool)>,
}

impl PreviewQueue {
    /// Puts `items` first (in their order); true when no worker runs and one must be started.
    pub fn push_front(&self, items: Vec<(usize, crate::quant::Resolved)>) -> bool {
        let Ok(mut s) = self.state.lock() else { return false };
        for item in items.into_iter().rev() {
            s.0.push_front(item);
        }
        let start = !s.1 && !s.0.is_empty();
        s.1 |= start;
        start
    }

    /// Drops everything waiting.
    pub fn clear(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.0.clear();
        }
    }

    /// The next item; `None` ends the worker (and says so under the same lock).
    fn pop(&self) -> Option<(usize, crate::quant::Resolved)> {
        let mut s = self.state.lock().ok()?;
        let item = s.0.pop_front();
        if item.is_none() {
            s.1 = false;
        }
        item
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.0.len()).unwrap_or(0)
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What an export job is asked to do.
#[derive(Clone)]
pub struct ExportRequest {
    /// The plan to export under.
    pub plan: crate::quant::Plan,
    /// Importance for methods and weighted errors.
    pub importance: Option<crate::quant::Importance>,
    /// The format.
    pub format: crate::export::model::ExportFormat,
    /// A file (GGUF) or folder (safetensors, ct).
    pub output: PathBuf,
    /// Overwrite, sharding, factors.
    pub options: crate::export::model::ExportOptions,
}

/// Lets progress through at most every 100 ms, so a job does not flood the window.
#[derive(Default)]
struct Throttle(std::sync::Mutex<Option<std::time::Instant>>);

impl Throttle {
    /// Whether to send now (always when `last`, the final report).
    fn due(&self, last: bool) -> bool {
        let Ok(mut at) = self.0.lock() else { return last };
        if !last && at.is_some_and(|t| t.elapsed() < std::time::Duration::from_millis(100)) {
            return false;
        }
        *at = Some(std::time::Instant::now());
        true
    }
}

/// Seconds left at the rate so far, once there is a rate to go by.
pub fn eta(done: u64, total: u64, elapsed: std::time::Duration) -> Option<std::time::Duration> {
    if done == 0 || done >= total {
        return None;
    }
    Some(elapsed.mul_f64((total - done) as f64 / done as f64))
}

/// Kinds of per-tensor results (cache families).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResultKind {
    /// Statistics with these parameters.
    Stats(StatsKey),
    /// Spectrum.
    Spectrum,
    /// Channel report.
    Channels,
    /// Salience map.
    Salience,
}

/// What a file dialog was opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// A checkpoint file.
    CheckpointFile,
    /// A checkpoint folder.
    CheckpointFolder,
    /// An imatrix file.
    Imatrix,
    /// Where to save data or a picture (the payload is kept by the app).
    Save,
    /// A plan to load.
    PlanLoad,
    /// Where to save the plan.
    PlanSave,
    /// Where to export to.
    ExportTarget,
    /// A checkpoint to compare with.
    Compare,
}

/// Starts jobs and collects their results.
pub struct Jobs {
    ctx: egui::Context,
    sender: SyncSender<JobResult>,
    receiver: Receiver<JobResult>,
}

/// Tiles per side of an error map.
pub const ERROR_MAP_GRID: usize = 128;

/// Results waiting in the channel at most; a job blocks when the UI is this far behind.
const CHANNEL_CAPACITY: usize = 256;

/// A way for a job to report results and wake the UI.
#[derive(Clone)]
pub struct Reporter {
    ctx: egui::Context,
    sender: SyncSender<JobResult>,
}

impl Reporter {
    /// Sends a result (blocking while the channel is full) and wakes the UI; false when the app
    /// has closed.
    pub fn send(&self, result: JobResult) -> bool {
        let ok = self.sender.send(result).is_ok();
        self.ctx.request_repaint();
        ok
    }
}

fn message(e: AnalysisError) -> String {
    match e {
        AnalysisError::Cancelled => "cancelled".to_owned(),
        other => other.to_string(),
    }
}

impl Jobs {
    /// A job runner that wakes `ctx` when a result arrives.
    pub fn new(ctx: egui::Context) -> Self {
        let (sender, receiver) = sync_channel(CHANNEL_CAPACITY);
        Self { ctx, sender, receiver }
    }

    fn reporter(&self) -> Reporter {
        Reporter { ctx: self.ctx.clone(), sender: self.sender.clone() }
    }

    fn spawn(&self, name: &str, work: impl FnOnce(Reporter) + Send + 'static) {
        let reporter = self.reporter();
        let spawned = std::thread::Builder::new().name(format!("weightbench-{name}")).spawn(move || work(reporter));
        if let Err(e) = spawned {
            // Out of threads: tell the user like any failed job, never block the UI.
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                self.sender.try_send(JobResult::Notice(format!("cannot start a worker thread: {e}")))
            {
                self.ctx.request_repaint();
            }
        }
    }

    /// Opens a checkpoint in the background.
    pub fn open(&self, path: PathBuf) {
        self.spawn("open", move |r| {
            if is_report(&path) {
                let opened = Report::read(&path).and_then(|report| Ok((report.checkpoint_at(&path)?, report)));
                let (result, report) = match opened {
                    Ok((ckpt, report)) => (Ok(Arc::new(ckpt)), Some(Arc::new(report))),
                    Err(e) => (Err(e.to_string()), None),
                };
                r.send(JobResult::Opened { path, result, report });
                return;
            }
            let result = Checkpoint::open(&path).map(Arc::new).map_err(|e| e.to_string());
            r.send(JobResult::Opened { path, result, report: None });
        });
    }

    /// Computes one per-tensor result in the background.
    pub fn tensor(
        &self,
        backend: Arc<crate::compute::select::SelectedBackend>,
        ckpt: Arc<Checkpoint>,
        index: usize,
        kind: ResultKind,
        importance: Option<Arc<Imatrix>>,
        cancel: Cancel,
    ) {
        self.spawn("tensor", move |r| {
            let result = compute(backend.as_ref(), &ckpt, index, kind, importance.as_deref(), &cancel);
            r.send(JobResult::Tensor { checkpoint: ckpt.path().to_owned(), tensor: index, kind, result });
        });
    }

    /// Runs a whole-model job: every tensor in `order`, results sent as they come (small tensors
    /// several at a time, as the command line does: [`crate::analysis::try_for_each_tensor`]).
    pub fn model(
        &self,
        backend: Arc<crate::compute::select::SelectedBackend>,
        ckpt: Arc<Checkpoint>,
        kind: ModelJobKind,
        order: Vec<usize>,
        cancel: Cancel,
    ) {
        self.spawn("model", move |r| {
            let order: Vec<usize> = order.into_iter().filter(|&i| i < ckpt.tensors().len()).collect();
            let tensors: Vec<_> = order.iter().map(|&i| &ckpt.tensors()[i]).collect();
            let result_kind = match kind {
                ModelJobKind::Stats => ResultKind::Stats(StatsKey { bins: super::HISTOGRAM_BINS, log_abs: false }),
                ModelJobKind::Spectra => ResultKind::Spectrum,
            };
            let done_bytes = std::sync::atomic::AtomicU64::new(0);
            // Err(()) stops the run: cancelled, or the window has closed.
            let _ = crate::analysis::try_for_each_tensor(&tensors, |k| {
                if cancel.is_cancelled() {
                    return Err(());
                }
                let index = order[k];
                let result = compute(backend.as_ref(), &ckpt, index, result_kind, None, &cancel);
                let done =
                    done_bytes.fetch_add(tensors[k].bytes, std::sync::atomic::Ordering::Relaxed) + tensors[k].bytes;
                let checkpoint = ckpt.path().to_owned();
                let sent = r.send(JobResult::Tensor { checkpoint, tensor: index, kind: result_kind, result })
                    && r.send(JobResult::ModelProgress { kind, done_bytes: done });
                if sent { Ok(()) } else { Err(()) }
            });
            r.send(JobResult::ModelDone { kind, cancelled: cancel.is_cancelled() });
        });
    }

    /// Exports `ckpt` in the background with the engine the command line runs
    /// ([`crate::export::model::export_plan`]): progress at most every 100 ms, then the report.
    pub fn export(
        &self,
        backend: Arc<crate::compute::select::SelectedBackend>,
        ckpt: Arc<Checkpoint>,
        request: ExportRequest,
        cancel: Cancel,
    ) {
        self.spawn("export", move |r| {
            let start = std::time::Instant::now();
            let throttle = Throttle::default();
            let progress = |done: u64, total: u64| {
                if throttle.due(done >= total) {
                    r.send(JobResult::ExportProgress { done, total, elapsed: start.elapsed() });
                }
            };
            let result = crate::export::model::export_plan(
                backend.as_ref(),
                &ckpt,
                &request.plan,
                request.importance.as_ref(),
                request.format,
                &request.output,
                &request.options,
                &cancel,
                &progress,
            );
            let result = result.map(Arc::new).map_err(|e| match e {
                crate::export::ExportError::Cancelled => "cancelled".to_owned(),
                other => other.to_string(),
            });
            r.send(JobResult::Exported { output: request.output, result });
        });
    }

    /// Measures the previews `queue` holds, one tensor at a time, until it is empty.
    pub fn previews(
        &self,
        backend: Arc<crate::compute::select::SelectedBackend>,
        ckpt: Arc<Checkpoint>,
        queue: Arc<PreviewQueue>,
        importance: Option<crate::quant::Importance>,
        cancel: Cancel,
    ) {
        self.spawn("preview", move |r| {
            while let Some((tensor, resolved)) = queue.pop() {
                let Some(t) = ckpt.tensors().get(tensor) else { continue };
                let result = if cancel.is_cancelled() {
                    Err("cancelled".to_owned())
                } else {
                    crate::quant::preview_tensor(
                        backend.as_ref(),
                        &ckpt,
                        t,
                        &resolved,
                        importance.as_ref(),
                        None,
                        &cancel,
                    )
                    .map(Arc::new)
                    .map_err(|e| match e {
                        crate::compute::ComputeError::Cancelled => "cancelled".to_owned(),
                        other => other.to_string(),
                    })
                };
                let checkpoint = ckpt.path().to_owned();
                if !r.send(JobResult::Preview { checkpoint, tensor, scheme: resolved.scheme, result }) {
                    queue.clear();
                }
            }
        });
    }

    /// Runs `work` on tensor `tensor` of `ckpt` under `resolved` on a worker thread and sends
    /// what `wrap` makes of its result (with the checkpoint's path, the tensor and the scheme).
    fn tensor_work<T: Send + Sync + 'static>(
        &self,
        name: &str,
        ckpt: Arc<Checkpoint>,
        tensor: usize,
        resolved: crate::quant::Resolved,
        work: impl FnOnce(
            &Checkpoint,
            &crate::checkpoint::TensorInfo,
            &crate::quant::Resolved,
        ) -> Result<T, crate::compute::ComputeError>
        + Send
        + 'static,
        wrap: impl FnOnce(PathBuf, usize, String, Result<Arc<T>, String>) -> JobResult + Send + 'static,
    ) {
        self.spawn(name, move |r| {
            let result = match ckpt.tensors().get(tensor) {
                Some(t) => work(&ckpt, t, &resolved).map(Arc::new).map_err(|e| match e {
                    crate::compute::ComputeError::Cancelled => "cancelled".to_owned(),
                    other => other.to_string(),
                }),
                None => Err(format!("no tensor #{tensor}")),
            };
            r.send(wrap(ckpt.path().to_owned(), tensor, resolved.scheme, result));
        });
    }

    /// Runs the model on `text` and records every head of `layer` (the planned model's too,
    /// with `plan`); `model` is the original model of an earlier run, loaded again when `None`.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &self,
        backend: Arc<crate::compute::select::SelectedBackend>,
        ckpt: Arc<Checkpoint>,
        text: String,
        layer: usize,
        plan: Option<Vec<crate::quant::Resolved>>,
        model: Option<Arc<crate::runtime::Model>>,
        cancel: Cancel,
    ) {
        use crate::runtime::{Model, sinks, tokenizer::TextTokenizer};
        self.spawn("attention", move |r| {
            let started = std::time::Instant::now();
            let progress = |done: usize, total: usize| {
                r.send(JobResult::AttentionProgress { done, total });
            };
            let run = || -> Result<(Arc<super::attention::AttentionRun>, Arc<Model>), crate::runtime::RuntimeError> {
                let tokenizer = TextTokenizer::of(&ckpt)?;
                let ids = tokenizer.encode(&text)?;
                let model = match model {
                    Some(m) => m,
                    None => Arc::new(Model::load(&ckpt, None, backend.as_ref(), &progress, &cancel)?),
                };
                let (layers, heads) = model.shape();
                if layer >= layers {
                    return Err(crate::runtime::RuntimeError::Input(format!("the model has layers 0..{layers}")));
                }
                let record: Vec<(usize, usize)> = (0..heads).map(|h| (layer, h)).collect();
                let (_, maps) = model.forward(&ids, &record, &cancel)?;
                let plan_maps = match &plan {
                    Some(p) => {
                        let planned = Model::load(&ckpt, Some(p[..].into()), backend.as_ref(), &progress, &cancel)?;
                        Some(planned.forward(&ids, &record, &cancel)?.1)
                    }
                    None => None,
                };
                let note = format!(
                    "{} tokens, {:.1} s on the CPU{}",
                    ids.len(),
                    started.elapsed().as_secs_f64(),
                    if plan.is_some() {
                        format!("; the plan fake-quantized on {}", backend.label())
                    } else {
                        String::new()
                    }
                );
                let run = super::attention::AttentionRun {
                    layer,
                    shape: (layers, heads),
                    tokens: tokenizer.pieces(&ids),
                    sinks: sinks(&maps),
                    maps,
                    plan_maps,
                    note,
                };
                Ok((Arc::new(run), model))
            };
            let result = run().map_err(|e| e.to_string());
            r.send(JobResult::Attention { checkpoint: ckpt.path().to_owned(), result });
        });
    }

    /// Computes the tiles `key` asks for (salience with `importance`, one value per column).
    pub fn heatmap(
        &self,
        backend: Arc<crate::compute::select::SelectedBackend>,
        ckpt: Arc<Checkpoint>,
        key: HeatKey,
        importance: Option<Arc<Vec<f32>>>,
        cancel: Cancel,
    ) {
        self.spawn("heatmap", move |r| {
            let result = match ckpt.tensors().get(key.tensor) {
                Some(t) => {
                    let grid = (key.rows.len().div_ceil(key.tile.0), key.cols.len().div_ceil(key.tile.1));
                    crate::analysis::heatmap::heatmap(
                        backend.as_ref(),
                        &ckpt,
                        t,
                        key.rows.clone(),
                        key.cols.clone(),
                        grid,
                        key.mode,
                        importance.as_deref().map(Vec::as_slice),
                        &cancel,
                    )
                    .map(Arc::new)
                    .map_err(message)
                }
                None => Err(format!("no tensor #{}", key.tensor)),
            };
            r.send(JobResult::Heatmap { checkpoint: ckpt.path().to_owned(), key, result });
        });
    }

    /// Computes the error map of `tensor` under `resolved` ([`ERROR_MAP_GRID`] tiles a side at most).
    pub fn error_map(
        &self,
        backend: Arc<crate::compute::select::SelectedBackend>,
        ckpt: Arc<Checkpoint>,
        tensor: usize,
        resolved: crate::quant::Resolved,
        importance: Option<crate::quant::Importance>,
        cancel: Cancel,
    ) {
        let work = move |c: &Checkpoint, t: &crate::checkpoint::TensorInfo, r: &crate::quant::Resolved| {
            crate::quant::inspect::error_map(backend.as_ref(), c, t, r, importance.as_ref(), ERROR_MAP_GRID, &cancel)
        };
        self.tensor_work("error-map", ckpt, tensor, resolved, work, |checkpoint, tensor, scheme, result| {
            JobResult::ErrorMap { checkpoint, tensor, scheme, result }
        });
    }

    /// Encodes row `row` of `tensor` alone under `resolved`.
    #[allow(clippy::too_many_arguments)]
    pub fn row_levels(
        &self,
        backend: Arc<crate::compute::select::SelectedBackend>,
        ckpt: Arc<Checkpoint>,
        tensor: usize,
        resolved: crate::quant::Resolved,
        importance: Option<crate::quant::Importance>,
        row: usize,
        cancel: Cancel,
    ) {
        let work = move |c: &Checkpoint, t: &crate::checkpoint::TensorInfo, r: &crate::quant::Resolved| {
            crate::quant::inspect::encode_row(backend.as_ref(), c, t, r, importance.as_ref(), row, &cancel)
        };
        self.tensor_work("row-levels", ckpt, tensor, resolved, work, |checkpoint, tensor, scheme, result| {
            JobResult::RowLevels { checkpoint, tensor, scheme, result }
        });
    }

    /// Runs an automatic allocation ([`crate::quant::auto::auto_allocate`], as `plan auto`).
    pub fn auto(
        &self,
        backend: Arc<crate::compute::select::SelectedBackend>,
        ckpt: Arc<Checkpoint>,
        job: AutoJob,
        cancel: Cancel,
    ) {
        use crate::quant::auto::{AutoError, AutoRequest, Budget, auto_allocate};
        self.spawn("auto", move |r| {
            let pinned = |t: &crate::checkpoint::TensorInfo| job.pinned.contains(&t.name);
            let mut importance_id = match &job.importance {
                None => "none".to_owned(),
                Some(crate::quant::Importance::ColumnNorms) => "weight".to_owned(),
                Some(crate::quant::Importance::Imatrix(m, _)) => m.fingerprint(),
            };
            // The kl objective: the original model's pass over the calibration tokens, kept.
            let kl_model = if job.objective == crate::quant::auto::Objective::Kl {
                let loading = |done: usize, total: usize| {
                    r.send(JobResult::AutoProgress {
                        done: done as u64,
                        total: total as u64,
                        what: "loading the model for the KL objective".into(),
                    });
                };
                let load = || -> Result<(crate::runtime::Model, Vec<u32>), crate::runtime::RuntimeError> {
                    let text = include_str!("../../assets/calibration.txt");
                    let mut ids = crate::runtime::tokenizer::TextTokenizer::of(&ckpt)?.encode(text)?;
                    ids.truncate(KL_TOKENS);
                    Ok((crate::runtime::Model::load(&ckpt, None, backend.as_ref(), &loading, &cancel)?, ids))
                };
                match load() {
                    Ok(m) => Some(m),
                    Err(e) => {
                        r.send(JobResult::AutoDone(Err(format!("the KL objective: {e}"))));
                        return;
                    }
                }
            } else {
                None
            };
            let sensitivity = match &kl_model {
                Some((model, ids)) => match crate::runtime::sensitivity::Sensitivity::new(model, ids, &cancel) {
                    Ok(s) => {
                        importance_id.push_str(&format!(" | kl on {} tokens of calibration.txt", ids.len()));
                        Some(s)
                    }
                    Err(e) => {
                        r.send(JobResult::AutoDone(Err(format!("the KL objective: {e}"))));
                        return;
                    }
                },
                None => None,
            };
            let measure_kl = |t: &crate::checkpoint::TensorInfo, res: &crate::quant::Resolved, cancel: &Cancel| {
                let Some(sens) = &sensitivity else { return Err("no model".to_owned()) };
                crate::runtime::sensitivity::tensor_kl(sens, &ckpt, t, res, job.importance.as_ref(), backend.as_ref(), cancel)
                    .map_err(|e| e.to_string())
            };
            let request = AutoRequest {
                candidates: &job.candidates,
                // Matrices only: vectors (norms, biases) stay as they are, as llama.cpp keeps them.
                tensors: ckpt
                    .tensors()
                    .iter()
                    .filter(|t| t.shape.len() >= 2 && t.dtype.why_not_analysed().is_none())
                    .collect(),
                pinned: &pinned,
                importance: job.importance.as_ref(),
                importance_id,
                objective: job.objective,
                budget: Budget::Bytes(job.budget_bytes),
                pareto_points: 32,
                sensitivity: sensitivity.is_some().then_some(&measure_kl as &crate::quant::auto::SensitivityFn<'_>),
            };
            let mut cache = match &job.cache_dir {
                Some(dir) => crate::quant::cache::MeasureCache::open(dir, &ckpt),
                None => crate::quant::cache::MeasureCache::disabled(),
            };
            let throttle = Throttle::default();
            let progress = |done: u64, total: u64, what: &str| {
                if throttle.due(false) {
                    r.send(JobResult::AutoProgress { done, total, what: what.to_owned() });
                }
            };
            let outcome = auto_allocate(backend.as_ref(), &ckpt, &request, &mut cache, &cancel, &progress);
            let result = match outcome {
                Err(AutoError::Cancelled) => Err("cancelled".to_owned()),
                Err(e) => Err(e.to_string()),
                Ok(o) => {
                    let at = |t: &crate::checkpoint::TensorInfo| ckpt.index_of(&t.name).unwrap_or(0);
                    let a = &o.allocation;
                    let mut summary = format!(
                        "{} tensors: {:.3} bpw (target {:.3}), {:?} {:.4e}, lower bound {:.4e}, gap {:.3}%{}; measured {} (tensor, scheme) pairs, {} from the cache",
                        o.free.len(),
                        o.bpw(a.bytes),
                        o.bpw(o.budget),
                        job.objective,
                        a.objective,
                        a.lower_bound,
                        100.0 * a.gap,
                        if a.proven_optimal { " (proven optimal)" } else { "" },
                        o.measured_now,
                        o.cached
                    );
                    for n in &o.notes {
                        summary.push_str(&format!("; {n}"));
                    }
                    Ok(Arc::new(AutoDone {
                        chosen: o.chosen().map(|(t, row)| (at(t), row.scheme.clone())).collect(),
                        rows: o
                            .free
                            .iter()
                            .zip(&o.measured)
                            .flat_map(|(t, rows)| rows.iter().map(move |row| (at(t), row.clone())))
                            .collect(),
                        result: crate::app::plan_editor::AutoResult {
                            frontier: o.frontier.clone(),
                            free: o.free.iter().map(|t| at(t)).collect(),
                            objective: job.objective,
                            target_bpw: o.bpw(o.budget),
                        },
                        summary,
                    }))
                }
            };
            r.send(JobResult::AutoDone(result));
        });
    }

    /// Reads a plan file in the background.
    pub fn load_plan(&self, path: PathBuf) {
        self.spawn("plan", move |r| {
            let result = crate::quant::Plan::load(&path).map_err(|e| e.to_string());
            r.send(JobResult::PlanLoaded(path, result));
        });
    }

    /// Compares the open checkpoint with the one at `other`, tensor by tensor (no spectra).
    pub fn diff(
        &self,
        backend: Arc<crate::compute::select::SelectedBackend>,
        ckpt: Arc<Checkpoint>,
        other: PathBuf,
        cancel: Cancel,
    ) {
        self.spawn("diff", move |r| {
            let result =
                (|| -> Result<DiffResult, String> {
                    let b = Checkpoint::open(&other).map_err(|e| e.to_string())?;
                    let pairing = crate::analysis::diff::pair(&ckpt, &b, |t| t.dtype.why_not_analysed().is_none());
                    let mut rows = Vec::with_capacity(pairing.pairs.len());
                    let total = pairing.pairs.len();
                    for (k, p) in pairing.pairs.iter().enumerate() {
                        let d = crate::analysis::diff::diff_pair(backend.as_ref(), &ckpt, &b, p, 0, &cancel)
                            .map_err(message)?;
                        rows.push((ckpt.index_of(&p.a.name).unwrap_or(0), d));
                        r.send(JobResult::DiffProgress { done: k + 1, total });
                    }
                    let mut unpaired: Vec<String> =
                        pairing.only_in_a.iter().map(|n| format!("{n}: only in the open checkpoint")).collect();
                    unpaired.extend(pairing.only_in_b.iter().map(|n| format!("{n}: only in {}", other.display())));
                    unpaired.extend(pairing.shape_mismatch.iter().map(|m| {
                        format!("{}: shape {:?} here, {:?} as {} there", m.name, m.shape_a, m.shape_b, m.name_b)
                    }));
                    Ok(DiffResult { other: other.clone(), rows, unpaired })
                })();
            r.send(JobResult::Diffed(result.map(Arc::new)));
        });
    }

    /// Starts the device of `backend` in the background (a GPU can take seconds to open).
    pub fn start_backend(&self, backend: Arc<crate::compute::select::SelectedBackend>) {
        self.spawn("backend", move |r| {
            let label = backend.start();
            r.send(JobResult::BackendStarted { choice: backend.choice(), label });
        });
    }

    /// Loads an importance matrix in the background.
    pub fn imatrix(&self, path: PathBuf) {
        self.spawn("imatrix", move |r| {
            r.send(JobResult::Imatrix(read_imatrix(&path).map(Arc::new).map_err(|e| e.to_string())));
        });
    }

    /// Runs the model on calibration `text` and sends the importance it measured (every linear
    /// layer's input mean squares and Hessians) as an imatrix (`cancelled` when cancelled).
    pub fn calibrate(
        &self,
        backend: Arc<crate::compute::select::SelectedBackend>,
        ckpt: Arc<Checkpoint>,
        text: String,
        source: String,
        cancel: Cancel,
    ) {
        use crate::runtime::{Model, activations::calibrate, tokenizer::TextTokenizer};
        self.spawn("calibration", move |r| {
            let run = || -> Result<Imatrix, crate::runtime::RuntimeError> {
                let ids = TextTokenizer::of(&ckpt)?.encode(&text)?;
                let loading = |done: usize, total: usize| {
                    r.send(JobResult::CalibrationProgress { what: "loading the model", done, total });
                };
                let model = Model::load(&ckpt, None, backend.as_ref(), &loading, &cancel)?;
                let running = |done: usize, total: usize| {
                    r.send(JobResult::CalibrationProgress { what: "running the text", done, total });
                };
                let stats = calibrate(&model, &ids, 512, true, &cancel, &running)?;
                let arch = ckpt.model_config().map(|c| c.architecture.clone()).unwrap_or_default();
                Ok(stats.to_imatrix(&arch, format!("{source}, {} tokens", ids.len())))
            };
            let result = match run() {
                Ok(m) => Ok(Arc::new(m)),
                Err(_) if cancel.is_cancelled() => Err("calibration cancelled".to_owned()),
                Err(e) => Err(format!("calibration: {e}")),
            };
            r.send(JobResult::Imatrix(result));
        });
    }

    /// Shows a native open (or save) dialog on a worker thread: some desktops block in it.
    pub fn pick(&self, pick: Pick, suggested_name: Option<String>) {
        self.spawn("dialog", move |r| {
            let dialog = rfd::FileDialog::new();
            let picked = match pick {
                Pick::CheckpointFolder => dialog.set_title("Open a checkpoint folder").pick_folder(),
                Pick::CheckpointFile => dialog
                    .set_title("Open a checkpoint or a report")
                    .add_filter("checkpoints and reports", &["safetensors", "json", "gguf", "wbr"])
                    .pick_file(),
                Pick::Imatrix => {
                    dialog.set_title("Load an importance matrix").add_filter("imatrix", &["gguf", "dat"]).pick_file()
                }
                Pick::Save => dialog.set_title("Save").set_file_name(suggested_name.unwrap_or_default()).save_file(),
                Pick::PlanLoad => dialog.set_title("Load a plan").add_filter("plans", &["toml", "json"]).pick_file(),
                Pick::PlanSave => dialog
                    .set_title("Save the plan")
                    .set_file_name(suggested_name.unwrap_or_else(|| "plan.toml".into()))
                    .save_file(),
                Pick::ExportTarget => {
                    dialog.set_title("Export to").set_file_name(suggested_name.unwrap_or_default()).save_file()
                }
                Pick::Compare => dialog
                    .set_title("Compare with a checkpoint")
                    .add_filter("checkpoints", &["safetensors", "json", "gguf"])
                    .pick_file(),
            };
            r.send(match picked {
                Some(path) => JobResult::Picked(pick, path),
                None => JobResult::Notice(
                    "no file chosen (where no file dialog is available, type or paste a path, or drop a file)".into(),
                ),
            });
        });
    }

    /// Saves the screen rectangle `rect` (points) of the next frame as a PNG at `path`; the
    /// picture is cropped and written off the UI thread, and the outcome comes back as a notice.
    pub fn save_picture(&self, rect: egui::Rect, path: PathBuf) {
        let reporter = self.reporter();
        let ppp = self.ctx.pixels_per_point();
        let callback = egui::ScreenshotCallback::new(move |image| {
            let text = match super::panels::save::write_png(&image, rect, ppp, &path) {
                Ok(()) => format!("saved {}", path.display()),
                Err(e) => format!("cannot save {}: {e}", path.display()),
            };
            reporter.send(JobResult::Notice(text));
        });
        self.ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(callback));
        self.ctx.request_repaint();
    }

    /// Results that arrived since the last call, for at most `budget` of wall time.
    pub fn drain(&self, budget: std::time::Duration) -> Vec<JobResult> {
        let start = std::time::Instant::now();
        let mut out = Vec::new();
        while start.elapsed() < budget {
            match self.receiver.try_recv() {
                Ok(r) => out.push(r),
                Err(_) => break,
            }
        }
        out
    }
}

/// Whether `path` is a report file (it starts with the report magic).
fn is_report(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    path.is_file()
        && std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok()
        && &magic == crate::analysis::report::REPORT_MAGIC
}

fn compute(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    index: usize,
    kind: ResultKind,
    importance: Option<&Imatrix>,
    cancel: &Cancel,
) -> Result<Output, String> {
    let t = ckpt.tensors().get(index).ok_or_else(|| format!("no tensor #{index}"))?;
    match kind {
        ResultKind::Stats(key) => tensor_stats(backend, ckpt, t, &key.request(), cancel)
            .map(|s| Output::Stats(key, Arc::new(s)))
            .map_err(message),
        ResultKind::Spectrum => spectrum_report(backend, ckpt, t, SpectrumMethod::Auto, cancel)
            .map(|s| Output::Spectrum(Arc::new(s)))
            .map_err(message),
        ResultKind::Channels => {
            channel_report(backend, ckpt, t, TOP_CHANNELS, crate::analysis::channels::DEFAULT_GRID, cancel)
                .map(|c| Output::Channels(Arc::new(c)))
                .map_err(message)
        }
        ResultKind::Salience => {
            let arch = ckpt.model_config().map(|m| m.architecture.as_str()).unwrap_or("");
            let imported = importance.and_then(|m| m.for_tensor(&t.name, arch).map(|v| (v, m.source.clone())));
            salience_map(backend, ckpt, t, imported, crate::analysis::channels::DEFAULT_GRID, cancel)
                .map(|s| Output::Salience(Arc::new(s)))
                .map_err(message)
        }
    }
}
