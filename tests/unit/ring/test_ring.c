/* test_ring.c — the ring with real sockets: echo through multishot recv and
 * the buffer ring, multishot accept, large (partial) sends, cancel and
 * waiting, stale generations, ENOBUFS recovery, the tick; every test in each
 * setup mode (DEFER_TASKRUN, and the COOP_TASKRUN and plain fallbacks an
 * older kernel gives). */
#include "ring/ring.h"
#include "lib/alloc.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EV 256

/* the setup mode the tests of the current group ask for */
static enum ring_setup test_setup;
static const char *const setup_names[] = { "defer_taskrun", "coop_taskrun", "plain" };

/* the mode asked for, or (kernel without it) a later fallback */
static void assert_mode(const struct ring *ring)
{
	const char *mode = ring_mode(ring);
	bool ok = false;
	for (unsigned i = test_setup; i <= RING_SETUP_PLAIN; i++)
		ok |= strcmp(mode, setup_names[i]) == 0;
	assert_true(ok);
	/* this is the mode on any kernel that has it: the fallbacks */
	if (test_setup != RING_SETUP_DEFER_TASKRUN)
		assert_string_equal(mode, setup_names[test_setup]);
}

struct rec {
	struct ring_owner ro; /* the slots' owner (the handler dispatches) */
	struct ring_event ev[MAX_EV];
	unsigned n;
	uint8_t data[1 << 16];
	size_t data_len;
	bool auto_rearm;
	int fd; /* for auto re-arm / echo */
	bool echo;
};

static void handler(struct ring *ring, const struct ring_event *ev, void *ctx)
{
	struct rec *r = ctx;
	assert_true(r->n < MAX_EV);
	r->ev[r->n] = *ev;
	r->ev[r->n].data = NULL;
	r->n++;
	if (ev->op == RING_OP_RECV && ev->res > 0) {
		assert_non_null(ev->data);
		assert_true(r->data_len + (size_t)ev->res <= sizeof(r->data));
		memcpy(r->data + r->data_len, ev->data, (size_t)ev->res);
		if (r->echo)
			ring_send(ring, ev->slot, r->fd, r->data + r->data_len, (size_t)ev->res);
		r->data_len += (size_t)ev->res;
	}
	if (ev->rearm && r->auto_rearm && ev->op == RING_OP_RECV)
		ring_recv(ring, ev->slot, r->fd);
}

static struct ring *mkring(struct rec *r, unsigned bufs, unsigned bufsize)
{
	struct ring_config cfg = { .entries = 64, .buf_count = bufs, .buf_size = bufsize,
				   .handler = handler, .ctx = r, .setup = test_setup };
	struct ring *ring;
	assert_int_equal(ring_create(&cfg, &ring), 0);
	assert_mode(ring);
	return ring;
}

static void run_until(struct ring *ring, struct rec *r, unsigned nev)
{
	for (int i = 0; i < 1000 && r->n < nev; i++)
		assert_true(ring_run(ring, 1) >= 0);
	assert_true(r->n >= nev);
}

static void test_echo(void **state)
{
	(void)state;
	static struct rec r;
	memset(&r, 0, sizeof(r));
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct ring *ring = mkring(&r, 8, 64);
	r.fd = sv[0];
	r.echo = true;
	r.auto_rearm = true;
	uint32_t slot = ring_slot_alloc(ring, &r.ro);
	ring_recv(ring, slot, sv[0]);
	assert_int_equal(ring_run(ring, 0), 0);

	for (int round = 0; round < 3; round++) {
		char msg[40], back[40];
		snprintf(msg, sizeof(msg), "hello %d", round);
		size_t len = strlen(msg);
		assert_int_equal(write(sv[1], msg, len), (ssize_t)len);
		unsigned before = r.n;
		run_until(ring, &r, before + 1); /* recv */
		assert_int_equal(r.ev[before].op, RING_OP_RECV);
		assert_true(r.ev[before].more);
		run_until(ring, &r, before + 2); /* send */
		assert_int_equal(r.ev[before + 1].op, RING_OP_SEND);
		assert_int_equal(r.ev[before + 1].res, (int)len);
		assert_int_equal(read(sv[1], back, sizeof(back)), (ssize_t)len);
		assert_memory_equal(back, msg, len);
	}
	/* recv still armed: 1 in flight; EOF ends it */
	assert_int_equal(ring_slot_inflight(ring, slot), 1);
	close(sv[1]);
	unsigned before = r.n;
	run_until(ring, &r, before + 1);
	assert_int_equal(r.ev[before].res, 0);
	assert_false(r.ev[before].more);
	assert_false(r.ev[before].rearm);
	assert_int_equal(ring_slot_inflight(ring, slot), 0);
	ring_slot_free(ring, slot);
	close(sv[0]);
	ring_destroy(ring);
}

