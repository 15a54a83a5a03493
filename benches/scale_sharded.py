#!/usr/bin/env python3
"""Scale benchmark: whole-model work on 70B- and 405B-shaped sharded checkpoints, memory bounded
independently of the model's size.

Writes the checkpoint as sparse shards (real headers and index, data regions that take no disk:
every weight reads as 0; benches/open_sharded.py), then times the release binary as a user runs
it, each command as its own process:

  info      open the index and every shard, validate every header, list every tensor (--json);
  stats     whole-model statistics: every byte of every tensor read and counted (--backend cpu);
  plan      `quantize --dry-run` of a plan: every tensor's bytes as planned and its error measured;
  export    `export --format ct --tensor RE`: a few tensors written as compressed-tensors int4,
            the 405B's 128256 x 16384 embedding among them.

For each: wall time, throughput over the bytes read, the process's peak RSS (wait4), and the
peak of its anonymous memory (RssAnon sampled from /proc every 20 ms): mapped file pages count in
RSS but are the page cache's, given back as each large tensor is done (Checkpoint::release).

Usage:
    .venv/bin/python benches/scale_sharded.py --shape 70b [--dir bench-data/llama70b]
    .venv/bin/python benches/scale_sharded.py --shape 405b --stats-tensors 'layers\\.[0-9]\\.' --plan-tensors 'layers\\.0\\.'
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from open_sharded import LLAMA_70B, write_checkpoint  # noqa: E402

SHAPES = {
    "70b": LLAMA_70B,
    # Llama-3.1-405B: 126 layers, hidden 16384, 8 KV heads of 128, MLP 53248, vocab 128256.
    "405b": dict(layers=126, hidden=16384, kv=1024, mlp=53248, vocab=128256, shards=191),
}


def measure(cmd):
    """Runs cmd; returns (wall s, peak RSS MiB, peak RssAnon MiB, stdout)."""
    out_path = "/tmp/scale-bench.out"
    with open(out_path, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE)
        anon = [0]

        def sample():
            while proc.poll() is None:
                try:
                    with open(f"/proc/{proc.pid}/status") as f:
                        for line in f:
                            if line.startswith("RssAnon:"):
                                anon[0] = max(anon[0], int(line.split()[1]))
                except OSError:
                    pass
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        sampler.join()
        err = proc.stderr.read().decode()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-2000:]}")
    with open(out_path) as f:
        text = f.read()
    return wall, usage.ru_maxrss / 1024, anon[0] / 1024, text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=SHAPES, default="70b")
    ap.add_argument("--bin", default="target/release/weightbench")
    ap.add_argument("--dir")
    ap.add_argument("--stats-tensors", help="regular expression: statistics of these tensors only (default: all)")
    ap.add_argument("--plan-tensors", help="regular expression: the dry-run plan on these tensors only (default: all)")
    ap.add_argument("--scheme", default="int8_ch")
    ap.add_argument("--steps", default="info,stats,plan,export", help="comma-separated: which of info, stats, plan, export to run")
    ap.add_argument("--export-tensors", default=r"model\.embed_tokens\.weight|model\.layers\.0\.mlp\.down_proj\.weight")
    args = ap.parse_args()
    shape = SHAPES[args.shape]
    folder = args.dir or f"bench-data/llama{args.shape}"
    count, total = write_checkpoint(folder, shape)
    print(f"{args.shape}: {count} tensors, {total / 1e9:.1f} GB (sparse) in {shape['shards']} shards at {folder}")
    rows = []
    steps = set(args.steps.split(","))

    wall, rss, anon, out = measure([args.bin, "info", "--json", folder])
    listed = json.loads(out)["tensors"]
    assert len(listed) == count
    size = {t["name"]: t["bytes"] for t in listed}
    if "info" in steps:
        rows.append(("info (open + list)", wall, None, rss, anon, f"{count} tensors"))

    if "stats" in steps:
        stats_step(args, folder, size, rows)
    if "plan" in steps:
        plan_step(args, folder, size, rows)
    if "export" in steps:
        export_step(args, folder, size, rows)

    print(f"| shape | step | wall | read | throughput | peak RSS | peak anonymous | notes |")
    print("|---|---|---|---|---|---|---|---|")
    for name, wall, read, rss, anon, note in rows:
        tp = f"{read / wall / 1e9:.2f} GB/s" if read else "-"
        rd = f"{read / 1e9:.1f} GB" if read else "-"
        print(f"| {args.shape} | {name} | {wall:.2f} s | {rd} | {tp} | {rss:.0f} MiB | {anon:.0f} MiB | {note} |")


def stats_step(args, folder, size, rows):
    cmd = [args.bin, "stats", "--json", "--backend", "cpu", folder]
    if args.stats_tensors:
        cmd += ["--tensor", args.stats_tensors]
    wall, rss, anon, out = measure(cmd)
    stats = json.loads(out)["tensors"]
    assert all(t["zeros"] == t["count"] for t in stats), "a sparse checkpoint reads as zeros"
    rows.append((f"stats ({len(stats)} tensors)", wall, sum(size[t["name"]] for t in stats), rss, anon, ""))


def plan_step(args, folder, size, rows):
    cmd = [args.bin, "quantize", "--dry-run", "--json", "--backend", "cpu", "--scheme", args.scheme, folder]
    if args.plan_tensors:
        cmd += ["--tensor", args.plan_tensors]
    wall, rss, anon, out = measure(cmd)
    plan = json.loads(out)
    read = sum(size[t["name"]] for t in plan["tensors"])
    note = f"{plan['total']['bytes'] / 1e9:.2f} GB as planned"
    rows.append((f"dry-run plan, {args.scheme} ({len(plan['tensors'])} tensors)", wall, read, rss, anon, note))


def export_step(args, folder, size, rows):
    target = folder + "-export"
    shutil.rmtree(target, ignore_errors=True)
    wall, rss, anon, out = measure([args.bin, "export", "--json", "--backend", "cpu", "--format", "ct", "--scheme", "int4_g128",
                                    "--tensor", args.export_tensors, "-o", target, folder])
    report = json.loads(out)
    read = sum(size[t["name"]] for t in report["tensors"])
    written = sum(os.path.getsize(os.path.join(target, f)) for f in os.listdir(target) if f.endswith(".safetensors"))
    rows.append((f"export ct int4_g128 ({len(report['tensors'])} tensors)", wall, read, rss, anon, f"{written / 1e9:.2f} GB written"))
    shutil.rmtree(target, ignore_errors=True)


if __name__ == "__main__":
    main()
