#!/usr/bin/env python3
"""Checks weightbench's GGUF decoding against llama.cpp's gguf-py (`gguf.quants.dequantize`).

1. Fixture blocks: for every block type that both sides decode, a GGUF file of random blocks
   (random bytes, with every f16 scale field set to a random finite value) is written with
   gguf-py's GGUFWriter.
2. Real models: the GGUF files given on the command line (SmolLM2-135M Q4_1, gemma-3-270m Q4_K_M).

Each file is converted with `weightbench convert --keep-names` (plain dequantization to F32) and
every tensor is compared with gguf-py's dequantization: the f32 bits must be identical (NaNs
compare equal), and the shapes must agree. Exits non-zero on any mismatch.

    .venv/bin/python scripts/reference/check_gguf.py [--bin target/debug/weightbench] [GGUF...]
"""
import argparse
import collections
import os
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGMLQuantizationType as T, GGUFReader, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize
from safetensors.numpy import load_file

# Byte offsets of f16 fields inside one block, per type (ggml-common.h).
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
    T.IQ4_NL: [0], T.IQ4_XS: [0], T.TQ1_0: [52], T.TQ2_0: [64],
    T.IQ2_XXS: [0], T.IQ2_XS: [0], T.IQ2_S: [0], T.IQ3_XXS: [0], T.IQ3_S: [0], T.IQ1_S: [0],
}
# IQ1_M spreads its f16 scale over four nibbles (random bytes give every case, NaN and Inf too).
BLOCK_TYPES = list(F16_FIELDS) + [T.MXFP4, T.NVFP4, T.IQ1_M]


def random_blocks(rng, qtype, n_blocks):
    _, size = GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for at in F16_FIELDS.get(qtype, []):
        scales = (rng.standard_normal(n_blocks) * 0.05).astype(np.float16)
        blocks[:, at:at + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return blocks


def write_fixture(path, rng):
    w = GGUFWriter(path, "llama")
    w.add_block_count(1)
    rows = 64
    for qtype in BLOCK_TYPES:
        block_elems, _ = GGML_QUANT_SIZES[qtype]
        cols = max(256, block_elems)
        blocks = random_blocks(rng, qtype, rows * cols // block_elems)
        w.add_tensor(f"fixture.{qtype.name}", blocks.reshape(rows, -1), raw_dtype=qtype)
    w.add_tensor("fixture.F32", rng.standard_normal((3, 64)).astype(np.float32))
    w.add_tensor("fixture.F16", rng.standard_normal((3, 64)).astype(np.float16))
    bf16 = rng.integers(0, 65536, size=(3, 64), dtype=np.uint16)
    w.add_tensor("fixture.BF16", bf16.view(np.uint8).reshape(3, 128), raw_dtype=T.BF16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def same_bits(a, b):
    a = a.astype(np.float32).reshape(-1)
    b = b.astype(np.float32).reshape(-1)
    if a.shape != b.shape:
        return False
    nan = np.isnan(a) & np.isnan(b)
    return bool(np.all((a.view(np.uint32) == b.view(np.uint32)) | nan))


def check(binary, gguf_path, workdir):
    out = os.path.join(workdir, os.path.basename(gguf_path) + ".st")
    subprocess.run([binary, "convert", "--keep-names", "--overwrite", "-o", out, gguf_path], check=True,
                   stdout=subprocess.DEVNULL)
    ours = load_file(os.path.join(out, "model.safetensors"))
    reader = GGUFReader(gguf_path)
    per_type = collections.Counter()
    for t in reader.tensors:
        ref = dequantize(t.data, t.tensor_type)
        got = ours.get(t.name)
        if got is None:
            sys.exit(f"{gguf_path}: {t.name} missing from weightbench's output")
        expected_shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        if got.shape != expected_shape:
            sys.exit(f"{gguf_path}: {t.name}: shape {got.shape}, gguf-py {expected_shape}")
        if not same_bits(got, ref):
            diff = np.flatnonzero(got.reshape(-1).view(np.uint32) != ref.astype(np.float32).reshape(-1).view(np.uint32))
            i = diff[0]
            sys.exit(f"{gguf_path}: {t.name} ({t.tensor_type.name}): {len(diff)} values differ; first at {i}: "
                     f"{got.reshape(-1)[i]!r} vs {ref.reshape(-1)[i]!r}")
        per_type[t.tensor_type.name] += int(np.prod(t.shape))
    summary = ", ".join(f"{k} {v}" for k, v in sorted(per_type.items()))
    print(f"ok  {gguf_path}: {len(reader.tensors)} tensors bit-identical to gguf-py ({summary} values)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/debug/weightbench")
    ap.add_argument("gguf", nargs="*")
    args = ap.parse_args()
    rng = np.random.default_rng(20261128)
    with tempfile.TemporaryDirectory() as tmp:
        fixture = os.path.join(tmp, "fixture-blocks.gguf")
        write_fixture(fixture, rng)
        check(args.bin, fixture, tmp)
        for path in args.gguf:
            check(args.bin, path, tmp)


if __name__ == "__main__":
    main()
