# The two commands: `make run` (build, start the demo) and `make test` (build with
# warnings as errors, every test, a sanitizer pass, install check, short fuzzing).
# Both install the Debian packages they need when missing.
JOBS ?= 2
BUILD ?= build

.PHONY: all build run test bench fuzz fuzz-long soak install-check clean

all: build

build:
	@scripts/deps.sh build
	cmake -S . -B $(BUILD) -DCYMG_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j$(JOBS)

run: build
	$(BUILD)/tools/cymg serve examples/www --listen http://127.0.0.1:8000

test:
	@scripts/test.sh

fuzz:
	@scripts/fuzz.sh $(or $(SECONDS),5)

# Not in CI. Each fuzz target for FUZZ_SECONDS (default 3600) on one core,
# corpora in FUZZ_CORPUS_DIR (default ~/.cache/cymg-fuzz): docs/fuzzing.md.
fuzz-long:
	@scripts/fuzz-long.sh

# Not in CI. Mixed load against `cymg serve` and a WebSocket echo server for
# SOAK_SECONDS (default 3600); fails when memory, descriptors or connections
# keep growing: bench/README.md.
soak:
	@bench/soak/soak.sh

install-check: build
	@scripts/test-install.sh $(BUILD)

bench:
	@scripts/deps.sh bench
	@scripts/deps-node.sh
	@bench/run.sh

clean:
	rm -rf build build-* .fuzz-work
