/*
 * fuzz_sigv4: SigV4 canonicalisation and S3's URI encoding.
 *
 * The input, split at its NUL bytes, is a request: region, method, path,
 * query (absent: none), then header name and value pairs. sigv4_sign must
 * not crash, must refuse a time it cannot write, and when it signs:
 *   - the canonical request has one line per distinct header name and no
 *     control byte but its newlines (a value cannot inject a line);
 *   - signed headers are lowercase, sorted, distinct, and include host;
 *   - the string to sign and the Authorization value are built from the
 *     parts as the AWS documentation lays them out;
 *   - canonicalising is idempotent: signing the canonical path and query
 *     again gives the same canonical request, and the order of headers with
 *     distinct names does not matter;
 *   - a path made by s3_uri_encode is signed as it is.
 * The whole input also goes through s3_uri_encode and s3_uri_decode: the
 * encoding has only unreserved bytes and %XX, and decoding gives back the
 * bytes; decoding fails exactly on a '%' without two hex digits.
 */
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "s3/buf.h"
#include "s3/sigv4.h"
#include "tests/fuzz/fuzz.h"

#define SVF_MAXHDR	32
#define SVF_TMAX	253402300799LL	/* 9999-12-31T23:59:59Z */
#define SVF_ALGO	"AWS4-HMAC-SHA256"

static int
svf_unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* The encoding and decoding of s[0..n) both ways. */
static void
svf_uri(const char *s, size_t n, int keep_slash)
{
	struct buf	 enc, dec;
	size_t		 i, esc = 0;
	int		 ok = 1, rc;

	buf_init(&enc, BUF_NOMAX);
	buf_init(&dec, BUF_NOMAX);
	if (s3_uri_encode(&enc, s, n, keep_slash) != 0)
		goto out;	/* memory */
	for (i = 0; i < n; i++)
		if (!svf_unreserved((unsigned char)s[i]) &&
		    !(keep_slash && s[i] == '/'))
			esc++;
	FUZZ_CHECK(enc.len == n + 2 * esc, "encoded %zu bytes to %zu", n,
	    enc.len);
	for (i = 0; i < enc.len; i++) {
		unsigned char c = (unsigned char)enc.data[i];

		if (c == '%') {
			FUZZ_CHECK(i + 2 < enc.len &&
			    strchr("0123456789ABCDEF", enc.data[i + 1]) &&
			    strchr("0123456789ABCDEF", enc.data[i + 2]) &&
			    enc.data[i + 1] != '\0' && enc.data[i + 2] != '\0',
			    "bad escape in the encoding");
			i += 2;
		} else
			FUZZ_CHECK(svf_unreserved(c) || (keep_slash &&
			    c == '/'), "byte 0x%02x left unencoded", c);
	}
	rc = s3_uri_decode(&dec, enc.data, enc.len);
	FUZZ_CHECK(rc == 0, "cannot decode its own encoding");
	FUZZ_CHECK(dec.len == n && memcmp(dec.data, s, n) == 0,
	    "decode(encode(x)) is not x");

	/* Decoding the raw bytes fails exactly on a bad escape. */
	for (i = 0; i < n; i++) {
		if (s[i] != '%')
			continue;
		if (n - i < 3 || !isxdigit((unsigned char)s[i + 1]) ||
		    !isxdigit((unsigned char)s[i + 2])) {
			ok = 0;
			break;
		}
		i += 2;
	}
	buf_reset(&dec);
	rc = s3_uri_decode(&dec, s, n);
	FUZZ_CHECK((rc == 0) == ok, "decode returned %d, want %s", rc,
	    ok ? "success" : "failure");
	if (rc != 0)
		FUZZ_CHECK(dec.len == 0 && dec.data[0] == '\0',
		    "a failed decode left %zu bytes", dec.len);
out:
	buf_release(&enc);
	buf_release(&dec);
}

/* The fields of the input: NUL-separated, at most max of them. */
static size_t
svf_split(char *s, size_t n, char **f, size_t max)
{
	size_t	 k = 0, i, start = 0;

	for (i = 0; i <= n && k < max; i++) {
		if (i == n || s[i] == '\0') {
			s[i] = '\0';
			f[k++] = s + start;
			start = i + 1;
		}
	}
	return k;
}

/* Line i (from 0) of s, into dst. */
static int
svf_line(const char *s, int i, struct buf *dst)
{
	const char	*e;

	for (; i > 0; i--) {
		if ((s = strchr(s, '\n')) == NULL)
			return -1;
		s++;
	}
	e = strchr(s, '\n');
	buf_reset(dst);
	return buf_add(dst, s, e != NULL ? (size_t)(e - s) : strlen(s));
}

