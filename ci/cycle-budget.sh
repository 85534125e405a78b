#!/usr/bin/env bash
# The cycle budget: instructions per published message, by stage of the
# worker's path (rx parse, engine, scheduler and DELIVER build, egress),
# counted by callgrind in ms-cost's measured loop (no DPDK needed). Re-run
# it after an optimization to see what it bought; the numbers are exact
# and repeatable, unlike timings on a shared machine.
#
#   bash ci/cycle-budget.sh                      # 20000 datagrams each
#   MS_COST_DATAGRAMS=5000 bash ci/cycle-budget.sh
#
# Writes target/cycle-budget/: per scenario the profile (*.out), ms-cost's
# output (*.log) and callgrind_annotate's inclusive view (*.annotate), and
# the table (table.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

DATAGRAMS=${MS_COST_DATAGRAMS:-20000}
OUT=target/cycle-budget
# label|ms-cost arguments
SCENARIOS=(
    "1 stream 16/dgram|"
    "1 stream 1/dgram|--batch 1"
    "1M streams 16/dgram|--streams 1000000"
    "fan-out 8 16/dgram|--subscribers 8"
)

need_valgrind() {
    if command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null; then
        return
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "[cycle-budget] valgrind is missing and cannot be installed here (needs root and apt-get):" \
            "install the valgrind package and re-run" >&2
        exit 1
    fi
    echo "[cycle-budget] installing valgrind"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }; then
        echo "[cycle-budget] apt-get could not install valgrind" >&2
        exit 1
    fi
    command -v valgrind >/dev/null || { echo "[cycle-budget] valgrind still missing after install" >&2; exit 1; }
}

need_valgrind
nice -n 10 cargo build --release --quiet -p ms-sim --bin ms-cost
BIN=target/release/ms-cost
mkdir -p "$OUT"

profiles=()
for s in "${SCENARIOS[@]}"; do
    label=${s%%|*}
    read -r -a args <<<"${s#*|}"
    name=$(echo "$label" | tr -c 'A-Za-z0-9\n' '-')
    # Correctness first, natively: every DELIVER checked as a subscriber would.
    "$BIN" --datagrams "$DATAGRAMS" --verify "${args[@]}" >"$OUT/$name.verify.log"
    echo "[cycle-budget] $label: $(grep '^time:' "$OUT/$name.verify.log")"
    # Only the measured loop is collected (setup and frame building are not).
    valgrind --tool=callgrind --toggle-collect='ms_cost::worker::run_turns' \
        --callgrind-out-file="$OUT/$name.out" \
        "$BIN" --datagrams "$DATAGRAMS" "${args[@]}" >"$OUT/$name.log" 2>"$OUT/$name.valgrind.log"
    callgrind_annotate --inclusive=yes "$OUT/$name.out" >"$OUT/$name.annotate" 2>/dev/null || true
    profiles+=("$label=$OUT/$name.out")
done

echo
"$BIN" report --top 15 "${profiles[@]}" | tee "$OUT/table.md"
echo
echo "[cycle-budget] profiles and the table are in $OUT/"
