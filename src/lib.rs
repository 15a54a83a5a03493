//! weightbench: a workbench for looking inside neural-network checkpoints and compressing them.
//!
//! Layers, lowest first (arrows point down only):
//! - [`codec`]: number formats (no I/O);
//! - [`checkpoint`]: model files, memory-mapped, their tensor tables and streamed decoding;
//! - [`compute`]: the kernel backend (`Backend` trait; CPU reference with rayon);
//! - [`analysis`]: what is computed from tensors (histograms, statistics, ...);
//! - [`export`]: writers of new files (atomic, read back before they are renamed into place);
//! - [`app`] (the eframe GUI) and [`cli`] (headless commands): thin faces over the same engine.

pub mod analysis;
pub mod app;
pub mod cancel;
pub mod checkpoint;
pub mod cli;
pub mod codec;
pub mod compute;
pub mod export;
pub mod format;
pub mod quant;
