#include "auth/auth-worker.h"
#include "auth/auth-loop.h"

#include "lib/alloc.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/settings.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHANNEL_FD 3
#define MAX_CHILDREN 1024

static unsigned worker_max_requests; /* 0: no limit */

void auth_worker_set_max_requests(unsigned n)
{
	if (n != 0 && (worker_max_requests == 0 || n < worker_max_requests))
		worker_max_requests = n;
}

/* ---- starting processes ---------------------------------------------------- */

/* exe with argv, channel as fd 3, started with posix_spawn (no copy of a
 * big address space: an ASan build's fork is slow); 0 with *fd_r (our end) */
static int spawn(const char *exe, char *const argv[], int *fd_r, pid_t *pid_r)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	/* only the channel crosses the exec, as fd 3 (dup2 clears CLOEXEC;
	 * sv[1] is never 3: fds 0-3 are taken in every auth process) */
	posix_spawn_file_actions_adddup2(&fa, sv[1], CHANNEL_FD);
	sigset_t none;
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
	extern char **environ;
	int err = posix_spawn(pid_r, exe, &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(sv[1]);
	if (err != 0) {
		close(sv[0]);
		return -err;
	}
	*fd_r = sv[0];
	return 0;
}

int auth_worker_spawner_start(const char *exe, const char *config, int *fd_r, pid_t *pid_r)
{
	char *const argv[] = { (char *)"ringgate-auth", (char *)"-S", (char *)"-c", (char *)config,
			       NULL };
	int ret = spawn(exe, argv, fd_r, pid_r);
	if (ret < 0)
		return ret;
	int fl = fcntl(*fd_r, F_GETFL);
	if (fl < 0 || fcntl(*fd_r, F_SETFL, fl | O_NONBLOCK) < 0) {
		int err = errno;
		close(*fd_r);
		return -err;
	}
	return 0;
}

/* wait for fd to be readable (ipc_recv never blocks); false on timeout */
static bool wait_readable(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	return poll(&pfd, 1, timeout_ms) > 0;
}

void auth_worker_spawner_main(const char *config)
{
	log_init("auth-worker-spawner");
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
	static struct ipc_rx rx;
	static struct ipc_msg msg;
	static pid_t children[MAX_CHILDREN];
	unsigned nchildren = 0;
	for (;;) {
		/* reap: a killed or finished worker */
		pid_t dead;
		while ((dead = waitpid(-1, NULL, WNOHANG)) > 0) {
			for (unsigned i = 0; i < nchildren; i++) {
				if (children[i] == dead) {
					children[i] = children[--nchildren];
					break;
				}
			}
		}
		const char *error = NULL;
		int ret = ipc_recv(CHANNEL_FD, &rx, &error);
		if (ret == -EAGAIN || ret == -EINTR) {
			(void)wait_readable(CHANNEL_FD, 1000);
			continue;
		}
		if (ret == 0)
			break; /* auth is gone */
		if (ret < 0)
			log_fatal("channel to auth: %s", error != NULL ? error : strerror(-ret));
		if (rx.fd >= 0)
			log_fatal("channel to auth: unexpected fd");
		if (rx.hdr.type == IPC_AUTH_WORKER_KILL) {
			unsigned long long pid;
			if (!ipc_uint(&rx.fields, IPC_F_LOGIN_PID, &pid))
				log_fatal("channel to auth: malformed AUTH_WORKER_KILL");
			for (unsigned i = 0; i < nchildren; i++) {
				if (children[i] == (pid_t)pid) {
					(void)kill(children[i], SIGKILL);
					break;
				}
			}
			continue;
		}
		if (rx.hdr.type != IPC_AUTH_WORKER_SPAWN)
			log_fatal("channel to auth: unexpected message %s", ipc_type_name(rx.hdr.type));
		ipc_msg_init(&msg, IPC_AUTH_WORKER_SPAWN, rx.hdr.id);
		int fd = -1;
		pid_t pid = -1;
		if (nchildren == MAX_CHILDREN) {
			ipc_msg_add_str(&msg, IPC_F_REASON, "too many workers");
		} else {
			char *const argv[] = { (char *)"ringgate-auth", (char *)"-W", (char *)"-c",
					       (char *)config, NULL };
			ret = spawn("/proc/self/exe", argv, &fd, &pid);
			if (ret < 0) {
				ipc_msg_add_str(&msg, IPC_F_REASON, strerror(-ret));
			} else {
				children[nchildren++] = pid;
				ipc_msg_add_uint(&msg, IPC_F_LOGIN_PID, (unsigned long long)pid);
			}
		}
		ret = ipc_send(CHANNEL_FD, &msg, fd);
		if (fd >= 0)
			close(fd);
		if (ret < 0)
			log_fatal("channel to auth: %s", strerror(-ret));
	}
	for (unsigned i = 0; i < nchildren; i++)
		(void)kill(children[i], SIGKILL);
	exit(0);
}

