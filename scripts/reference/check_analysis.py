#!/usr/bin/env python3
"""Checks `weightbench stats` and `weightbench spectrum` against numpy, and alpha against
WeightWatcher, on real checkpoints (safetensors folders).

For every tensor:
  stats     count, finite, NaN/±Inf/zero counts and 3σ/6σ outlier counts exactly; mean, std,
            min, max, abs_max, skewness, excess kurtosis within 1e-6 relative (1e-9 absolute near
            zero), computed by numpy in float64 from the float32 values; histogram counts exactly
            equal to numpy.histogram(values, bins=thresholds) with the reported float32
            thresholds (linear bins, and log10|x| bins on the first checkpoint).
  spectrum  singular values within 1e-4 relative of numpy.linalg.svd(W.astype(float64),
            compute_uv=False) for values ≥ 1e-3·smax (1e-7·smax absolute below);
            for layers WeightWatcher 0.7 analyses: alpha within 0.02 of its alpha.
Exits non-zero on the first mismatch; prints a summary per checkpoint.

    .venv/bin/python scripts/reference/check_analysis.py [--bin target/debug/weightbench] [--no-ww] DIR...
        [--stats-only DIR...] [--bf16-copy-of DIR --bf16-copy-to NEWDIR] [--backend cpu|gpu]

With --backend, every command runs on that backend and every result must say it ran there with
no fallback: the same tolerances hold for the GPU as for the CPU.
"""
import argparse
import glob
import json
import os
import subprocess
import sys

import numpy as np
from safetensors import safe_open


BACKEND = None


def run(binary, *args):
    extra = ["--backend", BACKEND] if BACKEND else []
    out = subprocess.run([binary, *args, "--json", *extra], check=True, capture_output=True)
    report = json.loads(out.stdout)
    if BACKEND:
        for r in report.get("tensors", []):
            if r.get("backend") != BACKEND or r.get("fallback") is not None:
                sys.exit(f"{r['name']}: computed on {r.get('backend')} (fallback: {r.get('fallback')}), "
                         f"not on the {BACKEND} as asked")
    return report


def close(ours, ref, what, name, rel=1e-6, abs_tol=1e-9):
    if ours is None and (ref is None or np.isnan(ref)):
        return
    if ours is None or not abs(ours - ref) <= max(rel * abs(ref), abs_tol):
        sys.exit(f"{name}: {what} {ours!r} vs numpy {ref!r}")


def safetensors_header(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n)), 8 + n


def load_all(folder):
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    tensors = {}
    for f in files:
        header, base = safetensors_header(f)
        raw = np.memmap(f, dtype=np.uint8, mode="r")
        for k, info in header.items():
            if k != "__metadata__" and info["dtype"] == "BF16":
                # numpy has no bfloat16: its bits are the top half of a float32's.
                a, b = info["data_offsets"]
                bits = raw[base + a:base + b].view("<u2").astype(np.uint32) << 16
                tensors[k] = bits.view(np.float32).reshape(info["shape"])
        with safe_open(f, "np") as h:
            for k in h.keys():
                if k not in tensors:
                    tensors[k] = h.get_tensor(k)
    return tensors


def load_headers(folder):
    for f in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        header, _ = safetensors_header(f)
        yield from (info for k, info in header.items() if k != "__metadata__")


def write_bf16_copy(src, dst):
    """A copy of the safetensors file in `src` with every F32 tensor rounded to BF16 (nearest
    even), the way torch's `.to(torch.bfloat16)` stores a checkpoint."""
    os.makedirs(dst, exist_ok=True)
    (path,) = glob.glob(os.path.join(src, "*.safetensors"))
    header, base = safetensors_header(path)
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    out, parts, offset = {}, [], 0
    for k, info in header.items():
        if k == "__metadata__":
            continue
        a, b = info["data_offsets"]
        data = raw[base + a:base + b]
        dtype = info["dtype"]
        if dtype == "F32":
            u = data.view("<u4").astype(np.uint64)
            data = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").view(np.uint8)
            dtype = "BF16"
        out[k] = {"dtype": dtype, "shape": info["shape"], "data_offsets": [offset, offset + data.size]}
        offset += data.size
        parts.append(data)
    text = json.dumps(out).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(dst, "model.safetensors"), "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for data in parts:
            f.write(np.ascontiguousarray(data).tobytes())


