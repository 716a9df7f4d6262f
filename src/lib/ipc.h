/* ipc.h — the one framing of every internal socket (UNIX SOCK_SEQPACKET).
 *
 * A message is a 16-byte header (type, flags, payload length, request id,
 * sender pid, host byte order) followed by a payload of fields. Each field is
 * [u16 key][u16 len][len bytes][NUL]; the NUL is not counted in len, so a
 * string field can be used as a C string in place. A key appears at most once.
 * At most one fd travels with a message (SCM_RIGHTS). ipc_decode() is the only
 * parser of this format and has a fuzz target; a peer that sends something it
 * rejects is a bug or a compromise, and receivers treat it as fatal.
 * The message catalogue is in docs/ipc.md. */
#ifndef RG_IPC_H
#define RG_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IPC_HDR_SIZE 16
#define IPC_MAX_PAYLOAD (16 * 1024)
#define IPC_MAX_MSG (IPC_HDR_SIZE + IPC_MAX_PAYLOAD)

enum ipc_type {
	IPC_NONE = 0,
	/* login -> auth (id = login's request id) */
	IPC_AUTH_BEGIN,
	IPC_AUTH_CONTINUE,
	IPC_AUTH_ABORT,
	/* auth -> login */
	IPC_AUTH_CHALLENGE,
	IPC_AUTH_OK,
	IPC_AUTH_FAIL,
	/* master -> auth */
	IPC_AUTH_NEW_CLIENT, /* fd: a login process's auth channel; id = login pid */
	IPC_AUTH_REQUEST,    /* second phase: COOKIE, LOGIN_PID; id = master's request id */
	/* auth -> master */
	IPC_AUTH_USER,       /* reply to REQUEST (or IPC_AUTH_FAIL with the same id) */
	/* login -> master */
	IPC_LOGIN_HANDOFF,   /* fd: the client socket */
	IPC_LOGIN_STATUS,
	/* master -> login */
	IPC_LOGIN_HANDOFF_REPLY,
	/* master -> worker (fd 4 of the worker; client socket is fd 3) */
	IPC_WORKER_INIT,
	/* master -> login */
	IPC_LOGIN_TICKET_KEYS, /* TLS session ticket keys: F_TICKET_KEYS */
	IPC_LOGIN_OVERFLOW,    /* process_limit reached: full, accept anyway (evicting) */
	IPC_LOGIN_STATS_REQUEST, /* master -> login: send LOGIN_STATS now */
	IPC_LOGIN_STATS,         /* login -> master: F_STATS (lib/stats.h) */
	IPC_LOGIN_RETIRE,        /* master -> login: reloaded; stop accepting, exit when idle */
	/* auth <-> its DNS resolver child (id = auth's lookup id) */
	IPC_DNS_LOOKUP,          /* F_HOST: a DNS name */
	IPC_DNS_RESULT,          /* F_HOST: its first address, or F_REASON */
	/* ringgate-stats <-> master (id = the stats process's request id) */
	IPC_CTL_REQUEST,         /* stats -> master: F_CMD (lib/ctl-proto.h) */
	IPC_CTL_REPLY,           /* master -> stats: F_TEXT, a piece of the answer; more follow */
	IPC_CTL_REPLY_END,       /* master -> stats: F_TEXT, the answer's last piece (may be empty) */
	/* auth <-> its worker spawner and auth-workers (src/auth/auth-worker.h) */
	IPC_AUTH_WORKER_SPAWN,   /* auth -> spawner: start one; reply: fd + F_LOGIN_PID */
	IPC_AUTH_WORKER_KILL,    /* auth -> spawner: F_LOGIN_PID, a worker past its bound */
	IPC_AUTH_WORKER_REQUEST, /* auth -> worker: F_DB what, F_USER ... */
	IPC_AUTH_WORKER_RESULT,  /* worker -> auth: F_RESULT, F_USER, F_EXTRA, F_USERDB ... */
	IPC_AUTH_CACHE_FLUSH,    /* master -> auth: F_USER space-separated names, none = all */
	IPC_WORKER_DONE,         /* reusable worker -> master: session over, ready for the next */
	/* master <-> a high-security login template (src/login/login-template.h) */
	IPC_LOGIN_SPAWN_AUTH,    /* master -> template: fd = the next child's auth channel */
	IPC_LOGIN_SPAWN,         /* master -> template: fd = the next child's master channel */
	IPC_LOGIN_SPAWNED,       /* template -> master: same id; F_LOGIN_PID, or F_REASON */
	/* master <-> a worker template (src/mail/worker-template.h) */
	IPC_WORKER_TEMPLATE_READY, /* template -> master: started, takes WORKER_SPAWNs */
	IPC_WORKER_SPAWN,        /* master -> template: fd = the next child's master channel */
	IPC_WORKER_SPAWNED,      /* template -> master: same id; F_LOGIN_PID, or F_REASON */
	/* master -> a worker forked from a template, first on its channel */
	IPC_WORKER_SETUP,        /* fd: its syslog socket (or none); F_UID F_GID [F_GROUPS]
				    [F_CHROOT] [F_HOME] [F_VSZ] [F_REUSE] */
	/* master -> login */
	IPC_LOGIN_IDLE_KILL,     /* idle_kill: exit if no connection, else answer LOGIN_STATUS */
	IPC_TYPE_COUNT
};

