/* ctl-proto.h — the commands ringgate-stats forwards to master in
 * CTL_REQUEST (F_CMD, docs/ipc.md): what `ringgate who|stats|reload` and a
 * /metrics scrape ask for. One table for both ends. */
#ifndef RG_CTL_PROTO_H
#define RG_CTL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

enum ctl_cmd {
	CTL_CMD_NONE = 0,     /* not a command */
	CTL_CMD_WHO,          /* `ringgate who`: one line per session */
	CTL_CMD_WHO_COUNT,    /* `ringgate who -1`: sessions per user */
	CTL_CMD_STATS,        /* `ringgate stats` */
	CTL_CMD_METRICS,      /* the OpenMetrics body of /metrics */
	CTL_CMD_RELOAD,       /* `ringgate reload`: "OK\n" or "error: ...\n" */
	CTL_CMD_AUTH_FLUSH,   /* `ringgate auth flush [USER...]` (the names in F_USER): "OK\n" */
	CTL_CMD_COUNT
};

static inline const char *ctl_cmd_name(enum ctl_cmd cmd)
{
	static const char *const names[CTL_CMD_COUNT] = {
		[CTL_CMD_NONE] = "",
		[CTL_CMD_WHO] = "who",
		[CTL_CMD_WHO_COUNT] = "who -1",
		[CTL_CMD_STATS] = "stats",
		[CTL_CMD_METRICS] = "metrics",
		[CTL_CMD_RELOAD] = "reload",
		[CTL_CMD_AUTH_FLUSH] = "auth flush",
	};
	return cmd < CTL_CMD_COUNT ? names[cmd] : "";
}

/* CTL_CMD_NONE for anything that is not exactly a command's name */
static inline enum ctl_cmd ctl_cmd_lookup(const char *name, size_t len)
{
	for (unsigned c = CTL_CMD_NONE + 1; c < CTL_CMD_COUNT; c++) {
		const char *n = ctl_cmd_name((enum ctl_cmd)c);
		if (strlen(n) == len && memcmp(n, name, len) == 0)
			return (enum ctl_cmd)c;
	}
	return CTL_CMD_NONE;
}

#endif
