#!/usr/bin/env bash
# `make flamegraph`: runs the demo's streaming load (10 s) with perf
# sampling the dataplane, and renders target/flamegraph.svg with inferno.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v perf >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
fi
if ! command -v inferno-flamegraph >/dev/null; then
    cargo install inferno --locked --quiet
fi
MS_DEMO_SECONDS=${MS_DEMO_SECONDS:-10} MS_DEMO_FLAMEGRAPH=target/flamegraph.svg bash ci/demo.sh
test -s target/flamegraph.svg
echo "[flamegraph] target/flamegraph.svg"
