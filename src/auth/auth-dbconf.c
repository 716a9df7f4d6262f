/* auth-dbconf.c — dovecot-sql.conf.ext / dovecot-ldap.conf.ext parsers:
 * Dovecot's lib-settings line reader and the setting tables both use, and
 * dovecot-sql.conf.ext (auth-dbconf-ldap.c: the LDAP file). */
#include "auth/auth-dbconf.h"
#include "auth/auth-dbconf-private.h"

#include "lib/alloc.h"
#include "lib/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DBCONF_MAX_FILE (1024 * 1024)

/* ---- Dovecot's lib-settings line reader ---------------------------------- */

struct ext_reader {
	const char *name;
	const char *text, *end;
	unsigned line;     /* next physical line */
	char *buf;         /* the logical line being built */
	size_t buf_len, buf_size;
};

static bool is_white(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static void buf_add(struct ext_reader *r, const char *s, size_t n)
{
	if (r->buf_len + n + 1 > r->buf_size) {
		r->buf_size = (r->buf_len + n + 1) * 2;
		r->buf = rg_realloc(r->buf, r->buf_size);
	}
	memcpy(r->buf + r->buf_len, s, n);
	r->buf_len += n;
	r->buf[r->buf_len] = '\0';
}

char *dbconf_errorf(const char *name, unsigned line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return rg_strdup_printf("%s:%u: %s", name, line, msg);
}

/* Unescape a quoted value in place (Dovecot's str_unescape: '\x' → 'x'). */
static void unescape(char *s)
{
	char *out = s;

	for (; *s != '\0'; s++) {
		if (*s == '\\' && s[1] != '\0')
			s++;
		*out++ = *s;
	}
	*out = '\0';
}

/* Next `key = value` into *key_r / *value_r (pointers into r->buf, valid
   until the next call), *line_r its first physical line. 1 = got one,
   0 = end of text, -1 = error (*error_r). */
static int ext_next(struct ext_reader *r, char **key_r, char **value_r, unsigned *line_r,
		    char **error_r)
{
	unsigned first_line = 0;

	r->buf_len = 0;
	buf_add(r, "", 0);
	while (r->text < r->end) {
		const char *nl = memchr(r->text, '\n', (size_t)(r->end - r->text));
		const char *lend = nl != NULL ? nl : r->end;
		const char *s = r->text;
		unsigned line = ++r->line;

		r->text = nl != NULL ? nl + 1 : r->end;
		if (memchr(s, '\0', (size_t)(lend - s)) != NULL) {
			*error_r = dbconf_errorf(r->name, line, "line contains a NUL byte");
			return -1;
		}
		while (s < lend && is_white(*s))
			s++;
		if (s == lend || *s == '#')
			continue; /* also inside a continued line, as Dovecot */
		/* strip a comment outside quotes, as Dovecot does (a '#' right
		   after a word is a comment too: Dovecot warns, and so do we not) */
		const char *p = s;
		for (; p < lend; p++) {
			if (*p == '"' || *p == '\'') {
				char q = *p;
				for (p++; p < lend && *p != q; p++) {
					if (*p == '\\' && p + 1 < lend)
						p++;
				}
				if (p == lend)
					break;
			} else if (*p == '#') {
				break;
			}
		}
		const char *e = p;
		while (e > s && is_white(e[-1]))
			e--;
		if (first_line == 0)
			first_line = line;
		if (e > s && e[-1] == '\\') {
			e--;
			while (e > s && is_white(e[-1]))
				e--;
			buf_add(r, s, (size_t)(e - s));
			buf_add(r, " ", 1);
			if (r->buf_len > CONFIG_MAX_LINE) {
				*error_r = dbconf_errorf(r->name, first_line, "line too long");
				return -1;
			}
			continue;
		}
		buf_add(r, s, (size_t)(e - s));
		break;
	}
	if (first_line == 0)
		return 0;
	if (r->buf_len > CONFIG_MAX_LINE) {
		*error_r = dbconf_errorf(r->name, first_line, "line too long");
		return -1;
	}
	*line_r = first_line;
	char *key = r->buf, *v = key;
	while (*v != '\0' && !is_white(*v) && *v != '=')
		v++;
	char *key_end = v;
	while (is_white(*v))
		v++;
	if (key[0] == '!') {
		*error_r = dbconf_errorf(r->name, first_line, "%.*s is not supported in this file",
				  (int)(key_end - key), key);
		return -1;
	}
	if (*v != '=' || key_end == key) {
		*error_r = dbconf_errorf(r->name, first_line, "expecting 'key = value'");
		return -1;
	}
	*key_end = '\0';
	v++;
	while (is_white(*v))
		v++;
	size_t vlen = strlen(v);
	while (vlen > 0 && is_white(v[vlen - 1]))
		v[--vlen] = '\0';
	if (vlen >= 2 && ((v[0] == '"' && v[vlen - 1] == '"') || (v[0] == '\'' && v[vlen - 1] == '\''))) {
		v[vlen - 1] = '\0';
		v++;
		unescape(v);
	}
	*key_r = key;
	*value_r = v;
	return 1;
}

int dbconf_read_whole(const char *path, char **text_r, size_t *len_r, char **error_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0) {
		*error_r = rg_strdup_printf("%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || st.st_size > DBCONF_MAX_FILE) {
		*error_r = rg_strdup_printf("%s: %s", path,
					    st.st_size > DBCONF_MAX_FILE ? "file too large" : strerror(errno));
		close(fd);
		return -1;
	}
	char *text = rg_malloc((size_t)st.st_size + 1);
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, text + len, (size_t)st.st_size + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = rg_strdup_printf("%s: %s", path, strerror(errno));
			rg_free(text);
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > (size_t)st.st_size) {
			*error_r = rg_strdup_printf("%s: file changed while read", path);
			rg_free(text);
			close(fd);
			return -1;
		}
	}
	close(fd);
	*text_r = text;
	*len_r = len;
	return 0;
}

