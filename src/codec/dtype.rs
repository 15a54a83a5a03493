//! Element types of tensors and their decoding to `f32`.

use super::float;
use super::ggml::{self, QK_K};

/// The element type of a stored tensor.
///
/// Names follow safetensors (`F32`, `BF16`, `F8_E4M3`, ...). Every type is stored in blocks of
/// [`DType::block_elems`] elements taking [`DType::block_bytes`] bytes; for plain scalar types a
/// block is one element, which lets block-quantized formats share the same streaming code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// IEEE binary64.
    F64,
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    BF16,
    /// OCP FP8 E4M3 (finite-only, "fn").
    F8E4M3,
    /// OCP FP8 E5M2.
    F8E5M2,
    /// OCP MX E8M0 scale (power of two).
    F8E8M0,
    /// FP8 E4M3, "fnuz" variant (bias 8, NaN at 0x80).
    F8E4M3Fnuz,
    /// FP8 E5M2, "fnuz" variant (bias 16, NaN at 0x80).
    F8E5M2Fnuz,
    /// OCP MX FP4 E2M1, two to a byte (the first in the low four bits).
    F4,
    /// OCP MX FP6 E2M3, four to three bytes (a little-endian bit stream: element k at bit 6k).
    F6E2M3,
    /// OCP MX FP6 E3M2, packed as [`DType::F6E2M3`].
    F6E3M2,
    /// Complex numbers of two f32 (real, imaginary): listed, never analysed as real values.
    C64,
    /// Signed 64-bit integer.
    I64,
    /// Signed 32-bit integer.
    I32,
    /// Signed 16-bit integer.
    I16,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 64-bit integer.
    U64,
    /// Unsigned 32-bit integer.
    U32,
    /// Unsigned 16-bit integer.
    U16,
    /// Unsigned 8-bit integer.
    U8,
    /// Boolean stored as one byte (0 is false, anything else true).
    Bool,
    // ggml block types (GGUF). Names are ggml's.
    /// ggml Q4_0: 32 values, 4 bits, f16 scale.
    Q4_0,
    /// ggml Q4_1: 32 values, 4 bits, f16 scale and minimum.
    Q4_1,
    /// ggml Q5_0: 32 values, 5 bits, f16 scale.
    Q5_0,
    /// ggml Q5_1: 32 values, 5 bits, f16 scale and minimum.
    Q5_1,
    /// ggml Q8_0: 32 values, 8 bits, f16 scale.
    Q8_0,
    /// ggml Q8_1: 32 values, 8 bits, f16 scale and sum (an intermediate format; not decoded).
    Q8_1,
    /// ggml Q2_K: 256-value super-blocks, 2 bits.
    Q2K,
    /// ggml Q3_K: 256-value super-blocks, 3 bits.
    Q3K,
    /// ggml Q4_K: 256-value super-blocks, 4 bits.
    Q4K,
    /// ggml Q5_K: 256-value super-blocks, 5 bits.
    Q5K,
    /// ggml Q6_K: 256-value super-blocks, 6 bits.
    Q6K,
    /// ggml Q8_K: 256-value super-blocks, 8 bits, f32 scale.
    Q8K,
    /// ggml IQ2_XXS: 256-value super-blocks of 8-value lattice points, 2.06 bits per weight.
    IQ2XXS,
    /// ggml IQ2_XS: 8-value lattice points with 4-bit scales per 16, 2.31 bits per weight.
    IQ2XS,
    /// ggml IQ3_XXS: 4-value lattice points, 3.06 bits per weight.
    IQ3XXS,
    /// ggml IQ1_S: ternary 8-value lattice points with an offset, 1.56 bits per weight.
    IQ1S,
    /// ggml IQ4_NL: 32 values, 4-bit indices into a non-linear table.
    IQ4NL,
    /// ggml IQ3_S: 4-value lattice points with explicit signs, 3.44 bits per weight.
    IQ3S,
    /// ggml IQ2_S: 8-value lattice points with explicit signs, 2.56 bits per weight.
    IQ2S,
    /// ggml IQ4_XS: 256-value super-blocks of IQ4_NL levels with 6-bit scales.
    IQ4XS,
    /// ggml IQ1_M: IQ1_S with per-16 scales, 1.75 bits per weight.
    IQ1M,
    /// ggml TQ1_0: ternary, 1.69 bits per value.
    TQ1_0,
    /// ggml TQ2_0: ternary, 2 bits per value.
    TQ2_0,
    /// ggml MXFP4: 32 FP4 E2M1 values with an E8M0 scale.
    MXFP4,
    /// ggml NVFP4: 64-value blocks of FP4 E2M1 with an unsigned E4M3 scale per 16.
    NVFP4,
}

