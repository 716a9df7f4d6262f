/* libFuzzer target: src/lib/json.c, the bounded JSON validator behind JWT
 * headers and claims. The whole input is one document. Checks: a failure
 * says why; a success records at most JSON_MAX_MEMBERS distinct members
 * whose raw values lie inside the input, and the getters stay inside them. */
#include "lib/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct json_object o;
	const char *error = NULL;
	if (!json_parse_object(s, size, &o, &error)) {
		if (error == NULL)
			abort();
		return 0;
	}
	if (o.count > JSON_MAX_MEMBERS)
		abort();
	for (unsigned i = 0; i < o.count; i++) {
		const struct json_member *m = &o.m[i];
		if (m->raw < s || m->raw + m->raw_len > s + size || m->raw_len == 0 ||
		    strlen(m->key) > JSON_MAX_KEY)
			abort();
		for (unsigned j = 0; j < i; j++) {
			if (strcmp(o.m[j].key, m->key) == 0)
				abort();
		}
		if (json_get(&o, m->key) != m)
			abort();
		char buf[256];
		int64_t v;
		if (json_get_string(&o, m->key, buf, sizeof(buf)) &&
		    (m->type != JSON_STRING || strlen(buf) >= sizeof(buf)))
			abort();
		if (json_get_int64(&o, m->key, &v) && m->type != JSON_NUMBER)
			abort();
		(void)json_member_has_string(m, "mail");
	}
	return 0;
}
