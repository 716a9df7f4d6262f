#include "lib/access-proto.h"

#include <stdio.h>
#include <string.h>

static bool field_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= ' ' || ch >= 0x7f)
			return false;
	}
	return true;
}

size_t access_request_format(char *buf, size_t size, const char *service, const char *rip,
			     const char *lip)
{
	if (rip == NULL || rip[0] == '\0')
		rip = "-";
	if (lip == NULL || lip[0] == '\0')
		lip = "-";
	if (!field_ok(service, ACCESS_SERVICE_MAX) || !field_ok(rip, ACCESS_REQUEST_MAX) ||
	    !field_ok(lip, ACCESS_REQUEST_MAX))
		return 0;
	if (size > ACCESS_REQUEST_MAX + 1)
		size = ACCESS_REQUEST_MAX + 1;
	int n = snprintf(buf, size, "%s %s %s\n", service, rip, lip);
	if (n < 0 || (size_t)n >= size)
		return 0;
	return (size_t)n;
}

void access_reply_init(struct access_reply_parser *p)
{
	p->state = 0;
	p->allow = false;
}

enum parse_result access_reply_feed(struct access_reply_parser *p, const uint8_t *data, size_t len,
				    bool *allow_r)
{
	for (size_t i = 0; i < len; i++) {
		switch (p->state) {
		case 0:
			if (data[i] != '0' && data[i] != '1')
				return PARSE_ERROR;
			p->allow = data[i] == '1';
			p->state = 1;
			break;
		case 1:
			if (data[i] != '\n')
				return PARSE_ERROR;
			p->state = 2;
			break;
		default:
			return PARSE_ERROR; /* a byte after the answer */
		}
	}
	if (p->state != 2)
		return PARSE_MORE;
	*allow_r = p->allow;
	return PARSE_OK;
}

void access_request_init(struct access_request_parser *p)
{
	p->len = 0;
}

enum parse_result access_request_feed(struct access_request_parser *p, const uint8_t *data,
				      size_t len, size_t *consumed_r, struct access_request *req_r,
				      const char **error_r)
{
	*consumed_r = 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t ch = data[i];
		if (ch == '\n') {
			*consumed_r = i + 1;
			p->line[p->len] = '\0';
			/* exactly three single-space-separated fields */
			char *f[3];
			unsigned n = 0;
			char *s = p->line;
			for (;;) {
				if (*s == '\0' || *s == ' ') {
					*error_r = "empty field";
					return PARSE_ERROR;
				}
				if (n == 3) {
					*error_r = "too many fields";
					return PARSE_ERROR;
				}
				f[n++] = s;
				s = strchr(s, ' ');
				if (s == NULL)
					break;
				*s++ = '\0';
			}
			if (n != 3) {
				*error_r = "too few fields";
				return PARSE_ERROR;
			}
			if (strlen(f[0]) > ACCESS_SERVICE_MAX) {
				*error_r = "service name too long";
				return PARSE_ERROR;
			}
			req_r->service = f[0];
			req_r->rip = f[1];
			req_r->lip = f[2];
			return PARSE_OK;
		}
		if (ch < ' ' || ch >= 0x7f) {
			*error_r = "control character in request";
			return PARSE_ERROR;
		}
		/* room for the NUL that replaces the LF */
		if (p->len + 1 >= ACCESS_REQUEST_MAX) {
			*error_r = "request too long";
			return PARSE_ERROR;
		}
		p->line[p->len++] = (char)ch;
	}
	*consumed_r = len;
	return PARSE_MORE;
}
