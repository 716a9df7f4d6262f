/* login-proto.h — the pre-auth dialogue of one client, with no sockets.
 *
 * A protocol core (imap-login.c, pop3-login.c) turns client bytes into
 * responses and auth requests; the connection layer (login-conn.c) owns the
 * socket, the ring, timers and the channels to auth and master, and calls the
 * core's functions. Everything the core wants done goes through the
 * callbacks, so the core runs the same in memory (unit tests, fuzz target).
 *
 * Invariants: the core never holds more than LOGIN_MAX_LINE bytes of one
 * command (or SASL response line) and LOGIN_MAX_PENDING bytes of pipelined
 * input for one client, and an idle client (no partial command) holds no input
 * buffer. While an auth request is in flight the core parses no further
 * command: it keeps the bytes (bounded) so they can travel with the hand-off. */
#ifndef RG_LOGIN_PROTO_H
#define RG_LOGIN_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOGIN_MAX_LINE 8192     /* one pre-auth command line, literals included */
#define LOGIN_MAX_PENDING 4096  /* bytes kept past a login command (hand-off preread) */
#define LOGIN_MAX_BAD_COMMANDS 3

/* What the connection layer knows about this client when it starts. */
struct login_proto_config {
	const char *greeting;        /* login_greeting */
	/* the host name in POP3's APOP timestamp (gethostname(), as Dovecot's
	 * my_hostname); NULL: "localhost" */
	const char *hostname;
	const char *mechanisms;      /* upper-case, space-separated: "PLAIN LOGIN" */
	bool secured;                /* TLS, or trusted network / loopback */
	bool plaintext_auth_allowed; /* !disable_plaintext_auth || secured */
	bool starttls_available;     /* ssl != no and not already TLS */
	/* the client talks TLS to this process (not only to a proxy in front):
	 * the -PLUS mechanisms (TLS channel binding) are offered only then,
	 * and after STARTTLS/STLS */
	bool tls;
	/* in login_trusted_networks: may forward its own client's identity
	 * (IMAP ID x-originating-*, POP3 XCLIENT), e.g. a proxy in front */
	bool trusted;
};

struct login_callbacks {
	/* queue bytes to the client (copied before returning) */
	void (*send)(void *ctx, const void *data, size_t len);
	/* start SASL; resp is raw (decoded) bytes, has_resp false when the
	 * client gave no initial response */
	void (*auth_begin)(void *ctx, const char *mech, const uint8_t *resp,
			   size_t resp_len, bool has_resp);
	void (*auth_continue)(void *ctx, const uint8_t *resp, size_t resp_len);
	/* the client cancelled the exchange; no reply will come */
	void (*auth_abort)(void *ctx);
	/* auth succeeded: hand the client to master. tag is the IMAP tag (NULL
	 * for POP3); preread holds the bytes the client sent after the login
	 * command. The core sends nothing itself: the worker answers. */
	void (*handoff)(void *ctx, const char *tag, const uint8_t *preread, size_t preread_len);
	/* flush queued output, then close. reason is for the log only. */
	void (*disconnect)(void *ctx, const char *reason);
	/* client asked for STARTTLS/STLS and the core said OK: the connection
	 * layer starts the handshake */
	void (*starttls)(void *ctx);
	/* a trusted client forwarded who its client is: key "rip", "rport",
	 * "lip", "lport" or "session", value as sent (the layer validates it).
	 * May be NULL. */
	void (*forward)(void *ctx, const char *key, const char *value);
};

enum login_auth_result {
	LOGIN_AUTH_CHALLENGE, /* data = raw challenge */
	LOGIN_AUTH_OK,
	LOGIN_AUTH_FAIL,      /* wrong credentials; reason may be NULL */
	LOGIN_AUTH_TEMPFAIL,  /* auth unavailable etc. */
};

struct login_session;

struct login_proto {
	const char *name; /* "imap" or "pop3" */
	/* What the connection layer says or does differently per protocol
	 * (nginx's ngx_mail_protocol_t), so it never tests the name. Lines
	 * end in CRLF and are sent before closing. */
	uint16_t backend_port;		/* passdb proxy without port= */
	bool backend_pop3;		/* the backend dialogue (proxy-backend.h) */
	/* prefix for a backend's refusal without a response code */
	const char *backend_fail_code;
	const char *line_access_denied;	/* login_access_sockets said no */
	const char *line_internal_error; /* the access check failed */
	const char *line_too_many_conns; /* login_max_preauth_ip_connections */
	/* allocates the session and sends the greeting through cb->send */
	struct login_session *(*create)(const struct login_proto_config *config,
					const struct login_callbacks *cb, void *ctx);
	/* client bytes; the core consumes all of them */
	void (*input)(struct login_session *s, const uint8_t *data, size_t len);
	/* a reply from auth to the request the core started */
	void (*auth_reply)(struct login_session *s, enum login_auth_result result,
			   const uint8_t *data, size_t len, const char *reason);
	/* master or the backend could not take the client: answer NO
	 * [UNAVAILABLE] / -ERR [SYS/TEMP] reason, or NO / -ERR reason as it is
	 * when reason starts with its own response code ('['); the session
	 * goes on */
	void (*handoff_failed)(struct login_session *s, const char *reason);
	/* send "* BYE text" / "-ERR text" and disconnect (timeout, eviction, shutdown) */
	void (*bye)(struct login_session *s, const char *text);
	void (*destroy)(struct login_session *s);
};

extern const struct login_proto imap_login_proto;
extern const struct login_proto pop3_login_proto;

/* For the cores' unit tests: no command half-received and no auth in
 * flight, so the session holds no input buffer. */
bool imap_login_idle(const struct login_session *s);
bool pop3_login_idle(const struct login_session *s);

#endif