/* ---- setting tables ---------------------------------------------------- */

static int set_value(const char *name, unsigned line, const struct set_def *defs, void *conf,
		     const char *key, const char *value, char **error_r)
{
	const struct set_def *d = defs;
	const char *err = NULL;

	for (; d->key != NULL; d++) {
		if (strcmp(d->key, key) == 0)
			break;
	}
	if (d->key == NULL) {
		*error_r = dbconf_errorf(name, line, "Unknown setting: %s", key);
		return -1;
	}
	void *field = (char *)conf + d->offset;
	switch (d->type) {
	case SET_STR: {
		char **s = field;
		rg_free(*s);
		*s = rg_strdup(value);
		return 0;
	}
	case SET_BOOL:
		if (strcasecmp(value, "yes") == 0) {
			*(bool *)field = true;
			return 0;
		}
		if (strcasecmp(value, "no") == 0) {
			*(bool *)field = false;
			return 0;
		}
		err = "expecting yes or no";
		break;
	case SET_UINT:
		if (config_parse_uint(value, field, &err) == 0)
			return 0;
		break;
	case SET_TIME: {
		uint64_t ms;
		if (config_parse_time_msecs(value, &ms, &err) == 0) {
			if (ms == 0 || ms > 3600 * 1000) {
				err = "must be between 1 msec and 1 hour";
				break;
			}
			*(unsigned *)field = (unsigned)ms;
			return 0;
		}
		break;
	}
	}
	*error_r = dbconf_errorf(name, line, "%s: %s", key, err);
	return -1;
}

/* Read every key of text through defs. lines_r (optional) gets the line
   of each key in keys[] (0 when absent). */
int dbconf_ext_parse(const char *name, const char *text, size_t len, const struct set_def *defs,
		     void *conf, const char *const *keys, unsigned *lines_r, char **error_r)
{
	struct ext_reader r = { .name = name, .text = text, .end = text + len };
	char *key, *value;
	unsigned line;
	int ret;

	while ((ret = ext_next(&r, &key, &value, &line, error_r)) > 0) {
		if (set_value(name, line, defs, conf, key, value, error_r) < 0) {
			ret = -1;
			break;
		}
		for (unsigned i = 0; keys != NULL && keys[i] != NULL; i++) {
			if (strcmp(keys[i], key) == 0)
				lines_r[i] = line;
		}
	}
	rg_free(r.buf);
	return ret;
}

char *dbconf_upper_dup(const char *s)
{
	char *u = rg_strdup(s);
	for (char *p = u; *p != '\0'; p++)
		*p = (char)toupper((unsigned char)*p);
	return u;
}

/* ---- dovecot-sql.conf.ext ---------------------------------------------- */

struct sql_raw {
	char *driver, *connect, *password_query, *user_query, *update_query, *iterate_query;
	char *default_pass_scheme;
	bool userdb_warning_disable;
	unsigned request_timeout_ms;
};

