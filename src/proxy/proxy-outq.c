/* proxy-outq.c — byte queues for sockets on the ring (proxy-outq.h). */
#include "proxy/proxy-outq.h"
#include "lib/alloc.h"

#include <string.h>

#define OUTQ_MIN 512 /* the first allocation */

size_t outq_pending(const struct outq *q)
{
	return q == NULL ? 0 : q->tail - q->head;
}

/* Append len bytes; in_flight says a send covers q->data[head..head+sending). */
void outq_append(struct outq **qp, const void *data, size_t len, bool in_flight)
{
	struct outq *q = *qp;
	size_t pending = outq_pending(q);

	if (len == 0)
		return;
	if (q == NULL || q->size - q->tail < len) {
		size_t size = OUTQ_MIN;
		while (size < pending + len)
			size *= 2;
		struct outq *n = rg_malloc(sizeof(*n) + size);
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
					rg_free(q);
			} else {
				rg_free(q->retired);
				rg_free(q);
			}
		}
		*qp = q = n;
	}
	memcpy(q->data + q->tail, data, len);
	q->tail += (uint32_t)len;
}

void outq_free(struct outq **qp)
{
	if (*qp != NULL) {
		rg_free((*qp)->retired);
		rg_free(*qp);
		*qp = NULL;
	}
}

/* n bytes from the head are gone (sent or taken); drained queues are freed */
void outq_consume(struct outq **qp, size_t n)
{
	struct outq *q = *qp;
	rg_free(q->retired);
	q->retired = NULL;
	q->head += (uint32_t)n;
	q->sending = 0;
	if (q->head == q->tail)
		outq_free(qp); /* idle connections hold no output buffer */
}
