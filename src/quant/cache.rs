//! Measurements kept between runs: what a scheme costs a tensor (bytes, errors) depends only on
//! the tensor's bytes, the scheme, the importance and the engine, so `plan auto` measures each
//! (tensor, scheme) once and a second run — another budget, another objective, one more
//! candidate — measures only what is new.
//!
//! One JSON file per checkpoint under the cache folder (`$XDG_CACHE_HOME/weightbench`, else
//! `~/.cache/weightbench`), named by a hash of the checkpoint's files (path, size, modification
//! time): a file changed on disk gets a new, empty cache. Entries are keyed by tensor, scheme,
//! importance (its file's path, size and time, or `weight`), the backend asked for and this
//! build's version. Written atomically; an unreadable cache is ignored (and rewritten).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::methods::MethodReport;
use super::plan::Resolved;
use super::preview::TensorPreview;
use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::codec::int::GroupError;
use crate::compute::Provenance;

/// The parts of a preview row the allocator and the plan's comments need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measure {
    /// Exact bytes.
    pub bytes: u64,
    /// ‖W − Ŵ‖²_F.
    pub sse: f64,
    /// Weighted error, with importance.
    pub weighted_sse: Option<f64>,
    /// Rank kept by a low-rank scheme.
    pub rank: Option<usize>,
    /// max |W − Ŵ|.
    pub max_abs_error: f64,
    /// Σ W².
    pub signal: f64,
    /// NaN and ±Inf values.
    pub non_finite: u64,
    /// What a method's search chose.
    #[serde(default)]
    pub method: Option<MethodReport>,
    /// The model's KL sensitivity to it, when measured.
    #[serde(default)]
    pub kl: Option<f64>,
    /// Who computed it, when it was computed.
    pub computed: Provenance,
}

impl Measure {
    /// The measure of a preview row.
    pub fn of(r: &TensorPreview) -> Self {
        Measure {
            bytes: r.bytes,
            sse: r.sse,
            weighted_sse: r.weighted_sse,
            rank: r.rank,
            max_abs_error: r.max_abs_error,
            signal: r.signal,
            non_finite: r.non_finite,
            method: r.method.clone(),
            kl: r.kl,
            computed: r.computed.clone(),
        }
    }

    /// The preview row of `tensor` under `resolved` this measure stands for.
    pub fn to_preview(&self, tensor: &TensorInfo, resolved: &Resolved) -> TensorPreview {
        let e = GroupError {
            values: tensor.numel().saturating_sub(self.non_finite),
            sq_err: self.sse,
            signal: self.signal,
            max_abs_err: self.max_abs_error as f32,
            weighted_sq_err: self.weighted_sse.unwrap_or(0.0),
            non_finite: self.non_finite,
        };
        let weighted = self.weighted_sse.is_some();
        let mut r = super::preview::row(tensor, resolved, &e, self.bytes, self.rank, weighted, self.computed.clone());
        r.method = self.method.clone();
        r.kl = self.kl;
        r
    }
}

/// The measurements of one checkpoint.
#[derive(Debug)]
pub struct MeasureCache {
    path: Option<PathBuf>,
    entries: BTreeMap<String, Measure>,
    changed: bool,
    /// Entries found.
    pub hits: usize,
}

/// The default cache folder: `$XDG_CACHE_HOME/weightbench`, else `$HOME/.cache/weightbench`.
pub fn default_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("weightbench"))
}

/// A stable identity of a file: path, size and modification time.
pub fn file_identity(path: &Path) -> String {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let meta = std::fs::metadata(path).ok();
    let size = meta.as_ref().map_or(0, std::fs::Metadata::len);
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{}|{size}|{mtime}", canonical.display())
}

impl MeasureCache {
    /// A cache that keeps nothing (`--no-cache`).
    pub fn disabled() -> Self {
        MeasureCache { path: None, entries: BTreeMap::new(), changed: false, hits: 0 }
    }

    /// The cache of `ckpt` in `dir` (loaded when it exists and reads).
    pub fn open(dir: &Path, ckpt: &Checkpoint) -> Self {
        let mut h = std::hash::DefaultHasher::new();
        for f in ckpt.files() {
            file_identity(f.path()).hash(&mut h);
        }
        let path = dir.join(format!("measure-{:016x}.json", h.finish()));
        let entries = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        MeasureCache { path: Some(path), entries, changed: false, hits: 0 }
    }

    /// The key of one measurement.
    pub fn key(tensor: &str, scheme: &str, importance: &str, backend: &str) -> String {
        format!("{tensor}\u{1f}{scheme}\u{1f}{importance}\u{1f}{backend}\u{1f}{}", env!("CARGO_PKG_VERSION"))
    }

    /// The stored measurement under `key`.
    pub fn get(&mut self, key: &str) -> Option<Measure> {
        let m = self.entries.get(key).cloned();
        self.hits += usize::from(m.is_some());
        m
    }

    /// Stores a measurement.
    pub fn put(&mut self, key: String, m: Measure) {
        if self.path.is_some() {
            self.entries.insert(key, m);
            self.changed = true;
        }
    }

    /// Writes the cache back if it changed (atomically: a temporary file renamed into place).
    /// A cache that cannot be written is reported, not fatal.
    pub fn save(&self) -> Result<(), String> {
        let Some(path) = &self.path else { return Ok(()) };
        if !self.changed {
            return Ok(());
        }
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, serde_json::to_vec(&self.entries).map_err(std::io::Error::other)?)?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| format!("cannot write the measurement cache {}: {e}", path.display()))
    }

    /// Where it lives.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}
