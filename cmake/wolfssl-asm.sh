#!/bin/sh
# wolfssl-asm.sh CACHE_ROOT — build Debian's own wolfSSL source package with
# wolfSSL's x86-64 assembly, once, into CACHE_ROOT/wolfssl-<version>-asm/.
#
# CMake runs this at configure time (RINGGATE_WOLFSSL=asm). On success the
# last line on stdout is the install prefix (include/, lib/libwolfssl.a);
# otherwise it exits non-zero with the reason as the last line and CMake
# falls back to the system libwolfssl. The system library is never touched.
#
# - version: the same Debian version as the installed libwolfssl-dev (the
#   two builds then differ only in the assembly), else apt's candidate;
# - source: `apt-get source wolfssl=<version>`; when apt knows no source
#   package, a deb-src twin of the Debian 12 deb822 entries is added as
#   /etc/apt/sources.list.d/ringgate-deb-src.sources (root only);
# - flags: our own feature list (FEATURE_FLAGS: what ringgate uses, not
#   Debian's --enable-distro kitchen sink), Debian's dpkg-buildflags
#   hardening, plus ASM_FLAGS, static library only;
# - cache: a stamp file written last holds version and flags, so an
#   interrupted build is redone and a finished one is reused by every build
#   directory (build, build-asan, build-fuzz); a lock serialises builds
#   that start together.
set -eu

ASM_FLAGS="--enable-intelasm --enable-aesni --enable-sp --enable-sp-asm"
# What ringgate uses, and nothing that costs memory per connection. Debian's
# --enable-distro (its --enable-all) makes every WOLFSSL 11 kB and every
# session 37 kB (SESSION_CERTS keeps the peer's chain twice, DTLS multicast
# 3.6 kB of sequence windows), and POST_HANDSHAKE_AUTH keeps a TLS 1.3
# connection's handshake hashes, arrays and suites for its whole life.
# Here: TLS 1.2 and 1.3 (client and server), the suites, groups and
# signature algorithms ringgate offers (AES-GCM, ChaCha20-Poly1305; X25519,
# X448, P-256/384/521, ffdhe2048/3072; ECDSA, RSA, RSA-PSS), SNI, tickets,
# extended master secret, CRLs, the exporter (channel binding), the OpenSSL
# layer src/tls uses (X509 names, EVP, BIO); for auth's tls-crypto.c
# PBKDF2, HMAC, MD5, Ed25519, PEM public keys. Not: DTLS, session certs,
# post-handshake auth, renegotiation, PKCS#11, PKCS#7, OCSP, SRP, Camellia,
# RC4, DES, BLAKE2, SHA-3, ... AES-GCM without GHASH tables (=small): with
# AES-NI wolfSSL's assembly never reads them, and each of a connection's two
# AES contexts carried 512 bytes of them.
FEATURE_FLAGS="--disable-all --enable-tls13 --enable-opensslextra --enable-sni
	--enable-session-ticket --enable-supportedcurves --enable-extended-master
	--enable-ecc --enable-eccshamir --enable-curve25519 --enable-ed25519
	--enable-curve448 --enable-dh --enable-rsapss --enable-aesgcm=small
	--enable-chacha --enable-poly1305 --enable-hkdf --enable-sha224
	--enable-sha384 --enable-sha512 --enable-md5 --enable-pwdbased --enable-crl
	--enable-keying-material --enable-base64encode --enable-errorstrings
	--disable-dtls --disable-sessioncerts --disable-postauth
	--disable-secure-renegotiation --disable-pkcs11 --disable-ocsp
	--disable-examples --disable-crypttests --disable-benchmark"
# what configure has no switch for: ffdhe3072, ex_data (the verify
# callback finds its connection), PEM public keys (JWT keys), the Finished
# messages kept for tls-unique (SCRAM-*-PLUS on TLS 1.2), IP addresses in
# subjectAltName (backends named by address), OpenSSL's defaults as
# Debian's build has them (v1 client certificates, alternate chains), and
# the SNI callback and the CertificateRequest's CA names (wolfSSL compiles
# them for nginx; that define adds 2 x 260 bytes of raw names to the peer
# certificate a WOLFSSL embeds, and a pointer to its suites)
FEATURE_CPPFLAGS="-DHAVE_FFDHE_3072 -DHAVE_EX_DATA -DWOLFSSL_PUB_PEM_TO_DER
	-DWOLFSSL_HAVE_TLS_UNIQUE -DWOLFSSL_ALT_NAMES -DWOLFSSL_IP_ALT_NAME
	-DOPENSSL_COMPATIBLE_DEFAULTS -DWOLFSSL_NGINX
	-DRINGGATE_NO_KEEP_PEER_CERT -DRINGGATE_LEAN_SERVER"
