/* rgbench — closed-loop IMAP/POP3 load generator for loopback servers.
 *
 * N clients each run one session after another (prelogin, login,
 * login-fetch) for a fixed time, or open K connections and hold them (idle).
 * Every response is checked (IMAP tag and status, POP3 +OK, the end of the
 * session is the server's EOF after LOGOUT/QUIT) and each mismatch counts as
 * an error of its kind; a run with errors reports no rate and exits 1.
 * All socket I/O is on the project's io_uring loop (src/ring); connect() is
 * a non-blocking syscall because the ring has no connect operation, and a
 * multishot receive armed on the connecting socket reports the greeting or
 * the failure. Only 127.0.0.0/8 is ever targeted.
 * TLS (--tls implicit, --starttls) is a wolfSSL client whose I/O callbacks
 * only move bytes between per-client buffers: ciphertext arrives by the
 * ring's receives and leaves by ring_send, wolfSSL never makes a syscall.
 * (The bench links wolfSSL directly, as its brief allows; src/tls is the
 * server's engine.) --resume keeps each client's session (ticket) and offers
 * it on that client's next connection. */
#include "rgbench.h"

volatile sig_atomic_t interrupted;
/* SIGUSR1: an idle run ends its hold now, as if its duration were over
 * (run.py holds K connections with several rgbench processes and releases
 * them together once it has measured) */
static volatile sig_atomic_t released;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void on_release(int sig)
{
	(void)sig;
	released = 1;
}

static void bench_add_step(struct bench *b, const char *cmd, enum resp resp,
			   enum err err, bool need_literal)
{
	if (b->nsteps == MAX_STEPS)
		log_fatal("too many steps");
	b->steps[b->nsteps++] = (struct step){ cmd, resp, err, need_literal, false };
}

static const char *bench_own(struct bench *b, char *cmd)
{
	b->owned[b->nowned++] = cmd;
	return cmd;
}

static void bench_add_starttls(struct bench *b)
{
	if (b->transport != TR_STARTTLS)
		return;
	if (b->proto == PROTO_IMAP)
		bench_add_step(b, "STARTTLS", RESP_IMAP_TAGGED, ERR_STARTTLS, false);
	else
		bench_add_step(b, "STLS", RESP_POP_OK, ERR_STARTTLS, false);
	b->steps[b->nsteps - 1].starttls = true;
}

/* IMAP quoted string: the benchmark's own users never need escaping, but a
 * quote or backslash in a password must not break the command */
static char *imap_quote(const char *s)
{
	size_t n = strlen(s);
	char *out = rg_malloc(n * 2 + 3), *p = out;
	*p++ = '"';
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			*p++ = '\\';
		*p++ = *s;
	}
	*p++ = '"';
	*p = '\0';
	return out;
}

static void bench_script(struct bench *b)
{
	if (b->proto == PROTO_IMAP) {
		bench_add_step(b, NULL, RESP_IMAP_GREETING, ERR_GREETING, false);
		bench_add_starttls(b);
		if (b->kind == KIND_IDLE)
			return;
		if (b->kind != KIND_PRELOGIN) {
			char *u = imap_quote(b->user), *p = imap_quote(b->pass);
			bench_add_step(b, bench_own(b, rg_strdup_printf("LOGIN %s %s", u, p)),
				       RESP_IMAP_TAGGED, ERR_LOGIN, false);
			rg_free(u);
			rg_free(p);
		}
		if (b->kind == KIND_LOGIN_FETCH) {
			bench_add_step(b, "SELECT INBOX", RESP_IMAP_TAGGED, ERR_SELECT, false);
			bench_add_step(b, "FETCH 1:* FLAGS", RESP_IMAP_TAGGED, ERR_FETCH, false);
			for (unsigned i = 0; i < (b->fetches > 0 ? b->fetches : 1); i++)
				bench_add_step(b, "FETCH 1 BODY[]", RESP_IMAP_TAGGED, ERR_FETCH, true);
		}
		bench_add_step(b, "LOGOUT", RESP_IMAP_TAGGED, ERR_LOGOUT, false);
	} else {
		bench_add_step(b, NULL, RESP_POP_OK, ERR_GREETING, false);
		bench_add_starttls(b);
		if (b->kind == KIND_IDLE)
			return;
		if (b->kind != KIND_PRELOGIN) {
			bench_add_step(b, bench_own(b, rg_strdup_printf("USER %s", b->user)),
				       RESP_POP_OK, ERR_LOGIN, false);
			bench_add_step(b, bench_own(b, rg_strdup_printf("PASS %s", b->pass)),
				       RESP_POP_OK, ERR_LOGIN, false);
		}
		if (b->kind == KIND_LOGIN_FETCH) {
			bench_add_step(b, "STAT", RESP_POP_OK, ERR_FETCH, false);
			bench_add_step(b, "RETR 1", RESP_POP_MULTI, ERR_FETCH, false);
		}
		bench_add_step(b, "QUIT", RESP_POP_OK, ERR_LOGOUT, false);
	}
}

