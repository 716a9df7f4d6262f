/* BINARY (RFC 3516) against the real ringgate-imap: FETCH BINARY[],
 * BINARY.PEEK, BINARY.SIZE and partials of base64 and quoted-printable
 * parts, literal8 answers for data with NUL, [UNKNOWN-CTE] for unknown
 * encodings and invalid data, bad sections, APPEND with ~{n}; the
 * COMPRESS command's answers in the session core (RFC 4978) and its
 * deflate stream layer (imap-compress.c) both ways. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness.h"
#include "imap/imap-client.h"
#include "imap/imap-compress.h"
#include "lib/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define BIN_MSG                                                                  \
	"From: a@example.com\nSubject: bin\nMIME-Version: 1.0\n"                 \
	"Content-Type: multipart/mixed; boundary=\"xx\"\n\n"                     \
	"--xx\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n" \
	"aGVsbG8g\nd29ybGQ=\n"                                                   \
	"--xx\nContent-Type: text/plain\nContent-Transfer-Encoding: Quoted-Printable\n\n" \
	"caf=C3=A9 =\nline  \n"                                                  \
	"--xx\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" \
	"AP8AAQ==\n"                                                             \
	"--xx\nContent-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\nbegin\n" \
	"--xx\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\naGk*\n" \
	"--xx--\n"

struct fixture {
	char *home, *md;
};

static int setup(void **state)
{
	struct fixture *f = rg_calloc(1, sizeof(*f));
	f->home = wh_tmpdir();
	f->md = rg_strdup_printf("%s/Maildir", f->home);
	wh_put_msg(f->md, "cur", "1000.a.host:2,", BIN_MSG, 1000);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	wh_rm_rf(f->home);
	rg_free(f->home);
	rg_free(f->md);
	rg_free(f);
	return 0;
}

/* send cmd, read through the tagged line; the reply may hold NULs */
static void expect_mem(struct worker_proc *w, const char *cmd, const char *want, size_t want_len)
{
	wh_send(w, cmd);
	char *prefix = rg_strndup(cmd, strcspn(cmd, " ") + 1);
	const char *tagged = want + want_len;
	while (tagged > want && (tagged[-1] != '\n' || strncmp(tagged, prefix, strlen(prefix)) != 0))
		tagged--;
	char *got;
	size_t len;
	/* the reply ends with its whole tagged line */
	got = wh_read_until(w, tagged, &len);
	if (len != want_len || memcmp(got, want, len) != 0)
		fail_msg("%s: got %zu bytes \"%s\"", cmd, len, got);
	rg_free(got);
	rg_free(prefix);
}

static void expect(struct worker_proc *w, const char *cmd, const char *want)
{
	expect_mem(w, cmd, want, strlen(want));
}

static struct worker_proc start(struct fixture *f)
{
	struct worker_proc w = wh_start("ringgate-imap", f->home, NULL, "t", NULL, 0);
	rg_free(wh_read_until_line(&w, "t "));
	wh_send(&w, "s SELECT INBOX\r\n");
	rg_free(wh_read_until_line(&w, "s "));
	return w;
}