# ... and two of our own, which LEAN_PATCH below gives a meaning:
# RINGGATE_NO_KEEP_PEER_CERT: the OpenSSL layer (and WOLFSSL_NGINX) force
# KEEP_PEER_CERT in settings.h, which embeds a 3.8 kB WOLFSSL_X509 in every
# WOLFSSL for wolfSSL_get_peer_certificate; src/tls takes a client
# certificate's name in its verify callback instead (tls-peer.c).
# RINGGATE_LEAN_SERVER: when a server's handshake is done, FreeHandshakeResources
# also frees what the OpenSSL layer keeps for queries we never make after
# it (suites, verify parameters, TLS extensions but the SNI name) and a TLS
# 1.3 server's DRBG (its tickets are sent by then).
# seed from getrandom(2): a chrooted login process has no /dev/urandom (the
# system build gets the same from src/tls/tls-seed.c replacing the function)
SEED_CPPFLAGS="-DWOLFSSL_GETRANDOM"
# no thread-local storage: Debian's build keeps wolfSSL's SP and FP point
# caches (1.4 MB) in __thread variables, and the loader zeroes a process's
# whole static TLS block at every start, ~350 page faults per exec of a
# login process. Without it the same caches are ordinary static arrays
# (demand-zero pages, touched only when used) behind a mutex that a
# single-threaded login process never contends.
LEAN_FLAGS="ac_cv_tls=none"
# what RINGGATE_NO_KEEP_PEER_CERT and RINGGATE_LEAN_SERVER do: our patch of
# Debian's source (wolfSSL 5.5.4), applied before configure; the build stops
# if it does not apply (another version: check what it changes there first)
LEAN_PATCH=$(
	cat <<'EOF'
--- a/src/internal.c
+++ b/src/internal.c
@@ -7853,6 +7853,10 @@ void FreeHandshakeResources(WOLFSSL* ssl)
     #elif !defined(HAVE_SESSION_TICKET)
         || (ssl->options.tls1_3 && ssl->options.side == WOLFSSL_SERVER_END)
     #endif
+    #ifdef RINGGATE_LEAN_SERVER
+        /* its tickets are sent: the server sends no more */
+        || (ssl->options.tls1_3 && ssl->options.side == WOLFSSL_SERVER_END)
+    #endif
 #endif
     ) {
         if (ssl->options.weOwnRng) {
@@ -7994,6 +7998,36 @@ void FreeHandshakeResources(WOLFSSL* ssl)
     ssl->extensions = NULL;
 #endif
 
+#ifdef RINGGATE_LEAN_SERVER
+    /* what the OpenSSL layer keeps for queries a server connection is
+     * never asked after its handshake: its suites, its verify parameters,
+     * its TLS extensions but the client's SNI name (wolfSSL_get_servername) */
+    if (ssl->options.side == WOLFSSL_SERVER_END) {
+        FreeSuites(ssl);
+    #ifdef OPENSSL_EXTRA
+        XFREE(ssl->param, ssl->heap, DYNAMIC_TYPE_OPENSSL);
+        ssl->param = NULL;
+    #endif
+    #ifdef HAVE_TLS_EXTENSIONS
+        {
+            TLSX** link = &ssl->extensions;
+            TLSX*  sni = NULL;
+            while (*link != NULL) {
+                if ((*link)->type == TLSX_SERVER_NAME) {
+                    sni = *link;
+                    *link = sni->next;
+                    sni->next = NULL;
+                    break;
+                }
+                link = &(*link)->next;
+            }
+            TLSX_FreeAll(ssl->extensions, ssl->heap);
+            ssl->extensions = sni;
+        }
+    #endif
+    }
+#endif
+
 #ifdef WOLFSSL_STATIC_MEMORY
     /* when done with handshake decrement current handshake count */
     if (ssl->heap != NULL) {
--- a/src/ssl.c
+++ b/src/ssl.c
@@ -26471,7 +26471,7 @@ long wolfSSL_SSL_SESSION_set_timeout(WOLFSSL_SESSION* ses, long t)
 
 #ifdef OPENSSL_EXTRA
 
-#if defined(HAVE_EX_DATA) && !defined(NO_FILESYSTEM)
+#if defined(HAVE_EX_DATA) && !defined(NO_FILESYSTEM) && defined(KEEP_PEER_CERT)
 int wolfSSL_cmp_peer_cert_to_file(WOLFSSL* ssl, const char *fname)
 {
     int ret = WOLFSSL_FATAL_ERROR;
--- a/wolfssl/wolfcrypt/settings.h
+++ b/wolfssl/wolfcrypt/settings.h
@@ -1826,7 +1826,8 @@ extern void uITRON4_free(void *p) ;
     #endif
 #endif
 
-#if defined(OPENSSL_EXTRA) && !defined(NO_CERTS)
+#if defined(OPENSSL_EXTRA) && !defined(NO_CERTS) && \
+    !defined(RINGGATE_NO_KEEP_PEER_CERT)
     #undef  KEEP_PEER_CERT
     #define KEEP_PEER_CERT
 #endif
@@ -2561,8 +2562,8 @@ extern void uITRON4_free(void *p) ;
 #endif
 
 /* Parts of the openssl compatibility layer require peer certs */
-#if defined(OPENSSL_ALL) || defined(WOLFSSL_NGINX) || defined(WOLFSSL_HAPROXY) \
- || defined(HAVE_LIGHTY)
+#if (defined(OPENSSL_ALL) || defined(WOLFSSL_NGINX) || defined(WOLFSSL_HAPROXY) \
+ || defined(HAVE_LIGHTY)) && !defined(RINGGATE_NO_KEEP_PEER_CERT)
     #undef  KEEP_PEER_CERT
     #define KEEP_PEER_CERT
 #endif
EOF
)
# bump when this script changes how the library is built
RECIPE=4

root=${1:?usage: wolfssl-asm.sh CACHE_ROOT}
# stderr reaches the terminal as it happens (CMake passes it through); the
# reason of a failure is also the last line on stdout, for CMake's warning
die() {
	echo "wolfssl-asm: $*" >&2
	echo "$*"
	exit 1
}

case "$(uname -m)" in
x86_64 | amd64) ;;
*) die "no x86-64 assembly for $(uname -m)" ;;
esac
command -v apt-get >/dev/null || die "apt-get not found (not Debian)"

