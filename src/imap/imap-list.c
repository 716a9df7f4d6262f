#include "imap/imap-common.h"

#include "lib/alloc.h"
#include "lib/log.h"
#include "mail/folder.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

/* ---- folders ---- */

/* IMAP LIST wildcard match: '*' anything, '%' anything but the separator.
 * Iterative with one backtrack point per '*'/'%' run would miss cases;
 * a table over (pattern, name) positions keeps it linear in their product. */
static bool list_match(const char *pattern, const char *name, bool fold, char sep)
{
	size_t pl = strlen(pattern), nl = strlen(name);
	if (pl > 512 || nl > 512)
		return false;
	/* row[j]: pattern[0..i) matches name[0..j) */
	bool *prev = rg_calloc(nl + 1, sizeof(bool)), *cur = rg_calloc(nl + 1, sizeof(bool));
	prev[0] = true;
	for (size_t i = 1; i <= pl; i++) {
		char p = pattern[i - 1];
		cur[0] = prev[0] && (p == '*' || p == '%');
		for (size_t j = 1; j <= nl; j++) {
			char n = name[j - 1];
			if (p == '*')
				cur[j] = prev[j] || cur[j - 1];
			else if (p == '%')
				cur[j] = prev[j] || (cur[j - 1] && n != sep);
			else
				cur[j] = prev[j - 1] && (p == n || (fold && toupper((unsigned char)p) ==
								       toupper((unsigned char)n)));
		}
		bool *t = prev;
		prev = cur;
		cur = t;
	}
	bool ok = prev[nl];
	rg_free(prev);
	rg_free(cur);
	return ok;
}

static bool name_matches(const char *pattern, const char *name, char sep)
{
	/* INBOX is case-insensitive, and so is its place in "INBOX.x" */
	if (strncasecmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == sep) &&
	    strncasecmp(pattern, "INBOX", 5) == 0) {
		char *p2 = rg_strdup(pattern), *n2 = rg_strdup(name);
		memcpy(p2, "INBOX", 5);
		memcpy(n2, "INBOX", 5);
		bool ok = list_match(p2, n2, false, sep);
		rg_free(p2);
		rg_free(n2);
		return ok;
	}
	if (folder_is_inbox(name))
		return list_match(pattern, name, true, sep);
	return list_match(pattern, name, false, sep);
}

static bool has_children(char **names, size_t count, const char *name, char sep)
{
	size_t len = strlen(name);
	for (size_t i = 0; i < count; i++) {
		if (strncmp(names[i], name, len) == 0 && names[i][len] == sep)
			return true;
	}
	return false;
}

static bool name_listed(char **names, size_t count, const char *name)
{
	for (size_t i = 0; i < count; i++) {
		if (strcmp(names[i], name) == 0)
			return true;
	}
	return false;
}

static bool status_items_valid(const struct imap_cmd_arg *list);
static int send_status(struct imap_client *c, const char *name, const struct imap_cmd_arg *list);

enum {
	LIST_SEL_SUBSCRIBED = 1, LIST_SEL_SPECIAL = 2,
	LIST_RET_SUBSCRIBED = 4, LIST_RET_STATUS = 8,
	LIST_SEL_RECURSIVE = 16,
};

/* LIST-EXTENDED (RFC 5258): "(selection)" ref patterns "RETURN (options)" */
static bool list_options(const struct imap_cmd_arg *list, bool selection, unsigned int *opts,
			 const struct imap_cmd_arg **status_r)
{
	for (size_t i = 0; i < list->count; i++) {
		const struct imap_cmd_arg *o = &list->list[i];
		if (o->type != IMAP_CMD_ARG_ATOM)
			return false;
		if (strcasecmp(o->str, "SUBSCRIBED") == 0)
			*opts |= selection ? LIST_SEL_SUBSCRIBED | LIST_RET_SUBSCRIBED : LIST_RET_SUBSCRIBED;
		else if (strcasecmp(o->str, "SPECIAL-USE") == 0)
			*opts |= selection ? LIST_SEL_SPECIAL : 0;
		else if (selection && strcasecmp(o->str, "REMOTE") == 0)
			continue;
		else if (selection && strcasecmp(o->str, "RECURSIVEMATCH") == 0)
			*opts |= LIST_SEL_RECURSIVE;
		else if (!selection && strcasecmp(o->str, "CHILDREN") == 0)
			continue; /* always returned */
		else if (!selection && strcasecmp(o->str, "STATUS") == 0 && i + 1 < list->count &&
			 status_items_valid(&list->list[i + 1])) {
			*opts |= LIST_RET_STATUS;
			*status_r = &list->list[++i];
		} else {
			return false;
		}
	}
	/* RFC 5258 3.1: RECURSIVEMATCH needs another selection option
	 * (REMOTE alone does not count) */
	if ((*opts & LIST_SEL_RECURSIVE) != 0 && (*opts & (LIST_SEL_SUBSCRIBED | LIST_SEL_SPECIAL)) == 0)
		return false;
	return true;
}

