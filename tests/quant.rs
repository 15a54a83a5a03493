//! Quantization against independent references: compressed-tensors' own integer and float8
//! functions and bitsandbytes' NF4 kernel (tests/data/schemes_reference.safetensors, made by
//! scripts/reference/make_fixtures.py with torch on the CPU), on the CPU and on the GPU, through
//! the kernels and through the quant layer's streaming encoder; llama.cpp's block encoders.

use weightbench::analysis::Cancel;
use weightbench::checkpoint::Checkpoint;
use weightbench::codec::int::Arith;
use weightbench::compute::cpu::CpuBackend;
use weightbench::compute::{Backend, CollectCodes, TensorRef};
use weightbench::quant::{CollectBytes, Job, Scheme, encode};

use crate::fixtures::{data, gpu};

const INT_CASES: [&str; 6] = ["int4_g32", "int8_ch", "int4_g128_asym", "int3_g64", "int2_g32_asym", "int8_ch_asym"];
const DTYPES: [&str; 3] = ["f32", "bf16", "f16"];

fn fixture() -> Checkpoint {
    Checkpoint::open(data("schemes_reference.safetensors")).unwrap()
}

fn values_of(f: &Checkpoint, name: &str) -> Vec<f32> {
    f.decode_all(f.require(name).unwrap()).unwrap()
}

/// Every integer case, every dtype: codes, scales, zero points and decoded values equal
/// compressed-tensors' on `backend`.
fn integer_schemes_match(backend: &dyn Backend) {
    let f = fixture();
    for d in DTYPES {
        let t = f.require(&format!("values.{d}")).unwrap();
        let src = TensorRef::new(&f, t);
        for case in INT_CASES {
            let key = format!("{case}.{d}");
            let scheme: Scheme = case.parse().unwrap();
            let spec = scheme.int_spec(t.shape[1], Arith::of(t.dtype)).unwrap();
            let mut sink = CollectCodes::default();
            let ran = backend.quantize_int(&src, &spec, None, &mut sink, &Cancel::new()).unwrap();
            let want_codes: Vec<i8> = values_of(&f, &format!("codes.{key}")).iter().map(|&c| c as i8).collect();
            let want_scales = values_of(&f, &format!("scale.{key}"));
            let want_zero: Vec<i8> = values_of(&f, &format!("zero.{key}")).iter().map(|&z| z as i8).collect();
            let scales: Vec<f32> = sink.params.iter().map(|p| p.scale).collect();
            let zeros: Vec<i8> = sink.params.iter().map(|p| p.zero).collect();
            assert_eq!(scales, want_scales, "{key}: scales");
            assert_eq!(zeros, want_zero, "{key}: zero points");
            let differ = sink.codes.iter().zip(&want_codes).filter(|(a, b)| a != b).count();
            assert_eq!(differ, 0, "{key}: {differ} codes differ from compressed-tensors'");
            let mut decoded = Vec::new();
            weightbench::codec::int::decode(&sink.codes, &sink.params, &spec, &mut decoded);
            assert_eq!(decoded, values_of(&f, &format!("decoded.{key}")), "{key}: decoded values");
            assert_eq!(ran.value.values, t.numel());
        }
    }
}

#[test]
fn integer_schemes_equal_compressed_tensors_on_the_cpu() {
    integer_schemes_match(&CpuBackend);
}

#[test]
fn integer_schemes_equal_compressed_tensors_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    integer_schemes_match(gpu.as_ref());
}

/// Runs the quant layer's encoder on a fixture tensor, keeping every byte and decoded value.
fn encode_fixture(f: &Checkpoint, values: &str, scheme: &str) -> (CollectBytes, Vec<f32>) {
    encode_fixture_on(&CpuBackend, f, values, scheme)
}

