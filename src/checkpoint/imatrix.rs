//! llama.cpp importance matrices (`llama-imatrix` output): per input channel, the mean squared
//! activation of each weight's input over calibration text. Two formats are read:
//! - GGUF (current): tensors `<name>.in_sum2` (sums of squared activations) and `<name>.counts`;
//!   the importance is `in_sum2 / counts`;
//! - legacy `.dat`: `i32 n`, then per entry `i32 name_len, name, i32 ncall, i32 nval,
//!   f32[nval]` (already averaged), optionally followed by the call count and dataset name.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::gguf;
use super::{Checkpoint, CheckpointError, MappedFile};

/// Importance vectors by weight name (GGUF names, e.g. `blk.0.attn_q.weight`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Imatrix {
    /// Vectors by weight name.
    pub vectors: BTreeMap<String, Vec<f32>>,
    /// File name, for display.
    pub source: String,
    /// Per weight, the second moment of its inputs (GPTQ's Hessian), when computed by the
    /// runtime from calibration text (files carry only the diagonal).
    pub hessians: BTreeMap<String, Arc<Hessian>>,
}

/// The second moment of a linear layer's inputs over calibration tokens, `E[x xᵀ]` (`n × n`,
/// row-major): GPTQ's Hessian `2·X·Xᵀ` up to a factor, which GPTQ's damping is relative to.
#[derive(Clone, Debug, PartialEq)]
pub struct Hessian {
    /// Input channels.
    pub n: usize,
    /// `n × n` values, row-major.
    pub values: Vec<f32>,
    /// Tokens it averages.
    pub tokens: u64,
}

/// Sums of squares and counts are finite and not negative: NaN here would turn every weighted
/// error and search into NaN far from the file that caused it.
fn check_values(path: &Path, name: &str, values: &[f32]) -> Result<(), CheckpointError> {
    match values.iter().position(|v| !v.is_finite() || *v < 0.0) {
        Some(i) => Err(invalid(
            path,
            format!("{name}: value {i} is {} (sums of squares and counts are finite and not negative)", values[i]),
        )),
        None => Ok(()),
    }
}

fn invalid(path: &Path, message: String) -> CheckpointError {
    CheckpointError::InvalidHeader { path: path.to_owned(), message }
}

/// Reads an imatrix file in either format.
pub fn read_imatrix(path: &Path) -> Result<Imatrix, CheckpointError> {
    parse_imatrix(MappedFile::open(path)?)
}

