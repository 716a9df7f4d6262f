/* auth-ldap.c — the asynchronous LDAP client (see auth-ldap.h). */
#include "auth/auth-ldap.h"

#include "lib/alloc.h"
#include "lib/log.h"

#include <ldap.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#define LDAP_BACKOFF_MIN_MS 1000
#define LDAP_BACKOFF_MAX_MS 30000
/* searches in flight on the search connection; more wait in the queue */
#define LDAP_MAX_PENDING 256

enum lreq_type { LREQ_SEARCH, LREQ_BIND };

struct lreq {
	struct lreq *next;
	enum lreq_type type;
	char *base, *filter, **attrs;
	char *dn, *password;
	ldap_search_callback *search_cb;
	ldap_bind_callback *bind_cb;
	void *context;
	int64_t deadline_ms;
	int msgid;             /* > 0 while running */
	unsigned page_size;    /* > 0: RFC 2696 paged results (iterate) */
	struct berval cookie;  /* the server's cookie for the next page */
	struct ldap_client_result result;
};

enum lconn_state { LC_DOWN, LC_BINDING, LC_READY };

struct lconn {
	struct ldap_client *client;
	bool for_binds;
	LDAP *ld;
	enum lconn_state state;
	int fd;
	struct db_io *io;
	int bind_msgid;
	struct lreq *running;  /* searches in flight, or the one user bind */
	unsigned running_count;
	int64_t retry_at_ms;
	unsigned backoff_ms;
};

struct ldap_client {
	char *name;
	struct ldap_conf conf; /* the fields used, copied */
	struct db_loop loop;
	struct lconn search, bind;
	struct lreq *queue, *bind_queue; /* FIFO heads */
	int64_t timer_due_ms;
	bool freeing;
};

static void client_dispatch(struct ldap_client *client);

const struct ldap_client_attr *ldap_client_entry_attr(const struct ldap_client_entry *e,
						      const char *name)
{
	for (unsigned i = 0; i < e->attr_count; i++) {
		if (strcasecmp(e->attrs[i].name, name) == 0)
			return &e->attrs[i];
	}
	return NULL;
}

static void result_clear(struct ldap_client_result *r)
{
	for (unsigned i = 0; i < r->count; i++) {
		struct ldap_client_entry *e = &r->entries[i];
		for (unsigned a = 0; a < e->attr_count; a++) {
			for (unsigned v = 0; v < e->attrs[a].count; v++)
				rg_free(e->attrs[a].values[v]);
			rg_free(e->attrs[a].values);
			rg_free(e->attrs[a].name);
		}
		rg_free(e->attrs);
		rg_free(e->dn);
	}
	rg_free(r->entries);
	memset(r, 0, sizeof(*r));
}

static void lreq_free(struct lreq *req)
{
	rg_free(req->base);
	rg_free(req->filter);
	for (char **a = req->attrs; a != NULL && *a != NULL; a++)
		rg_free(*a);
	rg_free(req->attrs);
	rg_free(req->dn);
	ber_memfree(req->cookie.bv_val);
	if (req->password != NULL) {
		explicit_bzero(req->password, strlen(req->password));
		rg_free(req->password);
	}
	result_clear(&req->result);
	rg_free(req);
}

static void lreq_finish(struct lreq *req, enum ldap_client_status st, const char *error)
{
	if (req->type == LREQ_SEARCH)
		req->search_cb(req->context, st, st == LDAP_CLIENT_OK ? &req->result : NULL, error);
	else
		req->bind_cb(req->context, st, error);
	lreq_free(req);
}

static void fifo_push(struct lreq **head, struct lreq *req)
{
	req->next = NULL;
	while (*head != NULL)
		head = &(*head)->next;
	*head = req;
}

static void lconn_io_callback(void *context, unsigned revents);

