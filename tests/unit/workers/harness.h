/* harness.h — runs the real ringgate-pop3 / ringgate-imap binaries the way
 * master does (fd 3 = client stream socket, fd 4 = SEQPACKET channel with one
 * WORKER_INIT) and talks to them; plus temp homes with Maildirs. */
#ifndef RG_TEST_WORKER_HARNESS_H
#define RG_TEST_WORKER_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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

/* a temp home and the path of its Maildir (made by the first wh_put_msg) */
struct wh_home {
	char *home;
	char *md;
};
struct wh_home *wh_home_new(void);
/* removes the tree too */
void wh_home_free(struct wh_home *h);
/* the three messages a worker test starts from: new/1000.a.host,
 * cur/2000.b.host:2,S (seen), new/3000.c.host, with those mtimes */
void wh_put_three(const char *maildir, const char *msg1, const char *msg2, const char *msg3);
/* ringgate-uidlist with only this header line ("1 V77 N1\n"): a fixed
 * UIDVALIDITY, so every run of a script sees the same UIDs */
void wh_put_uidlist(const char *maildir, const char *header);

/* a core's output callback that appends to a struct wh_capture (data
 * NUL-terminated, rg_free it) */
struct wh_capture {
	char *data;
	size_t len, size;
};
void wh_capture_send(void *ctx, const void *data, size_t len);
/* script into a core in memory: split bytes then the rest (split 0: all at
 * once), or one byte at a time; stops when input returns false (the session
 * ended) and returns the last result */
bool wh_feed_script(bool (*input)(void *client, const uint8_t *data, size_t len), void *client,
		    const char *script, size_t len, size_t split, bool bytewise);

#endif
