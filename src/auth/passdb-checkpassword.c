/* passdb-checkpassword.c — passdb `checkpassword`, Dovecot's and qmail's
 * interface: `args` names the program; it reads "user\0password\0\0" from
 * fd 3 and, on success, runs its first argument, our reply helper
 * (`ringgate-auth -R`), which writes the user's fields to fd 4. Exit 0:
 * success, 1: wrong user or password, anything else (2 misuse, 111
 * temporary): internal failure. A lookup (userdb `checkpassword`, or the
 * passdb after a `continue` rule) sets AUTHORIZED=1 and writes no
 * password; a program that supports lookups sets AUTHORIZED=2 before it
 * runs the reply helper, which then exits 2 (found); 3 is an unknown user. The environment carries SERVICE,
 * TCPLOCALIP, TCPREMOTEIP, TCPLOCALPORT, TCPREMOTEPORT, MASTER_USER and,
 * for a lookup without password check, AUTHORIZED=1. Fork and exec block:
 * the driver runs in auth-workers, whose request bound stops a hung
 * program (it dies with its worker). */
#include "auth/passdb.h"
#include "auth/userdb.h"

#include "lib/alloc.h"
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define REPLY_MAX 8192

struct cp_ctx {
	char *program;
	char reply[PATH_MAX]; /* this binary, run as `-R` */
};

static int cp_init(struct passdb_module *m, char **error_r)
{
	const char *args = m->args;
	while (*args == ' ')
		args++;
	if (args[0] != '/') {
		*error_r = rg_strdup("checkpassword: args must be the program's absolute path");
		return -1;
	}
	struct cp_ctx *ctx = rg_calloc(1, sizeof(*ctx));
	ctx->program = rg_strndup(args, strcspn(args, " "));
	ssize_t n = readlink("/proc/self/exe", ctx->reply, sizeof(ctx->reply) - 1);
	if (n <= 0) {
		*error_r = rg_strdup_printf("checkpassword: readlink(/proc/self/exe): %s",
					    strerror(errno));
		rg_free(ctx->program);
		rg_free(ctx);
		return -1;
	}
	ctx->reply[n] = '\0';
	m->ctx = ctx;
	return 0;
}

static void cp_deinit(struct passdb_module *m)
{
	struct cp_ctx *ctx = m->ctx;
	if (ctx != NULL) {
		rg_free(ctx->program);
		rg_free(ctx);
	}
	m->ctx = NULL;
}

static void child_run(const struct cp_ctx *ctx, const struct auth_db_request *req, bool lookup,
		      int in_fd, int out_fd)
{
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	/* the pipes may be fds 3 or 4 themselves: move them out of the way
	 * first (dup2 onto a different fd also clears close-on-exec) */
	in_fd = fcntl(in_fd, F_DUPFD, 10);
	out_fd = fcntl(out_fd, F_DUPFD, 10);
	if (in_fd < 0 || out_fd < 0 || dup2(in_fd, 3) < 0 || dup2(out_fd, 4) < 0)
		_exit(111);
	for (int fd = 5; fd < 1024; fd++)
		(void)close(fd);
	clearenv();
	setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 1);
	setenv("PROTO", "TCP", 1);
	setenv(CHECKPASSWORD_REPLY_ENV, "1", 1);
	setenv("SERVICE", req->service != NULL ? req->service : "", 1);
	if (req->lip[0] != '\0')
		setenv("TCPLOCALIP", req->lip, 1);
	if (req->rip[0] != '\0')
		setenv("TCPREMOTEIP", req->rip, 1);
	char port[12];
	if (req->lport != 0) {
		snprintf(port, sizeof(port), "%u", req->lport);
		setenv("TCPLOCALPORT", port, 1);
	}
	if (req->rport != 0) {
		snprintf(port, sizeof(port), "%u", req->rport);
		setenv("TCPREMOTEPORT", port, 1);
	}
	if (req->master_user != NULL)
		setenv("MASTER_USER", req->master_user, 1);
	if (lookup)
		setenv("AUTHORIZED", "1", 1);
	char *const argv[] = { (char *)ctx->program, (char *)ctx->reply, NULL };
	execv(ctx->program, argv);
	_exit(111);
}

/* Run the program for req: pw NULL is a lookup (AUTHORIZED=1, Dovecot's
 * userdb and passdb-after-continue call). Its exit status, or -1 when it
 * could not run (logged); the reply helper's fields in reply. */
