#include "auth/auth-passwd.h"
#include "auth/auth-scheme.h"

#include "lib/alloc.h"
#include "lib/hash.h"
#include "lib/log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* a passwd-file larger than this is a mistake, not a user list */
#define PASSWD_MAX_FILE (256u * 1024 * 1024)
#define PASSWD_MAX_SCHEME 32
#define PASSWD_STAT_INTERVAL_MS 1000

struct passwd_table {
	struct passwd_entry *entries;
	unsigned count;
	unsigned *buckets; /* index+1 into entries, 0 = empty; open addressing */
	unsigned mask;
};

struct passwd_file {
	struct passwd_args args;
	struct passwd_table *table;
	/* identity of the loaded file, to notice edits and replacements */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	int64_t last_check_ms;
	bool broken;       /* vanished or unreadable: lookups fail temporarily */
	bool warned_eacces;
};

static bool is_scheme_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.';
}

static bool is_key_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.';
}

static int parse_id(const char *s, size_t len, bool *have_r, uint32_t *id_r)
{
	*have_r = false;
	if (len == 0)
		return 0;
	if (len > 10)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	/* (uid_t)-1 means "no change" to setresuid(): never a real id */
	if (v >= UINT32_MAX)
		return -1;
	*have_r = true;
	*id_r = (uint32_t)v;
	return 0;
}

void passwd_entry_clear(struct passwd_entry *entry)
{
	rg_free(entry->user);
	if (entry->password != NULL) {
		explicit_bzero(entry->password, strlen(entry->password));
		rg_free(entry->password);
	}
	rg_free(entry->scheme);
	rg_free(entry->home);
	for (unsigned i = 0; i < entry->extra_count; i++)
		rg_free(entry->extra[i]);
	rg_free(entry->extra);
	memset(entry, 0, sizeof(*entry));
}

static int parse_extra(const char *s, size_t len, struct passwd_entry *e, const char **error_r)
{
	size_t pos = 0;
	while (pos < len) {
		if (s[pos] == ' ') {
			pos++;
			continue;
		}
		size_t start = pos;
		while (pos < len && s[pos] != ' ')
			pos++;
		size_t klen = 0;
		while (start + klen < pos && s[start + klen] != '=') {
			if (!is_key_char(s[start + klen])) {
				*error_r = "invalid character in an extra field name";
				return -1;
			}
			klen++;
		}
		if (klen == 0) {
			*error_r = "extra field without a name";
			return -1;
		}
		if (klen > PASSWD_MAX_KEY) {
			*error_r = "extra field name too long";
			return -1;
		}
		if (e->extra_count >= 256) {
			*error_r = "too many extra fields";
			return -1;
		}
		e->extra = rg_realloc(e->extra, (e->extra_count + 1) * sizeof(char *));
		e->extra[e->extra_count++] = rg_strndup(s + start, pos - start);
	}
	return 0;
}