/* ---- the worker process ------------------------------------------------------ */

struct worker_ctx {
	struct ipc_msg msg;
	bool answered;
	enum passdb_result presult;
	enum userdb_result uresult;
	char *scheme;
	uint8_t *cred;
	size_t cred_len;
};
static struct worker_ctx wctx;

static void worker_verify_cb(enum passdb_result result, struct auth_db_request *req)
{
	(void)req;
	wctx.answered = true;
	wctx.presult = result;
}

static void worker_cred_cb(enum passdb_result result, const char *scheme,
			   const uint8_t *cred, size_t size, struct auth_db_request *req)
{
	(void)req;
	wctx.answered = true;
	wctx.presult = result;
	wctx.scheme = rg_strdup(scheme != NULL ? scheme : "");
	wctx.cred = size > 0 ? rg_memdup(cred, size) : NULL;
	wctx.cred_len = size;
}

static void worker_userdb_cb(enum userdb_result result, struct auth_db_request *req)
{
	(void)req;
	wctx.answered = true;
	wctx.uresult = result;
}

/* one request: the module's driver, called directly (it blocks here) */
static void worker_handle(struct auth_chain *chain, const struct ipc_rx *rx)
{
	const struct ipc_fields *f = &rx->fields;
	const char *what = ipc_str(f, IPC_F_DB);
	const char *user = ipc_str(f, IPC_F_USER);
	char op[16], scheme[64], driver[32];
	unsigned index = 0;
	scheme[0] = driver[0] = '\0';
	if (what == NULL || user == NULL ||
	    sscanf(what, "%15s %u %31s %63s", op, &index, driver, scheme) < 3)
		log_fatal("channel to auth: malformed AUTH_WORKER_REQUEST");
	if (strcmp(scheme, "-") == 0)
		scheme[0] = '\0';
	/* A worker reads the configuration file when it starts; auth read it
	 * when it started. After a reload that changed the blocks the same
	 * index may name another module: refuse rather than ask the wrong
	 * store. */
	const char *here = strcmp(op, "userdb") == 0 ?
		(auth_chain_userdb(chain, index) != NULL ?
		 auth_chain_userdb(chain, index)->driver->name : "none") :
		(auth_chain_passdb(chain, index) != NULL ?
		 auth_chain_passdb(chain, index)->driver->name : "none");
	bool stale = strcmp(here, driver) != 0;
	if (stale)
		log_error("%s block %u is %s in the configuration file but %s in auth: the "
			  "passdb/userdb blocks changed since auth started; restart ringgate",
			  strcmp(op, "userdb") == 0 ? "userdb" : "passdb", index, here, driver);
	struct auth_db_request req;
	auth_db_request_init(&req, user);
	const char *v;
	req.service = (v = ipc_str(f, IPC_F_SERVICE)) != NULL ? v : "";
	req.mech = (v = ipc_str(f, IPC_F_MECH)) != NULL ? v : "";
	if ((v = ipc_str(f, IPC_F_RIP)) != NULL)
		snprintf(req.rip, sizeof(req.rip), "%s", v);
	if ((v = ipc_str(f, IPC_F_LIP)) != NULL)
		snprintf(req.lip, sizeof(req.lip), "%s", v);
	req.secured = ipc_has(f, IPC_F_SECURED);
	req.skip_password_check = strstr(what, " skip") != NULL;
	if (ipc_has(f, IPC_F_USERDB))
		auth_fields_import(&req.userdb_fields, (const char *)f->val[IPC_F_USERDB],
				   f->len[IPC_F_USERDB]);

	memset(&wctx.answered, 0, sizeof(wctx) - offsetof(struct worker_ctx, answered));
	int result;
	if (stale) {
		result = strcmp(op, "userdb") == 0 ? USERDB_RESULT_INTERNAL_FAILURE :
			 PASSDB_RESULT_INTERNAL_FAILURE;
		wctx.answered = true;
	} else if (strcmp(op, "verify") == 0 || strcmp(op, "credentials") == 0) {
		struct passdb_module *m = auth_chain_passdb(chain, index);
		if (m == NULL)
			log_fatal("channel to auth: no passdb %u", index);
		req.db_name = auth_chain_passdb_name(chain, index);
		if (op[0] == 'v') {
			const uint8_t *pw = ipc_has(f, IPC_F_PASS) ? f->val[IPC_F_PASS] : NULL;
			m->driver->verify_plain(m, &req, pw != NULL ? pw : (const uint8_t *)"",
						pw != NULL ? f->len[IPC_F_PASS] : 0, worker_verify_cb);
		} else {
			m->driver->lookup_credentials(m, &req, scheme, worker_cred_cb);
		}
		result = wctx.presult;
	} else if (strcmp(op, "userdb") == 0) {
		struct userdb_module *m = auth_chain_userdb(chain, index);
		if (m == NULL)
			log_fatal("channel to auth: no userdb %u", index);
		req.db_name = auth_chain_userdb_name(chain, index);
		m->driver->lookup(m, &req, worker_userdb_cb);
		result = wctx.uresult;
	} else {
		log_fatal("channel to auth: unknown worker request '%s'", op);
	}
	if (!wctx.answered) {
		log_error("%s: the driver did not answer synchronously in an auth-worker",
			  req.db_name);
		result = strcmp(op, "userdb") == 0 ? USERDB_RESULT_INTERNAL_FAILURE :
			 PASSDB_RESULT_INTERNAL_FAILURE;
	}

	struct ipc_msg *msg = &wctx.msg;
	ipc_msg_init(msg, IPC_AUTH_WORKER_RESULT, rx->hdr.id);
	char num[16];
	snprintf(num, sizeof(num), "%d", result);
	ipc_msg_add_str(msg, IPC_F_RESULT, num);
	char *pf = auth_fields_export(&req.passdb_fields);
	char *uf = auth_fields_export(&req.userdb_fields);
	if (strlen(req.user) + strlen(pf) + strlen(uf) + wctx.cred_len + 256 >
	    ipc_msg_room(msg)) {
		log_error("%s(%s): fields too long for IPC", req.db_name, req.user);
		ipc_msg_init(msg, IPC_AUTH_WORKER_RESULT, rx->hdr.id);
		snprintf(num, sizeof(num), "%d", PASSDB_RESULT_INTERNAL_FAILURE);
		ipc_msg_add_str(msg, IPC_F_RESULT, num);
	} else {
		ipc_msg_add_str(msg, IPC_F_USER, req.user);
		if (pf[0] != '\0')
			ipc_msg_add_str(msg, IPC_F_EXTRA, pf);
		if (uf[0] != '\0')
			ipc_msg_add_str(msg, IPC_F_USERDB, uf);
		if (wctx.scheme != NULL) {
			ipc_msg_add_str(msg, IPC_F_DB, wctx.scheme);
			ipc_msg_add(msg, IPC_F_PASS, wctx.cred != NULL ? wctx.cred : (const uint8_t *)"",
				    wctx.cred_len);
		}
	}
	explicit_bzero(pf, strlen(pf));
	rg_free(pf);
	rg_free(uf);
	rg_free(wctx.scheme);
	if (wctx.cred != NULL)
		explicit_bzero(wctx.cred, wctx.cred_len);
	rg_free(wctx.cred);
	wctx.scheme = NULL;
	wctx.cred = NULL;
	auth_db_request_clear(&req);
	int ret = ipc_send(CHANNEL_FD, msg, -1);
	explicit_bzero(msg->buf, sizeof(msg->buf));
	if (ret < 0)
		log_fatal("channel to auth: %s", strerror(-ret));
}

