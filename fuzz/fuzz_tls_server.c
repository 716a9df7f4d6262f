/* fuzz_tls_server — a client's bytes against a fresh server connection.
 * Byte 0: bits 0-6 the chunk size the rest is fed in (0: all at once), bit
 * 7 a server that asks for a client certificate (ssl_verify_client_cert,
 * other-cert.pem as the CA): a TLS 1.2 client's Certificate message is
 * plaintext, so wolfSSL's X.509 parsing and our verify callback are
 * reached without keys. The
 * server uses the ECDSA test certificate and fixed ticket keys (bytes 0..47),
 * and SNI names other.example.org and *.example.net (RSA certificate),
 * so the seeds recorded by tests/unit/tls (TLS_RECORD_SEEDS) with a ticket
 * reach resumption. The engine's promises are checked: output never exceeds
 * TLS_OUT_MAX, the input bound holds, and a finished handshake names its
 * version and cipher. */
#include <libgen.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/alloc.h"
#include "lib/log.h"
#include "tls/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct tls_ctx *server_ctx, *verify_ctx;

static void check(bool cond)
{
	if (!cond)
		abort();
}

static char *read_fixture(const char *name)
{
	char dir[512], path[700];

	snprintf(dir, sizeof(dir), "%s", __FILE__);
	snprintf(path, sizeof(path), "%s/../tests/unit/tls/certs/%s", dirname(dir), name);
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		fprintf(stderr, "fuzz_tls_server: cannot open %s\n", path);
		abort();
	}
	char *buf = rg_malloc(16384);
	size_t n = fread(buf, 1, 16383, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void setup(void)
{
	char *cert = read_fixture("ecdsa-cert.pem");
	char *key = read_fixture("ecdsa-key.pem");
	struct tls_ctx_settings set = { .cert_pem = cert, .key_pem = key };
	const char *error;
	uint8_t keys[TLS_TICKET_KEY_SIZE];

	log_init("fuzz-tls");
	if (tls_ctx_create(&set, &server_ctx, &error) < 0) {
		fprintf(stderr, "fuzz_tls_server: %s\n", error);
		abort();
	}
	for (size_t i = 0; i < sizeof(keys); i++)
		keys[i] = (uint8_t)i;
	tls_ctx_set_ticket_keys(server_ctx, keys, NULL);
	rg_free(cert);
	rg_free(key);

	/* SNI: an exact name and a wildcard switch to the RSA certificate */
	struct tls_ctx *sub;
	set.cert_pem = cert = read_fixture("rsa-cert.pem");
	set.key_pem = key = read_fixture("rsa-key.pem");
	if (tls_ctx_create(&set, &sub, &error) < 0 ||
	    tls_ctx_add_sni(server_ctx, "other.example.org", sub, &error) < 0 ||
	    tls_ctx_add_sni(server_ctx, "*.example.net", sub, &error) < 0) {
		fprintf(stderr, "fuzz_tls_server: %s\n", error);
		abort();
	}
	tls_ctx_free(&sub);
	rg_free(cert);
	rg_free(key);

	set.cert_pem = cert = read_fixture("ecdsa-cert.pem");
	set.key_pem = key = read_fixture("ecdsa-key.pem");
	set.ca_pem = read_fixture("other-cert.pem");
	set.verify_client = true;
	if (tls_ctx_create(&set, &verify_ctx, &error) < 0) {
		fprintf(stderr, "fuzz_tls_server: %s\n", error);
		abort();
	}
	/* and a local_name store on it: the same names as server_ctx's,
	 * their contexts built when a ClientHello names them */
	struct tls_sni_builder *b = tls_sni_builder_new();
	char *ocert = read_fixture("other-cert.pem");
	char *okey = read_fixture("other-key.pem");
	if (tls_sni_builder_add(b, "other.example.org", ocert, okey, &error) < 0 ||
	    tls_sni_builder_add(b, "*.example.net", ocert, okey, &error) < 0) {
		fprintf(stderr, "fuzz_tls_server: %s\n", error);
		abort();
	}
	tls_ctx_set_sni_store(verify_ctx, tls_sni_builder_finish(&b, &set));
	rg_free(ocert);
	rg_free(okey);
	rg_free((char *)set.ca_pem);
	rg_free(cert);
	rg_free(key);
}

/* send everything pending, as the ring would */
static void drain(struct tls_conn *conn)
{
	const uint8_t *out;
	size_t len;

	while (tls_conn_pending_output(conn, &out, &len)) {
		check(len > 0 && len <= TLS_OUT_MAX);
		/* send in two parts to exercise partial consumption */
		size_t first = len / 2 + 1;
		tls_conn_consume_output(conn, first);
		if (tls_conn_pending_output(conn, &out, &len))
			tls_conn_consume_output(conn, len);
	}
}

/* run the engine on what it has; false once the connection is over */
static bool step(struct tls_conn *conn, bool *greeted)
{
	const char *error;
	uint8_t plain[4096];
	size_t len;

	for (;;) {
		enum tls_result res;
		if (!tls_conn_handshake_done(conn)) {
			res = tls_conn_handshake(conn, &error);
			drain(conn);
			if (res == TLS_OK) {
				check(tls_conn_version(conn) != NULL && tls_conn_cipher(conn) != NULL);
				continue;
			}
		} else {
			if (!*greeted) {
				size_t taken;
				*greeted = true;
				res = tls_conn_write(conn, "* OK\r\n", 6, &taken, &error);
				check(res == TLS_OK ? taken == 6 : res != TLS_WANT_INPUT);
				drain(conn);
			}
			res = tls_conn_read(conn, plain, sizeof(plain), &len, &error);
			if (res == TLS_OK) {
				check(len > 0 && len <= sizeof(plain));
				continue;
			}
			drain(conn);
		}
		if (res == TLS_WANT_OUTPUT)
			continue;
		return res == TLS_WANT_INPUT;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (server_ctx == NULL)
		setup();
	if (size < 1)
		return 0;
	size_t chunk = (data[0] & 0x7f) == 0 ? size : (data[0] & 0x7f);
	struct tls_ctx *ctx = (data[0] & 0x80) != 0 ? verify_ctx : server_ctx;
	data++;
	size--;

	struct tls_conn *conn = tls_conn_new(ctx);
	bool greeted = false, alive = true;
	while (size > 0 && alive) {
		size_t n = size < chunk ? size : chunk;
		size_t taken = tls_conn_feed(conn, data, n);
		/* after TLS_WANT_INPUT the engine takes all of it */
		check(taken == n || taken == TLS_IN_MAX);
		data += taken;
		size -= taken;
		alive = step(conn, &greeted);
	}
	if (tls_conn_handshake_done(conn)) {
		/* what AUTH_BEGIN would carry */
		char name[TLS_CERT_NAME_MAX];
		const char *error = NULL, *type = NULL;
		enum tls_peer_cert pc = tls_conn_peer_cert(conn, name, &error);
		check(strlen(name) < TLS_CERT_NAME_MAX);
		check(pc != TLS_PEER_CERT_INVALID || error != NULL);
		check(ctx == verify_ctx || pc == TLS_PEER_CERT_NONE);
		uint8_t cb[TLS_CB_MAX];
		size_t n = tls_conn_channel_binding(conn, &type, cb);
		check(n <= TLS_CB_MAX && (n == 0 || type != NULL));
	}
	if (alive && tls_conn_handshake_done(conn)) {
		const char *error;
		if (tls_conn_shutdown(conn, &error) != TLS_ERROR)
			drain(conn);
	}
	tls_conn_free(&conn);
	return 0;
}
