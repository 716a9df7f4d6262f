/* log.h — process logging. Every line is "name(pid): Level: message"
 * (Dovecot's "Info: ", "Warning: ", ... levels) written with one write()
 * (or, batched, several whole lines with one) to one of three sinks: warnings, errors and fatal lines to the error sink
 * (log_path), Info lines to the info sink (info_log_path), Debug lines to
 * the debug sink (debug_log_path). A sink is an fd that is stderr, a file
 * (lines start with the log_timestamp strftime() text) or a datagram socket
 * connected to syslog (an RFC 3164 line "<PRI>Mmm dd hh:mm:ss
 * ringgate[pid]: name: [Level: ]message", Dovecot's syslog text: the
 * process name leads the message, Info lines carry no level word).
 *
 * master opens the sinks and hands every child the fds with
 * RINGGATE_LOG="<fd>:<kind>,<fd>:<kind>,<fd>:<kind>,<facility>" (error,
 * info, debug sink; kind stderr|file|syslog); RINGGATE_LOG_TIMESTAMP holds
 * log_timestamp. Both are read at log_init(), before any chroot or seccomp
 * filter: logging afterwards is write() on an fd already open. Without
 * RINGGATE_LOG everything goes to stderr. Client bytes go through
 * log_escape(), which bounds and escapes them: never log a whole pre-auth
 * line, never a password. */
#ifndef RG_LOG_H
#define RG_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERROR, LOG_FATAL };

enum log_sink_kind { LOG_SINK_STDERR, LOG_SINK_FILE, LOG_SINK_SYSLOG };

/* which sink a level goes to */
enum log_sink_index { LOG_SINK_ERROR, LOG_SINK_INFO, LOG_SINK_DEBUG, LOG_SINK_COUNT };

struct log_sink {
	int fd;
	enum log_sink_kind kind;
};

/* the syslog identifier in every syslog line, as Dovecot's "dovecot" */
#define LOG_SYSLOG_IDENT "ringgate"
/* the longest line written, newline included; longer messages are cut */
#define LOG_LINE_MAX 2048

/* name appears in every line, e.g. "imap-login" */
void log_init(const char *name);
/* What fork()'s atfork handler does (the pid again, an empty batch), for a
 * child made by clone(), which runs no atfork handler (a template's
 * children: lib/zygote.c calls it). */
void log_forked(void);
/* A process forked from a template that must not share its syslog socket
 * (a worker: it may connect() it elsewhere): fd takes the place of every
 * syslog sink's fd (dup3, close-on-exec). fd is closed. 0 or -errno. */
int log_syslog_replace(int fd);
const char *log_name(void);
void log_set_debug(bool enabled);
bool log_debug_enabled(void);

/* Replace this process's sinks (master, after opening log_path etc.).
 * facility is a syslog facility code (mail = 2). */
void log_set_sinks(const struct log_sink sinks[LOG_SINK_COUNT], int facility);
/* Replace the strftime() prefix of file lines ("" = none). */
void log_set_timestamp(const char *format);

/* Batching, for a process that logs a line per client (login): while on,
 * Debug and Info lines for a file or stderr sink are kept (at most 4 KiB,
 * whole lines) and written with one write() by log_flush(), which the
 * process calls before it waits for events, or when a line of another sink
 * or level comes (order is kept). Warnings, errors and syslog lines are
 * never held; exit() flushes. */
void log_set_batching(bool on);
void log_flush(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* msg as it is (no format): for a line put together by the caller */
void log_text(enum log_level level, const char *msg);
#define log_debug(...) do { if (log_debug_enabled()) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
/* logs and exits with status 89 (FATAL_DEFAULT, as Dovecot) */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Escape at most max input bytes of data into out (NUL-terminated, at most
 * outsize bytes). Non-printables become \xNN; a cut adds "...". Returns out. */
char *log_escape(const void *data, size_t len, size_t max, char *out, size_t outsize);

/* One line for a sink of this kind into out (not NUL-terminated), at most
 * outsize bytes; returns its length. Files and stderr get "[ts]name(pid):
 * Level: msg\n" (ts_format applied to tm for files only, tm may be NULL
 * then); syslog gets "<PRI>Mmm dd hh:mm:ss ringgate[pid]: name: [Level: ]msg"
 * without a newline. A message too long for outsize is cut; a file line
 * still ends in a newline. */
size_t log_format_line(char *out, size_t outsize, enum log_sink_kind kind, enum log_level level,
		       const struct tm *tm, const char *ts_format, int facility, const char *name,
		       long pid, const char *msg);

/* Syslog facility code of a name (Dovecot's syslog_facility values: mail,
 * auth, authpriv, daemon, user, local0..local7, ...), or -1. */
int log_facility_parse(const char *name);

/* RINGGATE_LOG text for sinks and facility into out; false when it does
 * not fit. */
bool log_sinks_format(const struct log_sink sinks[LOG_SINK_COUNT], int facility, char *out,
		      size_t outsize);
/* Parse RINGGATE_LOG text; false (outputs untouched) when malformed. */
bool log_sinks_parse(const char *text, struct log_sink sinks_r[LOG_SINK_COUNT], int *facility_r);

#endif
