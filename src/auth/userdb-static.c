/* userdb-static.c — userdb `static`: the same fields for every user, with
 * %-variables (`args = uid=vmail gid=vmail home=/var/vmail/%d/%n`). uid and
 * gid given as names are resolved once, at start-up (as root, before the
 * sandbox: NSS may need what the sandbox forbids). `allow_all_users=yes` is
 * accepted: in a login the passdb has already found the user. */
#include "auth/userdb.h"

#include "lib/alloc.h"
#include "lib/log.h"

#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct static_ctx {
	char *fields; /* "key=template ..." with uid/gid numeric */
};

static int resolve_id(const char *key, const char *value, char *out, size_t size,
		      char **error_r)
{
	char *end;
	unsigned long n = strtoul(value, &end, 10);
	if (value[0] >= '0' && value[0] <= '9' && *end == '\0') {
		snprintf(out, size, "%lu", n);
		return 0;
	}
	if (strchr(value, '%') != NULL) {
		/* per user: left to the worker's check of the number */
		snprintf(out, size, "%s", value);
		return 0;
	}
	if (strcmp(key, "uid") == 0) {
		const struct passwd *pw = getpwnam(value);
		if (pw == NULL) {
			*error_r = rg_strdup_printf("static: uid: unknown user '%s'", value);
			return -1;
		}
		snprintf(out, size, "%u", (unsigned)pw->pw_uid);
	} else {
		const struct group *gr = getgrnam(value);
		if (gr == NULL) {
			*error_r = rg_strdup_printf("static: gid: unknown group '%s'", value);
			return -1;
		}
		snprintf(out, size, "%u", (unsigned)gr->gr_gid);
	}
	return 0;
}

static int static_init(struct userdb_module *m, char **error_r)
{
	struct static_ctx *ctx = rg_calloc(1, sizeof(*ctx));
	ctx->fields = rg_strdup("");
	const char *p = m->args;
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		size_t n = strcspn(p, " ");
		if (n == 0)
			break;
		char *word = rg_strndup(p, n);
		p += n;
		char *eq = strchr(word, '=');
		char *item;
		if (eq != NULL && (strncmp(word, "uid=", 4) == 0 || strncmp(word, "gid=", 4) == 0)) {
			char id[256];
			*eq = '\0';
			if (resolve_id(word, eq + 1, id, sizeof(id), error_r) < 0) {
				rg_free(word);
				rg_free(ctx->fields);
				rg_free(ctx);
				return -1;
			}
			item = rg_strdup_printf("%s=%s", word, id);
		} else if (strcmp(word, "allow_all_users=yes") == 0 ||
			   strcmp(word, "allow_all_users=no") == 0 ||
			   strncmp(word, "blocking=", 9) == 0) {
			rg_free(word);
			continue;
		} else {
			item = rg_strdup(word);
		}
		char *joined = rg_strdup_printf("%s%s%s", ctx->fields,
						ctx->fields[0] != '\0' ? " " : "", item);
		rg_free(ctx->fields);
		ctx->fields = joined;
		rg_free(item);
		rg_free(word);
	}
	m->ctx = ctx;
	return 0;
}

static void static_deinit(struct userdb_module *m)
{
	struct static_ctx *ctx = m->ctx;
	if (ctx != NULL) {
		rg_free(ctx->fields);
		rg_free(ctx);
	}
	m->ctx = NULL;
}

static void static_lookup(struct userdb_module *m, struct auth_db_request *req,
			  userdb_callback *cb)
{
	struct static_ctx *ctx = m->ctx;
	char *text = NULL, *error = NULL;
	if (auth_request_expand(req, ctx->fields, NULL, NULL, &text, &error) < 0) {
		log_error("%s(%s,%s): args: %s", req->db_name, req->user, req->rip, error);
		rg_free(error);
		cb(USERDB_RESULT_INTERNAL_FAILURE, req);
		return;
	}
	auth_request_set_fields_str(req, text, true);
	rg_free(text);
	cb(USERDB_RESULT_OK, req);
}

const struct userdb_driver userdb_driver_static = {
	.name = "static",
	.blocking = false,
	.init = static_init,
	.deinit = static_deinit,
	.lookup = static_lookup,
	.iterate = NULL,
};
