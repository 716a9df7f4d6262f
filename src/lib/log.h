/* log.h — process logging. Every line is "name(pid): Level: message" on
 * stderr (Dovecot's "Info: ", "Warning: ", ... levels), which master points
 * at its log (stderr or log_path). With RINGGATE_LOG_TIMESTAMP in the
 * environment at log_init() (master sets it from log_timestamp when
 * log_path is a file) each line starts with that strftime() text. Client bytes go through
 * log_escape(), which bounds and escapes them: never log a whole pre-auth
 * line, never a password. */
#ifndef RG_LOG_H
#define RG_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERROR, LOG_FATAL };

/* name appears in every line, e.g. "imap-login" */
void log_init(const char *name);
const char *log_name(void);
void log_set_debug(bool enabled);
bool log_debug_enabled(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) do { if (log_debug_enabled()) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
/* logs and exits with status 89 (FATAL_DEFAULT, as Dovecot) */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Escape at most max input bytes of data into out (NUL-terminated, at most
 * outsize bytes). Non-printables become \xNN; a cut adds "...". Returns out. */
char *log_escape(const void *data, size_t len, size_t max, char *out, size_t outsize);

#endif
