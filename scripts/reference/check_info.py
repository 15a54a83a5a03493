#!/usr/bin/env python3
"""Compares `weightbench info --json` with the reference safetensors library on real checkpoints.

For every tensor: the name set, dtype and shape must equal what `safetensors.safe_open` reports,
and the absolute offset and byte size must equal those computed from the header by plain `json`
parsing; the values at that offset, read with numpy, must equal `safe_open(...).get_tensor(...)`.
Exits non-zero on the first mismatch.

    .venv/bin/python scripts/reference/check_info.py [--bin target/debug/weightbench] CHECKPOINT...
"""
import argparse
import json
import os
import struct
import subprocess
import sys

import numpy as np
from safetensors import safe_open

NP_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
             "U8": "u1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "BOOL": "?"}


def header_offsets(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return {k: (8 + n + v["data_offsets"][0], v["data_offsets"][1] - v["data_offsets"][0]) for k, v in header.items()}


def check(binary, checkpoint):
    info = json.loads(subprocess.run([binary, "info", "--json", checkpoint], check=True, capture_output=True).stdout)
    ours = {t["name"]: t for t in info["tensors"]}
    seen = set()
    for path in info["files"]:
        offsets = header_offsets(path)
        with safe_open(path, "np") as f:
            for name in f.keys():
                seen.add(name)
                t = ours.get(name)
                if t is None:
                    sys.exit(f"{checkpoint}: {name} missing from weightbench info")
                sl = f.get_slice(name)
                if (t["dtype"], t["shape"]) != (sl.get_dtype(), list(sl.get_shape())):
                    sys.exit(f"{name}: weightbench {t['dtype']} {t['shape']} vs safetensors {sl.get_dtype()} {sl.get_shape()}")
                if (t["offset"], t["bytes"]) != offsets[name] or os.path.realpath(t["file"]) != os.path.realpath(path):
                    sys.exit(f"{name}: weightbench offset/bytes {t['offset']}/{t['bytes']} vs header {offsets[name]}")
                if t["dtype"] in NP_DTYPES:
                    raw = np.fromfile(path, dtype=NP_DTYPES[t["dtype"]], count=int(np.prod(t["shape"])), offset=t["offset"])
                    ref = f.get_tensor(name).reshape(-1)
                    if raw.tobytes() != ref.tobytes():
                        sys.exit(f"{name}: bytes at weightbench's offset differ from safetensors' tensor")
    if seen != set(ours):
        sys.exit(f"{checkpoint}: name sets differ: {sorted(set(ours) ^ seen)[:5]}")
    params = sum(int(np.prod(t["shape"])) for t in info["tensors"])
    if params != info["total_params"]:
        sys.exit(f"{checkpoint}: total_params {info['total_params']} vs {params}")
    print(f"ok  {checkpoint}: {len(ours)} tensors, {params} parameters agree with safetensors {len(info['files'])} file(s)")


def write_sharded_copy(source, folder, shards=3):
    """Splits a single-file checkpoint into shards with an index, as transformers' save_pretrained does."""
    from safetensors.numpy import save_file
    os.makedirs(folder, exist_ok=True)
    src = os.path.join(source, "model.safetensors") if os.path.isdir(source) else source
    with safe_open(src, "np") as f:
        names = sorted(f.keys())
        per = -(-len(names) // shards)
        weight_map = {}
        for i in range(shards):
            shard = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: f.get_tensor(n) for n in names[i * per:(i + 1) * per]}
            save_file(part, os.path.join(folder, shard), metadata={"format": "pt"})
            weight_map.update({n: shard for n in part})
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as out:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/debug/weightbench")
    ap.add_argument("--sharded-copy", metavar="DIR", help="also split the first checkpoint into shards in DIR and check those")
    ap.add_argument("checkpoints", nargs="+")
    args = ap.parse_args()
    for c in args.checkpoints:
        check(args.bin, c)
    if args.sharded_copy:
        write_sharded_copy(args.checkpoints[0], args.sharded_copy)
        check(args.bin, args.sharded_copy)


if __name__ == "__main__":
    main()
