#include "ring/ring.h"
#include "lib/alloc.h"
#include "lib/log.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <unistd.h>

/* user_data: op in bits 56-63, generation in 32-55, slot in 0-31 */
#define UD_GEN_MASK 0xffffffu
#define UD(op, slot, gen) (((uint64_t)(op) << 56) | ((uint64_t)((gen) & UD_GEN_MASK) << 32) | (uint64_t)(slot))
#define UD_OP(ud) ((unsigned)((ud) >> 56))
#define UD_GEN(ud) ((uint32_t)((ud) >> 32) & UD_GEN_MASK)
#define UD_SLOT(ud) ((uint32_t)(ud))

/* internal op: single-shot accept, delivered as RING_OP_ACCEPT but never
 * flagged for re-arming */
#define OP_ACCEPT_ONCE (RING_OP_COUNT + 1)
/* internal op: a receive into the large buffers, delivered as RING_OP_RECV
 * (the CQE names a buffer id, not its group: the op says which) */
#define OP_RECV_LARGE (RING_OP_COUNT + 2)

/* buffer groups: the small buffers every receive uses, the large ones of
 * ring_recv_large() */
enum { BGID_SMALL = 0, BGID_LARGE = 1 };

/* operations counted per type of user_data (the internal kinds apart:
 * a cancel goes out only for what is armed, and a retire cancels only
 * that) */
#define SLOT_OPS (OP_RECV_LARGE + 1)

/* provided receive buffers: count * size bytes; buffer i is either in the
 * kernel's ring or lent to the handler for one callback, never anywhere
 * else */
/* br and bufs are one mapping of map_size bytes: the ring in its first
 * page(s), the buffers after it */
struct ring_bufs {
	struct io_uring_buf_ring *br;
	size_t map_size;
	uint8_t *bufs;
	unsigned count, size;
	unsigned short bgid;
};

struct ring_slot {
	struct ring_owner *owner;	/* NULL while free */
	ring_free_fn *retire;		/* set by ring_slot_retire */
	uint32_t gen;
	uint32_t inflight;		/* the sum of ops[] */
	/* by user_data op (enum ring_op or an internal kind): a bit is set
	 * while a cancel of every operation of that kind in flight is on its
	 * way, so a second ring_cancel() (a retire after a flush's cancel)
	 * sends nothing; a new operation of the kind clears it */
	uint16_t cancelling;
	uint16_t ops[SLOT_OPS];		/* in flight, by user_data op */
};

struct ring {
	struct io_uring uring;
	const char *mode;
	ring_handler_fn *handler;
	void *ctx;

	struct ring_bufs small, large; /* large.count == 0: none */

	struct ring_slot *slots;
	uint32_t slot_count, slot_alloc;
	uint32_t *free_slots; /* stack of free slot indexes */
	uint32_t free_count;
	/* retired slots with nothing in flight, to free after this event */
	uint32_t *dead_slots;
	uint32_t dead_count;

	struct __kernel_timespec tick_ts;
	uint32_t tick_slot;
	bool tick_active;

	struct ring_stats stats;
};

static const struct {
	unsigned flags;
	const char *name;
} setup_modes[] = {
	{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "defer_taskrun" },
	{ IORING_SETUP_COOP_TASKRUN, "coop_taskrun" },
	{ 0, "plain" },
};

/* Only the opcodes and SQE flags ring.c issues, and no registration at all
 * once enabled (the buffer ring is registered before). */
static int ring_restrict(struct ring *r)
{
	static const uint8_t ops[] = {
		IORING_OP_ACCEPT, IORING_OP_RECV, IORING_OP_SEND, IORING_OP_POLL_ADD,
		IORING_OP_ASYNC_CANCEL, IORING_OP_CLOSE, IORING_OP_TIMEOUT,
		/* the login process proxies users to backends (passdb proxy) */
		IORING_OP_CONNECT,
	};
	struct io_uring_restriction res[sizeof(ops) + 1];
	memset(res, 0, sizeof(res));
	for (size_t i = 0; i < sizeof(ops); i++) {
		res[i].opcode = IORING_RESTRICTION_SQE_OP;
		res[i].sqe_op = ops[i];
	}
	res[sizeof(ops)].opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
	res[sizeof(ops)].sqe_flags = IOSQE_BUFFER_SELECT | IOSQE_CQE_SKIP_SUCCESS;
	/* Debian's liburing 2.3 declares io_uring_register_restrictions()
	 * and io_uring_enable_rings() but does not export them: the system
	 * call it is */
	if (syscall(__NR_io_uring_register, r->uring.ring_fd, IORING_REGISTER_RESTRICTIONS,
		    res, (unsigned)(sizeof(ops) + 1)) < 0) {
		int ret = -errno;
		log_error("IORING_REGISTER_RESTRICTIONS: %s", strerror(errno));
		return ret;
	}
	if (syscall(__NR_io_uring_register, r->uring.ring_fd, IORING_REGISTER_ENABLE_RINGS,
		    NULL, 0) < 0) {
		int ret = -errno;
		log_error("IORING_REGISTER_ENABLE_RINGS: %s", strerror(errno));
		return ret;
	}
	return 0;
}