static void client_scan_reset(struct client *c)
{
	c->head_len = 0;
	c->line_cr = false;
	c->brace = 0;
	c->brace_val = 0;
	c->literal_left = 0;
	c->saw_literal = false;
	c->multi_body = false;
}

static void bench_count_error(struct bench *b, enum err e)
{
	b->errors++;
	b->err_by[e]++;
}

/* Shut the socket so whatever is in flight completes; the slot and fd are
 * released in client_maybe_release() once nothing is in flight. */
static void client_close(struct bench *b, struct client *c)
{
	if (c->state == CONN_FREE || c->state == CONN_CLOSING)
		return;
	if (c->state == CONN_HOLD && b->held > 0)
		b->held--;
	c->state = CONN_CLOSING;
	(void)shutdown(c->fd, SHUT_RDWR);
	ring_cancel_fd(b->ring, c->fd);
}

static void client_fail(struct bench *b, struct client *c, enum err e)
{
	if (c->state == CONN_CLOSING || c->state == CONN_FREE)
		return;
	if (b->kind == KIND_IDLE && c->state == CONN_ACTIVE)
		b->connecting--;
	bench_count_error(b, e);
	client_close(b, c);
}

static void bench_record_latency(struct bench *b, uint64_t ns)
{
	if (b->lat_n == b->lat_alloc) {
		b->lat_alloc = b->lat_alloc == 0 ? 65536 : b->lat_alloc * 2;
		b->lat_us = rg_realloc(b->lat_us, b->lat_alloc * sizeof(*b->lat_us));
	}
	uint64_t us = ns / 1000;
	b->lat_us[b->lat_n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void bytes_reset(struct bytes *bf)
{
	bf->off = bf->len = 0;
}

static void bytes_append(struct bytes *bf, const void *p, size_t n)
{
	if (bf->off == bf->len)
		bytes_reset(bf);
	if (bf->len + n > bf->alloc && bf->off > 0) {
		memmove(bf->data, bf->data + bf->off, bf->len - bf->off);
		bf->len -= bf->off;
		bf->off = 0;
	}
	if (bf->len + n > bf->alloc) {
		size_t a = bf->alloc == 0 ? 1024 : bf->alloc;
		while (a < bf->len + n)
			a *= 2;
		bf->data = rg_realloc(bf->data, a);
		bf->alloc = a;
	}
	memcpy(bf->data + bf->len, p, n);
	bf->len += n;
}

/* Hand tx to the ring unless a send is in flight; its completion calls this
 * again. Swapping the two buffers keeps txf still while tx keeps growing. */
static void client_flush(struct bench *b, struct client *c)
{
	if (c->send_busy || c->tx.len == c->tx.off || c->state == CONN_CLOSING)
		return;
	struct bytes t = c->txf;
	c->txf = c->tx;
	c->tx = t;
	bytes_reset(&c->tx);
	c->send_busy = true;
	ring_send(b->ring, c->slot, c->fd, c->txf.data + c->txf.off, c->txf.len - c->txf.off);
}

static void client_write(struct bench *b, struct client *c, const char *p, size_t n)
{
	if (c->ssl != NULL) {
		/* the send callback takes everything, so a write is whole */
		if (wolfSSL_write(c->ssl, p, (int)n) != (int)n) {
			client_fail(b, c, ERR_TLS);
			return;
		}
	} else {
		bytes_append(&c->tx, p, n);
	}
	client_flush(b, c);
}

static void client_send_step(struct bench *b, struct client *c)
{
	const struct step *s = &b->steps[c->step];
	char cmd[CMD_MAX];
	int n;
	if (b->proto == PROTO_IMAP)
		n = snprintf(cmd, sizeof(cmd), "a%u %s\r\n", c->step, s->cmd);
	else
		n = snprintf(cmd, sizeof(cmd), "%s\r\n", s->cmd);
	if (n < 0 || (size_t)n >= sizeof(cmd))
		log_fatal("command too long");
	client_write(b, c, cmd, (size_t)n);
}

/* wolfSSL I/O: only the client's buffers, never the socket */
static int tls_io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	struct client *c = ctx;
	(void)ssl;
	size_t have = c->rx.len - c->rx.off;
	if (have == 0)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	size_t n = have < (size_t)sz ? have : (size_t)sz;
	memcpy(buf, c->rx.data + c->rx.off, n);
	c->rx.off += n;
	return (int)n;
}

static int tls_io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	struct client *c = ctx;
	(void)ssl;
	bytes_append(&c->tx, buf, (size_t)sz);
	return sz;
}

