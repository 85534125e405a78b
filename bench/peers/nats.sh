#!/usr/bin/env bash
# Peer benchmark: ms-bench's scenarios (1:1 throughput, fan-out 8, closed-loop round trip, 64-byte
# payloads) against a local nats-server, with ms-bench's CPU arrangement: the server on CPU 1
# where ms-bench runs the appliance's worker, the load generator (nats-bench) on CPU 0.
#
# Not like for like: NATS traffic goes through the kernel's TCP loopback. Every publish and every
# delivery costs send/recv syscalls, a copy into and out of a socket buffer and, when the reader
# sleeps, a wakeup and a context switch. ms-bench's appliance exchanges packets with its generator
# over DPDK rings in user space, polling, without any syscall, copy through the kernel or wakeup.
#
# Environment: NATS_SECONDS (publish time per throughput run, default 5), NATS_ROUND_TRIPS
# (default 1000000), NATS_SERVER_CPU / NATS_CLIENT_CPU (default 1 / 0), NATS_PERF=1 (also count
# the server's syscalls with perf stat), CARGO_TARGET_DIR (default target/peers).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CRATE=$ROOT/bench/peers/nats-bench
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/peers}
RUN_SECONDS=${NATS_SECONDS:-5}
ROUND_TRIPS=${NATS_ROUND_TRIPS:-1000000}
SERVER_CPU=${NATS_SERVER_CPU:-1}
CLIENT_CPU=${NATS_CLIENT_CPU:-0}
# Bounds every client run, whatever its counts say.
TIME_LIMIT=600

die() { echo "nats.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found: $2"; }

# Sets SERVER_BIN; Debian puts nats-server in /usr/sbin, which a user's PATH often lacks.
find_server() {
    SERVER_BIN=$(command -v nats-server 2>/dev/null || true)
    [ -n "$SERVER_BIN" ] || { [ -x /usr/sbin/nats-server ] && SERVER_BIN=/usr/sbin/nats-server; } || true
    [ -n "$SERVER_BIN" ]
}

install_server() {
    find_server && return
    [ "$(id -u)" = 0 ] || die "nats-server is not installed and installing it needs root (apt-get install nats-server)"
    need apt-get "install nats-server yourself (Debian/Ubuntu package nats-server)"
    echo "nats.sh: installing nats-server with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q nats-server >&2 || { apt-get update -q >&2 && apt-get install -y -q nats-server >&2; } ||
        die "apt-get could not install nats-server"
    find_server || die "nats-server still not found (PATH, /usr/sbin) after apt-get install"
}

build_client() {
    need cargo "install a Rust toolchain (rustup) to build bench/peers/nats-bench"
    local t0=$SECONDS
    nice -n 10 cargo build --release --locked --quiet --manifest-path "$CRATE/Cargo.toml" ||
        die "building bench/peers/nats-bench failed"
    BIN=$CARGO_TARGET_DIR/release/nats-bench
    [ -x "$BIN" ] || die "built, but $BIN is missing"
    echo "nats.sh: nats-bench built in $((SECONDS - t0)) s" >&2
}