static bool name_matches_any(char **pats, size_t npats, const char *name, char sep)
{
	for (size_t p = 0; p < npats; p++) {
		if (name_matches(pats[p], name, sep))
			return true;
	}
	return false;
}

/* RECURSIVEMATCH (RFC 5258 3.5): name has a descendant in subs that the
 * patterns do not list themselves, so name is shown for it with
 * CHILDINFO ("SUBSCRIBED") */
static bool subscribed_child_info(char **subs, size_t count, const char *name, char **pats,
				  size_t npats, char sep)
{
	size_t len = strlen(name);
	for (size_t i = 0; i < count; i++) {
		if (strncmp(subs[i], name, len) == 0 && subs[i][len] == sep &&
		    !name_matches_any(pats, npats, subs[i], sep))
			return true;
	}
	return false;
}

static bool cmd_list_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
			    size_t count, bool lsub)
{
	const char *cmd = lsub ? "LSUB" : "LIST";
	unsigned int opts = lsub ? LIST_SEL_SUBSCRIBED : 0;
	char sep = folder_sep(c->mail_path);
	const struct imap_cmd_arg *status = NULL;
	size_t i = 0;
	if (!lsub && count > 0 && args[0].type == IMAP_CMD_ARG_LIST) {
		if (!list_options(&args[0], true, &opts, &status))
			return imap_bad_args(c, tag, cmd);
		i++;
	}
	const char *ref = i < count ? imap_cmd_arg_astring(&args[i]) : NULL;
	const struct imap_cmd_arg *pats = i + 1 < count ? &args[i + 1] : NULL;
	size_t npats = pats == NULL ? 0 : pats->type == IMAP_CMD_ARG_LIST && !lsub ? pats->count : 1;
	if (pats != NULL && pats->type == IMAP_CMD_ARG_LIST && !lsub)
		pats = pats->list;
	i += 2;
	if (!lsub && i + 2 == count && args[i].type == IMAP_CMD_ARG_ATOM &&
	    strcasecmp(args[i].str, "RETURN") == 0 && args[i + 1].type == IMAP_CMD_ARG_LIST) {
		if (!list_options(&args[i + 1], false, &opts, &status))
			return imap_bad_args(c, tag, cmd);
		i += 2;
	}
	if (ref == NULL || npats == 0 || i != count)
		return imap_bad_args(c, tag, cmd);
	for (size_t p = 0; p < npats; p++) {
		if (imap_cmd_arg_astring(&pats[p]) == NULL)
			return imap_bad_args(c, tag, cmd);
	}
	if (npats == 1 && *imap_cmd_arg_astring(&pats[0]) == '\0' && !lsub) {
		imap_send_fmt(c, "* LIST (\\Noselect) \"%c\" \"\"\r\n", sep);
		imap_tagged(c, tag, "OK", "List completed.");
		return true;
	}
	char **fulls = rg_calloc(npats, sizeof(*fulls));
	bool percent = false;
	for (size_t p = 0; p < npats; p++) {
		fulls[p] = rg_strdup_printf("%s%s", ref, imap_cmd_arg_astring(&pats[p]));
		percent |= strchr(fulls[p], '%') != NULL;
	}
	char **names = NULL, **subs = NULL;
	size_t count_n = 0, count_s = 0;
	int ret = folder_list(c->mail_path, &names, &count_n);
	if (ret == 0 && (opts & (LIST_SEL_SUBSCRIBED | LIST_RET_SUBSCRIBED)) != 0)
		ret = folder_subscriptions(c->mail_path, &subs, &count_s);
	if (ret < 0) {
		log_error("listing %s failed: %s", c->mail_path, strerror(-ret));
		folder_list_free(names, count_n);
		folder_list_free(fulls, npats);
		imap_tagged(c, tag, "NO", IMAP_ERR_INTERNAL);
		return true;
	}
	/* what to show: the folders (or subscriptions), plus the parents
	 * their names imply, which exist only as hierarchy (\Noselect) */
	bool by_subs = (opts & LIST_SEL_SUBSCRIBED) != 0;
	char **cands = by_subs ? subs : names;
	size_t ncands = by_subs ? count_s : count_n;
	char **all = rg_malloc((ncands + 1) * sizeof(*all));
	size_t nall = 0;
	for (size_t k = 0; k < ncands; k++)
		all[nall++] = rg_strdup(cands[k]);
	/* a subscription list names an unsubscribed parent only where "%"
	 * stopped at it */
	bool recursive = by_subs && (opts & LIST_SEL_RECURSIVE) != 0;
	bool parents = !by_subs || percent || recursive;
	for (size_t k = 0; k < ncands && parents; k++) {
		char *copy = rg_strdup(cands[k]);
		for (char *dot = strrchr(copy, sep); dot != NULL; dot = strrchr(copy, sep)) {
			*dot = '\0';
			if (*copy == '\0' || name_listed(all, nall, copy))
				continue;
			all = rg_realloc(all, (nall + 1) * sizeof(*all));
			all[nall++] = rg_strdup(copy);
		}
		rg_free(copy);
	}
	for (size_t k = 0; k < nall; k++) {
		const char *name = all[k];
		bool is_inbox = folder_is_inbox(name);
		if (!name_matches_any(fulls, npats, name, sep))
			continue;
		bool implied = k >= ncands;
		bool childinfo = recursive && implied &&
				 subscribed_child_info(subs, count_s, name, fulls, npats, sep);
		if (implied && by_subs && !percent && !childinfo)
			continue; /* listed only for RECURSIVEMATCH */
		bool exists = is_inbox || name_listed(names, count_n, name);
		const char *special = exists ? folder_special_use(name) : NULL;
		if ((opts & LIST_SEL_SPECIAL) != 0 && special == NULL)
			continue;
		struct mime_buf attrs = { 0 };
		mime_buf_add(&attrs, "", 0);
		if (lsub) {
			if (!exists || implied)
				mime_buf_str(&attrs, "\\Noselect");
		} else {
			if (!exists)
				mime_buf_str(&attrs, by_subs && !implied ? "\\NonExistent" : "\\Noselect");
			mime_buf_printf(&attrs, "%s%s", attrs.len > 0 ? " " : "",
					has_children(names, count_n, name, sep) ? "\\HasChildren" : "\\HasNoChildren");
			if ((opts & LIST_RET_SUBSCRIBED) != 0 && name_listed(subs, count_s, name))
				mime_buf_str(&attrs, " \\Subscribed");
			if (special != NULL)
				mime_buf_printf(&attrs, " %s", special);
		}
		imap_send_fmt(c, "* %s (%s) \"%c\" ", cmd, attrs.data, sep);
		mime_buf_free(&attrs);
		imap_send_mailbox_name(c, is_inbox ? "INBOX" : name);
		imap_send_str(c, childinfo ? " (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n" : "\r\n");
		if ((opts & LIST_RET_STATUS) != 0 && exists)
			(void)send_status(c, name, status);
	}
	for (size_t k = 0; k < nall; k++)
		rg_free(all[k]);
	rg_free(all);
	folder_list_free(names, count_n);
	folder_list_free(subs, count_s);
	folder_list_free(fulls, npats);
	imap_tagged(c, tag, "OK", lsub ? "Lsub completed." : "List completed.");
	return true;
}

