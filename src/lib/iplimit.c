#include "lib/iplimit.h"
#include "lib/siphash.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define IPLIMIT_MAGIC 0x52474950u /* "RGIP" */
#define IPLIMIT_BITS 14
#define IPLIMIT_BUCKETS (1u << IPLIMIT_BITS)
#define IPLIMIT_TABLES 3 /* this epoch, the previous, and the one zeroed next */
/* beyond login_timeout: the tick that enforces it runs once a second, and a
 * hand-off in progress is still pre-login */
#define IPLIMIT_SLACK_SECS 5
#define IPLIMIT_NO_TIMEOUT_SECS 180

/* stamp = 2 * epoch once the table is that epoch's, 2 * epoch + 1 while it
 * is being zeroed for it */
struct iplimit_table {
	uint32_t stamp;
	uint32_t pad[15];
	uint32_t count[2][IPLIMIT_BUCKETS];
};

struct iplimit {
	uint32_t magic;
	uint32_t epoch_secs;
	uint8_t key[16];
	uint8_t pad[40];
	struct iplimit_table table[IPLIMIT_TABLES];
};

uint32_t iplimit_epoch_secs(unsigned login_timeout)
{
	return login_timeout == 0 ? IPLIMIT_NO_TIMEOUT_SECS : login_timeout + IPLIMIT_SLACK_SECS;
}

int iplimit_create(uint32_t epoch_secs)
{
	int fd = memfd_create("ringgate-iplimit", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	struct iplimit head = { .magic = IPLIMIT_MAGIC, .epoch_secs = epoch_secs ? epoch_secs : 1 };
	if (getrandom(head.key, sizeof(head.key), 0) != (ssize_t)sizeof(head.key) ||
	    ftruncate(fd, sizeof(struct iplimit)) < 0 ||
	    pwrite(fd, &head, offsetof(struct iplimit, table), 0) !=
		    (ssize_t)offsetof(struct iplimit, table) ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		int err = errno != 0 ? errno : EIO;
		close(fd);
		return -err;
	}
	return fd;
}

int iplimit_map(int fd, struct iplimit **table_r)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((size_t)st.st_size != sizeof(struct iplimit))
		return -EINVAL;
	void *p = mmap(NULL, sizeof(struct iplimit), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	struct iplimit *t = p;
	if (t->magic != IPLIMIT_MAGIC || t->epoch_secs == 0) {
		munmap(p, sizeof(struct iplimit));
		return -EINVAL;
	}
	*table_r = t;
	return 0;
}

void iplimit_unmap(struct iplimit **table)
{
	if (*table != NULL)
		munmap(*table, sizeof(struct iplimit));
	*table = NULL;
}

static void buckets(const struct iplimit *t, const void *key, size_t len, uint16_t b_r[2])
{
	uint64_t h = siphash24(t->key, key, len);
	b_r[0] = (uint16_t)(h & (IPLIMIT_BUCKETS - 1));
	b_r[1] = (uint16_t)((h >> 32) & (IPLIMIT_BUCKETS - 1));
}

static uint32_t epoch_of(const struct iplimit *t, uint32_t now_secs)
{
	/* +1: epoch 0 means "not counted" in a ticket */
	return now_secs / t->epoch_secs + 1;
}

static struct iplimit_table *table_of(struct iplimit *t, uint32_t epoch)
{
	return &t->table[epoch % IPLIMIT_TABLES];
}

/* epoch's table when it holds epoch's counts, else NULL */
static struct iplimit_table *table_ready(struct iplimit *t, uint32_t epoch)
{
	struct iplimit_table *tb = table_of(t, epoch);
	return __atomic_load_n(&tb->stamp, __ATOMIC_ACQUIRE) == 2 * epoch ? tb : NULL;
}

/* epoch's table, zeroed first if it still holds an older epoch's; NULL while
 * someone else zeroes it */
static struct iplimit_table *table_current(struct iplimit *t, uint32_t epoch)
{
	struct iplimit_table *tb = table_of(t, epoch);
	uint32_t stamp = __atomic_load_n(&tb->stamp, __ATOMIC_ACQUIRE);
	if (stamp == 2 * epoch)
		return tb;
	if (stamp > 2 * epoch ||
	    !__atomic_compare_exchange_n(&tb->stamp, &stamp, 2 * epoch + 1, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return NULL;
	for (unsigned r = 0; r < 2; r++) {
		for (unsigned i = 0; i < IPLIMIT_BUCKETS; i++)
			__atomic_store_n(&tb->count[r][i], 0, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&tb->stamp, 2 * epoch, __ATOMIC_RELEASE);
	return tb;
}

static uint32_t counted(const struct iplimit_table *cur, const struct iplimit_table *prev,
			const uint16_t b[2])
{
	uint32_t est = UINT32_MAX;
	for (unsigned r = 0; r < 2; r++) {
		uint32_t n = cur == NULL ? 0 : __atomic_load_n(&cur->count[r][b[r]], __ATOMIC_RELAXED);
		if (prev != NULL)
			n += __atomic_load_n(&prev->count[r][b[r]], __ATOMIC_RELAXED);
		if (n < est)
			est = n;
	}
	return est;
}

bool iplimit_acquire(struct iplimit *t, const void *key, size_t key_len, uint32_t now_secs,
		     unsigned limit, struct iplimit_ticket *ticket_r)
{
	uint32_t epoch = epoch_of(t, now_secs);
	uint16_t b[2];
	memset(ticket_r, 0, sizeof(*ticket_r));
	buckets(t, key, key_len, b);
	struct iplimit_table *cur = table_current(t, epoch);
	if (cur == NULL)
		return true;
	if (counted(cur, table_ready(t, epoch - 1), b) >= limit)
		return false;
	for (unsigned r = 0; r < 2; r++)
		__atomic_add_fetch(&cur->count[r][b[r]], 1, __ATOMIC_RELAXED);
	*ticket_r = (struct iplimit_ticket){ .epoch = epoch, .bucket = { b[0], b[1] } };
	return true;
}

void iplimit_release(struct iplimit *t, struct iplimit_ticket *ticket)
{
	struct iplimit_table *tb = ticket->epoch == 0 ? NULL : table_ready(t, ticket->epoch);
	for (unsigned r = 0; tb != NULL && r < 2; r++) {
		/* never below zero: the table may have been zeroed under a very
		 * late release */
		uint32_t *n = &tb->count[r][ticket->bucket[r]];
		uint32_t v = __atomic_load_n(n, __ATOMIC_RELAXED);
		while (v > 0 && !__atomic_compare_exchange_n(n, &v, v - 1, true, __ATOMIC_RELAXED,
							     __ATOMIC_RELAXED))
			;
	}
	memset(ticket, 0, sizeof(*ticket));
}

unsigned iplimit_count(struct iplimit *t, const void *key, size_t key_len, uint32_t now_secs)
{
	uint32_t epoch = epoch_of(t, now_secs);
	uint16_t b[2];
	buckets(t, key, key_len, b);
	return counted(table_ready(t, epoch), table_ready(t, epoch - 1), b);
}
