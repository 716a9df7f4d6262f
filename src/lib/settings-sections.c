/* settings-sections.c — the sections ringgate uses: `service` (over the
 * built-in services) and its `inet_listener`s, `local_name`, and the
 * `passdb` / `userdb` blocks. */
#include "lib/settings.h"
#include "lib/settings-private.h"

#include "lib/alloc.h"
#include "lib/config.h"
#include "lib/dovecot-names.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void set_listener_init(struct listener_settings *ls, const char *name, unsigned port, bool ssl)
{
	memset(ls, 0, sizeof(*ls));
	ls->name = rg_strdup(name);
	ls->port = port;
	ls->ssl = ssl;
	/* address stays NULL until resolved to `listen` */
}

static bool valid_listener_name(const char *name)
{
	if (name[0] == '\0')
		return false;
	for (; *name != '\0'; name++) {
		if (!isalnum((unsigned char)*name) && strchr("_.-", *name) == NULL)
			return false;
	}
	return true;
}

static int load_listener(struct loader *l, struct service_settings *svc,
			 const struct config_node *sec)
{
	struct listener_settings *ls = NULL;

	if (!settings_is_login_service(svc->name) && strcmp(svc->name, "stats") != 0)
		return set_load_error(l, sec, "service '%s' cannot have an inet_listener",
				      svc->name);
	if (sec->value[0] == '\0')
		return set_load_error(l, sec, "inet_listener section needs a name");
	if (!valid_listener_name(sec->value))
		return set_load_error(l, sec, "invalid inet_listener name '%s'", sec->value);
	for (unsigned i = 0; i < svc->listener_count; i++) {
		if (strcmp(svc->listeners[i].name, sec->value) == 0)
			ls = &svc->listeners[i];
	}
	if (ls == NULL) {
		svc->listeners = rg_realloc(svc->listeners,
					    (svc->listener_count + 1) * sizeof(*svc->listeners));
		ls = &svc->listeners[svc->listener_count++];
		set_listener_init(ls, sec->value, 0, false);
	}
	for (const struct config_node *n = sec->children; n != NULL; n = n->next) {
		if (n->type == CONFIG_NODE_SECTION)
			return set_load_error(l, n, "unknown section type '%s'", n->key);
		if (set_apply_node(l, ls, set_listener_defs, set_listener_count, n) < 0)
			return -1;
	}
	return 0;
}

struct service_settings *set_find_service(struct settings *set, const char *name)
{
	for (unsigned i = 0; i < set->service_count; i++) {
		if (strcmp(set->services[i].name, name) == 0)
			return &set->services[i];
	}
	return NULL;
}

/* a service section for no service of ringgate's */
static int load_foreign_service(struct loader *l, const struct config_node *sec)
{
	/* Dovecot starts any service with an executable (Pigeonhole's
	   managesieve, a site's own); a name that is neither Dovecot's nor
	   one with an executable is more likely a typo of ringgate's */
	if (!dovecot_service_known(sec->value) && config_find(sec, "executable") == NULL)
		return set_load_error(l, sec, "unknown service '%s'", sec->value);
	return set_ignore_section(l, sec, "service/", NULL);
}

int set_load_service(struct loader *l, const struct config_node *sec)
{
	struct service_settings *svc;

	if (sec->value[0] == '\0')
		return set_load_error(l, sec, "service section needs a name");
	svc = set_find_service(l->set, sec->value);
	if (svc == NULL)
		return load_foreign_service(l, sec);
	char *outer = rg_strdup_printf("service %s", svc->name);
	int ret = 0;
	for (const struct config_node *n = sec->children; n != NULL && ret == 0; n = n->next) {
		if (n->type == CONFIG_NODE_SECTION) {
			if (strcmp(n->key, "inet_listener") == 0) {
				ret = load_listener(l, svc, n);
			} else if (dovecot_section_known("service/", n->key)) {
				/* unix_listener, fifo_listener: ringgate's
				   sockets are its own */
				char path[64];
				snprintf(path, sizeof(path), "service/%s/", n->key);
				ret = set_ignore_section(l, n, path, outer);
			} else {
				ret = set_load_error(l, n, "unknown section type '%s'", n->key);
			}
		} else if (set_find_def(set_service_defs, set_service_count,
					n->key) == NULL && dovecot_setting_known("service/",
										 n->key)) {
			/* executable, user, chroot, ...: ringgate's processes
			   and users are fixed */
			set_ignore_node(l, n, NOTE_SETTING, "%s { %s }", outer, n->key);
		} else {
			ret = set_apply_node(l, svc, set_service_defs,
					     set_service_count, n);
		}
	}
	rg_free(outer);
	return ret;
}

