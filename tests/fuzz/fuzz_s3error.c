/*
 * fuzz_s3error: an S3 <Error> body fed to s3_parse_error, and the same
 * bytes as a DeleteObjects result to s3_parse_delete_result.
 *
 * Whatever the bytes: no crash; on success a non-empty Code and every field
 * NUL-terminated inside its array and, for a well-formed UTF-8 body,
 * well-formed UTF-8 (a long field is cut at a character boundary); on failure S3_EXML (or S3_ENOMEM) and the
 * caller's struct left exactly as it was; the same answer on a second call.
 * A DeleteObjects result: every reported key within S3's bounds, as many
 * reports as the count returned and no more than the keys sent, and none
 * at all when it is refused.
 */
#include <stdint.h>
#include <string.h>

#include "s3/s3.h"
#include "s3/xml.h"
#include "tests/fuzz/fuzz.h"

/*
 * libxml2's push parser lets some ill-formed UTF-8 through inside CDATA
 * (an overlong 0xC1 0xA9, say), so only a body that was well-formed UTF-8
 * must give well-formed fields: the cut must not split a character.
 */
static void
s3e_field(const char *name, const char *f, size_t size, int utf8_in)
{
	size_t	n = strnlen(f, size);

	FUZZ_CHECK(n < size, "%s is not terminated", name);
	FUZZ_CHECK(!utf8_in || fuzz_utf8_ok((const unsigned char *)f, n),
	    "%s is not well-formed UTF-8", name);
}

static void
s3e_deleted(void *arg, const char *key, const char *code, const char *msg)
{
	int	*n = arg;

	FUZZ_CHECK(key != NULL && code != NULL && msg != NULL,
	    "a NULL field");
	FUZZ_CHECK(strlen(key) <= 4096 && strlen(code) <= 256 &&
	    strlen(msg) <= 4096, "a field past its bound");
	(*n)++;
}

static void
s3error_delete_one(const uint8_t *data, size_t size)
{
	enum s3_status	 st;
	int		 n = 0, nerr = -1;

	/* As if the request held three keys. */
	st = s3_parse_delete_result((const char *)data, size, 3, s3e_deleted,
	    &n, &nerr);
	if (st == S3_OK)
		FUZZ_CHECK(nerr == n && n <= 3, "%d errors counted, %d "
		    "reported, for 3 keys", nerr, n);
	else {
		FUZZ_CHECK(st == S3_EXML || st == S3_ENOMEM,
		    "returned status %d", st);
		FUZZ_CHECK(n == 0, "refused after reporting %d keys", n);
	}
}

static void
s3error_one(const uint8_t *data, size_t size)
{
	struct s3_error	 e, before, e2;
	enum s3_status	 st, st2;
	int		 utf8;

	/* Poison the struct so a stray write or a missing NUL shows. */
	memset(&e, 0x5a, sizeof(e));
	e.http_status = 403;
	memcpy(e.request_id, "from-headers", sizeof("from-headers"));
	before = e;
	st = s3_parse_error((const char *)data, size, &e);
	if (st == S3_OK) {
		FUZZ_CHECK(e.code[0] != '\0', "accepted without a Code");
		utf8 = fuzz_utf8_ok(data, size);
		s3e_field("Code", e.code, sizeof(e.code), utf8);
		s3e_field("Message", e.message, sizeof(e.message), utf8);
		s3e_field("RequestId", e.request_id, sizeof(e.request_id),
		    utf8);
		FUZZ_CHECK(e.http_status == 403 && e.curl_code ==
		    before.curl_code, "fields it does not own changed");
	} else {
		FUZZ_CHECK(st == S3_EXML || st == S3_ENOMEM,
		    "returned status %d", st);
		FUZZ_CHECK(memcmp(&e, &before, sizeof(e)) == 0,
		    "a refused body changed the caller's struct");
	}
	/* The parse holds no state between calls. */
	memset(&e2, 0x5a, sizeof(e2));
	e2.http_status = 403;
	memcpy(e2.request_id, "from-headers", sizeof("from-headers"));
	st2 = s3_parse_error((const char *)data, size, &e2);
	FUZZ_CHECK(st2 == st || st == S3_ENOMEM || st2 == S3_ENOMEM,
	    "second parse returned %d, first %d", st2, st);
	if (st == S3_OK && st2 == S3_OK)
		FUZZ_CHECK(strcmp(e.code, e2.code) == 0 &&
		    strcmp(e.message, e2.message) == 0 &&
		    strcmp(e.request_id, e2.request_id) == 0,
		    "second parse read different fields");
	/* NULL is allowed for err: the caller only wants the verdict. */
	st2 = s3_parse_error((const char *)data, size, NULL);
	FUZZ_CHECK(st2 == st || st == S3_ENOMEM || st2 == S3_ENOMEM,
	    "parse without err returned %d, with %d", st2, st);
	s3error_delete_one(data, size);
}

#ifndef FUZZ_REGRESS
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	s3error_one(data, size);
	return 0;
}
#endif