/// ggml type ids (enum ggml_type) of the types above; ids not listed are unknown or retired.
const GGML_IDS: [(u32, DType); 33] = [
    (0, DType::F32),
    (1, DType::F16),
    (2, DType::Q4_0),
    (3, DType::Q4_1),
    (6, DType::Q5_0),
    (7, DType::Q5_1),
    (8, DType::Q8_0),
    (9, DType::Q8_1),
    (10, DType::Q2K),
    (11, DType::Q3K),
    (12, DType::Q4K),
    (13, DType::Q5K),
    (14, DType::Q6K),
    (15, DType::Q8K),
    (16, DType::IQ2XXS),
    (17, DType::IQ2XS),
    (18, DType::IQ3XXS),
    (19, DType::IQ1S),
    (20, DType::IQ4NL),
    (21, DType::IQ3S),
    (22, DType::IQ2S),
    (23, DType::IQ4XS),
    (24, DType::I8),
    (25, DType::I16),
    (26, DType::I32),
    (27, DType::I64),
    (28, DType::F64),
    (29, DType::IQ1M),
    (30, DType::BF16),
    (34, DType::TQ1_0),
    (35, DType::TQ2_0),
    (39, DType::MXFP4),
    (40, DType::NVFP4),
    // Q1_0 (41) is not known here yet.
];

/// Errors of element decoding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DTypeError {
    /// A name that is no known element type.
    #[error("unknown or unsupported dtype {0:?}")]
    Unknown(String),
    /// A known type that this build cannot decode yet.
    #[error("decoding {0} is not supported yet")]
    Unsupported(DType),
    /// A byte buffer that does not hold whole blocks for the requested number of values.
    #[error("{dtype}: {bytes} bytes do not hold {values} values")]
    Length {
        /// The element type.
        dtype: DType,
        /// Bytes given.
        bytes: usize,
        /// Values asked for.
        values: usize,
    },
}

impl DType {
    /// The types a safetensors header may name, in a stable order (every name the `safetensors`
    /// crate knows: see [`safetensors_names`], checked both ways by the tests).
    pub const SAFETENSORS: [DType; 22] = [
        DType::F64,
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::F8E4M3,
        DType::F8E5M2,
        DType::F8E8M0,
        DType::F8E4M3Fnuz,
        DType::F8E5M2Fnuz,
        DType::F4,
        DType::F6E2M3,
        DType::F6E3M2,
        DType::C64,
        DType::I64,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::U64,
        DType::U32,
        DType::U16,
        DType::U8,
        DType::Bool,
    ];

