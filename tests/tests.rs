//! Integration tests: one binary, one module per area (as ripgrep does), fixtures written by code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;

mod analysis;
mod checkpoint_open;
mod cli;
mod crash_safe;
mod differential;
mod export;
mod fuzz_regressions;
mod gguf;
mod gpu;
mod gui;
mod gui_plan;
mod hostile;
mod layers;
mod malformed;
mod memory;
mod mutations;
mod quant;
mod real_models;
mod report;
mod shader_validation;
