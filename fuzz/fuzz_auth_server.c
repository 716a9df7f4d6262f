/* libFuzzer target: the auth process's handling of login-channel messages
 * after ipc_decode (src/auth/auth-server.c): AUTH_BEGIN / CONTINUE / ABORT
 * and anything else, request ids that collide, the SASL steps, the passdb
 * and userdb lookups, nologin, the failure delay queue, and master's
 * AUTH_REQUEST taking the cookie of an AUTH_OK.
 *
 * Input: byte 0 picks one of four servers (mechanisms: the odd ones offer SCRAM,
 * its -PLUS forms, CRAM-MD5, APOP and EXTERNAL too, with the client
 * certificate's name as the user (1) or required (3); disable_plaintext_auth,
 * one file or a separate userdb), then records:
 *   [op] op & 3: 0 AUTH_BEGIN, 1 AUTH_CONTINUE, 2 AUTH_ABORT,
 *                3 special (op >> 2: 0 tick, 1 another type, 2 AUTH_REQUEST
 *                with the last cookie, 3 with the wrong login pid,
 *                4 with a made-up cookie, 5 a second channel);
 *        op >> 2 for 0..2: request id (0..63)
 *   for BEGIN/CONTINUE: [fields] bit 0 MECH, 1 RESP, 2 RIP, 3 SECURED,
 *        4 USER (ignored by auth), 5 CERT_USER (with CERT_VALID = 1),
 *        6 CB_DATA (with CB_TYPE tls-unique), 7 TLS; each present field:
 *        [len] then len bytes.
 * Each message is built with ipc_msg_add and decoded by ipc_decode, as
 * ipc_recv would, then handed to auth_server_login_message(). Replies are
 * read back from the login side of a real socketpair and checked: only
 * AUTH_CHALLENGE / AUTH_OK / AUTH_FAIL, each for an id the input used, and
 * an AUTH_OK has a 32-hex cookie (or, for a passdb proxy user, the backend
 * password instead). The passwd-files live in a temporary
 * directory written once (removed at exit). Run with -close_fd_mask=2:
 * auth logs a line per failed login. */
#include "auth/auth-server.h"

#include "lib/ipc.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define LOGIN_PID 4242u

static struct auth_server *servers[4];
static int master_peer = -1; /* master's side of each server's channel */
static struct ipc_rx rx;       /* replies read back */
static struct ipc_rx in;       /* the decoded message handed to auth */
static struct ipc_msg msg;
static char cookie[64];

static const char users[] =
	"alice:{PLAIN}secret:1000:1000::/home/alice::userdb_mail=maildir:~/M userdb_quota=1G x=y\n"
	"pat:{PLAIN}pw:1010:1010::/home/p::proxy host=192.0.2.10 port=143\n"
	"max:{PLAIN}pw:1011:1011::/home/m::proxy_maybe host=192.0.2.11 pass=masterpw\n"
	"bob:{PLAIN}pw:1001:1001::/home/bob::nologin reason=Moved\n"
	"carol:{PLAIN}pw::::/home/c\n"
	"dave::1003:1003::/home/d\n"
	"eve:{SHA512-CRYPT}nothash:1004:1004::/home/e\n"
	"frank:{NOSUCH}x:1005:1005::/home/f\n"
	"gina:{PLAIN}pw:1006:1006::/home/g::userdb_uid=x userdb_gid=7\n"
	"henry:{CLEARTEXT}pw:1007:1007::/home/h::nologin\n"
	"ivan:{PLAIN}pw:1008:1008::/home/i\n"
	"nopw::1013:1013::/home/n::nopassword\n"
	/* doveadm pw -s SCRAM-SHA-256 / CRAM-MD5 -p pencil */
	"sam:{SCRAM-SHA-256}4096,42Yz7uDuskGDQNyhf7kNYQ==,O43YZVJ65lqfA2moNzwfI2aniD1RbTI5tsLmiywe5FU=,"
	"deD5TDhN5XCE67Ak80tp+M3g+nxR+hl9f4h20i5i/ls=:1009:1009::/home/s\n"
	"cram:{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b:1012:1012::/home/c\n";
/* the separate userdb knows alice and ivan, not gina */
static const char userdb[] =
	"alice::2000:2000::/srv/alice::userdb_mail=mdbox:~/x\n"
	"ivan::2008:2008::/srv/ivan\n";

