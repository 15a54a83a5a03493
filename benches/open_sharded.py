#!/usr/bin/env python3
"""Open-and-list benchmark on a checkpoint shaped like a 70B model, against Python safetensors.

Writes a Llama-2-70B-shaped checkpoint (80 layers, hidden 8192, GQA 8 KV heads, MLP 28672,
vocab 32000, BF16, 723 tensors, ~138 GB) as 30 shards plus model.safetensors.index.json. The
shards are sparse files: real headers, data regions that take no disk. Then, in the same run:

  ours:   `weightbench info --json DIR` (whole process: start, open the index and 30 shards, validate
          every header, print the table), repeated; wall time and peak RSS of the process.
  python: `safetensors.safe_open(shard, "np")` + `.keys()` for every shard, timed inside the
          interpreter (its start-up and imports excluded, which favours Python), and the peak RSS
          of that process.

Prints medians and the ratio. Usage:
    .venv/bin/python benches/open_sharded.py [--bin target/release/weightbench] [--dir bench-data/llama70b] [--runs 15]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# Llama-2-70B's layout (benches/scale_sharded.py adds Llama-3.1-405B's).
LLAMA_70B = dict(layers=80, hidden=8192, kv=1024, mlp=28672, vocab=32000, shards=30)
LAYERS, HIDDEN, KV, MLP, VOCAB, SHARDS = (LLAMA_70B[k] for k in ("layers", "hidden", "kv", "mlp", "vocab", "shards"))


def tensors(shape=LLAMA_70B):
    LAYERS, HIDDEN, KV, MLP, VOCAB = (shape[k] for k in ("layers", "hidden", "kv", "mlp", "vocab"))
    yield "model.embed_tokens.weight", [VOCAB, HIDDEN]
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", [HIDDEN]
        yield p + "self_attn.q_proj.weight", [HIDDEN, HIDDEN]
        yield p + "self_attn.k_proj.weight", [KV, HIDDEN]
        yield p + "self_attn.v_proj.weight", [KV, HIDDEN]
        yield p + "self_attn.o_proj.weight", [HIDDEN, HIDDEN]
        yield p + "post_attention_layernorm.weight", [HIDDEN]
        yield p + "mlp.gate_proj.weight", [MLP, HIDDEN]
        yield p + "mlp.up_proj.weight", [MLP, HIDDEN]
        yield p + "mlp.down_proj.weight", [HIDDEN, MLP]
    yield "model.norm.weight", [HIDDEN]
    yield "lm_head.weight", [VOCAB, HIDDEN]


def write_checkpoint(folder, shape=LLAMA_70B):
    SHARDS = shape["shards"]
    os.makedirs(folder, exist_ok=True)
    items = list(tensors(shape))
    per_shard = -(-len(items) // SHARDS)
    weight_map, total = {}, 0
    for s in range(SHARDS):
        name = f"model-{s + 1:05d}-of-{SHARDS:05d}.safetensors"
        header, offset = {}, 0
        for tname, shape in items[s * per_shard:(s + 1) * per_shard]:
            size = 2
            for d in shape:
                size *= d
            header[tname] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
            weight_map[tname] = name
            offset += size
        header["__metadata__"] = {"format": "pt"}
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(len(text).to_bytes(8, "little") + text)
            f.truncate(8 + len(text) + offset)  # sparse: the data takes no disk
        total += offset
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}, f)
    return len(items), total


def run_child(cmd):
    """Runs cmd, returns (wall seconds, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {err.decode()}")
    return wall, out


PY_LIST = r"""
import glob, json, resource, sys, time
from safetensors import safe_open
folder = sys.argv[1]
t = time.perf_counter()
names = []
for shard in sorted(glob.glob(folder + "/*.safetensors")):
    with safe_open(shard, "np") as f:
        names.extend(f.keys())
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "tensors": len(names), "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

OURS_RSS = r"""
import resource, subprocess, sys, json
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
print(json.dumps({"maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/weightbench")
    ap.add_argument("--dir", default="bench-data/llama70b")
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    count, total = write_checkpoint(args.dir)
    print(f"checkpoint: {count} tensors, {total / 1e9:.1f} GB (sparse) in {SHARDS} shards at {args.dir}")

    ours, theirs_in, theirs_proc = [], [], []
    for _ in range(args.runs):
        wall, out = run_child([args.bin, "info", "--json", args.dir])
        listed = json.loads(out)
        assert len(listed["tensors"]) == count and listed["total_bytes"] == total
        ours.append(wall)
        wall, out = run_child([sys.executable, "-c", PY_LIST, args.dir])
        r = json.loads(out)
        assert r["tensors"] == count
        theirs_in.append(r["seconds"])
        theirs_proc.append(wall)
    ours_rss = json.loads(run_child([sys.executable, "-c", OURS_RSS, args.bin, "info", "--json", args.dir])[1])["maxrss_kib"] / 1024
    py_rss = r["maxrss_kib"] / 1024

    m_ours, m_in, m_proc = (statistics.median(x) for x in (ours, theirs_in, theirs_proc))
    print(f"weightbench info --json (whole process)       median {m_ours * 1e3:7.1f} ms   peak RSS {ours_rss:6.1f} MiB")
    print(f"python safe_open + keys (in-process only)     median {m_in * 1e3:7.1f} ms")
    print(f"python safe_open + keys (whole process)       median {m_proc * 1e3:7.1f} ms   peak RSS {py_rss:6.1f} MiB")
    print(f"ratio python(in-process) / weightbench(process): {m_in / m_ours:.2f}x")
    print(f"ratio python(process) / weightbench(process):    {m_proc / m_ours:.2f}x")


if __name__ == "__main__":
    main()
