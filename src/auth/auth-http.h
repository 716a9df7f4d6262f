/* auth-http.h — HTTP(S) requests from auth (the oauth2 passdb's
 * introspection), asynchronous on auth's event loop (auth-loop.h) through
 * libcurl's multi interface: curl's sockets are watched by the loop's
 * epoll, its timer is a loop timeout, so a slow IdP stalls no other login.
 * Bounded: at most max_parallel transfers at once (more wait in a FIFO of
 * max_queue, beyond which a request fails at once), each request ends by
 * timeout_msecs after it was submitted (time in the queue included), and a
 * response body longer than max_body fails the request. No redirects, no
 * proxies from the environment, http and https only.
 *
 * Every submitted request ends in exactly one callback, called from the
 * loop (never inside http_client_submit), except those still pending at
 * http_client_free, which are dropped silently. This is the only file
 * that includes curl. */
#ifndef RG_AUTH_HTTP_H
#define RG_AUTH_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct http_client_settings {
	unsigned max_parallel;    /* transfers at once (>= 1) */
	unsigned max_queue;       /* waiting beyond those */
	unsigned timeout_msecs;   /* per request, from submission (>= 1) */
	size_t max_body;          /* response body bytes */
	const char *ca_file, *ca_dir;     /* NULL: the system's */
	const char *cert_file, *key_file; /* client certificate, NULL: none */
	bool allow_invalid_cert;
};

struct http_response {
	const char *error; /* NULL: a response came (status, body); else why not */
	long status;
	const char *body;  /* NUL-terminated, valid during the callback */
	size_t body_len;
};

typedef void http_callback(const struct http_response *resp, void *context);

struct http_client;

/* NULL with *error_r (static) when curl cannot start */
struct http_client *http_client_new(const struct http_client_settings *set,
				    const char **error_r);
void http_client_free(struct http_client **client);

/* method "GET" or "POST" (body: application/x-www-form-urlencoded);
 * headers: NULL-terminated "Name: value" lines, or NULL. The strings are
 * copied. */
void http_client_submit(struct http_client *client, const char *method, const char *url,
			const char *const *headers, const char *body, http_callback *cb,
			void *context);

#endif
