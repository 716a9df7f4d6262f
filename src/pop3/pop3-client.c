#include "pop3/pop3-client.h"

#include "lib/alloc.h"
#include "lib/log.h"
#include "mail/mbox.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POP3_CAPABILITY_REPLY \
	"+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n.\r\n"
#define POP3_ERR_INTERNAL "-ERR [SYS/TEMP] Internal error occurred. Refer to server log for more information."

/* What a session needs of its mailbox: a Maildir or an mbox spool. */
struct pop3_store {
	size_t (*count)(void *box);
	/* -ENOENT: gone before the session numbered it */
	int (*vsize)(void *box, size_t idx, uint64_t *vsize_r);
	int (*read)(void *box, size_t idx, char **data_r, size_t *len_r);
	void (*uidl)(void *box, size_t idx, char buf[POP3_UIDL_SIZE]);
	/* QUIT: remove expunge[idx], mark seen[idx] read; *removed_r counts
	   what is gone. 0 or -errno (logged here). */
	int (*commit)(void *box, const bool *expunge, const bool *seen, unsigned *removed_r);
	void (*close)(void *box);
};

struct pop3_client {
	const struct pop3_store *store;
	void *box;
	pop3_send_fn *send;
	void *ctx;

	/* message number n (1-based) is box->msgs[map[n - 1]]; messages that
	 * vanished before the session started are not numbered */
	size_t *map;
	size_t count;
	uint64_t *vsize;  /* per message number */
	bool *deleted;    /* DELE marks, undone by RSET */
	bool *retrieved;  /* RETR'd: gets \Seen at QUIT */
	uint64_t total_size;

	bool quit, done, skipping_line;
	unsigned int bad_commands;
	/* stats for the logout line */
	unsigned int top_count, retr_count, del_count;
	uint64_t top_bytes, retr_bytes;

	/* line[0..line_len) is the unfinished command line */
	size_t line_len;
	char line[POP3_MAX_LINE];
};

static void send_str(struct pop3_client *c, const char *s)
{
	c->send(c->ctx, s, strlen(s));
}

static void send_line(struct pop3_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void send_line(struct pop3_client *c, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(buf) - 3)
		n = (int)sizeof(buf) - 3;
	buf[n++] = '\r';
	buf[n++] = '\n';
	c->send(c->ctx, buf, (size_t)n);
}

/* ---- Maildir ---- */

static size_t maildir_store_count(void *box)
{
	return ((struct maildir *)box)->count;
}

static int maildir_store_vsize(void *box, size_t idx, uint64_t *vsize_r)
{
	return maildir_msg_vsize(box, idx, vsize_r);
}

static int maildir_store_read(void *box, size_t idx, char **data_r, size_t *len_r)
{
	return maildir_msg_read(box, idx, data_r, len_r);
}

static void maildir_store_uidl(void *box, size_t idx, char buf[POP3_UIDL_SIZE])
{
	const struct maildir *md = box;
	/* Dovecot's default pop3_uidl_format %08Xu%08Xv */
	snprintf(buf, POP3_UIDL_SIZE, "%08X%08X", md->msgs[idx].uid, md->uidvalidity);
}

static int maildir_store_commit(void *box, const bool *expunge, const bool *seen,
				unsigned *removed_r)
{
	struct maildir *md = box;
	bool failed = false;

	for (size_t idx = 0; idx < md->count; idx++) {
		int ret = 0;
		if (expunge[idx]) {
			ret = maildir_msg_delete(md, idx);
			if (ret == 0)
				(*removed_r)++;
		} else if (seen[idx] && !maildir_msg_has_flag(&md->msgs[idx], MAILDIR_FLAG_SEEN)) {
			/* as Dovecot: what was downloaded is \Seen for IMAP */
			char flags[MAILDIR_MAX_FLAGS + 2];
			snprintf(flags, sizeof(flags), "%sS", md->msgs[idx].flags);
			ret = maildir_msg_set_flags(md, idx, flags);
			if (ret == -ENOENT)
				ret = 0;
		}
		if (ret < 0) {
			log_error("updating message uid %u at QUIT failed: %s",
				  md->msgs[idx].uid, strerror(-ret));
			failed = true;
		}
	}
	return failed ? -EIO : 0;
}

