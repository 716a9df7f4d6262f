/* ringgate-pop3: logged-in POP3 sessions, one at a time. master starts it
 * (as the user, or as root for a process_min_avail spare) with fd 3 =
 * client, fd 4 = the channel carrying WORKER_INIT; with -r it serves more
 * sessions of the same uid (mail/worker.h). */
#include "lib/alloc.h"
#include "lib/log.h"
#include "mail/maildir.h"
#include "mail/mbox.h"
#include "mail/worker.h"
#include "pop3/pop3-client.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define POP3_IDLE_TIMEOUT_MS (10 * 60 * 1000)

/* one session; the exit status when it is the process's last */
static int pop3_session(const struct worker_init *init)
{
	struct worker_out *out = rg_malloc(sizeof(*out));
	const char *error;
	int ret;

	worker_out_init(out, WORKER_CLIENT_FD);

	char *path = NULL;
	struct pop3_client *client = NULL;
	if (mbox_location_is_mbox(init->mail)) {
		/* Debian's default INBOX: the spool in /var/mail */
		struct mbox *mb = NULL;
		if ((ret = mbox_location_inbox(init->mail, init->home, init->user, &path, &error)) < 0 ||
		    (ret = mbox_open(path, MBOX_LOCK_TIMEOUT_MS, &mb, &error)) < 0 ||
		    (ret = pop3_client_create_mbox(mb, worker_out_send_cb, out, &client, &error)) < 0)
			mbox_close(client == NULL ? mb : NULL);
	} else {
		struct maildir *box = NULL;
		if ((ret = maildir_location_path(init->mail, init->home, init->user, &path, &error)) < 0 ||
		    (ret = maildir_open(path, true, &box, &error)) < 0 ||
		    (ret = pop3_client_create(box, worker_out_send_cb, out, &client, &error)) < 0)
			maildir_close(client == NULL ? box : NULL);
	}
	if (ret < 0) {
		log_error("Couldn't open INBOX %s: %s: %s", path != NULL ? path : "", error,
			  strerror(-ret));
		static const char reply[] = "-ERR [SYS/TEMP] Couldn't open INBOX.\r\n";
		static const char inuse[] = "-ERR [IN-USE] Couldn't open INBOX: "
					    "it is locked by another process.\r\n";
		if (ret == -EAGAIN)
			worker_out_write(out, inuse, sizeof(inuse) - 1);
		else
			worker_out_write(out, reply, sizeof(reply) - 1);
		worker_out_flush(out);
		rg_free(path);
		rg_free(out);
		return 1;
	}

	uint64_t in_bytes = init->preread_len;
	pop3_client_send_greeting(client);
	bool running = pop3_client_input(client, init->preread, init->preread_len);
	const char *reason = "Connection closed";
	uint8_t buf[4096];
	while (running && worker_out_flush(out) == 0) {
		ssize_t n = worker_read(WORKER_CLIENT_FD, buf, sizeof(buf), POP3_IDLE_TIMEOUT_MS);
		if (n == -ETIMEDOUT) {
			reason = "Disconnected for inactivity";
			static const char bye[] = "-ERR Disconnected for inactivity.\r\n";
			worker_out_write(out, bye, sizeof(bye) - 1);
			break;
		}
		if (n == -EINTR) {
			reason = "Server shutting down";
			static const char bye[] = "-ERR Server shutting down.\r\n";
			worker_out_write(out, bye, sizeof(bye) - 1);
			break;
		}
		if (n <= 0) {
			if (n < 0)
				reason = "Connection reset";
			break;
		}
		in_bytes += (uint64_t)n;
		running = pop3_client_input(client, buf, (size_t)n);
	}
	worker_out_flush(out);
	if (pop3_client_quit_seen(client))
		reason = "Logged out";
	else if (!running)
		reason = "Too many bad commands";

	char stats[160];
	pop3_client_stats(client, stats, sizeof(stats));
	log_info("Disconnected: %s %s in=%llu out=%llu", reason, stats,
		 (unsigned long long)in_bytes, (unsigned long long)out->total);
	pop3_client_destroy(client);
	rg_free(path);
	rg_free(out);
	return 0;
}

int main(int argc, char **argv)
{
	struct worker_init init;
	int ret;

	worker_start("pop3", argc, argv, &init);
	do {
		ret = pop3_session(&init);
		worker_init_free(&init);
	} while (worker_next(&init));
	worker_exit(ret);
}
