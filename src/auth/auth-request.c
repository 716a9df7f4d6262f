#include "auth/auth-request.h"

#include "lib/alloc.h"

#include <stdio.h>
#include <string.h>

static int fields_find(const struct auth_fields *f, const char *key)
{
	for (unsigned i = 0; i < f->count; i++) {
		if (strcmp(f->kv[2 * i], key) == 0)
			return (int)i;
	}
	return -1;
}

void auth_fields_set(struct auth_fields *f, const char *key, const char *value)
{
	if (value == NULL)
		value = "";
	int i = fields_find(f, key);
	if (i >= 0) {
		char *old = f->kv[2 * i + 1];
		f->kv[2 * i + 1] = rg_strdup(value);
		explicit_bzero(old, strlen(old));
		rg_free(old);
		return;
	}
	if (f->count == f->alloc) {
		f->alloc = f->alloc == 0 ? 8 : f->alloc * 2;
		f->kv = rg_realloc(f->kv, 2 * f->alloc * sizeof(*f->kv));
	}
	f->kv[2 * f->count] = rg_strdup(key);
	f->kv[2 * f->count + 1] = rg_strdup(value);
	f->count++;
}

const char *auth_fields_get(const struct auth_fields *f, const char *key)
{
	int i = fields_find(f, key);
	return i < 0 ? NULL : f->kv[2 * i + 1];
}

static void pair_free(char **kv)
{
	rg_free(kv[0]);
	explicit_bzero(kv[1], strlen(kv[1])); /* a pass= field */
	rg_free(kv[1]);
}

bool auth_fields_remove(struct auth_fields *f, const char *key)
{
	int i = fields_find(f, key);
	if (i < 0)
		return false;
	pair_free(&f->kv[2 * i]);
	memmove(&f->kv[2 * i], &f->kv[2 * i + 2], 2 * (f->count - (unsigned)i - 1) * sizeof(*f->kv));
	f->count--;
	return true;
}

void auth_fields_truncate(struct auth_fields *f, unsigned count)
{
	while (f->count > count) {
		f->count--;
		pair_free(&f->kv[2 * f->count]);
	}
}

void auth_fields_clear(struct auth_fields *f)
{
	auth_fields_truncate(f, 0);
	rg_free(f->kv);
	memset(f, 0, sizeof(*f));
}

static void append_clean(char **out, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);
	if (*len + n + 2 > *cap) {
		*cap = (*len + n + 2) * 2;
		*out = rg_realloc(*out, *cap);
	}
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		(*out)[(*len)++] = c == '\t' || c == '\n' || c == '\r' ? ' ' : c;
	}
	(*out)[*len] = '\0';
}

char *auth_fields_export(const struct auth_fields *f)
{
	size_t len = 0, cap = 64;
	char *out = rg_malloc(cap);
	out[0] = '\0';
	for (unsigned i = 0; i < f->count; i++) {
		if (i > 0) {
			append_clean(&out, &len, &cap, " "); /* makes room */
			out[len - 1] = '\t';
		}
		append_clean(&out, &len, &cap, f->kv[2 * i]);
		if (f->kv[2 * i + 1][0] != '\0') {
			append_clean(&out, &len, &cap, "=");
			append_clean(&out, &len, &cap, f->kv[2 * i + 1]);
		}
	}
	return out;
}

void auth_fields_import(struct auth_fields *f, const char *text, size_t len)
{
	size_t pos = 0;
	while (pos < len) {
		const char *tab = memchr(text + pos, '\t', len - pos);
		size_t end = tab != NULL ? (size_t)(tab - text) : len;
		if (end > pos) {
			char *item = rg_strndup(text + pos, end - pos);
			char *eq = strchr(item, '=');
			if (eq != NULL)
				*eq++ = '\0';
			if (item[0] != '\0')
				auth_fields_set(f, item, eq != NULL ? eq : "");
			explicit_bzero(item, end - pos);
			rg_free(item);
		}
		pos = end + 1;
	}
}

void auth_db_request_init(struct auth_db_request *req, const char *user)
{
	memset(req, 0, sizeof(*req));
	req->user = rg_strdup(user);
	req->original_user = rg_strdup(user);
	req->service = "";
	req->mech = "PLAIN";
}

void auth_db_request_clear(struct auth_db_request *req)
{
	rg_free(req->user);
	rg_free(req->original_user);
	rg_free(req->master_user);
	rg_free(req->requested_user);
	rg_free(req->fail_reason);
	rg_free(req->chain_scheme);
	rg_free(req->cache_key);
	if (req->delayed_cred != NULL)
		explicit_bzero(req->delayed_cred, req->delayed_cred_len);
	rg_free(req->delayed_cred);
	rg_free(req->delayed_scheme);
	auth_fields_clear(&req->passdb_fields);
	auth_fields_clear(&req->userdb_fields);
	memset(req, 0, sizeof(*req));
}

