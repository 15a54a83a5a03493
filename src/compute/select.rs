//! Running the backend the user chose. The GPU device is opened lazily, by the first kernel that
//! needs it (on that kernel's thread): commands that compute nothing never start it, and the
//! window never waits for it. When the GPU fails (no adapter, device lost, out of memory, an
//! input it cannot take), the kernel runs again on the CPU and its result says so.

use std::sync::{Arc, Mutex, OnceLock};

use super::cpu::CpuBackend;
use super::gpu::GpuBackend;
use super::{Backend, ComputeError, Ran};

/// Which backend the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
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

impl BackendChoice {
    /// Every choice, as the command line and the window name them.
    pub const ALL: [BackendChoice; 3] = [BackendChoice::Auto, BackendChoice::Cpu, BackendChoice::Gpu];

    /// `auto`, `cpu` or `gpu`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Cpu => "cpu",
            BackendChoice::Gpu => "gpu",
        }
    }
}

impl std::str::FromStr for BackendChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown backend {s:?} (auto, cpu or gpu)"))
    }
}

/// The backend of a choice: the CPU, or the GPU (opened on first use) with the CPU behind it.
pub struct SelectedBackend {
    choice: BackendChoice,
    cpu: CpuBackend,
    gpu: OnceLock<Result<Arc<GpuBackend>, String>>,
    notices: Mutex<Vec<String>>,
}

impl SelectedBackend {
    /// The backend for `choice`; nothing is started yet.
    pub fn new(choice: BackendChoice) -> Self {
        Self { choice, cpu: CpuBackend, gpu: OnceLock::new(), notices: Mutex::new(Vec::new()) }
    }

    /// A `gpu` choice on a device of the caller's (tests and tools that cap its buffers).
    pub fn with_gpu(gpu: Arc<GpuBackend>) -> Self {
        Self {
            choice: BackendChoice::Gpu,
            cpu: CpuBackend,
            gpu: OnceLock::from(Ok(gpu)),
            notices: Mutex::new(Vec::new()),
        }
    }

    /// Whether kernels go to the GPU: always for `gpu` (a missing device then falls back, saying
    /// so), for `auto` when a hardware GPU opened. May open the device.
    pub fn uses_gpu(&self) -> bool {
        self.choice == BackendChoice::Gpu || matches!(self.gpu(), Some(Ok(_)))
    }

    /// The choice it runs.
    pub fn choice(&self) -> BackendChoice {
        self.choice
    }

    /// The GPU, opening the device if this is the first call (never for `cpu`).
    fn gpu(&self) -> Option<&Result<Arc<GpuBackend>, String>> {
        match self.choice {
            BackendChoice::Cpu => None,
            BackendChoice::Auto | BackendChoice::Gpu => Some(self.gpu.get_or_init(|| {
                let opened = GpuBackend::shared(self.choice == BackendChoice::Gpu).map_err(|e| match e {
                    ComputeError::Gpu(why) => why,
                    other => other.to_string(),
                });
                if let Err(why) = &opened
                    && self.choice == BackendChoice::Gpu
                {
                    self.notice(format!("using the CPU: {why}"));
                }
                opened
            })),
        }
    }

    /// Opens the device now, if the choice wants one (a warm-up, off the UI thread), and says
    /// what will run the kernels.
    pub fn start(&self) -> String {
        let _opened = self.gpu();
        self.label_now()
    }

    /// What runs the kernels, as far as is known without starting anything.
    pub fn label_now(&self) -> String {
        match (self.choice, self.gpu.get()) {
            (BackendChoice::Cpu, _) => self.cpu.provenance().describe(),
            (_, None) => format!("{} (the GPU starts with the first computation)", self.choice.as_str()),
            (_, Some(Ok(g))) => g.provenance().describe(),
            (BackendChoice::Gpu, Some(Err(why))) => {
                format!("{} instead of the GPU: {why}", self.cpu.provenance().describe())
            }
            (_, Some(Err(_))) => format!("{} (no hardware GPU)", self.cpu.provenance().describe()),
        }
    }

    /// Notices of fallbacks so far (drained).
    pub fn take_notices(&self) -> Vec<String> {
        self.notices.lock().map(|mut n| std::mem::take(&mut *n)).unwrap_or_default()
    }

    fn notice(&self, text: String) {
        if let Ok(mut n) = self.notices.lock() {
            n.push(text);
        }
    }

    /// Runs `kernel` on the chosen backend; when the GPU fails, again on the CPU, with the
    /// reason in the result's provenance and in the notices.
    pub(super) fn run<T>(
        &self,
        what: &str,
        mut kernel: impl FnMut(&dyn Backend) -> Result<Ran<T>, ComputeError>,
    ) -> Result<Ran<T>, ComputeError> {
        match self.gpu() {
            None => kernel(&self.cpu),
            Some(Ok(gpu)) if gpu.context().check_alive().is_err() => {
                // Said once, when it happened; from then on the CPU does the work.
                let ran = kernel(&self.cpu)?;
                let why = gpu.context().check_alive().err().map(|e| e.to_string()).unwrap_or_default();
                Ok(Ran { on: ran.on.with_fallback(why), value: ran.value })
            }
            Some(Ok(gpu)) => match kernel(gpu.as_ref()) {
                Err(ComputeError::Gpu(why)) => {
                    let ran = kernel(&self.cpu)?;
                    self.notice(format!("{what}: computed on the CPU because the GPU failed: {why}"));
                    Ok(Ran { on: ran.on.with_fallback(format!("the GPU failed: {why}")), value: ran.value })
                }
                Err(ComputeError::NotOnGpu(why)) => {
                    let ran = kernel(&self.cpu)?;
                    Ok(Ran { on: ran.on.with_fallback(why), value: ran.value })
                }
                other => other,
            },
            // `auto` without a hardware GPU is the CPU by definition; `gpu` without any is a
            // fallback, and says so.
            Some(Err(why)) if self.choice == BackendChoice::Gpu => {
                let ran = kernel(&self.cpu)?;
                Ok(Ran { on: ran.on.with_fallback(format!("no GPU: {why}")), value: ran.value })
            }
            Some(Err(_)) => kernel(&self.cpu),
        }
    }
}