static void maildir_store_close(void *box)
{
	maildir_close(box);
}

static const struct pop3_store maildir_store = {
	maildir_store_count, maildir_store_vsize, maildir_store_read, maildir_store_uidl,
	maildir_store_commit, maildir_store_close,
};

/* ---- mbox ---- */

static size_t mbox_store_count(void *box)
{
	return ((struct mbox *)box)->count;
}

static int mbox_store_vsize(void *box, size_t idx, uint64_t *vsize_r)
{
	*vsize_r = ((struct mbox *)box)->msgs[idx].vsize;
	return 0;
}

static int mbox_store_read(void *box, size_t idx, char **data_r, size_t *len_r)
{
	int ret = mbox_msg_read(box, idx, data_r, len_r);
	/* rewritten by another program: the message is not where it was */
	return ret == -ESTALE ? -ENOENT : ret;
}

static void mbox_store_uidl(void *box, size_t idx, char buf[POP3_UIDL_SIZE])
{
	snprintf(buf, POP3_UIDL_SIZE, "%s", ((struct mbox *)box)->msgs[idx].uidl);
}

/* Read messages keep no Status header: the spool is rewritten only to
   remove mail, as a delivery agent may be appending to it. */
static int mbox_store_commit(void *box, const bool *expunge, const bool *seen,
			     unsigned *removed_r)
{
	struct mbox *mb = box;
	const char *error = "";
	(void)seen;

	int ret = mbox_expunge(mb, expunge, MBOX_LOCK_TIMEOUT_MS, &error);
	if (ret < 0) {
		log_error("expunging from %s at QUIT failed: %s: %s", mb->path, error,
			  strerror(-ret));
		return ret;
	}
	for (size_t i = 0; i < mb->count; i++)
		*removed_r += expunge[i];
	return 0;
}

static void mbox_store_close(void *box)
{
	mbox_close(box);
}

static const struct pop3_store mbox_store = {
	mbox_store_count, mbox_store_vsize, mbox_store_read, mbox_store_uidl,
	mbox_store_commit, mbox_store_close,
};

/* ---- session ---- */

static int client_create(const struct pop3_store *store, void *box, pop3_send_fn *send,
			 void *ctx, struct pop3_client **client_r, const char **error_r)
{
	struct pop3_client *c = rg_calloc(1, sizeof(*c));
	size_t total = store->count(box);
	c->store = store;
	c->box = box;
	c->send = send;
	c->ctx = ctx;
	c->map = rg_calloc(total + 1, sizeof(*c->map));
	c->vsize = rg_calloc(total + 1, sizeof(*c->vsize));
	c->deleted = rg_calloc(total + 1, sizeof(*c->deleted));
	c->retrieved = rg_calloc(total + 1, sizeof(*c->retrieved));
	/* POP3 needs every size up front (STAT); Dovecot does the same */
	for (size_t i = 0; i < total; i++) {
		uint64_t vsize;
		int ret = store->vsize(box, i, &vsize);
		if (ret == -ENOENT)
			continue; /* expunged by another session meanwhile */
		if (ret < 0) {
			*error_r = "reading message sizes failed";
			c->box = NULL;
			pop3_client_destroy(c);
			return ret;
		}
		c->map[c->count] = i;
		c->vsize[c->count] = vsize;
		c->total_size += vsize;
		c->count++;
	}
	*client_r = c;
	return 0;
}

int pop3_client_create(struct maildir *box, pop3_send_fn *send, void *ctx,
		       struct pop3_client **client_r, const char **error_r)
{
	return client_create(&maildir_store, box, send, ctx, client_r, error_r);
}

int pop3_client_create_mbox(struct mbox *box, pop3_send_fn *send, void *ctx,
			    struct pop3_client **client_r, const char **error_r)
{
	return client_create(&mbox_store, box, send, ctx, client_r, error_r);
}

