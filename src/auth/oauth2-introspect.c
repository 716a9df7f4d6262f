#include "auth/oauth2-introspect.h"

#include "lib/alloc.h"
#include "lib/json.h"
#include "tls/tls-crypto.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- requests ------------------------------------------------------------ */

/* RFC 3986 unreserved characters stay, everything else is %XX (a form or
 * query value: the token may hold '+', '/', '=') */
static void escape_append(char *out, size_t *o, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			out[(*o)++] = (char)c;
		} else {
			out[(*o)++] = '%';
			out[(*o)++] = hex[c >> 4];
			out[(*o)++] = hex[c & 15];
		}
	}
	out[*o] = '\0';
}

static char *concat_escaped(const char *prefix, const char *token, const char *client_id,
			    const char *client_secret)
{
	const char *id = client_id != NULL ? client_id : "";
	const char *secret = client_secret != NULL ? client_secret : "";
	size_t n = strlen(prefix) + 3 * (strlen(token) + strlen(id) + strlen(secret)) + 40;
	char *out = rg_malloc(n);
	size_t o = (size_t)snprintf(out, n, "%s", prefix);
	escape_append(out, &o, token);
	if (client_id != NULL) {
		memcpy(out + o, "&client_id=", 11);
		o += 11;
		escape_append(out, &o, id);
		memcpy(out + o, "&client_secret=", 15);
		o += 15;
		escape_append(out, &o, secret);
	}
	return out;
}

void oauth2_request_make(const struct oauth2_remote *r, const char *token, const char **method_r,
			 char **url_r, char **body_r, char **auth_header_r)
{
	*body_r = NULL;
	*auth_header_r = NULL;
	*method_r = "GET";
	switch (r->mode) {
	case OAUTH2_MODE_POST:
		*method_r = "POST";
		*url_r = rg_strdup(r->url);
		*body_r = concat_escaped("token=", token, r->client_id != NULL ? r->client_id : "",
					 r->client_secret);
		return;
	case OAUTH2_MODE_GET:
		/* Dovecot appends the token to the URL as it is written
		   ("https://idp/introspect?token=") and the client's name */
		*url_r = concat_escaped(r->url, token, r->client_id != NULL ? r->client_id : "",
					r->client_secret);
		return;
	case OAUTH2_MODE_TOKENINFO:
		*url_r = concat_escaped(r->url, token, NULL, NULL);
		return;
	case OAUTH2_MODE_AUTH:
	case OAUTH2_MODE_LOCAL:
	default:
		*url_r = rg_strdup(r->url);
		*auth_header_r = rg_strdup_printf("Authorization: Bearer %s", token);
		return;
	}
}

/* ---- answers ------------------------------------------------------------- */

static void verdict(struct oauth2_verdict *v, enum passdb_result result, const char *error)
{
	v->result = result;
	v->error = error;
}

/* a member's value as text: a string decoded, true/false/numbers as
 * written (Dovecot compares active_value with the JSON literal so) */
static bool member_text(const struct json_object *obj, const char *key, char *out, size_t size)
{
	const struct json_member *m = json_get(obj, key);
	if (m == NULL)
		return false;
	if (m->type == JSON_STRING)
		return json_get_string(obj, key, out, size);
	if (m->type == JSON_OBJECT || m->type == JSON_ARRAY || m->raw_len >= size)
		return false;
	memcpy(out, m->raw, m->raw_len);
	out[m->raw_len] = '\0';
	return true;
}

static bool scope_has(const char *scopes, const char *want)
{
	size_t wl = strlen(want);
	for (const char *p = scopes; *p != '\0';) {
		while (*p == ' ')
			p++;
		size_t n = strcspn(p, " ");
		if (n == wl && n > 0 && memcmp(p, want, n) == 0)
			return true;
		p += n;
	}
	return false;
}

