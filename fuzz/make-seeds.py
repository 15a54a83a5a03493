#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora under fuzz/seeds/<target>/: the hostile corpus' files
for each reader (tests/data/hostile), and small valid files of every kind the readers take, made
here with numpy, safetensors and gguf-py (the formats' own writers). Deterministic: running it
again writes the same bytes. Usage: .venv/bin/python fuzz/make-seeds.py"""

import json
import random
import struct
from pathlib import Path

import numpy as np
import gguf
from safetensors.numpy import save

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"
HOSTILE = ROOT / "tests" / "data" / "hostile"
rng = np.random.default_rng(20261206)


def put(target, name, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def hostile(prefix, suffix, target, lead=b""):
    for case in sorted(HOSTILE.iterdir()):
        if case.name.startswith(prefix):
            for f in sorted(case.iterdir()):
                if f.name.endswith(suffix) and f.stat().st_size <= 64 << 10:
                    put(target, f"hostile-{case.name}", lead + f.read_bytes())


def safetensors_seeds():
    hostile("st-", ".safetensors", "safetensors_header")
    for f in ["minifloats.safetensors", "gemma3_blocks.safetensors"]:
        put("safetensors_header", f, (ROOT / "tests" / "data" / f).read_bytes())
    kinds = {
        "f32": np.float32, "f16": np.float16, "f64": np.float64, "i8": np.int8, "u8": np.uint8,
        "i16": np.int16, "i32": np.int32, "i64": np.int64, "u16": np.uint16, "bool": np.bool_,
    }
    for name, dt in kinds.items():
        tensors = {
            "model.layers.0.mlp.up_proj.weight": (rng.standard_normal((4, 8)) * 3).astype(dt),
            "model.norm.weight": np.ones(8, dtype=dt),
            "scalar": np.array(2, dtype=dt),
            "empty": np.zeros((0, 3), dtype=dt),
        }
        put("safetensors_header", f"valid-{name}.safetensors", save(tensors, metadata={"format": "pt"}))
    # BF16 and F8, which numpy has no type for: the header written by hand.
    for dtype, size in [("BF16", 2), ("F8_E4M3", 1), ("F8_E5M2", 1)]:
        header = json.dumps({"__metadata__": {"format": "pt"},
                             "w": {"dtype": dtype, "shape": [2, 4], "data_offsets": [0, 8 * size]}}).encode()
        put("safetensors_header", f"valid-{dtype.lower()}.safetensors",
            struct.pack("<Q", len(header)) + header + bytes(rng.integers(0, 256, 8 * size, dtype=np.uint8)))


def index_seeds():
    hostile("index-", ".json", "safetensors_index")
    index = {"metadata": {"total_size": 96},
             "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                            "model.layers.0.mlp.up_proj.weight": "model-00002-of-00002.safetensors",
                            "lm_head.weight": "model-00002-of-00002.safetensors"}}
    put("safetensors_index", "valid.index.json", json.dumps(index, indent=2).encode())
    put("safetensors_index", "valid-no-metadata.index.json", json.dumps({"weight_map": {}}).encode())


def gguf_file(path, fill):
    w = gguf.GGUFWriter(str(path), "llama")
    fill(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data = path.read_bytes()
    path.unlink()
    return data


def gguf_seeds(tmp):
    hostile("gguf-", ".gguf", "gguf")

    def metadata(w):
        w.add_uint32("llama.block_count", 1)
        w.add_float32("llama.rope.freq_base", 10000.0)
        w.add_bool("general.flag", True)
        w.add_int64("general.big", -5)
        w.add_array("tokenizer.ggml.tokens", ["<s>", "a", "b"])
        w.add_array("tokenizer.ggml.scores", [0.0, -1.0, -2.0])
        w.add_string("general.name", "seed")

    types = [t for t in gguf.GGMLQuantizationType if t.name not in ("Q4_2", "Q4_3", "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8")]
    for qt in types:
        if qt not in gguf.GGML_QUANT_SIZES:
            continue
        block, size = gguf.GGML_QUANT_SIZES[qt]
        def fill(w, qt=qt, block=block, size=size):
            metadata(w)
            raw = rng.integers(0, 256, 2 * size, dtype=np.uint8)
            if qt.name in ("F32",):
                raw = rng.standard_normal(2 * block).astype(np.float32).view(np.uint8)
            elif qt.name in ("F16",):
                raw = rng.standard_normal(2 * block).astype(np.float16).view(np.uint8)
            w.add_tensor("blk.0.ffn_up.weight", raw, raw_shape=(1, 2 * size), raw_dtype=qt)
        try:
            put("gguf", f"valid-{qt.name.lower()}.gguf", gguf_file(tmp / "s.gguf", fill))
        except Exception as e:  # a type gguf-py cannot write: say so, go on
            print(f"skipped {qt.name}: {e}")


def imatrix_seeds(tmp):
    hostile("imatrix-", ".gguf", "imatrix")
    # llama.cpp's legacy binary format: count, then per entry name, calls, nval, values.
    legacy = struct.pack("<i", 2)
    for name, n in [("blk.0.ffn_up.weight", 8), ("blk.0.attn_q.weight", 4)]:
        legacy += struct.pack("<i", len(name)) + name.encode() + struct.pack("<ii", 10, n)
        legacy += (rng.random(n).astype(np.float32)).tobytes()
    legacy += struct.pack("<i", 10) + struct.pack("<i", 4) + b"wiki"
    put("imatrix", "valid-legacy.imatrix", legacy)

    def fill(w):
        w.add_string("general.type", "imatrix")
        w.add_array("imatrix.datasets", ["wiki"])
        w.add_uint32("imatrix.chunk_count", 10)
        w.add_uint32("imatrix.chunk_size", 512)
        w.add_tensor("blk.0.ffn_up.weight.in_sum2", rng.random((1, 8)).astype(np.float32))
        w.add_tensor("blk.0.ffn_up.weight.counts", np.array([[10.0]], dtype=np.float32))
        w.add_tensor("blk.0.ffn_gate_exps.weight.in_sum2", rng.random((2, 4)).astype(np.float32))
        w.add_tensor("blk.0.ffn_gate_exps.weight.counts", np.array([[3.0, 7.0]], dtype=np.float32))
    put("imatrix", "valid.imatrix.gguf", gguf_file(tmp / "i.gguf", fill))


def plan_seeds():
    for case in sorted(HOSTILE.iterdir()):
        if case.name.startswith("plan-"):
            for f in sorted(case.iterdir()):
                lead = b"\x01" if f.suffix == ".json" else b"\x00"
                put("plan", f"hostile-{case.name}", lead + f.read_bytes())
    put("plan", "demo-plan.toml", b"\x00" + (ROOT / "assets" / "demo-plan.toml").read_bytes())
    toml = """[model]
tensors = 6
bytes = 1000

[[rule]]
match = "*.weight"
scheme = "q4_k"

[[rule]]
match = "re:model\\\\.layers\\\\.[0-9]+\\\\.mlp\\\\..*"
scheme = "int4_g128+gptq"

[tensor."lm_head.weight"]
scheme = "q8_0"
pinned = true
"""
    put("plan", "rules.toml", b"\x00" + toml.encode())
    plan = {"rule": [{"match": "*", "scheme": "int8"}, {"match": "*.mlp.*", "scheme": "nf4"}],
            "tensor": {"model.embed_tokens.weight": {"scheme": "keep"}}}
    put("plan", "rules.json", b"\x01" + json.dumps(plan).encode())


def codec_seeds():
    # The first byte picks the format (modulo the target's list); two kinds of payload each.
    r = random.Random(7)
    for pick in range(96):
        put("codecs", f"pick-{pick:03}-bytes", bytes([pick]) + bytes(r.randrange(256) for _ in range(600)))
        values = (rng.standard_normal(512) * 0.05).astype(np.float32)
        values[r.randrange(512)] = 3.0  # an outlier
        put("codecs", f"pick-{pick:03}-weights", bytes([pick]) + bytes(3) + values.tobytes())


def main():
    # Everything but the inputs fuzzing found (found-*, kept as regression seeds) is remade.
    for f in SEEDS.glob("*/*"):
        if not f.name.startswith("found-"):
            f.unlink()
    tmp = ROOT / "fuzz" / "target" / "seed-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    safetensors_seeds()
    index_seeds()
    gguf_seeds(tmp)
    imatrix_seeds(tmp)
    plan_seeds()
    codec_seeds()
    for d in sorted(SEEDS.iterdir()):
        files = list(d.iterdir())
        print(f"{d.name}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")


main()
