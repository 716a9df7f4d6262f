#include "lib/json.h"

#include <limits.h>
#include <string.h>

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool hex4(const char *s, size_t len, size_t pos, uint32_t *v_r)
{
	if (len - pos < 4)
		return false;
	uint32_t v = 0;
	for (size_t i = 0; i < 4; i++) {
		int h = hexval(s[pos + i]);
		if (h < 0)
			return false;
		v = v << 4 | (uint32_t)h;
	}
	*v_r = v;
	return true;
}

/* put code point cp as UTF-8; *fits goes false when out is full */
static void put_cp(uint32_t cp, char *out, size_t outsize, size_t *o, bool *fits)
{
	uint8_t b[4];
	size_t n;
	if (cp < 0x80) {
		b[0] = (uint8_t)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (uint8_t)(0xc0 | cp >> 6);
		b[1] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (uint8_t)(0xe0 | cp >> 12);
		b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (uint8_t)(0xf0 | cp >> 18);
		b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 4;
	}
	if (out == NULL)
		return;
	if (*o + n >= outsize) {
		*fits = false;
		return;
	}
	memcpy(out + *o, b, n);
	*o += n;
}

/* one UTF-8 sequence at s[pos] (its first byte >= 0x80): its length, 0 if
   malformed (overlong, surrogate, beyond U+10FFFF, truncated) */
