/* auth-sql-private.h — between the pool (auth-sql.c) and a library backend
 * (auth-sql-pgsql.c, auth-sql-mysql.c). A backend turns its library's
 * non-blocking calls into one shape: start/continue an operation, answer
 * what to wait for (DB_IO_READ / DB_IO_WRITE), 0 when done, -1 on failure
 * with conn->error set. The pool owns the fd registration and the timing. */
#ifndef RG_AUTH_SQL_PRIVATE_H
#define RG_AUTH_SQL_PRIVATE_H

#include "auth/auth-sql.h"

#include <stdint.h>

struct sql_conn;

struct sql_backend {
	/* start connecting to conn->host (NULL: library default) */
	int (*connect_start)(struct sql_conn *conn);
	int (*connect_continue)(struct sql_conn *conn, unsigned revents);
	int (*query_start)(struct sql_conn *conn, const char *query);
	/* done (0): conn->result filled (or conn->query_error for SQL_ERROR) */
	int (*query_continue)(struct sql_conn *conn, unsigned revents);
	char *(*escape)(struct sql_conn *conn, const char *s);
	/* prepared statements (NULL: none with this library here); done as
	   query_start, through query_continue */
	int (*prepare_start)(struct sql_conn *conn, const char *name, const char *sql,
			     unsigned nparams);
	int (*exec_start)(struct sql_conn *conn, const char *name, unsigned nparams,
			  const char *const *values);
	/* the socket to watch now */
	int (*fd)(struct sql_conn *conn);
	void (*close)(struct sql_conn *conn);
};

extern const struct sql_backend sql_backend_pgsql;
extern const struct sql_backend sql_backend_mysql;

enum sql_conn_state {
	SQL_CONN_DOWN,       /* closed; may open (after retry_at) */
	SQL_CONN_CONNECTING,
	SQL_CONN_IDLE,
	SQL_CONN_BUSY,
};

struct sql_request;

/* what a BUSY connection is doing for its request */
enum sql_conn_phase {
	SQL_PHASE_TEXT,    /* the query as text */
	SQL_PHASE_PREPARE, /* preparing the request's statement */
	SQL_PHASE_EXEC,    /* executing it */
};

struct sql_conn {
	struct sql_pool *pool;
	unsigned host_idx;
	const char *host;     /* NULL: no host= */
	enum sql_conn_state state;
	int fd;               /* registered fd, -1 */
	struct db_io *io;
	unsigned io_events;
	void *handle;         /* PGconn * / MYSQL * */
	void *backend_state;
	struct sql_request *req; /* BUSY: the running request */
	enum sql_conn_phase phase;
	uint32_t prepared;    /* bit i: pool statement i is prepared here */
	struct sql_result result;
	bool query_error;     /* the query failed on a live connection */
	char sqlstate[6];     /* its SQLSTATE, "" when unknown */
	char error[256];
};

/* pool data a backend reads */
const struct sql_conf *sql_conn_conf(const struct sql_conn *conn);
/* result helpers for backends */
void sql_result_init(struct sql_result *r, unsigned rows, unsigned cols);

#endif
