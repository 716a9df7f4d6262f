/* auth-sql.h — asynchronous SQL client pool for the sql passdb/userdb.
 *
 * One pool per dovecot-sql.conf.ext. Each `host=` of its connect string has
 * up to `maxconns` connections, opened when requests need them, through the
 * library's non-blocking API (libpq: PQconnectStart/PQconnectPoll,
 * PQsendQuery/PQconsumeInput; libmariadb: mysql_real_connect_start,
 * mysql_real_query_start, mysql_store_result_start) on the owner's loop
 * (auth-dbloop.h). Requests wait in one FIFO for an idle connection.
 *
 * Time bound: a request not answered within the file's `request_timeout`
 * (default 5 s, auth-dbconf.h) of its submission gets SQL_TEMPFAIL; if its
 * query was running, that connection is closed (the server aborts the
 * query when it notices) and reopened for the next requests.
 * Faults: a connection that fails or breaks fails only its running request
 * (SQL_TEMPFAIL) and is reopened after a back-off (1 s doubling to 30 s, per
 * host; a success resets it). While every host is backing off, a new
 * request fails at once rather than waiting for its bound.
 *
 * The query text is made when a connection is chosen, by the caller's
 * builder, because escaping belongs to the connection (PQescapeStringConn,
 * mysql_real_escape_string: its encoding, standard_conforming_strings).
 *
 * Prepared statements (pgsql): a statement registered with
 * sql_pool_statement() is prepared on a connection the first time a
 * request uses it there (PQsendPrepare, one round trip), then only
 * executed (PQsendQueryPrepared with the values as parameters): the server
 * parses and plans it once per connection, not per login. A reconnected
 * connection prepares again. A statement the server refuses to prepare (a
 * parameter whose type it cannot tell, say) is logged once and from then on
 * sent as text through the builder, as before; an execution that finds the
 * statement gone (SQLSTATE 26000: a pooler such as PgBouncer between us and
 * the server) prepares it again on that connection, once per request. */
#ifndef RG_AUTH_SQL_H
#define RG_AUTH_SQL_H

#include "auth/auth-dbconf.h"
#include "auth/auth-dbloop.h"

#include <stdbool.h>
#include <stddef.h>

#define SQL_BACKOFF_MIN_MS 1000
#define SQL_BACKOFF_MAX_MS 30000

enum sql_status {
	SQL_OK,
	SQL_ERROR,    /* the server refused the query: the administrator's error */
	SQL_TEMPFAIL, /* no connection, connection lost, time bound passed */
};

/* A result held in memory: rows × columns of strings (NULL = SQL NULL). */
struct sql_result {
	unsigned rows, cols;
	char **names;  /* cols */
	char **values; /* rows * cols, row-major */
};

static inline const char *sql_result_value(const struct sql_result *r, unsigned row, unsigned col)
{
	return r->values[(size_t)row * r->cols + col];
}

/* free what a result holds (for results made outside the pool) */
void sql_result_clear(struct sql_result *r);

struct sql_escaper;
/* s escaped for inside '…' of this connection's SQL; allocated. Fails
   (NULL) only for input the library cannot encode (invalid multibyte). */
char *sql_escape(struct sql_escaper *esc, const char *s);

/* Makes the query (allocated) for the chosen connection; NULL fails the
   request with SQL_ERROR and *error_r (static text). */
typedef char *sql_build_callback(void *context, struct sql_escaper *esc, const char **error_r);
/* The end of a request, exactly once. result is valid during the call
   only (SQL_OK); error is text for the log (never holding the query's
   values for SQL_TEMPFAIL) */
typedef void sql_result_callback(void *context, enum sql_status status,
				 const struct sql_result *result, const char *error);

struct sql_pool;

/* name: for log lines ("sql(dovecot-sql.conf.ext)"); conf is copied. */
struct sql_pool *sql_pool_new(const char *name, const struct sql_conf *conf,
			      const struct db_loop *loop, char **error_r);
/* Submit; the callback may run before this returns (immediate failure). */
void sql_pool_query(struct sql_pool *pool, sql_build_callback *build,
		    sql_result_callback *callback, void *context);
/* A statement the pool may prepare (sql: $1..$nparams for the values).
   Its index for sql_pool_query_stmt(), or -1: the driver prepares nothing
   here (mysql) or the pool has SQL_POOL_MAX_STMTS already. */
#define SQL_POOL_MAX_STMTS 16
int sql_pool_statement(struct sql_pool *pool, const char *sql, unsigned nparams);
/* sql_pool_query() through statement stmt (>= 0) with values, its
   nparams allocated strings, which the pool takes over; build makes the
   text when the statement cannot be prepared. stmt -1: sql_pool_query(). */
void sql_pool_query_stmt(struct sql_pool *pool, int stmt, char **values,
			 sql_build_callback *build, sql_result_callback *callback, void *context);
/* Close everything; pending requests get SQL_TEMPFAIL. */
void sql_pool_free(struct sql_pool *pool);

struct sql_pool_stats {
	unsigned connections;  /* open or opening */
	unsigned idle, queued;
	unsigned long long queries, timeouts, connect_failures;
	unsigned long long prepares; /* statements prepared (connections × statements) */
};
void sql_pool_get_stats(const struct sql_pool *pool, struct sql_pool_stats *stats_r);

#endif
