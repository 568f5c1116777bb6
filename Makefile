# tenantfs: the user's entry point.
#   sudo make install   build and enable the plugin in the local Docker
#   sudo make test      build and run every test layer (unit, integration, e2e)
SHELL := /bin/bash
MAKEFLAGS += --no-print-directory
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
PREFIX ?= /usr/local
CTEST_ARGS ?=

.PHONY: all deps build-deps test plugin install uninstall bench clean

all: build-deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DTENANTFS_WERROR=ON >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

build-deps:
	@scripts/install-deps.sh build

deps:
	@scripts/install-deps.sh test

test: deps all
	@cd $(BUILD_DIR) && ctest --output-on-failure --timeout 1800 $(CTEST_ARGS)

plugin:
	@echo "make plugin: not implemented yet" >&2; exit 1

install:
	@echo "make install: not implemented yet" >&2; exit 1

uninstall:
	@echo "make uninstall: not implemented yet" >&2; exit 1

# Benchmarks (root): filesystem (native vs tenantfs vs bindfs), then API and Docker.
# BENCH_QUICK=1 for a short run; BENCH_RUNS=N; see bench/README.md.
bench: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) >/dev/null
	@cmake --build $(BUILD_DIR) --target tenantfs -j $(JOBS)
	@BUILD_DIR=$(BUILD_DIR) bench/run.sh

clean:
	rm -rf $(BUILD_DIR)