version=$(dpkg-query -W -f='${Version}' libwolfssl-dev 2>/dev/null || true)
if [ -z "$version" ]; then
	version=$(apt-cache showsrc wolfssl 2>/dev/null | sed -n 's/^Version: //p' | sort -V | tail -n 1)
fi
[ -n "$version" ] || die "cannot tell which wolfSSL version to build (libwolfssl-dev not installed)"

dir="$root/wolfssl-$version-asm-r$RECIPE"
stamp="recipe=$RECIPE patch=$(printf "%s" "$LEAN_PATCH" | cksum | cut -d" " -f1) version=$version flags=$(echo $FEATURE_FLAGS) $ASM_FLAGS $LEAN_FLAGS $SEED_CPPFLAGS $(echo $FEATURE_CPPFLAGS)"
if [ -f "$dir/stamp" ] && [ "$(cat "$dir/stamp")" = "$stamp" ] &&
	[ -f "$dir/prefix/lib/libwolfssl.a" ]; then
	echo "$dir/prefix"
	exit 0
fi

mkdir -p "$root" || die "cannot create $root"
exec 9>"$root/wolfssl-asm.lock"
flock 9
# another configure may have finished it while this one waited
if [ -f "$dir/stamp" ] && [ "$(cat "$dir/stamp")" = "$stamp" ] &&
	[ -f "$dir/prefix/lib/libwolfssl.a" ]; then
	echo "$dir/prefix"
	exit 0
fi

