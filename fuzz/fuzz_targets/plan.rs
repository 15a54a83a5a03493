//! The plan parsers (TOML and JSON): any text gives a plan or an error naming its origin; an
//! accepted plan writes itself as TOML that reads back to the same plan, and resolves against a
//! small model without a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weightbench::codec::DType;
use weightbench::quant::plan::{Described, ModelIdentity, Plan};

fuzz_target!(|data: &[u8]| {
    let Some((&format, text)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let parsed =
        if format & 1 == 0 { Plan::parse_toml(text, "fuzz.toml") } else { Plan::parse_json(text, "fuzz.json") };
    let plan = match parsed {
        Ok(plan) => plan,
        Err(e) => {
            assert!(e.to_string().starts_with("fuzz."), "{e} does not name its origin");
            return;
        }
    };
    let written = plan.to_toml();
    let again = Plan::parse_toml(&written, "again.toml").unwrap_or_else(|e| panic!("{e}\n{written}"));
    assert_eq!(again.to_toml(), written);

    let shapes: Vec<Described> = [
        ("model.embed_tokens.weight", vec![1000, 64], DType::BF16),
        ("model.layers.0.self_attn.q_proj.weight", vec![64, 64], DType::BF16),
        ("model.layers.0.mlp.down_proj.weight", vec![64, 256], DType::BF16),
        ("model.layers.0.input_layernorm.weight", vec![64], DType::F32),
        ("model.layers.1.mlp.up_proj.weight", vec![256, 96], DType::F16),
        ("position_ids", vec![1, 512], DType::I64),
        ("lm_head.weight", vec![1000, 64], DType::BF16),
    ]
    .into_iter()
    .map(|(n, s, d)| (n.to_owned(), s, d))
    .collect();
    if let Ok((resolved, _warnings)) = plan.resolve(&shapes, &ModelIdentity::default()) {
        assert_eq!(resolved.len(), shapes.len());
    }
});
