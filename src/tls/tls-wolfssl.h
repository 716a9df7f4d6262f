/* tls-wolfssl.h — the one way to include wolfSSL: its options.h first, then
 * a check that these headers belong to the library this target links. The
 * asm build's headers (USE_INTEL_SPEEDUP, WOLFSSL_SP_X86_64_ASM, ...) give
 * public structs such as Aes another size than Debian's, so code compiled
 * against one and linked with the other would corrupt memory. The rg_wolfssl
 * CMake target gives the include path, the library and RINGGATE_WOLFSSL_ASM
 * together; this header refuses every other combination at compile time.
 * (tls.c adds a link-time check for the asm build: it calls wolfSSL's cpuid
 * helper, which Debian's library does not have.) */
#ifndef RG_TLS_WOLFSSL_H
#define RG_TLS_WOLFSSL_H

#include <wolfssl/options.h>

#ifndef RINGGATE_WOLFSSL_ASM
#error "link the rg_wolfssl target: it gives wolfSSL's headers and RINGGATE_WOLFSSL_ASM together"
#endif
#if RINGGATE_WOLFSSL_ASM && !defined(USE_INTEL_SPEEDUP)
#error "RINGGATE_WOLFSSL_ASM=1 but these are the system wolfSSL headers (no USE_INTEL_SPEEDUP)"
#endif
#if !RINGGATE_WOLFSSL_ASM && defined(USE_INTEL_SPEEDUP)
#error "RINGGATE_WOLFSSL_ASM=0 but these are the asm build's wolfSSL headers"
#endif

#endif