/* liburing 2.3 has no io_uring_setup_buf_ring(): map the ring memory
 * ourselves (page aligned), register it, then fill it. The buffers share
 * its mapping: fresh pages, faulted in (zero-filled) only when a receive
 * first lands in them, and no allocator work (in a process forked from a
 * template, the allocator's metadata is the template's: every page of it
 * written is a copy-on-write fault) */
static int ring_bufs_init(struct ring *r, struct ring_bufs *b)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t br_size = (b->count * sizeof(struct io_uring_buf) + page - 1) & ~(page - 1);
	b->map_size = br_size + (size_t)b->count * b->size;
	void *mem = mmap(NULL, b->map_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
			 -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	b->br = mem;
	b->bufs = (uint8_t *)mem + br_size;
	struct io_uring_buf_reg reg;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (unsigned long)(uintptr_t)b->br;
	reg.ring_entries = b->count;
	reg.bgid = b->bgid;
	int ret = io_uring_register_buf_ring(&r->uring, &reg, 0);
	if (ret < 0) {
		log_error("io_uring_register_buf_ring: %s", strerror(-ret));
		munmap(b->br, b->map_size);
		b->br = NULL;
		b->bufs = NULL;
		return ret;
	}
	io_uring_buf_ring_init(b->br);
	int mask = io_uring_buf_ring_mask(b->count);
	for (unsigned i = 0; i < b->count; i++)
		io_uring_buf_ring_add(b->br, b->bufs + (size_t)i * b->size, b->size,
				      (unsigned short)i, mask, (int)i);
	io_uring_buf_ring_advance(b->br, (int)b->count);
	return 0;
}

static void ring_bufs_deinit(struct ring *r, struct ring_bufs *b)
{
	if (b->br == NULL)
		return;
	(void)io_uring_unregister_buf_ring(&r->uring, b->bgid);
	munmap(b->br, b->map_size);
	b->br = NULL;
	b->bufs = NULL;
}

static bool ring_bufs_valid(unsigned count)
{
	return (count & (count - 1)) == 0 && count <= 32768;
}

int ring_create(const struct ring_config *config, struct ring **ring_r)
{
	struct ring *r = rg_calloc(1, sizeof(*r));
	unsigned entries = config->entries != 0 ? config->entries : 256;
	int ret = -EINVAL;

	r->handler = config->handler;
	r->ctx = config->ctx;
	r->small.count = config->buf_count != 0 ? config->buf_count : 256;
	r->small.size = config->buf_size != 0 ? config->buf_size : 2048;
	r->small.bgid = BGID_SMALL;
	r->large.count = config->large_buf_count;
	r->large.size = config->large_buf_size != 0 ? config->large_buf_size : 16384;
	r->large.bgid = BGID_LARGE;
	if (!ring_bufs_valid(r->small.count) || !ring_bufs_valid(r->large.count) ||
	    (unsigned)config->setup > RING_SETUP_PLAIN) {
		rg_free(r);
		return -EINVAL;
	}

	for (size_t i = config->setup; i < sizeof(setup_modes) / sizeof(setup_modes[0]); i++) {
		struct io_uring_params p;
		memset(&p, 0, sizeof(p));
		p.flags = setup_modes[i].flags | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE |
			  (config->restricted ? IORING_SETUP_R_DISABLED : 0);
		p.cq_entries = entries * 4;
		ret = io_uring_queue_init_params(entries, &r->uring, &p);
		if (ret == 0) {
			r->mode = setup_modes[i].name;
			break;
		}
		if (ret != -EINVAL)
			break;
	}
	if (ret < 0) {
		log_error("io_uring_queue_init: %s", strerror(-ret));
		rg_free(r);
		return ret;
	}
	log_debug("io_uring set up with %s", r->mode);

	if ((ret = ring_bufs_init(r, &r->small)) < 0)
		goto fail_uring;
	if (r->large.count > 0 && (ret = ring_bufs_init(r, &r->large)) < 0)
		goto fail_small;
	if (config->restricted && (ret = ring_restrict(r)) < 0)
		goto fail_large;
	*ring_r = r;
	return 0;

fail_large:
	ring_bufs_deinit(r, &r->large);
fail_small:
	ring_bufs_deinit(r, &r->small);
fail_uring:
	io_uring_queue_exit(&r->uring);
	rg_free(r);
	return ret;
}