static void client_hold(struct bench *b, struct client *c)
{
	c->state = CONN_HOLD;
	b->connecting--;
	b->held++;
}

/* the next step after a completed one (or after the handshake) */
static void client_next(struct bench *b, struct client *c)
{
	if (c->step == b->nsteps) {
		if (b->kind == KIND_IDLE)
			client_hold(b, c);
		else
			c->state = CONN_WAIT_EOF;
		return;
	}
	if (b->steps[c->step].cmd != NULL)
		client_send_step(b, c);
}

static void client_tls_handshake(struct bench *b, struct client *c)
{
	int r = wolfSSL_connect(c->ssl);
	if (r != WOLFSSL_SUCCESS) {
		int e = wolfSSL_get_error(c->ssl, r);
		if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) {
			client_flush(b, c);
			return;
		}
		client_fail(b, c, ERR_TLS);
		return;
	}
	c->handshaking = false;
	b->handshakes++;
	b->tls_version = wolfSSL_get_version(c->ssl);
	b->tls_group = wolfSSL_get_curve_name(c->ssl);
	if (wolfSSL_session_reused(c->ssl))
		b->resumed++;
	client_flush(b, c);
	client_next(b, c);
}

static void client_tls_begin(struct bench *b, struct client *c)
{
	c->ssl = wolfSSL_new(b->tls_ctx);
	if (c->ssl == NULL)
		log_fatal("wolfSSL_new failed");
	wolfSSL_SetIOReadCtx(c->ssl, c);
	wolfSSL_SetIOWriteCtx(c->ssl, c);
	/* the key share of --group's group, not wolfSSL's default one */
	if (b->group != 0 && wolfSSL_UseKeyShare(c->ssl, (word16)b->group) != WOLFSSL_SUCCESS)
		log_fatal("cannot make a key share for group %d", b->group);
	if (b->resume && c->sess != NULL &&
	    wolfSSL_set_session(c->ssl, c->sess) == WOLFSSL_SUCCESS)
		b->resume_offered++;
	c->handshaking = true;
	client_tls_handshake(b, c);
}

