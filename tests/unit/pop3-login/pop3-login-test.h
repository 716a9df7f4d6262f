/* pop3-login-test.h — the POP3 login core's unit tests' shared fake: a
 * connection layer in memory whose callbacks record what the core sends
 * and asks for, and scripts fed at every split. */
#ifndef RG_TEST_POP3_LOGIN_TEST_H
#define RG_TEST_POP3_LOGIN_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "login/login-proto.h"

#define P (&pop3_login_proto)

struct fake {
	struct login_session *s;
	char *out;
	size_t out_len;

	int begins;
	char mech[64];
	uint8_t resp[16384];
	size_t resp_len;
	bool has_resp;

	int continues;
	uint8_t cont[16384];
	size_t cont_len;

	int aborts;
	int handoffs;
	bool tag_was_null;
	uint8_t preread[8192];
	size_t preread_len;
	size_t out_len_at_handoff;

	int disconnects;
	char forwarded[256];
	int starttls;

	/* behaviours */
	bool destroy_on_disconnect;
	bool reply_sync;               /* answer auth_begin at once with... */
	enum login_auth_result sync_result;
	bool fail_handoff_sync;
};

extern const struct login_callbacks fake_cb; /* records into the struct fake its ctx is */
extern const struct login_proto_config cfg_default;

/* a session on cfg with the fake as its connection layer */
struct fake *fake_new(const struct login_proto_config *cfg);
void fake_free(struct fake *f);
void fake_clear_out(struct fake *f);
/* client bytes into the session (a copy, so reads past len are caught) */
void input(struct fake *f, const char *str);
void input_n(struct fake *f, const void *data, size_t len);
/* what the core sent since the last check is expected; clears it */
void assert_out(struct fake *f, const char *expected);

#define GREETING "+OK Dovecot ready.\r\n"
#define CAPA_BASE "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n"
#define PLAINTEXT_DISALLOWED \
	"-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n"

/* Feeds script at every split and one byte at a time into fresh sessions;
 * the output must be the same each time. */
void check_script_n(const struct login_proto_config *cfg, const char *script, size_t len,
		    const char *expected, int expect_disconnects);
void check_script(const struct login_proto_config *cfg, const char *script, const char *expected,
		  int expect_disconnects);

#endif
