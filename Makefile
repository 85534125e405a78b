# MemoryStreamer: the two entry points are `make demo` and `make test`.
# Both run the idempotent setup first (packages, hugepages); run as root.

CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: all setup build plugins test demo bench bench-check bench-baseline flamegraph lint fmt clean

all: build

setup:
	@bash ci/setup.sh

build: setup
	$(CARGO) build --workspace --all-targets

# The example plugins, built for wasm32 into target/wasm32-unknown-unknown/plugin/.
plugins: setup
	@bash ci/plugins.sh

test: setup
	@bash ci/test.sh

demo: setup
	@bash ci/demo.sh

# Every benchmark scenario (in-DPDK generator, rate sweeps, closed-loop
# round trips, a million streams' memory) beside the ceilings measured in
# the same run (testpmd forwarding modes, a memory-copy floor, the CPUs'
# noise with oslat), then the overload scenario (30 s), then the same loads
# through NATS (bench/peers/nats.sh); results in docs/PERFORMANCE.md.
bench: setup
	$(CARGO) build --release -p ms-bench
	./target/release/ms-bench --suite
	./target/release/ms-bench --overload
	bash bench/peers/nats.sh

# The regression guard, before landing any change to the hot path (not part
# of `make test`): the headline scenarios as ratios to testpmd's csum
# forwarding in the same run, against bench/baseline.json (about 2 min).
bench-check: setup
	$(CARGO) build --release -p ms-bench
	./target/release/ms-bench --check bench/baseline.json

# Rewrites bench/baseline.json (after a deliberate change; say why in the commit).
bench-baseline: setup
	$(CARGO) build --release -p ms-bench
	./target/release/ms-bench --check bench/baseline.json --write-baseline

# The demo's load, with perf sampling the dataplane; writes target/flamegraph.svg.
flamegraph: setup
	@bash ci/flamegraph.sh

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	bash ci/plugins.sh lint

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
