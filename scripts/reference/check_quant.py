#!/usr/bin/env python3
"""Checks `weightbench quantize --dry-run` against independent computations on real checkpoints.

For every scheme and every previewed tensor, from the decoded values the command writes
(`--decoded`, F32 safetensors) and the original values read with safetensors/numpy:
  errors    sse, rel_error, sqnr_db, max_abs_error and weighted_sse (importance: the column L2
            norms, `--importance weight`) recomputed in float64 by numpy: within 1e-9 relative
            (the GPU sums its per-workgroup partials in f32: 1e-5 there; every scheme
            with a WGSL encoder — integers, legacy block types, FP8, NF4, f16, bf16 — must
            have run there, and the K-quants' error);
  bytes     exact storage recomputed here from the format's layout (ggml blocks, packed int32
            words and scales of compressed-tensors, NF4 nibbles and absmax, FP8 codes and scales,
            low-rank factors) and bpw = 8·bytes/params;
  ggml      for the legacy block types, the decoded values equal gguf-py's own
            `dequantize(quantize(W))` bit for bit (a second, independent encoder);
  totals    sums of the rows, whole-model bytes = stored bytes of the others + planned bytes.
Exits non-zero on the first mismatch.

    .venv/bin/python scripts/reference/check_quant.py [--bin target/debug/weightbench] [--backend cpu|gpu] DIR...
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize, quantize
from safetensors import safe_open

SCHEMES = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q6_k", "int4_g128", "int8_ch_asym", "int3_g64_asym",
           "nf4", "fp8_e4m3_ch", "bf16", "lowrank_r16", "lowrank_e0.5+int8_ch"]
DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
LEGACY = {"q8_0": "Q8_0", "q4_0": "Q4_0", "q4_1": "Q4_1", "q5_0": "Q5_0", "q5_1": "Q5_1"}
BLOCK = {"q8_0": (32, 34), "q4_0": (32, 18), "q4_1": (32, 20), "q5_0": (32, 22), "q5_1": (32, 24),
         "q4_k": (256, 144), "q5_k": (256, 176), "q6_k": (256, 210), "q2_k": (256, 84), "q3_k": (256, 110)}


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def close(a, b, rel, what):
    if a is None or b is None:
        if a is not b and not (a is None and b is None):
            fail(f"{what}: {a} vs {b}")
        return
    if abs(a - b) > rel * max(abs(a), abs(b), 1e-300):
        fail(f"{what}: weightbench {a!r} vs numpy {b!r}")


def int_bytes(scheme, rows, cols, scale_bytes):
    name = scheme.split("_")
    bits = int(name[0][3:])
    group = cols if name[1] == "ch" else int(name[1][1:])
    asym = scheme.endswith("_asym")
    groups = cols // group
    if bits == 8:
        codes, zeros = rows * cols, rows * groups
    else:
        codes = rows * (-(-cols * bits // 32)) * 4
        zeros = groups * (-(-rows * bits // 32)) * 4
    return codes + rows * groups * scale_bytes + (zeros if asym else 0)


def expected_bytes(scheme, shape, dtype, rank):
    rows, cols = int(np.prod(shape[:-1])), int(shape[-1])
    n = rows * cols
    scale_bytes = 2 if dtype in ("F16", "BF16") else 4
    if scheme in BLOCK:
        be, bb = BLOCK[scheme]
        return rows * cols // be * bb
    if scheme.startswith("int"):
        return int_bytes(scheme, rows, cols, scale_bytes)
    if scheme == "nf4":
        return -(-n // 2) + -(-n // 64) * 4
    if scheme == "fp8_e4m3_ch":
        return n + rows * scale_bytes
    if scheme == "bf16":
        return 2 * n
    if scheme.startswith("lowrank"):
        if "+" in scheme:
            inner = scheme.split("+")[1]
            return expected_bytes(inner, [rows, rank], dtype, None) + expected_bytes(inner, [rank, cols], dtype, None)
        return rank * (rows + cols) * scale_bytes
    raise ValueError(scheme)


def check(binary, directory, backend, tensor_re):
    files = [os.path.join(directory, f) for f in sorted(os.listdir(directory)) if f.endswith(".safetensors")]
    selected = re.compile(tensor_re)
    original, stored_bytes = {}, {}
    for f in files:
        with safe_open(f, "np") as st:
            for k in st.keys():
                sl = st.get_slice(k)
                n = int(np.prod(sl.get_shape())) if sl.get_shape() else 1
                stored_bytes[k] = n * DTYPE_BYTES[sl.get_dtype()]
                if selected.search(k):
                    original[k] = st.get_tensor(k)
    tol = 1e-5 if backend == "gpu" else 1e-9
    for scheme in SCHEMES:
        with tempfile.TemporaryDirectory() as tmp:
            dec_path = os.path.join(tmp, "decoded.safetensors")
            args = [binary, "quantize", directory, "--scheme", scheme, "--dry-run", "--json", "--importance", "weight",
                    "--decoded", dec_path, "--tensor", tensor_re, "--backend", backend]
            out = subprocess.run(args, capture_output=True)
            if out.returncode != 0:
                fail(f"{' '.join(args)}: {out.stderr.decode()}")
            report = json.loads(out.stdout)
            with safe_open(dec_path, "np") as st:
                decoded = {k: st.get_tensor(k) for k in st.keys()}
        rows = report["tensors"]
        if not rows:
            fail(f"{scheme}: no tensor previewed")
        for r in rows:
            name = r["name"]
            w = original[name].astype(np.float32)
            y = decoded[name]
            if w.ndim < 2:
                if r["scheme"] != "keep" and scheme != "bf16":
                    fail(f"{name}: a vector got {r['scheme']}")
            d = w.astype(np.float64) - y.astype(np.float64)
            sse = float((d * d).sum())
            signal = float((w.astype(np.float64) ** 2).sum())
            what = f"{os.path.basename(directory)} {scheme} {name}"
            close(r["sse"], sse, tol, f"{what} sse")
            close(r["rel_error"], (sse / signal) ** 0.5 if signal > 0 else None, tol, f"{what} rel_error")
            if sse > 0 and signal > 0:
                close(r["sqnr_db"], 10 * np.log10(signal / sse), tol, f"{what} sqnr_db")
            close(r["max_abs_error"], float(np.abs(d).max()), 1e-6, f"{what} max_abs_error")
            if w.ndim == 2:
                imp = np.sqrt((w.astype(np.float64) ** 2).sum(axis=0)).astype(np.float32).astype(np.float64)
                close(r["weighted_sse"], float(((d * d) * imp[None, :]).sum()), tol, f"{what} weighted_sse")
            if w.ndim == 2:
                if r["scheme"] != scheme and not r.get("fallback_reason"):
                    fail(f"{what}: got {r['scheme']} with no fallback reason")
                want = expected_bytes(r["scheme"], list(w.shape), r["dtype"], r.get("rank"))
                if r["bytes"] != want:
                    fail(f"{what}: {r['bytes']} bytes, the layout says {want}")
                close(r["bpw"], 8 * want / w.size, 1e-12, f"{what} bpw")
                if r["scheme"] in LEGACY:
                    kind = GGMLQuantizationType[LEGACY[r["scheme"]]]
                    ref = dequantize(quantize(w, kind), kind).reshape(w.shape)
                    if not np.array_equal(ref.view(np.uint32), y.view(np.uint32)):
                        fail(f"{what}: decoded values differ from gguf-py's in {(ref != y).sum()} places")
            on_gpu = r["scheme"].startswith(("int", "fp8")) or r["scheme"] in LEGACY or r["scheme"] in ("nf4", "f16", "bf16")
            if backend == "gpu" and on_gpu and r["backend"] != "gpu":
                fail(f"{what}: {r['scheme']} has a WGSL encoder but ran on {r['backend']} ({r['fallback']})")
            if backend == "gpu" and r["scheme"].endswith("_k") and r["backend"] != "cpu+gpu":
                fail(f"{what}: a K-quant's search runs on the CPU and its error on the GPU, not {r['backend']}")
        t = report["total"]
        if t["bytes"] != sum(r["bytes"] for r in rows) or t["params"] != sum(r["params"] for r in rows):
            fail(f"{scheme}: totals are not the sums of the rows")
        close(t["sse"], sum(r["sse"] for r in rows), 1e-12, f"{scheme} total sse")
        previewed = {r["name"] for r in rows}
        if previewed != set(original):
            fail(f"{scheme}: previewed {len(previewed)} tensors, the pattern selects {len(original)}")
        stored = sum(stored_bytes.values())
        other = sum(v for k, v in stored_bytes.items() if k not in previewed)
        if t["model_bytes"] != other + t["bytes"] or t["source_bytes"] != stored:
            fail(f"{scheme}: whole-model bytes {t['model_bytes']} (stored {t['source_bytes']}) vs {other + t['bytes']}")
        print(f"  {os.path.basename(directory)} {scheme:<22} {len(rows)} tensors, {t['bpw']:.3f} bpw, "
              f"rel_error {t['rel_error']:.3e}: ok")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/debug/weightbench")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--tensor", default=r"layer(s)?\.[01]\.")
    ap.add_argument("dirs", nargs="+")
    a = ap.parse_args()
    for d in a.dirs:
        check(a.bin, d, a.backend, a.tensor)
    print("quantize checks passed")


if __name__ == "__main__":
    main()
