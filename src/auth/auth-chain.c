#include "auth/auth-chain.h"
#include "auth/auth-chain-private.h"
#include "auth/auth-cache.h"

#include "lib/alloc.h"
#include "lib/log.h"
#include "lib/settings.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const struct passdb_driver *const passdb_drivers[] = {
	&passdb_driver_passwd_file,
	&passdb_driver_pam,
	&passdb_driver_shadow,
	&passdb_driver_checkpassword,
	&passdb_driver_passwd,
	&passdb_driver_static,
	&passdb_driver_oauth2,
	&passdb_driver_sql,
	&passdb_driver_ldap,
	NULL
};
static const struct userdb_driver *const userdb_drivers[] = {
	&userdb_driver_passwd_file,
	&userdb_driver_passwd,
	&userdb_driver_static,
	&userdb_driver_checkpassword,
	&userdb_driver_sql,
	&userdb_driver_ldap,
	NULL
};

const char *passdb_result_str(enum passdb_result result)
{
	switch (result) {
	case PASSDB_RESULT_NEXT: return "next";
	case PASSDB_RESULT_PASS_EXPIRED: return "password expired";
	case PASSDB_RESULT_USER_DISABLED: return "user disabled";
	case PASSDB_RESULT_USER_UNKNOWN: return "unknown user";
	case PASSDB_RESULT_SCHEME_NOT_AVAILABLE: return "scheme not available";
	case PASSDB_RESULT_INTERNAL_FAILURE: return "internal failure";
	case PASSDB_RESULT_PASSWORD_MISMATCH: return "password mismatch";
	case PASSDB_RESULT_OK: return "ok";
	}
	return "?";
}

const char *userdb_result_str(enum userdb_result result)
{
	switch (result) {
	case USERDB_RESULT_INTERNAL_FAILURE: return "internal failure";
	case USERDB_RESULT_USER_UNKNOWN: return "unknown user";
	case USERDB_RESULT_OK: return "ok";
	}
	return "?";
}

/* ---- configuration ------------------------------------------------------ */

static int parse_rule(const char *value, enum db_rule def, enum db_rule *rule_r)
{
	static const char *const names[] = {
		"return", "return-ok", "return-fail", "continue", "continue-ok", "continue-fail",
	};
	if (value[0] == '\0') {
		*rule_r = def;
		return 0;
	}
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(value, names[i]) == 0) {
			*rule_r = (enum db_rule)i;
			return 0;
		}
	}
	return -1;
}

static int parse_skip(const char *value, bool passdb, enum db_skip *skip_r)
{
	if (value[0] == '\0' || strcmp(value, "never") == 0)
		*skip_r = SKIP_NEVER;
	else if (passdb && strcmp(value, "authenticated") == 0)
		*skip_r = SKIP_AUTHENTICATED;
	else if (passdb && strcmp(value, "unauthenticated") == 0)
		*skip_r = SKIP_UNAUTHENTICATED;
	else if (!passdb && strcmp(value, "found") == 0)
		*skip_r = SKIP_FOUND;
	else if (!passdb && strcmp(value, "notfound") == 0)
		*skip_r = SKIP_NOTFOUND;
	else
		return -1;
	return 0;
}

