/* stats.h — a login process's counters, as it reports them to master.
 *
 * The login process bumps plain integers (no system call per event); on
 * master's LOGIN_STATS_REQUEST, and once before it exits, it sends them in
 * one LOGIN_STATS message as the text field F_STATS: "name=value" pairs
 * separated by single spaces, every name exactly once, in any order. Master
 * parses it with stats_parse(), strictly (a malformed report is a bug or a
 * compromise: the sender is killed). */
#ifndef RG_STATS_H
#define RG_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum stat_id {
	STAT_CONNS,          /* gauge: client connections open now */
	STAT_PRELOGIN,       /* gauge: of which not yet logged in */
	STAT_ACCEPTED,       /* connections accepted since the process started */
	STAT_HS_FULL,        /* TLS handshakes completed without resumption */
	STAT_HS_RESUMED,     /* TLS handshakes that resumed a session (ticket) */
	STAT_HS_FAILED,      /* TLS handshakes that failed */
	STAT_LOGIN_OK,       /* authentications auth accepted */
	STAT_LOGIN_FAILED,   /* authentications auth refused (wrong credentials or temporary) */
	STAT_HANDOFFS,       /* sessions handed to a worker */
	STAT_PROXY_IN,       /* plaintext bytes client -> worker through a TLS proxy */
	STAT_PROXY_OUT,      /* plaintext bytes worker -> client */
	STAT_EVICTIONS,      /* pre-login clients closed for a new one ("Connection queue full") */
	STAT_COUNT
};

struct login_counters {
	uint64_t v[STAT_COUNT];
};

/* "conns", "prelogin", "accepted", "hs_full", ... */
extern const char *const stat_names[STAT_COUNT];

/* whether the counter is a gauge (a value now) rather than a running count */
bool stat_is_gauge(enum stat_id id);

/* Format as "conns=1 prelogin=0 ..." into buf (NUL-terminated). Returns the
 * length; STATS_TEXT_MAX always suffices. */
#define STATS_TEXT_MAX (STAT_COUNT * (16 + 21) + 1)
size_t stats_format(const struct login_counters *c, char *buf, size_t size);

/* Parse text of length len. 0 on success; -1 with *error_r (static text)
 * on anything but exactly every name once with a decimal value. */
int stats_parse(const char *text, size_t len, struct login_counters *out, const char **error_r);

/* auth's counters, reported the same way (LOGIN_STATS from auth) */
enum auth_stat_id {
	AUTH_STAT_FAILED,     /* authentications refused for wrong credentials */
	AUTH_STAT_PENALTIES,  /* of which answered later for the IP's earlier failures */
	AUTH_STAT_CACHE_HITS,   /* passdb/userdb lookups answered by the auth cache */
	AUTH_STAT_CACHE_MISSES, /* lookups of cached modules the cache could not answer */
	AUTH_STAT_COUNT
};
struct auth_counters {
	uint64_t v[AUTH_STAT_COUNT];
};
extern const char *const auth_stat_names[AUTH_STAT_COUNT];
size_t auth_stats_format(const struct auth_counters *c, char *buf, size_t size);
int auth_stats_parse(const char *text, size_t len, struct auth_counters *out,
		     const char **error_r);

/* a += b for the running counts (gauges are left alone) */
void stats_add_counts(struct login_counters *a, const struct login_counters *b);

#endif
