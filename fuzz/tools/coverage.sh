#!/bin/sh
# Line/branch coverage of the parsers reached by the fuzz targets' corpora.
# usage: fuzz/tools/coverage.sh [BUILD_DIR] [EXTRA_CORPUS_ROOT]
#   BUILD_DIR: a fuzz build made with
#     CC=clang cmake -S . -B BUILD_DIR -DRINGGATE_FUZZ=ON -DRINGGATE_JEMALLOC=OFF \
#       -DCMAKE_C_FLAGS="-fprofile-instr-generate -fcoverage-mapping" \
#       -DCMAKE_EXE_LINKER_FLAGS=-fprofile-instr-generate
#     cmake --build BUILD_DIR --target fuzzers
#   EXTRA_CORPUS_ROOT: directory holding work-NAME corpora of a long run
# Each target runs once over its inputs (-runs=0); the profiles are merged and
# llvm-cov reports the parser sources only. `make fuzz-coverage` does all of it
# (and installs llvm-14, which clang does not pull in without recommends).
set -e
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build-fuzz-cov}
extra=${2:-}
out=$build/coverage
rm -rf "$out" && mkdir -p "$out"
objs=""
for bin in "$build"/fuzz/fuzz_*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin" | sed 's/^fuzz_//')
	dirs="$top/fuzz/corpus/$name"
	[ -n "$extra" ] && [ -d "$extra/work-$name" ] && dirs="$dirs $extra/work-$name"
	LLVM_PROFILE_FILE="$out/$name-%p.profraw" "$bin" -runs=0 -close_fd_mask=3 $dirs \
		>/dev/null 2>&1 || echo "warning: $name exited non-zero" >&2
	if [ -z "$objs" ]; then objs="$bin"; else objs="$objs -object $bin"; fi
done
llvm-profdata-14 merge -sparse "$out"/*.profraw -o "$out/all.profdata"
cd "$top"
llvm-cov-14 report $objs -instr-profile="$out/all.profdata" \
	src/lib/ipc.c src/lib/base64.c src/lib/config.c src/lib/settings.c \
	src/login/imap-parser.c src/login/imap-login.c src/login/pop3-parser.c \
	src/login/pop3-login.c src/login/pop3-login-auth.c src/auth/auth-sasl.c src/auth/auth-passwd.c \
	src/auth/auth-server.c src/auth/auth-cookie.c src/auth/auth-penalty.c \
	src/proxy/proxy-protocol.c src/proxy/proxy-backend.c \
	src/imap/imap-cmd-parser.c src/imap/imap-search.c src/mail/mime.c src/tls/tls.c \
	src/tls/tls-ctx.c src/tls/tls-ticket.c src/tls/tls-sni.c src/tls/tls-conn.c src/tls/tls-peer.c
