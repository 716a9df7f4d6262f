/* rgbench-args.c — rgbench's command line: usage and the options into
 * struct bench. See rgbench.h. */
#include "rgbench.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: rgbench --port PORT [--proto imap|pop3] [--kind prelogin|login|login-fetch|idle]\n"
		"               [--clients N] [--duration SECS] [--sessions N] [--user U --pass P]\n"
		"               [--host 127.x.y.z] [--src 127.x.y.z] [--src-addrs N]\n"
		"               [--timeout SECS] [--drain] [--quiet]\n"
		"               [--tls | --starttls] [--resume] [--ca FILE] [--group X25519|P-256]\n"
		"               [--fetches N]\n"
		"Closed loop: each client runs sessions back to back until the duration ends\n"
		"(or N sessions were started); with --drain the sessions in flight then finish\n"
		"and count (the rate is over the whole time), otherwise they are cut off.\n"
		"idle: open N connections, read the greeting,\n"
		"hold them for the duration. --tls: implicit TLS, --starttls: STARTTLS/STLS;\n"
		"--resume offers each client's previous session; --ca verifies the server\n"
		"(default: no verification, loopback only); --group offers only that key\n"
		"exchange group (and its key share); --fetches N: login-fetch fetches\n"
		"message 1 N times per session (IMAP). Prints one JSON line on stdout, a\n"
		"table on stderr; exits 1 when a response was wrong or nothing completed.\n");
	exit(2);
}

void bench_parse_args(struct bench *b, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "proto", required_argument, NULL, 'P' },
		{ "kind", required_argument, NULL, 'k' },
		{ "clients", required_argument, NULL, 'c' },
		{ "duration", required_argument, NULL, 'd' },
		{ "sessions", required_argument, NULL, 'n' },
		{ "user", required_argument, NULL, 'u' },
		{ "pass", required_argument, NULL, 'w' },
		{ "host", required_argument, NULL, 'H' },
		{ "src-addrs", required_argument, NULL, 's' },
		{ "src", required_argument, NULL, 'A' },
		{ "timeout", required_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "drain", no_argument, NULL, 'D' },
		{ "tls", no_argument, NULL, 'T' },
		{ "starttls", no_argument, NULL, 'S' },
		{ "resume", no_argument, NULL, 'r' },
		{ "ca", required_argument, NULL, 'C' },
		{ "group", required_argument, NULL, 'g' },
		{ "fetches", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	long port = 0;
	while ((ch = getopt_long(argc, argv, "p:P:k:c:d:n:u:w:H:s:A:t:qhTSrC:Dg:f:", opts, NULL)) != -1) {
		switch (ch) {
		case 'p': port = strtol(optarg, NULL, 10); break;
		case 'P':
			if (strcmp(optarg, "imap") == 0) b->proto = PROTO_IMAP;
			else if (strcmp(optarg, "pop3") == 0) b->proto = PROTO_POP3;
			else usage();
			break;
		case 'k': {
			bool found = false;
			for (int k = 0; k <= KIND_IDLE; k++)
				if (strcmp(optarg, kind_names[k]) == 0) {
					b->kind = (enum kind)k;
					found = true;
				}
			if (!found)
				usage();
			break;
		}
		case 'c': b->clients = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'd': b->duration = strtod(optarg, NULL); break;
		case 'n': b->max_sessions = strtoull(optarg, NULL, 10); break;
		case 'u': b->user = optarg; break;
		case 'w': b->pass = optarg; break;
		case 'H':
			if (inet_pton(AF_INET, optarg, &b->dst) != 1 ||
			    (ntohl(b->dst.s_addr) >> 24) != 127) {
				fprintf(stderr, "rgbench: only 127.0.0.0/8 targets\n");
				exit(2);
			}
			break;
		case 's': b->src_addrs = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'A': {
			struct in_addr a;
			if (inet_pton(AF_INET, optarg, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
				fprintf(stderr, "rgbench: --src must be in 127.0.0.0/8\n");
				exit(2);
			}
			b->src_first = ntohl(a.s_addr);
			break;
		}
		case 't': b->timeout = strtod(optarg, NULL); break;
		case 'q': b->quiet = true; break;
		case 'D': b->drain = true; break;
		case 'T': b->transport = TR_TLS; break;
		case 'S': b->transport = TR_STARTTLS; break;
		case 'r': b->resume = true; break;
		case 'C': b->ca_file = optarg; break;
		case 'g':
			if (strcmp(optarg, "X25519") == 0) b->group = WOLFSSL_ECC_X25519;
			else if (strcmp(optarg, "P-256") == 0) b->group = WOLFSSL_ECC_SECP256R1;
			else if (strcmp(optarg, "P-384") == 0) b->group = WOLFSSL_ECC_SECP384R1;
			else usage();
			break;
		case 'f':
			b->fetches = (unsigned)strtoul(optarg, NULL, 10);
			if (b->fetches > FETCHES_MAX)
				usage();
			break;
		default: usage();
		}
	}
	if (optind != argc || port <= 0 || port > 65535 || b->clients == 0 ||
	    b->clients > 1000000 || !(b->duration > 0) || !(b->timeout > 0) ||
	    b->src_addrs > 65536 ||
	    (b->src_first != 0 && b->src_first + (b->src_addrs > 1 ? b->src_addrs : 1) - 1 > 0x7fffffffu))
		usage();
	if (b->kind != KIND_PRELOGIN && b->kind != KIND_IDLE &&
	    (b->user == NULL || b->pass == NULL)) {
		fprintf(stderr, "rgbench: --kind %s needs --user and --pass\n", kind_names[b->kind]);
		exit(2);
	}
	if (b->resume && b->transport == TR_PLAIN) {
		fprintf(stderr, "rgbench: --resume needs --tls or --starttls\n");
		exit(2);
	}
	b->port = (uint16_t)port;
}
