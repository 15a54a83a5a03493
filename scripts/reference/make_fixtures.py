#!/usr/bin/env python3
"""Writes the small reference fixtures under tests/data/ that Rust tests compare against, each
made by an independent implementation:

  gemma3_blocks.safetensors  gguf-py's `gguf.quants.dequantize` of two ranges (the start and a
                             block-aligned middle) of one gemma-3-270m tensor of each stored
                             type: F32 tensors named "<tensor>@<first element>".
  schemes_reference.safetensors  compressed-tensors' own integer (int2..int8, groups or
                             channels, symmetric or with zero points; packed int32 words) and
                             float8 schemes (per tensor, per channel) for f32, bf16 and f16
                             tensors: codes, scales, zero points, decoded values; and NF4 by
                             bitsandbytes' reference CPU kernel.
  minifloats.safetensors     every code of FP4 E2M1, FP6 E2M3 and FP6 E3M2 decoded by
                             ml_dtypes.
  ggml_encode.safetensors    rows encoded by llama.cpp's own `ggml_quantize_chunk` (the
                             xllamacpp wheel's shared library, through ctypes) as Q8_0 … Q5_1
                             Q2_K … Q6_K, IQ4_NL and IQ4_XS, without and with an importance matrix, for a
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


INT_CASES = [("int4_g32", 4, 32, False), ("int8_ch", 8, None, False), ("int4_g128_asym", 4, 128, True),
             ("int3_g64", 3, 64, False), ("int2_g32_asym", 2, 32, True), ("int8_ch_asym", 8, None, True)]


def schemes_fixture():
    """Codes, scales, zero points and decoded values of compressed-tensors' integer and float8
    schemes (its own calculate_qparams, quantize, dequantize and pack_to_int32, with torch on the
    CPU) for f32, bf16 and f16 tensors; NF4 by bitsandbytes' reference CPU kernel."""
    import bitsandbytes  # noqa: F401  (registers torch.ops.bitsandbytes)
    import compressed_tensors
    import torch
    from compressed_tensors.compressors.pack_quantized.helpers import pack_to_int32
    from compressed_tensors.quantization import QuantizationArgs
    from compressed_tensors.quantization.lifecycle.forward import dequantize
    from compressed_tensors.quantization.lifecycle.forward import quantize as ct_quantize
    from compressed_tensors.quantization.utils import calculate_qparams

    rng = np.random.default_rng(20261130)
    base = heavy_tailed(rng, (64, 256))
    base[7, :] = 0.0  # an all-zero row: zero scales become epsilon
    base[9, 32:64] = 0.0  # and an all-zero group
    base[11, :] *= 40.0  # an outlier channel
    out, meta = {}, {"compressed_tensors": compressed_tensors.__version__, "torch": torch.__version__,
                     "bitsandbytes": bitsandbytes.__version__}
    for dname, tdtype in [("f32", torch.float32), ("bf16", torch.bfloat16), ("f16", torch.float16)]:
        x = torch.from_numpy(base).to(tdtype)
        out[f"values.{dname}"] = x.float().numpy() if dname == "f32" else x
        for name, bits, group, asym in INT_CASES:
            strategy = "channel" if group is None else "group"
            args = QuantizationArgs(num_bits=bits, type="int", symmetric=not asym, strategy=strategy,
                                    group_size=group)
            g = x.shape[1] if group is None else group
            xg = x.reshape(x.shape[0], -1, g)
            mn, mx = xg.amin(-1), xg.amax(-1)
            scale, zp = calculate_qparams(mn, mx, args)
            q = ct_quantize(x, scale, zp, args, dtype=torch.int8)
            deq = dequantize(q, scale, zp, args)
            key = f"{name}.{dname}"
            out[f"codes.{key}"] = q.numpy()
            out[f"scale.{key}"] = scale.reshape(x.shape[0], -1).contiguous()
            out[f"zero.{key}"] = zp.reshape(x.shape[0], -1).to(torch.int8).numpy()
            out[f"decoded.{key}"] = deq.float().numpy()
            if bits < 8:
                out[f"packed.{key}"] = pack_to_int32(q, bits).numpy()
                if asym:
                    out[f"packed_zero.{key}"] = pack_to_int32(zp.reshape(x.shape[0], -1).to(torch.int8), bits,
                                                              packed_dim=0).numpy()
        for name, strategy in [("fp8_e4m3", "tensor"), ("fp8_e4m3_ch", "channel")]:
            args = QuantizationArgs(num_bits=8, type="float", symmetric=True, strategy=strategy)
            if strategy == "tensor":
                mn, mx = x.amin(), x.amax()
            else:
                mn, mx = x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
            scale, zp = calculate_qparams(mn, mx, args)
            q = ct_quantize(x, scale, zp, args, dtype=torch.float8_e4m3fn)
            deq = dequantize(q, scale, zp, args)
            key = f"{name}.{dname}"
            out[f"codes.{key}"] = q.view(torch.uint8).numpy()
            out[f"scale.{key}"] = scale.reshape(-1).contiguous()
            out[f"decoded.{key}"] = deq.float().numpy()
        # NF4: the flattened tensor in blocks of 64, plus a tensor whose size is not a multiple.
        for suffix, t in [("", x), (".odd", x[:50, :30])]:
            t = t.contiguous()
            packed, absmax = torch.ops.bitsandbytes.quantize_4bit.default(t, 64, "nf4", torch.uint8)
            deq = torch.ops.bitsandbytes.dequantize_4bit.default(packed, absmax, 64, "nf4", list(t.shape), t.dtype)
            key = f"nf4.{dname}{suffix}"
            out[f"codes.{key}"] = packed.reshape(-1).numpy()
            out[f"absmax.{key}"] = absmax.numpy()
            out[f"decoded.{key}"] = deq.float().numpy()
            if suffix:
                out[f"values.{dname}{suffix}"] = t.float().numpy() if dname == "f32" else t
    # safetensors.numpy cannot hold bf16: save through torch.
    from safetensors.torch import save_file as save_torch
    tensors = {k: (v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v))).contiguous()
               for k, v in out.items()}
    save_torch(tensors, os.path.join(OUT, "schemes_reference.safetensors"), metadata=meta)
    print("schemes_reference:", len(tensors), "tensors", meta)


def minifloats():
    out = {}
    for name, dtype, n in [("f4_e2m1", ml_dtypes.float4_e2m1fn, 16), ("f6_e2m3", ml_dtypes.float6_e2m3fn, 64),
                           ("f6_e3m2", ml_dtypes.float6_e3m2fn, 64)]:
        out[name] = np.arange(n, dtype=np.uint8).view(dtype).astype(np.float32)
    save_file(out, os.path.join(OUT, "minifloats.safetensors"), metadata={"source": f"ml_dtypes {ml_dtypes.__version__}"})
    print("minifloats:", {k: v.size for k, v in out.items()})


GGML_TYPES = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS"]


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
            if not name.endswith("_K") and not name.startswith("IQ"):
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
    ap.add_argument("--only", help="make only this fixture (gemma3_blocks, schemes_reference, minifloats, ggml_encode)")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    makers = {"gemma3_blocks": lambda: gemma_blocks(args.gemma), "schemes_reference": schemes_fixture,
              "minifloats": minifloats, "ggml_encode": lambda: ggml_encode(args.minilm)}
    for name, make in makers.items():
        if args.only in (None, name):
            make()


if __name__ == "__main__":
    main()
