#include "auth/auth-http.h"
#include "auth/auth-loop.h"

#include "lib/alloc.h"
#include "lib/log.h"

#include <curl/curl.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

/* A request is on exactly one list: the queue (waiting for a transfer
 * slot), active (its easy handle is in the multi), or failing (refused
 * before it started; a 0 ms timeout answers it from the loop). */
struct http_request {
	struct http_request *prev, *next;
	struct http_client *client;
	CURL *easy;
	struct curl_slist *headers;
	char *method, *url, *body;
	char *buf; /* the response body so far, max_body + 1 bytes once used */
	size_t len;
	bool too_big;
	const char *fail; /* failing: why */
	int64_t deadline_ms;
	http_callback *cb;
	void *context;
	char errbuf[CURL_ERROR_SIZE];
};

struct http_list {
	struct http_request *head, *tail;
	unsigned count;
};

/* one socket curl asked to watch (curl_multi_assign'ed to it) */
struct http_sock {
	struct http_client *client;
	curl_socket_t fd;
	struct auth_io *io;
};

struct http_client {
	struct http_client_settings set;
	char *ca_file, *ca_dir, *cert_file, *key_file;
	CURLM *multi;
	struct auth_timeout *timer;     /* curl's */
	struct auth_timeout *fail_timer; /* answers the failing list */
	struct http_list queue, active, failing;
};

static bool curl_ready;

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void list_add(struct http_list *l, struct http_request *r)
{
	r->next = NULL;
	r->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
	l->count++;
}

static void list_del(struct http_list *l, struct http_request *r)
{
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->prev = r->next = NULL;
	l->count--;
}

static void request_free(struct http_request *r)
{
	if (r->easy != NULL)
		curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	rg_free(r->method);
	rg_free(r->url);
	if (r->body != NULL) {
		/* POST bodies carry the token and the client secret */
		explicit_bzero(r->body, strlen(r->body));
		rg_free(r->body);
	}
	if (r->buf != NULL) {
		explicit_bzero(r->buf, r->len);
		rg_free(r->buf);
	}
	rg_free(r);
}

/* ---- curl's sockets and timer on auth's loop -------------------------- */

static void check_done(struct http_client *c);

static void sock_event(void *context, uint32_t events)
{
	struct http_sock *hs = context;
	struct http_client *c = hs->client;
	int mask = 0;
	if ((events & EPOLLIN) != 0)
		mask |= CURL_CSELECT_IN;
	if ((events & EPOLLOUT) != 0)
		mask |= CURL_CSELECT_OUT;
	if ((events & (EPOLLERR | EPOLLHUP)) != 0)
		mask |= CURL_CSELECT_ERR;
	int running;
	/* hs may be freed inside (CURL_POLL_REMOVE) */
	curl_multi_socket_action(c->multi, hs->fd, mask, &running);
	check_done(c);
}

static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	(void)easy;
	struct http_client *c = userp;
	struct http_sock *hs = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (hs != NULL) {
			auth_io_remove(&hs->io);
			curl_multi_assign(c->multi, fd, NULL);
			rg_free(hs);
		}
		return 0;
	}
	uint32_t ev = ((what & CURL_POLL_IN) != 0 ? EPOLLIN : 0) |
		      ((what & CURL_POLL_OUT) != 0 ? EPOLLOUT : 0);
	if (hs == NULL) {
		hs = rg_calloc(1, sizeof(*hs));
		hs->client = c;
		hs->fd = fd;
		hs->io = auth_io_add(fd, ev, sock_event, hs);
		if (hs->io == NULL) {
			rg_free(hs);
			return -1;
		}
		curl_multi_assign(c->multi, fd, hs);
	} else {
		auth_io_set_events(hs->io, ev);
	}
	return 0;
}

static void timer_fired(void *context)
{
	struct http_client *c = context;
	c->timer = NULL; /* the loop freed it */
	int running;
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(c);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	struct http_client *c = userp;
	auth_timeout_remove(&c->timer);
	if (timeout_ms >= 0)
		c->timer = auth_timeout_add((unsigned)timeout_ms, timer_fired, c);
	return 0;
}

