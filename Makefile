# The two commands a new user needs: `make run` and `make test` (see README.md).
# Everything goes through CMake/ctest; this file only strings the steps together.

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps build build-asan node-deps test run format clean

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

# The same sources with AddressSanitizer + UndefinedBehaviorSanitizer.
build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCP_ASAN=ON -DCP_UBSAN=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

# The contract linter, reply validator and the official Azure SDK test (pinned in the lock);
# Azurite, the Azure Storage emulator the storage tests run (tests/azurite, pinned likewise).
node-deps: deps
	@cd tests/node && npm ci --no-audit --no-fund --loglevel=error
	@cd tests/azurite && npm ci --no-audit --no-fund --loglevel=error

# Every test, then the C suites once more under the sanitizers.
test: build build-asan node-deps
	NW_REQUIRE_COVERAGE=1 ctest --test-dir $(BUILD) --output-on-failure -j2
	NW_REQUIRE_COVERAGE=1 ctest --test-dir $(ASAN_BUILD) --output-on-failure -j2 -L sanitize

# Starts netwatchd on 127.0.0.1:8080 with ./var/netwatch.db and a local token.
run: build
	@./scripts/run-local.sh $(BUILD)

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
