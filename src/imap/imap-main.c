/* ringgate-imap: logged-in IMAP sessions, one at a time. master starts it
 * (as the user, or as root for a process_min_avail spare) with fd 3 =
 * client, fd 4 = the channel carrying WORKER_INIT; with -r it serves more
 * sessions of the same uid (mail/worker.h). */
#include "imap/imap-client.h"
#include "imap/imap-compress.h"
#include "lib/alloc.h"
#include "lib/log.h"
#include "mail/folder.h"
#include "mail/maildir.h"
#include "mail/mbox.h"
#include "mail/worker.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* RFC 3501's autologout timer is at least 30 minutes */
#define IMAP_IDLE_TIMEOUT_MS (30 * 60 * 1000)
/* how often IDLE looks at the folder for changes */
#define IMAP_IDLE_CHECK_MS 1000

/* the client socket's two directions, deflated once COMPRESS is on */
struct imap_io {
	struct worker_out *out;
	struct imap_compress *z; /* NULL until COMPRESS */
	const char *reason;      /* why the input ended the session, or NULL */
	char reason_buf[160];
};

static void io_send(void *ctx, const void *data, size_t len)
{
	struct imap_io *io = ctx;
	if (io->z != NULL)
		imap_compress_write(io->z, data, len);
	else
		worker_out_write(io->out, data, len);
}

static void io_compress_start(void *ctx)
{
	struct imap_io *io = ctx;
	io->z = imap_compress_create(worker_out_send_cb, io->out);
}

static int io_flush(struct imap_io *io)
{
	if (io->z != NULL)
		imap_compress_flush(io->z);
	return worker_out_flush(io->out);
}

/* the client's bytes: to the session as they are until COMPRESS, inflated
 * from then on (also the rest of the batch COMPRESS came in). false once
 * the session is over. */
static bool io_input(struct imap_io *io, struct imap_client *client, const uint8_t *data, size_t len)
{
	if (io->z == NULL) {
		size_t used;
		bool running = imap_client_input_part(client, data, len, &used);
		if (!running || io->z == NULL)
			return running;
		data += used;
		len -= used;
	}
	/* a fixed buffer: however much a few bytes inflate to, it reaches the
	 * session in pieces, and the command parser bounds what it keeps */
	uint8_t plain[8192];
	for (;;) {
		size_t used, n;
		const char *error = NULL;
		enum parse_result r = imap_compress_inflate(io->z, data, len, &used, plain, sizeof(plain), &n, &error);
		data += used;
		len -= used;
		if (n > 0 && !imap_client_input(client, plain, n))
			return false;
		if (r == PARSE_ERROR) {
			snprintf(io->reason_buf, sizeof(io->reason_buf), "Invalid compressed data from the client (%s)",
				 error);
			io->reason = io->reason_buf;
			imap_client_bye(client, "Invalid compressed data.");
			return false;
		}
		if (len == 0 && n < sizeof(plain))
			return true;
	}
}

/* one session; the exit status when it is the process's last */
static int imap_session(const struct worker_init *init)
{
	struct worker_out *out = rg_malloc(sizeof(*out));
	const char *error;
	int ret;

	worker_out_init(out, WORKER_CLIENT_FD);
	const char *tag = init->tag != NULL && init->tag[0] != '\0' ? init->tag : "*";

	char *path = NULL;
	if (mbox_location_is_mbox(init->mail)) {
		/* mbox: the spool is INBOX, the folders are files under the root */
		char *dir = NULL, *inbox = NULL;
		if ((ret = mbox_location_root(init->mail, init->home, init->user, &dir, &error)) == 0 &&
		    (ret = mbox_location_inbox(init->mail, init->home, init->user, &inbox, &error)) == 0)
			path = folder_mbox_root(dir, inbox);
		rg_free(dir);
		rg_free(inbox);
	} else if ((ret = maildir_location_path(init->mail, init->home, init->user, &path, &error)) == 0) {
		error = "creating the Maildir failed";
		ret = maildir_create(path);
	}
	if (ret < 0) {
		log_error("Mail storage %s: %s: %s", path != NULL ? path : "", error, strerror(-ret));
		char reply[256];
		int n = snprintf(reply, sizeof(reply), "%s NO [UNAVAILABLE] Internal error occurred. "
				 "Refer to server log for more information.\r\n", tag);
		worker_out_write(out, reply, (size_t)n < sizeof(reply) ? (size_t)n : sizeof(reply) - 1);
		worker_out_flush(out);
		rg_free(path);
		rg_free(out);
		return 1;
	}

	struct imap_io io = { .out = out };
	struct imap_client *client = imap_client_create(path, io_send, &io);
	imap_client_set_compress(client, io_compress_start, &io);
	if (init->max_line > 0)
		imap_client_set_max_line(client, (size_t)init->max_line);
	uint64_t in_bytes = init->preread_len;
	imap_client_send_login_reply(client, tag);
	bool running = io_input(&io, client, init->preread, init->preread_len);
	const char *reason = "Connection closed";
	uint8_t buf[8192];
	int idle_ms = 0;
	while (running && io_flush(&io) == 0) {
		bool idling = imap_client_idling(client);
		ssize_t n = worker_read(WORKER_CLIENT_FD, buf, sizeof(buf),
					idling ? IMAP_IDLE_CHECK_MS : IMAP_IDLE_TIMEOUT_MS);
		if (n == -ETIMEDOUT && idling && idle_ms < IMAP_IDLE_TIMEOUT_MS) {
			idle_ms += IMAP_IDLE_CHECK_MS;
			running = imap_client_idle_check(client);
			continue;
		}
		idle_ms = 0;
		if (n == -ETIMEDOUT) {
			reason = "Disconnected for inactivity";
			imap_client_bye(client, "Disconnected for inactivity.");
			break;
		}
		if (n == -EINTR) {
			reason = "Server shutting down";
			imap_client_bye(client, "Server shutting down.");
			break;
		}
		if (n <= 0) {
			if (n < 0)
				reason = "Connection reset";
			break;
		}
		in_bytes += (uint64_t)n;
		running = io_input(&io, client, buf, (size_t)n);
	}
	io_flush(&io);
	if (imap_client_logged_out(client))
		reason = "Logged out";
	else if (io.reason != NULL)
		reason = io.reason;
	else if (!running && strcmp(reason, "Connection closed") == 0)
		reason = "Invalid input from the client";
	log_info("Disconnected: %s in=%llu out=%llu", reason, (unsigned long long)in_bytes,
		 (unsigned long long)out->total);
	imap_client_destroy(client);
	imap_compress_destroy(io.z);
	rg_free(path);
	rg_free(out);
	return 0;
}

int main(int argc, char **argv)
{
	struct worker_init init;
	int ret;

	worker_start("imap", argc, argv, &init);
	do {
		ret = imap_session(&init);
		worker_init_free(&init);
	} while (worker_next(&init));
	worker_exit(ret);
}
