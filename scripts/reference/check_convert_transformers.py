#!/usr/bin/env python3
"""Checks `weightbench convert` against transformers' own GGUF loader.

For each GGUF model: convert it with weightbench (F32), load the result with transformers
(`AutoModelForCausalLM.from_pretrained(DIR)`), load the GGUF directly with transformers
(`from_pretrained(folder, gguf_file=...)`), and require
  - the same parameter names, and every parameter bit-identical, and
  - the same greedy continuation of a prompt (token ids), using the GGUF's tokenizer.
Exits non-zero on a mismatch.

    .venv/bin/python scripts/reference/check_convert_transformers.py [--bin target/debug/weightbench] GGUF...
"""
import argparse
import os
import subprocess
import sys
import tempfile

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPT = "The capital of France is"
NEW_TOKENS = 24


def greedy(model, ids):
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False, num_beams=1)
    return out[0, ids.shape[1]:].tolist()


def check(binary, gguf_path, workdir):
    out = os.path.join(workdir, os.path.basename(gguf_path) + ".hf")
    subprocess.run([binary, "convert", "--overwrite", "-o", out, gguf_path], check=True, stdout=subprocess.DEVNULL)
    folder, name = os.path.split(os.path.abspath(gguf_path))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    ref = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    ours = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()

    ref_params = dict(ref.named_parameters())
    our_params = dict(ours.named_parameters())
    if set(ref_params) != set(our_params):
        sys.exit(f"{gguf_path}: parameter names differ: {sorted(set(ref_params) ^ set(our_params))[:6]}")
    for key, a in ref_params.items():
        b = our_params[key]
        if a.shape != b.shape or not torch.equal(a.view(torch.int32), b.view(torch.int32)):
            diff = (a - b).abs().max().item() if a.shape == b.shape else "shape"
            sys.exit(f"{gguf_path}: parameter {key} differs (max |diff| {diff})")

    ids = tok(PROMPT, return_tensors="pt").input_ids
    a, b = greedy(ref, ids), greedy(ours, ids)
    if a != b:
        sys.exit(f"{gguf_path}: greedy continuations differ:\n  gguf:  {tok.decode(a)!r}\n  ours:  {tok.decode(b)!r}")
    print(f"ok  {gguf_path}: {len(ref_params)} parameters bit-identical to transformers' GGUF loader; "
          f"same greedy continuation: {PROMPT!r} -> {tok.decode(a)!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/debug/weightbench")
    ap.add_argument("gguf", nargs="+")
    args = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.gguf:
            check(args.bin, path, tmp)


if __name__ == "__main__":
    main()
