/* fuzz_var_expand — lib/var-expand on any template (a configuration's args,
 * paths and queries). Properties: it never reads past the template, an
 * error leaves no result, a success leaves no error, and a template without
 * '%' expands to itself. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/alloc.h"
#include "lib/var-expand.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct var_expand_entry table[] = {
	{ 'u', "user", "user.name@example.com" },
	{ 'n', "username", "user.name" },
	{ 'd', "domain", "example.com" },
	{ 'i', "uid", "1000" },
	{ 'h', "home", NULL },
	{ 0, "session", "abc" },
	{ 0, NULL, NULL },
};

static char *upper(const char *value, void *context)
{
	(void)context;
	char *v = rg_strdup(value);
	for (char *p = v; *p != '\0'; p++) {
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	}
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	/* exact-size copy: ASan sees any read past the NUL */
	char *str = malloc(size + 1);
	if (str == NULL)
		return 0;
	memcpy(str, data, size);
	str[size] = '\0';
	char *out = NULL, *error = NULL;
	int ret = var_expand(str, table, size > 0 && (data[0] & 1) != 0 ? upper : NULL, NULL,
			     &out, &error);
	if (ret == 0) {
		if (out == NULL || error != NULL)
			abort();
		if (strchr(str, '%') == NULL && strcmp(out, str) != 0)
			abort();
	} else {
		if (ret != -1 || out != NULL || error == NULL)
			abort();
	}
	rg_free(out);
	rg_free(error);
	(void)var_has_variables(str);
	free(str);
	return 0;
}
