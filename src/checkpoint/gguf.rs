//! GGUF (llama.cpp's format), versions 2 and 3: a little-endian header of key-values and tensor
//! infos, then aligned tensor data. Every count and length is checked against the bytes that are
//! actually there before anything is allocated, so a lying header gives an error, not a huge
//! allocation; every tensor's range is checked against the file.
//!
//! Tensor shapes are reported outermost dimension first (PyTorch/numpy order): GGUF stores
//! `ne[0]` (the contiguous dimension) first, so the dimensions are reversed.

use std::collections::HashSet;
use std::path::Path;

use serde_json::json;

use super::error::{CheckpointError, Result};
use super::mmap::MappedFile;
use super::safetensors::RawTensor;
use crate::codec::DType;

/// The file magic.
pub const MAGIC: &[u8; 4] = b"GGUF";
/// Default data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Deepest nesting of arrays accepted.
const MAX_ARRAY_DEPTH: usize = 8;
/// Most dimensions a ggml tensor can have.
const MAX_DIMS: u32 = 4;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    /// uint8
    U8(u8),
    /// int8
    I8(i8),
    /// uint16
    U16(u16),
    /// int16
    I16(i16),
    /// uint32
    U32(u32),
    /// int32
    I32(i32),
    /// float32
    F32(f32),
    /// bool
    Bool(bool),
    /// string
    String(String),
    /// uint64
    U64(u64),
    /// int64
    I64(i64),
    /// float64
    F64(f64),
    /// array (stored compactly: see [`GgufArray`])
    Array(GgufArray),
}

/// A GGUF array, kept as compact as the file keeps it: numbers as their stored bytes, strings
/// as one buffer with the end of each, so that memory stays within a small multiple of the
/// file's own bytes whatever a header claims (one value object per element would take ~32
/// bytes for each byte of a `UINT8` array). Elements are materialised one at a time, on demand.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufArray {
    /// Numbers or booleans of one type (ids 0–7 and 10–12), little-endian as stored.
    Numbers {
        /// The element type id.
        type_id: u32,
        /// The elements' bytes.
        bytes: Vec<u8>,
    },
    /// Strings (UTF-8, checked), concatenated.
    Strings {
        /// Every string's bytes, one after another.
        data: String,
        /// The end offset of each string in `data`.
        ends: Vec<usize>,
    },
    /// Arrays (nested at most 8 deep).
    Arrays(Vec<GgufArray>),
}