bool cmd_list(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_list_common(c, tag, args, count, false);
}

bool cmd_lsub(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_list_common(c, tag, args, count, true);
}

static bool folder_error(struct imap_client *c, const char *tag, int ret, const char *name)
{
	switch (ret) {
	case -EEXIST:
		imap_tagged(c, tag, "NO", "[ALREADYEXISTS] Mailbox already exists");
		break;
	case -ENOENT:
		imap_no_mailbox(c, tag, name, false);
		break;
	case -EINVAL:
		imap_tagged(c, tag, "NO", "Invalid mailbox name");
		break;
	case -EPERM:
		imap_tagged(c, tag, "NO", "[CANNOT] Not allowed for INBOX");
		break;
	default:
		log_error("folder operation on %s failed: %s", c->mail_path, strerror(-ret));
		imap_tagged(c, tag, "NO", IMAP_ERR_INTERNAL);
		break;
	}
	return true;
}

/* a name the client sent, without a trailing separator (CREATE "a.") */
static char *client_name(const char *name, char sep)
{
	char *n = rg_strdup(name);
	size_t len = strlen(n);
	while (len > 0 && n[len - 1] == sep)
		n[--len] = '\0';
	return n;
}

bool cmd_create(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	const char *arg = count == 1 ? imap_cmd_arg_astring(&args[0]) : NULL;
	if (arg == NULL)
		return imap_bad_args(c, tag, "CREATE");
	char *name = client_name(arg, folder_sep(c->mail_path));
	/* CREATE "a.": a name meant to hold others (an mbox makes a directory) */
	bool parent = strlen(name) < strlen(arg);
	int ret = parent ? folder_create_parent(c->mail_path, name) : folder_create(c->mail_path, name);
	if (ret < 0)
		folder_error(c, tag, ret, name);
	else
		imap_tagged(c, tag, "OK", "Create completed.");
	rg_free(name);
	return true;
}