start_server() {
    SERVER_LOG=$(mktemp -t nats-server.XXXXXX.log)
    # -p -1: the server picks a free port and logs it.
    taskset -c "$SERVER_CPU" "$SERVER_BIN" -a 127.0.0.1 -p -1 -l "$SERVER_LOG" &
    SERVER_PID=$!
    local port="" i
    for i in $(seq 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || die "nats-server exited at start; its log: $(cat "$SERVER_LOG")"
        port=$(sed -n 's/.*Listening for client connections on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$SERVER_LOG")
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || die "nats-server did not report its port within 10 s; log: $SERVER_LOG"
    URL=nats://127.0.0.1:$port
    echo "nats.sh: $("$SERVER_BIN" --version) pid $SERVER_PID on CPU $SERVER_CPU at $URL, log $SERVER_LOG" >&2
}

# EXIT trap: stops the server and perf; keeps the server's log only when the script failed.
stop_server() {
    local rc=$?
    if [ -n "${SERVER_PID:-}" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    [ -n "${PERF_PID:-}" ] && kill "$PERF_PID" 2>/dev/null || true
    if [ -n "${SERVER_LOG:-}" ]; then
        if [ "$rc" = 0 ]; then rm -f "$SERVER_LOG"; else echo "nats.sh: server log kept: $SERVER_LOG" >&2; fi
    fi
}

# Prints "<cpu seconds> <context switches>" of the server so far (all its threads).
server_counters() {
    local ticks switches
    ticks=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")
    # A thread may exit between the glob and the read; its switches are then not counted.
    switches=$({ cat /proc/"$SERVER_PID"/task/*/status 2>/dev/null || true; } |
        awk '/ctxt_switches/ {s += $2} END {print s + 0}')
    awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v s="$switches" 'BEGIN {printf "%.2f %d\n", t / hz, s}'
}

perf_start() {
    PERF_OUT=$(mktemp -t nats-perf.XXXXXX)
    perf stat -x, -e task-clock,context-switches,raw_syscalls:sys_enter -p "$SERVER_PID" -o "$PERF_OUT" &
    PERF_PID=$!
    # Let perf attach before the load starts.
    sleep 0.2
}

# Sets SYSCALLS to the number of syscalls the server made since perf_start. Not meant for $(...):
# a subshell cannot wait for perf, and perf writes its counts only when it exits.
perf_stop() {
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=""
    SYSCALLS=$(awk -F, '$3 == "raw_syscalls:sys_enter" {print $1}' "$PERF_OUT")
    rm -f "$PERF_OUT"
    [ -n "$SYSCALLS" ] || echo "nats.sh: perf stat counted no syscalls (tracepoints unavailable?)" >&2
}

# field JSON KEY: the number at KEY in a flat JSON object.
field() { sed -n "s/.*\"$2\":\([-0-9.eE+]*\).*/\1/p" <<<"$1"; }
# us JSON KEY: a microsecond field with one decimal.
us() { printf %.1f "$(field "$1" "$2")"; }

# run_scenario MESSAGES_KEY ARGS...: runs nats-bench on the client CPU, adds the server's cost per
# message (MESSAGES_KEY names the count to divide by) and prints the JSON line.
run_scenario() {
    local key=$1 json before after messages
    SYSCALLS=""
    shift
    before=$(server_counters)
    [ "${NATS_PERF:-0}" = 1 ] && perf_start
    json=$(timeout $((TIME_LIMIT + 60)) taskset -c "$CLIENT_CPU" "$BIN" --url "$URL" --json \
        --time-limit "$TIME_LIMIT" "$@") || die "nats-bench $* failed"
    [ "${NATS_PERF:-0}" = 1 ] && perf_stop
    after=$(server_counters)
    messages=$(field "$json" "$key")
    [ "$key" = round_trips ] && messages=$((messages + $(field "$json" warmup)))
    json=${json%\}}$(awk -v b="$before" -v a="$after" -v m="$messages" -v sc="$SYSCALLS" 'BEGIN {
        split(b, x, " "); split(a, y, " "); m = (m > 0 ? m : 1)
        printf ",\"server_cpu_s\":%.2f,\"server_ctx_switches\":%d,\"server_cpu_ns_per_msg\":%.0f,\"server_ctx_switches_per_msg\":%.4f",
            y[1] - x[1], y[2] - x[2], (y[1] - x[1]) * 1e9 / m, (y[2] - x[2]) / m
        if (sc != "") printf ",\"server_syscalls\":%d,\"server_syscalls_per_msg\":%.3f", sc, sc / m
    }')"}"
    echo "$json"
}

main() {
    need taskset "install util-linux"
    need timeout "install coreutils"
    taskset -c "$SERVER_CPU" true 2>/dev/null || die "CPU $SERVER_CPU is not available for the server (NATS_SERVER_CPU)"
    taskset -c "$CLIENT_CPU" true 2>/dev/null || die "CPU $CLIENT_CPU is not available for the client (NATS_CLIENT_CPU)"
    if [ "${NATS_PERF:-0}" = 1 ]; then need perf "install linux-perf or unset NATS_PERF"; fi
    install_server
    build_client
    trap stop_server EXIT
    start_server
    local tp fo rtt
    tp=$(run_scenario received --scenario throughput --subscribers 1 --seconds "$RUN_SECONDS" --payload 64)
    echo "$tp"
    fo=$(run_scenario received --scenario fanout --subscribers 8 --seconds "$RUN_SECONDS" --payload 64)
    echo "$fo"
    rtt=$(run_scenario round_trips --scenario rtt --round-trips "$ROUND_TRIPS" --payload 64)
    echo "$rtt"
    print_table "$tp" "$fo" "$rtt"
}

print_table() {
    local f="%-16s %14s %14s %10s %10s %10s %10s %12s\n"
    echo
    # shellcheck disable=SC2059
    printf "$f" scenario "msg/s recv" "deliveries/s" "P50 us" "P99 us" "P99.9 us" "max us" "srv ctxsw/msg"
    local name json
    for name in throughput fanout; do
        [ $name = throughput ] && json=$1 || json=$2
        # shellcheck disable=SC2059
        printf "$f" "$name x$(field "$json" subscribers)" "$(printf %.0f "$(field "$json" msgs_per_s_received)")" \
            "$(printf %.0f "$(field "$json" deliveries_per_s)")" "$(us "$json" latency_p50_us)" \
            "$(us "$json" latency_p99_us)" "$(us "$json" latency_p999_us)" "$(us "$json" latency_max_us)" \
            "$(field "$json" server_ctx_switches_per_msg)"
    done
    # shellcheck disable=SC2059
    printf "$f" "rtt" "$(printf %.0f "$(field "$3" round_trips_per_s)")" "-" "$(us "$3" rtt_p50_us)" \
        "$(us "$3" rtt_p99_us)" "$(us "$3" rtt_p999_us)" "$(us "$3" rtt_max_us)" \
        "$(field "$3" server_ctx_switches_per_msg)"
    echo "(throughput latencies are from a saturated, unpaced publisher: queueing, not a latency at a" \
        "given rate; lost: throughput $(field "$1" lost), fanout $(field "$2" lost))"
}

main "$@"
