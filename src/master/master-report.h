/* master-report.h — what `ringgate who`, `ringgate stats` and the metrics
 * endpoint print, from plain snapshots master makes of its process table.
 * No I/O besides writing to out; unit-tested on its own. */
#ifndef RG_MASTER_REPORT_H
#define RG_MASTER_REPORT_H

#include "lib/stats.h"

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

/* one logged-in session: a worker process */
struct report_session {
	const char *user, *protocol, *rip;
	pid_t pid;        /* the worker */
	pid_t proxy_pid;  /* the login process relaying its TLS, 0 = none */
	time_t since;     /* wall clock */
	bool tls;
};

struct report_process {
	pid_t pid;
	struct login_counters c;
};

struct report_service {
	const char *name;   /* "imap-login" */
	const char *mode;   /* "security" (service_count 1) or "performance" */
	const struct report_process *procs;
	unsigned proc_count;
	struct login_counters gone; /* running counts of processes that exited */
};

struct report_workers {
	const char *name;   /* "imap" */
	unsigned sessions;
};

/* "who": a header and one line per session, oldest first as given */
void report_who(FILE *out, const struct report_session *s, unsigned count);
/* "who -1": "user count protocols", one line per user, sorted by user */
void report_who_count(FILE *out, const struct report_session *s, unsigned count);
/* "stats": "SERVICE pid=N mode=M name=value ..." per process, then
 * "SERVICE total mode=M ..." (live plus exited), then "WORKER sessions=N",
 * then "auth failed=N penalties=M" */
void report_stats(FILE *out, const struct report_service *svcs, unsigned svc_count,
		  const struct report_workers *w, unsigned w_count, const struct auth_counters *auth);
/* the same totals in OpenMetrics text format, ending with "# EOF" */
void report_openmetrics(FILE *out, const struct report_service *svcs, unsigned svc_count,
			const struct report_workers *w, unsigned w_count,
			const struct auth_counters *auth);

/* a service's totals: running counts of live and exited processes, gauges of live ones */
void report_service_total(const struct report_service *svc, struct login_counters *out);

#endif