void auth_worker_main(const char *config)
{
	log_init("auth-worker");
	/* a worker outlives no spawner (which kills them all when auth goes) */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* no core dumps of passwords */
	signal(SIGPIPE, SIG_IGN);
	char *error = NULL;
	struct settings *set = settings_load(config, &error);
	if (set == NULL)
		log_fatal("%s", error);
	struct auth_chain *chain = auth_chain_new_worker(&set->passdb, &set->userdb, &error);
	if (chain == NULL)
		log_fatal("%s", error);
	settings_free(set);
	static struct ipc_rx rx;
	unsigned served = 0;
	for (;;) {
		const char *rerror = NULL;
		int ret = ipc_recv(CHANNEL_FD, &rx, &rerror);
		if (ret == -EAGAIN || ret == -EINTR) {
			(void)wait_readable(CHANNEL_FD, -1);
			continue;
		}
		if (ret == 0)
			break;
		if (ret < 0)
			log_fatal("channel to auth: %s", rerror != NULL ? rerror : strerror(-ret));
		if (rx.fd >= 0 || rx.hdr.type != IPC_AUTH_WORKER_REQUEST)
			log_fatal("channel to auth: unexpected message %s", ipc_type_name(rx.hdr.type));
		worker_handle(chain, &rx);
		explicit_bzero(rx.buf, IPC_HDR_SIZE + rx.hdr.len);
		if (worker_max_requests != 0 && ++served >= worker_max_requests) {
			log_debug("served max_requests=%u: exiting", worker_max_requests);
			break;
		}
	}
	auth_chain_free(chain);
	exit(0);
}

