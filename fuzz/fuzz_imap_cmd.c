/* libFuzzer target: the IMAP worker's command parser (src/imap/imap-cmd-parser).
 * The first input byte picks a split point so resumption is exercised too;
 * every parsed command's argument tree is walked to catch bad pointers. */
#include "imap/imap-cmd-parser.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
			(void)strlen(imap_cmd_parser_name(p));
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
