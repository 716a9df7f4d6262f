/* fuzz_mbox.c — the mbox spool scanner on arbitrary file contents (a spool
 * holds what strangers mailed). Every message read must be as long as its
 * announced size says, and expunging every other message, then scanning
 * again, must leave exactly the others: the rewrite keeps each message's
 * boundaries. Then every message gets new Dovecot metadata (X-UID, Status,
 * X-Status, X-Keywords, X-IMAPbase), which must read back exactly. The file lives in a private temp directory. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "mail/maildir.h"
#include "mail/mbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *spool, *spool_dir;

static void cleanup(void)
{
	char *lock = rg_strdup_printf("%s.lock", spool);
	unlink(lock);
	unlink(spool);
	rmdir(spool_dir);
	rg_free(lock);
}

static bool has_ximap(const uint8_t *data, size_t size)
{
	for (size_t i = 0; i + 7 <= size; i++) {
		if (strncasecmp((const char *)data + i, "X-IMAP:", 7) == 0)
			return true;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (spool == NULL) {
		char tmpl[] = "/tmp/rg-fuzz-mbox-XXXXXX";
		if (mkdtemp(tmpl) == NULL)
			abort();
		spool_dir = rg_strdup(tmpl);
		spool = rg_strdup_printf("%s/spool", tmpl);
		atexit(cleanup);
	}
	int fd = open(spool, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);

	struct mbox *box;
	const char *error;
	if (mbox_open(spool, 1000, &box, &error) < 0)
		return 0;
	size_t count = box->count;
	bool *expunge = calloc(count + 1, sizeof(*expunge));
	for (size_t i = 0; i < count; i++) {
		char *msg;
		size_t len;
		if (mbox_msg_read(box, i, &msg, &len) < 0)
			abort();
		if (maildir_crlf_size(msg, len) != box->msgs[i].vsize)
			abort(); /* POP3 would announce a wrong size */
		rg_free(msg);
		expunge[i] = i % 2 == 0;
	}
	if (mbox_expunge(box, expunge, 1000, &error) < 0)
		abort();
	mbox_close(box);
	if (mbox_open(spool, 1000, &box, &error) < 0)
		abort();
	/* the rewrite kept the boundaries (unless a message with X-IMAP moved
	   to the front: Dovecot's rule then hides it as folder data) */
	if (box->count != count / 2 && !has_ximap(data, size))
		abort();

	/* the IMAP side: every message gets new metadata, written back and
	   read again exactly, with the boundaries kept */
	count = box->count;
	if (box->uidvalidity == 0)
		box->uidvalidity = 77;
	uint32_t validity = box->uidvalidity;
	for (size_t i = 0; i < count; i++) {
		struct mbox_msg *m = &box->msgs[i];
		m->uid = (uint32_t)i + 1;
		strcpy(m->status, "RO");
		strcpy(m->xstatus, "AF");
		rg_free(m->keywords);
		m->keywords = rg_strdup("k1 $k2");
		m->dirty = true;
	}
	box->last_uid = (uint32_t)count;
	if (mbox_rewrite(box, true, 1000, &error) < 0)
		abort();
	mbox_close(box);
	if (mbox_open(spool, 1000, &box, &error) < 0)
		abort();
	if (box->count != count || box->uidvalidity != validity || box->last_uid != count)
		abort();
	for (size_t i = 0; i < count; i++) {
		const struct mbox_msg *m = &box->msgs[i];
		if (m->uid != i + 1 || strcmp(m->status, "RO") != 0 || strcmp(m->xstatus, "AF") != 0 ||
		    m->keywords == NULL || strcmp(m->keywords, "k1 $k2") != 0)
			abort();
	}
	mbox_close(box);
	free(expunge);
	return 0;
}
