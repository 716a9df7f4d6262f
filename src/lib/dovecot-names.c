/* dovecot-names.c — look-ups in the generated table, see dovecot-names.h. */
#include "lib/dovecot-names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_name(const void *key, const void *elem)
{
	return strcmp(key, ((const struct dovecot_name *)elem)->path);
}

const struct dovecot_name *dovecot_name_find(const char *path)
{
	return bsearch(path, dovecot_names, dovecot_names_count, sizeof(dovecot_names[0]),
		       cmp_name);
}

/* the entry for prefix + name + suffix; a name too long for the buffer is
   no Dovecot name */
static const struct dovecot_name *find3(const char *prefix, const char *name, const char *suffix)
{
	char path[256];
	int n = snprintf(path, sizeof(path), "%s%s%s", prefix, name, suffix);

	if (n < 0 || (size_t)n >= sizeof(path))
		return NULL;
	return dovecot_name_find(path);
}

bool dovecot_setting_known(const char *section, const char *key)
{
	const struct dovecot_name *n;

	if (section[0] != '\0' && find3(section, "*", "") != NULL)
		return true;
	n = find3(section, key, "");
	/* "filter:protocol" and the like have no default: not settings */
	return n != NULL && n->def != NULL;
}

bool dovecot_section_known(const char *section, const char *key)
{
	if (section[0] == '\0' && dovecot_filter_known(key))
		return true;
	return find3(section, key, "/") != NULL;
}

bool dovecot_filter_known(const char *key)
{
	return find3("filter:", key, "") != NULL;
}

bool dovecot_service_known(const char *name)
{
	return find3("service:", name, "") != NULL;
}

bool dovecot_protocol_known(const char *name)
{
	return find3("protocol:", name, "") != NULL;
}