static void lconn_close(struct lconn *c)
{
	struct ldap_client *client = c->client;

	if (c->io != NULL) {
		client->loop.io_remove(client->loop.context, c->io);
		c->io = NULL;
	}
	if (c->ld != NULL)
		ldap_unbind_ext(c->ld, NULL, NULL);
	c->ld = NULL;
	c->fd = -1;
	c->state = LC_DOWN;
}

/* libldap says only "Connect error" / "Can't contact LDAP server" when a
   TLS handshake fails; the reason (an untrusted certificate, a name that
   does not match) is in its trace output. While a connection is being made
   (rare, and blocking anyway) the trace level is on and its "TLS: " lines
   are kept here for lconn_failed(); the rest is dropped. */
static char tls_reason[160];
/* OpenLDAP's LDAP_DEBUG_TRACE (its ldap_log.h is not installed) */
#define LDAP_TRACE_LEVEL 0x0001

static void trace_capture(const char *line)
{
	if (strncmp(line, "TLS: ", 5) != 0 || strstr(line, "can't connect") != NULL)
		return;
	snprintf(tls_reason, sizeof(tls_reason), "%.*s", (int)strcspn(line, "\n"), line);
}

static void trace_connect(bool on)
{
	static bool hooked;
	if (!hooked) {
		(void)ber_set_option(NULL, LBER_OPT_LOG_PRINT_FN, (const void *)trace_capture);
		hooked = true;
	}
	int level = on ? LDAP_TRACE_LEVEL : 0;
	(void)ldap_set_option(NULL, LDAP_OPT_DEBUG_LEVEL, &level);
	if (on)
		tls_reason[0] = '\0';
}

/* The connection is lost or could not be made: fail what runs on it. */
static void lconn_failed(struct lconn *c, const char *what, int rc, bool connecting)
{
	struct ldap_client *client = c->client;
	struct lreq *failed = c->running;

	/* libldap's own detail (a TLS certificate problem, say) names the cause */
	char *diag = NULL;
	if (c->ld != NULL &&
	    ldap_get_option(c->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag) != LDAP_OPT_SUCCESS)
		diag = NULL;
	if (diag != NULL && strcmp(diag, "(unknown error code)") == 0) {
		ldap_memfree(diag);
		diag = NULL;
	}
	const char *why = connecting && tls_reason[0] != '\0' ? tls_reason : diag;
	log_error("%s: %s%s: %s%s%s%s", client->name, c->for_binds ? "auth bind connection: " : "",
		  what, ldap_err2string(rc), why != NULL && why[0] != '\0' ? " (" : "",
		  why != NULL ? why : "", why != NULL && why[0] != '\0' ? ")" : "");
	ldap_memfree(diag);
	tls_reason[0] = '\0';
	c->running = NULL;
	c->running_count = 0;
	lconn_close(c);
	if (connecting) {
		c->backoff_ms = c->backoff_ms == 0 ? LDAP_BACKOFF_MIN_MS :
			(c->backoff_ms * 2 > LDAP_BACKOFF_MAX_MS ? LDAP_BACKOFF_MAX_MS : c->backoff_ms * 2);
		c->retry_at_ms = db_now_ms() + c->backoff_ms;
	} else {
		c->retry_at_ms = 0;
	}
	while (failed != NULL) {
		struct lreq *req = failed;
		failed = req->next;
		lreq_finish(req, LDAP_CLIENT_TEMPFAIL, "connection to the LDAP server lost");
	}
}

static int set_opt(LDAP *ld, int opt, const void *value, const char *name, char **error_r)
{
	int rc = ldap_set_option(ld, opt, value);
	if (rc != LDAP_OPT_SUCCESS) {
		*error_r = rg_strdup_printf("ldap_set_option(%s): %s", name, ldap_err2string(rc));
		return -1;
	}
	return 0;
}

