# ringgate — the two commands are `make run` and `make check`.
# Both install what is missing on Debian 12 (apt), then build with CMake.

BUILD     ?= build
ASAN_BUILD?= build-asan
FUZZ_BUILD?= build-fuzz
FUZZ_SECONDS ?= 10
JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
DEBS      := build-essential cmake pkg-config liburing-dev libwolfssl-dev \
             libjemalloc-dev libcmocka-dev libcrypt-dev python3 openssl curl \
             clang libclang-rt-14-dev isync
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build run check check-asan unit fuzz clean bench soak

all: build

# Install only what is missing; apt-get update once, only when needed.
define install_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi
endef

deps:
	$(call install_missing,$(DEBS))

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@python3 tests/integration/demo.py --build $(BUILD)

# Every test: the normal build, then the same tests once under ASan+UBSan.
check: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	$(MAKE) check-asan
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

check-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRINGGATE_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

# libFuzzer targets (clang), each run FUZZ_SECONDS on its corpus; `make check`
# runs a short smoke, `make fuzz FUZZ_SECONDS=3600` a long run.
fuzz: deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DRINGGATE_FUZZ=ON -DRINGGATE_JEMALLOC=OFF -DRINGGATE_FUZZ_SECONDS=$(FUZZ_SECONDS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers
	cd $(FUZZ_BUILD) && ctest --output-on-failure -L fuzz -j $(JOBS)

unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit -j $(JOBS)

# The benchmark: ringgate vs a private Dovecot (Debian's packages, installed
# here when missing; the system service is left alone), both modes, as root.
# Writes docs/performance.md; a few minutes, FULL=1 for the long matrix.
bench: build
	$(call install_missing,dovecot-imapd dovecot-pop3d gnuplot-nox)
	$(SUDO) python3 bench/run.py --build $(BUILD) $(if $(FULL),--full)
	$(if $(FULL),$(SUDO) python3 bench/soak.py --build $(BUILD))

# A million pre-login sessions (high-security: 20,000); fds, processes and
# memory must come back to where they started. Writes docs/soak.md.
soak: build
	$(SUDO) python3 bench/soak.py --build $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