static int listen_tcp(uint16_t *port_r)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 16), 0);
	socklen_t sl = sizeof(sin);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	*port_r = ntohs(sin.sin_port);
	return fd;
}

static int connect_tcp(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

static void test_accept(void **state)
{
	(void)state;
	static struct rec r;
	memset(&r, 0, sizeof(r));
	struct ring *ring = mkring(&r, 8, 64);
	uint16_t port;
	int lfd = listen_tcp(&port);
	uint32_t slot = ring_slot_alloc(ring, &r.ro);
	ring_accept(ring, slot, lfd, true);
	int c[5];
	for (int i = 0; i < 5; i++)
		c[i] = connect_tcp(port);
	run_until(ring, &r, 5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(r.ev[i].op, RING_OP_ACCEPT);
		assert_true(r.ev[i].res >= 0);
		assert_true(r.ev[i].more);
		/* accepted sockets are blocking (workers inherit them) */
		assert_int_equal(fcntl(r.ev[i].res, F_GETFL) & O_NONBLOCK, 0);
		close(r.ev[i].res);
		close(c[i]);
	}
	assert_int_equal(ring_slot_inflight(ring, slot), 1);
	/* stop accepting: cancel and wait for the final completion */
	ring_cancel(ring, slot, RING_OP_ACCEPT);
	run_until(ring, &r, 6);
	assert_int_equal(r.ev[5].res, -ECANCELED);
	assert_false(r.ev[5].more);
	assert_int_equal(ring_slot_inflight(ring, slot), 0);

	/* single-shot: exactly one connection */
	ring_accept(ring, slot, lfd, false);
	c[0] = connect_tcp(port);
	c[1] = connect_tcp(port);
	run_until(ring, &r, 7);
	assert_true(r.ev[6].res >= 0);
	assert_false(r.ev[6].more);
	assert_false(r.ev[6].rearm);
	assert_int_equal(ring_slot_inflight(ring, slot), 0);
	assert_int_equal(ring_run(ring, 0), 0);
	assert_int_equal(r.n, 7);
	close(r.ev[6].res);
	close(c[0]);
	close(c[1]);
	close(lfd);
	ring_destroy(ring);
}

struct reader {
	int fd;
	size_t total;
	uint32_t sum;
};

static void *reader_thread(void *arg)
{
	struct reader *rd = arg;
	uint8_t buf[4096];
	ssize_t n;
	while ((n = read(rd->fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++)
			rd->sum = rd->sum * 31 + buf[i];
		rd->total += (size_t)n;
	}
	return NULL;
}

static void test_large_send(void **state)
{
	(void)state;
	static struct rec r;
	memset(&r, 0, sizeof(r));
	struct ring *ring = mkring(&r, 8, 64);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	int sz = 4096;
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
	/* non-blocking: the kernel then completes a send partially rather
	 * than waiting for all of it */
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	size_t len = 4u << 20;
	uint8_t *big = rg_malloc(len);
	uint32_t sum = 0;
	for (size_t i = 0; i < len; i++) {
		big[i] = (uint8_t)(i * 7 + i / 4096);
		sum = sum * 31 + big[i];
	}
	struct reader rd = { .fd = sv[1] };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, reader_thread, &rd), 0);
	uint32_t slot = ring_slot_alloc(ring, &r.ro);
	size_t off = 0;
	unsigned sends = 0, partial = 0;
	while (off < len) {
		r.n = 0;
		ring_send(ring, slot, sv[0], big + off, len - off);
		run_until(ring, &r, 1);
		assert_int_equal(r.ev[0].op, RING_OP_SEND);
		assert_true(r.ev[0].res > 0);
		if ((size_t)r.ev[0].res < len - off)
			partial++;
		off += (size_t)r.ev[0].res;
		sends++;
	}
	close(sv[0]);
	pthread_join(th, NULL);
	assert_int_equal(rd.total, len);
	assert_int_equal(rd.sum, sum);
	(void)partial;
	assert_int_equal(ring_slot_inflight(ring, slot), 0);
	close(sv[1]);
	rg_free(big);
	ring_destroy(ring);
}

