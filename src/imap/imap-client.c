#include "imap/imap-common.h"

#include "lib/alloc.h"
#include "lib/log.h"
#include "mail/folder.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- output ---- */

void imap_send_raw(struct imap_client *c, const void *data, size_t len)
{
	c->send(c->ctx, data, len);
}

void imap_send_str(struct imap_client *c, const char *s)
{
	imap_send_raw(c, s, strlen(s));
}

void imap_send_fmt(struct imap_client *c, const char *fmt, ...)
{
	/* the whole line, however long: never cut in the middle of its CRLF */
	c->line.len = 0;
	va_list ap;
	va_start(ap, fmt);
	mime_buf_vprintf(&c->line, fmt, ap);
	va_end(ap);
	if (c->line.len > 0)
		imap_send_raw(c, c->line.data, c->line.len);
	/* an odd huge line must not stay in an idle session's memory */
	if (c->line.size > 16384)
		mime_buf_free(&c->line);
}

void imap_tagged(struct imap_client *c, const char *tag, const char *status, const char *text)
{
	if (c->sync_ok && c->box != NULL && !c->done) {
		imap_sync_view(c);
		if (c->done)
			return; /* the sync said BYE: the session is over */
	}
	imap_send_fmt(c, "%s %s %s\r\n", tag, status, text);
}

