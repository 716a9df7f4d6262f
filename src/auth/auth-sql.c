/* auth-sql.c — the connection pool: hosts × maxconns connections, a FIFO of
 * requests, time bounds and reconnect back-off (see auth-sql.h). */
#include "auth/auth-sql-private.h"

#include "lib/alloc.h"
#include "lib/log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

struct sql_request {
	struct sql_request *next;
	int stmt;              /* -1: as text */
	char **values;         /* the statement's nparams values */
	bool reprepared;       /* prepared again after SQLSTATE 26000 */
	sql_build_callback *build;
	sql_result_callback *callback;
	void *context;
	int64_t deadline_ms;
	struct sql_conn *conn; /* while running */
};

struct sql_host {
	int64_t retry_at_ms;   /* 0: may connect now */
	unsigned backoff_ms;
};

/* a statement prepared per connection as it is first used there */
struct sql_stmt {
	char name[16];        /* "rg_s<index>" */
	char *sql;
	unsigned nparams;
	bool refused;         /* the server would not prepare it: sent as text */
};

struct sql_pool {
	char *name;
	struct sql_stmt stmts[SQL_POOL_MAX_STMTS];
	unsigned stmt_count;
	struct sql_conf conf; /* only the fields the pool uses are copied */
	char **hosts;
	unsigned host_count;  /* >= 1 (one NULL host when none given) */
	const struct sql_backend *backend;
	struct db_loop loop;
	struct sql_host *host_state;
	struct sql_conn *conns; /* host_count * maxconns */
	unsigned conn_count;
	unsigned next_host;     /* round-robin start */
	struct sql_request *head, *tail;
	int64_t timer_due_ms;
	struct sql_pool_stats stats;
	bool freeing;
};

struct sql_escaper {
	struct sql_conn *conn;
};

int64_t db_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const struct sql_conf *sql_conn_conf(const struct sql_conn *conn)
{
	return &conn->pool->conf;
}

void sql_result_init(struct sql_result *r, unsigned rows, unsigned cols)
{
	r->rows = rows;
	r->cols = cols;
	r->names = rg_calloc(cols + 1, sizeof(char *));
	r->values = rg_calloc((size_t)rows * cols + 1, sizeof(char *));
}

void sql_result_clear(struct sql_result *r)
{
	for (unsigned i = 0; r->names != NULL && i < r->cols; i++)
		rg_free(r->names[i]);
	for (size_t i = 0; r->values != NULL && i < (size_t)r->rows * r->cols; i++)
		rg_free(r->values[i]);
	rg_free(r->names);
	rg_free(r->values);
	memset(r, 0, sizeof(*r));
}

char *sql_escape(struct sql_escaper *esc, const char *s)
{
	return esc->conn->pool->backend->escape(esc->conn, s);
}

static void pool_dispatch(struct sql_pool *pool);
static void pool_timer_update(struct sql_pool *pool);

static const char *host_name(const struct sql_conn *conn)
{
	return conn->host != NULL ? conn->host : "(default)";
}

static void conn_close(struct sql_conn *conn)
{
	struct sql_pool *pool = conn->pool;

	if (conn->io != NULL) {
		pool->loop.io_remove(pool->loop.context, conn->io);
		conn->io = NULL;
	}
	conn->fd = -1;
	conn->io_events = 0;
	if (conn->handle != NULL || conn->backend_state != NULL)
		pool->backend->close(conn);
	conn->handle = NULL;
	sql_result_clear(&conn->result);
	conn->state = SQL_CONN_DOWN;
	conn->prepared = 0; /* a new connection prepares again */
}

static void conn_io_callback(void *context, unsigned revents);

/* Register the backend's current fd for events (its fd may change while
   connecting: libpq tries a host's addresses one by one). */
static void conn_watch(struct sql_conn *conn, int fd, unsigned events)
{
	struct sql_pool *pool = conn->pool;

	if (conn->io != NULL && conn->fd != fd) {
		pool->loop.io_remove(pool->loop.context, conn->io);
		conn->io = NULL;
	}
	conn->fd = fd;
	if (conn->io == NULL) {
		conn->io = pool->loop.io_add(pool->loop.context, fd, events, conn_io_callback, conn);
	} else if (conn->io_events != events) {
		pool->loop.io_update(pool->loop.context, conn->io, events);
	}
	conn->io_events = events;
}