int passwd_parse_line(const char *line, size_t len, const char *default_scheme,
		      struct passwd_entry *entry_r, const char **error_r)
{
	memset(entry_r, 0, sizeof(*entry_r));
	if (len > 0 && line[len - 1] == '\r')
		len--;
	size_t i = 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len || line[i] == '#')
		return 0;
	for (size_t k = 0; k < len; k++) {
		unsigned char c = (unsigned char)line[k];
		if (c < 0x20 || c == 0x7f) {
			*error_r = "control character in the line";
			return -1;
		}
	}

	/* fields 0..6 end at ':'; field 7 (extra) is the rest of the line */
	const char *f[8] = { NULL };
	size_t flen[8] = { 0 };
	unsigned nf = 0;
	size_t pos = 0;
	while (nf < 8) {
		size_t start = pos;
		if (nf < 7) {
			while (pos < len && line[pos] != ':')
				pos++;
		} else {
			pos = len;
		}
		f[nf] = line + start;
		flen[nf] = pos - start;
		nf++;
		if (pos >= len)
			break;
		pos++; /* the ':' */
	}

	if (flen[0] == 0) {
		*error_r = "empty user name";
		return -1;
	}
	if (flen[0] > PASSWD_MAX_USER) {
		*error_r = "user name too long";
		return -1;
	}
	for (size_t k = 0; k < flen[0]; k++) {
		if (f[0][k] == ' ') {
			*error_r = "space in the user name";
			return -1;
		}
	}

	const char *pw = nf > 1 ? f[1] : "";
	size_t pwlen = nf > 1 ? flen[1] : 0;
	char scheme[PASSWD_MAX_SCHEME + 1];
	scheme[0] = '\0';
	if (pwlen > 0 && pw[0] == '{') {
		const char *end = memchr(pw, '}', pwlen);
		if (end == NULL) {
			*error_r = "'{' without '}' in the password field";
			return -1;
		}
		size_t slen = (size_t)(end - pw - 1);
		if (slen == 0 || slen > PASSWD_MAX_SCHEME) {
			*error_r = "invalid password scheme name";
			return -1;
		}
		for (size_t k = 0; k < slen; k++) {
			if (!is_scheme_char(pw[1 + k])) {
				*error_r = "invalid password scheme name";
				return -1;
			}
			scheme[k] = (char)toupper((unsigned char)pw[1 + k]);
		}
		scheme[slen] = '\0';
		pwlen -= slen + 2;
		pw = end + 1;
	} else if (pwlen > 0) {
		snprintf(scheme, sizeof(scheme), "%s", default_scheme);
	}

	struct passwd_entry *e = entry_r;
	if (nf > 2 && parse_id(f[2], flen[2], &e->have_uid, &e->uid) < 0) {
		*error_r = "invalid uid (must be a number)";
		return -1;
	}
	if (nf > 3 && parse_id(f[3], flen[3], &e->have_gid, &e->gid) < 0) {
		*error_r = "invalid gid (must be a number)";
		return -1;
	}
	if (nf > 7 && parse_extra(f[7], flen[7], e, error_r) < 0) {
		passwd_entry_clear(e);
		return -1;
	}
	e->user = rg_strndup(f[0], flen[0]);
	if (scheme[0] != '\0') {
		e->scheme = rg_strdup(scheme);
		e->password = rg_strndup(pw, pwlen);
	}
	e->home = nf > 5 ? rg_strndup(f[5], flen[5]) : rg_strdup("");
	return 1;
}

const char *passwd_entry_field(const struct passwd_entry *entry, const char *key)
{
	size_t klen = strlen(key);
	for (unsigned i = 0; i < entry->extra_count; i++) {
		const char *x = entry->extra[i];
		if (strncmp(x, key, klen) == 0 && (x[klen] == '\0' || x[klen] == '='))
			return x[klen] == '\0' ? x + klen : x + klen + 1;
	}
	return NULL;
}

/* ---- args --------------------------------------------------------------- */

void passwd_args_clear(struct passwd_args *args)
{
	rg_free(args->path);
	rg_free(args->default_scheme);
	rg_free(args->username_format);
	memset(args, 0, sizeof(*args));
}

int passwd_args_parse(const char *args, struct passwd_args *args_r, char **error_r)
{
	memset(args_r, 0, sizeof(*args_r));
	args_r->default_scheme = rg_strdup("CRYPT");
	const char *p = args;
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		const char *start = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		size_t len = (size_t)(p - start);
		if (args_r->path != NULL) {
			*error_r = rg_strdup_printf("passwd-file: unexpected argument after the path '%s'",
						    args_r->path);
			goto fail;
		}
		if (len > 7 && strncmp(start, "scheme=", 7) == 0) {
			rg_free(args_r->default_scheme);
			args_r->default_scheme = rg_strndup(start + 7, len - 7);
			for (char *c = args_r->default_scheme; *c != '\0'; c++)
				*c = (char)toupper((unsigned char)*c);
			if (!auth_scheme_known(args_r->default_scheme)) {
				*error_r = rg_strdup_printf("passwd-file: unknown scheme '%s'",
							    args_r->default_scheme);
				goto fail;
			}
		} else if (len > 16 && strncmp(start, "username_format=", 16) == 0) {
			if (len == 18 && strncmp(start + 16, "%u", 2) == 0) {
				args_r->lowercase = false;
			} else if (len == 19 && strncmp(start + 16, "%Lu", 3) == 0) {
				args_r->lowercase = true;
			} else {
				rg_free(args_r->username_format);
				args_r->username_format = rg_strndup(start + 16, len - 16);
			}
		} else if (memchr(start, '=', len) != NULL && start[0] != '/') {
			*error_r = rg_strdup_printf("passwd-file: unknown argument '%.*s'",
						    (int)(len > 64 ? 64 : len), start);
			goto fail;
		} else {
			args_r->path = rg_strndup(start, len);
		}
	}
	if (args_r->path == NULL) {
		*error_r = rg_strdup("passwd-file: no file path in args");
		goto fail;
	}
	return 0;
