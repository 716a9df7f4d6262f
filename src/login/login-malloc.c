/* login-malloc.c — jemalloc's options for the login processes, which hold
 * up to client_limit idle connections each (100,000 in the c100k run) in
 * one thread:
 * - narenas:1: one thread allocates; more arenas only spread its objects
 *   over more partly used pages.
 * - tcache_max:1024: the thread cache keeps freed objects of up to 1 KiB
 *   (struct conn, phase objects, wolfSSL's small pieces: the per-session
 *   path stays lock-free), not the 4-16 KiB pieces a handshake frees,
 *   which go back to the arena at once instead of sitting in the cache.
 * - dirty_decay_ms:1000, muzzy_decay_ms:0: what a burst of handshakes
 *   freed goes back to the kernel within a second (MADV_DONTNEED, not
 *   MADV_FREE, whose pages stay in RSS and PSS until the kernel needs
 *   them); login-server.c's tick asks for the decay (rg_alloc_decay), as
 *   jemalloc decays only when it is called and an idle process makes no
 *   calls (no background thread: the sandbox has no thread to spare).
 * jemalloc reads this symbol before the first allocation; MALLOC_CONF in
 * the environment still overrides it. */
const char *malloc_conf = "narenas:1,tcache_max:1024,dirty_decay_ms:1000,muzzy_decay_ms:0";
