/* worker.h — what ringgate-imap and ringgate-pop3 share around their
 * protocol cores: reading WORKER_INIT from fd 4, blocking buffered output
 * to the client on fd 3, reads with an idle timeout, SIGTERM handling.
 * One session at a time. Started with `-r` (reusable: service_count != 1 or
 * a process_min_avail spare), the worker keeps fd 4 and, after each
 * session, sends WORKER_DONE and waits for the next WORKER_INIT (its client
 * socket attached) until master closes the channel; a spare, still root,
 * drops to its first session's user (the uid stays the worker's for good).
 * Started with `-T` it is a template (worker-template.h) whose children
 * come back here set up as the user, the client with their first
 * WORKER_INIT. */
#ifndef RG_WORKER_H
#define RG_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WORKER_CLIENT_FD 3
#define WORKER_MASTER_FD 4
#define WORKER_INIT_TIMEOUT_MS 10000

/* Copies of the WORKER_INIT fields (NULL / empty when absent). */
struct worker_init {
	char *service, *user, *home, *mail, *tag, *rip, *session;
	char *chroot; /* F_CHROOT: the worker chroots here, home inside it */
	uint8_t *preread;
	size_t preread_len;
	bool secured, tls;
	uint64_t max_line; /* F_MAX_LINE (imap_max_line_length); 0: absent */
	/* F_UID/F_GID (reusable workers): the session's user, which a spare
	 * drops to (with F_GROUPS) and a used worker must already be */
	bool has_ids;
	uid_t uid;
	gid_t gid;
	gid_t groups[64];
	size_t ngroups;
	int client_fd; /* the client socket that came with it, or -1 */
};

/* Wait (poll, timeout_ms) for one WORKER_INIT on fd and decode it. A
 * malformed message or one without F_USER is an error: the caller fatals. */
int worker_init_read(int fd, int timeout_ms, struct worker_init *init_r, const char **error_r);
void worker_init_free(struct worker_init *init);
/* F_GROUPS: decimal gids, comma-separated, at least one; false when
 * malformed (empty, an empty item, a sign, space or other text, a value
 * beyond gid_t, more than max) */
bool worker_parse_groups(const char *s, gid_t *out, size_t max, size_t *n_r);

/* A worker's first steps: log as `service`, set up signals, read
 * WORKER_INIT from fd 4 (fatal if it does not come or is malformed), chroot
 * when F_CHROOT says so and drop every capability (a spare: chroot, drop
 * to the user), then log as `service(user)<session>`. Without `-r` in argv
 * fd 4 is closed and the process serves this one session. */
void worker_start(const char *service, int argc, char **argv, struct worker_init *init_r);
/* After a session (init freed, fd 3 closed here): false when the process
 * is done; else init_r is the next session (same uid, gid and chroot), its
 * client on fd 3, the process in its home. */
bool worker_next(struct worker_init *init_r);

/* Client output: bytes are collected in buf and written with blocking
 * write() on flush or when buf fills. Invariant: buf[0..len) is not yet
 * written; after a write error everything is dropped (failed = true). */
struct worker_out {
	int fd;
	bool failed;
	size_t len;
	uint64_t total; /* bytes handed to worker_out_write, for the log */
	uint8_t buf[16384];
};

void worker_out_init(struct worker_out *out, int fd);
void worker_out_write(struct worker_out *out, const void *data, size_t len);
/* 0 or -errno */
int worker_out_flush(struct worker_out *out);
/* matches the cores' send callback: ctx is a struct worker_out */
void worker_out_send_cb(void *ctx, const void *data, size_t len);

/* The end of a worker's last session: _exit(status). Nothing of ours
 * needs exit handlers (every log line and the client's output are already
 * written), and skipping libc's and the allocator's teardown is a few
 * percent of a one-session worker's CPU. ASan builds exit() (LeakSanitizer
 * checks there). */
void worker_exit(int status) __attribute__((noreturn));

/* SIGTERM sets a flag and interrupts a blocking read; SIGPIPE is ignored. */
void worker_signals_init(void);
bool worker_terminating(void);

/* read() with an idle timeout. Returns bytes read, 0 at EOF, -ETIMEDOUT,
 * -EINTR when SIGTERM arrived, or another -errno. */
ssize_t worker_read(int fd, void *buf, size_t size, int timeout_ms);

#endif
