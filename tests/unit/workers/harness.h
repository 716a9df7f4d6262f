/* harness.h — runs the real ringgate-pop3 / ringgate-imap binaries the way
 * master does (fd 3 = client stream socket, fd 4 = SEQPACKET channel with one
 * WORKER_INIT) and talks to them; plus temp homes with Maildirs. */
#ifndef RG_TEST_WORKER_HARNESS_H
#define RG_TEST_WORKER_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct worker_proc {
	pid_t pid;
	int fd; /* our end of the client socket */
};

/* temp dir; rg_free() the result, wh_rm_rf() it when done */
char *wh_tmpdir(void);
void wh_rm_rf(const char *path);
/* write home/Maildir/<sub>/<name> (creating the Maildir) */
void wh_put_msg(const char *maildir, const char *sub, const char *name, const char *body,
		long mtime);
bool wh_exists(const char *maildir, const char *sub, const char *name);
/* number of files in maildir/sub (dotfiles excluded) */
int wh_count(const char *maildir, const char *sub);
/* the whole of maildir/name, NUL-terminated (rg_free); missing = failure */
char *wh_read_file(const char *maildir, const char *name);
/* UIDVALIDITY from the maildir's uid list */
unsigned int wh_uidvalidity(const char *maildir);

/* fork+exec binary ("ringgate-pop3") from WORKER_BIN_DIR; tag may be NULL */
struct worker_proc wh_start(const char *binary, const char *home, const char *mail,
			    const char *tag, const void *preread, size_t preread_len);
void wh_send(struct worker_proc *w, const char *data);
void wh_send_len(struct worker_proc *w, const void *data, size_t len);
/* read until the input so far ends with terminator (5 s timeout = test
 * failure); returns everything read, NUL-terminated */
char *wh_read_until(struct worker_proc *w, const char *terminator, size_t *len_r);
/* read until a line starting with prefix has been read */
char *wh_read_until_line(struct worker_proc *w, const char *prefix);
/* true when the worker closes the connection within 5 s with nothing more */
bool wh_read_eof(struct worker_proc *w);
/* close our end and return the exit status (-1 when not a normal exit) */
int wh_finish(struct worker_proc *w);

#endif
