/* auth-sql-pgsql.c — libpq's non-blocking API behind the pool's backend
 * shape (auth-sql-private.h). The connect string minus host= / maxconns=
 * is libpq's conninfo as Dovecot passes it; `host=H ` is put in front per
 * host. A host name (not an address) is resolved by libpq inside
 * PQconnectStart, which blocks: give addresses (or hostaddr=) where that
 * matters. Prepared statements: PQsendPrepare / PQsendQueryPrepared (the
 * pool decides when, auth-sql.h). */
#include "auth/auth-sql-private.h"

#include "lib/alloc.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

static PGconn *pg(struct sql_conn *conn)
{
	return conn->handle;
}

static void pg_error(struct sql_conn *conn)
{
	const char *msg = pg(conn) != NULL ? PQerrorMessage(pg(conn)) : "out of memory";
	size_t n = strcspn(msg, "\n");

	snprintf(conn->error, sizeof(conn->error), "%.*s", (int)n, msg);
	if (conn->error[0] == '\0')
		snprintf(conn->error, sizeof(conn->error), "unknown libpq error");
}

static int pg_poll_status(struct sql_conn *conn, PostgresPollingStatusType st)
{
	switch (st) {
	case PGRES_POLLING_READING:
		return DB_IO_READ;
	case PGRES_POLLING_WRITING:
		return DB_IO_WRITE;
	case PGRES_POLLING_OK:
		if (PQsetnonblocking(pg(conn), 1) != 0) {
			pg_error(conn);
			return -1;
		}
		return 0;
	default:
		pg_error(conn);
		return -1;
	}
}

static int pg_connect_start(struct sql_conn *conn)
{
	const struct sql_conf *conf = sql_conn_conf(conn);
	char *conninfo;

	if (conn->host != NULL)
		conninfo = rg_strdup_printf("host=%s %s", conn->host, conf->connect_rest);
	else
		conninfo = rg_strdup(conf->connect_rest);
	conn->handle = PQconnectStart(conninfo);
	rg_free(conninfo);
	if (conn->handle == NULL || PQstatus(pg(conn)) == CONNECTION_BAD) {
		pg_error(conn);
		return -1;
	}
	/* the first poll is always "writing" (connect in progress) */
	return DB_IO_WRITE;
}

static int pg_connect_continue(struct sql_conn *conn, unsigned revents)
{
	(void)revents;
	return pg_poll_status(conn, PQconnectPoll(pg(conn)));
}

static int pg_flush(struct sql_conn *conn)
{
	int ret = PQflush(pg(conn));
	if (ret < 0) {
		pg_error(conn);
		return -1;
	}
	return ret == 1 ? (int)(DB_IO_READ | DB_IO_WRITE) : (int)DB_IO_READ;
}

static int pg_query_start(struct sql_conn *conn, const char *query)
{
	if (PQsendQuery(pg(conn), query) == 0) {
		pg_error(conn);
		return -1;
	}
	return pg_flush(conn);
}

static int pg_prepare_start(struct sql_conn *conn, const char *name, const char *sql,
			    unsigned nparams)
{
	/* no types given: the server types each parameter from its context,
	   as it types an unknown '…' literal there */
	if (PQsendPrepare(pg(conn), name, sql, (int)nparams, NULL) == 0) {
		pg_error(conn);
		return -1;
	}
	return pg_flush(conn);
}

static int pg_exec_start(struct sql_conn *conn, const char *name, unsigned nparams,
			 const char *const *values)
{
	if (PQsendQueryPrepared(pg(conn), name, (int)nparams, values, NULL, NULL, 0) == 0) {
		pg_error(conn);
		return -1;
	}
	return pg_flush(conn);
}

static char *dup_or_null(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return NULL;
	return rg_strndup(PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
}

/* Take one PGresult: the first one of the query fills conn->result. */
static void pg_take_result(struct sql_conn *conn, PGresult *res, bool *have)
{
	ExecStatusType st = PQresultStatus(res);

	if (*have) {
		PQclear(res);
		return;
	}
	*have = true;
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
		int rows = PQntuples(res), cols = PQnfields(res);
		sql_result_init(&conn->result, (unsigned)rows, (unsigned)cols);
		for (int c = 0; c < cols; c++)
			conn->result.names[c] = rg_strdup(PQfname(res, c));
		for (int r = 0; r < rows; r++) {
			for (int c = 0; c < cols; c++)
				conn->result.values[(size_t)r * (size_t)cols + (size_t)c] = dup_or_null(res, r, c);
		}
	} else {
		const char *msg = PQresultErrorMessage(res);
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		snprintf(conn->error, sizeof(conn->error), "%.*s", (int)strcspn(msg, "\n"), msg);
		snprintf(conn->sqlstate, sizeof(conn->sqlstate), "%s", state != NULL ? state : "");
		conn->query_error = true;
	}
	PQclear(res);
}

static int pg_query_continue(struct sql_conn *conn, unsigned revents)
{
	PGconn *c = pg(conn);

	if ((revents & DB_IO_WRITE) != 0) {
		int ret = pg_flush(conn);
		if (ret != (int)DB_IO_READ)
			return ret;
	}
	if (PQconsumeInput(c) == 0) {
		pg_error(conn);
		return -1;
	}
	if (conn->state == SQL_CONN_IDLE) {
		/* an idle connection has nothing to wait for: notices are
		   dropped; a closed one shows in its status */
		PGresult *res;
		while (!PQisBusy(c) && (res = PQgetResult(c)) != NULL)
			PQclear(res);
		if (PQstatus(c) == CONNECTION_BAD) {
			pg_error(conn);
			return -1;
		}
		return DB_IO_READ;
	}
	bool have = conn->result.names != NULL || conn->query_error;
	while (!PQisBusy(c)) {
		PGresult *res = PQgetResult(c);
		if (res == NULL) {
			if (!have) {
				snprintf(conn->error, sizeof(conn->error), "no result");
				conn->query_error = true;
			}
			return 0;
		}
		pg_take_result(conn, res, &have);
	}
	if (PQstatus(c) == CONNECTION_BAD) {
		pg_error(conn);
		return -1;
	}
	return DB_IO_READ;
}

static char *pg_escape(struct sql_conn *conn, const char *s)
{
	size_t len = strlen(s);
	char *out = rg_malloc(len * 2 + 1);
	int err = 0;

	PQescapeStringConn(pg(conn), out, s, len, &err);
	if (err != 0) {
		rg_free(out);
		return NULL;
	}
	return out;
}

static int pg_fd(struct sql_conn *conn)
{
	return PQsocket(pg(conn));
}

static void pg_close(struct sql_conn *conn)
{
	PQfinish(pg(conn));
	conn->handle = NULL;
}

const struct sql_backend sql_backend_pgsql = {
	.connect_start = pg_connect_start,
	.connect_continue = pg_connect_continue,
	.query_start = pg_query_start,
	.query_continue = pg_query_continue,
	.escape = pg_escape,
	.prepare_start = pg_prepare_start,
	.exec_start = pg_exec_start,
	.fd = pg_fd,
	.close = pg_close,
};