static void test_cancel_wait(void **state)
{
	(void)state;
	static struct rec r;
	memset(&r, 0, sizeof(r));
	struct ring *ring = mkring(&r, 8, 64);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	uint32_t slot = ring_slot_alloc(ring, &r.ro);
	ring_recv(ring, slot, sv[0]);
	ring_poll(ring, slot, sv[0]);
	assert_int_equal(ring_run(ring, 0), 0);
	assert_int_equal(ring_slot_inflight(ring, slot), 2);
	ring_cancel(ring, slot, RING_OP_RECV);
	run_until(ring, &r, 1);
	assert_int_equal(r.ev[0].op, RING_OP_RECV);
	assert_int_equal(r.ev[0].res, -ECANCELED);
	assert_false(r.ev[0].rearm);
	assert_int_equal(ring_slot_inflight(ring, slot), 1);
	/* cancel by fd catches the rest */
	ring_cancel_fd(ring, sv[0]);
	run_until(ring, &r, 2);
	assert_int_equal(r.ev[1].op, RING_OP_POLL);
	assert_int_equal(r.ev[1].res, -ECANCELED);
	assert_int_equal(ring_slot_inflight(ring, slot), 0);
	/* cancelling what is not there is harmless, sends and delivers
	 * nothing */
	uint64_t cancels = ring_get_stats(ring)->cancels;
	ring_cancel(ring, slot, RING_OP_SEND);
	ring_cancel(ring, slot, RING_OP_RECV);
	assert_int_equal(ring_get_stats(ring)->cancels, cancels);
	assert_int_equal(ring_run(ring, 0), 0);
	ring_slot_free(ring, slot);
	ring_close(ring, sv[0]);
	assert_int_equal(ring_run(ring, 0), 0);
	/* the ring closed it: the peer sees EOF */
	char c;
	assert_int_equal(read(sv[1], &c, 1), 0);
	close(sv[1]);
	ring_destroy(ring);
}

/* Large buffers: one receive takes more than a small buffer holds, the
 * bytes arrive whole and in order, small receives still use the small
 * buffers, and cancelling RING_OP_RECV ends a large receive too. */