enum ipc_field {
	IPC_F_NONE = 0,
	IPC_F_SERVICE,   /* "imap" or "pop3" */
	IPC_F_MECH,      /* SASL mechanism name, upper case */
	IPC_F_RESP,      /* SASL response, raw (already base64-decoded) bytes; may be empty */
	IPC_F_CHALLENGE, /* SASL challenge, raw bytes */
	IPC_F_USER,
	IPC_F_COOKIE,    /* 32 lower-case hex chars */
	IPC_F_REASON,    /* failure text safe to show the client */
	IPC_F_TEMP,      /* "1": temporary failure (auth/backend unavailable) */
	IPC_F_RIP,       /* remote (client) IP, text */
	IPC_F_RPORT,
	IPC_F_LIP,       /* local IP, text */
	IPC_F_LPORT,
	IPC_F_SECURED,   /* "1": TLS or trusted/loopback network */
	IPC_F_LOGIN_PID,
	IPC_F_UID,
	IPC_F_GID,
	IPC_F_HOME,
	IPC_F_MAIL,      /* mail_location, e.g. maildir:~/Maildir */
	IPC_F_TAG,       /* IMAP tag of the command that logged in */
	IPC_F_PREREAD,   /* client bytes already read past the login command */
	IPC_F_SESSION,   /* session id, for logs */
	IPC_F_EXTRA,     /* passdb/userdb extra fields, TAB-separated key=value */
	IPC_F_CONNS,     /* LOGIN_STATUS: connections now */
	IPC_F_PRELOGIN,  /* LOGIN_STATUS: connections not yet handed off */
	IPC_F_TOTAL,     /* LOGIN_STATUS: connections accepted since start */
	IPC_F_TLS,       /* "1": the client talks TLS to the login process */
	IPC_F_TICKET_KEYS, /* 48 bytes current key, then 48 bytes previous (or none) */
	IPC_F_PASS,      /* AUTH_OK of a proxied user: the password for the backend */
	IPC_F_STATS,     /* LOGIN_STATS: "name=value ..." (lib/stats.h) */
	IPC_F_MPID,      /* LOGIN_HANDOFF_REPLY: the worker's pid, for the Login log line */
	IPC_F_HOST,      /* DNS_LOOKUP: a name; DNS_RESULT: an IP address, text */
	IPC_F_CMD,       /* CTL_REQUEST: "who", "who -1", "stats", "metrics", "reload" */
	IPC_F_TEXT,      /* CTL_REPLY(_END): answer text */
	IPC_F_DB,        /* AUTH_WORKER_REQUEST: "verify N", "credentials N SCHEME", "userdb N";
			    RESULT: the credentials' scheme */
	IPC_F_RESULT,    /* AUTH_WORKER_RESULT: passdb/userdb result, decimal (may be negative) */
	IPC_F_USERDB,    /* AUTH_WORKER_*: userdb fields, TAB-separated key=value */
	IPC_F_CERT_VALID, /* AUTH_BEGIN: "1": the client's TLS certificate verified */
	IPC_F_CERT_USER, /* AUTH_BEGIN: that certificate's ssl_cert_username_field entry */
	IPC_F_CB_TYPE,   /* AUTH_BEGIN of a -PLUS mechanism: "tls-unique" / "tls-exporter" */
	IPC_F_CB_DATA,   /* ... and the connection's channel-binding bytes */
	IPC_F_MAX_LINE,  /* WORKER_INIT (imap): imap_max_line_length, decimal bytes */
	IPC_F_CHROOT,    /* WORKER_INIT: the user's chroot (F_HOME is then inside it) */
	IPC_F_GROUPS,    /* WORKER_INIT to a spare: supplementary gids, decimal, comma-separated */
	IPC_F_VSZ,       /* WORKER_SETUP: RLIMIT_AS in bytes, decimal */
	IPC_F_REUSE,     /* WORKER_SETUP: "1": the worker keeps its channel (as `-r`) */
	IPC_F_COUNT
};

/* ipc_fields.present has a bit per key */
_Static_assert(IPC_F_COUNT <= 64, "too many IPC fields for the presence bitmask");

struct ipc_hdr {
	uint16_t type;
	uint16_t flags; /* 0 */
	uint32_t len;   /* payload bytes after the header */
	uint32_t id;
	uint32_t pid;
};

