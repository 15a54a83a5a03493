#!/usr/bin/env bash
# Retakes the README's screenshots (assets/screenshots/) from the release build, each in a
# private X server (../shared/tools/screenshot.sh, or SHOT=path/to/screenshot.sh), cropped to
# the 1360×860 window (Xvfb and ImageMagick: scripts/install-deps.sh --test).
# Usage: scripts/screenshots.sh [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/weightbench}
shot=${SHOT:-../shared/tools/screenshot.sh}
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
# Allocations measured afresh, not from the user's cache.
export XDG_CACHE_HOME=$(mktemp -d)
out=assets/screenshots
take() { # NAME SECONDS ARGS...
  local name=$1 wait=$2; shift 2
  "$shot" "/tmp/wb-$name.png" "$wait" "$bin" "$@" >/dev/null
  convert "/tmp/wb-$name.png" -crop 1360x860+0+0 +repage "$out/$name.png"
  echo "$out/$name.png"
}
outlier=encoder.layer.3.output.dense.weight
take main 15 --select "$outlier"
take overview 25 --view overview --run stats
take spectrum 20 --view spectrum --select "$outlier"
take heatmap 20 --view heatmap --select "$outlier"
take gguf 25 test-models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf --view spectrum --select blk.0.attn_output.weight
take plan 25 --view plan --load-plan assets/demo-plan.toml --select "$outlier"
take plan-pareto 40 --view plan --run allocate --select "$outlier"
take attention 25 test-models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf --view attention --run attention
