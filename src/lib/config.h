/* config.h — Dovecot-syntax configuration parser: text to a tree of nodes.
 *
 * It knows the syntax only (key = value, sections, !include, <FILE values,
 * $setting references, line continuations); which keys exist is settings.c's
 * business. Every node remembers file:line so each later error can name it.
 * Every error is one allocated message "file:line: reason". Input is bounded:
 * CONFIG_MAX_LINE per logical line and per expanded value, CONFIG_MAX_FILE per
 * file, CONFIG_MAX_TOTAL for everything read, include and section depth. */
#ifndef RG_CONFIG_H
#define RG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_LINE (64 * 1024)
#define CONFIG_MAX_FILE (16 * 1024 * 1024)
#define CONFIG_MAX_TOTAL (64 * 1024 * 1024)
#define CONFIG_MAX_INCLUDE_DEPTH 20
#define CONFIG_MAX_SECTION_DEPTH 16

enum config_node_type {
	CONFIG_NODE_SETTING,
	CONFIG_NODE_SECTION, /* also the root: key "" */
};

struct config_node {
	enum config_node_type type;
	char *key;        /* setting name, or section type ("service") */
	char *value;      /* setting: value after $ expansion / <FILE reading;
	                     section: its name, "" when it has none */
	char *value_file; /* setting given as `<FILE`: the absolute path read, else NULL */
	char *file;       /* the file this line is in */
	unsigned line;    /* first physical line of the (continued) line */
	struct config_node *parent;
	struct config_node *children; /* sections: members in file order */
	struct config_node *next;
};

enum config_flags {
	/* refuse !include, !include_try and <FILE: for text that must not
	   reach the filesystem (the fuzzer) */
	CONFIG_FLAG_NO_FILES = 1 << 0,
};

struct config_params {
	enum config_flags flags;
	/* Value of a global setting the text has not set yet, for `$name`.
	   NULL (or a NULL function) makes `$name` an unknown variable. */
	const char *(*default_value)(const char *name, void *context);
	/* Told of each `!include_try` that read nothing (no such file, or a
	   pattern matching none): file:line of the directive and the path as
	   resolved. May be NULL. */
	void (*include_skipped)(const char *file, unsigned line, const char *path,
				void *context);
	void *context;
};

/* Parse a file (params may be NULL). On success *root_r is the root section
   (free it with config_free); on failure returns -1 and *error_r is an
   allocated "file:line: reason" the caller frees. */
int config_parse_file(const char *path, const struct config_params *params,
		      struct config_node **root_r, char **error_r);
/* The same for text in memory; name is used in messages and relative
   !include / <FILE paths are taken relative to name's directory. */
int config_parse_string(const char *name, const char *text, size_t len,
			const struct config_params *params,
			struct config_node **root_r, char **error_r);
void config_free(struct config_node *root);

/* The last setting named key directly inside section, or NULL. */
const struct config_node *config_find(const struct config_node *section, const char *key);

/* Value helpers, Dovecot's units. *error_r is a static string. All return
   0, or -1 with *error_r set. Numbers are decimal; overflow is an error. */
int config_parse_uint(const char *str, unsigned *value_r, const char **error_r);
/* "64M", "1G", "512k", "100 B", "10 kB", plain bytes; units B k M G T,
   any case, optional trailing B */
int config_parse_size(const char *str, uint64_t *bytes_r, const char **error_r);
/* "2 mins", "30 secs", "1s", "500 msecs", "1 hour", "3 days", "1 week";
   a plain number is seconds */
int config_parse_time_msecs(const char *str, uint64_t *msecs_r, const char **error_r);
/* as above in whole seconds: a value with a fraction of a second fails */
int config_parse_time(const char *str, unsigned *secs_r, const char **error_r);
/* "yes" / "no" only, as Dovecot */
int config_parse_bool(const char *str, bool *value_r, const char **error_r);

#endif
