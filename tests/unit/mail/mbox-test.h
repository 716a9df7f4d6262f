/* mbox-test.h — what the mbox spool's unit tests (test_mbox.c,
 * test_mbox_meta.c) share: a fixture with a spool path in a fresh temp
 * directory, reading a file back, opening the spool. Header-only: each
 * test is its own binary. */
#ifndef RG_TEST_MBOX_TEST_H
#define RG_TEST_MBOX_TEST_H

#include "lib/alloc.h"
#include "mail/mbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fixture {
	char *dir, *path;
};

static inline char *tmpdir(void)
{
	char tmpl[] = "/tmp/rg-mbox-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	return rg_strdup(tmpl);
}

static inline char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char *buf = rg_malloc(1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* f->path: DIR/spool, not created */
static inline int setup(void **state)
{
	struct fixture *f = rg_calloc(1, sizeof(*f));
	f->dir = tmpdir();
	f->path = rg_strdup_printf("%s/spool", f->dir);
	*state = f;
	return 0;
}

static inline int teardown(void **state)
{
	struct fixture *f = *state;
	char *lock = rg_strdup_printf("%s.lock", f->path);
	unlink(lock);
	unlink(f->path);
	rmdir(f->dir);
	rg_free(lock);
	rg_free(f->path);
	rg_free(f->dir);
	rg_free(f);
	return 0;
}

static inline struct mbox *open_ok(const char *path)
{
	struct mbox *box = NULL;
	const char *error = NULL;
	int ret = mbox_open(path, 1000, &box, &error);
	if (ret < 0)
		fail_msg("mbox_open: %s: %s", error, strerror(-ret));
	return box;
}

#endif
