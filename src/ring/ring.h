/* ring.h — the io_uring event loop of a login process (one ring per process).
 *
 * Every operation belongs to a slot (ring_slot_alloc): the SQE's user_data
 * carries op (8 bits), slot (32 bits) and the slot's generation (24 bits), so
 * a completion that arrives after the slot was freed and reused is dropped
 * here and never reaches the caller. A slot's owner embeds a struct
 * ring_owner whose event function receives its completions (typed dispatch:
 * no owner is recognised by peeking at its bytes). The ring counts each
 * slot's operations in flight, per operation; an owner that is done calls
 * ring_slot_retire(), which cancels what is in flight, delivers nothing more
 * and calls the owner's free function once the last completion is in (never
 * from inside the retire call: callers up the stack may still look at the
 * owner). Receives use a provided buffer ring: a buffer is lent to
 * the handler for the duration of one callback and returned right after, so an
 * idle connection holds no receive buffer. Calls only queue SQEs; ring_run()
 * submits once per turn and reaps every completion available. liburing types
 * never leave this directory. */
#ifndef RG_RING_H
#define RG_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct ring;
struct ring_owner;

enum ring_op {
	RING_OP_NONE = 0,
	RING_OP_ACCEPT,	/* res = new fd (blocking, CLOEXEC) or -errno */
	RING_OP_RECV,	/* res = bytes in data, 0 = EOF, or -errno */
	RING_OP_SEND,	/* res = bytes sent (maybe partial) or -errno */
	RING_OP_POLL,	/* res = revents (POLLIN, POLLHUP, ...) or -errno */
	RING_OP_TICK,	/* the periodic timer fired; res = 0 */
	RING_OP_CONNECT, /* res = 0 or -errno */
	RING_OP_WRITABLE, /* single-shot POLLOUT; res = revents or -errno */
	RING_OP_CANCEL,	/* internal: never delivered */
	RING_OP_CLOSE,	/* internal: never delivered */
	RING_OP_COUNT
};

struct ring_event {
	enum ring_op op;
	uint32_t slot;
	struct ring_owner *owner; /* what ring_slot_alloc() was given */
	int res;
	/* the operation is still armed (multishot) and counts as in flight */
	bool more;
	/* RECV/ACCEPT/POLL multishot ended although nothing went wrong
	 * (res > 0, or -ENOBUFS for RECV): issue it again if still wanted.
	 * The new SQE goes out with the next submit, after this turn's
	 * buffers have been returned. */
	bool rearm;
	const uint8_t *data;	/* RECV with res > 0; valid only during the callback */
};

typedef void ring_handler_fn(struct ring *ring, const struct ring_event *ev, void *ctx);
typedef void ring_event_fn(struct ring_owner *owner, const struct ring_event *ev);
typedef void ring_free_fn(struct ring_owner *owner);

/* Embedded in every slot owner; container_of-style casts get the owner
 * back. event may be NULL when the ring's handler does not dispatch. */
struct ring_owner {
	ring_event_fn *event;
};

/* the owner struct that embeds ro as member */
#define RING_OWNER(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* how the kernel runs the ring's completion work, best first: ring_create()
 * starts at the mode asked for and falls back to the next one the kernel
 * takes (DEFER_TASKRUN needs 6.1, COOP_TASKRUN 5.19) */
enum ring_setup {
	/* SINGLE_ISSUER | DEFER_TASKRUN: completion work runs only when
	 * this process waits for it, in one batch: no interrupt of a busy
	 * process, and one wake-up for what arrived meanwhile */
	RING_SETUP_DEFER_TASKRUN = 0,
	RING_SETUP_COOP_TASKRUN, /* no interrupt to run completion work */
	RING_SETUP_PLAIN,
};

struct ring_config {
	unsigned entries;	/* SQ size; CQ gets 4x; default 256 */
	/* the best mode to try (0: DEFER_TASKRUN); tests ask for the
	 * fallbacks an older kernel would give */
	enum ring_setup setup;
	unsigned buf_count;	/* provided receive buffers, power of 2; default 256 */
	unsigned buf_size;	/* bytes per buffer; default 2048 */
	/* large receive buffers for ring_recv_large() (relays: a TLS record
	 * of plaintext per receive, not a 2 KiB slice), power of 2; 0 = none,
	 * ring_recv_large() is ring_recv() then */
	unsigned large_buf_count;
	unsigned large_buf_size;	/* default 16384 */
	/* called for each completion delivered, with ctx; NULL: the ring
	 * calls ev->owner->event itself. A process that wants work done
	 * around every event (a clock, deferred work) sets it and calls
	 * ring_owner_dispatch() in between. */
	ring_handler_fn *handler;
	void *ctx;
	/* limit the ring to the operations above (IORING_REGISTER_RESTRICTIONS):
	 * no open, read/write of files, or later registrations, even for code
	 * that gets hold of the ring fd; CONNECT (proxying to backends) is
	 * allowed */
	bool restricted;
};

struct ring_stats {
	uint64_t turns;
	uint64_t cqes;
	uint64_t stale_dropped;	/* completions for a freed or reused slot */
	uint64_t enobufs;	/* receives that found the buffer ring empty */
	uint64_t cancels;	/* cancel SQEs sent (by slot and kind, or by fd) */
};

