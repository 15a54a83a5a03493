//! Builders for test checkpoints: valid ones through the official `safetensors` writer, and
//! deliberately broken ones written byte by byte.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};

/// A temporary folder that lives as long as the value.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }
    pub fn path(&self) -> &Path {
        self.0.path()
    }
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// One tensor to write: name, official dtype, shape, raw little-endian bytes.
pub struct Spec {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl Spec {
    pub fn new(name: &str, dtype: Dtype, shape: &[usize], data: Vec<u8>) -> Self {
        Self { name: name.into(), dtype, shape: shape.to_vec(), data }
    }

    /// An F32 tensor with the given values.
    pub fn f32(name: &str, shape: &[usize], values: &[f32]) -> Self {
        Self::new(name, Dtype::F32, shape, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
}

/// Writes a valid safetensors file with the official writer.
pub fn write_safetensors(path: &Path, tensors: &[Spec]) {
    let views: Vec<(String, TensorView<'_>)> =
        tensors.iter().map(|s| (s.name.clone(), TensorView::new(s.dtype, s.shape.clone(), &s.data).unwrap())).collect();
    let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    safetensors::tensor::serialize_to_file(views, Some(metadata), path).unwrap();
}

/// Writes a file from a header text and data bytes, with the length prefix computed.
pub fn write_raw(path: &Path, header: &[u8], data: &[u8]) {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

/// Writes `model.safetensors.index.json` mapping names to shard files.
pub fn write_index(path: &Path, map: &[(&str, &str)]) {
    let weight_map: serde_json::Map<String, serde_json::Value> =
        map.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned()))).collect();
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(path, serde_json::to_vec_pretty(&index).unwrap()).unwrap();
}

/// A small sharded Llama-like checkpoint: 2 layers over 3 shards, with config.json.
pub fn write_sharded_llama(dir: &Path) -> Vec<(&'static str, &'static str)> {
    let map = vec![
        ("model.embed_tokens.weight", "model-00001-of-00003.safetensors"),
        ("model.layers.0.self_attn.q_proj.weight", "model-00001-of-00003.safetensors"),
        ("model.layers.0.mlp.down_proj.weight", "model-00002-of-00003.safetensors"),
        ("model.layers.1.self_attn.q_proj.weight", "model-00002-of-00003.safetensors"),
        ("model.layers.1.input_layernorm.weight", "model-00003-of-00003.safetensors"),
        ("model.norm.weight", "model-00003-of-00003.safetensors"),
        ("lm_head.weight", "model-00003-of-00003.safetensors"),
    ];
    let mut by_shard: std::collections::BTreeMap<&str, Vec<Spec>> = Default::default();
    for (k, (name, shard)) in map.iter().enumerate() {
        let values: Vec<f32> = (0..8).map(|i| (k * 100 + i) as f32).collect();
        by_shard.entry(shard).or_default().push(Spec::f32(name, &[2, 4], &values));
    }
    for (shard, specs) in by_shard {
        write_safetensors(&dir.join(shard), &specs);
    }
    write_index(&dir.join("model.safetensors.index.json"), &map);
    std::fs::write(dir.join("config.json"), r#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama"}"#)
        .unwrap();
    map
}

/// Path of a real test model fetched by scripts/fetch-test-models.sh, or `None` after saying
/// loudly that the test is skipped. With `WEIGHTBENCH_REQUIRE_MODELS=1` (set by CI) a missing
/// model fails the test instead.
pub fn real_model(relative: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("WEIGHTBENCH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("test-models"));
    let path = dir.join(relative);
    if path.exists() {
        return Some(path);
    }
    let required = std::env::var("WEIGHTBENCH_REQUIRE_MODELS").is_ok_and(|v| v == "1");
    assert!(!required, "real test model {} is missing: run scripts/fetch-test-models.sh", path.display());
    eprintln!("\n*** SKIPPED: real test model {} is missing; run scripts/fetch-test-models.sh ***\n", path.display());
    None
}

/// The bundled demo checkpoint.
pub fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo")
}
