/* pop3-login-private.h — what the files of the POP3 login core share
 * (pop3-login.c: the session, its command loop and the login_proto entry
 * points; pop3-login-auth.c: the mechanisms and the login commands). Nothing
 * outside these two files includes it: the interface is login-proto.h. */
#ifndef RG_LOGIN_POP3_LOGIN_PRIVATE_H
#define RG_LOGIN_POP3_LOGIN_PRIVATE_H

#include "login/login-proto.h"
#include "login/pop3-parser.h"

#define POP3_MAX_REASON 200 /* bytes of an auth/master reason shown to the client */

#define MSG_PLAINTEXT_DISALLOWED \
	"-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."

enum pop3_state {
	POP3_STATE_CMD,       /* reading commands */
	POP3_STATE_AUTH_WAIT, /* auth_begin/continue sent, waiting for auth_reply */
	POP3_STATE_AUTH_CONT, /* challenge sent, reading the client's response line */
	POP3_STATE_HANDOFF,   /* handoff called, waiting for master (or the end) */
	POP3_STATE_DONE,      /* disconnect requested: input is dropped */
};

struct login_session {
	const struct login_callbacks *cb;
	void *ctx;
	char *mechanisms; /* copy of config->mechanisms */
	char *apop_challenge; /* the greeting's timestamp, when APOP is enabled */
	bool secured;
	bool plaintext_auth_allowed;
	bool starttls_available;
	bool trusted; /* may send XCLIENT */
	bool tls;     /* TLS: the -PLUS mechanisms are offered */

	enum pop3_state state;
	struct pop3_parser parser;
	char *user; /* from USER, until PASS or STLS */
	unsigned int bad_commands;

	/* Client bytes received after a login command, while state is
	 * AUTH_WAIT or HANDOFF: pending[0..pending_len) in arrival order. */
	uint8_t *pending;
	size_t pending_len;

	/* The unparsed rest of the buffer pop3_process() is working on: a
	 * reply that arrives from inside a callback (auth answering at once)
	 * can still take it as preread. */
	const uint8_t *cur;
	size_t cur_len;

	unsigned int depth;  /* entry points on the stack */
	bool destroyed;      /* destroy() was called while depth > 0 */
	bool draining;       /* pop3_process() is on the stack */
};

/* pop3-login.c */
/* true once the session must not do anything more on this call path */
bool pop3_gone(const struct login_session *s);
void pop3_send(struct login_session *s, const char *text);
/* forget the USER name (wiped) */
void pop3_clear_user(struct login_session *s);

/* pop3-login-auth.c: each command returns false for a bad command (counts
 * towards the limit) */
bool pop3_cmd_capa(struct login_session *s);
bool pop3_cmd_user(struct login_session *s, const char *args);
bool pop3_cmd_pass(struct login_session *s, const char *args);
bool pop3_cmd_auth(struct login_session *s, const char *args);
bool pop3_cmd_apop(struct login_session *s, const char *args);
/* the client's answer to a challenge, state AUTH_CONT */
void pop3_auth_response(struct login_session *s, const struct pop3_line *line);
/* the greeting's APOP timestamp, when the mechanisms name APOP */
void pop3_apop_challenge_init(struct login_session *s, const struct login_proto_config *config);

#endif
