//! Reports that travel: what the views show of a checkpoint (statistics and histograms, spectra,
//! channel profiles and their abs-max tiles, salience with an importance, a plan's preview
//! errors), computed headless next to the weights (`weightbench analyze PATH -o report.wbr`), in
//! one self-describing, versioned file that the window opens without the checkpoint.
//!
//! The file is [`REPORT_MAGIC`] then one CBOR value (self-describing, binary, floats kept exactly,
//! NaN included). Parts computed on several machines (`analyze --shards A-B`, a range of the
//! checkpoint's files) join with [`Report::merge`]: the same parts in any order give the same
//! bytes, because every collection in a report is ordered by name or position.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::AnalysisError;
use super::channels::{ChannelReport, DEFAULT_GRID, channel_report};
use super::heatmap::{HeatmapTiles, Mode, base_tile, heatmaps};
use super::salience::{SalienceMap, salience_map};
use super::spectrum::{SpectrumMethod, SpectrumReport, spectrum_report};
use super::stats::{TensorStats, tensor_stats};
use crate::cancel::Cancel;
pub use crate::checkpoint::REPORT_MAGIC;
use crate::checkpoint::safetensors::RawTensor;
use crate::checkpoint::{Checkpoint, Format, TensorInfo};
use crate::codec::DType;
use crate::compute::{Backend, BinScale, ComputeError, StatsRequest, TensorRef, ValueSource};

/// The report format this build writes; it reads this one and older.
pub const VERSION: u32 = 1;

/// Histogram bins of a report's statistics, and the window's default (`app::HISTOGRAM_BINS`), so a
/// report fills the window's caches under the key it asks for.
pub const HISTOGRAM_BINS: usize = 128;

/// Outlying channels listed per matrix, by reports and by the window alike.
pub const TOP_CHANNELS: usize = 16;

/// A report: where it came from, which parts it covers, and the results by tensor name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`VERSION`] of the writer.
    pub version: u32,
    /// The program that wrote it (`weightbench 0.1.0`).
    pub created_by: String,
    /// The checkpoint analysed: its tensor table, without weights.
    pub checkpoint: Source,
    /// The ranges of the checkpoint's files covered, in order.
    pub parts: Vec<Part>,
    /// Histogram bins of the statistics.
    pub histogram_bins: usize,
    /// Largest side of the tile maps.
    pub grid: usize,
    /// The importance salience was computed with (a file name, or `weight`), if any.
    pub importance: Option<String>,
    /// The plan whose preview errors are included, if any.
    pub plan: Option<String>,
    /// That plan itself, as TOML (as `Plan::to_toml` writes it): the window's plan view opens
    /// on it with the stored previews. (Absent from reports written before it existed.)
    #[serde(default)]
    pub plan_toml: Option<String>,
    /// Results by tensor name.
    pub tensors: BTreeMap<String, Results>,
}

/// The checkpoint a report describes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// Its path where it was analysed.
    pub path: String,
    /// Its container format.
    pub format: Format,
    /// Its architecture, when known.
    pub architecture: Option<String>,
    /// Its `config.json`, when it had one.
    pub config: Option<serde_json::Value>,
    /// Its metadata.
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// Its files' names, in order (what `--shards` counts).
    pub files: Vec<String>,
    /// Every tensor, in the checkpoint's order.
    pub tensors: Vec<Entry>,
}

/// One tensor of the table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Name.
    pub name: String,
    /// Element type ([`DType::name`]).
    pub dtype: String,
    /// Shape.
    pub shape: Vec<u64>,
    /// Index of its file in [`Source::files`].
    pub file: usize,
    /// Byte offset in that file.
    pub offset: u64,
    /// Length in bytes.
    pub bytes: u64,
}

/// A range of the checkpoint's files, 1-based and inclusive, as `--shards A-B` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Part {
    /// First file (1-based).
    pub first: usize,
    /// Last file (1-based, inclusive).
    pub last: usize,
}