void pop3_client_destroy(struct pop3_client *c)
{
	if (c == NULL)
		return;
	if (c->box != NULL)
		c->store->close(c->box);
	rg_free(c->map);
	rg_free(c->vsize);
	rg_free(c->deleted);
	rg_free(c->retrieved);
	rg_free(c);
}

void pop3_client_send_greeting(struct pop3_client *c)
{
	send_str(c, "+OK Logged in.\r\n");
}

bool pop3_client_quit_seen(const struct pop3_client *c)
{
	return c->quit;
}

void pop3_client_stats(const struct pop3_client *c, char *buf, size_t size)
{
	snprintf(buf, size, "top=%u/%" PRIu64 ", retr=%u/%" PRIu64 ", del=%u/%zu, size=%" PRIu64,
		 c->top_count, c->top_bytes, c->retr_count, c->retr_bytes, c->del_count,
		 c->count, c->total_size);
}

/* ---- arguments ---- */

/* Parse a message number as Dovecot's get_msgnum() does, replying the
 * error itself. Returns the 0-based number or -1. */
static ssize_t get_msgnum(struct pop3_client *c, const char *args, const char **rest_r)
{
	const char *p = args;
	unsigned long long num = 0;

	if (!isdigit((unsigned char)*p)) {
		send_line(c, "-ERR Invalid message number: %.40s", args);
		return -1;
	}
	while (isdigit((unsigned char)*p)) {
		num = num * 10 + (unsigned)(*p - '0');
		if (num > UINT32_MAX) {
			send_line(c, "-ERR Invalid message number: %.40s", args);
			return -1;
		}
		p++;
	}
	if (*p != '\0' && *p != ' ') {
		send_line(c, "-ERR Invalid message number: %.40s", args);
		return -1;
	}
	if (num == 0 || num > c->count) {
		send_line(c, "-ERR There's no message %llu.", num);
		return -1;
	}
	if (c->deleted[num - 1]) {
		send_str(c, "-ERR Message is deleted.\r\n");
		return -1;
	}
	while (*p == ' ')
		p++;
	if (rest_r != NULL) {
		*rest_r = p;
	} else if (*p != '\0') {
		send_line(c, "-ERR Noise after message number: %.40s", p);
		return -1;
	}
	return (ssize_t)(num - 1);
}

/* ---- message output ---- */

/* Send the message with CRLF line ends and dot-stuffing, then ".". With
 * body_lines >= 0 (TOP) only the header and that many body lines go out.
 * Returns the bytes sent, for the stats. */
static uint64_t send_message(struct pop3_client *c, const char *data, size_t len, long body_lines)
{
	bool in_header = true;
	long sent_body = 0;
	uint64_t total = 0;
	size_t pos = 0;
	while (pos < len) {
		if (!in_header && body_lines >= 0 && sent_body >= body_lines)
			break;
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t end = nl == NULL ? len : (size_t)(nl - data);
		size_t line_end = end;
		if (line_end > pos && data[line_end - 1] == '\r')
			line_end--;
		if (data[pos] == '.') {
			c->send(c->ctx, ".", 1);
			total++;
		}
		c->send(c->ctx, data + pos, line_end - pos);
		c->send(c->ctx, "\r\n", 2);
		total += line_end - pos + 2;
		if (in_header) {
			if (line_end == pos)
				in_header = false;
		} else {
			sent_body++;
		}
		pos = nl == NULL ? len : end + 1;
	}
	send_str(c, ".\r\n");
	return total;
}

static int read_msg(struct pop3_client *c, size_t n, char **data_r, size_t *len_r)
{
	int ret = c->store->read(c->box, c->map[n], data_r, len_r);
	if (ret == -ENOENT) {
		send_str(c, "-ERR Message was expunged by another session.\r\n");
	} else if (ret < 0) {
		char uidl[POP3_UIDL_SIZE];
		c->store->uidl(c->box, c->map[n], uidl);
		log_error("reading message %s failed: %s", uidl, strerror(-ret));
		send_str(c, POP3_ERR_INTERNAL "\r\n");
	}
	return ret;
}

