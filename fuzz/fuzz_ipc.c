/* libFuzzer target: the IPC framing decoder, the one parser of every internal
 * message. Decoded fields must stay inside the input and be NUL-terminated. */
#include "lib/ipc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipc_hdr hdr;
	struct ipc_fields f;
	const char *error = NULL;

	if (!ipc_decode(data, size, &hdr, &f, &error)) {
		if (error == NULL)
			abort();
		return 0;
	}
	for (int k = 1; k < IPC_F_COUNT; k++) {
		if (!ipc_has(&f, (enum ipc_field)k))
			continue;
		const uint8_t *v = f.val[k];
		if (v < data + IPC_HDR_SIZE || v + f.len[k] >= data + size || v[f.len[k]] != '\0')
			abort();
		unsigned long long n;
		(void)ipc_uint(&f, (enum ipc_field)k, &n);
		(void)strlen(ipc_str(&f, (enum ipc_field)k));
	}
	return 0;
}
