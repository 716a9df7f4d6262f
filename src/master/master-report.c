#include "master/master-report.h"
#include "lib/alloc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* user names come from the passdb: print them as one safe word */
static void put_word(FILE *out, const char *s, int width)
{
	int n = 0;
	for (; s != NULL && *s != '\0' && n < 64; s++, n++)
		fputc(isgraph((unsigned char)*s) ? *s : '?', out);
	if (n == 0) {
		fputc('-', out);
		n = 1;
	}
	for (; n < width; n++)
		fputc(' ', out);
}

void report_who(FILE *out, const struct report_session *s, unsigned count)
{
	fprintf(out, "%-20s %-5s %-39s %-8s %-8s %-20s %s\n", "user", "proto", "rip", "pid",
		"proxy", "since", "tls");
	for (unsigned i = 0; i < count; i++) {
		char since[32], proxy[16];
		struct tm tm;
		gmtime_r(&s[i].since, &tm);
		strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (s[i].proxy_pid > 0)
			snprintf(proxy, sizeof(proxy), "%ld", (long)s[i].proxy_pid);
		else
			snprintf(proxy, sizeof(proxy), "-");
		put_word(out, s[i].user, 20);
		fputc(' ', out);
		put_word(out, s[i].protocol, 5);
		fputc(' ', out);
		put_word(out, s[i].rip, 39);
		fprintf(out, " %-8ld %-8s %-20s %s\n", (long)s[i].pid, proxy, since,
			s[i].tls ? "yes" : "no");
	}
}

static int cmp_user(const void *a, const void *b)
{
	const struct report_session *x = *(const struct report_session *const *)a;
	const struct report_session *y = *(const struct report_session *const *)b;
	int r = strcmp(x->user, y->user);
	return r != 0 ? r : strcmp(x->protocol, y->protocol);
}

void report_who_count(FILE *out, const struct report_session *s, unsigned count)
{
	const struct report_session **sorted = rg_calloc(count + 1, sizeof(*sorted));
	for (unsigned i = 0; i < count; i++)
		sorted[i] = &s[i];
	qsort(sorted, count, sizeof(*sorted), cmp_user);
	fprintf(out, "%-20s %-6s %s\n", "user", "count", "protocols");
	for (unsigned i = 0; i < count;) {
		unsigned j = i;
		while (j < count && strcmp(sorted[j]->user, sorted[i]->user) == 0)
			j++;
		put_word(out, sorted[i]->user, 20);
		fprintf(out, " %-6u ", j - i);
		/* protocols with their counts: imap:2,pop3:1 */
		for (unsigned k = i; k < j;) {
			unsigned l = k;
			while (l < j && strcmp(sorted[l]->protocol, sorted[k]->protocol) == 0)
				l++;
			fprintf(out, "%s%s:%u", k > i ? "," : "", sorted[k]->protocol, l - k);
			k = l;
		}
		fputc('\n', out);
		i = j;
	}
	rg_free(sorted);
}

void report_service_total(const struct report_service *svc, struct login_counters *out)
{
	*out = svc->gone;
	for (unsigned g = 0; g < STAT_COUNT; g++) {
		if (stat_is_gauge((enum stat_id)g))
			out->v[g] = 0;
	}
	for (unsigned p = 0; p < svc->proc_count; p++) {
		for (unsigned i = 0; i < STAT_COUNT; i++)
			out->v[i] += svc->procs[p].c.v[i];
	}
}

static void put_counters(FILE *out, const struct login_counters *c)
{
	for (unsigned i = 0; i < STAT_COUNT; i++)
		fprintf(out, " %s=%llu", stat_names[i], (unsigned long long)c->v[i]);
	fputc('\n', out);
}

void report_stats(FILE *out, const struct report_service *svcs, unsigned svc_count,
		  const struct report_workers *w, unsigned w_count, const struct auth_counters *auth)
{
	for (unsigned s = 0; s < svc_count; s++) {
		const struct report_service *svc = &svcs[s];
		for (unsigned p = 0; p < svc->proc_count; p++) {
			fprintf(out, "%s pid=%ld mode=%s", svc->name, (long)svc->procs[p].pid, svc->mode);
			put_counters(out, &svc->procs[p].c);
		}
		struct login_counters total;
		report_service_total(svc, &total);
		fprintf(out, "%s total mode=%s processes=%u", svc->name, svc->mode, svc->proc_count);
		put_counters(out, &total);
	}
	for (unsigned i = 0; i < w_count; i++)
		fprintf(out, "%s sessions=%u\n", w[i].name, w[i].sessions);
	fprintf(out, "auth");
	for (unsigned i = 0; i < AUTH_STAT_COUNT; i++)
		fprintf(out, " %s=%llu", auth_stat_names[i], (unsigned long long)auth->v[i]);
	fprintf(out, "\n");
}

/* ---- OpenMetrics ---- */

struct family {
	const char *name, *type, *help;
	enum stat_id stat;
	const char *label;   /* an extra label "name=value", or NULL */
	enum stat_id stat2;  /* a second sample with label2 */
	const char *label2;
	enum stat_id stat3;
	const char *label3;
};

#define NO_STAT STAT_COUNT

