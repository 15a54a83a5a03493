//! Every number format's decoder and encoder. The first byte picks a format, the rest is its
//! input:
//! - any bytes of whole blocks decode, to one value per element, and a length that is not whole
//!   blocks is an error, not a panic;
//! - F32, F16 and BF16 round-trip bit for bit (NaN payloads aside);
//! - each ggml block encoder (with and without an importance) gives whole blocks that decode to
//!   finite values for finite inputs of a moderate range (large ones overflow the f16 scales, as
//!   in llama.cpp);
//! - integer groups decode each value within half a step of its input, NF4 to its nearest level.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weightbench::codec::int::{Arith, Columns, GroupError, IntSpec};
use weightbench::codec::{self, DType, ggml, nf4};

/// Every type the codec decodes (ggml block types and the safetensors types), in a fixed order.
fn decodable() -> Vec<DType> {
    let mut all: Vec<DType> = (0..64).filter_map(DType::from_ggml_id).collect();
    all.extend(codec::safetensors_names().iter().filter_map(|n| DType::from_safetensors_name(n).ok()));
    all.sort_by_key(|d| d.name());
    all.dedup();
    all.retain(|d| d.can_decode());
    all
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Whole blocks of arbitrary bytes decode; other lengths are errors.
fn decode_any(dtype: DType, bytes: &[u8]) {
    let (bb, be) = (dtype.block_bytes(), dtype.block_elems());
    let blocks = bytes.len() / bb;
    let bytes = &bytes[..blocks * bb];
    let mut values = vec![0f32; blocks * be];
    codec::decode(dtype, bytes, &mut values).unwrap_or_else(|e| panic!("{dtype}: {e}"));
    if blocks > 0 {
        assert!(codec::decode(dtype, &bytes[1..], &mut values).is_err(), "{dtype}: one byte short");
    }
    if matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
        let mut again = Vec::new();
        codec::encode(dtype, &values, &mut again).unwrap_or_else(|e| panic!("{dtype}: {e}"));
        for (i, (a, b)) in bytes.chunks_exact(bb).zip(again.chunks_exact(bb)).enumerate() {
            assert!(a == b || values[i].is_nan(), "{dtype}: value {i} {a:?} came back as {b:?}");
        }
    }
}

/// A ggml block encoder on the floats of `bytes` (importance from its second half when asked).
fn encode_blocks(dtype: DType, bytes: &[u8], weighted: bool) {
    let be = dtype.block_elems();
    let (row_bytes, importance) = if weighted { bytes.split_at(bytes.len() / 2) } else { (bytes, &[][..]) };
    let mut row = floats(row_bytes);
    row.truncate(row.len() / be * be);
    if row.is_empty() {
        return;
    }
    let importance: Option<Vec<f32>> = weighted.then(|| {
        // Activations' mean squares: far below 1e6 in any model (much larger ones overflow the
        // weighted sums to NaN scales, in llama.cpp's arithmetic as in ours).
        let mut w: Vec<f32> =
            floats(importance).iter().map(|w| if w.is_finite() { w.abs().min(1e6) } else { 0.0 }).collect();
        w.resize(row.len(), 1.0);
        w
    });
    let mut out = Vec::new();
    ggml::encode_row(dtype, &row, importance.as_deref(), &mut out).unwrap_or_else(|e| panic!("{dtype}: {e}"));
    assert_eq!(out.len(), row.len() / be * dtype.block_bytes(), "{dtype}");
    let mut back = vec![0f32; row.len()];
    codec::decode(dtype, &out, &mut back).unwrap_or_else(|e| panic!("{dtype}: {e}"));
    if row.iter().all(|x| x.is_finite() && x.abs() <= 1e3) {
        assert!(back.iter().all(|y| y.is_finite()), "{dtype}: {row:?} ({importance:?}) decoded to {back:?}");
    }
}

