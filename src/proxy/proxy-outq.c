/* proxy-outq.c — byte queues for sockets on the ring (proxy-outq.h). */
#include "proxy/proxy-outq.h"
#include "lib/alloc.h"

#include <string.h>

#define OUTQ_MIN 512 /* the first allocation */
/* A queue that needs more than OUTQ_SMALL_MAX bytes (a relay's receives)
 * gets OUTQ_BULK, and drained queues of that size wait in a per-process spare
 * list (at most OUTQ_SPARE_MAX, not per connection) for the next one: a
 * busy relay reuses them instead of asking jemalloc for tens of KiB per
 * receive, whose pages come back from the kernel after its decay (a page
 * fault per 4 KiB each time). Idle connections still hold none. */
#define OUTQ_SMALL_MAX 4096
#define OUTQ_BULK OUTQ_RELAY
#define OUTQ_SPARE_MAX 4

static struct outq *outq_spare[OUTQ_SPARE_MAX];
static unsigned outq_spare_count;
static bool outq_spare_used; /* taken or given back since the last release */

static struct outq *outq_alloc(size_t size)
{
	if (size == OUTQ_BULK && outq_spare_count > 0) {
		outq_spare_used = true;
		return outq_spare[--outq_spare_count];
	}
	return rg_malloc(sizeof(struct outq) + size);
}

static void outq_release(struct outq *q)
{
	if (q->size == OUTQ_BULK && outq_spare_count < OUTQ_SPARE_MAX) {
		outq_spare[outq_spare_count++] = q;
		outq_spare_used = true;
	} else {
		rg_free(q);
	}
}

void outq_release_spares(void)
{
	if (outq_spare_used) {
		outq_spare_used = false;
		return;
	}
	while (outq_spare_count > 0)
		rg_free(outq_spare[--outq_spare_count]);
}

/* a queue (or a retired copy, which is one too) */
static void outq_release_ptr(uint8_t *p)
{
	if (p != NULL)
		outq_release((struct outq *)(void *)p);
}

size_t outq_pending(const struct outq *q)
{
	return q == NULL ? 0 : q->tail - q->head;
}

/* Room for len more bytes at q->data + q->tail; in_flight says a send
 * covers q->data[head..head+sending). */
uint8_t *outq_reserve(struct outq **qp, size_t len, bool in_flight)
{
	struct outq *q = *qp;
	size_t pending = outq_pending(q);

	if (q != NULL && q->size - q->tail >= len)
		return q->data + q->tail;
	if (q != NULL && !in_flight && q->size - pending >= len) {
		/* nothing points into it: move what waits to the front */
		memmove(q->data, q->data + q->head, pending);
		q->head = 0;
		q->tail = (uint32_t)pending;
		return q->data + q->tail;
	}
	size_t size = OUTQ_MIN;
	while (size < pending + len)
		size *= 2;
	if (size > OUTQ_SMALL_MAX && size < OUTQ_BULK)
		size = OUTQ_BULK;
	struct outq *n = outq_alloc(size);
	n->size = (uint32_t)size;
	n->head = 0;
	n->tail = (uint32_t)pending;
	n->sending = 0;
	n->retired = NULL;
	if (q != NULL) {
		memcpy(n->data, q->data + q->head, pending);
		n->sending = q->sending;
		if (in_flight) {
			/* the send in flight points into q: keep it */
			n->retired = q->retired != NULL ? q->retired : (uint8_t *)q;
			if (q->retired != NULL)
				outq_release(q);
		} else {
			outq_release_ptr(q->retired);
			outq_release(q);
		}
	}
	*qp = n;
	return n->data + n->tail;
}

void outq_commit(struct outq **qp, size_t n)
{
	(*qp)->tail += (uint32_t)n;
	if ((*qp)->head == (*qp)->tail)
		outq_free(qp); /* nothing came: an idle end holds no queue */
}

/* Append len bytes; in_flight says a send covers q->data[head..head+sending). */
void outq_append(struct outq **qp, const void *data, size_t len, bool in_flight)
{
	if (len == 0)
		return;
	memcpy(outq_reserve(qp, len, in_flight), data, len);
	(*qp)->tail += (uint32_t)len;
}

void outq_free(struct outq **qp)
{
	if (*qp != NULL) {
		outq_release_ptr((*qp)->retired);
		outq_release(*qp);
		*qp = NULL;
	}
}

/* n bytes from the head are gone (sent or taken); drained queues are freed */
void outq_consume(struct outq **qp, size_t n)
{
	struct outq *q = *qp;
	outq_release_ptr(q->retired);
	q->retired = NULL;
	q->head += (uint32_t)n;
	q->sending = 0;
	if (q->head == q->tail)
		outq_free(qp); /* idle connections hold no output buffer */
}