void oauth2_reply_judge(const struct oauth2_remote *r, long status, const char *body,
			size_t len, int64_t now, struct oauth2_verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (status >= 400 && status < 500) {
		/* the IdP refuses the token (tokeninfo, Bearer auth) */
		verdict(v, PASSDB_RESULT_PASSWORD_MISMATCH, "the IdP refused the token (4xx)");
		return;
	}
	if (status < 200 || status > 299) {
		verdict(v, PASSDB_RESULT_INTERNAL_FAILURE, "the IdP failed (status not 2xx/4xx)");
		return;
	}
	struct json_object *obj = rg_malloc(sizeof(*obj));
	const char *jerr;
	char text[OAUTH2_USER_MAX + 1];
	if (!json_parse_object(body, len, obj, &jerr)) {
		verdict(v, PASSDB_RESULT_INTERNAL_FAILURE, "the IdP's answer is not a JSON object");
		goto out;
	}
	/* RFC 7662: "active": false is a token that must not log in */
	const struct json_member *active = json_get(obj, "active");
	if (active != NULL && active->type != JSON_TRUE) {
		verdict(v, PASSDB_RESULT_PASSWORD_MISMATCH, "the token is not active");
		goto out;
	}
	int64_t exp;
	if (json_get_int64(obj, "exp", &exp)) {
		if (exp <= now) {
			verdict(v, PASSDB_RESULT_PASSWORD_MISMATCH, "the token expired");
			goto out;
		}
		v->exp = exp;
	}
	if (!json_get_string(obj, r->username_attribute, v->user, sizeof(v->user)) ||
	    v->user[0] == '\0') {
		/* as Dovecot: "No username returned" is the IdP's fault */
		verdict(v, PASSDB_RESULT_INTERNAL_FAILURE, "the answer names no user "
			"(username_attribute)");
		goto out;
	}
	if (r->active_attribute != NULL &&
	    (!member_text(obj, r->active_attribute, text, sizeof(text)) ||
	     (r->active_value != NULL && strcmp(text, r->active_value) != 0))) {
		verdict(v, PASSDB_RESULT_USER_DISABLED, "the user account is not active");
		goto out;
	}
	if (r->scope != NULL) {
		char *scopes = rg_malloc(JSON_MAX_LEN);
		bool ok = json_get_string(obj, "scope", scopes, JSON_MAX_LEN) &&
			  scope_has(scopes, r->scope);
		rg_free(scopes);
		if (!ok) {
			verdict(v, PASSDB_RESULT_USER_DISABLED, "the token is not valid for scope");
			goto out;
		}
	}
	verdict(v, PASSDB_RESULT_OK, NULL);
out:
	rg_free(obj);
	if (v->result != PASSDB_RESULT_OK)
		v->user[0] = '\0';
}

/* the part of a name username_format keeps */
static size_t format_len(const struct oauth2_remote *r, const char *name)
{
	return r->format_local_part ? strcspn(name, "@") : strlen(name);
}

enum passdb_result oauth2_verdict_for_user(const struct oauth2_remote *r,
					   const struct oauth2_verdict *v, const char *user,
					   const char **error_r)
{
	*error_r = v->error;
	if (v->result != PASSDB_RESULT_OK)
		return v->result;
	size_t ul = format_len(r, user), vl = format_len(r, v->user);
	if (user[0] != '\0' &&
	    (ul != vl || (r->format_lower ? strncasecmp(user, v->user, ul)
					  : strncmp(user, v->user, ul)) != 0)) {
		*error_r = "the token is for another user";
		return PASSDB_RESULT_USER_UNKNOWN;
	}
	return PASSDB_RESULT_OK;
}

/* ---- the cache ----------------------------------------------------------- */

/* Invariant: every entry is on the hash chain of its bucket and on the LRU
 * list (most recent first); count <= size. */
struct cache_entry {
	struct cache_entry *hnext;
	struct cache_entry *lprev, *lnext;
	uint8_t key[32];
	int64_t expires_ms;
	struct oauth2_verdict v;
};

struct oauth2_cache {
	unsigned size, ttl_ms, count, nbuckets;
	struct cache_entry **buckets;
	struct cache_entry *lru_head, *lru_tail;
};

