/* zygote.c — see zygote.h */
#include "lib/zygote.h"
#include "lib/alloc.h"
#include "lib/ipc.h"
#include "lib/log.h"

#include <errno.h>
#include <link.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

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

void zygote_prepare(void)
{
	(void)dl_iterate_phdr(text_share_one, NULL);
	alloc_prewarm();
}

pid_t zygote_fork(void)
{
	/* glibc's fork() cannot pass flags; the child runs on a copy of this
	 * stack, as after fork() */
	long pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL, 0UL);
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* our own atfork handlers: every pthread_atfork() in src
		 * (grep) must be called here too */
		ipc_pid_reset();
		log_forked();
	}
	return (pid_t)pid;
}