static size_t write_cb(char *data, size_t size, size_t n, void *userp)
{
	struct http_request *r = userp;
	size_t len = size * n;
	size_t max = r->client->set.max_body;
	if (len > max - r->len) {
		r->too_big = true;
		return 0; /* curl fails the transfer: CURLE_WRITE_ERROR */
	}
	if (r->buf == NULL)
		r->buf = rg_malloc(max + 1);
	memcpy(r->buf + r->len, data, len);
	r->len += len;
	return len;
}

/* ---- requests ---------------------------------------------------------- */

static void answer(struct http_request *r, const struct http_response *resp)
{
	http_callback *cb = r->cb;
	void *context = r->context;
	cb(resp, context);
	request_free(r);
}

static void fail_now(struct http_request *r, const char *why)
{
	struct http_response resp = { .error = why };
	answer(r, &resp);
}

static void start_queued(struct http_client *c);

/* the loop's turn after a submit: refusals answered, waiting requests
 * started */
static void failing_fired(void *context)
{
	struct http_client *c = context;
	c->fail_timer = NULL;
	while (c->failing.head != NULL) {
		struct http_request *r = c->failing.head;
		list_del(&c->failing, r);
		fail_now(r, r->fail);
	}
	start_queued(c);
}

/* answer r from the loop, not from inside the caller */
static void fail_later(struct http_client *c, struct http_request *r, const char *why)
{
	r->fail = why;
	list_add(&c->failing, r);
	if (c->fail_timer == NULL)
		c->fail_timer = auth_timeout_add(0, failing_fired, c);
}

static bool easy_setup(struct http_client *c, struct http_request *r, long timeout_ms)
{
	CURL *e = curl_easy_init();
	if (e == NULL)
		return false;
	r->easy = e;
	bool ok = curl_easy_setopt(e, CURLOPT_URL, r->url) == CURLE_OK &&
		  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
		  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
		  curl_easy_setopt(e, CURLOPT_NOPROXY, "*") == CURLE_OK &&
		  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
		  curl_easy_setopt(e, CURLOPT_PRIVATE, r) == CURLE_OK &&
		  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) == CURLE_OK &&
		  curl_easy_setopt(e, CURLOPT_WRITEDATA, r) == CURLE_OK &&
		  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) == CURLE_OK &&
		  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms) == CURLE_OK &&
		  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
				   (curl_off_t)c->set.max_body) == CURLE_OK &&
		  curl_easy_setopt(e, CURLOPT_USERAGENT, "ringgate-oauth2-passdb") == CURLE_OK;
	if (ok && r->headers != NULL)
		ok = curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers) == CURLE_OK;
	if (ok && strcmp(r->method, "POST") == 0)
		ok = curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body != NULL ? r->body : "") ==
		     CURLE_OK;
	if (ok && c->ca_file != NULL)
		ok = curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file) == CURLE_OK;
	if (ok && c->ca_dir != NULL)
		ok = curl_easy_setopt(e, CURLOPT_CAPATH, c->ca_dir) == CURLE_OK;
	if (ok && c->cert_file != NULL)
		ok = curl_easy_setopt(e, CURLOPT_SSLCERT, c->cert_file) == CURLE_OK;
	if (ok && c->key_file != NULL)
		ok = curl_easy_setopt(e, CURLOPT_SSLKEY, c->key_file) == CURLE_OK;
	if (ok && c->set.allow_invalid_cert)
		ok = curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L) == CURLE_OK &&
		     curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L) == CURLE_OK;
	return ok;
}

/* start waiting requests while there is room */
static void start_queued(struct http_client *c)
{
	while (c->queue.head != NULL && c->active.count < c->set.max_parallel) {
		struct http_request *r = c->queue.head;
		list_del(&c->queue, r);
		int64_t left = r->deadline_ms - mono_ms();
		if (left < 1) {
			fail_now(r, "timed out waiting for a connection");
			continue;
		}
		if (!easy_setup(c, r, (long)left)) {
			fail_now(r, "curl refused the request's options");
			continue;
		}
		list_add(&c->active, r);
		if (curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
			list_del(&c->active, r);
			fail_now(r, "curl_multi_add_handle failed");
		}
	}
}

