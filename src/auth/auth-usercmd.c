/* auth-usercmd.c — `ringgate user` (auth-usercmd.h): the userdb chain and
 * the userdbs' iterate on auth's loop (auth-loop.h) in a process of its
 * own, driven until every answer is in. Blocking drivers are called inline:
 * nobody else waits on this process. */
#include "auth/auth-usercmd.h"

#include "auth/auth-chain.h"
#include "auth/auth-loop.h"
#include "auth/auth-request.h"
#include "auth/auth-server.h"

#include "lib/alloc.h"
#include "lib/log.h"
#include "lib/settings.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define EX_NOUSER 67
#define EX_TEMPFAIL 75
#define EX_FATAL 89

struct usercmd {
	struct auth_chain *chain;
	bool done;
	/* lookup */
	enum userdb_result result;
	/* listing */
	char **masks;
	int mask_count;
	unsigned userdb; /* the userdb being iterated */
	bool failed;
};

/* Run auth's loop until cmd->done (each driver bounds its own waits:
 * request_timeout, the LDAP timeouts). */
static void loop_until_done(int epfd, struct usercmd *cmd)
{
	struct epoll_event evs[16];
	while (!cmd->done) {
		int n = epoll_wait(epfd, evs, 16, auth_loop_next_timeout_ms());
		if (n < 0 && errno != EINTR)
			log_fatal("epoll_wait: %m");
		for (int i = 0; i < n; i++)
			(void)auth_loop_dispatch(evs[i].data.ptr, evs[i].events);
		auth_loop_run_timeouts();
		auth_loop_free_dead();
	}
}

/* ---- listing --------------------------------------------------------------- */

static void iterate_next(struct usercmd *cmd);

static void list_user(const char *user, bool failed, void *context)
{
	struct usercmd *cmd = context;
	if (user == NULL) {
		if (failed)
			cmd->failed = true;
		cmd->userdb++;
		iterate_next(cmd);
		return;
	}
	for (int i = 0; i < cmd->mask_count; i++) {
		if (auth_wildcard_match_icase(cmd->masks[i], user)) {
			printf("%s\n", user);
			return;
		}
	}
}

/* the next userdb that can iterate, or done (Dovecot's master LIST) */
static void iterate_next(struct usercmd *cmd)
{
	for (; cmd->userdb < auth_chain_userdb_count(cmd->chain); cmd->userdb++) {
		struct userdb_module *m = auth_chain_userdb(cmd->chain, cmd->userdb);
		if (m->driver->iterate != NULL) {
			m->driver->iterate(m, list_user, cmd);
			return;
		}
	}
	cmd->done = true;
}

/* ---- lookup ---------------------------------------------------------------- */

struct lookup {
	struct auth_db_request req; /* first: the callback gets it */
	struct usercmd *cmd;
};

static void lookup_done(enum userdb_result result, struct auth_db_request *req)
{
	struct usercmd *cmd = ((struct lookup *)(void *)req)->cmd;
	cmd->result = result;
	cmd->done = true;
}

static void print_field(const char *key, const char *value, const char *show_field,
			bool userdb_only)
{
	if (show_field != NULL) {
		if (strcmp(show_field, key) == 0)
			printf("%s\n", value);
	} else if (userdb_only) {
		printf("  %-10s: %s\n", key, value);
	} else {
		printf("%s\t%s\n", key, value);
	}
}

/* doveadm user's rows: uid, gid, home, mail always (mail_location when the
 * userdb gives none), then the other fields in the userdb's order */
static void print_user(const struct settings *set, const char *name,
		       const struct auth_db_request *req, const char *show_field, bool userdb_only)
{
	const struct auth_fields *f = &req->userdb_fields;
	if (userdb_only && show_field == NULL)
		printf("userdb: %s\n", name);
	if (strcmp(name, req->user) != 0)
		print_field("user", req->user, show_field, userdb_only);
	if (!userdb_only) {
		static const char *const first[] = { "uid", "gid", "home", "mail" };
		for (size_t i = 0; i < 4; i++) {
			const char *v = auth_fields_get(f, first[i]);
			if (v == NULL)
				v = i == 3 && set->mail_location != NULL ? set->mail_location : "";
			print_field(first[i], v, show_field, false);
		}
	}
	for (unsigned i = 0; i < f->count; i++) {
		const char *k = f->kv[2 * i];
		if (!userdb_only && (strcmp(k, "uid") == 0 || strcmp(k, "gid") == 0 ||
				     strcmp(k, "home") == 0 || strcmp(k, "mail") == 0))
			continue;
		print_field(k, f->kv[2 * i + 1], show_field, userdb_only);
	}
}

