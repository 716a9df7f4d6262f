/* settings-private.h — shared by the settings*.c files only: the settings
 * tables and the loader they all fill.
 *
 * settings.c holds the tables (global settings, service and listener
 * settings, the built-in services) and the loader's top level;
 * settings-value.c turns one value's text into its field;
 * settings-sections.c loads service, inet_listener, local_name, passdb and
 * userdb sections; settings-dovecot.c sets aside what Dovecot knows and
 * ringgate does not use; settings-print.c is the `-n` dump. */
#ifndef RG_SETTINGS_PRIVATE_H
#define RG_SETTINGS_PRIVATE_H

#include "lib/settings.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config_node;

/* vsz_limit not set in the service: take default_vsz_limit (Dovecot's
   2^64-1 default means the same) */
#define VSZ_UNSET UINT64_MAX

enum set_type {
	ST_STR,       /* any single-line string */
	ST_NONEMPTY,  /* single-line, not empty */
	ST_ABSPATH,   /* absolute path */
	ST_PEM,       /* multi-line allowed, remembers its <file */
	ST_BOOL,
	ST_UINT,
	ST_UINT_POS,  /* > 0 */
	ST_PORT,
	ST_SIZE,
	ST_TIME,
	ST_TIME_POS,  /* > 0 */
	ST_SSL,
	ST_LISTEN,    /* addresses, comma and/or space separated */
	ST_PROTOCOLS,
	ST_MECHS,
	ST_NETWORKS,
	ST_TLSVER,
	ST_CURVES,    /* ssl_curve_list: colon-separated, canonical names kept */
	ST_SOCKNAMES, /* login_access_sockets: socket names under base_dir/login */
};

struct set_def {
	const char *key;
	enum set_type type;
	size_t offset;
	size_t file_offset; /* ST_PEM: where the <file path goes */
	const char *def;    /* default, as config text */
};

struct builtin_listener {
	const char *name;
	unsigned port;
	bool ssl;
};

struct builtin_service {
	const char *name, *protocol;
	unsigned service_count, client_limit, process_limit;
	struct builtin_listener listeners[2];
};

/* settings.c: the tables */
extern const struct set_def set_global_defs[];
extern const size_t set_global_count;
extern const struct set_def set_service_defs[];
extern const size_t set_service_count;
extern const struct set_def set_listener_defs[]; /* [0] is `address` */
extern const size_t set_listener_count;
extern const struct builtin_service set_builtin_services[];
extern const size_t set_builtin_count;
/* settings-sections.c: the tables of its sections */
extern const struct set_def set_local_name_defs[];
extern const size_t set_local_name_count;
extern const struct set_def set_db_defs[];
extern const size_t set_db_count;

/* One settings_load(): the first error wins, later ones are dropped. */
struct loader {
	struct settings *set;
	char *error;
	/* per global setting (set_global_count): the node that set it */
	const struct config_node **global_nodes;
	/* imap_* settings inside a top-level `protocol imap { }`: they
	 * concern IMAP alone, so they win over the global value */
	const struct config_node **imap_nodes;
	unsigned ignored_cap;
};

#define NOTE_SETTING "a Dovecot setting ringgate does not use: ignored"
#define NOTE_SECTION "a Dovecot section ringgate does not use: ignored"
#define NOTE_DEFAULT "Dovecot's default, which is what ringgate does: ignored"

/* settings.c */
struct settings *settings_new(const char *config_path);
/* `file:line: message` into l->error (the first one only); returns -1 */
int set_load_error(struct loader *l, const struct config_node *node, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
const struct set_def *set_find_def(const struct set_def *defs, size_t count, const char *key);
int set_apply_node(struct loader *l, void *base, const struct set_def *defs, size_t count,
		   const struct config_node *node);
char *set_listen_addresses(const struct settings *set);

/* settings-value.c */
char **set_field_str(void *base, size_t offset);
unsigned set_split_words(const char *s, char ***words_r);
void set_free_words(char **words, unsigned count);
char *set_join_words(char **words, unsigned count);
int set_parse_word_list(const char *value, const char *const *allowed, bool lower,
			bool none_ok, bool (*check)(const char *), char **out_r,
			const char **reason_r);
int set_apply_value(void *base, const struct set_def *def, const char *value,
		    const char *value_file, const char **reason_r);
void set_free_strings(void *base, const struct set_def *defs, size_t count);

/* settings-sections.c */
void set_listener_init(struct listener_settings *ls, const char *name, unsigned port, bool ssl);
struct service_settings *set_find_service(struct settings *set, const char *name);
int set_load_service(struct loader *l, const struct config_node *sec);
int set_load_local_name(struct loader *l, const struct config_node *sec);
void set_db_init(struct db_settings *db);
void set_db_free(struct db_settings *db);
int set_load_db(struct loader *l, const struct config_node *sec, struct db_settings *first);

/* settings-dovecot.c */
void set_ignore_add(struct settings *set, unsigned *cap, const char *file, unsigned line,
		    char *name, const char *note);
void set_ignore_node(struct loader *l, const struct config_node *n, const char *note,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int set_ignore_section(struct loader *l, const struct config_node *sec, const char *path,
		       const char *outer);
int set_load_filter(struct loader *l, const struct config_node *sec, const char *outer,
		    unsigned depth);

#endif
