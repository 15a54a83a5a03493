//! The WGSL sources, embedded at build time, each with `common.wgsl` in front (and the
//! encoders with `exact.wgsl`, the correctly rounded division and f16/bf16 conversions).

/// Helpers every kernel file uses.
pub const COMMON: &str = include_str!("../../../shaders/common.wgsl");

/// The error partials of the encoders.
pub const ERRORS: &str = include_str!("../../../shaders/errors.wgsl");

/// The exact-arithmetic helpers of the encoders (correctly rounded division, f16/bf16 bits).
pub const EXACT: &str = include_str!("../../../shaders/exact.wgsl");

/// (file name, source with the common prelude) of every kernel family.
pub const ALL: [(&str, &str); 10] = [
    (
        "decode.wgsl",
        concat!(include_str!("../../../shaders/common.wgsl"), include_str!("../../../shaders/decode.wgsl")),
    ),
    (
        "moments.wgsl",
        concat!(
            include_str!("../../../shaders/common.wgsl"),
            include_str!("../../../shaders/exact.wgsl"),
            include_str!("../../../shaders/moments.wgsl")
        ),
    ),
    (
        "histogram.wgsl",
        concat!(include_str!("../../../shaders/common.wgsl"), include_str!("../../../shaders/histogram.wgsl")),
    ),
    (
        "channels.wgsl",
        concat!(include_str!("../../../shaders/common.wgsl"), include_str!("../../../shaders/channels.wgsl")),
    ),
    ("gram.wgsl", concat!(include_str!("../../../shaders/common.wgsl"), include_str!("../../../shaders/gram.wgsl"))),
    (
        "quant.wgsl",
        concat!(
            include_str!("../../../shaders/common.wgsl"),
            include_str!("../../../shaders/exact.wgsl"),
            include_str!("../../../shaders/errors.wgsl"),
            include_str!("../../../shaders/quant.wgsl")
        ),
    ),
    (
        "ggml_encode.wgsl",
        concat!(
            include_str!("../../../shaders/common.wgsl"),
            include_str!("../../../shaders/exact.wgsl"),
            include_str!("../../../shaders/errors.wgsl"),
            include_str!("../../../shaders/ggml_encode.wgsl")
        ),
    ),
    (
        "measure.wgsl",
        concat!(
            include_str!("../../../shaders/common.wgsl"),
            include_str!("../../../shaders/errors.wgsl"),
            include_str!("../../../shaders/measure.wgsl")
        ),
    ),
    (
        "float_encode.wgsl",
        concat!(
            include_str!("../../../shaders/common.wgsl"),
            include_str!("../../../shaders/exact.wgsl"),
            include_str!("../../../shaders/errors.wgsl"),
            include_str!("../../../shaders/float_encode.wgsl")
        ),
    ),
    (
        "region.wgsl",
        concat!(
            include_str!("../../../shaders/common.wgsl"),
            include_str!("../../../shaders/exact.wgsl"),
            include_str!("../../../shaders/region.wgsl")
        ),
    ),
];

/// The source of one kernel family, by file name.
pub fn source(file: &str) -> Option<&'static str> {
    ALL.iter().find(|(name, _)| *name == file).map(|(_, src)| *src)
}