void auth_request_set_userdb_field(struct auth_db_request *req, const char *key,
				   const char *value)
{
	auth_fields_set(&req->userdb_fields, key, value);
}

void auth_request_set_field(struct auth_db_request *req, const char *key, const char *value)
{
	if (strncmp(key, "userdb_", 7) == 0 && key[7] != '\0') {
		auth_request_set_userdb_field(req, key + 7, value);
	} else if (strcmp(key, "user") == 0 && value != NULL && value[0] != '\0') {
		char *old = req->user;
		req->user = rg_strdup(value);
		rg_free(old);
	} else {
		auth_fields_set(&req->passdb_fields, key, value);
	}
}

void auth_request_set_fields_str(struct auth_db_request *req, const char *text, bool userdb)
{
	while (*text != '\0') {
		while (*text == ' ')
			text++;
		size_t n = strcspn(text, " ");
		if (n == 0)
			break;
		char *item = rg_strndup(text, n);
		char *eq = strchr(item, '=');
		if (eq != NULL)
			*eq++ = '\0';
		if (item[0] != '\0') {
			if (userdb)
				auth_request_set_userdb_field(req, item, eq != NULL ? eq : "");
			else
				auth_request_set_field(req, item, eq != NULL ? eq : "");
		}
		rg_free(item);
		text += n;
	}
}

int auth_request_expand(const struct auth_db_request *req, const char *str,
			var_expand_escape_fn *escape, void *context, char **result_r,
			char **error_r)
{
	const char *user = req->user != NULL ? req->user : "";
	const char *at = strrchr(user, '@');
	char *username = at != NULL ? rg_strndup(user, (size_t)(at - user)) : rg_strdup(user);
	const char *orig = req->original_user != NULL ? req->original_user : user;
	const char *oat = strrchr(orig, '@');
	char *orig_username = oat != NULL ? rg_strndup(orig, (size_t)(oat - orig)) : rg_strdup(orig);
	char lport[12], rport[12];
	snprintf(lport, sizeof(lport), "%u", req->lport);
	snprintf(rport, sizeof(rport), "%u", req->rport);
	const struct var_expand_entry table[] = {
		{ 'u', "user", user },
		{ 'n', "username", username },
		{ 'd', "domain", at != NULL ? at + 1 : "" },
		{ 's', "service", req->service },
		{ 'h', "home", auth_fields_get(&req->userdb_fields, "home") },
		{ 'i', "uid", auth_fields_get(&req->userdb_fields, "uid") },
		{ 0, "gid", auth_fields_get(&req->userdb_fields, "gid") },
		{ 'l', "lip", req->lip },
		{ 'r', "rip", req->rip },
		{ 'a', "lport", req->lport != 0 ? lport : "" },
		{ 'b', "rport", req->rport != 0 ? rport : "" },
		{ 'm', "mech", req->mech },
		{ 'c', "secured", req->secured ? "secured" : "" },
		{ 0, "master_user", req->master_user },
		{ 0, "orig_user", orig },
		{ 0, "orig_username", orig_username },
		{ 0, "orig_domain", oat != NULL ? oat + 1 : "" },
		{ 0, NULL, NULL },
	};
	int ret = var_expand(str, table, escape, context, result_r, error_r);
	rg_free(username);
	rg_free(orig_username);
	return ret;
}

int auth_username_fix(const struct auth_username_rules *rules, struct auth_db_request *req,
		      const char *name, char **user_r, char **error_r)
{
	char *user;
	if (rules->default_realm != NULL && rules->default_realm[0] != '\0' &&
	    strchr(name, '@') == NULL)
		user = rg_strdup_printf("%s@%s", name, rules->default_realm);
	else
		user = rg_strdup(name);
	const char *tr = rules->translation != NULL ? rules->translation : "";
	size_t trlen = strlen(tr) & ~(size_t)1;
	for (char *p = user; *p != '\0'; p++) {
		for (size_t i = 0; i < trlen; i += 2) {
			if (*p == tr[i]) {
				*p = tr[i + 1];
				break;
			}
		}
		if (rules->chars != NULL && rules->chars[0] != '\0' &&
		    strchr(rules->chars, *p) == NULL) {
			*error_r = rg_strdup_printf("username character disallowed by "
						    "auth_username_chars: 0x%02x",
						    (unsigned)(unsigned char)*p);
			rg_free(user);
			return -1;
		}
	}
	if (rules->format != NULL && rules->format[0] != '\0') {
		char *saved = req->user;
		req->user = user;
		char *out = NULL;
		int ret = auth_request_expand(req, rules->format, NULL, NULL, &out, error_r);
		req->user = saved;
		rg_free(user);
		if (ret < 0)
			return -1;
		user = out;
	}
	if (user[0] == '\0') {
		rg_free(user);
		*error_r = rg_strdup("empty username");
		return -1;
	}
	*user_r = user;
	return 0;
}