/* ---- the pool, in auth ---------------------------------------------------- */

enum pending_kind { P_VERIFY, P_CRED, P_USERDB };

struct pending {
	struct pending *next;
	enum pending_kind kind;
	unsigned index;
	struct auth_db_request *req;
	const uint8_t *pw;
	size_t pw_len;
	char *scheme;
	const char *driver; /* the module's driver name, checked by the worker */
	void *cb;
	uint32_t id;
};

struct worker_conn {
	struct worker_conn *next;
	struct auth_worker_pool *pool;
	int fd;
	pid_t pid;
	struct auth_io *io;
	struct pending *busy; /* NULL: idle */
	struct auth_timeout *to;
};

struct auth_worker_pool {
	struct auth_chain *chain;
	int spawner_fd;
	struct auth_io *spawner_io;
	struct worker_conn *workers;
	unsigned count, spawning, max_count, timeout_ms;
	struct pending *queue, **queue_tail;
	uint32_t next_id;
	bool broken;
	struct auth_worker_stats st;
	struct ipc_rx rx;
	struct ipc_msg msg;
};

static void pending_answer(struct pending *p, int result, const char *scheme,
			   const uint8_t *cred, size_t cred_len)
{
	struct auth_db_request *req = p->req;
	void *cb = p->cb;
	enum pending_kind kind = p->kind;
	rg_free(p->scheme);
	rg_free(p);
	switch (kind) {
	case P_VERIFY:
		((passdb_verify_callback *)cb)((enum passdb_result)result, req);
		break;
	case P_CRED:
		((passdb_credentials_callback *)cb)((enum passdb_result)result, scheme, cred,
						    cred_len, req);
		break;
	case P_USERDB:
		((userdb_callback *)cb)((enum userdb_result)result, req);
		break;
	}
}

static int internal_failure(enum pending_kind kind)
{
	return kind == P_USERDB ? USERDB_RESULT_INTERNAL_FAILURE : PASSDB_RESULT_INTERNAL_FAILURE;
}

static void pool_dispatch(struct auth_worker_pool *pool);

static void worker_remove(struct worker_conn *w)
{
	struct auth_worker_pool *pool = w->pool;
	for (struct worker_conn **p = &pool->workers; *p != NULL; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			break;
		}
	}
	pool->count--;
	auth_io_remove(&w->io);
	auth_timeout_remove(&w->to);
	close(w->fd);
	rg_free(w);
}

static void worker_input(void *context, uint32_t events);

