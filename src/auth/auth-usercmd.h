/* auth-usercmd.h — `ringgate [-c FILE] user [-u] [-f FIELD] MASK...`,
 * Dovecot's `doveadm user`: the userdb chain answered in this process
 * (`ringgate-auth -U CONFIG ARGS...`, exec'ed by the ringgate command), so it
 * needs no running ringgate and neither uses nor fills auth's cache.
 *
 * A mask with `*` or `?` lists users: every userdb that can iterate, in
 * order (passwd-file: its entries; passwd: getpwent() within
 * first_valid_uid..last_valid_uid; sql: iterate_query; ldap:
 * iterate_filter/iterate_attrs), printing the names matching any mask
 * (case-insensitive), one per line. Otherwise each NAME is looked up
 * (auth_username_* rules applied as for a login) and printed as doveadm
 * does: `field<TAB>value` rows (uid, gid, home, mail, then the other
 * fields), `-u` the userdb fields as `userdb: NAME` + `  key : value`,
 * `-f FIELD` the value alone. Exit codes as doveadm's: 0, 67 (a user does
 * not exist), 75 (a lookup failed), 89 (the listing failed). */
#ifndef RG_AUTH_USERCMD_H
#define RG_AUTH_USERCMD_H

struct auth_config;
struct settings;

/* argv: the command's own arguments (after `user`); returns the exit code */
int auth_usercmd_run(const struct auth_config *cfg, const struct settings *set, int argc,
		     char **argv);

#endif
