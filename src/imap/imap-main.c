/* ringgate-imap: one logged-in IMAP session. master execs it as the user
 * with fd 3 = client, fd 4 = the channel carrying WORKER_INIT. */
#include "imap/imap-client.h"
#include "lib/alloc.h"
#include "lib/log.h"
#include "mail/maildir.h"
#include "mail/worker.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* RFC 3501's autologout timer is at least 30 minutes */
#define IMAP_IDLE_TIMEOUT_MS (30 * 60 * 1000)
/* how often IDLE looks at the folder for changes */
#define IMAP_IDLE_CHECK_MS 1000

int main(void)
{
	struct worker_init init;
	struct worker_out *out = rg_malloc(sizeof(*out));
	const char *error;
	int ret;

	worker_start("imap", &init);
	worker_out_init(out, WORKER_CLIENT_FD);
	const char *tag = init.tag != NULL && init.tag[0] != '\0' ? init.tag : "*";

	char *path = NULL;
	if ((ret = maildir_location_path(init.mail, init.home, init.user, &path, &error)) < 0 ||
	    (error = "creating the Maildir failed", ret = maildir_create(path)) < 0) {
		log_error("Mail storage %s: %s: %s", path != NULL ? path : "", error, strerror(-ret));
		char reply[256];
		int n = snprintf(reply, sizeof(reply), "%s NO [UNAVAILABLE] Internal error occurred. "
				 "Refer to server log for more information.\r\n", tag);
		worker_out_write(out, reply, (size_t)n < sizeof(reply) ? (size_t)n : sizeof(reply) - 1);
		worker_out_flush(out);
		rg_free(path);
		worker_init_free(&init);
		rg_free(out);
		return 1;
	}

	struct imap_client *client = imap_client_create(path, worker_out_send_cb, out);
	uint64_t in_bytes = init.preread_len;
	imap_client_send_login_reply(client, tag);
	bool running = imap_client_input(client, init.preread, init.preread_len);
	const char *reason = "Connection closed";
	uint8_t buf[8192];
	int idle_ms = 0;
	while (running && worker_out_flush(out) == 0) {
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
		running = imap_client_input(client, buf, (size_t)n);
	}
	worker_out_flush(out);
	if (imap_client_logged_out(client))
		reason = "Logged out";
	else if (!running && strcmp(reason, "Connection closed") == 0)
		reason = "Invalid input from the client";
	log_info("Disconnected: %s in=%llu out=%llu", reason, (unsigned long long)in_bytes,
		 (unsigned long long)out->total);
	imap_client_destroy(client);
	rg_free(path);
	worker_init_free(&init);
	rg_free(out);
	return 0;
}
