#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/fuzz_targets) for a fixed number of executions, from its
# committed seeds (fuzz/seeds/TARGET) plus what earlier runs found (fuzz/corpus/TARGET, not
# committed), two targets at a time, and prints one line per target: executions, seconds, crashes.
# Crashing inputs land in fuzz/artifacts/TARGET/; each becomes a regression test in
# tests/fuzz_regressions.rs once fixed. Results of recorded runs: docs/fuzzing.md.
#
#   scripts/fuzz.sh                  # every target, 10 million executions each
#   RUNS=100000 scripts/fuzz.sh gguf # one target, a short run
#
# Needs the nightly toolchain and cargo-fuzz: `rustup toolchain install nightly` and
# `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10000000}
JOBS=${JOBS:-2}
if ! cargo +nightly fuzz --version > /dev/null 2>&1; then
    echo "scripts/fuzz.sh needs cargo-fuzz on the nightly toolchain: rustup toolchain install nightly; cargo install cargo-fuzz" >&2
    exit 2
fi
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list); fi
# Safe Rust: no sanitizer (an out-of-bounds access panics anyway), debug assertions on (integer
# overflow panics, which is a finding).
cargo +nightly fuzz build -s none
logs=fuzz/target/logs
mkdir -p "$logs"
run_one() {
    local t=$1
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    # -seed fixes the run; -rss_limit_mb bounds memory like the CLI's hostile tests do.
    cargo +nightly fuzz run -s none "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -runs="$RUNS" -seed=1 -rss_limit_mb=4096 -timeout=10 -max_len=65536 -print_final_stats=1 \
        > "$logs/$t.log" 2>&1 && echo ok > "$logs/$t.rc" || echo "failed ($?)" > "$logs/$t.rc"
}
export -f run_one
export RUNS logs
printf '%s\n' "${targets[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one {}'
status=0
printf '%-20s %14s %9s %8s %s\n' target executions seconds crashes result
for t in "${targets[@]}"; do
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$' || echo 0)
    secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$logs/$t.log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' || echo '?')
    crashes=$(find "fuzz/artifacts/$t" -type f | wc -l)
    result=$(cat "$logs/$t.rc")
    [ "$result" = ok ] && [ "$crashes" -eq 0 ] || status=1
    printf '%-20s %14s %9s %8s %s\n' "$t" "${execs:-0}" "${secs:-?}" "$crashes" "$result"
done
exit $status
