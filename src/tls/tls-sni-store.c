/* tls-sni-store.c — local_name certificates as data, not contexts: the
 * names and each distinct certificate+key's PEM text laid out in one
 * read-only shared mapping (MAP_SHARED: a fork copies none of its page
 * tables and a child touches only the pages a lookup reads), with the
 * settings every certificate's context is built with. A context is built
 * from an entry when a client first names it (tls-sni.c). */
#include "tls/tls-private.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "lib/hash.h"
#include "lib/log.h"

/* how many SNI names a store may hold: bounds the tables */
#define SNI_NAMES_MAX (1u << 20)
/* offsets are 32-bit */
#define SNI_STORE_MAX (1u << 30)
/* the head's first word: layout version 1 */
#define SNI_STORE_MAGIC 0x31494e53u

/* The mapping: this head, then the slot table (uint32_t per slot: 0 free,
 * else the offset of a name record), the entry table (cert and key
 * offsets per entry), name records (uint32_t entry, then the lowercased
 * name and its NUL, padded to 4) and the strings. Never written after
 * tls_sni_builder_finish. */
struct tls_sni_store {
	uint32_t magic;
	uint32_t size;
	uint32_t slot_mask;
	uint32_t names, entries;
	uint32_t slots_off, entries_off;
	/* offsets of the base settings' strings (ca, min_protocol,
	 * cipher_list, dh, curve_list, cert_username_field) */
	uint32_t base_off[6];
	bool prefer_server_ciphers, verify_client, require_crl;
};

struct sni_pem_pair {
	uint32_t cert, key;
};

/* Names and PEM text are appended to data; the tables hold index + 1. */
struct tls_sni_builder {
	char *data;
	size_t len, cap;
	uint32_t *name_off;   /* per name: its offset in data */
	uint32_t *name_entry; /* per name: its entry */
	unsigned name_count, name_cap;
	uint32_t *name_tab; /* open addressing, a power of two, at most half full */
	unsigned name_tab_size;
	struct sni_pem_pair *pairs;
	unsigned pair_count, pair_cap;
	uint32_t *pair_tab;
	unsigned pair_tab_size;
};

bool tls_sni_normalize(const char *name, char out[TLS_SNI_NAME_MAX + 1], bool allow_wildcard)
{
	size_t len = strnlen(name, TLS_SNI_NAME_MAX + 1);

	if (len == 0 || len > TLS_SNI_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		else if (c == '*') {
			/* only a whole first label: "*.example.com" */
			if (!allow_wildcard || i != 0 || len < 3 || name[1] != '.')
				return false;
		} else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
			     c == '.' || c == '_'))
			return false;
		out[i] = c;
	}
	out[len] = '\0';
	return out[0] != '.' && out[len - 1] != '.' && strstr(out, "..") == NULL;
}

/* a buffer that may hold private keys grows without leaving a copy behind
 * in freed memory */
static void *grow_wiped(void *old, size_t len, size_t *cap, size_t need)
{
	if (need <= *cap)
		return old;
	size_t cap_new = *cap == 0 ? 4096 : *cap;
	while (cap_new < need)
		cap_new *= 2;
	void *p = rg_malloc(cap_new);
	if (old != NULL) {
		memcpy(p, old, len);
		explicit_bzero(old, len);
		rg_free(old);
	}
	*cap = cap_new;
	return p;
}

static uint32_t data_add(struct tls_sni_builder *b, const char *s)
{
	size_t n = strlen(s) + 1;
	b->data = grow_wiped(b->data, b->len, &b->cap, b->len + n);
	uint32_t off = (uint32_t)b->len;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	return off;
}

static uint32_t pair_hash(const char *cert, const char *key)
{
	return hash_str(cert) * 31u + hash_str(key);
}

/* the table slot holding name, or the free one where it goes */
static uint32_t *name_slot(const struct tls_sni_builder *b, const char *name)
{
	unsigned mask = b->name_tab_size - 1;
	for (unsigned i = hash_str(name) & mask;; i = (i + 1) & mask) {
		uint32_t *s = &b->name_tab[i];
		if (*s == 0 || strcmp(b->data + b->name_off[*s - 1], name) == 0)
			return s;
	}
}

