/* json.h — a bounded, non-recursive JSON (RFC 8259) validator that records
 * the members of the top-level object, for JWT headers and claims and for
 * OAuth2 introspection replies. The whole document is checked (strings are
 * UTF-8 without raw control characters, \u escapes pair their surrogates,
 * numbers have RFC 8259's form) before anything is read from it; nesting
 * deeper than JSON_MAX_DEPTH, a document longer than JSON_MAX_LEN, more than
 * JSON_MAX_MEMBERS top-level members or a duplicate top-level key is an
 * error, so a hostile document costs at most one linear pass and no
 * allocation. Members keep pointers into the caller's text. */
#ifndef RG_JSON_H
#define RG_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_LEN 16384
#define JSON_MAX_DEPTH 32
#define JSON_MAX_MEMBERS 64
#define JSON_MAX_KEY 64 /* longer top-level keys are validated but not recorded */

enum json_type { JSON_STRING, JSON_NUMBER, JSON_TRUE, JSON_FALSE, JSON_NULL, JSON_OBJECT, JSON_ARRAY };

struct json_member {
	char key[JSON_MAX_KEY + 1]; /* decoded */
	enum json_type type;
	const char *raw; /* the value's text: a string with its quotes */
	size_t raw_len;
};

struct json_object {
	unsigned count;
	struct json_member m[JSON_MAX_MEMBERS];
};

/* s (len bytes, not NUL-terminated) must be one object, whitespace around */
bool json_parse_object(const char *s, size_t len, struct json_object *obj, const char **error_r);
/* the member named key, NULL if absent */
const struct json_member *json_get(const struct json_object *obj, const char *key);
/* a JSON_STRING member's value decoded to UTF-8 with a NUL; false if it is
 * not a string, holds \u0000, or does not fit in outsize */
bool json_get_string(const struct json_object *obj, const char *key, char *out, size_t outsize);
/* a JSON_NUMBER member as an integer: a fraction is truncated (JWT's
 * NumericDate may carry one); false for exponents or out-of-range values */
bool json_get_int64(const struct json_object *obj, const char *key, int64_t *r);
/* whether a JSON_STRING member equals s, or a JSON_ARRAY member holds a
 * string equal to s (JWT's "aud") */
bool json_member_has_string(const struct json_member *m, const char *s);

#endif
