#!/usr/bin/env bash
# `make demo`: start the dataplane on a TAP port with the example config,
# put the kernel side of the TAP in a network namespace made here, ping and
# arping the appliance from it, then stop the dataplane and print its
# counters. Cleans up (process, namespace) even when interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

NS=ms-demo
IFACE=ms-tap0                     # as in deploy/memorystreamer.yaml
CONFIG=deploy/memorystreamer.yaml
LOG=$(mktemp -t ms-demo.XXXXXX.log)
DP_PID=

cleanup() {
    if [[ -n $DP_PID ]] && kill -0 "$DP_PID" 2>/dev/null; then
        kill -TERM "$DP_PID" 2>/dev/null || true
        wait "$DP_PID" 2>/dev/null || true
    fi
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo; echo "[demo] interrupted"; exit 130' INT TERM

step() { printf '\n\033[1m[demo] %s\033[0m\n' "$*"; }

step "building ms-dataplane"
cargo build --quiet -p ms-dataplane
BIN=target/debug/ms-dataplane

ip netns del "$NS" 2>/dev/null || true
ip link del "$IFACE" 2>/dev/null || true
ip netns add "$NS"
ip -n "$NS" link set lo up

step "starting the dataplane: $BIN --config $CONFIG"
echo "       EAL arguments: $($BIN --config "$CONFIG" --print-eal-args)"
"$BIN" --config "$CONFIG" >"$LOG.out" 2>"$LOG" &
DP_PID=$!
for _ in $(seq 1 300); do
    grep -q '"ready"' "$LOG" && break
    kill -0 "$DP_PID" 2>/dev/null || { cat "$LOG"; echo "[demo] dataplane exited early"; exit 1; }
    sleep 0.1
done
grep -q '"ready"' "$LOG" || { cat "$LOG"; echo "[demo] dataplane not ready after 30 s"; exit 1; }
grep '"port started"' "$LOG" | sed 's/^/       /'

step "moving the TAP's kernel side into namespace $NS as host 198.18.0.2/24"
ip link set "$IFACE" netns "$NS"
ip netns exec "$NS" sysctl -qw "net.ipv6.conf.$IFACE.disable_ipv6=1"
ip -n "$NS" addr add 198.18.0.2/24 dev "$IFACE"
ip -n "$NS" link set "$IFACE" up

step "ping -c 5 198.18.0.1 (answered by the DPDK worker, not a kernel)"
ip netns exec "$NS" ping -c 5 -i 0.2 -W 2 198.18.0.1

step "arping -c 3 198.18.0.1"
ip netns exec "$NS" arping -c 3 -w 5 -I "$IFACE" 198.18.0.1

step "stopping the dataplane (SIGINT) and printing its counters"
kill -INT "$DP_PID"
wait "$DP_PID"
DP_PID=
cat "$LOG.out"
echo
echo "[demo] done: the appliance answered ARP and ICMP from a kernel host in a namespace."
echo "       Full dataplane log: $LOG"