static void test_fetch_binary(void **state)
{
	struct fixture *f = *state;
	struct worker_proc w = start(f);
	expect(&w, "b1 FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])\r\n",
	       "* 1 FETCH (BINARY.SIZE[1] 11 BINARY[1] {11}\r\nhello world)\r\nb1 OK Fetch completed.\r\n");
	/* quoted-printable: "=C3=A9", a soft break, trailing spaces dropped */
	expect(&w, "b2 FETCH 1 (BINARY.SIZE[2] BINARY.PEEK[2])\r\n",
	       "* 1 FETCH (BINARY.SIZE[2] 10 BINARY[2] {10}\r\ncaf\xc3\xa9 line)\r\nb2 OK Fetch completed.\r\n");
	/* a partial counts decoded bytes */
	expect(&w, "b3 UID FETCH 1 BINARY.PEEK[2]<4.100>\r\n",
	       "* 1 FETCH (UID 1 BINARY[2]<4> {6}\r\n\xa9 line)\r\nb3 OK Fetch completed.\r\n");
	/* decoded data holding NUL goes as a literal8 */
	static const char nul[] = "* 1 FETCH (BINARY[3] ~{4}\r\n\0\xff\0\x01)\r\nb4 OK Fetch completed.\r\n";
	expect_mem(&w, "b4 FETCH 1 BINARY.PEEK[3]\r\n", nul, sizeof(nul) - 1);
	expect(&w, "b5 FETCH 1 (FLAGS BINARY.PEEK[4])\r\n",
	       "b5 NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding.\r\n");
	expect(&w, "b6 FETCH 1 BINARY.SIZE[5]\r\n", "b6 NO [UNKNOWN-CTE] Invalid data in MIME part\r\n");
	/* BINARY[] decodes every leaf of the message: one unknown fails it */
	expect(&w, "b7 FETCH 1 BINARY.SIZE[]\r\n", "b7 NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding.\r\n");
	/* only part numbers, no partial for the size */
	expect(&w, "b8 FETCH 1 BINARY[1.MIME]\r\n",
	       "b8 BAD Error in IMAP command FETCH: Unknown parameter BINARY[1.MIME]\r\n");
	expect(&w, "b9 FETCH 1 BINARY.SIZE[1]<0.5>\r\n",
	       "b9 BAD Error in IMAP command FETCH: Unknown parameter BINARY.SIZE[1]<0.5>\r\n");
	expect(&w, "b10 FETCH 1 BINARY.FOO[1]\r\n",
	       "b10 BAD Error in IMAP command FETCH: Unknown parameter BINARY.FOO[1]\r\n");
	/* PEEK and SIZE left \Seen alone; BINARY[] sets it */
	expect(&w, "b11 FETCH 1 FLAGS\r\n", "* 1 FETCH (FLAGS ())\r\nb11 OK Fetch completed.\r\n");
	expect(&w, "b12 FETCH 1 BINARY[1]<6.5>\r\n",
	       "* 1 FETCH (BINARY[1]<6> {5}\r\nworld FLAGS (\\Seen))\r\nb12 OK Fetch completed.\r\n");
	wh_send(&w, "z LOGOUT\r\n");
	rg_free(wh_read_until_line(&w, "z "));
	assert_int_equal(wh_finish(&w), 0);
}

static void test_append_literal8(void **state)
{
	struct fixture *f = *state;
	struct worker_proc w = start(f);
	/* ~{n+} without waiting, ~{n} after the continuation */
	static const char m2[] = "a1 APPEND INBOX ~{22+}\r\nSubject: b\r\n\r\nx\0y\r\n\0\r\n\r\n";
	wh_send_len(&w, m2, sizeof(m2) - 1);
	char *got = wh_read_until_line(&w, "a1 ");
	assert_non_null(strstr(got, "a1 OK [APPENDUID "));
	rg_free(got);
	expect(&w, "a2 APPEND INBOX ~{14}\r\n", "+ OK\r\n");
	wh_send(&w, "Subject: c\r\n\r\n\r\n");
	got = wh_read_until_line(&w, "a2 ");
	assert_non_null(strstr(got, "* 3 EXISTS\r\n"));
	assert_non_null(strstr(got, "a2 OK [APPENDUID "));
	rg_free(got);
	static const char body[] = "* 2 FETCH (BINARY[1] ~{8}\r\nx\0y\r\n\0\r\n)\r\nf1 OK Fetch completed.\r\n";
	expect_mem(&w, "f1 FETCH 2 BINARY.PEEK[1]\r\n", body, sizeof(body) - 1);
	/* BINARY[]: the header says binary, the body is the bytes sent */
	static const char whole[] = "* 2 FETCH (BINARY[] ~{57}\r\nSubject: b\r\nContent-Transfer-Encoding: binary\r\n"
				    "\r\nx\0y\r\n\0\r\n)\r\nf3 OK Fetch completed.\r\n";
	expect_mem(&w, "f3 FETCH 2 BINARY.PEEK[]\r\n", whole, sizeof(whole) - 1);
	/* stored base64-encoded (RFC 3516 4.4): BODY[] stays 7bit */
	expect(&w, "f2 FETCH 2 (BODY.PEEK[1] BODY.PEEK[HEADER.FIELDS (Content-Transfer-Encoding)])\r\n",
	       "* 2 FETCH (BODY[1] {12}\r\neAB5DQoADQo= BODY[HEADER.FIELDS (Content-Transfer-Encoding)] {37}\r\n"
	       "Content-Transfer-Encoding: base64\r\n\r\n)\r\nf2 OK Fetch completed.\r\n");
	/* literal8 is APPEND's alone; "~" may start an atom elsewhere */
	expect(&w, "x1 STATUS ~{5}\r\n",
	       "x1 BAD Error in IMAP command received by server: Binary literal only allowed in APPEND.\r\n");
	expect(&w, "x2 STATUS ~x (MESSAGES)\r\n", "x2 NO Mailbox doesn't exist: ~x\r\n");
	wh_send(&w, "z LOGOUT\r\n");
	rg_free(wh_read_until_line(&w, "z "));
	assert_int_equal(wh_finish(&w), 0);
}