static int lconn_set_tls(struct ldap_client *client, LDAP *ld, char **error_r)
{
	const struct ldap_conf *conf = &client->conf;
	struct { int opt; const char *value, *name; } files[] = {
		{ LDAP_OPT_X_TLS_CACERTFILE, conf->tls_ca_cert_file, "tls_ca_cert_file" },
		{ LDAP_OPT_X_TLS_CACERTDIR, conf->tls_ca_cert_dir, "tls_ca_cert_dir" },
		{ LDAP_OPT_X_TLS_CERTFILE, conf->tls_cert_file, "tls_cert_file" },
		{ LDAP_OPT_X_TLS_KEYFILE, conf->tls_key_file, "tls_key_file" },
		{ LDAP_OPT_X_TLS_CIPHER_SUITE, conf->tls_cipher_suite, "tls_cipher_suite" },
	};
	bool any = false;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (files[i].value != NULL) {
			if (set_opt(ld, files[i].opt, files[i].value, files[i].name, error_r) < 0)
				return -1;
			any = true;
		}
	}
	if (conf->tls_require_cert >= 0) {
		int v = conf->tls_require_cert;
		if (set_opt(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &v, "tls_require_cert", error_r) < 0)
			return -1;
		any = true;
	}
	if (any) {
		int zero = 0;
		if (set_opt(ld, LDAP_OPT_X_TLS_NEWCTX, &zero, "new TLS context", error_r) < 0)
			return -1;
	}
	return 0;
}

static int lconn_connect(struct lconn *c, const char *dn, const char *password);

/* Open c and send its first bind (dn/dnpass for searches, the user's for
   auth binds). The connect and TLS happen here (bounded, see the header). */
static int lconn_open(struct lconn *c, const char *dn, const char *password)
{
	trace_connect(true);
	int ret = lconn_connect(c, dn, password);
	trace_connect(false);
	return ret;
}

static int lconn_connect(struct lconn *c, const char *dn, const char *password)
{
	struct ldap_client *client = c->client;
	const struct ldap_conf *conf = &client->conf;
	char *error = NULL;
	LDAP *ld = NULL;
	int rc = ldap_initialize(&ld, conf->uris);

	if (rc != LDAP_SUCCESS) {
		lconn_failed(c, "ldap_initialize failed", rc, true);
		return -1;
	}
	c->ld = ld;
	int version = LDAP_VERSION3, deref;
	switch (conf->deref) {
	case LDAP_CONF_DEREF_SEARCHING:
		deref = LDAP_DEREF_SEARCHING;
		break;
	case LDAP_CONF_DEREF_FINDING:
		deref = LDAP_DEREF_FINDING;
		break;
	case LDAP_CONF_DEREF_ALWAYS:
		deref = LDAP_DEREF_ALWAYS;
		break;
	default:
		deref = LDAP_DEREF_NEVER;
		break;
	}
	struct timeval tv = { .tv_sec = conf->request_timeout_ms / 1000,
			      .tv_usec = (conf->request_timeout_ms % 1000) * 1000 };
	if (set_opt(ld, LDAP_OPT_PROTOCOL_VERSION, &version, "version", &error) < 0 ||
	    set_opt(ld, LDAP_OPT_DEREF, &deref, "deref", &error) < 0 ||
	    set_opt(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv, "network timeout", &error) < 0 ||
	    set_opt(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF, "referrals", &error) < 0 ||
	    lconn_set_tls(client, ld, &error) < 0) {
		log_error("%s: %s", client->name, error);
		rg_free(error);
		lconn_failed(c, "setting up the connection failed", LDAP_PARAM_ERROR, true);
		return -1;
	}
	if (conf->tls) {
		rc = ldap_start_tls_s(ld, NULL, NULL);
		if (rc != LDAP_SUCCESS) {
			lconn_failed(c, "StartTLS failed", rc, true);
			return -1;
		}
	}
	struct berval cred = { .bv_val = (char *)(password != NULL ? password : ""),
			       .bv_len = password != NULL ? strlen(password) : 0 };
	rc = ldap_sasl_bind(ld, dn != NULL ? dn : "", LDAP_SASL_SIMPLE, &cred, NULL, NULL, &c->bind_msgid);
	if (rc != LDAP_SUCCESS) {
		lconn_failed(c, "connect/bind failed", rc, true);
		return -1;
	}
	int fd = -1;
	if (ldap_get_option(ld, LDAP_OPT_DESC, &fd) != LDAP_OPT_SUCCESS || fd < 0) {
		lconn_failed(c, "no socket after connecting", LDAP_SERVER_DOWN, true);
		return -1;
	}
	/* without TLS, liblber reads each message's header and body with a
	 * read() each (4 per lookup: entry + result); a read-ahead layer
	 * under it takes what the socket has in one. (TLS reads whole
	 * records already.) */
	Sockbuf *sb = NULL;
	if (!ldap_tls_inplace(ld) && ldap_get_option(ld, LDAP_OPT_SOCKBUF, &sb) == LDAP_OPT_SUCCESS &&
	    sb != NULL)
		ber_sockbuf_add_io(sb, &ber_sockbuf_io_readahead, LBER_SBIOD_LEVEL_PROVIDER, NULL);
	c->fd = fd;
	c->io = client->loop.io_add(client->loop.context, fd, DB_IO_READ, lconn_io_callback, c);
	c->state = LC_BINDING;
	return 0;
}