/* 0 or -errno. Logs which setup flags the kernel accepted. */
int ring_create(const struct ring_config *config, struct ring **ring_r);
void ring_destroy(struct ring *ring);
/* "defer_taskrun", "coop_taskrun" or "plain" */
const char *ring_mode(const struct ring *ring);
const struct ring_stats *ring_get_stats(const struct ring *ring);

/* Slots: owner must be non-NULL. Freeing bumps the generation, so any
 * completion still queued for the old owner is dropped. */
uint32_t ring_slot_alloc(struct ring *ring, struct ring_owner *owner);
/* only with nothing in flight (ring_slot_inflight() == 0); an owner that
 * may have operations in flight uses ring_slot_retire() */
void ring_slot_free(struct ring *ring, uint32_t slot);
/* The owner is done with the slot: cancel every operation of it in flight,
 * deliver none of their completions, and once none is left free the slot and
 * call free_fn(owner) (after the current event, or in the next ring_run()
 * when called outside one). A second call for the same slot does nothing. */
void ring_slot_retire(struct ring *ring, uint32_t slot, ring_free_fn *free_fn);
unsigned ring_slot_inflight(const struct ring *ring, uint32_t slot);
/* the owner of a live, not retired slot; NULL for a free, retired or
 * out-of-range one */
struct ring_owner *ring_slot_owner(const struct ring *ring, uint32_t slot);
/* hand the slot and its operations in flight to another owner: later
 * completions go to new_owner */
void ring_slot_set_owner(struct ring *ring, uint32_t slot, struct ring_owner *new_owner);

static inline void ring_owner_dispatch(const struct ring_event *ev)
{
	ev->owner->event(ev->owner, ev);
}

/* Operations (queued; submitted by the next ring_run()). */
void ring_accept(struct ring *ring, uint32_t slot, int fd, bool multishot);
/* single-shot accept that also writes the peer's address: *addr_len is the
 * room at addr, then the length written; both must stay valid until the
 * ACCEPT completion (one per slot in flight: the completion cannot say
 * which buffer it filled). Saves a getpeername() per connection. */
void ring_accept_addr(struct ring *ring, uint32_t slot, int fd, struct sockaddr_storage *addr,
		      socklen_t *addr_len);
/* multishot receive into provided buffers */
void ring_recv(struct ring *ring, uint32_t slot, int fd);
/* the same into the large buffers (delivered as RING_OP_RECV; ring_cancel
 * of RING_OP_RECV cancels both kinds) */
void ring_recv_large(struct ring *ring, uint32_t slot, int fd);
/* one receive into a large buffer (one completion, never more): for a
 * reader that takes a buffer's worth only when it has room for it; like
 * every receive here it holds no buffer while it waits */
void ring_recv_large_once(struct ring *ring, uint32_t slot, int fd);
/* the size of a large buffer (or of a small one when there are none): the
 * most one receive delivers */
size_t ring_recv_large_size(const struct ring *ring);
/* buf must stay valid and unchanged until the SEND completion */
void ring_send(struct ring *ring, uint32_t slot, int fd, const void *buf, size_t len);
/* The same for the last bytes fd will send (MSG_MORE): TCP holds them
 * until the owner's shutdown(SHUT_WR) (or close), whose FIN then leaves in
 * the same segment (a packet, and the peer's processing of it, less per
 * session). The owner must end the socket as soon as this completes:
 * until then the bytes wait. */
void ring_send_last(struct ring *ring, uint32_t slot, int fd, const void *buf, size_t len);
/* connect fd to addr; addr must stay valid until the next ring_run() */
void ring_connect(struct ring *ring, uint32_t slot, int fd, const void *addr, unsigned addr_len);
/* multishot POLLIN (POLLHUP/POLLERR are always reported) */
void ring_poll(struct ring *ring, uint32_t slot, int fd);
/* single-shot POLLOUT: completes once fd can take more (or failed) */
void ring_poll_writable(struct ring *ring, uint32_t slot, int fd);
/* cancel every operation of this type on the slot; each completes with
 * -ECANCELED (or its real result if it was already done). Sends nothing
 * when none is in flight, or when a cancel already on its way covers them
 * all (a retire after a cancel costs no second one). */
void ring_cancel(struct ring *ring, uint32_t slot, enum ring_op op);
/* cancel every operation on fd, whatever its slot */
void ring_cancel_fd(struct ring *ring, int fd);
/* close fd asynchronously (no completion is delivered) */
void ring_close(struct ring *ring, int fd);
/* a periodic RING_OP_TICK on slot every msecs until ring_tick_stop();
 * one tick per ring */
void ring_tick_start(struct ring *ring, uint32_t slot, unsigned msecs);
void ring_tick_stop(struct ring *ring);

/* One loop turn: submit what is queued, wait for at least wait_nr
 * completions (0 = don't wait), deliver every completion available.
 * Returns the number delivered or -errno. */
int ring_run(struct ring *ring, unsigned wait_nr);

#endif
