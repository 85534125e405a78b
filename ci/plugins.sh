#!/usr/bin/env bash
# Builds the example plugins for wasm32-unknown-unknown into
# target/wasm32-unknown-unknown/plugin/ (profile `plugin`): the tests, the
# benchmarks and the demo load them from there.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    echo "[plugins] the wasm32-unknown-unknown target is missing: run ci/setup.sh (it runs rustup target add wasm32-unknown-unknown)" >&2
    exit 1
fi
EXAMPLES=(pass filter)
args=()
for e in "${EXAMPLES[@]}"; do args+=(-p "ms-plugin-$e"); done
nice cargo build --quiet --profile plugin --target wasm32-unknown-unknown "${args[@]}"
for e in "${EXAMPLES[@]}"; do
    f=target/wasm32-unknown-unknown/plugin/ms_plugin_$e.wasm
    echo "[plugins] $f ($(stat -c %s "$f") bytes)"
done
