/* libFuzzer target: the IMAP worker's command parser (src/imap/imap-cmd-parser).
 * The first input byte picks a split point so resumption is exercised too;
 * every parsed command's argument tree is walked to catch bad pointers.
 * Parsed SEARCH programs are compiled and run on a sample message, and an
 * APPEND's message goes through the MIME view (ENVELOPE, BODYSTRUCTURE,
 * sections), as the worker would on mail from anyone. SELECT/EXAMINE
 * parameters and FETCH modifiers go through the QRESYNC/CONDSTORE
 * parsers (imap-qresync.c). */
#include "imap/imap-cmd-parser.h"
#include "imap/imap-qresync.h"
#include "imap/imap-search.h"
#include "lib/alloc.h"
#include "mail/maildir.h"
#include "mail/mime.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

static const char sample[] = "From: a@b\r\nSubject: s\r\nDate: 1 Jan 2020 00:00:00 +0000\r\n\r\nbody\r\n";

static const char *load_sample(void *ctx, size_t *len_r)
{
	(void)ctx;
	*len_r = sizeof(sample) - 1;
	return sample;
}

static void run_search(const struct imap_cmd_arg *args, size_t count)
{
	const char *error;
	struct imap_search *s = imap_search_parse(args, count, 3, 7, &error);
	if (s == NULL)
		return;
	for (uint32_t seq = 1; seq <= 3; seq++) {
		struct imap_search_msg m = { .seq = seq, .uid = seq * 2, .flags = seq == 2 ? "S" : "",
					     .size = 60, .internal_date = 1577836800,
					     .load = load_sample };
		(void)imap_search_match(s, &m);
	}
	imap_search_free(s);
}

static void run_mime(const char *raw, size_t raw_len)
{
	size_t len;
	char *msg = maildir_to_crlf(raw, raw_len, &len);
	struct mime_part *root = mime_parse(msg, len);
	struct mime_buf b = { 0 };
	mime_envelope(msg, mime_header_size(msg, len), &b);
	mime_bodystructure(root, msg, true, &b);
	mime_bodystructure(root, msg, false, &b);
	static const char *const sections[] = { "1", "2", "1.1", "1.2.3", "2.1" };
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		const struct mime_part *p = mime_find_part(root, sections[i], strlen(sections[i]));
		if (p != NULL && (p->body_off + p->body_len > len || p->hdr_off + p->hdr_len > len))
			__builtin_trap();
	}
	char *subject = mime_header_get(msg, mime_header_size(msg, len), "Subject");
	if (subject != NULL) {
		char *dec = mime_decode_words(subject);
		rg_free(dec);
		rg_free(subject);
	}
	mime_buf_free(&b);
	mime_free(root);
	rg_free(msg);
}

static void run_params(const char *name, const struct imap_cmd_arg *args, size_t count)
{
	const char *error;
	if ((strcasecmp(name, "SELECT") == 0 || strcasecmp(name, "EXAMINE") == 0) && count == 2) {
		for (int enabled = 0; enabled < 2; enabled++) {
			struct imap_select_params p;
			if (!imap_select_params_parse(&args[1], enabled != 0, &p, &error)) {
				(void)strlen(error);
				continue;
			}
			if ((p.known == NULL) != (p.nknown == 0) || (p.qresync && enabled == 0))
				__builtin_trap();
			imap_select_params_free(&p);
		}
		return;
	}
	/* FETCH set items (mods) / UID FETCH set items (mods) */
	size_t at = strcasecmp(name, "UID") == 0 ? 3 : 2;
	if (count == at + 1 && (at == 2 ? strcasecmp(name, "FETCH") == 0 :
				args[0].type == IMAP_CMD_ARG_ATOM && strcasecmp(args[0].str, "FETCH") == 0)) {
		struct imap_fetch_modifiers m;
		if (imap_fetch_modifiers_parse(&args[at], &m, &error) && m.vanished && !m.changedsince)
			__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t walk(const struct imap_cmd_arg *args, size_t count)
{
	size_t sum = 0;
	for (size_t i = 0; i < count; i++) {
		if (args[i].type == IMAP_CMD_ARG_LIST) {
			sum += walk(args[i].list, args[i].count);
		} else {
			/* every string is NUL-terminated at len */
			if (args[i].str[args[i].len] != '\0')
				__builtin_trap();
			sum += args[i].len;
			(void)imap_cmd_arg_astring(&args[i]);
		}
	}
	return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t step = (size_t)data[0] % 17 + 1;
	data++;
	size--;
	struct imap_cmd_parser *p = imap_cmd_parser_create();
	size_t pos = 0;
	while (pos < size) {
		size_t end = pos + step < size ? pos + step : size;
		size_t used;
		enum parse_result r = imap_cmd_parser_feed(p, data + pos, end - pos, &used);
		if (used > end - pos)
			__builtin_trap();
		pos += used;
		(void)imap_cmd_parser_take_continuation(p);
		if (r == PARSE_OK) {
			size_t count;
			const struct imap_cmd_arg *args = imap_cmd_parser_args(p, &count);
			if (imap_cmd_parser_tag(p) == NULL || walk(args, count) > IMAP_MAX_COMMAND)
				__builtin_trap();
			const char *name = imap_cmd_parser_name(p);
			if (strcasecmp(name, "SEARCH") == 0)
				run_search(args, count);
			else if (strcasecmp(name, "APPEND") == 0 && count > 0 &&
				 args[count - 1].type == IMAP_CMD_ARG_LITERAL)
				run_mime(args[count - 1].str, args[count - 1].len);
			else
				run_params(name, args, count);
		} else if (r == PARSE_ERROR) {
			(void)strlen(imap_cmd_parser_error(p));
			if (imap_cmd_parser_fatal(p))
				break;
		} else if (used == 0) {
			__builtin_trap(); /* MORE must make progress */
		}
	}
	imap_cmd_parser_destroy(p);
	return 0;
}