impl GgufArray {
    /// The element type id (9 for nested arrays).
    pub fn element_type(&self) -> u32 {
        match self {
            GgufArray::Numbers { type_id, .. } => *type_id,
            GgufArray::Strings { .. } => 8,
            GgufArray::Arrays(_) => 9,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            GgufArray::Numbers { type_id, bytes } => bytes.len() / fixed_size(*type_id).max(1) as usize,
            GgufArray::Strings { ends, .. } => ends.len(),
            GgufArray::Arrays(items) => items.len(),
        }
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as a value, if there is one.
    pub fn get(&self, i: usize) -> Option<GgufValue> {
        match self {
            GgufArray::Numbers { type_id, bytes } => {
                let size = fixed_size(*type_id) as usize;
                let b = bytes.get(i.checked_mul(size)?..i.checked_mul(size)?.checked_add(size)?)?;
                number_value(*type_id, b)
            }
            GgufArray::Strings { .. } => self.str_at(i).map(|s| GgufValue::String(s.to_owned())),
            GgufArray::Arrays(items) => items.get(i).cloned().map(GgufValue::Array),
        }
    }

    /// String element `i` (for string arrays).
    pub fn str_at(&self, i: usize) -> Option<&str> {
        match self {
            GgufArray::Strings { data, ends } => {
                let start = if i == 0 { 0 } else { *ends.get(i - 1)? };
                data.get(start..*ends.get(i)?)
            }
            _ => None,
        }
    }

    /// Every string (empty for other arrays).
    pub fn strings(&self) -> impl Iterator<Item = &str> {
        (0..if matches!(self, GgufArray::Strings { .. }) { self.len() } else { 0 }).filter_map(|i| self.str_at(i))
    }

    /// Every element as a value (materialised one at a time).
    pub fn iter(&self) -> impl Iterator<Item = GgufValue> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Bytes held in memory for the elements (for tests of the compact form).
    pub fn heap_bytes(&self) -> usize {
        match self {
            GgufArray::Numbers { bytes, .. } => bytes.capacity(),
            GgufArray::Strings { data, ends } => data.capacity() + ends.capacity() * std::mem::size_of::<usize>(),
            GgufArray::Arrays(items) => {
                items.capacity() * std::mem::size_of::<GgufArray>()
                    + items.iter().map(GgufArray::heap_bytes).sum::<usize>()
            }
        }
    }
}

/// Encoded size of a fixed-size value type (0 for strings and arrays).
fn fixed_size(type_id: u32) -> u64 {
    match type_id {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => 0,
    }
}

/// The value of a fixed-size type from its little-endian bytes.
fn number_value(type_id: u32, b: &[u8]) -> Option<GgufValue> {
    let a2 = |b: &[u8]| <[u8; 2]>::try_from(b).ok();
    let a4 = |b: &[u8]| <[u8; 4]>::try_from(b).ok();
    let a8 = |b: &[u8]| <[u8; 8]>::try_from(b).ok();
    Some(match type_id {
        0 => GgufValue::U8(*b.first()?),
        1 => GgufValue::I8(*b.first()? as i8),
        2 => GgufValue::U16(u16::from_le_bytes(a2(b)?)),
        3 => GgufValue::I16(i16::from_le_bytes(a2(b)?)),
        4 => GgufValue::U32(u32::from_le_bytes(a4(b)?)),
        5 => GgufValue::I32(i32::from_le_bytes(a4(b)?)),
        6 => GgufValue::F32(f32::from_le_bytes(a4(b)?)),
        7 => GgufValue::Bool(*b.first()? != 0),
        10 => GgufValue::U64(u64::from_le_bytes(a8(b)?)),
        11 => GgufValue::I64(i64::from_le_bytes(a8(b)?)),
        12 => GgufValue::F64(f64::from_le_bytes(a8(b)?)),
        _ => return None,
    })
}

impl GgufValue {
    /// The GGUF type name (`UINT32`, `STRING`, `ARRAY`, ...).
    pub fn type_name(&self) -> &'static str {
        type_name(self.type_id())
    }

    /// The GGUF type id (0 `UINT8` … 12 `FLOAT64`; 9 for arrays).
    pub fn type_id(&self) -> u32 {
        match self {
            GgufValue::U8(_) => 0,
            GgufValue::I8(_) => 1,
            GgufValue::U16(_) => 2,
            GgufValue::I16(_) => 3,
            GgufValue::U32(_) => 4,
            GgufValue::I32(_) => 5,
            GgufValue::F32(_) => 6,
            GgufValue::Bool(_) => 7,
            GgufValue::String(_) => 8,
            GgufValue::Array(..) => 9,
            GgufValue::U64(_) => 10,
            GgufValue::I64(_) => 11,
            GgufValue::F64(_) => 12,
        }
    }

