#!/usr/bin/env python3
"""The papers' methods (+awq, +slim, +pow, welore) beside plain rounding on all-MiniLM-L6-v2.

1. An importance matrix from real activations: MiniLM (transformers, CPU) runs over the first
   half of the model card's text; every nn.Linear's input gets Σx² and a token count, written as
   llama.cpp's GGUF imatrix (`<weight>.in_sum2`, `<weight>.counts`), which weightbench reads.
2. `weightbench quantize --dry-run --importance IMATRIX --decoded OUT` for each scheme over every
   encoder matrix: bytes, sse and the importance-weighted sse (the objective the methods search).
3. The decoded weights loaded back into transformers: the cosine similarity of the mean-pooled
   sentence embeddings to the original model's, on the second half of the card's text (held
   out from the imatrix), the output-level check.

Usage: .venv/bin/python benches/methods_on_minilm.py [weightbench binary]   (prints a table)
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from gguf import GGUFWriter
from safetensors.numpy import load_file
from transformers import AutoModel, AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "test-models" / "all-MiniLM-L6-v2"
BIN = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target" / "release" / "weightbench")
MATRICES = r"encoder\.layer\.\d+\..*weight"

SCHEMES = [
    "int4_g128", "int4_g128+awq", "int4_g128+slim", "int4_g128+pow",
    "int3_g128", "int3_g128+awq", "int3_g128+slim", "int3_g128+pow",
    "int4_g32", "int4_g32+slim", "int3_g32", "int3_g32+slim",
    "q4_0", "q4_0+awq",
    "welore_t0.25", "lowrank_r{uniform}",
]


def paragraphs():
    text = (MODEL / "README.md").read_text(encoding="utf-8")
    paras = [p.strip() for p in text.split("\n\n") if len(p.strip()) > 40 and not p.strip().startswith("```")]
    half = len(paras) // 2
    return paras[:half], paras[half:]


def embed(model, tok, texts):
    with torch.no_grad():
        enc = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        out = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        return ((out * mask).sum(1) / mask.sum(1)).numpy()


def write_imatrix(model, tok, texts, path):
    sums, counts, hooks = {}, {}, []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            key = f"{name}.weight"

            def hook(_m, inputs, _out, key=key):
                x = inputs[0].reshape(-1, inputs[0].shape[-1]).double()
                sums[key] = sums.get(key, 0) + (x * x).sum(0).numpy()
                counts[key] = counts.get(key, 0) + x.shape[0]

            hooks.append(module.register_forward_hook(hook))
    with torch.no_grad():
        for t in texts:
            model(**tok(t, truncation=True, max_length=256, return_tensors="pt"))
    for h in hooks:
        h.remove()
    w = GGUFWriter(str(path), "imatrix")
    for key in sorted(sums):
        w.add_tensor(f"{key}.in_sum2", sums[key].astype(np.float32))
        w.add_tensor(f"{key}.counts", np.array([counts[key]], dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return sum(counts.values()) // len(counts)


def main():
    tok = AutoTokenizer.from_pretrained(MODEL)
    model = AutoModel.from_pretrained(MODEL).eval()
    calib, held_out = paragraphs()
    reference = embed(model, tok, held_out)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with tempfile.TemporaryDirectory() as tmp:
        imatrix = Path(tmp) / "minilm.imatrix.gguf"
        tokens = write_imatrix(model, tok, calib, imatrix)
        print(f"imatrix: {len(calib)} paragraphs, {tokens} tokens per layer; held out: {len(held_out)} paragraphs\n")
        print("| scheme | bytes | bpw | sse | weighted sse | vs plain | parameter chosen (mean over tensors) | embedding cosine (held out) |")
        print("|---|---:|---:|---:|---:|---:|---|---:|")
        plain = {}
        welore_bytes, shapes, rows, welore_row = None, [], [], 0
        for scheme in SCHEMES:
            if "{uniform}" in scheme:
                # The largest uniform rank whose bytes fit in what WeLore's threshold used.
                kept = sum(4 * s[0] for s in shapes if len(s) == 1)
                mats = [s for s in shapes if len(s) == 2]
                k = max(k for k in range(1, 385) if kept + sum(4 * k * (r + c) for r, c in mats) <= welore_bytes)
                scheme = scheme.format(uniform=k)
            decoded = Path(tmp) / "decoded.safetensors"
            decoded.unlink(missing_ok=True)
            out = subprocess.run(
                [BIN, "quantize", str(MODEL), "--scheme", scheme, "--dry-run", "--tensor", MATRICES,
                 "--importance", str(imatrix), "--decoded", str(decoded), "--json"],
                check=True, capture_output=True, text=True,
            )
            report = json.loads(out.stdout)
            total = report["total"]
            base = scheme.split("+")[0] if "+" in scheme else None
            key = base or scheme
            if base is None:
                plain[key] = total["weighted_sse"]
            ratio = total["weighted_sse"] / plain[key] if base and plain.get(key) else 1.0
            if scheme.startswith("welore"):
                welore_bytes, shapes = total["bytes"], [t["shape"] for t in report["tensors"]]
                welore_row = len(rows)
            if scheme.startswith("lowrank_r") and welore_bytes:
                # WeLore is the method here, the uniform rank of the same bytes its plain choice.
                rows[welore_row][5] = f"{rows[welore_row][4] / total['weighted_sse']:.3f}"
            params = [t["method"]["value"] for t in report["tensors"] if t.get("method")]
            # Mean, not median: most rows of 3 groups take no salient group, the wide ones do.
            param = ""
            if params:
                m = next(t["method"] for t in report["tensors"] if t.get("method"))
                param = f"{m['parameter']} {np.mean(params):.3g}"
            model.load_state_dict(state)
            sd = model.state_dict()
            for name, values in load_file(str(decoded)).items():
                sd[name].copy_(torch.from_numpy(values).reshape(sd[name].shape))
            got = embed(model, tok, held_out)
            cos = (got * reference).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1))
            rows.append([f"`{scheme}`", total["bytes"], f"{total['bpw']:.3f}", f"{total['sse']:.4g}",
                         total["weighted_sse"], f"{ratio:.3f}", param, f"{cos.mean():.5f}"])
        model.load_state_dict(state)
        for r in rows:
            r[4] = f"{r[4]:.4g}"
            print("| " + " | ".join(str(x) for x in r) + " |")


if __name__ == "__main__":
    main()
