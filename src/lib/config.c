/* config.c — Dovecot-syntax parser, see config.h.
 *
 * Text is read whole (bounded), split into physical lines, comments removed,
 * continued lines joined, and each logical line turned into a node of the
 * section currently open. Sections must close in the file that opened them. */
#include "lib/config.h"
#include "lib/alloc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct include_frame {
	char *realpath;
	struct include_frame *prev;
};

struct parser {
	const struct config_params *params;
	struct config_node *root;
	/* open sections: sections[0] is the root, sections[depth] is where new
	   nodes go; tails[d] is the last child of sections[d] */
	struct config_node *sections[CONFIG_MAX_SECTION_DEPTH + 1];
	struct config_node *tails[CONFIG_MAX_SECTION_DEPTH + 1];
	unsigned depth;
	unsigned base_depth; /* depth when the current file started */
	unsigned include_depth;
	struct include_frame *includes;
	size_t total; /* bytes read plus bytes produced by expansion */
	char *error;
};

/* a growable string; bounded by its users */
struct strbuf {
	char *data;
	size_t len, size;
};

static void strbuf_append(struct strbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->size) {
		size_t size = b->size == 0 ? 128 : b->size;
		while (size < b->len + n + 1)
			size *= 2;
		b->data = rg_realloc(b->data, size);
		b->size = size;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static bool is_key_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.' || c == '/';
}

static bool is_var_start(char c)
{
	return isalpha((unsigned char)c) || c == '_';
}

static bool is_var_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

static int perror_at(struct parser *p, const char *file, unsigned line,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int perror_at(struct parser *p, const char *file, unsigned line,
		     const char *fmt, ...)
{
	char *msg;
	va_list args;

	if (p->error != NULL)
		return -1;
	va_start(args, fmt);
	if (vasprintf(&msg, fmt, args) < 0)
		msg = NULL;
	va_end(args);
	if (line > 0)
		p->error = rg_strdup_printf("%s:%u: %s", file, line, msg != NULL ? msg : "error");
	else
		p->error = rg_strdup_printf("%s: %s", file, msg != NULL ? msg : "error");
	free(msg);
	return -1;
}

/* Read a whole regular file of at most max bytes. 0 or -errno. */
static int read_file(const char *path, size_t max, char **data_r, size_t *len_r)
{
	struct stat st;
	char *data;
	size_t len = 0, size;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return -EISDIR;
	}
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
		close(fd);
		return -EFBIG;
	}
	size = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 4096;
	data = rg_malloc(size);
	for (;;) {
		ssize_t ret;

		if (len + 1 >= size) {
			if (size > max + 1) {
				rg_free(data);
				close(fd);
				return -EFBIG;
			}
			size *= 2;
			data = rg_realloc(data, size);
		}
		ret = read(fd, data + len, size - len - 1);
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			rg_free(data);
			close(fd);
			return err;
		}
		if (ret == 0)
			break;
		len += (size_t)ret;
	}
	close(fd);
	if (len > max) {
		rg_free(data);
		return -EFBIG;
	}
	data[len] = '\0';
	*data_r = data;
	*len_r = len;
	return 0;
}

/* path relative to the directory of the file that names it */
static char *resolve_path(const char *including_file, const char *path)
{
	const char *slash;

	if (path[0] == '/')
		return rg_strdup(path);
	slash = strrchr(including_file, '/');
	if (slash == NULL)
		return rg_strdup(path);
	return rg_strdup_printf("%.*s/%s", (int)(slash - including_file), including_file, path);
}

static struct config_node *node_add(struct parser *p, enum config_node_type type,
				    const char *file, unsigned line,
				    const char *key, char *value)
{
	struct config_node *parent = p->sections[p->depth];
	struct config_node *node = rg_calloc(1, sizeof(*node));

	node->type = type;
	node->key = rg_strdup(key);
	node->value = value;
	node->file = rg_strdup(file);
	node->line = line;
	node->parent = parent;
	if (p->tails[p->depth] == NULL)
		parent->children = node;
	else
		p->tails[p->depth]->next = node;
	p->tails[p->depth] = node;
	return node;
}

/* s points at the opening '"'. Unescapes into *value_r and returns the
   character after the closing quote, or NULL if there is none. */
