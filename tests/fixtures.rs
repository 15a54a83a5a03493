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

/// What a test needs that a machine may lack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// A real model from scripts/fetch-test-models.sh.
    Models,
    /// A GPU adapter (Mesa's lavapipe does: `apt-get install mesa-vulkan-drivers`).
    Gpu,
    /// Root, to mount a small tmpfs (a full disk) or run the binary as another user (a folder
    /// it may not write); CI runs as root.
    Root,
}

impl Missing {
    fn name(self) -> &'static str {
        match self {
            Missing::Models => "models",
            Missing::Gpu => "gpu",
            Missing::Root => "root",
        }
    }
}

/// Skips the calling test because `what` is missing — only where `WEIGHTBENCH_ALLOW_SKIP`
/// names the kind (`models`, `gpu`, or `all`); otherwise the test fails. `WEIGHTBENCH_REQUIRE_GPU=1`
/// and `WEIGHTBENCH_REQUIRE_MODELS=1` (set by CI) forbid the skip even then. An allowed skip is
/// said loudly now and listed again in one summary line when the test binary exits.
pub fn skip(kind: Missing, what: &str) {
    let allowed = std::env::var("WEIGHTBENCH_ALLOW_SKIP")
        .is_ok_and(|v| v.split(',').any(|k| k.trim() == kind.name() || k.trim() == "all"));
    let required = match kind {
        Missing::Gpu => std::env::var("WEIGHTBENCH_REQUIRE_GPU").is_ok_and(|v| v == "1"),
        Missing::Models => std::env::var("WEIGHTBENCH_REQUIRE_MODELS").is_ok_and(|v| v == "1"),
        Missing::Root => false,
    };
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    assert!(
        allowed && !required,
        "{test}: {what}. A test may skip only where WEIGHTBENCH_ALLOW_SKIP={} (or all) allows it{}",
        kind.name(),
        if required { ", and WEIGHTBENCH_REQUIRE_* forbids it here" } else { "" }
    );
    eprintln!("\n*** SKIPPED {test}: {what} ***\n");
    if let Ok(mut skipped) = SKIPPED.lock() {
        skipped.push(format!("{test} ({})", kind.name()));
    }
}

static SKIPPED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The one summary line of every skip of this run, printed as the test binary exits.
#[dtor::dtor(unsafe)]
fn print_skipped() {
    use std::io::Write;
    if let Ok(skipped) = SKIPPED.lock()
        && !skipped.is_empty()
    {
        let line = format!("\n*** {} test(s) SKIPPED: {} ***\n", skipped.len(), skipped.join(", "));
        // Nothing is left to report a failed write to at exit.
        std::io::stderr().write_all(line.as_bytes()).ok();
    }
}

/// Path of a real test model fetched by scripts/fetch-test-models.sh, or `None` when it is
/// missing and [`skip`] allows the test to skip.
pub fn real_model(relative: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("WEIGHTBENCH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("test-models"));
    let path = dir.join(relative);
    if path.exists() {
        return Some(path);
    }
    skip(Missing::Models, &format!("real test model {} is missing: run scripts/fetch-test-models.sh", path.display()));
    None
}

/// The shared GPU backend, or `None` when there is no adapter and [`skip`] allows skipping.
pub fn gpu() -> Option<std::sync::Arc<weightbench::compute::gpu::GpuBackend>> {
    match weightbench::compute::gpu::GpuBackend::shared(true) {
        Ok(g) => Some(g),
        Err(e) => {
            skip(Missing::Gpu, &format!("no GPU adapter: {e}"));
            None
        }
    }
}

/// A committed reference fixture under tests/data (made by scripts/reference/make_fixtures.py).
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// The bundled demo checkpoint.
pub fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo")
}

