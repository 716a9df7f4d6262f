/* settings-dovecot.c — what of a Dovecot configuration ringgate sets
 * aside (settings->ignored): names Dovecot knows and ringgate does not
 * use, its sections, and the protocol/local/remote filters; anything
 * Dovecot would not know either stops start-up with file:line. */
#include "lib/settings-private.h"

#include "lib/alloc.h"
#include "lib/config.h"
#include "lib/dovecot-names.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Record name (allocated, taken) once, at its first place. */
void set_ignore_add(struct settings *set, unsigned *cap, const char *file, unsigned line,
		    char *name, const char *note)
{
	for (unsigned i = 0; i < set->ignored_count; i++) {
		if (strcmp(set->ignored[i].name, name) == 0) {
			rg_free(name);
			return;
		}
	}
	if (set->ignored_count == *cap) {
		*cap = *cap == 0 ? 16 : *cap * 2;
		set->ignored = rg_realloc(set->ignored, *cap * sizeof(*set->ignored));
	}
	struct settings_ignored *ig = &set->ignored[set->ignored_count++];
	ig->name = name;
	ig->note = rg_strdup(note);
	ig->file = rg_strdup(file);
	ig->line = line;
}

void set_ignore_node(struct loader *l, const struct config_node *n, const char *note,
		     const char *fmt, ...)
{
	char *name;
	va_list args;

	va_start(args, fmt);
	if (vasprintf(&name, fmt, args) < 0)
		name = NULL;
	va_end(args);
	set_ignore_add(l->set, &l->ignored_cap, n->file, n->line,
		       rg_strdup(name != NULL ? name : n->key), note);
	free(name);
}

/* "namespace inbox", "dict": a section's type and name, for messages */
static char *section_label(const struct config_node *sec)
{
	if (sec->value[0] == '\0')
		return rg_strdup(sec->key);
	return rg_strdup_printf(strpbrk(sec->value, " \t") != NULL ? "%s \"%s\"" : "%s %s",
				sec->key, sec->value);
}

/* The contents of a section ringgate sets aside: each name must still be
 * one Dovecot knows, so a typo stops start-up there as anywhere else. path
 * is the section's path in dovecot-names.h ("namespace/"), "" for a
 * filter's contents (global settings and sections). */
static int check_dovecot_section(struct loader *l, const struct config_node *sec, const char *path)
{
	for (const struct config_node *n = sec->children; n != NULL; n = n->next) {
		char sub[128];
		int len;

		if (n->type == CONFIG_NODE_SETTING) {
			if (dovecot_setting_known(path, n->key) ||
			    (path[0] == '\0' && set_find_def(set_global_defs, set_global_count,
							     n->key) != NULL))
				continue;
			return set_load_error(l, n, "unknown setting '%s'", n->key);
		}
		if (path[0] == '\0' && dovecot_filter_known(n->key))
			len = snprintf(sub, sizeof(sub), "%s", "");
		else if (dovecot_section_known(path, n->key))
			len = snprintf(sub, sizeof(sub), "%s%s/", path, n->key);
		else
			len = -1;
		if (len < 0 || (size_t)len >= sizeof(sub))
			return set_load_error(l, n, "unknown section type '%s'", n->key);
		if (check_dovecot_section(l, n, sub) < 0)
			return -1;
	}
	return 0;
}

/* A section ringgate does not use (dict, plugin, namespace, metric, a
 * service or protocol that is not ringgate's, a unix_listener): checked,
 * then named, inside outer ("service auth") when it is not at the top. */
int set_ignore_section(struct loader *l, const struct config_node *sec, const char *path,
		       const char *outer)
{
	if (check_dovecot_section(l, sec, path) < 0)
		return -1;
	char *label = section_label(sec);
	if (outer == NULL)
		set_ignore_node(l, sec, NOTE_SECTION, "%s { }", label);
	else
		set_ignore_node(l, sec, NOTE_SECTION, "%s { %s { } }", outer, label);
	rg_free(label);
	return 0;
}

