/*
 * fuzz_listxml: a ListObjectsV2 body fed to listxml_new/feed/finish.
 *
 * The input is the body. It is parsed three times: once split into chunks
 * whose sizes come from a hash of the input (so a replay splits it the same
 * way), once in one piece, and once with a callback that stops at the first
 * entry. Whatever the bytes, the parser must not crash, must hand callbacks
 * bounded, terminated fields, must keep an error once it has one, and must
 * not care where the chunk boundaries fell: when both runs accept the page
 * they must have seen the same entries and the same page fields. A reason
 * for a refusal is one line (it ends up in prewctl's error message). Its date
 * parser, s3_parse_time, is checked against sigv4_amz_date (an independent
 * conversion the other way) on the input's first bytes.
 */
#include <stdint.h>
#include <string.h>

#include "s3/listxml.h"
#include "s3/s3.h"
#include "s3/sigv4.h"
#include "tests/fuzz/fuzz.h"

#define LXF_KEY_MAX	4096	/* listxml.h: a Key or Prefix as sent */
#define LXF_ETAG_MAX	256

struct lxf_run {
	uint64_t	 digest;	/* of every entry, in order */
	int		 calls;
	int		 stop_at;	/* callback number that stops; 0: none */
};

static void
lxf_mix(uint64_t *d, const void *p, size_t n)
{
	const uint8_t	*b = p;

	while (n-- > 0)
		*d = (*d ^ *b++) * 0x100000001b3ULL;
	*d = (*d ^ 0xff) * 0x100000001b3ULL;	/* field separator */
}

static int
lxf_object(void *arg, const struct s3_object *o)
{
	struct lxf_run	*r = arg;
	size_t		 kl, el;

	FUZZ_CHECK(o != NULL && o->key != NULL && o->etag != NULL,
	    "object callback with a NULL field");
	kl = strlen(o->key);
	el = strlen(o->etag);
	/* Decoding only shortens a key; an empty key is refused. */
	FUZZ_CHECK(kl >= 1 && kl <= LXF_KEY_MAX, "key of %zu bytes", kl);
	FUZZ_CHECK(el <= LXF_ETAG_MAX, "etag of %zu bytes", el);
	lxf_mix(&r->digest, "O", 1);
	lxf_mix(&r->digest, o->key, kl);
	lxf_mix(&r->digest, o->etag, el);
	lxf_mix(&r->digest, &o->size, sizeof(o->size));
	lxf_mix(&r->digest, &o->mtime_ms, sizeof(o->mtime_ms));
	r->calls++;
	return r->stop_at != 0 && r->calls >= r->stop_at;
}

static int
lxf_prefix(void *arg, const char *prefix)
{
	struct lxf_run	*r = arg;
	size_t		 pl;

	FUZZ_CHECK(prefix != NULL, "prefix callback with NULL");
	pl = strlen(prefix);
	FUZZ_CHECK(pl >= 1 && pl <= LXF_KEY_MAX, "prefix of %zu bytes", pl);
	lxf_mix(&r->digest, "P", 1);
	lxf_mix(&r->digest, prefix, pl);
	r->calls++;
	return r->stop_at != 0 && r->calls >= r->stop_at;
}

/*
 * One parse. seed 0: the body in one piece; else chunk sizes from seed.
 * res gets the result with the token copied into tok (4097 bytes).
 */
static enum s3_status
lxf_parse(const uint8_t *data, size_t size, uint64_t seed, struct lxf_run *r,
    struct listxml_result *res, char *tok)
{
	struct listxml	*lx;
	enum s3_status	 st = S3_OK, st2;
	size_t		 off = 0, n, maxchunk;
	char		 msg[200];
	size_t		 tl;

	memset(res, 0, sizeof(*res));
	tok[0] = '\0';
	if ((lx = listxml_new(lxf_object, lxf_prefix, r)) == NULL)
		return S3_ENOMEM;
	/* Mostly tiny chunks (where boundaries bite), sometimes large ones. */
	maxchunk = (fuzz_rand(&seed) & 3) == 0 ? 4096 : 1 + (fuzz_rand(&seed) & 15);
	while (off < size) {
		n = seed == 0 ? size : 1 + fuzz_rand(&seed) % maxchunk;
		if (n > size - off)
			n = size - off;
		if (seed != 0 && (fuzz_rand(&seed) & 31) == 0)
			(void)listxml_feed(lx, (const char *)data + off, 0,
			    msg, sizeof(msg));
		st = listxml_feed(lx, (const char *)data + off, n, msg,
		    sizeof(msg));
		off += n;
		if (st != S3_OK)
			break;
	}
	if (st == S3_OK)
		st = listxml_finish(lx, res, msg, sizeof(msg));
	else {
		/* An error sticks: later calls say it again. */
		st2 = listxml_feed(lx, "<", 1, msg, sizeof(msg));
		FUZZ_CHECK(st2 == st, "feed after error %d returned %d", st,
		    st2);
		st2 = listxml_finish(lx, res, msg, sizeof(msg));
		FUZZ_CHECK(st2 == st, "finish after error %d returned %d", st,
		    st2);
	}
	FUZZ_CHECK(st == S3_OK || msg[0] != '\0', "error %d without a reason",
	    st);
	/* The reason ends up in a one-line message on stderr. */
	for (n = 0; msg[n] != '\0'; n++)
		FUZZ_CHECK((unsigned char)msg[n] >= 0x20 && msg[n] != 0x7f,
		    "control byte 0x%02x in the reason '%s'",
		    (unsigned char)msg[n], msg);
	if (st == S3_OK) {
		FUZZ_CHECK(res->is_truncated == 0 || res->is_truncated == 1,
		    "is_truncated %d", res->is_truncated);
		FUZZ_CHECK(res->key_count == r->calls,
		    "key_count %d after %d callbacks", res->key_count, r->calls);
		FUZZ_CHECK(res->server_key_count >= -1, "server_key_count %d",
		    res->server_key_count);
		if (res->next_token != NULL) {
			tl = strlen(res->next_token);
			FUZZ_CHECK(tl >= 1 && tl <= LXF_KEY_MAX,
			    "token of %zu bytes", tl);
			memcpy(tok, res->next_token, tl + 1);
		}
		/* Data after the end is refused, and the error sticks. */
		st2 = listxml_feed(lx, " ", 1, msg, sizeof(msg));
		FUZZ_CHECK(st2 == S3_EXML, "feed after finish returned %d",
		    st2);
	}
	listxml_free(lx);
	return st;
}