static struct lreq *running_take(struct lconn *c, int msgid)
{
	for (struct lreq **p = &c->running; *p != NULL; p = &(*p)->next) {
		if ((*p)->msgid == msgid) {
			struct lreq *req = *p;
			*p = req->next;
			req->next = NULL;
			c->running_count--;
			return req;
		}
	}
	return NULL;
}

static struct lreq *running_find(struct lconn *c, int msgid)
{
	for (struct lreq *r = c->running; r != NULL; r = r->next) {
		if (r->msgid == msgid)
			return r;
	}
	return NULL;
}

static void entry_add(LDAP *ld, LDAPMessage *msg, struct lreq *req)
{
	struct ldap_client_result *r = &req->result;
	BerElement *ber = NULL;

	r->entries = rg_realloc(r->entries, sizeof(*r->entries) * (r->count + 1));
	struct ldap_client_entry *e = &r->entries[r->count++];
	memset(e, 0, sizeof(*e));
	char *dn = ldap_get_dn(ld, msg);
	e->dn = rg_strdup(dn != NULL ? dn : "");
	ldap_memfree(dn);
	for (char *a = ldap_first_attribute(ld, msg, &ber); a != NULL;
	     a = ldap_next_attribute(ld, msg, ber)) {
		struct berval **vals = ldap_get_values_len(ld, msg, a);
		e->attrs = rg_realloc(e->attrs, sizeof(*e->attrs) * (e->attr_count + 1));
		struct ldap_client_attr *at = &e->attrs[e->attr_count++];
		at->name = rg_strdup(a);
		at->count = (unsigned)ldap_count_values_len(vals);
		at->values = rg_calloc(at->count + 1, sizeof(char *));
		for (unsigned i = 0; i < at->count; i++)
			at->values[i] = rg_strndup(vals[i]->bv_val, vals[i]->bv_len);
		ldap_value_free_len(vals);
		ldap_memfree(a);
	}
	if (ber != NULL)
		ber_free(ber, 0);
}

/* A paged search's page ended well: true when the server gave a cookie
   for another page (req is queued again to ask for it). */
static bool next_page(struct lconn *c, struct lreq *req, LDAPControl **ctrls)
{
	LDAPControl *pc = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, ctrls, NULL);
	ber_int_t estimate;
	struct berval cookie = { 0, NULL };

	if (pc == NULL || ldap_parse_pageresponse_control(c->ld, pc, &estimate, &cookie) !=
	    LDAP_SUCCESS)
		return false; /* no paging (the server ignored the control): all there is */
	ber_memfree(req->cookie.bv_val);
	req->cookie = cookie;
	if (cookie.bv_len == 0)
		return false; /* the last page */
	struct ldap_client *client = c->client;
	req->msgid = 0;
	req->deadline_ms = db_now_ms() + client->conf.request_timeout_ms;
	req->next = client->queue;
	client->queue = req;
	return true;
}

