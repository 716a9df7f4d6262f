/* auth-sql-mysql.c — libmariadb's non-blocking API (mysql_*_start /
 * mysql_*_cont with MYSQL_OPT_NONBLOCK) behind the pool's backend shape
 * (auth-sql-private.h). Dovecot's connect words: host= (a path starting
 * with '/' is a UNIX socket), port, user, password, dbname, unix_socket,
 * connect_timeout, read_timeout, write_timeout, ssl_* (given to the
 * library), option_file, option_group. */
#include "auth/auth-sql-private.h"

#include "lib/alloc.h"

#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum my_phase { MY_CONNECT, MY_QUERY, MY_STORE, MY_IDLE };

struct my_state {
	MYSQL mysql;
	enum my_phase phase;
	MYSQL_RES *res;
};

static struct my_state *my(struct sql_conn *conn)
{
	return conn->backend_state;
}

static void my_error(struct sql_conn *conn)
{
	snprintf(conn->error, sizeof(conn->error), "%s", mysql_error(&my(conn)->mysql));
	if (conn->error[0] == '\0')
		snprintf(conn->error, sizeof(conn->error), "unknown MariaDB client error");
}

static int wait_events(int status)
{
	int ev = 0;
	if ((status & (MYSQL_WAIT_READ | MYSQL_WAIT_EXCEPT)) != 0)
		ev |= DB_IO_READ;
	if ((status & MYSQL_WAIT_WRITE) != 0)
		ev |= DB_IO_WRITE;
	/* only a library timeout asked for: wait for the fd anyway, our own
	   bound ends it */
	return ev != 0 ? ev : (int)DB_IO_READ;
}

static int cont_status(unsigned revents)
{
	int st = 0;
	if ((revents & DB_IO_READ) != 0)
		st |= MYSQL_WAIT_READ;
	if ((revents & DB_IO_WRITE) != 0)
		st |= MYSQL_WAIT_WRITE;
	if ((revents & DB_IO_ERROR) != 0)
		st |= MYSQL_WAIT_EXCEPT;
	return st;
}

/* the value of connect word key in rest, allocated, NULL when absent */
static char *word(const char *rest, const char *key)
{
	size_t klen = strlen(key);
	for (const char *s = rest; *s != '\0';) {
		while (*s == ' ')
			s++;
		const char *w = s;
		while (*s != '\0' && *s != ' ')
			s++;
		if ((size_t)(s - w) > klen && strncmp(w, key, klen) == 0 && w[klen] == '=')
			return rg_strndup(w + klen + 1, (size_t)(s - w) - klen - 1);
	}
	return NULL;
}

static void set_str_option(MYSQL *m, enum mysql_option opt, const char *rest, const char *key)
{
	char *v = word(rest, key);
	if (v != NULL) {
		mysql_options(m, opt, v);
		rg_free(v);
	}
}

static void set_uint_option(MYSQL *m, enum mysql_option opt, const char *rest, const char *key)
{
	char *v = word(rest, key);
	if (v != NULL) {
		unsigned n = (unsigned)strtoul(v, NULL, 10);
		mysql_options(m, opt, &n);
		rg_free(v);
	}
}

static int my_step_connect(struct sql_conn *conn, int status)
{
	if (status != 0)
		return wait_events(status);
	if (conn->handle == NULL) {
		my_error(conn);
		return -1;
	}
	my(conn)->phase = MY_IDLE;
	return 0;
}

static int my_connect_start(struct sql_conn *conn)
{
	const struct sql_conf *conf = sql_conn_conf(conn);
	struct my_state *st = rg_calloc(1, sizeof(*st));
	MYSQL *ret = NULL;

	conn->backend_state = st;
	if (mysql_init(&st->mysql) == NULL) {
		snprintf(conn->error, sizeof(conn->error), "mysql_init failed");
		return -1;
	}
	conn->handle = &st->mysql;
	mysql_options(&st->mysql, MYSQL_OPT_NONBLOCK, 0);
	const char *rest = conf->connect_rest;
	set_uint_option(&st->mysql, MYSQL_OPT_CONNECT_TIMEOUT, rest, "connect_timeout");
	set_uint_option(&st->mysql, MYSQL_OPT_READ_TIMEOUT, rest, "read_timeout");
	set_uint_option(&st->mysql, MYSQL_OPT_WRITE_TIMEOUT, rest, "write_timeout");
	set_str_option(&st->mysql, MYSQL_READ_DEFAULT_FILE, rest, "option_file");
	set_str_option(&st->mysql, MYSQL_READ_DEFAULT_GROUP, rest, "option_group");
	set_str_option(&st->mysql, MYSQL_OPT_SSL_KEY, rest, "ssl_key");
	set_str_option(&st->mysql, MYSQL_OPT_SSL_CERT, rest, "ssl_cert");
	set_str_option(&st->mysql, MYSQL_OPT_SSL_CA, rest, "ssl_ca");
	set_str_option(&st->mysql, MYSQL_OPT_SSL_CAPATH, rest, "ssl_ca_path");
	set_str_option(&st->mysql, MYSQL_OPT_SSL_CIPHER, rest, "ssl_cipher");
	char *verify = word(rest, "ssl_verify_server_cert");
	if (verify != NULL) {
		my_bool v = strcmp(verify, "yes") == 0 || strcmp(verify, "1") == 0;
		mysql_options(&st->mysql, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &v);
		rg_free(verify);
	}
	char *flags_s = word(rest, "client_flags");
	unsigned long flags = flags_s != NULL ? strtoul(flags_s, NULL, 10) : 0;
	rg_free(flags_s);
	const char *host = conn->host, *socket = conf->my_socket;
	if (host != NULL && host[0] == '/') {
		socket = host;
		host = NULL;
	}
	st->phase = MY_CONNECT;
	int status = mysql_real_connect_start(&ret, &st->mysql, host != NULL ? host : NULL,
					      conf->my_user, conf->my_password, conf->my_dbname,
					      conf->my_port, socket, flags);
	if (status == 0 && ret == NULL) {
		my_error(conn);
		return -1;
	}
	return my_step_connect(conn, status);
}