static void request_free_values(struct sql_pool *pool, struct sql_request *req)
{
	if (req->values == NULL || req->stmt < 0)
		return;
	for (unsigned i = 0; i < pool->stmts[req->stmt].nparams; i++) {
		if (req->values[i] != NULL)
			explicit_bzero(req->values[i], strlen(req->values[i]));
		rg_free(req->values[i]);
	}
	rg_free(req->values);
	req->values = NULL;
}

static void request_finish(struct sql_pool *pool, struct sql_request *req, enum sql_status st,
			   const struct sql_result *res, const char *error)
{
	request_free_values(pool, req);
	req->callback(req->context, st, res, error);
	rg_free(req);
}

static void host_failed(struct sql_pool *pool, struct sql_conn *conn)
{
	struct sql_host *h = &pool->host_state[conn->host_idx];

	h->backoff_ms = h->backoff_ms == 0 ? SQL_BACKOFF_MIN_MS :
		(h->backoff_ms * 2 > SQL_BACKOFF_MAX_MS ? SQL_BACKOFF_MAX_MS : h->backoff_ms * 2);
	h->retry_at_ms = db_now_ms() + h->backoff_ms;
}

/* The connection broke or failed: its request (if any) fails temporarily. */
static void conn_failed(struct sql_conn *conn, const char *what)
{
	struct sql_pool *pool = conn->pool;
	struct sql_request *req = conn->req;
	bool was_connecting = conn->state == SQL_CONN_CONNECTING;

	log_error("%s: %s %s: %s", pool->name, host_name(conn), what,
		  conn->error[0] != '\0' ? conn->error : "failed");
	if (was_connecting) {
		pool->stats.connect_failures++;
		host_failed(pool, conn);
	} else {
		/* a connection that worked broke: reconnect at once, and back
		   off only if that fails */
		pool->host_state[conn->host_idx].retry_at_ms = 0;
	}
	conn->req = NULL;
	conn_close(conn);
	if (req != NULL)
		request_finish(pool, req, SQL_TEMPFAIL, NULL, "connection to the database lost");
}

static void conn_send(struct sql_conn *conn, struct sql_request *req);

/* A prepare or an execution ended: true when the request goes on (the
   next step is under way), false when its answer is the request's. */
static bool conn_stmt_step(struct sql_conn *conn, struct sql_request *req)
{
	struct sql_pool *pool = conn->pool;
	struct sql_stmt *st = &pool->stmts[req->stmt];

	if (conn->phase == SQL_PHASE_PREPARE) {
		/* 42P05: it exists already (after a 26000 of another
		   statement cleared every mark): it is prepared */
		if (conn->query_error && strcmp(conn->sqlstate, "42P05") == 0)
			conn->query_error = false;
		if (conn->query_error) {
			/* the administrator's query as text works where this does
			   not (an untyped parameter): text from now on */
			log_warning("%s: %s: cannot prepare a query, sending it as text from now on: %s",
				    pool->name, host_name(conn), conn->error);
			st->refused = true;
		} else {
			conn->prepared |= 1u << req->stmt;
			pool->stats.prepares++;
		}
	} else if (conn->query_error && strcmp(conn->sqlstate, "26000") == 0 &&
		   !req->reprepared) {
		/* the statement is gone from the session (a pooler gave us
		   another server connection): prepare it again */
		conn->prepared = 0;
		req->reprepared = true;
	} else {
		return false;
	}
	conn->query_error = false;
	conn->error[0] = '\0';
	sql_result_clear(&conn->result);
	conn_send(conn, req);
	return true;
}

static void conn_query_done(struct sql_conn *conn)
{
	struct sql_pool *pool = conn->pool;
	struct sql_request *req = conn->req;

	if (conn->phase != SQL_PHASE_TEXT && conn_stmt_step(conn, req))
		return;
	conn->req = NULL;
	conn->state = SQL_CONN_IDLE;
	conn_watch(conn, pool->backend->fd(conn), DB_IO_READ);
	if (conn->query_error) {
		conn->query_error = false;
		request_finish(pool, req, SQL_ERROR, NULL, conn->error);
	} else {
		request_finish(pool, req, SQL_OK, &conn->result, NULL);
	}
	sql_result_clear(&conn->result);
}

