//! Opening GGUF checkpoints: one file, or the parts of a file split by llama.cpp's gguf-split
//! (`name-00001-of-00003.gguf`, with `split.count` in each part's metadata).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::error::{CheckpointError, Result};
use super::gguf::{self, GgufValue};
use super::mmap::MappedFile;
use super::{Format, GgufInfo, Loaded, METADATA_ARRAY_ITEMS};

/// Opens a GGUF file; when it is the first part of a split file, opens all its parts.
pub fn open(path: &Path) -> Result<Loaded> {
    let first = MappedFile::open(path)?;
    let header = gguf::read_header(&first)?;
    let split_count = header.get("split.count").and_then(GgufValue::as_u64).unwrap_or(1);
    let mut paths = vec![path.to_owned()];
    if split_count > 1 {
        paths = split_siblings(path, split_count)?;
        if paths[0] != path {
            return Err(CheckpointError::NotACheckpoint {
                path: path.to_owned(),
                reason: format!("this is a later part of a split GGUF; open the first part, {}", paths[0].display()),
            });
        }
    }
    with_parts(first, header, &paths)
}

/// One GGUF file on its own, whatever its `split.count` says (an imatrix, or bytes in memory).
pub fn from_file(file: MappedFile) -> Result<Loaded> {
    let header = gguf::read_header(&file)?;
    with_parts(file, header, &[])
}

/// The checkpoint of a first file (already read) and the later parts at `paths[1..]`.
fn with_parts(first: MappedFile, header: gguf::GgufHeader, paths: &[PathBuf]) -> Result<Loaded> {
    let metadata_json: BTreeMap<String, serde_json::Value> =
        header.metadata.iter().map(|(k, v)| (k.clone(), v.to_json(METADATA_ARRAY_ITEMS))).collect();
    let info = GgufInfo { version: header.version, alignment: header.alignment, metadata: header.metadata };
    let mut files = vec![first];
    let mut tensors: Vec<_> = header.tensors.into_iter().map(|t| (0, t)).collect();
    let mut seen: HashMap<String, usize> = tensors.iter().map(|(_, t)| (t.name.clone(), 0)).collect();
    for (i, part) in paths.iter().enumerate().skip(1) {
        let file = MappedFile::open(part)?;
        let header = gguf::read_header(&file)?;
        for t in header.tensors {
            if let Some(&other) = seen.get(&t.name) {
                return Err(CheckpointError::DuplicateTensor {
                    path: part.clone(),
                    tensor: t.name,
                    where_: format!("in part {} and in part {}", other + 1, i + 1),
                });
            }
            seen.insert(t.name.clone(), i);
            tensors.push((i, t));
        }
        files.push(file);
    }
    Ok(Loaded { files, tensors, metadata: metadata_json, warnings: Vec::new(), format: Format::Gguf, gguf: Some(info) })
}

/// Opens the GGUF in a folder: a single file, or the first part of a split one.
pub fn open_folder(dir: &Path, ggufs: &[PathBuf]) -> Result<Loaded> {
    let firsts: Vec<&PathBuf> = ggufs.iter().filter(|p| split_part(p).is_none_or(|(_, no, _)| no == 1)).collect();
    match firsts.as_slice() {
        [one] => open(one),
        _ => Err(CheckpointError::NotACheckpoint {
            path: dir.to_owned(),
            reason: format!("the folder holds {} GGUF models; open one of them", firsts.len()),
        }),
    }
}

/// `(prefix, part number, part count)` of a gguf-split file name `prefix-0000N-of-0000M.gguf`.
fn split_part(path: &Path) -> Option<(String, u64, u64)> {
    let stem = path.file_name()?.to_str()?.strip_suffix(".gguf")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, no) = rest.rsplit_once('-')?;
    Some((prefix.to_owned(), no.parse().ok()?, count.parse().ok()?))
}

/// Paths of all parts of the split file that `path` belongs to, in order; each must exist.
fn split_siblings(path: &Path, count: u64) -> Result<Vec<PathBuf>> {
    let Some((prefix, _, named_count)) = split_part(path) else {
        return Err(CheckpointError::InvalidHeader {
            path: path.to_owned(),
            message: format!("split.count is {count} but the file name is not NAME-0000N-of-0000M.gguf"),
        });
    };
    if named_count != count {
        return Err(CheckpointError::InvalidHeader {
            path: path.to_owned(),
            message: format!("split.count is {count} but the file name says {named_count} parts"),
        });
    }
    let folder = path.parent().unwrap_or(Path::new("."));
    (1..=count)
        .map(|no| {
            let part = folder.join(format!("{prefix}-{no:05}-of-{count:05}.gguf"));
            if part.is_file() {
                Ok(part)
            } else {
                Err(CheckpointError::NotACheckpoint {
                    path: path.to_owned(),
                    reason: format!("part {no} of {count} of this split GGUF is missing: {}", part.display()),
                })
            }
        })
        .collect()
}