static char tmpdir[64];

static void remove_files(void)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/users", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/userdb", tmpdir);
	unlink(path);
	rmdir(tmpdir);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char dir[] = "/tmp/rg-fuzz-auth-XXXXXX";
	if (mkdtemp(dir) == NULL)
		abort();
	char upath[128], dpath[128], pargs[160], uargs[160];
	snprintf(upath, sizeof(upath), "%s/users", dir);
	snprintf(dpath, sizeof(dpath), "%s/userdb", dir);
	write_file(upath, users);
	write_file(dpath, userdb);
	snprintf(pargs, sizeof(pargs), "scheme=PLAIN %s", upath);
	snprintf(uargs, sizeof(uargs), "%s", dpath);

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		abort();
	master_peer = sv[1];
	for (unsigned i = 0; i < 4; i++) {
		struct auth_config cfg = {
			.mechanisms = (i & 1) != 0 ? "plain login scram-sha-256 scram-sha-1 cram-md5 apop "
						     "scram-sha-256-plus scram-sha-1-plus external"
					     : "plain",
			.ssl_username_from_cert = i == 1,
			.ssl_require_client_cert = i == 3,
			.failure_delay_ms = 0,
			.mail_location = "maildir:~/Maildir",
			.passdb_args = pargs,
			.userdb_args = (i & 2) != 0 ? uargs : "",
			.disable_plaintext_auth = i == 2,
		};
		char *error = NULL;
		int mfd = dup(sv[0]);
		servers[i] = auth_server_new(&cfg, mfd, &error);
		if (servers[i] == NULL) {
			fprintf(stderr, "auth_server_new: %s\n", error);
			abort();
		}
	}
	close(sv[0]);
	/* auth re-stats the files before a lookup: they stay until exit */
	snprintf(tmpdir, sizeof(tmpdir), "%s", dir);
	atexit(remove_files);
	return 0;
}

static bool take(const uint8_t **p, const uint8_t *end, uint8_t *b)
{
	if (*p >= end)
		return false;
	*b = *(*p)++;
	return true;
}

static bool id_used[64];

/* Read every reply on fd and check it. */
static void drain_login(int fd)
{
	for (;;) {
		const char *error = NULL;
		int ret = ipc_recv(fd, &rx, &error);
		if (ret == -EAGAIN || ret == 0)
			return;
		if (ret < 0)
			abort(); /* auth sent something ipc_decode rejects */
		if (rx.fd >= 0)
			abort();
		if (rx.hdr.id >= 64 || !id_used[rx.hdr.id])
			abort(); /* a reply to a request never made */
		switch (rx.hdr.type) {
		case IPC_AUTH_CHALLENGE:
			if (!ipc_has(&rx.fields, IPC_F_CHALLENGE))
				abort();
			break;
		case IPC_AUTH_OK: {
			/* a cookie, or (passdb proxy) none but the backend password */
			const char *c = ipc_str(&rx.fields, IPC_F_COOKIE);
			if (ipc_str(&rx.fields, IPC_F_USER) == NULL)
				abort();
			if (c == NULL) {
				if (!ipc_has(&rx.fields, IPC_F_PASS))
					abort();
				break;
			}
			if (strlen(c) != 32 || strspn(c, "0123456789abcdef") != 32)
				abort();
			memcpy(cookie, c, 33);
			break;
		}
		case IPC_AUTH_FAIL:
			break;
		default:
			abort();
		}
	}
}

static void drain_master(void)
{
	for (;;) {
		const char *error = NULL;
		int ret = ipc_recv(master_peer, &rx, &error);
		if (ret == -EAGAIN || ret == 0)
			return;
		if (ret < 0 || rx.fd >= 0)
			abort();
		if (rx.hdr.type == IPC_AUTH_USER) {
			unsigned long long uid, gid;
			if (ipc_str(&rx.fields, IPC_F_USER) == NULL ||
			    !ipc_uint(&rx.fields, IPC_F_UID, &uid) ||
			    !ipc_uint(&rx.fields, IPC_F_GID, &gid) ||
			    ipc_str(&rx.fields, IPC_F_HOME) == NULL ||
			    ipc_str(&rx.fields, IPC_F_MAIL) == NULL)
				abort();
		} else if (rx.hdr.type != IPC_AUTH_FAIL) {
			abort();
		}
	}
}