static void lconn_message(struct lconn *c, LDAPMessage *msg)
{
	int msgid = ldap_msgid(msg), type = ldap_msgtype(msg), rc = LDAP_OTHER;
	char *matched = NULL, *text = NULL;
	LDAPControl **ctrls = NULL;

	if (type == LDAP_RES_BIND || type == LDAP_RES_SEARCH_RESULT) {
		if (ldap_parse_result(c->ld, msg, &rc, &matched, &text, NULL,
				      type == LDAP_RES_SEARCH_RESULT ? &ctrls : NULL, 0) != LDAP_SUCCESS)
			rc = LDAP_OTHER;
	}
	if (type == LDAP_RES_BIND && msgid == c->bind_msgid) {
		c->bind_msgid = -1;
		if (c->for_binds) {
			struct lreq *req = c->running;
			c->running = NULL;
			c->running_count = 0;
			c->state = LC_READY;
			c->backoff_ms = 0;
			if (req != NULL) {
				if (rc == LDAP_SUCCESS)
					lreq_finish(req, LDAP_CLIENT_OK, NULL);
				else if (rc == LDAP_INVALID_CREDENTIALS || rc == LDAP_INVALID_DN_SYNTAX ||
					 rc == LDAP_NO_SUCH_OBJECT || rc == LDAP_INAPPROPRIATE_AUTH)
					lreq_finish(req, LDAP_CLIENT_INVALID_CREDENTIALS, ldap_err2string(rc));
				else
					lreq_finish(req, LDAP_CLIENT_TEMPFAIL, ldap_err2string(rc));
			}
		} else if (rc == LDAP_SUCCESS) {
			c->state = LC_READY;
			c->backoff_ms = 0;
		} else {
			ldap_memfree(matched);
			ldap_memfree(text);
			lconn_failed(c, "bind as dn failed", rc, true);
			return;
		}
	} else if (type == LDAP_RES_SEARCH_ENTRY) {
		struct lreq *req = running_find(c, msgid);
		if (req != NULL)
			entry_add(c->ld, msg, req);
	} else if (type == LDAP_RES_SEARCH_RESULT) {
		struct lreq *req = running_take(c, msgid);
		if (req != NULL) {
			if (rc == LDAP_SUCCESS && req->page_size > 0 && next_page(c, req, ctrls)) {
				/* the next page is asked for by the dispatch */
			} else if (rc == LDAP_SUCCESS || rc == LDAP_NO_SUCH_OBJECT) {
				lreq_finish(req, LDAP_CLIENT_OK, NULL);
			} else {
				char buf[300];
				snprintf(buf, sizeof(buf), "%s%s%s", ldap_err2string(rc),
					 text != NULL && text[0] != '\0' ? ": " : "", text != NULL ? text : "");
				lreq_finish(req, rc == LDAP_TIMELIMIT_EXCEEDED || rc == LDAP_BUSY ||
					    rc == LDAP_UNAVAILABLE ? LDAP_CLIENT_TEMPFAIL : LDAP_CLIENT_ERROR, buf);
			}
		}
	}
	ldap_controls_free(ctrls);
	ldap_memfree(matched);
	ldap_memfree(text);
}