void ring_destroy(struct ring *r)
{
	if (r == NULL)
		return;
	ring_bufs_deinit(r, &r->large);
	ring_bufs_deinit(r, &r->small);
	io_uring_queue_exit(&r->uring);
	rg_free(r->slots);
	rg_free(r->free_slots);
	rg_free(r->dead_slots);
	rg_free(r);
}

const char *ring_mode(const struct ring *r)
{
	return r->mode;
}

const struct ring_stats *ring_get_stats(const struct ring *r)
{
	return &r->stats;
}

uint32_t ring_slot_alloc(struct ring *r, struct ring_owner *owner)
{
	uint32_t slot;

	if (r->free_count > 0) {
		slot = r->free_slots[--r->free_count];
	} else {
		if (r->slot_count == r->slot_alloc) {
			uint32_t n = r->slot_alloc == 0 ? 64 : r->slot_alloc * 2;
			r->slots = rg_realloc(r->slots, n * sizeof(*r->slots));
			r->free_slots = rg_realloc(r->free_slots, n * sizeof(*r->free_slots));
			r->dead_slots = rg_realloc(r->dead_slots, n * sizeof(*r->dead_slots));
			r->slot_alloc = n;
		}
		slot = r->slot_count++;
		r->slots[slot].gen = 1;
	}
	struct ring_slot *s = &r->slots[slot];
	s->owner = owner;
	s->retire = NULL;
	s->inflight = 0;
	s->cancelling = 0;
	memset(s->ops, 0, sizeof(s->ops));
	return slot;
}

void ring_slot_free(struct ring *r, uint32_t slot)
{
	struct ring_slot *s = &r->slots[slot];
	if (s->inflight != 0)
		log_warning("ring: slot %u freed with %u operations in flight", slot, s->inflight);
	s->owner = NULL;
	s->retire = NULL;
	s->gen = (s->gen + 1) & UD_GEN_MASK;
	if (s->gen == 0)
		s->gen = 1;
	r->free_slots[r->free_count++] = slot;
}

static void ring_cancel_kind(struct ring *r, uint32_t slot, unsigned op);

void ring_slot_retire(struct ring *r, uint32_t slot, ring_free_fn *free_fn)
{
	if (slot >= r->slot_count || r->slots[slot].owner == NULL)
		log_fatal("ring: retiring free slot %u", slot);
	struct ring_slot *s = &r->slots[slot];
	if (s->retire != NULL)
		return;
	s->retire = free_fn;
	for (unsigned op = 1; op < SLOT_OPS; op++) {
		if (s->ops[op] == 0)
			continue;
		if (op == RING_OP_TICK) {
			if (r->tick_active && r->tick_slot == slot)
				ring_tick_stop(r);
			continue;
		}
		ring_cancel_kind(r, slot, op);
	}
	if (s->inflight == 0)
		r->dead_slots[r->dead_count++] = slot;
}

/* free the retired slots whose last completion is in */
static void ring_reap(struct ring *r)
{
	while (r->dead_count > 0) {
		uint32_t slot = r->dead_slots[--r->dead_count];
		struct ring_slot *s = &r->slots[slot];
		struct ring_owner *owner = s->owner;
		ring_free_fn *free_fn = s->retire;
		ring_slot_free(r, slot);
		free_fn(owner);
	}
}

unsigned ring_slot_inflight(const struct ring *r, uint32_t slot)
{
	return r->slots[slot].inflight;
}

struct ring_owner *ring_slot_owner(const struct ring *r, uint32_t slot)
{
	if (slot >= r->slot_count || r->slots[slot].retire != NULL)
		return NULL;
	return r->slots[slot].owner;
}

void ring_slot_set_owner(struct ring *r, uint32_t slot, struct ring_owner *new_owner)
{
	if (slot >= r->slot_count || r->slots[slot].owner == NULL || r->slots[slot].retire != NULL)
		log_fatal("ring: new owner for a free or retired slot %u", slot);
	r->slots[slot].owner = new_owner;
}

