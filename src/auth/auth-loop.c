#include "auth/auth-loop.h"

#include "lib/alloc.h"
#include "lib/log.h"

#include <errno.h>
#include <sys/epoll.h>
#include <time.h>

#define AUTH_IO_MAGIC 0x72676c6fu /* tells an auth_io from the server's sources */
#define AUTH_IO_DEAD 0x64656164u

struct auth_io {
	uint32_t magic; /* first, as the server's sources have their type first */
	int fd;
	auth_io_callback *cb;
	void *context;
	struct auth_io *next_dead;
};

/* Invariant: sorted by due_ms, earliest first. */
struct auth_timeout {
	struct auth_timeout *next;
	int64_t due_ms;
	auth_timeout_callback *cb;
	void *context;
};

static int loop_epfd = -1;
static struct auth_timeout *timeouts;
static struct auth_io *dead_ios;

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void auth_loop_init(int epfd)
{
	loop_epfd = epfd;
}

void auth_loop_deinit(void)
{
	loop_epfd = -1;
	auth_loop_free_dead();
	while (timeouts != NULL) {
		struct auth_timeout *to = timeouts;
		timeouts = to->next;
		rg_free(to);
	}
}

struct auth_io *auth_io_add(int fd, uint32_t epoll_events, auth_io_callback *cb, void *context)
{
	if (loop_epfd < 0)
		return NULL;
	struct auth_io *io = rg_calloc(1, sizeof(*io));
	io->magic = AUTH_IO_MAGIC;
	io->fd = fd;
	io->cb = cb;
	io->context = context;
	struct epoll_event ev = { .events = epoll_events, .data.ptr = io };
	if (epoll_ctl(loop_epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		log_error("epoll_ctl(ADD) of a driver's fd: %m");
		rg_free(io);
		return NULL;
	}
	return io;
}

void auth_io_set_events(struct auth_io *io, uint32_t epoll_events)
{
	struct epoll_event ev = { .events = epoll_events, .data.ptr = io };
	if (epoll_ctl(loop_epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
		log_error("epoll_ctl(MOD) of a driver's fd: %m");
}

void auth_io_remove(struct auth_io **iop)
{
	struct auth_io *io = *iop;
	if (io == NULL)
		return;
	*iop = NULL;
	/* EBADF: the library closed its fd before telling its driver
	 * (libldap does when it reads the server's EOF), and the close took
	 * it out of the epoll set already */
	if (loop_epfd >= 0 && epoll_ctl(loop_epfd, EPOLL_CTL_DEL, io->fd, NULL) < 0 &&
	    errno != EBADF)
		log_error("epoll_ctl(DEL) of a driver's fd: %m");
	/* a later event of the same epoll batch may still name it: it is
	 * freed at the end of the loop turn (auth_loop_free_dead) */
	io->magic = AUTH_IO_DEAD;
	io->next_dead = dead_ios;
	dead_ios = io;
}

void auth_loop_free_dead(void)
{
	while (dead_ios != NULL) {
		struct auth_io *io = dead_ios;
		dead_ios = io->next_dead;
		rg_free(io);
	}
}

bool auth_loop_dispatch(void *ptr, uint32_t events)
{
	struct auth_io *io = ptr;
	if (io->magic == AUTH_IO_DEAD)
		return true; /* removed earlier in this batch */
	if (io->magic != AUTH_IO_MAGIC)
		return false;
	io->cb(io->context, events);
	return true;
}

struct auth_timeout *auth_timeout_add(unsigned msecs, auth_timeout_callback *cb, void *context)
{
	struct auth_timeout *to = rg_calloc(1, sizeof(*to));
	to->due_ms = mono_ms() + msecs;
	to->cb = cb;
	to->context = context;
	struct auth_timeout **p = &timeouts;
	while (*p != NULL && (*p)->due_ms <= to->due_ms)
		p = &(*p)->next;
	to->next = *p;
	*p = to;
	return to;
}

void auth_timeout_remove(struct auth_timeout **top)
{
	struct auth_timeout *to = *top;
	if (to == NULL)
		return;
	*top = NULL;
	for (struct auth_timeout **p = &timeouts; *p != NULL; p = &(*p)->next) {
		if (*p == to) {
			*p = to->next;
			break;
		}
	}
	rg_free(to);
}

int auth_loop_next_timeout_ms(void)
{
	if (timeouts == NULL)
		return -1;
	int64_t left = timeouts->due_ms - mono_ms();
	if (left < 0)
		return 0;
	return left > 60000 ? 60000 : (int)left;
}

void auth_loop_run_timeouts(void)
{
	int64_t now = mono_ms();
	while (timeouts != NULL && timeouts->due_ms <= now) {
		struct auth_timeout *to = timeouts;
		timeouts = to->next;
		auth_timeout_callback *cb = to->cb;
		void *context = to->context;
		rg_free(to);
		cb(context);
	}
}
