/* tls-settings.h — the server TLS context a configuration describes:
 * ssl_cert/ssl_key with ssl_ca, ssl_min_protocol, ssl_cipher_list and
 * ssl_prefer_server_ciphers, plus the `local_name` sections' certificates
 * as a store whose contexts are built on first use (tls.h). Master checks
 * every certificate once at start-up and reload (tls_settings_check) to
 * refuse a broken one before anything listens; login processes build the
 * context from the text read before they dropped privileges (the key files
 * are readable only by root), a local_name's only when a client names it. */
#ifndef RG_TLS_SETTINGS_H
#define RG_TLS_SETTINGS_H

#include "lib/settings.h"
#include "tls/tls.h"

/* The context; its local_name certificates come from store (taken: master's,
 * tls_sni_store_map) or, when NULL, from set's sections. 0, or -EINVAL with
 * an allocated *error_r naming the setting (and for a local_name section
 * its file:line); the caller frees it. */
int tls_settings_ctx_create(const struct settings *set, struct tls_sni_store *store,
			    struct tls_ctx **ctx_r, char **error_r);
/* Build every context the configuration names (each distinct local_name
 * certificate once, its key proved to match) and free them: 0, or -EINVAL
 * with an allocated *error_r as above. With store_fd_r, the local_name
 * sections' store as a sealed memfd (tls_sni_store_fd), -1 when there are
 * none. */
int tls_settings_check(const struct settings *set, int *store_fd_r, char **error_r);

#endif
