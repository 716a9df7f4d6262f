/* imap-search.h — sequence sets and SEARCH programs (RFC 3501 6.4.4).
 *
 * A program is parsed once from the command's arguments into a tree and
 * then matched against each message. Only what a key needs is asked of the
 * message: flags, sizes and dates come from the caller's view, the text
 * (headers, body) through a loader called at most once per message. String
 * keys match as case-insensitive substrings (ASCII case folding; header
 * values are matched after RFC 2047 decoding). */
#ifndef RG_IMAP_SEARCH_H
#define RG_IMAP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "imap/imap-cmd-parser.h"

struct imap_seq_range {
	uint32_t lo, hi;
};

/* "1:3,5,7:*" into sorted, merged ranges; star is what "*" means. false
 * when the set is malformed. */
bool imap_seqset_parse(const char *str, uint32_t star, struct imap_seq_range **ranges_r,
		       size_t *count_r);
bool imap_seqset_contains(const struct imap_seq_range *ranges, size_t count, uint32_t n);

struct imap_search_msg {
	uint32_t seq, uid;
	const char *flags;     /* Maildir letters (S, R, F, T, D; a-z keywords) */
	const char *const *keywords; /* names of a-z (26 entries, NULL unused), or NULL */
	bool recent;
	uint64_t size;         /* RFC822.SIZE */
	time_t internal_date;
	uint64_t modseq;       /* CONDSTORE */
	/* the message with CRLF line ends; NULL when it cannot be read */
	const char *(*load)(void *ctx, size_t *len_r);
	void *ctx;
};

struct imap_search;

/* args: the keys (after "CHARSET x", which the caller checks). max_seq and
 * max_uid are what "*" means. NULL with *error_r on a bad program. */
struct imap_search *imap_search_parse(const struct imap_cmd_arg *args, size_t count,
				      uint32_t max_seq, uint32_t max_uid, const char **error_r);
bool imap_search_match(const struct imap_search *search, const struct imap_search_msg *msg);
/* true when some key needs the message text (callers may batch loads) */
bool imap_search_needs_text(const struct imap_search *search);
/* true when some key needs the size (LARGER, SMALLER): it may cost a read */
bool imap_search_needs_size(const struct imap_search *search);
/* true when some key needs the internal date (BEFORE, ON, SINCE, and the
 * SENT* keys of messages without a Date:) */
bool imap_search_needs_date(const struct imap_search *search);
/* true when the program has a MODSEQ key (the reply then names the
 * highest modseq found, RFC 7162) */
bool imap_search_needs_modseq(const struct imap_search *search);
void imap_search_free(struct imap_search *search);

/* "d-Mon-yyyy" (RFC 3501 date) into *ymd_r = y*10000+m*100+d */
bool imap_search_parse_date(const char *s, int *ymd_r);

#endif
