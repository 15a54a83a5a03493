#!/usr/bin/env python3
"""The quantization preview against its peers, on the same tensors, in the same run.

For each scheme, every matrix of the checkpoint (an F32 safetensors folder, e.g. the copy of
SmolLM2-135M that `weightbench convert` makes) with the scheme each tensor gets after the plan's
fallbacks (printed by `cargo bench --bench quant`, so every peer encodes exactly the same types):
  ours          `cargo bench --bench quant`: encode + decode + error of every tensor, best of 3,
                one thread and all threads;
  gguf-py       `gguf.quants.quantize` (numpy), encode only, where it has the types (the legacy
                ones; it has no K-quant encoder);
  llama.cpp     `ggml_quantize_chunk` from the xllamacpp wheel through ctypes, encode only, one
                thread (one call per tensor) and all threads (rows split over threads; ctypes
                releases the GIL), best of 3;
  torch         compressed-tensors' calculate_qparams + quantize + dequantize (torch CPU), for the
                integer schemes, one thread and all threads, best of 3.
Ours does more work than every peer (it decodes and measures the error too). Also reports the
peak memory of `weightbench quantize --dry-run` (anonymous and file-backed RSS, sampled from
/proc) against the largest tensor. Prints a table with the ratios.

    .venv/bin/python benches/quant_vs_peers.py DIR [--schemes q8_0,q4_0,q4_k,q6_k,int4_g128] [--bin target/release/weightbench]
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import quantize
from safetensors import safe_open

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts", "reference"))
from make_fixtures import llama_cpp as load_llama_cpp  # noqa: E402

GGUF_PY = {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1"}


def ours(directory, schemes, repeat):
    run = subprocess.run(["cargo", "bench", "-q", "--bench", "quant", "--", directory, ",".join(schemes),
                          "--repeat", str(repeat)], check=True, capture_output=True, text=True)
    return {r["scheme"]: r for r in map(json.loads, run.stdout.splitlines())}


def best(n, f):
    t = float("inf")
    for _ in range(n):
        start = time.perf_counter()
        f()
        t = min(t, time.perf_counter() - start)
    return t


def time_llama(lib, work, threads, repeat):
    """work: [(array, ggml type)]; rows split into `threads` parts per tensor."""
    for _, qtype in work:
        lib.ggml_quantize_init(int(qtype))
    outs = [np.empty(w.size * 4 + 1024, dtype=np.uint8) for w, _ in work]

    def one_thread(part, parts):
        for (w, qtype), out in zip(work, outs):
            rows, n = w.shape
            lo, hi = rows * part // parts, rows * (part + 1) // parts
            if hi > lo:
                lib.ggml_quantize_chunk(int(qtype), w.ctypes.data, out.ctypes.data, lo * n, hi - lo, n, None)

    def run():
        ts = [threading.Thread(target=one_thread, args=(p, threads)) for p in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    return best(repeat, run)


def time_torch(work, bits, threads, repeat):
    import torch
    from compressed_tensors.quantization import QuantizationArgs
    from compressed_tensors.quantization.lifecycle.forward import dequantize
    from compressed_tensors.quantization.lifecycle.forward import quantize as ct_quantize
    from compressed_tensors.quantization.utils import calculate_qparams
    torch.set_num_threads(threads)
    prepared = []
    for w, group in work:
        x = torch.from_numpy(w)
        args = QuantizationArgs(num_bits=bits, type="int", symmetric=True,
                                strategy="channel" if group is None else "group", group_size=group)
        prepared.append((x, args, x.shape[1] if group is None else group))

    def run():
        for x, args, g in prepared:
            xg = x.reshape(x.shape[0], -1, g)
            scale, zp = calculate_qparams(xg.amin(-1), xg.amax(-1), args)
            q = ct_quantize(x, scale, zp, args, dtype=torch.int8)
            dequantize(q, scale, zp, args)

    return best(repeat, run)


def peak_memory(binary, directory, scheme):
    """Peak anonymous and file-backed RSS (MiB) of `quantize --dry-run`, sampled every 5 ms."""
    proc = subprocess.Popen([binary, "quantize", directory, "--scheme", scheme, "--dry-run", "--json",
                             "--backend", "cpu"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    anon = file = 0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        anon = max(anon, int(line.split()[1]))
                    elif line.startswith("RssFile:"):
                        file = max(file, int(line.split()[1]))
        except OSError:
            break
        time.sleep(0.005)
    return anon / 1024, file / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--schemes", default="q8_0,q4_0,q4_k,q6_k,int4_g128")
    ap.add_argument("--bin", default="target/release/weightbench")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    schemes = a.schemes.split(",")
    threads = os.cpu_count() or 1
    tensors = {}
    for f in sorted(glob.glob(os.path.join(a.dir, "*.safetensors"))):
        with safe_open(f, "np") as st:
            for k in st.keys():
                t = st.get_tensor(k)
                if t.ndim == 2:
                    tensors[k] = np.ascontiguousarray(t, dtype=np.float32)
    mine = ours(a.dir, schemes, a.repeat)
    lib, _ = load_llama_cpp()
    values = sum(t.size for t in tensors.values())
    print(f"{len(tensors)} matrices, {values} values; {threads} threads; ours = encode + decode + error, peers = encode only"
          " (torch: quantize + dequantize)")
    print(f"{'scheme':10} {'ours 1 thr':>10} {'ours all':>9} | {'gguf-py':>8} {'ratio':>7} | {'llama 1':>8} {'ratio':>6} "
          f"{'llama all':>9} {'ratio':>6} | {'torch 1':>8} {'ratio':>6} {'torch all':>9} {'ratio':>6}")
    for scheme in schemes:
        m = mine[scheme]
        got = [(tensors[t["name"]], t["scheme"]) for t in m["tensors"]]
        one, alls = m["seconds_1_thread"], m["seconds_all_threads"]
        cells = []
        if all(s in GGUF_PY for _, s in got):
            py = best(1, lambda: [quantize(w, GGMLQuantizationType[s.upper()]) for w, s in got])
            cells.append(f"{py:8.2f} {py / alls:6.1f}x")
        else:
            cells.append(f"{'—':>8} {'':>7}")
        ggml = [(w, GGMLQuantizationType[s.upper()]) for w, s in got if not s.startswith("int")]
        if len(ggml) == len(got):
            l1 = time_llama(lib, ggml, 1, a.repeat)
            la = time_llama(lib, ggml, threads, a.repeat)
            cells.append(f"{l1:8.3f} {l1 / one:5.2f}x {la:9.3f} {la / alls:5.2f}x")
        else:
            cells.append(f"{'—':>8} {'':>6} {'—':>9} {'':>6}")
        if all(s.startswith("int") for _, s in got):
            bits = int(got[0][1][3])
            work = [(w, None if s.split("_")[1] == "ch" else int(s.split("_")[1][1:])) for w, s in got]
            t1 = time_torch(work, bits, 1, a.repeat)
            ta = time_torch(work, bits, threads, a.repeat)
            cells.append(f"{t1:8.3f} {t1 / one:5.2f}x {ta:9.3f} {ta / alls:5.2f}x")
        else:
            cells.append(f"{'—':>8} {'':>6} {'—':>9} {'':>6}")
        print(f"{scheme:10} {one:10.3f} {alls:9.3f} | " + " | ".join(cells))
    largest = max(t.nbytes for t in tensors.values()) / 2**20
    print(f"\nlargest tensor: {largest:.0f} MiB as f32")
    if os.path.exists(a.bin):
        for scheme in schemes:
            anon, file = peak_memory(a.bin, a.dir, scheme)
            print(f"peak RSS of quantize --dry-run --scheme {scheme}: anonymous {anon:.0f} MiB "
                  f"({anon / largest:.2f}x the largest tensor), file-backed {file:.0f} MiB")


if __name__ == "__main__":
    main()
