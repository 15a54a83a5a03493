#!/usr/bin/env python3
"""`weightbench export --format gguf` against the encoders of its peers, same tensors, same run.

Checkpoints: SmolLM2-135M (its Q4_1 GGUF) and a synthetic llama-shaped GGUF of about 1B F16
parameters written here by gguf-py. For each scheme:
  ours       `weightbench export CKPT --scheme S --format gguf` (release build, CPU backend, all
             threads): decode the source, encode, measure the error, write the file, read it back
             and checksum it — wall time, best of 2;
  llama.cpp  `ggml_quantize_chunk` (xllamacpp's library, ctypes) on the same decoded matrices:
             encode only, one thread and all threads, best of 2;
  gguf-py    `gguf.quants.quantize` (numpy) on the same matrices: encode only, once.
Ours does strictly more than each peer; the ratios are peer time / our time (above 1: we are
faster). Prints a markdown table.

    .venv/bin/python benches/export_vs_peers.py [--bin target/release/weightbench] [--params 1e9]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter
from gguf.quants import dequantize, quantize

sys.path.insert(0, os.path.dirname(__file__))
from quant_vs_peers import best, load_llama_cpp, time_llama  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
SMOL = os.path.join(ROOT, "test-models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
TYPES = {"q8_0": GGMLQuantizationType.Q8_0, "q4_0": GGMLQuantizationType.Q4_0}


def synthetic(path, params):
    """A llama-shaped F16 GGUF of about `params` parameters (hidden 2048, ffn 5632)."""
    hidden, ffn, vocab = 2048, 5632, 32000
    per_layer = 4 * hidden * hidden + 3 * hidden * ffn
    layers = max(1, int((params - vocab * hidden) // per_layer))
    w = GGUFWriter(path, "llama")
    w.add_block_count(layers)
    w.add_embedding_length(hidden)
    rng = np.random.default_rng(0)
    def mat(rows, cols):
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)
    w.add_tensor("token_embd.weight", mat(vocab, hidden))
    for i in range(layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(hidden, dtype=np.float32))
        for n in ["attn_q", "attn_k", "attn_v", "attn_output"]:
            w.add_tensor(f"blk.{i}.{n}.weight", mat(hidden, hidden))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", mat(ffn, hidden))
        w.add_tensor(f"blk.{i}.ffn_up.weight", mat(ffn, hidden))
        w.add_tensor(f"blk.{i}.ffn_down.weight", mat(hidden, ffn))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return layers * per_layer + vocab * hidden


def matrices(path):
    out = []
    for t in GGUFReader(path).tensors:
        if len(t.shape) == 2:
            shape = [int(x) for x in reversed(t.shape)]
            out.append(np.ascontiguousarray(np.asarray(dequantize(t.data, t.tensor_type), np.float32).reshape(shape)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/weightbench"))
    ap.add_argument("--params", type=float, default=1e9)
    ap.add_argument("--schemes", default="q8_0,q4_0")
    a = ap.parse_args()
    lib, version = load_llama_cpp()
    threads = os.cpu_count() or 1
    print(f"llama.cpp {version}, {threads} threads\n")
    print("| checkpoint | scheme | ours: export (s) | llama.cpp encode, 1 thread (s) | ratio | llama.cpp, "
          f"{threads} threads (s) | ratio | gguf-py encode (s) | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(dir=os.path.join(ROOT, "target")) as tmp:
        syn = os.path.join(tmp, "synthetic.gguf")
        n = synthetic(syn, a.params)
        for label, path in [("SmolLM2-135M (Q4_1)", SMOL), (f"synthetic {n / 1e9:.2f}B (F16)", syn)]:
            work = matrices(path)
            for s in a.schemes.split(","):
                out = os.path.join(tmp, "out.gguf")
                cmd = [a.bin, "export", path, "--scheme", s, "--format", "gguf", "-o", out, "--overwrite",
                       "--backend", "cpu"]
                ours = best(2, lambda: subprocess.run(cmd, check=True, capture_output=True))
                qtype = TYPES[s]
                jobs = [(m, qtype) for m in work]
                one = time_llama(lib, jobs, 1, 2)
                many = time_llama(lib, jobs, threads, 2)
                start = time.perf_counter()
                for m in work:
                    quantize(m, qtype)
                gguf_py = time.perf_counter() - start
                print(f"| {label} | {s} | {ours:.2f} | {one:.2f} | {one / ours:.2f} | {many:.2f} | {many / ours:.2f} "
                      f"| {gguf_py:.1f} | {gguf_py / ours:.1f} |", flush=True)
            del work


if __name__ == "__main__":
    main()