/* the response to the current step is complete and was OK */
static void client_step_done(struct bench *b, struct client *c)
{
	bool starttls = b->steps[c->step].starttls;
	client_scan_reset(c);
	c->step++;
	if (starttls)
		client_tls_begin(b, c);
	else
		client_next(b, c);
}

/* One complete logical response line (head holds its start). Returns false
 * when the session failed. */
static bool client_line(struct bench *b, struct client *c)
{
	const struct step *s = &b->steps[c->step];
	const char *h = c->head;
	size_t n = c->head_len;

	switch (s->resp) {
	case RESP_IMAP_GREETING:
		if (n >= 4 && memcmp(h, "* OK", 4) == 0) {
			client_step_done(b, c);
			return true;
		}
		client_fail(b, c, s->err);
		return false;
	case RESP_IMAP_TAGGED: {
		if (n >= 2 && h[0] == '*' && h[1] == ' ')
			return true;	/* untagged data (BYE included) */
		char tag[16];
		int tl = snprintf(tag, sizeof(tag), "a%u ", c->step);
		if (n < (size_t)tl || memcmp(h, tag, (size_t)tl) != 0) {
			client_fail(b, c, ERR_PROTOCOL);
			return false;
		}
		if (n >= (size_t)tl + 2 && memcmp(h + tl, "OK", 2) == 0 &&
		    (!s->need_literal || c->saw_literal)) {
			client_step_done(b, c);
			return true;
		}
		client_fail(b, c, s->err);
		return false;
	}
	case RESP_POP_OK:
	case RESP_POP_MULTI:
		if (c->multi_body) {
			if (n == 1 && h[0] == '.')
				client_step_done(b, c);
			return true;
		}
		if (n >= 3 && memcmp(h, "+OK", 3) == 0) {
			if (s->resp == RESP_POP_MULTI) {
				c->multi_body = true;
				return true;
			}
			client_step_done(b, c);
			return true;
		}
		client_fail(b, c, s->err);
		return false;
	}
	return false;
}

static void client_feed(struct bench *b, struct client *c, const uint8_t *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		if (c->state != CONN_ACTIVE || c->handshaking) {
			/* bytes after the final response, while holding, or
			 * plaintext after the STARTTLS answer (an injection) */
			client_fail(b, c, ERR_PROTOCOL);
			return;
		}
		if (c->literal_left > 0) {
			size_t take = len - i < c->literal_left ? len - i : (size_t)c->literal_left;
			c->literal_left -= take;
			i += take;
			continue;
		}
		char ch = (char)p[i++];
		if (ch == '\n') {
			if (!c->line_cr) {
				client_fail(b, c, ERR_PROTOCOL);
				return;
			}
			if (b->proto == PROTO_IMAP && c->brace == 2) {
				/* "{N}\r\n": N bytes of literal, then the
				 * same logical line goes on */
				c->literal_left = c->brace_val;
				c->saw_literal = true;
				c->brace = 0;
				c->line_cr = false;
				continue;
			}
			if (!client_line(b, c))
				return;
			c->head_len = 0;
			c->line_cr = false;
			c->brace = 0;
			continue;
		}
		if (c->line_cr) {
			/* a CR inside a line: keep it as data */
			if (c->head_len < LINE_HEAD)
				c->head[c->head_len++] = '\r';
			c->line_cr = false;
		}
		if (ch == '\r') {
			c->line_cr = true;
			continue;
		}
		if (c->head_len < LINE_HEAD)
			c->head[c->head_len++] = ch;
		if (ch == '{') {
			c->brace = 1;
			c->brace_val = 0;
		} else if (c->brace == 1 && ch >= '0' && ch <= '9') {
			if (c->brace_val > (1ull << 40)) {
				client_fail(b, c, ERR_PROTOCOL);
				return;
			}
			c->brace_val = c->brace_val * 10 + (uint64_t)(ch - '0');
		} else if (c->brace == 1 && ch == '}') {
			c->brace = 2;
		} else {
			c->brace = 0;
		}
	}
}

