/*
 * fuzz_creds: the answers of the credentials endpoints, the same bytes fed
 * to credsrc_parse_json (container and instance metadata) and to
 * credsrc_parse_sts (STS AssumeRoleWithWebIdentity).
 *
 * Whatever the bytes: no crash; on success an access key and a secret that
 * are not empty, every field within its bound, an expiry after 1970; for
 * JSON, fields that hold no byte the body could not have given (no NUL);
 * on failure the documented status and the caller's struct left as it
 * was, with a reason; the same answer on a second call.
 */
#include <stdint.h>
#include <string.h>

#include "s3/credsrc.h"
#include "s3/s3.h"
#include "tests/fuzz/fuzz.h"

static void
creds_check_ok(const char *what, const struct s3_creds *c)
{
	FUZZ_CHECK(c->access_key != NULL && c->access_key[0] != '\0' &&
	    c->secret_key != NULL && c->secret_key[0] != '\0',
	    "%s: accepted without keys", what);
	FUZZ_CHECK(strlen(c->access_key) <= 256 &&
	    strlen(c->secret_key) <= 1024 && (c->session_token == NULL ||
	    (c->session_token[0] != '\0' &&
	    strlen(c->session_token) <= CREDSRC_TOKEN_MAX)),
	    "%s: a field past its bound", what);
	FUZZ_CHECK(c->expires > 0, "%s: expiry %lld", what,
	    (long long)c->expires);
}

static int
creds_same(const struct s3_creds *a, const struct s3_creds *b)
{
	return strcmp(a->access_key, b->access_key) == 0 &&
	    strcmp(a->secret_key, b->secret_key) == 0 &&
	    (a->session_token == NULL) == (b->session_token == NULL) &&
	    (a->session_token == NULL ||
	    strcmp(a->session_token, b->session_token) == 0) &&
	    a->expires == b->expires;
}

static void
creds_json_one(const uint8_t *data, size_t size)
{
	struct s3_creds	 c, c2, before;
	enum s3_status	 st, st2;
	char		 why[128];

	memset(&c, 0, sizeof(c));
	c.expires = 42;
	before = c;
	why[0] = '\0';
	st = credsrc_parse_json((const char *)data, size, &c, why,
	    sizeof(why));
	if (st == S3_OK)
		creds_check_ok("json", &c);
	else {
		FUZZ_CHECK(st == S3_EPROTO || st == S3_ENOMEM,
		    "json: returned status %d", st);
		FUZZ_CHECK(memcmp(&c, &before, sizeof(c)) == 0,
		    "json: a refused body changed the caller's struct");
		FUZZ_CHECK(why[0] != '\0' && strnlen(why, sizeof(why)) <
		    sizeof(why), "json: refused without a reason");
	}
	memset(&c2, 0, sizeof(c2));
	st2 = credsrc_parse_json((const char *)data, size, &c2, why,
	    sizeof(why));
	FUZZ_CHECK(st2 == st || st == S3_ENOMEM || st2 == S3_ENOMEM,
	    "json: second parse returned %d, first %d", st2, st);
	if (st == S3_OK && st2 == S3_OK)
		FUZZ_CHECK(creds_same(&c, &c2), "json: second parse differs");
	if (st == S3_OK)
		s3_creds_release(&c);
	if (st2 == S3_OK)
		s3_creds_release(&c2);
}

static void
creds_sts_one(const uint8_t *data, size_t size)
{
	struct s3_creds	 c, c2, before;
	enum s3_status	 st, st2;
	char		 code[64], why[128];

	memset(&c, 0, sizeof(c));
	c.expires = 42;
	before = c;
	st = credsrc_parse_sts((const char *)data, size, &c, code,
	    sizeof(code), why, sizeof(why));
	FUZZ_CHECK(strnlen(code, sizeof(code)) < sizeof(code),
	    "sts: Code is not terminated");
	if (st == S3_OK)
		creds_check_ok("sts", &c);
	else {
		FUZZ_CHECK(st == S3_EXML || st == S3_ESERVER ||
		    st == S3_ENOMEM, "sts: returned status %d", st);
		FUZZ_CHECK(memcmp(&c, &before, sizeof(c)) == 0,
		    "sts: a refused body changed the caller's struct");
		FUZZ_CHECK(st != S3_ESERVER || code[0] != '\0',
		    "sts: an error answer without a Code");
	}
	memset(&c2, 0, sizeof(c2));
	st2 = credsrc_parse_sts((const char *)data, size, &c2, code,
	    sizeof(code), why, sizeof(why));
	FUZZ_CHECK(st2 == st || st == S3_ENOMEM || st2 == S3_ENOMEM,
	    "sts: second parse returned %d, first %d", st2, st);
	if (st == S3_OK && st2 == S3_OK)
		FUZZ_CHECK(creds_same(&c, &c2), "sts: second parse differs");
	if (st == S3_OK)
		s3_creds_release(&c);
	if (st2 == S3_OK)
		s3_creds_release(&c2);
}

static void
creds_one(const uint8_t *data, size_t size)
{
	creds_json_one(data, size);
	creds_sts_one(data, size);
}

#ifndef FUZZ_REGRESS
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	creds_one(data, size);
	return 0;
}
#endif
