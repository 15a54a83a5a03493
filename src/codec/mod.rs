//! Number formats, with no I/O: element types of checkpoints and their decoding to `f32`.
//!
//! Everything above this module (checkpoint readers, compute kernels, quantization, export) decodes
//! and encodes through it, so a format is defined exactly once.

mod dtype;
mod float;
pub mod ggml;
pub mod int;
pub mod nf4;

pub use dtype::{DType, DTypeError, decode, encode, safetensors_names};
pub use float::{
    bf16_to_f32, f4_e2m1_to_f32, f6_e2m3_to_f32, f6_e3m2_to_f32, f8_e4m3_to_f32, f8_e4m3fnuz_to_f32, f8_e5m2_to_f32,
    f8_e5m2fnuz_to_f32, f8_e8m0_to_f32, f16_to_f32, f32_to_f8_e4m3, fp8_e4m3_code, fp8_e4m3_scale,
};