/* ciphertext from the ring: handshake, then every plaintext byte to the
 * response scanner */
static void client_tls_input(struct bench *b, struct client *c, const uint8_t *p, size_t n)
{
	if (c->rx.len - c->rx.off + n > RX_MAX) {
		client_fail(b, c, ERR_TLS);
		return;
	}
	bytes_append(&c->rx, p, n);
	if (c->handshaking) {
		client_tls_handshake(b, c);
		if (c->handshaking || c->state == CONN_CLOSING)
			return;
	}
	for (;;) {
		uint8_t buf[16384];
		int r = wolfSSL_read(c->ssl, buf, sizeof(buf));
		if (r > 0) {
			client_feed(b, c, buf, (size_t)r);
			if (c->state == CONN_CLOSING)
				return;
			continue;
		}
		int e = wolfSSL_get_error(c->ssl, r);
		if (e == WOLFSSL_ERROR_ZERO_RETURN) {
			/* the server's close_notify: answer with ours, as a TLS
			 * client must (RFC 8446 6.1); a server that waits for it
			 * (nginx) closes then. The TCP EOF ends the session. */
			(void)wolfSSL_shutdown(c->ssl);
			c->tls_closed = true;
			break;
		}
		if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
			break;
		client_fail(b, c, ERR_TLS);
		return;
	}
	client_flush(b, c);
}

static bool bench_may_start(const struct bench *b)
{
	if (b->stopping || b->draining || interrupted)
		return false;
	if (b->max_sessions != 0 && b->started >= b->max_sessions)
		return false;
	return true;
}

static void client_start(struct bench *b, struct client *c)
{
	uint64_t t = now_ns();
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	b->started++;
	c->start_ns = t;
	c->deadline_ns = t + (uint64_t)(b->timeout * 1e9);
	c->step = 0;
	client_scan_reset(c);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE)
			log_fatal("socket: %s (raise the fd limit)", strerror(errno));
		bench_count_error(b, ERR_CONNECT);
		return;
	}
	if (b->src_addrs > 1 || b->src_first != 0) {
		/* spread over src_first .. src_first + src_addrs - 1: each
		 * source address has its own 64k ports */
		int one = 1;
		struct sockaddr_in src = { .sin_family = AF_INET };
		uint32_t first = b->src_first != 0 ? b->src_first : 0x7f000001u;
		unsigned n = b->src_addrs > 1 ? b->src_addrs : 1;
		src.sin_addr.s_addr = htonl(first + c->idx % n);
		(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
			close(fd);
			bench_count_error(b, ERR_CONNECT);
			return;
		}
	}
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(b->port),
				   .sin_addr = b->dst };
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) {
		close(fd);
		bench_count_error(b, ERR_CONNECT);
		return;
	}
	c->fd = fd;
	c->slot = ring_slot_alloc(b->ring, &c->ro);
	c->state = CONN_ACTIVE;
	b->live++;
	if (b->kind == KIND_IDLE)
		b->connecting++;
	ring_recv(b->ring, c->slot, fd);
	if (b->transport == TR_TLS)
		client_tls_begin(b, c);
}

/* after close: release the slot and fd when nothing is in flight, then let
 * the client start its next session */
static void client_maybe_release(struct bench *b, struct client *c)
{
	if (c->state != CONN_CLOSING || ring_slot_inflight(b->ring, c->slot) != 0)
		return;
	ring_slot_free(b->ring, c->slot);
	if (c->ssl != NULL) {
		if (b->resume && !c->handshaking) {
			WOLFSSL_SESSION *s = wolfSSL_get1_session(c->ssl);
			if (s != NULL) {
				if (c->sess != NULL)
					wolfSSL_SESSION_free(c->sess);
				c->sess = s;
			}
		}
		wolfSSL_free(c->ssl);
		c->ssl = NULL;
	}
	c->handshaking = false;
	c->tls_closed = false;
	c->send_busy = false;
	bytes_reset(&c->tx);
	bytes_reset(&c->txf);
	bytes_reset(&c->rx);
	close(c->fd);
	c->fd = -1;
	c->state = CONN_FREE;
	b->live--;
	if (b->kind != KIND_IDLE)
		b->runq[b->runq_n++] = c->idx;
}

