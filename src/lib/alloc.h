/* alloc.h — the one allocation wrapper. Every process links jemalloc, which
 * provides malloc itself; these wrappers only make out-of-memory fatal so no
 * caller ever checks for NULL. */
#ifndef RG_ALLOC_H
#define RG_ALLOC_H

#include <stddef.h>

void *rg_malloc(size_t size);
void *rg_calloc(size_t n, size_t size);
void *rg_realloc(void *ptr, size_t size);
char *rg_strdup(const char *s);
char *rg_strndup(const char *s, size_t n);
void *rg_memdup(const void *p, size_t n);
void rg_free(void *ptr);
/* Give freed memory back to the kernel (jemalloc: purge every arena; glibc
 * malloc, as under ASan: malloc_trim). For a process that is done starting
 * up: configuration text it parsed should not stay in its RSS. */
void rg_alloc_release(void);
/* Let jemalloc give back the freed pages its decay time says are old
 * (a process that is idle makes no allocator calls that would). Cheap:
 * for a periodic tick. */
void rg_alloc_decay(void);
/* printf into a fresh allocation */
char *rg_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
