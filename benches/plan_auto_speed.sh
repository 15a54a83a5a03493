#!/usr/bin/env bash
# plan auto against one preview pass per candidate, in the same run on the same checkpoint:
# measuring every candidate on every matrix plus solving should cost about what the previews
# cost together (the same encoders run once per tensor and candidate), not a multiple of it.
# Usage: benches/plan_auto_speed.sh [CHECKPOINT] [CANDIDATES]   (after cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/weightbench
CKPT=${1:-test-models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf}
CANDIDATES=${2:-q4_0,q4_k,q5_k,q6_k,q8_0,int4_g128}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
now() { date +%s.%N; }
previews=0
for s in ${CANDIDATES//,/ }; do
  t0=$(now)
  "$BIN" quantize "$CKPT" --scheme "$s" --dry-run --backend cpu --json > "$OUT/$s.json"
  t=$(echo "$(now) - $t0" | bc -l)
  printf 'preview %-10s %7.2f s\n' "$s" "$t"
  previews=$(echo "$previews + $t" | bc -l)
done
t0=$(now)
"$BIN" plan auto "$CKPT" --target-bpw 5 --candidates "$CANDIDATES" --no-cache --backend cpu \
  -o "$OUT/plan.toml" --json > "$OUT/plan.json"
auto=$(echo "$(now) - $t0" | bc -l)
solve=$(python3 -c "import json;print(json.load(open('$OUT/plan.json'))['solve_s'])")
t0=$(now)
"$BIN" plan auto "$CKPT" --target-bpw 4.5 --candidates "$CANDIDATES" --cache-dir "$OUT/cache" --backend cpu \
  -o "$OUT/plan2.toml" --json > /dev/null
"$BIN" plan auto "$CKPT" --target-bpw 4.5 --candidates "$CANDIDATES" --cache-dir "$OUT/cache" --backend cpu \
  -o "$OUT/plan2.toml" --overwrite --json > "$OUT/plan2.json"
cached=$(echo "$(now) - $t0" | bc -l)
python3 -c "print(f'sum of the previews: {$previews:.2f} s; plan auto (measure + solve, no cache): {$auto:.2f} s (solve {float(\"$solve\") * 1e3:.2f} ms); ratio {$auto / $previews:.2f}')"
python3 - "$OUT/plan2.json" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
print(f"a second budget from the cache: measured {v['measured']}, cached {v['cached']}, measuring {v['measuring_s']:.3f} s")
PY