/* ---- COMPRESS in the session core ---- */

struct capture {
	char data[4096];
	size_t len;
	int started;
};

static void capture_send(void *ctx, const void *data, size_t len)
{
	struct capture *c = ctx;
	assert_true(c->len + len < sizeof(c->data));
	memcpy(c->data + c->len, data, len);
	c->len += len;
	c->data[c->len] = '\0';
}

static void capture_start(void *ctx)
{
	struct capture *c = ctx;
	/* the tagged OK went out before compression starts */
	assert_non_null(strstr(c->data, "c1 OK Begin compression.\r\n"));
	c->started++;
}

static void test_compress_command(void **state)
{
	struct fixture *f = *state;
	struct capture cap = { .len = 0 };
	/* without a socket layer that compresses, COMPRESS is not there */
	struct imap_client *client = imap_client_create(f->md, capture_send, &cap);
	imap_client_send_login_reply(client, "t");
	assert_null(strstr(cap.data, "COMPRESS"));
	static const char plain[] = "c0 COMPRESS DEFLATE\r\n";
	assert_true(imap_client_input(client, (const uint8_t *)plain, sizeof(plain) - 1));
	assert_non_null(strstr(cap.data, "c0 BAD Unknown command.\r\n"));
	imap_client_destroy(client);

	cap.len = 0;
	cap.data[0] = '\0';
	client = imap_client_create(f->md, capture_send, &cap);
	imap_client_set_compress(client, capture_start, &cap);
	imap_client_send_login_reply(client, "t");
	assert_non_null(strstr(cap.data, " COMPRESS=DEFLATE] Logged in\r\n"));
	/* input stops right after the accepted COMPRESS: the rest is the
	 * caller's to inflate */
	static const char in[] = "c2 COMPRESS\r\nc3 COMPRESS LZW\r\nc1 COMPRESS deflate\r\nREST";
	size_t used;
	assert_true(imap_client_input_part(client, (const uint8_t *)in, sizeof(in) - 1, &used));
	assert_int_equal(used, sizeof(in) - 1 - 4);
	assert_int_equal(cap.started, 1);
	assert_non_null(strstr(cap.data, "c2 BAD Error in IMAP command COMPRESS: Invalid arguments.\r\n"
					 "c3 BAD Unknown compression mechanism.\r\n"
					 "c1 OK Begin compression.\r\n"));
	/* a second one: NO, and compression is not started again */
	static const char again[] = "c4 COMPRESS DEFLATE\r\nc5 NOOP\r\n";
	assert_true(imap_client_input_part(client, (const uint8_t *)again, sizeof(again) - 1, &used));
	assert_int_equal(used, sizeof(again) - 1);
	assert_int_equal(cap.started, 1);
	assert_non_null(strstr(cap.data, "c4 NO [COMPRESSIONACTIVE] Compression already enabled.\r\n"
					 "c5 OK NOOP completed.\r\n"));
	imap_client_destroy(client);
}

/* ---- the deflate stream layer ---- */

struct sink {
	uint8_t *data;
	size_t len;
	unsigned int calls;
};

static void sink_send(void *ctx, const void *data, size_t len)
{
	struct sink *s = ctx;
	s->data = rg_realloc(s->data, s->len + len);
	memcpy(s->data + s->len, data, len);
	s->len += len;
	s->calls++;
}