static const char *parse_quoted(const char *s, char **value_r)
{
	struct strbuf b = { 0 };

	strbuf_append(&b, "", 0);
	for (s++; *s != '"'; s++) {
		if (*s == '\0') {
			rg_free(b.data);
			return NULL;
		}
		/* Dovecot's str_unescape(): a backslash keeps the next char */
		if (*s == '\\' && s[1] != '\0')
			s++;
		strbuf_append(&b, s, 1);
	}
	*value_r = b.data;
	return s + 1;
}

/* Length of the physical line without its comment: '#' at the start or
   after whitespace, outside a quoted string. A quote opens only where a
   quoted token may start (start, after whitespace or '='), so an
   apostrophe or a '"' inside a word does not hide a comment. */
static size_t strip_comment(const char *line, size_t len)
{
	bool quoted = false;

	for (size_t i = 0; i < len; i++) {
		char c = line[i];

		if (quoted) {
			if (c == '\\' && i + 1 < len)
				i++;
			else if (c == '"')
				quoted = false;
		} else if (c == '"') {
			if (i == 0 || is_ws(line[i - 1]) || line[i - 1] == '=')
				quoted = true;
		} else if (c == '#') {
			if (i == 0 || is_ws(line[i - 1]))
				return i;
		}
	}
	return len;
}

static const char *lookup_var(struct parser *p, const char *name)
{
	const struct config_node *node = config_find(p->root, name);

	if (node != NULL)
		return node->value;
	if (p->params != NULL && p->params->default_value != NULL)
		return p->params->default_value(name, p->params->context);
	return NULL;
}

/* Expand $name references; NULL on error. */
static char *expand_value(struct parser *p, const char *file, unsigned line, const char *s)
{
	struct strbuf b = { 0 };

	strbuf_append(&b, "", 0);
	while (*s != '\0') {
		const char *dollar = strchr(s, '$');

		while (dollar != NULL && !is_var_start(dollar[1]))
			dollar = strchr(dollar + 1, '$');
		if (dollar == NULL) {
			strbuf_append(&b, s, strlen(s));
			break;
		}
		strbuf_append(&b, s, (size_t)(dollar - s));
		const char *end = dollar + 1;
		while (is_var_char(*end))
			end++;
		char *name = rg_strndup(dollar + 1, (size_t)(end - dollar - 1));
		const char *value = lookup_var(p, name);
		if (value == NULL) {
			perror_at(p, file, line, "unknown variable '$%s'", name);
			rg_free(name);
			rg_free(b.data);
			return NULL;
		}
		rg_free(name);
		strbuf_append(&b, value, strlen(value));
		if (b.len > CONFIG_MAX_LINE) {
			perror_at(p, file, line, "value too long after expanding variables");
			rg_free(b.data);
			return NULL;
		}
		s = end;
	}
	p->total += b.len;
	if (p->total > CONFIG_MAX_TOTAL) {
		perror_at(p, file, line, "configuration too large");
		rg_free(b.data);
		return NULL;
	}
	return b.data;
}

static int parse_text(struct parser *p, const char *file, const char *text, size_t len);

static bool include_in_stack(const struct parser *p, const char *realpath)
{
	for (const struct include_frame *f = p->includes; f != NULL; f = f->prev) {
		if (strcmp(f->realpath, realpath) == 0)
			return true;
	}
	return false;
}

static int include_skipped(struct parser *p, const char *file, unsigned line, const char *path)
{
	if (p->params != NULL && p->params->include_skipped != NULL)
		p->params->include_skipped(file, line, path, p->params->context);
	return 0;
}

/* Parse one file into the current section. file/line name the !include
   (line 0 for the main file, whose errors carry no line). */
static int include_one(struct parser *p, const char *file, unsigned line,
		       const char *path, bool ignore_missing)
{
	struct include_frame frame;
	char *real, *data;
	size_t len;
	int ret;

	if (p->include_depth >= CONFIG_MAX_INCLUDE_DEPTH + 1)
		return perror_at(p, file, line, "!include: %s: includes nested too deeply (max %d)",
				 path, CONFIG_MAX_INCLUDE_DEPTH);
	real = realpath(path, NULL);
	if (real == NULL) {
		if (ignore_missing && errno == ENOENT)
			return include_skipped(p, file, line, path);
		if (line == 0) /* the main file: perror_at() names it */
			return perror_at(p, file, line, "%s", strerror(errno));
		return perror_at(p, file, line, "!include: %s: %s", path, strerror(errno));
	}
	if (include_in_stack(p, real)) {
		free(real);
		return perror_at(p, file, line, "!include: %s: include loop", path);
	}
	ret = read_file(path, CONFIG_MAX_FILE, &data, &len);
	if (ret < 0) {
		free(real);
		if (ignore_missing && ret == -ENOENT)
			return include_skipped(p, file, line, path);
		if (line == 0)
			return perror_at(p, file, line, "%s", strerror(-ret));
		return perror_at(p, file, line, "!include: %s: %s", path, strerror(-ret));
	}
	p->total += len;
	if (p->total > CONFIG_MAX_TOTAL) {
		free(real);
		rg_free(data);
		if (line == 0)
			return perror_at(p, file, line, "configuration too large");
		return perror_at(p, file, line, "!include: %s: configuration too large", path);
	}
	frame.realpath = real;
	frame.prev = p->includes;
	p->includes = &frame;
	p->include_depth++;
	ret = parse_text(p, path, data, len);
	p->include_depth--;
	p->includes = frame.prev;
	free(real);
	rg_free(data);
	return ret;
}

