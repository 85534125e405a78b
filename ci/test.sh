#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it (after ci/setup.sh).
# Tests that need root, DPDK, TAP devices or namespaces fail with the
# reason when a prerequisite is missing; none is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

start=$(date +%s)
echo "[test] lint: cargo fmt --check, cargo clippy -D warnings"
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The guest side of the plugin SDK only exists on wasm32.
bash ci/plugins.sh lint

echo "[test] plugins: the examples for wasm32 (the plugin tests load them)"
bash ci/plugins.sh

echo "[test] build"
cargo build --workspace --all-targets --quiet

fuzz_failed=0
echo "[test] fuzz: the wire parser, 20 s from the committed seed corpus"
corpus=$(mktemp -d)
cp wire/fuzz/corpus/parse/* "$corpus"/
if ! (cd wire/fuzz && cargo fuzz run parse --sanitizer none "$corpus" -- -max_total_time=20 -print_final_stats=1 2>&1 | tail -6); then
    echo "[test] fuzz: FAILED (crash input under wire/fuzz/artifacts/)"
    fuzz_failed=1
fi
rm -rf "$corpus"

echo "[test] simulator: 4,000 seeds in a release build (the debug run below does 400)"
sim_failed=0
if ! MS_SIM_SEEDS=4000 cargo test -p ms-sim --release --quiet many_seeds 2>&1 | tail -15; then
    echo "[test] simulator: FAILED (the seed and its replay command are printed above)"
    sim_failed=1
fi

echo "[test] cargo test (unit, property, simulator, golden pcap, live TAP, error paths)"
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee target/test.log
status=${PIPESTATUS[0]}
set -e

echo "[test] finished in $(( $(date +%s) - start )) s"
if ((fuzz_failed || sim_failed)); then
    exit 1
fi
exit "$status"