/* A message being built. Adding past IPC_MAX_PAYLOAD is a programming error
 * and fatal: callers bound what they put in. */
struct ipc_msg {
	size_t len; /* header + payload so far */
	uint8_t buf[IPC_MAX_MSG];
};

void ipc_msg_init(struct ipc_msg *msg, enum ipc_type type, uint32_t id);
void ipc_msg_add(struct ipc_msg *msg, enum ipc_field key, const void *data, size_t len);
void ipc_msg_add_str(struct ipc_msg *msg, enum ipc_field key, const char *str);
void ipc_msg_add_uint(struct ipc_msg *msg, enum ipc_field key, unsigned long long value);
/* bytes still free for fields (header of the next field included) */
size_t ipc_msg_room(const struct ipc_msg *msg);

/* Send msg (setting its length and pid) with optional fd (-1 for none).
 * Returns 0 or -errno (-EAGAIN on a full non-blocking socket). */
int ipc_send(int sock, struct ipc_msg *msg, int pass_fd);

/* The send queue of one non-blocking channel. A SEQPACKET socket holds only
 * what its send buffer has room for (about 200 small messages), and a
 * burst of logins can outrun a busy peer: what does not fit waits here, in
 * order, until the socket is writable again. Queued messages are copies
 * (wiped when freed: they may carry passwords) and a passed fd is a
 * duplicate the queue owns. Bounded: past IPC_OUTQ_MAX_BYTES a send fails
 * with -ENOBUFS, which the caller treats like a dead peer. */
#define IPC_OUTQ_MAX_BYTES (32u * 1024 * 1024)

struct ipc_outq_msg;
struct ipc_outq {
	struct ipc_outq_msg *head, *tail;
	size_t bytes;
	unsigned count;
	/* the owner waits for the socket to be writable (EPOLLOUT in its
	 * epoll set, or a ring POLLOUT in flight) */
	bool armed;
};

/* Send msg now if nothing is queued and the socket takes it, else queue a
 * copy. 0: sent or queued (see ipc_outq_pending()); -errno: the peer is
 * gone or broken, or the queue is over its bound. */
int ipc_outq_send(struct ipc_outq *q, int sock, struct ipc_msg *msg, int pass_fd);
/* Send what is queued while the socket takes it. 0 when the queue is
 * empty, 1 when some is left (wait for the socket to be writable),
 * -errno when the peer is gone or broken. */
int ipc_outq_flush(struct ipc_outq *q, int sock);
static inline bool ipc_outq_pending(const struct ipc_outq *q)
{
	return q->head != NULL;
}
/* Drop everything queued (wiped, fds closed); not armed any more. */
void ipc_outq_clear(struct ipc_outq *q);

/* The same for a socket in an epoll set (master, auth), registered with
 * data.ptr = ptr: EPOLLOUT is added while messages wait and removed when
 * ipc_outq_epoll_flush(), called on EPOLLOUT, has sent them all. Return
 * values as ipc_outq_send() and ipc_outq_flush(). */
int ipc_outq_epoll_send(struct ipc_outq *q, int epfd, int sock, void *ptr,
			struct ipc_msg *msg, int pass_fd);
int ipc_outq_epoll_flush(struct ipc_outq *q, int epfd, int sock, void *ptr);

/* Decoded fields: pointers into the received buffer. */
struct ipc_fields {
	uint64_t present; /* bit per key */
	uint16_t len[IPC_F_COUNT];
	const uint8_t *val[IPC_F_COUNT];
};

/* Parse one whole message. false with *error_r on anything malformed. */
bool ipc_decode(const uint8_t *data, size_t len, struct ipc_hdr *hdr_r,
		struct ipc_fields *fields_r, const char **error_r);

bool ipc_has(const struct ipc_fields *f, enum ipc_field key);
/* NULL when absent */
const char *ipc_str(const struct ipc_fields *f, enum ipc_field key);
/* false when absent or not a decimal number that fits */
bool ipc_uint(const struct ipc_fields *f, enum ipc_field key, unsigned long long *value_r);

/* A received message; fd is -1 unless one arrived (the receiver owns it). */
struct ipc_rx {
	struct ipc_hdr hdr;
	struct ipc_fields fields;
	int fd;
	uint8_t buf[IPC_MAX_MSG];
};

/* Receive one message. Returns 1 (message in rx), 0 (peer closed), -EAGAIN,
 * other -errno for socket errors, or -EPROTO with *error_r when the message is
 * malformed (any fd that came with it is closed). */
int ipc_recv(int sock, struct ipc_rx *rx, const char **error_r);

/* A child made by clone() without fork()'s atfork handlers (a template's:
 * lib/zygote.c) calls this before its first send: the header's sender pid
 * is otherwise the parent's, cached. */
void ipc_pid_reset(void);

const char *ipc_type_name(enum ipc_type type);

#endif
