/* storeprobe — drives auth's user-store clients against a real server for
 * the store tests (test_store_*.py), on an epoll loop of its own.
 *
 *   storeprobe sql FILE      FILE: a dovecot-sql.conf.ext
 *   storeprobe ldap FILE     FILE: a dovecot-ldap.conf.ext
 *
 * Reads requests from stdin, one per line: `ID TEMPLATE<TAB>VALUE`: the
 * query is TEMPLATE with every "%s" replaced by VALUE escaped on the
 * chosen connection (VALUE may hold \xHH escapes for any byte). Each answer
 * is one line on stdout, in completion order:
 *   ID OK ROWS col=value|col=value;col=value|...   (NULL shows as \N)
 *   ID ERROR text        ID TEMPFAIL text
 * With ldap, a line is `ID search FILTER<TAB>VALUE` (VALUE escaped per RFC
 * 4515 for every "%s" of FILTER; the file's base, scope and pass_attrs'
 * attributes), answered `ID OK N dn=DN|attr=v,v;dn=…`, or `ID bind
 * DN<TAB>VALUE<TAB>PASSWORD` (VALUE DN-escaped into DN), answered `ID OK`,
 * `ID INVALID text`.
 * With sql, `ID prepare TEMPLATE<TAB>VALUE` runs TEMPLATE as auth's
 * queries run (sql-template.h): a prepared statement where the driver has
 * them, each '…%s…' literal a parameter with VALUE unescaped in it, and
 * the text with VALUE escaped when the server will not prepare it.
 * `stats` prints `stats connections=N idle=N queued=N queries=N
 * timeouts=N connect_failures=N prepares=N`. EOF on stdin: exit once all are answered. */
#include "auth/auth-ldap.h"
#include "auth/auth-sql.h"
#include "auth/sql-template.h"

#include "lib/alloc.h"
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

struct db_io {
	int fd;
	db_io_callback *callback;
	void *context;
};

static int epfd, timerfd;
static db_timer_callback *timer_cb;
static void *timer_ctx;
static unsigned pending;

static uint32_t to_epoll(unsigned events)
{
	return ((events & DB_IO_READ) != 0 ? EPOLLIN : 0) | ((events & DB_IO_WRITE) != 0 ? EPOLLOUT : 0);
}

static struct db_io *io_add(void *context, int fd, unsigned events, db_io_callback *callback,
			    void *cb_context)
{
	(void)context;
	struct db_io *io = rg_calloc(1, sizeof(*io));
	io->fd = fd;
	io->callback = callback;
	io->context = cb_context;
	struct epoll_event ev = { .events = to_epoll(events), .data.ptr = io };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		perror("epoll_ctl ADD");
		exit(1);
	}
	return io;
}

static void io_update(void *context, struct db_io *io, unsigned events)
{
	(void)context;
	struct epoll_event ev = { .events = to_epoll(events), .data.ptr = io };
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0) {
		perror("epoll_ctl MOD");
		exit(1);
	}
}

static void io_remove(void *context, struct db_io *io)
{
	(void)context;
	epoll_ctl(epfd, EPOLL_CTL_DEL, io->fd, NULL);
	rg_free(io);
}

static void timer_set(void *context, void *owner, int64_t due_ms, db_timer_callback *callback,
		      void *cb_context)
{
	(void)context;
	(void)owner;
	struct itimerspec its = { 0 };
	if (due_ms > 0) {
		its.it_value.tv_sec = due_ms / 1000;
		its.it_value.tv_nsec = (due_ms % 1000) * 1000000;
	}
	timer_cb = callback;
	timer_ctx = cb_context;
	timerfd_settime(timerfd, TFD_TIMER_ABSTIME, &its, NULL);
}

struct probe_req {
	char id[64];
	char *tmpl, *value;
	size_t value_len;
};

/* tmpl with every "%s" replaced by escaped */
static char *subst(const char *tmpl, const char *escaped)
{
	size_t cap = strlen(tmpl) + 1, n = 0;
	for (const char *p = strstr(tmpl, "%s"); p != NULL; p = strstr(p + 2, "%s"))
		cap += strlen(escaped);
	char *q = rg_malloc(cap);
	for (const char *p = tmpl; *p != '\0';) {
		if (p[0] == '%' && p[1] == 's') {
			memcpy(q + n, escaped, strlen(escaped));
			n += strlen(escaped);
			p += 2;
		} else {
			q[n++] = *p++;
		}
	}
	q[n] = '\0';
	return q;
}

static char *build(void *context, struct sql_escaper *esc, const char **error_r)
{
	struct probe_req *r = context;
	char *escaped = sql_escape(esc, r->value);
	if (escaped == NULL) {
		*error_r = "cannot escape the value";
		return NULL;
	}
	char *q = subst(r->tmpl, escaped);
	rg_free(escaped);
	return q;
}