static int do_include(struct parser *p, const char *file, unsigned line,
		      const char *spec, bool try)
{
	char *path;
	int ret = 0;

	if (p->params != NULL && (p->params->flags & CONFIG_FLAG_NO_FILES) != 0)
		return perror_at(p, file, line, "!include: reading files is disabled here");
	path = resolve_path(file, spec);
	if (strpbrk(path, "*?[") == NULL) {
		ret = include_one(p, file, line, path, try);
		rg_free(path);
		return ret;
	}
	glob_t g;
	int gret = glob(path, 0, NULL, &g);
	if (gret == GLOB_NOMATCH) {
		if (!try)
			ret = perror_at(p, file, line, "!include: %s: No matches", path);
		else
			ret = include_skipped(p, file, line, path);
	} else if (gret != 0) {
		ret = perror_at(p, file, line, "!include: %s: glob failed", path);
	} else {
		/* glob() sorts the names, so conf.d/10-x.conf comes before 20-y */
		for (size_t i = 0; i < g.gl_pathc && ret == 0; i++)
			ret = include_one(p, file, line, g.gl_pathv[i], false);
	}
	if (gret != GLOB_NOMATCH)
		globfree(&g);
	rg_free(path);
	return ret;
}

static int parse_directive(struct parser *p, const char *file, unsigned line, const char *s)
{
	const char *rest = s + 1;
	size_t n = 0;
	bool try;
	char *spec;

	while (rest[n] != '\0' && !is_ws(rest[n]))
		n++;
	if (n == 7 && strncmp(rest, "include", 7) == 0)
		try = false;
	else if (n == 11 && strncmp(rest, "include_try", 11) == 0)
		try = true;
	else
		return perror_at(p, file, line, "unknown directive '!%.*s'", (int)n, rest);
	rest += n;
	while (is_ws(*rest))
		rest++;
	if (*rest == '"') {
		const char *end = parse_quoted(rest, &spec);
		if (end == NULL)
			return perror_at(p, file, line, "missing closing '\"'");
		while (is_ws(*end))
			end++;
		if (*end != '\0') {
			rg_free(spec);
			return perror_at(p, file, line, "unexpected text after '\"...\"'");
		}
	} else {
		spec = rg_strdup(rest);
	}
	if (spec[0] == '\0') {
		rg_free(spec);
		return perror_at(p, file, line, "!include: missing file name");
	}
	int ret = do_include(p, file, line, spec, try);
	rg_free(spec);
	return ret;
}