/* the spawner answered SPAWN: a new worker's channel, or why not */
static void spawner_input(void *context, uint32_t events)
{
	struct auth_worker_pool *pool = context;
	(void)events;
	for (;;) {
		const char *error = NULL;
		int ret = ipc_recv(pool->spawner_fd, &pool->rx, &error);
		if (ret == -EAGAIN)
			break;
		if (ret <= 0 || pool->rx.hdr.type != IPC_AUTH_WORKER_SPAWN) {
			if (ret > 0 && pool->rx.fd >= 0)
				close(pool->rx.fd);
			log_error("auth-worker spawner: %s: blocking passdbs/userdbs fail from now on",
				  ret == 0 ? "exited" : error != NULL ? error : "unexpected message");
			auth_io_remove(&pool->spawner_io);
			pool->broken = true;
			pool->spawning = 0;
			break;
		}
		pool->spawning--;
		unsigned long long pid;
		if (pool->rx.fd < 0 || !ipc_uint(&pool->rx.fields, IPC_F_LOGIN_PID, &pid)) {
			const char *why = ipc_str(&pool->rx.fields, IPC_F_REASON);
			log_error("starting an auth-worker failed: %s", why != NULL ? why : "?");
			if (pool->rx.fd >= 0)
				close(pool->rx.fd);
			if (pool->count == 0)
				pool->broken = true; /* nobody would ever serve the queue */
			continue;
		}
		struct worker_conn *w = rg_calloc(1, sizeof(*w));
		w->pool = pool;
		w->fd = pool->rx.fd;
		w->pid = (pid_t)pid;
		int fl = fcntl(w->fd, F_GETFL);
		if (fl >= 0)
			(void)fcntl(w->fd, F_SETFL, fl | O_NONBLOCK);
		w->io = auth_io_add(w->fd, EPOLLIN, worker_input, w);
		w->next = pool->workers;
		pool->workers = w;
		pool->count++;
		pool->st.spawned++;
		log_debug("auth-worker %d started", w->pid);
	}
	pool_dispatch(pool);
}

static void pending_apply(struct pending *p, const struct ipc_fields *f)
{
	struct auth_db_request *req = p->req;
	const char *user = ipc_str(f, IPC_F_USER);
	if (user != NULL && user[0] != '\0' && strcmp(user, req->user) != 0)
		auth_request_set_field(req, "user", user);
	if (ipc_has(f, IPC_F_EXTRA)) {
		/* through set_field so userdb_* and user keep their meaning */
		struct auth_fields tmp;
		memset(&tmp, 0, sizeof(tmp));
		auth_fields_import(&tmp, (const char *)f->val[IPC_F_EXTRA], f->len[IPC_F_EXTRA]);
		for (unsigned i = 0; i < tmp.count; i++)
			auth_request_set_field(req, tmp.kv[2 * i], tmp.kv[2 * i + 1]);
		auth_fields_clear(&tmp);
	}
	if (ipc_has(f, IPC_F_USERDB))
		auth_fields_import(&req->userdb_fields, (const char *)f->val[IPC_F_USERDB],
				   f->len[IPC_F_USERDB]);
}

static void worker_input(void *context, uint32_t events)
{
	struct worker_conn *w = context;
	struct auth_worker_pool *pool = w->pool;
	(void)events;
	const char *error = NULL;
	int ret = ipc_recv(w->fd, &pool->rx, &error);
	if (ret == -EAGAIN)
		return;
	struct pending *p = w->busy;
	if (ret <= 0 || pool->rx.fd >= 0 || pool->rx.hdr.type != IPC_AUTH_WORKER_RESULT ||
	    p == NULL || pool->rx.hdr.id != p->id) {
		if (ret > 0 && pool->rx.fd >= 0)
			close(pool->rx.fd);
		if (p != NULL || ret != 0)
			log_error("auth-worker %d: %s", w->pid, ret == 0 ? "exited during a request" :
				  error != NULL ? error : "unexpected message");
		w->busy = NULL;
		worker_remove(w);
		if (p != NULL)
			pending_answer(p, internal_failure(p->kind), NULL, NULL, 0);
		pool_dispatch(pool);
		return;
	}
	w->busy = NULL;
	auth_timeout_remove(&w->to);
	const struct ipc_fields *f = &pool->rx.fields;
	const char *rs = ipc_str(f, IPC_F_RESULT);
	int result = rs != NULL ? atoi(rs) : internal_failure(p->kind);
	pending_apply(p, f);
	const char *scheme = ipc_str(f, IPC_F_DB);
	const uint8_t *cred = ipc_has(f, IPC_F_PASS) ? f->val[IPC_F_PASS] : NULL;
	size_t cred_len = cred != NULL ? f->len[IPC_F_PASS] : 0;
	/* the answer may start the next request: dispatch first, the reply
	 * buffer is used by nothing else meanwhile */
	pending_answer(p, result, scheme, cred, cred_len);
	explicit_bzero(pool->rx.buf, IPC_HDR_SIZE + pool->rx.hdr.len);
	pool_dispatch(pool);
}

