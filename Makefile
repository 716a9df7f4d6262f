# ringgate — the two commands are `make run` and `make check`.
# Both install what is missing on Debian 12 (apt), then build with CMake.

BUILD     ?= build
ASAN_BUILD?= build-asan
FUZZ_BUILD?= build-fuzz
SYSTEM_BUILD?= build-system
FUZZ_SECONDS ?= 5
JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
# ctest runs more tests than cores: the integration tests mostly wait on
# sockets and timers, not on a CPU (the slower ASan pass runs one per core).
TEST_JOBS ?= $(shell echo $$(( $(JOBS) * 2 )))
ASAN_TEST_JOBS ?= $(JOBS)
# What building and running need: the compiler, CMake, the libraries we link
# (liburing, wolfSSL, jemalloc, libcrypt, zlib), the tools that build wolfSSL from
# Debian's source package (cmake/wolfssl-asm.sh), python3 for the demo,
# openssl for its certificate and curl for the commands it suggests.
RUN_DEBS  := build-essential cmake pkg-config liburing-dev libwolfssl-dev \
             libjemalloc-dev libcrypt-dev libpam0g-dev python3 openssl curl \
             dpkg-dev autoconf automake libtool \
             libpq-dev libmariadb-dev libsqlite3-dev libldap-dev zlib1g-dev \
             libcurl4-openssl-dev
# What the tests add: cmocka (unit tests), clang and its runtime (fuzzing),
# real clients and servers the integration tests talk to (isync's mbsync,
# Dovecot: its stock /etc/dovecot, with ManageSieve's files, for
# test_dovecot_conf.py, doveconf), groff (man page check), the Prometheus
# parser (/metrics).
CHECK_DEBS:= libcmocka-dev clang libclang-rt-14-dev isync groff-base \
             python3-prometheus-client dovecot-core dovecot-imapd dovecot-pop3d \
             dovecot-managesieved dovecot-sieve
# the user-store servers the sql/ldap tests start privately (tests/integration/storeenv.py)
STORE_DEBS := postgresql mariadb-server slapd ldap-utils
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

PREFIX    ?= /usr/local
DESTDIR   ?=

.PHONY: all deps check-deps deps-stores build run check check-build check-asan check-system unit fuzz fuzz-coverage clean bench bench-nginx bench-baseline soak install

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

# $(call install_nostart,PACKAGES,PACKAGE=SERVICE ...): install what is
# missing while a policy-rc.d (unless one is there already) forbids starting
# services (Debian's postinst scripts start them); on systemd, the named
# services of packages installed here are then disabled and stopped. What
# was installed before is left as it was.
define install_nostart
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  own_policy=no; \
	  if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\n# ringgate make: no service starts while packages install\nexit 101\n' | $(SUDO) tee /usr/sbin/policy-rc.d >/dev/null && \
	    $(SUDO) chmod 755 /usr/sbin/policy-rc.d && own_policy=yes; \
	  fi; \
	  echo "installing:$$missing (no service started)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; rc=$$?; \
	  [ $$own_policy = yes ] && $(SUDO) rm -f /usr/sbin/policy-rc.d; \
	  if [ -d /run/systemd/system ]; then \
	    for ps in $(2); do case " $$missing " in *" $${ps%%=*} "*) \
	      $(SUDO) systemctl disable --now "$${ps#*=}.service" >/dev/null 2>&1 || true;; esac; done; \
	  fi; \
	  exit $$rc; \
	fi
endef

deps:
	$(call install_missing,$(RUN_DEBS))

check-deps: deps
	$(call install_missing,$(CHECK_DEBS))

# The unit tests are built when cmocka is there (RINGGATE_TESTS=AUTO, the
# default); the check targets configure with RINGGATE_TESTS=ON, which
# requires it.
$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@python3 tests/integration/demo.py --build $(BUILD)

# Every test: the normal build (wolfSSL with its assembly, built once into
# ~/.cache/ringgate by cmake/wolfssl-asm.sh), the same tests under
# ASan+UBSan, the fuzz smoke, then the suite against Debian's libwolfssl.
# nginx (its service kept off) is there so the bench sections' own tests
# (bench_proxy, bench_prelogin) run rather than skip.
check: check-build deps-stores bench-nginx
	cd $(BUILD) && ctest --output-on-failure -j $(TEST_JOBS)
	$(MAKE) check-asan
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)
	$(MAKE) check-system

check-build: check-deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRINGGATE_TESTS=ON
	cmake --build $(BUILD) -j $(JOBS)