for tool in dpkg-source dpkg-buildflags autoreconf libtoolize make gcc flock patch; do
	command -v "$tool" >/dev/null ||
		die "$tool not found (make deps installs dpkg-dev autoconf automake libtool)"
done

# a source entry for the suites the binary packages come from
if ! apt-cache showsrc wolfssl >/dev/null 2>&1 || [ -z "$(apt-cache showsrc wolfssl 2>/dev/null)" ]; then
	[ "$(id -u)" = 0 ] || die "apt has no deb-src entry and adding one needs root"
	src=/etc/apt/sources.list.d/debian.sources
	[ -f "$src" ] || die "no $src to derive a deb-src entry from"
	out=/etc/apt/sources.list.d/ringgate-deb-src.sources
	echo "wolfssl-asm: adding $out (deb-src for $src)" >&2
	{
		echo "# added by ringgate's build (cmake/wolfssl-asm.sh) for apt-get source wolfssl"
		sed -e 's/^Types:.*/Types: deb-src/' "$src"
	} >"$out.tmp"
	mv "$out.tmp" "$out"
	apt-get update -qq >&2 || die "apt-get update failed"
fi

echo "wolfssl-asm: building wolfSSL $version with $ASM_FLAGS into $dir (once; about 100 s on 2 cores)" >&2
rm -rf "$dir"
mkdir -p "$dir/src"
cd "$dir/src"
# as root the download runs unsandboxed: the _apt user cannot write here
sandbox=""
[ "$(id -u)" != 0 ] || sandbox="-o APT::Sandbox::User=root"
# shellcheck disable=SC2086
apt-get source -qq $sandbox "wolfssl=$version" >"$dir/fetch.log" 2>&1 ||
	die "apt-get source wolfssl=$version failed (network?): $(tail -n 3 "$dir/fetch.log")"
srcdir=$(find . -mindepth 1 -maxdepth 1 -type d -name 'wolfssl-*' | head -n 1)
[ -n "$srcdir" ] && [ -f "$srcdir/debian/rules" ] || die "apt-get source left no source tree"
cd "$srcdir"
printf '%s\n' "$LEAN_PATCH" | patch -p1 -s --no-backup-if-mismatch >"$dir/patch.log" 2>&1 ||
	die "our patch does not apply to wolfSSL $version: $(tail -n 3 "$dir/patch.log")"

# dpkg-buildflags as debian/rules sets them (hardening=+all); gcc whatever
# CC the caller uses (the fuzz build configures with clang)
eval "$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --export=sh)"
CPPFLAGS="$CPPFLAGS $SEED_CPPFLAGS $(echo $FEATURE_CPPFLAGS)"
unset CXX CPP
export CC=gcc
jobs=$(nproc 2>/dev/null || echo 2)
{
	autoreconf -fi &&
		# shellcheck disable=SC2086
		./configure -q --prefix="$dir/prefix" $FEATURE_FLAGS $ASM_FLAGS $LEAN_FLAGS \
			--enable-static --disable-shared &&
		make -j"$jobs" &&
		make install &&
		# Debian installs options.h itself (libwolfssl-dev.install)
		cp wolfssl/options.h "$dir/prefix/include/wolfssl/options.h"
} >"$dir/build.log" 2>&1 || die "build failed, see $dir/build.log"

grep -q '^#define USE_INTEL_SPEEDUP' "$dir/prefix/include/wolfssl/options.h" ||
	die "the built options.h lacks USE_INTEL_SPEEDUP"
! grep -q '^#define HAVE_THREAD_LS' "$dir/prefix/include/wolfssl/options.h" ||
	die "the built options.h still has HAVE_THREAD_LS"
cd "$dir"
rm -rf "$dir/src"
# only the static archive: nothing may pick a shared copy of it by accident
rm -f "$dir"/prefix/lib/libwolfssl.so* "$dir"/prefix/lib/libwolfssl.la
rm -rf "$dir"/prefix/bin "$dir"/prefix/share
printf '%s %s %s CPPFLAGS=%s\n' "$(echo $FEATURE_FLAGS)" "$ASM_FLAGS" "$LEAN_FLAGS" "$CPPFLAGS" >"$dir/configure-flags"
echo "$stamp" >"$dir/stamp"
echo "$dir/prefix"
