#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "lib/iplimit.h"
#include "lib/siphash.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define EPOCH 8u

static const uint8_t ip_a[5] = { 4, 192, 0, 2, 1 };
static const uint8_t ip_b[5] = { 4, 192, 0, 2, 2 };

/* the reference vectors of the SipHash paper: key 00..0f, input 00..len-1 */
static void test_siphash_vectors(void **state)
{
	(void)state;
	uint8_t key[16], in[15];
	for (unsigned i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (unsigned i = 0; i < 15; i++)
		in[i] = (uint8_t)i;
	assert_true(siphash24(key, in, 0) == 0x726fdb47dd0e0e31ull);
	assert_true(siphash24(key, in, 15) == 0xa129ca6149be45e5ull);
}

static struct iplimit *open_table(int *fd_r)
{
	int fd = iplimit_create(EPOCH);
	assert_true(fd >= 0);
	struct iplimit *t = NULL;
	assert_int_equal(iplimit_map(fd, &t), 0);
	if (fd_r != NULL)
		*fd_r = fd;
	else
		close(fd);
	return t;
}

static void test_limit_per_address(void **state)
{
	(void)state;
	struct iplimit *t = open_table(NULL);
	struct iplimit_ticket tk[4], extra;
	uint32_t now = 1000;
	for (unsigned i = 0; i < 3; i++) {
		assert_true(iplimit_acquire(t, ip_a, sizeof(ip_a), now, 3, &tk[i]));
		assert_int_not_equal(tk[i].epoch, 0);
	}
	assert_int_equal(iplimit_count(t, ip_a, sizeof(ip_a), now), 3);
	assert_false(iplimit_acquire(t, ip_a, sizeof(ip_a), now, 3, &extra));
	assert_int_equal(extra.epoch, 0);
	/* another address is not affected */
	assert_true(iplimit_acquire(t, ip_b, sizeof(ip_b), now, 3, &tk[3]));
	assert_int_equal(iplimit_count(t, ip_b, sizeof(ip_b), now), 1);
	/* a release makes room, and empties the ticket */
	iplimit_release(t, &tk[1]);
	assert_int_equal(tk[1].epoch, 0);
	iplimit_release(t, &tk[1]); /* a second release is a no-op */
	assert_int_equal(iplimit_count(t, ip_a, sizeof(ip_a), now), 2);
	assert_true(iplimit_acquire(t, ip_a, sizeof(ip_a), now, 3, &tk[1]));
	assert_false(iplimit_acquire(t, ip_a, sizeof(ip_a), now, 3, &extra));
	for (unsigned i = 0; i < 4; i++)
		iplimit_release(t, &tk[i]);
	assert_int_equal(iplimit_count(t, ip_a, sizeof(ip_a), now), 0);
	assert_int_equal(iplimit_count(t, ip_b, sizeof(ip_b), now), 0);
	iplimit_unmap(&t);
	assert_null(t);
}

/* a count made in one epoch is still seen in the next (the connection may
 * live on), released there, and forgotten two epochs later when nobody
 * released it (a killed process) */
static void test_epochs(void **state)
{
	(void)state;
	struct iplimit *t = open_table(NULL);
	struct iplimit_ticket kept, leaked, tk;
	uint32_t now = 10 * EPOCH + 1;
	assert_true(iplimit_acquire(t, ip_a, sizeof(ip_a), now, 2, &kept));
	assert_true(iplimit_acquire(t, ip_a, sizeof(ip_a), now, 2, &leaked));
	now += EPOCH;
	assert_int_equal(iplimit_count(t, ip_a, sizeof(ip_a), now), 2);
	assert_false(iplimit_acquire(t, ip_a, sizeof(ip_a), now, 2, &tk));
	iplimit_release(t, &kept);
	assert_int_equal(iplimit_count(t, ip_a, sizeof(ip_a), now), 1);
	assert_true(iplimit_acquire(t, ip_a, sizeof(ip_a), now, 2, &tk));
	assert_false(iplimit_acquire(t, ip_a, sizeof(ip_a), now, 2, &kept));
	now += EPOCH;
	/* the leaked count is gone; tk's (made last epoch) is not */
	assert_int_equal(iplimit_count(t, ip_a, sizeof(ip_a), now), 1);
	iplimit_release(t, &tk);
	assert_int_equal(iplimit_count(t, ip_a, sizeof(ip_a), now), 0);
	/* a release far too late must not take from the table's new epoch */
	assert_true(iplimit_acquire(t, ip_a, sizeof(ip_a), now, 2, &tk));
	now += 3 * EPOCH;
	assert_true(iplimit_acquire(t, ip_a, sizeof(ip_a), now, 2, &kept));
	iplimit_release(t, &tk);
	assert_int_equal(iplimit_count(t, ip_a, sizeof(ip_a), now), 1);
	iplimit_release(t, &leaked);
	assert_int_equal(iplimit_count(t, ip_a, sizeof(ip_a), now), 1);
	iplimit_release(t, &kept);
	assert_int_equal(iplimit_count(t, ip_a, sizeof(ip_a), now), 0);
	iplimit_unmap(&t);
}

/* processes share the counts: a child counts, the parent sees it */
static void test_shared_between_processes(void **state)
{
	(void)state;
	int fd;
	struct iplimit *t = open_table(&fd);
	uint32_t now = 5000;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct iplimit *ct = NULL;
		struct iplimit_ticket tk;
		if (iplimit_map(fd, &ct) != 0)
			_exit(2);
		for (unsigned i = 0; i < 5; i++) {
			if (!iplimit_acquire(ct, ip_a, sizeof(ip_a), now, 5, &tk))
				_exit(3);
		}
		_exit(iplimit_acquire(ct, ip_a, sizeof(ip_a), now, 5, &tk) ? 4 : 0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	struct iplimit_ticket tk;
	assert_int_equal(iplimit_count(t, ip_a, sizeof(ip_a), now), 5);
	assert_false(iplimit_acquire(t, ip_a, sizeof(ip_a), now, 5, &tk));
	/* a second mapping in this process is the same table */
	struct iplimit *t2 = NULL;
	assert_int_equal(iplimit_map(fd, &t2), 0);
	assert_int_equal(iplimit_count(t2, ip_a, sizeof(ip_a), now), 5);
	iplimit_unmap(&t2);
	iplimit_unmap(&t);
	close(fd);
}

/* only a table master made is accepted, and its size is sealed */
static void test_foreign_file(void **state)
{
	(void)state;
	struct iplimit *t = NULL;
	int fd = memfd_create("not-iplimit", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(iplimit_map(fd, &t), -EINVAL);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	assert_int_equal(iplimit_map(fd, &t), -EINVAL);
	close(fd);
	fd = iplimit_create(EPOCH);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), -1);
	assert_int_equal(errno, EPERM);
	close(fd);
	assert_true(iplimit_epoch_secs(0) > iplimit_epoch_secs(60) - 60);
	assert_true(iplimit_epoch_secs(180) > 180);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_siphash_vectors),
		cmocka_unit_test(test_limit_per_address),
		cmocka_unit_test(test_epochs),
		cmocka_unit_test(test_shared_between_processes),
		cmocka_unit_test(test_foreign_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