    /// The safetensors name of this type.
    pub fn name(self) -> &'static str {
        match self {
            DType::F64 => "F64",
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::F8E4M3 => "F8_E4M3",
            DType::F8E5M2 => "F8_E5M2",
            DType::F8E8M0 => "F8_E8M0",
            DType::F8E4M3Fnuz => "F8_E4M3FNUZ",
            DType::F8E5M2Fnuz => "F8_E5M2FNUZ",
            DType::F4 => "F4",
            DType::F6E2M3 => "F6_E2M3",
            DType::F6E3M2 => "F6_E3M2",
            DType::C64 => "C64",
            DType::I64 => "I64",
            DType::I32 => "I32",
            DType::I16 => "I16",
            DType::I8 => "I8",
            DType::U64 => "U64",
            DType::U32 => "U32",
            DType::U16 => "U16",
            DType::U8 => "U8",
            DType::Bool => "BOOL",
            DType::Q4_0 => "Q4_0",
            DType::Q4_1 => "Q4_1",
            DType::Q5_0 => "Q5_0",
            DType::Q5_1 => "Q5_1",
            DType::Q8_0 => "Q8_0",
            DType::Q8_1 => "Q8_1",
            DType::Q2K => "Q2_K",
            DType::Q3K => "Q3_K",
            DType::Q4K => "Q4_K",
            DType::Q5K => "Q5_K",
            DType::Q6K => "Q6_K",
            DType::Q8K => "Q8_K",
            DType::IQ2XXS => "IQ2_XXS",
            DType::IQ2XS => "IQ2_XS",
            DType::IQ3XXS => "IQ3_XXS",
            DType::IQ1S => "IQ1_S",
            DType::IQ4NL => "IQ4_NL",
            DType::IQ3S => "IQ3_S",
            DType::IQ2S => "IQ2_S",
            DType::IQ4XS => "IQ4_XS",
            DType::IQ1M => "IQ1_M",
            DType::TQ1_0 => "TQ1_0",
            DType::TQ2_0 => "TQ2_0",
            DType::MXFP4 => "MXFP4",
            DType::NVFP4 => "NVFP4",
        }
    }

    /// The type [`DType::name`] names (safetensors names, and ggml's block types), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        DType::SAFETENSORS.into_iter().chain(GGML_IDS.iter().map(|(_, d)| *d)).find(|d| d.name() == name)
    }

    /// The type of a ggml type id, if known.
    pub fn from_ggml_id(id: u32) -> Option<Self> {
        GGML_IDS.iter().find(|(i, _)| *i == id).map(|(_, d)| *d)
    }

    /// The ggml type id, for types that GGUF can hold.
    pub fn ggml_id(self) -> Option<u32> {
        GGML_IDS.iter().find(|(_, d)| *d == self).map(|(i, _)| *i)
    }

    /// Whether [`decode`] can decode this type.
    pub fn can_decode(self) -> bool {
        match self {
            DType::C64 => false,
            DType::F4 | DType::F6E2M3 | DType::F6E3M2 => true,
            d => d.block_elems() == 1 || ggml::can_decode(d),
        }
    }

    /// Why tensors of this type have no values to analyse, when they have none: the reason a
    /// view or command gives for leaving such a tensor out.
    pub fn why_not_analysed(self) -> Option<String> {
        match self {
            DType::Q8_1 => Some("Q8_1 is an intermediate format of llama.cpp's matrix kernels, not decoded".into()),
            DType::C64 => {
                Some("complex values (C64) have no single real value to analyse; weightbench lists them only".into())
            }
            d if !d.can_decode() => Some(format!("decoding {d} is not supported")),
            _ => None,
        }
    }

    /// Parses a safetensors dtype name: one the `safetensors` crate knows ([`safetensors_names`])
    /// and this workbench reads.
    pub fn from_safetensors_name(name: &str) -> Result<Self, DTypeError> {
        if !safetensors_names().contains(&name) {
            return Err(DTypeError::Unknown(name.to_owned()));
        }
        DType::SAFETENSORS.into_iter().find(|d| d.name() == name).ok_or_else(|| DTypeError::Unknown(name.to_owned()))
    }

    /// Elements per storage block (1 for scalar types).
    pub fn block_elems(self) -> usize {
        match self {
            DType::Q4_0
            | DType::Q4_1
            | DType::Q5_0
            | DType::Q5_1
            | DType::Q8_0
            | DType::Q8_1
            | DType::IQ4NL
            | DType::MXFP4 => 32,
            DType::NVFP4 => 64,
            DType::F4 => 2,
            DType::F6E2M3 | DType::F6E3M2 => 4,
            DType::Q2K
            | DType::Q3K
            | DType::Q4K
            | DType::Q5K
            | DType::Q6K
            | DType::Q8K
            | DType::IQ2XXS
            | DType::IQ2XS
            | DType::IQ3XXS
            | DType::IQ1S
            | DType::IQ3S
            | DType::IQ2S
            | DType::IQ4XS
            | DType::IQ1M
            | DType::TQ1_0
            | DType::TQ2_0 => QK_K,
            _ => 1,
        }
    }

    /// Bytes per storage block (sizes as in ggml-common.h).
    pub fn block_bytes(self) -> usize {
        match self {
            DType::Q4_0 | DType::IQ4NL => 18,
            DType::Q4_1 => 20,
            DType::Q5_0 => 22,
            DType::Q5_1 => 24,
            DType::Q8_0 => 34,
            DType::Q8_1 => 36,
            DType::Q2K => 84,
            DType::Q3K | DType::IQ3S => 110,
            DType::Q4K => 144,
            DType::Q5K => 176,
            DType::Q6K => 210,
            DType::Q8K => 292,
            DType::IQ2XXS => 66,
            DType::IQ2XS => 74,
            DType::IQ3XXS => 98,
            DType::IQ1S => 50,
            DType::IQ2S => 82,
            DType::IQ4XS => 136,
            DType::IQ1M => 56,
            DType::TQ1_0 => 54,
            DType::TQ2_0 => 66,
            DType::MXFP4 => 17,
            DType::NVFP4 => 36,
            DType::F64 | DType::I64 | DType::U64 | DType::C64 => 8,
            DType::F4 => 1,
            DType::F6E2M3 | DType::F6E3M2 => 3,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::F8E4M3
            | DType::F8E5M2
            | DType::F8E8M0
            | DType::F8E4M3Fnuz
            | DType::F8E5M2Fnuz
            | DType::I8
            | DType::U8
            | DType::Bool => 1,
        }
    }

    /// Bytes taken by `elems` elements, or `None` when `elems` is not a whole number of blocks
    /// or the size overflows.
    pub fn byte_len(self, elems: u64) -> Option<u64> {
        let block = self.block_elems() as u64;
        if !elems.is_multiple_of(block) {
            return None;
        }
        (elems / block).checked_mul(self.block_bytes() as u64)
    }

    /// Whether values are integers or booleans (ids, masks), as opposed to weights.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            DType::I64
                | DType::I32
                | DType::I16
                | DType::I8
                | DType::U64
                | DType::U32
                | DType::U16
                | DType::U8
                | DType::Bool
        )
    }

    /// Whether values are floating point (as opposed to integers or booleans).
    pub fn is_float(self) -> bool {
        matches!(
            self,
            DType::F64
                | DType::F32
                | DType::F16
                | DType::BF16
                | DType::F8E4M3
                | DType::F8E5M2
                | DType::F8E8M0
                | DType::F8E4M3Fnuz
                | DType::F8E5M2Fnuz
                | DType::F4
                | DType::F6E2M3
                | DType::F6E3M2
        )
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Decodes little-endian `bytes` of type `dtype` into `out`, one `f32` per element.
///
/// `bytes` must hold exactly `out.len()` elements. Integers wider than 24 bits round to the
/// nearest `f32`; `F64` rounds to nearest (values beyond `f32` range become ±Inf).
pub fn decode(dtype: DType, bytes: &[u8], out: &mut [f32]) -> Result<(), DTypeError> {
    if dtype.byte_len(out.len() as u64) != Some(bytes.len() as u64) {
        return Err(DTypeError::Length { dtype, bytes: bytes.len(), values: out.len() });
    }
    match dtype {
        DType::F32 => map_le::<4>(bytes, out, f32::from_le_bytes),
        DType::F64 => map_le::<8>(bytes, out, |b| f64::from_le_bytes(b) as f32),
        DType::F16 => decode_f16(bytes, out),
        DType::BF16 => map_le::<2>(bytes, out, |b| float::bf16_to_f32(u16::from_le_bytes(b))),
        DType::F8E4M3 => map_le::<1>(bytes, out, |b| float::f8_e4m3_to_f32(b[0])),
        DType::F8E5M2 => map_le::<1>(bytes, out, |b| float::f8_e5m2_to_f32(b[0])),
        DType::F8E8M0 => map_le::<1>(bytes, out, |b| float::f8_e8m0_to_f32(b[0])),
        DType::F8E4M3Fnuz => map_le::<1>(bytes, out, |b| float::f8_e4m3fnuz_to_f32(b[0])),
        DType::F8E5M2Fnuz => map_le::<1>(bytes, out, |b| float::f8_e5m2fnuz_to_f32(b[0])),
        DType::I64 => map_le::<8>(bytes, out, |b| i64::from_le_bytes(b) as f32),
        DType::I32 => map_le::<4>(bytes, out, |b| i32::from_le_bytes(b) as f32),
        DType::I16 => map_le::<2>(bytes, out, |b| f32::from(i16::from_le_bytes(b))),
        DType::I8 => map_le::<1>(bytes, out, |b| f32::from(b[0] as i8)),
        DType::U64 => map_le::<8>(bytes, out, |b| u64::from_le_bytes(b) as f32),
        DType::U32 => map_le::<4>(bytes, out, |b| u32::from_le_bytes(b) as f32),
        DType::U16 => map_le::<2>(bytes, out, |b| f32::from(u16::from_le_bytes(b))),
        DType::U8 => map_le::<1>(bytes, out, |b| f32::from(b[0])),
        DType::Bool => map_le::<1>(bytes, out, |b| if b[0] != 0 { 1.0 } else { 0.0 }),
        DType::F4 => {
            for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
                pair[0] = float::f4_e2m1_to_f32(b & 0xf);
                pair[1] = float::f4_e2m1_to_f32(b >> 4);
            }
        }
        DType::F6E2M3 => decode_f6(bytes, out, float::f6_e2m3_to_f32),
        DType::F6E3M2 => decode_f6(bytes, out, float::f6_e3m2_to_f32),
        DType::C64 => return Err(DTypeError::Unsupported(DType::C64)),
        block => ggml::decode_blocks(block, bytes, out)?,
    }
    Ok(())
}