static void
svf_check(const struct sigv4_request *rq, const struct sigv4_key *k,
    time_t now, const struct sigv4 *s)
{
	struct buf	 want;
	char		 amz[17], hash[65];
	const char	*p, *q;
	size_t		 lines = 0, names = 1;

	buf_init(&want, BUF_NOMAX);
	FUZZ_CHECK(strlen(s->signature) == 64 &&
	    strspn(s->signature, "0123456789abcdef") == 64,
	    "signature '%s'", s->signature);
	sigv4_amz_date(now, amz);
	FUZZ_CHECK(strcmp(s->amz_date, amz) == 0, "date %s, want %s",
	    s->amz_date, amz);
	(void)buf_addf(&want, "%.8s/%s/%s/aws4_request", amz, k->region,
	    k->service);
	FUZZ_CHECK(strcmp(s->scope, want.data) == 0, "scope '%s'", s->scope);

	for (p = s->creq.data; *p != '\0'; p++) {
		FUZZ_CHECK(*p == '\n' || ((unsigned char)*p >= 0x20 &&
		    *p != 0x7f), "control byte 0x%02x in the canonical request",
		    (unsigned char)*p);
		lines += *p == '\n';
	}
	for (p = s->signed_headers.data; *p != '\0'; p++) {
		FUZZ_CHECK(!(*p >= 'A' && *p <= 'Z'), "uppercase signed "
		    "header '%s'", s->signed_headers.data);
		names += *p == ';';
	}
	/* method, path, query, a line per name, blank, names, payload. */
	FUZZ_CHECK(lines == names + 5, "%zu newlines for %zu header names",
	    lines, names);
	for (p = s->signed_headers.data; (q = strchr(p, ';')) != NULL;
	    p = q + 1) {
		const char *r = strchr(q + 1, ';');
		size_t	    la = (size_t)(q - p);
		size_t	    lb = r != NULL ? (size_t)(r - q - 1) : strlen(q + 1);
		int	    c = memcmp(p, q + 1, la < lb ? la : lb);

		FUZZ_CHECK(c < 0 || (c == 0 && la < lb),
		    "signed headers not sorted and distinct: '%s'",
		    s->signed_headers.data);
	}
	buf_reset(&want);
	(void)buf_addf(&want, ";%s;", s->signed_headers.data);
	FUZZ_CHECK(strstr(want.data, ";host;") != NULL, "host not signed");

	(void)svf_line(s->creq.data, 0, &want);
	FUZZ_CHECK(strcmp(want.data, rq->method) == 0, "method line '%s'",
	    want.data);
	(void)svf_line(s->creq.data, (int)lines, &want);
	FUZZ_CHECK(strcmp(want.data, rq->payload_hash) == 0,
	    "payload line '%s'", want.data);
	(void)svf_line(s->creq.data, (int)lines - 1, &want);
	FUZZ_CHECK(strcmp(want.data, s->signed_headers.data) == 0,
	    "signed headers line '%s'", want.data);

	sigv4_sha256_hex(s->creq.data, s->creq.len, hash);
	buf_reset(&want);
	(void)buf_addf(&want, SVF_ALGO "\n%s\n%s\n%s", amz, s->scope, hash);
	FUZZ_CHECK(strcmp(s->sts.data, want.data) == 0, "string to sign");
	buf_reset(&want);
	(void)buf_addf(&want, SVF_ALGO " Credential=%s/%s, SignedHeaders=%s, "
	    "Signature=%s", k->access_key, s->scope, s->signed_headers.data,
	    s->signature);
	FUZZ_CHECK(strcmp(s->authorization.data, want.data) == 0,
	    "authorization '%s'", s->authorization.data);
	buf_release(&want);
}

/* Header names equal after trimming and lowercasing? */
static int
svf_dup_names(const struct sigv4_header *h, size_t n)
{
	size_t	i, j, la, lb;
	const char *a, *b;

	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++) {
			a = h[i].name + strspn(h[i].name, " \t\r\n");
			b = h[j].name + strspn(h[j].name, " \t\r\n");
			la = strlen(a);
			lb = strlen(b);
			while (la > 0 && strchr(" \t\r\n", a[la - 1]))
				la--;
			while (lb > 0 && strchr(" \t\r\n", b[lb - 1]))
				lb--;
			if (la == lb && strncasecmp(a, b, la) == 0)
				return 1;
		}
	return 0;
}

