#include "auth/auth-chain.h"
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

enum db_rule {
	RULE_RETURN,
	RULE_RETURN_OK,
	RULE_RETURN_FAIL,
	RULE_CONTINUE,
	RULE_CONTINUE_OK,
	RULE_CONTINUE_FAIL,
};

enum db_skip { SKIP_NEVER, SKIP_AUTHENTICATED, SKIP_UNAUTHENTICATED, SKIP_FOUND, SKIP_NOTFOUND };

struct chain_db {
	struct chain_db *next; /* in its list: masters, passdbs or userdbs */
	unsigned index;        /* in file order among passdbs (or userdbs) */
	char *name;
	struct passdb_module pmod;
	struct userdb_module umod;
	enum db_skip skip;
	enum db_rule success, failure, internalfail;
	char *mechanisms, *username_filter, *default_fields, *override_fields;
	bool deny, master;
	bool inited; /* the driver's init ran (deinit is due) */
};

struct auth_chain {
	struct chain_db *passdbs, *masters, *userdbs;
	struct chain_db **pall, **uall; /* by index */
	unsigned pcount, ucount;
	const struct auth_chain_worker_ops *wops;
	void *wctx;
	struct auth_cache *cache;
	uint64_t cache_hits, cache_misses;
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

/* ---- the cache ------------------------------------------------------------ */

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The cache key of this lookup ("P3\t<expanded>"), NULL when the module
 * is not cached */
static char *cache_key_make(struct auth_db_request *req, const struct chain_db *db, bool passdb)
{
	const char *tmpl = passdb ? db->pmod.cache_key : db->umod.cache_key;
	if (req->chain->cache == NULL || tmpl == NULL)
		return NULL;
	char *text = NULL, *error = NULL;
	if (auth_request_expand(req, tmpl, NULL, NULL, &text, &error) < 0) {
		log_error("%s: cache_key: %s", db->name, error);
		rg_free(error);
		return NULL;
	}
	char *key = rg_strdup_printf("%c%u\t%s", passdb ? 'P' : 'U', db->index, text);
	rg_free(text);
	return key;
}

/* fields [mark..count) of f as TAB-separated text */
static char *fields_export_from(const struct auth_fields *f, unsigned mark)
{
	struct auth_fields part = {
		.kv = f->kv + 2 * mark,
		.count = f->count > mark ? f->count - mark : 0,
	};
	return auth_fields_export(&part);
}

/* a hit: the cached answer's fields into req, true. false: a miss, and
 * req->cache_key remembers where the answer goes */
static bool cache_try(struct auth_db_request *req, const struct chain_db *db, bool passdb,
		      const uint8_t *pw, size_t pw_len, bool *found_r)
{
	struct auth_chain *chain = req->chain;
	rg_free(req->cache_key);
	req->cache_key = cache_key_make(req, db, passdb);
	if (req->cache_key == NULL)
		return false;
	struct auth_cache_entry_view v;
	if (!auth_cache_lookup(chain->cache, req->cache_key, pw, pw_len, mono_ms(), &v)) {
		chain->cache_misses++;
		req->cache_pmark = req->passdb_fields.count;
		req->cache_umark = req->userdb_fields.count;
		return false;
	}
	chain->cache_hits++;
	*found_r = v.kind == AUTH_CACHE_OK;
	if (*found_r) {
		if (v.user[0] != '\0' && strcmp(v.user, req->user) != 0)
			auth_request_set_field(req, "user", v.user);
		struct auth_fields tmp;
		memset(&tmp, 0, sizeof(tmp));
		auth_fields_import(&tmp, v.passdb_fields, strlen(v.passdb_fields));
		for (unsigned i = 0; i < tmp.count; i++)
			auth_request_set_field(req, tmp.kv[2 * i], tmp.kv[2 * i + 1]);
		auth_fields_clear(&tmp);
		auth_fields_import(&req->userdb_fields, v.userdb_fields, strlen(v.userdb_fields));
	}
	rg_free(req->cache_key);
	req->cache_key = NULL;
	return true;
}

/* the answer of a lookup that missed: kept for next time */
static void cache_store(struct auth_db_request *req, bool found, bool unknown,
			const uint8_t *pw, size_t pw_len)
{
	if (req->cache_key == NULL)
		return;
	if (found || unknown) {
		char *pf = fields_export_from(&req->passdb_fields, req->cache_pmark);
		char *uf = fields_export_from(&req->userdb_fields, req->cache_umark);
		auth_cache_put(req->chain->cache, req->cache_key, req->original_user,
			       found ? AUTH_CACHE_OK : AUTH_CACHE_UNKNOWN, pw, pw_len, pf, uf,
			       req->user, mono_ms());
		explicit_bzero(pf, strlen(pf));
		rg_free(pf);
		rg_free(uf);
	}
	rg_free(req->cache_key);
	req->cache_key = NULL;
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

/* ---- matching ------------------------------------------------------------ */

static bool wildcard_match(const char *pat, const char *s)
{
	for (; *pat != '\0'; pat++, s++) {
		if (*pat == '*') {
			while (pat[1] == '*')
				pat++;
			if (pat[1] == '\0')
				return true;
			for (; *s != '\0'; s++) {
				if (wildcard_match(pat + 1, s))
					return true;
			}
			return false;
		}
		if (*s == '\0' || (*pat != '?' && *pat != *s))
			return false;
	}
	return *s == '\0';
}

bool auth_wildcard_match_icase(const char *pattern, const char *s)
{
	char *p = rg_strdup(pattern), *t = rg_strdup(s);
	for (char *c = p; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	for (char *c = t; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	bool ret = wildcard_match(p, t);
	rg_free(p);
	rg_free(t);
	return ret;
}

bool auth_username_filter_match(const char *filter, const char *user)
{
	bool have_positive = false, matched_positive = false;
	char pat[256];
	while (*filter != '\0') {
		while (*filter == ' ' || *filter == '\t')
			filter++;
		size_t n = strcspn(filter, " \t");
		if (n == 0)
			break;
		bool neg = filter[0] == '!';
		size_t off = neg ? 1 : 0;
		size_t plen = n - off < sizeof(pat) ? n - off : sizeof(pat) - 1;
		memcpy(pat, filter + off, plen);
		pat[plen] = '\0';
		if (neg) {
			if (wildcard_match(pat, user))
				return false;
		} else {
			have_positive = true;
			if (wildcard_match(pat, user))
				matched_positive = true;
		}
		filter += n;
	}
	return !have_positive || matched_positive;
}

static bool word_in_list_ci(const char *list, const char *word)
{
	size_t wlen = strlen(word);
	while (*list != '\0') {
		while (*list == ' ' || *list == ',')
			list++;
		size_t n = strcspn(list, " ,");
		if (n == wlen && strncasecmp(list, word, n) == 0)
			return true;
		list += n;
	}
	return false;
}

/* a block's skip, mechanisms and username_filter rules (userdb blocks have
 * only skip = found | notfound) */
static bool db_want_skip(const struct auth_db_request *req, const struct chain_db *db)
{
	if (db->skip == SKIP_FOUND)
		return req->userdb_found;
	if (db->skip == SKIP_NOTFOUND)
		return !req->userdb_found;
	if (db->mechanisms[0] != '\0' && req->mech != NULL &&
	    !word_in_list_ci(db->mechanisms, req->mech))
		return true;
	if (db->username_filter[0] != '\0' &&
	    !auth_username_filter_match(db->username_filter, req->user))
		return true;
	switch (db->skip) {
	case SKIP_AUTHENTICATED:
		return req->skip_password_check;
	case SKIP_UNAUTHENTICATED:
		return !req->skip_password_check;
	default:
		return false;
	}
}

/* db or the first block after it that is not skipped */
static const struct chain_db *db_forward(const struct auth_db_request *req,
					 const struct chain_db *db)
{
	while (db != NULL && db_want_skip(req, db))
		db = db->next;
	return db;
}

/* ---- the passdb chain ------------------------------------------------------ */

/* default_fields / override_fields: %-variables expanded per request */
static void fields_apply(struct auth_db_request *req, const struct chain_db *db,
			 const char *template, bool userdb)
{
	char *text = NULL, *error = NULL;
	if (auth_request_expand(req, template, NULL, NULL, &text, &error) < 0) {
		log_error("%s(%s,%s): fields '%s': %s", db->name, req->user, req->rip, template,
			  error);
		rg_free(error);
		return;
	}
	auth_request_set_fields_str(req, text, userdb);
	rg_free(text);
}

static void passdb_call(struct auth_db_request *req, const struct chain_db *db);

static void passdb_mark(struct auth_db_request *req)
{
	req->fields_mark = req->passdb_fields.count;
	req->ufields_mark = req->userdb_fields.count;
}

/* One passdb answered. true: the chain ends with *result; false: ask
 * *next_r. */
static bool passdb_handle(struct auth_db_request *req, enum passdb_result *result,
			  const struct chain_db **next_r)
{
	const struct chain_db *db = req->chain_db;
	struct auth_chain *chain = req->chain;

	if (db->deny) {
		req->skip_password_check = req->saved_skip;
		if (*result != PASSDB_RESULT_USER_UNKNOWN) {
			/* only "not in the deny list" gets past; an
			 * internal failure here is final */
			if (*result != PASSDB_RESULT_INTERNAL_FAILURE) {
				log_info("%s(%s,%s): user found in a deny passdb", db->name,
					 req->user, req->rip);
				*result = PASSDB_RESULT_USER_DISABLED;
			}
			auth_fields_truncate(&req->passdb_fields, req->fields_mark);
			auth_fields_truncate(&req->userdb_fields, req->ufields_mark);
			return true;
		}
	}
	if (*result == PASSDB_RESULT_OK && db->override_fields[0] != '\0')
		fields_apply(req, db, db->override_fields, false);

	enum db_rule rule;
	switch (*result) {
	case PASSDB_RESULT_USER_DISABLED:
		return true;
	case PASSDB_RESULT_PASS_EXPIRED:
		auth_request_set_field(req, "reason", "Password expired");
		return true;
	case PASSDB_RESULT_OK:
		rule = db->success;
		break;
	case PASSDB_RESULT_INTERNAL_FAILURE:
		rule = db->internalfail;
		break;
	case PASSDB_RESULT_NEXT:
		rule = RULE_CONTINUE;
		break;
	default:
		rule = db->failure;
		break;
	}
	bool cont = false;
	switch (rule) {
	case RULE_RETURN:
		break;
	case RULE_RETURN_OK:
		req->passdb_success = true;
		break;
	case RULE_RETURN_FAIL:
		req->passdb_success = false;
		break;
	case RULE_CONTINUE:
		cont = true;
		if (*result == PASSDB_RESULT_OK)
			req->skip_password_check = true;
		break;
	case RULE_CONTINUE_OK:
		cont = true;
		req->passdb_success = true;
		req->skip_password_check = true;
		break;
	case RULE_CONTINUE_FAIL:
		cont = true;
		req->passdb_success = false;
		break;
	}
	/* one passdb's nopassword must not leak into the next */
	auth_fields_remove(&req->passdb_fields, "nopassword");

	const struct chain_db *next;
	if (req->requested_user != NULL && *result == PASSDB_RESULT_OK) {
		/* the master user is authenticated: from now on the request
		 * is about the user it logs in as */
		rg_free(req->master_user);
		req->master_user = req->user;
		req->user = req->requested_user;
		req->requested_user = NULL;
		next = chain->passdbs;
	} else {
		next = db->next;
	}
	next = db_forward(req, next);

	if (*result == PASSDB_RESULT_OK || *result == PASSDB_RESULT_NEXT) {
		passdb_mark(req);
	} else {
		/* a failed passdb's fields go; the message it chose to show
		 * the client (PAM's failure_show_msg) stays for the reply */
		const char *reason = auth_fields_get(&req->passdb_fields, AUTH_FIELD_FAILURE_MSG);
		if (reason != NULL && reason[0] != '\0') {
			rg_free(req->fail_reason);
			req->fail_reason = rg_strdup(reason);
		}
		auth_fields_truncate(&req->passdb_fields, req->fields_mark);
		auth_fields_truncate(&req->userdb_fields, req->ufields_mark);
	}

	if (cont && next != NULL) {
		if (*result == PASSDB_RESULT_USER_UNKNOWN)
			req->seen_user_unknown = true;
		else if (*result == PASSDB_RESULT_INTERNAL_FAILURE)
			req->seen_internal_failure = true;
		*next_r = next;
		return false;
	}
	if (*result == PASSDB_RESULT_NEXT) {
		log_error("%s(%s,%s): the last passdb has no opinion (noauthenticate): "
			  "cannot authenticate", db->name, req->user, req->rip);
		*result = PASSDB_RESULT_INTERNAL_FAILURE;
	} else if (req->passdb_success) {
		*result = PASSDB_RESULT_OK;
	} else if (req->seen_internal_failure) {
		/* a passdb that failed might have had the right password */
		*result = PASSDB_RESULT_INTERNAL_FAILURE;
	}
	if (*result == PASSDB_RESULT_OK) {
		/* an earlier passdb's failure message has no place now */
		rg_free(req->fail_reason);
		req->fail_reason = NULL;
	}
	return true;
}

static void passdb_verify_done(enum passdb_result result, struct auth_db_request *req)
{
	const struct chain_db *next = NULL;
	/* a verified password is remembered (as a keyed hash); a lookup
	 * without one is stored without it */
	cache_store(req, result == PASSDB_RESULT_OK, result == PASSDB_RESULT_USER_UNKNOWN,
		    req->skip_password_check ? NULL : req->chain_pw,
		    req->skip_password_check ? 0 : req->chain_pw_len);
	if (result == PASSDB_RESULT_OK &&
	    auth_fields_get(&req->passdb_fields, "noauthenticate") != NULL)
		result = PASSDB_RESULT_NEXT;
	auth_fields_remove(&req->passdb_fields, "noauthenticate");
	if (!passdb_handle(req, &result, &next)) {
		passdb_call(req, next);
		return;
	}
	passdb_verify_callback *cb = (passdb_verify_callback *)req->chain_cb;
	req->chain_pw = NULL;
	req->chain_pw_len = 0;
	cb(result, req);
}

static void passdb_cred_done(enum passdb_result result, const char *scheme,
			     const uint8_t *cred, size_t size, struct auth_db_request *req)
{
	const struct chain_db *next = NULL;
	if (result == PASSDB_RESULT_OK &&
	    auth_fields_get(&req->passdb_fields, "noauthenticate") != NULL)
		result = PASSDB_RESULT_NEXT;
	auth_fields_remove(&req->passdb_fields, "noauthenticate");
	if (!passdb_handle(req, &result, &next)) {
		if (req->skip_password_check && req->delayed_cred == NULL && size > 0) {
			/* a continue rule after a found user: these are
			 * the credentials, later passdbs only add fields */
			req->delayed_cred = rg_memdup(cred, size);
			req->delayed_cred_len = size;
			req->delayed_scheme = rg_strdup(scheme != NULL ? scheme : "");
		}
		passdb_call(req, next);
		return;
	}
	if (req->delayed_cred != NULL && size == 0) {
		cred = req->delayed_cred;
		size = req->delayed_cred_len;
		scheme = req->delayed_scheme;
	}
	if (result == PASSDB_RESULT_SCHEME_NOT_AVAILABLE && req->seen_user_unknown)
		result = PASSDB_RESULT_USER_UNKNOWN;
	passdb_credentials_callback *cb = (passdb_credentials_callback *)req->chain_cb;
	cb(result, scheme, cred, size, req);
}

static void passdb_call(struct auth_db_request *req, const struct chain_db *db)
{
	struct auth_chain *chain = req->chain;
	req->chain_db = db;
	req->db_name = db->name;
	if (db->default_fields[0] != '\0')
		fields_apply(req, db, db->default_fields, false);
	if (db->deny) {
		/* a deny list is looked up, never verified */
		req->saved_skip = req->skip_password_check;
		req->skip_password_check = true;
	}
	struct passdb_module *m = (struct passdb_module *)&db->pmod;
	const struct auth_chain_worker_ops *w = m->blocking ? chain->wops : NULL;
	if (req->chain_scheme != NULL) {
		if (m->driver->lookup_credentials == NULL)
			passdb_cred_done(PASSDB_RESULT_SCHEME_NOT_AVAILABLE, NULL, NULL, 0, req);
		else if (w != NULL && w->lookup_credentials != NULL)
			w->lookup_credentials(chain->wctx, db->index, req, req->chain_scheme,
					      passdb_cred_done);
		else
			m->driver->lookup_credentials(m, req, req->chain_scheme, passdb_cred_done);
		return;
	}
	bool found;
	if (!db->deny && cache_try(req, db, true, req->skip_password_check ? NULL : req->chain_pw,
				   req->chain_pw_len, &found)) {
		passdb_verify_done(found ? PASSDB_RESULT_OK : PASSDB_RESULT_USER_UNKNOWN, req);
		return;
	}
	if (w != NULL && w->verify_plain != NULL)
		w->verify_plain(chain->wctx, db->index, req, req->chain_pw, req->chain_pw_len,
				passdb_verify_done);
	else
		m->driver->verify_plain(m, req, req->chain_pw, req->chain_pw_len,
					passdb_verify_done);
}

/* common start; NULL (and cb called by the caller) when nothing to ask */
static const struct chain_db *passdb_begin(struct auth_chain *chain, struct auth_db_request *req,
					   bool *master_unavailable_r)
{
	req->chain = chain;
	req->passdb_success = req->seen_internal_failure = req->seen_user_unknown = false;
	req->skip_password_check = false;
	rg_free(req->fail_reason);
	req->fail_reason = NULL;
	passdb_mark(req);
	*master_unavailable_r = false;
	const struct chain_db *first = chain->passdbs;
	if (req->master_user != NULL) {
		if (chain->masters == NULL) {
			log_info("passdb(%s,%s): master user login attempted without master passdbs",
				 req->user, req->rip);
			*master_unavailable_r = true;
			return NULL;
		}
		rg_free(req->requested_user);
		req->requested_user = req->user;
		req->user = req->master_user;
		req->master_user = NULL;
		first = chain->masters;
	}
	first = db_forward(req, first);
	if (first == NULL)
		log_error("passdb(%s,%s): all password databases were skipped", req->user, req->rip);
	return first;
}

void auth_chain_verify_plain(struct auth_chain *chain, struct auth_db_request *req,
			     const uint8_t *pw, size_t pw_len, passdb_verify_callback *cb)
{
	bool master_unavailable;
	rg_free(req->chain_scheme);
	req->chain_scheme = NULL;
	const struct chain_db *first = passdb_begin(chain, req, &master_unavailable);
	if (first == NULL) {
		cb(master_unavailable ? PASSDB_RESULT_USER_UNKNOWN : PASSDB_RESULT_INTERNAL_FAILURE,
		   req);
		return;
	}
	req->chain_cb = (void *)cb;
	req->chain_pw = pw;
	req->chain_pw_len = pw_len;
	passdb_call(req, first);
}

void auth_chain_lookup_credentials(struct auth_chain *chain, struct auth_db_request *req,
				   const char *scheme, passdb_credentials_callback *cb)
{
	bool master_unavailable;
	rg_free(req->chain_scheme);
	req->chain_scheme = rg_strdup(scheme != NULL ? scheme : "");
	const struct chain_db *first = passdb_begin(chain, req, &master_unavailable);
	if (first == NULL) {
		cb(master_unavailable ? PASSDB_RESULT_USER_UNKNOWN : PASSDB_RESULT_INTERNAL_FAILURE,
		   NULL, NULL, 0, req);
		return;
	}
	req->chain_cb = (void *)cb;
	passdb_call(req, first);
}

/* ---- the userdb chain ------------------------------------------------------ */

static void userdb_call(struct auth_db_request *req, const struct chain_db *db);

static void userdb_done(enum userdb_result result, struct auth_db_request *req)
{
	const struct chain_db *db = req->chain_db;
	cache_store(req, result == USERDB_RESULT_OK, result == USERDB_RESULT_USER_UNKNOWN, NULL, 0);
	enum db_rule rule;
	if (result == USERDB_RESULT_OK) {
		if (db->override_fields[0] != '\0')
			fields_apply(req, db, db->override_fields, true);
		rule = db->success;
	} else if (result == USERDB_RESULT_INTERNAL_FAILURE) {
		rule = db->internalfail;
	} else {
		rule = db->failure;
	}
	bool cont = false;
	switch (rule) {
	case RULE_RETURN:
		req->userdb_found = result == USERDB_RESULT_OK;
		break;
	case RULE_RETURN_OK:
		req->userdb_found = true;
		break;
	case RULE_RETURN_FAIL:
		req->userdb_found = false;
		break;
	case RULE_CONTINUE:
		cont = true;
		if (result == USERDB_RESULT_OK)
			req->userdb_found = true;
		break;
	case RULE_CONTINUE_OK:
		cont = true;
		req->userdb_found = true;
		break;
	case RULE_CONTINUE_FAIL:
		cont = true;
		req->userdb_found = false;
		break;
	}
	if (result == USERDB_RESULT_OK)
		req->ufields_mark = req->userdb_fields.count;
	else
		auth_fields_truncate(&req->userdb_fields, req->ufields_mark);
	if (result == USERDB_RESULT_INTERNAL_FAILURE)
		req->seen_internal_failure = true;

	const struct chain_db *next = cont ? db_forward(req, db->next) : NULL;
	if (next != NULL) {
		userdb_call(req, next);
		return;
	}
	enum userdb_result final;
	if (req->userdb_found)
		final = USERDB_RESULT_OK;
	else if (req->seen_internal_failure)
		final = USERDB_RESULT_INTERNAL_FAILURE;
	else
		final = USERDB_RESULT_USER_UNKNOWN;
	userdb_callback *cb = (userdb_callback *)req->chain_cb;
	cb(final, req);
}

static void userdb_call(struct auth_db_request *req, const struct chain_db *db)
{
	struct auth_chain *chain = req->chain;
	req->chain_db = db;
	req->db_name = db->name;
	if (db->default_fields[0] != '\0')
		fields_apply(req, db, db->default_fields, true);
	struct userdb_module *m = (struct userdb_module *)&db->umod;
	bool found;
	if (cache_try(req, db, false, NULL, 0, &found)) {
		userdb_done(found ? USERDB_RESULT_OK : USERDB_RESULT_USER_UNKNOWN, req);
		return;
	}
	if (m->blocking && chain->wops != NULL && chain->wops->userdb_lookup != NULL)
		chain->wops->userdb_lookup(chain->wctx, db->index, req, userdb_done);
	else
		m->driver->lookup(m, req, userdb_done);
}

void auth_chain_userdb_lookup(struct auth_chain *chain, struct auth_db_request *req,
			      userdb_callback *cb)
{
	req->chain = chain;
	req->userdb_found = false;
	req->seen_internal_failure = false;
	req->ufields_mark = req->userdb_fields.count;
	if (chain->userdbs == NULL) {
		/* no userdb: what the passdbs gave (Dovecot's prefetch) */
		cb(USERDB_RESULT_OK, req);
		return;
	}
	const struct chain_db *first = db_forward(req, chain->userdbs);
	if (first == NULL) {
		cb(USERDB_RESULT_USER_UNKNOWN, req);
		return;
	}
	req->chain_cb = (void *)cb;
	userdb_call(req, first);
}
