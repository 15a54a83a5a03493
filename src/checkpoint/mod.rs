//! Opening model files: safetensors (single file, sharded with an index, or a folder holding
//! either), their tensor tables, and streamed decoding of tensor bytes through the memory map.
//!
//! A [`Checkpoint`] is cheap to open whatever the model's size: only headers are read. Tensor
//! bytes are touched when a caller decodes them, a chunk at a time.

mod config;
pub mod error;
pub mod gguf;
mod gguf_files;
pub mod hf_names;
pub mod hf_tokenizer;
pub mod imatrix;
pub mod json;
mod mmap;
pub mod model_config;
pub mod names;
pub mod safetensors;
pub mod sentencepiece;
pub mod sharded;

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use error::{CheckpointError, Result};
pub use gguf::GgufArray;
pub use gguf::GgufValue;
pub use mmap::MappedFile;
pub use model_config::{ModelConfig, NormKind, RopeScaling};
pub use names::{Role, classify};

use crate::codec::{self, DType};

/// The container format of a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Hugging Face safetensors.
    Safetensors,
    /// llama.cpp GGUF.
    Gguf,
}

impl Format {
    /// Lower-case name, as in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::Gguf => "gguf",
        }
    }
}

/// One tensor of a checkpoint: where its bytes are and what they mean.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    /// Name as stored.
    pub name: String,
    /// Element type as stored.
    pub dtype: DType,
    /// Shape, outermost dimension first (empty for a scalar).
    pub shape: Vec<u64>,
    /// Index into [`Checkpoint::files`].
    pub file: usize,
    /// Absolute byte offset of the tensor's first byte in its file.
    pub offset: u64,
    /// Length in bytes.
    pub bytes: u64,
    /// Index of the repeated block this tensor belongs to, if any.
    pub layer: Option<u32>,
    /// Normalised module role.
    pub role: Role,
}

impl TensorInfo {
    /// Number of elements, or `None` when the shape's product overflows 64 bits (never for a
    /// tensor of an opened checkpoint: opening refuses such shapes).
    pub fn checked_numel(&self) -> Option<u64> {
        codec::numel(&self.shape)
    }

    /// Number of elements (saturating at `u64::MAX` for a shape too large to count, which
    /// opening refuses; see [`TensorInfo::checked_numel`]).
    pub fn numel(&self) -> u64 {
        self.checked_numel().unwrap_or(u64::MAX)
    }

    /// Sort key of reading order: embeddings, then blocks in order (roles in block order), then
    /// the head.
    pub fn reading_order(&self) -> (u8, u32, usize) {
        names::reading_order(&self.name, self.layer, self.role)
    }

    /// Shape as `[a, b, c]`.
    pub fn shape_string(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(u64::to_string).collect();
        format!("[{}]", dims.join(", "))
    }
}

/// An opened checkpoint: its files (memory-mapped) and its tensor table.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    format: Format,
    files: Vec<MappedFile>,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
    architecture: Option<String>,
    config: Option<serde_json::Value>,
    model: Option<ModelConfig>,
    metadata: BTreeMap<String, serde_json::Value>,
    gguf: Option<GgufInfo>,
    warnings: Vec<String>,
    /// Tensors of at least this many bytes give their pages back as they are read.
    release_from: u64,
}

/// What a GGUF file says beyond its tensors.
#[derive(Clone, Debug)]
pub struct GgufInfo {
    /// Format version.
    pub version: u32,
    /// Data alignment.
    pub alignment: u64,
    /// Every key-value, in file order, complete (arrays are not summarised).
    pub metadata: Vec<(String, GgufValue)>,
}