static void conn_step(struct sql_conn *conn, unsigned revents)
{
	struct sql_pool *pool = conn->pool;
	int ret;

	switch (conn->state) {
	case SQL_CONN_CONNECTING:
		ret = pool->backend->connect_continue(conn, revents);
		if (ret < 0) {
			conn_failed(conn, "connect failed");
		} else if (ret == 0) {
			pool->host_state[conn->host_idx].backoff_ms = 0;
			pool->host_state[conn->host_idx].retry_at_ms = 0;
			conn->state = SQL_CONN_IDLE;
			conn_watch(conn, pool->backend->fd(conn), DB_IO_READ);
		} else {
			conn_watch(conn, pool->backend->fd(conn), (unsigned)ret);
		}
		break;
	case SQL_CONN_BUSY:
		ret = pool->backend->query_continue(conn, revents);
		if (ret < 0)
			conn_failed(conn, "query failed");
		else if (ret == 0)
			conn_query_done(conn);
		else
			conn_watch(conn, pool->backend->fd(conn), (unsigned)ret);
		break;
	case SQL_CONN_IDLE:
		/* input on an idle connection: a notice or the server going
		   away; the backend's continue reads it */
		ret = pool->backend->query_continue(conn, revents);
		if (ret < 0)
			conn_failed(conn, "connection closed");
		break;
	case SQL_CONN_DOWN:
		break;
	}
}

static void conn_io_callback(void *context, unsigned revents)
{
	struct sql_conn *conn = context;

	conn_step(conn, revents);
	pool_dispatch(conn->pool);
}

static void conn_io(struct sql_conn *conn, unsigned events)
{
	conn_watch(conn, conn->pool->backend->fd(conn), events);
}

static void conn_connect(struct sql_conn *conn)
{
	struct sql_pool *pool = conn->pool;

	conn->error[0] = '\0';
	conn->state = SQL_CONN_CONNECTING;
	int ret = pool->backend->connect_start(conn);
	if (ret < 0) {
		conn_failed(conn, "connect failed");
		return;
	}
	if (ret == 0) {
		conn->state = SQL_CONN_IDLE;
		conn_io(conn, DB_IO_READ);
		return;
	}
	conn_io(conn, (unsigned)ret);
}

/* Send req's next step on conn (BUSY): the statement's prepare or
   execution, or the text. */
static void conn_send(struct sql_conn *conn, struct sql_request *req)
{
	struct sql_pool *pool = conn->pool;
	int ret;

	conn->query_error = false;
	conn->sqlstate[0] = '\0';
	conn->error[0] = '\0';
	if (req->stmt >= 0 && !pool->stmts[req->stmt].refused) {
		const struct sql_stmt *st = &pool->stmts[req->stmt];
		if ((conn->prepared & (1u << req->stmt)) == 0) {
			conn->phase = SQL_PHASE_PREPARE;
			ret = pool->backend->prepare_start(conn, st->name, st->sql, st->nparams);
		} else {
			conn->phase = SQL_PHASE_EXEC;
			ret = pool->backend->exec_start(conn, st->name, st->nparams,
							(const char *const *)req->values);
		}
	} else {
		struct sql_escaper esc = { .conn = conn };
		const char *err = NULL;
		char *query = req->build(req->context, &esc, &err);
		if (query == NULL) {
			conn->req = NULL;
			conn->state = SQL_CONN_IDLE;
			conn_watch(conn, pool->backend->fd(conn), DB_IO_READ);
			request_finish(pool, req, SQL_ERROR, NULL,
				       err != NULL ? err : "cannot build the query");
			return;
		}
		conn->phase = SQL_PHASE_TEXT;
		ret = pool->backend->query_start(conn, query);
		rg_free(query);
	}
	if (ret < 0)
		conn_failed(conn, "sending the query failed");
	else if (ret == 0)
		conn_query_done(conn);
	else
		conn_io(conn, (unsigned)ret);
}