static void req_free(struct probe_req *r)
{
	rg_free(r->tmpl);
	rg_free(r->value);
	rg_free(r);
	pending--;
}

static void print_value(const char *v)
{
	if (v == NULL) {
		fputs("\\N", stdout);
		return;
	}
	for (; *v != '\0'; v++) {
		unsigned char c = (unsigned char)*v;
		if (c < 0x20 || c == '|' || c == ';' || c == '\\' || c >= 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
}

static void done(void *context, enum sql_status status, const struct sql_result *res,
		 const char *error)
{
	struct probe_req *r = context;

	if (status == SQL_OK) {
		printf("%s OK %u ", r->id, res->rows);
		for (unsigned row = 0; row < res->rows; row++) {
			if (row > 0)
				putchar(';');
			for (unsigned c = 0; c < res->cols; c++) {
				if (c > 0)
					putchar('|');
				printf("%s=", res->names[c]);
				print_value(sql_result_value(res, row, c));
			}
		}
		putchar('\n');
	} else {
		printf("%s %s %s\n", r->id, status == SQL_ERROR ? "ERROR" : "TEMPFAIL", error);
	}
	fflush(stdout);
	req_free(r);
}

/* "prepare TEMPLATE": as db-sql.c runs password_query */
static void query_prepared(struct sql_pool *pool, struct probe_req *r)
{
	struct sql_template t;
	memmove(r->tmpl, r->tmpl + 8, strlen(r->tmpl + 8) + 1);
	int stmt = -1;
	char **values = NULL;
	if (sql_template_parse(r->tmpl, &t)) {
		stmt = sql_pool_statement(pool, t.sql, t.nparams);
		if (stmt >= 0) {
			values = rg_calloc(t.nparams, sizeof(char *));
			for (unsigned i = 0; i < t.nparams; i++)
				values[i] = subst(t.params[i], r->value);
		}
		sql_template_free(&t);
	}
	sql_pool_query_stmt(pool, stmt, values, build, done, r);
}

static void search_done(void *context, enum ldap_client_status status,
			const struct ldap_client_result *res, const char *error)
{
	struct probe_req *r = context;

	if (status == LDAP_CLIENT_OK) {
		printf("%s OK %u ", r->id, res->count);
		for (unsigned i = 0; i < res->count; i++) {
			const struct ldap_client_entry *e = &res->entries[i];
			printf("%sdn=", i > 0 ? ";" : "");
			print_value(e->dn);
			for (unsigned a = 0; a < e->attr_count; a++) {
				printf("|%s=", e->attrs[a].name);
				for (unsigned v = 0; v < e->attrs[a].count; v++) {
					if (v > 0)
						putchar(',');
					print_value(e->attrs[a].values[v]);
				}
			}
		}
		putchar('\n');
	} else {
		printf("%s %s %s\n", r->id, status == LDAP_CLIENT_ERROR ? "ERROR" :
		       status == LDAP_CLIENT_INVALID_CREDENTIALS ? "INVALID" : "TEMPFAIL", error);
	}
	fflush(stdout);
	req_free(r);
}

static void bind_done(void *context, enum ldap_client_status status, const char *error)
{
	struct probe_req *r = context;

	if (status == LDAP_CLIENT_OK)
		printf("%s OK\n", r->id);
	else
		printf("%s %s %s\n", r->id, status == LDAP_CLIENT_INVALID_CREDENTIALS ? "INVALID" :
		       status == LDAP_CLIENT_ERROR ? "ERROR" : "TEMPFAIL", error);
	fflush(stdout);
	req_free(r);
}

static char *unhex(const char *s, size_t *len_r)
{
	char *out = rg_malloc(strlen(s) + 1), *o = out;
	while (*s != '\0') {
		unsigned v;
		if (s[0] == '\\' && s[1] == 'x' && sscanf(s + 2, "%2x", &v) == 1) {
			*o++ = (char)v;
			s += 4;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
	*len_r = (size_t)(o - out);
	return out;
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "sql") != 0 && strcmp(argv[1], "ldap") != 0)) {
		fprintf(stderr, "usage: storeprobe sql|ldap FILE\n");
		return 2;
	}
	log_init("storeprobe");
	bool ldap = strcmp(argv[1], "ldap") == 0;
	struct sql_conf conf;
	struct ldap_conf lconf;
	struct sql_pool *pool = NULL;
	struct ldap_client *lc = NULL;
	char *error = NULL;
	epfd = epoll_create1(EPOLL_CLOEXEC);
	timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	struct db_loop loop = { .io_add = io_add, .io_update = io_update, .io_remove = io_remove,
				.timer_set = timer_set };
	if (ldap) {
		if (ldap_conf_load(argv[2], &lconf, &error) == 0)
			lc = ldap_client_new("ldap(probe)", &lconf, &loop, &error);
	} else {
		if (sql_conf_load(argv[2], &conf, &error) == 0) {
			pool = sql_pool_new("sql(probe)", &conf, &loop, &error);
			sql_conf_free(&conf);
		}
	}
	if (pool == NULL && lc == NULL) {
		fprintf(stderr, "%s\n", error);
		return 1;
	}
	fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);
	int tmark;
	ev.data.ptr = &tmark;
	epoll_ctl(epfd, EPOLL_CTL_ADD, timerfd, &ev);

	char buf[65536];
	size_t have = 0;
	bool eof = false;
	while (!eof || pending > 0) {
		struct epoll_event evs[16];
		int n = epoll_wait(epfd, evs, 16, -1);
		if (n < 0 && errno == EINTR)
			continue;
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == &tmark) {
				uint64_t t;
				if (read(timerfd, &t, sizeof(t)) > 0 && timer_cb != NULL)
					timer_cb(timer_ctx);
				continue;
			}
			if (evs[i].data.ptr != NULL) {
				struct db_io *io = evs[i].data.ptr;
				unsigned re = ((evs[i].events & EPOLLIN) ? DB_IO_READ : 0) |
					((evs[i].events & EPOLLOUT) ? DB_IO_WRITE : 0) |
					((evs[i].events & (EPOLLERR | EPOLLHUP)) ? DB_IO_ERROR | DB_IO_READ : 0);
				io->callback(io->context, re);
				/* one event per wakeup: a callback may free others' io */
				break;
			}
			ssize_t r = read(0, buf + have, sizeof(buf) - 1 - have);
			if (r == 0 || (r < 0 && errno != EAGAIN)) {
				eof = true;
				epoll_ctl(epfd, EPOLL_CTL_DEL, 0, NULL);
				continue;
			}
			if (r < 0)
				continue;
			have += (size_t)r;
			char *nl;
			while ((nl = memchr(buf, '\n', have)) != NULL) {
				*nl = '\0';
				if (ldap) {
					char *sp = strchr(buf, ' '), *op = sp != NULL ? sp + 1 : NULL;
					char *sp2 = op != NULL ? strchr(op, ' ') : NULL;
					char *tab = sp2 != NULL ? strchr(sp2, '\t') : NULL;
					if (tab != NULL) {
						struct probe_req *pr = rg_calloc(1, sizeof(*pr));
						snprintf(pr->id, sizeof(pr->id), "%.*s", (int)(sp - buf), buf);
						pr->tmpl = rg_strndup(sp2 + 1, (size_t)(tab - sp2 - 1));
						char *tab2 = strchr(tab + 1, '\t');
						if (tab2 != NULL)
							*tab2 = '\0';
						pr->value = unhex(tab + 1, &pr->value_len);
						pending++;
						if (strncmp(op, "bind ", 5) == 0) {
							char *esc = ldap_dn_escape(pr->value, pr->value_len);
							char *dn = subst(pr->tmpl, esc);
							size_t pl;
							char *pw = unhex(tab2 != NULL ? tab2 + 1 : "", &pl);
							ldap_client_bind(lc, dn, pw, bind_done, pr);
							rg_free(pw);
							rg_free(dn);
							rg_free(esc);
						} else {
							char *esc = ldap_filter_escape(pr->value, pr->value_len);
							char *filter = subst(pr->tmpl, esc);
							ldap_client_search(lc, lconf.base, filter, lconf.pass_attrs.attrs,
									   search_done, pr);
							rg_free(filter);
							rg_free(esc);
						}
					}
				} else if (strcmp(buf, "stats") == 0) {
					struct sql_pool_stats st;
					sql_pool_get_stats(pool, &st);
					printf("stats connections=%u idle=%u queued=%u queries=%llu timeouts=%llu "
					       "connect_failures=%llu prepares=%llu\n", st.connections, st.idle,
					       st.queued, st.queries, st.timeouts, st.connect_failures,
					       st.prepares);
					fflush(stdout);
				} else {
					char *sp = strchr(buf, ' '), *tab = sp != NULL ? strchr(sp, '\t') : NULL;
					if (tab != NULL) {
						struct probe_req *pr = rg_calloc(1, sizeof(*pr));
						snprintf(pr->id, sizeof(pr->id), "%.*s", (int)(sp - buf), buf);
						pr->tmpl = rg_strndup(sp + 1, (size_t)(tab - sp - 1));
						pr->value = unhex(tab + 1, &pr->value_len);
						pending++;
						if (strncmp(pr->tmpl, "prepare ", 8) == 0)
							query_prepared(pool, pr);
						else
							sql_pool_query(pool, build, done, pr);
					}
				}
				size_t used = (size_t)(nl - buf) + 1;
				memmove(buf, nl + 1, have - used);
				have -= used;
			}
		}
	}
	sql_pool_free(pool);
	if (lc != NULL) {
		ldap_client_free(lc);
		ldap_conf_free(&lconf);
	}
	return 0;
}
