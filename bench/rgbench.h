/* rgbench.h — shared by rgbench.c (the load loop), rgbench-args.c (the
 * command line) and rgbench-report.c (the result line and summary) only. */
#ifndef RG_BENCH_RGBENCH_H
#define RG_BENCH_RGBENCH_H

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tls/tls-wolfssl.h"
#include <wolfssl/ssl.h>

#include "lib/alloc.h"
#include "lib/log.h"
#include "ring/ring.h"

#define LINE_HEAD 128		/* bytes of each response line kept for checks */
#define CMD_MAX 512
#define MAX_STEPS 40
#define FETCHES_MAX 32
#define TICK_MS 50
#define RX_MAX (1024 * 1024)	/* ciphertext not yet read by wolfSSL */

enum proto { PROTO_IMAP, PROTO_POP3 };
enum kind { KIND_PRELOGIN, KIND_LOGIN, KIND_LOGIN_FETCH, KIND_IDLE };
enum transport { TR_PLAIN, TR_TLS, TR_STARTTLS };

/* what a step's response must look like */
enum resp {
	RESP_IMAP_GREETING,	/* "* OK" */
	RESP_IMAP_TAGGED,	/* untagged lines, then "<tag> OK" */
	RESP_POP_OK,		/* "+OK" */
	RESP_POP_MULTI,		/* "+OK", lines, "." */
};

enum err {
	ERR_CONNECT, ERR_GREETING, ERR_LOGIN, ERR_SELECT, ERR_FETCH, ERR_LOGOUT,
	ERR_EOF, ERR_RESET, ERR_TIMEOUT, ERR_PROTOCOL, ERR_STARTTLS, ERR_TLS, ERR_CLOSE, ERR_COUNT
};

struct step {
	const char *cmd;	/* without tag and CRLF; NULL for the greeting */
	enum resp resp;
	enum err err;		/* counted when the status is not OK */
	bool need_literal;	/* IMAP: the response must carry a literal */
	bool starttls;		/* an OK starts the TLS handshake */
};

/* bytes [off, len) of data are pending; alloc grows, never shrinks, so a
 * client reuses its buffers from one session to the next */
struct bytes {
	uint8_t *data;
	size_t off, len, alloc;
};

enum conn_state {
	CONN_FREE,	/* no session: the client waits to start one */
	CONN_ACTIVE,	/* reading the response of steps[step] */
	CONN_WAIT_EOF,	/* final response read; the server closes */
	CONN_HOLD,	/* idle: greeting read, holding */
	CONN_CLOSING,	/* shut down; waiting for operations in flight */
};

/* Response scanner of one connection: head holds the first LINE_HEAD bytes
 * of the logical line being read (a literal inside it is skipped, not kept);
 * brace tracks a trailing "{N}" so the literal's N bytes are skipped. */
struct client {
	struct ring_owner ro;
	unsigned idx;
	int fd;
	uint32_t slot;
	enum conn_state state;
	unsigned step;
	uint64_t start_ns, deadline_ns;
	char head[LINE_HEAD];
	size_t head_len;
	bool line_cr;
	int brace;		/* 0 none, 1 in digits, 2 "}" just seen */
	uint64_t brace_val;
	uint64_t literal_left;
	bool saw_literal;
	bool multi_body;	/* POP3 multi-line: status read, in body */
	/* output: tx collects what is to be sent (plaintext commands, or
	 * wolfSSL's records); txf is the one buffer the ring is sending, which
	 * must not move until its completion (send_busy) */
	struct bytes tx, txf;
	bool send_busy;
	struct bytes rx;	/* TLS: ciphertext received, not yet consumed */
	WOLFSSL *ssl;		/* non-NULL from the handshake to release */
	bool handshaking;
	/* the server's close_notify came and ours went back: a server that
	 * closed meanwhile answers it with a reset, which ends the session as
	 * its EOF would */
	bool tls_closed;
	WOLFSSL_SESSION *sess;	/* --resume: offered on the next connection */
};

struct bench {
	struct ring_owner ro; /* the tick's slot */
	enum proto proto;
	enum kind kind;
	unsigned clients;
	double duration;
	uint64_t max_sessions;
	double timeout;
	unsigned src_addrs;
	uint32_t src_first;	/* host order; 0: the kernel picks */
	unsigned connect_window;
	struct in_addr dst;
	uint16_t port;
	const char *user, *pass;
	bool quiet;
	enum transport transport;
	bool resume;
	const char *ca_file;
	int group;		/* --group: the one key exchange group offered; 0 = wolfSSL's */
	unsigned fetches;	/* --fetches: FETCH 1 BODY[] this many times per session */
	WOLFSSL_CTX *tls_ctx;
	uint64_t handshakes, resume_offered, resumed;
	const char *tls_version;	/* of the last handshake */
	const char *tls_group;		/* its key exchange group */

	struct step steps[MAX_STEPS];
	unsigned nsteps;
	char *owned[MAX_STEPS];	/* commands built at start-up, freed at exit */
	unsigned nowned;
	struct ring *ring;
	struct client *cl;
	uint32_t tick_slot;
	uint64_t t0, deadline;
	bool stopping;
	bool drain;		/* --drain: at the end, finish what is in flight */
	bool draining;
	unsigned live;		/* clients with a socket */
	unsigned connecting;	/* idle: not yet greeted */
	uint64_t started, completed, errors, err_by[ERR_COUNT];
	uint32_t *lat_us;
	size_t lat_n, lat_alloc;
	unsigned held, held_final;
	uint64_t hold_since;
	unsigned *runq;		/* clients waiting to start a session */
	unsigned runq_n;
	bool ready_printed;
};

/* rgbench.c: SIGINT/SIGTERM came (the run is cut short) */
extern volatile sig_atomic_t interrupted;

/* rgbench-report.c: the --kind names, by enum kind */
extern const char *const kind_names[];

/* rgbench-args.c: the command line into b (exits on a usage error) */
void bench_parse_args(struct bench *b, int argc, char **argv);
/* rgbench-report.c: the JSON result line (and, unless quiet, a summary on
 * stderr); false when the run failed */
bool bench_report(struct bench *b, double elapsed, double hold_s);

#endif