    /// The value as an unsigned integer, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            GgufValue::I8(v) => Some(v.into()),
            GgufValue::I16(v) => Some(v.into()),
            GgufValue::I32(v) => Some(v.into()),
            GgufValue::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// The value as a string slice, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an array, if it is one.
    pub fn as_array(&self) -> Option<&GgufArray> {
        match self {
            GgufValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// JSON for display: arrays longer than `max_items` become
    /// `{"type": "ARRAY", "element_type": ..., "len": N, "head": [first items]}`.
    pub fn to_json(&self, max_items: usize) -> serde_json::Value {
        match self {
            GgufValue::U8(v) => json!(v),
            GgufValue::I8(v) => json!(v),
            GgufValue::U16(v) => json!(v),
            GgufValue::I16(v) => json!(v),
            GgufValue::U32(v) => json!(v),
            GgufValue::I32(v) => json!(v),
            GgufValue::F32(v) => json!(v),
            GgufValue::Bool(v) => json!(v),
            GgufValue::String(v) => json!(v),
            GgufValue::U64(v) => json!(v),
            GgufValue::I64(v) => json!(v),
            GgufValue::F64(v) => json!(v),
            GgufValue::Array(a) if a.len() > max_items => json!({
                "type": "ARRAY",
                "element_type": type_name(a.element_type()),
                "len": a.len(),
                "head": a.iter().take(8).map(|v| v.to_json(max_items)).collect::<Vec<_>>(),
            }),
            GgufValue::Array(a) => a.iter().map(|v| v.to_json(max_items)).collect(),
        }
    }
}

fn type_name(id: u32) -> &'static str {
    match id {
        0 => "UINT8",
        1 => "INT8",
        2 => "UINT16",
        3 => "INT16",
        4 => "UINT32",
        5 => "INT32",
        6 => "FLOAT32",
        7 => "BOOL",
        8 => "STRING",
        9 => "ARRAY",
        10 => "UINT64",
        11 => "INT64",
        12 => "FLOAT64",
        _ => "UNKNOWN",
    }
}

/// Smallest encoded size of a value of a type, used to bound counts by the bytes left.
fn min_size(type_id: u32) -> u64 {
    match type_id {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 => 8,     // length prefix
        9 => 4 + 8, // element type and count
        _ => 8,
    }
}

/// A parsed GGUF header.
#[derive(Clone, Debug)]
pub struct GgufHeader {
    /// Format version (2 or 3).
    pub version: u32,
    /// Data alignment in bytes.
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_start: u64,
    /// Key-values in file order.
    pub metadata: Vec<(String, GgufValue)>,
    /// Tensors in file order, with absolute offsets and validated ranges.
    pub tensors: Vec<RawTensor>,
}

impl GgufHeader {
    /// The value of a metadata key.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// A bounds-checked little-endian reader over the header bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(CheckpointError::Truncated {
                path: self.path.to_owned(),
                what: what(),
                expected: self.pos as u64 + n,
                found: self.bytes.len() as u64,
            });
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn invalid(&self, message: String) -> CheckpointError {
        CheckpointError::InvalidHeader {
            path: self.path.to_owned(),
            message: format!("{message} (at byte {})", self.pos),
        }
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let len = self.u64(what)?;
        if len > self.remaining() {
            return Err(self.invalid(format!(
                "{} claims a string of {len} bytes but only {} bytes remain",
                what(),
                self.remaining()
            )));
        }
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.invalid(format!("{} is not UTF-8", what())))
    }

    /// An array, kept compact ([`GgufArray`]): numbers as their bytes, strings in one buffer.
    fn array_value(&mut self, depth: usize, key: &str) -> Result<GgufArray> {
        let what = || format!("the value of {key:?}");
        if depth >= MAX_ARRAY_DEPTH {
            return Err(self.invalid(format!("{key:?}: arrays nested deeper than {MAX_ARRAY_DEPTH}")));
        }
        let elem = self.u32(&what)?;
        if elem > 12 {
            return Err(self.invalid(format!("{key:?}: unknown array element type {elem}")));
        }
        let count = self.u64(&what)?;
        let fits = self.remaining() / min_size(elem);
        if count > fits {
            return Err(self.invalid(format!(
                "{key:?}: array claims {count} elements of {} but only {} bytes remain",
                type_name(elem),
                self.remaining()
            )));
        }
        Ok(match elem {
            8 => {
                // Each string takes at least its 8-byte length: `count` is bounded by the file.
                let mut data = String::new();
                let mut ends = Vec::with_capacity(count as usize);
                for i in 0..count {
                    data.push_str(&self.string(&|| format!("string #{i} of {key:?}"))?);
                    ends.push(data.len());
                }
                data.shrink_to_fit();
                GgufArray::Strings { data, ends }
            }
            9 => {
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.array_value(depth + 1, key)?);
                }
                GgufArray::Arrays(items)
            }
            number => {
                let bytes = self.take(count * fixed_size(number), &what)?.to_vec();
                if number == 7
                    && let Some(bad) = bytes.iter().find(|&&b| b > 1)
                {
                    return Err(self.invalid(format!("{key:?}: bool value {bad} is neither 0 nor 1")));
                }
                GgufArray::Numbers { type_id: number, bytes }
            }
        })
    }

    fn value(&mut self, type_id: u32, depth: usize, key: &str) -> Result<GgufValue> {
        let what = || format!("the value of {key:?}");
        Ok(match type_id {
            0 => GgufValue::U8(self.array::<1>(&what)?[0]),
            1 => GgufValue::I8(self.array::<1>(&what)?[0] as i8),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(&what)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(&what)?)),
            4 => GgufValue::U32(self.u32(&what)?),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(&what)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(&what)?)),
            7 => match self.array::<1>(&what)?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                other => return Err(self.invalid(format!("{key:?}: bool value {other} is neither 0 nor 1"))),
            },
            8 => GgufValue::String(self.string(&what)?),
            9 => GgufValue::Array(self.array_value(depth, key)?),
            10 => GgufValue::U64(self.u64(&what)?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(&what)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(&what)?)),
            other => return Err(self.invalid(format!("{key:?}: unknown value type {other}"))),
        })
    }
}

