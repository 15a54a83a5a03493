//! Equal-width histograms over the finite values of a tensor.
//!
//! Bin membership is defined by comparisons against the reported f32 edges, exactly as
//! `numpy.histogram(values, bins=edges)` does: bin `i` holds `edges[i] <= x < edges[i+1]`, and the
//! last bin also holds `x == edges[bins]`. Any implementation (another thread split, a GPU
//! kernel) that follows the same rule gets the same counts.

use rayon::prelude::*;
use serde::Serialize;

use super::{AnalysisError, Cancel};
use crate::checkpoint::{Checkpoint, DEFAULT_CHUNK_ELEMS, TensorInfo};

/// A histogram of a tensor's finite values.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Histogram {
    /// `bins + 1` edges, non-decreasing.
    pub edges: Vec<f32>,
    /// Count per bin.
    pub counts: Vec<u64>,
    /// Finite values counted.
    pub finite: u64,
    /// NaN and infinite values, left out of the bins.
    pub non_finite: u64,
}

/// Equal-width f32 edges over `[min, max]`. A single value gets numpy's range `[v - 0.5, v + 0.5]`.
pub fn equal_width_edges(min: f32, max: f32, bins: usize) -> Vec<f32> {
    let (lo, hi) =
        if min < max { (f64::from(min), f64::from(max)) } else { (f64::from(min) - 0.5, f64::from(max) + 0.5) };
    let bins = bins.max(1);
    let mut edges: Vec<f32> = (0..=bins).map(|i| (lo + (hi - lo) * i as f64 / bins as f64) as f32).collect();
    // Rounding to f32 can only produce equal neighbours, never a decrease, but make it explicit.
    for i in 1..edges.len() {
        edges[i] = edges[i].max(edges[i - 1]);
    }
    edges
}

/// The bin of a finite `x` inside `[edges[0], edges[bins]]`, by comparisons against the edges.
/// `scale` is `bins / (hi - lo)`, used only for a first guess.
#[inline]
pub fn bin_of(x: f32, edges: &[f32], scale: f64) -> usize {
    let bins = edges.len() - 1;
    let guess = ((f64::from(x) - f64::from(edges[0])) * scale) as usize;
    let mut i = guess.min(bins - 1);
    while i > 0 && x < edges[i] {
        i -= 1;
    }
    while i + 1 < bins && x >= edges[i + 1] {
        i += 1;
    }
    i
}

/// Counts the finite values of `tensor` into `bins` equal-width bins over their [min, max].
pub fn histogram(
    ckpt: &Checkpoint,
    tensor: &TensorInfo,
    bins: usize,
    cancel: &Cancel,
) -> Result<Histogram, AnalysisError> {
    let chunks: Vec<_> = ckpt.chunks(tensor, DEFAULT_CHUNK_ELEMS).collect();

    // Pass 1: range of the finite values.
    let (min, max, finite, non_finite) = chunks
        .par_iter()
        .map(|range| -> Result<_, AnalysisError> {
            if cancel.is_cancelled() {
                return Err(AnalysisError::Cancelled);
            }
            let mut buf = Vec::new();
            ckpt.decode_range(tensor, range.clone(), &mut buf)?;
            let mut acc = (f32::INFINITY, f32::NEG_INFINITY, 0u64, 0u64);
            for &x in &buf {
                if x.is_finite() {
                    acc.0 = acc.0.min(x);
                    acc.1 = acc.1.max(x);
                    acc.2 += 1;
                } else {
                    acc.3 += 1;
                }
            }
            Ok(acc)
        })
        .try_reduce(
            || (f32::INFINITY, f32::NEG_INFINITY, 0, 0),
            |a, b| Ok((a.0.min(b.0), a.1.max(b.1), a.2 + b.2, a.3 + b.3)),
        )?;

    let bins = bins.max(1);
    if finite == 0 {
        return Ok(Histogram { edges: equal_width_edges(0.0, 0.0, bins), counts: vec![0; bins], finite, non_finite });
    }
    let edges = equal_width_edges(min, max, bins);
    let span = f64::from(edges[bins]) - f64::from(edges[0]);
    let scale = if span > 0.0 { bins as f64 / span } else { 0.0 };

    // Pass 2: counts.
    let counts = chunks
        .par_iter()
        .map(|range| -> Result<Vec<u64>, AnalysisError> {
            if cancel.is_cancelled() {
                return Err(AnalysisError::Cancelled);
            }
            let mut buf = Vec::new();
            ckpt.decode_range(tensor, range.clone(), &mut buf)?;
            let mut counts = vec![0u64; bins];
            for &x in buf.iter().filter(|x| x.is_finite()) {
                counts[bin_of(x, &edges, scale)] += 1;
            }
            Ok(counts)
        })
        .try_reduce(
            || vec![0u64; bins],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                Ok(a)
            },
        )?;
    Ok(Histogram { edges, counts, finite, non_finite })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_follow_numpy_rule() {
        let edges = [0.0f32, 1.0, 2.0, 3.0];
        let scale = 1.0;
        assert_eq!(bin_of(0.0, &edges, scale), 0);
        assert_eq!(bin_of(0.999, &edges, scale), 0);
        assert_eq!(bin_of(1.0, &edges, scale), 1);
        assert_eq!(bin_of(2.5, &edges, scale), 2);
        assert_eq!(bin_of(3.0, &edges, scale), 2); // right edge belongs to the last bin
        // A bad guess (wrong scale) is corrected by the comparisons.
        assert_eq!(bin_of(2.5, &edges, 100.0), 2);
        assert_eq!(bin_of(2.5, &edges, 0.0), 2);
    }

    #[test]
    fn edges_cover_the_range_exactly() {
        let e = equal_width_edges(-1.5, 2.5, 4);
        assert_eq!(e, vec![-1.5, -0.5, 0.5, 1.5, 2.5]);
        let single = equal_width_edges(3.0, 3.0, 2);
        assert_eq!(single, vec![2.5, 3.0, 3.5]);
    }
}