static void worker_timeout(void *context)
{
	struct worker_conn *w = context;
	struct auth_worker_pool *pool = w->pool;
	w->to = NULL;
	struct pending *p = w->busy;
	w->busy = NULL;
	pool->st.timeouts++;
	log_error("auth-worker %d: %s(%s,%s): no answer in %u ms: killing it, the login "
		  "fails temporarily", w->pid, p != NULL && p->req->db_name != NULL ?
		  p->req->db_name : "?", p != NULL ? p->req->user : "?",
		  p != NULL ? p->req->rip : "", pool->timeout_ms);
	if (!pool->broken) {
		ipc_msg_init(&pool->msg, IPC_AUTH_WORKER_KILL, 0);
		ipc_msg_add_uint(&pool->msg, IPC_F_LOGIN_PID, (unsigned long long)w->pid);
		(void)ipc_send(pool->spawner_fd, &pool->msg, -1);
	}
	worker_remove(w);
	if (p != NULL)
		pending_answer(p, internal_failure(p->kind), NULL, NULL, 0);
	pool_dispatch(pool);
}

static bool worker_send(struct worker_conn *w, struct pending *p)
{
	struct auth_worker_pool *pool = w->pool;
	struct auth_db_request *req = p->req;
	struct ipc_msg *msg = &pool->msg;
	char what[160];
	if (p->kind == P_VERIFY)
		snprintf(what, sizeof(what), "verify %u %.31s -%s", p->index, p->driver,
			 req->skip_password_check ? " skip" : "");
	else if (p->kind == P_CRED)
		snprintf(what, sizeof(what), "credentials %u %.31s %.60s%s", p->index, p->driver,
			 p->scheme != NULL && p->scheme[0] != '\0' ? p->scheme : "-",
			 req->skip_password_check ? " skip" : "");
	else
		snprintf(what, sizeof(what), "userdb %u %.31s", p->index, p->driver);
	char *uf = auth_fields_export(&req->userdb_fields);
	ipc_msg_init(msg, IPC_AUTH_WORKER_REQUEST, p->id);
	if (strlen(req->user) + strlen(uf) + p->pw_len + 512 > ipc_msg_room(msg)) {
		rg_free(uf);
		return false;
	}
	ipc_msg_add_str(msg, IPC_F_DB, what);
	ipc_msg_add_str(msg, IPC_F_USER, req->user);
	if (p->kind == P_VERIFY)
		ipc_msg_add(msg, IPC_F_PASS, p->pw, p->pw_len);
	if (req->service != NULL)
		ipc_msg_add_str(msg, IPC_F_SERVICE, req->service);
	if (req->mech != NULL)
		ipc_msg_add_str(msg, IPC_F_MECH, req->mech);
	if (req->rip[0] != '\0')
		ipc_msg_add_str(msg, IPC_F_RIP, req->rip);
	if (req->lip[0] != '\0')
		ipc_msg_add_str(msg, IPC_F_LIP, req->lip);
	if (req->secured)
		ipc_msg_add_str(msg, IPC_F_SECURED, "1");
	if (uf[0] != '\0')
		ipc_msg_add_str(msg, IPC_F_USERDB, uf);
	rg_free(uf);
	/* an idle worker's socket is empty: one message always fits */
	int ret = ipc_send(w->fd, msg, -1);
	explicit_bzero(msg->buf, sizeof(msg->buf));
	return ret == 0;
}

static void pool_dispatch(struct auth_worker_pool *pool)
{
	while (pool->queue != NULL) {
		if (pool->broken) {
			struct pending *p = pool->queue;
			pool->queue = p->next;
			if (pool->queue == NULL)
				pool->queue_tail = &pool->queue;
			log_error("%s(%s,%s): no auth-worker can be started", p->req->db_name,
				  p->req->user, p->req->rip);
			pending_answer(p, internal_failure(p->kind), NULL, NULL, 0);
			continue;
		}
		struct worker_conn *w = pool->workers;
		while (w != NULL && w->busy != NULL)
			w = w->next;
		if (w == NULL) {
			/* one spawn per waiting request, up to the cap */
			unsigned waiting = 0;
			for (struct pending *p = pool->queue; p != NULL; p = p->next)
				waiting++;
			if (pool->count + pool->spawning < pool->max_count &&
			    pool->spawning < waiting) {
				ipc_msg_init(&pool->msg, IPC_AUTH_WORKER_SPAWN, 0);
				if (ipc_send(pool->spawner_fd, &pool->msg, -1) < 0) {
					log_error("asking the auth-worker spawner: %m");
					pool->broken = pool->count == 0;
				} else {
					pool->spawning++;
				}
				continue;
			}
			return;
		}
		struct pending *p = pool->queue;
		pool->queue = p->next;
		if (pool->queue == NULL)
			pool->queue_tail = &pool->queue;
		p->next = NULL;
		if (!worker_send(w, p)) {
			log_error("auth-worker %d: sending a request failed", w->pid);
			worker_remove(w);
			pending_answer(p, internal_failure(p->kind), NULL, NULL, 0);
			continue;
		}
		w->busy = p;
		w->to = auth_timeout_add(pool->timeout_ms, worker_timeout, w);
		pool->st.requests++;
	}
}

