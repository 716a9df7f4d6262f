#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "lib/log.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void test_escape(void **state)
{
	(void)state;
	char out[64];
	assert_string_equal(log_escape("a LOGIN x", 9, 32, out, sizeof(out)), "a LOGIN x");
	assert_string_equal(log_escape("a\r\n\0\\", 5, 32, out, sizeof(out)), "a\\x0d\\x0a\\x00\\x5c");
	/* bounded by max, with a visible cut */
	assert_string_equal(log_escape("abcdefgh", 8, 3, out, sizeof(out)), "abc...");
	/* bounded by the output size, always terminated */
	char small[8];
	log_escape("\x01\x02\x03\x04", 4, 4, small, sizeof(small));
	assert_true(strlen(small) < sizeof(small));
	assert_string_equal(small, "\\x01");
}

static struct tm sample_tm(int mon, int mday)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = 126;
	tm.tm_mon = mon;
	tm.tm_mday = mday;
	tm.tm_hour = 7;
	tm.tm_min = 5;
	tm.tm_sec = 9;
	return tm;
}

static char *fmt(char *out, size_t outsize, enum log_sink_kind kind, enum log_level level,
		 const struct tm *tm, const char *ts, int facility, const char *msg)
{
	static char buf[LOG_LINE_MAX + 1];
	size_t len = log_format_line(out, outsize, kind, level, tm, ts, facility, "imap-login",
				     1234, msg);
	assert_true(len <= outsize);
	memcpy(buf, out, len);
	buf[len] = '\0';
	return buf;
}

static void test_format_file_and_stderr(void **state)
{
	(void)state;
	char out[LOG_LINE_MAX];
	struct tm tm = sample_tm(10, 3);
	assert_string_equal(fmt(out, sizeof(out), LOG_SINK_FILE, LOG_INFO, &tm, "%b %d %H:%M:%S ",
				2, "Login: user=<a>"),
			    "Nov 03 07:05:09 imap-login(1234): Info: Login: user=<a>\n");
	/* stderr: the journal or the terminal dates it */
	assert_string_equal(fmt(out, sizeof(out), LOG_SINK_STDERR, LOG_ERROR, &tm,
				"%b %d %H:%M:%S ", 2, "x"),
			    "imap-login(1234): Error: x\n");
	/* a file without log_timestamp */
	assert_string_equal(fmt(out, sizeof(out), LOG_SINK_FILE, LOG_WARNING, &tm, "", 2, "w"),
			    "imap-login(1234): Warning: w\n");
	assert_string_equal(fmt(out, sizeof(out), LOG_SINK_FILE, LOG_DEBUG, NULL, "%b ", 2, "d"),
			    "imap-login(1234): Debug: d\n");
}

static void test_format_syslog(void **state)
{
	(void)state;
	char out[LOG_LINE_MAX];
	struct tm tm = sample_tm(10, 3);
	/* mail.info = 2 * 8 + 6; the day space-padded; Info has no level
	 * word, as Dovecot's syslog lines; no newline */
	assert_string_equal(fmt(out, sizeof(out), LOG_SINK_SYSLOG, LOG_INFO, &tm, "%Y ", 2,
				"Login: user=<a>"),
			    "<22>Nov  3 07:05:09 ringgate[1234]: imap-login: Login: user=<a>");
	tm = sample_tm(0, 23);
	assert_string_equal(fmt(out, sizeof(out), LOG_SINK_SYSLOG, LOG_ERROR, &tm, "", 2, "e"),
			    "<19>Jan 23 07:05:09 ringgate[1234]: imap-login: Error: e");
	assert_string_equal(fmt(out, sizeof(out), LOG_SINK_SYSLOG, LOG_WARNING, &tm, "", 16, "w"),
			    "<132>Jan 23 07:05:09 ringgate[1234]: imap-login: Warning: w");
	/* Fatal is LOG_CRIT, Debug LOG_DEBUG */
	assert_string_equal(fmt(out, sizeof(out), LOG_SINK_SYSLOG, LOG_FATAL, &tm, "", 3, "f"),
			    "<26>Jan 23 07:05:09 ringgate[1234]: imap-login: Fatal: f");
	assert_string_equal(fmt(out, sizeof(out), LOG_SINK_SYSLOG, LOG_DEBUG, &tm, "", 23, "d"),
			    "<191>Jan 23 07:05:09 ringgate[1234]: imap-login: Debug: d");
	/* a bad month never reads outside the table */
	tm.tm_mon = 12;
	assert_string_equal(fmt(out, sizeof(out), LOG_SINK_SYSLOG, LOG_INFO, &tm, "", 2, "i"),
			    "<22>Jan 23 07:05:09 ringgate[1234]: imap-login: i");
}

