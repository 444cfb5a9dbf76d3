# Thin wrapper around CMake/CTest. The README's two commands are `make run` and `make test`.
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
JOBS       ?= $(shell nproc)
# CMake's generated makefiles run under this one; keep their output to what they build.
MAKEFLAGS  += --no-print-directory
FUZZ_SECONDS ?= 20
CMAKE_FLAGS ?=

.PHONY: all build run test test-asan bench fuzz fuzz-build fuzz-smoke format clean sim

all: build

build:
	@scripts/deps.sh build
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDDIALAB_TESTS=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The main job: a local three-node kv cluster on 127.0.0.1 (Ctrl-C stops it).
run: build
	./$(BUILD)/ddialab kv cluster

test:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory build
	cd $(BUILD) && ctest --output-on-failure -j 2
	@$(MAKE) --no-print-directory fuzz-smoke

test-asan:
	@scripts/deps.sh test
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DDDIALAB_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j 2

# libFuzzer targets, built with clang. `make fuzz FUZZ_SECONDS=600` for a long run.
fuzz-build:
	@scripts/deps.sh test
	@CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=Debug -DDDIALAB_FUZZ=ON >/dev/null
	@cmake --build $(BUILD_FUZZ) -j $(JOBS)

fuzz: fuzz-build
	scripts/fuzz.sh $(BUILD_FUZZ) $(FUZZ_SECONDS)

fuzz-smoke: fuzz-build
	scripts/fuzz.sh $(BUILD_FUZZ) 10

bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory build
	bench/kv/run.sh $(BUILD)/ddialab
	@$(MAKE) --no-print-directory bench-txn
	@$(MAKE) --no-print-directory bench-events

# The events broker against Redis Streams: records/s produced and consumed (docs/events.md).
.PHONY: bench-events
bench-events:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory build
	python3 bench/events/run.py $(BUILD)

# The txn engine at every level: committed txn/s and abort rate (docs/txn.md, Benchmark).
.PHONY: bench-txn
bench-txn: build
	./$(BUILD)/txn_bench --markdown bench/results/txn-$$(date -u +%Y%m%dT%H%M%SZ).md

# The deterministic Raft simulation (docs/sim.md) over many seeds, with progress lines.
# `make sim SEEDS=100000`; SIM_FLAGS adds options (e.g. --mode elections --nodes 5).
SEEDS ?= 10000
SIM_FLAGS ?= --mode both --nodes mix
sim: build
	./$(BUILD)/raft_sim --seeds $(SEEDS) $(SIM_FLAGS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)

# Leader failover: 20 kill -9s of the leader, time to the next successful write, ddialab against etcd.
.PHONY: bench-failover
bench-failover:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory build
	python3 bench/kv/failover.py $(BUILD)/ddialab
