/* db-store.c — shared pieces of the sql and ldap drivers (db-store.h). */
#include "auth/db-store.h"

#include "auth/auth-loop.h"
#include "auth/auth-scheme.h"

#include "lib/alloc.h"
#include "lib/log.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

/* ---- the loop ------------------------------------------------------------ */

struct db_io_ctx {
	struct auth_io *io;
	db_io_callback *cb;
	void *context;
};

/* one timer per owner (a pool or an LDAP client) */
struct db_timer {
	struct db_timer *next;
	void *owner;
	struct auth_timeout *to;
	db_timer_callback *cb;
	void *context;
};

static struct db_timer *timers;

static uint32_t to_epoll(unsigned events)
{
	return ((events & DB_IO_READ) != 0 ? EPOLLIN : 0u) |
		((events & DB_IO_WRITE) != 0 ? EPOLLOUT : 0u);
}

static void io_cb(void *context, uint32_t ev)
{
	struct db_io_ctx *c = context;
	unsigned re = ((ev & EPOLLIN) != 0 ? DB_IO_READ : 0u) | ((ev & EPOLLOUT) != 0 ? DB_IO_WRITE : 0u);

	if ((ev & (EPOLLERR | EPOLLHUP)) != 0)
		re |= DB_IO_ERROR | DB_IO_READ;
	c->cb(c->context, re);
}

static struct db_io *loop_io_add(void *context, int fd, unsigned events, db_io_callback *cb,
				 void *cb_context)
{
	(void)context;
	struct db_io_ctx *c = rg_calloc(1, sizeof(*c));
	c->cb = cb;
	c->context = cb_context;
	c->io = auth_io_add(fd, to_epoll(events), io_cb, c);
	if (c->io == NULL)
		log_error("store client: cannot watch fd %d (no event loop here)", fd);
	return (struct db_io *)c;
}

static void loop_io_update(void *context, struct db_io *io, unsigned events)
{
	(void)context;
	struct db_io_ctx *c = (struct db_io_ctx *)io;
	if (c->io != NULL)
		auth_io_set_events(c->io, to_epoll(events));
}

static void loop_io_remove(void *context, struct db_io *io)
{
	(void)context;
	struct db_io_ctx *c = (struct db_io_ctx *)io;
	if (c->io != NULL)
		auth_io_remove(&c->io);
	rg_free(c);
}

static void timer_fire(void *context)
{
	struct db_timer *t = context;
	t->to = NULL;
	t->cb(t->context);
}

static void loop_timer_set(void *context, void *owner, int64_t due_ms, db_timer_callback *cb,
			   void *cb_context)
{
	(void)context;
	struct db_timer **p = &timers, *t;

	while (*p != NULL && (*p)->owner != owner)
		p = &(*p)->next;
	t = *p;
	if (t == NULL) {
		if (due_ms == 0)
			return;
		t = rg_calloc(1, sizeof(*t));
		t->owner = owner;
		t->next = timers;
		timers = t;
	}
	if (t->to != NULL)
		auth_timeout_remove(&t->to);
	if (due_ms == 0) {
		/* unlinked: the owner may be going away */
		for (p = &timers; *p != t; p = &(*p)->next)
			;
		*p = t->next;
		rg_free(t);
		return;
	}
	int64_t now = db_now_ms();
	t->cb = cb;
	t->context = cb_context;
	t->to = auth_timeout_add(due_ms > now ? (unsigned)(due_ms - now) : 0u, timer_fire, t);
}

const struct db_loop db_store_loop = {
	.io_add = loop_io_add,
	.io_update = loop_io_update,
	.io_remove = loop_io_remove,
	.timer_set = loop_timer_set,
};

/* ---- %-variables: auth_request_expand() with the store's escaping ------- */

struct expand_escape {
	db_escape_callback *escape;
	void *context;
	bool failed;
};

static char *expand_escape_cb(const char *value, void *context)
{
	struct expand_escape *e = context;
	char *out = e->escape(value, strlen(value), e->context);
	if (out == NULL) {
		/* var-expand wants a string: the failure is reported after */
		e->failed = true;
		return rg_strdup("");
	}
	return out;
}

char *db_store_expand(const char *tmpl, const struct auth_db_request *req,
		      db_escape_callback *escape, void *escape_context, const char **error_r)
{
	static char errbuf[256];
	struct expand_escape e = { .escape = escape, .context = escape_context };
	char *result = NULL, *error = NULL;

	if (auth_request_expand(req, tmpl, escape != NULL ? expand_escape_cb : NULL, &e, &result,
				&error) < 0) {
		snprintf(errbuf, sizeof(errbuf), "%s", error != NULL ? error : "cannot expand");
		rg_free(error);
		*error_r = errbuf;
		return NULL;
	}
	if (e.failed) {
		rg_free(result);
		*error_r = "a value cannot be escaped for the store";
		return NULL;
	}
	return result;
}

