/* settings-print.c — `ringgate -n` / `-a`: the settings as config text
 * that reads back to the same settings (defaults left out unless all),
 * secrets hidden unless asked, the set-aside Dovecot names as comments. */
#include "lib/settings.h"
#include "lib/settings-private.h"

#include "lib/alloc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool needs_quotes(const char *s)
{
	size_t len = strlen(s);

	if (len == 0)
		return false;
	if (s[0] == '<' || isspace((unsigned char)s[0]) || isspace((unsigned char)s[len - 1]))
		return true;
	return strpbrk(s, "#$\"\\") != NULL;
}

static void print_value(FILE *out, const char *s)
{
	if (!needs_quotes(s)) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

static char *format_size(uint64_t v)
{
	static const char units[] = "TGMk";

	for (int i = 0; i < 4 && v != 0; i++) {
		uint64_t mult = 1ULL << (10 * (4 - i));
		if (v % mult == 0)
			return rg_strdup_printf("%llu%c", (unsigned long long)(v / mult), units[i]);
	}
	return rg_strdup_printf("%llu", (unsigned long long)v);
}

static char *format_time(unsigned secs)
{
	static const struct { unsigned secs; const char *name; } units[] = {
		{ 604800, "weeks" }, { 86400, "days" }, { 3600, "hours" }, { 60, "mins" },
	};

	for (size_t i = 0; i < 4 && secs != 0; i++) {
		if (secs % units[i].secs == 0)
			return rg_strdup_printf("%u %s", secs / units[i].secs, units[i].name);
	}
	return rg_strdup_printf("%u secs", secs);
}

/* the value as config text (unquoted) */
static char *format_value(const void *base, const struct set_def *def)
{
	const void *field = (const char *)base + def->offset;

	switch (def->type) {
	case ST_BOOL:
		return rg_strdup(*(const bool *)field ? "yes" : "no");
	case ST_UINT:
	case ST_UINT_POS:
	case ST_PORT:
		return rg_strdup_printf("%u", *(const unsigned *)field);
	case ST_SIZE:
		return format_size(*(const uint64_t *)field);
	case ST_TIME:
	case ST_TIME_POS:
		return format_time(*(const unsigned *)field);
	case ST_SSL:
		switch (*(const enum ssl_mode *)field) {
		case SSL_NO: return rg_strdup("no");
		case SSL_YES: return rg_strdup("yes");
		case SSL_REQUIRED: return rg_strdup("required");
		}
		return rg_strdup("yes");
	default: {
		const char *s = *(char *const *)field;
		return rg_strdup(s != NULL ? s : "");
	}
	}
}

static void print_setting(FILE *out, int indent, const char *key, const char *value)
{
	fprintf(out, "%*s%s = ", indent, "", key);
	print_value(out, value);
	fputc('\n', out);
}

static void print_pem(FILE *out, int indent, const void *base, const struct set_def *def,
		      bool secrets)
{
	const char *value = *set_field_str((void *)base, def->offset);
	const char *file = *set_field_str((void *)base, def->file_offset);

	if (file[0] != '\0') {
		/* a path is no secret, and it reads back to the same key */
		fprintf(out, "%*s%s = <", indent, "", def->key);
		fputs(file, out);
		fputc('\n', out);
	} else if (!secrets && strcmp(def->key, "ssl_key") == 0 && value[0] != '\0') {
		fprintf(out, "%*s%s = # hidden, use -P to show it\n", indent, "", def->key);
	} else {
		print_setting(out, indent, def->key, value);
	}
}

static void print_local_names(FILE *out, const struct settings *set, bool secrets)
{
	for (unsigned i = 0; i < set->local_name_count; i++) {
		const struct local_name_settings *ln = &set->local_names[i];
		/* names are host names: quotes only to keep a list one word */
		fprintf(out, strchr(ln->names, ' ') != NULL ? "local_name \"%s\" {\n" :
			"local_name %s {\n", ln->names);
		for (size_t j = 0; j < set_local_name_count; j++)
			print_pem(out, 2, ln, &set_local_name_defs[j], secrets);
		fprintf(out, "}\n");
	}
}

static void print_db(FILE *out, const char *name, const struct db_settings *first, bool all)
{
	for (const struct db_settings *db = first; db != NULL; db = db->next) {
		if (db->driver[0] == '\0')
			return;
		fprintf(out, "%s {\n", name);
		for (size_t i = 0; i < set_db_count; i++) {
			const void *field = (const char *)db + set_db_defs[i].offset;
			if (set_db_defs[i].type == ST_BOOL) {
				bool b = *(const bool *)field;
				if (b || all)
					print_setting(out, 2, set_db_defs[i].key, b ? "yes" : "no");
				continue;
			}
			const char *v = *(char *const *)field;
			if (i < 2 || all || v[0] != '\0')
				print_setting(out, 2, set_db_defs[i].key, v);
		}
		fprintf(out, "}\n");
	}
}

static void print_service(FILE *out, const struct settings *set,
			  const struct service_settings *svc, bool all)
{
	const struct builtin_service *b = NULL;
	struct service_settings base;
	char *text = NULL;
	size_t text_len = 0;
	FILE *body = open_memstream(&text, &text_len);

	for (size_t i = 0; i < set_builtin_count; i++) {
		if (strcmp(set_builtin_services[i].name, svc->name) == 0)
			b = &set_builtin_services[i];
	}
	memset(&base, 0, sizeof(base));
	if (b != NULL) {
		base.service_count = b->service_count;
		base.client_limit = b->client_limit != 0 ? b->client_limit : set->default_client_limit;
		base.process_limit = b->process_limit != 0 ? b->process_limit : set->default_process_limit;
	}
	base.vsz_limit = set->default_vsz_limit;
	base.idle_kill = set->default_idle_kill;

	for (size_t i = 0; i < set_service_count; i++) {
		char *v = format_value(svc, &set_service_defs[i]);
		char *d = format_value(&base, &set_service_defs[i]);
		if (all || strcmp(v, d) != 0)
			print_setting(body, 2, set_service_defs[i].key, v);
		rg_free(v);
		rg_free(d);
	}

	char *listen = set_listen_addresses(set);
	for (unsigned i = 0; i < svc->listener_count; i++) {
		const struct listener_settings *ls = &svc->listeners[i];
		struct listener_settings lbase = { .address = listen };
		bool builtin = false;
		char *ltext = NULL;
		size_t ltext_len = 0;
		FILE *lbody = open_memstream(&ltext, &ltext_len);

		for (size_t j = 0; b != NULL && j < 2 && b->listeners[j].name != NULL; j++) {
			if (strcmp(b->listeners[j].name, ls->name) == 0) {
				builtin = true;
				lbase.port = b->listeners[j].port;
				lbase.ssl = b->listeners[j].ssl;
			}
		}
		for (size_t j = 0; j < set_listener_count; j++) {
			char *v = format_value(ls, &set_listener_defs[j]);
			char *d = format_value(&lbase, &set_listener_defs[j]);
			if (all || strcmp(v, d) != 0)
				print_setting(lbody, 4, set_listener_defs[j].key, v);
			rg_free(v);
			rg_free(d);
		}
		fclose(lbody);
		if (!builtin || ltext_len > 0)
			fprintf(body, "  inet_listener %s {\n%s  }\n", ls->name, ltext);
		free(ltext);
	}
	rg_free(listen);
	fclose(body);
	if (text_len > 0)
		fprintf(out, "service %s {\n%s}\n", svc->name, text);
	free(text);
}

/* a comment line cannot end early: a name holds no line break, but a
   section name or value from the file may hold anything else */
static void print_ignored(FILE *out, const struct settings *set)
{
	if (set->ignored_count == 0)
		return;
	fprintf(out, "# Accepted from a Dovecot configuration and not used by ringgate:\n");
	for (unsigned i = 0; i < set->ignored_count; i++) {
		const struct settings_ignored *ig = &set->ignored[i];
		fprintf(out, "#   %s:%u: %s (%s)\n", ig->file, ig->line, ig->name, ig->note);
	}
}

void settings_print(const struct settings *set, bool all, FILE *out)
{
	settings_print_secrets(set, all, false, out);
}

static void print_all(const struct settings *set, bool all, bool secrets, bool local_names,
		      FILE *out)
{
	struct settings *defaults = settings_new(set->config_path);

	fprintf(out, "# ringgate configuration: %s\n", set->config_path);
	for (size_t i = 0; i < set_global_count; i++) {
		const struct set_def *def = &set_global_defs[i];
		char *v = format_value(set, def);
		char *d = format_value(defaults, def);
		bool differs = strcmp(v, d) != 0;

		if (def->type == ST_PEM)
			differs = differs || *set_field_str((void *)set,
							    def->file_offset)[0] != '\0';
		if (all || differs) {
			if (def->type == ST_PEM)
				print_pem(out, 0, set, def, secrets);
			else
				print_setting(out, 0, def->key, v);
		}
		rg_free(v);
		rg_free(d);
	}
	settings_free(defaults);
	if (local_names)
		print_local_names(out, set, secrets);
	else if (set->local_name_count > 0)
		fprintf(out, "# %u local_name sections: given to login processes by master\n",
			set->local_name_count);
	print_db(out, "passdb", &set->passdb, all);
	print_db(out, "userdb", &set->userdb, all);
	for (unsigned i = 0; i < set->service_count; i++)
		print_service(out, set, &set->services[i], all);
	print_ignored(out, set);
}

void settings_print_secrets(const struct settings *set, bool all, bool secrets, FILE *out)
{
	print_all(set, all, secrets, true, out);
}

void settings_print_running(const struct settings *set, bool local_names, FILE *out)
{
	print_all(set, false, true, local_names, out);
}