impl std::str::FromStr for Part {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a range of files such as 1-10 (or 3)");
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let (first, last): (usize, usize) =
            (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
        if first == 0 || last < first {
            return Err(bad());
        }
        Ok(Part { first, last })
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// What was computed for one tensor: each view's result, or why there is none.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// Statistics and histogram.
    pub stats: Option<Result<TensorStats, String>>,
    /// Singular values and spectral metrics (matrices).
    pub spectrum: Option<Result<SpectrumReport, String>>,
    /// Channel profiles and the abs-max tile map (matrices).
    pub channels: Option<Result<ChannelReport, String>>,
    /// The salience map (matrices, with an importance).
    pub salience: Option<Result<SalienceMap, String>>,
    /// The plan's preview of this tensor (as `quantize --json` reports a tensor).
    pub preview: Option<serde_json::Value>,
    /// The whole-matrix maps of the heatmap's signed-mean, signed-extreme and rms modes, at the
    /// view's base resolution (the abs-max map is the channels' tile map). (Absent from
    /// reports written before they were included.)
    #[serde(default)]
    pub heat: Option<Result<Vec<HeatmapTiles>, String>>,
}

/// The heatmap modes whose base maps a report holds beside the channels' abs-max map.
pub const HEAT_MODES: [Mode; 3] = [Mode::Mean, Mode::Extreme, Mode::Rms];

/// Why a report cannot be read or joined.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Not a report, damaged, or from a newer weightbench.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Parts that do not belong together.
    #[error("cannot merge reports: {0}")]
    Mismatch(String),
    /// Cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl Report {
    /// An empty report of `ckpt` covering `parts` (with what a view's computation needs); `plan`
    /// is the plan's origin and its TOML.
    pub fn new(
        ckpt: &Checkpoint,
        parts: Vec<Part>,
        importance: Option<String>,
        plan: Option<(String, String)>,
    ) -> Self {
        let files = ckpt
            .files()
            .iter()
            .map(|f| f.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
            .collect();
        let tensors = ckpt
            .tensors()
            .iter()
            .map(|t| Entry {
                name: t.name.clone(),
                dtype: t.dtype.name().to_owned(),
                shape: t.shape.clone(),
                file: t.file,
                offset: t.offset,
                bytes: t.bytes,
            })
            .collect();
        Report {
            version: VERSION,
            created_by: format!("weightbench {}", env!("CARGO_PKG_VERSION")),
            checkpoint: Source {
                path: ckpt.path().display().to_string(),
                format: ckpt.format(),
                architecture: ckpt.architecture().map(str::to_owned),
                config: ckpt.config().cloned(),
                metadata: ckpt.metadata().clone(),
                files,
                tensors,
            },
            parts,
            histogram_bins: HISTOGRAM_BINS,
            grid: DEFAULT_GRID,
            importance,
            plan: plan.as_ref().map(|(origin, _)| origin.clone()),
            plan_toml: plan.map(|(_, toml)| toml),
            tensors: BTreeMap::new(),
        }
    }

    /// Whether tensor `t` lies in the report's parts.
    pub fn covers(&self, t: &TensorInfo) -> bool {
        self.parts.iter().any(|p| (p.first..=p.last).contains(&(t.file + 1)))
    }

    /// The file's bytes: the magic, then the report as CBOR.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = REPORT_MAGIC.to_vec();
        // Writing to a Vec cannot fail, and every field serializes.
        let _ = ciborium::into_writer(self, &mut out);
        out
    }

    /// Reads a report from the bytes of the file at `path`.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Report, ReportError> {
        let invalid = |message: String| ReportError::Invalid { path: path.display().to_string(), message };
        let body = bytes
            .strip_prefix(REPORT_MAGIC.as_slice())
            .ok_or_else(|| invalid("not a weightbench report (it does not start with WBREPORT)".into()))?;
        // The version first, so that a newer report says so instead of failing on a field.
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let v: Versioned =
            ciborium::from_reader(body).map_err(|e| invalid(format!("a damaged report (no version: {e})")))?;
        if v.version > VERSION {
            return Err(invalid(format!(
                "made by a newer weightbench (report version {}); this one reads version {VERSION} and older",
                v.version
            )));
        }
        ciborium::from_reader(body).map_err(|e| invalid(format!("a damaged report: {e}")))
    }

    /// Reads the report file at `path`.
    pub fn read(path: &Path) -> Result<Report, ReportError> {
        let bytes = std::fs::read(path)
            .map_err(|e| ReportError::Invalid { path: path.display().to_string(), message: e.to_string() })?;
        Report::from_bytes(path, &bytes)
    }

    /// The checkpoint the report describes, without its weights, opened from `origin` (the
    /// report's path): views list and classify its tensors; reading one says the weights are
    /// not here.
    pub fn checkpoint_at(&self, origin: &Path) -> Result<Checkpoint, ReportError> {
        let invalid = |message: String| ReportError::Invalid { path: origin.display().to_string(), message };
        let mut tensors = Vec::with_capacity(self.checkpoint.tensors.len().min(1 << 20));
        for e in &self.checkpoint.tensors {
            let dtype = DType::from_name(&e.dtype)
                .ok_or_else(|| invalid(format!("tensor {}: unknown dtype {:?}", e.name, e.dtype)))?;
            let raw =
                RawTensor { name: e.name.clone(), dtype, shape: e.shape.clone(), offset: e.offset, bytes: e.bytes };
            tensors.push((e.file, raw));
        }
        Ok(Checkpoint::without_weights(
            origin,
            self.checkpoint.format,
            tensors,
            self.checkpoint.metadata.clone(),
            self.checkpoint.config.clone(),
        ))
    }

    /// Joins parts of one report (`analyze --shards`): the same checkpoint, settings and
    /// format version; the result covers every part. Any order gives the same report.
    pub fn merge(mut reports: Vec<Report>) -> Result<Report, ReportError> {
        // One canonical order, so that the result does not depend on the order given.
        reports.sort_by(|a, b| a.parts.cmp(&b.parts));
        let mut iter = reports.into_iter();
        let Some(mut merged) = iter.next() else {
            return Err(ReportError::Mismatch("no report given".into()));
        };
        for r in iter {
            let what = |field: &str| {
                ReportError::Mismatch(format!(
                    "the parts {} and {} differ in their {field}",
                    list(&merged.parts),
                    list(&r.parts)
                ))
            };
            if r.checkpoint.tensors != merged.checkpoint.tensors || r.checkpoint.files != merged.checkpoint.files {
                return Err(what("checkpoint (tensor table or files)"));
            }
            if (r.version, r.histogram_bins, r.grid) != (merged.version, merged.histogram_bins, merged.grid) {
                return Err(what("format version or settings"));
            }
            if (&r.importance, &r.plan, &r.plan_toml) != (&merged.importance, &merged.plan, &merged.plan_toml) {
                return Err(what("importance or plan"));
            }
            for (name, results) in r.tensors {
                match merged.tensors.get(&name) {
                    Some(existing) if *existing != results => {
                        return Err(ReportError::Mismatch(format!("two parts hold different results for {name}")));
                    }
                    _ => {
                        merged.tensors.insert(name, results);
                    }
                }
            }
            merged.parts.extend(r.parts);
            // The path analysed may differ between machines: keep the first in order.
            if r.checkpoint.path < merged.checkpoint.path {
                merged.checkpoint.path = r.checkpoint.path;
            }
        }
        merged.parts = merge_ranges(merged.parts);
        Ok(merged)
    }
}

