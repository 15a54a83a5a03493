#!/usr/bin/env python3
"""Writes the small reference fixtures under tests/data/ that Rust tests compare against, each
made by an independent implementation:

  gemma3_blocks.safetensors  gguf-py's `gguf.quants.dequantize` of two ranges (the start and a
                             block-aligned middle) of one gemma-3-270m tensor of each stored
                             type: F32 tensors named "<tensor>@<first element>".
  rtn_numpy.safetensors      symmetric round-to-nearest integer codes computed by numpy in
                             float32 (scale = absmax / qmax by IEEE division, codes =
                             clip(rint(x * (1 / scale)), -qmax, qmax)) for several bit widths
                             and groups, with the squared error in float64 in the metadata.
  minifloats.safetensors     every code of FP4 E2M1, FP6 E2M3 and FP6 E3M2 decoded by
                             ml_dtypes.

    .venv/bin/python scripts/reference/make_fixtures.py [--gemma test-models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf]
"""
import argparse
import os

import ml_dtypes
import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data")
VALUES_PER_RANGE = 512


def gemma_blocks(path):
    reader = GGUFReader(path)
    chosen = {}
    for t in reader.tensors:
        kind = t.tensor_type.name
        if kind not in chosen and int(np.prod(t.shape)) >= 4 * VALUES_PER_RANGE:
            chosen[kind] = t
    out, meta = {}, {}
    for kind, t in sorted(chosen.items()):
        values = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
        block = 256 if values.size % 256 == 0 else 32
        middle = (values.size // 2) // block * block
        for start in (0, middle):
            key = f"{t.name}@{start}"
            out[key] = np.ascontiguousarray(values[start:start + VALUES_PER_RANGE])
            meta[key] = kind
    save_file(out, os.path.join(OUT, "gemma3_blocks.safetensors"), metadata=meta)
    print("gemma3_blocks:", {k: v for k, v in meta.items()})


def heavy_tailed(rng, shape):
    x = rng.standard_t(3, size=shape).astype(np.float32) * np.float32(0.02)
    flat = x.reshape(-1)
    flat[::97] = 0.0
    flat[5::211] = np.float32(0.0625)  # exact multiples hit halfway points for some scales
    return x


def rtn(values, bits, group):
    qmax = np.float32(2 ** (bits - 1) - 1)
    g = values.reshape(-1, group)
    finite = np.isfinite(g)
    absmax = np.where(finite, np.abs(g), np.float32(0)).max(axis=1).astype(np.float32)
    scale = (absmax / qmax).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(scale > 0, np.float32(1) / scale, np.float32(0)).astype(np.float32)
    prod = (g * inv[:, None]).astype(np.float32)
    codes = np.clip(np.rint(prod), -qmax, qmax).astype(np.float32)
    codes = np.where(finite, codes, np.float32(0))
    d = (g - (codes * scale[:, None]).astype(np.float32)).astype(np.float32)
    sq = np.where(finite, (d * d).astype(np.float32), np.float32(0)).astype(np.float64).sum()
    return codes.astype(np.int8).reshape(-1), scale, float(sq)


def rtn_fixture():
    rng = np.random.default_rng(20261130)
    values = heavy_tailed(rng, (16, 256))
    values[3, 17] = np.nan
    out, meta = {"values": values}, {}
    for bits, group in [(2, 16), (3, 64), (4, 32), (4, 128), (8, 128), (8, 256)]:
        codes, scales, sq = rtn(values, bits, group)
        key = f"b{bits}g{group}"
        out[f"codes.{key}"] = codes
        out[f"scales.{key}"] = scales
        meta[f"sq_err.{key}"] = repr(sq)
    save_file(out, os.path.join(OUT, "rtn_numpy.safetensors"), metadata=meta)
    print("rtn_numpy:", meta)


def minifloats():
    out = {}
    for name, dtype, n in [("f4_e2m1", ml_dtypes.float4_e2m1fn, 16), ("f6_e2m3", ml_dtypes.float6_e2m3fn, 64),
                           ("f6_e3m2", ml_dtypes.float6_e3m2fn, 64)]:
        out[name] = np.arange(n, dtype=np.uint8).view(dtype).astype(np.float32)
    save_file(out, os.path.join(OUT, "minifloats.safetensors"), metadata={"source": f"ml_dtypes {ml_dtypes.__version__}"})
    print("minifloats:", {k: v.size for k, v in out.items()})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gemma", default="test-models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    gemma_blocks(args.gemma)
    rtn_fixture()
    minifloats()


if __name__ == "__main__":
    main()