bool cmd_delete(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	const char *name = count == 1 ? imap_cmd_arg_astring(&args[0]) : NULL;
	if (name == NULL)
		return imap_bad_args(c, tag, "DELETE");
	if (folder_is_inbox(name))
		return folder_error(c, tag, -EPERM, name);
	if (!folder_exists(c->mail_path, name) && !folder_is_level(c->mail_path, name))
		return folder_error(c, tag, -ENOENT, name);
	/* deleting the selected folder first closes it, as Dovecot does */
	if (c->box_name != NULL && strcmp(c->box_name, name) == 0)
		imap_mailbox_close(c);
	int ret = folder_delete(c->mail_path, name);
	if (ret < 0)
		return folder_error(c, tag, ret, name);
	imap_tagged(c, tag, "OK", "Delete completed.");
	return true;
}

bool cmd_rename(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	const char *from = count == 2 ? imap_cmd_arg_astring(&args[0]) : NULL;
	const char *to_arg = count == 2 ? imap_cmd_arg_astring(&args[1]) : NULL;
	if (from == NULL || to_arg == NULL)
		return imap_bad_args(c, tag, "RENAME");
	char *to = client_name(to_arg, folder_sep(c->mail_path));
	int ret = folder_rename(c->mail_path, from, to);
	if (ret < 0) {
		folder_error(c, tag, ret, ret == -EEXIST ? to : from);
	} else {
		if (c->box_name != NULL && strcmp(c->box_name, from) == 0) {
			rg_free(c->box_name);
			rg_free(c->box_path);
			c->box_name = rg_strdup(to);
			c->box_path = folder_path(c->mail_path, to);
			rg_free(c->box->path);
			c->box->path = rg_strdup(c->box_path);
		}
		imap_tagged(c, tag, "OK", "Rename completed.");
	}
	rg_free(to);
	return true;
}

static bool cmd_subscribe_common(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
				 size_t count, bool on)
{
	const char *arg = count == 1 ? imap_cmd_arg_astring(&args[0]) : NULL;
	if (arg == NULL)
		return imap_bad_args(c, tag, on ? "SUBSCRIBE" : "UNSUBSCRIBE");
	char *name = client_name(arg, folder_sep(c->mail_path));
	int ret = folder_subscribe(c->mail_path, folder_is_inbox(name) ? "INBOX" : name, on);
	if (ret < 0)
		folder_error(c, tag, ret, name);
	else
		imap_tagged(c, tag, "OK", on ? "Subscribe completed." : "Unsubscribe completed.");
	rg_free(name);
	return true;
}

bool cmd_subscribe(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_subscribe_common(c, tag, args, count, true);
}

bool cmd_unsubscribe(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	return cmd_subscribe_common(c, tag, args, count, false);
}

bool cmd_namespace(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	(void)args;
	(void)count;
	imap_send_fmt(c, "* NAMESPACE ((\"\" \"%c\")) NIL NIL\r\n", folder_sep(c->mail_path));
	imap_tagged(c, tag, "OK", "Namespace completed.");
	return true;
}

/* QUOTA (RFC 2087): every folder is under the one root "", which has no
 * limits (ringgate enforces none), so clients asking get a true answer */
bool cmd_getquotaroot(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args,
		      size_t count)
{
	const char *name = count == 1 ? imap_cmd_arg_astring(&args[0]) : NULL;
	if (name == NULL)
		return imap_bad_args(c, tag, "GETQUOTAROOT");
	if (!folder_exists(c->mail_path, name)) {
		imap_no_mailbox(c, tag, name, false);
		return true;
	}
	imap_send_str(c, "* QUOTAROOT ");
	imap_send_mailbox_name(c, folder_is_inbox(name) ? "INBOX" : name);
	imap_send_str(c, " \"\"\r\n* QUOTA \"\" ()\r\n");
	imap_tagged(c, tag, "OK", "Getquotaroot completed.");
	return true;
}

bool cmd_getquota(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	const char *root = count == 1 ? imap_cmd_arg_astring(&args[0]) : NULL;
	if (root == NULL)
		return imap_bad_args(c, tag, "GETQUOTA");
	if (*root != '\0') {
		imap_tagged(c, tag, "NO", "Quota root doesn't exist.");
		return true;
	}
	imap_send_str(c, "* QUOTA \"\" ()\r\n");
	imap_tagged(c, tag, "OK", "Getquota completed.");
	return true;
}

