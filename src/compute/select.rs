//! Choosing a backend at run time, and falling back to the CPU when the GPU fails.

use std::sync::{Arc, Mutex};

use super::cpu::CpuBackend;
use super::gpu::GpuBackend;
use super::{
    Backend, BackendInfo, ChannelResult, ComputeError, Gram, RtnResult, RtnSpec, StatsRequest, StatsResult, TensorRef,
    TileMap,
};
use crate::cancel::Cancel;

/// Which backend the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// The GPU when a hardware adapter exists, else the CPU.
    #[default]
    Auto,
    /// The CPU (rayon).
    Cpu,
    /// The GPU: any adapter, software Vulkan (lavapipe) included.
    Gpu,
}

/// A GPU backend that re-runs a kernel on the CPU when the GPU fails, and remembers why.
pub struct WithFallback {
    gpu: Arc<GpuBackend>,
    cpu: CpuBackend,
    notices: Mutex<Vec<String>>,
}

impl WithFallback {
    /// Wraps `gpu`.
    pub fn new(gpu: Arc<GpuBackend>) -> Self {
        Self { gpu, cpu: CpuBackend, notices: Mutex::new(Vec::new()) }
    }

    /// Notices of fallbacks so far (drained).
    pub fn take_notices(&self) -> Vec<String> {
        self.notices.lock().map(|mut n| std::mem::take(&mut *n)).unwrap_or_default()
    }

    fn run<T>(
        &self,
        t: TensorRef<'_>,
        gpu: impl FnOnce() -> Result<T, ComputeError>,
        cpu: impl FnOnce() -> Result<T, ComputeError>,
    ) -> Result<T, ComputeError> {
        match gpu() {
            Err(ComputeError::Gpu(why)) => {
                let notice = format!("{}: computed on the CPU because the GPU failed: {why}", t.tensor.name);
                if let Ok(mut n) = self.notices.lock() {
                    n.push(notice);
                }
                cpu()
            }
            other => other,
        }
    }
}

impl Backend for WithFallback {
    fn info(&self) -> BackendInfo {
        self.gpu.info()
    }

    fn stats(&self, t: TensorRef<'_>, req: &StatsRequest, cancel: &Cancel) -> Result<StatsResult, ComputeError> {
        self.run(t, || self.gpu.stats(t, req, cancel), || self.cpu.stats(t, req, cancel))
    }

    fn channels(&self, t: TensorRef<'_>, max_grid: usize, cancel: &Cancel) -> Result<ChannelResult, ComputeError> {
        self.run(t, || self.gpu.channels(t, max_grid, cancel), || self.cpu.channels(t, max_grid, cancel))
    }

    fn gram(&self, t: TensorRef<'_>, cancel: &Cancel) -> Result<Gram, ComputeError> {
        self.run(t, || self.gpu.gram(t, cancel), || self.cpu.gram(t, cancel))
    }

    fn salience_tiles(
        &self,
        t: TensorRef<'_>,
        importance: &[f32],
        max_grid: usize,
        cancel: &Cancel,
    ) -> Result<TileMap, ComputeError> {
        self.run(
            t,
            || self.gpu.salience_tiles(t, importance, max_grid, cancel),
            || self.cpu.salience_tiles(t, importance, max_grid, cancel),
        )
    }

    fn quantize_rtn(&self, t: TensorRef<'_>, spec: &RtnSpec, cancel: &Cancel) -> Result<RtnResult, ComputeError> {
        self.run(t, || self.gpu.quantize_rtn(t, spec, cancel), || self.cpu.quantize_rtn(t, spec, cancel))
    }
}

/// A chosen backend and, when the choice was not honoured as asked, why.
pub struct Selected {
    /// The backend to use.
    pub backend: Arc<dyn Backend>,
    /// The GPU wrapper, when the backend is the GPU (to read fallback notices).
    pub gpu: Option<Arc<WithFallback>>,
    /// Set when `auto` or `gpu` ended on the CPU.
    pub notice: Option<String>,
}

/// Opens the backend for `choice`. `gpu` with no adapter at all ends on the CPU with a notice;
/// it never fails.
pub fn select(choice: BackendChoice) -> Selected {
    let cpu = || Arc::new(CpuBackend) as Arc<dyn Backend>;
    let gpu = |allow_cpu: bool| GpuBackend::shared(allow_cpu).map(|g| Arc::new(WithFallback::new(g)));
    match choice {
        BackendChoice::Cpu => Selected { backend: cpu(), gpu: None, notice: None },
        BackendChoice::Auto | BackendChoice::Gpu => match gpu(choice == BackendChoice::Gpu) {
            Ok(g) => Selected { backend: g.clone(), gpu: Some(g), notice: None },
            Err(e) => Selected {
                backend: cpu(),
                gpu: None,
                notice: (choice == BackendChoice::Gpu).then(|| format!("using the CPU: {e}")),
            },
        },
    }
}
