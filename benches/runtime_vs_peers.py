#!/usr/bin/env python3
"""Forward-pass speed of the runtime against transformers and llama.cpp on the same model, in the
same run: tokens per second of one 512-token window of SmolLM2-135M on the CPU (every position's
logits for us and transformers, as perplexity needs; llama.cpp's prompt processing of the same
tokens from its Q4_1 GGUF, its own quantized kernels), the best of `--repeat` runs each, and the
peak memory (max RSS) of a 2048-token `weightbench eval`. Prints the ratios.

    .venv/bin/python benches/runtime_vs_peers.py --bin target/release/weightbench \\
        test-models/SmolLM2-135M-Instruct-hf test-models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts" / "reference"))
import llama_cpp  # noqa: E402

SENTENCE = (
    "Printing spread quickly across Europe, and with it came cheaper books, new readers, arguments "
    "about what could be printed, and a steady growth of newspapers, pamphlets and journals. "
)


def text_of(tok, n):
    text = SENTENCE
    while len(tok(text)["input_ids"]) < n:
        text += SENTENCE
    ids = tok(text)["input_ids"][:n]
    return tok.decode(ids), ids


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("folder")
    ap.add_argument("gguf")
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(a.folder)
    text, ids = text_of(tok, a.tokens)
    # Ours: the eval's own timing of the forward pass and logits (loading excluded).
    ours = []
    for _ in range(a.repeat):
        out = subprocess.run([a.bin, "eval", a.folder, "--text", text, "--ctx", str(a.tokens), "--json"],
                             capture_output=True, text=True, check=True)
        j = json.loads(out.stdout)
        ours.append(j["tokens"] / j["seconds"])
    n = j["tokens"]
    model = AutoModelForCausalLM.from_pretrained(a.folder, dtype=torch.float32).eval()
    x = torch.tensor([tok(text)["input_ids"]])
    hf = []
    with torch.no_grad():
        model(x)
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            model(x)
            hf.append(x.shape[1] / (time.perf_counter() - t0))
    lib = llama_cpp.library()
    lm = llama_cpp.Model(lib, a.gguf, n_ctx=a.tokens + 8, threads=threads)
    lids = lm.tokenize(text)[: a.tokens]
    cpp = []
    for _ in range(a.repeat + 1):
        ctx = lm._context()
        try:
            t0 = time.perf_counter()
            lm._logits(ctx, lids, 0, False)
            cpp.append(len(lids) / (time.perf_counter() - t0))
        finally:
            lib.llama_free(ctx)
    cpp = cpp[1:]
    # Peak memory of a 2048-token window.
    long_text, _ = text_of(tok, 2048)
    t0 = time.perf_counter()
    subprocess.run([a.bin, "eval", a.folder, "--text", long_text, "--ctx", "2048", "--json"],
                   capture_output=True, text=True, check=True)
    long_s = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{n} tokens, {threads} threads, best of {a.repeat}")
    print(f"weightbench      {max(ours):8.1f} tokens/s")
    print(f"transformers     {max(hf):8.1f} tokens/s   weightbench / transformers = {max(ours) / max(hf):.2f}x")
    print(f"llama.cpp (Q4_1) {max(cpp):8.1f} tokens/s   weightbench / llama.cpp    = {max(ours) / max(cpp):.2f}x")
    print(f"2048-token eval: {long_s:.1f} s in all (load included), peak RSS of the children {rss:.0f} MiB")


if __name__ == "__main__":
    main()