/* one %-variable token at p ('%' there): "%u", "%Lu", "%1.3n", "%{ldap:x}";
   its length, 0 for "%%" or a broken one */
static size_t var_token_len(const char *p)
{
	size_t i = 1;
	if (p[i] == '%')
		return 0;
	while (p[i] == '-' || p[i] == '.' || (p[i] >= '0' && p[i] <= '9'))
		i++;
	while (p[i] >= 'A' && p[i] <= 'Z')
		i++;
	if (p[i] == '{') {
		const char *close = strchr(p + i, '}');
		return close != NULL ? (size_t)(close - p) + 1 : 0;
	}
	return (p[i] >= 'a' && p[i] <= 'z') || p[i] == '$' ? i + 1 : 0;
}

/* whether the TAB-separated list has the token p[0..n) */
static bool token_in(const char *list, const char *p, size_t n)
{
	while (*list != '\0') {
		size_t len = strcspn(list, "\t");
		if (len == n && memcmp(list, p, n) == 0)
			return true;
		list += len;
		if (*list == '\t')
			list++;
	}
	return false;
}

char *db_store_cache_key(const char *const *templates, unsigned count)
{
	char *key = rg_strdup("");
	size_t len = 0;
	for (unsigned t = 0; t < count; t++) {
		for (const char *p = templates[t] != NULL ? strchr(templates[t], '%') : NULL; p != NULL;
		     p = strchr(p, '%')) {
			size_t n = var_token_len(p);
			if (n == 0) {
				p += p[1] == '%' ? 2 : 1;
				continue;
			}
			/* %$ and %{ldap:…} are the entry's values, not the request's */
			bool skip = p[n - 1] == '$' || strncmp(p, "%{ldap:", 7) == 0 ||
				    token_in(key, p, n);
			if (!skip) {
				key = rg_realloc(key, len + n + 2);
				if (len > 0)
					key[len++] = '\t';
				memcpy(key + len, p, n);
				len += n;
				key[len] = '\0';
			}
			p += n;
		}
	}
	if (len == 0) {
		/* nothing from the request: no key tells two users apart */
		rg_free(key);
		return NULL;
	}
	return key;
}

/* ---- passwords ----------------------------------------------------------- */

const char *db_store_log_user(const struct auth_db_request *req, char *buf, size_t size)
{
	if (req->user == NULL || req->user[0] == '\0')
		return "?";
	return log_escape(req->user, strlen(req->user), 64, buf, size);
}

const char *db_store_scheme(const char *stored, const char *default_scheme, char *scheme_buf,
			    size_t size, const char **scheme_r)
{
	if (stored[0] == '{') {
		const char *close = strchr(stored, '}');
		size_t n = close != NULL ? (size_t)(close - stored - 1) : 0;
		if (close != NULL && n > 0 && n < size) {
			for (size_t i = 0; i < n; i++)
				scheme_buf[i] = (char)toupper((unsigned char)stored[1 + i]);
			scheme_buf[n] = '\0';
			*scheme_r = scheme_buf;
			return close + 1;
		}
	}
	*scheme_r = default_scheme;
	return stored;
}

enum passdb_result db_store_verify(struct auth_db_request *req, const char *stored,
				   const char *default_scheme, const uint8_t *pw, size_t pw_len)
{
	char lu[300], schemebuf[64];
	const char *scheme;

	if (stored == NULL || stored[0] == '\0') {
		if (auth_fields_get(&req->passdb_fields, "nopassword") != NULL)
			return PASSDB_RESULT_OK;
		log_info("%s(%s,%s): Empty password returned without nopassword", req->db_name,
			 db_store_log_user(req, lu, sizeof(lu)), req->rip);
		return PASSDB_RESULT_PASSWORD_MISMATCH;
	}
	const char *hash = db_store_scheme(stored, default_scheme, schemebuf, sizeof(schemebuf),
					   &scheme);
	switch (auth_scheme_verify(scheme, hash, pw, pw_len)) {
	case SCHEME_OK:
		return PASSDB_RESULT_OK;
	case SCHEME_MISMATCH:
		log_info("%s(%s,%s): Password mismatch", req->db_name,
			 db_store_log_user(req, lu, sizeof(lu)), req->rip);
		return PASSDB_RESULT_PASSWORD_MISMATCH;
	case SCHEME_UNKNOWN:
		log_error("%s(%s,%s): unknown password scheme %s", req->db_name,
			  db_store_log_user(req, lu, sizeof(lu)), req->rip, scheme);
		return PASSDB_RESULT_INTERNAL_FAILURE;
	case SCHEME_BAD_HASH:
		log_error("%s(%s,%s): the stored password is not a valid %s hash", req->db_name,
			  db_store_log_user(req, lu, sizeof(lu)), req->rip, scheme);
		return PASSDB_RESULT_INTERNAL_FAILURE;
	}
	return PASSDB_RESULT_INTERNAL_FAILURE;
}