/// Reads an imatrix file, mapped or held in memory, in either format.
pub fn parse_imatrix(file: MappedFile) -> Result<Imatrix, CheckpointError> {
    let path = &file.path().to_owned();
    let source = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if file.bytes().len() < 4 {
        let at = if file.is_empty() { "the entry count" } else { "its first four bytes" };
        return Err(invalid(path, format!("truncated at {at}")));
    }
    if gguf::is_gguf(&file) {
        let ckpt = Checkpoint::from_file(file)?;
        let mut vectors = BTreeMap::new();
        for t in ckpt.tensors().iter().filter(|t| t.name.ends_with(".in_sum2")) {
            let base = t.name.trim_end_matches(".in_sum2");
            let counts_name = format!("{base}.counts");
            let sums = ckpt.decode_all(t)?;
            let counts = match ckpt.tensor(&counts_name) {
                Some(c) => ckpt.decode_all(c)?,
                None => return Err(invalid(path, format!("{} has no {counts_name}", t.name))),
            };
            // counts hold one value per expert (one for dense weights); sums are laid out per expert.
            if counts.is_empty() || !sums.len().is_multiple_of(counts.len()) {
                return Err(invalid(
                    path,
                    format!(
                        "{}: {} counts cannot split its {} sums into equal matrices",
                        counts_name,
                        counts.len(),
                        sums.len()
                    ),
                ));
            }
            check_values(path, t.name.as_str(), &sums)?;
            check_values(path, &counts_name, &counts)?;
            let per = sums.len() / counts.len();
            let v = sums
                .iter()
                .enumerate()
                .map(|(i, s)| s / counts.get(i / per.max(1)).copied().unwrap_or(1.0).max(1.0))
                .collect();
            vectors.insert(base.to_owned(), v);
        }
        if vectors.is_empty() {
            return Err(invalid(path, "no *.in_sum2 tensors: not an imatrix".into()));
        }
        return Ok(Imatrix { vectors, source, hessians: BTreeMap::new() });
    }
    let bytes = file.bytes();
    let read_i32 = |at: usize, what: &str| -> Result<i32, CheckpointError> {
        let b = bytes.get(at..at + 4).ok_or_else(|| invalid(path, format!("truncated at {what}")))?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let n = read_i32(0, "the entry count")?;
    if n < 0 || n as usize > bytes.len() / 12 {
        return Err(invalid(path, format!("{n} entries cannot fit in {} bytes", bytes.len())));
    }
    let mut vectors = BTreeMap::new();
    let mut offset = 4usize;
    for i in 0..n {
        let entry = format!("entry {i}");
        let len = read_i32(offset, &entry)?;
        if len < 0 || offset + 4 + len as usize > bytes.len() {
            return Err(invalid(path, format!("entry {i}: name length {len} is out of range")));
        }
        let name = String::from_utf8(bytes[offset + 4..offset + 4 + len as usize].to_vec())
            .map_err(|_| invalid(path, format!("entry {i}: the name is not UTF-8")))?;
        offset += 4 + len as usize;
        let nval = read_i32(offset + 4, &entry)?; // after the call count

        offset += 8;
        if nval < 0 || offset + 4 * nval as usize > bytes.len() {
            return Err(invalid(path, format!("entry {name:?}: {nval} values are out of range")));
        }
        let v: Vec<f32> = bytes[offset..offset + 4 * nval as usize]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        offset += 4 * nval as usize;
        check_values(path, &name, &v)?;
        vectors.insert(name, v);
    }
    Ok(Imatrix { vectors, source, hessians: BTreeMap::new() })
}

impl Imatrix {
    /// A fingerprint of the contents (every vector, and the Hessians' names and token counts), for
    /// caches: a file's name or a calibration's label would not notice changed values.
    pub fn fingerprint(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for (name, v) in &self.vectors {
            name.hash(&mut h);
            v.iter().for_each(|x| x.to_bits().hash(&mut h));
        }
        for (name, hess) in &self.hessians {
            (name, hess.n, hess.tokens).hash(&mut h);
        }
        format!("imatrix {:016x} ({} vectors, {} Hessians)", h.finish(), self.vectors.len(), self.hessians.len())
    }

    /// The importance vector of a checkpoint tensor: by its own name, or by the GGUF name that
    /// maps to it (for transformers-named checkpoints); `arch` is the GGUF architecture key
    /// ([`super::ModelConfig::architecture`]).
    pub fn for_tensor(&self, name: &str, arch: &str) -> Option<&[f32]> {
        if let Some(v) = self.vectors.get(name) {
            return Some(v);
        }
        let gguf = super::hf_names::gguf_name(name, arch)?;
        self.vectors.get(&gguf).map(Vec::as_slice)
    }

    /// The Hessian of a checkpoint tensor's inputs, looked up as [`Imatrix::for_tensor`] does.
    pub fn hessian_for(&self, name: &str, arch: &str) -> Option<&Arc<Hessian>> {
        if let Some(h) = self.hessians.get(name) {
            return Some(h);
        }
        self.hessians.get(&super::hf_names::gguf_name(name, arch)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_dat_round_trip() {
        let dir = std::env::temp_dir().join(format!("wb-imatrix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("imatrix.dat");
        let mut b = 2i32.to_le_bytes().to_vec();
        for (name, vals) in [("blk.0.attn_q.weight", vec![1.0f32, 2.0]), ("blk.0.ffn_down.weight", vec![0.5])] {
            b.extend((name.len() as i32).to_le_bytes());
            b.extend(name.as_bytes());
            b.extend(10i32.to_le_bytes());
            b.extend((vals.len() as i32).to_le_bytes());
            vals.iter().for_each(|v| b.extend(v.to_le_bytes()));
        }
        b.extend(10i32.to_le_bytes()); // trailing last_call
        std::fs::write(&path, &b).unwrap();
        let m = read_imatrix(&path).unwrap();
        assert_eq!(m.vectors["blk.0.attn_q.weight"], [1.0, 2.0]);
        assert_eq!(m.for_tensor("model.layers.0.self_attn.q_proj.weight", "llama"), Some(&[1.0f32, 2.0][..]));
        std::fs::write(&path, &b[..20]).unwrap();
        assert!(read_imatrix(&path).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