/* Build msg into `in` as ipc_recv would decode it. */
static void decode_msg(void)
{
	const char *error = NULL;
	memcpy(in.buf, msg.buf, msg.len);
	/* ipc_send fills in the length; mimic it */
	uint32_t plen = (uint32_t)(msg.len - IPC_HDR_SIZE);
	memcpy(in.buf + 4, &plen, 4);
	if (!ipc_decode(in.buf, msg.len, &in.hdr, &in.fields, &error))
		abort(); /* what ipc_msg_add builds must decode */
	in.fd = -1;
}

static void master_request(struct auth_server *srv, const char *ck, uint32_t pid)
{
	ipc_msg_init(&msg, IPC_AUTH_REQUEST, 7);
	ipc_msg_add_str(&msg, IPC_F_COOKIE, ck);
	ipc_msg_add_uint(&msg, IPC_F_LOGIN_PID, pid);
	decode_msg();
	auth_server_master_message(srv, &in);
	drain_master();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *p = data + 1, *end = data + size;
	struct auth_server *srv = servers[data[0] & 3];
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		abort();
	struct auth_client *c = auth_server_login_add(srv, sv[0], LOGIN_PID, "imap");
	struct auth_client *c2 = NULL;
	int fd2 = -1;
	bool open = true;
	memset(id_used, 0, sizeof(id_used));
	cookie[0] = '\0';

	uint8_t op;
	while (open && take(&p, end, &op)) {
		unsigned kind = op & 3, arg = op >> 2;
		if (kind == 3) {
			switch (arg) {
			case 0:
				auth_server_tick(srv);
				break;
			case 1: {
				uint8_t t = 0;
				(void)take(&p, end, &t);
				ipc_msg_init(&msg, (enum ipc_type)(t % (IPC_TYPE_COUNT - 1) + 1), 0);
				decode_msg();
				id_used[0] = true;
				open = auth_server_login_message(srv, c, &in);
				break;
			}
			case 2:
			case 3:
				if (cookie[0] != '\0')
					master_request(srv, cookie, arg == 2 ? LOGIN_PID : LOGIN_PID + 1);
				break;
			case 4:
				master_request(srv, "0123456789abcdef0123456789abcdef", LOGIN_PID);
				break;
			case 5:
				if (c2 == NULL) {
					int s2[2];
					if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK,
						       0, s2) < 0)
						abort();
					c2 = auth_server_login_add(srv, s2[0], LOGIN_PID + 1, "pop3");
					fd2 = s2[1];
				}
				break;
			default:
				break;
			}
			drain_login(sv[1]);
			continue;
		}
		uint32_t id = arg;
		id_used[id] = true;
		ipc_msg_init(&msg, kind == 0 ? IPC_AUTH_BEGIN :
			     kind == 1 ? IPC_AUTH_CONTINUE : IPC_AUTH_ABORT, id);
		uint8_t fields = 0;
		if (kind != 2)
			(void)take(&p, end, &fields);
		static const enum ipc_field keys[] = { IPC_F_MECH,	IPC_F_RESP,    IPC_F_RIP,
						       IPC_F_SECURED,	IPC_F_USER,    IPC_F_CERT_USER,
						       IPC_F_CB_DATA,	IPC_F_TLS };
		if ((fields & (1u << 5)) != 0)
			ipc_msg_add_str(&msg, IPC_F_CERT_VALID, "1");
		if ((fields & (1u << 6)) != 0)
			ipc_msg_add_str(&msg, IPC_F_CB_TYPE, "tls-unique");
		for (unsigned k = 0; k < 8; k++) {
			if ((fields & (1u << k)) == 0)
				continue;
			uint8_t len = 0;
			(void)take(&p, end, &len);
			size_t n = (size_t)(end - p) < len ? (size_t)(end - p) : len;
			ipc_msg_add(&msg, keys[k], p, n);
			p += n;
		}
		decode_msg();
		open = auth_server_login_message(srv, c, &in);
		drain_login(sv[1]);
	}
	/* failures wait for their (zero) delay: answer them, then hang up */
	auth_server_tick(srv);
	drain_login(sv[1]);
	if (open)
		auth_server_login_close(srv, c);
	if (c2 != NULL) {
		auth_server_login_close(srv, c2);
		close(fd2);
	}
	auth_server_tick(srv);
	close(sv[1]);
	drain_master();
	return 0;
}
