/* imap-qresync.h — QRESYNC (RFC 7162 3.2) for the IMAP session (private
 * to src/imap): parsing SELECT/EXAMINE parameters and FETCH modifiers,
 * and the VANISHED responses. */
#ifndef RG_IMAP_QRESYNC_H
#define RG_IMAP_QRESYNC_H

#include "imap/imap-common.h"
#include "imap/imap-search.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* SELECT/EXAMINE's parameter list: (CONDSTORE) and/or
 * (QRESYNC (uidvalidity modseq [known-uids [(seqs uids)]])) */
struct imap_select_params {
	bool condstore, qresync;
	uint32_t uidvalidity;
	uint64_t modseq;
	struct imap_seq_range *known; /* NULL: every UID */
	size_t nknown;
	struct imap_seq_range *match_seq, *match_uid;
	size_t nmatch_seq, nmatch_uid;
};

/* FETCH's modifier list: (CHANGEDSINCE n [VANISHED]) in any order */
struct imap_fetch_modifiers {
	bool changedsince, vanished;
	uint64_t since;
};

bool imap_parse_modseq(const struct imap_cmd_arg *arg, bool zero_ok, uint64_t *modseq_r);
/* false: a syntax error (BAD), *error_r says which; QRESYNC needs
 * qresync_enabled. Free with imap_select_params_free() after success. */
bool imap_select_params_parse(const struct imap_cmd_arg *arg, bool qresync_enabled,
			      struct imap_select_params *p, const char **error_r);
void imap_select_params_free(struct imap_select_params *p);
bool imap_fetch_modifiers_parse(const struct imap_cmd_arg *arg, struct imap_fetch_modifiers *m,
				const char **error_r);

/* "* VANISHED [(EARLIER)] set" (nothing when n == 0) */
void imap_send_vanished(struct imap_client *c, bool earlier, const struct maildir_uid_range *r, size_t n);
/* VANISHED (EARLIER): UIDs of set (NULL: all) expunged after since,
 * leaving out those up to skip_below */
void imap_send_vanished_earlier(struct imap_client *c, uint64_t since, const struct imap_seq_range *set,
				size_t nset, uint32_t skip_below);
/* after SELECT/EXAMINE's own responses: with a QRESYNC parameter whose
 * UIDVALIDITY matches, VANISHED (EARLIER) and FETCH for what changed */
void imap_qresync_select(struct imap_client *c, const struct imap_select_params *p);

/* after maildir_modseq_commit() (before = the snapshot's highest modseq
 * before it): when others' changes got modseqs in between, remember to
 * send a lower HIGHESTMODSEQ; imap_modseq_hold_flush() sends it after the
 * command's FETCH responses (RFC 7162 3.2) */
void imap_modseq_committed(struct imap_client *c, uint64_t before);
void imap_modseq_hold_flush(struct imap_client *c);

#endif
