# MemoryStreamer: the two entry points are `make demo` and `make test`.
# Both run the idempotent setup first (packages, hugepages); run as root.

CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: all setup build test demo lint fmt clean

all: build

setup:
	@bash ci/setup.sh

build: setup
	$(CARGO) build --workspace --all-targets

test: setup
	@bash ci/test.sh

demo: setup
	@bash ci/demo.sh

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