static int my_connect_continue(struct sql_conn *conn, unsigned revents)
{
	MYSQL *ret = NULL;
	int status = mysql_real_connect_cont(&ret, &my(conn)->mysql, cont_status(revents));
	if (status == 0 && ret == NULL) {
		my_error(conn);
		return -1;
	}
	return my_step_connect(conn, status);
}

static int my_store_step(struct sql_conn *conn, int status)
{
	struct my_state *st = my(conn);

	if (status != 0)
		return wait_events(status);
	st->phase = MY_IDLE;
	if (st->res == NULL) {
		if (mysql_errno(&st->mysql) != 0) {
			unsigned err = mysql_errno(&st->mysql);
			my_error(conn);
			/* 2000-2999: client errors (lost connection, ...) */
			if (err >= 2000 && err < 3000)
				return -1;
			conn->query_error = true;
			return 0;
		}
		/* a statement without a result set */
		sql_result_init(&conn->result, 0, 0);
		return 0;
	}
	unsigned cols = mysql_num_fields(st->res);
	unsigned rows = (unsigned)mysql_num_rows(st->res);
	MYSQL_FIELD *fields = mysql_fetch_fields(st->res);
	sql_result_init(&conn->result, rows, cols);
	for (unsigned c = 0; c < cols; c++)
		conn->result.names[c] = rg_strdup(fields[c].name);
	MYSQL_ROW row;
	for (unsigned r = 0; r < rows && (row = mysql_fetch_row(st->res)) != NULL; r++) {
		unsigned long *lens = mysql_fetch_lengths(st->res);
		for (unsigned c = 0; c < cols; c++) {
			if (row[c] != NULL)
				conn->result.values[(size_t)r * cols + c] = rg_strndup(row[c], lens[c]);
		}
	}
	mysql_free_result(st->res);
	st->res = NULL;
	return 0;
}

static int my_query_step(struct sql_conn *conn, int status, int err)
{
	struct my_state *st = my(conn);

	if (status != 0)
		return wait_events(status);
	if (err != 0) {
		unsigned e = mysql_errno(&st->mysql);
		my_error(conn);
		st->phase = MY_IDLE;
		if (e >= 2000 && e < 3000)
			return -1;
		conn->query_error = true;
		return 0;
	}
	st->phase = MY_STORE;
	return my_store_step(conn, mysql_store_result_start(&st->res, &st->mysql));
}

static int my_query_start(struct sql_conn *conn, const char *query)
{
	struct my_state *st = my(conn);
	int err = 0;

	st->phase = MY_QUERY;
	int status = mysql_real_query_start(&err, &st->mysql, query, strlen(query));
	return my_query_step(conn, status, err);
}

static int my_query_continue(struct sql_conn *conn, unsigned revents)
{
	struct my_state *st = my(conn);
	int err = 0;

	switch (st->phase) {
	case MY_QUERY:
		return my_query_step(conn, mysql_real_query_cont(&err, &st->mysql, cont_status(revents)),
				     err);
	case MY_STORE:
		return my_store_step(conn, mysql_store_result_cont(&st->res, &st->mysql,
								   cont_status(revents)));
	default:
		/* input on an idle connection: the server closed it (or sent an
		   error packet before closing) */
		snprintf(conn->error, sizeof(conn->error), "server closed the connection");
		return -1;
	}
}

static char *my_escape(struct sql_conn *conn, const char *s)
{
	size_t len = strlen(s);
	char *out = rg_malloc(len * 2 + 1);

	if (mysql_real_escape_string(&my(conn)->mysql, out, s, len) == (unsigned long)-1) {
		rg_free(out);
		return NULL;
	}
	return out;
}

static int my_fd(struct sql_conn *conn)
{
	return (int)mysql_get_socket(&my(conn)->mysql);
}

static void my_close(struct sql_conn *conn)
{
	struct my_state *st = my(conn);

	if (st != NULL) {
		if (st->res != NULL)
			mysql_free_result(st->res);
		mysql_close(&st->mysql);
		rg_free(st);
	}
	conn->backend_state = NULL;
	conn->handle = NULL;
}

const struct sql_backend sql_backend_mysql = {
	.connect_start = my_connect_start,
	.connect_continue = my_connect_continue,
	.query_start = my_query_start,
	.query_continue = my_query_continue,
	.escape = my_escape,
	.fd = my_fd,
	.close = my_close,
};
