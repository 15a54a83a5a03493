#!/usr/bin/env python3
"""The runtime's forward pass (`weightbench eval`, `attention`, `imatrix`) against transformers.

On a transformers folder — Llama family (SmolLM2-135M) or Gemma 3 (gemma-3-270m), each the exact
F32 copy `convert` makes — and on the GGUF it came from:
- tokenization: our token ids (the folder's tokenizer.json, or the tokenizer rebuilt from the
  GGUF's keys) equal transformers' `tokenizer(text)` on prose, code, unicode and digits;
- logits: max |ours − transformers'| <= 1e-4 (f32, torch on the CPU) for every prompt, from the
  folder and from the GGUF (dequantized, llama.cpp's Q/K permutation and Gemma's norm offset
  undone); for a 700-token text (past Gemma's 512-token sliding window), where transformers' own
  f32 logits drift 6–9e-5 from float64's, within 1e-4 of transformers in float64;
- perplexity over a page within 0.1% of transformers' over the same window;
- attention probabilities of a few layers (all heads) within 1e-4 of transformers' eager
  attention;
- a plan (q8_0 and q4_0 on every matrix): our perplexity of the planned model within 0.1% of
  transformers' on `weightbench export --format safetensors` of the same plan (the fake-quant
  weights), our KL(original ‖ plan) within 1% (relative, or 1e-6 absolute) of the KL computed
  from transformers' logits of both folders;
- `weightbench imatrix`: gguf-py reads the file with llama.cpp's keys (`general.type`,
  `imatrix.datasets`, `imatrix.chunk_count`, `imatrix.chunk_size`) and shapes (`<name>.in_sum2`
  of [n_in, 1], `<name>.counts` of [1, 1]); every in_sum2 equals the sum of squared inputs that
  forward pre-hooks on transformers' Linear layers collect (1e-4 of its largest), counts equal the
  tokens; and a GGUF export with it as importance (Q4_K, from the GGUF source) holds, for a
  matrix, the bytes llama.cpp's `ggml_quantize_chunk` makes from the same weights and the imatrix.
On a BERT folder (all-MiniLM-L6-v2; an encoder, no perplexity): token ids, and the attention
probabilities of every layer within 1e-5 of transformers' `BertModel` (eager attention) — each
layer's maps depend on every earlier layer's output — and `eval` refused with the reason.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import ctypes

import numpy as np
import torch
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llama_cpp  # noqa: E402

GGUF_MODULES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "Zürich, 東京 and São Paulo: 3.14159 × 2 = 6.28318 — naïve café déjà vu!",
]
PAGE = (
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg "
    "combined movable metal type, oil-based inks and a wooden press adapted from those used to make "
    "wine. Within a few decades, printing shops had spread across Europe, and the cost of books fell "
    "sharply. Scholars could compare identical copies of a text for the first time, which changed how "
    "knowledge was checked and shared. Governments and churches soon worried about what could now be "
    "printed, and licensing systems followed; yet pamphlets, newspapers and scientific journals grew "
    "all the same, and literacy rose with them over the next three centuries."
)


LONG = " ".join([PAGE] * 6)  # past Gemma's 512-token sliding window


def run(cmd):
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{out.stderr}")
    return out.stdout


def ours(bin_, path, text, tmp, extra=()):
    logits = Path(tmp) / "logits.f32"
    j = json.loads(run([bin_, "eval", path, "--text", text, "--ctx", "4096", "--logits-out", logits, "--json", *extra]))
    v = np.fromfile(logits, dtype="<f4").reshape(-1, j["vocab"])
    return j, v


def nll_and_logp(logits):
    lp = torch.log_softmax(torch.from_numpy(np.asarray(logits, dtype=np.float64)), dim=-1)
    return lp


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("folder", help="a Llama-family transformers folder (F32)")
    ap.add_argument("--gguf", help="the GGUF the folder was converted from")
    a = ap.parse_args()
    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(a.folder)
    if json.loads((Path(a.folder) / "config.json").read_text()).get("model_type") == "bert":
        check_encoder(a, tok)
        print("runtime matches transformers")
        return
    model = AutoModelForCausalLM.from_pretrained(a.folder, torch_dtype=torch.float32, attn_implementation="eager").eval()
    sources = [a.folder] + ([a.gguf] if a.gguf else [])
    with tempfile.TemporaryDirectory() as tmp:
        model64 = AutoModelForCausalLM.from_pretrained(a.folder, dtype=torch.float64, attn_implementation="eager").eval()
        for text in PROMPTS + [PAGE, LONG]:
            ids = tok(text)["input_ids"]
            with torch.no_grad():
                ref = model(torch.tensor([ids])).logits[0].double().numpy()
                truth = model64(torch.tensor([ids])).logits[0].numpy()
            floor = float(np.abs(ref - truth).max())
            for src in sources:
                j, v = ours(a.bin, src, text, tmp)
                assert j["token_ids"] == ids, f"{src}: token ids differ on {text!r}:\n{j['token_ids']}\n{ids}"
                d, d64 = float(np.abs(v - ref).max()), float(np.abs(v - truth).max())
                print(f"{Path(src).name}: {len(ids)} tokens, max |logit diff| {d:.2e} "
                      f"(float64: ours {d64:.2e}, transformers' f32 {floor:.2e})")
                # Past a few hundred tokens transformers' own f32 logits drift ~1e-4 from
                # float64's; there ours are held to float64's instead.
                if text is LONG:
                    assert d64 <= 1e-4, f"{src}: logits differ from float64's by {d64} on the long text"
                else:
                    assert d <= 1e-4, f"{src}: logits differ by {d} on {text!r}"
        del model64
        # Perplexity over the page, same window.
        ids = tok(PAGE)["input_ids"]
        with torch.no_grad():
            ref = model(torch.tensor([ids])).logits[0]
        lp = nll_and_logp(ref.numpy())
        ref_ppl = float(torch.exp(-lp[:-1].gather(1, torch.tensor(ids[1:])[:, None]).mean()))
        j, _ = ours(a.bin, a.folder, PAGE, tmp)
        rel = abs(j["ppl"] / ref_ppl - 1)
        print(f"perplexity: ours {j['ppl']:.5f}, transformers {ref_ppl:.5f} ({rel:.1e})")
        assert rel <= 1e-3, "perplexity not within 0.1%"
        # Attention probabilities.
        with torch.no_grad():
            att = model(torch.tensor([ids]), output_attentions=True).attentions
        for layer in (0, len(att) // 2, len(att) - 1):
            j = json.loads(run([a.bin, "attention", a.folder, "--text", PAGE, "--layer", layer, "--json"]))
            got = np.array([h["probs"] for h in j["heads"]], dtype=np.float32)
            want = att[layer][0].numpy()
            d = float(np.abs(got - want).max())
            print(f"attention layer {layer}: {got.shape[0]} heads, max |diff| {d:.2e}; sinks {[s['index'] for s in j['sinks']]}")
            assert d <= 1e-4, f"attention of layer {layer} differs by {d}"
        # A plan: the planned model is transformers on the fake-quant export of the same plan.
        for scheme in ("q8_0", "q4_0"):
            fake = Path(tmp) / f"fake-{scheme}"
            run([a.bin, "export", a.folder, "--scheme", scheme, "--format", "safetensors", "-o", fake])
            pm = AutoModelForCausalLM.from_pretrained(fake, torch_dtype=torch.float32, attn_implementation="eager").eval()
            with torch.no_grad():
                lq = pm(torch.tensor([ids])).logits[0]
            lpq = nll_and_logp(lq.numpy())
            ppl_q = float(torch.exp(-lpq[:-1].gather(1, torch.tensor(ids[1:])[:, None]).mean()))
            kl = (lp[:-1].exp() * (lp[:-1] - lpq[:-1])).sum(-1)
            top1 = float((ref[:-1].argmax(-1) == lq[:-1].argmax(-1)).double().mean())
            j = json.loads(run([a.bin, "eval", a.folder, "--text", PAGE, "--scheme", scheme, "--json"]))
            print(
                f"{scheme}: ppl {j['ppl_plan']:.5f} vs {ppl_q:.5f}; KL mean {j['kl_mean']:.6f} vs {float(kl.mean()):.6f}, "
                f"p99 {j['kl_p99']:.5f}; top-1 {j['top1_agree']:.4f} vs {top1:.4f}"
            )
            assert abs(j["ppl_plan"] / ppl_q - 1) <= 1e-3, "planned perplexity not within 0.1%"
            assert abs(j["kl_mean"] - float(kl.mean())) <= max(1e-2 * float(kl.mean()), 1e-6), "KL differs"
            assert abs(j["top1_agree"] - top1) <= 1.5 / len(ids), "top-1 agreement differs"
        check_imatrix(a, model, tok, tmp)
    print("runtime matches transformers")


def check_encoder(a, tok):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(a.folder, dtype=torch.float32, attn_implementation="eager").eval()
    for text in PROMPTS + [PAGE]:
        ids = tok(text)["input_ids"]
        with torch.no_grad():
            att = model(torch.tensor([ids]), output_attentions=True).attentions
        worst = 0.0
        for layer in range(len(att)):
            j = json.loads(run([a.bin, "attention", a.folder, "--text", text, "--layer", layer, "--json"]))
            assert j["token_ids"] == ids, f"token ids differ on {text!r}:\n{j['token_ids']}\n{ids}"
            got = np.array([h["probs"] for h in j["heads"]], dtype=np.float32)
            d = float(np.abs(got - att[layer][0].numpy()).max())
            worst = max(worst, d)
            assert d <= 1e-5, f"attention of layer {layer} differs by {d} on {text!r}"
        print(f"{Path(a.folder).name}: {len(ids)} tokens, {len(att)} layers, attention within {worst:.1e}")
    out = subprocess.run([a.bin, "eval", a.folder, "--text", PAGE], capture_output=True, text=True)
    assert out.returncode == 1 and "without a language-model head" in out.stderr, out.stderr
    # The sentence embedding: sentence-transformers' own pipeline (Transformer, mean Pooling,
    # Normalize) from the same folder.
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(a.folder, device="cpu")
    worst = 0.0
    for text in PROMPTS + [PAGE]:
        want = st.encode([text], convert_to_numpy=True, normalize_embeddings=False)[0]
        j = json.loads(run([a.bin, "embed", a.folder, "--text", text, "--json"]))
        assert j["normalized"] and j["dim"] == len(want)
        d = float(np.abs(np.array(j["embedding"], dtype=np.float32) - want).max())
        worst = max(worst, d)
        assert d <= 1e-5, f"sentence embedding differs by {d} on {text!r}"
    j = json.loads(run([a.bin, "embed", a.folder, "--text", PAGE, "--scheme", "q8_0", "--json"]))
    assert 0.99 < j["cosine_plan"] < 1.0, j["cosine_plan"]
    print(f"{Path(a.folder).name}: sentence embeddings within {worst:.1e} of sentence-transformers")


def gguf_name(module):
    _, _, layer, rest = module.split(".", 3)
    return f"blk.{layer}.{GGUF_MODULES[rest]}.weight"


def check_imatrix(a, model, tok, tmp):
    out = Path(tmp) / "page.imatrix.gguf"
    run([a.bin, "imatrix", a.folder, "--text", PAGE, "--ctx", "4096", "-o", out])
    r = GGUFReader(out)
    fields = {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
    assert fields["general.type"] == "imatrix", fields
    assert fields["imatrix.chunk_count"] == 1 and fields["imatrix.chunk_size"] == 4096, fields
    assert isinstance(fields["imatrix.datasets"], list), fields
    got = {t.name: np.array(t.data, dtype=np.float64).reshape(-1) for t in r.tensors}
    shapes = {t.name: list(t.shape) for t in r.tensors}
    ids = tok(PAGE)["input_ids"]
    sums, hooks = {}, []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and name != "lm_head":
            def hook(m, args, name=name):
                x = args[0].double().reshape(-1, args[0].shape[-1])
                sums[name] = sums.get(name, 0) + (x * x).sum(0)
            hooks.append(mod.register_forward_pre_hook(hook))
    with torch.no_grad():
        model(torch.tensor([ids]))
    for h in hooks:
        h.remove()
    assert len(got) == 2 * len(sums), f"{len(got)} tensors for {len(sums)} linear layers"
    worst = 0.0
    for name, s in sums.items():
        g = gguf_name(name)
        want = s.numpy()
        have = got[f"{g}.in_sum2"]
        assert shapes[f"{g}.in_sum2"] == [len(want), 1] and shapes[f"{g}.counts"] == [1, 1], g
        assert got[f"{g}.counts"][0] == len(ids), (g, got[f"{g}.counts"])
        d = float(np.abs(have - want).max() / np.abs(want).max())
        worst = max(worst, d)
        assert d <= 1e-4, f"{g}: in_sum2 differs by {d} of its largest"
    print(f"imatrix: {len(sums)} weights, in_sum2 within {worst:.1e} of transformers' hooks, counts {len(ids)}")
    if not a.gguf:
        return
    # A K-quant made with it: our export against llama.cpp's ggml_quantize_chunk.
    plan = Path(tmp) / "q4k.toml"
    plan.write_text('[tensor."blk.0.ffn_down.weight"]\nscheme = "q4_k"\n[[rule]]\nmatch = "*"\nscheme = "keep"\n')
    exported = Path(tmp) / "q4k.gguf"
    run([a.bin, "export", a.gguf, "--plan", plan, "--format", "gguf", "--importance", out, "-o", exported])
    ours = next(t for t in GGUFReader(exported).tensors if t.name == "blk.0.ffn_down.weight")
    assert ours.tensor_type == GGMLQuantizationType.Q4_K, ours.tensor_type
    src = next(t for t in GGUFReader(a.gguf).tensors if t.name == "blk.0.ffn_down.weight")
    w = dequantize(src.data, src.tensor_type).astype(np.float32).reshape(-1, int(src.shape[0]))
    imp = (got["blk.0.ffn_down.weight.in_sum2"] / got["blk.0.ffn_down.weight.counts"][0]).astype(np.float32)
    lib = llama_cpp.library()
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    lib.ggml_quantize_init.argtypes = [ctypes.c_int]
    q = int(GGMLQuantizationType.Q4_K)
    buf = np.zeros(w.size, dtype=np.uint8)
    lib.ggml_quantize_init(q)
    size = lib.ggml_quantize_chunk(q, w.ctypes.data, buf.ctypes.data, 0, w.shape[0], w.shape[1], imp.ctypes.data)
    theirs = buf[:size]
    mine = np.asarray(ours.data).view(np.uint8).reshape(-1)
    assert mine.size == theirs.size and np.array_equal(mine, theirs), "Q4_K with the imatrix differs from llama.cpp's"
    print(f"Q4_K of blk.0.ffn_down with our imatrix: {size} bytes, identical to llama.cpp's ggml_quantize_chunk")


if __name__ == "__main__":
    main()