/* raw inflate of everything the layer sent, as a client would */
static size_t client_inflate(const struct sink *s, uint8_t *out, size_t size)
{
	z_stream z = { 0 };
	assert_int_equal(inflateInit2(&z, -15), Z_OK);
	z.next_in = s->data;
	z.avail_in = (uInt)s->len;
	z.next_out = out;
	z.avail_out = (uInt)size;
	int ret = inflate(&z, Z_SYNC_FLUSH);
	assert_true(ret == Z_OK || ret == Z_BUF_ERROR);
	/* a sync flush left nothing behind */
	assert_int_equal(z.avail_in, 0);
	size_t n = size - z.avail_out;
	inflateEnd(&z);
	return n;
}

static void test_compress_stream(void **state)
{
	(void)state;
	struct sink sink = { 0 };
	struct imap_compress *z = imap_compress_create(sink_send, &sink);
	/* nothing written: a flush sends nothing */
	imap_compress_flush(z);
	assert_int_equal(sink.len, 0);
	static char big[300000];
	/* pseudo-random letters: compresses to well over one chunk */
	uint32_t seed = 1;
	for (size_t i = 0; i < sizeof(big); i++) {
		seed = seed * 1103515245u + 12345u;
		big[i] = (char)('a' + (seed >> 16) % 26);
	}
	imap_compress_write(z, "* OK first\r\n", 12);
	imap_compress_write(z, big, sizeof(big));
	imap_compress_flush(z);
	uint8_t *plain = rg_malloc(sizeof(big) + 64);
	size_t n = client_inflate(&sink, plain, sizeof(big) + 64);
	assert_int_equal(n, 12 + sizeof(big));
	assert_memory_equal(plain, "* OK first\r\n", 12);
	assert_memory_equal(plain + 12, big, sizeof(big));
	/* bounded chunks: a big response leaves in several sends */
	assert_true(sink.calls > 1);

	/* the other way: the client's deflate stream at every split */
	static const char cmds[] = "a NOOP\r\nb FETCH 1:* (FLAGS BODY.PEEK[])\r\nc LOGOUT\r\n";
	uint8_t packed[256];
	z_stream c = { 0 };
	assert_int_equal(deflateInit2(&c, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	c.next_in = (Bytef *)(uintptr_t)cmds;
	c.avail_in = sizeof(cmds) - 1;
	c.next_out = packed;
	c.avail_out = sizeof(packed);
	assert_int_equal(deflate(&c, Z_SYNC_FLUSH), Z_OK);
	size_t plen = sizeof(packed) - c.avail_out;
	deflateEnd(&c);
	for (size_t split = 0; split <= plen; split++) {
		struct imap_compress *in = imap_compress_create(sink_send, &sink);
		uint8_t out[16];
		char got[sizeof(cmds)];
		size_t got_len = 0;
		size_t pieces[2][2] = { { 0, split }, { split, plen } };
		for (int k = 0; k < 2; k++) {
			const uint8_t *p = packed + pieces[k][0];
			size_t left = pieces[k][1] - pieces[k][0];
			for (;;) {
				size_t used, produced;
				const char *error;
				/* a small output buffer: inflate hands over in pieces */
				assert_int_equal(imap_compress_inflate(in, p, left, &used, out, sizeof(out),
								       &produced, &error), PARSE_MORE);
				assert_true(got_len + produced < sizeof(got));
				memcpy(got + got_len, out, produced);
				got_len += produced;
				p += used;
				left -= used;
				if (left == 0 && produced < sizeof(out))
					break;
			}
		}
		assert_int_equal(got_len, sizeof(cmds) - 1);
		assert_memory_equal(got, cmds, got_len);
		imap_compress_destroy(in);
	}

	/* corrupt input: an error with zlib's reason, never a crash */
	struct imap_compress *bad = imap_compress_create(sink_send, &sink);
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0x00, 0x12 };
	size_t used, produced;
	const char *error = NULL;
	uint8_t out[64];
	assert_int_equal(imap_compress_inflate(bad, junk, sizeof(junk), &used, out, sizeof(out), &produced,
					       &error), PARSE_ERROR);
	assert_non_null(error);
	imap_compress_destroy(bad);
	imap_compress_destroy(z);
	rg_free(plain);
	rg_free(sink.data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fetch_binary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_literal8, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compress_command, setup, teardown),
		cmocka_unit_test(test_compress_stream),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
