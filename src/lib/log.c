#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char log_prefix_name[64] = "ringgate";
static bool log_debug_on;
static char log_ts_format[64]; /* strftime format, "" = no timestamp */
static struct log_sink log_sinks[LOG_SINK_COUNT] = {
	{ STDERR_FILENO, LOG_SINK_STDERR },
	{ STDERR_FILENO, LOG_SINK_STDERR },
	{ STDERR_FILENO, LOG_SINK_STDERR },
};
static int log_facility = 2; /* mail */
/* getpid() is a system call (glibc caches nothing), run through the login
 * process's seccomp filter: once at log_init() and again in a fork()ed
 * child (pthread_atfork), never per line */
static long log_pid;
static bool log_atfork_set;
/* the time part of the last line: localtime_r() and strftime() once per
 * second, not per line (a login process writes a line per session) */
static struct {
	time_t sec;
	bool valid;
	struct tm tm;
	char text[128];	/* log_ts_format applied to tm */
	size_t len;
} log_time;

static const char *const level_names[] = {
	[LOG_DEBUG] = "Debug: ", [LOG_INFO] = "Info: ", [LOG_WARNING] = "Warning: ",
	[LOG_ERROR] = "Error: ", [LOG_FATAL] = "Fatal: ",
};
/* RFC 5424 severities (syslog.h's LOG_* names clash with ours): Fatal is
 * LOG_CRIT, as in Dovecot */
static const int level_severity[] = {
	[LOG_DEBUG] = 7, [LOG_INFO] = 6, [LOG_WARNING] = 4, [LOG_ERROR] = 3, [LOG_FATAL] = 2,
};
static const char *const kind_names[] = {
	[LOG_SINK_STDERR] = "stderr", [LOG_SINK_FILE] = "file", [LOG_SINK_SYSLOG] = "syslog",
};

static const struct {
	const char *name;
	int code;
} facilities[] = {
	{ "kern", 0 },	  { "user", 1 },     { "mail", 2 },	{ "daemon", 3 },
	{ "auth", 4 },	  { "syslog", 5 },   { "lpr", 6 },	{ "news", 7 },
	{ "uucp", 8 },	  { "cron", 9 },     { "authpriv", 10 }, { "ftp", 11 },
	{ "local0", 16 }, { "local1", 17 },  { "local2", 18 },	{ "local3", 19 },
	{ "local4", 20 }, { "local5", 21 },  { "local6", 22 },	{ "local7", 23 },
};

int log_facility_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++) {
		if (strcmp(facilities[i].name, name) == 0)
			return facilities[i].code;
	}
	return -1;
}

bool log_sinks_format(const struct log_sink sinks[LOG_SINK_COUNT], int facility, char *out,
		      size_t outsize)
{
	int n = snprintf(out, outsize, "%d:%s,%d:%s,%d:%s,%d", sinks[0].fd, kind_names[sinks[0].kind],
			 sinks[1].fd, kind_names[sinks[1].kind], sinks[2].fd,
			 kind_names[sinks[2].kind], facility);
	return n > 0 && (size_t)n < outsize;
}

/* a decimal number in [0, max] at *p, advancing *p */
static bool parse_uint(const char **p, long max, long *value_r)
{
	const char *s = *p;
	long v = 0;
	if (*s < '0' || *s > '9')
		return false;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (*s - '0');
		if (v > max)
			return false;
		s++;
	}
	*p = s;
	*value_r = v;
	return true;
}

bool log_sinks_parse(const char *text, struct log_sink sinks_r[LOG_SINK_COUNT], int *facility_r)
{
	struct log_sink sinks[LOG_SINK_COUNT];
	const char *p = text;
	for (unsigned i = 0; i < LOG_SINK_COUNT; i++) {
		long fd;
		if (!parse_uint(&p, 65535, &fd) || *p++ != ':')
			return false;
		size_t len = strcspn(p, ",");
		bool found = false;
		for (unsigned k = 0; k < sizeof(kind_names) / sizeof(kind_names[0]); k++) {
			if (strlen(kind_names[k]) == len && memcmp(kind_names[k], p, len) == 0) {
				sinks[i].kind = (enum log_sink_kind)k;
				found = true;
			}
		}
		if (!found || p[len] != ',')
			return false;
		sinks[i].fd = (int)fd;
		p += len + 1;
	}
	long facility;
	if (!parse_uint(&p, 23, &facility) || *p != '\0')
		return false;
	memcpy(sinks_r, sinks, sizeof(sinks));
	*facility_r = (int)facility;
	return true;
}

/* Batching (log_set_batching): Debug and Info lines for a file or stderr
 * sink wait here and go out with one write() at log_flush() or when the
 * buffer is full; [0, len) are whole lines for fd. At most PIPE_BUF bytes,
 * so a write to a pipe (stderr) stays atomic as well as one to an O_APPEND
 * file: lines of different processes never interleave. */
#define LOG_BATCH_MAX 4096
static struct {
	bool on;
	int fd;
	size_t len;
	char buf[LOG_BATCH_MAX];
} log_batch;

void log_forked(void)
{
	log_pid = (long)getpid();
	/* the parent writes what it held; the child starts empty */
	log_batch.len = 0;
}

