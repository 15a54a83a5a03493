//! Where a number was computed. Every kernel returns its result together with the backend that
//! actually produced it ([`Ran`]): after a fallback from the GPU, the CPU's work says `cpu` and
//! carries the reason, so no report can claim a device that did not run.

use serde::{Deserialize, Serialize};

/// Which kind of backend ran a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The CPU (rayon).
    Cpu,
    /// The GPU (wgpu).
    Gpu,
}

impl BackendKind {
    /// `cpu` or `gpu`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Gpu => "gpu",
        }
    }
}

/// How a result was made: the backend and device that ran it, and why it is not the backend
/// that was asked for, when it is not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// `cpu`, `gpu`, or `cpu+gpu` when the kernels of one result ran on both.
    pub backend: String,
    /// The device: CPU threads, or the GPU adapter's name.
    pub device: String,
    /// Set when the work ran elsewhere than asked: the reason (the GPU failed, had no adapter,
    /// or could not take the input).
    pub fallback: Option<String>,
}

impl Provenance {
    /// Work done on `kind` / `device` as asked.
    pub fn new(kind: BackendKind, device: impl Into<String>) -> Self {
        Self { backend: kind.as_str().to_owned(), device: device.into(), fallback: None }
    }

    /// The same, noting that it ran here instead of where it was asked to, and why.
    pub fn with_fallback(mut self, reason: impl Into<String>) -> Self {
        self.fallback = Some(reason.into());
        self
    }

    /// The provenance of one result made by two kernels: both backends when they differ, both
    /// devices, and every fallback reason.
    pub fn merge(&self, other: &Provenance) -> Provenance {
        let join = |a: &str, b: &str, sep: &str| if a == b { a.to_owned() } else { format!("{a}{sep}{b}") };
        let mut kinds: Vec<&str> = self.backend.split('+').chain(other.backend.split('+')).collect();
        kinds.sort_unstable();
        kinds.dedup();
        Provenance {
            backend: kinds.join("+"),
            device: join(&self.device, &other.device, "; "),
            fallback: match (&self.fallback, &other.fallback) {
                (Some(a), Some(b)) => Some(join(a, b, "; ")),
                (a, b) => a.clone().or_else(|| b.clone()),
            },
        }
    }

    /// One line for people: `the gpu (NVIDIA H200)`, plus the fallback reason.
    pub fn describe(&self) -> String {
        match &self.fallback {
            None => format!("the {} ({})", self.backend, self.device),
            Some(why) => format!("the {} ({}) instead of the GPU: {why}", self.backend, self.device),
        }
    }
}

/// A kernel's result and how it was made.
#[derive(Clone, Debug, PartialEq)]
pub struct Ran<T> {
    /// The result.
    pub value: T,
    /// Who computed it.
    pub on: Provenance,
}

impl<T> Ran<T> {
    /// Wraps `value` computed `on`.
    pub fn new(value: T, on: Provenance) -> Self {
        Self { value, on }
    }

    /// Transforms the value, keeping the provenance.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Ran<U> {
        Ran { value: f(self.value), on: self.on }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_names_every_backend_and_reason() {
        let gpu = Provenance::new(BackendKind::Gpu, "lavapipe");
        let cpu = Provenance::new(BackendKind::Cpu, "2 threads").with_fallback("too large");
        assert_eq!(gpu.merge(&gpu), gpu);
        let both = gpu.merge(&cpu);
        assert_eq!(both.backend, "cpu+gpu");
        assert_eq!(both.device, "lavapipe; 2 threads");
        assert_eq!(both.fallback.as_deref(), Some("too large"));
        assert_eq!(both.merge(&gpu).backend, "cpu+gpu");
        assert!(cpu.describe().contains("instead of the GPU: too large"));
    }
}