/* s3_parse_time against sigv4_amz_date on s (NUL-terminated). */
static void
lxf_time(const char *s)
{
	int64_t		 ms = 0, secs, frac;
	char		 amz[17], want[17];

	if (s3_parse_time(s, &ms) != 0)
		return;
	/* Accepted means "YYYY-MM-DDTHH:MM:SS[.f]Z", so s has 20+ bytes. */
	secs = ms / 1000;
	frac = ms % 1000;
	if (frac < 0) {
		frac += 1000;
		secs--;
	}
	sigv4_amz_date((time_t)secs, amz);
	memcpy(want, s, 4);
	memcpy(want + 4, s + 5, 2);
	memcpy(want + 6, s + 8, 2);
	want[8] = 'T';
	memcpy(want + 9, s + 11, 2);
	memcpy(want + 11, s + 14, 2);
	memcpy(want + 13, s + 17, 2);
	want[15] = 'Z';
	want[16] = '\0';
	FUZZ_CHECK(strcmp(amz, want) == 0, "'%s' parsed to %lld ms, which is "
	    "%s", s, (long long)ms, amz);
	if (s[19] == '.') {
		int64_t	f = 0;
		int	i;

		/* ".5Z" is 500 ms: a digit short of three counts as 0. */
		for (i = 0; i < 3; i++)
			f = f * 10 + (s[20 + i] >= '0' && s[20 + i] <= '9' ?
			    s[20 + i] - '0' : 0);
		FUZZ_CHECK(frac == f, "'%s': %lld ms past the second, want %lld",
		    s, (long long)frac, (long long)f);
	} else
		FUZZ_CHECK(frac == 0, "'%s': fraction %lld", s,
		    (long long)frac);
}

static void
listxml_one(const uint8_t *data, size_t size)
{
	static char		 tok_a[LXF_KEY_MAX + 1], tok_b[LXF_KEY_MAX + 1];
	struct lxf_run		 a, b, c;
	struct listxml_result	 ra, rb, rc;
	enum s3_status		 sa, sb, sc;
	char			 ts[40];
	uint64_t		 seed;

	/* The time parser: the input's first line, if short. */
	memset(ts, 0, sizeof(ts));
	memcpy(ts, data, size < sizeof(ts) - 1 ? size : sizeof(ts) - 1);
	lxf_time(ts);

	seed = fuzz_hash(data, size) | 1;	/* never 0: 0 means one piece */
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	sa = lxf_parse(data, size, seed, &a, &ra, tok_a);
	sb = lxf_parse(data, size, 0, &b, &rb, tok_b);
	if (sa == S3_ENOMEM || sb == S3_ENOMEM)
		return;

	/* Chunk boundaries must not change what a page says. */
	FUZZ_CHECK((sa == S3_OK) == (sb == S3_OK),
	    "split parse returned %d, whole parse %d", sa, sb);
	if (sa == S3_OK) {
		FUZZ_CHECK(a.calls == b.calls && a.digest == b.digest,
		    "split and whole parses saw different entries (%d, %d)",
		    a.calls, b.calls);
		FUZZ_CHECK(ra.is_truncated == rb.is_truncated &&
		    ra.server_key_count == rb.server_key_count &&
		    strcmp(tok_a, tok_b) == 0 &&
		    (ra.next_token == NULL) == (rb.next_token == NULL),
		    "split and whole parses disagree on the page fields");
	}

	/* A callback that says stop stops the listing, and nothing else. */
	c.stop_at = 1;
	sc = lxf_parse(data, size, 0, &c, &rc, tok_a);
	if (sc != S3_ENOMEM) {
		FUZZ_CHECK((sc == S3_ECANCELLED) == (b.calls >= 1),
		    "stop at the first entry returned %d after %d entries",
		    sc, b.calls);
		FUZZ_CHECK(c.calls == (b.calls >= 1),
		    "%d callbacks after asking to stop", c.calls);
	}
}

#ifndef FUZZ_REGRESS
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	listxml_one(data, size);
	return 0;
}
#endif
