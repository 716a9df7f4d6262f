#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "lib/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool parse_exact(const char *s, size_t len, struct json_object *o, const char **error)
{
	char *buf = malloc(len > 0 ? len : 1);
	memcpy(buf, s, len);
	bool ok = json_parse_object(buf, len, o, error);
	free(buf);
	return ok;
}

static const char *const good[] = {
	"{}",
	"{\"a\":1}",
	" {\"sub\" : \"alice\", \"exp\":2000000000 ,\"aud\":[\"x\",\"mail\"],\"n\":null,"
	"\"t\":true,\"f\":false,\"o\":{\"k\":[1,{\"z\":[]}]},\"neg\":-1.5e-3}",
	"{\"esc\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"}",
	"{\"utf8\":\"j\xc3\xbcrgen \xf0\x9f\x98\x80\",\"e\":\"\"}",
	"{\"n\":[0,-0,1.0,1e5,1E+5,1e-5,123456789012345678]}",
};

static void test_good(void **state)
{
	(void)state;
	struct json_object o;
	const char *error = NULL;
	for (unsigned i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!parse_exact(good[i], strlen(good[i]), &o, &error))
			fail_msg("%u: %s", i, error);
		/* every strict prefix is incomplete */
		size_t len = strlen(good[i]);
		for (size_t k = 0; k < len; k++)
			assert_false(parse_exact(good[i], k, &o, &error));
	}
	/* members point into the text: parse the literals themselves from here */
	assert_true(json_parse_object(good[2], strlen(good[2]), &o, &error));
	assert_int_equal(o.count, 8);
	char buf[64];
	assert_true(json_get_string(&o, "sub", buf, sizeof(buf)));
	assert_string_equal(buf, "alice");
	int64_t v;
	assert_true(json_get_int64(&o, "exp", &v));
	assert_int_equal(v, 2000000000);
	assert_false(json_get_int64(&o, "neg", &v)); /* an exponent */
	assert_false(json_get_int64(&o, "sub", &v));
	assert_false(json_get_string(&o, "exp", buf, sizeof(buf)));
	assert_false(json_get_string(&o, "missing", buf, sizeof(buf)));
	assert_int_equal(json_get(&o, "o")->type, JSON_OBJECT);
	assert_int_equal(json_get(&o, "aud")->type, JSON_ARRAY);
	assert_int_equal(json_get(&o, "n")->type, JSON_NULL);
	assert_int_equal(json_get(&o, "t")->type, JSON_TRUE);
	assert_int_equal(json_get(&o, "f")->type, JSON_FALSE);
	assert_true(json_member_has_string(json_get(&o, "aud"), "mail"));
	assert_false(json_member_has_string(json_get(&o, "aud"), "mai"));
	assert_true(json_member_has_string(json_get(&o, "sub"), "alice"));
	/* strings nested in objects in an array are not its elements */
	assert_false(json_member_has_string(json_get(&o, "o"), "k"));
	const struct json_member *m = json_get(&o, "o");
	assert_int_equal(m->raw_len, strlen("{\"k\":[1,{\"z\":[]}]}"));
	assert_memory_equal(m->raw, "{\"k\":[1,{\"z\":[]}]}", m->raw_len);

	assert_true(json_parse_object(good[3], strlen(good[3]), &o, &error));
	assert_true(json_get_string(&o, "esc", buf, sizeof(buf)));
	assert_string_equal(buf, "\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80");
	/* does not fit */
	assert_false(json_get_string(&o, "esc", buf, 5));

	/* a fraction is truncated (NumericDate) */
	assert_true(json_parse_object("{\"exp\":1700000000.75}", 21, &o, &error));
	assert_true(json_get_int64(&o, "exp", &v));
	assert_int_equal(v, 1700000000);
	assert_true(json_parse_object("{\"x\":99999999999999999999}", 26, &o, &error));
	assert_false(json_get_int64(&o, "x", &v));
	/* \u0000 is valid JSON but never a usable string */
	assert_true(json_parse_object("{\"x\":\"a\\u0000b\"}", 16, &o, &error));
	assert_false(json_get_string(&o, "x", buf, sizeof(buf)));
	/* a key longer than JSON_MAX_KEY is validated but not recorded */
	char longkey[200];
	int n = snprintf(longkey, sizeof(longkey), "{\"%0100d\":1,\"a\":2}", 0);
	assert_true(json_parse_object(longkey, (size_t)n, &o, &error));
	assert_int_equal(o.count, 1);
}

