#!/usr/bin/env python3
"""Decode throughput per type, weightbench against gguf-py's numpy dequantize, in the same run.

Writes a GGUF of random blocks (about 16M values per type, f16 scales finite) and also uses any
GGUF files given; for each type, times `gguf.quants.dequantize` over every tensor of that type
(best of 3) and runs `cargo bench --bench decode` on the same file (best of 3, one thread and all
threads). Throughput is GB/s of f32 output. Prints a table with the ratios.

    .venv/bin/python benches/decode_vs_ggufpy.py [GGUF...]
"""
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts", "reference"))
from check_gguf import BLOCK_TYPES, random_blocks  # noqa: E402
from gguf import GGUFWriter  # noqa: E402
from gguf.constants import GGML_QUANT_SIZES  # noqa: E402

VALUES_PER_TYPE = 1 << 24


def write_fixture(path):
    rng = np.random.default_rng(1)
    w = GGUFWriter(path, "llama")
    for qtype in BLOCK_TYPES:
        block_elems, _ = GGML_QUANT_SIZES[qtype]
        rows, cols = 4096, VALUES_PER_TYPE // 4096
        blocks = random_blocks(rng, qtype, rows * cols // block_elems)
        w.add_tensor(f"bench.{qtype.name}", blocks.reshape(rows, -1), raw_dtype=qtype)
    w.add_tensor("bench.F16", rng.standard_normal((4096, VALUES_PER_TYPE // 4096)).astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def time_ggufpy(path):
    reader = GGUFReader(path)
    by_type = collections.defaultdict(list)
    for t in reader.tensors:
        by_type[t.tensor_type.name].append(t)
    out = {}
    for name, tensors in by_type.items():
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for t in tensors:
                dequantize(t.data, t.tensor_type)
            best = min(best, time.perf_counter() - start)
        out[name] = (sum(int(np.prod(t.shape)) for t in tensors), best)
    return out


def time_ours(path):
    run = subprocess.run(["cargo", "bench", "-q", "--bench", "decode", "--", path, "--repeat", "3"],
                         check=True, capture_output=True, text=True)
    return {r["dtype"]: r for r in map(json.loads, run.stdout.splitlines())}


def report(path):
    theirs = time_ggufpy(path)
    ours = time_ours(path)
    print(f"\n{os.path.basename(path)}")
    print(f"{'type':8} {'values':>10} {'gguf-py GB/s':>13} {'ours 1 thr':>11} {'ratio':>7} {'ours all':>9} {'ratio':>7}")
    for name, (n, secs) in sorted(theirs.items()):
        if name not in ours:
            continue
        o = ours[name]
        gb = n * 4 / 1e9
        py, one, many = gb / secs, gb / o["seconds_1_thread"], gb / o["seconds_all_threads"]
        print(f"{name:8} {n:>10} {py:13.2f} {one:11.2f} {one / py:6.1f}x {many:9.2f} {many / py:6.1f}x")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        fixture = os.path.join(tmp, "random-blocks.gguf")
        write_fixture(fixture)
        report(fixture)
        for path in sys.argv[1:]:
            report(path)


if __name__ == "__main__":
    main()