static void test_recv_large(void **state)
{
	(void)state;
	static struct rec r;
	memset(&r, 0, sizeof(r));
	struct ring_config cfg = { .entries = 64, .buf_count = 8, .buf_size = 64,
				   .large_buf_count = 4, .large_buf_size = 16384,
				   .handler = handler, .ctx = &r, .setup = test_setup };
	struct ring *ring;
	assert_int_equal(ring_create(&cfg, &ring), 0);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	uint8_t msg[40000];
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 7 + 3);
	/* all of it is queued before the receive starts */
	assert_int_equal(write(sv[1], msg, sizeof(msg)), (ssize_t)sizeof(msg));
	uint32_t slot = ring_slot_alloc(ring, &r.ro);
	ring_recv_large(ring, slot, sv[0]);
	for (int i = 0; i < 1000 && r.data_len < sizeof(msg); i++)
		assert_true(ring_run(ring, 1) >= 0);
	assert_int_equal(r.data_len, sizeof(msg));
	assert_memory_equal(r.data, msg, sizeof(msg));
	int biggest = 0;
	for (unsigned i = 0; i < r.n; i++) {
		assert_int_equal(r.ev[i].op, RING_OP_RECV);
		if (r.ev[i].res > biggest)
			biggest = r.ev[i].res;
	}
	assert_true(biggest > 64);
	assert_true(biggest <= 16384);
	/* cancel of RING_OP_RECV reaches the large receive */
	ring_cancel(ring, slot, RING_OP_RECV);
	unsigned before = r.n;
	while (ring_slot_inflight(ring, slot) > 0)
		assert_true(ring_run(ring, 1) >= 0);
	assert_int_equal(r.ev[r.n - 1].res, -ECANCELED);
	assert_true(r.n > before);
	/* a small receive on the same ring: at most a small buffer each */
	r.n = 0;
	r.data_len = 0;
	r.auto_rearm = true; /* 8 small buffers hold less than 1000 bytes */
	r.fd = sv[0];
	assert_int_equal(write(sv[1], msg, 1000), 1000);
	ring_recv(ring, slot, sv[0]);
	for (int i = 0; i < 1000 && r.data_len < 1000; i++)
		assert_true(ring_run(ring, 1) >= 0);
	assert_memory_equal(r.data, msg, 1000);
	for (unsigned i = 0; i < r.n; i++)
		assert_true(r.ev[i].res <= 64);
	ring_cancel(ring, slot, RING_OP_RECV);
	while (ring_slot_inflight(ring, slot) > 0)
		assert_true(ring_run(ring, 1) >= 0);
	/* a single large receive: one completion with one buffer's worth at
	 * most, nothing more until it is issued again */
	assert_int_equal(ring_recv_large_size(ring), 16384);
	r.n = 0;
	r.data_len = 0;
	r.auto_rearm = false;
	assert_int_equal(write(sv[1], msg, sizeof(msg)), (ssize_t)sizeof(msg));
	ring_recv_large_once(ring, slot, sv[0]);
	while (ring_slot_inflight(ring, slot) > 0)
		assert_true(ring_run(ring, 1) >= 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.ev[0].res, 16384);
	assert_false(r.ev[0].more);
	assert_memory_equal(r.data, msg, 16384);
	assert_int_equal(ring_run(ring, 0), 0);
	assert_int_equal(r.n, 1);
	ring_recv_large_once(ring, slot, sv[0]);
	while (ring_slot_inflight(ring, slot) > 0)
		assert_true(ring_run(ring, 1) >= 0);
	assert_int_equal(r.n, 2);
	assert_memory_equal(r.data + 16384, msg + 16384, (size_t)r.ev[1].res);
	ring_slot_free(ring, slot);
	close(sv[0]);
	close(sv[1]);
	ring_destroy(ring);
	/* a large pool must be a power of 2 too */
	struct ring_config bad = { .large_buf_count = 3, .handler = handler };
	assert_int_equal(ring_create(&bad, &ring), -EINVAL);
}

static void test_stale_generation(void **state)
{
	(void)state;
	static struct rec r;
	memset(&r, 0, sizeof(r));
	/* one provided buffer: if the dropped receive kept it, the new
	 * owner's receive below would fail with -ENOBUFS */
	struct ring *ring = mkring(&r, 1, 64);
	int sv[2], rv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	uint32_t slot = ring_slot_alloc(ring, &r.ro);
	ring_poll(ring, slot, sv[0]);
	/* the poll and the receive on two sockets, so that each completes
	 * exactly once (on one socket the receive may take the byte before
	 * the poll looks, and the poll then never fires) */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, rv), 0);
	ring_recv(ring, slot, rv[0]);
	assert_int_equal(ring_run(ring, 0), 0);
	/* free with operations still armed (a bug the generation guards
	 * against), and reuse the slot for someone else */
	ring_slot_free(ring, slot);
	uint32_t slot2 = ring_slot_alloc(ring, &r.ro);
	assert_int_equal(slot2, slot);
	assert_int_equal(write(sv[1], "p", 1), 1);
	assert_int_equal(write(rv[1], "x", 1), 1);
	/* wait for the two completions themselves (ring_run(ring, 1) blocks
	 * until one arrives), not for a clock */
	while (ring_get_stats(ring)->stale_dropped < 2)
		assert_true(ring_run(ring, 1) >= 0);
	assert_int_equal(ring_get_stats(ring)->stale_dropped, 2);
	assert_int_equal(r.n, 0);
	/* the dropped receive returned its buffer: the new owner receives */
	ring_cancel_fd(ring, sv[0]);
	ring_cancel_fd(ring, rv[0]);
	assert_true(ring_run(ring, 0) >= 0);
	r.fd = rv[0];
	ring_recv(ring, slot2, rv[0]);
	assert_int_equal(write(rv[1], "yz", 2), 2);
	run_until(ring, &r, 1);
	assert_int_equal(r.ev[0].op, RING_OP_RECV);
	assert_int_equal(r.ev[0].res, 2);
	assert_memory_equal(r.data, "yz", 2);
	close(sv[0]);
	close(sv[1]);
	close(rv[0]);
	close(rv[1]);
	ring_destroy(ring);
}

