//! Round-to-nearest integer quantization with groups (`int<bits>_g<group>`): symmetric codes,
//! one f32 scale per group of consecutive values along each row.

use serde::Serialize;

use crate::cancel::Cancel;
use crate::compute::{
    Backend, CodeSink, ComputeError, DiscardCodes, GroupError, IntSpec, Provenance, Ran, ValueSource,
};

/// Quantizes `src` with `spec` on `backend`, streaming scales and codes to `sink` (an exporter's
/// packing sink, or [`crate::compute::CollectCodes`]); returns the error of the decoded values.
pub fn quantize_int(
    backend: &dyn Backend,
    src: &dyn ValueSource,
    spec: &IntSpec,
    sink: &mut dyn CodeSink,
    cancel: &Cancel,
) -> Result<Ran<GroupError>, ComputeError> {
    backend.quantize_int(src, spec, sink, cancel)
}

/// The error a scheme would give a tensor, as the preview shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuantPreview {
    /// What was quantized.
    pub name: String,
    /// Bits per code.
    pub bits: u32,
    /// Values per group.
    pub group: usize,
    /// Finite values quantized.
    pub values: u64,
    /// Σ (x − x̂)².
    pub sq_err: f64,
    /// ‖x − x̂‖ / ‖x‖ (null for an all-zero tensor).
    pub rel_error: Option<f64>,
    /// 10·log10(‖x‖² / ‖x − x̂‖²), in dB (null when either is zero).
    pub sqnr_db: Option<f64>,
    /// max |x − x̂|.
    pub max_abs_err: f32,
    /// Which backend computed it.
    #[serde(flatten)]
    pub computed: Provenance,
}

/// Relative error ‖x − x̂‖ / ‖x‖ of an accumulated error.
pub fn rel_error(e: &GroupError) -> Option<f64> {
    (e.signal > 0.0).then(|| (e.sq_err / e.signal).sqrt())
}

/// Signal-to-quantization-noise ratio in dB of an accumulated error.
pub fn sqnr_db(e: &GroupError) -> Option<f64> {
    (e.signal > 0.0 && e.sq_err > 0.0).then(|| 10.0 * (e.signal / e.sq_err).log10())
}

/// Runs the quantization kernel on `src` without keeping the codes and reports its error.
pub fn preview_int(
    backend: &dyn Backend,
    src: &dyn ValueSource,
    spec: &IntSpec,
    cancel: &Cancel,
) -> Result<QuantPreview, ComputeError> {
    let ran = quantize_int(backend, src, spec, &mut DiscardCodes, cancel)?;
    let e = ran.value;
    Ok(QuantPreview {
        name: src.name().to_owned(),
        bits: spec.bits,
        group: spec.group,
        values: e.values,
        sq_err: e.sq_err,
        rel_error: rel_error(&e),
        sqnr_db: sqnr_db(&e),
        max_abs_err: e.max_abs_err,
        computed: ran.on,
    })
}