static void client_session_ok(struct bench *b, struct client *c)
{
	b->completed++;
	bench_record_latency(b, now_ns() - c->start_ns);
	c->state = CONN_CLOSING;
	/* recv has ended with EOF; a send may still be in flight */
	client_maybe_release(b, c);
}

static void bench_handler(struct ring *ring, const struct ring_event *ev, void *ctx)
{
	struct bench *b = ctx;
	(void)ring;
	if (ev->op == RING_OP_TICK)
		return;		/* the main loop checks deadlines each turn */
	struct client *c = RING_OWNER(ev->owner, struct client, ro);

	if (c->state == CONN_CLOSING || c->state == CONN_FREE) {
		client_maybe_release(b, c);
		return;
	}
	switch (ev->op) {
	case RING_OP_RECV:
		if (ev->res > 0) {
			if (c->ssl != NULL)
				client_tls_input(b, c, ev->data, (size_t)ev->res);
			else
				client_feed(b, c, ev->data, (size_t)ev->res);
			/* keep reading until EOF, holding included: a server
			 * that closes a held connection is an error */
			if (c->state != CONN_CLOSING && ev->rearm)
				ring_recv(b->ring, c->slot, c->fd);
		} else if (ev->res == 0) {
			if (c->state == CONN_WAIT_EOF)
				client_session_ok(b, c);
			else
				client_fail(b, c, ERR_EOF);
		} else if (ev->res == -ENOBUFS) {
			ring_recv(b->ring, c->slot, c->fd);
		} else if (c->tls_closed && c->state == CONN_WAIT_EOF &&
			   (ev->res == -ECONNRESET || ev->res == -EPIPE)) {
			client_session_ok(b, c);
		} else if (ev->res == -ECONNREFUSED ||
			   (ev->res == -ECONNRESET && c->step == 0 && c->head_len == 0)) {
			client_fail(b, c, ERR_CONNECT);
		} else {
			client_fail(b, c, ERR_RESET);
		}
		break;
	case RING_OP_SEND:
		if (ev->res <= 0 && c->tls_closed && c->state == CONN_WAIT_EOF) {
			/* our close_notify to a server that has closed: the
			 * receive side ends the session */
			c->send_busy = false;
			bytes_reset(&c->txf);
		} else if (ev->res <= 0) {
			client_fail(b, c, ev->res == -ECONNREFUSED ? ERR_CONNECT : ERR_RESET);
		} else {
			c->txf.off += (size_t)ev->res;
			if (c->txf.off < c->txf.len) {
				ring_send(b->ring, c->slot, c->fd, c->txf.data + c->txf.off,
					  c->txf.len - c->txf.off);
			} else {
				c->send_busy = false;
				bytes_reset(&c->txf);
				client_flush(b, c);
			}
		}
		break;
	default:
		break;
	}
	client_maybe_release(b, c);
}

static void bench_check_timeouts(struct bench *b, uint64_t t)
{
	for (unsigned i = 0; i < b->clients; i++) {
		struct client *c = &b->cl[i];
		if ((c->state == CONN_ACTIVE || c->state == CONN_WAIT_EOF) && t > c->deadline_ns)
			client_fail(b, c, ERR_TIMEOUT);
	}
}

static void raise_nofile(unsigned need)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur >= need)
		return;
	if (rl.rlim_max < need) {
		struct rlimit want = { need, need };
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < need)
		log_warning("fd limit %llu is below the %u this run needs",
			    (unsigned long long)rl.rlim_cur, need);
}