#define SQLOFF(f) offsetof(struct sql_raw, f)
static const struct set_def sql_defs[] = {
	{ "driver", SET_STR, SQLOFF(driver) },
	{ "connect", SET_STR, SQLOFF(connect) },
	{ "password_query", SET_STR, SQLOFF(password_query) },
	{ "user_query", SET_STR, SQLOFF(user_query) },
	{ "update_query", SET_STR, SQLOFF(update_query) },
	{ "iterate_query", SET_STR, SQLOFF(iterate_query) },
	{ "default_pass_scheme", SET_STR, SQLOFF(default_pass_scheme) },
	{ "userdb_warning_disable", SET_BOOL, SQLOFF(userdb_warning_disable) },
	/* ringgate's: Dovecot has no bound on one lookup */
	{ "request_timeout", SET_TIME, SQLOFF(request_timeout_ms) },
	{ NULL, 0, 0 },
};

const char *sql_driver_name(enum sql_driver driver)
{
	switch (driver) {
	case SQL_DRIVER_PGSQL:
		return "pgsql";
	case SQL_DRIVER_MYSQL:
		return "mysql";
	case SQL_DRIVER_SQLITE:
		return "sqlite";
	}
	return "?";
}

/* Dovecot's driver-mysql connect words (each `key=value`, split at spaces,
   no quoting) */
static int mysql_word(struct sql_conf *c, const char *key, const char *value, const char **error_r)
{
	static const char *const passed[] = {
		"client_flags", "connect_timeout", "read_timeout", "write_timeout",
		"ssl_cert", "ssl_key", "ssl_ca", "ssl_ca_path", "ssl_cipher", "ssl_verify_server_cert",
		"option_file", "option_group", NULL,
	};
	char **dst = NULL;

	if (strcmp(key, "user") == 0)
		dst = &c->my_user;
	else if (strcmp(key, "password") == 0)
		dst = &c->my_password;
	else if (strcmp(key, "dbname") == 0)
		dst = &c->my_dbname;
	else if (strcmp(key, "unix_socket") == 0)
		dst = &c->my_socket;
	if (dst != NULL) {
		rg_free(*dst);
		*dst = rg_strdup(value);
		return 0;
	}
	if (strcmp(key, "port") == 0) {
		if (config_parse_uint(value, &c->my_port, error_r) < 0 || c->my_port == 0 ||
		    c->my_port > 65535) {
			*error_r = "invalid port";
			return -1;
		}
		return 0;
	}
	for (unsigned i = 0; passed[i] != NULL; i++) {
		if (strcmp(key, passed[i]) == 0)
			return 0; /* accepted; the connection core reads those it uses */
	}
	*error_r = "unknown connect string word";
	return -1;
}

static int sql_split_connect(const char *name, unsigned line, struct sql_conf *c, char **error_r)
{
	struct { char *data; size_t len; } rest = { rg_strdup(""), 0 };
	const char *s = c->connect;

	c->maxconns = SQL_DEFAULT_MAXCONNS;
	while (*s != '\0') {
		while (*s == ' ')
			s++;
		if (*s == '\0')
			break;
		const char *w = s;
		while (*s != '\0' && *s != ' ')
			s++;
		char *word = rg_strndup(w, (size_t)(s - w));
		char *eq = strchr(word, '=');
		const char *value = eq != NULL ? eq + 1 : "";
		if (eq != NULL)
			*eq = '\0';
		const char *err = NULL;
		if (strcmp(word, "maxconns") == 0) {
			if (config_parse_uint(value, &c->maxconns, &err) < 0 || c->maxconns == 0)
				err = "Invalid value for maxconns";
		} else if (strcmp(word, "host") == 0) {
			if (*value == '\0') {
				err = "host= is empty";
			} else {
				c->hosts = rg_realloc(c->hosts,
						      sizeof(*c->hosts) * (c->host_count + 1));
				c->hosts[c->host_count++] = rg_strdup(value);
			}
		} else {
			if (c->driver == SQL_DRIVER_MYSQL && mysql_word(c, word, value, &err) < 0) {
				*error_r = dbconf_errorf(name, line, "connect: %s: %s", word, err);
				rg_free(word);
				rg_free(rest.data);
				return -1;
			}
			size_t wl = (size_t)(s - w);
			rest.data = rg_realloc(rest.data, rest.len + wl + 2);
			if (rest.len > 0)
				rest.data[rest.len++] = ' ';
			memcpy(rest.data + rest.len, w, wl);
			rest.len += wl;
			rest.data[rest.len] = '\0';
		}
		if (err != NULL) {
			*error_r = dbconf_errorf(name, line, "connect: %s: %s", word, err);
			rg_free(word);
			rg_free(rest.data);
			return -1;
		}
		rg_free(word);
	}
	c->connect_rest = rest.data;
	return 0;
}