static char *db_error(const struct db_settings *set, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static char *db_error(const struct db_settings *set, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (set->file != NULL)
		return rg_strdup_printf("%s:%u: %s", set->file, set->line, msg);
	return rg_strdup(msg);
}

static void db_free(struct chain_db *db)
{
	if (db->inited && db->pmod.driver != NULL && db->pmod.driver->deinit != NULL)
		db->pmod.driver->deinit(&db->pmod);
	if (db->inited && db->umod.driver != NULL && db->umod.driver->deinit != NULL)
		db->umod.driver->deinit(&db->umod);
	rg_free(db->pmod.args);
	rg_free(db->umod.args);
	rg_free(db->pmod.cache_key);
	rg_free(db->umod.cache_key);
	rg_free(db->name);
	rg_free(db->mechanisms);
	rg_free(db->username_filter);
	rg_free(db->default_fields);
	rg_free(db->override_fields);
	rg_free(db);
}

static struct chain_db *db_new(const struct db_settings *set, bool passdb, bool worker,
			       char **error_r)
{
	struct chain_db *db = rg_calloc(1, sizeof(*db));
	db->name = rg_strdup(set->name != NULL && set->name[0] != '\0' ? set->name : set->driver);
	db->mechanisms = rg_strdup(set->mechanisms != NULL ? set->mechanisms : "");
	db->username_filter = rg_strdup(set->username_filter != NULL ? set->username_filter : "");
	db->default_fields = rg_strdup(set->default_fields != NULL ? set->default_fields : "");
	db->override_fields = rg_strdup(set->override_fields != NULL ? set->override_fields : "");
	db->deny = passdb && set->deny;
	db->master = passdb && set->master;
	const char *bad = NULL;
	/* Dovecot 2.3: a master passdb's `pass = yes` is result_success = continue */
	enum db_rule success_def = db->master && set->pass ? RULE_CONTINUE : RULE_RETURN_OK;
	if (parse_rule(set->result_success != NULL ? set->result_success : "", success_def,
		       &db->success) < 0)
		bad = "result_success";
	else if (parse_rule(set->result_failure != NULL ? set->result_failure : "", RULE_CONTINUE,
			    &db->failure) < 0)
		bad = "result_failure";
	else if (parse_rule(set->result_internalfail != NULL ? set->result_internalfail : "",
			    RULE_CONTINUE, &db->internalfail) < 0)
		bad = "result_internalfail";
	else if (parse_skip(set->skip != NULL ? set->skip : "", passdb, &db->skip) < 0)
		bad = "skip";
	if (bad != NULL) {
		*error_r = db_error(set, "invalid value for '%s'", bad);
		db_free(db);
		return NULL;
	}
	const char *args = set->args != NULL ? set->args : "";
	int ret = -1;
	char *error = NULL;
	if (passdb) {
		for (unsigned i = 0; passdb_drivers[i] != NULL; i++) {
			if (strcmp(passdb_drivers[i]->name, set->driver) == 0)
				db->pmod.driver = passdb_drivers[i];
		}
		if (db->pmod.driver == NULL) {
			*error_r = db_error(set, "unknown passdb driver '%s'", set->driver);
			db_free(db);
			return NULL;
		}
		db->pmod.args = rg_strdup(args);
		db->pmod.blocking = db->pmod.driver->blocking;
		ret = !worker || db->pmod.blocking || db->pmod.driver->init_sets_blocking ?
			db->pmod.driver->init(&db->pmod, &error) : 1;
	} else {
		for (unsigned i = 0; userdb_drivers[i] != NULL; i++) {
			if (strcmp(userdb_drivers[i]->name, set->driver) == 0)
				db->umod.driver = userdb_drivers[i];
		}
		if (db->umod.driver == NULL) {
			*error_r = db_error(set, "unknown userdb driver '%s'", set->driver);
			db_free(db);
			return NULL;
		}
		db->umod.args = rg_strdup(args);
		db->umod.blocking = db->umod.driver->blocking;
		ret = !worker || db->umod.blocking || db->umod.driver->init_sets_blocking ?
			db->umod.driver->init(&db->umod, &error) : 1;
	}
	if (ret < 0) {
		*error_r = db_error(set, "%s", error != NULL ? error : "driver init failed");
		rg_free(error);
		db_free(db);
		return NULL;
	}
	db->inited = ret == 0;
	return db;
}

static struct auth_chain *chain_new(const struct db_settings *passdbs,
				    const struct db_settings *userdbs, bool worker, char **error_r)
{
	struct auth_chain *chain = rg_calloc(1, sizeof(*chain));
	struct chain_db **ptail = &chain->passdbs, **mtail = &chain->masters;
	struct chain_db **utail = &chain->userdbs;
	for (const struct db_settings *s = passdbs; s != NULL; s = s->next) {
		if (s->driver == NULL || s->driver[0] == '\0')
			continue;
		struct chain_db *db = db_new(s, true, worker, error_r);
		if (db == NULL) {
			auth_chain_free(chain);
			return NULL;
		}
		db->index = chain->pcount;
		chain->pall = rg_realloc(chain->pall, (chain->pcount + 1) * sizeof(*chain->pall));
		chain->pall[chain->pcount++] = db;
		if (db->master) {
			*mtail = db;
			mtail = &db->next;
		} else {
			*ptail = db;
			ptail = &db->next;
		}
	}
	for (const struct db_settings *s = userdbs; s != NULL; s = s->next) {
		if (s->driver == NULL || s->driver[0] == '\0')
			continue;
		struct chain_db *db = db_new(s, false, worker, error_r);
		if (db == NULL) {
			auth_chain_free(chain);
			return NULL;
		}
		db->index = chain->ucount;
		chain->uall = rg_realloc(chain->uall, (chain->ucount + 1) * sizeof(*chain->uall));
		chain->uall[chain->ucount++] = db;
		*utail = db;
		utail = &db->next;
	}
	return chain;
}

struct auth_chain *auth_chain_new(const struct db_settings *passdbs,
				  const struct db_settings *userdbs, char **error_r)
{
	return chain_new(passdbs, userdbs, false, error_r);
}

struct auth_chain *auth_chain_new_worker(const struct db_settings *passdbs,
					 const struct db_settings *userdbs, char **error_r)
{
	return chain_new(passdbs, userdbs, true, error_r);
}

void auth_chain_free(struct auth_chain *chain)
{
	if (chain == NULL)
		return;
	for (unsigned i = 0; i < chain->pcount; i++)
		db_free(chain->pall[i]);
	for (unsigned i = 0; i < chain->ucount; i++)
		db_free(chain->uall[i]);
	rg_free(chain->pall);
	rg_free(chain->uall);
	rg_free(chain);
}

void auth_chain_set_worker(struct auth_chain *chain, const struct auth_chain_worker_ops *ops,
			   void *ctx)
{
	chain->wops = ops;
	chain->wctx = ctx;
}

void auth_chain_set_cache(struct auth_chain *chain, struct auth_cache *cache)
{
	chain->cache = cache;
}

void auth_chain_cache_counts(const struct auth_chain *chain, uint64_t *hits_r,
			     uint64_t *misses_r)
{
	*hits_r = chain->cache_hits;
	*misses_r = chain->cache_misses;
}

unsigned auth_chain_passdb_count(const struct auth_chain *chain)
{
	return chain->pcount;
}

unsigned auth_chain_userdb_count(const struct auth_chain *chain)
{
	return chain->ucount;
}

struct passdb_module *auth_chain_passdb(struct auth_chain *chain, unsigned index)
{
	return index < chain->pcount ? &chain->pall[index]->pmod : NULL;
}

struct userdb_module *auth_chain_userdb(struct auth_chain *chain, unsigned index)
{
	return index < chain->ucount ? &chain->uall[index]->umod : NULL;
}

const char *auth_chain_passdb_name(const struct auth_chain *chain, unsigned index)
{
	return index < chain->pcount ? chain->pall[index]->name : "?";
}

const char *auth_chain_userdb_name(const struct auth_chain *chain, unsigned index)
{
	return index < chain->ucount ? chain->uall[index]->name : "?";
}

bool auth_chain_has_driver(const struct auth_chain *chain, const char *driver)
{
	for (unsigned i = 0; i < chain->pcount; i++) {
		if (strcmp(chain->pall[i]->pmod.driver->name, driver) == 0)
			return true;
	}
	for (unsigned i = 0; i < chain->ucount; i++) {
		if (strcmp(chain->uall[i]->umod.driver->name, driver) == 0)
			return true;
	}
	return false;
}

bool auth_chain_has_masters(const struct auth_chain *chain)
{
	return chain->masters != NULL;
}