static void
sigv4_one(const uint8_t *data, size_t size)
{
	struct sigv4_header	 h[SVF_MAXHDR], rh[SVF_MAXHDR];
	struct sigv4_request	 rq, rq2;
	struct sigv4_key	 k;
	struct sigv4		 s, s2;
	struct buf		 path, query;
	char			*copy, *f[4 + 2 * SVF_MAXHDR];
	size_t			 nf, i, nh = 0;
	uint64_t		 seed;
	time_t			 now;
	int			 rc, rc2;

	svf_uri((const char *)data, size, 0);
	svf_uri((const char *)data, size, 1);

	if ((copy = malloc(size + 1)) == NULL)
		return;
	memcpy(copy, data, size);
	copy[size] = '\0';
	nf = svf_split(copy, size, f, sizeof(f) / sizeof(f[0]));
	sigv4_init(&s);
	sigv4_init(&s2);
	buf_init(&path, BUF_NOMAX);
	buf_init(&query, BUF_NOMAX);

	seed = fuzz_hash(data, size);
	switch (seed & 7) {
	case 0:		/* anything, mostly out of range */
		now = (time_t)(int64_t)fuzz_rand(&seed);
		break;
	case 1:		/* the edges */
		now = (seed & 8) ? (time_t)SVF_TMAX + ((seed >> 4) & 1) :
		    (time_t)0 - ((seed >> 4) & 1);
		break;
	default:	/* the AWS test suite's time, give or take */
		now = 1440938160 + (time_t)((seed >> 3) % 1000000000);
		break;
	}
	memset(&k, 0, sizeof(k));
	k.access_key = "AKIDEXAMPLE";
	k.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
	k.region = nf > 0 && f[0][0] != '\0' ? f[0] : "us-east-1";
	k.service = "s3";
	memset(&rq, 0, sizeof(rq));
	rq.method = nf > 1 ? f[1] : "GET";
	rq.path = nf > 2 ? f[2] : "/";
	rq.query = nf > 3 ? f[3] : NULL;
	for (i = 4; i < nf && nh < SVF_MAXHDR; i += 2) {
		h[nh].name = f[i];
		h[nh].value = i + 1 < nf ? f[i + 1] : "";
		nh++;
	}
	if (nh == 0 || (seed & 0x100)) {
		/* Most requests carry a host; sometimes it is the only one. */
		if (nh < SVF_MAXHDR) {
			h[nh].name = "Host";
			h[nh].value = "examplebucket.s3.amazonaws.com";
			nh++;
		}
	}
	rq.headers = h;
	rq.nheaders = nh;
	rq.payload_hash = "UNSIGNED-PAYLOAD";

	rc = sigv4_sign(&rq, &k, now, &s);
	FUZZ_CHECK(rc == 0 || rc == -1, "sigv4_sign returned %d", rc);
	if ((int64_t)now < 0 || (int64_t)now > SVF_TMAX)
		FUZZ_CHECK(rc == -1, "signed at %lld", (long long)now);
	if (rc != 0)
		goto paths;
	svf_check(&rq, &k, now, &s);

	/* The same request signs the same. */
	rc2 = sigv4_sign(&rq, &k, now, &s2);
	FUZZ_CHECK(rc2 == 0 && strcmp(s.authorization.data,
	    s2.authorization.data) == 0, "signing twice differs");

	/* Canonical path and query are fixed points. */
	(void)svf_line(s.creq.data, 1, &path);
	(void)svf_line(s.creq.data, 2, &query);
	rq2 = rq;
	rq2.path = path.data;
	rq2.query = query.data;
	rc2 = sigv4_sign(&rq2, &k, now, &s2);
	FUZZ_CHECK(rc2 == 0 && strcmp(s.creq.data, s2.creq.data) == 0,
	    "canonical path '%s' or query '%s' is not canonical", path.data,
	    query.data);

	/* Distinct names: their order does not matter. */
	if (!svf_dup_names(h, nh)) {
		for (i = 0; i < nh; i++)
			rh[i] = h[nh - 1 - i];
		rq2 = rq;
		rq2.headers = rh;
		rc2 = sigv4_sign(&rq2, &k, now, &s2);
		FUZZ_CHECK(rc2 == 0 && strcmp(s.signature, s2.signature) == 0,
		    "header order changed the signature");
	}

paths:
	/* A path encoded by s3_uri_encode is signed as it is. */
	buf_reset(&path);
	if (nf > 2 && buf_addch(&path, '/') == 0 &&
	    s3_uri_encode(&path, f[2], strlen(f[2]), 1) == 0) {
		static const struct sigv4_header host[] = {
			{ "host", "127.0.0.1:7480" },
		};

		memset(&rq2, 0, sizeof(rq2));
		rq2.method = "GET";
		rq2.path = path.data;
		rq2.headers = host;
		rq2.nheaders = 1;
		rq2.payload_hash = "UNSIGNED-PAYLOAD";
		k.region = "us-east-1";
		rc2 = sigv4_sign(&rq2, &k, 1440938160, &s2);
		FUZZ_CHECK(rc2 == 0, "cannot sign the encoded path '%s'",
		    path.data);
		(void)svf_line(s2.creq.data, 1, &query);
		FUZZ_CHECK(strcmp(query.data, path.data) == 0,
		    "encoded path '%s' signed as '%s'", path.data, query.data);
	}

	buf_release(&path);
	buf_release(&query);
	sigv4_release(&s);
	sigv4_release(&s2);
	free(copy);
}

#ifndef FUZZ_REGRESS
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sigv4_one(data, size);
	return 0;
}
#endif