static uint32_t *pair_slot(const struct tls_sni_builder *b, const char *cert, const char *key)
{
	unsigned mask = b->pair_tab_size - 1;
	for (unsigned i = pair_hash(cert, key) & mask;; i = (i + 1) & mask) {
		uint32_t *s = &b->pair_tab[i];
		if (*s == 0)
			return s;
		const struct sni_pem_pair *p = &b->pairs[*s - 1];
		if (strcmp(b->data + p->cert, cert) == 0 && strcmp(b->data + p->key, key) == 0)
			return s;
	}
}

static void name_tab_grow(struct tls_sni_builder *b)
{
	rg_free(b->name_tab);
	b->name_tab_size = b->name_tab_size == 0 ? 64 : b->name_tab_size * 2;
	b->name_tab = rg_calloc(b->name_tab_size, sizeof(*b->name_tab));
	for (unsigned i = 0; i < b->name_count; i++)
		*name_slot(b, b->data + b->name_off[i]) = i + 1;
}

static void pair_tab_grow(struct tls_sni_builder *b)
{
	rg_free(b->pair_tab);
	b->pair_tab_size = b->pair_tab_size == 0 ? 16 : b->pair_tab_size * 2;
	b->pair_tab = rg_calloc(b->pair_tab_size, sizeof(*b->pair_tab));
	for (unsigned i = 0; i < b->pair_count; i++) {
		const struct sni_pem_pair *p = &b->pairs[i];
		*pair_slot(b, b->data + p->cert, b->data + p->key) = i + 1;
	}
}

struct tls_sni_builder *tls_sni_builder_new(void)
{
	return rg_calloc(1, sizeof(struct tls_sni_builder));
}

void tls_sni_builder_free(struct tls_sni_builder **_b)
{
	struct tls_sni_builder *b = *_b;
	if (b == NULL)
		return;
	*_b = NULL;
	/* it holds private keys */
	if (b->data != NULL)
		explicit_bzero(b->data, b->len);
	rg_free(b->data);
	rg_free(b->name_off);
	rg_free(b->name_entry);
	rg_free(b->name_tab);
	rg_free(b->pairs);
	rg_free(b->pair_tab);
	rg_free(b);
}

int tls_sni_builder_add(struct tls_sni_builder *b, const char *name, const char *cert_pem,
			const char *key_pem, const char **error_r)
{
	char norm[TLS_SNI_NAME_MAX + 1];

	if (!tls_sni_normalize(name, norm, true)) {
		*error_r = tls_error("local_name %.80s: not a valid host name", name);
		return -EINVAL;
	}
	if (b->name_count >= SNI_NAMES_MAX) {
		*error_r = tls_error("local_name %s: more than %u names", norm, SNI_NAMES_MAX);
		return -EINVAL;
	}
	if (b->len + strlen(norm) + strlen(cert_pem) + strlen(key_pem) + 3 > SNI_STORE_MAX / 2) {
		*error_r = tls_error("local_name %s: the certificates exceed %u MB", norm,
				     SNI_STORE_MAX / 2 / (1024 * 1024));
		return -EINVAL;
	}
	if ((b->name_count + 1) * 2 > b->name_tab_size)
		name_tab_grow(b);
	uint32_t *ns = name_slot(b, norm);
	if (*ns != 0) {
		*error_r = tls_error("local_name %s: given twice", norm);
		return -EINVAL;
	}
	if ((b->pair_count + 1) * 2 > b->pair_tab_size)
		pair_tab_grow(b);
	uint32_t *ps = pair_slot(b, cert_pem, key_pem);
	if (*ps == 0) {
		if (b->pair_count == b->pair_cap) {
			b->pair_cap = b->pair_cap == 0 ? 16 : b->pair_cap * 2;
			b->pairs = rg_realloc(b->pairs, b->pair_cap * sizeof(*b->pairs));
		}
		b->pairs[b->pair_count].cert = data_add(b, cert_pem);
		b->pairs[b->pair_count].key = data_add(b, key_pem);
		*ps = ++b->pair_count;
	}
	if (b->name_count == b->name_cap) {
		b->name_cap = b->name_cap == 0 ? 64 : b->name_cap * 2;
		b->name_off = rg_realloc(b->name_off, b->name_cap * sizeof(*b->name_off));
		b->name_entry = rg_realloc(b->name_entry, b->name_cap * sizeof(*b->name_entry));
	}
	b->name_off[b->name_count] = data_add(b, norm);
	b->name_entry[b->name_count] = *ps - 1;
	/* data may have moved, the slot did not */
	*ns = ++b->name_count;
	return (int)(*ps - 1);
}

