#include "imap/imap-common.h"

#include "imap/imap-search.h"
#include "lib/alloc.h"
#include "lib/log.h"
#include "mail/folder.h"
#include "mail/mime-decode.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- COPY / MOVE ---- */

bool cmd_copy_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
		     size_t count, bool uid, bool move)
{
	const char *cmd = move ? (uid ? "UID MOVE" : "MOVE") : (uid ? "UID COPY" : "COPY");
	char text[256];
	const char *name = count == 2 ? imap_cmd_arg_astring(&args[1]) : NULL;
	if (name == NULL || args[0].type != IMAP_CMD_ARG_ATOM)
		return imap_bad_args(c, tag, cmd);
	size_t *pos, npos;
	const char *error;
	if (!imap_seqset_resolve(c, args[0].str, uid, &pos, &npos, &error)) {
		snprintf(text, sizeof(text), "Error in IMAP command %s: %s", cmd, error);
		return imap_bad(c, tag, text);
	}
	char *dest = folder_path(c->mail_path, name);
	if (dest == NULL || !folder_exists(c->mail_path, name)) {
		rg_free(dest);
		rg_free(pos);
		imap_no_mailbox(c, tag, name, true);
		return true;
	}
	if (move && c->readonly) {
		rg_free(dest);
		rg_free(pos);
		imap_tagged(c, tag, "NO", "Mailbox is read-only.");
		return true;
	}
	if (npos == 0) {
		rg_free(dest);
		rg_free(pos);
		imap_tagged(c, tag, "OK", move ? "No messages found." : "No messages found.");
		return true;
	}
	size_t *idxs = rg_malloc(npos * sizeof(*idxs));
	uint32_t *src_uids = rg_malloc(npos * sizeof(*src_uids));
	uint32_t *dst_uids = rg_calloc(npos, sizeof(*dst_uids));
	for (size_t i = 0; i < npos; i++)
		idxs[i] = c->map[pos[i]];
	uint32_t validity = 0;
	int ret = maildir_copy(c->box, idxs, npos, dest, dst_uids, &validity, &error);
	if (ret < 0) {
		log_error("%s to %s failed: %s: %s", cmd, dest, error, strerror(-ret));
		imap_tagged(c, tag, "NO", ret == -ENOTSUP ? "[CANNOT] Not supported with mbox folders yet." :
			    IMAP_ERR_INTERNAL);
		goto out;
	}
	size_t copied = 0;
	for (size_t i = 0; i < npos; i++) {
		if (dst_uids[i] == 0)
			continue;
		src_uids[copied] = c->box->msgs[idxs[i]].uid;
		dst_uids[copied] = dst_uids[i];
		idxs[copied++] = idxs[i];
	}
	struct mime_buf code = { 0 };
	if (copied > 0 && validity != 0) {
		mime_buf_printf(&code, "[COPYUID %u ", validity);
		imap_uidset_out(&code, src_uids, copied);
		mime_buf_str(&code, " ");
		imap_uidset_out(&code, dst_uids, copied);
		mime_buf_str(&code, "] ");
	}
	if (!move) {
		mime_buf_str(&code, copied < npos ? "Some messages were expunged meanwhile." : "Copy completed.");
		imap_tagged(c, tag, copied < npos ? "NO" : "OK", code.data);
	} else {
		if (code.len > 0)
			imap_send_fmt(c, "* OK %sMoved UIDs.\r\n", code.data);
		for (size_t i = 0; i < copied; i++) {
			int r = maildir_msg_delete(c->box, idxs[i]);
			if (r < 0)
				log_error("expunging moved uid %u failed: %s", c->box->msgs[idxs[i]].uid,
					  strerror(-r));
		}
		/* an mbox removes them now, in one rewrite; kept when it cannot */
		int fr = maildir_flush(c->box);
		imap_send_expunges(c, false);
		if (fr < 0)
			imap_tagged(c, tag, "NO", fr == -EAGAIN ? IMAP_ERR_INUSE : IMAP_ERR_INTERNAL);
		else
			imap_tagged(c, tag, copied < npos ? "NO" : "OK",
				    copied < npos ? "Some messages were expunged meanwhile." : "Move completed.");
	}
	mime_buf_free(&code);
out:
	rg_free(idxs);
	rg_free(src_uids);
	rg_free(dst_uids);
	rg_free(dest);
	rg_free(pos);
	return true;
}

