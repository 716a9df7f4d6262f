/* rgcipher — the cipher's own cost on this machine, the yardstick of the
 * relay's CPU per MiB (bench/cryptobench.py): AES-128-GCM sealing of
 * 16 KiB records (a full TLS record of plaintext, 13 bytes of additional
 * data, a fresh nonce per record) with the wolfSSL build this tree links,
 * for a fixed amount of data. Prints one JSON line: CPU ms per MiB (the
 * process's own CPU time) and MiB/s. No sockets, no TLS framing: only what
 * the relay cannot avoid. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tls/tls-wolfssl.h"
#include <wolfssl/wolfcrypt/aes.h>

#define RECORD 16384

static double cpu_secs(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	unsigned mib = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 256;
	if (mib == 0 || mib > 65536) {
		fprintf(stderr, "usage: rgcipher [MiB]\n");
		return 2;
	}
	static uint8_t in[RECORD], out[RECORD];
	uint8_t key[16], iv[12] = { 0 }, tag[16], aad[13] = { 23, 3, 3 };
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)i;
	memset(key, 0x5a, sizeof(key));
	Aes aes;
	if (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0 || wc_AesGcmSetKey(&aes, key, sizeof(key)) != 0) {
		fprintf(stderr, "rgcipher: AES-GCM unavailable\n");
		return 1;
	}
	unsigned records = mib * (1024 * 1024 / RECORD);
	struct timespec w0, w1;
	clock_gettime(CLOCK_MONOTONIC, &w0);
	double c0 = cpu_secs();
	for (unsigned r = 0; r < records; r++) {
		memcpy(iv + 4, &r, sizeof(r)); /* the record number, as TLS 1.3's nonce */
		if (wc_AesGcmEncrypt(&aes, out, in, RECORD, iv, sizeof(iv), tag, sizeof(tag), aad,
				     sizeof(aad)) != 0) {
			fprintf(stderr, "rgcipher: encryption failed\n");
			return 1;
		}
		in[0] ^= out[0]; /* each record depends on the last: nothing to skip */
	}
	double c1 = cpu_secs();
	clock_gettime(CLOCK_MONOTONIC, &w1);
	double wall = (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9;
	wc_AesFree(&aes);
	printf("{\"event\":\"cipher\",\"cipher\":\"AES-128-GCM\",\"record\":%d,\"mib\":%u,"
	       "\"cpu_ms_per_mib\":%.4f,\"mib_per_s\":%.1f}\n",
	       RECORD, mib, (c1 - c0) * 1e3 / mib, wall > 0 ? mib / wall : 0.0);
	return 0;
}
