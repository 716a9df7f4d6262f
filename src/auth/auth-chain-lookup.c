/* auth-chain-lookup.c — running a request through the chain built by
 * auth-chain.c: the auth cache in front of each db, username_filter /
 * mechanisms / skip matching, then the passdb chain (verify_plain,
 * lookup_credentials, master passdbs) and the userdb chain, each db
 * answering through its driver's callbacks and the result_* rules. */
#include "auth/auth-chain.h"
#include "auth/auth-chain-private.h"
#include "auth/auth-cache.h"

#include "lib/alloc.h"
#include "lib/log.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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
