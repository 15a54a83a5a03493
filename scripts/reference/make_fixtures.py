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
  ggml_encode.safetensors    rows encoded by llama.cpp's own `ggml_quantize_chunk` (the
                             xllamacpp wheel's shared library, through ctypes) as Q8_0 … Q5_1
                             and Q2_K … Q6_K, without and with an importance matrix, for a
                             synthetic input (heavy tails, outlier columns, zero, constant, tiny
                             and positive rows) and 8 rows of MiniLM's
                             encoder.layer.0.output.dense.weight; the legacy types also by
                             gguf-py's `quantize` (checked equal here).

    .venv/bin/pip install -r scripts/reference/requirements-fixtures.txt
    .venv/bin/python scripts/reference/make_fixtures.py [--gemma test-models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf]
        [--minilm test-models/all-MiniLM-L6-v2] [--only NAME]
"""
import argparse
import ctypes
import glob
import os

import ml_dtypes
import numpy as np
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize, quantize
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


GGML_TYPES = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]


def llama_cpp():
    import xllamacpp
    (path,) = glob.glob(os.path.join(os.path.dirname(xllamacpp.__file__), "xllamacpp*.so"))
    lib = ctypes.CDLL(path)
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    lib.ggml_quantize_init.argtypes = [ctypes.c_int]
    return lib, xllamacpp.__version__ if hasattr(xllamacpp, "__version__") else "?"


def ggml_quantize(lib, name, rows, imatrix):
    qtype = GGMLQuantizationType[name]
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    nrows, n = rows.shape
    out = np.zeros(nrows * n * 4, dtype=np.uint8)
    lib.ggml_quantize_init(int(qtype))
    w = None if imatrix is None else np.ascontiguousarray(imatrix, dtype=np.float32).ctypes.data
    size = lib.ggml_quantize_chunk(int(qtype), rows.ctypes.data, out.ctypes.data, 0, nrows, n, w)
    return out[:size].copy()


def synthetic_rows(rng, n):
    t = (rng.standard_t(3, size=(8, n)) * 0.02).astype(np.float32)
    rows = np.empty((8, n), dtype=np.float32)
    rows[0] = t[0]
    rows[1] = t[1]
    rows[1, ::97] *= 30  # outlier input channels
    rows[2] = 0
    rows[3] = 0.5
    rows[4] = t[4] * np.float32(1e-18)  # near the encoders' "all zero" threshold
    rows[5] = t[5]
    rows[5, : n // 2] = 0  # zero blocks beside normal ones
    rows[6] = rng.uniform(0, 1, n).astype(np.float32)  # positive only: the minimum matters
    rows[7] = np.round(t[7] * 16) / 16  # exact ties
    return rows


def ggml_encode(minilm):
    lib, version = llama_cpp()
    rng = np.random.default_rng(13)
    n = 1536
    real = None
    for f in sorted(glob.glob(os.path.join(minilm, "*.safetensors"))):
        from safetensors import safe_open
        with safe_open(f, "np") as h:
            if "encoder.layer.0.output.dense.weight" in h.keys():
                real = h.get_tensor("encoder.layer.0.output.dense.weight")[:8].astype(np.float32)
    inputs = {"synthetic": synthetic_rows(rng, n), "minilm": real}
    imatrix = (rng.chisquare(2, n) * 0.5 + 0.01).astype(np.float32)
    out = {"imatrix": imatrix}
    for key, rows in inputs.items():
        out[f"input.{key}"] = rows
        for name in GGML_TYPES:
            plain = ggml_quantize(lib, name, rows, None)
            out[f"{name}.{key}"] = plain
            out[f"{name}.{key}.imatrix"] = ggml_quantize(lib, name, rows, imatrix)
            if not name.endswith("_K"):
                # gguf-py takes numpy's min, which may be -0.0 where llama.cpp's loop keeps the
                # first zero it meets: the same values, a different sign bit on a zero minimum.
                qtype = GGMLQuantizationType[name]
                py = quantize(rows, qtype).reshape(-1)
                same_values = np.array_equal(dequantize(py, qtype), dequantize(plain, qtype))
                if not same_values:
                    raise SystemExit(f"{name} {key}: gguf-py and llama.cpp disagree")
                differ = int((py != plain).sum())
                if differ:
                    print(f"  {name} {key}: {differ} bytes differ from gguf-py (the sign of a zero minimum)")
    meta = {"source": f"ggml_quantize_chunk of xllamacpp {version}; legacy types decode as gguf-py's quantize"}
    save_file(out, os.path.join(OUT, "ggml_encode.safetensors"), metadata=meta)
    print("ggml_encode:", len(out), "tensors", meta)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gemma", default="test-models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf")
    ap.add_argument("--minilm", default="test-models/all-MiniLM-L6-v2")
    ap.add_argument("--only", help="make only this fixture (gemma3_blocks, rtn_numpy, minifloats, ggml_encode)")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    makers = {"gemma3_blocks": lambda: gemma_blocks(args.gemma), "rtn_numpy": rtn_fixture,
              "minifloats": minifloats, "ggml_encode": lambda: ggml_encode(args.minilm)}
    for name, make in makers.items():
        if args.only in (None, name):
            make()


if __name__ == "__main__":
    main()
