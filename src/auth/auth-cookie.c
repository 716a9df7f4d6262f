#include "auth/auth-cookie.h"
#include "auth/auth-scheme.h"

#include "lib/alloc.h"
#include "lib/hash.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

struct cookie {
	struct cookie *hnext;            /* hash chain */
	struct cookie *older, *newer;    /* age list: oldest at t->oldest */
	int64_t created_ms;
	uint32_t login_pid;
	uint32_t hash;
	char hex[COOKIE_HEX_LEN + 1];
	struct auth_user *user;
};

struct cookie_table {
	struct cookie **buckets;
	unsigned mask, count, max;
	struct cookie *oldest, *newest;
};

void auth_user_free(struct auth_user *user)
{
	if (user == NULL)
		return;
	rg_free(user->user);
	rg_free(user->home);
	rg_free(user->mail);
	rg_free(user->extra);
	rg_free(user);
}

struct cookie_table *cookie_table_new(unsigned max_entries)
{
	struct cookie_table *t = rg_calloc(1, sizeof(*t));
	unsigned nb = hash_buckets(max_entries, 65536);
	t->buckets = rg_calloc(nb, sizeof(*t->buckets));
	t->mask = nb - 1;
	t->max = max_entries == 0 ? 1 : max_entries;
	return t;
}

static uint32_t cookie_hash(const char *hex)
{
	/* the cookie is random: its first hex digits are hash enough */
	uint32_t h = 0;
	for (unsigned i = 0; i < 8 && hex[i] != '\0'; i++)
		h = h * 31 + (uint8_t)hex[i];
	return h;
}

static void cookie_unlink(struct cookie_table *t, struct cookie *c)
{
	struct cookie **pp = &t->buckets[c->hash & t->mask];
	while (*pp != c)
		pp = &(*pp)->hnext;
	*pp = c->hnext;
	if (c->older != NULL)
		c->older->newer = c->newer;
	else
		t->oldest = c->newer;
	if (c->newer != NULL)
		c->newer->older = c->older;
	else
		t->newest = c->older;
	t->count--;
}

static void cookie_destroy(struct cookie *c)
{
	auth_user_free(c->user);
	explicit_bzero(c->hex, sizeof(c->hex));
	rg_free(c);
}

void cookie_table_free(struct cookie_table *t)
{
	if (t == NULL)
		return;
	while (t->oldest != NULL) {
		struct cookie *c = t->oldest;
		cookie_unlink(t, c);
		cookie_destroy(c);
	}
	rg_free(t->buckets);
	rg_free(t);
}

unsigned cookie_table_count(const struct cookie_table *t)
{
	return t->count;
}

void cookie_expire(struct cookie_table *t, int64_t now_ms)
{
	while (t->oldest != NULL && now_ms - t->oldest->created_ms >= COOKIE_TTL_MS) {
		struct cookie *c = t->oldest;
		cookie_unlink(t, c);
		cookie_destroy(c);
	}
}

int cookie_add(struct cookie_table *t, uint32_t login_pid, struct auth_user *user,
	       int64_t now_ms, char cookie_r[COOKIE_HEX_LEN + 1])
{
	static const char hexdigits[] = "0123456789abcdef";
	uint8_t rnd[COOKIE_HEX_LEN / 2];
	size_t got = 0;
	while (got < sizeof(rnd)) {
		ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		got += (size_t)n;
	}

	cookie_expire(t, now_ms);
	while (t->count >= t->max) {
		struct cookie *c = t->oldest;
		cookie_unlink(t, c);
		cookie_destroy(c);
	}

	struct cookie *c = rg_calloc(1, sizeof(*c));
	for (unsigned i = 0; i < sizeof(rnd); i++) {
		c->hex[i * 2] = hexdigits[rnd[i] >> 4];
		c->hex[i * 2 + 1] = hexdigits[rnd[i] & 15];
	}
	c->hex[COOKIE_HEX_LEN] = '\0';
	explicit_bzero(rnd, sizeof(rnd));
	c->created_ms = now_ms;
	c->login_pid = login_pid;
	c->user = user;
	c->hash = cookie_hash(c->hex);
	c->hnext = t->buckets[c->hash & t->mask];
	t->buckets[c->hash & t->mask] = c;
	c->older = t->newest;
	if (t->newest != NULL)
		t->newest->newer = c;
	else
		t->oldest = c;
	t->newest = c;
	t->count++;
	memcpy(cookie_r, c->hex, sizeof(c->hex));
	return 0;
}

enum cookie_result cookie_take(struct cookie_table *t, const char *cookie, uint32_t login_pid,
			       int64_t now_ms, struct auth_user **user_r)
{
	*user_r = NULL;
	size_t len = strlen(cookie);
	if (len != COOKIE_HEX_LEN)
		return COOKIE_UNKNOWN;
	struct cookie *c = t->buckets[cookie_hash(cookie) & t->mask];
	while (c != NULL && !auth_mem_equal(c->hex, COOKIE_HEX_LEN, cookie, len))
		c = c->hnext;
	if (c == NULL)
		return COOKIE_UNKNOWN;
	cookie_unlink(t, c);
	enum cookie_result res = COOKIE_OK;
	if (now_ms - c->created_ms >= COOKIE_TTL_MS)
		res = COOKIE_EXPIRED;
	else if (c->login_pid != login_pid)
		res = COOKIE_PID_MISMATCH;
	if (res == COOKIE_OK) {
		*user_r = c->user;
		c->user = NULL;
	}
	cookie_destroy(c);
	return res;
}

const char *cookie_result_str(enum cookie_result res)
{
	switch (res) {
	case COOKIE_OK:
		return "ok";
	case COOKIE_UNKNOWN:
		return "unknown or already used cookie";
	case COOKIE_EXPIRED:
		return "expired cookie";
	case COOKIE_PID_MISMATCH:
		return "cookie belongs to another login process";
	}
	return "?";
}