static size_t utf8_seq(const char *s, size_t len, size_t pos)
{
	uint8_t c = (uint8_t)s[pos];
	size_t n;
	uint32_t cp, min;
	if ((c & 0xe0) == 0xc0) {
		n = 1; cp = c & 0x1f; min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 2; cp = c & 0x0f; min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 3; cp = c & 0x07; min = 0x10000;
	} else {
		return 0;
	}
	if (len - pos <= n)
		return 0;
	for (size_t k = 1; k <= n; k++) {
		uint8_t d = (uint8_t)s[pos + k];
		if ((d & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (d & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n + 1;
}

/* A string whose opening quote is at *pos: validated, and decoded into out
   when out != NULL (NUL-terminated; *fits false if it does not fit or
   holds U+0000). *pos ends past the closing quote. */
static bool scan_string(const char *s, size_t len, size_t *pos, char *out, size_t outsize,
			bool *fits, const char **error_r)
{
	size_t p = *pos + 1, o = 0;
	*fits = out != NULL && outsize > 0;
	for (;;) {
		if (p >= len) {
			*error_r = "unterminated string";
			return false;
		}
		uint8_t c = (uint8_t)s[p];
		if (c == '"') {
			p++;
			break;
		}
		if (c < 0x20) {
			*error_r = "control character in a string";
			return false;
		}
		if (c >= 0x80) {
			size_t n = utf8_seq(s, len, p);
			if (n == 0) {
				*error_r = "invalid UTF-8 in a string";
				return false;
			}
			if (out != NULL && *fits) {
				if (o + n >= outsize)
					*fits = false;
				else
					memcpy(out + o, s + p, n), o += n;
			}
			p += n;
			continue;
		}
		if (c != '\\') {
			if (out != NULL && *fits) {
				if (o + 1 >= outsize)
					*fits = false;
				else
					out[o++] = (char)c;
			}
			p++;
			continue;
		}
		if (p + 1 >= len) {
			*error_r = "unterminated string";
			return false;
		}
		char e = s[p + 1];
		p += 2;
		uint32_t cp;
		switch (e) {
		case '"': cp = '"'; break;
		case '\\': cp = '\\'; break;
		case '/': cp = '/'; break;
		case 'b': cp = '\b'; break;
		case 'f': cp = '\f'; break;
		case 'n': cp = '\n'; break;
		case 'r': cp = '\r'; break;
		case 't': cp = '\t'; break;
		case 'u':
			if (!hex4(s, len, p, &cp)) {
				*error_r = "malformed \\u escape";
				return false;
			}
			p += 4;
			if (cp >= 0xdc00 && cp <= 0xdfff) {
				*error_r = "lone low surrogate";
				return false;
			}
			if (cp >= 0xd800 && cp <= 0xdbff) {
				uint32_t lo;
				if (len - p < 6 || s[p] != '\\' || s[p + 1] != 'u' ||
				    !hex4(s, len, p + 2, &lo) || lo < 0xdc00 || lo > 0xdfff) {
					*error_r = "lone high surrogate";
					return false;
				}
				p += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			break;
		default:
			*error_r = "invalid escape";
			return false;
		}
		if (cp == 0)
			*fits = false;
		else if (*fits)
			put_cp(cp, out, outsize, &o, fits);
	}
	if (out != NULL && outsize > 0)
		out[*fits ? o : 0] = '\0';
	*pos = p;
	return true;
}

static bool scan_number(const char *s, size_t len, size_t *pos)
{
	size_t p = *pos;
	if (p < len && s[p] == '-')
		p++;
	if (p >= len)
		return false;
	if (s[p] == '0') {
		p++;
	} else if (s[p] >= '1' && s[p] <= '9') {
		while (p < len && s[p] >= '0' && s[p] <= '9')
			p++;
	} else {
		return false;
	}
	if (p < len && s[p] == '.') {
		p++;
		size_t start = p;
		while (p < len && s[p] >= '0' && s[p] <= '9')
			p++;
		if (p == start)
			return false;
	}
	if (p < len && (s[p] == 'e' || s[p] == 'E')) {
		p++;
		if (p < len && (s[p] == '+' || s[p] == '-'))
			p++;
		size_t start = p;
		while (p < len && s[p] >= '0' && s[p] <= '9')
			p++;
		if (p == start)
			return false;
	}
	*pos = p;
	return true;
}

static size_t skip_ws(const char *s, size_t len, size_t p)
{
	while (p < len && (s[p] == ' ' || s[p] == '\t' || s[p] == '\n' || s[p] == '\r'))
		p++;
	return p;
}

enum state { WANT_VALUE, WANT_KEY, AFTER_VALUE };

bool json_parse_object(const char *s, size_t len, struct json_object *obj, const char **error_r)
{
	obj->count = 0;
	if (len > JSON_MAX_LEN) {
		*error_r = "JSON document too long";
		return false;
	}
	size_t p = skip_ws(s, len, 0);
	if (p >= len || s[p] != '{') {
		*error_r = "JSON document is not an object";
		return false;
	}
	/* bit d of stack: the container at depth d+1 is an object */
	uint64_t stack = 0;
	unsigned depth = 0;
	enum state st = WANT_VALUE;
	struct json_member *cur = NULL; /* the top-level member being read */
	char key[JSON_MAX_KEY + 1];
	bool key_fits = false;

	for (;;) {
		p = skip_ws(s, len, p);
		if (st == AFTER_VALUE) {
			if (depth == 1 && cur != NULL) {
				cur->raw_len = (size_t)(s + p - cur->raw);
				/* trailing whitespace of the value is not part of it */
				while (cur->raw_len > 0 &&
				       (cur->raw[cur->raw_len - 1] == ' ' || cur->raw[cur->raw_len - 1] == '\t' ||
					cur->raw[cur->raw_len - 1] == '\n' || cur->raw[cur->raw_len - 1] == '\r'))
					cur->raw_len--;
				cur = NULL;
			}
			if (depth == 0)
				break;
			if (p >= len) {
				*error_r = "unexpected end of JSON";
				return false;
			}
			bool in_obj = (stack >> (depth - 1) & 1) != 0;
			char c = s[p++];
			if (c == ',') {
				st = in_obj ? WANT_KEY : WANT_VALUE;
			} else if ((c == '}' && in_obj) || (c == ']' && !in_obj)) {
				depth--;
			} else {
				*error_r = "expected ',' or the end of the container";
				return false;
			}
			continue;
		}
		if (p >= len) {
			*error_r = "unexpected end of JSON";
			return false;
		}
		if (st == WANT_KEY) {
			if (s[p] != '"') {
				*error_r = "expected a member name";
				return false;
			}
			bool fits;
			if (!scan_string(s, len, &p, depth == 1 ? key : NULL, sizeof(key), &fits,
					 error_r))
				return false;
			key_fits = depth == 1 && fits;
			p = skip_ws(s, len, p);
			if (p >= len || s[p] != ':') {
				*error_r = "expected ':' after a member name";
				return false;
			}
			p = skip_ws(s, len, p + 1);
			if (depth == 1 && key_fits) {
				for (unsigned i = 0; i < obj->count; i++) {
					if (strcmp(obj->m[i].key, key) == 0) {
						*error_r = "duplicate member name";
						return false;
					}
				}
				if (obj->count == JSON_MAX_MEMBERS) {
					*error_r = "too many members";
					return false;
				}
				cur = &obj->m[obj->count++];
				memcpy(cur->key, key, sizeof(key));
				cur->raw = s + p;
				cur->raw_len = 0;
			}
			st = WANT_VALUE;
			continue;
		}
		/* WANT_VALUE */
		char c = s[p];
		enum json_type type;
		if (c == '{' || c == '[') {
			if (depth == JSON_MAX_DEPTH) {
				*error_r = "JSON nested too deep";
				return false;
			}
			if (c == '{')
				stack |= (uint64_t)1 << depth;
			else
				stack &= ~((uint64_t)1 << depth);
			depth++;
			if (cur != NULL && depth == 2)
				cur->type = c == '{' ? JSON_OBJECT : JSON_ARRAY;
			p = skip_ws(s, len, p + 1);
			if (p < len && s[p] == (c == '{' ? '}' : ']')) {
				p++;
				depth--;
				st = AFTER_VALUE;
			} else {
				st = c == '{' ? WANT_KEY : WANT_VALUE;
			}
			continue;
		}
		if (c == '"') {
			bool fits;
			if (!scan_string(s, len, &p, NULL, 0, &fits, error_r))
				return false;
			type = JSON_STRING;
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			if (!scan_number(s, len, &p)) {
				*error_r = "malformed number";
				return false;
			}
			type = JSON_NUMBER;
		} else if (len - p >= 4 && memcmp(s + p, "true", 4) == 0) {
			p += 4;
			type = JSON_TRUE;
		} else if (len - p >= 5 && memcmp(s + p, "false", 5) == 0) {
			p += 5;
			type = JSON_FALSE;
		} else if (len - p >= 4 && memcmp(s + p, "null", 4) == 0) {
			p += 4;
			type = JSON_NULL;
		} else {
			*error_r = "unexpected character";
			return false;
		}
		if (cur != NULL && depth == 1)
			cur->type = type;
		st = AFTER_VALUE;
	}
	if (skip_ws(s, len, p) != len) {
		*error_r = "data after the JSON object";
		return false;
	}
	return true;
}

const struct json_member *json_get(const struct json_object *obj, const char *key)
{
	for (unsigned i = 0; i < obj->count; i++) {
		if (strcmp(obj->m[i].key, key) == 0)
			return &obj->m[i];
	}
	return NULL;
}

static bool member_string(const struct json_member *m, char *out, size_t outsize)
{
	if (m == NULL || m->type != JSON_STRING)
		return false;
	size_t p = 0;
	bool fits;
	const char *error;
	return scan_string(m->raw, m->raw_len, &p, out, outsize, &fits, &error) && fits;
}

bool json_get_string(const struct json_object *obj, const char *key, char *out, size_t outsize)
{
	return member_string(json_get(obj, key), out, outsize);
}

bool json_get_int64(const struct json_object *obj, const char *key, int64_t *r)
{
	const struct json_member *m = json_get(obj, key);
	if (m == NULL || m->type != JSON_NUMBER)
		return false;
	size_t p = 0;
	bool neg = m->raw[0] == '-';
	if (neg)
		p++;
	int64_t v = 0;
	for (; p < m->raw_len && m->raw[p] >= '0' && m->raw[p] <= '9'; p++) {
		int d = m->raw[p] - '0';
		if (v > (INT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (p < m->raw_len && m->raw[p] == '.') {
		p++;
		while (p < m->raw_len && m->raw[p] >= '0' && m->raw[p] <= '9')
			p++;
	}
	if (p != m->raw_len)
		return false; /* an exponent */
	*r = neg ? -v : v;
	return true;
}

bool json_member_has_string(const struct json_member *m, const char *want)
{
	char buf[JSON_MAX_KEY * 4];
	if (m == NULL)
		return false;
	if (m->type == JSON_STRING)
		return member_string(m, buf, sizeof(buf)) && strcmp(buf, want) == 0;
	if (m->type != JSON_ARRAY)
		return false;
	/* the array was validated: walk its top-level strings, skipping any
	   nested containers by counting brackets outside strings */
	size_t p = 1;
	unsigned nest = 0;
	while (p < m->raw_len) {
		char c = m->raw[p];
		if (c == '"') {
			bool fits;
			const char *error;
			if (!scan_string(m->raw, m->raw_len, &p, buf, sizeof(buf), &fits, &error))
				return false;
			if (nest == 0 && fits && strcmp(buf, want) == 0)
				return true;
			continue;
		}
		if (c == '[' || c == '{')
			nest++;
		else if ((c == ']' || c == '}') && nest > 0)
			nest--;
		p++;
	}
	return false;
}
