/* tls-seed.c — wolfSSL's entropy from getrandom(2).
 *
 * Debian's libwolfssl seeds every new connection's DRBG by opening
 * /dev/urandom, which a login process chrooted into an empty directory
 * cannot see (and base_dir usually sits on a nodev /run, so a device node
 * there would not open either). The library calls wc_GenerateSeed through
 * its PLT, so this definition in the executable takes its place: binaries
 * that use TLS link this file directly and export the symbol
 * (--export-dynamic-symbol) against the shared library; the static archive
 * is linked from a copy in which the library's definition is weak
 * (cmake/wolfssl.cmake). getrandom() needs no file and blocks only
 * until the kernel's pool is first initialised. Only the system build
 * (RINGGATE_WOLFSSL=system) links it: the asm build's library is configured
 * with WOLFSSL_GETRANDOM and seeds the same way by itself. */
#include "tls/tls-wolfssl.h"
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>

#include <errno.h>
#include <sys/random.h>

int wc_GenerateSeed(OS_Seed *os, byte *seed, word32 sz)
{
	(void)os;
	while (sz > 0) {
		ssize_t n = getrandom(seed, sz, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return OPEN_RAN_E;
		}
		seed += n;
		sz -= (word32)n;
	}
	return 0;
}