impl GgufInfo {
    /// The value of a metadata key.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// The tensors of one or more files before they become a [`Checkpoint`].
pub(crate) struct Loaded {
    pub files: Vec<MappedFile>,
    pub tensors: Vec<(usize, safetensors::RawTensor)>,
    pub metadata: BTreeMap<String, serde_json::Value>,
    pub warnings: Vec<String>,
    pub format: Format,
    pub gguf: Option<GgufInfo>,
}

/// Arrays longer than this are summarised in [`Checkpoint::metadata`].
pub const METADATA_ARRAY_ITEMS: usize = 64;

/// Tensors of at least this many bytes give their pages back after each decoded chunk
/// ([`MappedFile::release`]); smaller ones stay resident for the views that read them again.
pub const RELEASE_TENSORS_FROM: u64 = 64 << 20;

/// Stored bytes read in place (bit-pattern counting, an export's read-back) between two page
/// releases: a large tensor never has more than this resident at once.
pub const RELEASE_WINDOW: usize = 64 << 20;

/// Default number of elements decoded per chunk when streaming a tensor (4 MiB of f32).
pub const DEFAULT_CHUNK_ELEMS: u64 = 1 << 20;

impl Checkpoint {
    /// Opens a `.safetensors` file, a `*.safetensors.index.json` with its shards, a `.gguf` file
    /// (with its siblings when it is split), or a folder holding one of these (Hugging Face
    /// layout; `config.json` there is read for the architecture).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| CheckpointError::io(path, e))?;
        let (loaded, folder) = if meta.is_dir() {
            (open_folder(path)?, path.to_owned())
        } else {
            let folder = path.parent().map(Path::to_owned).unwrap_or_default();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let loaded = if name.ends_with(".index.json") {
                sharded::open_index(path)?
            } else if name.ends_with(".gguf") || looks_like_gguf(path) {
                gguf_files::open(path)?
            } else {
                open_single(path)?
            };
            (loaded, folder)
        };
        let config = match loaded.format {
            Format::Safetensors => config::read(&folder)?,
            // A GGUF file carries its own configuration in its metadata.
            Format::Gguf => None,
        };
        Ok(Self::assemble(path, loaded, config))
    }

    /// A checkpoint known only from its tensor table, as a report (`analyze -o`) carries it: it
    /// lists, describes and classifies its tensors, and reading one says that the weights are
    /// not here. `origin` names where the table came from (the report's path).
    pub fn without_weights(
        origin: &Path,
        format: Format,
        tensors: Vec<(usize, safetensors::RawTensor)>,
        metadata: BTreeMap<String, serde_json::Value>,
        config: Option<serde_json::Value>,
    ) -> Self {
        let loaded = Loaded { files: Vec::new(), tensors, metadata, warnings: Vec::new(), format, gguf: None };
        Self::assemble(origin, loaded, config)
    }

    /// Whether the checkpoint has its weights (not one read from a report).
    pub fn has_weights(&self) -> bool {
        !self.files.is_empty()
    }

    /// One file, read or mapped already: GGUF or safetensors by its first bytes, on its own (no
    /// split parts, no `config.json`). For files that are not on disk (fuzzing, in-memory tests)
    /// and formats that live in one file (imatrix).
    pub fn from_file(file: MappedFile) -> Result<Self> {
        let path = file.path().to_owned();
        let loaded = if gguf::is_gguf(&file) { gguf_files::from_file(file)? } else { single(file)? };
        Ok(Self::assemble(&path, loaded, None))
    }

    fn assemble(path: &Path, loaded: Loaded, config: Option<serde_json::Value>) -> Self {
        let mut tensors: Vec<TensorInfo> = loaded
            .tensors
            .into_iter()
            .map(|(file, t)| {
                let (layer, role) = classify(&t.name);
                TensorInfo {
                    name: t.name,
                    dtype: t.dtype,
                    shape: t.shape,
                    file,
                    offset: t.offset,
                    bytes: t.bytes,
                    layer,
                    role,
                }
            })
            .collect();
        tensors.sort_by(|a, b| (a.reading_order(), &a.name).cmp(&(b.reading_order(), &b.name)));
        let by_name: HashMap<String, usize> = tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        let from_gguf = loaded
            .gguf
            .as_ref()
            .and_then(|g| g.get("general.architecture"))
            .and_then(GgufValue::as_str)
            .map(str::to_owned);
        let architecture = from_gguf.or_else(|| config::architecture(config.as_ref(), &names));
        let model = match &loaded.gguf {
            Some(g) => {
                let embedding_rows = by_name.get("token_embd.weight").and_then(|&i| tensors[i].shape.first().copied());
                ModelConfig::from_gguf(g, by_name.contains_key("output.weight"), embedding_rows)
            }
            None => config.as_ref().and_then(ModelConfig::from_hf_json),
        };
        Self {
            path: path.to_owned(),
            format: loaded.format,
            files: loaded.files,
            tensors,
            by_name,
            architecture,
            config,
            model,
            metadata: loaded.metadata,
            gguf: loaded.gguf,
            warnings: loaded.warnings,
            release_from: RELEASE_TENSORS_FROM,
        }
    }

