//! `weightbench info`: the tensor table of a checkpoint. Reads headers only; starts no device.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::checkpoint::{Checkpoint, Role, TensorInfo};
use crate::format;

/// Arguments of `weightbench info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Checkpoint: a .safetensors file, a *.safetensors.index.json, or a folder holding either.
    pub path: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `info --json`: one object describing the checkpoint and every tensor.
#[derive(Debug, Serialize)]
pub struct InfoJson {
    /// Container format.
    pub format: &'static str,
    /// Path as opened.
    pub path: String,
    /// Data files, in the order `tensors[].file` refers to.
    pub files: Vec<String>,
    /// Architecture from config.json, or guessed from names.
    pub architecture: Option<String>,
    /// The typed model configuration (sizes, heads, RoPE, norms, vocabulary), from config.json
    /// or GGUF metadata.
    pub model: Option<crate::checkpoint::ModelConfig>,
    /// Sum of all tensors' element counts.
    pub total_params: u64,
    /// Sum of all tensors' byte sizes.
    pub total_bytes: u64,
    /// File-level metadata (`__metadata__`, index metadata, GGUF key-values).
    pub metadata: std::collections::BTreeMap<String, serde_json::Value>,
    /// Oddities that did not stop the checkpoint from opening.
    pub warnings: Vec<String>,
    /// Every tensor.
    pub tensors: Vec<TensorJson>,
}

/// One tensor in `info --json`.
#[derive(Debug, Serialize)]
pub struct TensorJson {
    /// Name as stored.
    pub name: String,
    /// dtype name (safetensors names).
    pub dtype: String,
    /// Shape.
    pub shape: Vec<u64>,
    /// Path of the file holding it.
    pub file: String,
    /// Absolute byte offset in that file.
    pub offset: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Block index, or null.
    pub layer: Option<u32>,
    /// Normalised role.
    pub role: Role,
}

impl InfoJson {
    /// Builds the description of an opened checkpoint.
    pub fn new(ckpt: &Checkpoint) -> Self {
        let tensor = |t: &TensorInfo| TensorJson {
            name: t.name.clone(),
            dtype: t.dtype.name().to_owned(),
            shape: t.shape.clone(),
            file: ckpt.file_path(t).display().to_string(),
            offset: t.offset,
            bytes: t.bytes,
            layer: t.layer,
            role: t.role,
        };
        Self {
            format: ckpt.format().as_str(),
            path: ckpt.path().display().to_string(),
            files: ckpt.files().iter().map(|f| f.path().display().to_string()).collect(),
            architecture: ckpt.architecture().map(str::to_owned),
            model: ckpt.model_config().cloned(),
            total_params: ckpt.total_params(),
            total_bytes: ckpt.total_bytes(),
            metadata: ckpt.metadata().clone(),
            warnings: ckpt.warnings().to_vec(),
            tensors: ckpt.tensors().iter().map(tensor).collect(),
        }
    }
}

pub(super) fn run(args: &InfoArgs, out: &mut dyn Write) -> Result<()> {
    let ckpt = super::open(&args.path)?;
    if args.json {
        return super::write_json(out, &InfoJson::new(&ckpt));
    }
    writeln!(out, "checkpoint    {}", ckpt.path().display())?;
    writeln!(out, "format        {} ({} file(s))", ckpt.format().as_str(), ckpt.files().len())?;
    writeln!(out, "architecture  {}", ckpt.architecture().unwrap_or("unknown"))?;
    writeln!(
        out,
        "tensors       {} tensors, {} parameters, {}",
        ckpt.tensors().len(),
        format::count(ckpt.total_params()),
        format::bytes(ckpt.total_bytes())
    )?;
    for w in ckpt.warnings() {
        writeln!(out, "warning       {w}")?;
    }
    writeln!(out)?;
    let name_width = ckpt.tensors().iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
    let multi = ckpt.files().len() > 1;
    writeln!(
        out,
        "{:<name_width$}  {:<7}  {:<18}  {:>10}  {:>5}  {:<9}{}",
        "NAME",
        "DTYPE",
        "SHAPE",
        "SIZE",
        "LAYER",
        "ROLE",
        if multi { "  FILE" } else { "" }
    )?;
    for t in ckpt.tensors() {
        let file = if multi {
            let name = ckpt.file_path(t).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            format!("  {name}")
        } else {
            String::new()
        };
        writeln!(
            out,
            "{:<name_width$}  {:<7}  {:<18}  {:>10}  {:>5}  {:<9}{file}",
            t.name,
            t.dtype.name(),
            t.shape_string(),
            format::bytes(t.bytes),
            t.layer.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
            t.role.as_str(),
        )?;
    }
    Ok(())
}
