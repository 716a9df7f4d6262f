/* tls-peer.c — what a finished handshake tells: resumption, version,
 * suite, SNI name, channel binding, and the client's certificate (checked
 * and its name taken during the handshake by tls_verify_cb, judged here). */
#include "tls/tls-private.h"

#include <string.h>

/* --- client certificates --- */

/* The entry of the client certificate's subject that names the user, into
 * name (TLS_CERT_NAME_MAX bytes); "" when there is none, or it does not
 * fit, or its text is shorter than its length (a NUL inside: Dovecot
 * refuses such a name) */
static void tls_cert_name(WOLFSSL_X509 *x509, int nid, char *name)
{
	WOLFSSL_X509_NAME *subject = wolfSSL_X509_get_subject_name(x509);
	int len = subject != NULL ? wolfSSL_X509_NAME_get_text_by_NID(subject, nid, NULL, 0) : -1;
	if (len <= 0 || len >= TLS_CERT_NAME_MAX ||
	    wolfSSL_X509_NAME_get_text_by_NID(subject, nid, name, TLS_CERT_NAME_MAX) != len ||
	    strlen(name) != (size_t)len)
		name[0] = '\0';
}

/* Called by wolfSSL for each certificate of a client's chain that fails
 * (preverify 0), and for the client's own certificate (depth 0) in any
 * case (WOLFSSL_ALWAYS_VERIFY_CB, which both builds have). A failure does
 * not fail the handshake: Dovecot's login processes accept it
 * (allow_invalid_cert) and refuse the login later, so we remember it. The
 * client's certificate gives its name here, while wolfSSL has it: after
 * the handshake it keeps none (RINGGATE_NO_KEEP_PEER_CERT). */
int tls_verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
	WOLFSSL *ssl = wolfSSL_X509_STORE_CTX_get_ex_data(store, wolfSSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_conn *conn = ssl != NULL ? wolfSSL_GetIOReadCtx(ssl) : NULL;
	if (conn == NULL)
		return preverify != 0; /* nowhere to remember a failure: fail the handshake */
	if (!preverify && !conn->cert_broken) {
		conn->cert_broken = true;
		conn->cert_error = wolfSSL_X509_STORE_CTX_get_error(store);
	}
	/* the room for the name is there when the connection's context asks
	 * for certificates (tls_conn_new) */
	WOLFSSL_X509 *x509 = wolfSSL_X509_STORE_CTX_get_current_cert(store);
	int der_len = 0;
	/* a client that sent no certificate gets this call too, with no
	 * certificate or an empty one */
	if (wolfSSL_X509_STORE_CTX_get_error_depth(store) == 0 && conn->ctx->verify_client &&
	    x509 != NULL && wolfSSL_X509_get_der(x509, &der_len) != NULL && der_len > 0) {
		tls_cert_name(x509, conn->ctx->username_nid, conn->peer_name);
		conn->peer_cert = true;
	}
	return 1;
}

bool tls_conn_resumed(const struct tls_conn *conn)
{
	return conn->handshake_done && wolfSSL_session_reused(conn->ssl) != 0;
}

const char *tls_conn_version(const struct tls_conn *conn)
{
	return wolfSSL_get_version(conn->ssl);
}

/* OpenSSL's names, which Dovecot logs: wolfSSL's own for TLS <= 1.2 are
 * the same, for TLS 1.3 they differ ("TLS13-AES128-GCM-SHA256"), so those
 * come from the IANA table ("TLS_AES_128_GCM_SHA256") */
const char *tls_conn_cipher(const struct tls_conn *conn)
{
	if (wolfSSL_version(conn->ssl) == TLS1_3_VERSION) {
		int suite = wolfSSL_get_current_cipher_suite(conn->ssl);
		const char *name = wolfSSL_get_cipher_name_iana_from_suite((unsigned char)(suite >> 8),
									   (unsigned char)suite);
		if (name != NULL && strcmp(name, "None") != 0)
			return name;
	}
	return wolfSSL_get_cipher_name(conn->ssl);
}

const char *tls_conn_sni(const struct tls_conn *conn)
{
	return wolfSSL_get_servername(conn->ssl, WOLFSSL_SNI_HOST_NAME);
}

size_t tls_conn_channel_binding(struct tls_conn *conn, const char **type_r, uint8_t buf[TLS_CB_MAX])
{
	_Static_assert(TLS_EXPORTER_SIZE <= TLS_CB_MAX, "channel binding room");

	if (!conn->handshake_done)
		return 0;
	if (wolfSSL_version(conn->ssl) == TLS1_3_VERSION) {
		/* derived when the handshake ended (tls-conn.c) */
		if (!conn->has_exporter)
			return 0;
		memcpy(buf, conn->exporter, TLS_EXPORTER_SIZE);
		*type_r = "tls-exporter";
		return TLS_EXPORTER_SIZE;
	}
	/* wolfSSL keeps both Finished messages of the last handshake: the
	 * first sent is the client's in a full handshake, the server's in an
	 * abbreviated one */
	bool server = !conn->ctx->client;
	bool first_is_ours = server == (wolfSSL_session_reused(conn->ssl) != 0);
	size_t n = first_is_ours ? wolfSSL_get_finished(conn->ssl, buf, TLS_CB_MAX)
				 : wolfSSL_get_peer_finished(conn->ssl, buf, TLS_CB_MAX);
	if (n == 0 || n > TLS_CB_MAX)
		return 0;
	*type_r = "tls-unique";
	return n;
}

enum tls_peer_cert tls_conn_peer_cert(struct tls_conn *conn, char name[TLS_CERT_NAME_MAX],
				      const char **error_r)
{
	name[0] = '\0';
	if (!conn->handshake_done || !conn->ctx->verify_client)
		return TLS_PEER_CERT_NONE;
	if (conn->cert_broken || wolfSSL_get_verify_result(conn->ssl) != X509_V_OK) {
		int err = conn->cert_error != 0 ? conn->cert_error
						: (int)wolfSSL_get_verify_result(conn->ssl);
		*error_r = err < 0 ? tls_wolf_reason(err) : wolfSSL_X509_verify_cert_error_string(err);
		return TLS_PEER_CERT_INVALID;
	}
	if (!conn->peer_cert)
		return TLS_PEER_CERT_NONE;
	memcpy(name, conn->peer_name, strlen(conn->peer_name) + 1);
	return TLS_PEER_CERT_VALID;
}