static void lconn_input(struct lconn *c)
{
	struct timeval zero = { 0, 0 };

	while (c->ld != NULL) {
		LDAPMessage *msg = NULL;
		int ret = ldap_result(c->ld, LDAP_RES_ANY, LDAP_MSG_ONE, &zero, &msg);
		if (ret == 0)
			break;
		if (ret < 0) {
			int rc = LDAP_SERVER_DOWN;
			ldap_get_option(c->ld, LDAP_OPT_RESULT_CODE, &rc);
			lconn_failed(c, "connection lost", rc, c->state == LC_BINDING);
			return;
		}
		lconn_message(c, msg);
		ldap_msgfree(msg);
	}
}

static void lconn_io_callback(void *context, unsigned revents)
{
	struct lconn *c = context;

	(void)revents;
	lconn_input(c);
	client_dispatch(c->client);
}

static void client_timer_callback(void *context);

static void client_timer_update(struct ldap_client *client)
{
	int64_t due = 0;
	const struct lreq *lists[] = { client->queue, client->bind_queue, client->search.running,
				       client->bind.running };

	for (size_t i = 0; i < 4; i++) {
		for (const struct lreq *r = lists[i]; r != NULL; r = r->next) {
			if (due == 0 || r->deadline_ms < due)
				due = r->deadline_ms;
		}
	}
	if (due != client->timer_due_ms) {
		client->timer_due_ms = due;
		client->loop.timer_set(client->loop.context, client, due, client_timer_callback, client);
	}
}

static void take_expired(struct lreq **head, int64_t now, struct lreq ***out)
{
	while (*head != NULL) {
		struct lreq *req = *head;
		if (req->deadline_ms <= now) {
			*head = req->next;
			req->next = NULL;
			**out = req;
			*out = &req->next;
		} else {
			head = &req->next;
		}
	}
}

static void client_expire(struct ldap_client *client, int64_t now)
{
	struct lreq *expired = NULL, **ep = &expired;
	struct lconn *s = &client->search, *b = &client->bind;

	/* running searches: abandoned, the connection stays */
	for (struct lreq *r = s->running; r != NULL; r = r->next) {
		if (r->deadline_ms <= now && s->ld != NULL)
			ldap_abandon_ext(s->ld, r->msgid, NULL, NULL);
	}
	unsigned before = 0;
	for (struct lreq *r = s->running; r != NULL; r = r->next)
		before++;
	take_expired(&s->running, now, &ep);
	unsigned after = 0;
	for (struct lreq *r = s->running; r != NULL; r = r->next)
		after++;
	s->running_count -= before - after;
	/* a running user bind: its connection is closed */
	if (b->running != NULL && b->running->deadline_ms <= now) {
		*ep = b->running;
		ep = &b->running->next;
		b->running = NULL;
		b->running_count = 0;
		lconn_close(b);
	}
	take_expired(&client->queue, now, &ep);
	take_expired(&client->bind_queue, now, &ep);
	while (expired != NULL) {
		struct lreq *req = expired;
		expired = req->next;
		log_error("%s: %s timed out after %u ms", client->name,
			  req->type == LREQ_SEARCH ? "search" : "bind", client->conf.request_timeout_ms);
		lreq_finish(req, LDAP_CLIENT_TEMPFAIL, "LDAP request timed out");
	}
}

static void fail_all(struct lreq **head, const char *why)
{
	struct lreq *list = *head;

	*head = NULL;
	while (list != NULL) {
		struct lreq *req = list;
		list = req->next;
		lreq_finish(req, LDAP_CLIENT_TEMPFAIL, why);
	}
}

