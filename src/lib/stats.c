#include "lib/stats.h"

#include <stdio.h>
#include <string.h>

const char *const stat_names[STAT_COUNT] = {
	[STAT_CONNS] = "conns",
	[STAT_PRELOGIN] = "prelogin",
	[STAT_ACCEPTED] = "accepted",
	[STAT_HS_FULL] = "hs_full",
	[STAT_HS_RESUMED] = "hs_resumed",
	[STAT_HS_FAILED] = "hs_failed",
	[STAT_LOGIN_OK] = "login_ok",
	[STAT_LOGIN_FAILED] = "login_failed",
	[STAT_HANDOFFS] = "handoffs",
	[STAT_PROXY_IN] = "proxy_in",
	[STAT_PROXY_OUT] = "proxy_out",
	[STAT_EVICTIONS] = "evictions",
};

bool stat_is_gauge(enum stat_id id)
{
	return id == STAT_CONNS || id == STAT_PRELOGIN;
}

size_t stats_format(const struct login_counters *c, char *buf, size_t size)
{
	size_t len = 0;

	if (size == 0)
		return 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < STAT_COUNT && len < size; i++) {
		int n = snprintf(buf + len, size - len, "%s%s=%llu", i > 0 ? " " : "",
				 stat_names[i], (unsigned long long)c->v[i]);
		if (n < 0)
			break;
		len += (size_t)n;
	}
	return len < size ? len : size - 1;
}

const char *const auth_stat_names[AUTH_STAT_COUNT] = {
	[AUTH_STAT_FAILED] = "failed",
	[AUTH_STAT_PENALTIES] = "penalties",
	[AUTH_STAT_CACHE_HITS] = "cache_hits",
	[AUTH_STAT_CACHE_MISSES] = "cache_misses",
};

/* "name=value" pairs, each of names exactly once */
static int pairs_parse(const char *text, size_t len, const char *const *names, unsigned count,
		       uint64_t *out, const char **error_r)
{
	bool seen[STAT_COUNT] = { false };
	size_t pos = 0;

	memset(out, 0, count * sizeof(*out));
	while (pos < len) {
		if (pos > 0) {
			if (text[pos] != ' ') {
				*error_r = "expected a space between counters";
				return -1;
			}
			pos++;
		}
		size_t name_start = pos;
		while (pos < len && text[pos] != '=' && text[pos] != ' ')
			pos++;
		if (pos >= len || text[pos] != '=') {
			*error_r = "counter without '='";
			return -1;
		}
		size_t name_len = pos - name_start;
		unsigned id;
		for (id = 0; id < count; id++) {
			if (strlen(names[id]) == name_len &&
			    memcmp(names[id], text + name_start, name_len) == 0)
				break;
		}
		if (id == count) {
			*error_r = "unknown counter";
			return -1;
		}
		if (seen[id]) {
			*error_r = "counter given twice";
			return -1;
		}
		seen[id] = true;
		pos++; /* '=' */
		if (pos >= len || text[pos] < '0' || text[pos] > '9') {
			*error_r = "counter without a decimal value";
			return -1;
		}
		uint64_t v = 0;
		while (pos < len && text[pos] >= '0' && text[pos] <= '9') {
			unsigned d = (unsigned)(text[pos] - '0');
			if (v > (UINT64_MAX - d) / 10) {
				*error_r = "counter value too large";
				return -1;
			}
			v = v * 10 + d;
			pos++;
		}
		out[id] = v;
	}
	for (unsigned id = 0; id < count; id++) {
		if (!seen[id]) {
			*error_r = "a counter is missing";
			return -1;
		}
	}
	return 0;
}

int stats_parse(const char *text, size_t len, struct login_counters *out, const char **error_r)
{
	return pairs_parse(text, len, stat_names, STAT_COUNT, out->v, error_r);
}

int auth_stats_parse(const char *text, size_t len, struct auth_counters *out,
		     const char **error_r)
{
	return pairs_parse(text, len, auth_stat_names, AUTH_STAT_COUNT, out->v, error_r);
}

size_t auth_stats_format(const struct auth_counters *c, char *buf, size_t size)
{
	size_t len = 0;
	if (size > 0)
		buf[0] = '\0';
	for (unsigned i = 0; i < AUTH_STAT_COUNT && len + 1 < size; i++) {
		int n = snprintf(buf + len, size - len, "%s%s=%llu", i > 0 ? " " : "",
				 auth_stat_names[i], (unsigned long long)c->v[i]);
		if (n < 0)
			break;
		len += (size_t)n < size - len ? (size_t)n : size - len - 1;
	}
	return len;
}

void stats_add_counts(struct login_counters *a, const struct login_counters *b)
{
	for (unsigned i = 0; i < STAT_COUNT; i++) {
		if (!stat_is_gauge((enum stat_id)i))
			a->v[i] += b->v[i];
	}
}