fn encode_fixture_on(backend: &dyn Backend, f: &Checkpoint, values: &str, scheme: &str) -> (CollectBytes, Vec<f32>) {
    let t = f.require(values).unwrap();
    let src = TensorRef::new(f, t);
    let job = Job { dtype: t.dtype, stored_bytes: t.bytes, ..Job::of_f32(&src) };
    let mut bytes = CollectBytes::default();
    let mut decoded = vec![0f32; t.numel() as usize];
    let mut put = |first: u64, v: &[f32]| {
        decoded[first as usize..first as usize + v.len()].copy_from_slice(v);
        Ok(())
    };
    let scheme: Scheme = scheme.parse().unwrap();
    let enc = encode(backend, &job, &scheme, &mut bytes, Some(&mut put), &Cancel::new()).unwrap();
    let asked = if backend.asks_gpu() { "gpu" } else { "cpu" };
    assert_eq!(enc.on.backend, asked, "{scheme} ran on {:?}", enc.on);
    assert_eq!(enc.bytes, bytes.bytes.iter().map(|b| b.len() as u64).sum::<u64>(), "{scheme}: bytes announced");
    assert_eq!(enc.bytes, scheme.bytes(&t.shape, t.dtype, t.bytes, None), "{scheme}: the scheme's own size");
    (bytes, decoded)
}

#[test]
fn packed_integer_parts_are_compressed_tensors_pack_quantized_words() {
    let f = fixture();
    for d in DTYPES {
        for case in INT_CASES {
            let key = format!("{case}.{d}");
            let (got, decoded) = encode_fixture(&f, &format!("values.{d}"), case);
            let roles: Vec<&str> = got.parts.iter().map(|p| p.role.as_str()).collect();
            assert_eq!(decoded, values_of(&f, &format!("decoded.{key}")), "{key}: decoded");
            if case.starts_with("int8") {
                let want: Vec<u8> = values_of(&f, &format!("codes.{key}")).iter().map(|&c| c as i8 as u8).collect();
                assert_eq!(got.bytes[0], want, "{key}: int8 codes");
            } else {
                let want = f.raw_bytes(f.require(&format!("packed.{key}")).unwrap()).unwrap();
                assert_eq!(got.bytes[0], want, "{key}: packed words");
            }
            let scale = f.raw_bytes(f.require(&format!("scale.{key}")).unwrap()).unwrap();
            assert_eq!(got.bytes[1], scale, "{key}: scale bytes ({roles:?})");
            if case.ends_with("_asym") && !case.starts_with("int8") {
                let want = f.raw_bytes(f.require(&format!("packed_zero.{key}")).unwrap()).unwrap();
                assert_eq!(got.bytes[2], want, "{key}: packed zero points");
            }
        }
    }
}

#[test]
fn fp8_and_nf4_equal_their_references() {
    fp8_and_nf4_match(&CpuBackend);
}

#[test]
fn fp8_and_nf4_equal_their_references_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    fp8_and_nf4_match(gpu.as_ref());
    // f16 and bf16 too: the GPU's bytes are the CPU's.
    let f = fixture();
    for d in DTYPES {
        for scheme in ["f16", "bf16"] {
            let (g, gy) = encode_fixture_on(gpu.as_ref(), &f, &format!("values.{d}"), scheme);
            let (c, cy) = encode_fixture_on(&CpuBackend, &f, &format!("values.{d}"), scheme);
            assert_eq!((g.bytes, gy), (c.bytes, cy), "{scheme} of {d}");
        }
    }
}