    /// Keeps only the tensors `keep` accepts (for work on part of a model, such as exporting a
    /// few tensors of a 400B checkpoint); returns how many remain.
    pub fn retain_tensors(&mut self, keep: impl Fn(&TensorInfo) -> bool) -> usize {
        self.tensors.retain(|t| keep(t));
        self.by_name = self.tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        self.tensors.len()
    }

    /// The path this checkpoint was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The container format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The first of its files that changed on disk since it was opened, and how (see
    /// [`MappedFile::change_on_disk`]).
    pub fn change_on_disk(&self) -> Option<(PathBuf, String)> {
        self.files.iter().find_map(|f| f.change_on_disk().map(|why| (f.path().to_owned(), why)))
    }

    /// The files holding tensor data, in the order [`TensorInfo::file`] indexes.
    pub fn files(&self) -> &[MappedFile] {
        &self.files
    }

    /// All tensors, in reading order (see [`TensorInfo::reading_order`]).
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor named `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The index (in [`Checkpoint::tensors`]) of the tensor named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The tensor named `name`, or an error naming the checkpoint.
    pub fn require(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor(name)
            .ok_or_else(|| CheckpointError::NoSuchTensor { path: self.path.clone(), tensor: name.to_owned() })
    }

    /// The model architecture from `config.json` (`architectures[0]` or `model_type`), or guessed
    /// from tensor names.
    pub fn architecture(&self) -> Option<&str> {
        self.architecture.as_deref()
    }

    /// The model's configuration, typed, from `config.json` or the GGUF metadata.
    pub fn model_config(&self) -> Option<&ModelConfig> {
        self.model.as_ref()
    }

    /// The parsed `config.json`, when there is one.
    pub fn config(&self) -> Option<&serde_json::Value> {
        self.config.as_ref()
    }

    /// Metadata of the file(s) as JSON: safetensors `__metadata__` (strings), index `metadata`,
    /// or GGUF key-values (arrays longer than [`METADATA_ARRAY_ITEMS`] summarised).
    pub fn metadata(&self) -> &BTreeMap<String, serde_json::Value> {
        &self.metadata
    }

    /// The complete GGUF header information, for GGUF checkpoints.
    pub fn gguf(&self) -> Option<&GgufInfo> {
        self.gguf.as_ref()
    }

    /// Things that were odd but not wrong enough to refuse the checkpoint.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Total number of parameters (elements of all tensors).
    pub fn total_params(&self) -> u64 {
        self.tensors.iter().fold(0u64, |a, t| a.saturating_add(t.numel()))
    }

    /// Total bytes of tensor data.
    pub fn total_bytes(&self) -> u64 {
        self.tensors.iter().fold(0u64, |a, t| a.saturating_add(t.bytes))
    }

    /// The file path of a tensor.
    pub fn file_path(&self, tensor: &TensorInfo) -> &Path {
        self.files.get(tensor.file).map(MappedFile::path).unwrap_or(&self.path)
    }

    /// The stored bytes of a tensor, straight from the memory map (not copied); an error naming
    /// the file and the tensor when its range is not in the file (a tensor of another
    /// checkpoint, or one built by hand).
    pub fn raw_bytes(&self, tensor: &TensorInfo) -> Result<&[u8]> {
        let file = self.files.get(tensor.file);
        let range = usize::try_from(tensor.offset)
            .ok()
            .zip(usize::try_from(tensor.bytes).ok())
            .and_then(|(start, len)| Some(start..start.checked_add(len)?));
        if !self.has_weights() {
            return Err(CheckpointError::Decode {
                path: self.path.clone(),
                tensor: tensor.name.clone(),
                message: "this is a report: the weights are not in it (open the checkpoint itself for this)".into(),
            });
        }
        match (file, range) {
            (Some(f), Some(range)) if range.end <= f.bytes().len() => Ok(&f.bytes()[range]),
            _ => Err(CheckpointError::Decode {
                path: file.map(|f| f.path().to_owned()).unwrap_or_else(|| self.path.clone()),
                tensor: tensor.name.clone(),
                message: format!(
                    "bytes {}..{} of file #{} are not in the checkpoint ({} file(s))",
                    tensor.offset,
                    tensor.offset.saturating_add(tensor.bytes),
                    tensor.file,
                    self.files.len()
                ),
            }),
        }
    }

    /// Element ranges that cover the tensor in order, each at most `chunk_elems` long and cut at
    /// storage-block boundaries so that each can be decoded on its own.
    pub fn chunks(&self, tensor: &TensorInfo, chunk_elems: u64) -> impl Iterator<Item = Range<u64>> + use<> {
        block_ranges(tensor.numel(), tensor.dtype.block_elems() as u64, chunk_elems)
    }

    /// Decodes the elements `range` of `tensor` to f32 into `out` (resized to fit). The range
    /// must start and end on storage-block boundaries (any range does for scalar types).
    pub fn decode_range(&self, tensor: &TensorInfo, range: Range<u64>, out: &mut Vec<f32>) -> Result<()> {
        let fail = |message: String| CheckpointError::Decode {
            path: self.file_path(tensor).to_owned(),
            tensor: tensor.name.clone(),
            message,
        };
        let block_elems = tensor.dtype.block_elems() as u64;
        let block_bytes = tensor.dtype.block_bytes() as u64;
        if range.start > range.end || range.end > tensor.numel() || !range.start.is_multiple_of(block_elems) {
            return Err(fail(format!("element range {range:?} is not within the tensor on block boundaries")));
        }
        let outside = || fail(format!("element range {range:?} is outside the tensor's bytes"));
        let byte_start = (range.start / block_elems).checked_mul(block_bytes).ok_or_else(outside)?;
        let byte_end = range.end.div_ceil(block_elems).checked_mul(block_bytes).ok_or_else(outside)?;
        let all = self.raw_bytes(tensor)?;
        let bytes = usize::try_from(byte_start)
            .ok()
            .zip(usize::try_from(byte_end).ok())
            .and_then(|(a, b)| all.get(a..b))
            .ok_or_else(outside)?;
        out.resize((range.end - range.start) as usize, 0.0);
        codec::decode(tensor.dtype, bytes, out).map_err(|e| fail(e.to_string()))?;
        // Large tensors are streamed once per job: give their pages back as each chunk is done,
        // so that reading a model larger than memory keeps a small resident size.
        self.release_part(tensor, byte_start..byte_start + bytes.len() as u64);
        Ok(())
    }

    /// Makes tensors of `bytes` or more give their pages back as they are read (by default
    /// [`RELEASE_TENSORS_FROM`]; 0 for every tensor, for a command that reads each tensor once).
    pub fn set_release_from(&mut self, bytes: u64) {
        self.release_from = bytes;
    }

    /// Gives a large tensor's pages back to the OS once a job is done with it (see
    /// [`RELEASE_TENSORS_FROM`]): a whole-model pass over a checkpoint larger than memory keeps
    /// a resident size of about one tensor.
    pub fn release(&self, tensor: &TensorInfo) {
        self.release_part(tensor, 0..tensor.bytes);
    }

    /// Gives back the pages of the stored bytes `bytes` (counted from the tensor's start) of a
    /// tensor of [`RELEASE_TENSORS_FROM`] bytes or more (by default); smaller tensors stay resident.
    pub fn release_part(&self, tensor: &TensorInfo, bytes: Range<u64>) {
        if tensor.bytes >= self.release_from
            && bytes.end <= tensor.bytes
            && let (Some(file), Some(start), Some(end)) = (
                self.files.get(tensor.file),
                tensor.offset.checked_add(bytes.start).and_then(|b| usize::try_from(b).ok()),
                tensor.offset.checked_add(bytes.end).and_then(|b| usize::try_from(b).ok()),
            )
        {
            file.release(start..end);
        }
    }

    /// Decodes a whole tensor. Meant for small tensors and tests: analysis streams with
    /// [`Checkpoint::chunks`] and [`Checkpoint::decode_range`] instead.
    pub fn decode_all(&self, tensor: &TensorInfo) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        self.decode_range(tensor, 0..tensor.numel(), &mut out)?;
        Ok(out)
    }
}

/// Element ranges covering `n` elements in order, each at most `chunk` long, cut at multiples of
/// `block` (at least one block each) so that each can be decoded on its own.
pub fn block_ranges(n: u64, block: u64, chunk: u64) -> impl Iterator<Item = Range<u64>> + use<> {
    let block = block.max(1);
    let step = (chunk / block).max(1).saturating_mul(block);
    (0..n.div_ceil(step)).map(move |i| i.saturating_mul(step)..i.saturating_add(1).saturating_mul(step).min(n))
}

/// Opens one safetensors file.
fn open_single(path: &Path) -> Result<Loaded> {
    let file = MappedFile::open(path)?;
    if file.bytes().starts_with(REPORT_MAGIC) {
        return Err(CheckpointError::NotACheckpoint {
            path: path.to_owned(),
            reason: "it is a weightbench report (`analyze -o`): open it in the window (`weightbench PATH`), \
                     or join parts with `merge-reports`"
                .into(),
        });
    }
    single(file)
}

/// The first bytes of a report file (`weightbench analyze -o`), which is not a checkpoint.
pub const REPORT_MAGIC: &[u8; 8] = b"WBREPORT";

/// The checkpoint of one safetensors file.
fn single(file: MappedFile) -> Result<Loaded> {
    let header = safetensors::read_header(&file)?;
    Ok(Loaded {
        tensors: header.tensors.into_iter().map(|t| (0, t)).collect(),
        files: vec![file],
        metadata: header.metadata.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect(),
        warnings: Vec::new(),
        format: Format::Safetensors,
        gguf: None,
    })
}

/// Whether the file at `path` starts with the GGUF magic.
fn looks_like_gguf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == gguf::MAGIC
}

/// Opens a folder: an index if there is one, else `model.safetensors`, else every `.safetensors`.
fn open_folder(dir: &Path) -> Result<Loaded> {
    let mut safetensors_files = Vec::new();
    let mut indexes = Vec::new();
    let mut gguf_paths = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| CheckpointError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| CheckpointError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".safetensors.index.json") {
            indexes.push(entry.path());
        } else if name.ends_with(".safetensors") {
            safetensors_files.push(entry.path());
        } else if name.ends_with(".gguf") {
            gguf_paths.push(entry.path());
        }
    }
    gguf_paths.sort();
    if indexes.is_empty() && safetensors_files.is_empty() && !gguf_paths.is_empty() {
        return gguf_files::open_folder(dir, &gguf_paths);
    }
    indexes.sort();
    safetensors_files.sort();
    let preferred_index = dir.join("model.safetensors.index.json");
    if indexes.contains(&preferred_index) {
        return sharded::open_index(&preferred_index);
    }
    if let [index] = indexes.as_slice() {
        return sharded::open_index(index);
    }
    if indexes.len() > 1 {
        return Err(CheckpointError::NotACheckpoint {
            path: dir.to_owned(),
            reason: format!(
                "{} shard indexes and none is model.safetensors.index.json; open one of them",
                indexes.len()
            ),
        });
    }
    let preferred = dir.join("model.safetensors");
    if safetensors_files.contains(&preferred) {
        return open_single(&preferred);
    }
    match safetensors_files.len() {
        0 => Err(CheckpointError::NotACheckpoint {
            path: dir.to_owned(),
            reason: "the folder holds no .safetensors, .safetensors.index.json or .gguf file".into(),
        }),
        1 => open_single(&safetensors_files[0]),
        _ => sharded::open_files(&safetensors_files),
    }
}