/* Whether settings inside `protocol NAME { }` apply to a protocol ringgate
   serves: imap, pop3, or a negation ("!indexer-worker" is every other) */
static bool filter_applies(const struct config_node *sec)
{
	if (strcmp(sec->key, "protocol") != 0)
		return true; /* local, remote: some of ringgate's connections */
	return strcmp(sec->value, "imap") == 0 || strcmp(sec->value, "pop3") == 0 ||
	       sec->value[0] == '!';
}

/* protocol, local, remote sections. Dovecot applies the global settings
 * inside to one protocol or address; ringgate has one value of each
 * setting, so one it uses is an error there, one it does not use is named,
 * and a filter for another protocol (lmtp, lda, submission) is set aside
 * whole. outer: the enclosing filter's label, NULL at the top. */
int set_load_filter(struct loader *l, const struct config_node *sec, const char *outer,
		    unsigned depth)
{
	if (sec->value[0] == '\0')
		return set_load_error(l, sec, "%s section needs a name", sec->key);
	if (!filter_applies(sec)) {
		if (outer == NULL)
			return set_ignore_section(l, sec, "", NULL);
		if (check_dovecot_section(l, sec, "") < 0)
			return -1;
		char *inner = section_label(sec);
		set_ignore_node(l, sec, NOTE_SECTION, "%s { %s { } }%s", outer, inner,
				depth > 1 ? " }" : "");
		rg_free(inner);
		return 0;
	}

	/* "local 10.0.0.1 { protocol pop3": names inside get their closing
	   braces from depth */
	char *label = section_label(sec);
	if (outer != NULL) {
		char *nested = rg_strdup_printf("%s { %s", outer, label);
		rg_free(label);
		label = nested;
	}
	const char *close = depth > 0 ? " }" : "";
	int ret = 0;
	for (const struct config_node *n = sec->children; n != NULL && ret == 0; n = n->next) {
		if (n->type == CONFIG_NODE_SETTING) {
			const struct set_def *def = set_find_def(set_global_defs, set_global_count,
								 n->key);
			if (def != NULL && outer == NULL && strcmp(sec->key, "protocol") == 0 &&
			    strcmp(sec->value, "imap") == 0 && strncmp(n->key, "imap_", 5) == 0)
				l->imap_nodes[def - set_global_defs] = n;
			else if (def != NULL)
				ret = set_load_error(l, n,
						     "'%s' inside '%s { }%s' is not supported: "
						     "ringgate has one value for every protocol and "
						     "address, set it outside the section", n->key, label,
						     close);
			else if (dovecot_setting_known("", n->key))
				set_ignore_node(l, n, NOTE_SETTING, "%s { %s }%s", label, n->key,
						close);
			else
				ret = set_load_error(l, n, "unknown setting '%s'", n->key);
		} else if (strcmp(n->key, "protocol") == 0 || strcmp(n->key, "local") == 0 ||
			   strcmp(n->key, "remote") == 0) {
			ret = set_load_filter(l, n, label, depth + 1);
		} else if (strcmp(n->key, "service") == 0 || strcmp(n->key, "passdb") == 0 ||
			   strcmp(n->key, "userdb") == 0 || strcmp(n->key, "local_name") == 0) {
			ret = set_load_error(l, n,
					     "'%s' sections are not supported inside '%s { }%s'",
					     n->key, label, close);
		} else if (dovecot_section_known("", n->key)) {
			char path[64];
			snprintf(path, sizeof(path), "%s/", n->key);
			if (check_dovecot_section(l, n, path) == 0) {
				char *inner = section_label(n);
				set_ignore_node(l, n, NOTE_SECTION, "%s { %s { } }%s", label, inner,
						close);
				rg_free(inner);
			} else {
				ret = -1;
			}
		} else {
			ret = set_load_error(l, n, "unknown section type '%s'", n->key);
		}
	}
	rg_free(label);
	return ret;
}

