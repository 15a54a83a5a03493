//! weightbench: a workbench for looking inside neural-network checkpoints and compressing them.
//!
//! Layers, lowest first (arrows point down only; `tests/layers.rs` checks it, and
//! `docs/architecture.md` explains it):
//! - [`codec`]: number formats (no I/O);
//! - [`checkpoint`]: model files, memory-mapped, their tensor tables, streamed decoding, the typed
//!   model configuration and GGUF ↔ transformers names;
//! - [`compute`]: the kernel backend (`Backend` over any `ValueSource`; CPU reference with rayon,
//!   GPU with wgpu; every result says where it ran);
//! - [`analysis`]: what is computed from tensors for the views (histograms, statistics, ...);
//! - [`quant`]: quantization schemes and their error;
//! - [`export`]: writers of new files (transactions: staged, read back, renamed together);
//! - [`app`] (the eframe GUI) and [`cli`] (headless commands): thin faces over the same engine.

pub mod analysis;
pub mod app;
pub mod cancel;
pub mod checkpoint;
pub mod cli;
pub mod codec;
pub mod colormap;
pub mod compute;
pub mod export;
pub mod format;
pub mod quant;
pub mod runtime;