/* a client string fit to echo: printable, at most 40 bytes */
void imap_sanitize(const char *in, char out[48])
{
	size_t n = 0;
	for (; *in != '\0' && n < 40; in++)
		out[n++] = (unsigned char)*in >= 0x20 && (unsigned char)*in < 0x7f ? *in : '?';
	if (*in != '\0') {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
}

bool imap_bad(struct imap_client *c, const char *tag, const char *text)
{
	bool sync = c->sync_ok;
	c->sync_ok = false;
	imap_tagged(c, tag, "BAD", text);
	c->sync_ok = sync;
	if (++c->bad_commands >= IMAP_MAX_BAD_COMMANDS) {
		imap_send_str(c, "* BYE Too many invalid IMAP commands.\r\n");
		c->done = true;
	}
	return false;
}

bool imap_bad_args(struct imap_client *c, const char *tag, const char *cmd)
{
	char text[128];
	snprintf(text, sizeof(text), "Error in IMAP command %s: Invalid arguments.", cmd);
	return imap_bad(c, tag, text);
}

/* a mailbox name as IMAP wants it: an atom when it can be, else quoted */
void imap_send_mailbox_name(struct imap_client *c, const char *name)
{
	bool atom = *name != '\0';
	for (const char *p = name; *p != '\0' && atom; p++) {
		unsigned char ch = (unsigned char)*p;
		atom = ch > 0x20 && ch < 0x7f && strchr("(){ %*\"\\]", ch) == NULL;
	}
	if (atom) {
		imap_send_str(c, name);
		return;
	}
	struct mime_buf b = { 0 };
	mime_buf_nstring(&b, name, strlen(name));
	imap_send_raw(c, b.data, b.len);
	mime_buf_free(&b);
}

void imap_no_mailbox(struct imap_client *c, const char *tag, const char *name, bool trycreate)
{
	char safe[48], text[128];
	imap_sanitize(name, safe);
	snprintf(text, sizeof(text), "%sMailbox doesn't exist: %s", trycreate ? "[TRYCREATE] " : "", safe);
	imap_tagged(c, tag, "NO", text);
}
/* COMPRESS=DEFLATE only when the binary can compress its socket */
static const char *capability(const struct imap_client *c)
{
	return c->compress_start != NULL ? IMAP_CAPABILITY " COMPRESS=DEFLATE" : IMAP_CAPABILITY;
}

static bool cmd_capability(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	(void)count;
	imap_send_fmt(c, "* CAPABILITY %s\r\n", capability(c));
	imap_tagged(c, tag, "OK", "Capability completed.");
	return true;
}

static bool cmd_noop(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	(void)count;
	imap_tagged(c, tag, "OK", "NOOP completed.");
	return true;
}

static bool cmd_logout(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	(void)count;
	imap_send_str(c, "* BYE Logging out\r\n");
	imap_tagged(c, tag, "OK", "Logout completed.");
	c->state = STATE_LOGOUT;
	c->done = true;
	return true;
}

static bool cmd_id(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	if (count != 1 || (args[0].type != IMAP_CMD_ARG_LIST &&
			   (args[0].type != IMAP_CMD_ARG_ATOM || strcasecmp(args[0].str, "NIL") != 0)))
		return imap_bad(c, tag, "Error in IMAP command ID: Invalid arguments.");
	imap_send_str(c, "* ID (\"name\" \"ringgate\")\r\n");
	imap_tagged(c, tag, "OK", "ID completed.");
	return true;
}

static bool cmd_enable(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	if (count == 0)
		return imap_bad(c, tag, "Error in IMAP command ENABLE: Missing arguments.");
	for (size_t i = 0; i < count; i++) {
		if (args[i].type != IMAP_CMD_ARG_ATOM)
			return imap_bad(c, tag, "Error in IMAP command ENABLE: Invalid arguments.");
	}
	/* RFC 5161: ENABLED names what this command turned on; QRESYNC
	 * implies CONDSTORE (RFC 7162 3.2.3) without naming it */
	char enabled[32] = "* ENABLED";
	for (size_t i = 0; i < count; i++) {
		if (strcasecmp(args[i].str, "CONDSTORE") == 0 && !c->condstore) {
			c->condstore = true;
			strcat(enabled, " CONDSTORE");
		} else if (strcasecmp(args[i].str, "QRESYNC") == 0 && !c->qresync) {
			c->qresync = c->condstore = true;
			strcat(enabled, " QRESYNC");
		}
	}
	strcat(enabled, "\r\n");
	imap_send_str(c, enabled);
	imap_tagged(c, tag, "OK", "Enabled.");
	return true;
}

static bool cmd_idle(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	(void)count;
	c->idling = true;
	c->idle_overflow = false;
	c->idle_len = 0;
	snprintf(c->idle_tag, sizeof(c->idle_tag), "%s", tag);
	imap_sync_view(c);
	imap_send_str(c, "+ idling\r\n");
	return true;
}

/* RFC 4978 */
static bool cmd_compress(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
			 size_t count)
{
	if (c->compress_start == NULL)
		return imap_bad(c, tag, "Unknown command.");
	if (count != 1 || args[0].type != IMAP_CMD_ARG_ATOM)
		return imap_bad_args(c, tag, "COMPRESS");
	if (c->compressed) {
		imap_tagged(c, tag, "NO", "[COMPRESSIONACTIVE] Compression already enabled.");
		return true;
	}
	if (strcasecmp(args[0].str, "DEFLATE") != 0)
		return imap_bad(c, tag, "Unknown compression mechanism.");
	imap_tagged(c, tag, "OK", "Begin compression.");
	c->compressed = true;
	c->input_switch = true;
	c->compress_start(c->compress_ctx);
	return true;
}

static bool cmd_uid(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	const char *sub = count >= 1 && args[0].type == IMAP_CMD_ARG_ATOM ? args[0].str : "";
	/* UID commands may report expunges (RFC 3501 7.4.1) */
	c->sync_ok = true;
	if (strcasecmp(sub, "FETCH") == 0)
		return cmd_fetch_common(c, tag, args + 1, count - 1, true);
	if (strcasecmp(sub, "STORE") == 0)
		return cmd_store_common(c, tag, args + 1, count - 1, true);
	if (strcasecmp(sub, "SEARCH") == 0)
		return cmd_search_common(c, tag, args + 1, count - 1, true);
	if (strcasecmp(sub, "COPY") == 0)
		return cmd_copy_common(c, tag, args + 1, count - 1, true, false);
	if (strcasecmp(sub, "MOVE") == 0)
		return cmd_copy_common(c, tag, args + 1, count - 1, true, true);
	if (strcasecmp(sub, "EXPUNGE") == 0)
		return cmd_uid_expunge(c, tag, args + 1, count - 1);
	return imap_bad(c, tag, "Unknown command.");
}

/* CMD_SYNC: other sessions' changes may be reported before the tagged
 * reply; not for FETCH, STORE and SEARCH, whose sequence numbers the
 * client must be able to trust (RFC 3501 7.4.1) */
enum { CMD_SELECTED = 1, CMD_SYNC = 2 };

static const struct imap_command {
	const char *name;
	imap_cmd_fn *func;
	unsigned int flags;
} imap_commands[] = {
	{ "APPEND", cmd_append, CMD_SYNC },
	{ "CAPABILITY", cmd_capability, CMD_SYNC },
	{ "CHECK", cmd_check, CMD_SELECTED | CMD_SYNC },
	{ "CLOSE", cmd_close, CMD_SELECTED },
	{ "COMPRESS", cmd_compress, 0 },
	{ "COPY", cmd_copy, CMD_SELECTED | CMD_SYNC },
	{ "CREATE", cmd_create, CMD_SYNC },
	{ "DELETE", cmd_delete, CMD_SYNC },
	{ "ENABLE", cmd_enable, 0 },
	{ "EXAMINE", cmd_examine, 0 },
	{ "EXPUNGE", cmd_expunge, CMD_SELECTED | CMD_SYNC },
	{ "FETCH", cmd_fetch, CMD_SELECTED },
	{ "GETQUOTA", cmd_getquota, CMD_SYNC },
	{ "GETQUOTAROOT", cmd_getquotaroot, CMD_SYNC },
	{ "ID", cmd_id, 0 },
	{ "IDLE", cmd_idle, 0 },
	{ "LIST", cmd_list, CMD_SYNC },
	{ "LOGOUT", cmd_logout, 0 },
	{ "LSUB", cmd_lsub, CMD_SYNC },
	{ "MOVE", cmd_move, CMD_SELECTED | CMD_SYNC },
	{ "NAMESPACE", cmd_namespace, CMD_SYNC },
	{ "NOOP", cmd_noop, CMD_SYNC },
	{ "RENAME", cmd_rename, CMD_SYNC },
	{ "SEARCH", cmd_search, CMD_SELECTED },
	{ "SELECT", cmd_select, 0 },
	{ "SETQUOTA", cmd_setquota, CMD_SYNC },
	{ "STATUS", cmd_status, CMD_SYNC },
	{ "STORE", cmd_store, CMD_SELECTED },
	{ "SUBSCRIBE", cmd_subscribe, CMD_SYNC },
	{ "UID", cmd_uid, CMD_SELECTED },
	{ "UNSELECT", cmd_unselect, CMD_SELECTED },
	{ "UNSUBSCRIBE", cmd_unsubscribe, CMD_SYNC },
};

static void handle_command(struct imap_client *c)
{
	const char *tag = imap_cmd_parser_tag(c->parser);
	const char *name = imap_cmd_parser_name(c->parser);
	size_t count;
	const struct imap_cmd_arg *args = imap_cmd_parser_args(c->parser, &count);

	for (size_t i = 0; i < sizeof(imap_commands) / sizeof(imap_commands[0]); i++) {
		const struct imap_command *cmd = &imap_commands[i];
		if (strcasecmp(cmd->name, name) != 0)
			continue;
		if ((cmd->flags & CMD_SELECTED) != 0 && c->state != STATE_SELECTED) {
			imap_bad(c, tag, "No mailbox selected.");
			return;
		}
		c->sync_ok = (cmd->flags & CMD_SYNC) != 0;
		if (cmd->func(c, tag, args, count))
			c->bad_commands = 0;
		c->sync_ok = false;
		return;
	}
	if (strcasecmp(name, "LOGIN") == 0 || strcasecmp(name, "AUTHENTICATE") == 0 ||
	    strcasecmp(name, "STARTTLS") == 0) {
		imap_bad(c, tag, "Already logged in.");
		return;
	}
	imap_bad(c, tag, "Unknown command.");
}

/* input while IDLE: one line, which must be DONE */
static size_t idle_input(struct imap_client *c, const uint8_t *data, size_t len)
{
	const uint8_t *nl = memchr(data, '\n', len);
	size_t chunk = nl == NULL ? len : (size_t)(nl - data);
	for (size_t i = 0; i < chunk; i++) {
		if (c->idle_len < sizeof(c->idle_line))
			c->idle_line[c->idle_len++] = (char)data[i];
		else
			c->idle_overflow = true;
	}
	if (nl == NULL)
		return len;
	size_t n = c->idle_len;
	if (n > 0 && c->idle_line[n - 1] == '\r')
		n--;
	c->idling = false;
	if (!c->idle_overflow && n == 4 && strncasecmp(c->idle_line, "DONE", 4) == 0) {
		imap_tagged(c, c->idle_tag, "OK", "Idle completed.");
		c->bad_commands = 0;
	} else {
		imap_bad(c, c->idle_tag, "Expected DONE.");
	}
	return chunk + 1;
}

bool imap_client_input(struct imap_client *c, const uint8_t *data, size_t len)
{
	size_t used;
	return imap_client_input_part(c, data, len, &used);
}

bool imap_client_input_part(struct imap_client *c, const uint8_t *data, size_t len, size_t *used_r)
{
	size_t pos = 0;
	c->input_switch = false;
	while (pos < len && !c->done && !c->input_switch) {
		if (c->idling) {
			pos += idle_input(c, data + pos, len - pos);
			continue;
		}
		size_t used;
		enum parse_result r = imap_cmd_parser_feed(c->parser, data + pos, len - pos, &used);
		pos += used;
		if (r == PARSE_MORE) {
			if (imap_cmd_parser_take_continuation(c->parser))
				imap_send_str(c, "+ OK\r\n");
			continue;
		}
		if (r == PARSE_ERROR) {
			const char *tag = imap_cmd_parser_tag(c->parser);
			char text[128];
			snprintf(text, sizeof(text), "Error in IMAP command received by server: %s",
				 imap_cmd_parser_error(c->parser));
			imap_bad(c, tag != NULL && *tag != '\0' ? tag : "*", text);
			if (imap_cmd_parser_fatal(c->parser) && !c->done) {
				imap_send_str(c, "* BYE Too long literal.\r\n");
				c->done = true;
			}
			continue;
		}
		handle_command(c);
	}
	*used_r = pos;
	return !c->done;
}

void imap_client_set_compress(struct imap_client *c, imap_compress_start_fn *start, void *ctx)
{
	c->compress_start = start;
	c->compress_ctx = ctx;
}

struct imap_client *imap_client_create(const char *mail_path, imap_send_fn *send, void *ctx)
{
	struct imap_client *c = rg_calloc(1, sizeof(*c));
	c->send = send;
	c->ctx = ctx;
	c->mail_path = rg_strdup(mail_path);
	c->parser = imap_cmd_parser_create();
	c->state = STATE_AUTH;
	int ret = folder_ensure_special(mail_path);
	if (ret < 0)
		log_warning("creating the special-use folders in %s failed: %s", mail_path, strerror(-ret));
	return c;
}

void imap_client_destroy(struct imap_client *c)
{
	if (c == NULL)
		return;
	imap_mailbox_close(c);
	imap_cmd_parser_destroy(c->parser);
	rg_free(c->mail_path);
	mime_buf_free(&c->line);
	rg_free(c);
}

void imap_client_set_max_line(struct imap_client *c, size_t max_line)
{
	imap_cmd_parser_set_max_line(c->parser, max_line);
}

void imap_client_send_login_reply(struct imap_client *c, const char *tag)
{
	imap_send_fmt(c, "%s OK [CAPABILITY %s] Logged in\r\n", tag != NULL && *tag != '\0' ? tag : "*",
		      capability(c));
}

bool imap_client_logged_out(const struct imap_client *c)
{
	return c->state == STATE_LOGOUT;
}

void imap_client_bye(struct imap_client *c, const char *reason)
{
	imap_send_fmt(c, "* BYE %s\r\n", reason);
	c->done = true;
}

bool imap_client_idling(const struct imap_client *c)
{
	return c->idling;
}

bool imap_client_idle_check(struct imap_client *c)
{
	if (c->idling && !c->done)
		imap_sync_view(c);
	return !c->done;
}