static void finish(struct http_client *c, struct http_request *r, CURLcode result)
{
	list_del(&c->active, r);
	curl_multi_remove_handle(c->multi, r->easy);
	struct http_response resp = { 0 };
	if (r->too_big || result == CURLE_FILESIZE_EXCEEDED) {
		resp.error = "response body too large";
	} else if (result == CURLE_OPERATION_TIMEDOUT) {
		resp.error = "timed out";
	} else if (result != CURLE_OK) {
		resp.error = r->errbuf[0] != '\0' ? r->errbuf : curl_easy_strerror(result);
	} else {
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &resp.status);
		if (r->buf == NULL)
			r->buf = rg_malloc(1);
		r->buf[r->len] = '\0';
		resp.body = r->buf;
		resp.body_len = r->len;
	}
	answer(r, &resp);
}

static void check_done(struct http_client *c)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct http_request *r = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		if (r != NULL)
			finish(c, r, msg->data.result);
	}
	start_queued(c);
}

void http_client_submit(struct http_client *c, const char *method, const char *url,
			const char *const *headers, const char *body, http_callback *cb,
			void *context)
{
	struct http_request *r = rg_calloc(1, sizeof(*r));
	r->client = c;
	r->method = rg_strdup(method);
	r->url = rg_strdup(url);
	r->body = body != NULL ? rg_strdup(body) : NULL;
	r->cb = cb;
	r->context = context;
	r->deadline_ms = mono_ms() + c->set.timeout_msecs;
	for (unsigned i = 0; headers != NULL && headers[i] != NULL; i++) {
		struct curl_slist *h = curl_slist_append(r->headers, headers[i]);
		if (h == NULL) {
			fail_later(c, r, "out of memory for a header");
			return;
		}
		r->headers = h;
	}
	/* the queue also holds, until the loop's next turn, those that a
	   free transfer slot will take at once */
	unsigned free_slots = c->active.count < c->set.max_parallel
				      ? c->set.max_parallel - c->active.count : 0;
	if (c->queue.count >= c->set.max_queue + free_slots) {
		fail_later(c, r, "too many introspection requests waiting");
		return;
	}
	list_add(&c->queue, r);
	/* started from the loop: a callback never runs inside submit */
	if (c->fail_timer == NULL)
		c->fail_timer = auth_timeout_add(0, failing_fired, c);
}

/* ---- the client -------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? rg_strdup(s) : NULL;
}

struct http_client *http_client_new(const struct http_client_settings *set,
				    const char **error_r)
{
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			*error_r = "curl_global_init failed";
			return NULL;
		}
		curl_ready = true;
	}
	struct http_client *c = rg_calloc(1, sizeof(*c));
	c->set = *set;
	if (c->set.max_parallel == 0)
		c->set.max_parallel = 1;
	if (c->set.timeout_msecs == 0)
		c->set.timeout_msecs = 1;
	c->ca_file = dup_or_null(set->ca_file);
	c->ca_dir = dup_or_null(set->ca_dir);
	c->cert_file = dup_or_null(set->cert_file);
	c->key_file = dup_or_null(set->key_file);
	c->multi = curl_multi_init();
	if (c->multi == NULL ||
	    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, sock_cb) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
			      (long)c->set.max_parallel) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)c->set.max_parallel) !=
		    CURLM_OK) {
		*error_r = "curl_multi_init failed";
		http_client_free(&c);
		return NULL;
	}
	return c;
}

static void drop_list(struct http_client *c, struct http_list *l)
{
	while (l->head != NULL) {
		struct http_request *r = l->head;
		list_del(l, r);
		if (l == &c->active)
			curl_multi_remove_handle(c->multi, r->easy);
		request_free(r);
	}
}

void http_client_free(struct http_client **cp)
{
	struct http_client *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	drop_list(c, &c->queue);
	drop_list(c, &c->failing);
	if (c->multi != NULL) {
		drop_list(c, &c->active);
		curl_multi_cleanup(c->multi); /* removes its sockets (sock_cb) */
	}
	auth_timeout_remove(&c->timer);
	auth_timeout_remove(&c->fail_timer);
	rg_free(c->ca_file);
	rg_free(c->ca_dir);
	rg_free(c->cert_file);
	rg_free(c->key_file);
	rg_free(c);
}
