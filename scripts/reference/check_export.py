#!/usr/bin/env python3
"""`weightbench export` checked by the readers our users run.

GGUF (from a GGUF source; SmolLM2-135M Q4_1), for an 8-bit, a 4-bit and a mixed plan (made by
`plan auto`):
- gguf-py's GGUFReader reads every key and tensor back: the source's keys with their values,
  `general.file_type` and `general.quantization_version` for the new types, each tensor in the
  planned type; gguf-py's `dequantize` of every tensor equals the preview's decoded values
  (`quantize --dry-run --decoded`) bit for bit, and the errors recomputed from the file against
  the source equal the errors the export reported.
- llama.cpp (the xllamacpp wheel's library, `llama_cpp.py`) loads it, continues a prompt
  greedily, and scores a page of text: the 8-bit plan's perplexity within 1% of the source's;
  the 4-bit and mixed plans' recorded.
Fake-quantized safetensors (MiniLM, int4_g128): the file's values equal the preview's decoded
values bit for bit, the folder's other files are copied, and transformers loads the folder.
convert's rebuilt tokenizer (SmolLM2: tokenizer.json and tokenizer_config.json from the GGUF's
keys): transformers' tokenizer from the converted folder gives llama.cpp's token ids on a page of
text, digits, unicode, code and chat markup, and decodes back to the text.
Gemma 3 (gemma-3-270m Q4_K_M, with `--gemma`): `convert` makes a transformers folder with the
SentencePiece tokenizer rebuilt (merges from the GGUF's scores): transformers' token ids equal
llama.cpp's; that folder exported to GGUF (Gemma's keys, norms' +1 re-applied, tokenizer scores
from the merges) holds every tensor bit for bit as the source decodes, tokenizes as the source in
llama.cpp, and an 8-bit plan's perplexity is within 1% of the source's.
compressed-tensors (MiniLM, a mixed plan of int4_g128, int8_ch_asym, fp8_e4m3_ch and
int3_g64[_asym]): the `compressed-tensors` package's own compressors decompress every module to
the preview's decoded values bit for bit; transformers loads the folder (running the compressed
modules) and its hidden states equal those of the fake-quant export of the same plan.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from safetensors.numpy import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llama_cpp  # noqa: E402

CHANGED = {"general.file_type", "general.quantization_version", "general.quantized_by"}


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"FAILED: {' '.join(map(str, cmd))}\n{out.stderr}")
    return out.stdout


def field_value(f):
    if not f.types:
        return None
    if f.types[0] == 9:  # array
        return [bytes(f.parts[i]).hex() for i in f.data]
    return bytes(f.parts[f.data[0]]).hex()


def dequantized(t):
    shape = [int(x) for x in reversed(t.shape)] if len(t.shape) > 1 else [int(t.shape[0])]
    return np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape)


def check_gguf(bin_, source, plan_args, label, tmp, text):
    out_path = tmp / f"{label}.gguf"
    decoded = tmp / f"{label}.decoded.safetensors"
    report = json.loads(run([bin_, "export", source, *plan_args, "--format", "gguf", "-o", out_path, "--json"]))
    run([bin_, "quantize", source, *plan_args, "--dry-run", "--decoded", decoded, "--json"])
    src, got = GGUFReader(source), GGUFReader(out_path)
    src_keys = {k: field_value(f) for k, f in src.fields.items() if not k.startswith("GGUF.")}
    got_keys = {k: field_value(f) for k, f in got.fields.items() if not k.startswith("GGUF.")}
    for k, v in src_keys.items():
        if k not in CHANGED and got_keys.get(k) != v:
            sys.exit(f"FAILED {label}: key {k} differs or is missing")
    assert "general.file_type" in got_keys and "general.quantization_version" in got_keys, got_keys.keys()
    rows = {r["name"]: r for r in report["tensors"]}
    want = load_file(str(decoded))
    src_tensors = {t.name: t for t in src.tensors}
    assert len(got.tensors) == len(src.tensors) == len(rows), (len(got.tensors), len(src.tensors))
    for t in got.tensors:
        row = rows[t.name]
        values = dequantized(t)
        if t.name in want:
            if not np.array_equal(values.view(np.uint32), want[t.name].reshape(values.shape).view(np.uint32)):
                sys.exit(f"FAILED {label}: {t.name} ({t.tensor_type.name}) differs from the preview's decoded values")
        w = dequantized(src_tensors[t.name]).astype(np.float64)
        sse = float(((w - values) ** 2).sum())
        if abs(sse - row["sse"]) > 1e-9 * max(sse, 1e-30) + 1e-30:
            sys.exit(f"FAILED {label}: {t.name} sse from the file {sse} vs reported {row['sse']}")
    types = sorted({t.tensor_type.name for t in got.tensors})
    lib = llama_cpp.library()
    model = llama_cpp.Model(lib, out_path)
    continuation = model.greedy("The capital of France is", 12)
    ppl = model.perplexity(model.tokenize(text))
    model.close()
    return ppl, continuation, report["total"]["bpw"], types


def check_safetensors(bin_, folder, tmp):
    out_dir = tmp / "fake"
    decoded = tmp / "fake.decoded.safetensors"
    run([bin_, "export", folder, "--scheme", "int4_g128", "--format", "safetensors", "-o", out_dir, "--json"])
    run([bin_, "quantize", folder, "--scheme", "int4_g128", "--dry-run", "--decoded", decoded, "--json"])
    got, want = load_file(str(out_dir / "model.safetensors")), load_file(str(decoded))
    assert set(got) == set(want), set(got) ^ set(want)
    for name, v in want.items():
        if not np.array_equal(got[name].astype(np.float32).view(np.uint32), v.reshape(got[name].shape).view(np.uint32)):
            sys.exit(f"FAILED fake-quant: {name} differs from the preview's decoded values")
    for companion in ["config.json", "tokenizer.json", "vocab.txt"]:
        assert (out_dir / companion).exists(), companion
    from transformers import AutoModel, AutoTokenizer
    import torch

    model = AutoModel.from_pretrained(out_dir).eval()
    tok = AutoTokenizer.from_pretrained(out_dir)
    with torch.no_grad():
        out = model(**tok("weightbench exports fake-quantized weights", return_tensors="pt")).last_hidden_state
    assert torch.isfinite(out).all()
    return len(got)


CT_PLAN = r"""
[[rule]]
match = "re:encoder\\.layer\\.\\d+\\..*weight"
scheme = "int4_g128"
[[rule]]
match = "re:.*attention\\.output\\.dense\\.weight"
scheme = "int8_ch_asym"
[[rule]]
match = "re:.*intermediate\\.dense\\.weight"
scheme = "fp8_e4m3_ch"
[[rule]]
match = "re:.*layer\\.0\\.output\\.dense\\.weight"
scheme = "int3_g64{asym}"
"""


def check_ct(bin_, folder, tmp):
    import torch
    from compressed_tensors.compressors import BaseCompressor
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from safetensors.torch import load_file as load_torch
    from transformers import AutoModel, AutoTokenizer

    results = {}
    for asym in ["_asym", ""]:
        plan = tmp / f"ct{asym}.toml"
        plan.write_text(CT_PLAN.format(asym=asym))
        out_dir, fake, decoded = tmp / f"ct{asym}", tmp / f"ct-fake{asym}", tmp / f"ct{asym}.decoded.safetensors"
        run([bin_, "export", folder, "--plan", plan, "--format", "ct", "-o", out_dir, "--json"])
        run([bin_, "quantize", folder, "--plan", plan, "--dry-run", "--decoded", decoded, "--json"])
        cfg = json.loads((out_dir / "config.json").read_text())["quantization_config"]
        sd, want = load_torch(str(out_dir / "model.safetensors")), load_torch(str(decoded))
        n = 0
        for g in cfg["config_groups"].values():
            scheme = QuantizationScheme(targets=g["targets"], weights=QuantizationArgs(**g["weights"]))
            compressor = BaseCompressor.get_value_from_registry(g["format"])
            for m in g["targets"]:
                local = {k[len(m) + 1:]: v for k, v in sd.items() if k.startswith(m + ".weight")}
                w = compressor.decompress(local, scheme)["weight"].to(torch.float32)
                if not torch.equal(w.view(torch.int32), want[m + ".weight"].view(torch.int32)):
                    sys.exit(f"FAILED ct{asym}: compressed-tensors decompresses {m} to other values than the preview's")
                n += 1
        results[asym] = (n, sorted({g["format"] for g in cfg["config_groups"].values()}))
        if asym:
            # compressed-tensors 0.20.1 prepares an asymmetric packed zero point unpacked when
            # transformers loads a model, while its own compressor writes it packed: transformers
            # cannot load such a folder, whoever wrote it. The symmetric plan is loaded instead.
            continue
        run([bin_, "export", folder, "--plan", plan, "--format", "safetensors", "-o", fake, "--json"])
        tok = AutoTokenizer.from_pretrained(fake)
        x = tok(["compressed tensors load in transformers", "and run here"], return_tensors="pt", padding=True)
        with torch.no_grad():
            a = AutoModel.from_pretrained(fake).eval()(**x).last_hidden_state
            b = AutoModel.from_pretrained(out_dir).eval()(**x).last_hidden_state
        diff = (a - b).abs().max().item()
        if diff > 1e-5 * a.abs().max().item():
            sys.exit(f"FAILED ct: transformers' hidden states differ from the fake-quant model's by {diff}")
        results["transformers"] = diff
    return results


def check_tokenizer(bin_, gguf, tmp, text):
    from transformers import AutoTokenizer

    folder = tmp / "converted"
    run([bin_, "convert", gguf, "-o", folder])
    tok = AutoTokenizer.from_pretrained(folder)
    lib = llama_cpp.library()
    model = llama_cpp.Model(lib, gguf)
    samples = [text, "In 2024, 12345 apples cost $3.50 — naïve café 日本語 🙂\r\nCRLF",
               "<|im_start|>user\nWhat is 2+2?<|im_end|>\n", "def f(x):\n    return x**2  # comment\n\n\n  "]
    n = token_ids_equal(tok, model, samples)
    model.close()
    assert tok.chat_template and tok.eos_token == "<|im_end|>", (tok.chat_template is None, tok.eos_token)
    return n


def token_ids_equal(tok, model, samples):
    """transformers' ids equal llama.cpp's and decode back, for every sample; the token count."""
    for t in samples:
        ours = tok(t, add_special_tokens=False)["input_ids"]
        theirs = model.tokenize(t, bos=False, special=True)
        if ours != theirs:
            sys.exit(f"FAILED tokenizer: {t[:40]!r}: transformers {ours[:12]} vs llama.cpp {theirs[:12]}")
        if tok.decode(ours) != t:
            sys.exit(f"FAILED tokenizer: {t[:40]!r} does not decode back")
    return sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in samples)


def check_gemma(bin_, gguf, tmp, text):
    from transformers import AutoTokenizer

    folder = tmp / "gemma-hf"
    run([bin_, "convert", gguf, "-o", folder])
    lib = llama_cpp.library()
    source = llama_cpp.Model(lib, gguf)
    samples = [text, "In 2024, 12345 apples cost $3.50 — naïve café 日本語 🙂\r\nCRLF",
               "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n", "def f(x):\n    return x**2  # comment\n\n\n  ",
               "  leading  spaces\t\ttabs \x01\x02 ꙮ"]
    n = token_ids_equal(AutoTokenizer.from_pretrained(folder), source, samples)
    ids = source.tokenize(text)
    base = source.perplexity(ids)
    source.close()
    exact = tmp / "gemma.f32.gguf"
    run([bin_, "export", folder, "--scheme", "keep", "--format", "gguf", "-o", exact])
    want = {t.name: t for t in GGUFReader(gguf).tensors}
    got = GGUFReader(exact).tensors
    if sorted(t.name for t in got) != sorted(want):
        sys.exit("FAILED gemma: the exported GGUF has other tensor names than the source")
    for t in got:
        if not np.array_equal(dequantized(t), dequantized(want[t.name])):
            sys.exit(f"FAILED gemma: {t.name} differs from the source's decoded values")
    q8 = tmp / "gemma.q8_0.gguf"
    run([bin_, "export", folder, "--scheme", "q8_0", "--format", "gguf", "-o", q8])
    model = llama_cpp.Model(lib, q8)
    if model.tokenize(text) != ids:
        sys.exit("FAILED gemma: the exported GGUF tokenizes the page differently from the source in llama.cpp")
    ppl, cont = model.perplexity(ids), model.greedy("The capital of France is", 12)
    model.close()
    if abs(ppl / base - 1) > 0.01:
        sys.exit(f"FAILED gemma: the 8-bit export's perplexity {ppl:.4f} is more than 1% from the source's {base:.4f}")
    return n, len(got), base, ppl, cont


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--gemma", help="gemma-3-270m GGUF: convert and export it back")
    ap.add_argument("gguf")
    ap.add_argument("folder")
    a = ap.parse_args()
    text = (Path(a.gguf).parent / "LICENSE").read_text(encoding="utf-8")[:2000]
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        lib = llama_cpp.library()
        source = llama_cpp.Model(lib, a.gguf)
        base = source.perplexity(source.tokenize(text))
        source.close()
        plan = tmp / "mixed.toml"
        run([a.bin, "plan", "auto", a.gguf, "--target-bpw", "5.5", "--candidates", "q4_0,q4_k,q5_k,q6_k,q8_0",
             "--no-cache", "-o", plan])
        print(f"source {Path(a.gguf).name}: perplexity {base:.4f} over {len(text)} characters")
        perplexity = {}
        for label, args in [("q8_0", ["--scheme", "q8_0"]), ("q4_0", ["--scheme", "q4_0"]),
                            ("mixed", ["--plan", str(plan)])]:
            ppl, cont, bpw, types = check_gguf(a.bin, a.gguf, args, label, tmp, text)
            perplexity[label] = ppl
            ratio = ppl / base
            print(f"ok  gguf {label:6} {bpw:.3f} bpw {','.join(types)}: gguf-py reads every key and tensor, values "
                  f"equal the preview's; llama.cpp perplexity {ppl:.4f} ({100 * (ratio - 1):+.2f}%), "
                  f"continues {cont!r}")
            if label == "q8_0" and abs(ratio - 1) > 0.01:
                sys.exit(f"FAILED: the 8-bit plan's perplexity is {100 * (ratio - 1):+.2f}% from the source's")
            if "Paris" not in cont and label == "q8_0":
                sys.exit(f"FAILED: the 8-bit export continues {cont!r}")
        n = check_tokenizer(a.bin, a.gguf, tmp, text)
        print(f"ok  convert's tokenizer: {n} tokens of text, digits, unicode, code and chat markup equal llama.cpp's")
        # The converted transformers folder exported to GGUF (names, Q/K rows, keys and tokenizer
        # rebuilt from config.json and tokenizer.json) runs as the GGUF-to-GGUF export does.
        hf_gguf = tmp / "from-transformers.q8_0.gguf"
        run([a.bin, "export", tmp / "converted", "--scheme", "q8_0", "--format", "gguf", "-o", hf_gguf])
        model = llama_cpp.Model(llama_cpp.library(), hf_gguf)
        ppl, cont = model.perplexity(model.tokenize(text)), model.greedy("The capital of France is", 12)
        model.close()
        if abs(ppl - perplexity["q8_0"]) > 1e-9 * ppl:
            sys.exit(f"FAILED: the transformers folder's GGUF scores {ppl}, the GGUF's own export {perplexity['q8_0']}")
        print(f"ok  gguf from the converted transformers folder (q8_0): llama.cpp perplexity {ppl:.4f}, the same as "
              f"the GGUF-to-GGUF export's; continues {cont!r}")
        if a.gemma:
            n, tensors, base, ppl, cont = check_gemma(a.bin, a.gemma, tmp, text)
            print(f"ok  gemma-3-270m: convert's SentencePiece tokenizer gives llama.cpp's ids ({n} tokens); the "
                  f"folder exported back to GGUF holds all {tensors} tensors bit for bit as the source decodes and "
                  f"tokenizes as it; q8_0 perplexity {ppl:.4f} vs the source's {base:.4f} "
                  f"({100 * (ppl / base - 1):+.2f}%), continues {cont!r}")
        n = check_safetensors(a.bin, a.folder, tmp)
        print(f"ok  safetensors fake-quant int4_g128: {n} tensors equal the preview's decoded values; "
              f"config and tokenizer copied; transformers loads the folder")
        r = check_ct(a.bin, a.folder, tmp)
        print(f"ok  compressed-tensors: {r['_asym'][0]} modules ({', '.join(r['_asym'][1])}, asymmetric included) "
              f"decompressed by compressed-tensors to the preview's values; transformers runs the symmetric plan's "
              f"folder with hidden states {r['transformers']:.1e} from the fake-quant model's")
    print("export checks passed")


if __name__ == "__main__":
    main()