static struct io_uring_sqe *ring_get_sqe(struct ring *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
	if (sqe == NULL) {
		/* SQ full: flush early rather than lose the operation */
		int ret = io_uring_submit(&r->uring);
		if (ret < 0)
			log_fatal("io_uring_submit: %s", strerror(-ret));
		sqe = io_uring_get_sqe(&r->uring);
		if (sqe == NULL)
			log_fatal("io_uring: no SQE after submit");
	}
	return sqe;
}

/* an SQE for an operation counted in flight on slot; op is its user_data
 * op (an internal kind counts apart) */
static struct io_uring_sqe *ring_slot_sqe(struct ring *r, uint32_t slot, unsigned op)
{
	if (slot >= r->slot_count || r->slots[slot].owner == NULL)
		log_fatal("ring: operation on free slot %u", slot);
	struct ring_slot *s = &r->slots[slot];
	if (s->retire != NULL)
		log_fatal("ring: operation on retired slot %u", slot);
	struct io_uring_sqe *sqe = ring_get_sqe(r);
	s->inflight++;
	s->ops[op]++;
	/* queued after a cancel of its kind: that cancel does not reach it */
	s->cancelling &= (uint16_t)~(1u << op);
	/* the caller preps the SQE, which clears user_data: set it after */
	return sqe;
}

static void ring_set_ud(struct ring *r, struct io_uring_sqe *sqe, unsigned op, uint32_t slot)
{
	io_uring_sqe_set_data64(sqe, UD(op, slot, r->slots[slot].gen));
}

void ring_accept(struct ring *r, uint32_t slot, int fd, bool multishot)
{
	unsigned op = multishot ? RING_OP_ACCEPT : OP_ACCEPT_ONCE;
	struct io_uring_sqe *sqe = ring_slot_sqe(r, slot, op);
	/* blocking sockets: the fd is handed to workers that expect blocking
	 * I/O, and O_NONBLOCK is shared by every copy of the descriptor */
	if (multishot)
		io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
	else
		io_uring_prep_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
	ring_set_ud(r, sqe, op, slot);
}

void ring_accept_addr(struct ring *r, uint32_t slot, int fd, struct sockaddr_storage *addr,
		      socklen_t *addr_len)
{
	struct io_uring_sqe *sqe = ring_slot_sqe(r, slot, OP_ACCEPT_ONCE);
	io_uring_prep_accept(sqe, fd, (struct sockaddr *)addr, addr_len, SOCK_CLOEXEC);
	ring_set_ud(r, sqe, OP_ACCEPT_ONCE, slot);
}

void ring_recv(struct ring *r, uint32_t slot, int fd)
{
	struct io_uring_sqe *sqe = ring_slot_sqe(r, slot, RING_OP_RECV);
	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID_SMALL;
	ring_set_ud(r, sqe, RING_OP_RECV, slot);
}

static void ring_recv_large_prep(struct ring *r, uint32_t slot, int fd, bool multishot)
{
	if (r->large.count == 0) {
		ring_recv(r, slot, fd);
		return;
	}
	struct io_uring_sqe *sqe = ring_slot_sqe(r, slot, OP_RECV_LARGE);
	if (multishot)
		io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	else
		io_uring_prep_recv(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID_LARGE;
	ring_set_ud(r, sqe, OP_RECV_LARGE, slot);
}

void ring_recv_large(struct ring *r, uint32_t slot, int fd)
{
	ring_recv_large_prep(r, slot, fd, true);
}

size_t ring_recv_large_size(const struct ring *r)
{
	return r->large.count > 0 ? r->large.size : r->small.size;
}

void ring_recv_large_once(struct ring *r, uint32_t slot, int fd)
{
	ring_recv_large_prep(r, slot, fd, false);
}

static void ring_send_flags(struct ring *r, uint32_t slot, int fd, const void *buf, size_t len,
			    int flags)
{
	struct io_uring_sqe *sqe = ring_slot_sqe(r, slot, RING_OP_SEND);
	io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL | flags);
	ring_set_ud(r, sqe, RING_OP_SEND, slot);
}

void ring_send(struct ring *r, uint32_t slot, int fd, const void *buf, size_t len)
{
	ring_send_flags(r, slot, fd, buf, len, 0);
}

void ring_send_last(struct ring *r, uint32_t slot, int fd, const void *buf, size_t len)
{
	ring_send_flags(r, slot, fd, buf, len, MSG_MORE);
}

