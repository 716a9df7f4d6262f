/* parse.h — the result shape every incremental parser returns.
 * PARSE_MORE means "feed me more bytes"; the parser has consumed what it was
 * given and never looks past it. */
#ifndef RG_PARSE_H
#define RG_PARSE_H

enum parse_result {
	PARSE_OK = 0,
	PARSE_MORE,
	PARSE_ERROR,
};

#endif
