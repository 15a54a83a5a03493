#!/usr/bin/env python3
"""CPU analysis against numpy and WeightWatcher, on the same data in the same run.

  1. Statistics + 256-bin histogram of every tensor of a checkpoint (default: SmolLM2-135M as
     converted to F32 safetensors by the fetch script), against
       - numpy doing the same work on the same decoded arrays (mean, std, min, max, skewness,
         kurtosis, NaN/Inf/zero counts, 3σ/6σ outliers, np.histogram with 256 bins), one process,
         arrays loaded before the clock starts;
       - reading every tensor byte through the mmap (the floor for any pass over the data), at
         memory speed and as a byte sum, in turns with our statistics in one process.
     The same on a BF16 copy of the checkpoint (written once under bench-data/, rounded to
     nearest even as torch stores BF16): 16-bit tensors are counted by bit pattern in one pass,
     timed against the same read and against the decode-to-f32 path on the same tensors.
  2. Singular values of a random 4096×4096 f32 matrix and of a real tensor, against
     numpy.linalg.svd(compute_uv=False) on the float32 and the float64 array.
  3. Spectra of every 2-D tensor of the checkpoint against WeightWatcher's analyze().
  4. Peak RSS of `weightbench stats` and `weightbench spectrum` over a checkpoint whose largest
     tensor is large (default: gemma-3-270m, 262144×640 embedding), against the bound
     2 × (largest tensor as f32) + a fixed amount.

    .venv/bin/python benches/analysis_vs_peers.py [--model DIR] [--big DIR] [--svd-n 4096] [--real-tensor NAME]
Unset OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE in this command alone so numpy runs its fast kernels.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from safetensors import safe_open


def bench(*args):
    out = subprocess.run(["cargo", "bench", "-q", "--bench", "analysis", "--", *args],
                         check=True, capture_output=True, text=True)
    return [json.loads(line) for line in out.stdout.splitlines()]


def numpy_stats(arrays):
    start = time.perf_counter()
    for x in arrays:
        x = x.reshape(-1)
        fin = x[np.isfinite(x)]
        nan, pinf, ninf = np.isnan(x).sum(), np.isposinf(x).sum(), np.isneginf(x).sum()
        zeros = (fin == 0).sum()
        mean = fin.mean(dtype=np.float64)
        d = fin.astype(np.float64) - mean
        m2 = np.mean(d * d)
        std = np.sqrt(m2)
        skew = np.mean(d ** 3) / m2 ** 1.5 if m2 > 0 else np.nan
        kurt = np.mean(d ** 4) / m2 ** 2 - 3 if m2 > 0 else np.nan
        o3 = (np.abs(d) > 3 * std).sum()
        o6 = (np.abs(d) > 6 * std).sum()
        lo, hi = fin.min(), fin.max()
        np.histogram(fin, bins=256, range=(lo, hi) if hi > lo else None)
        del d, nan, pinf, ninf, zeros, skew, kurt, o3, o6
    return time.perf_counter() - start


def numpy_svd(w, reps=1):
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        np.linalg.svd(w, compute_uv=False)
        best = min(best, time.perf_counter() - start)
    return best


def peak_rss_mib(cmd):
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execvp(cmd[0], cmd)
    _, status, usage = os.wait4(pid, 0)
    if status != 0:
        sys.exit(f"{cmd} failed")
    return usage.ru_maxrss / 1024


def load(folder):
    arrays = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".safetensors"):
            with safe_open(os.path.join(folder, f), "np") as h:
                for k in h.keys():
                    arrays[k] = h.get_tensor(k)
    return arrays


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="test-models/SmolLM2-135M-Instruct-hf")
    ap.add_argument("--big", default="test-models/gemma-3-270m-hf")
    ap.add_argument("--svd-n", type=int, default=4096)
    ap.add_argument("--real-tensor", default="model.embed_tokens.weight")
    ap.add_argument("--bin", default="target/release/weightbench")
    ap.add_argument("--skip", nargs="*", default=[], help="parts to skip: stats svd spectra memory")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "-q", "--release", "--benches", "--bin", "weightbench"], check=True)

    if "stats" not in args.skip:
        arrays = load(args.model)
        values = sum(a.size for a in arrays.values())
        r = bench("read", args.model)[0]
        ours = r["stats_seconds"]
        theirs = min(numpy_stats(list(arrays.values())) for _ in range(2))
        print(f"stats+histogram of {len(arrays)} tensors ({values / 1e6:.1f}M values), {args.model}:")
        print(f"  weightbench {ours:.3f} s | numpy same work {theirs:.3f} s -> {theirs / ours:.1f}x faster")
        words, byte_sum = r["read_words_seconds"], r["read_bytes_seconds"]
        print(f"  reading every byte through the mmap at memory speed (64-byte XOR fold) {words:.4f} s"
              f" -> stats take {ours / words:.2f}x the read time")
        print(f"  reading every byte summed as u64 (a compute-bound loop; the earlier baseline) {byte_sum:.4f} s"
              f" -> {ours / byte_sum:.2f}x")
        print(f"  pass 1 (moments) alone {r['moments_only_seconds']:.4f} s"
              f" -> {r['moments_only_seconds'] / words:.2f}x the memory-speed read")
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts", "reference"))
        from check_analysis import write_bf16_copy
        bf16 = os.path.join("bench-data", os.path.basename(args.model.rstrip("/")) + "-bf16")
        if not os.path.exists(os.path.join(bf16, "model.safetensors")):
            write_bf16_copy(args.model, bf16)
        r = bench("read", bf16)[0]
        ours, words = r["stats_seconds"], r["read_words_seconds"]
        print(f"the same as BF16 ({bf16}, {r['bytes'] / 1e6:.0f} MB):")
        print(f"  weightbench {ours:.4f} s | reading every byte at memory speed {words:.4f} s"
              f" -> stats take {ours / words:.2f}x the read time")
        print(f"  the decode-to-f32 path on the same tensors {r['decoded_stats_seconds']:.4f} s"
              f" -> counting bit patterns is {r['decoded_stats_seconds'] / ours:.1f}x faster")

    if "svd" not in args.skip:
        n = args.svd_n
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "random.safetensors")
            ours = {r["method"]: r["seconds"] for r in bench("svd", str(n), path)}
            with safe_open(path, "np") as h:
                w32 = h.get_tensor("w")
        t32 = numpy_svd(w32)
        t64 = numpy_svd(w32.astype(np.float64))
        print(f"singular values of a random {n}x{n} matrix:")
        print(f"  weightbench svd (f64) {ours['svd']:.2f} s, gram (f64) {ours['gram']:.2f} s | "
              f"numpy f32 {t32:.2f} s, f64 {t64:.2f} s -> best of ours is "
              f"{t32 / min(ours.values()):.2f}x numpy f32, {t64 / min(ours.values()):.2f}x numpy f64")
        arrays = load(args.model) if "stats" in args.skip else arrays
        w = arrays[args.real_tensor]
        ours = {r["method"]: r["seconds"] for r in bench("tensor", args.model, args.real_tensor)}
        t32 = numpy_svd(w.astype(np.float32))
        t64 = numpy_svd(w.astype(np.float64))
        print(f"singular values of {args.real_tensor} {list(w.shape)}:")
        print(f"  weightbench svd {ours['svd']:.2f} s, gram {ours['gram']:.2f} s | numpy f32 {t32:.2f} s, "
              f"f64 {t64:.2f} s -> gram is {t32 / ours['gram']:.1f}x numpy f32, {t64 / ours['gram']:.1f}x numpy f64")

    if "spectra" not in args.skip:
        import logging
        import weightwatcher as ww
        logging.getLogger("weightwatcher").setLevel(logging.ERROR)
        ours = bench("spectra", args.model)[0]
        start = time.perf_counter()
        details = ww.WeightWatcher(model=args.model).analyze()
        theirs = time.perf_counter() - start
        print(f"spectra of every 2-D tensor of {args.model}: weightbench {ours['seconds']:.1f} s ({ours['tensors']} "
              f"matrices) | WeightWatcher analyze() {theirs:.1f} s ({len(details)} layers) -> {theirs / ours['seconds']:.1f}x faster")

    if "memory" not in args.skip:
        with open(os.path.join(args.big, "model.safetensors"), "rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        header.pop("__metadata__", None)
        largest = max(int(np.prod(v["shape"])) for v in header.values()) * 4 / 2**20
        for cmd in (["stats"], ["spectrum"]):
            rss = peak_rss_mib([args.bin, *cmd, args.big, "--json"])
            print(f"peak RSS of `weightbench {cmd[0]}` over {args.big}: {rss:.0f} MiB; largest tensor as f32 "
                  f"{largest:.0f} MiB -> {rss / largest:.2f}x (bound: 2x + fixed)")


if __name__ == "__main__":
    main()
