/* rgforkfloor.c — the floor under a high-security session's process start
 * on this machine: what the kernel charges for a process that only starts
 * and exits, so the bench's CPU per session can be read against it.
 *
 * A tool, not a test. One run measures, side by side in alternating rounds:
 *   min-fork          fork + _exit + waitpid of this (static, tiny) program
 *   tmpl-fork         the same from a process shaped like the login template
 *                     (-l PID: its VMAs, resident and anonymous pages, read
 *                     from /proc/PID/smaps; without -l, -V vmas and -P pages)
 *   tmpl-fork-cow     tmpl-fork whose child first writes -w pages of the
 *                     parent's anonymous memory (copy-on-write faults)
 *   tmpl-fork-populate  the same pages copied by one madvise(
 *                     MADV_POPULATE_WRITE) each, then written
 *   tmpl-fork-range   -w pages in a row copied by one MADV_POPULATE_WRITE,
 *                     then written
 *   min-vfork-exec    clone(CLONE_VM|CLONE_VFORK) + execve of this binary,
 *                     which _exits at once (-x), from the tiny process
 *   tmpl-vfork-exec   the same from the template-shaped process
 * Each case runs in its own runner process (forked from the tiny driver),
 * which times N starts with getrusage (its own CPU = the parent's side:
 * fork's page-table copy, wait; its reaped children's = the child's side:
 * the start, faults, exit's teardown) and CLOCK_MONOTONIC.
 * Build: bench/CMakeLists.txt links it static (no ld.so in the exec case). */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define MAX_REGIONS 4096

enum fcase {
	C_MIN_FORK, C_TMPL_FORK, C_TMPL_FORK_COW, C_TMPL_FORK_POPULATE, C_TMPL_FORK_RANGE, C_MIN_VFORK_EXEC,
	C_TMPL_VFORK_EXEC, C_COUNT
};
static const char *const case_names[C_COUNT] = {
	"min-fork", "tmpl-fork", "tmpl-fork-cow", "tmpl-fork-populate", "tmpl-fork-range", "min-vfork-exec",
	"tmpl-vfork-exec",
};

/* one runner's figures for one round */
struct result {
	double self_us, child_us, wall_us; /* per start */
	double child_minflt, self_minflt;  /* per start */
	unsigned vmas;
	unsigned long pages;               /* resident pages of the shape */
	int ok;
};

struct region {
	unsigned long size;   /* bytes */
	unsigned long rss;    /* resident pages */
	unsigned long anon;   /* of which anonymous */
	int file;             /* file-backed in the model */
};

static struct region regions[MAX_REGIONS];
static unsigned region_count;
/* the template-shaped runner's anonymous pages, for the COW case */
static uint8_t *anon_pages[1 << 16];
static unsigned long anon_count;
static char self_exe[4096];
/* -w written anonymous pages in a row, for the range case */
static uint8_t *range_start;
static unsigned long range_pages = 1;