/* every output size cuts the line without overflow; file lines keep their
 * newline, and each cut is a prefix of the whole line */
static void test_format_cut_at_every_size(void **state)
{
	(void)state;
	char msg[3000];
	memset(msg, 'm', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	struct tm tm = sample_tm(4, 17);
	const enum log_sink_kind kinds[] = { LOG_SINK_STDERR, LOG_SINK_FILE, LOG_SINK_SYSLOG };
	const char *short_msgs[] = { "", "short message", msg };
	for (unsigned k = 0; k < 3; k++) {
		for (unsigned s = 0; s < 3; s++) {
			char whole[4096];
			size_t wlen = log_format_line(whole, sizeof(whole), kinds[k], LOG_WARNING,
						      &tm, "%b %d %H:%M:%S ", 2, "pop3-login",
						      99, short_msgs[s]);
			for (size_t size = 0; size <= wlen + 2 && size < sizeof(whole); size++) {
				char out[4096 + 16];
				memset(out, 'Z', sizeof(out));
				size_t len = log_format_line(out, size, kinds[k], LOG_WARNING, &tm,
							     "%b %d %H:%M:%S ", 2, "pop3-login",
							     99, short_msgs[s]);
				assert_true(len <= size);
				assert_int_equal(out[size], 'Z'); /* nothing past outsize */
				if (size >= wlen) {
					assert_int_equal(len, wlen);
					assert_memory_equal(out, whole, wlen);
					continue;
				}
				if (size < 2) {
					assert_int_equal(len, 0);
					continue;
				}
				if (kinds[k] == LOG_SINK_SYSLOG) {
					assert_int_equal(len, size);
					assert_memory_equal(out, whole, len);
				} else {
					assert_int_equal(len, size);
					assert_int_equal(out[len - 1], '\n');
					assert_memory_equal(out, whole, len - 1);
				}
			}
		}
	}
	/* the process's own long message is cut at LOG_LINE_MAX */
	char out[LOG_LINE_MAX];
	size_t len = log_format_line(out, sizeof(out), LOG_SINK_FILE, LOG_INFO, &tm, "", 2, "auth",
				     1, msg);
	assert_int_equal(len, LOG_LINE_MAX);
	assert_int_equal(out[len - 1], '\n');
}

static void test_facility(void **state)
{
	(void)state;
	assert_int_equal(log_facility_parse("mail"), 2);
	assert_int_equal(log_facility_parse("auth"), 4);
	assert_int_equal(log_facility_parse("authpriv"), 10);
	assert_int_equal(log_facility_parse("daemon"), 3);
	assert_int_equal(log_facility_parse("local0"), 16);
	assert_int_equal(log_facility_parse("local7"), 23);
	assert_int_equal(log_facility_parse("local8"), -1);
	assert_int_equal(log_facility_parse("Mail"), -1);
	assert_int_equal(log_facility_parse(""), -1);
	assert_int_equal(log_facility_parse("mail "), -1);
}

static void test_sinks_env(void **state)
{
	(void)state;
	const struct log_sink sinks[LOG_SINK_COUNT] = {
		{ 2, LOG_SINK_FILE }, { 7, LOG_SINK_SYSLOG }, { 12, LOG_SINK_STDERR } };
	char text[64];
	assert_true(log_sinks_format(sinks, 16, text, sizeof(text)));
	assert_string_equal(text, "2:file,7:syslog,12:stderr,16");
	/* too small: refused, never cut */
	assert_false(log_sinks_format(sinks, 16, text, 10));

	struct log_sink got[LOG_SINK_COUNT];
	int facility = -1;
	assert_true(log_sinks_parse("2:file,7:syslog,12:stderr,16", got, &facility));
	assert_int_equal(facility, 16);
	for (unsigned i = 0; i < LOG_SINK_COUNT; i++) {
		assert_int_equal(got[i].fd, sinks[i].fd);
		assert_int_equal(got[i].kind, sinks[i].kind);
	}
	/* every proper prefix of a good text is malformed */
	const char *good = "2:file,7:syslog,12:stderr,16";
	for (size_t cut = 0; cut < strlen("2:file,7:syslog,12:stderr,1"); cut++) {
		char part[64];
		memcpy(part, good, cut);
		part[cut] = '\0';
		struct log_sink untouched[LOG_SINK_COUNT] = { { -5, LOG_SINK_FILE } };
		int fac = -7;
		assert_false(log_sinks_parse(part, untouched, &fac));
		assert_int_equal(untouched[0].fd, -5);
		assert_int_equal(fac, -7);
	}
	const char *bad[] = {
		"2:file,7:syslog,12:stderr,24",	       /* facility out of range */
		"2:file,7:syslog,12:stderr,16,",       /* trailing */
		"2:file,7:syslog,12:stderr,16x",
		"2:fil,7:syslog,12:stderr,16",	       /* unknown kind */
		"2:files,7:syslog,12:stderr,16",
		"-1:file,7:syslog,12:stderr,16",       /* negative fd */
		"99999999999:file,7:syslog,12:stderr,16",
		"2file,7:syslog,12:stderr,16",
		"2:file;7:syslog,12:stderr,16",
		" 2:file,7:syslog,12:stderr,16",
		"2:file,7:syslog,12:stderr,",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(log_sinks_parse(bad[i], got, &facility));
}

/* read what is in the pipe (lines already written) */
static size_t pipe_read(int fd, char *out, size_t outsize)
{
	ssize_t n = read(fd, out, outsize - 1);
	assert_true(n > 0);
	out[n] = '\0';
	return (size_t)n;
}

/* The pid and the timestamp are cached (no getpid() or strftime() per
 * line): a fork()ed child's lines still carry its own pid, and a new
 * log_timestamp applies to the very next line. */
static void test_pid_and_timestamp_cache(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	unsetenv("RINGGATE_LOG");
	unsetenv("RINGGATE_LOG_TIMESTAMP");
	log_init("cachetest");
	const struct log_sink sinks[LOG_SINK_COUNT] = {
		{ p[1], LOG_SINK_FILE }, { p[1], LOG_SINK_FILE }, { p[1], LOG_SINK_FILE } };
	log_set_sinks(sinks, 2);
	char buf[512], want[128];

	log_info("one");
	pipe_read(p[0], buf, sizeof(buf));
	snprintf(want, sizeof(want), "cachetest(%ld): Info: one\n", (long)getpid());
	assert_string_equal(buf, want);

	/* the second line within the same second reuses the time text; a
	 * new format is used at once */
	log_set_timestamp("[TS] ");
	log_info("two");
	pipe_read(p[0], buf, sizeof(buf));
	snprintf(want, sizeof(want), "[TS] cachetest(%ld): Info: two\n", (long)getpid());
	assert_string_equal(buf, want);
	log_set_timestamp("");
	log_info("three");
	pipe_read(p[0], buf, sizeof(buf));
	snprintf(want, sizeof(want), "cachetest(%ld): Info: three\n", (long)getpid());
	assert_string_equal(buf, want);

	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		log_info("child");
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	pipe_read(p[0], buf, sizeof(buf));
	snprintf(want, sizeof(want), "cachetest(%ld): Info: child\n", (long)child);
	assert_string_equal(buf, want);

	const struct log_sink back[LOG_SINK_COUNT] = {
		{ 2, LOG_SINK_STDERR }, { 2, LOG_SINK_STDERR }, { 2, LOG_SINK_STDERR } };
	log_set_sinks(back, 2);
	close(p[0]);
	close(p[1]);
}

/* Batching: Info lines wait for log_flush() (nothing in the pipe before),
 * then go out together; a warning is never held and the lines held before
 * it go first; a fork()ed child does not write its parent's held lines. */
/* the "name(pid): Level: " head is put together by copying: the same text
 * as "%s(%ld): " for any pid */
static void test_format_pid_digits(void **state)
{
	(void)state;
	static const long pids[] = { 0, 1, 9, 10, 99, 100, 4194304, 2147483647L };
	char out[LOG_LINE_MAX + 1], want[128];
	for (size_t i = 0; i < sizeof(pids) / sizeof(pids[0]); i++) {
		size_t len = log_format_line(out, sizeof(out) - 1, LOG_SINK_STDERR, LOG_INFO, NULL, "",
					     0, "pop3-login", pids[i], "m");
		out[len] = '\0';
		snprintf(want, sizeof(want), "pop3-login(%ld): Info: m\n", pids[i]);
		assert_string_equal(out, want);
	}
}

/* log_text takes the message as it is: no format is applied */
static void test_log_text(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	unsetenv("RINGGATE_LOG");
	unsetenv("RINGGATE_LOG_TIMESTAMP");
	log_init("text");
	const struct log_sink sinks[LOG_SINK_COUNT] = {
		{ p[1], LOG_SINK_STDERR }, { p[1], LOG_SINK_STDERR }, { p[1], LOG_SINK_STDERR } };
	log_set_sinks(sinks, 2);
	log_text(LOG_INFO, "100%s done %d");
	char buf[256], want[128];
	ssize_t n = read(p[0], buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	snprintf(want, sizeof(want), "text(%ld): Info: 100%%s done %%d\n", (long)getpid());
	assert_string_equal(buf, want);
	close(p[0]);
	close(p[1]);
}

static void test_batching(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	unsetenv("RINGGATE_LOG");
	unsetenv("RINGGATE_LOG_TIMESTAMP");
	log_init("batch");
	const struct log_sink sinks[LOG_SINK_COUNT] = {
		{ p[1], LOG_SINK_STDERR }, { p[1], LOG_SINK_STDERR }, { p[1], LOG_SINK_STDERR } };
	log_set_sinks(sinks, 2);
	long pid = (long)getpid();
	char buf[1024], want[256];

	log_set_batching(true);
	log_info("a");
	log_info("b");
	assert_true(read(p[0], buf, sizeof(buf)) < 0);
	log_flush();
	pipe_read(p[0], buf, sizeof(buf));
	snprintf(want, sizeof(want), "batch(%ld): Info: a\nbatch(%ld): Info: b\n", pid, pid);
	assert_string_equal(buf, want);

	log_info("c");
	log_warning("w");
	pipe_read(p[0], buf, sizeof(buf));
	snprintf(want, sizeof(want), "batch(%ld): Info: c\nbatch(%ld): Warning: w\n", pid, pid);
	assert_string_equal(buf, want);

	/* a full buffer is written before the line that does not fit */
	char big[1500];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (int i = 0; i < 3; i++)
		log_info("%s", big);
	size_t got = pipe_read(p[0], buf, sizeof(buf));
	assert_true(got > 0);
	char drain[8192];
	while (read(p[0], drain, sizeof(drain)) > 0)
		;
	log_flush();
	while (read(p[0], drain, sizeof(drain)) > 0)
		;

	log_info("held");
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		log_info("child");
		log_flush();
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	pipe_read(p[0], buf, sizeof(buf));
	snprintf(want, sizeof(want), "batch(%ld): Info: child\n", (long)child);
	assert_string_equal(buf, want);
	log_set_batching(false); /* writes what it held */
	pipe_read(p[0], buf, sizeof(buf));
	snprintf(want, sizeof(want), "batch(%ld): Info: held\n", pid);
	assert_string_equal(buf, want);

	const struct log_sink back[LOG_SINK_COUNT] = {
		{ 2, LOG_SINK_STDERR }, { 2, LOG_SINK_STDERR }, { 2, LOG_SINK_STDERR } };
	log_set_sinks(back, 2);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_format_file_and_stderr),
		cmocka_unit_test(test_format_syslog),
		cmocka_unit_test(test_format_cut_at_every_size),
		cmocka_unit_test(test_facility),
		cmocka_unit_test(test_sinks_env),
		cmocka_unit_test(test_pid_and_timestamp_cache),
		cmocka_unit_test(test_format_pid_digits),
		cmocka_unit_test(test_log_text),
		cmocka_unit_test(test_batching),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