static void conn_run(struct sql_conn *conn, struct sql_request *req)
{
	conn->req = req;
	req->conn = conn;
	conn->state = SQL_CONN_BUSY;
	conn->pool->stats.queries++;
	conn_send(conn, req);
}

/* A queued request with less than this share of its bound left is failed
   with the running ones that expire now: a fresh connection and a query
   would not finish in time, and a query that times out costs a connection. */
#define SQL_QUEUE_MIN_LEFT_DIVISOR 16u
#define SQL_QUEUE_MIN_LEFT_MS 20

/* Fail requests whose bound has passed; running ones close their connection.
   The queue is unlinked first: a callback may submit again. */
static void pool_expire(struct sql_pool *pool, int64_t now)
{
	struct sql_request *expired = NULL, **ep = &expired;
	int64_t min_left = pool->conf.request_timeout_ms / SQL_QUEUE_MIN_LEFT_DIVISOR;
	if (min_left < SQL_QUEUE_MIN_LEFT_MS)
		min_left = SQL_QUEUE_MIN_LEFT_MS;

	for (unsigned i = 0; i < pool->conn_count; i++) {
		struct sql_conn *conn = &pool->conns[i];
		struct sql_request *req = conn->req;
		if (conn->state == SQL_CONN_BUSY && req != NULL && req->deadline_ms <= now) {
			log_error("%s: %s: query timed out after %u ms (connection closed)", pool->name,
				  host_name(conn), pool->conf.request_timeout_ms);
			conn->req = NULL;
			conn_close(conn);
			req->next = NULL;
			*ep = req;
			ep = &req->next;
		}
	}
	struct sql_request **p = &pool->head;
	pool->tail = NULL;
	while (*p != NULL) {
		struct sql_request *req = *p;
		if (req->deadline_ms <= now + min_left) {
			*p = req->next;
			pool->stats.queued--;
			req->next = NULL;
			*ep = req;
			ep = &req->next;
		} else {
			pool->tail = req;
			p = &req->next;
		}
	}
	while (expired != NULL) {
		struct sql_request *req = expired;
		expired = req->next;
		pool->stats.timeouts++;
		request_finish(pool, req, SQL_TEMPFAIL, NULL,
			       req->conn != NULL ? "query timed out" :
			       "timed out waiting for a database connection");
	}
}

static bool pool_all_backing_off(struct sql_pool *pool, int64_t now)
{
	for (unsigned i = 0; i < pool->conn_count; i++) {
		if (pool->conns[i].state != SQL_CONN_DOWN)
			return false;
	}
	for (unsigned h = 0; h < pool->host_count; h++) {
		if (pool->host_state[h].retry_at_ms <= now)
			return false;
	}
	return true;
}

static void pool_dispatch(struct sql_pool *pool)
{
	int64_t now = db_now_ms();

	if (pool->freeing)
		return;
	pool_expire(pool, now);
	/* queued requests go to idle connections, hosts round-robin */
	while (pool->head != NULL) {
		struct sql_conn *idle = NULL;
		for (unsigned k = 0; k < pool->host_count && idle == NULL; k++) {
			unsigned h = (pool->next_host + k) % pool->host_count;
			for (unsigned j = 0; j < pool->conf.maxconns && idle == NULL; j++) {
				struct sql_conn *c = &pool->conns[h * pool->conf.maxconns + j];
				if (c->state == SQL_CONN_IDLE)
					idle = c;
			}
		}
		if (idle == NULL)
			break;
		pool->next_host = (idle->host_idx + 1) % pool->host_count;
		struct sql_request *req = pool->head;
		pool->head = req->next;
		if (pool->head == NULL)
			pool->tail = NULL;
		pool->stats.queued--;
		req->next = NULL;
		conn_run(idle, req);
	}
	/* open connections for what still waits: one per queued request
	   beyond those already connecting */
	unsigned connecting = 0, waiting = pool->stats.queued;
	for (unsigned i = 0; i < pool->conn_count; i++) {
		if (pool->conns[i].state == SQL_CONN_CONNECTING)
			connecting++;
	}
	for (unsigned k = 0; k < pool->host_count && waiting > connecting; k++) {
		unsigned h = (pool->next_host + k) % pool->host_count;
		if (pool->host_state[h].retry_at_ms > now)
			continue;
		for (unsigned j = 0; j < pool->conf.maxconns && waiting > connecting; j++) {
			struct sql_conn *c = &pool->conns[h * pool->conf.maxconns + j];
			if (c->state == SQL_CONN_DOWN) {
				connecting++;
				conn_connect(c);
				if (c->state == SQL_CONN_DOWN)
					break; /* this host failed at once: the next one */
			}
		}
	}
	/* nothing can serve the queue before its bound: fail it now */
	if (pool->head != NULL && pool_all_backing_off(pool, now)) {
		struct sql_request *failed = pool->head;
		pool->head = pool->tail = NULL;
		pool->stats.queued = 0;
		while (failed != NULL) {
			struct sql_request *req = failed;
			failed = req->next;
			request_finish(pool, req, SQL_TEMPFAIL, NULL, "no connection to the database");
		}
	}
	/* a connection that finished at once may serve more */
	bool idle_now = false;
	for (unsigned i = 0; i < pool->conn_count; i++)
		idle_now = idle_now || pool->conns[i].state == SQL_CONN_IDLE;
	if (pool->head != NULL && idle_now) {
		pool_dispatch(pool);
		return;
	}
	pool_timer_update(pool);
}

