//! Quantization schemes and their error, above the kernels: a scheme turns a tensor into the
//! codes and scales a format stores and back; a preview runs the very kernel an exporter runs
//! (with a sink that keeps nothing) and reports the error of the decoded values.
//!
//! The number formats themselves live in [`crate::codec`] (here: [`crate::codec::int`], symmetric
//! integer codes with one scale per group); the streaming kernels that apply them, with a CPU
//! twin and a WGSL kernel each, in [`crate::compute`].

pub mod rtn;

pub use rtn::{QuantPreview, preview_int, quantize_int};
