//! Background work for the GUI. The UI thread never reads tensor bytes or parses files: it asks
//! for work here, and results come back through a channel that the UI drains each frame. Each job
//! runs on its own thread (heavy kernels then fan out on rayon) and wakes the UI when done.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use crate::analysis::stats::{TensorStats, tensor_stats};
use crate::analysis::{AnalysisError, Cancel};
use crate::checkpoint::Checkpoint;
use crate::compute::{Backend, StatsRequest};

/// A finished job.
pub enum JobResult {
    /// A checkpoint was opened (or failed to open).
    Opened {
        /// The path asked for.
        path: PathBuf,
        /// The checkpoint, or the error's full message.
        result: Result<Arc<Checkpoint>, String>,
    },
    /// Statistics and a histogram were computed (or failed, or were cancelled).
    Stats {
        /// Which checkpoint it belongs to (its path), so stale results are dropped.
        checkpoint: PathBuf,
        /// Index of the tensor in the checkpoint.
        tensor: usize,
        /// The statistics, or why there are none.
        result: Result<Box<TensorStats>, String>,
    },
    /// A path picked in the native file dialog.
    Picked(PathBuf),
    /// Something to tell the user that is not a result (a dialog closed, a thread refused).
    Notice(String),
}

/// Starts jobs and collects their results.
pub struct Jobs {
    ctx: egui::Context,
    sender: Sender<JobResult>,
    receiver: Receiver<JobResult>,
}

impl Jobs {
    /// A job runner that wakes `ctx` when a result arrives.
    pub fn new(ctx: egui::Context) -> Self {
        let (sender, receiver) = channel();
        Self { ctx, sender, receiver }
    }

    fn spawn(&self, name: &str, work: impl FnOnce() -> JobResult + Send + 'static) {
        let sender = self.sender.clone();
        let ctx = self.ctx.clone();
        let spawned = std::thread::Builder::new().name(format!("weightbench-{name}")).spawn(move || {
            // The receiver lives as long as the app; a send error only means the app is closing.
            if sender.send(work()).is_ok() {
                ctx.request_repaint();
            }
        });
        if let Err(e) = spawned {
            // Out of threads: report it like any failed job instead of crashing.
            let _ignored_if_closing = self.sender.send(JobResult::Notice(format!("cannot start a worker thread: {e}")));
        }
    }

    /// Opens a checkpoint in the background.
    pub fn open(&self, path: PathBuf) {
        self.spawn("open", move || {
            let result = Checkpoint::open(&path).map(Arc::new).map_err(|e| e.to_string());
            JobResult::Opened { path, result }
        });
    }

    /// Computes the statistics and histogram of tensor `index` in the background.
    pub fn stats(&self, backend: Arc<dyn Backend>, ckpt: Arc<Checkpoint>, index: usize, bins: usize, cancel: Cancel) {
        self.spawn("stats", move || {
            let req = StatsRequest { bins, ..StatsRequest::default() };
            let result = match ckpt.tensors().get(index) {
                Some(t) => tensor_stats(backend.as_ref(), &ckpt, t, &req, &cancel).map(Box::new).map_err(|e| match e {
                    AnalysisError::Cancelled => "cancelled".to_owned(),
                    other => other.to_string(),
                }),
                None => Err(format!("no tensor #{index}")),
            };
            JobResult::Stats { checkpoint: ckpt.path().to_owned(), tensor: index, result }
        });
    }

    /// Shows the native file (or folder) dialog on a worker thread: some desktops block in it.
    pub fn pick(&self, folder: bool) {
        self.spawn("dialog", move || {
            let dialog = rfd::FileDialog::new().set_title("Open a checkpoint");
            let picked = if folder {
                dialog.pick_folder()
            } else {
                dialog.add_filter("checkpoints", &["safetensors", "json", "gguf"]).pick_file()
            };
            match picked {
                Some(path) => JobResult::Picked(path),
                None => JobResult::Notice(
                    "no file chosen (where no file dialog is available, type or paste a path, or drop a file)".into(),
                ),
            }
        });
    }

    /// Results that arrived since the last call.
    pub fn drain(&self) -> Vec<JobResult> {
        self.receiver.try_iter().collect()
    }
}
