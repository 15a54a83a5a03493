//! The safetensors format: an 8-byte little-endian header length, a JSON header, a data section.
//!
//! The header is parsed and validated completely before any tensor byte is touched. Validation
//! follows the format's rules as the reference implementation enforces them (names unique, every
//! range inside the data section, byte sizes matching shapes, no overlaps, no holes) and adds
//! what it resolves silently: a name given twice in one header is refused, not "last one wins".

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::{CheckpointError, Result};
use super::json::UniqueMap;
use super::mmap::MappedFile;
use crate::codec::DType;

/// Largest accepted header, as in the reference implementation.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// One tensor entry of a validated header.
#[derive(Clone, Debug)]
pub struct RawTensor {
    /// Name as written in the header.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape (empty for a scalar).
    pub shape: Vec<u64>,
    /// Absolute byte offset of the first byte in the file.
    pub offset: u64,
    /// Length in bytes.
    pub bytes: u64,
}

/// A validated safetensors header.
#[derive(Clone, Debug, Default)]
pub struct Header {
    /// Tensors in header order.
    pub tensors: Vec<RawTensor>,
    /// The free-form `__metadata__` map.
    pub metadata: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// Reads and validates the header of one safetensors file.
pub fn read_header(file: &MappedFile) -> Result<Header> {
    let path = file.path();
    let bytes = file.bytes();
    let file_len = bytes.len() as u64;
    if file_len == 0 {
        return Err(CheckpointError::Empty { path: path.to_owned() });
    }
    if file_len < 8 {
        return Err(CheckpointError::Truncated {
            path: path.to_owned(),
            what: "the 8-byte header length".into(),
            expected: 8,
            found: file_len,
        });
    }
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&bytes[..8]);
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > MAX_HEADER_BYTES {
        return Err(CheckpointError::HeaderTooLarge {
            path: path.to_owned(),
            found: header_len,
            limit: MAX_HEADER_BYTES,
        });
    }
    let data_start = 8 + header_len;
    if data_start > file_len {
        return Err(CheckpointError::Truncated {
            path: path.to_owned(),
            what: format!("a header of {header_len} bytes"),
            expected: data_start,
            found: file_len,
        });
    }
    let header_bytes = &bytes[8..data_start as usize];
    let text = std::str::from_utf8(header_bytes).map_err(|e| CheckpointError::InvalidHeader {
        path: path.to_owned(),
        message: format!("not UTF-8 at byte {} of the header", e.valid_up_to()),
    })?;
    // serde_json refuses nesting deeper than 128 levels, so an absurdly deep header is an error,
    // not a stack overflow.
    let invalid_header = |message: String| CheckpointError::InvalidHeader { path: path.to_owned(), message };
    // Each entry is kept as its text and parsed on its own: a field given twice inside an entry
    // is then refused (as the reference implementation does), where a parsed Value keeps the last.
    let raw: UniqueMap<Box<serde_json::value::RawValue>> =
        serde_json::from_str(text).map_err(|e| invalid_header(format!("not valid JSON: {e}")))?;
    if let Some(name) = raw.duplicate {
        return Err(CheckpointError::DuplicateTensor {
            path: path.to_owned(),
            tensor: name,
            where_: "the header names it twice".into(),
        });
    }

    let data_len = file_len - data_start;
    let mut tensors = Vec::with_capacity(raw.entries.len());
    let mut ranges = Vec::with_capacity(raw.entries.len());
    let mut metadata = BTreeMap::new();
    for (name, value) in raw.entries {
        if name == "__metadata__" {
            // Values other than strings are tolerated and dropped: writers differ.
            let map = match serde_json::from_str(value.get()) {
                Ok(serde_json::Value::Object(map)) => map,
                Ok(_) => return Err(invalid_header("__metadata__ is not an object".into())),
                Err(e) => return Err(invalid_header(format!("__metadata__ is not valid JSON: {e}"))),
            };
            metadata = map.into_iter().filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned()))).collect();
            continue;
        }
        let entry = serde_json::from_str::<Entry>(value.get())
            .map_err(|e| invalid_header(format!("tensor {name:?}: {e} (expected {{dtype, shape, data_offsets}})")))?;
        let invalid =
            |message: String| CheckpointError::InvalidTensor { path: path.to_owned(), tensor: name.clone(), message };
        let dtype = DType::from_safetensors_name(&entry.dtype).map_err(|_| CheckpointError::UnknownDtype {
            path: path.to_owned(),
            tensor: name.clone(),
            dtype: entry.dtype.clone(),
        })?;
        let (begin, end) = entry.data_offsets;
        if begin > end {
            return Err(invalid(format!("data_offsets [{begin}, {end}] are reversed (begin after end)")));
        }
        if end > data_len {
            return Err(invalid(format!(
                "data_offsets [{begin}, {end}] end beyond the data section of {data_len} bytes \
                 (is the file truncated?)"
            )));
        }
        let elems = entry.shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let expected = elems.and_then(|n| dtype.byte_len(n));
        let Some(expected) = expected else {
            return Err(invalid(format!("shape {:?} of {dtype} overflows a 64-bit byte count", entry.shape)));
        };
        if expected != end - begin {
            return Err(invalid(format!(
                "shape {:?} of {dtype} needs {expected} bytes but data_offsets [{begin}, {end}] hold {}",
                entry.shape,
                end - begin
            )));
        }
        ranges.push((begin, end, tensors.len()));
        tensors.push(RawTensor { name, dtype, shape: entry.shape, offset: data_start + begin, bytes: end - begin });
    }

    check_coverage(path, &tensors, &mut ranges, data_len)?;
    Ok(Header { tensors, metadata })
}

/// Checks that the ranges, in order, follow each other without overlaps or holes and cover the
/// data section: a zero-size tensor too must sit where one tensor ends and the next begins (as the
/// `safetensors` library requires; one placed inside another tensor's bytes is refused).
fn check_coverage(
    path: &std::path::Path,
    tensors: &[RawTensor],
    ranges: &mut [(u64, u64, usize)],
    data_len: u64,
) -> Result<()> {
    ranges.sort_unstable();
    let mut covered_to = 0u64;
    let mut previous: Option<usize> = None;
    for &(begin, end, index) in ranges.iter() {
        if begin < covered_to {
            let other = previous.map(|i| tensors[i].name.as_str()).unwrap_or("?");
            return Err(CheckpointError::InvalidTensor {
                path: path.to_owned(),
                tensor: tensors[index].name.clone(),
                message: format!("data range [{begin}, {end}] overlaps tensor {other:?}, which ends at {covered_to}"),
            });
        }
        if begin > covered_to {
            return Err(CheckpointError::Unindexed {
                path: path.to_owned(),
                message: format!(
                    "bytes [{covered_to}, {begin}) before tensor {:?} belong to no tensor",
                    tensors[index].name
                ),
            });
        }
        covered_to = end;
        previous = Some(index);
    }
    if covered_to != data_len {
        return Err(CheckpointError::Unindexed {
            path: path.to_owned(),
            message: format!("the last tensor ends at byte {covered_to} of a {data_len}-byte data section"),
        });
    }
    Ok(())
}