fn fp8_and_nf4_match(backend: &dyn Backend) {
    let f = fixture();
    for d in DTYPES {
        for scheme in ["fp8_e4m3", "fp8_e4m3_ch"] {
            let key = format!("{scheme}.{d}");
            let (got, decoded) = encode_fixture_on(backend, &f, &format!("values.{d}"), scheme);
            assert_eq!(got.bytes[0], f.raw_bytes(f.require(&format!("codes.{key}")).unwrap()).unwrap(), "{key}: codes");
            assert_eq!(got.bytes[1], f.raw_bytes(f.require(&format!("scale.{key}")).unwrap()).unwrap(), "{key}: scale");
            assert_eq!(decoded, values_of(&f, &format!("decoded.{key}")), "{key}: decoded");
        }
        for suffix in ["", ".odd"] {
            let key = format!("nf4.{d}{suffix}");
            let (got, decoded) = encode_fixture_on(backend, &f, &format!("values.{d}{suffix}"), "nf4");
            assert_eq!(got.bytes[0], f.raw_bytes(f.require(&format!("codes.{key}")).unwrap()).unwrap(), "{key}: codes");
            let absmax: Vec<f32> =
                got.bytes[1].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            assert_eq!(absmax, values_of(&f, &format!("absmax.{key}")), "{key}: absmax");
            assert_eq!(decoded, values_of(&f, &format!("decoded.{key}")), "{key}: decoded");
        }
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
        ("IQ4_NL", DType::IQ4NL),
        ("IQ4_XS", DType::IQ4XS),
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

#[test]
fn the_error_map_and_a_row_encoded_alone_agree_with_the_whole_tensors_decoded_values() {
    use weightbench::quant::Plan;
    use weightbench::quant::inspect::{encode_row, error_map};
    let dir = crate::fixtures::TempDir::new();
    let (rows, cols) = (37usize, 96usize);
    let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0).powi(3)).collect();
    let path = dir.join("m.safetensors");
    crate::fixtures::write_safetensors(&path, &[crate::fixtures::Spec::f32("m.weight", &[rows, cols], &w)]);
    let ckpt = Checkpoint::open(&path).unwrap();
    let t = &ckpt.tensors()[0];
    for scheme in ["q4_0", "int4_g32", "int3_ch_asym", "q8_0"] {
        let plan = Plan::single(scheme).unwrap();
        let (resolved, _) = plan.resolve(&[(t.name.clone(), t.shape.clone(), t.dtype)], &Default::default()).unwrap();
        let mut whole = Vec::new();
        let mut keep = |_: u64, v: &[f32]| -> Result<(), weightbench::compute::ComputeError> {
            whole.extend_from_slice(v);
            Ok(())
        };
        let cancel = Cancel::new();
        let row =
            weightbench::quant::preview_tensor(&CpuBackend, &ckpt, t, &resolved[0], None, Some(&mut keep), &cancel)
                .unwrap();
        // Tiles of 8 × 10 (the last ones partial): each the max |W − Ŵ| over its positions.
        let map = error_map(&CpuBackend, &ckpt, t, &resolved[0], None, 5, &cancel).unwrap();
        assert_eq!((map.tile_rows, map.tile_cols, map.grid_rows, map.grid_cols), (8, 20, 5, 5));
        assert_eq!(map.preview.sse, row.sse, "{scheme}: the map's encoding is the preview's");
        for (k, tile) in map.tiles.iter().enumerate() {
            let (ti, tj) = (k / map.grid_cols, k % map.grid_cols);
            let mut want = 0f32;
            for r in ti * 8..((ti + 1) * 8).min(rows) {
                for c in tj * 20..((tj + 1) * 20).min(cols) {
                    want = want.max((w[r * cols + c] - whole[r * cols + c]).abs());
                }
            }
            assert_eq!(*tile, want, "{scheme}: tile {k}");
        }
        assert_eq!(map.row_max.iter().copied().fold(0f32, f32::max), map.tiles.iter().copied().fold(0f32, f32::max));
        // Row 13 encoded alone decodes as it does in the whole tensor.
        let one = encode_row(&CpuBackend, &ckpt, t, &resolved[0], None, 13, &cancel).unwrap();
        assert_eq!(one.values, w[13 * cols..14 * cols]);
        assert!(
            one.decoded.iter().zip(&whole[13 * cols..14 * cols]).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{scheme}"
        );
        let (levels, values) = one.group_levels(usize::from(one.group < cols));
        assert_eq!(values.len(), one.group.min(cols));
        assert!(levels.windows(2).all(|p| p[0] < p[1]) && !levels.is_empty());
        let bits = if scheme.starts_with("q8") {
            8
        } else if scheme.starts_with("int3") {
            3
        } else {
            4
        };
        assert!(levels.len() <= 1 << bits, "{scheme}: at most 2^{bits} levels, got {}", levels.len());
    }
}