/// Encodes `values` as little-endian `dtype` elements, appending to `out`. F32 is exact; F16 and
/// BF16 round to nearest even (values beyond F16's range become ±Inf). Other types are not
/// encoded here yet (the quantizers will add the block types).
pub fn encode(dtype: DType, values: &[f32], out: &mut Vec<u8>) -> Result<(), DTypeError> {
    out.reserve(values.len() * dtype.block_bytes());
    match dtype {
        DType::F32 => values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        DType::F16 => values.iter().for_each(|v| out.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes())),
        DType::BF16 => values.iter().for_each(|v| out.extend_from_slice(&half::bf16::from_f32(*v).to_le_bytes())),
        other => return Err(DTypeError::Unsupported(other)),
    }
    Ok(())
}

/// Four 6-bit codes from each three bytes, read as a little-endian 24-bit stream.
fn decode_f6(bytes: &[u8], out: &mut [f32], value: fn(u8) -> f32) {
    for (b, four) in bytes.chunks_exact(3).zip(out.chunks_exact_mut(4)) {
        let w = u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
        for (k, o) in four.iter_mut().enumerate() {
            *o = value(((w >> (6 * k)) & 0x3f) as u8);
        }
    }
}

/// Every dtype name of the safetensors format, read from the `safetensors` crate's own `Dtype`
/// (the variant names its deserializer accepts), so that this list cannot drift from the
/// format's reference implementation.
pub fn safetensors_names() -> &'static [&'static str] {
    use serde::de::value::Error;
    use serde::de::{Deserializer, Error as _, Visitor};
    /// A deserializer that only records the variant names it is asked to choose from.
    struct Names(&'static [&'static str]);
    impl<'de> Deserializer<'de> for &mut Names {
        type Error = Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(Error::custom("only enums"))
        }
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            self.0 = variants;
            Err(Error::custom("names taken"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
        }
    }
    static NAMES: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names = Names(&[]);
        // The error is the point: the deserializer stops once it has the names.
        let _expected_error = <safetensors::Dtype as serde::Deserialize>::deserialize(&mut names);
        names.0
    })
}

