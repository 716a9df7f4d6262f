/* auth-scheme.h — password schemes: {PLAIN}/{CLEARTEXT} compared in constant
 * time, the crypt family ({CRYPT}, {MD5-CRYPT}, {SHA256-CRYPT},
 * {SHA512-CRYPT}, {BLF-CRYPT}) verified by libcrypt's crypt_rn(), and
 * Dovecot's {SCRAM-SHA-1}, {SCRAM-SHA-256} and {CRAM-MD5} (whose hashes come
 * from wolfCrypt through tls-crypto.h). No hash code of our own. Scheme
 * names are upper case, without the braces. */
#ifndef RG_AUTH_SCHEME_H
#define RG_AUTH_SCHEME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum scheme_result {
	SCHEME_OK = 0,
	SCHEME_MISMATCH,
	SCHEME_UNKNOWN,  /* configuration error: no such scheme */
	SCHEME_BAD_HASH, /* configuration error: hash not of the scheme's form */
};

bool auth_scheme_known(const char *scheme);

/* Verify password (pw_len bytes, may hold anything; a NUL never matches a
 * crypt hash) against hash stored under scheme. */
enum scheme_result auth_scheme_verify(const char *scheme, const char *hash,
				      const uint8_t *pw, size_t pw_len);

/* "{SCHEME}hash" for pw, allocated (`ringgate pw`, as doveadm pw): a fresh
 * random salt; rounds 0 = the scheme's default (SCRAM: 4096 iterations,
 * crypt: libcrypt's). NULL with *error_r for an unknown scheme or rounds the
 * scheme refuses. */
char *auth_scheme_generate(const char *scheme, const uint8_t *pw, size_t pw_len,
			   unsigned rounds, const char **error_r);
/* the i-th known scheme name, NULL past the last (`ringgate pw -l`) */
const char *auth_scheme_name(unsigned i);

/* constant-time for equal lengths; lengths themselves are not secret */
bool auth_mem_equal(const void *a, size_t alen, const void *b, size_t blen);

#endif
