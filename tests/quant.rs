//! Quantization against an independent reference: numpy's float32 round-to-nearest codes
//! (tests/data/rtn_numpy.safetensors, made by scripts/reference/make_fixtures.py), on the CPU
//! and on the GPU, through the kernels and through the quant layer's preview.

use weightbench::analysis::Cancel;
use weightbench::checkpoint::Checkpoint;
use weightbench::compute::cpu::CpuBackend;
use weightbench::compute::{CollectCodes, IntSpec, TensorRef};
use weightbench::quant::preview_int;

use crate::fixtures::{data, gpu};

/// (spec, codes, scales, squared error) of every spec in the fixture.
fn cases(fixture: &Checkpoint) -> Vec<(IntSpec, Vec<i8>, Vec<f32>, f64)> {
    let mut out = Vec::new();
    for (key, sq) in fixture.metadata() {
        let Some(spec) = key.strip_prefix("sq_err.b") else { continue };
        let (bits, group) = spec.split_once('g').unwrap();
        let spec = IntSpec { bits: bits.parse().unwrap(), group: group.parse().unwrap() };
        let codes = fixture.decode_all(fixture.require(&format!("codes.b{bits}g{group}")).unwrap()).unwrap();
        let scales = fixture.decode_all(fixture.require(&format!("scales.b{bits}g{group}")).unwrap()).unwrap();
        let sq: f64 = sq.as_str().unwrap().parse().unwrap();
        out.push((spec, codes.iter().map(|&c| c as i8).collect(), scales, sq));
    }
    assert_eq!(out.len(), 6, "every spec of the fixture");
    out
}

#[test]
fn integer_codes_equal_numpys_on_the_cpu() {
    let fixture = Checkpoint::open(data("rtn_numpy.safetensors")).unwrap();
    let values = TensorRef::new(&fixture, fixture.require("values").unwrap());
    for (spec, codes, scales, sq) in cases(&fixture) {
        let mut sink = CollectCodes::default();
        let err = CpuBackend.quantize_int(&values, &spec, &mut sink, &Cancel::new()).unwrap();
        assert_eq!(sink.scales, scales, "{spec:?}: scales");
        assert_eq!(sink.codes, codes, "{spec:?}: codes");
        assert!((err.sq_err - sq).abs() <= 1e-12 * sq, "{spec:?}: squared error {} vs numpy {sq}", err.sq_err);
        assert_eq!(err.values, 16 * 256 - 1, "the NaN is left out");
        // The preview reports the same error, through the backend of the quant layer.
        let p = preview_int(&CpuBackend, &values, &spec, &Cancel::new()).unwrap();
        assert_eq!((p.sq_err, p.computed.backend.as_str()), (err.sq_err, "cpu"));
        let rel = p.rel_error.unwrap();
        assert!(rel > 0.0 && rel < 1.0 && p.sqnr_db.unwrap() > 0.0);
    }
}

#[test]
fn integer_codes_equal_numpys_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    let fixture = Checkpoint::open(data("rtn_numpy.safetensors")).unwrap();
    let values = TensorRef::new(&fixture, fixture.require("values").unwrap());
    for (spec, codes, scales, sq) in cases(&fixture) {
        let mut sink = CollectCodes::default();
        let err = gpu.quantize_int(&values, &spec, &mut sink, &Cancel::new()).unwrap();
        assert_eq!(sink.scales, scales, "{spec:?}: scales");
        assert_eq!(sink.codes, codes, "{spec:?}: codes");
        assert!((err.sq_err - sq).abs() <= 1e-5 * sq, "{spec:?}: squared error {} vs numpy {sq}", err.sq_err);
    }
}

/// llama.cpp's own bytes (tests/data/ggml_encode.safetensors, from `ggml_quantize_chunk`).
#[test]
fn ggml_block_encoders_give_llama_cpps_bytes() {
    use weightbench::codec::{DType, decode, ggml::encode_row};
    let fixture = Checkpoint::open(data("ggml_encode.safetensors")).unwrap();
    let imatrix = fixture.decode_all(fixture.require("imatrix").unwrap()).unwrap();
    let types = [
        ("Q8_0", DType::Q8_0),
        ("Q4_0", DType::Q4_0),
        ("Q4_1", DType::Q4_1),
        ("Q5_0", DType::Q5_0),
        ("Q5_1", DType::Q5_1),
        ("Q2_K", DType::Q2K),
        ("Q3_K", DType::Q3K),
        ("Q4_K", DType::Q4K),
        ("Q5_K", DType::Q5K),
        ("Q6_K", DType::Q6K),
    ];
    let mut report = Vec::new();
    for input in ["synthetic", "minilm"] {
        let t = fixture.require(&format!("input.{input}")).unwrap();
        let values = fixture.decode_all(t).unwrap();
        let n = t.shape[1] as usize;
        for (name, dtype) in types {
            for weighted in [false, true] {
                let key = format!("{name}.{input}{}", if weighted { ".imatrix" } else { "" });
                let want = fixture.raw_bytes(fixture.require(&key).unwrap()).unwrap();
                let mut ours = Vec::new();
                for row in values.chunks(n) {
                    encode_row(dtype, row, weighted.then_some(imatrix.as_slice()), &mut ours).unwrap();
                }
                assert_eq!(ours.len(), want.len(), "{key}: length");
                let bb = dtype.block_bytes();
                let differ = ours.chunks(bb).zip(want.chunks(bb)).filter(|(a, b)| a != b).count();
                if differ > 0 {
                    // Where bytes differ, ours may not be worse: compare the squared errors.
                    let sse = |bytes: &[u8]| {
                        let mut back = vec![0f32; values.len()];
                        decode(dtype, bytes, &mut back).unwrap();
                        back.iter().zip(&values).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>()
                    };
                    report.push(format!(
                        "{key}: {differ} of {} blocks differ; sse ours {:.6e} vs llama.cpp {:.6e}",
                        ours.len() / bb,
                        sse(&ours),
                        sse(want)
                    ));
                }
            }
        }
    }
    assert!(report.is_empty(), "bytes differ from llama.cpp:\n{}", report.join("\n"));
}
