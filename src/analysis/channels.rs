//! The channel view of a weight matrix `[out, in]`: per-row (output channel) and per-column
//! (input channel) abs-max, L2 norm and kurtosis; the channels whose abs-max stands furthest
//! above the median (the outlier input channels that activation-aware quantization cares about);
//! and a tiled abs-max map for a heatmap.

use serde::{Deserialize, Serialize};

use super::{AnalysisError, Cancel};
use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::compute::{Backend, ChannelResult, Provenance, TensorRef};

/// Tiles per side of the abs-max map, at most.
pub const DEFAULT_GRID: usize = 256;

/// One channel that stands out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopChannel {
    /// Row or column index.
    pub index: usize,
    /// Its max |x|.
    pub abs_max: f32,
    /// `abs_max` divided by the median abs-max of its kind.
    pub ratio_to_median: f64,
    /// Its L2 norm.
    pub l2: f64,
    /// Its excess kurtosis.
    pub kurtosis: f64,
}

/// The channel report, as `weightbench channels --json` prints it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelReport {
    /// Tensor name.
    pub name: String,
    /// Original shape.
    pub shape: Vec<u64>,
    /// Median of the per-column abs-max.
    pub col_abs_max_median: f32,
    /// Median of the per-row abs-max.
    pub row_abs_max_median: f32,
    /// Input channels (columns) by abs-max ratio to the median, largest first.
    pub top_input_channels: Vec<TopChannel>,
    /// Output channels (rows) by abs-max ratio to the median, largest first.
    pub top_output_channels: Vec<TopChannel>,
    /// All per-channel numbers and the tile map.
    #[serde(flatten)]
    pub channels: ChannelResult,
    /// Which backend computed it.
    #[serde(flatten)]
    pub computed: Provenance,
}

fn median(values: &[f32]) -> f32 {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f32::NAN;
    }
    v.sort_by(f32::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 { v[mid] } else { ((f64::from(v[mid - 1]) + f64::from(v[mid])) / 2.0) as f32 }
}

fn top(abs_max: &[f32], l2: &[f64], kurtosis: &[f64], median: f32, k: usize) -> Vec<TopChannel> {
    let mut order: Vec<usize> = (0..abs_max.len()).collect();
    order.sort_by(|&a, &b| abs_max[b].total_cmp(&abs_max[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .map(|i| TopChannel {
            index: i,
            abs_max: abs_max[i],
            ratio_to_median: f64::from(abs_max[i]) / f64::from(median),
            l2: l2[i],
            kurtosis: kurtosis[i],
        })
        .collect()
}

/// Computes the channel report of `tensor`, with the `top_k` most outlying channels of each kind.
pub fn channel_report(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    tensor: &TensorInfo,
    top_k: usize,
    max_grid: usize,
    cancel: &Cancel,
) -> Result<ChannelReport, AnalysisError> {
    let ran = backend.channels(&TensorRef::new(ckpt, tensor), max_grid, cancel)?;
    let c = ran.value;
    let col_median = median(&c.col_abs_max);
    let row_median = median(&c.row_abs_max);
    Ok(ChannelReport {
        name: tensor.name.clone(),
        shape: tensor.shape.clone(),
        col_abs_max_median: col_median,
        row_abs_max_median: row_median,
        top_input_channels: top(&c.col_abs_max, &c.col_l2, &c.col_kurtosis, col_median, top_k),
        top_output_channels: top(&c.row_abs_max, &c.row_l2, &c.row_kurtosis, row_median, top_k),
        channels: c,
        computed: ran.on,
    })
}