static void client_dispatch(struct ldap_client *client)
{
	struct lconn *s = &client->search, *b = &client->bind;
	int64_t now = db_now_ms();

	if (client->freeing)
		return;
	client_expire(client, now);
	/* searches; a connection found dead when sending is reopened once */
	for (int attempt = 0; attempt < 2; attempt++) {
		if (client->queue != NULL && s->state == LC_DOWN) {
			if (s->retry_at_ms <= now)
				lconn_open(s, client->conf.dn, client->conf.dnpass);
			if (s->state == LC_DOWN)
				fail_all(&client->queue, "no connection to the LDAP server");
		}
		bool lost = false;
		while (client->queue != NULL && s->state == LC_READY &&
		       s->running_count < LDAP_MAX_PENDING) {
			struct lreq *req = client->queue;
			client->queue = req->next;
			req->next = NULL;
			int scope = client->conf.scope == LDAP_CONF_SCOPE_BASE ? LDAP_SCOPE_BASE :
				client->conf.scope == LDAP_CONF_SCOPE_ONELEVEL ? LDAP_SCOPE_ONELEVEL :
				LDAP_SCOPE_SUBTREE;
			/* a paged search asks for its next page with the cookie;
			   not critical: a server without paging answers all */
			LDAPControl *page = NULL, *ctrls[2] = { NULL, NULL };
			int rc = LDAP_SUCCESS;
			if (req->page_size > 0) {
				rc = ldap_create_page_control(s->ld, (ber_int_t)req->page_size,
							      &req->cookie, 0, &page);
				ctrls[0] = page;
			}
			if (rc == LDAP_SUCCESS)
				rc = ldap_search_ext(s->ld, req->base, scope, req->filter, req->attrs, 0,
						     page != NULL ? ctrls : NULL, NULL, NULL, 0,
						     &req->msgid);
			if (page != NULL)
				ldap_control_free(page);
			if (rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR) {
				req->next = client->queue;
				client->queue = req;
				lconn_failed(s, "search failed", rc, false);
				lost = true;
				break;
			}
			if (rc != LDAP_SUCCESS) {
				lreq_finish(req, LDAP_CLIENT_ERROR, ldap_err2string(rc));
				continue;
			}
			req->next = s->running;
			s->running = req;
			s->running_count++;
		}
		if (!lost)
			break;
	}
	/* user binds: one at a time on their own connection */
	if (b->running == NULL && client->bind_queue != NULL && b->state != LC_BINDING) {
		struct lreq *req = client->bind_queue;
		client->bind_queue = req->next;
		req->next = NULL;
		b->running = req;
		b->running_count = 1;
		if (b->state == LC_DOWN) {
			if (b->retry_at_ms > now) {
				b->running = NULL;
				b->running_count = 0;
				lreq_finish(req, LDAP_CLIENT_TEMPFAIL, "no connection to the LDAP server");
			} else {
				lconn_open(b, req->dn, req->password); /* fails req itself */
			}
		} else {
			struct berval cred = { .bv_val = req->password, .bv_len = strlen(req->password) };
			int rc = ldap_sasl_bind(b->ld, req->dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL,
						&b->bind_msgid);
			if (rc != LDAP_SUCCESS)
				lconn_failed(b, "bind failed", rc, false);
			else
				b->state = LC_BINDING;
		}
		if (client->bind_queue != NULL && b->state == LC_DOWN && b->running == NULL) {
			client_dispatch(client);
			return;
		}
	}
	client_timer_update(client);
}

static void client_timer_callback(void *context)
{
	struct ldap_client *client = context;

	client->timer_due_ms = 0;
	client_dispatch(client);
}

static void client_search(struct ldap_client *client, const char *base, const char *filter,
			  char *const *attrs, unsigned page_size, ldap_search_callback *callback,
			  void *context)
{
	struct lreq *req = rg_calloc(1, sizeof(*req));

	req->page_size = page_size;
	unsigned n = 0;

	req->type = LREQ_SEARCH;
	req->base = rg_strdup(base);
	req->filter = rg_strdup(filter);
	while (attrs != NULL && attrs[n] != NULL)
		n++;
	req->attrs = rg_calloc(n + 1, sizeof(char *));
	for (unsigned i = 0; i < n; i++)
		req->attrs[i] = rg_strdup(attrs[i]);
	req->search_cb = callback;
	req->context = context;
	req->deadline_ms = db_now_ms() + client->conf.request_timeout_ms;
	fifo_push(&client->queue, req);
	client_dispatch(client);
}