/* ---- commands ---- */

static void cmd_capa(struct pop3_client *c, const char *args)
{
	(void)args;
	send_str(c, POP3_CAPABILITY_REPLY);
}

static void cmd_noop(struct pop3_client *c, const char *args)
{
	(void)args;
	send_str(c, "+OK\r\n");
}

static void cmd_stat(struct pop3_client *c, const char *args)
{
	(void)args;
	unsigned int n = 0;
	uint64_t size = 0;
	for (size_t i = 0; i < c->count; i++) {
		if (c->deleted[i])
			continue;
		n++;
		size += c->vsize[i];
	}
	send_line(c, "+OK %u %" PRIu64, n, size);
}

static void cmd_list(struct pop3_client *c, const char *args)
{
	if (*args != '\0') {
		ssize_t n = get_msgnum(c, args, NULL);
		if (n >= 0)
			send_line(c, "+OK %zd %" PRIu64, n + 1, c->vsize[n]);
		return;
	}
	unsigned int visible = 0;
	for (size_t i = 0; i < c->count; i++)
		visible += !c->deleted[i];
	send_line(c, "+OK %u messages:", visible);
	for (size_t i = 0; i < c->count; i++) {
		if (!c->deleted[i])
			send_line(c, "%zu %" PRIu64, i + 1, c->vsize[i]);
	}
	send_str(c, ".\r\n");
}

static void uidl_of(struct pop3_client *c, size_t n, char buf[POP3_UIDL_SIZE])
{
	c->store->uidl(c->box, c->map[n], buf);
}

static void cmd_uidl(struct pop3_client *c, const char *args)
{
	char uidl[POP3_UIDL_SIZE];
	if (*args != '\0') {
		ssize_t n = get_msgnum(c, args, NULL);
		if (n >= 0) {
			uidl_of(c, (size_t)n, uidl);
			send_line(c, "+OK %zd %s", n + 1, uidl);
		}
		return;
	}
	send_str(c, "+OK\r\n");
	for (size_t i = 0; i < c->count; i++) {
		if (c->deleted[i])
			continue;
		uidl_of(c, i, uidl);
		send_line(c, "%zu %s", i + 1, uidl);
	}
	send_str(c, ".\r\n");
}

static void cmd_retr(struct pop3_client *c, const char *args)
{
	ssize_t n = get_msgnum(c, args, NULL);
	char *data;
	size_t len;
	if (n < 0 || read_msg(c, (size_t)n, &data, &len) < 0)
		return;
	send_line(c, "+OK %" PRIu64 " octets", c->vsize[n]);
	c->retr_bytes += send_message(c, data, len, -1);
	c->retr_count++;
	c->retrieved[n] = true;
	rg_free(data);
}

static void cmd_top(struct pop3_client *c, const char *args)
{
	const char *rest;
	ssize_t n = get_msgnum(c, args, &rest);
	if (n < 0)
		return;
	char *end;
	errno = 0;
	unsigned long lines = strtoul(rest, &end, 10);
	if (!isdigit((unsigned char)*rest) || errno != 0 || *end != '\0' || lines > LONG_MAX) {
		send_line(c, "-ERR Invalid number of lines: %.40s", rest);
		return;
	}
	char *data;
	size_t len;
	if (read_msg(c, (size_t)n, &data, &len) < 0)
		return;
	send_str(c, "+OK\r\n");
	c->top_bytes += send_message(c, data, len, (long)lines);
	c->top_count++;
	rg_free(data);
}

static void cmd_dele(struct pop3_client *c, const char *args)
{
	ssize_t n = get_msgnum(c, args, NULL);
	if (n < 0)
		return;
	c->deleted[n] = true;
	send_str(c, "+OK Marked to be deleted.\r\n");
}

static void cmd_rset(struct pop3_client *c, const char *args)
{
	(void)args;
	memset(c->deleted, 0, c->count * sizeof(*c->deleted));
	send_str(c, "+OK\r\n");
}

