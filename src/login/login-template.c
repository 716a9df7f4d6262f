/* login-template.c — the high-security template's loop: wait for master's
 * LOGIN_SPAWN_AUTH + LOGIN_SPAWN pairs, fork one child per pair with
 * CLONE_PARENT (master's child, not ours), answer LOGIN_SPAWNED with its
 * pid. See login-template.h for what the template holds and never does. */
#include "login/login-template.h"
#include "lib/alloc.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/zygote.h"

#include <errno.h>
#include <link.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

static void spawned_reply(int chan_fd, uint32_t id, pid_t pid, const char *reason)
{
	struct ipc_msg msg;
	ipc_msg_init(&msg, IPC_LOGIN_SPAWNED, id);
	if (pid > 0)
		ipc_msg_add_uint(&msg, IPC_F_LOGIN_PID, (unsigned long long)pid);
	else
		ipc_msg_add_str(&msg, IPC_F_REASON, reason);
	int ret = ipc_send(chan_fd, &msg, -1);
	if (ret < 0)
		log_fatal("template: answering master: %s", strerror(-ret));
}

/* In the new child (zygote_fork() reset its cached pids): its own
 * channels at chan_fd and chan_fd + 1. */
static void child_setup(int chan_fd, int chan, int auth)
{
	if (dup2(chan, chan_fd) < 0 || dup2(auth, chan_fd + 1) < 0)
		log_fatal("template child: dup2: %m");
	close(chan);
	close(auth);
	/* `ringgate-login` again (the template is `ringgate-ltmpl`) */
	(void)prctl(PR_SET_NAME, "ringgate-login", 0, 0, 0);
	/* the template's rx (a LOGIN_SPAWN: no field, no secret) stays as
	 * it is: wiping or freeing it would only fault its pages in here */
}

/* The code the children run, mapped once here for all of them. fork()
 * copies no page table entry of a file mapping that has no anonymous page:
 * each child faulted in again every page of code it ran (~25 instruction
 * fetch faults per child, each a trip through the hypervisor on a
 * paravirtualised host). One anonymous page per executable segment, a copy
 * of its first page made by writing a byte back unchanged (writable for
 * that moment, before any child exists), makes fork copy the entries the
 * template has (its own start-up and the kernel's fault-around mapped most
 * of the code): 2.4 such faults per child are left. Mapping the segments
 * in full (MADV_POPULATE_READ) left 1.5 but made every fork and exit copy
 * and drop some 1,400 more entries. Only an optimisation: a step the kernel
 * refuses is skipped, but a segment left writable stops the template. */
static int text_share_one(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	(void)data;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	if (info->dlpi_name != NULL && strstr(info->dlpi_name, "linux-vdso") != NULL)
		return 0;
	for (unsigned i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || (ph->p_flags & PF_X) == 0 || ph->p_memsz == 0)
			continue;
		uintptr_t start = (info->dlpi_addr + ph->p_vaddr) & ~(page - 1);
		uintptr_t end = (info->dlpi_addr + ph->p_vaddr + ph->p_memsz + page - 1) & ~(page - 1);
		/* the whole segment at once: a part would split the mapping,
		 * and the kernel does not merge the parts back */
		if (mprotect((void *)start, end - start, PROT_READ | PROT_WRITE | PROT_EXEC) < 0)
			continue;
		volatile uint8_t *p = (volatile uint8_t *)start;
		*p = *p;
		/* code that stayed writable would reach every child: never */
		if (mprotect((void *)start, end - start, PROT_READ | PROT_EXEC) < 0)
			log_fatal("template: making code read-only again: %m");
	}
	return 0;
}

/* jemalloc's first allocation of a size class in a child takes a slab
 * from an extent: the extent sets, the radix tree, the arena's mutexes
 * and the slab's bitmap are written, each page of them a copy-on-write
 * fault. One allocation of each small class here, kept (reachable, so no
 * leak to a checker), leaves every bin a slab with room and the thread
 * cache filled: a child's first allocations come from what it inherited. */
static void *prewarmed[64];

static void alloc_prewarm(void)
{
	unsigned n = 0;
	for (size_t size = 8, step = 8; size <= 14336 && n < 64; size += step) {
		prewarmed[n++] = rg_malloc(size);
		/* jemalloc's classes: four per doubling from 128 on */
		if (size >= 128 && (size & (size - 1)) == 0)
			step = size / 4;
		else if (size == 16)
			step = 16;
	}
}

void login_template_serve(int chan_fd)
{
	(void)prctl(PR_SET_NAME, "ringgate-ltmpl", 0, 0, 0);
	(void)dl_iterate_phdr(text_share_one, NULL);
	alloc_prewarm();
	struct ipc_rx *rx = rg_malloc(sizeof(*rx));
	int auth = -1;
	unsigned forks = 0;
	for (;;) {
		struct pollfd p = { .fd = chan_fd, .events = POLLIN };
		if (poll(&p, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("template: poll: %m");
		}
		const char *error = NULL;
		int ret = ipc_recv(chan_fd, rx, &error);
		if (ret == -EAGAIN)
			continue;
		if (ret == -EPROTO)
			log_fatal("template: malformed message from master: %s", error);
		if (ret <= 0) {
			/* master replaced us (or is gone): our children are its */
			log_debug("template: done after %u children", forks);
			exit(0);
		}
		switch (rx->hdr.type) {
		case IPC_LOGIN_SPAWN_AUTH:
			if (rx->fd < 0 || auth >= 0)
				log_fatal("template: master sent a bad LOGIN_SPAWN_AUTH");
			auth = rx->fd;
			break;
		case IPC_LOGIN_SPAWN: {
			if (rx->fd < 0 || auth < 0)
				log_fatal("template: master sent a bad LOGIN_SPAWN");
			int chan = rx->fd;
			pid_t pid = zygote_fork();
			if (pid == 0) {
				child_setup(chan_fd, chan, auth);
				return;
			}
			int err = -pid;
			close(chan);
			close(auth);
			auth = -1;
			if (pid < 0)
				log_error("template: clone: %s", strerror(err));
			else
				forks++;
			spawned_reply(chan_fd, rx->hdr.id, pid, "clone failed");
			break;
		}
		default:
			if (rx->fd >= 0)
				close(rx->fd);
			log_fatal("template: master sent unexpected %s", ipc_type_name(rx->hdr.type));
		}
	}
}