static void bench_tls_init(struct bench *b)
{
	if (b->transport == TR_PLAIN)
		return;
	if (wolfSSL_Init() != WOLFSSL_SUCCESS)
		log_fatal("wolfSSL_Init failed");
	b->tls_ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
	if (b->tls_ctx == NULL)
		log_fatal("wolfSSL_CTX_new failed");
	if (b->ca_file != NULL) {
		if (wolfSSL_CTX_load_verify_locations(b->tls_ctx, b->ca_file, NULL) != WOLFSSL_SUCCESS)
			log_fatal("cannot load CA file %s", b->ca_file);
		wolfSSL_CTX_set_verify(b->tls_ctx, WOLFSSL_VERIFY_PEER, NULL);
	} else {
		/* loopback servers with their self-signed certificates */
		wolfSSL_CTX_set_verify(b->tls_ctx, WOLFSSL_VERIFY_NONE, NULL);
	}
	/* TLS 1.2 resumes by ticket (a session cache is per process on
	 * both servers); TLS 1.3 by the tickets the server sends */
	(void)wolfSSL_CTX_UseSessionTicket(b->tls_ctx);
	if (b->group != 0 && wolfSSL_CTX_set_groups(b->tls_ctx, &b->group, 1) != WOLFSSL_SUCCESS)
		log_fatal("cannot offer only group %d", b->group);
	wolfSSL_CTX_SetIORecv(b->tls_ctx, tls_io_recv);
	wolfSSL_CTX_SetIOSend(b->tls_ctx, tls_io_send);
}

static void bench_free(struct bench *b)
{
	for (unsigned i = 0; i < b->clients; i++) {
		struct client *c = &b->cl[i];
		if (c->sess != NULL)
			wolfSSL_SESSION_free(c->sess);
		rg_free(c->tx.data);
		rg_free(c->txf.data);
		rg_free(c->rx.data);
	}
	for (unsigned i = 0; i < b->nowned; i++)
		rg_free(b->owned[i]);
	if (b->tls_ctx != NULL) {
		wolfSSL_CTX_free(b->tls_ctx);
		wolfSSL_Cleanup();
	}
	rg_free(b->cl);
	rg_free(b->runq);
	rg_free(b->lat_us);
	ring_destroy(b->ring);
}