/// Integer groups: each value decodes within half a step of its input (plus the rounding of the
/// 16-bit arithmetics).
fn int_groups(spec_bytes: [u8; 3], bytes: &[u8]) {
    let arith = [Arith::F32, Arith::F16, Arith::Bf16][usize::from(spec_bytes[2] % 3)];
    // Values of the tensor's own type, as compressed-tensors sees them.
    let mut values: Vec<f32> = floats(bytes).into_iter().filter(|x| x.is_finite() && x.abs() <= 1e4).collect();
    values.iter_mut().for_each(|x| *x = arith.round(*x));
    let group = 1 + usize::from(spec_bytes[1] % 64);
    values.truncate(values.len() / group * group);
    if values.is_empty() {
        return;
    }
    let spec = IntSpec { bits: 2 + u32::from(spec_bytes[0] % 7), group, asym: spec_bytes[2] & 4 != 0, arith };
    let (mut params, mut codes, mut err) = (Vec::new(), Vec::new(), GroupError::default());
    let cols = Columns { first: 0, count: values.len(), importance: None };
    codec::int::encode(&values, &spec, cols, &mut params, &mut codes, &mut err);
    let mut back = Vec::new();
    codec::int::decode(&codes, &params, &spec, &mut back);
    assert_eq!(back.len(), values.len());
    // The 16-bit types round the scaled value, the scale and the product: a few of their ulps.
    // F16's subnormal scales (below 6.1e-5) are coarser still: an absolute term for them.
    let (ulp, tiny) = match arith {
        Arith::F32 => (1e-6, 1e-30),
        Arith::F16 => (2e-3, 1e-4),
        Arith::Bf16 => (1.6e-2, 1e-30),
    };
    for (i, (x, y)) in values.iter().zip(&back).enumerate() {
        let p = params[i / group];
        let step = p.scale * (1.0 + ulp);
        let bound = 0.5 * step + ulp * (x.abs() + step * 130.0) + tiny;
        assert!((x - y).abs() <= bound, "{spec:?}: {x} -> {y} (scale {}, zero {}), bound {bound}", p.scale, p.zero);
    }
}

/// NF4: each value decodes to the nearest of its block's 16 levels.
fn nf4_blocks(bytes: &[u8]) {
    let mut values = floats(bytes);
    values.retain(|x| x.is_finite());
    for block in values.chunks(nf4::BLOCK) {
        let mut indices = Vec::new();
        let absmax = nf4::encode_block(block, block.len() == nf4::BLOCK, &mut indices);
        assert_eq!(indices.len(), block.len());
        for (&x, &i) in block.iter().zip(&indices) {
            let y = nf4::decode(i, absmax);
            let mut nearest = (0..16u8).map(|j| (nf4::decode(j, absmax) - x).abs()).fold(f32::INFINITY, f32::min);
            if absmax < 1e-38 {
                // A block of subnormals is scaled by 1e-38 instead (as bitsandbytes' clamp): its
                // values may all go to zero.
                nearest = nearest.max(x.abs());
            }
            assert!((y - x).abs() <= nearest * (1.0 + 1e-5) + absmax * 1e-6, "{x} -> {y} (absmax {absmax})");
        }
        let mut packed = Vec::new();
        nf4::pack(&indices, &mut packed);
        assert_eq!(packed.len(), indices.len().div_ceil(2));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let types = decodable();
    let encodable: Vec<DType> = types.iter().copied().filter(|d| ggml::can_encode(*d)).collect();
    let choices = types.len() + 2 * encodable.len() + 2;
    let k = usize::from(pick) % choices;
    if k < types.len() {
        decode_any(types[k], rest);
    } else if k < types.len() + 2 * encodable.len() {
        let j = k - types.len();
        encode_blocks(encodable[j / 2], rest, j % 2 == 1);
    } else if k == choices - 2 {
        if let Some((spec, values)) = rest.split_first_chunk::<3>() {
            int_groups(*spec, values);
        }
    } else {
        nf4_blocks(rest);
    }
});
