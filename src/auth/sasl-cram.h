/* sasl-cram.h — the two MD5 challenge-response logins: SASL CRAM-MD5
 * (RFC 2195) and POP3 APOP (RFC 1939), as Dovecot serves them. Pure: no
 * I/O, no allocation. The challenge is made by the caller from random bytes
 * (CRAM-MD5: by auth; APOP: by the login process in its greeting) and must
 * look like an RFC 822 msg-id, "<...@...>". Credentials: CRAM-MD5 takes
 * Dovecot's {CRAM-MD5} context or a plaintext password, APOP only the
 * plaintext. */
#ifndef RG_SASL_CRAM_H
#define RG_SASL_CRAM_H

#include "tls/tls-crypto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRAM_MAX_CHALLENGE 256
#define CRAM_MAX_USER 255
#define CRAM_MAX_RESP (CRAM_MAX_USER + 1 + 32)

/* "<pid.unix-time.hex(random)@host>" into out (CRAM_MAX_CHALLENGE bytes);
 * pid: the login process that shows it (APOP), so auth can tell a
 * challenge was issued on that channel (as Dovecot does). False if host
 * does not fit or holds characters a msg-id cannot. */
bool cram_challenge_make(const uint8_t random[16], unsigned pid, long unix_time,
			 const char *host, char *out, size_t *len_r);
/* that form: "<" digits "." digits "." 32 hex "@" host ">"; *pid_r is the pid */
bool cram_challenge_parse(const char *s, size_t len, unsigned *pid_r);

/* CRAM-MD5 response: user SP 32 hex digits (either case). */
bool cram_md5_parse(const uint8_t *resp, size_t len, char user[CRAM_MAX_USER + 1],
		    uint8_t digest[16], const char **error_r);
/* against a {CRAM-MD5} context */
bool cram_md5_verify_context(const uint8_t ctx[CRYPTO_CRAM_MD5_CONTEXT_LEN],
			     const char *challenge, size_t chal_len, const uint8_t digest[16]);
/* against a plaintext password */
bool cram_md5_verify_plain(const uint8_t *pw, size_t pw_len, const char *challenge,
			   size_t chal_len, const uint8_t digest[16]);
/* Dovecot's {CRAM-MD5} stored form: 64 hex digits */
bool cram_md5_context_parse(const char *hex, uint8_t ctx[CRYPTO_CRAM_MD5_CONTEXT_LEN]);
/* out needs 65 bytes */
void cram_md5_context_format(const uint8_t ctx[CRYPTO_CRAM_MD5_CONTEXT_LEN], char *out);

/* Dovecot's APOP SASL message from pop3-login: challenge NUL user NUL
 * 16-byte MD5 digest. Pointers into msg; the challenge must be valid. */
struct apop_msg {
	const char *challenge;
	size_t chal_len;
	char user[CRAM_MAX_USER + 1];
	uint8_t digest[16];
};
bool apop_parse(const uint8_t *msg, size_t len, struct apop_msg *r, const char **error_r);
/* POP3 "APOP user digest" arguments (digest: 32 hex digits) to that message;
 * out needs CRAM_MAX_CHALLENGE + CRAM_MAX_USER + 18 bytes */
bool apop_encode(const char *challenge, const char *user, size_t user_len, const char *hex,
		 size_t hex_len, uint8_t *out, size_t *len_r);
bool apop_verify(const struct apop_msg *m, const uint8_t *pw, size_t pw_len);

#endif