int main(int argc, char **argv)
{
	struct bench bench = {
		.proto = PROTO_IMAP, .kind = KIND_PRELOGIN, .clients = 1,
		.duration = 5, .timeout = 10, .connect_window = 256,
	};
	struct bench *b = &bench;
	b->dst.s_addr = htonl(INADDR_LOOPBACK);
	log_init("rgbench");
	bench_parse_args(b, argc, argv);
	bench_script(b);
	bench_tls_init(b);
	raise_nofile(b->clients + 64);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGUSR1, on_release);

	struct ring_config rc = {
		.entries = 1024, .buf_count = 4096, .buf_size = 4096,
		.handler = bench_handler, .ctx = b,
	};
	int ret = ring_create(&rc, &b->ring);
	if (ret < 0)
		log_fatal("io_uring: %s", strerror(-ret));
	b->cl = rg_calloc(b->clients, sizeof(*b->cl));
	for (unsigned i = 0; i < b->clients; i++) {
		b->cl[i].idx = i;
		b->cl[i].fd = -1;
	}
	b->tick_slot = ring_slot_alloc(b->ring, &b->ro);
	ring_tick_start(b->ring, b->tick_slot, TICK_MS);

	b->runq = rg_malloc(b->clients * sizeof(*b->runq));
	if (b->kind != KIND_IDLE)
		for (unsigned i = 0; i < b->clients; i++)
			b->runq[b->runq_n++] = b->clients - 1 - i;

	b->t0 = now_ns();
	/* idle: the duration counts from the moment all are held; connecting
	 * may take up to 120 s, or 5 ms per connection for big K (TLS) */
	uint64_t connect_ns = 120ull * 1000000000ull;
	if ((uint64_t)b->clients * 5000000ull > connect_ns)
		connect_ns = (uint64_t)b->clients * 5000000ull;
	b->deadline = b->t0 + (uint64_t)(b->duration * 1e9) +
		      (b->kind == KIND_IDLE ? connect_ns : 0);
	uint64_t end = 0, last_scan = b->t0;
	unsigned next_idle = 0;
	for (;;) {
		uint64_t t = now_ns();
		bool idle_failed = b->kind == KIND_IDLE && !b->ready_printed &&
				   next_idle == b->clients && b->connecting == 0 &&
				   b->held < b->clients;
		if (b->drain && b->kind != KIND_IDLE && !b->draining && !interrupted &&
		    t >= b->deadline) {
			/* no new sessions; the loop ends when the last one in
			 * flight completed (or timed out) */
			b->draining = true;
		} else if (!b->stopping &&
			   (interrupted || (!b->draining && (t >= b->deadline || idle_failed ||
						  released)))) {
			b->stopping = true;
			end = t;
			b->held_final = b->held;
			for (unsigned i = 0; i < b->clients; i++)
				/* cut off: neither a session nor an error */
				client_close(b, &b->cl[i]);
		}
		if (b->kind == KIND_IDLE) {
			/* open at most connect_window connections at a time so
			 * the server's accept queue does not overflow */
			while (!b->stopping && next_idle < b->clients &&
			       b->connecting < b->connect_window)
				client_start(b, &b->cl[next_idle++]);
			if (!b->ready_printed && b->held == b->clients) {
				b->ready_printed = true;
				b->hold_since = now_ns();
				/* run.py measures server memory now */
				printf("{\"event\":\"idle_ready\",\"held\":%u,\"connect_s\":%.3f}\n",
				       b->held, (double)(b->hold_since - b->t0) / 1e9);
				fflush(stdout);
				b->deadline = b->hold_since + (uint64_t)(b->duration * 1e9);
			}
		} else {
			/* each queued client once per turn: one whose connect
			 * failed at once retries next turn, not in a tight loop */
			unsigned n = b->runq_n;
			while (n-- > 0 && b->runq_n > 0 && bench_may_start(b)) {
				struct client *c = &b->cl[b->runq[--b->runq_n]];
				client_start(b, c);
				if (c->state == CONN_FREE)
					b->runq[b->runq_n++] = c->idx;
			}
		}
		if (b->stopping && b->live == 0)
			break;
		if (!b->stopping && b->kind != KIND_IDLE && b->live == 0 && !bench_may_start(b)) {
			end = now_ns();
			break;
		}
		if (t - last_scan >= TICK_MS * 1000000ull) {
			bench_check_timeouts(b, t);
			last_scan = t;
		}
		/* 10 s, and a second more per 100 connections: at the end of
		 * the C100K run (7 processes of 14,286) the servers took over
		 * 38 s to close 100,000 TLS connections on two busy cores */
		if (b->stopping && t - end > (10ull + b->clients / 100) * 1000000000ull) {
			/* report what happened rather than die without a word */
			log_error("%u connections did not close within %u s of the end", b->live,
				  10 + b->clients / 100);
			for (unsigned i = 0; i < b->live; i++)
				bench_count_error(b, ERR_CLOSE);
			break;
		}
		ret = ring_run(b->ring, 1);
		if (ret < 0 && ret != -EINTR)
			log_fatal("ring: %s", strerror(-ret));
	}
	double elapsed = (double)(end - b->t0) / 1e9;
	double hold_s = b->hold_since != 0 ? (double)(end - b->hold_since) / 1e9 : 0;
	bool ok = bench_report(b, elapsed, hold_s);
	ring_tick_stop(b->ring);
	ring_run(b->ring, 0);
	int status = ok ? 0 : 1;
	bench_free(b);
	return status;
}
