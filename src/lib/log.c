#include "lib/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char log_prefix_name[64] = "ringgate";
static bool log_debug_on;
static char log_ts_format[64]; /* strftime format, "" = no timestamp */

static const char *const level_names[] = {
	[LOG_DEBUG] = "Debug: ", [LOG_INFO] = "Info: ", [LOG_WARNING] = "Warning: ",
	[LOG_ERROR] = "Error: ", [LOG_FATAL] = "Fatal: ",
};

void log_init(const char *name)
{
	snprintf(log_prefix_name, sizeof(log_prefix_name), "%s", name);
	const char *d = getenv("RINGGATE_DEBUG");
	log_debug_on = d != NULL && *d != '\0' && strcmp(d, "0") != 0;
	const char *ts = getenv("RINGGATE_LOG_TIMESTAMP");
	snprintf(log_ts_format, sizeof(log_ts_format), "%s", ts != NULL ? ts : "");
	/* the time zone is read now, before a chroot or seccomp filter */
	if (log_ts_format[0] != '\0')
		tzset();
}

const char *log_name(void)
{
	return log_prefix_name;
}

void log_set_debug(bool enabled)
{
	log_debug_on = enabled;
}

bool log_debug_enabled(void)
{
	return log_debug_on;
}

static void __attribute__((format(printf, 2, 0)))
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[2048];
	int saved = errno;
	size_t ts_len = 0;
	if (log_ts_format[0] != '\0') {
		time_t now = time(NULL);
		struct tm tm;
		if (localtime_r(&now, &tm) != NULL) {
			/* the administrator's log_timestamp, as Dovecot's */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
			ts_len = strftime(line, 128, log_ts_format, &tm);
#pragma GCC diagnostic pop
		}
	}
	int n = snprintf(line + ts_len, sizeof(line) - ts_len, "%s(%ld): %s", log_prefix_name,
			 (long)getpid(), level_names[level]);
	if (n < 0 || (size_t)n >= sizeof(line) - ts_len)
		n = 0;
	n += (int)ts_len;
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	/* one write() per line so lines from many processes never interleave */
	ssize_t ret = write(STDERR_FILENO, line, len);
	(void)ret;
	errno = saved;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void log_fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(LOG_FATAL, fmt, ap);
	va_end(ap);
	exit(89);
}

char *log_escape(const void *data, size_t len, size_t max, char *out, size_t outsize)
{
	const unsigned char *p = data;
	size_t o = 0;
	bool cut = len > max;
	if (cut)
		len = max;
	for (size_t i = 0; i < len && o + 5 < outsize; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
			out[o++] = (char)p[i];
		} else {
			o += (size_t)snprintf(out + o, outsize - o, "\\x%02x", p[i]);
		}
	}
	if (cut && o + 4 <= outsize) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	if (outsize > 0)
		out[o < outsize ? o : outsize - 1] = '\0';
	return out;
}
