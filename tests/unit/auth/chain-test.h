/* chain-test.h — what the chain's unit tests (test_auth_chain.c,
 * test_auth_drivers.c) share: a scratch directory for the files the
 * drivers read, and passdb/userdb blocks as settings.c hands them over.
 * Header-only: each test is its own binary. */
#ifndef RG_TEST_CHAIN_TEST_H
#define RG_TEST_CHAIN_TEST_H

#include "lib/alloc.h"
#include "lib/settings.h"

#include <stdio.h>
#include <stdlib.h>

/* the scratch directory, made by scratch_dir_make() */
static char dir[64];

/* make dir from a mkdtemp() template such as "/tmp/rg-chain-XXXXXX" */
static inline int scratch_dir_make(const char *template)
{
	snprintf(dir, sizeof(dir), "%s", template);
	return mkdtemp(dir) != NULL ? 0 : -1;
}

/* remove dir and everything in it: 0, or 1 (a test failure) */
static inline int scratch_dir_remove(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) != 0 ? 1 : 0;
}

/* dir/name holding text; the path is the caller's */
static inline char *file_with(const char *name, const char *text)
{
	char *path = rg_strdup_printf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* a db_settings block; free a chain of them with blocks_free() */
static inline struct db_settings *block(const char *driver, const char *args)
{
	struct db_settings *db = rg_calloc(1, sizeof(*db));
	db->driver = rg_strdup(driver);
	db->args = rg_strdup(args);
	return db;
}

static inline void blocks_free(struct db_settings *db)
{
	while (db != NULL) {
		struct db_settings *next = db->next;
		rg_free(db->driver);
		rg_free(db->args);
		rg_free(db);
		db = next;
	}
}

#endif
