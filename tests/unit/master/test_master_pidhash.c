/* master-pidhash: master's children by pid — adds across growth, finds,
 * removes (head, middle and tail of a chain), misses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "master/master-pidhash.h"

struct item {
	struct pidhash_node node;
	int tag;
};

static void test_empty(void **state)
{
	(void)state;
	struct pidhash h = { 0 };
	struct item it = { .node.pid = 5 };
	assert_null(pidhash_find(&h, 5));
	assert_false(pidhash_remove(&h, &it.node));
	pidhash_free(&h);
}

/* many pids (sequential, as the kernel hands them out, plus strays) across
 * several doublings; every one found, none that was not added */
static void test_many_grow_find_remove(void **state)
{
	(void)state;
	enum { N = 5000 };
	struct item *items = calloc(N, sizeof(*items));
	assert_non_null(items);
	struct pidhash h = { 0 };
	for (int i = 0; i < N; i++) {
		items[i].node.pid = i < N / 2 ? 1000 + i : 4000000 - 7 * i;
		items[i].tag = i;
		pidhash_add(&h, &items[i].node);
	}
	assert_int_equal(h.count, N);
	assert_true(h.size >= N);
	assert_int_equal(h.size & (h.size - 1), 0);
	for (int i = 0; i < N; i++) {
		struct pidhash_node *n = pidhash_find(&h, items[i].node.pid);
		assert_ptr_equal(n, &items[i].node);
		assert_int_equal(((struct item *)n)->tag, i);
	}
	assert_null(pidhash_find(&h, 999));
	assert_null(pidhash_find(&h, 1000 + N / 2));
	/* remove every other one: the rest stay findable */
	for (int i = 0; i < N; i += 2)
		assert_true(pidhash_remove(&h, &items[i].node));
	assert_int_equal(h.count, N / 2);
	for (int i = 0; i < N; i++) {
		struct pidhash_node *n = pidhash_find(&h, items[i].node.pid);
		if (i % 2 == 0)
			assert_null(n);
		else
			assert_ptr_equal(n, &items[i].node);
	}
	/* removing twice fails the second time */
	assert_false(pidhash_remove(&h, &items[0].node));
	for (int i = 1; i < N; i += 2)
		assert_true(pidhash_remove(&h, &items[i].node));
	assert_int_equal(h.count, 0);
	for (int i = 0; i < N; i++)
		assert_null(pidhash_find(&h, items[i].node.pid));
	pidhash_free(&h);
	assert_int_equal(h.size, 0);
	free(items);
}

/* pids that share a bucket: removing the head, a middle and the last of
 * a chain keeps the others */
static void test_chain(void **state)
{
	(void)state;
	struct pidhash h = { 0 };
	struct item first = { .node.pid = 1 };
	pidhash_add(&h, &first.node);
	unsigned size = h.size;
	/* a pid maps to the same bucket as 1 when its hash agrees: find some */
	struct item same[4];
	int found = 0;
	for (pid_t p = 2; found < 4 && p < 10000000; p++) {
		struct pidhash probe = { .buckets = h.buckets, .size = h.size };
		struct item tmp = { .node.pid = p };
		pidhash_add(&probe, &tmp.node); /* puts tmp at its bucket's head */
		bool collides = probe.buckets != h.buckets ? false : tmp.node.next == &first.node ||
			(found > 0 && tmp.node.next == &same[found - 1].node);
		(void)pidhash_remove(&probe, &tmp.node);
		if (!collides)
			continue;
		same[found] = (struct item){ .node.pid = p, .tag = found };
		pidhash_add(&h, &same[found].node);
		found++;
	}
	assert_int_equal(found, 4);
	assert_int_equal(h.size, size); /* 5 entries: no growth */
	assert_true(pidhash_remove(&h, &same[3].node));  /* head of the chain */
	assert_true(pidhash_remove(&h, &same[1].node));  /* middle */
	assert_true(pidhash_remove(&h, &first.node));    /* tail */
	assert_ptr_equal(pidhash_find(&h, same[0].node.pid), &same[0].node);
	assert_ptr_equal(pidhash_find(&h, same[2].node.pid), &same[2].node);
	assert_null(pidhash_find(&h, 1));
	assert_null(pidhash_find(&h, same[1].node.pid));
	assert_int_equal(h.count, 2);
	pidhash_free(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_many_grow_find_remove),
		cmocka_unit_test(test_chain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