# The other crypto build: Debian's libwolfssl (RINGGATE_WOLFSSL=system). It
# differs only in crypto, so by default the unit tests and the TLS suites run
# against it (keeping make check near 13 minutes);
# CHECK_SYSTEM_TESTS=. (a ctest -R regex) runs the whole suite.
CHECK_SYSTEM_TESTS ?= unit|tls|crypto
check-system: check-deps
	cmake -S . -B $(SYSTEM_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRINGGATE_WOLFSSL=system -DRINGGATE_TESTS=ON
	cmake --build $(SYSTEM_BUILD) -j $(JOBS)
	cd $(SYSTEM_BUILD) && ctest --output-on-failure -j $(TEST_JOBS) $(if $(CHECK_SYSTEM_TESTS),-R '$(CHECK_SYSTEM_TESTS)')

# bench_smoke is the bench harness's own smoke (a 1,300-client burst with a
# time limit, so it runs alone): under ASan it held the whole pass for 45 s
# while the other tests already run every server path it drives.
ASAN_SKIP_TESTS ?= ^integration.bench_smoke$$
check-asan: check-deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRINGGATE_SANITIZE=ON -DRINGGATE_TESTS=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(ASAN_TEST_JOBS) -E '$(ASAN_SKIP_TESTS)'

# libFuzzer targets (clang), each run FUZZ_SECONDS on its corpus; `make check`
# runs a short smoke, `make fuzz FUZZ_SECONDS=3600` a long run.
fuzz: check-deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRINGGATE_TESTS=ON \
	  -DRINGGATE_FUZZ=ON -DRINGGATE_JEMALLOC=OFF -DRINGGATE_FUZZ_SECONDS=$(FUZZ_SECONDS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers
	cd $(FUZZ_BUILD) && ctest --output-on-failure -L fuzz -j $(JOBS)

# PostgreSQL, MariaDB and slapd for the store tests, which run private
# instances (tests/integration/storeenv.py); their services stay off.
deps-stores:
	$(call install_nostart,$(STORE_DEBS),postgresql=postgresql mariadb-server=mariadb slapd=slapd)

# PREFIX/libexec/ringgate/ (all binaries), PREFIX/sbin/ringgate (a symlink),
# man pages, PREFIX/lib/systemd/system/ringgate.service, an example config
# in PREFIX/share/doc/ringgate. DESTDIR is honoured (packaging).
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix $(PREFIX)

# Line/branch coverage of the parsers reached by the fuzz corpora
# (fuzz/tools/coverage.sh); FUZZ_CORPORA=DIR adds DIR/work-NAME of a long run.
FUZZ_COV_BUILD ?= build-fuzz-cov
fuzz-coverage: check-deps
	$(call install_missing,llvm-14)
	CC=clang cmake -S . -B $(FUZZ_COV_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DRINGGATE_FUZZ=ON -DRINGGATE_JEMALLOC=OFF \
	  -DCMAKE_C_FLAGS="-fprofile-instr-generate -fcoverage-mapping" \
	  -DCMAKE_EXE_LINKER_FLAGS=-fprofile-instr-generate
	cmake --build $(FUZZ_COV_BUILD) -j $(JOBS) --target fuzzers
	fuzz/tools/coverage.sh $(FUZZ_COV_BUILD) $(FUZZ_CORPORA)

unit: check-build
	cd $(BUILD) && ctest --output-on-failure -L unit -j $(JOBS)

# The benchmark: ringgate vs a private Dovecot (Debian's packages, installed
# here when missing; the system service is left alone), both modes, as root.
# Writes docs/performance.md; a few minutes, FULL=1 for the long matrix.
bench: build bench-nginx deps-stores $(if $(BASELINE),bench-baseline)
	$(call install_missing,dovecot-imapd dovecot-pop3d dovecot-pgsql dovecot-ldap gnuplot-nox)
	$(SUDO) python3 bench/run.py --build $(BUILD) $(if $(FULL),--full) \
	  $(if $(BASELINE),--baseline $(BASELINE_DIR)/build)
	$(if $(FULL),$(SUDO) python3 bench/soak.py --build $(BUILD))

# BASELINE=COMMIT: make bench also runs ringgate built from that commit
# (git archive into BASELINE_DIR), as base-perf and base-sec side by side,
# e.g. make bench BASELINE=8f31f52 (the commit before the architecture split).
BASELINE_DIR ?= build-baseline
bench-baseline: deps
	rm -rf $(BASELINE_DIR) && mkdir -p $(BASELINE_DIR)/src
	git archive $(BASELINE) | tar -x -C $(BASELINE_DIR)/src
	git rev-parse --short $(BASELINE) > $(BASELINE_DIR)/BASELINE
	cmake -S $(BASELINE_DIR)/src -B $(BASELINE_DIR)/build -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BASELINE_DIR)/build -j $(JOBS)

# nginx and its mail module (with its ssl support) for the proxy and
# prelogin sections (bench/proxybench.py, bench/prelogbench.py: each runs a
# private nginx). Installing Debian's nginx would start its service on
# port 80: while it installs, a policy-rc.d (unless one is there already)
# forbids starting services, and the service installed here is disabled
# on systemd. An nginx installed before is left as it was.
NGINX_DEBS := nginx libnginx-mod-mail
bench-nginx:
	$(call install_nostart,$(NGINX_DEBS),nginx=nginx)

# A million pre-login sessions (high-security: 20,000); fds, processes and
# memory must come back to where they started. Writes docs/soak.md.
soak: build
	$(SUDO) python3 bench/soak.py --build $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(SYSTEM_BUILD)
