/* libFuzzer target: the IPC framing decoder, the one parser of every internal
 * message. Decoded fields must stay inside the input and be NUL-terminated.
 * What decodes is also given to the field decoders built on it
 * (WORKER_SETUP's, mail/worker-template.h). */
#include "lib/ipc.h"
#include "mail/worker-template.h"

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
	struct worker_setup setup;
	error = NULL;
	if (worker_setup_parse(&f, &setup, &error)) {
		if (setup.ngroups > sizeof(setup.groups) / sizeof(setup.groups[0]) ||
		    (setup.home != NULL && strlen(setup.home) != f.len[IPC_F_HOME]))
			abort();
	} else if (error == NULL) {
		abort();
	}
	return 0;
}