void log_flush(void)
{
	if (log_batch.len == 0)
		return;
	ssize_t ret = write(log_batch.fd, log_batch.buf, log_batch.len);
	(void)ret;
	log_batch.len = 0;
}

void log_set_batching(bool on)
{
	if (!on)
		log_flush();
	log_batch.on = on;
}

/* true when the line was taken into the batch */
static bool log_batch_add(enum log_level level, const struct log_sink *sink, const char *line,
			  size_t len)
{
	if (!log_batch.on || level > LOG_INFO || sink->kind == LOG_SINK_SYSLOG ||
	    len > LOG_BATCH_MAX) {
		/* in order: what waits goes first */
		log_flush();
		return false;
	}
	if (log_batch.len > 0 && (log_batch.fd != sink->fd || log_batch.len + len > LOG_BATCH_MAX))
		log_flush();
	log_batch.fd = sink->fd;
	memcpy(log_batch.buf + log_batch.len, line, len);
	log_batch.len += len;
	return true;
}

int log_syslog_replace(int fd)
{
	int ret = 0;
	for (unsigned i = 0; i < LOG_SINK_COUNT && ret == 0; i++) {
		if (log_sinks[i].kind == LOG_SINK_SYSLOG && log_sinks[i].fd != fd &&
		    dup3(fd, log_sinks[i].fd, O_CLOEXEC) < 0)
			ret = -errno;
	}
	close(fd);
	return ret;
}

void log_init(const char *name)
{
	log_pid = (long)getpid();
	log_time.valid = false;
	if (!log_atfork_set) {
		log_atfork_set = true;
		(void)pthread_atfork(NULL, NULL, log_forked);
	}
	snprintf(log_prefix_name, sizeof(log_prefix_name), "%s", name);
	const char *d = getenv("RINGGATE_DEBUG");
	log_debug_on = d != NULL && *d != '\0' && strcmp(d, "0") != 0;
	const char *ts = getenv("RINGGATE_LOG_TIMESTAMP");
	snprintf(log_ts_format, sizeof(log_ts_format), "%s", ts != NULL ? ts : "");
	const char *sinks = getenv("RINGGATE_LOG");
	struct log_sink parsed[LOG_SINK_COUNT];
	int facility;
	if (sinks != NULL && log_sinks_parse(sinks, parsed, &facility)) {
		for (unsigned i = 0; i < LOG_SINK_COUNT; i++) {
			/* ours only: a worker's children never inherit them */
			if (parsed[i].fd != STDERR_FILENO)
				(void)fcntl(parsed[i].fd, F_SETFD, FD_CLOEXEC);
		}
		log_set_sinks(parsed, facility);
	} else {
		/* started by hand or by an older master: stderr, a file when
		 * a timestamp was asked for (master's log_path on stderr) */
		enum log_sink_kind kind = log_ts_format[0] != '\0' ? LOG_SINK_FILE : LOG_SINK_STDERR;
		for (unsigned i = 0; i < LOG_SINK_COUNT; i++)
			log_sinks[i] = (struct log_sink){ STDERR_FILENO, kind };
	}
	/* the time zone is read now, before a chroot or seccomp filter,
	 * once per process: with TZ unset, every tzset() stats (and may
	 * re-read) /etc/localtime, and a worker forked from a template,
	 * which has read it, calls log_init() twice more (its service's
	 * name, then the session's) */
	static bool once;
	if (!once) {
		tzset();
		/* what a batch holds goes out at exit(); registered here, not
		 * when batching starts, so a child forked from a template that
		 * batches does not write libc's exit list (a copy-on-write
		 * fault per child) */
		(void)atexit(log_flush);
		once = true;
	}
}

void log_set_sinks(const struct log_sink sinks[LOG_SINK_COUNT], int facility)
{
	log_flush();
	memcpy(log_sinks, sinks, sizeof(log_sinks));
	log_facility = facility;
}

