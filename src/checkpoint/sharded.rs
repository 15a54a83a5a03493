//! Checkpoints split over several safetensors files, with or without a
//! `model.safetensors.index.json` that maps each tensor to its shard.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Loaded;
use super::error::{CheckpointError, Result};
use super::json::UniqueMap;
use super::mmap::MappedFile;
use super::safetensors::{RawTensor, read_header};

/// A `model.safetensors.index.json`, parsed.
#[derive(Deserialize)]
pub struct Index {
    /// The free-form `metadata` object.
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Tensor name → shard file name, in the index's order.
    pub weight_map: UniqueMap<String>,
}

/// Parses the bytes of the index at `index_path` (a name given twice is refused).
pub fn parse_index(index_path: &Path, text: &[u8]) -> Result<Index> {
    if text.is_empty() {
        return Err(CheckpointError::Empty { path: index_path.to_owned() });
    }
    let invalid = |message: String| CheckpointError::InvalidHeader { path: index_path.to_owned(), message };
    let text =
        std::str::from_utf8(text).map_err(|e| invalid(format!("index is not UTF-8 at byte {}", e.valid_up_to())))?;
    let index: Index = serde_json::from_str(text)
        .map_err(|e| invalid(format!("not a safetensors index (JSON with a weight_map object): {e}")))?;
    if let Some(name) = index.weight_map.duplicate {
        return Err(CheckpointError::DuplicateTensor {
            path: index_path.to_owned(),
            tensor: name,
            where_: "the index's weight_map names it twice".into(),
        });
    }
    Ok(index)
}

/// Opens an index file and the shards it names; the index decides which tensors belong to the
/// checkpoint and each must be found in the shard the index names.
pub(crate) fn open_index(index_path: &Path) -> Result<Loaded> {
    let text = std::fs::read(index_path).map_err(|e| CheckpointError::io(index_path, e))?;
    let index = parse_index(index_path, &text)?;
    let invalid = |message: String| CheckpointError::InvalidHeader { path: index_path.to_owned(), message };
    let folder = index_path.parent().unwrap_or(Path::new("."));

    // Shards in name order; each index entry remembers which shard it expects.
    let mut shard_names: Vec<&str> = index.weight_map.entries.iter().map(|(_, s)| s.as_str()).collect();
    shard_names.sort_unstable();
    shard_names.dedup();
    let mut shard_paths = Vec::with_capacity(shard_names.len());
    for shard in &shard_names {
        if shard.is_empty() || shard.contains('/') || shard.contains('\\') || *shard == ".." {
            return Err(invalid(format!("shard name {shard:?} is not a file name in the index's folder")));
        }
        let path = folder.join(shard);
        if !path.is_file() {
            let tensor = index.weight_map.entries.iter().find(|(_, s)| s == shard).map(|(t, _)| t.clone());
            return Err(CheckpointError::MissingShard {
                path: index_path.to_owned(),
                shard: (*shard).to_owned(),
                tensor: tensor.unwrap_or_default(),
            });
        }
        shard_paths.push(path);
    }
    let mut loaded = open_files(&shard_paths)?;

    // Keep exactly the tensors the index names, each from the shard it names.
    let shard_of: HashMap<&str, usize> = shard_names.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let mut found: HashMap<String, (usize, RawTensor)> =
        loaded.tensors.drain(..).map(|(file, t)| (t.name.clone(), (file, t))).collect();
    let mut tensors = Vec::with_capacity(index.weight_map.entries.len());
    for (name, shard) in &index.weight_map.entries {
        let want = shard_of.get(shard.as_str()).copied();
        match found.remove(name) {
            Some((file, t)) if Some(file) == want => tensors.push((file, t)),
            _ => {
                return Err(CheckpointError::MissingTensor {
                    path: index_path.to_owned(),
                    shard: shard.clone(),
                    tensor: name.clone(),
                });
            }
        }
    }
    let mut extra: Vec<String> = found.into_keys().collect();
    if !extra.is_empty() {
        extra.sort();
        loaded.warnings.push(format!(
            "{} tensor(s) in the shards are not in the index and were left out (as loaders do): {}",
            extra.len(),
            extra.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    loaded.tensors = tensors;
    for (key, value) in index.metadata.unwrap_or_default() {
        loaded.metadata.insert(key, value);
    }
    Ok(loaded)
}

/// Opens several safetensors files as one checkpoint. A tensor name found in two files is an
/// error: which one a loader would use depends on the loader.
pub(crate) fn open_files(paths: &[PathBuf]) -> Result<Loaded> {
    let mut files = Vec::with_capacity(paths.len());
    let mut tensors = Vec::new();
    let mut metadata = BTreeMap::new();
    let mut first_file: HashMap<String, usize> = HashMap::new();
    for (i, path) in paths.iter().enumerate() {
        let file = MappedFile::open(path)?;
        let header = read_header(&file)?;
        for t in header.tensors {
            if let Some(&other) = first_file.get(&t.name) {
                return Err(CheckpointError::DuplicateTensor {
                    path: path.clone(),
                    tensor: t.name,
                    where_: format!("in shard {} and in shard {}", file_name(&paths[other]), file_name(path)),
                });
            }
            first_file.insert(t.name.clone(), i);
            tensors.push((i, t));
        }
        for (k, v) in header.metadata {
            metadata.entry(k).or_insert(serde_json::Value::String(v));
        }
        files.push(file);
    }
    Ok(Loaded { files, tensors, metadata, warnings: Vec::new(), format: super::Format::Safetensors, gguf: None })
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