/// Applies `f` to each `N`-byte little-endian element.
#[inline]
fn map_le<const N: usize>(bytes: &[u8], out: &mut [f32], f: impl Fn([u8; N]) -> f32) {
    for (chunk, o) in bytes.chunks_exact(N).zip(out.iter_mut()) {
        let mut b = [0u8; N];
        b.copy_from_slice(chunk);
        *o = f(b);
    }
}

/// f16 through `half`'s slice conversion (F16C where the CPU has it) when the bytes are aligned.
fn decode_f16(bytes: &[u8], out: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    #[cfg(target_endian = "little")]
    if let Ok(halves) = bytemuck::try_cast_slice::<u8, half::f16>(bytes) {
        halves.convert_to_f32_slice(out);
        return;
    }
    map_le::<2>(bytes, out, |b| float::f16_to_f32(u16::from_le_bytes(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(dtype: DType, bytes: &[u8]) -> Vec<f32> {
        let n = bytes.len() / dtype.block_bytes() * dtype.block_elems();
        let mut out = vec![0.0; n];
        decode(dtype, bytes, &mut out).unwrap();
        out
    }

    #[test]
    fn names_round_trip() {
        for d in DType::SAFETENSORS {
            assert_eq!(DType::from_safetensors_name(d.name()), Ok(d));
        }
        assert!(DType::from_safetensors_name("Q4_K").is_err(), "block types are GGUF-only");
        assert_eq!(DType::from_safetensors_name("F7"), Err(DTypeError::Unknown("F7".into())));
    }

    #[test]
    fn the_crate_and_we_know_the_same_safetensors_dtypes() {
        let crate_names = safetensors_names();
        assert!(crate_names.len() >= 22 && crate_names.contains(&"F4") && crate_names.contains(&"C64"));
        for name in crate_names {
            assert!(DType::from_safetensors_name(name).is_ok(), "the safetensors crate knows {name}; we do not");
        }
        for d in DType::SAFETENSORS {
            assert!(crate_names.contains(&d.name()), "we name {d}, which the safetensors crate does not know");
        }
    }

    #[test]
    fn fp4_and_fp6_decode_per_the_ocp_mx_tables() {
        // E2M1: the eight magnitudes of the MX specification, then their negatives.
        let fp4 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
        let bytes: Vec<u8> = (0..8u8).map(|i| i | (i + 8) << 4).collect();
        let got = dec(DType::F4, &bytes);
        for i in 0..8 {
            assert_eq!(got[2 * i], fp4[i], "code {i} (low nibble first)");
            assert_eq!(got[2 * i + 1], -fp4[i], "code {} (high nibble second)", i + 8);
        }
        // FP6: four codes in three bytes, element k at bit 6k. E2M3 0b0_11_111 = 7.5,
        // 0b0_00_001 = 0.125 (subnormal), 0b1_01_000 = -1; E3M2 0b0_111_11 = 28, 0b0_000_01 = 0.0625.
        let pack = |c: [u32; 4]| {
            let w = c[0] | c[1] << 6 | c[2] << 12 | c[3] << 18;
            vec![w as u8, (w >> 8) as u8, (w >> 16) as u8]
        };
        assert_eq!(dec(DType::F6E2M3, &pack([0b011111, 0b000001, 0b101000, 0])), [7.5, 0.125, -1.0, 0.0]);
        assert_eq!(dec(DType::F6E3M2, &pack([0b011111, 0b000001, 0b101100, 0b100000])), [28.0, 0.0625, -1.0, -0.0]);
        assert_eq!(DType::F6E2M3.byte_len(8), Some(6));
        assert_eq!(DType::F4.byte_len(3), None, "an odd count of FP4 values is not whole bytes");
        let mut out = [0.0];
        assert_eq!(decode(DType::C64, &[0; 8], &mut out), Err(DTypeError::Unsupported(DType::C64)));
        assert!(!DType::C64.can_decode() && DType::C64.why_not_analysed().is_some());
    }

    #[test]
    fn floats_decode_little_endian() {
        assert_eq!(dec(DType::F32, &[0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]), [1.0, -2.0]);
        assert_eq!(dec(DType::F64, &0.1f64.to_le_bytes()), [0.1f32]);
        assert_eq!(dec(DType::F64, &1e300f64.to_le_bytes()), [f32::INFINITY]);
        assert_eq!(dec(DType::F16, &[0x00, 0x3c, 0x00, 0xc0]), [1.0, -2.0]);
        // Unaligned F16 input takes the scalar path and gives the same values.
        let unaligned = [0u8, 0x00, 0x3c, 0x00, 0xc0];
        assert_eq!(dec(DType::F16, &unaligned[1..]), [1.0, -2.0]);
        assert_eq!(dec(DType::BF16, &[0x80, 0x3f, 0x49, 0x40]), [1.0, 3.140625]);
        assert_eq!(dec(DType::F8E4M3, &[0x38, 0xfe]), [1.0, -448.0]);
        assert_eq!(dec(DType::F8E5M2, &[0x3c, 0x7c]), [1.0, f32::INFINITY]);
        assert_eq!(dec(DType::F8E8M0, &[127, 130]), [1.0, 8.0]);
    }

    #[test]
    fn integers_decode() {
        assert_eq!(dec(DType::I64, &(-5i64).to_le_bytes()), [-5.0]);
        assert_eq!(dec(DType::I64, &(1i64 << 40).to_le_bytes()), [2f32.powi(40)]);
        assert_eq!(dec(DType::I32, &(-70000i32).to_le_bytes()), [-70000.0]);
        assert_eq!(dec(DType::I16, &(-300i16).to_le_bytes()), [-300.0]);
        assert_eq!(dec(DType::I8, &[0xff, 0x80, 0x7f]), [-1.0, -128.0, 127.0]);
        assert_eq!(dec(DType::U8, &[0xff, 0]), [255.0, 0.0]);
        assert_eq!(dec(DType::U16, &[0xff, 0xff]), [65535.0]);
        assert_eq!(dec(DType::U32, &u32::MAX.to_le_bytes()), [4294967296.0]);
        assert_eq!(dec(DType::U64, &7u64.to_le_bytes()), [7.0]);
        assert_eq!(dec(DType::Bool, &[0, 1, 2]), [0.0, 1.0, 1.0]);
    }

    #[test]
    fn wrong_length_is_an_error() {
        let mut out = [0.0f32; 2];
        assert_eq!(
            decode(DType::F32, &[0; 7], &mut out),
            Err(DTypeError::Length { dtype: DType::F32, bytes: 7, values: 2 })
        );
    }

    #[test]
    fn ggml_ids_round_trip_and_sizes_match_ggml() {
        for id in 0..64 {
            if let Some(d) = DType::from_ggml_id(id) {
                assert_eq!(d.ggml_id(), Some(id));
            }
        }
        assert_eq!(DType::from_ggml_id(4), None, "Q4_2 was retired");
        assert_eq!(DType::from_ggml_id(u32::MAX), None);
        // bytes per value of the common types
        assert_eq!(DType::Q4K.byte_len(256), Some(144));
        assert_eq!(DType::Q8_0.byte_len(64), Some(68));
        assert_eq!(DType::Q6K.byte_len(100), None, "not a whole number of blocks");
        assert!(DType::Q4K.can_decode() && DType::IQ2XXS.can_decode() && !DType::Q8_1.can_decode());
        let mut out = [0.0; 32];
        assert_eq!(decode(DType::Q8_1, &[0; 36], &mut out), Err(DTypeError::Unsupported(DType::Q8_1)));
    }

    #[test]
    fn encode_round_trips_and_rounds_to_nearest_even() {
        let values = [1.0f32, -2.5, 65504.0, 1e-3];
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let mut bytes = Vec::new();
            encode(dtype, &values, &mut bytes).unwrap();
            let back = dec(dtype, &bytes);
            for (v, b) in values.iter().zip(&back) {
                let expected = match dtype {
                    DType::F16 => half::f16::from_f32(*v).to_f32(),
                    DType::BF16 => half::bf16::from_f32(*v).to_f32(),
                    _ => *v,
                };
                assert_eq!(*b, expected, "{dtype}");
            }
        }
        // 1 + 2^-8 lies halfway between two bf16 values: ties go to the even one (1.0).
        let mut bytes = Vec::new();
        encode(DType::BF16, &[1.0 + 2f32.powi(-8)], &mut bytes).unwrap();
        assert_eq!(dec(DType::BF16, &bytes), [1.0]);
        assert_eq!(encode(DType::Q4K, &[0.0], &mut bytes), Err(DTypeError::Unsupported(DType::Q4K)));
    }

    #[test]
    fn byte_len_checks_overflow() {
        assert_eq!(DType::F32.byte_len(3), Some(12));
        assert_eq!(DType::F64.byte_len(u64::MAX / 4), None);
    }
}