static void pool_timer_callback(void *context)
{
	struct sql_pool *pool = context;

	pool->timer_due_ms = 0;
	pool_dispatch(pool);
}

static void pool_timer_update(struct sql_pool *pool)
{
	int64_t due = 0;

	for (struct sql_request *r = pool->head; r != NULL; r = r->next) {
		if (due == 0 || r->deadline_ms < due)
			due = r->deadline_ms;
	}
	for (unsigned i = 0; i < pool->conn_count; i++) {
		const struct sql_request *r = pool->conns[i].req;
		if (r != NULL && (due == 0 || r->deadline_ms < due))
			due = r->deadline_ms;
	}
	if (pool->head != NULL) {
		/* a host coming out of back-off may serve the queue */
		for (unsigned h = 0; h < pool->host_count; h++) {
			int64_t t = pool->host_state[h].retry_at_ms;
			if (t > 0 && (due == 0 || t < due))
				due = t;
		}
	}
	if (due != pool->timer_due_ms) {
		pool->timer_due_ms = due;
		pool->loop.timer_set(pool->loop.context, pool, due, pool_timer_callback, pool);
	}
}

int sql_pool_statement(struct sql_pool *pool, const char *sql, unsigned nparams)
{
	if (pool->backend->prepare_start == NULL)
		return -1;
	for (unsigned i = 0; i < pool->stmt_count; i++) {
		if (strcmp(pool->stmts[i].sql, sql) == 0 && pool->stmts[i].nparams == nparams)
			return (int)i;
	}
	if (pool->stmt_count == SQL_POOL_MAX_STMTS)
		return -1;
	struct sql_stmt *st = &pool->stmts[pool->stmt_count];
	snprintf(st->name, sizeof(st->name), "rg_s%u", pool->stmt_count);
	st->sql = rg_strdup(sql);
	st->nparams = nparams;
	return (int)pool->stmt_count++;
}

void sql_pool_query(struct sql_pool *pool, sql_build_callback *build, sql_result_callback *callback,
		    void *context)
{
	sql_pool_query_stmt(pool, -1, NULL, build, callback, context);
}

void sql_pool_query_stmt(struct sql_pool *pool, int stmt, char **values,
			 sql_build_callback *build, sql_result_callback *callback, void *context)
{
	struct sql_request *req = rg_calloc(1, sizeof(*req));

	req->stmt = stmt;
	req->values = values;
	req->build = build;
	req->callback = callback;
	req->context = context;
	req->deadline_ms = db_now_ms() + pool->conf.request_timeout_ms;
	if (pool->tail != NULL)
		pool->tail->next = req;
	else
		pool->head = req;
	pool->tail = req;
	pool->stats.queued++;
	pool_dispatch(pool);
}