static void pool_add(struct auth_worker_pool *pool, struct pending *p)
{
	if (p->kind == P_USERDB) {
		const struct userdb_module *um = auth_chain_userdb(pool->chain, p->index);
		p->driver = um != NULL ? um->driver->name : "none";
	} else {
		const struct passdb_module *pm = auth_chain_passdb(pool->chain, p->index);
		p->driver = pm != NULL ? pm->driver->name : "none";
	}
	if (++pool->next_id == 0)
		pool->next_id = 1;
	p->id = pool->next_id;
	*pool->queue_tail = p;
	pool->queue_tail = &p->next;
	pool_dispatch(pool);
}

static void ops_verify(void *ctx, unsigned index, struct auth_db_request *req,
		       const uint8_t *pw, size_t pw_len, passdb_verify_callback *cb)
{
	struct pending *p = rg_calloc(1, sizeof(*p));
	p->kind = P_VERIFY;
	p->index = index;
	p->req = req;
	p->pw = pw;
	p->pw_len = pw_len;
	p->cb = (void *)cb;
	pool_add(ctx, p);
}

static void ops_credentials(void *ctx, unsigned index, struct auth_db_request *req,
			    const char *scheme, passdb_credentials_callback *cb)
{
	struct pending *p = rg_calloc(1, sizeof(*p));
	p->kind = P_CRED;
	p->index = index;
	p->req = req;
	p->scheme = rg_strdup(scheme != NULL ? scheme : "");
	p->cb = (void *)cb;
	pool_add(ctx, p);
}

static void ops_userdb(void *ctx, unsigned index, struct auth_db_request *req,
		       userdb_callback *cb)
{
	struct pending *p = rg_calloc(1, sizeof(*p));
	p->kind = P_USERDB;
	p->index = index;
	p->req = req;
	p->cb = (void *)cb;
	pool_add(ctx, p);
}

static const struct auth_chain_worker_ops pool_ops = {
	.verify_plain = ops_verify,
	.lookup_credentials = ops_credentials,
	.userdb_lookup = ops_userdb,
};

struct auth_worker_pool *auth_worker_pool_new(int spawner_fd, unsigned max_count,
					      unsigned timeout_ms)
{
	struct auth_worker_pool *pool = rg_calloc(1, sizeof(*pool));
	pool->spawner_fd = spawner_fd;
	pool->max_count = max_count > 0 ? max_count : 1;
	pool->timeout_ms = timeout_ms > 0 ? timeout_ms : 60000;
	pool->queue_tail = &pool->queue;
	pool->spawner_io = auth_io_add(spawner_fd, EPOLLIN, spawner_input, pool);
	if (pool->spawner_io == NULL)
		pool->broken = true;
	return pool;
}

void auth_worker_pool_attach(struct auth_worker_pool *pool, struct auth_chain *chain)
{
	pool->chain = chain;
	auth_chain_set_worker(chain, &pool_ops, pool);
}

void auth_worker_pool_free(struct auth_worker_pool *pool)
{
	if (pool == NULL)
		return;
	while (pool->workers != NULL) {
		struct worker_conn *w = pool->workers;
		struct pending *p = w->busy;
		w->busy = NULL;
		worker_remove(w);
		if (p != NULL)
			pending_answer(p, internal_failure(p->kind), NULL, NULL, 0);
	}
	pool->broken = true;
	pool_dispatch(pool);
	auth_io_remove(&pool->spawner_io);
	close(pool->spawner_fd);
	rg_free(pool);
}

void auth_worker_pool_stats(const struct auth_worker_pool *pool, struct auth_worker_stats *st)
{
	*st = pool->st;
	st->workers = pool->count;
}