fail:
	passwd_args_clear(args_r);
	return -1;
}

/* ---- table -------------------------------------------------------------- */

static void table_free(struct passwd_table *t)
{
	if (t == NULL)
		return;
	for (unsigned i = 0; i < t->count; i++)
		passwd_entry_clear(&t->entries[i]);
	rg_free(t->entries);
	rg_free(t->buckets);
	rg_free(t);
}

static const struct passwd_entry *table_find(const struct passwd_table *t, const char *user)
{
	for (uint32_t b = hash_str(user) & t->mask;; b = (b + 1) & t->mask) {
		unsigned idx = t->buckets[b];
		if (idx == 0)
			return NULL;
		if (strcmp(t->entries[idx - 1].user, user) == 0)
			return &t->entries[idx - 1];
	}
}

/* Unknown schemes are logged once per load and scheme, not per login. */
static void warn_unknown_schemes(const char *name, const struct passwd_table *t)
{
	char seen[8][PASSWD_MAX_SCHEME + 1];
	unsigned nseen = 0;
	for (unsigned i = 0; i < t->count; i++) {
		const char *s = t->entries[i].scheme;
		if (s == NULL || auth_scheme_known(s))
			continue;
		bool dup = false;
		for (unsigned k = 0; k < nseen && !dup; k++)
			dup = strcmp(seen[k], s) == 0;
		if (dup)
			continue;
		if (nseen < 8)
			snprintf(seen[nseen++], sizeof(seen[0]), "%s", s);
		log_error("%s: unknown password scheme '%s' (user %s and others using it cannot log in)",
			  name, s, t->entries[i].user);
	}
}

struct passwd_file *passwd_file_parse(const char *name, const char *text, size_t len,
				      const struct passwd_args *args, char **error_r)
{
	struct passwd_table *t = rg_calloc(1, sizeof(*t));
	unsigned cap = 0, lineno = 0;
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - text) : len;
		const char *error;
		struct passwd_entry e;
		lineno++;
		int ret = passwd_parse_line(text + pos, end - pos, args->default_scheme, &e, &error);
		pos = end + 1;
		if (ret < 0) {
			*error_r = rg_strdup_printf("%s:%u: %s", name, lineno, error);
			table_free(t);
			return NULL;
		}
		if (ret == 0)
			continue;
		if (t->count == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			t->entries = rg_realloc(t->entries, cap * sizeof(*t->entries));
		}
		t->entries[t->count++] = e;
	}

	unsigned nb = 16;
	while (nb < t->count * 2)
		nb *= 2;
	t->buckets = rg_calloc(nb, sizeof(*t->buckets));
	t->mask = nb - 1;
	for (unsigned i = 0; i < t->count; i++) {
		const char *user = t->entries[i].user;
		if (table_find(t, user) != NULL) {
			/* as Dovecot: the first line wins */
			char esc[64];
			log_warning("%s: user %s exists more than once, using the first line", name,
				    log_escape(user, strlen(user), 40, esc, sizeof(esc)));
			continue;
		}
		uint32_t b = hash_str(user) & t->mask;
		while (t->buckets[b] != 0)
			b = (b + 1) & t->mask;
		t->buckets[b] = i + 1;
	}
	warn_unknown_schemes(name, t);

	struct passwd_file *pf = rg_calloc(1, sizeof(*pf));
	pf->args.path = rg_strdup(args->path != NULL ? args->path : name);
	pf->args.default_scheme = rg_strdup(args->default_scheme);
	pf->args.lowercase = args->lowercase;
	pf->table = t;
	return pf;
}