def check_stats(binary, folder, tensors, log_abs):
    args = ["stats", folder] + (["--log-abs"] if log_abs else [])
    report = run(binary, *args)
    checked = 0
    for r in report["tensors"]:
        x = tensors[r["name"]].astype(np.float32).reshape(-1)
        name = r["name"]
        fin = x[np.isfinite(x)]
        x64 = fin.astype(np.float64)
        counts = {"count": x.size, "finite": fin.size, "nan": int(np.isnan(x).sum()),
                  "pos_inf": int(np.isposinf(x).sum()), "neg_inf": int(np.isneginf(x).sum()),
                  "zeros": int((fin == 0).sum())}
        for k, v in counts.items():
            if r[k] != v:
                sys.exit(f"{name}: {k} {r[k]} vs numpy {v}")
        if fin.size:
            mean = x64.mean()
            d = x64 - mean
            m2 = np.mean(d * d)
            std = np.sqrt(m2)
            close(r["mean"], mean, "mean", name, abs_tol=1e-9)
            close(r["std"], std, "std", name)
            close(r["min"], float(fin.min()), "min", name, rel=0, abs_tol=0)
            close(r["max"], float(fin.max()), "max", name, rel=0, abs_tol=0)
            close(r["abs_max"], float(np.abs(fin).max()), "abs_max", name, rel=0, abs_tol=0)
            if m2 > 0:
                close(r["skewness"], np.mean(d ** 3) / m2 ** 1.5, "skewness", name)
                close(r["kurtosis"], np.mean(d ** 4) / m2 ** 2 - 3, "kurtosis", name)
                for k, key in [(3, "outliers_3sigma"), (6, "outliers_6sigma")]:
                    n = int((np.abs(d) > k * std).sum())
                    if r[key] != n:
                        sys.exit(f"{name}: {key} {r[key]} vs numpy {n}")
        h = r["histogram"]
        t = np.array(h["thresholds"], dtype=np.float32)
        values = fin if h["scale"] == "linear" else np.abs(fin[fin != 0])
        ref_counts, _ = np.histogram(values, bins=t)
        if list(ref_counts) != h["counts"]:
            bad = np.flatnonzero(np.array(h["counts"]) != ref_counts)
            sys.exit(f"{name}: {h['scale']} histogram differs from numpy in bins {bad[:5]}")
        checked += 1
    return checked


def check_spectra(binary, folder, tensors):
    report = run(binary, "spectrum", folder)
    worst = 0.0
    for r in report["tensors"]:
        w = tensors[r["name"]].astype(np.float64)
        w = w.reshape(w.shape[0], -1)
        ref = np.linalg.svd(w, compute_uv=False)
        ours = np.array(r["singular_values"])
        if ours.shape != ref.shape:
            sys.exit(f"{r['name']}: {ours.size} singular values vs numpy {ref.size}")
        smax = ref[0]
        big = ref >= 1e-3 * smax
        rel = np.abs(ours[big] - ref[big]) / ref[big]
        small_err = np.abs(ours[~big] - ref[~big]) / smax if (~big).any() else np.zeros(1)
        if rel.max(initial=0) > 1e-4 or small_err.max() > 1e-7:
            sys.exit(f"{r['name']} ({r['method']}): singular values differ: max rel {rel.max():.2e}, "
                     f"small abs/smax {small_err.max():.2e}")
        worst = max(worst, rel.max(initial=0))
    return report["tensors"], worst


def check_ww(folder, spectra):
    import logging
    import weightwatcher as ww
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    details = ww.WeightWatcher(model=folder).analyze()
    ours = {r["name"].removesuffix(".weight"): r for r in spectra}
    worst, compared = 0.0, 0
    for _, row in details.iterrows():
        name = row["longname"]
        if name not in ours or row["alpha"] <= 0:
            continue
        a = ours[name]["alpha"]
        if a is None or abs(a - row["alpha"]) > 0.02:
            sys.exit(f"{name}: alpha {a} vs WeightWatcher {row['alpha']}")
        worst = max(worst, abs(a - row["alpha"]))
        compared += 1
    if compared == 0:
        sys.exit(f"{folder}: no layer in common with WeightWatcher")
    return compared, worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/debug/weightbench")
    ap.add_argument("--no-ww", action="store_true", help="skip the WeightWatcher comparison")
    ap.add_argument("--stats-only", nargs="*", default=[], help="folders to check the statistics of, alone")
    ap.add_argument("--bf16-copy-of", help="write a BF16 copy of this folder's F32 checkpoint ...")
    ap.add_argument("--bf16-copy-to", help="... into this folder and check its statistics")
    ap.add_argument("--backend", choices=["cpu", "gpu"], help="run every command on this backend")
    ap.add_argument("folders", nargs="*")
    args = ap.parse_args()
    global BACKEND
    BACKEND = args.backend
    stats_only = list(args.stats_only)
    if args.bf16_copy_of and args.bf16_copy_to:
        write_bf16_copy(args.bf16_copy_of, args.bf16_copy_to)
        stats_only.append(args.bf16_copy_to)
    for folder in stats_only:
        tensors = load_all(folder)
        n = check_stats(args.bin, folder, tensors, log_abs=False)
        check_stats(args.bin, folder, tensors, log_abs=True)
        dtypes = sorted({info["dtype"] for info in load_headers(folder)})
        on = f" on the {BACKEND}" if BACKEND else ""
        print(f"ok  {folder}: stats of {n} tensors ({', '.join(dtypes)}){on} agree with numpy, linear and log bins")
    for i, folder in enumerate(args.folders):
        tensors = load_all(folder)
        n = check_stats(args.bin, folder, tensors, log_abs=False)
        if i == 0:
            check_stats(args.bin, folder, tensors, log_abs=True)
        spectra, worst_sv = check_spectra(args.bin, folder, tensors)
        line = (f"ok  {folder}: stats of {n} tensors agree with numpy; {len(spectra)} spectra within "
                f"{worst_sv:.1e} relative of numpy.linalg.svd")
        if not args.no_ww:
            compared, worst_alpha = check_ww(folder, spectra)
            line += f"; alpha of {compared} layers within {worst_alpha:.4f} of WeightWatcher"
        print(line)


if __name__ == "__main__":
    main()