#define LN_PEM(name) { #name, ST_PEM, offsetof(struct local_name_settings, name), \
		offsetof(struct local_name_settings, name##_file), "" }
const struct set_def set_local_name_defs[] = { LN_PEM(ssl_cert), LN_PEM(ssl_key) };
const size_t set_local_name_count = sizeof(set_local_name_defs) / sizeof(set_local_name_defs[0]);

int set_load_local_name(struct loader *l, const struct config_node *sec)
{
	struct settings *set = l->set;
	char *names;
	const char *reason = NULL;

	if (sec->value[0] == '\0')
		return set_load_error(l, sec, "local_name section needs a host name");
	if (set_parse_word_list(sec->value, NULL, true, false, NULL, &names, &reason) < 0)
		return set_load_error(l, sec, "invalid local_name");
	set->local_names = rg_realloc(set->local_names,
				      (set->local_name_count + 1) * sizeof(*set->local_names));
	struct local_name_settings *ln = &set->local_names[set->local_name_count++];
	memset(ln, 0, sizeof(*ln));
	ln->names = names;
	ln->file = rg_strdup(sec->file);
	ln->line = sec->line;
	for (size_t i = 0; i < set_local_name_count; i++) {
		if (set_apply_value(ln, &set_local_name_defs[i], "", NULL, &reason) < 0)
			abort();
	}
	for (const struct config_node *n = sec->children; n != NULL; n = n->next) {
		if (n->type == CONFIG_NODE_SECTION)
			return set_load_error(l, n, "unknown section type '%s'", n->key);
		if (set_find_def(set_local_name_defs, set_local_name_count, n->key) == NULL &&
		    set_find_def(set_global_defs, set_global_count, n->key) == NULL &&
		    dovecot_setting_known("", n->key)) {
			set_ignore_node(l, n, NOTE_SETTING, "local_name %s { %s }", ln->names,
					n->key);
			continue;
		}
		if (set_find_def(set_local_name_defs, set_local_name_count, n->key) == NULL)
			return set_load_error(l, n, "'%s' is not supported inside local_name "
					      "(only ssl_cert and ssl_key)", n->key);
		if (set_apply_node(l, ln, set_local_name_defs, set_local_name_count, n) < 0)
			return -1;
	}
	if (ln->ssl_cert[0] == '\0' || ln->ssl_key[0] == '\0')
		return set_load_error(l, sec, "local_name %s needs both ssl_cert and ssl_key",
				      ln->names);
	return 0;
}

#define D(name, type) { #name, type, offsetof(struct db_settings, name), 0, "" }
const struct set_def set_db_defs[] = {
	D(driver, ST_STR), D(args, ST_STR), D(name, ST_STR), D(skip, ST_STR),
	D(result_success, ST_STR), D(result_failure, ST_STR), D(result_internalfail, ST_STR),
	D(mechanisms, ST_STR), D(username_filter, ST_STR), D(default_fields, ST_STR),
	D(override_fields, ST_STR), D(deny, ST_BOOL), D(master, ST_BOOL), D(pass, ST_BOOL),
};
const size_t set_db_count = sizeof(set_db_defs) / sizeof(set_db_defs[0]);

/* the drivers src/auth implements (auth-chain.c has the same list and
 * refuses the rest at start-up too) */
static const char *const passdb_drivers[] = {
	"passwd-file", "pam", "shadow", "checkpassword", "passwd", "static", "oauth2", "sql",
	"ldap", NULL
};
static const char *const userdb_drivers[] = {
	"passwd-file", "passwd", "static", "checkpassword", "sql", "ldap", NULL
};

static bool str_in(const char *const *list, const char *s)
{
	for (; *list != NULL; list++) {
		if (strcmp(*list, s) == 0)
			return true;
	}
	return false;
}

/* A passdb/userdb field Dovecot knows that ringgate does not store: named
 * when it changes nothing (Dovecot's default, or only logging), an error
 * when ringgate would serve something else than Dovecot would. */
static int load_db_dovecot_field(struct loader *l, const struct config_node *sec,
				 const struct config_node *n)
{
	char path[64];
	snprintf(path, sizeof(path), "%s/%s", sec->key, n->key);
	const struct dovecot_name *dn = dovecot_name_find(path);

	if (strcmp(n->key, "auth_verbose") == 0) {
		set_ignore_node(l, n, NOTE_SETTING, "%s { %s }", sec->key, n->key);
		return 0;
	}
	if (dn != NULL && dn->def != NULL && strcmp(dn->def, n->value) == 0) {
		set_ignore_node(l, n, NOTE_DEFAULT, "%s { %s = %s }", sec->key, n->key, n->value);
		return 0;
	}
	return set_load_error(l, n, "'%s = %s' in %s is not supported yet", n->key, n->value,
			      sec->key);
}

void set_db_init(struct db_settings *db)
{
	for (size_t i = 0; i < set_db_count; i++) {
		const char *reason;
		if (set_apply_value(db, &set_db_defs[i], set_db_defs[i].type == ST_BOOL ? "no" : "",
				    NULL,
				    &reason) < 0)
			abort();
	}
}

void set_db_free(struct db_settings *db)
{
	set_free_strings(db, set_db_defs, set_db_count);
	rg_free(db->file);
}

/* one block, parsed into db */
static int load_db_block(struct loader *l, const struct config_node *sec, struct db_settings *db)
{
	const struct config_node *driver = NULL;
	bool passdb = strcmp(sec->key, "passdb") == 0;
	char path[16];

	snprintf(path, sizeof(path), "%s/", sec->key);
	db->file = rg_strdup(sec->file);
	db->line = sec->line;
	for (const struct config_node *n = sec->children; n != NULL; n = n->next) {
		if (n->type == CONFIG_NODE_SECTION)
			return set_load_error(l, n, "unknown section type '%s'", n->key);
		if (set_find_def(set_db_defs, set_db_count,
				 n->key) == NULL && dovecot_setting_known(path, n->key)) {
			if (load_db_dovecot_field(l, sec, n) < 0)
				return -1;
			continue;
		}
		if (set_apply_node(l, db, set_db_defs, set_db_count, n) < 0)
			return -1;
		if (strcmp(n->key, "driver") == 0)
			driver = n;
	}
	if (driver == NULL || db->driver[0] == '\0')
		return set_load_error(l, sec, "%s section has no driver", sec->key);
	if (!str_in(passdb ? passdb_drivers : userdb_drivers, db->driver))
		return set_load_error(l, driver,
				      "invalid value for 'driver': unknown %s driver '%s'",
				      sec->key, db->driver);
	if (strcmp(db->driver, "passwd-file") == 0 && db->args[0] == '\0')
		return set_load_error(l, sec, "%s section has no args (the passwd-file path)",
				      sec->key);
	return 0;
}

bool settings_db_equal(const struct db_settings *a, const struct db_settings *b)
{
	for (; a != NULL && b != NULL; a = a->next, b = b->next) {
		for (size_t i = 0; i < set_db_count; i++) {
			const void *fa = (const char *)a + set_db_defs[i].offset;
			const void *fb = (const char *)b + set_db_defs[i].offset;
			if (set_db_defs[i].type == ST_BOOL ? *(const bool *)fa != *(const bool *)fb :
			    strcmp(*(char *const *)fa, *(char *const *)fb) != 0)
				return false;
		}
	}
	return a == NULL && b == NULL;
}

/* Several blocks are a chain in file order: first is the first block,
 * each later one is appended to its next list. */
int set_load_db(struct loader *l, const struct config_node *sec, struct db_settings *first)
{
	struct db_settings *db = rg_calloc(1, sizeof(*db));
	set_db_init(db);
	int ret = load_db_block(l, sec, db);
	if (ret != 0) {
		set_db_free(db);
		rg_free(db);
		return ret < 0 ? -1 : 0;
	}
	if (first->driver[0] == '\0') {
		set_db_free(first);
		*first = *db;
		first->next = NULL;
		rg_free(db);
		return 0;
	}
	struct db_settings *tail = first;
	while (tail->next != NULL)
		tail = tail->next;
	tail->next = db;
	return 0;
}