/* Read path into memory; returns -errno. */
static int read_file(const char *path, char **text_r, size_t *len_r, struct stat *st_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st_r) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (!S_ISREG(st_r->st_mode) || (uint64_t)st_r->st_size > PASSWD_MAX_FILE) {
		close(fd);
		return S_ISREG(st_r->st_mode) ? -EFBIG : -EINVAL;
	}
	size_t cap = (size_t)st_r->st_size + 1, len = 0;
	char *buf = rg_malloc(cap);
	for (;;) {
		if (len == cap) {
			if (cap > PASSWD_MAX_FILE) {
				rg_free(buf);
				close(fd);
				return -EFBIG;
			}
			cap *= 2;
			buf = rg_realloc(buf, cap);
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = -errno;
			rg_free(buf);
			close(fd);
			return e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	*text_r = buf;
	*len_r = len;
	return 0;
}

static void remember_stat(struct passwd_file *pf, const struct stat *st)
{
	pf->dev = st->st_dev;
	pf->ino = st->st_ino;
	pf->size = st->st_size;
	pf->mtime = st->st_mtim;
}

struct passwd_file *passwd_file_load_opt(const struct passwd_args *args, char **error_r)
{
	char *text;
	size_t len;
	struct stat st;
	int ret = read_file(args->path, &text, &len, &st);
	if (ret == -ENOENT) {
		*error_r = NULL;
		return NULL;
	}
	if (ret < 0) {
		*error_r = rg_strdup_printf("passwd-file %s: %s", args->path, strerror(-ret));
		return NULL;
	}
	struct passwd_file *pf = passwd_file_parse(args->path, text, len, args, error_r);
	explicit_bzero(text, len);
	rg_free(text);
	if (pf != NULL)
		remember_stat(pf, &st);
	return pf;
}

const char *passwd_file_path(const struct passwd_file *pf)
{
	return pf->args.path;
}

struct passwd_file *passwd_file_load(const struct passwd_args *args, char **error_r)
{
	struct passwd_file *pf = passwd_file_load_opt(args, error_r);
	if (pf == NULL && *error_r == NULL)
		*error_r = rg_strdup_printf("passwd-file %s: %s", args->path, strerror(ENOENT));
	return pf;
}

void passwd_file_free(struct passwd_file *pf)
{
	if (pf == NULL)
		return;
	table_free(pf->table);
	passwd_args_clear(&pf->args);
	rg_free(pf);
}

int passwd_file_refresh(struct passwd_file *pf, int64_t now_ms)
{
	if (pf->last_check_ms != 0 && now_ms - pf->last_check_ms < PASSWD_STAT_INTERVAL_MS)
		return pf->broken ? -1 : 0;
	pf->last_check_ms = now_ms;

	struct stat st;
	if (stat(pf->args.path, &st) < 0) {
		if (!pf->broken)
			log_error("passwd-file %s: stat() failed: %m", pf->args.path);
		pf->broken = true;
		return -1;
	}
	if (!pf->broken && st.st_dev == pf->dev && st.st_ino == pf->ino &&
	    st.st_size == pf->size && st.st_mtim.tv_sec == pf->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == pf->mtime.tv_nsec)
		return 0;

	char *error = NULL;
	char *text;
	size_t len;
	struct stat st2;
	int ret = read_file(pf->args.path, &text, &len, &st2);
	if (ret == -EACCES && !pf->broken) {
		/* after dropping privileges the file may be root-only: keep what
		   was loaded as root, and say how to get reloads */
		if (!pf->warned_eacces)
			log_warning("passwd-file %s changed but is not readable after dropping "
				    "privileges; keeping the old contents (make it readable by the "
				    "auth user to get reloads)", pf->args.path);
		pf->warned_eacces = true;
		remember_stat(pf, &st);
		return 0;
	}
	if (ret < 0) {
		if (!pf->broken)
			log_error("passwd-file %s: %s", pf->args.path, strerror(-ret));
		pf->broken = true;
		return -1;
	}
	struct passwd_file *fresh = passwd_file_parse(pf->args.path, text, len, &pf->args, &error);
	explicit_bzero(text, len);
	rg_free(text);
	remember_stat(pf, &st2);
	pf->broken = false;
	if (fresh == NULL) {
		log_error("%s (keeping the previous contents)", error);
		rg_free(error);
		return 0;
	}
	table_free(pf->table);
	pf->table = fresh->table;
	fresh->table = NULL;
	passwd_file_free(fresh);
	log_info("passwd-file %s reloaded: %u users", pf->args.path, pf->table->count);
	return 0;
}

unsigned passwd_file_count(const struct passwd_file *pf)
{
	return pf->table->count;
}

const struct passwd_entry *passwd_file_entry(const struct passwd_file *pf, unsigned i)
{
	return &pf->table->entries[i];
}

const struct passwd_entry *passwd_file_lookup(const struct passwd_file *pf, const char *user)
{
	if (!pf->args.lowercase)
		return table_find(pf->table, user);
	char low[PASSWD_MAX_USER + 1];
	size_t len = strlen(user);
	if (len > PASSWD_MAX_USER)
		return NULL;
	for (size_t i = 0; i <= len; i++)
		low[i] = (char)tolower((unsigned char)user[i]);
	return table_find(pf->table, low);
}