static int cp_run(const struct cp_ctx *ctx, struct auth_db_request *req, const uint8_t *pw,
		  size_t pw_len, char *reply, size_t reply_size, size_t *got_r,
		  int *signal_r)
{
	char lu[300];
	const char *user_log = log_escape(req->user, strlen(req->user), 64, lu, sizeof(lu));
	int in[2], out[2];
	*got_r = 0;
	*signal_r = 0;
	if (pipe2(in, O_CLOEXEC) < 0) {
		log_error("%s(%s,%s): pipe(): %m", req->db_name, user_log, req->rip);
		return -1;
	}
	if (pipe2(out, O_CLOEXEC) < 0) {
		log_error("%s(%s,%s): pipe(): %m", req->db_name, user_log, req->rip);
		close(in[0]);
		close(in[1]);
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		log_error("%s(%s,%s): fork(): %m", req->db_name, user_log, req->rip);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		return -1;
	}
	if (pid == 0)
		child_run(ctx, req, pw == NULL, in[0], out[1]);
	close(in[0]);
	close(out[1]);
	/* user\0password\0timestamp\0: a pipe holds far more than this */
	size_t ulen = strlen(req->user);
	size_t len = ulen + 1 + pw_len + 2;
	char *data = rg_malloc(len);
	memcpy(data, req->user, ulen + 1);
	if (pw_len > 0)
		memcpy(data + ulen + 1, pw, pw_len);
	data[ulen + 1 + pw_len] = '\0';
	data[ulen + 2 + pw_len] = '\0';
	signal(SIGPIPE, SIG_IGN);
	ssize_t wr = write(in[1], data, len);
	(void)wr; /* a program that does not read fails by its exit status */
	explicit_bzero(data, len);
	rg_free(data);
	close(in[1]);

	size_t got = 0;
	for (;;) {
		ssize_t n = read(out[0], reply + got, reply_size - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == reply_size - 1)
			break;
	}
	reply[got] = '\0';
	*got_r = got;
	close(out[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	*signal_r = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	return -1;
}

static void cp_log_failure(const struct cp_ctx *ctx, const struct auth_db_request *req,
			   int status, int sig)
{
	char lu[300];
	const char *user_log = log_escape(req->user, strlen(req->user), 64, lu, sizeof(lu));
	if (status == 2 && !req->skip_password_check)
		log_error("%s(%s,%s): %s exited with status 2 (a lookup-only checkpassword "
			  "program used for passwords?)", req->db_name, user_log, req->rip,
			  ctx->program);
	else if (status >= 0)
		log_error("%s(%s,%s): %s exited with status %d", req->db_name, user_log,
			  req->rip, ctx->program, status);
	else if (sig != 0)
		log_error("%s(%s,%s): %s died by signal %d", req->db_name, user_log,
			  req->rip, ctx->program, sig);
}

static void cp_verify(struct passdb_module *m, struct auth_db_request *req,
		      const uint8_t *pw, size_t pw_len, passdb_verify_callback *cb)
{
	struct cp_ctx *ctx = m->ctx;
	char lu[300];
	char reply[REPLY_MAX];
	size_t got;
	int sig;
	bool lookup = req->skip_password_check;
	int status = cp_run(ctx, req, lookup ? NULL : (pw != NULL ? pw : (const uint8_t *)""),
			    lookup ? 0 : pw_len, reply, sizeof(reply), &got, &sig);
	enum passdb_result result;
	/* Dovecot's codes: a check exits 0 (ok) or 1 (refused); a lookup 2
	 * (found: the reply helper saw AUTHORIZED=2) or 3 (unknown user) */
	if (status == (lookup ? 2 : 0)) {
		result = PASSDB_RESULT_OK;
		/* the reply helper's fields: TAB-separated key=value */
		struct auth_fields f;
		memset(&f, 0, sizeof(f));
		auth_fields_import(&f, reply, got);
		for (unsigned i = 0; i < f.count; i++)
			auth_request_set_field(req, f.kv[2 * i], f.kv[2 * i + 1]);
		auth_fields_clear(&f);
	} else if (!lookup && status == 1) {
		log_info("%s(%s,%s): Login failed (status=1)", req->db_name,
			 log_escape(req->user, strlen(req->user), 64, lu, sizeof(lu)), req->rip);
		result = PASSDB_RESULT_PASSWORD_MISMATCH;
	} else if (lookup && status == 3) {
		log_info("%s(%s,%s): unknown user", req->db_name,
			 log_escape(req->user, strlen(req->user), 64, lu, sizeof(lu)), req->rip);
		result = PASSDB_RESULT_USER_UNKNOWN;
	} else {
		cp_log_failure(ctx, req, status, sig);
		result = PASSDB_RESULT_INTERNAL_FAILURE;
	}
	explicit_bzero(reply, sizeof(reply));
	cb(result, req);
}

const struct passdb_driver passdb_driver_checkpassword = {
	.name = "checkpassword",
	.blocking = true,
	.init = cp_init,
	.deinit = cp_deinit,
	.verify_plain = cp_verify,
	.lookup_credentials = NULL,
};

/* ---- userdb checkpassword: the same program, always a lookup --------------- */

static int cpu_init(struct userdb_module *m, char **error_r)
{
	struct passdb_module pm = { .args = m->args };
	if (cp_init(&pm, error_r) < 0)
		return -1;
	m->ctx = pm.ctx;
	return 0;
}

static void cpu_deinit(struct userdb_module *m)
{
	struct passdb_module pm = { .ctx = m->ctx };
	cp_deinit(&pm);
	m->ctx = NULL;
}

static void cpu_lookup(struct userdb_module *m, struct auth_db_request *req, userdb_callback *cb)
{
	struct cp_ctx *ctx = m->ctx;
	char lu[300];
	char reply[REPLY_MAX];
	size_t got;
	int sig;
	int status = cp_run(ctx, req, NULL, 0, reply, sizeof(reply), &got, &sig);
	enum userdb_result result;
	if (status == 2) {
		/* as Dovecot's: only the userdb_ fields count here */
		struct auth_fields f;
		memset(&f, 0, sizeof(f));
		auth_fields_import(&f, reply, got);
		for (unsigned i = 0; i < f.count; i++) {
			if (strncmp(f.kv[2 * i], "userdb_", 7) == 0)
				auth_request_set_userdb_field(req, f.kv[2 * i] + 7,
							      f.kv[2 * i + 1]);
		}
		auth_fields_clear(&f);
		result = USERDB_RESULT_OK;
	} else if (status == 3) {
		log_info("%s(%s,%s): unknown user", req->db_name,
			 log_escape(req->user, strlen(req->user), 64, lu, sizeof(lu)), req->rip);
		result = USERDB_RESULT_USER_UNKNOWN;
	} else {
		cp_log_failure(ctx, req, status, sig);
		result = USERDB_RESULT_INTERNAL_FAILURE;
	}
	explicit_bzero(reply, sizeof(reply));
	cb(result, req);
}

const struct userdb_driver userdb_driver_checkpassword = {
	.name = "checkpassword",
	.blocking = true,
	.init = cpu_init,
	.deinit = cpu_deinit,
	.lookup = cpu_lookup,
	.iterate = NULL,
};

/* `ringgate-auth -R`: run by a checkpassword program that accepted the
 * user: its environment becomes the user's fields on fd 4 (Dovecot's
 * checkpassword-reply). */
void auth_checkpassword_reply_main(void)
{
	char out[REPLY_MAX];
	size_t len = 0;
	const char *user = getenv("USER");
	const char *home = getenv("HOME");
	const char *extra = getenv("EXTRA");
	if (user != NULL && user[0] != '\0')
		len += (size_t)snprintf(out + len, sizeof(out) - len, "user=%s\t", user);
	if (home != NULL && home[0] != '\0' && len < sizeof(out))
		len += (size_t)snprintf(out + len, sizeof(out) - len, "userdb_home=%s\t", home);
	if (getuid() != 0 && len < sizeof(out))
		len += (size_t)snprintf(out + len, sizeof(out) - len, "userdb_uid=%u\tuserdb_gid=%u\t",
					(unsigned)getuid(), (unsigned)getgid());
	if (extra != NULL) {
		char *copy = strdup(extra);
		for (char *save = NULL, *name = copy != NULL ? strtok_r(copy, " ", &save) : NULL;
		     name != NULL && len < sizeof(out); name = strtok_r(NULL, " ", &save)) {
			const char *value = getenv(name);
			if (value == NULL)
				continue;
			/* Dovecot's names are upper case in the environment */
			char key[128];
			size_t k = 0;
			for (; name[k] != '\0' && k < sizeof(key) - 1; k++)
				key[k] = (char)(name[k] >= 'A' && name[k] <= 'Z' ?
						name[k] - 'A' + 'a' : name[k]);
			key[k] = '\0';
			len += (size_t)snprintf(out + len, sizeof(out) - len, "%s=%s\t", key, value);
		}
		free(copy);
	}
	if (len > sizeof(out) - 1)
		len = sizeof(out) - 1;
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(4, out + off, len - off);
		if (n <= 0)
			_exit(111);
		off += (size_t)n;
	}
	/* Dovecot's checkpassword-reply: a lookup (AUTHORIZED set by auth)
	 * succeeds only when the program said so with AUTHORIZED=2 */
	const char *authorized = getenv("AUTHORIZED");
	if (authorized == NULL)
		_exit(0);
	if (strcmp(authorized, "2") == 0)
		_exit(2);
	fprintf(stderr, "checkpassword: the program does not support passdb/userdb lookups\n");
	_exit(111);
}