struct oauth2_cache *oauth2_cache_new(unsigned size, unsigned ttl_ms)
{
	if (size == 0 || ttl_ms == 0)
		return NULL;
	struct oauth2_cache *c = rg_calloc(1, sizeof(*c));
	c->size = size;
	c->ttl_ms = ttl_ms;
	c->nbuckets = 16;
	while (c->nbuckets < size && c->nbuckets < (1u << 20))
		c->nbuckets <<= 1;
	c->buckets = rg_calloc(c->nbuckets, sizeof(*c->buckets));
	return c;
}

static struct cache_entry **bucket_of(struct oauth2_cache *c, const uint8_t key[32])
{
	uint32_t h;
	memcpy(&h, key, sizeof(h));
	return &c->buckets[h & (c->nbuckets - 1)];
}

static void lru_unlink(struct oauth2_cache *c, struct cache_entry *e)
{
	if (e->lprev != NULL)
		e->lprev->lnext = e->lnext;
	else
		c->lru_head = e->lnext;
	if (e->lnext != NULL)
		e->lnext->lprev = e->lprev;
	else
		c->lru_tail = e->lprev;
	e->lprev = e->lnext = NULL;
}

static void lru_front(struct oauth2_cache *c, struct cache_entry *e)
{
	e->lnext = c->lru_head;
	e->lprev = NULL;
	if (c->lru_head != NULL)
		c->lru_head->lprev = e;
	else
		c->lru_tail = e;
	c->lru_head = e;
}

static void entry_drop(struct oauth2_cache *c, struct cache_entry *e)
{
	for (struct cache_entry **p = bucket_of(c, e->key); *p != NULL; p = &(*p)->hnext) {
		if (*p == e) {
			*p = e->hnext;
			break;
		}
	}
	lru_unlink(c, e);
	c->count--;
	explicit_bzero(e, sizeof(*e));
	rg_free(e);
}

void oauth2_cache_free(struct oauth2_cache **cp)
{
	struct oauth2_cache *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	while (c->lru_head != NULL)
		entry_drop(c, c->lru_head);
	rg_free(c->buckets);
	rg_free(c);
}

static struct cache_entry *find(struct oauth2_cache *c, const uint8_t key[32])
{
	for (struct cache_entry *e = *bucket_of(c, key); e != NULL; e = e->hnext) {
		if (memcmp(e->key, key, 32) == 0)
			return e;
	}
	return NULL;
}

bool oauth2_cache_get(struct oauth2_cache *c, const char *token, size_t len, int64_t now_ms,
		      int64_t unix_now, struct oauth2_verdict *v_r)
{
	if (c == NULL)
		return false;
	uint8_t key[32];
	crypto_hash(CRYPTO_SHA256, token, len, key);
	struct cache_entry *e = find(c, key);
	if (e == NULL)
		return false;
	if (e->expires_ms <= now_ms || (e->v.exp != 0 && e->v.exp <= unix_now)) {
		entry_drop(c, e);
		return false;
	}
	lru_unlink(c, e);
	lru_front(c, e);
	*v_r = e->v;
	return true;
}

void oauth2_cache_put(struct oauth2_cache *c, const char *token, size_t len, int64_t now_ms,
		      int64_t unix_now, const struct oauth2_verdict *v)
{
	if (c == NULL || v->result == PASSDB_RESULT_INTERNAL_FAILURE)
		return;
	int64_t ttl = c->ttl_ms;
	/* exp is the IdP's number, any size: compare in seconds first */
	if (v->exp != 0 && v->exp - unix_now <= ttl / 1000)
		ttl = (v->exp - unix_now) * 1000;
	if (ttl <= 0)
		return;
	uint8_t key[32];
	crypto_hash(CRYPTO_SHA256, token, len, key);
	struct cache_entry *e = find(c, key);
	if (e != NULL)
		entry_drop(c, e);
	if (c->count >= c->size)
		entry_drop(c, c->lru_tail);
	e = rg_calloc(1, sizeof(*e));
	memcpy(e->key, key, 32);
	e->expires_ms = now_ms + ttl;
	e->v = *v;
	struct cache_entry **b = bucket_of(c, key);
	e->hnext = *b;
	*b = e;
	lru_front(c, e);
	c->count++;
}

unsigned oauth2_cache_count(const struct oauth2_cache *c)
{
	return c != NULL ? c->count : 0;
}
