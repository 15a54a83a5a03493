//! Quantization schemes and their error, above the kernels: a scheme turns a tensor into the
//! bytes a format stores (codes, scales, zero points, factors) and back; a preview runs the very
//! encoder an exporter runs (with a sink that keeps nothing) and reports the error of the decoded
//! values; a plan says which scheme each tensor gets.
//!
//! The number formats themselves live in [`crate::codec`] (block encoders beside their
//! decoders); the streaming integer kernel, with a CPU twin and a WGSL kernel, in
//! [`crate::compute`].

pub mod allocate;
pub mod auto;
pub mod cache;
pub mod encode;
pub mod gptq;
pub mod inspect;
pub mod lowrank;
pub mod methods;
pub mod plan;
pub mod preview;
pub mod scheme;

pub use encode::{CollectBytes, DiscardBytes, Encoded, Job, Part, PartSink, encode};
pub use plan::{Plan, PlanError, Resolved};
pub use preview::{Importance, PreviewReport, TensorPreview, Totals, preview_tensor};
pub use scheme::{IntGroup, RankCut, Scheme};