void ldap_client_search(struct ldap_client *client, const char *base, const char *filter,
			char *const *attrs, ldap_search_callback *callback, void *context)
{
	client_search(client, base, filter, attrs, LDAP_PAGE_SIZE, callback, context);
}

void ldap_client_search_paged(struct ldap_client *client, const char *base, const char *filter,
			      char *const *attrs, ldap_search_callback *callback, void *context)
{
	client_search(client, base, filter, attrs, LDAP_PAGE_SIZE, callback, context);
}

void ldap_client_bind(struct ldap_client *client, const char *dn, const char *password,
		      ldap_bind_callback *callback, void *context)
{
	if (password[0] == '\0') {
		/* an empty password would be an anonymous bind, which succeeds */
		callback(context, LDAP_CLIENT_INVALID_CREDENTIALS, "empty password");
		return;
	}
	struct lreq *req = rg_calloc(1, sizeof(*req));
	req->type = LREQ_BIND;
	req->dn = rg_strdup(dn);
	req->password = rg_strdup(password);
	req->bind_cb = callback;
	req->context = context;
	req->deadline_ms = db_now_ms() + client->conf.request_timeout_ms;
	fifo_push(&client->bind_queue, req);
	client_dispatch(client);
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? rg_strdup(s) : NULL;
}

struct ldap_client *ldap_client_new(const char *name, const struct ldap_conf *conf,
				    const struct db_loop *loop, char **error_r)
{
	LDAP *probe = NULL;
	int rc = ldap_initialize(&probe, conf->uris);

	if (rc != LDAP_SUCCESS) {
		*error_r = rg_strdup_printf("%s: uris %s: %s", name, conf->uris, ldap_err2string(rc));
		return NULL;
	}
	ldap_unbind_ext(probe, NULL, NULL);
	struct ldap_client *client = rg_calloc(1, sizeof(*client));
	client->name = rg_strdup(name);
	client->loop = *loop;
	struct ldap_conf *c = &client->conf;
	c->uris = rg_strdup(conf->uris);
	c->dn = dup_or_null(conf->dn);
	c->dnpass = dup_or_null(conf->dnpass);
	c->tls = conf->tls;
	c->tls_ca_cert_file = dup_or_null(conf->tls_ca_cert_file);
	c->tls_ca_cert_dir = dup_or_null(conf->tls_ca_cert_dir);
	c->tls_cert_file = dup_or_null(conf->tls_cert_file);
	c->tls_key_file = dup_or_null(conf->tls_key_file);
	c->tls_cipher_suite = dup_or_null(conf->tls_cipher_suite);
	c->tls_require_cert = conf->tls_require_cert;
	c->deref = conf->deref;
	c->scope = conf->scope;
	c->request_timeout_ms = conf->request_timeout_ms;
	client->search.client = client->bind.client = client;
	client->bind.for_binds = true;
	client->search.fd = client->bind.fd = -1;
	client->search.bind_msgid = client->bind.bind_msgid = -1;
	return client;
}

void ldap_client_free(struct ldap_client *client)
{
	if (client == NULL)
		return;
	client->freeing = true;
	struct lreq *lists[] = { client->queue, client->bind_queue, client->search.running,
				 client->bind.running };
	client->queue = client->bind_queue = client->search.running = client->bind.running = NULL;
	lconn_close(&client->search);
	lconn_close(&client->bind);
	for (size_t i = 0; i < 4; i++) {
		while (lists[i] != NULL) {
			struct lreq *req = lists[i];
			lists[i] = req->next;
			lreq_finish(req, LDAP_CLIENT_TEMPFAIL, "shutting down");
		}
	}
	if (client->timer_due_ms != 0)
		client->loop.timer_set(client->loop.context, client, 0, client_timer_callback, client);
	ldap_conf_free(&client->conf);
	rg_free(client->name);
	rg_free(client);
}