static const struct family families[] = {
	{ "ringgate_connections", "gauge", "Client connections open in login processes.",
	  STAT_CONNS, NULL, NO_STAT, NULL, NO_STAT, NULL },
	{ "ringgate_prelogin_connections", "gauge", "Client connections not logged in yet.",
	  STAT_PRELOGIN, NULL, NO_STAT, NULL, NO_STAT, NULL },
	{ "ringgate_connections_accepted", "counter", "Client connections accepted.",
	  STAT_ACCEPTED, NULL, NO_STAT, NULL, NO_STAT, NULL },
	{ "ringgate_tls_handshakes", "counter", "TLS handshakes by result.",
	  STAT_HS_FULL, "result=\"full\"", STAT_HS_RESUMED, "result=\"resumed\"",
	  STAT_HS_FAILED, "result=\"failed\"" },
	{ "ringgate_logins", "counter", "Authentications by result.",
	  STAT_LOGIN_OK, "result=\"ok\"", STAT_LOGIN_FAILED, "result=\"failed\"", NO_STAT, NULL },
	{ "ringgate_handoffs", "counter", "Logged-in sessions handed to a worker.",
	  STAT_HANDOFFS, NULL, NO_STAT, NULL, NO_STAT, NULL },
	{ "ringgate_proxied_bytes", "counter", "Plaintext bytes relayed by TLS proxies.",
	  STAT_PROXY_IN, "direction=\"in\"", STAT_PROXY_OUT, "direction=\"out\"", NO_STAT, NULL },
	{ "ringgate_evictions", "counter",
	  "Pre-login connections closed for new ones (Connection queue full).",
	  STAT_EVICTIONS, NULL, NO_STAT, NULL, NO_STAT, NULL },
};

static void om_sample(FILE *out, const struct family *f, const struct report_service *svc,
		      const char *label, uint64_t v)
{
	bool counter = strcmp(f->type, "counter") == 0;
	fprintf(out, "%s%s{service=\"%s\",mode=\"%s\"%s%s} %llu\n", f->name,
		counter ? "_total" : "", svc->name, svc->mode, label != NULL ? "," : "",
		label != NULL ? label : "", (unsigned long long)v);
}

void report_openmetrics(FILE *out, const struct report_service *svcs, unsigned svc_count,
			const struct report_workers *w, unsigned w_count,
			const struct auth_counters *auth)
{
	struct login_counters *totals = rg_calloc(svc_count + 1, sizeof(*totals));
	for (unsigned s = 0; s < svc_count; s++)
		report_service_total(&svcs[s], &totals[s]);

	fprintf(out, "# TYPE ringgate_login_processes gauge\n"
		"# HELP ringgate_login_processes Login processes running.\n");
	for (unsigned s = 0; s < svc_count; s++)
		fprintf(out, "ringgate_login_processes{service=\"%s\",mode=\"%s\"} %u\n",
			svcs[s].name, svcs[s].mode, svcs[s].proc_count);
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		const struct family *f = &families[i];
		fprintf(out, "# TYPE %s %s\n# HELP %s %s\n", f->name, f->type, f->name, f->help);
		for (unsigned s = 0; s < svc_count; s++) {
			om_sample(out, f, &svcs[s], f->label, totals[s].v[f->stat]);
			if (f->stat2 != NO_STAT)
				om_sample(out, f, &svcs[s], f->label2, totals[s].v[f->stat2]);
			if (f->stat3 != NO_STAT)
				om_sample(out, f, &svcs[s], f->label3, totals[s].v[f->stat3]);
		}
	}
	fprintf(out, "# TYPE ringgate_sessions gauge\n"
		"# HELP ringgate_sessions Logged-in sessions (worker processes).\n");
	for (unsigned i = 0; i < w_count; i++)
		fprintf(out, "ringgate_sessions{service=\"%s\"} %u\n", w[i].name, w[i].sessions);
	fprintf(out, "# TYPE ringgate_auth_failures counter\n"
		"# HELP ringgate_auth_failures Authentications auth refused for wrong credentials.\n"
		"ringgate_auth_failures_total %llu\n"
		"# TYPE ringgate_auth_penalties counter\n"
		"# HELP ringgate_auth_penalties Failures answered later for the address's earlier "
		"failures.\n"
		"ringgate_auth_penalties_total %llu\n"
		"# TYPE ringgate_auth_cache_hits counter\n"
		"# HELP ringgate_auth_cache_hits passdb/userdb lookups answered by the auth cache.\n"
		"ringgate_auth_cache_hits_total %llu\n"
		"# TYPE ringgate_auth_cache_misses counter\n"
		"# HELP ringgate_auth_cache_misses Lookups of cached passdbs/userdbs the cache could "
		"not answer.\n"
		"ringgate_auth_cache_misses_total %llu\n",
		(unsigned long long)auth->v[AUTH_STAT_FAILED],
		(unsigned long long)auth->v[AUTH_STAT_PENALTIES],
		(unsigned long long)auth->v[AUTH_STAT_CACHE_HITS],
		(unsigned long long)auth->v[AUTH_STAT_CACHE_MISSES]);
	fprintf(out, "# EOF\n");
	rg_free(totals);
}
