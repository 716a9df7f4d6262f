/* auth-http.c on a real auth loop (auth-loop.h over epoll) against a tiny
 * HTTP/1.1 server thread on 127.0.0.1: every request ends in one callback
 * from the loop (never inside submit); at most max_parallel connections
 * are opened for many requests (kept alive and reused); a request beyond
 * max_queue fails at once; a body over max_body, a server that never
 * answers (timeout_msecs), a refused connection each fail with a reason;
 * POST bodies and headers arrive as given. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth/auth-http.h"
#include "auth/auth-loop.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the server: answers by path ---------------------------------------- */

static int listen_fd;
static int port;
static int accepted;         /* connections, under mu */
static char last_body[256];  /* the last request's body */
static char last_auth[256];  /* its Authorization header */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void *serve_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[8192];
	size_t len = 0;
	for (;;) {
		char *end = NULL;
		while ((end = memmem(buf, len, "\r\n\r\n", 4)) == NULL) {
			ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
			if (n <= 0)
				goto out;
			len += (size_t)n;
		}
		buf[len] = '\0';
		size_t head = (size_t)(end + 4 - buf);
		size_t clen = 0;
		const char *cl = strcasestr(buf, "Content-Length:");
		if (cl != NULL && cl < end)
			clen = strtoul(cl + 15, NULL, 10);
		while (len < head + clen) {
			ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
			if (n <= 0)
				goto out;
			len += (size_t)n;
		}
		pthread_mutex_lock(&mu);
		snprintf(last_body, sizeof(last_body), "%.*s", (int)clen, buf + head);
		const char *au = strcasestr(buf, "Authorization: ");
		if (au != NULL && au < end)
			snprintf(last_auth, sizeof(last_auth), "%.*s", (int)strcspn(au, "\r"), au);
		else
			last_auth[0] = '\0';
		pthread_mutex_unlock(&mu);
		if (strncmp(buf, "GET /silent", 11) == 0) {
			/* never answers: the client's timeout ends it */
			char c;
			while (read(fd, &c, 1) > 0)
				;
			goto out;
		}
		static char big[40000];
		const char *body = "{\"ok\":true}";
		if (strncmp(buf, "GET /big", 8) == 0) {
			memset(big, 'x', sizeof(big) - 1);
			body = big;
		}
		char hdr[128];
		int hl = snprintf(hdr, sizeof(hdr),
				  "HTTP/1.1 %s\r\nContent-Length: %zu\r\n\r\n",
				  strncmp(buf, "GET /e500", 9) == 0 ? "500 Oops" : "200 OK",
				  strlen(body));
		if (write(fd, hdr, (size_t)hl) < 0 || write(fd, body, strlen(body)) < 0)
			goto out;
		memmove(buf, buf + head + clen, len - head - clen);
		len -= head + clen;
	}
out:
	close(fd);
	return NULL;
}

static void *serve(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(listen_fd, NULL, NULL);
		if (fd < 0)
			return NULL;
		pthread_mutex_lock(&mu);
		accepted++;
		pthread_mutex_unlock(&mu);
		pthread_t t;
		pthread_create(&t, NULL, serve_conn, (void *)(intptr_t)fd);
		pthread_detach(t);
	}
}

/* ---- the loop ------------------------------------------------------------ */

static int epfd;
static int done, in_submit;

struct result {
	long status;
	char error[128];
	size_t body_len;
	bool called;
};

static void on_response(const struct http_response *resp, void *context)
{
	struct result *r = context;
	assert_false(in_submit);
	assert_false(r->called);
	r->called = true;
	r->status = resp->status;
	r->body_len = resp->body_len;
	snprintf(r->error, sizeof(r->error), "%s", resp->error != NULL ? resp->error : "");
	done++;
}

/* run the loop until want callbacks came */
static void run_until(int want)
{
	while (done < want) {
		struct epoll_event ev[16];
		int n = epoll_wait(epfd, ev, 16, auth_loop_next_timeout_ms());
		for (int i = 0; i < n; i++)
			assert_true(auth_loop_dispatch(ev[i].data.ptr, ev[i].events));
		auth_loop_run_timeouts();
		auth_loop_free_dead();
	}
}

static void submit(struct http_client *c, const char *method, const char *path,
		   const char *const *headers, const char *body, struct result *r)
{
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	in_submit = 1;
	http_client_submit(c, method, url, headers, body, on_response, r);
	in_submit = 0;
}

