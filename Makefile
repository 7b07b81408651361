# Siyu — top-level Makefile (CMake underneath).
#   make            build ./build/siyu
#   make deps       install the Debian packages the build and tests need
#   make test       build and run the test suite (SANITIZE=address,undefined for CI)
#   make demo       build, start the WeCom simulator and the server with a simulated brand
#                   (./demo-data, API on 127.0.0.1:8080, simulator on 127.0.0.1:8081)
#   make fuzz       build the libFuzzer targets into build-fuzz/
#   make bench-ingest  run the ingest benchmark (writes bench/RESULTS.md section)
#   make bench-sync    full sync of a 100,000-customer simulated brand (appends to bench/RESULTS.md)
#   make bench-demo    the seeded demo run: Siyu vs simulator, callbacks/s, outbox (appends too)
#   make bench-segment the 10-million-customer segment benchmark: engine vs SQLite vs DuckDB
#                      (appends too; BENCH_ARGS="--customers 1000000 --events 10000000" for 1/10)

SANITIZE ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
ifeq ($(SANITIZE),)
BUILD ?= build
else
BUILD ?= build-san
endif

DEB_PACKAGES = build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev \
  libsqlite3-dev libssl-dev libexpat1-dev libcmocka-dev libcurl4-openssl-dev libroaring-dev \
  libxlsxwriter-dev clang

.PHONY: all deps configure test test-slow demo fuzz bench-ingest bench-sync bench-demo bench-segment clean

all: configure
	cmake --build $(BUILD) -j$(JOBS) --target siyu

configure: $(BUILD)/CMakeCache.txt

$(BUILD)/CMakeCache.txt: CMakeLists.txt
	@command -v cmake >/dev/null && pkg-config --exists libmicrohttpd jansson sqlite3 libcrypto expat cmocka libcurl xlsxwriter \
	  && test -f /usr/include/roaring/roaring.h \
	  || $(MAKE) deps
	cmake -S . -B $(BUILD) -DSANITIZE=$(SANITIZE)

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y $$missing; \
	else echo "all build dependencies are installed"; fi

test: configure
	cmake --build $(BUILD) -j$(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) -LE slow

test-slow: configure
	cmake --build $(BUILD) -j$(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

DEMO_DATA ?= demo-data
DEMO_LISTEN ?= 127.0.0.1:8080
DEMO_SIM_LISTEN ?= 127.0.0.1:8081
DEMO_ARGS ?=
demo: all
	mkdir -p $(DEMO_DATA)
	./$(BUILD)/siyu demo --data $(DEMO_DATA) --fresh --listen $(DEMO_LISTEN) \
	  --sim-listen $(DEMO_SIM_LISTEN) $(DEMO_ARGS)

fuzz:
	@command -v clang >/dev/null || $(MAKE) deps
	mkdir -p build-fuzz
	for f in fuzz/fuzz_*.c; do n=$$(basename $$f .c); \
	  clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc $$f \
	    $$(cat fuzz/$$n.sources 2>/dev/null) \
	    $$(pkg-config --cflags --libs jansson libcrypto expat) -o build-fuzz/$$n || exit 1; \
	done
	@echo "built: $$(ls build-fuzz)"; echo "run e.g.: mkdir -p build-fuzz/new && build-fuzz/fuzz_callback build-fuzz/new fuzz/corpus/callback -max_total_time=60"

bench-ingest: all
	cmake --build $(BUILD) -j$(JOBS) --target bench_ingest
	./$(BUILD)/bench_ingest --siyu ./$(BUILD)/siyu --out bench/RESULTS.md $(BENCH_ARGS)

bench-sync: all
	cmake --build $(BUILD) -j$(JOBS) --target bench_sync
	./$(BUILD)/bench_sync --siyu ./$(BUILD)/siyu --out bench/RESULTS.md $(BENCH_ARGS)

bench-demo: all
	cmake --build $(BUILD) -j$(JOBS) --target bench_demo
	./$(BUILD)/bench_demo --siyu ./$(BUILD)/siyu --out bench/RESULTS.md $(BENCH_ARGS)

# The DuckDB peer runs under node (Debian nodejs, npm) with @duckdb/node-api
# from bench/duckdb/package-lock.json. Data under $TMPDIR unless BENCH_ARGS has --dir.
BENCH_DEB_PACKAGES = nodejs npm
bench-segment: all
	cmake --build $(BUILD) -j$(JOBS) --target bench_segment10m
	@command -v node >/dev/null && command -v npm >/dev/null || { \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y $(BENCH_DEB_PACKAGES); }
	test -d bench/duckdb/node_modules/@duckdb/node-api || (cd bench/duckdb && npm ci --no-audit --no-fund)
	./$(BUILD)/bench_segment10m --duckdb-script bench/duckdb/segpeer.mjs --out bench/RESULTS.md $(BENCH_ARGS)

clean:
	rm -rf build build-san build-fuzz
