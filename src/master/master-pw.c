#include "master/master-pw.h"
#include "auth/auth-scheme.h"
#include "lib/alloc.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define DEFAULT_SCHEME "SHA512-CRYPT"
#define PW_MAX 1024

static int usage(void)
{
	fprintf(stderr, "usage: ringgate pw [-l] [-p password] [-r rounds] [-s scheme] "
		"[-t hash]\n");
	return 1;
}

/* one line from the terminal without echo, or from stdin when it is not one */
static bool read_password(const char *prompt, char *buf, size_t size)
{
	bool tty = isatty(STDIN_FILENO);
	struct termios old, quiet;
	if (tty) {
		fputs(prompt, stderr);
		fflush(stderr);
		if (tcgetattr(STDIN_FILENO, &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
		} else {
			tty = false;
		}
	}
	bool ok = fgets(buf, (int)size, stdin) != NULL;
	if (tty) {
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (!ok)
		return false;
	buf[strcspn(buf, "\r\n")] = '\0';
	return true;
}

int master_pw_main(int argc, char **argv)
{
	const char *scheme = DEFAULT_SCHEME, *test_hash = NULL;
	char *password = NULL;
	unsigned rounds = 0;
	bool list = false;
	int c;
	optind = 1;
	while ((c = getopt(argc, argv, "lp:r:s:t:")) != -1) {
		switch (c) {
		case 'l':
			list = true;
			break;
		case 'p':
			password = optarg;
			break;
		case 'r': {
			char *end;
			unsigned long r = strtoul(optarg, &end, 10);
			if (*end != '\0' || r == 0 || r > 100000000UL) {
				fprintf(stderr, "ringgate pw: invalid rounds '%s'\n", optarg);
				return 1;
			}
			rounds = (unsigned)r;
			break;
		}
		case 's':
			scheme = optarg;
			break;
		case 't':
			test_hash = optarg;
			break;
		default:
			return usage();
		}
	}
	if (optind != argc)
		return usage();
	if (list) {
		for (unsigned i = 0; auth_scheme_name(i) != NULL; i++)
			printf("%s%s", i > 0 ? " " : "", auth_scheme_name(i));
		printf("\n");
		return fflush(stdout) == 0 ? 0 : 1;
	}
	if (!auth_scheme_known(scheme)) {
		fprintf(stderr, "ringgate pw: unknown scheme '%s' (ringgate pw -l lists them)\n",
			scheme);
		return 1;
	}
	char buf[PW_MAX + 2], again[PW_MAX + 2];
	if (password == NULL) {
		if (!read_password("Enter new password: ", buf, sizeof(buf))) {
			fprintf(stderr, "ringgate pw: no password given\n");
			return 1;
		}
		if (isatty(STDIN_FILENO) && test_hash == NULL) {
			if (!read_password("Retype new password: ", again, sizeof(again)) ||
			    strcmp(buf, again) != 0) {
				explicit_bzero(buf, sizeof(buf));
				explicit_bzero(again, sizeof(again));
				fprintf(stderr, "ringgate pw: passwords don't match\n");
				return 1;
			}
			explicit_bzero(again, sizeof(again));
		}
		password = buf;
	}
	size_t pw_len = strlen(password);
	if (pw_len == 0 || pw_len > PW_MAX) {
		fprintf(stderr, "ringgate pw: empty or too long password\n");
		return 1;
	}
	int ret = 0;
	if (test_hash != NULL) {
		/* "{SCHEME}hash" names its own scheme, as with doveadm pw -t */
		const char *h = test_hash;
		char sch[32];
		const char *close = h[0] == '{' ? strchr(h, '}') : NULL;
		if (close != NULL && (size_t)(close - h - 1) < sizeof(sch)) {
			memcpy(sch, h + 1, (size_t)(close - h - 1));
			sch[close - h - 1] = '\0';
			scheme = sch;
			h = close + 1;
		}
		enum scheme_result r = auth_scheme_verify(scheme, h, (const uint8_t *)password,
							  pw_len);
		if (r == SCHEME_OK) {
			printf("%s (verified)\n", test_hash);
		} else {
			fprintf(stderr, "ringgate pw: %s\n",
				r == SCHEME_MISMATCH ? "password mismatch"
				: r == SCHEME_UNKNOWN ? "unknown scheme"
						      : "malformed hash for the scheme");
			ret = 1;
		}
	} else {
		const char *error = NULL;
		char *out = auth_scheme_generate(scheme, (const uint8_t *)password, pw_len, rounds,
						 &error);
		if (out == NULL) {
			fprintf(stderr, "ringgate pw: %s: %s\n", scheme, error);
			ret = 1;
		} else {
			printf("%s\n", out);
			rg_free(out);
		}
	}
	explicit_bzero(buf, sizeof(buf));
	if (fflush(stdout) != 0)
		ret = 1;
	return ret;
}
