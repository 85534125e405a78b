#!/usr/bin/env bash
# Idempotent machine setup for MemoryStreamer on Debian 12 (run as root).
# Installs what a fresh machine lacks, reserves hugepages and mounts
# hugetlbfs. Where hugepages cannot be had, it says so, and the dataplane's
# `eal.hugepages: auto` falls back to --no-huge.
set -euo pipefail

log() { printf '[setup] %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
    echo "[setup] error: run as root (apt-get, hugepages and TAP devices need it)" >&2
    exit 1
fi

PKGS=(
    # DPDK 22.11: headers, pkg-config file, PMDs, dpdk-testpmd
    dpdk dpdk-dev libdpdk-dev
    # bindgen needs libclang; the wrapper C file is built with cc
    clang libclang-dev pkg-config build-essential make
    # live tests and demo: namespaces, ping, arping, sysctl, a UDP client
    iproute2 iputils-ping arping procps kmod python3 curl
    # control-plane tests: a real Prometheus scrapes the endpoint; promtool lints it
    prometheus
    # pcap golden test (net_pcap PMD loads libpcap at run time)
    libpcap-dev
    # make bench: the CPUs' latency noise floor (oslat); ci/cycle-budget.sh: callgrind
    rt-tests valgrind
    # C plugins: clang-14 compiles for wasm32, lld-14's wasm-ld links
    lld-14
)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    log "all packages present"
fi

# Hugepages: 512 x 2 MiB = 1 GiB. Best effort; EAL falls back to --no-huge.
want_pages=${MS_HUGEPAGES:-512}
have=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
if ((have < want_pages)); then
    echo "$want_pages" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
    have=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
fi
if ! mountpoint -q /dev/hugepages 2>/dev/null; then
    mkdir -p /dev/hugepages
    mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || true
fi
if ((have > 0)) && mountpoint -q /dev/hugepages; then
    log "hugepages: $have x 2 MiB reserved, hugetlbfs on /dev/hugepages"
else
    log "hugepages unavailable; DPDK runs with --no-huge"
fi

# TAP devices need /dev/net/tun.
if [[ ! -e /dev/net/tun ]]; then
    mkdir -p /dev/net
    mknod /dev/net/tun c 10 200 && chmod 0666 /dev/net/tun
fi
modprobe tun 2>/dev/null || true

# cargo-fuzz runs the wire parser's fuzz target (bounded) in `make test`.
export PATH="$HOME/.cargo/bin:$PATH"
if command -v cargo >/dev/null && ! command -v cargo-fuzz >/dev/null; then
    log "installing cargo-fuzz (crates.io)"
    cargo install cargo-fuzz --locked --quiet
fi

# Plugins are WebAssembly modules built from Rust (ci/plugins.sh).
if command -v rustup >/dev/null && ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    log "adding the wasm32-unknown-unknown target (rustup)"
    if ! rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
        echo "[setup] error: rustup could not add wasm32-unknown-unknown (it downloads from static.rust-lang.org):" \
            "the example plugins cannot be built, so the plugin tests will fail" >&2
        exit 1
    fi
fi

log "done"