static void die(const char *what)
{
	fprintf(stderr, "rgforkfloor: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* /proc/PID/smaps -> regions (vdso, vvar, vsyscall left out: every process has them) */
static void shape_read(int pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		die(path);
	char line[1024];
	struct region *cur = NULL;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long start, end, kb;
		char perms[8];
		unsigned long inode;
		char name[512] = "";
		if (sscanf(line, "%lx-%lx %7s %*x %*s %lu %511s", &start, &end, perms, &inode, name) >= 4) {
			cur = NULL;
			if (strcmp(name, "[vdso]") == 0 || strcmp(name, "[vvar]") == 0 ||
			    strcmp(name, "[vvar_vclock]") == 0 || strcmp(name, "[vsyscall]") == 0)
				continue;
			if (region_count == MAX_REGIONS)
				break;
			cur = &regions[region_count++];
			cur->size = end - start;
			cur->rss = cur->anon = 0;
			cur->file = inode != 0;
		} else if (cur != NULL && sscanf(line, "Rss: %lu kB", &kb) == 1) {
			cur->rss = kb * 1024 / PAGE;
		} else if (cur != NULL && sscanf(line, "Anonymous: %lu kB", &kb) == 1) {
			cur->anon = kb * 1024 / PAGE;
		}
	}
	fclose(f);
}

/* without -l: V regions sharing P resident pages, half of them anonymous */
static void shape_default(unsigned vmas, unsigned long pages)
{
	for (unsigned i = 0; i < vmas && i < MAX_REGIONS; i++) {
		struct region *r = &regions[region_count++];
		r->rss = pages / vmas;
		r->anon = r->rss / 2;
		r->size = (r->rss + 1) * PAGE;
		r->file = i % 2;
	}
}

/* Lay the regions out in one reserved range with a hole between any two,
 * so the kernel merges none of them: file-backed ones map a memfd
 * privately (read pages stay the file's, written ones become anonymous,
 * as a library's data does), the rest are anonymous. */
static void shape_build(struct result *res)
{
	unsigned long total = 0, maxsize = 0;
	for (unsigned i = 0; i < region_count; i++) {
		total += regions[i].size + PAGE;
		if (regions[i].size > maxsize)
			maxsize = regions[i].size;
	}
	int mfd = memfd_create("rgforkfloor", 0);
	if (mfd < 0 || ftruncate(mfd, (off_t)maxsize) < 0)
		die("memfd");
	uint8_t *base = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		die("mmap reserve");
	uint8_t *p = base;
	res->pages = 0;
	for (unsigned i = 0; i < region_count; i++) {
		struct region *r = &regions[i];
		void *m = r->file ? mmap(p, r->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, mfd, 0)
				  : mmap(p, r->size, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (m == MAP_FAILED)
			die("mmap region");
		unsigned long pages = r->size / PAGE;
		unsigned long rss = r->rss < pages ? r->rss : pages;
		unsigned long anon = r->anon < rss ? r->anon : rss;
		volatile uint8_t *q = m;
		for (unsigned long k = 0; k < rss; k++) {
			if (k < anon) {
				q[k * PAGE] = 1;
				if (anon_count < sizeof(anon_pages) / sizeof(anon_pages[0]))
					anon_pages[anon_count++] = (uint8_t *)&q[k * PAGE];
			} else {
				(void)q[k * PAGE];
			}
		}
		res->pages += rss;
		/* the hole after it */
		if (munmap(p + r->size, PAGE) < 0)
			die("munmap hole");
		p += r->size + PAGE;
	}
	close(mfd);
	/* every case's shape has it (the same page tables to copy) */
	range_start = mmap(NULL, range_pages * PAGE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (range_start == MAP_FAILED)
		die("mmap range");
	for (unsigned long k = 0; k < range_pages; k++)
		range_start[k * PAGE] = 1;
}

static unsigned vma_count(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (f == NULL)
		return 0;
	unsigned n = 0;
	int c;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static double tv_us(struct timeval tv)
{
	return (double)tv.tv_sec * 1e6 + (double)tv.tv_usec;
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static char vfork_stack[64 * 1024] __attribute__((aligned(16)));

static int exec_child(void *arg)
{
	(void)arg;
	char *const argv[] = { "rgforkfloor", "-x", NULL };
	char *const envp[] = { NULL };
	execve(self_exe, argv, envp);
	_exit(127);
}

static void start_one(enum fcase c, unsigned cow)
{
	pid_t pid;
	if (c == C_MIN_VFORK_EXEC || c == C_TMPL_VFORK_EXEC) {
		pid = clone(exec_child, vfork_stack + sizeof(vfork_stack),
			    CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
	} else {
		pid = fork();
		if (pid == 0) {
			if (c == C_TMPL_FORK_COW) {
				/* spread over the anonymous pages, as a child's
				 * writes land on its stack, heap and data */
				unsigned long step = anon_count / (cow + 1) + 1;
				for (unsigned i = 0; i < cow && i * step < anon_count; i++)
					*(volatile uint8_t *)anon_pages[i * step] = 2;
			} else if (c == C_TMPL_FORK_POPULATE) {
				unsigned long step = anon_count / (cow + 1) + 1;
				for (unsigned i = 0; i < cow && i * step < anon_count; i++)
					(void)madvise(anon_pages[i * step], PAGE, MADV_POPULATE_WRITE);
				/* then written, as a child writes what it copied */
				for (unsigned i = 0; i < cow && i * step < anon_count; i++)
					*(volatile uint8_t *)anon_pages[i * step] = 2;
			} else if (c == C_TMPL_FORK_RANGE) {
				(void)madvise(range_start, cow * PAGE, MADV_POPULATE_WRITE);
				for (unsigned i = 0; i < cow; i++)
					*(volatile uint8_t *)&range_start[i * PAGE] = 2;
			}
			_exit(0);
		}
	}
	if (pid < 0)
		die("fork");
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		errno = ECHILD;
		die("child");
	}
}

/* in the runner: build the shape, time n starts */
static void run_case(enum fcase c, unsigned n, unsigned cow, int out)
{
	struct result res = { 0 };
	if (c == C_TMPL_FORK || c == C_TMPL_FORK_COW || c == C_TMPL_FORK_POPULATE ||
	    c == C_TMPL_FORK_RANGE ||
	    c == C_TMPL_VFORK_EXEC)
		shape_build(&res);
	res.vmas = vma_count();
	start_one(c, cow); /* warm: the first start pays one-off faults */
	struct rusage s0, s1, c0, c1;
	getrusage(RUSAGE_SELF, &s0);
	getrusage(RUSAGE_CHILDREN, &c0);
	double w0 = now_us();
	for (unsigned i = 0; i < n; i++)
		start_one(c, cow);
	double w1 = now_us();
	getrusage(RUSAGE_SELF, &s1);
	getrusage(RUSAGE_CHILDREN, &c1);
	res.self_us = (tv_us(s1.ru_utime) + tv_us(s1.ru_stime) - tv_us(s0.ru_utime) - tv_us(s0.ru_stime)) / n;
	res.child_us = (tv_us(c1.ru_utime) + tv_us(c1.ru_stime) - tv_us(c0.ru_utime) - tv_us(c0.ru_stime)) / n;
	res.wall_us = (w1 - w0) / n;
	res.self_minflt = (double)(s1.ru_minflt - s0.ru_minflt) / n;
	res.child_minflt = (double)(c1.ru_minflt - c0.ru_minflt) / n;
	res.ok = 1;
	if (write(out, &res, sizeof(res)) != (ssize_t)sizeof(res))
		die("write");
	_exit(0);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void usage(void)
{
	fprintf(stderr, "usage: rgforkfloor [-n starts] [-r rounds] [-l PID | -V vmas -P pages] [-w cow-pages]\n");
	exit(64);
}

int main(int argc, char **argv)
{
	unsigned n = 500, rounds = 5, cow = 20, vmas = 35;
	unsigned long pages = 1400;
	int like = 0, opt;
	while ((opt = getopt(argc, argv, "xn:r:l:V:P:w:")) != -1) {
		switch (opt) {
		case 'x':
			_exit(0);
		case 'n': n = (unsigned)atoi(optarg); break;
		case 'r': rounds = (unsigned)atoi(optarg); break;
		case 'l': like = atoi(optarg); break;
		case 'V': vmas = (unsigned)atoi(optarg); break;
		case 'P': pages = strtoul(optarg, NULL, 10); break;
		case 'w': cow = (unsigned)atoi(optarg); break;
		default: usage();
		}
	}
	if (n == 0 || rounds == 0 || rounds > 100 || cow > 4096)
		usage();
	ssize_t len = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (len < 0)
		die("readlink /proc/self/exe");
	self_exe[len] = '\0';
	range_pages = cow > 0 ? cow : 1;
	if (like > 0)
		shape_read(like);
	else
		shape_default(vmas, pages);

	static struct result all[C_COUNT][100];
	for (unsigned r = 0; r < rounds; r++) {
		/* alternate the order, so a drift in the machine's load hits
		 * every case alike */
		for (unsigned k = 0; k < C_COUNT; k++) {
			enum fcase c = (enum fcase)(r % 2 ? C_COUNT - 1 - k : k);
			int pfd[2];
			if (pipe(pfd) < 0)
				die("pipe");
			pid_t pid = fork();
			if (pid < 0)
				die("fork runner");
			if (pid == 0) {
				close(pfd[0]);
				run_case(c, n, cow, pfd[1]);
			}
			close(pfd[1]);
			if (read(pfd[0], &all[c][r], sizeof(all[c][r])) != (ssize_t)sizeof(all[c][r]))
				all[c][r].ok = 0;
			close(pfd[0]);
			(void)waitpid(pid, NULL, 0);
		}
	}
	printf("%u starts per case and round, %u rounds alternating, medians; "
	       "CPU from getrusage (parent = the forking process, child = its reaped children)\n\n",
	       n, rounds);
	printf("| case | VMAs | resident pages | parent CPU us | child CPU us | total CPU us | wall us | child minor faults | parent minor faults |\n");
	printf("|---|---|---|---|---|---|---|---|---|\n");
	for (unsigned c = 0; c < C_COUNT; c++) {
		double a[100], b[100], w[100], cf[100], pf[100];
		double t[100];
		unsigned m = 0;
		struct result *last = NULL;
		for (unsigned r = 0; r < rounds; r++) {
			if (!all[c][r].ok)
				continue;
			last = &all[c][r];
			a[m] = last->self_us;
			b[m] = last->child_us;
			t[m] = last->self_us + last->child_us;
			w[m] = last->wall_us;
			cf[m] = last->child_minflt;
			pf[m] = last->self_minflt;
			m++;
		}
		if (last == NULL) {
			printf("| %s | failed |||||||\n", case_names[c]);
			continue;
		}
		unsigned v = last->vmas;
		unsigned long pg = last->pages;
		printf("| %s | %u | %lu | %.0f | %.0f | %.0f | %.0f | %.1f | %.1f |\n", case_names[c], v, pg,
		       median(a, m), median(b, m), median(t, m), median(w, m), median(cf, m), median(pf, m));
	}
	printf("\n-cow, -populate, -range: the child writes %u anonymous pages of the template's "
	       "shape before it exits\n", cow);
	return 0;
}