static int parse_value(struct parser *p, const char *file, unsigned line,
		       const char *key, const char *s)
{
	struct config_node *node;
	char *value, *value_file = NULL;

	if (*s == '"') {
		/* quoted values are literal: no $ expansion, no <FILE */
		const char *end = parse_quoted(s, &value);
		if (end == NULL)
			return perror_at(p, file, line, "missing closing '\"'");
		while (is_ws(*end))
			end++;
		if (*end != '\0') {
			rg_free(value);
			return perror_at(p, file, line, "unexpected text after '\"...\"'");
		}
	} else if (*s == '<') {
		size_t len;
		int ret;

		s++;
		while (is_ws(*s))
			s++;
		if (*s == '\0')
			return perror_at(p, file, line, "missing file name after '<'");
		if (p->params != NULL && (p->params->flags & CONFIG_FLAG_NO_FILES) != 0)
			return perror_at(p, file, line, "<%s: reading files is disabled here", s);
		value_file = resolve_path(file, s);
		if (value_file[0] != '/') {
			/* kept absolute: settings_print() writes it where the
			   current directory may differ */
			char *cwd = getcwd(NULL, 0);
			if (cwd != NULL) {
				char *abs = rg_strdup_printf("%s/%s", cwd, value_file);
				free(cwd);
				rg_free(value_file);
				value_file = abs;
			}
		}
		ret = read_file(value_file, CONFIG_MAX_FILE, &value, &len);
		if (ret == 0 && memchr(value, '\0', len) != NULL) {
			rg_free(value);
			ret = -EINVAL;
		}
		if (ret < 0) {
			perror_at(p, file, line, "<%s: %s", value_file,
				  ret == -EINVAL ? "file contains a NUL byte" : strerror(-ret));
			rg_free(value_file);
			return -1;
		}
		p->total += len;
		if (p->total > CONFIG_MAX_TOTAL) {
			rg_free(value);
			rg_free(value_file);
			return perror_at(p, file, line, "configuration too large");
		}
	} else {
		value = expand_value(p, file, line, s);
		if (value == NULL)
			return -1;
	}
	node = node_add(p, CONFIG_NODE_SETTING, file, line, key, value);
	node->value_file = value_file;
	return 0;
}

static int parse_section(struct parser *p, const char *file, unsigned line,
			 const char *key, const char *s)
{
	struct config_node *node;
	char *name;

	if (*s == '{') {
		name = rg_strdup("");
	} else if (*s == '"') {
		s = parse_quoted(s, &name);
		if (s == NULL)
			return perror_at(p, file, line, "missing closing '\"'");
	} else {
		const char *start = s;
		while (*s != '\0' && !is_ws(*s) && *s != '{')
			s++;
		name = rg_strndup(start, (size_t)(s - start));
	}
	while (is_ws(*s))
		s++;
	if (*s != '{') {
		rg_free(name);
		return perror_at(p, file, line, "expected '=' or '{' after '%s'", key);
	}
	for (s++; is_ws(*s); s++) ;
	if (*s != '\0') {
		rg_free(name);
		return perror_at(p, file, line, "unexpected text after '{'");
	}
	if (p->depth >= CONFIG_MAX_SECTION_DEPTH) {
		rg_free(name);
		return perror_at(p, file, line, "sections nested too deeply (max %d)",
				 CONFIG_MAX_SECTION_DEPTH);
	}
	node = node_add(p, CONFIG_NODE_SECTION, file, line, key, name);
	p->depth++;
	p->sections[p->depth] = node;
	p->tails[p->depth] = NULL;
	return 0;
}

/* one logical line: no comment, no leading or trailing whitespace, not empty */
static int parse_line(struct parser *p, const char *file, unsigned line, const char *s)
{
	const char *end;
	char *key;
	int ret;

	if (*s == '}') {
		for (end = s + 1; is_ws(*end); end++) ;
		if (*end != '\0')
			return perror_at(p, file, line, "unexpected text after '}'");
		if (p->depth == p->base_depth)
			return perror_at(p, file, line, "unexpected '}'");
		p->depth--;
		return 0;
	}
	if (*s == '!')
		return parse_directive(p, file, line, s);

	for (end = s; is_key_char(*end); end++) ;
	if (end == s)
		return perror_at(p, file, line, "expected 'key = value' or 'section {'");
	if (*end != '\0' && *end != '=' && *end != '{' && !is_ws(*end))
		return perror_at(p, file, line, "invalid character in name '%.*s'",
				 (int)(end - s + 1), s);
	key = rg_strndup(s, (size_t)(end - s));
	while (is_ws(*end))
		end++;
	if (*end == '=') {
		for (end++; is_ws(*end); end++) ;
		ret = parse_value(p, file, line, key, end);
	} else if (*end == '\0') {
		ret = perror_at(p, file, line, "expected '=' or '{' after '%s'", key);
	} else {
		ret = parse_section(p, file, line, key, end);
	}
	rg_free(key);
	return ret;
}

static int parse_logical(struct parser *p, const char *file, unsigned line,
			 const char *s, size_t len)
{
	char *copy;
	int ret;

	while (len > 0 && is_ws(s[len - 1]))
		len--;
	if (len == 0)
		return 0;
	if (len > CONFIG_MAX_LINE)
		return perror_at(p, file, line, "line too long (max %d bytes)", CONFIG_MAX_LINE);
	copy = rg_strndup(s, len);
	ret = parse_line(p, file, line, copy);
	rg_free(copy);
	return ret;
}