static void cmd_quit(struct pop3_client *c, const char *args)
{
	(void)args;
	/* the marks by message number, as the store indexes them */
	size_t total = c->store->count(c->box);
	bool *expunge = rg_calloc(total + 1, sizeof(*expunge));
	bool *seen = rg_calloc(total + 1, sizeof(*seen));
	unsigned removed = 0;
	for (size_t i = 0; i < c->count; i++) {
		expunge[c->map[i]] = c->deleted[i];
		seen[c->map[i]] = c->retrieved[i];
	}
	int ret = c->store->commit(c->box, expunge, seen, &removed);
	rg_free(expunge);
	rg_free(seen);
	c->del_count += removed;
	c->quit = true;
	c->done = true;
	if (ret == -EAGAIN)
		send_str(c, "-ERR [IN-USE] Mailbox is locked by another process, "
			 "no messages deleted.\r\n");
	else if (ret < 0)
		send_str(c, POP3_ERR_INTERNAL "\r\n");
	else if (removed > 0)
		send_str(c, "+OK Logging out, messages deleted.\r\n");
	else
		send_str(c, "+OK Logging out.\r\n");
}

struct pop3_command {
	const char *name;
	void (*func)(struct pop3_client *c, const char *args);
};

static const struct pop3_command pop3_commands[] = {
	{ "CAPA", cmd_capa }, { "DELE", cmd_dele }, { "LIST", cmd_list },
	{ "NOOP", cmd_noop }, { "QUIT", cmd_quit }, { "RETR", cmd_retr },
	{ "RSET", cmd_rset }, { "STAT", cmd_stat }, { "TOP", cmd_top },
	{ "UIDL", cmd_uidl },
};

static void bad_command(struct pop3_client *c)
{
	if (++c->bad_commands >= POP3_MAX_BAD_COMMANDS) {
		send_str(c, "-ERR Too many bad commands.\r\n");
		c->done = true;
	}
}

static void handle_line(struct pop3_client *c, char *line)
{
	char *args = strchr(line, ' ');
	if (args != NULL)
		*args++ = '\0';
	else
		args = line + strlen(line);

	for (size_t i = 0; i < sizeof(pop3_commands) / sizeof(pop3_commands[0]); i++) {
		if (strcasecmp(pop3_commands[i].name, line) == 0) {
			pop3_commands[i].func(c, args);
			return;
		}
	}
	char safe[41];
	size_t n = 0;
	for (const char *p = line; *p != '\0' && n < sizeof(safe) - 1; p++)
		safe[n++] = (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f ? *p : '?';
	safe[n] = '\0';
	send_line(c, "-ERR Unknown command: %s", safe);
	bad_command(c);
}

bool pop3_client_input(struct pop3_client *c, const uint8_t *data, size_t len)
{
	size_t pos = 0;
	while (pos < len && !c->done) {
		const uint8_t *nl = memchr(data + pos, '\n', len - pos);
		size_t chunk = (nl == NULL ? len : (size_t)(nl - data)) - pos;
		if (c->skipping_line) {
			/* rest of an over-long line: dropped without buffering */
		} else if (c->line_len + chunk >= sizeof(c->line)) {
			c->skipping_line = true;
			c->line_len = 0;
			send_str(c, "-ERR Input line too long.\r\n");
			bad_command(c);
		} else {
			memcpy(c->line + c->line_len, data + pos, chunk);
			c->line_len += chunk;
		}
		pos += chunk;
		if (nl == NULL)
			break;
		pos++; /* the LF */
		if (c->skipping_line) {
			c->skipping_line = false;
			continue;
		}
		if (c->line_len > 0 && c->line[c->line_len - 1] == '\r')
			c->line_len--;
		c->line[c->line_len] = '\0';
		c->line_len = 0;
		if (c->line[0] == '\0')
			continue; /* Dovecot ignores empty lines */
		handle_line(c, c->line);
	}
	return !c->done;
}