bool cmd_setquota(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	if (count != 2 || imap_cmd_arg_astring(&args[0]) == NULL || args[1].type != IMAP_CMD_ARG_LIST)
		return imap_bad_args(c, tag, "SETQUOTA");
	imap_tagged(c, tag, "NO", "[NOPERM] Quota can't be changed.");
	return true;
}

static const char *const status_items[] = { "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN",
					    "HIGHESTMODSEQ" };

static bool status_items_valid(const struct imap_cmd_arg *list)
{
	if (list->type != IMAP_CMD_ARG_LIST || list->count == 0)
		return false;
	for (size_t i = 0; i < list->count; i++) {
		bool known = false;
		for (size_t k = 0; k < sizeof(status_items) / sizeof(status_items[0]); k++)
			known |= list->list[i].type == IMAP_CMD_ARG_ATOM &&
				 strcasecmp(list->list[i].str, status_items[k]) == 0;
		if (!known)
			return false;
	}
	return true;
}

/* "* STATUS name (...)" for a folder; -ENOENT when there is none */
static int send_status(struct imap_client *c, const char *name, const struct imap_cmd_arg *list)
{
	char *path = folder_path(c->mail_path, name);
	if (path == NULL || !folder_exists(c->mail_path, name)) {
		rg_free(path);
		return -ENOENT;
	}
	struct maildir *box;
	const char *error;
	int ret = maildir_open(path, false, &box, &error);
	if (ret < 0) {
		log_error("opening %s failed: %s: %s", path, error, strerror(-ret));
		rg_free(path);
		return ret;
	}
	rg_free(path);
	bool selected = c->box_name != NULL && strcmp(c->box_name, folder_is_inbox(name) ? "INBOX" : name) == 0;
	size_t recent = 0, unseen = 0;
	for (size_t i = 0; i < box->count; i++) {
		recent += box->msgs[i].recent;
		unseen += !maildir_msg_has_flag(&box->msgs[i], MAILDIR_FLAG_SEEN);
	}
	if (selected)
		recent = imap_view_recent(c);
	struct mime_buf out = { 0 };
	for (size_t i = 0; i < list->count; i++) {
		const char *it = list->list[i].str;
		unsigned long long v = 0;
		if (strcasecmp(it, "MESSAGES") == 0)
			v = box->count;
		else if (strcasecmp(it, "RECENT") == 0)
			v = recent;
		else if (strcasecmp(it, "UIDNEXT") == 0)
			v = box->uidnext;
		else if (strcasecmp(it, "UIDVALIDITY") == 0)
			v = box->uidvalidity;
		else if (strcasecmp(it, "UNSEEN") == 0)
			v = unseen;
		else if (strcasecmp(it, "HIGHESTMODSEQ") == 0)
			v = box->highest_modseq;
		mime_buf_printf(&out, "%s%s %llu", out.len == 0 ? "" : " ", it, v);
	}
	maildir_close(box);
	for (size_t i = 0; i < out.len; i++)
		out.data[i] = (char)toupper((unsigned char)out.data[i]);
	imap_send_str(c, "* STATUS ");
	imap_send_mailbox_name(c, folder_is_inbox(name) ? "INBOX" : name);
	imap_send_fmt(c, " (%s)\r\n", out.data);
	mime_buf_free(&out);
	return 0;
}

bool cmd_status(struct imap_client *c, const char *tag, const struct imap_cmd_arg *args, size_t count)
{
	const char *name = count == 2 ? imap_cmd_arg_astring(&args[0]) : NULL;
	if (name == NULL || args[1].type != IMAP_CMD_ARG_LIST || args[1].count == 0)
		return imap_bad(c, tag, "Error in IMAP command STATUS: Invalid arguments.");
	if (!status_items_valid(&args[1]))
		return imap_bad(c, tag, "Error in IMAP command STATUS: Invalid status item.");
	for (size_t i = 0; i < args[1].count; i++)
		c->condstore |= strcasecmp(args[1].list[i].str, "HIGHESTMODSEQ") == 0;
	int ret = send_status(c, name, &args[1]);
	if (ret == -ENOENT)
		imap_no_mailbox(c, tag, name, false);
	else if (ret < 0)
		imap_tagged(c, tag, "NO", IMAP_ERR_INTERNAL);
	else
		imap_tagged(c, tag, "OK", "Status completed.");
	return true;
}
