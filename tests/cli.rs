//! The command line, run as a user runs it: the real binary, its exit code and its output.

use std::process::{Command, Output};

use crate::fixtures::{Missing, Spec, TempDir, skip, write_raw, write_safetensors, write_sharded_llama};

pub(crate) fn weightbench(args: &[&str]) -> Output {
    // plan auto's measurement cache goes to a scratch folder, not the user's.
    let cache = std::env::temp_dir().join(format!("weightbench-test-cache-{}", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_weightbench")).args(args).env("XDG_CACHE_HOME", cache).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn info_json_describes_a_sharded_checkpoint() {
    let dir = TempDir::new();
    write_sharded_llama(dir.path());
    let out = weightbench(&["info", "--json", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], "safetensors");
    assert_eq!(v["files"].as_array().unwrap().len(), 3);
    assert_eq!(v["architecture"], "LlamaForCausalLM");
    assert_eq!(v["total_params"], 7 * 8);
    assert_eq!(v["total_bytes"], 7 * 8 * 4);
    let tensors = v["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 7);
    for t in tensors {
        for key in ["name", "dtype", "shape", "file", "offset", "bytes", "layer", "role"] {
            assert!(t.get(key).is_some(), "tensor lacks {key}: {t}");
        }
        // The offset is absolute: the bytes there are the tensor's first f32.
        let file = std::fs::read(t["file"].as_str().unwrap()).unwrap();
        let offset = t["offset"].as_u64().unwrap() as usize;
        let first = f32::from_le_bytes(file[offset..offset + 4].try_into().unwrap());
        assert_eq!(first % 100.0, 0.0, "first value of {} should be a multiple of 100", t["name"]);
    }
    let by_name = |n: &str| tensors.iter().find(|t| t["name"] == n).unwrap().clone();
    let embed = by_name("model.embed_tokens.weight");
    assert_eq!((embed["layer"].clone(), embed["role"].clone()), (serde_json::Value::Null, "embed".into()));
    let down = by_name("model.layers.0.mlp.down_proj.weight");
    assert_eq!((down["layer"].as_u64(), down["role"].as_str()), (Some(0), Some("mlp.down")));
    assert_eq!(down["dtype"], "F32");
    assert_eq!(down["shape"], serde_json::json!([2, 4]));
    assert!(down["file"].as_str().unwrap().ends_with("model-00002-of-00003.safetensors"));
}

#[test]
fn info_table_lists_every_tensor() {
    let dir = TempDir::new();
    let path = dir.join("m.safetensors");
    write_safetensors(&path, &[Spec::f32("model.layers.3.self_attn.k_proj.weight", &[2, 3], &[0.0; 6])]);
    let out = weightbench(&["info", path.to_str().unwrap()]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("model.layers.3.self_attn.k_proj.weight"), "{text}");
    assert!(text.contains("[2, 3]") && text.contains("attn.k") && text.contains("F32"), "{text}");
}

#[test]
fn bad_input_exits_non_zero_with_a_message_and_no_panic() {
    let dir = TempDir::new();
    let cases = [
        ("truncated.safetensors", (1000u64.to_le_bytes().to_vec(), "truncated")),
        ("garbage.safetensors", (b"\x08\x00\x00\x00\x00\x00\x00\x00not json".to_vec(), "JSON")),
    ];
    for (name, (bytes, fragment)) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = weightbench(&["info", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = stderr(&out);
        assert!(err.starts_with("error:"), "{err}");
        assert!(err.contains(name) && err.contains(fragment), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let path = dir.join("dtype.safetensors");
    write_raw(&path, br#"{"w": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 1]}}"#, &[0]);
    let out = weightbench(&["info", "--json", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no partial JSON on failure");
    assert!(stderr(&out).contains("\"Q9\""));
    let out = weightbench(&["info", dir.join("missing").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing"));
}

#[test]
fn every_command_explains_itself() {
    for args in [&["--help"][..], &["info", "--help"], &["help", "info"]] {
        let out = weightbench(args);
        assert!(out.status.success(), "{args:?}");
        let text = stdout(&out);
        assert!(text.contains("Usage:"), "{args:?}: {text}");
    }
    let top = stdout(&weightbench(&["--help"]));
    assert!(top.contains("info") && top.contains("demo"), "{top}");
    let info = stdout(&weightbench(&["info", "--help"]));
    assert!(info.contains("--json"), "{info}");
}

#[test]
fn stats_spectrum_and_channels_print_the_documented_json() {
    let demo = crate::fixtures::demo();
    let demo = demo.to_str().unwrap();
    let out = weightbench(&[
        "stats",
        demo,
        "--tensor",
        "layer\\.0\\.attention\\.self\\.query\\.weight",
        "--bins",
        "16",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &v["tensors"][0];
    for key in [
        "name",
        "dtype",
        "shape",
        "count",
        "mean",
        "std",
        "min",
        "max",
        "abs_max",
        "skewness",
        "kurtosis",
        "nan",
        "pos_inf",
        "neg_inf",
        "zeros",
        "outliers_3sigma",
        "outliers_6sigma",
        "histogram",
    ] {
        assert!(t.get(key).is_some(), "stats lacks {key}");
    }
    assert_eq!(t["histogram"]["edges"].as_array().unwrap().len(), 17);
    assert_eq!(
        t["histogram"]["counts"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).sum::<u64>(),
        384 * 384
    );

    let out = weightbench(&["spectrum", demo, "--tensor", "layer\\.1\\.output\\.dense", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tensors = v["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 1, "1-D biases are left out");
    let t = &tensors[0];
    for key in [
        "name",
        "shape",
        "singular_values",
        "alpha",
        "xmin",
        "D",
        "alpha_weighted",
        "log_norm",
        "log_spectral_norm",
        "stable_rank",
        "num_pl_spikes",
        "rank",
    ] {
        assert!(t.get(key).is_some(), "spectrum lacks {key}");
    }
    assert_eq!(t["singular_values"].as_array().unwrap().len(), 384);

    let out = weightbench(&["channels", demo, "--tensor", "encoder.layer.3.output.dense.weight", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["col_abs_max"].as_array().unwrap().len(), 1536);
    assert_eq!(v["row_abs_max"].as_array().unwrap().len(), 384);
    let out = weightbench(&["channels", demo, "--tensor", "encoder.layer.3.output.dense.bias"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("a matrix is needed"), "{}", stderr(&out));
}

/// Small weight-like values from a fixed sequence, in (−0.05, 0.05).
fn small_weights(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
        })
        .collect()
}

#[test]
fn channels_finds_outlier_channels_planted_in_the_fixture() {
    // A [64, 256] weight whose input channel 137 and output channel 11 are made outliers here,
    // so the expected indices come from the fixture, not from a previous run.
    let (rows, cols) = (64, 256);
    let mut w = small_weights(rows * cols, 9);
    for r in 0..rows {
        w[r * cols + 137] *= 40.0;
    }
    for c in 0..cols {
        w[11 * cols + c] *= 15.0;
    }
    let dir = TempDir::new();
    let path = dir.join("planted.safetensors");
    write_safetensors(&path, &[Spec::f32("layers.0.mlp.down_proj.weight", &[rows, cols], &w)]);
    let out = weightbench(&["channels", path.to_str().unwrap(), "--tensor", "layers.0.mlp.down_proj.weight", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["top_input_channels"][0]["index"], 137, "{}", v["top_input_channels"]);
    assert_eq!(v["top_output_channels"][0]["index"], 11, "{}", v["top_output_channels"]);
    // The planted column's abs-max is its largest |value|, exactly.
    let want = (0..rows).map(|r| w[r * cols + 137].abs()).fold(0f32, f32::max);
    assert_eq!(v["col_abs_max"][137].as_f64().unwrap() as f32, want);
    assert!(v["top_input_channels"][0]["ratio_to_median"].as_f64().unwrap() > 10.0);
}

#[test]
fn every_command_takes_a_backend_and_the_gpu_agrees_with_the_cpu() {
    let demo = crate::fixtures::demo();
    let demo = demo.to_str().unwrap();
    let tensor = "layer\\.4\\.output\\.dense\\.weight";
    let run = |args: &[&str]| {
        let out = weightbench(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    // `--backend` is accepted after the subcommand and before it.
    let cpu = run(&["stats", demo, "--tensor", tensor, "--json", "--backend", "cpu"]);
    let cpu_first = run(&["--backend", "cpu", "stats", demo, "--tensor", tensor, "--json"]);
    assert_eq!(cpu, cpu_first);
    let gpu = run(&["stats", demo, "--tensor", tensor, "--json", "--backend", "gpu"]);
    let (c, g) = (&cpu["tensors"][0], &gpu["tensors"][0]);
    assert_eq!((c["backend"].as_str(), &c["fallback"]), (Some("cpu"), &serde_json::Value::Null));
    if g["backend"] != "gpu" {
        // The CPU did the work and the result says why; that is no comparison of the backends.
        skip(Missing::Gpu, &format!("stats --backend gpu ran on the {} because {}", g["backend"], g["fallback"]));
        return;
    }
    assert_eq!(g["fallback"], serde_json::Value::Null, "the GPU ran: no fallback");
    assert_ne!(g["device"], c["device"]);
    assert_eq!(c["histogram"]["counts"], g["histogram"]["counts"]);
    assert_eq!(c["outliers_3sigma"], g["outliers_3sigma"]);
    // diff: the measure and gram kernels over two files, on both backends.
    let dir = TempDir::new();
    let decoded = dir.join("q.safetensors");
    run(&[
        "quantize",
        demo,
        "--scheme",
        "q4_0",
        "--dry-run",
        "--tensor",
        tensor,
        "--decoded",
        decoded.to_str().unwrap(),
        "--json",
    ]);
    let dc = run(&["diff", demo, decoded.to_str().unwrap(), "--tensor", tensor, "--json", "--backend", "cpu"]);
    let dg = run(&["diff", demo, decoded.to_str().unwrap(), "--tensor", tensor, "--json", "--backend", "gpu"]);
    let (c, g) = (&dc["tensors"][0], &dg["tensors"][0]);
    assert_eq!((c["backend"].as_str(), g["backend"].as_str()), (Some("cpu"), Some("gpu")), "{g}");
    let close = |a: &serde_json::Value, b: &serde_json::Value, tol: f64| {
        let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
        assert!(a > 0.0 && (a - b).abs() <= tol * a, "{a} vs {b}");
    };
    // The GPU sums each workgroup's squares in f32 before f64: agreement to about 1e-8.
    close(&c["sse"], &g["sse"], 1e-6);
    close(&c["cosine"], &g["cosine"], 1e-9);
    assert_eq!(c["max_abs_error"], g["max_abs_error"]);
    for (x, y) in c["spectrum"]["top_singular_values"]
        .as_array()
        .unwrap()
        .iter()
        .zip(g["spectrum"]["top_singular_values"].as_array().unwrap())
    {
        close(x, y, 1e-6);
    }
    assert_eq!(c["spectrum"]["rank_90"], g["spectrum"]["rank_90"]);
    let out = weightbench(&["stats", demo, "--backend", "tpu"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses an unknown backend");
}

#[test]
fn a_fallback_is_named_in_the_json_and_commands_that_compute_nothing_start_no_gpu() {
    let demo = crate::fixtures::demo();
    let demo = demo.to_str().unwrap();
    // An adapter name that matches nothing: any attempt to start the GPU fails and says so.
    let no_gpu = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_weightbench"))
            .args(args)
            .env("WGPU_ADAPTER_NAME", "no-such-adapter-anywhere")
            .output()
            .unwrap()
    };
    let out = no_gpu(&["stats", demo, "--tensor", "pooler\\.dense\\.bias", "--backend", "gpu", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &v["tensors"][0];
    assert_eq!(t["backend"], "cpu", "the CPU did the work, and says so: {t}");
    assert!(t["fallback"].as_str().is_some_and(|f| f.contains("no-such-adapter-anywhere")), "{t}");
    assert!(stderr(&out).contains("note: using the CPU"), "{}", stderr(&out));
    // `info` and `convert` never start a device: no attempt, so no note.
    for args in [&["info", demo, "--backend", "gpu"][..], &["--backend", "gpu", "info", demo, "--json"]] {
        let out = no_gpu(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).is_empty(), "{args:?} tried to start the GPU: {}", stderr(&out));
    }
    // The window's options belong to the window.
    let out = weightbench(&["--view", "spectrum", "info", demo]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn salience_takes_an_imatrix_by_gguf_names_for_a_transformers_checkpoint() {
    // A llama.cpp imatrix names weights the GGUF way; the checkpoint is a transformers folder
    // whose config.json names the class (LlamaForCausalLM).
    let dir = TempDir::new();
    write_sharded_llama(dir.path());
    let dat = dir.join("imatrix.dat");
    let mut b = 1i32.to_le_bytes().to_vec();
    let name = "blk.0.attn_q.weight";
    b.extend((name.len() as i32).to_le_bytes());
    b.extend(name.as_bytes());
    b.extend(10i32.to_le_bytes());
    b.extend(4i32.to_le_bytes());
    [1.0f32, 0.0, 2.0, 0.5].iter().for_each(|v| b.extend(v.to_le_bytes()));
    std::fs::write(&dat, b).unwrap();
    let q = "model.layers.0.self_attn.q_proj.weight";
    let args = ["salience", dir.path().to_str().unwrap(), "--tensor", q, "--grid", "4", "--json"];
    let out = weightbench(&[&args[..], &["--importance", dat.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["source"]["imported"], "imatrix.dat");
    assert_eq!(v["importance"], serde_json::json!([1.0, 0.0, 2.0, 0.5]));
    // The fixture's q_proj holds 100 + i (i = 0..8): per tile (one value each), |w| · importance.
    let want: Vec<f64> = (0..8).map(|i| (100 + i) as f64 * [1.0, 0.0, 2.0, 0.5][i % 4]).collect();
    assert_eq!(v["tiles"], serde_json::json!(want));
    assert!(v["backend"].is_string() && v.get("fallback").is_some());
    // Without an imatrix: the column norms.
    let out = weightbench(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["source"], "column_norms");
    let out = weightbench(&["salience", dir.path().to_str().unwrap(), "--tensor", q]);
    assert!(stdout(&out).contains("largest tile") && stdout(&out).contains("computed on"), "{}", stdout(&out));
}

/// A small llama-shaped checkpoint: 576-wide rows (not whole K-quant blocks), 1536-wide rows
/// (whole blocks), a norm, and an embedding.
fn write_small_llama(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.join("small.safetensors");
    let (a, b) = (small_weights(64 * 576, 3), small_weights(64 * 1536, 4));
    write_safetensors(
        &path,
        &[
            Spec::f32("model.embed_tokens.weight", &[64, 576], &a),
            Spec::f32("model.layers.0.mlp.up_proj.weight", &[64, 576], &a),
            Spec::f32("model.layers.0.mlp.down_proj.weight", &[64, 1536], &b),
            Spec::f32("model.layers.0.input_layernorm.weight", &[576], &a[..576]),
        ],
    );
    path
}

#[test]
fn quantize_dry_run_reports_every_tensor_with_fallbacks_and_totals() {
    let dir = TempDir::new();
    let path = write_small_llama(&dir);
    let plan = dir.join("plan.toml");
    std::fs::write(
        &plan,
        "[[rule]]\nmatch = \"*.weight\"\nscheme = \"q4_k\"\n[[rule]]\nmatch = \"re:.*down_proj.*\"\nscheme = \"q6_k\"\n\
         [tensor.\"model.embed_tokens.weight\"]\nscheme = \"keep\"\n",
    )
    .unwrap();
    let out =
        weightbench(&["quantize", path.to_str().unwrap(), "--plan", plan.to_str().unwrap(), "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["tensors"].as_array().unwrap();
    let row = |n: &str| rows.iter().find(|t| t["name"] == n).unwrap().clone();
    for key in ["name", "scheme", "shape", "params", "bytes", "bpw", "sse", "rel_error", "sqnr_db", "max_abs_error"] {
        assert!(rows[0].get(key).is_some(), "row lacks {key}");
    }
    assert_eq!(row("model.embed_tokens.weight")["scheme"], "keep");
    assert_eq!(row("model.embed_tokens.weight")["sse"], 0.0);
    let up = row("model.layers.0.mlp.up_proj.weight");
    assert_eq!((up["scheme"].as_str(), up["requested"].as_str()), (Some("q5_0"), Some("q4_k")));
    assert!(up["fallback_reason"].as_str().unwrap().contains("576"));
    assert_eq!(up["bytes"], 64 * 576 / 32 * 22);
    let down = row("model.layers.0.mlp.down_proj.weight");
    assert_eq!((down["scheme"].as_str(), down["bytes"].as_u64()), (Some("q6_k"), Some(64 * 1536 / 256 * 210)));
    assert!(down["rel_error"].as_f64().unwrap() > 0.0 && down["rel_error"].as_f64().unwrap() < 0.05);
    assert_eq!(row("model.layers.0.input_layernorm.weight")["scheme"], "keep");
    let total = &v["total"];
    let sum: u64 = rows.iter().map(|t| t["bytes"].as_u64().unwrap()).sum();
    assert_eq!(total["bytes"].as_u64(), Some(sum));
    assert_eq!(total["model_bytes"].as_u64(), Some(sum), "every tensor was previewed");
    assert_eq!(v["backend"], "cpu", "the block types are encoded on the CPU: {}", v["backend"]);
    assert_eq!(v["plan"]["rules"][1]["line"], 5);
    // The table says the same, fallback included.
    let out = weightbench(&["quantize", path.to_str().unwrap(), "--plan", plan.to_str().unwrap(), "--dry-run"]);
    let text = stdout(&out);
    assert!(text.contains("fallback from q4_k") && text.contains("TOTAL 4 tensors"), "{text}");
}

#[test]
fn bad_plans_are_refused_naming_line_tensor_shape_and_scheme() {
    let dir = TempDir::new();
    let path = write_small_llama(&dir);
    let p = path.to_str().unwrap();
    let cases = [
        ("[[rule]]\nmatch = \"*\"\nscheme = \"q4_q\"\n", "plan.toml:3", "unknown scheme `q4_q`"),
        ("[[rule]]\nmatch = \"re:([\"\nscheme = \"q8_0\"\n", "plan.toml:2", "bad pattern"),
        ("[tensor.\"model.layers.0.mlp.up_proj.weight\"]\nscheme = \"q4_k\"\n", "plan.toml:2", "[64, 576]"),
        ("[tensor.\"model.layers.0.input_layernorm.weight\"]\nscheme = \"lowrank_r8\"\n", "plan.toml:2", "1-D"),
        ("[[rule]]\nmatch = \"*\"\nscheme = \"int9_g32\"\n", "plan.toml:3", "2 to 8 bits"),
        ("[[rule]]\nmatch = \"*\"\nschema = \"q8_0\"\n", "plan.toml", "schema"),
    ];
    for (text, at, what) in cases {
        let plan = dir.join("plan.toml");
        std::fs::write(&plan, text).unwrap();
        let out = weightbench(&["quantize", p, "--plan", plan.to_str().unwrap(), "--dry-run", "--json"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{text}: {err}");
        assert!(err.contains(at) && err.contains(what), "{text}: {err}");
        assert!(out.stdout.is_empty(), "nothing computed or printed: {}", stdout(&out));
    }
    // A rule that matches nothing, and a plan made for another model: warnings, not errors.
    let plan = dir.join("plan.toml");
    std::fs::write(&plan, "[model]\ntensors = 272\n[[rule]]\nmatch = \"*.bias\"\nscheme = \"q8_0\"\n").unwrap();
    let out = weightbench(&["quantize", p, "--plan", plan.to_str().unwrap(), "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("matches no tensor") && err.contains("272 tensors"), "{err}");
    // Without --dry-run nothing runs.
    let out = weightbench(&["quantize", p, "--scheme", "q8_0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--dry-run"));
}

#[test]
fn non_finite_weights_are_counted_and_refused_by_schemes_without_a_code_for_them() {
    let dir = TempDir::new();
    let path = dir.join("nan.safetensors");
    let mut v = small_weights(8 * 64, 9);
    v[3] = f32::NAN;
    v[70] = f32::INFINITY;
    write_safetensors(&path, &[Spec::f32("w", &[8, 64], &v)]);
    let p = path.to_str().unwrap();
    let out = weightbench(&["quantize", p, "--scheme", "int8_ch", "--dry-run", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tensors"][0]["non_finite"], 2);
    assert!(v["tensors"][0]["error"].as_str().unwrap().contains("2 NaN/±Inf"));
    assert!(stderr(&out).contains("w: 2 NaN"));
    let out = weightbench(&["quantize", p, "--scheme", "bf16", "--dry-run", "--json"]);
    assert!(out.status.success(), "bf16 stores NaN and Inf as they are: {}", stderr(&out));
}

#[test]
fn quantize_on_the_gpu_gives_the_cpus_integer_codes_and_says_where_each_ran() {
    let demo = crate::fixtures::demo();
    let demo = demo.to_str().unwrap();
    let dir = TempDir::new();
    let run = |backend: &str, scheme: &str, decoded: &std::path::Path| {
        let args = ["quantize", demo, "--scheme", scheme, "--tensor", "layer\\.1\\.", "--dry-run", "--json"];
        let out = weightbench(&[&args[..], &["--backend", backend, "--decoded", decoded.to_str().unwrap()]].concat());
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let (c_path, g_path) = (dir.join("cpu.safetensors"), dir.join("gpu.safetensors"));
    let cpu = run("cpu", "int4_g128_asym", &c_path);
    let gpu = run("gpu", "int4_g128_asym", &g_path);
    let quantized: Vec<&serde_json::Value> =
        gpu["tensors"].as_array().unwrap().iter().filter(|t| t["scheme"] == "int4_g128_asym").collect();
    assert!(quantized.len() >= 6, "every matrix of the layer");
    if let Some(t) = quantized.iter().find(|t| t["backend"] != "gpu") {
        skip(
            Missing::Gpu,
            &format!("quantize --backend gpu ran {} on the {}: {}", t["name"], t["backend"], t["fallback"]),
        );
        return;
    }
    // Vectors (biases, norms) are kept: read on the CPU, and the whole run says both.
    assert_eq!(gpu["backend"], "cpu+gpu");
    // Same codes: the decoded values are identical, bit for bit.
    assert_eq!(std::fs::read(&c_path).unwrap(), std::fs::read(&g_path).unwrap());
    for (c, g) in cpu["tensors"].as_array().unwrap().iter().zip(gpu["tensors"].as_array().unwrap()) {
        assert_eq!((c["bytes"].clone(), c["max_abs_error"].clone()), (g["bytes"].clone(), g["max_abs_error"].clone()));
        let (a, b) = (c["sse"].as_f64().unwrap(), g["sse"].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-5 * a.max(1e-30), "{a} vs {b}");
    }
    // A legacy block type runs on the GPU too; a K-quant's search runs on the CPU and says so.
    let (q_cpu, q_gpu) = (dir.join("q4_0-cpu.safetensors"), dir.join("q4_0-gpu.safetensors"));
    run("cpu", "q4_0", &q_cpu);
    let q = run("gpu", "q4_0", &q_gpu);
    let row = q["tensors"].as_array().unwrap().iter().find(|t| t["scheme"] == "q4_0").unwrap();
    assert_eq!(row["backend"], "gpu", "{row}");
    assert_eq!(std::fs::read(&q_cpu).unwrap(), std::fs::read(&q_gpu).unwrap(), "same q4_0 blocks");
    let (k_cpu, k_gpu) = (dir.join("k-cpu.safetensors"), dir.join("k-gpu.safetensors"));
    let kc = run("cpu", "q6_k", &k_cpu);
    let k = run("gpu", "q6_k", &k_gpu);
    let row = k["tensors"].as_array().unwrap().iter().find(|t| t["scheme"] == "q8_0").unwrap();
    assert_eq!(row["backend"], "gpu", "q6_k's fallback for 384-wide rows, Q8_0, runs on the GPU: {row}");
    let (i, row) = k["tensors"].as_array().unwrap().iter().enumerate().find(|(_, t)| t["scheme"] == "q6_k").unwrap();
    assert_eq!(row["backend"], "cpu+gpu", "the search on the CPU, the error on the GPU: {row}");
    assert!(row["fallback"].as_str().unwrap().contains("no WGSL encoder for Q6_K"), "{row}");
    let (a, b) = (kc["tensors"][i]["sse"].as_f64().unwrap(), row["sse"].as_f64().unwrap());
    assert!((a - b).abs() <= 1e-5 * a, "{a} vs {b}");
    assert_eq!(std::fs::read(&k_cpu).unwrap(), std::fs::read(&k_gpu).unwrap(), "same q6_k blocks");
}

#[test]
fn quantize_weighs_errors_by_an_imatrix_or_the_column_norms_and_the_searches_use_the_imatrix() {
    let dir = TempDir::new();
    write_small_llama(&dir);
    std::fs::write(dir.join("config.json"), r#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama"}"#)
        .unwrap();
    // A legacy .dat imatrix naming the down projection the GGUF way.
    let dat = dir.join("imatrix.dat");
    let mut b = 1i32.to_le_bytes().to_vec();
    let name = "blk.0.ffn_down.weight";
    b.extend((name.len() as i32).to_le_bytes());
    b.extend(name.as_bytes());
    b.extend(10i32.to_le_bytes());
    b.extend(1536i32.to_le_bytes());
    let imp: Vec<f32> = (0..1536).map(|j| if j % 7 == 0 { 40.0 } else { 0.5 }).collect();
    imp.iter().for_each(|v| b.extend(v.to_le_bytes()));
    std::fs::write(&dat, b).unwrap();
    let p = dir.path().to_str().unwrap();
    let down = "down_proj";
    let run = |extra: &[&str]| {
        let args = ["quantize", p, "--scheme", "q4_k", "--tensor", down, "--dry-run", "--json"];
        let out = weightbench(&[&args[..], extra].concat());
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["tensors"][0].clone()
    };
    let plain = run(&[]);
    let weighted = run(&["--importance", dat.to_str().unwrap()]);
    let norms = run(&["--importance", "weight"]);
    assert_eq!(plain["weighted_sse"], serde_json::Value::Null);
    assert!(weighted["weighted_sse"].as_f64().unwrap() > 0.0 && norms["weighted_sse"].as_f64().unwrap() > 0.0);
    // llama.cpp's weighted search trades plain error for error where the imatrix is large.
    assert_ne!(plain["sse"], weighted["sse"], "the imatrix drives the K-quant search");
    assert_eq!(run(&["--importance", dat.to_str().unwrap()]), weighted, "deterministic");
    assert_eq!(norms["sse"], plain["sse"], "column norms weigh the error only; the codes are llama.cpp's plain ones");
}

#[test]
fn ctrl_c_stops_a_long_quantize_cleanly() {
    let Some(model) = crate::fixtures::real_model("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let child = Command::new(env!("CARGO_BIN_EXE_weightbench"))
        // Q3_K falls back to IQ4_NL on SmolLM2's 576-wide rows: a search of about ten seconds here.
        .args(["quantize", model.to_str().unwrap(), "--scheme", "q3_k", "--dry-run", "--json", "--backend", "cpu"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cancelled"), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "no partial report");
}

#[test]
fn plan_auto_allocates_to_a_budget_and_its_plan_reproduces_the_answer() {
    let dir = TempDir::new();
    let path = write_small_llama(&dir);
    let p = path.to_str().unwrap();
    let plan = dir.join("auto.toml");
    let args = ["plan", "auto", p, "--target-bpw", "6", "--candidates", "q4_0,q8_0,int4_g64", "--pin", "*embed*"];
    let out = weightbench(&[&args[..], &["-o", plan.to_str().unwrap(), "--json", "--backend", "cpu"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["target_bpw", "achieved_bpw", "bytes", "objective", "lower_bound", "gap", "pareto", "tensors"] {
        assert!(v.get(key).is_some(), "lacks {key}: {v}");
    }
    assert!(v["achieved_bpw"].as_f64().unwrap() <= 6.0 + 1e-9);
    assert!(v["lower_bound"].as_f64().unwrap() <= v["objective"].as_f64().unwrap() + 1e-12);
    let names: Vec<&str> = v["tensors"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(!names.contains(&"model.embed_tokens.weight"), "pinned tensors are outside the allocation");
    let pareto = v["pareto"].as_array().unwrap();
    assert!(pareto.windows(2).all(|w| w[1]["objective"].as_f64() <= w[0]["objective"].as_f64()));
    assert!(dir.join("auto.pareto.json").exists() && dir.join("auto.pareto.csv").exists());
    // The written plan, applied, gives the allocation's bytes and error.
    let text = std::fs::read_to_string(&plan).unwrap();
    assert!(
        text.contains("[tensor.\"model.embed_tokens.weight\"]\nscheme = \"keep\"\npinned = true")
            && text.contains("# q8_0"),
        "{text}"
    );
    let q = weightbench(&["quantize", p, "--plan", plan.to_str().unwrap(), "--dry-run", "--json", "--backend", "cpu"]);
    assert!(q.status.success(), "{}", stderr(&q));
    let q: serde_json::Value = serde_json::from_slice(&q.stdout).unwrap();
    let rows = q["tensors"].as_array().unwrap();
    let planned: u64 = rows
        .iter()
        .filter(|r| names.contains(&r["name"].as_str().unwrap()))
        .map(|r| r["bytes"].as_u64().unwrap())
        .sum();
    let sse: f64 =
        rows.iter().filter(|r| names.contains(&r["name"].as_str().unwrap())).map(|r| r["sse"].as_f64().unwrap()).sum();
    assert_eq!(planned, v["bytes"].as_u64().unwrap());
    assert!((sse - v["objective"].as_f64().unwrap()).abs() <= 1e-9 * sse.max(1e-30));
    // A budget below every tensor's smallest candidate says what is reachable; nothing is written.
    let small = dir.join("small.toml");
    let out = weightbench(
        &[&args[..3], &["--target-bpw", "1", "--candidates", "q8_0", "-o", small.to_str().unwrap()]].concat(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("reachable"), "{}", stderr(&out));
    assert!(!small.exists());
}

/// The rows of a Q/K weight of `heads` heads as llama.cpp's converter stores them:
/// `w.reshape(n, 2, rows/n/2, cols).swapaxes(1, 2)`.
fn llama_permuted(w: &[f32], rows: usize, cols: usize, heads: usize) -> Vec<f32> {
    let (d, half) = (rows / heads, rows / heads / 2);
    let mut out = vec![0.0; w.len()];
    for h in 0..heads {
        for j in 0..2 {
            for i in 0..half {
                let (src, dst) = (h * d + j * half + i, h * d + 2 * i + j);
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

#[test]
fn diff_matches_gguf_and_transformers_names_undoes_the_permutation_and_lists_what_does_not_pair() {
    let dir = TempDir::new();
    let (q, k, up) = (small_weights(8 * 16, 1), small_weights(4 * 16, 2), small_weights(6 * 16, 3));
    let hf = dir.join("hf");
    std::fs::create_dir_all(&hf).unwrap();
    std::fs::write(
        hf.join("config.json"),
        r#"{"model_type": "llama", "architectures": ["LlamaForCausalLM"], "num_attention_heads": 2, "num_key_value_heads": 1, "hidden_size": 16}"#,
    )
    .unwrap();
    write_safetensors(
        &hf.join("model.safetensors"),
        &[
            Spec::f32("model.layers.0.self_attn.q_proj.weight", &[8, 16], &q),
            Spec::f32("model.layers.0.self_attn.k_proj.weight", &[4, 16], &k),
            Spec::f32("model.layers.0.mlp.up_proj.weight", &[6, 16], &up),
            Spec::f32("model.layers.0.mlp.down_proj.weight", &[16, 6], &up),
            Spec::f32("only_here.weight", &[4], &k[..4]),
        ],
    );
    let gguf = dir.join("m.gguf");
    let mut g = crate::fixtures::Gguf::new("llama");
    g.kv_u32("llama.attention.head_count", 2).kv_u32("llama.attention.head_count_kv", 1);
    g.f32("blk.0.attn_q.weight", &[8, 16], &llama_permuted(&q, 8, 16, 2))
        .f32("blk.0.attn_k.weight", &[4, 16], &llama_permuted(&k, 4, 16, 1))
        .f32("blk.0.ffn_up.weight", &[6, 16], &up)
        .f32("blk.0.ffn_down.weight", &[6, 16], &up);
    g.write(&gguf);
    let out = weightbench(&["diff", gguf.to_str().unwrap(), hf.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["tensors"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{v}");
    for r in rows {
        assert_eq!(r["sse"], 0.0, "{r}");
        assert_eq!(r["cosine"], 1.0, "{r}");
        assert_eq!(r["spectrum"]["rank_90"], 0, "{r}");
    }
    let q_row = rows.iter().find(|r| r["name"] == "blk.0.attn_q.weight").unwrap();
    assert_eq!(q_row["name_b"], "model.layers.0.self_attn.q_proj.weight");
    assert!(q_row["aligned"][0].as_str().unwrap().contains("permutation of 2 heads"), "{q_row}");
    let k_row = rows.iter().find(|r| r["name"] == "blk.0.attn_k.weight").unwrap();
    assert!(k_row["aligned"][0].as_str().unwrap().contains("of 1 heads"), "{k_row}");
    assert_eq!(v["only_in_b"], serde_json::json!(["only_here.weight"]));
    assert_eq!(v["shape_mismatch"][0]["name"], "blk.0.ffn_down.weight");
    assert_eq!(v["shape_mismatch"][0]["shape_b"], serde_json::json!([16, 6]));
    assert_eq!(v["totals"]["identical"], 3);

    // Without the permutation undone the rows would not meet: the same GGUF against a
    // transformers copy holding the permuted rows differs, and the difference's spectrum says
    // how: a row permutation of W changes W − P·W, not its energy.
    write_safetensors(
        &hf.join("model.safetensors"),
        &[Spec::f32("model.layers.0.self_attn.q_proj.weight", &[8, 16], &llama_permuted(&q, 8, 16, 2))],
    );
    let out = weightbench(&["diff", gguf.to_str().unwrap(), hf.to_str().unwrap(), "--json", "--tensor", "attn_q"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v["tensors"][0];
    assert!(r["sse"].as_f64().unwrap() > 0.0 && r["cosine"].as_f64().unwrap() < 0.99, "{r}");
    assert!(r["spectrum"]["rank_90"].as_u64().unwrap() > 0);
    // A checkpoint against itself: zero everywhere, table and all.
    let out = weightbench(&["diff", gguf.to_str().unwrap(), gguf.to_str().unwrap()]);
    assert!(stdout(&out).contains("4 tensors compared (4 identical)"), "{}", stdout(&out));
}

#[test]
fn diff_of_smollm2s_gguf_and_its_converted_copy_is_zero_and_minilm_against_a_quantized_copy_equals_the_preview() {
    let Some(gguf) = crate::fixtures::real_model("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let dir = TempDir::new();
    let hf = dir.join("hf");
    let out = weightbench(&["convert", gguf.to_str().unwrap(), "-o", hf.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = weightbench(&["diff", gguf.to_str().unwrap(), hf.to_str().unwrap(), "--json", "--top", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["totals"]["tensors"], 272);
    assert_eq!(v["totals"]["identical"], 272, "{}", v["totals"]);
    assert_eq!(v["only_in_a"].as_array().unwrap().len() + v["only_in_b"].as_array().unwrap().len(), 0);
    let permuted = v["tensors"].as_array().unwrap().iter().filter(|r| !r["aligned"].as_array().unwrap().is_empty());
    assert_eq!(permuted.count(), 60, "q and k of 30 layers had their rows restored");

    let Some(minilm) = crate::fixtures::real_model("all-MiniLM-L6-v2") else { return };
    let decoded = dir.join("q4_0.safetensors");
    let out = weightbench(&[
        "quantize",
        minilm.to_str().unwrap(),
        "--scheme",
        "q4_0",
        "--dry-run",
        "--tensor",
        "layer\\.[01]\\.",
        "--decoded",
        decoded.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let preview: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = weightbench(&["diff", minilm.to_str().unwrap(), decoded.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let diffs = v["tensors"].as_array().unwrap();
    assert_eq!(diffs.len(), preview["tensors"].as_array().unwrap().len());
    for p in preview["tensors"].as_array().unwrap() {
        let d = diffs.iter().find(|d| d["name"] == p["name"]).unwrap();
        let (a, b) = (p["sse"].as_f64().unwrap(), d["sse"].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-9 * a.max(1e-30), "{}: preview sse {a}, diff sse {b}", p["name"]);
        let max_abs = |v: &serde_json::Value| v["max_abs_error"].as_f64().unwrap() as f32;
        assert_eq!(max_abs(p), max_abs(d), "{}", p["name"]);
        if p["shape"].as_array().unwrap().len() == 2 && a > 0.0 {
            let s = &d["spectrum"];
            assert!(d["cosine"].as_f64().unwrap() < 1.0 && d["cosine"].as_f64().unwrap() > 0.99, "{d}");
            // Rounding noise is spread over many directions, unlike a fine-tune's low-rank update.
            assert!(s["rank_90"].as_u64().unwrap() > 50 && s["stable_rank"].as_f64().unwrap() > 10.0, "{s}");
        }
    }
    assert!(v["only_in_a"].as_array().unwrap().len() > 50, "the unquantized layers are listed as only in A");
}

#[test]
fn plan_auto_measures_each_tensor_and_scheme_once_and_a_changed_file_is_measured_again() {
    let dir = TempDir::new();
    let path = write_small_llama(&dir);
    let p = path.to_str().unwrap();
    let cache = dir.join("cache");
    let run = |bpw: &str, candidates: &str| {
        let plan = dir.join(&format!("plan{bpw}.toml"));
        let out = weightbench(&[
            "plan",
            "auto",
            p,
            "--target-bpw",
            bpw,
            "--candidates",
            candidates,
            "--cache-dir",
            cache.to_str().unwrap(),
            "-o",
            plan.to_str().unwrap(),
            "--overwrite",
            "--json",
            "--backend",
            "cpu",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (v, std::fs::read_to_string(&plan).unwrap())
    };
    // 3 matrices × 2 candidates, and the norm (kept: one option).
    let (first, plan) = run("6", "q4_0,q8_0");
    assert_eq!((first["measured"].as_u64(), first["cached"].as_u64()), (Some(7), Some(0)), "{first}");
    let (again, plan_again) = run("6", "q4_0,q8_0");
    assert_eq!((again["measured"].as_u64(), again["cached"].as_u64()), (Some(0), Some(7)));
    assert_eq!(plan, plan_again, "the cached measurements give the same plan, comments and all");
    assert_eq!(first["tensors"], again["tensors"]);
    // Another budget and one more candidate: only the new scheme is measured.
    let (more, _) = run("5", "q4_0,q8_0,int4_g64");
    assert_eq!((more["measured"].as_u64(), more["cached"].as_u64()), (Some(3), Some(7)));
    // The checkpoint rewritten (a new modification time): everything is measured again.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let (changed, _) = run("6", "q4_0,q8_0");
    assert_eq!(changed["measured"].as_u64(), Some(7));
}

#[test]
fn method_suffixes_report_their_search_the_plain_error_and_where_awqs_scales_go() {
    let dir = TempDir::new();
    let path = write_small_llama(&dir);
    let p = path.to_str().unwrap();
    let tensor = "up_proj|down_proj";
    let out = weightbench(&["quantize", p, "--scheme", "int4_g64+awq", "--dry-run", "--tensor", tensor]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--importance"), "{}", stderr(&out));
    for scheme in ["int4_g64+awq", "int4_g64+slim", "int4_g64+pow"] {
        let out = weightbench(&[
            "quantize",
            p,
            "--scheme",
            scheme,
            "--dry-run",
            "--tensor",
            tensor,
            "--importance",
            "weight",
            "--json",
        ]);
        assert!(out.status.success(), "{scheme}: {}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for row in v["tensors"].as_array().unwrap() {
            let m = &row["method"];
            assert_eq!(m["method"], scheme.split('+').nth(1).unwrap(), "{row}");
            let (mine, plain) = (row["weighted_sse"].as_f64().unwrap(), m["plain_weighted_sse"].as_f64().unwrap());
            assert!(mine <= plain * (1.0 + 1e-12), "{scheme}: the search includes plain rounding: {mine} vs {plain}");
            assert!(m["searched"].as_array().unwrap().len() >= 2);
            assert!(row["bytes"].as_u64().unwrap() >= m["plain_bytes"].as_u64().unwrap());
        }
        if scheme.ends_with("awq") {
            let down = v["tensors"].as_array().unwrap().iter().find(|r| r["name"].as_str().unwrap().contains("down"));
            assert_eq!(down.unwrap()["method"]["folds_into"], "model.layers.0.mlp.up_proj.weight");
            let up = v["tensors"].as_array().unwrap().iter().find(|r| r["name"].as_str().unwrap().contains("up_proj"));
            // This checkpoint has no post-attention norm to take up_proj's scales.
            assert!(up.unwrap()["method"]["preview_only"].as_str().is_some());
        }
    }
}

#[test]
fn awq_tensors_after_one_norm_share_one_alpha_in_quantize_and_in_plan_auto() {
    let dir = TempDir::new();
    let path = dir.join("qkv.safetensors");
    let (q, k, v) = (small_weights(64 * 128, 21), small_weights(32 * 128, 22), small_weights(32 * 128, 23));
    write_safetensors(
        &path,
        &[
            Spec::f32("model.layers.0.input_layernorm.weight", &[128], &q[..128]),
            Spec::f32("model.layers.0.self_attn.q_proj.weight", &[64, 128], &q),
            Spec::f32("model.layers.0.self_attn.k_proj.weight", &[32, 128], &k),
            Spec::f32("model.layers.0.self_attn.v_proj.weight", &[32, 128], &v),
        ],
    );
    let p = path.to_str().unwrap();
    let args = ["--dry-run", "--tensor", "proj", "--importance", "weight", "--json", "--backend", "cpu"];
    let out = weightbench(&[&["quantize", p, "--scheme", "int3_g64+awq"][..], &args].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["tensors"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let alpha = rows[0]["method"]["value"].as_f64().unwrap();
    for r in rows {
        let m = &r["method"];
        assert_eq!(m["value"].as_f64(), Some(alpha), "one α for the three: {r}");
        assert_eq!(m["folds_into"], "model.layers.0.input_layernorm.weight");
        assert_eq!(m["shared_with"].as_array().unwrap().len(), 2, "{m}");
    }
    // The shared α, written out, reproduces the same bytes and errors.
    let fixed = format!("int3_g64+awq@{alpha}");
    let out = weightbench(&[&["quantize", p, "--scheme", &fixed][..], &args].concat());
    let w: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(w["total"]["weighted_sse"], v["total"]["weighted_sse"], "{fixed}");
    assert_eq!(w["total"]["bytes"], v["total"]["bytes"]);
    // plan auto measures the candidate at the shared α and writes it into the plan.
    let plan = dir.join("plan.toml");
    let out = weightbench(&[
        "plan",
        "auto",
        p,
        "--target-bpw",
        "3.5",
        "--candidates",
        "int3_g64+awq,int8_ch",
        "--tensor",
        "proj",
        "--importance",
        "weight",
        "-o",
        plan.to_str().unwrap(),
        "--backend",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&plan).unwrap();
    assert!(text.contains(&format!("scheme = \"{fixed}\"")), "{text}");
}

#[test]
fn heatmap_gives_any_region_down_to_the_stored_weight_and_a_png_with_its_legend() {
    let demo = crate::fixtures::demo();
    let demo_s = demo.to_str().unwrap();
    let name = "encoder.layer.3.output.dense.weight";
    // The outlier input channel 358 at full zoom: each tile one weight, its value the stored one.
    let o = weightbench(&[
        "heatmap",
        demo_s,
        "--tensor",
        name,
        "--mode",
        "extreme",
        "--rows",
        "96..104",
        "--cols",
        "356..360",
        "--json",
        "--backend",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!((v["tile_rows"].as_u64(), v["tile_cols"].as_u64()), (Some(1), Some(1)));
    let ckpt = weightbench::checkpoint::Checkpoint::open(&demo).unwrap();
    let t = ckpt.tensor(name).unwrap();
    let w = ckpt.decode_all(t).unwrap();
    for r in 96..104usize {
        for c in 356..360usize {
            let got = v["values"][(r - 96) * 4 + (c - 356)].as_f64().unwrap() as f32;
            assert_eq!(got, w[r * 1536 + c], "row {r}, column {c}");
        }
    }
    // The whole matrix coarsely, as a PNG with its legend, and the biggest magnitude found.
    let dir = crate::fixtures::TempDir::new();
    let png = dir.join("map.png");
    let o = weightbench(&[
        "heatmap",
        demo_s,
        "--tensor",
        name,
        "--mode",
        "absmax",
        "--grid",
        "32x64",
        "--png",
        png.to_str().unwrap(),
        "--backend",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("columns 336..360"), "the outlier channel's tile: {}", stdout(&o));
    let img = image::open(&png).unwrap();
    assert!(img.width() > 512 && img.height() >= 160, "{}x{}", img.width(), img.height());
    // Bad regions and grids are refused with the reason.
    let o = weightbench(&["heatmap", demo_s, "--tensor", name, "--rows", "400..500"]);
    assert!(!o.status.success() && stderr(&o).contains("--rows"), "{}", stderr(&o));
    let o = weightbench(&["heatmap", demo_s, "--tensor", "embeddings.LayerNorm.weight"]);
    assert!(!o.status.success() && stderr(&o).contains("not a matrix"), "{}", stderr(&o));
}

#[test]
fn eval_refuses_an_encoder_with_a_clear_message_and_attention_runs_on_it() {
    let demo = crate::fixtures::demo();
    let out = weightbench(&["eval", demo.to_str().unwrap(), "--text", "hello world"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("encoder without a language-model head"), "{err}");
    // The demo (MiniLM, BERT) runs for attention: bidirectional maps whose rows sum to 1.
    let out = weightbench(&[
        "attention",
        demo.to_str().unwrap(),
        "--text",
        "The river flooded the valley.",
        "--layer",
        "2",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["tokens"][0], "[CLS]");
    let heads = j["heads"].as_array().unwrap();
    assert_eq!(heads.len(), 12);
    let row = heads[0]["probs"][0].as_array().unwrap();
    assert!((row.iter().map(|p| p.as_f64().unwrap()).sum::<f64>() - 1.0).abs() < 1e-5);
    assert!(row.last().unwrap().as_f64().unwrap() > 0.0, "the first query sees the last key (no causal mask)");
}

/// `embed` gives the demo encoder's mean-pooled sentence embedding and, with a plan, its cosine
/// to the original's; `plan auto --objective kl` asks for calibration text, and an encoder
/// (no language-model head) is refused with the reason.
#[test]
fn embed_runs_on_the_encoder_and_the_kl_objective_says_what_it_needs() {
    let demo = crate::fixtures::demo();
    let d = demo.to_str().unwrap();
    let out = weightbench(&["embed", d, "--text", "The river flooded the valley.", "--scheme", "q8_0", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["dim"], 384);
    assert_eq!(j["embedding"].as_array().unwrap().len(), 384);
    let cos = j["cosine_plan"].as_f64().unwrap();
    assert!(0.99 < cos && cos < 1.0, "{cos}");
    let dir = TempDir::new();
    let plan = dir.path().join("plan.toml");
    let p = plan.to_str().unwrap();
    let out = weightbench(&["plan", "auto", d, "--target-bpw", "6", "--objective", "kl", "-o", p]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--objective kl runs the model on calibration text"), "{err}");
    let text = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/calibration.txt");
    let out = weightbench(&[
        "plan",
        "auto",
        d,
        "--target-bpw",
        "6",
        "--objective",
        "kl",
        "--calibration",
        text,
        "-o",
        p,
        "--no-cache",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a language-model head"), "{err}");
    assert!(!plan.exists(), "nothing written");
}

/// `imatrix` on the demo encoder (BERT has no GGUF name table here) writes its entries under the
/// transformers names, and `--importance` reads them back for AWQ.
#[test]
fn imatrix_of_the_encoder_keeps_transformers_names_and_drives_awq() {
    let demo = crate::fixtures::demo();
    let d = demo.to_str().unwrap();
    let dir = TempDir::new();
    let out = dir.path().join("demo.imatrix.gguf");
    let o = out.to_str().unwrap();
    let r = weightbench(&["imatrix", d, "--text", "The river flooded the valley every spring.", "-o", o]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let m = weightbench::checkpoint::imatrix::read_imatrix(&out).unwrap();
    let q = m.vectors.get("encoder.layer.0.attention.self.query.weight").expect("the query's inputs by name");
    assert_eq!(q.len(), 384);
    assert!(q.iter().all(|v| v.is_finite() && *v >= 0.0) && q.iter().any(|v| *v > 0.0));
    let r = weightbench(&[
        "quantize",
        "--dry-run",
        d,
        "--scheme",
        "int4_g128+awq",
        "--importance",
        o,
        "--tensor",
        "layer\\.0\\.attention\\.self\\.query\\.weight",
        "--json",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let j: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let row = &j["tensors"][0];
    assert_eq!(row["method"]["method"], "awq");
    assert!(row["weighted_sse"].as_f64().unwrap() <= row["method"]["plain_weighted_sse"].as_f64().unwrap());
}

/// Without a display (a server over ssh), the bare command says so in one line, points at the
/// headless commands and fails cleanly, instead of winit's error; with a path too.
#[cfg(all(unix, not(target_os = "macos")))]
#[test]
fn no_display_is_one_line_that_points_at_the_headless_commands() {
    for args in [&[][..], &["assets/demo"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_weightbench"))
            .args(args)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("WAYLAND_SOCKET")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("no display") && err.contains("weightbench --help") && err.contains("info"), "{err}");
        assert!(!err.contains("winit"), "{err}");
    }
}
