#include "stats/stats-request.h"

#include <string.h>

void stats_http_init(struct stats_http_parser *p)
{
	memset(p, 0, sizeof(*p));
}

/* the request line, without its LF (and CR): METHOD SP /PATH SP HTTP/1.x */
static void http_request_line(struct stats_http_parser *p)
{
	if (p->line_len > sizeof(p->line)) {
		p->bad = true;
		p->error = "request line too long";
		return;
	}
	size_t len = p->line_len;
	if (len > 0 && p->line[len - 1] == '\r')
		len--;
	const char *line = p->line;
	const char *sp1 = memchr(line, ' ', len);
	const char *sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - line)) : NULL;
	if (sp2 == NULL) {
		p->bad = true;
		p->error = "not METHOD PATH VERSION";
		return;
	}
	size_t mlen = (size_t)(sp1 - line);
	size_t plen = (size_t)(sp2 - sp1 - 1);
	size_t vlen = len - (size_t)(sp2 + 1 - line);
	if (mlen == 0 || mlen > STATS_HTTP_METHOD_MAX) {
		p->bad = true;
		p->error = "bad method";
		return;
	}
	for (size_t i = 0; i < mlen; i++) {
		if (line[i] < 'A' || line[i] > 'Z') {
			p->bad = true;
			p->error = "bad method";
			return;
		}
	}
	if (plen == 0 || plen > STATS_HTTP_PATH_MAX || sp1[1] != '/') {
		p->bad = true;
		p->error = "bad path";
		return;
	}
	if (vlen != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 || (sp2[8] != '0' && sp2[8] != '1')) {
		p->bad = true;
		p->error = "not HTTP/1.0 or HTTP/1.1";
		return;
	}
	memcpy(p->method, line, mlen);
	p->method[mlen] = '\0';
	memcpy(p->path, sp1 + 1, plen);
	p->path[plen] = '\0';
	p->minor = (unsigned)(sp2[8] - '0');
}

enum parse_result stats_http_feed(struct stats_http_parser *p, const uint8_t *data, size_t len,
				  size_t *consumed_r, const char **error_r)
{
	size_t i = 0;
	*consumed_r = 0;
	if (p->done)
		return PARSE_OK;
	for (; i < len; i++) {
		if (p->total >= STATS_HTTP_MAX) {
			*consumed_r = i;
			*error_r = "request too large";
			return PARSE_ERROR;
		}
		p->total++;
		uint8_t c = data[i];
		if (!p->in_headers) {
			if (c == '\n') {
				http_request_line(p);
				p->in_headers = true;
				continue;
			}
			if (p->line_len < sizeof(p->line))
				p->line[p->line_len] = (char)c;
			p->line_len++;
			continue;
		}
		if (c == '\n') {
			if (p->hdr_len == 0 || (p->hdr_len == 1 && p->hdr_cr)) {
				p->done = true;
				*consumed_r = i + 1;
				return PARSE_OK;
			}
			p->hdr_len = 0;
			p->hdr_cr = false;
			continue;
		}
		/* only the length of a header line matters, and whether it is a
		 * lone CR (the CRLF of the empty line) */
		p->hdr_cr = p->hdr_len == 0 && c == '\r';
		p->hdr_len++;
	}
	*consumed_r = len;
	return PARSE_MORE;
}

enum stats_http_answer stats_http_answer(const struct stats_http_parser *p)
{
	if (p->bad)
		return STATS_HTTP_BAD_REQUEST;
	if (strcmp(p->method, "GET") != 0)
		return STATS_HTTP_BAD_METHOD;
	if (strcmp(p->path, "/metrics") != 0 && strcmp(p->path, "/") != 0)
		return STATS_HTTP_NOT_FOUND;
	return STATS_HTTP_METRICS;
}

void stats_ctl_init(struct stats_ctl_parser *p)
{
	p->len = 0;
	p->args = 0;
	p->line[0] = '\0';
}

const char *stats_ctl_args(const struct stats_ctl_parser *p)
{
	return p->line + p->args;
}

enum parse_result stats_ctl_feed(struct stats_ctl_parser *p, const uint8_t *data, size_t len,
				 size_t *consumed_r, enum ctl_cmd *cmd_r, const char **error_r)
{
	for (size_t i = 0; i < len; i++) {
		if (data[i] != '\n') {
			if (p->len >= STATS_CTL_MAX - 1) {
				*consumed_r = i;
				*error_r = "command line too long";
				return PARSE_ERROR;
			}
			if (p->len < sizeof(p->line))
				p->line[p->len] = (char)data[i];
			p->len++;
			continue;
		}
		*consumed_r = i + 1;
		size_t n = p->len;
		if (n > sizeof(p->line)) {
			*cmd_r = CTL_CMD_NONE;
			return PARSE_OK;
		}
		while (n > 0 && (p->line[n - 1] == '\r' || p->line[n - 1] == ' '))
			n--;
		enum ctl_cmd cmd = ctl_cmd_lookup(p->line, n);
		/* the one command with arguments: `auth flush USER...` */
		static const char flush[] = "auth flush ";
		p->args = n;
		if (cmd == CTL_CMD_NONE && n > sizeof(flush) - 1 &&
		    memcmp(p->line, flush, sizeof(flush) - 1) == 0) {
			cmd = CTL_CMD_AUTH_FLUSH;
			p->args = sizeof(flush) - 1;
			for (size_t k = p->args; k < n; k++) {
				unsigned char ch = (unsigned char)p->line[k];
				if (ch < ' ' || ch == 0x7f)
					cmd = CTL_CMD_NONE; /* names have no controls */
			}
		}
		p->line[n] = '\0';
		/* metrics is HTTP's: the control socket has no use for the bare body */
		*cmd_r = cmd == CTL_CMD_METRICS ? CTL_CMD_NONE : cmd;
		return PARSE_OK;
	}
	*consumed_r = len;
	return PARSE_MORE;
}
