/* auth-cookie.h — the second phase of a login. AUTH_OK hands the login
 * process a random cookie; master presents it with the login's pid and gets
 * the user's userdb fields exactly once. A cookie is bound to one login pid,
 * single use (deleted on any presentation, right or wrong), and expires
 * COOKIE_TTL_MS after it was made. The table is bounded: when full, the
 * oldest cookie goes. Times are passed in so tests control the clock. */
#ifndef RG_AUTH_COOKIE_H
#define RG_AUTH_COOKIE_H

#include <stdbool.h>
#include <stdint.h>

#define COOKIE_HEX_LEN 32
#define COOKIE_TTL_MS 60000
#define COOKIE_MAX 100000

/* what AUTH_USER carries; all strings owned */
struct auth_user {
	char *user;
	uint32_t uid, gid;
	char *home;
	char *mail;
	char *extra; /* TAB-separated key=value, "" when none */
};
void auth_user_free(struct auth_user *user);

enum cookie_result {
	COOKIE_OK,
	COOKIE_UNKNOWN,  /* never made, already used, or pushed out */
	COOKIE_EXPIRED,
	COOKIE_PID_MISMATCH,
};

struct cookie_table;

struct cookie_table *cookie_table_new(unsigned max_entries);
void cookie_table_free(struct cookie_table *t);
unsigned cookie_table_count(const struct cookie_table *t);

/* Store user (ownership passes to the table) under a fresh random cookie,
 * written to cookie_r as 32 lower-case hex chars + NUL. Returns 0 or -errno
 * when no randomness was available. */
int cookie_add(struct cookie_table *t, uint32_t login_pid, struct auth_user *user,
	       int64_t now_ms, char cookie_r[COOKIE_HEX_LEN + 1]);
/* Look cookie up and delete it. On COOKIE_OK *user_r is the caller's. */
enum cookie_result cookie_take(struct cookie_table *t, const char *cookie, uint32_t login_pid,
			       int64_t now_ms, struct auth_user **user_r);
/* Free cookies that expired by now_ms. */
void cookie_expire(struct cookie_table *t, int64_t now_ms);
const char *cookie_result_str(enum cookie_result res);

#endif