static int lookup_one(int epfd, struct usercmd *cmd, const struct auth_config *cfg,
		      const struct settings *set, const char *name, const char *show_field,
		      bool userdb_only)
{
	struct lookup l = { .cmd = cmd };
	struct auth_db_request *req = &l.req;
	auth_db_request_init(req, name);
	req->service = "doveadm";
	const struct auth_username_rules rules = {
		.format = cfg->username_format, .chars = cfg->username_chars,
		.translation = cfg->username_translation, .default_realm = cfg->default_realm,
	};
	char *user = NULL, *error = NULL;
	if (auth_username_fix(&rules, req, name, &user, &error) < 0) {
		log_error("userdb lookup failed for %s: %s", name, error);
		rg_free(error);
		auth_db_request_clear(req);
		return EX_TEMPFAIL;
	}
	rg_free(req->user);
	req->user = user;
	cmd->done = false;
	auth_chain_userdb_lookup(cmd->chain, req, lookup_done);
	loop_until_done(epfd, cmd);
	int ret = 0;
	if (cmd->result == USERDB_RESULT_OK) {
		print_user(set, name, req, show_field, userdb_only);
	} else if (cmd->result == USERDB_RESULT_USER_UNKNOWN) {
		fprintf(show_field == NULL ? stdout : stderr, "userdb lookup: user %s doesn't exist\n",
			name);
		ret = EX_NOUSER;
	} else {
		log_error("userdb lookup failed for %s", name);
		ret = EX_TEMPFAIL;
	}
	auth_db_request_clear(req);
	return ret;
}

/* ---- the command ----------------------------------------------------------- */

static int usage(void)
{
	fprintf(stderr, "usage: ringgate [-c FILE] user [-u] [-f field] <user mask> [...]\n");
	return 64; /* EX_USAGE */
}

int auth_usercmd_run(const struct auth_config *cfg, const struct settings *set, int argc,
		     char **argv)
{
	const char *show_field = NULL;
	bool userdb_only = false;
	int i = 0;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (strcmp(argv[i], "-u") == 0) {
			userdb_only = true;
		} else if (strcmp(argv[i], "-f") == 0 && i + 1 < argc) {
			show_field = argv[++i];
		} else {
			return usage();
		}
	}
	if (i == argc)
		return usage();
	argv += i;
	argc -= i;

	int epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		log_fatal("epoll_create1: %m");
	auth_loop_init(epfd);
	userdb_passwd_set_valid_uids(set->first_valid_uid, set->last_valid_uid);
	struct usercmd cmd = { .masks = argv, .mask_count = argc };
	char *error = NULL;
	cmd.chain = auth_server_chain_build(cfg, &error);
	if (cmd.chain == NULL)
		log_fatal("%s", error);

	bool wildcards = false;
	for (int k = 0; k < argc; k++)
		wildcards = wildcards || strpbrk(argv[k], "*?") != NULL;
	int ret = 0;
	if (wildcards) {
		iterate_next(&cmd);
		loop_until_done(epfd, &cmd);
		if (fflush(stdout) != 0)
			ret = 1;
		if (cmd.failed) {
			log_error("user listing failed");
			ret = EX_FATAL;
		}
	} else {
		if (show_field == NULL && !userdb_only)
			printf("field\tvalue\n");
		for (int k = 0; k < argc; k++) {
			if (k > 0)
				putchar('\n');
			int r = lookup_one(epfd, &cmd, cfg, set, argv[k], show_field, userdb_only);
			if (r != 0)
				ret = r;
		}
		if (fflush(stdout) != 0 && ret == 0)
			ret = 1;
	}
	auth_chain_free(cmd.chain);
	auth_loop_deinit();
	close(epfd);
	return ret;
}
