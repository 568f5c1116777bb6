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
PLUGIN_SETTINGS ?=
FUSE_URING ?=

.PHONY: all deps build-deps test plugin install uninstall bench fuzz clean

all: build-deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DTENANTFS_WERROR=ON >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

build-deps:
	@scripts/install-deps.sh build

deps:
	@scripts/install-deps.sh test

test: deps all
	@cd $(BUILD_DIR) && ctest --output-on-failure --timeout 1800 $(CTEST_ARGS)

# The managed-plugin directory: rootfs skeleton + tenantfs + its shared libraries.
plugin: build-deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DTENANTFS_WERROR=ON >/dev/null
	@cmake --build $(BUILD_DIR) --target tenantfs -j $(JOBS)
	@scripts/build-plugin.sh --binary $(BUILD_DIR)/cmd/tenantfs --out $(BUILD_DIR)/plugin-pkg

# Enables the plugin in the local Docker (DOCKER_HOST respected), replacing an
# older one when none of its volumes is in use, and installs the tenantfs CLI.
# PLUGIN_SETTINGS="state.source=/srv/x LOG_LEVEL=debug" sets plugin settings.
# FUSE_URING=on|off switches the host's FUSE over io_uring (see README).
install:
	@scripts/install-plugin.sh --check
	@$(MAKE) plugin
	@scripts/install-plugin.sh --plugin-dir $(BUILD_DIR)/plugin-pkg --cli $(BUILD_DIR)/cmd/tenantfs \
	  --prefix $(PREFIX) $(foreach s,$(PLUGIN_SETTINGS),--set $(s)) \
	  $(if $(FUSE_URING),--fuse-uring $(FUSE_URING))

uninstall:
	@scripts/uninstall-plugin.sh --prefix $(PREFIX)

# Benchmarks (root): filesystem (native vs tenantfs vs bindfs), then API and Docker.
# BENCH_QUICK=1 for a short run; BENCH_RUNS=N; BENCH_FS=ram for a RAM-backed
# ext4 under the filesystem part; see bench/README.md.
bench: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) >/dev/null
	@cmake --build $(BUILD_DIR) --target tenantfs -j $(JOBS)
	@BUILD_DIR=$(BUILD_DIR) bench/run.sh

# Fuzzing (clang, ASan+UBSan, libFuzzer) in a tree of its own, FUZZ_SECONDS per
# target; findings land in build-fuzz/fuzz-artifacts/ (see tests/fuzz/).
FUZZ_SECONDS ?= 60
FUZZ_BUILD_DIR ?= build-fuzz
fuzz: deps
	@tests/fuzz/fuzz.sh --source . --build $(FUZZ_BUILD_DIR) --seconds $(FUZZ_SECONDS) --jobs $(JOBS)

clean:
	rm -rf $(BUILD_DIR)