void sql_conf_free(struct sql_conf *c)
{
	rg_free(c->connect);
	for (unsigned i = 0; i < c->host_count; i++)
		rg_free(c->hosts[i]);
	rg_free(c->hosts);
	rg_free(c->connect_rest);
	rg_free(c->my_user);
	rg_free(c->my_password);
	rg_free(c->my_dbname);
	rg_free(c->my_socket);
	rg_free(c->password_query);
	rg_free(c->user_query);
	rg_free(c->iterate_query);
	rg_free(c->update_query);
	rg_free(c->default_pass_scheme);
	memset(c, 0, sizeof(*c));
}

int sql_conf_parse(const char *name, const char *text, size_t len, struct sql_conf *conf_r,
		   char **error_r)
{
	/* Dovecot 2.3's defaults (db-sql.c) */
	struct sql_raw raw = {
		.password_query = rg_strdup("SELECT username, domain, password FROM users "
					    "WHERE username = '%n' AND domain = '%d'"),
		.user_query = rg_strdup("SELECT home, uid, gid FROM users "
					"WHERE username = '%n' AND domain = '%d'"),
		.iterate_query = rg_strdup("SELECT username AS user FROM users"),
		.default_pass_scheme = rg_strdup("MD5"),
		.request_timeout_ms = DBCONF_DEFAULT_REQUEST_TIMEOUT_MS,
	};
	static const char *const keys[] = { "driver", "connect", NULL };
	unsigned lines[2] = { 0, 0 };
	int ret = -1;

	memset(conf_r, 0, sizeof(*conf_r));
	if (dbconf_ext_parse(name, text, len, sql_defs, &raw, keys, lines, error_r) < 0)
		goto out;
	if (raw.driver == NULL || raw.driver[0] == '\0') {
		*error_r = rg_strdup_printf("%s: sql: driver not set", name);
		goto out;
	}
	if (strcmp(raw.driver, "pgsql") == 0)
		conf_r->driver = SQL_DRIVER_PGSQL;
	else if (strcmp(raw.driver, "mysql") == 0)
		conf_r->driver = SQL_DRIVER_MYSQL;
	else if (strcmp(raw.driver, "sqlite") == 0)
		conf_r->driver = SQL_DRIVER_SQLITE;
	else {
		*error_r = dbconf_errorf(name, lines[0], "driver: unknown SQL driver '%s' "
				  "(pgsql, mysql and sqlite are built in)", raw.driver);
		goto out;
	}
	if (raw.connect == NULL || raw.connect[0] == '\0') {
		*error_r = rg_strdup_printf("%s: sql: connect not set", name);
		goto out;
	}
	conf_r->connect = raw.connect;
	raw.connect = NULL;
	if (conf_r->driver == SQL_DRIVER_SQLITE) {
		conf_r->connect_rest = rg_strdup(conf_r->connect);
		conf_r->maxconns = 1;
	} else if (sql_split_connect(name, lines[1], conf_r, error_r) < 0) {
		goto out;
	}
	conf_r->password_query = raw.password_query;
	conf_r->user_query = raw.user_query;
	conf_r->iterate_query = raw.iterate_query;
	conf_r->update_query = raw.update_query;
	raw.password_query = raw.user_query = raw.iterate_query = raw.update_query = NULL;
	conf_r->default_pass_scheme = dbconf_upper_dup(raw.default_pass_scheme);
	conf_r->request_timeout_ms = raw.request_timeout_ms;
	ret = 0;
out:
	if (ret < 0)
		sql_conf_free(conf_r);
	rg_free(raw.driver);
	rg_free(raw.connect);
	rg_free(raw.password_query);
	rg_free(raw.user_query);
	rg_free(raw.update_query);
	rg_free(raw.iterate_query);
	rg_free(raw.default_pass_scheme);
	return ret;
}

int sql_conf_load(const char *path, struct sql_conf *conf_r, char **error_r)
{
	char *text;
	size_t len;

	memset(conf_r, 0, sizeof(*conf_r));
	if (dbconf_read_whole(path, &text, &len, error_r) < 0)
		return -1;
	int ret = sql_conf_parse(path, text, len, conf_r, error_r);
	rg_free(text);
	return ret;
}