static int setup(void **state)
{
	(void)state;
	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(listen_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(listen_fd, 64), 0);
	socklen_t sl = sizeof(sin);
	getsockname(listen_fd, (struct sockaddr *)&sin, &sl);
	port = ntohs(sin.sin_port);
	pthread_t t;
	pthread_create(&t, NULL, serve, NULL);
	pthread_detach(t);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	auth_loop_init(epfd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	auth_loop_deinit();
	close(epfd);
	shutdown(listen_fd, SHUT_RDWR);
	close(listen_fd);
	return 0;
}

static void test_parallel_bound_and_reuse(void **state)
{
	(void)state;
	struct http_client_settings set = { .max_parallel = 2, .max_queue = 100,
					    .timeout_msecs = 20000, .max_body = 1024 };
	const char *error;
	struct http_client *c = http_client_new(&set, &error);
	assert_non_null(c);
	struct result r[12];
	memset(r, 0, sizeof(r));
	done = 0;
	pthread_mutex_lock(&mu);
	accepted = 0;
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < 12; i++)
		submit(c, "GET", "/ok", NULL, NULL, &r[i]);
	/* none answered inside submit */
	assert_int_equal(done, 0);
	run_until(12);
	for (int i = 0; i < 12; i++) {
		assert_string_equal(r[i].error, "");
		assert_int_equal(r[i].status, 200);
		assert_int_equal(r[i].body_len, 11);
	}
	pthread_mutex_lock(&mu);
	int conns = accepted;
	pthread_mutex_unlock(&mu);
	assert_true(conns >= 1 && conns <= 2);
	http_client_free(&c);
	assert_null(c);
}

static void test_post_and_headers(void **state)
{
	(void)state;
	struct http_client_settings set = { .max_parallel = 1, .max_queue = 4,
					    .timeout_msecs = 20000, .max_body = 1024 };
	const char *error;
	struct http_client *c = http_client_new(&set, &error);
	struct result r = { 0 };
	done = 0;
	const char *headers[] = { "Authorization: Bearer abc.def", NULL };
	submit(c, "POST", "/ok", headers, "token=a%2Bb&client_id=x", &r);
	run_until(1);
	assert_int_equal(r.status, 200);
	pthread_mutex_lock(&mu);
	assert_string_equal(last_body, "token=a%2Bb&client_id=x");
	assert_string_equal(last_auth, "Authorization: Bearer abc.def");
	pthread_mutex_unlock(&mu);
	http_client_free(&c);
}

static void test_failures(void **state)
{
	(void)state;
	struct http_client_settings set = { .max_parallel = 1, .max_queue = 2,
					    .timeout_msecs = 700, .max_body = 1024 };
	const char *error;
	struct http_client *c = http_client_new(&set, &error);
	struct result r[5];
	memset(r, 0, sizeof(r));
	done = 0;
	/* one active (silent), two waiting; the fourth is beyond max_queue */
	submit(c, "GET", "/silent", NULL, NULL, &r[0]);
	submit(c, "GET", "/big", NULL, NULL, &r[1]);
	submit(c, "GET", "/e500", NULL, NULL, &r[2]);
	submit(c, "GET", "/ok", NULL, NULL, &r[3]);
	assert_int_equal(done, 0);
	run_until(4);
	assert_string_equal(r[3].error, "too many introspection requests waiting");
	assert_string_equal(r[0].error, "timed out");
	/* the waiting ones had the same 700 ms from submission: used up by
	   the silent one */
	assert_string_equal(r[1].error, "timed out waiting for a connection");
	assert_string_equal(r[2].error, "timed out waiting for a connection");
	/* now each on its own */
	memset(r, 0, sizeof(r));
	done = 0;
	submit(c, "GET", "/big", NULL, NULL, &r[0]);
	run_until(1);
	assert_string_equal(r[0].error, "response body too large");
	submit(c, "GET", "/e500", NULL, NULL, &r[1]);
	run_until(2);
	assert_string_equal(r[1].error, "");
	assert_int_equal(r[1].status, 500);
	http_client_free(&c);
	/* nobody listening: a transport error */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	bind(s, (struct sockaddr *)&sin, sizeof(sin));
	socklen_t sl = sizeof(sin);
	getsockname(s, (struct sockaddr *)&sin, &sl);
	close(s);
	c = http_client_new(&set, &error);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", ntohs(sin.sin_port));
	done = 0;
	http_client_submit(c, "GET", url, NULL, NULL, on_response, &r[2]);
	run_until(1);
	assert_int_equal(r[2].status, 0);
	assert_true(r[2].error[0] != '\0');
	/* pending requests at free: dropped without a callback */
	done = 0;
	submit(c, "GET", "/silent", NULL, NULL, &r[4]);
	http_client_free(&c);
	assert_false(r[4].called);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parallel_bound_and_reuse),
		cmocka_unit_test(test_post_and_headers),
		cmocka_unit_test(test_failures),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