/* the store while it is laid out: a heap buffer, copied to the mapping */
struct layout {
	uint8_t *buf;
	size_t len, cap;
};

static uint32_t layout_add(struct layout *l, const void *data, size_t len)
{
	size_t at = (l->len + 3) & ~(size_t)3;
	l->buf = grow_wiped(l->buf, l->len, &l->cap, at + len);
	memset(l->buf + l->len, 0, at - l->len);
	memcpy(l->buf + at, data, len);
	l->len = at + len;
	return (uint32_t)at;
}

static uint32_t layout_str(struct layout *l, const char *s)
{
	return layout_add(l, s != NULL ? s : "", s != NULL ? strlen(s) + 1 : 1);
}

struct tls_sni_store *tls_sni_builder_finish(struct tls_sni_builder **_b,
					     const struct tls_ctx_settings *base)
{
	struct tls_sni_builder *b = *_b;
	if (b == NULL || b->name_count == 0) {
		tls_sni_builder_free(_b);
		return NULL;
	}
	struct tls_sni_store head = {
		.magic = SNI_STORE_MAGIC,
		.names = b->name_count,
		.entries = b->pair_count,
		.prefer_server_ciphers = base->prefer_server_ciphers,
		.verify_client = base->verify_client,
		.require_crl = base->require_crl,
	};
	unsigned slots = 64;
	while (slots < 2 * b->name_count)
		slots *= 2;
	head.slot_mask = slots - 1;

	struct layout l = { 0 };
	(void)layout_add(&l, &head, sizeof(head));
	uint32_t *tab = rg_calloc(slots, sizeof(*tab));
	struct sni_pem_pair *pairs = rg_calloc(b->pair_count, sizeof(*pairs));
	/* each certificate's text next to its key, names after them */
	for (unsigned i = 0; i < b->pair_count; i++) {
		pairs[i].cert = layout_str(&l, b->data + b->pairs[i].cert);
		pairs[i].key = layout_str(&l, b->data + b->pairs[i].key);
	}
	for (unsigned i = 0; i < b->name_count; i++) {
		const char *name = b->data + b->name_off[i];
		uint32_t rec = layout_add(&l, &b->name_entry[i], sizeof(uint32_t));
		(void)layout_add(&l, name, strlen(name) + 1);
		unsigned j = hash_str(name) & head.slot_mask;
		while (tab[j] != 0)
			j = (j + 1) & head.slot_mask;
		tab[j] = rec;
	}
	const char *strs[6] = { base->ca_pem,	   base->min_protocol, base->cipher_list,
				base->dh_pem,	   base->curve_list,   base->cert_username_field };
	for (unsigned i = 0; i < 6; i++)
		head.base_off[i] = layout_str(&l, strs[i]);
	head.slots_off = layout_add(&l, tab, slots * sizeof(*tab));
	head.entries_off = layout_add(&l, pairs, b->pair_count * sizeof(*pairs));
	head.size = (uint32_t)l.len;
	memcpy(l.buf, &head, sizeof(head));
	rg_free(tab);
	rg_free(pairs);
	tls_sni_builder_free(_b);

	void *map = mmap(NULL, l.len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		log_fatal("tls: local_name store (%zu bytes): mmap: %m", l.len);
	memcpy(map, l.buf, l.len);
	explicit_bzero(l.buf, l.len);
	rg_free(l.buf);
	if (mprotect(map, l.len, PROT_READ) < 0)
		log_fatal("tls: local_name store: mprotect: %m");
	return map;
}

void tls_sni_store_free(struct tls_sni_store **_store)
{
	struct tls_sni_store *store = *_store;
	if (store == NULL)
		return;
	*_store = NULL;
	(void)munmap(store, store->size);
}

int tls_sni_store_fd(const struct tls_sni_store *store)
{
	int fd = memfd_create("ringgate-sni", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	const uint8_t *p = (const uint8_t *)store;
	size_t done = 0;
	while (done < store->size) {
		ssize_t n = write(fd, p + done, store->size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? -errno : -EIO;
			close(fd);
			return err;
		}
		done += (size_t)n;
	}
	/* nobody, a login process included, can change what the others map */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int tls_sni_store_map(int fd, struct tls_sni_store **store_r, const char **error_r)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		*error_r = tls_error("local_name store: fstat: %s", strerror(errno));
		return -errno;
	}
	int seals = fcntl(fd, F_GET_SEALS);
	const int want = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
	if (seals < 0 || (seals & want) != want || st.st_size < (off_t)sizeof(struct tls_sni_store) ||
	    st.st_size > (off_t)SNI_STORE_MAX) {
		*error_r = tls_error("local_name store: not a sealed store");
		return -EINVAL;
	}
	void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		*error_r = tls_error("local_name store: mmap: %s", strerror(errno));
		return -errno;
	}
	/* master made it (tls_sni_store_fd) and sealed it: the checks are
	 * for a mismatched binary, not for a hostile writer */
	const struct tls_sni_store *s = map;
	uint64_t slots = (uint64_t)s->slot_mask + 1;
	if (s->magic != SNI_STORE_MAGIC || s->size != (uint64_t)st.st_size ||
	    (slots & (slots - 1)) != 0 || slots < 2ull * s->names ||
	    s->slots_off + slots * 4 > s->size ||
	    s->entries_off + (uint64_t)s->entries * sizeof(struct sni_pem_pair) > s->size) {
		(void)munmap(map, (size_t)st.st_size);
		*error_r = tls_error("local_name store: not a store of this version");
		return -EINVAL;
	}
	*store_r = map;
	return 0;
}

