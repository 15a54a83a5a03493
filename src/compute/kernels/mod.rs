//! The CPU kernels on plain `f32` slices, one file per concern: the reference that every GPU
//! kernel is tested against. Integer results (bin and outlier counts) are defined by comparisons
//! against f32 thresholds computed once, so any implementation following the same rule gets the
//! same counts.

mod histogram;
mod moments;
mod outliers;
mod tiles;

pub(in crate::compute) use histogram::{COUNT_WAYS, LinearGuess, MANTISSA_SHIFT};
pub use histogram::{
    HistogramIsa, add_histogram_and_outliers, add_histogram_and_outliers_with, add_histogram_counts, bin_of,
    equal_width_edges, histogram_bins,
};
pub(in crate::compute) use moments::{MAGNITUDE, add_central_sums};
pub use moments::{MOMENT_BLOCK, block_moments, central_from_shifted, merge_all, merge_moments};
pub use outliers::{add_outlier_counts, f32_at_least, f32_at_most, outlier_bounds, sigma_bounds};
pub use tiles::{add_region_row, add_salience, tiling};

/// Deterministic heavy-tailed values (a product of uniforms, signed), with exact zeros,
/// repeated values and tiny magnitudes sprinkled in.
#[cfg(test)]
pub(crate) fn test_weights(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n)
        .map(|i| match i % 97 {
            0 => 0.0,
            1 => -0.0,
            2 => 1.0e-30,
            3 => 0.0625,
            _ => (next() - 0.5) * next() * next() * 0.2,
        })
        .collect()
}
