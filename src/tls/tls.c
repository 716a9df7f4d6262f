/* tls.c — wolfSSL behind tls.h: the library's start and the error texts
 * every file of src/tls returns. wolfSSL only ever sees our memory buffers
 * through the I/O callbacks (tls-conn.c), so every byte on the wire passes
 * through tls_conn_feed and tls_conn_pending_output. Files: tls-ctx.c
 * (contexts), tls-ticket.c (session tickets), tls-sni.c (SNI), tls-conn.c
 * (the engine), tls-peer.c (what a finished handshake tells). */
#include "tls/tls-private.h"
#include <wolfssl/version.h>
#if RINGGATE_WOLFSSL_ASM
#include <wolfssl/wolfcrypt/cpuid.h>
#endif

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"

static char tls_error_buf[256];
static bool tls_initialized;

const char *tls_error(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(tls_error_buf, sizeof(tls_error_buf), fmt, args);
	va_end(args);
	return tls_error_buf;
}

const char *tls_wolf_reason(int err)
{
	static char buf[WOLFSSL_MAX_ERROR_SZ];

	wolfSSL_ERR_error_string_n((unsigned long)(err < 0 ? -err : err), buf, sizeof(buf));
	/* wolfSSL formats as "error:-NNN:...:reason"; keep only the reason */
	char *p = strrchr(buf, ':');
	return p != NULL && p[1] != '\0' ? p + 1 : buf;
}

void tls_init(void)
{
	if (tls_initialized)
		return;
	/* headers and library of one release (tls-wolfssl.h checks that they
	 * are of one build) */
	if (wolfSSL_lib_version_hex() != LIBWOLFSSL_VERSION_HEX)
		log_fatal("wolfSSL headers %s but library %s: rebuild", LIBWOLFSSL_VERSION_STRING,
			  wolfSSL_lib_version());
	if (wolfSSL_Init() != WOLFSSL_SUCCESS)
		log_fatal("wolfSSL_Init failed");
	tls_initialized = true;
}

const char *tls_crypto_info(void)
{
	static char buf[160];

	if (buf[0] != '\0')
		return buf;
#if RINGGATE_WOLFSSL_ASM
	/* what wolfSSL's own CPUID probe found: its assembly picks AES-NI
	 * (AES-GCM), AVX/AVX2 (GCM, ChaCha20-Poly1305, SHA-2) and BMI2+ADX
	 * (P-256, X25519) by these at run time, portable code otherwise */
	static const struct {
		word32 flag;
		const char *name;
	} paths[] = {
		{ CPUID_AESNI, "AES-NI" }, { CPUID_AVX1, "AVX" }, { CPUID_AVX2, "AVX2" },
		{ CPUID_BMI2, "BMI2" },	   { CPUID_ADX, "ADX" },
	};
	word32 flags = cpuid_get_flags();
	size_t len = (size_t)snprintf(buf, sizeof(buf), "wolfSSL %s asm build, CPU paths:",
				      wolfSSL_lib_version());
	bool any = false;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]) && len < sizeof(buf); i++) {
		if ((flags & paths[i].flag) != 0) {
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, " %s", paths[i].name);
			any = true;
		}
	}
	if (!any && len < sizeof(buf))
		snprintf(buf + len, sizeof(buf) - len, " none (portable code)");
#else
	snprintf(buf, sizeof(buf), "wolfSSL %s system build, Debian's, no assembly",
		 wolfSSL_lib_version());
#endif
	return buf;
}
