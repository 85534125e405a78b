#!/usr/bin/env bash
# Builds the example plugins for wasm32-unknown-unknown into
# target/wasm32-unknown-unknown/plugin/ (profile `plugin`): the tests, the
# benchmarks and the demo load them from there. `ci/plugins.sh lint` runs
# clippy on the guest side instead (the SDK's wasm32-only code included).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    echo "[plugins] the wasm32-unknown-unknown target is missing: run ci/setup.sh (it runs rustup target add wasm32-unknown-unknown)" >&2
    exit 1
fi
EXAMPLES=(pass filter mask route sample stamp count version)
args=()
for e in "${EXAMPLES[@]}"; do args+=(-p "ms-plugin-$e"); done
if [[ ${1:-} == lint ]]; then
    exec cargo clippy --quiet --target wasm32-unknown-unknown -p ms-plugin-sdk "${args[@]}" -- -D warnings
fi
nice cargo build --quiet --profile plugin --target wasm32-unknown-unknown "${args[@]}"
out=target/wasm32-unknown-unknown/plugin
# C examples: clang-14 for wasm32, linked by lld-14's wasm-ld (ci/setup.sh).
C_EXAMPLES=(class)
for c in "${C_EXAMPLES[@]}"; do
    for tool in clang-14 wasm-ld-14; do
        command -v "$tool" >/dev/null || { echo "[plugins] $tool is missing: run ci/setup.sh (packages clang-14, lld-14)" >&2; exit 1; }
    done
    clang-14 --target=wasm32 -O2 -nostdlib -ffreestanding -Wall -Wextra -Werror -Wno-unused-parameter \
        -I plugins/sdk/c -c -o "$out/c_$c.o" "plugins/examples/c-$c/$c.c"
    wasm-ld-14 --no-entry --strip-all -o "$out/ms_plugin_c_$c.wasm" "$out/c_$c.o"
    EXAMPLES+=("c_$c")
done
for e in "${EXAMPLES[@]}"; do
    f=$out/ms_plugin_$e.wasm
    echo "[plugins] $f ($(stat -c %s "$f") bytes)"
done