static void test_bad(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		const char *error;
	} bad[] = {
		{ "", "JSON document is not an object" },
		{ "[]", "JSON document is not an object" },
		{ "\"x\"", "JSON document is not an object" },
		{ "{", "unexpected end of JSON" },
		{ "{\"a\"", "expected ':' after a member name" },
		{ "{\"a\":", "unexpected end of JSON" },
		{ "{\"a\":1", "unexpected end of JSON" },
		{ "{a:1}", "expected a member name" },
		{ "{\"a\":1,}", "expected a member name" },
		{ "{\"a\":[1,]}", "unexpected character" },
		{ "{\"a\":1}}", "data after the JSON object" },
		{ "{\"a\":1} x", "data after the JSON object" },
		{ "{\"a\":1 \"b\":2}", "expected ',' or the end of the container" },
		{ "{\"a\":[1}", "expected ',' or the end of the container" },
		{ "{\"a\":tru}", "unexpected character" },
		{ "{\"a\":nul}", "unexpected character" },
		{ "{\"a\":'x'}", "unexpected character" },
		{ "{\"a\":01}", "expected ',' or the end of the container" },
		{ "{\"a\":-}", "malformed number" },
		{ "{\"a\":1.}", "malformed number" },
		{ "{\"a\":1e}", "malformed number" },
		{ "{\"a\":.5}", "unexpected character" },
		{ "{\"a\":\"x}", "unterminated string" },
		{ "{\"a\":\"x\\", "unterminated string" },
		{ "{\"a\":\"\x01\"}", "control character in a string" },
		{ "{\"a\":\"\xff\"}", "invalid UTF-8 in a string" },
		{ "{\"a\":\"\xc0\xaf\"}", "invalid UTF-8 in a string" },
		{ "{\"a\":\"\xed\xa0\x80\"}", "invalid UTF-8 in a string" },
		{ "{\"a\":\"\xf4\x90\x80\x80\"}", "invalid UTF-8 in a string" },
		{ "{\"a\":\"\\x\"}", "invalid escape" },
		{ "{\"a\":\"\\u12\"}", "malformed \\u escape" },
		{ "{\"a\":\"\\u12g4\"}", "malformed \\u escape" },
		{ "{\"a\":\"\\ud800\"}", "lone high surrogate" },
		{ "{\"a\":\"\\ud800\\u0041\"}", "lone high surrogate" },
		{ "{\"a\":\"\\udc00\"}", "lone low surrogate" },
		{ "{\"a\":1,\"a\":2}", "duplicate member name" },
		{ "{\"a\":1,\"\\u0061\":2}", "duplicate member name" },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct json_object o;
		const char *error = NULL;
		if (parse_exact(bad[i].s, strlen(bad[i].s), &o, &error))
			fail_msg("%u: accepted %s", i, bad[i].s);
		if (strcmp(error, bad[i].error) != 0)
			fail_msg("%u: %s: \"%s\", want \"%s\"", i, bad[i].s, error, bad[i].error);
	}
}

static void test_bounds(void **state)
{
	(void)state;
	struct json_object o;
	const char *error = NULL;
	/* 10,000 deep is refused at JSON_MAX_DEPTH, without recursion */
	char *deep = malloc(JSON_MAX_LEN);
	size_t n = 0;
	n += (size_t)sprintf(deep, "{\"a\":");
	for (int i = 0; i < 5000; i++)
		deep[n++] = '[';
	for (int i = 0; i < 5000; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	assert_false(json_parse_object(deep, n, &o, &error));
	assert_string_equal(error, "JSON nested too deep");
	/* exactly JSON_MAX_DEPTH is fine */
	n = (size_t)sprintf(deep, "{\"a\":");
	for (int i = 0; i < JSON_MAX_DEPTH - 1; i++)
		deep[n++] = '[';
	for (int i = 0; i < JSON_MAX_DEPTH - 1; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	assert_true(json_parse_object(deep, n, &o, &error));
	free(deep);
	/* too long, too many members */
	char *big = malloc(JSON_MAX_LEN + 1);
	memset(big, ' ', JSON_MAX_LEN + 1);
	memcpy(big, "{}", 2);
	assert_true(json_parse_object(big, JSON_MAX_LEN, &o, &error));
	assert_false(json_parse_object(big, JSON_MAX_LEN + 1, &o, &error));
	assert_string_equal(error, "JSON document too long");
	n = 0;
	big[n++] = '{';
	for (int i = 0; i <= JSON_MAX_MEMBERS; i++)
		n += (size_t)sprintf(big + n, "%s\"k%d\":%d", i > 0 ? "," : "", i, i);
	big[n++] = '}';
	assert_false(json_parse_object(big, n, &o, &error));
	assert_string_equal(error, "too many members");
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
