/* fuzz_config.c — the config parser and settings validation on arbitrary
 * text. Files are off (CONFIG_FLAG_NO_FILES): !include and <FILE must fail
 * cleanly, never touch the filesystem. A loaded result is also printed and
 * the printout loaded again, which must succeed (print/load agree). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/alloc.h"
#include "lib/config.h"
#include "lib/settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config_params params = { .flags = CONFIG_FLAG_NO_FILES };
	struct config_node *root;
	char *error = NULL;

	if (config_parse_string("fuzz.conf", (const char *)data, size, &params, &root, &error) == 0)
		config_free(root);
	else
		rg_free(error);

	struct settings *set = settings_load_string("fuzz.conf", (const char *)data, size,
						    false, &error);
	if (set == NULL) {
		rg_free(error);
		return 0;
	}
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	settings_print(set, false, out);
	fclose(out);
	struct settings *again = settings_load_string("fuzz.conf", text, len, false, &error);
	if (again == NULL && set->ssl_key[0] == '\0') {
		/* only hidden inline key material may fail to reload */
		fprintf(stderr, "reload failed: %s\n%s", error, text);
		abort();
	}
	rg_free(error);
	settings_free(again);
	free(text);
	settings_free(set);
	return 0;
}