static int parse_text(struct parser *p, const char *file, const char *text, size_t len)
{
	struct strbuf cont = { 0 };
	unsigned saved_base = p->base_depth;
	unsigned linenum = 0, cont_line = 0;
	size_t pos = 0;
	int ret = 0;

	p->base_depth = p->depth;
	while (pos < len && ret == 0) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - text) : len;
		const char *line = text + pos;
		size_t llen = end - pos;

		pos = nl != NULL ? end + 1 : len;
		linenum++;
		if (memchr(line, '\0', llen) != NULL) {
			ret = perror_at(p, file, linenum, "invalid NUL byte");
			break;
		}
		if (llen > CONFIG_MAX_LINE) {
			ret = perror_at(p, file, linenum, "line too long (max %d bytes)", CONFIG_MAX_LINE);
			break;
		}
		while (llen > 0 && is_ws(*line)) {
			line++;
			llen--;
		}
		if (llen == 0 || *line == '#')
			continue;
		llen = strip_comment(line, llen);
		while (llen > 0 && is_ws(line[llen - 1]))
			llen--;
		if (llen > 0 && line[llen - 1] == '\\') {
			/* as Dovecot: the backslash and the whitespace around
			   the break become one space */
			llen--;
			while (llen > 0 && is_ws(line[llen - 1]))
				llen--;
			if (cont.len == 0)
				cont_line = linenum;
			strbuf_append(&cont, line, llen);
			strbuf_append(&cont, " ", 1);
			if (cont.len > CONFIG_MAX_LINE)
				ret = perror_at(p, file, cont_line, "line too long (max %d bytes)",
						CONFIG_MAX_LINE);
			continue;
		}
		if (cont.len > 0) {
			strbuf_append(&cont, line, llen);
			ret = parse_logical(p, file, cont_line, cont.data, cont.len);
			cont.len = 0;
		} else {
			ret = parse_logical(p, file, linenum, line, llen);
		}
	}
	if (ret == 0 && cont.len > 0)
		ret = parse_logical(p, file, cont_line, cont.data, cont.len);
	rg_free(cont.data);
	if (ret == 0 && p->depth > p->base_depth) {
		const struct config_node *open = p->sections[p->depth];
		ret = perror_at(p, open->file, open->line, "missing '}'");
	}
	p->base_depth = saved_base;
	return ret;
}

static void parser_init(struct parser *p, const struct config_params *params, const char *name)
{
	memset(p, 0, sizeof(*p));
	p->params = params;
	p->root = rg_calloc(1, sizeof(*p->root));
	p->root->type = CONFIG_NODE_SECTION;
	p->root->key = rg_strdup("");
	p->root->value = rg_strdup("");
	p->root->file = rg_strdup(name);
	p->sections[0] = p->root;
}

static int parser_finish(struct parser *p, int ret, struct config_node **root_r, char **error_r)
{
	if (ret < 0) {
		config_free(p->root);
		*root_r = NULL;
		*error_r = p->error != NULL ? p->error : rg_strdup("configuration error");
		return -1;
	}
	*root_r = p->root;
	*error_r = NULL;
	return 0;
}

int config_parse_file(const char *path, const struct config_params *params,
		      struct config_node **root_r, char **error_r)
{
	struct parser p;

	parser_init(&p, params, path);
	p.include_depth = 0;
	return parser_finish(&p, include_one(&p, path, 0, path, false), root_r, error_r);
}

int config_parse_string(const char *name, const char *text, size_t len,
			const struct config_params *params,
			struct config_node **root_r, char **error_r)
{
	struct parser p;
	int ret;

	parser_init(&p, params, name);
	if (len > CONFIG_MAX_FILE)
		ret = perror_at(&p, name, 0, "%s", strerror(EFBIG));
	else
		ret = parse_text(&p, name, text, len);
	return parser_finish(&p, ret, root_r, error_r);
}

void config_free(struct config_node *root)
{
	struct config_node *node = root, *next;

	while (node != NULL) {
		next = node->next;
		config_free(node->children);
		rg_free(node->key);
		rg_free(node->value);
		rg_free(node->value_file);
		rg_free(node->file);
		rg_free(node);
		node = next;
	}
}

const struct config_node *config_find(const struct config_node *section, const char *key)
{
	const struct config_node *found = NULL;

	for (const struct config_node *n = section->children; n != NULL; n = n->next) {
		if (n->type == CONFIG_NODE_SETTING && strcmp(n->key, key) == 0)
			found = n;
	}
	return found;
}