/// Whether the file starts with the GGUF magic.
pub fn is_gguf(file: &MappedFile) -> bool {
    file.bytes().starts_with(MAGIC)
}

/// Reads and validates the header of a GGUF file.
pub fn read_header(file: &MappedFile) -> Result<GgufHeader> {
    let path = file.path();
    let bytes = file.bytes();
    if bytes.is_empty() {
        return Err(CheckpointError::Empty { path: path.to_owned() });
    }
    let mut c = Cursor { bytes, pos: 0, path };
    let magic = c.array::<4>(&|| "the 4-byte GGUF magic".into())?;
    if &magic != MAGIC {
        return Err(CheckpointError::InvalidHeader {
            path: path.to_owned(),
            message: format!("wrong magic {magic:02x?}: a GGUF file starts with \"GGUF\""),
        });
    }
    let version = c.u32(&|| "the version".into())?;
    match version {
        2 | 3 => {}
        1 => return Err(c.invalid("GGUF version 1 is obsolete and not supported (versions 2 and 3 are)".into())),
        v if v.swap_bytes() <= 3 => {
            return Err(c.invalid("big-endian GGUF files are not supported".into()));
        }
        v => return Err(c.invalid(format!("unsupported GGUF version {v} (versions 2 and 3 are supported)"))),
    }
    let tensor_count = c.u64(&|| "the tensor count".into())?;
    let kv_count = c.u64(&|| "the metadata count".into())?;
    // Each key-value takes at least 13 bytes and each tensor info at least 24: a count that
    // cannot fit in the file is refused before anything is allocated.
    if kv_count > c.remaining() / 13 {
        return Err(c.invalid(format!("{kv_count} metadata entries cannot fit in {} bytes", c.remaining())));
    }
    if tensor_count > c.remaining() / 24 {
        return Err(c.invalid(format!("{tensor_count} tensors cannot fit in {} bytes", c.remaining())));
    }

    let mut metadata = Vec::with_capacity(kv_count as usize);
    let mut keys = HashSet::new();
    for i in 0..kv_count {
        let key = c.string(&|| format!("metadata key #{i}"))?;
        let type_id = c.u32(&|| format!("the type of {key:?}"))?;
        let value = c.value(type_id, 0, &key)?;
        if !keys.insert(key.clone()) {
            return Err(c.invalid(format!("metadata key {key:?} appears twice")));
        }
        metadata.push((key, value));
    }
    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, GgufValue::U32(a))) if a.is_power_of_two() => u64::from(*a),
        Some((_, v)) => return Err(c.invalid(format!("general.alignment {v:?} is not a power-of-two UINT32"))),
    };

    struct Info {
        name: String,
        dtype: DType,
        shape: Vec<u64>,
        relative: u64,
        bytes: u64,
    }
    let mut infos = Vec::with_capacity(tensor_count as usize);
    let mut names = HashSet::new();
    for i in 0..tensor_count {
        let name = c.string(&|| format!("the name of tensor #{i}"))?;
        let what = || format!("tensor {name:?}");
        let tensor_err =
            |message: String| CheckpointError::InvalidTensor { path: path.to_owned(), tensor: name.clone(), message };
        let n_dims = c.u32(&what)?;
        if n_dims > MAX_DIMS {
            return Err(tensor_err(format!("{n_dims} dimensions; ggml tensors have at most {MAX_DIMS}")));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            ne.push(c.u64(&what)?);
        }
        let type_id = c.u32(&what)?;
        let relative = c.u64(&what)?;
        let Some(dtype) = DType::from_ggml_id(type_id) else {
            return Err(CheckpointError::UnknownDtype {
                path: path.to_owned(),
                tensor: name,
                dtype: format!("GGML type {type_id}"),
            });
        };
        if ne.first().is_some_and(|&n0| n0 % dtype.block_elems() as u64 != 0) {
            return Err(tensor_err(format!(
                "rows of {} values are not whole {dtype} blocks of {}",
                ne[0],
                dtype.block_elems()
            )));
        }
        let elems = ne.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let Some(bytes) = elems.and_then(|n| dtype.byte_len(n)) else {
            return Err(tensor_err(format!("shape {ne:?} (ggml order) of {dtype} overflows a 64-bit byte count")));
        };
        if relative % alignment != 0 {
            return Err(tensor_err(format!("data offset {relative} is not a multiple of the alignment {alignment}")));
        }
        if !names.insert(name.clone()) {
            return Err(CheckpointError::DuplicateTensor {
                path: path.to_owned(),
                tensor: name,
                where_: "the GGUF header lists it twice".into(),
            });
        }
        ne.reverse();
        infos.push(Info { name, dtype, shape: ne, relative, bytes });
    }

    let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
    let file_len = bytes.len() as u64;
    let mut ranges: Vec<(u64, u64, usize)> = Vec::with_capacity(infos.len());
    for (i, t) in infos.iter().enumerate() {
        let end = data_start.checked_add(t.relative).and_then(|s| s.checked_add(t.bytes));
        match end {
            Some(end) if end <= file_len => ranges.push((t.relative, t.relative + t.bytes, i)),
            _ => {
                return Err(CheckpointError::Truncated {
                    path: path.to_owned(),
                    what: format!("the data of tensor {:?} ({} bytes at data offset {})", t.name, t.bytes, t.relative),
                    expected: end.unwrap_or(u64::MAX),
                    found: file_len,
                });
            }
        }
    }
    // Empty tensors occupy no bytes and overlap nothing; every other range must start at or
    // after the furthest end so far (comparing neighbours only would miss an overlap with an
    // empty range sorted between the two).
    ranges.retain(|r| r.0 != r.1);
    ranges.sort_unstable();
    let mut furthest: Option<(u64, usize)> = None;
    for &(start, end, i) in &ranges {
        if let Some((reach, j)) = furthest
            && start < reach
        {
            return Err(CheckpointError::InvalidTensor {
                path: path.to_owned(),
                tensor: infos[i].name.clone(),
                message: format!("data range [{start}, {end}) overlaps tensor {:?}", infos[j].name),
            });
        }
        if furthest.is_none_or(|(reach, _)| end > reach) {
            furthest = Some((end, i));
        }
    }
    let tensors = infos
        .into_iter()
        .map(|t| RawTensor {
            name: t.name,
            dtype: t.dtype,
            shape: t.shape,
            offset: data_start + t.relative,
            bytes: t.bytes,
        })
        .collect();
    Ok(GgufHeader { version, alignment, data_start, metadata, tensors })
}