void log_set_timestamp(const char *format)
{
	snprintf(log_ts_format, sizeof(log_ts_format), "%s", format);
	log_time.valid = false;
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

static const char *const month_names[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* log_format_line() with the file timestamp already formatted: ts_text
 * (ts_len bytes, at most 127) leads a file line */
static size_t log_format_line_ts(char *out, size_t outsize, enum log_sink_kind kind,
				 enum log_level level, const struct tm *tm, const char *ts_text,
				 size_t ts_len, int facility, const char *name, long pid,
				 const char *msg)
{
	if (outsize < 2)
		return 0;
	/* room for the newline of a file line */
	size_t room = kind == LOG_SINK_SYSLOG ? outsize : outsize - 1;
	char head[128 + 64 + 96]; /* timestamp, name, the rest */
	size_t hlen = 0;
	int n;
	if (kind == LOG_SINK_SYSLOG) {
		/* RFC 3164: the day is space-padded, the month English
		 * whatever the locale; Dovecot's text after the tag */
		int mon = tm != NULL && tm->tm_mon >= 0 && tm->tm_mon < 12 ? tm->tm_mon : 0;
		n = snprintf(head, sizeof(head), "<%d>%s %2d %02d:%02d:%02d " LOG_SYSLOG_IDENT "[%ld]: %s: %s",
			     facility * 8 + level_severity[level], month_names[mon],
			     tm != NULL ? tm->tm_mday : 1, tm != NULL ? tm->tm_hour : 0,
			     tm != NULL ? tm->tm_min : 0, tm != NULL ? tm->tm_sec : 0, pid, name,
			     level == LOG_INFO ? "" : level_names[level]);
	} else {
		if (kind == LOG_SINK_FILE && ts_len > 0 && ts_len < 128) {
			memcpy(head, ts_text, ts_len);
			hlen = ts_len;
		}
		/* "name(pid): Level: " by copying: a login process writes a
		 * line per client */
		size_t name_len = strnlen(name, 64), lvl_len = strlen(level_names[level]);
		char digits[24];
		size_t nd = 0;
		unsigned long v = pid > 0 ? (unsigned long)pid : 0;
		do {
			digits[sizeof(digits) - 1 - nd++] = (char)('0' + v % 10);
			v /= 10;
		} while (v != 0 && nd < sizeof(digits));
		char *o = head + hlen;
		memcpy(o, name, name_len);
		o += name_len;
		*o++ = '(';
		memcpy(o, digits + sizeof(digits) - nd, nd);
		o += nd;
		*o++ = ')';
		*o++ = ':';
		*o++ = ' ';
		memcpy(o, level_names[level], lvl_len);
		o += lvl_len;
		n = (int)(o - (head + hlen));
	}
	if (n < 0)
		n = 0;
	hlen += (size_t)n;
	if (hlen > sizeof(head) - 1)
		hlen = sizeof(head) - 1;
	/* the line, cut to room: head first, then as much message as fits */
	size_t len = hlen < room ? hlen : room;
	memcpy(out, head, len);
	size_t mlen = strlen(msg);
	if (mlen > room - len)
		mlen = room - len;
	memcpy(out + len, msg, mlen);
	len += mlen;
	if (kind != LOG_SINK_SYSLOG)
		out[len++] = '\n';
	return len;
}

/* the administrator's log_timestamp, as Dovecot's: into out (128 bytes) */
static size_t log_strftime(char *out, const char *ts_format, const struct tm *tm)
{
	if (tm == NULL || ts_format == NULL || *ts_format == '\0')
		return 0;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	return strftime(out, 128, ts_format, tm);
#pragma GCC diagnostic pop
}

size_t log_format_line(char *out, size_t outsize, enum log_sink_kind kind, enum log_level level,
		       const struct tm *tm, const char *ts_format, int facility, const char *name,
		       long pid, const char *msg)
{
	char ts[128];
	size_t ts_len = kind == LOG_SINK_FILE ? log_strftime(ts, ts_format, tm) : 0;
	return log_format_line_ts(out, outsize, kind, level, tm, ts, ts_len, facility, name, pid,
				  msg);
}

static void log_line(enum log_level level, const char *msg, int saved);

static void __attribute__((format(printf, 2, 0)))
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char msg[LOG_LINE_MAX];
	int saved = errno;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	log_line(level, msg, saved);
}

void log_text(enum log_level level, const char *msg)
{
	log_line(level, msg, errno);
}

/* msg to its sink; errno is set back to saved */
static void log_line(enum log_level level, const char *msg, int saved)
{
	char line[LOG_LINE_MAX];
	enum log_sink_index which = level == LOG_DEBUG ? LOG_SINK_DEBUG :
				    level == LOG_INFO  ? LOG_SINK_INFO :
							 LOG_SINK_ERROR;
	const struct log_sink *sink = &log_sinks[which];
	const struct tm *tmp = NULL;
	if (sink->kind != LOG_SINK_STDERR) {
		time_t now = time(NULL);
		if (!log_time.valid || log_time.sec != now) {
			log_time.valid = localtime_r(&now, &log_time.tm) != NULL;
			log_time.sec = now;
			log_time.len = log_time.valid ?
				log_strftime(log_time.text, log_ts_format, &log_time.tm) : 0;
		}
		if (log_time.valid)
			tmp = &log_time.tm;
	}
	long pid = log_pid != 0 ? log_pid : (long)getpid();
	size_t len = log_format_line_ts(line, sizeof(line), sink->kind, level, tmp, log_time.text,
					tmp != NULL && sink->kind == LOG_SINK_FILE ? log_time.len : 0,
					log_facility, log_prefix_name, pid, msg);
	if (log_batch_add(level, sink, line, len)) {
		errno = saved;
		return;
	}
	/* one write() per line so lines from many processes never
	 * interleave; a datagram is one syslog message */
	ssize_t ret = write(sink->fd, line, len);
	if (ret < 0 && sink->kind == LOG_SINK_SYSLOG) {
		/* syslog gone (restarted, master reconnects it): not lost,
		 * stderr gets it (the journal under systemd) */
		len = log_format_line(line, sizeof(line), LOG_SINK_STDERR, level, NULL, NULL, 0,
				      log_prefix_name, pid, msg);
		ret = write(STDERR_FILENO, line, len);
	}
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
