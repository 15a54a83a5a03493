//! Element types of tensors and their decoding to `f32`.

use super::float;

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
}

/// Errors of element decoding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DTypeError {
    /// A name that is no known element type.
    #[error("unknown or unsupported dtype {0:?}")]
    Unknown(String),
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
    /// Every supported type, in a stable order.
    pub const ALL: [DType; 18] = [
        DType::F64,
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::F8E4M3,
        DType::F8E5M2,
        DType::F8E8M0,
        DType::F8E4M3Fnuz,
        DType::F8E5M2Fnuz,
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
            DType::I64 => "I64",
            DType::I32 => "I32",
            DType::I16 => "I16",
            DType::I8 => "I8",
            DType::U64 => "U64",
            DType::U32 => "U32",
            DType::U16 => "U16",
            DType::U8 => "U8",
            DType::Bool => "BOOL",
        }
    }

    /// Parses a safetensors dtype name.
    pub fn from_safetensors_name(name: &str) -> Result<Self, DTypeError> {
        DType::ALL.into_iter().find(|d| d.name() == name).ok_or_else(|| DTypeError::Unknown(name.to_owned()))
    }

    /// Elements per storage block (1 for scalar types).
    pub fn block_elems(self) -> usize {
        1
    }

    /// Bytes per storage block.
    pub fn block_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 | DType::U64 => 8,
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
    }
    Ok(())
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
        let n = bytes.len() / dtype.block_bytes();
        let mut out = vec![0.0; n];
        decode(dtype, bytes, &mut out).unwrap();
        out
    }

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_safetensors_name(d.name()), Ok(d));
        }
        assert_eq!(DType::from_safetensors_name("F4"), Err(DTypeError::Unknown("F4".into())));
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
    fn byte_len_checks_overflow() {
        assert_eq!(DType::F32.byte_len(3), Some(12));
        assert_eq!(DType::F64.byte_len(u64::MAX / 4), None);
    }
}