struct sql_pool *sql_pool_new(const char *name, const struct sql_conf *conf,
			      const struct db_loop *loop, char **error_r)
{
	const struct sql_backend *backend;

	switch (conf->driver) {
	case SQL_DRIVER_PGSQL:
		backend = &sql_backend_pgsql;
		break;
	case SQL_DRIVER_MYSQL:
		backend = &sql_backend_mysql;
		break;
	default:
		*error_r = rg_strdup_printf("%s: driver %s is not asynchronous here", name,
					    sql_driver_name(conf->driver));
		return NULL;
	}
	struct sql_pool *pool = rg_calloc(1, sizeof(*pool));
	pool->name = rg_strdup(name);
	pool->backend = backend;
	pool->loop = *loop;
	pool->conf.driver = conf->driver;
	pool->conf.connect_rest = rg_strdup(conf->connect_rest);
	pool->conf.maxconns = conf->maxconns;
	pool->conf.request_timeout_ms = conf->request_timeout_ms;
	pool->conf.my_user = conf->my_user != NULL ? rg_strdup(conf->my_user) : NULL;
	pool->conf.my_password = conf->my_password != NULL ? rg_strdup(conf->my_password) : NULL;
	pool->conf.my_dbname = conf->my_dbname != NULL ? rg_strdup(conf->my_dbname) : NULL;
	pool->conf.my_socket = conf->my_socket != NULL ? rg_strdup(conf->my_socket) : NULL;
	pool->conf.my_port = conf->my_port;
	pool->host_count = conf->host_count > 0 ? conf->host_count : 1;
	pool->hosts = rg_calloc(pool->host_count, sizeof(char *));
	for (unsigned i = 0; i < conf->host_count; i++)
		pool->hosts[i] = rg_strdup(conf->hosts[i]);
	pool->host_state = rg_calloc(pool->host_count, sizeof(*pool->host_state));
	pool->conn_count = pool->host_count * conf->maxconns;
	pool->conns = rg_calloc(pool->conn_count, sizeof(*pool->conns));
	for (unsigned i = 0; i < pool->conn_count; i++) {
		struct sql_conn *c = &pool->conns[i];
		c->pool = pool;
		c->host_idx = i / conf->maxconns;
		c->host = pool->hosts[c->host_idx];
		c->fd = -1;
	}
	return pool;
}

void sql_pool_get_stats(const struct sql_pool *pool, struct sql_pool_stats *stats_r)
{
	*stats_r = pool->stats;
	stats_r->connections = stats_r->idle = 0;
	for (unsigned i = 0; i < pool->conn_count; i++) {
		if (pool->conns[i].state != SQL_CONN_DOWN)
			stats_r->connections++;
		if (pool->conns[i].state == SQL_CONN_IDLE)
			stats_r->idle++;
	}
}

void sql_pool_free(struct sql_pool *pool)
{
	if (pool == NULL)
		return;
	pool->freeing = true;
	for (unsigned i = 0; i < pool->conn_count; i++) {
		struct sql_conn *conn = &pool->conns[i];
		struct sql_request *req = conn->req;
		conn->req = NULL;
		conn_close(conn);
		if (req != NULL)
			request_finish(pool, req, SQL_TEMPFAIL, NULL, "shutting down");
	}
	while (pool->head != NULL) {
		struct sql_request *req = pool->head;
		pool->head = req->next;
		request_finish(pool, req, SQL_TEMPFAIL, NULL, "shutting down");
	}
	if (pool->timer_due_ms != 0)
		pool->loop.timer_set(pool->loop.context, pool, 0, pool_timer_callback, pool);
	for (unsigned i = 0; i < pool->host_count; i++)
		rg_free(pool->hosts[i]);
	rg_free(pool->hosts);
	rg_free(pool->host_state);
	rg_free(pool->conns);
	rg_free(pool->conf.connect_rest);
	rg_free(pool->conf.my_user);
	rg_free(pool->conf.my_password);
	rg_free(pool->conf.my_dbname);
	rg_free(pool->conf.my_socket);
	for (unsigned i = 0; i < pool->stmt_count; i++)
		rg_free(pool->stmts[i].sql);
	rg_free(pool->name);
	rg_free(pool);
}
