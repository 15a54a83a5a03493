//! bitsandbytes' NF4 (QLoRA's NormalFloat4): blocks of 64 values (along the flattened tensor),
//! one f32 abs-max per block, each value the index of the nearest of 16 levels after scaling the
//! block into [−1, 1]; two indices per byte, the first in the high nibble. Follows bitsandbytes'
//! reference CPU kernel (`backends/default/ops.py`): full blocks are scaled by the reciprocal
//! `1 / max(absmax, 1e-38)`, a trailing partial block by division; an index is found by
//! `bucketize` over the midpoints of the levels (a value on a midpoint takes the lower level).

/// The 16 NF4 levels, as bitsandbytes' `get_4bit_type("nf4")` gives them (f32).
pub const NF4_LEVELS: [f32; 16] = [
    -1.0,
    -0.6961928,
    -0.52507305,
    -0.3949175,
    -0.28444138,
    -0.18477343,
    -0.091050036,
    0.0,
    0.0795803,
    0.1609302,
    0.2461123,
    0.33791524,
    0.44070983,
    0.562617,
    0.72295684,
    1.0,
];

/// Values per block.
pub const BLOCK: usize = 64;

/// Midpoints between consecutive levels, computed in f32 as bitsandbytes does.
pub fn midpoints() -> [f32; 15] {
    std::array::from_fn(|i| (NF4_LEVELS[i] + NF4_LEVELS[i + 1]) / 2.0)
}

/// The index of a value already scaled into [−1, 1]: how many midpoints lie strictly below it.
pub fn index_of(scaled: f32) -> u8 {
    midpoints().iter().filter(|&&m| m < scaled).count() as u8
}

/// Encodes one block (`values.len() ≤ 64`; shorter only for the tensor's last block):
/// returns its abs-max and appends one index per value to `indices`.
pub fn encode_block(values: &[f32], full: bool, indices: &mut Vec<u8>) -> f32 {
    let absmax = values.iter().fold(0f32, |m, x| m.max(x.abs()));
    let clamped = absmax.max(1e-38);
    let inv = 1.0 / clamped;
    for &x in values {
        let scaled = if full { x * inv } else { x / clamped };
        indices.push(index_of(scaled.clamp(-1.0, 1.0)));
    }
    absmax
}

/// Packs indices two per byte, the first in the high nibble (an odd count is padded with 0).
pub fn pack(indices: &[u8], out: &mut Vec<u8>) {
    for pair in indices.chunks(2) {
        out.push(pair[0] << 4 | pair.get(1).copied().unwrap_or(0));
    }
}

/// The value an index decodes to in a block with this abs-max (f32, as bitsandbytes).
pub fn decode(index: u8, absmax: f32) -> f32 {
    NF4_LEVELS[usize::from(index & 15)] * absmax
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_themselves_and_midpoints_go_down() {
        for (i, &l) in NF4_LEVELS.iter().enumerate() {
            assert_eq!(index_of(l), i as u8);
        }
        let m = midpoints();
        assert_eq!(index_of(m[7]), 7);
        assert_eq!(index_of(f32::from_bits(m[7].to_bits() + 1)), 8);
        let mut idx = Vec::new();
        let absmax = encode_block(&[2.0, -2.0, 0.0, 1.0], true, &mut idx);
        assert_eq!((absmax, idx.as_slice()), (2.0, &[15u8, 0, 7, 12][..]));
        let mut packed = Vec::new();
        pack(&idx, &mut packed);
        assert_eq!(packed, [0xf0, 0x7c]);
    }
}