void ring_connect(struct ring *r, uint32_t slot, int fd, const void *addr, unsigned addr_len)
{
	struct io_uring_sqe *sqe = ring_slot_sqe(r, slot, RING_OP_CONNECT);
	io_uring_prep_connect(sqe, fd, addr, addr_len);
	ring_set_ud(r, sqe, RING_OP_CONNECT, slot);
}

void ring_poll(struct ring *r, uint32_t slot, int fd)
{
	struct io_uring_sqe *sqe = ring_slot_sqe(r, slot, RING_OP_POLL);
	io_uring_prep_poll_multishot(sqe, fd, POLLIN);
	ring_set_ud(r, sqe, RING_OP_POLL, slot);
}

void ring_poll_writable(struct ring *r, uint32_t slot, int fd)
{
	struct io_uring_sqe *sqe = ring_slot_sqe(r, slot, RING_OP_WRITABLE);
	io_uring_prep_poll_add(sqe, fd, POLLOUT);
	ring_set_ud(r, sqe, RING_OP_WRITABLE, slot);
}

static void ring_cancel_ud(struct ring *r, uint64_t ud)
{
	r->stats.cancels++;
	struct io_uring_sqe *sqe = ring_get_sqe(r);
	io_uring_prep_cancel64(sqe, ud, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, UD(RING_OP_CANCEL, 0, 0));
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

/* one cancel for every operation of user_data op kind on slot, unless none
 * is in flight or one is already on its way for them (a cancel that finds
 * nothing costs an SQE and a CQE) */
static void ring_cancel_kind(struct ring *r, uint32_t slot, unsigned op)
{
	struct ring_slot *s = &r->slots[slot];
	uint16_t bit = (uint16_t)(1u << op);
	if (s->ops[op] == 0 || (s->cancelling & bit) != 0)
		return;
	s->cancelling |= bit;
	ring_cancel_ud(r, UD(op, slot, s->gen));
}

void ring_cancel(struct ring *r, uint32_t slot, enum ring_op op)
{
	if (slot >= r->slot_count || r->slots[slot].owner == NULL)
		return;
	ring_cancel_kind(r, slot, op);
	if (op == RING_OP_ACCEPT)
		ring_cancel_kind(r, slot, OP_ACCEPT_ONCE);
	if (op == RING_OP_RECV)
		ring_cancel_kind(r, slot, OP_RECV_LARGE);
}

void ring_cancel_fd(struct ring *r, int fd)
{
	r->stats.cancels++;
	struct io_uring_sqe *sqe = ring_get_sqe(r);
	io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, UD(RING_OP_CANCEL, 0, 0));
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

void ring_close(struct ring *r, int fd)
{
	struct io_uring_sqe *sqe = ring_get_sqe(r);
	io_uring_prep_close(sqe, fd);
	io_uring_sqe_set_data64(sqe, UD(RING_OP_CLOSE, 0, 0));
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

static void ring_tick_arm(struct ring *r)
{
	struct io_uring_sqe *sqe = ring_get_sqe(r);
	/* the kernel reads tick_ts at submit time; it lives in the ring */
	io_uring_prep_timeout(sqe, &r->tick_ts, 0, 0);
	ring_set_ud(r, sqe, RING_OP_TICK, r->tick_slot);
}

void ring_tick_start(struct ring *r, uint32_t slot, unsigned msecs)
{
	if (r->tick_active)
		log_fatal("ring: tick already running");
	r->tick_ts.tv_sec = msecs / 1000;
	r->tick_ts.tv_nsec = (long long)(msecs % 1000) * 1000000;
	r->tick_slot = slot;
	r->tick_active = true;
	if (slot >= r->slot_count || r->slots[slot].owner == NULL)
		log_fatal("ring: tick on free slot %u", slot);
	r->slots[slot].inflight++;
	r->slots[slot].ops[RING_OP_TICK]++;
	ring_tick_arm(r);
}

void ring_tick_stop(struct ring *r)
{
	if (!r->tick_active)
		return;
	r->tick_active = false;
	ring_cancel_ud(r, UD(RING_OP_TICK, r->tick_slot, r->slots[r->tick_slot].gen));
}

static void ring_return_buf(struct ring_bufs *b, unsigned bid)
{
	int mask = io_uring_buf_ring_mask(b->count);
	io_uring_buf_ring_add(b->br, b->bufs + (size_t)bid * b->size, b->size, (unsigned short)bid,
			      mask, 0);
	io_uring_buf_ring_advance(b->br, 1);
}

static void ring_dispatch(struct ring *r, uint64_t ud, int res, unsigned flags)
{
	unsigned op = UD_OP(ud);
	uint32_t slot = UD_SLOT(ud);
	bool has_buf = (flags & IORING_CQE_F_BUFFER) != 0;
	unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;

	struct ring_bufs *pool = op == OP_RECV_LARGE ? &r->large : &r->small;

	r->stats.cqes++;
	if (has_buf && bid >= pool->count)
		log_fatal("io_uring: buffer id %u out of range", bid);
	if (op == RING_OP_CANCEL || op == RING_OP_CLOSE) {
		/* only failures reach us (CQE_SKIP_SUCCESS); -ENOENT and
		 * -EALREADY are normal: the target completes on its own */
		if (res < 0 && res != -ENOENT && res != -EALREADY)
			log_debug("io_uring %s: %s", op == RING_OP_CANCEL ? "cancel" : "close",
				  strerror(-res));
		return;
	}
	if (slot >= r->slot_count || r->slots[slot].owner == NULL ||
	    r->slots[slot].gen != UD_GEN(ud)) {
		r->stats.stale_dropped++;
		if (has_buf)
			ring_return_buf(pool, bid);
		return;
	}

	struct ring_slot *s = &r->slots[slot];
	unsigned slot_op = op == OP_ACCEPT_ONCE ? RING_OP_ACCEPT :
			   op == OP_RECV_LARGE ? RING_OP_RECV : op;
	struct ring_event ev = {
		.op = (enum ring_op)slot_op,
		.slot = slot,
		.owner = s->owner,
		.res = res,
		.more = (flags & IORING_CQE_F_MORE) != 0,
	};
	switch (slot_op) {
	case RING_OP_TICK:
		if (res == -ETIME && r->tick_active && r->tick_slot == slot) {
			ev.res = 0;
			ev.more = true;
			ring_tick_arm(r);
		}
		break;
	case RING_OP_RECV:
		if (res == -ENOBUFS)
			r->stats.enobufs++;
		ev.rearm = !ev.more && (res > 0 || res == -ENOBUFS);
		if (res > 0) {
			if (!has_buf)
				log_fatal("io_uring: receive completion without a buffer");
			ev.data = pool->bufs + (size_t)bid * pool->size;
		}
		break;
	case RING_OP_ACCEPT:
	case RING_OP_POLL:
		/* a single-shot accept is never re-armed by the ring's word */
		ev.rearm = !ev.more && res >= 0 && op != OP_ACCEPT_ONCE;
		break;
	default:
		break;
	}
	if (!ev.more) {
		if (s->inflight == 0 || op >= SLOT_OPS || s->ops[op] == 0)
			log_fatal("ring: completion on slot %u with nothing in flight", slot);
		s->inflight--;
		if (--s->ops[op] == 0)
			s->cancelling &= (uint16_t)~(1u << op);
	}
	if (s->retire != NULL) {
		/* the owner is gone: nothing is delivered any more */
		if (s->inflight == 0 && !ev.more)
			r->dead_slots[r->dead_count++] = slot;
	} else if (r->handler != NULL) {
		r->handler(r, &ev, r->ctx);
	} else {
		ring_owner_dispatch(&ev);
	}
	/* the handler has consumed the bytes: lend the buffer out again */
	if (has_buf)
		ring_return_buf(pool, bid);
	ring_reap(r);
}

int ring_run(struct ring *r, unsigned wait_nr)
{
	ring_reap(r);
	int ret = io_uring_submit_and_wait(&r->uring, wait_nr);
	if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY && ret != -ETIME)
		return ret;
	/* without waiting, liburing may not enter the kernel at all when
	 * nothing was queued; deferred task work then never runs */
	if (wait_nr == 0 && ret == 0)
		(void)io_uring_get_events(&r->uring);
	r->stats.turns++;

	int n = 0;
	struct io_uring_cqe *cqe;
	/* copy and mark seen before dispatching, so a handler that submits
	 * (SQ full) or frees slots never sees a half-consumed CQ */
	while (io_uring_peek_cqe(&r->uring, &cqe) == 0) {
		uint64_t ud = cqe->user_data;
		int res = cqe->res;
		unsigned flags = cqe->flags;
		io_uring_cqe_seen(&r->uring, cqe);
		ring_dispatch(r, ud, res, flags);
		n++;
	}
	ring_reap(r);
	return n;
}
