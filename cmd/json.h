/*
 * json: one small streaming JSON writer for --json.
 *
 * The writer keeps the nesting and the commas, so a printer only says
 * what comes next. Strings are escaped so that the document always
 * parses: '"', '\\' and control bytes as JSON escapes, valid UTF-8 as it
 * is, and each byte that is not part of valid UTF-8 as "\udcXX", the lone
 * low surrogate of PEP 383 ("surrogateescape"): Python's json module reads
 * it back into a str that .encode('utf-8', 'surrogateescape') turns into
 * the original bytes, and every other parser takes it as one character.
 *
 * Errors of the FILE are left to the caller (cmd_finish checks stdout).
 */
#ifndef PREWCTL_JSON_H
#define PREWCTL_JSON_H

#include <stdint.h>
#include <stdio.h>

#define JSON_DEPTH 16

struct json {
	FILE	*f;
	int	 depth;
	int	 first[JSON_DEPTH];	/* nothing written yet at this level */
	char	 closer[JSON_DEPTH];	/* '}' or ']' */
	int	 key;			/* a key was written: the value follows */
};

void	 json_init(struct json *, FILE *);
/* Open an object or array: as a value, or after json_key. */
void	 json_object(struct json *);
void	 json_array(struct json *);
/* Close the innermost object or array. */
void	 json_end(struct json *);
/* Close everything still open. */
void	 json_close_all(struct json *);
void	 json_key(struct json *, const char *);
void	 json_str(struct json *, const char *);
void	 json_strn(struct json *, const char *, size_t);
void	 json_u64(struct json *, uint64_t);
void	 json_int(struct json *, long long);
void	 json_double(struct json *, double, int decimals);
void	 json_bool(struct json *, int);
void	 json_null(struct json *);

/* Shorthands for a key and its value. */
void	 json_kstr(struct json *, const char *k, const char *v);
void	 json_ku64(struct json *, const char *k, uint64_t v);

/* Write s as a JSON string, quotes included, escaped as above. */
void	 json_quote(FILE *, const char *s, size_t len);

/* The length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
size_t	 utf8_seq(const unsigned char *p, size_t n);

#endif
