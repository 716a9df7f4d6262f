/* libFuzzer target: the passwd-file parser of ringgate-auth. The input is
 * parsed as one line and as a whole file; every entry that comes out must
 * be well formed and findable by its user name. */
#include "auth/auth-passwd.h"

#include "lib/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_entry(const struct passwd_entry *e)
{
	size_t ulen = strlen(e->user);
	if (ulen == 0 || ulen > PASSWD_MAX_USER || strchr(e->user, ':') != NULL ||
	    strchr(e->user, ' ') != NULL)
		abort();
	if ((e->scheme == NULL) != (e->password == NULL) || e->home == NULL)
		abort();
	if (e->scheme != NULL && (e->scheme[0] == '\0' || strchr(e->scheme, '}') != NULL))
		abort();
	for (unsigned i = 0; i < e->extra_count; i++) {
		const char *x = e->extra[i];
		if (x[0] == '\0' || x[0] == '=' || strchr(x, ' ') != NULL)
			abort();
		size_t klen = strcspn(x, "=");
		char key[PASSWD_MAX_KEY + 1];
		if (klen > PASSWD_MAX_KEY)
			abort();
		memcpy(key, x, klen);
		key[klen] = '\0';
		if (passwd_entry_field(e, key) == NULL)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct passwd_entry e;
	const char *error = NULL;
	int ret = passwd_parse_line(text, size, "CRYPT", &e, &error);
	if (ret == 1) {
		check_entry(&e);
		passwd_entry_clear(&e);
	} else if (ret < 0 && error == NULL) {
		abort();
	}

	struct passwd_args args = { .path = (char *)"fuzz", .default_scheme = (char *)"PLAIN" };
	char *ferror = NULL;
	struct passwd_file *pf = passwd_file_parse("fuzz", text, size, &args, &ferror);
	if (pf == NULL) {
		if (ferror == NULL || strncmp(ferror, "fuzz:", 5) != 0)
			abort();
		rg_free(ferror);
		return 0;
	}
	/* every parsed line's user must be found again */
	size_t pos = 0;
	while (pos < size) {
		const char *nl = memchr(text + pos, '\n', size - pos);
		size_t end = nl != NULL ? (size_t)(nl - text) : size;
		if (passwd_parse_line(text + pos, end - pos, "PLAIN", &e, &error) == 1) {
			const struct passwd_entry *found = passwd_file_lookup(pf, e.user);
			if (found == NULL || strcmp(found->user, e.user) != 0)
				abort();
			check_entry(found);
			passwd_entry_clear(&e);
		}
		pos = end + 1;
	}
	passwd_file_free(pf);
	return 0;
}
