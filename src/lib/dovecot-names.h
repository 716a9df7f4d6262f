/* dovecot-names.h — the setting and section names Dovecot 2.3 knows.
 *
 * A table generated at build time from dovecot-settings.txt (doveconf -a of
 * Debian's Dovecot 2.3.19.1 with Pigeonhole 0.5.19,
 * cmake/gen-dovecot-settings.py), so the settings
 * loader can tell a Dovecot setting ringgate does not use (accepted, named
 * at start-up) from a typo (an error). Names are paths: "mail_plugins",
 * "namespace/" (a section type), "namespace/mailbox/auto", "plugin/" + "*"
 * (a section taking any key), "filter:protocol", "service:lmtp", "protocol:lmtp". */
#ifndef RG_DOVECOT_NAMES_H
#define RG_DOVECOT_NAMES_H

#include <stdbool.h>
#include <stddef.h>

struct dovecot_name {
	const char *path;
	const char *def; /* Dovecot's default as doveconf prints it; NULL for a section */
};

/* the generated table, sorted by strcmp(); use the functions below */
extern const struct dovecot_name dovecot_names[];
extern const size_t dovecot_names_count;

/* the entry for path, NULL if Dovecot has no such name */
const struct dovecot_name *dovecot_name_find(const char *path);
/* a setting KEY inside the section whose path is section ("" for the top
 * level, "service/inet_listener/" inside a listener): Dovecot knows it, or
 * the section takes any key */
bool dovecot_setting_known(const char *section, const char *key);
/* a section type KEY inside section (same paths) */
bool dovecot_section_known(const char *section, const char *key);
/* filter sections (protocol, local, remote, local_name): global settings inside */
bool dovecot_filter_known(const char *key);
/* a service Dovecot 2.3 defines (imap-login, lmtp, director, ...) */
bool dovecot_service_known(const char *name);
/* a protocol Dovecot's services serve (imap, pop3, lmtp, submission) */
bool dovecot_protocol_known(const char *name);

#endif
