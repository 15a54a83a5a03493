//! ggml's block formats (the tensor types of GGUF files), decoded to `f32` exactly as ggml's
//! reference `dequantize_row_*` functions and gguf-py's `gguf.quants.dequantize` do: the same f32
//! operations in the same order, so results are bit-identical.
//!
//! One file per family: [`legacy`] (Q4_0 … Q8_0), [`kquants`] (Q2_K … Q8_K), [`iquants`]
//! (IQ4_NL, IQ4_XS), [`ternary`] (TQ1_0, TQ2_0), [`mxfp4`]. Each decoder takes one block's bytes
//! and fills one block of values; [`decode_blocks`] walks a run of blocks.

pub mod iquants;
pub mod kquants;
pub mod legacy;
pub mod mxfp4;
pub mod ternary;

use super::DType;

/// Elements per super-block of the K-quants and the IQ types.
pub const QK_K: usize = 256;

/// Reads the little-endian f16 at `bytes[at..at + 2]` as f32.
#[inline]
pub(crate) fn f16_at(bytes: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

/// A block decoder: one block's bytes in, one block's values out.
type BlockDecoder = fn(&[u8], &mut [f32]);

fn decoder(dtype: DType) -> Option<BlockDecoder> {
    Some(match dtype {
        DType::Q4_0 => legacy::decode_q4_0,
        DType::Q4_1 => legacy::decode_q4_1,
        DType::Q5_0 => legacy::decode_q5_0,
        DType::Q5_1 => legacy::decode_q5_1,
        DType::Q8_0 => legacy::decode_q8_0,
        DType::Q2K => kquants::decode_q2_k,
        DType::Q3K => kquants::decode_q3_k,
        DType::Q4K => kquants::decode_q4_k,
        DType::Q5K => kquants::decode_q5_k,
        DType::Q6K => kquants::decode_q6_k,
        DType::Q8K => kquants::decode_q8_k,
        DType::IQ4NL => iquants::decode_iq4_nl,
        DType::IQ4XS => iquants::decode_iq4_xs,
        DType::TQ1_0 => ternary::decode_tq1_0,
        DType::TQ2_0 => ternary::decode_tq2_0,
        DType::MXFP4 => mxfp4::decode_mxfp4,
        _ => return None,
    })
}

/// Whether [`decode_blocks`] can decode `dtype`.
pub fn can_decode(dtype: DType) -> bool {
    decoder(dtype).is_some()
}

/// Decodes whole blocks of a ggml block type. `bytes` and `out` must hold the same number of
/// blocks (checked by the caller). Returns `false` for a type this module cannot decode.
pub(crate) fn decode_blocks(dtype: DType, bytes: &[u8], out: &mut [f32]) -> bool {
    let Some(decode) = decoder(dtype) else { return false };
    for (block, values) in bytes.chunks_exact(dtype.block_bytes()).zip(out.chunks_exact_mut(dtype.block_elems())) {
        decode(block, values);
    }
    true
}