static const char *store_str(const struct tls_sni_store *store, uint32_t off)
{
	return (const char *)store + off;
}

static int store_find_exact(const struct tls_sni_store *store, const char *name)
{
	const uint32_t *tab = (const uint32_t *)((const uint8_t *)store + store->slots_off);
	for (unsigned i = hash_str(name) & store->slot_mask;; i = (i + 1) & store->slot_mask) {
		if (tab[i] == 0)
			return -1;
		const uint32_t *rec = (const uint32_t *)((const uint8_t *)store + tab[i]);
		if (strcmp((const char *)(rec + 1), name) == 0)
			return (int)*rec;
	}
}

int tls_sni_store_find(const struct tls_sni_store *store, const char *requested)
{
	char name[TLS_SNI_NAME_MAX + 2];

	if (store == NULL || requested == NULL || !tls_sni_normalize(requested, name + 1, false))
		return -1;
	int entry = store_find_exact(store, name + 1);
	if (entry >= 0)
		return entry;
	/* "*.example.com" covers "a.example.com" but neither "example.com"
	 * nor "a.b.example.com" */
	char *dot = strchr(name + 1, '.');
	if (dot == NULL || strchr(dot + 1, '.') == NULL)
		return -1;
	dot[-1] = '*';
	return store_find_exact(store, dot - 1);
}

unsigned tls_sni_store_entries(const struct tls_sni_store *store)
{
	return store != NULL ? store->entries : 0;
}

int tls_sni_store_ctx(const struct tls_sni_store *store, unsigned entry, struct tls_ctx *owner,
		      bool prove_pair, struct tls_ctx **ctx_r, const char **error_r)
{
	const struct sni_pem_pair *pairs =
		(const struct sni_pem_pair *)((const uint8_t *)store + store->entries_off);
	if (entry >= store->entries) {
		*error_r = tls_error("local_name: no certificate %u", entry);
		return -EINVAL;
	}
	const uint32_t *o = store->base_off;
	struct tls_ctx_settings set = {
		.cert_pem = store_str(store, pairs[entry].cert),
		.key_pem = store_str(store, pairs[entry].key),
		.ca_pem = store_str(store, o[0]),
		.min_protocol = store_str(store, o[1]),
		.cipher_list = store_str(store, o[2]),
		.dh_pem = store_str(store, o[3]),
		.curve_list = store_str(store, o[4]),
		.cert_username_field = store_str(store, o[5]),
		.prefer_server_ciphers = store->prefer_server_ciphers,
		.verify_client = store->verify_client,
		.require_crl = store->require_crl,
	};
	return tls_ctx_create_sub(&set, owner, prove_pair, ctx_r, error_r);
}
