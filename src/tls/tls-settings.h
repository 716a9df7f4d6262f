/* tls-settings.h — the server TLS context a configuration describes:
 * ssl_cert/ssl_key with ssl_ca, ssl_min_protocol, ssl_cipher_list and
 * ssl_prefer_server_ciphers, plus one SNI context per `local_name` section.
 * Master calls it once at start-up to refuse a broken certificate before
 * anything listens; each login process builds its own before it drops
 * privileges (the key files are readable only by root). */
#ifndef RG_TLS_SETTINGS_H
#define RG_TLS_SETTINGS_H

#include "lib/settings.h"
#include "tls/tls.h"

/* 0, or -EINVAL with an allocated *error_r naming the setting (and for a
 * local_name section its file:line); the caller frees it. */
int tls_settings_ctx_create(const struct settings *set, struct tls_ctx **ctx_r, char **error_r);

#endif