/// A GGUF file built byte by byte, so tests can also break it on purpose.
pub struct Gguf {
    pub version: u32,
    pub alignment: u64,
    /// (key, value type id, encoded value)
    pub kvs: Vec<(String, u32, Vec<u8>)>,
    /// (name, ggml dims ne[0..], ggml type id, data)
    pub tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
}

pub fn gguf_string(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

impl Gguf {
    pub fn new(arch: &str) -> Self {
        let mut g = Self { version: 3, alignment: 32, kvs: Vec::new(), tensors: Vec::new() };
        g.kv_str("general.architecture", arch);
        g
    }
    pub fn kv_str(&mut self, key: &str, value: &str) -> &mut Self {
        self.kvs.push((key.into(), 8, gguf_string(value)));
        self
    }
    pub fn kv_u32(&mut self, key: &str, value: u32) -> &mut Self {
        self.kvs.push((key.into(), 4, value.to_le_bytes().to_vec()));
        self
    }
    pub fn kv_f32(&mut self, key: &str, value: f32) -> &mut Self {
        self.kvs.push((key.into(), 6, value.to_le_bytes().to_vec()));
        self
    }
    /// An array of strings.
    pub fn kv_strings(&mut self, key: &str, values: &[&str]) -> &mut Self {
        let mut v = 8u32.to_le_bytes().to_vec();
        v.extend_from_slice(&(values.len() as u64).to_le_bytes());
        for s in values {
            v.extend_from_slice(&gguf_string(s));
        }
        self.kvs.push((key.into(), 9, v));
        self
    }
    /// An array of numbers of GGUF type `type_id` (5 i32, 6 f32, ...) from their little-endian bytes.
    pub fn kv_numbers(&mut self, key: &str, type_id: u32, count: usize, bytes: &[u8]) -> &mut Self {
        let mut v = type_id.to_le_bytes().to_vec();
        v.extend_from_slice(&(count as u64).to_le_bytes());
        v.extend_from_slice(bytes);
        self.kvs.push((key.into(), 9, v));
        self
    }
    pub fn kv_bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.kvs.push((key.into(), 7, vec![u8::from(value)]));
        self
    }
    /// A tensor with `shape` given outermost first (as transformers sees it).
    pub fn tensor(&mut self, name: &str, shape: &[u64], ggml_type: u32, data: Vec<u8>) -> &mut Self {
        self.tensors.push((name.into(), shape.iter().rev().copied().collect(), ggml_type, data));
        self
    }
    pub fn f32(&mut self, name: &str, shape: &[u64], values: &[f32]) -> &mut Self {
        self.tensor(name, shape, 0, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// The header up to the end of the tensor infos, and the data section, with tensors placed
    /// at aligned offsets in order.
    pub fn build(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (k, t, v) in &self.kvs {
            out.extend_from_slice(&gguf_string(k));
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(v);
        }
        let mut offset = 0u64;
        let mut offsets = Vec::new();
        for (name, ne, t, data) in &self.tensors {
            out.extend_from_slice(&gguf_string(name));
            out.extend_from_slice(&(ne.len() as u32).to_le_bytes());
            for d in ne {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offsets.push(offset);
            offset = (offset + data.len() as u64).div_ceil(self.alignment) * self.alignment;
        }
        while !(out.len() as u64).is_multiple_of(self.alignment) {
            out.push(0);
        }
        let data_start = out.len();
        for ((_, _, _, data), off) in self.tensors.iter().zip(offsets) {
            out.resize(data_start + off as usize, 0);
            out.extend_from_slice(data);
        }
        out
    }

    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.build()).unwrap();
    }
}

/// One Q8_0 block: scale `d` and 32 codes.
pub fn q8_0_block(d: f32, codes: &[i8; 32]) -> Vec<u8> {
    let mut b = half::f16::from_f32(d).to_le_bytes().to_vec();
    b.extend(codes.iter().map(|&c| c as u8));
    b
}

/// A small deterministic generator for generated and damaged inputs (no dependency, the same
/// files on every run).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
