/* passdb-static.c — passdb `static` (Dovecot 2.3's): the same answer for
 * every user. `args` are fields with %-variables: `password=` is the
 * password every user must give (`{SCHEME}` prefix allowed, PLAIN without
 * one), the others (`nopassword`, `allow_nets=`, `proxy`, `host=%d`, ...)
 * become the user's passdb fields. Without `password=` only `nopassword`
 * lets anyone in; a lookup (after a `continue` rule) just adds the fields.
 * In memory: not blocking, not cached (as Dovecot's: no cache key). */
#include "auth/db-store.h"
#include "auth/passdb.h"

#include "lib/alloc.h"
#include "lib/log.h"

#include <string.h>

struct pstatic_ctx {
	char *password; /* template; NULL: none given */
	char *fields;   /* "key=template ..." */
};

static int pstatic_init(struct passdb_module *m, char **error_r)
{
	(void)error_r;
	struct pstatic_ctx *ctx = rg_calloc(1, sizeof(*ctx));
	ctx->fields = rg_strdup("");
	const char *p = m->args;
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		size_t n = strcspn(p, " ");
		if (n == 0)
			break;
		if (strncmp(p, "password=", 9) == 0) {
			rg_free(ctx->password);
			ctx->password = rg_strndup(p + 9, n - 9);
		} else if (strncmp(p, "blocking=", 9) != 0) {
			char *joined = rg_strdup_printf("%s%s%.*s", ctx->fields,
							ctx->fields[0] != '\0' ? " " : "",
							(int)n, p);
			rg_free(ctx->fields);
			ctx->fields = joined;
		}
		p += n;
	}
	m->ctx = ctx;
	return 0;
}

static void pstatic_deinit(struct passdb_module *m)
{
	struct pstatic_ctx *ctx = m->ctx;
	if (ctx != NULL) {
		if (ctx->password != NULL)
			explicit_bzero(ctx->password, strlen(ctx->password));
		rg_free(ctx->password);
		rg_free(ctx->fields);
		rg_free(ctx);
	}
	m->ctx = NULL;
}

/* the fields into req and the expanded password (*pw_r NULL: none given;
 * allocated) */
static enum passdb_result pstatic_fields(const struct pstatic_ctx *ctx,
					 struct auth_db_request *req, char **pw_r)
{
	char lu[300];
	char *text = NULL, *error = NULL;
	*pw_r = NULL;
	if (auth_request_expand(req, ctx->fields, NULL, NULL, &text, &error) < 0 ||
	    (ctx->password != NULL &&
	     auth_request_expand(req, ctx->password, NULL, NULL, pw_r, &error) < 0)) {
		log_error("%s(%s,%s): args: %s", req->db_name,
			  db_store_log_user(req, lu, sizeof(lu)), req->rip, error);
		rg_free(error);
		rg_free(text);
		return PASSDB_RESULT_INTERNAL_FAILURE;
	}
	auth_request_set_fields_str(req, text, false);
	rg_free(text);
	return PASSDB_RESULT_OK;
}

static void pstatic_verify(struct passdb_module *m, struct auth_db_request *req,
			   const uint8_t *pw, size_t pw_len, passdb_verify_callback *cb)
{
	char *stored = NULL;
	enum passdb_result res = pstatic_fields(m->ctx, req, &stored);
	if (res == PASSDB_RESULT_OK && !req->skip_password_check)
		res = db_store_verify(req, stored, "PLAIN", pw, pw_len);
	if (stored != NULL) {
		explicit_bzero(stored, strlen(stored));
		rg_free(stored);
	}
	cb(res, req);
}

static void pstatic_credentials(struct passdb_module *m, struct auth_db_request *req,
				const char *scheme, passdb_credentials_callback *cb)
{
	(void)scheme;
	char *stored = NULL;
	enum passdb_result res = pstatic_fields(m->ctx, req, &stored);
	if (res != PASSDB_RESULT_OK) {
		cb(res, NULL, NULL, 0, req);
	} else if (stored == NULL || stored[0] == '\0') {
		cb(auth_fields_get(&req->passdb_fields, "nopassword") != NULL ?
		   PASSDB_RESULT_OK : PASSDB_RESULT_SCHEME_NOT_AVAILABLE, "",
		   (const uint8_t *)"", 0, req);
	} else {
		char buf[64];
		const char *sch;
		const char *hash = db_store_scheme(stored, "PLAIN", buf, sizeof(buf), &sch);
		cb(res, sch, (const uint8_t *)hash, strlen(hash), req);
	}
	if (stored != NULL) {
		explicit_bzero(stored, strlen(stored));
		rg_free(stored);
	}
}

const struct passdb_driver passdb_driver_static = {
	.name = "static",
	.blocking = false,
	.init = pstatic_init,
	.deinit = pstatic_deinit,
	.verify_plain = pstatic_verify,
	.lookup_credentials = pstatic_credentials,
};