static void test_enobufs(void **state)
{
	(void)state;
	static struct rec r;
	memset(&r, 0, sizeof(r));
	/* one 16-byte buffer: a 1000-byte message needs many turns */
	struct ring *ring = mkring(&r, 1, 16);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	r.fd = sv[0];
	r.auto_rearm = true;
	uint32_t slot = ring_slot_alloc(ring, &r.ro);
	uint8_t msg[1000];
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	assert_int_equal(write(sv[1], msg, sizeof(msg)), (ssize_t)sizeof(msg));
	ring_recv(ring, slot, sv[0]);
	for (int i = 0; i < 2000 && r.data_len < sizeof(msg); i++) {
		r.n = 0;
		assert_true(ring_run(ring, 1) >= 0);
	}
	assert_int_equal(r.data_len, sizeof(msg));
	assert_memory_equal(r.data, msg, sizeof(msg));
	assert_true(ring_get_stats(ring)->enobufs > 0);
	close(sv[0]);
	close(sv[1]);
	ring_destroy(ring);
}

static void test_tick(void **state)
{
	(void)state;
	static struct rec r;
	memset(&r, 0, sizeof(r));
	struct ring *ring = mkring(&r, 8, 64);
	uint32_t slot = ring_slot_alloc(ring, &r.ro);
	ring_tick_start(ring, slot, 10);
	run_until(ring, &r, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r.ev[i].op, RING_OP_TICK);
		assert_int_equal(r.ev[i].res, 0);
		assert_true(r.ev[i].more);
	}
	assert_int_equal(ring_slot_inflight(ring, slot), 1);
	ring_tick_stop(ring);
	unsigned n = r.n;
	run_until(ring, &r, n + 1);
	assert_false(r.ev[n].more);
	assert_int_equal(ring_slot_inflight(ring, slot), 0);
	ring_destroy(ring);
}

/* typed dispatch (no ring handler) and the retire path */
struct owned {
	struct ring_owner ro;
	unsigned events, freed;
	int last_res;
	enum ring_op last_op;
	struct ring *ring;
	uint32_t slot;
	bool retire_in_event;
};

static void owned_free(struct ring_owner *o)
{
	struct owned *w = RING_OWNER(o, struct owned, ro);
	w->freed++;
}

static void owned_event(struct ring_owner *o, const struct ring_event *ev)
{
	struct owned *w = RING_OWNER(o, struct owned, ro);
	assert_ptr_equal(ev->owner, o);
	w->events++;
	w->last_op = ev->op;
	w->last_res = ev->res;
	if (w->retire_in_event) {
		ring_slot_retire(w->ring, w->slot, owned_free);
		/* never from inside the call: the caller still uses w */
		assert_int_equal(w->freed, 0);
	}
}

static void test_retire(void **state)
{
	(void)state;
	struct ring_config cfg = { .entries = 64, .buf_count = 8, .buf_size = 64,
				   .setup = test_setup };
	struct ring *ring;
	assert_int_equal(ring_create(&cfg, &ring), 0);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);

	/* a receive and a poll in flight: retire cancels both, delivers
	 * neither, then frees once */
	struct owned a = { .ro.event = owned_event, .ring = ring };
	a.slot = ring_slot_alloc(ring, &a.ro);
	assert_ptr_equal(ring_slot_owner(ring, a.slot), &a.ro);
	ring_recv(ring, a.slot, sv[0]);
	ring_poll(ring, a.slot, sv[0]);
	assert_int_equal(ring_run(ring, 0), 0);
	assert_int_equal(ring_slot_inflight(ring, a.slot), 2);
	ring_slot_retire(ring, a.slot, owned_free);
	ring_slot_retire(ring, a.slot, owned_free); /* again: nothing */
	assert_null(ring_slot_owner(ring, a.slot));
	assert_int_equal(a.freed, 0);
	for (int i = 0; i < 100 && a.freed == 0; i++)
		assert_true(ring_run(ring, 1) >= 0);
	assert_int_equal(a.freed, 1);
	assert_int_equal(a.events, 0);

	/* typed dispatch: the owner's event function gets its completion;
	 * a retire from inside it with nothing left in flight frees after
	 * the event */
	struct owned b = { .ro.event = owned_event, .ring = ring, .retire_in_event = true };
	b.slot = ring_slot_alloc(ring, &b.ro);
	static const char msg[] = "x";
	ring_send(ring, b.slot, sv[0], msg, 1);
	for (int i = 0; i < 100 && b.events == 0; i++)
		assert_true(ring_run(ring, 1) >= 0);
	assert_int_equal(b.events, 1);
	assert_int_equal(b.last_op, RING_OP_SEND);
	assert_int_equal(b.last_res, 1);
	assert_int_equal(b.freed, 1);

	/* retired with nothing in flight outside an event: freed by the
	 * next ring_run, and the slot is reused with a new generation */
	struct owned d = { .ro.event = owned_event, .ring = ring };
	d.slot = ring_slot_alloc(ring, &d.ro);
	ring_slot_retire(ring, d.slot, owned_free);
	assert_int_equal(d.freed, 0);
	assert_int_equal(ring_run(ring, 0), 0);
	assert_int_equal(d.freed, 1);
	assert_null(ring_slot_owner(ring, d.slot));

	close(sv[0]);
	close(sv[1]);
	ring_destroy(ring);
}

