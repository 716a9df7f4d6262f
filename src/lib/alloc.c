#include "lib/alloc.h"
#include "lib/log.h"

#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t size)
{
	log_fatal("out of memory (allocating %zu bytes)", size);
}

void *rg_malloc(size_t size)
{
	void *p = malloc(size == 0 ? 1 : size);
	if (p == NULL)
		oom(size);
	return p;
}

void *rg_calloc(size_t n, size_t size)
{
	void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
	if (p == NULL)
		oom(n * size);
	return p;
}

void *rg_realloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size == 0 ? 1 : size);
	if (p == NULL)
		oom(size);
	return p;
}

char *rg_strdup(const char *s)
{
	return rg_memdup(s, strlen(s) + 1);
}

char *rg_strndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = rg_malloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

void *rg_memdup(const void *src, size_t n)
{
	void *p = rg_malloc(n);
	if (n > 0)
		memcpy(p, src, n);
	return p;
}

void rg_free(void *ptr)
{
	free(ptr);
}

char *rg_strdup_printf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	int n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0)
		oom(0);
	return p;
}

/* jemalloc's control entry point when jemalloc provides malloc; weak, so
 * builds without it (sanitizers) link and fall back to glibc */
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
	__attribute__((weak));

void rg_alloc_decay(void)
{
	/* "arena.<MALLCTL_ARENAS_ALL>.decay": purge what dirty_decay_ms says
	 * is old enough; nothing to do without jemalloc */
	if (mallctl != NULL)
		(void)mallctl("arena.4096.decay", NULL, NULL, NULL, 0);
}

void rg_alloc_release(void)
{
	/* "arena.<MALLCTL_ARENAS_ALL>.purge" */
	if (mallctl != NULL && mallctl("arena.4096.purge", NULL, NULL, NULL, 0) == 0)
		return;
	(void)malloc_trim(0);
}
