#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "lib/log.h"

#include <string.h>

static void test_escape(void **state)
{
	(void)state;
	char out[64];
	assert_string_equal(log_escape("a LOGIN x", 9, 32, out, sizeof(out)), "a LOGIN x");
	assert_string_equal(log_escape("a\r\n\0\\", 5, 32, out, sizeof(out)), "a\\x0d\\x0a\\x00\\x5c");
	/* bounded by max, with a visible cut */
	assert_string_equal(log_escape("abcdefgh", 8, 3, out, sizeof(out)), "abc...");
	/* bounded by the output size, always terminated */
	char small[8];
	log_escape("\x01\x02\x03\x04", 4, 4, small, sizeof(small));
	assert_true(strlen(small) < sizeof(small));
	assert_string_equal(small, "\\x01");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
