#!/usr/bin/env bash
# `make demo`: the product demo. Starts the DPDK dataplane on a TAP port
# with the example config, puts the TAP's kernel side in a network
# namespace made here, runs subscribers and publishers there over 10,000
# streams for 20 s (live progress line), then prints the load summary and
# the dataplane's per-worker counters. Cleans up (processes, namespace)
# even when interrupted. Knobs: MS_DEMO_RATE, MS_DEMO_SECONDS,
# MS_DEMO_STREAMS, MS_DEMO_SUBSCRIBERS.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

NS=ms-demo
IFACE=ms-tap0                     # as in deploy/memorystreamer.yaml
CONFIG=deploy/memorystreamer.yaml
RATE=${MS_DEMO_RATE:-20000}
SECONDS_=${MS_DEMO_SECONDS:-20}
STREAMS=${MS_DEMO_STREAMS:-10000}
SUBSCRIBERS=${MS_DEMO_SUBSCRIBERS:-3}
LOG=$(mktemp -t ms-demo.XXXXXX.log)
DP_PID=
CP_PID=

cleanup() {
    if [[ -n $CP_PID ]]; then kill "$CP_PID" 2>/dev/null || true; fi
    if [[ -n $DP_PID ]] && kill -0 "$DP_PID" 2>/dev/null; then
        kill -TERM "$DP_PID" 2>/dev/null || true
        wait "$DP_PID" 2>/dev/null || true
    fi
    ip netns pids "$NS" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo; echo "[demo] interrupted"; exit 130' INT TERM

step() { printf '\n\033[1m[demo] %s\033[0m\n' "$*"; }

step "building ms-dataplane, ms-controlplane, msctl and ms-loadgen (release)"
cargo build --quiet --release -p ms-dataplane -p ms-client -p ms-controlplane
BIN=target/release

ip netns del "$NS" 2>/dev/null || true
ip link del "$IFACE" 2>/dev/null || true
ip netns add "$NS"
ip -n "$NS" link set lo up

step "starting the dataplane: $BIN/ms-dataplane --config $CONFIG"
echo "       EAL arguments: $($BIN/ms-dataplane --config "$CONFIG" --print-eal-args)"
"$BIN/ms-dataplane" --config "$CONFIG" >"$LOG.out" 2>"$LOG" &
DP_PID=$!
for _ in $(seq 1 300); do
    grep -q '"ready"' "$LOG" && break
    kill -0 "$DP_PID" 2>/dev/null || { cat "$LOG"; echo "[demo] dataplane exited early"; exit 1; }
    sleep 0.1
done
grep -q '"ready"' "$LOG" || { cat "$LOG"; echo "[demo] dataplane not ready after 30 s"; exit 1; }

step "starting the control plane: $BIN/ms-controlplane --config $CONFIG"
rm -f /run/memorystreamer/msctl.sock
"$BIN/ms-controlplane" --config "$CONFIG" 2>"$LOG.cp" &
CP_PID=$!
for _ in $(seq 1 100); do "$BIN/msctl" status >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN/msctl" status

step "kernel side of the TAP -> namespace $NS, host 198.18.0.2/24"
ip link set "$IFACE" netns "$NS"
ip netns exec "$NS" sysctl -qw "net.ipv6.conf.$IFACE.disable_ipv6=1"
ip -n "$NS" addr add 198.18.0.2/24 dev "$IFACE"
ip -n "$NS" link set "$IFACE" up
ip netns exec "$NS" ping -c 2 -i 0.2 -W 2 198.18.0.1 | sed -n '2,3p'

step "streaming: $STREAMS streams, $SUBSCRIBERS subscribers (each on every stream), $RATE msg/s for $SECONDS_ s"
PERF_PID=
if [[ -n ${MS_DEMO_FLAMEGRAPH:-} ]]; then
    # `make flamegraph`: sample the dataplane (all its lcores) during the load.
    perf record -F 997 -g -p "$DP_PID" -o target/perf.data -- sleep "$SECONDS_" >/dev/null 2>&1 &
    PERF_PID=$!
fi
loadgen_rc=0
ip netns exec "$NS" "$BIN/ms-loadgen" --bind 198.18.0.2 --streams "$STREAMS" --subscribers "$SUBSCRIBERS" \
    --rate "$RATE" --duration "$SECONDS_" --fail-on-loss || loadgen_rc=$?

if [[ -n $PERF_PID ]]; then
    wait "$PERF_PID" || true
    perf script -i target/perf.data 2>/dev/null | inferno-collapse-perf | inferno-flamegraph --title "ms-dataplane under ms-loadgen" >"$MS_DEMO_FLAMEGRAPH"
    step "flame graph written to $MS_DEMO_FLAMEGRAPH"
fi

step "msctl streams top"
"$BIN/msctl" streams top
step "msctl stats (from the shared-memory stats segment, through the control plane)"
"$BIN/msctl" stats
step "Prometheus endpoint: curl 127.0.0.1:9465/metrics (excerpt)"
curl -s 127.0.0.1:9465/metrics | grep -E '^ms_(rx_packets|deliver_messages|messages_published)_total|^ms_burst_latency_seconds_(sum|count)' || true
kill "$CP_PID" 2>/dev/null || true
CP_PID=

step "stopping the dataplane (SIGINT); its counters per worker:"
kill -INT "$DP_PID"
wait "$DP_PID"
DP_PID=
cat "$LOG.out"
echo
if ((loadgen_rc == 0)); then
    echo "[demo] done: every published message reached every subscriber, in order, through the DPDK dataplane."
else
    echo "[demo] done, but messages were lost (see the summary above)."
fi
echo "       Dataplane log: $LOG"
exit "$loadgen_rc"
