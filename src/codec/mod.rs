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

/// Elements of a tensor of `shape`: 0 when any dimension is 0 (whatever the others are), else
/// their product, or `None` when it overflows `u64`. The product in order would overflow on a
/// shape such as `[2^40, 2^40, 0]`, which holds no element and is a valid GGUF tensor.
pub fn numel(shape: &[u64]) -> Option<u64> {
    if shape.contains(&0) {
        return Some(0);
    }
    shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d))
}