bool cmd_copy(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_copy_common(c, tag, args, count, false, false);
}

bool cmd_move(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_copy_common(c, tag, args, count, false, true);
}

/* ---- APPEND ---- */

/* "dd-Mon-yyyy hh:mm:ss +zzzz" */
static bool parse_datetime(const char *s, time_t *t_r)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	int day, year, hh, mm, ss, zone;
	char mon[4], sign;
	int n = 0;
	while (*s == ' ')
		s++;
	if (sscanf(s, "%2d-%3s-%4d %2d:%2d:%2d %c%4d%n", &day, mon, &year, &hh, &mm, &ss, &sign,
		   &zone, &n) != 8 || s[n] != '\0' || (sign != '+' && sign != '-'))
		return false;
	const char *m = strcasestr(months, mon);
	if (m == NULL || strlen(mon) != 3 || (m - months) % 3 != 0 || day < 1 || day > 31 ||
	    year < 1970 || hh > 23 || mm > 59 || ss > 60)
		return false;
	struct tm tm = { .tm_year = year - 1900, .tm_mon = (int)((m - months) / 3), .tm_mday = day,
			 .tm_hour = hh, .tm_min = mm, .tm_sec = ss };
	time_t t = timegm(&tm);
	int off = (zone / 100) * 3600 + (zone % 100) * 60;
	*t_r = sign == '+' ? t - off : t + off;
	return true;
}

bool cmd_append(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	const char *name = count >= 2 ? imap_cmd_arg_astring(&args[0]) : NULL;
	if (name == NULL)
		return imap_bad_args(c, tag, "APPEND");
	size_t i = 1;
	char letters[IMAP_FLAG_COUNT + MAILDIR_MAX_KEYWORDS + 1] = "";
	const struct imap_cmd_arg *flag_arg = NULL;
	time_t date = 0;
	if (i < count && args[i].type == IMAP_CMD_ARG_LIST) {
		const char *ferror;
		/* checked now, keywords looked up once the folder is known */
		if (!imap_parse_flag_list(&args[i], NULL, false, letters, &ferror)) {
			char text[96];
			snprintf(text, sizeof(text), "Error in IMAP command APPEND: %s", ferror);
			return imap_bad(c, tag, text);
		}
		flag_arg = &args[i];
		i++;
	}
	if (i + 1 < count && args[i].type == IMAP_CMD_ARG_STRING) {
		if (!parse_datetime(args[i].str, &date))
			return imap_bad(c, tag, "Error in IMAP command APPEND: Invalid internal date.");
		i++;
	}
	if (i + 1 != count || args[i].type == IMAP_CMD_ARG_LIST ||
	    (args[i].type == IMAP_CMD_ARG_ATOM))
		return imap_bad_args(c, tag, "APPEND");
	if (args[i].len == 0) {
		imap_tagged(c, tag, "NO", "Can't save a zero byte message.");
		return true;
	}
	char *dest = folder_path(c->mail_path, name);
	if (dest == NULL || !folder_exists(c->mail_path, name)) {
		rg_free(dest);
		imap_no_mailbox(c, tag, name, true);
		return true;
	}
	uint32_t uid = 0, validity = 0;
	const char *error;
	if (flag_arg != NULL)
		(void)imap_parse_flag_list(flag_arg, dest, true, letters, &error);
	/* binary content sent as literal8 is kept as base64 (RFC 3516 4.4) */
	size_t len = args[i].len;
	char *converted = args[i].literal8 ? mime_binary_to_base64(args[i].str, len, &len) : NULL;
	int ret = maildir_save(dest, converted != NULL ? converted : args[i].str, len, letters, date, &uid,
			       &validity, &error);
	rg_free(converted);
	if (ret < 0) {
		log_error("APPEND to %s failed: %s: %s", dest, error, strerror(-ret));
		imap_tagged(c, tag, "NO", ret == -ENOTSUP ? "[CANNOT] Not supported with mbox folders yet." :
			    IMAP_ERR_INTERNAL);
	} else {
		char text[96];
		snprintf(text, sizeof(text), "[APPENDUID %u %u] Append completed.", validity, uid);
		imap_tagged(c, tag, "OK", text);
	}
	rg_free(dest);
	return true;
}