/// Parts as `1-10, 11-20`.
fn list(parts: &[Part]) -> String {
    parts.iter().map(Part::to_string).collect::<Vec<_>>().join(", ")
}

/// Sorted ranges, touching or overlapping ones joined.
fn merge_ranges(mut parts: Vec<Part>) -> Vec<Part> {
    parts.sort();
    let mut out: Vec<Part> = Vec::new();
    for p in parts {
        match out.last_mut() {
            Some(last) if p.first <= last.last + 1 => last.last = last.last.max(p.last),
            _ => out.push(p),
        }
    }
    out
}

/// Every view's result for one tensor, computed as the window computes it: statistics always,
/// spectrum and channels for matrices, salience for matrices when `importance` is given
/// (`(per-column importance for this tensor, or None for its column norms)`).
pub fn analyze_tensor(
    backend: &dyn Backend,
    ckpt: &Checkpoint,
    t: &TensorInfo,
    importance: Option<(Option<&[f32]>, &str)>,
    cancel: &Cancel,
) -> Result<Results, ReportError> {
    let mut results = Results::default();
    let request = StatsRequest { bins: HISTOGRAM_BINS, scale: BinScale::Linear };
    results.stats = done(tensor_stats(backend, ckpt, t, &request, cancel))?;
    if t.shape.len() >= 2 && t.dtype.why_not_analysed().is_none() {
        results.spectrum = done(spectrum_report(backend, ckpt, t, SpectrumMethod::Auto, cancel))?;
        results.channels = done(channel_report(backend, ckpt, t, TOP_CHANNELS, DEFAULT_GRID, cancel))?;
        let (rows, cols) = TensorRef::new(ckpt, t).matrix_shape();
        let tile = base_tile(rows, cols);
        let grid = (rows.div_ceil(tile.0), cols.div_ceil(tile.1));
        results.heat = done(heatmaps(backend, ckpt, t, 0..rows, 0..cols, grid, &HEAT_MODES, None, cancel))?;
        if let Some((values, source)) = importance {
            let imported = values.map(|v| (v, source.to_owned()));
            results.salience = done(salience_map(backend, ckpt, t, imported, DEFAULT_GRID, cancel))?;
        }
    }
    Ok(results)
}

/// A view's result as a report keeps it: the value, or why there is none; cancelling stops.
fn done<T>(r: Result<T, AnalysisError>) -> Result<Option<Result<T, String>>, ReportError> {
    match r {
        Err(AnalysisError::Cancelled | AnalysisError::Compute(ComputeError::Cancelled)) => Err(ReportError::Cancelled),
        other => Ok(Some(other.map_err(|e| e.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_parse_and_join() {
        assert_eq!("3".parse::<Part>(), Ok(Part { first: 3, last: 3 }));
        assert_eq!("1-10".parse::<Part>(), Ok(Part { first: 1, last: 10 }));
        assert!("0-2".parse::<Part>().is_err() && "5-2".parse::<Part>().is_err() && "a".parse::<Part>().is_err());
        let p = |first, last| Part { first, last };
        assert_eq!(merge_ranges(vec![p(11, 20), p(1, 10), p(30, 31), p(21, 25)]), vec![p(1, 25), p(30, 31)]);
    }
}
