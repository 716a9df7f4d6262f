/* rgbench-report.c — the end of a run: latency percentiles, the JSON
 * result line on stdout and the summary on stderr. See rgbench.h. */
#include "rgbench.h"

static const char *const err_names[ERR_COUNT] = {
	"connect", "greeting", "login", "select", "fetch", "logout",
	"eof", "reset", "timeout", "protocol", "starttls", "tls",
	"close",	/* still open when the grace after the end was over */
};

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_ms(const uint32_t *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	/* nearest rank: the smallest value with at least p of all at or below it */
	double r = p * (double)n;
	size_t i = (size_t)r;
	if ((double)i < r)
		i++;
	if (i > 0)
		i--;
	if (i >= n)
		i = n - 1;
	return v[i] / 1000.0;
}

const char *const kind_names[] = { "prelogin", "login", "login-fetch", "idle" };

/* prints the results; true when the run is valid (no error, and something
 * completed or every idle connection was held) */
bool bench_report(struct bench *b, double elapsed, double hold_s)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		     (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	if (b->lat_n > 0)
		qsort(b->lat_us, b->lat_n, sizeof(*b->lat_us), cmp_u32);
	bool ok = b->errors == 0 && !interrupted &&
		  (b->kind == KIND_IDLE ? b->held_final == b->clients : b->completed > 0);
	double rate = elapsed > 0 ? (double)b->completed / elapsed : 0;
	double p50 = pct_ms(b->lat_us, b->lat_n, 0.50), p99 = pct_ms(b->lat_us, b->lat_n, 0.99);
	double p999 = pct_ms(b->lat_us, b->lat_n, 0.999);
	double mx = b->lat_n > 0 ? b->lat_us[b->lat_n - 1] / 1000.0 : 0;

	static const char *const tr_names[] = { "plain", "tls", "starttls" };
	printf("{\"event\":\"result\",\"tool\":\"rgbench\",\"proto\":\"%s\",\"kind\":\"%s\","
	       "\"transport\":\"%s\",\"clients\":%u,\"port\":%u,\"duration_s\":%.3f,\"elapsed_s\":%.3f,"
	       "\"sessions\":%llu,\"started\":%llu,\"errors\":%llu,\"errors_by_kind\":{",
	       b->proto == PROTO_IMAP ? "imap" : "pop3", kind_names[b->kind],
	       tr_names[b->transport], b->clients, b->port, b->duration, elapsed, (unsigned long long)b->completed,
	       (unsigned long long)b->started, (unsigned long long)b->errors);
	bool first = true;
	for (int e = 0; e < ERR_COUNT; e++) {
		if (b->err_by[e] == 0)
			continue;
		printf("%s\"%s\":%llu", first ? "" : ",", err_names[e],
		       (unsigned long long)b->err_by[e]);
		first = false;
	}
	printf("},");
	if (ok && b->kind != KIND_IDLE)
		printf("\"sessions_per_sec\":%.1f,", rate);
	else
		printf("\"sessions_per_sec\":null,");
	printf("\"tls\":{\"version\":\"%s\",\"group\":\"%s\",\"handshakes\":%llu,\"resume_offered\":%llu,"
	       "\"resumed\":%llu},", b->tls_version != NULL ? b->tls_version : "",
	       b->tls_group != NULL ? b->tls_group : "",
	       (unsigned long long)b->handshakes, (unsigned long long)b->resume_offered,
	       (unsigned long long)b->resumed);
	printf("\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},"
	       "\"held\":%u,\"hold_s\":%.3f,\"client_cpu_s\":%.3f,\"ok\":%s}\n",
	       p50, p99, p999, mx, b->held_final, hold_s, cpu, ok ? "true" : "false");
	fflush(stdout);

	if (b->quiet)
		return ok;
	fprintf(stderr, "rgbench %s %s, %u clients, port %u, %.1f s\n",
		b->proto == PROTO_IMAP ? "imap" : "pop3", kind_names[b->kind], b->clients,
		b->port, elapsed);
	if (b->kind == KIND_IDLE)
		fprintf(stderr, "  held         %u of %u connections for %.1f s\n",
			b->held_final, b->clients, hold_s);
	else if (ok)
		fprintf(stderr, "  sessions/s   %.1f (%llu sessions)\n", rate,
			(unsigned long long)b->completed);
	fprintf(stderr, "  latency ms   p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
		p50, p99, p999, mx);
	if (b->transport != TR_PLAIN)
		fprintf(stderr, "  TLS          %s, %llu handshakes, %llu resumed of %llu offered\n",
			b->tls_version != NULL ? b->tls_version : "-",
			(unsigned long long)b->handshakes, (unsigned long long)b->resumed,
			(unsigned long long)b->resume_offered);
	fprintf(stderr, "  client CPU   %.2f s\n", cpu);
	if (!ok) {
		if (b->errors == 0)
			fprintf(stderr, "  INVALID RUN: %s, no rate reported\n",
				interrupted ? "interrupted" :
				b->kind == KIND_IDLE ? "not every connection was held" :
				"no session completed within the duration");
		else
			fprintf(stderr, "  INVALID RUN: %llu errors%s, no rate reported\n",
				(unsigned long long)b->errors, interrupted ? " (interrupted)" : "");
		for (int e = 0; e < ERR_COUNT; e++)
			if (b->err_by[e] != 0)
				fprintf(stderr, "    %-10s %llu\n", err_names[e],
					(unsigned long long)b->err_by[e]);
	}
	return ok;
}