/* a connected TCP pair on loopback: *a is the accepted end */
static void tcp_pair(int *a, int *b)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sin);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
	*b = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(*b, (struct sockaddr *)&sin, sizeof(sin)), 0);
	*a = accept(lfd, NULL, NULL);
	assert_true(*a >= 0);
	close(lfd);
}

/* ring_send_last: one completion per send as with ring_send (the rest
 * of a partial one sent the same way); after the owner's shutdown the peer
 * reads every byte, then EOF; in a restricted ring (the login process's). */
static void test_send_last(void **state)
{
	(void)state;
	static struct rec r;
	memset(&r, 0, sizeof(r));
	struct ring_config cfg = { .entries = 64, .buf_count = 8, .buf_size = 64,
				   .handler = handler, .ctx = &r, .setup = test_setup,
				   .restricted = true };
	struct ring *ring;
	assert_int_equal(ring_create(&cfg, &ring), 0);
	uint32_t slot = ring_slot_alloc(ring, &r.ro);
	static const size_t lens[] = { 5, 2u << 20 };
	for (unsigned k = 0; k < 2; k++) {
		int a, b;
		tcp_pair(&a, &b);
		int sz = 4096;
		assert_int_equal(setsockopt(a, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
		fcntl(a, F_SETFL, O_NONBLOCK);
		size_t len = lens[k];
		uint8_t *data = rg_malloc(len);
		uint32_t sum = 0;
		for (size_t i = 0; i < len; i++) {
			data[i] = (uint8_t)(i * 13 + i / 1000);
			sum = sum * 31 + data[i];
		}
		struct reader rd = { .fd = b };
		pthread_t th;
		assert_int_equal(pthread_create(&th, NULL, reader_thread, &rd), 0);
		size_t off = 0;
		while (off < len) {
			r.n = 0;
			ring_send_last(ring, slot, a, data + off, len - off);
			run_until(ring, &r, 1);
			assert_int_equal(r.ev[0].op, RING_OP_SEND);
			assert_true(r.ev[0].res > 0);
			off += (size_t)r.ev[0].res;
		}
		assert_int_equal(off, len);
		/* EOF although a is still open: the shutdown */
		assert_int_equal(shutdown(a, SHUT_WR), 0);
		pthread_join(th, NULL);
		assert_int_equal(rd.total, len);
		assert_int_equal(rd.sum, sum);
		rg_free(data);
		close(a);
		close(b);
	}
	/* the peer gone: the send fails */
	int a, b;
	tcp_pair(&a, &b);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	assert_int_equal(setsockopt(b, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	close(b); /* a reset */
	for (int i = 0; i < 100; i++) {
		char c;
		if (recv(a, &c, 1, MSG_DONTWAIT) == 0 || errno == ECONNRESET)
			break;
		usleep(1000);
	}
	r.n = 0;
	static const char bye[] = "* BYE\r\n";
	ring_send_last(ring, slot, a, bye, sizeof(bye) - 1);
	run_until(ring, &r, 1);
	assert_true(r.ev[0].res < 0);
	close(a);
	ring_slot_free(ring, slot);
	ring_destroy(ring);
}

/* One cancel SQE per armed kind: a second ring_cancel() and a retire while
 * it is on its way send nothing more, only the receive kind in flight
 * (small or large) is cancelled, and a receive armed after a cancel gets
 * a cancel of its own. */
static void test_cancel_once(void **state)
{
	(void)state;
	struct ring_config cfg = { .entries = 64, .buf_count = 8, .buf_size = 64,
				   .large_buf_count = 2, .large_buf_size = 256,
				   .setup = test_setup };
	struct ring *ring;
	assert_int_equal(ring_create(&cfg, &ring), 0);
	const struct ring_stats *st = ring_get_stats(ring);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);

	struct owned a = { .ro.event = owned_event, .ring = ring };
	a.slot = ring_slot_alloc(ring, &a.ro);
	ring_recv(ring, a.slot, sv[0]);
	assert_int_equal(ring_run(ring, 0), 0);
	uint64_t c0 = st->cancels;
	ring_cancel(ring, a.slot, RING_OP_RECV);
	assert_int_equal(st->cancels, c0 + 1); /* the small kind only */
	ring_cancel(ring, a.slot, RING_OP_RECV);
	ring_slot_retire(ring, a.slot, owned_free);
	assert_int_equal(st->cancels, c0 + 1);
	for (int i = 0; i < 100 && a.freed == 0; i++)
		assert_true(ring_run(ring, 1) >= 0);
	assert_int_equal(a.freed, 1);
	assert_int_equal(a.events, 0);

	/* cancel, re-arm before it ran, cancel again: two cancels, and
	 * both receives end */
	struct owned b = { .ro.event = owned_event, .ring = ring };
	b.slot = ring_slot_alloc(ring, &b.ro);
	ring_recv_large(ring, b.slot, sv[0]);
	assert_int_equal(ring_run(ring, 0), 0);
	c0 = st->cancels;
	ring_cancel(ring, b.slot, RING_OP_RECV);
	ring_recv(ring, b.slot, sv[0]);
	ring_cancel(ring, b.slot, RING_OP_RECV);
	assert_int_equal(st->cancels, c0 + 2);
	for (int i = 0; i < 100 && ring_slot_inflight(ring, b.slot) > 0; i++)
		assert_true(ring_run(ring, 1) >= 0);
	assert_int_equal(ring_slot_inflight(ring, b.slot), 0);
	assert_int_equal(b.events, 2);
	assert_int_equal(b.last_res, -ECANCELED);
	/* nothing armed: a retire cancels nothing */
	ring_slot_retire(ring, b.slot, owned_free);
	assert_int_equal(st->cancels, c0 + 2);
	assert_int_equal(ring_run(ring, 0), 0);
	assert_int_equal(b.freed, 1);

	close(sv[0]);
	close(sv[1]);
	ring_destroy(ring);
}

static void test_bad_config(void **state)
{
	(void)state;
	struct ring_config cfg = { .buf_count = 3, .handler = handler };
	struct ring *ring;
	assert_int_equal(ring_create(&cfg, &ring), -EINVAL);
	struct ring_config bad_setup = { .handler = handler, .setup = RING_SETUP_PLAIN + 1 };
	assert_int_equal(ring_create(&bad_setup, &ring), -EINVAL);
}

static int setup_defer(void **state)
{
	(void)state;
	test_setup = RING_SETUP_DEFER_TASKRUN;
	return 0;
}

static int setup_coop(void **state)
{
	(void)state;
	test_setup = RING_SETUP_COOP_TASKRUN;
	return 0;
}

static int setup_plain(void **state)
{
	(void)state;
	test_setup = RING_SETUP_PLAIN;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_echo),
		cmocka_unit_test(test_accept),
		cmocka_unit_test(test_large_send),
		cmocka_unit_test(test_cancel_wait),
		cmocka_unit_test(test_recv_large),
		cmocka_unit_test(test_stale_generation),
		cmocka_unit_test(test_enobufs),
		cmocka_unit_test(test_tick),
		cmocka_unit_test(test_retire),
		cmocka_unit_test(test_cancel_once),
		cmocka_unit_test(test_send_last),
		cmocka_unit_test(test_bad_config),
	};
	int failed = cmocka_run_group_tests_name("defer_taskrun", tests, setup_defer, NULL);
	failed += cmocka_run_group_tests_name("coop_taskrun", tests, setup_coop, NULL);
	failed += cmocka_run_group_tests_name("plain", tests, setup_plain, NULL);
	return failed;
}
