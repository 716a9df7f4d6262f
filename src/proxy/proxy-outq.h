/* proxy-outq.h — a byte queue for a socket on the ring: bytes wait in it
 * until sent, and a send in flight may keep pointing into it while more are
 * appended (the old copy is kept until that send completes). Allocated on
 * the first byte and freed when drained, so an idle connection holds none.
 * No sockets, no ring: the caller sends from data + head. */
#ifndef RG_PROXY_OUTQ_H
#define RG_PROXY_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A relay's queue (PUMP_HIGH plus a receive): drained ones are kept for
 * reuse, per process */
#define OUTQ_RELAY (128 * 1024)

/* Bytes waiting to be sent: data[head..tail) is unsent; while a send is in
 * flight it covers data[head..head+sending) (or, after a growth, the same
 * bytes in retired). Allocated on the first byte, freed when drained. */
struct outq {
	uint8_t *retired;	/* an older copy a send in flight still points into */
	uint32_t head, tail, size, sending;
	uint8_t data[];
};

/* bytes not yet sent (0 for NULL) */
size_t outq_pending(const struct outq *q);
/* Append len bytes; in_flight says a send covers q->data[head..head+sending). */
void outq_append(struct outq **qp, const void *data, size_t len, bool in_flight);
/* Room for len more bytes at the tail (allocated, grown or moved as
 * append would), for a caller that writes them in place; outq_commit then
 * says how many it wrote (0: none, and an empty queue is freed). */
uint8_t *outq_reserve(struct outq **qp, size_t len, bool in_flight);
void outq_commit(struct outq **qp, size_t n);
void outq_free(struct outq **qp);
/* The relay-sized queues a process keeps for reuse go back to the
 * allocator when none was taken or given back since the last call: call
 * about once a second, so an idle process holds none after two calls. */
void outq_release_spares(void);
/* n bytes from the head are gone (sent or taken); drained queues are freed */
void outq_consume(struct outq **qp, size_t n);

#endif
