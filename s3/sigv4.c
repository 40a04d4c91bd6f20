/*
 * sigv4: AWS Signature Version 4, the S3 flavour.
 *
 * sigv4_sign builds each stage into struct sigv4 in turn: the canonical
 * request (method, canonical URI, canonical query, canonical headers, signed
 * header names, payload hash), the string to sign (algorithm, x-amz-date,
 * scope, SHA-256 of the canonical request), the signature (HMAC-SHA256 chain
 * from "AWS4" + secret through date, region, service and "aws4_request") and
 * the Authorization header value. The time is an argument; nothing here
 * reads the clock, allocates outside the caller's struct for longer than the
 * call, or keeps state between calls.
 *
 * S3 differs from the other services in one way that matters here: the path
 * is not normalised (no "." or ".." removal, "//" kept) and is encoded once,
 * so a key such as "a//b/../c" is signed as it is sent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sigv4.h"

/* Bounds every stage: a request whose headers pass this is not ours. */
#define SIGV4_MAX	(1024 * 1024)

#define SIGV4_ALGO	"AWS4-HMAC-SHA256"

/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: what fits "YYYY". */
#define SIGV4_TMIN	(-62167219200LL)
#define SIGV4_TMAX	(253402300799LL)

static const char hexdigits[] = "0123456789abcdef";
static const char hexupper[] = "0123456789ABCDEF";

struct hdr {
	const char	*name;		/* lowercased, in names buffer */
	size_t		 nameoff;
	const char	*value;		/* caller's, not yet trimmed */
	size_t		 idx;		/* input order, for duplicates */
};

struct qparam {
	const char	*name;		/* encoded, in params buffer */
	const char	*value;
	size_t		 nameoff;
	size_t		 valueoff;
};

void
sigv4_init(struct sigv4 *s)
{
	memset(s->amz_date, 0, sizeof(s->amz_date));
	memset(s->scope, 0, sizeof(s->scope));
	memset(s->signature, 0, sizeof(s->signature));
	buf_init(&s->signed_headers, SIGV4_MAX);
	buf_init(&s->creq, SIGV4_MAX);
	buf_init(&s->sts, SIGV4_MAX);
	buf_init(&s->authorization, SIGV4_MAX);
}

void
sigv4_release(struct sigv4 *s)
{
	buf_release(&s->signed_headers);
	buf_release(&s->creq);
	buf_release(&s->sts);
	buf_release(&s->authorization);
	sigv4_init(s);
}

static void
hex_encode(const unsigned char *p, size_t n, char *dst)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		dst[2 * i] = hexdigits[p[i] >> 4];
		dst[2 * i + 1] = hexdigits[p[i] & 0x0f];
	}
	dst[2 * n] = '\0';
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	    c == '~';
}

/* RFC 9110 token characters, for methods and header names. */
static int
is_tchar(unsigned char c)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
is_lws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int
s3_uri_encode(struct buf *out, const char *s, size_t len, int keep_slash)
{
	size_t		 i, start = out->len;
	unsigned char	 c;
	char		 esc[3];

	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (is_unreserved(c) || (keep_slash && c == '/')) {
			if (buf_addch(out, (char)c) != 0)
				goto fail;
			continue;
		}
		esc[0] = '%';
		esc[1] = hexupper[c >> 4];
		esc[2] = hexupper[c & 0x0f];
		if (buf_add(out, esc, sizeof(esc)) != 0)
			goto fail;
	}
	return 0;

fail:
	/* Leave the buffer as it was, as every buf function does. */
	buf_truncate(out, start);
	return -1;
}

int
s3_uri_decode(struct buf *out, const char *s, size_t len)
{
	size_t	i, start = out->len;
	int	hi, lo;

	for (i = 0; i < len; i++) {
		if (s[i] != '%') {
			if (buf_addch(out, s[i]) != 0)
				goto fail;
			continue;
		}
		if (len - i < 3)
			goto fail;
		if ((hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
			goto fail;
		if (buf_addch(out, (char)(hi << 4 | lo)) != 0)
			goto fail;
		i += 2;
	}
	return 0;

fail:
	buf_truncate(out, start);
	return -1;
}

void
sigv4_sha256_hex(const void *data, size_t len, char dst[65])
{
	unsigned char	md[EVP_MAX_MD_SIZE];
	unsigned int	mdlen = 0;

	/* A libcrypto failure leaves "", which matches no hash. */
	dst[0] = '\0';
	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != 32)
		return;
	hex_encode(md, mdlen, dst);
}

void
sigv4_md5_base64(const void *data, size_t len, char dst[25])
{
	unsigned char	md[EVP_MAX_MD_SIZE];
	unsigned int	mdlen = 0;

	dst[0] = '\0';
	if (EVP_Digest(data, len, md, &mdlen, EVP_md5(), NULL) != 1 ||
	    mdlen != 16)
		return;
	/* 16 bytes give 24 characters and the NUL. */
	EVP_EncodeBlock((unsigned char *)dst, md, (int)mdlen);
}

/*
 * Civil date from days since 1970-01-01 in the proleptic Gregorian
 * calendar, counting in 400-year eras so no table or loop is needed.
 */
static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t	era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static void
put_digits(char *dst, int64_t v, int n)
{
	while (n-- > 0) {
		dst[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

void
sigv4_amz_date(time_t t, char dst[17])
{
	int64_t	tt = (int64_t)t, days, secs, y;
	int	m, d;

	/* Clamp to what four year digits can say. */
	if (tt < SIGV4_TMIN)
		tt = SIGV4_TMIN;
	if (tt > SIGV4_TMAX)
		tt = SIGV4_TMAX;
	days = tt / 86400;
	secs = tt % 86400;
	if (secs < 0) {
		secs += 86400;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	put_digits(dst, y, 4);
	put_digits(dst + 4, m, 2);
	put_digits(dst + 6, d, 2);
	dst[8] = 'T';
	put_digits(dst + 9, secs / 3600, 2);
	put_digits(dst + 11, secs / 60 % 60, 2);
	put_digits(dst + 13, secs % 60, 2);
	dst[15] = 'Z';
	dst[16] = '\0';
}

/* The path as S3 signs it: decoded once, encoded once, never normalised. */
static int
canonical_uri(struct buf *out, const char *path)
{
	struct buf	dec;
	int		rc = -1;

	buf_init(&dec, SIGV4_MAX);
	if (path == NULL || *path == '\0') {
		rc = buf_addch(out, '/');
		goto out;
	}
	if (*path != '/')
		goto out;
	if (s3_uri_decode(&dec, path, strlen(path)) != 0)
		goto out;
	if (s3_uri_encode(out, dec.data, dec.len, 1) != 0)
		goto out;
	rc = 0;
out:
	buf_release(&dec);
	return rc;
}

/* Decode s[0..len) and append it encoded again, then a NUL. */
static int
reencode(struct buf *out, struct buf *tmp, const char *s, size_t len)
{
	buf_reset(tmp);
	if (s3_uri_decode(tmp, s, len) != 0)
		return -1;
	if (s3_uri_encode(out, tmp->data, tmp->len, 0) != 0)
		return -1;
	return buf_addch(out, '\0');
}

static int
qparam_cmp(const void *a, const void *b)
{
	const struct qparam	*pa = a, *pb = b;
	int			 c;

	if ((c = strcmp(pa->name, pb->name)) != 0)
		return c;
	return strcmp(pa->value, pb->value);
}

static int
canonical_query(struct buf *out, const char *query)
{
	struct buf	 store, tmp;
	struct qparam	*params = NULL;
	size_t		 n = 0, i, len;
	const char	*p, *amp, *eq, *end;
	int		 rc = -1;

	buf_init(&store, SIGV4_MAX);
	buf_init(&tmp, SIGV4_MAX);
	if (query == NULL || *query == '\0') {
		rc = 0;
		goto out;
	}

	/* Each '&' ends a parameter, so there are at most that many + 1. */
	for (n = 1, p = query; *p != '\0'; p++)
		if (*p == '&')
			n++;
	if ((params = calloc(n, sizeof(*params))) == NULL)
		goto out;

	n = 0;
	for (p = query; ; p = amp + 1) {
		if ((amp = strchr(p, '&')) == NULL)
			amp = p + strlen(p);
		len = (size_t)(amp - p);
		/* "a&&b" and a trailing '&' name nothing: skip them. */
		if (len != 0) {
			end = p + len;
			if ((eq = memchr(p, '=', len)) == NULL)
				eq = end;
			params[n].nameoff = store.len;
			if (reencode(&store, &tmp, p, (size_t)(eq - p)) != 0)
				goto out;
			params[n].valueoff = store.len;
			if (eq == end) {
				if (buf_addch(&store, '\0') != 0)
					goto out;
			} else if (reencode(&store, &tmp, eq + 1,
			    (size_t)(end - eq - 1)) != 0)
				goto out;
			n++;
		}
		if (*amp == '\0')
			break;
	}

	/* The store is final now: offsets can become pointers. */
	for (i = 0; i < n; i++) {
		params[i].name = store.data + params[i].nameoff;
		params[i].value = store.data + params[i].valueoff;
	}
	qsort(params, n, sizeof(*params), qparam_cmp);
	for (i = 0; i < n; i++) {
		if (buf_addf(out, "%s%s=%s", i == 0 ? "" : "&",
		    params[i].name, params[i].value) != 0)
			goto out;
	}
	rc = 0;
out:
	free(params);
	buf_release(&store);
	buf_release(&tmp);
	return rc;
}

static int
hdr_cmp(const void *a, const void *b)
{
	const struct hdr	*ha = a, *hb = b;
	int			 c;

	if ((c = strcmp(ha->name, hb->name)) != 0)
		return c;
	return ha->idx < hb->idx ? -1 : ha->idx > hb->idx;
}

/* Append v trimmed, each inner run of whitespace (folds too) as one space. */
static int
add_value(struct buf *out, const char *v)
{
	const char	*p = v;
	int		 space = 0;

	while (is_lws(*p))
		p++;
	for (; *p != '\0'; p++) {
		if (is_lws(*p)) {
			space = 1;
			continue;
		}
		/* Other control bytes have no place in a header. */
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return -1;
		if (space && buf_addch(out, ' ') != 0)
			return -1;
		space = 0;
		if (buf_addch(out, *p) != 0)
			return -1;
	}
	return 0;
}

/* S3 needs host signed; a request without it is malformed. */
static int
find_host(const struct hdr *h, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (strcmp(h[i].name, "host") == 0)
			return 0;
	return -1;
}

/* Canonical header lines into creq, their names into signed_headers. */
static int
canonical_headers(struct buf *creq, struct buf *signed_headers,
    const struct sigv4_header *headers, size_t nheaders)
{
	struct buf	 names;
	struct hdr	*h = NULL;
	const char	*s, *e;
	size_t		 i;
	int		 rc = -1;

	buf_init(&names, SIGV4_MAX);
	if (nheaders == 0 || headers == NULL)
		goto out;	/* host is always signed */
	if ((h = calloc(nheaders, sizeof(*h))) == NULL)
		goto out;

	for (i = 0; i < nheaders; i++) {
		if (headers[i].name == NULL || headers[i].value == NULL)
			goto out;
		s = headers[i].name;
		while (is_lws(*s))
			s++;
		e = s + strlen(s);
		while (e > s && is_lws(e[-1]))
			e--;
		if (e == s)
			goto out;
		h[i].nameoff = names.len;
		for (; s < e; s++) {
			if (!is_tchar((unsigned char)*s))
				goto out;
			if (buf_addch(&names, (char)(*s >= 'A' && *s <= 'Z' ?
			    *s - 'A' + 'a' : *s)) != 0)
				goto out;
		}
		if (buf_addch(&names, '\0') != 0)
			goto out;
		h[i].value = headers[i].value;
		h[i].idx = i;
	}
	for (i = 0; i < nheaders; i++)
		h[i].name = names.data + h[i].nameoff;
	qsort(h, nheaders, sizeof(*h), hdr_cmp);
	if (find_host(h, nheaders) != 0)
		goto out;

	for (i = 0; i < nheaders; i++) {
		if (i > 0 && strcmp(h[i].name, h[i - 1].name) == 0) {
			/* A repeated name: its values join the same line. */
			if (buf_addch(creq, ',') != 0)
				goto out;
		} else {
			if (i > 0 && (buf_addch(creq, '\n') != 0 ||
			    buf_addch(signed_headers, ';') != 0))
				goto out;
			if (buf_addstr(creq, h[i].name) != 0 ||
			    buf_addch(creq, ':') != 0 ||
			    buf_addstr(signed_headers, h[i].name) != 0)
				goto out;
		}
		if (add_value(creq, h[i].value) != 0)
			goto out;
	}
	if (buf_addch(creq, '\n') != 0)
		goto out;
	rc = 0;
out:
	free(h);
	buf_release(&names);
	return rc;
}

static int
hmac(const void *key, size_t keylen, const void *msg, size_t msglen,
    unsigned char out[32])
{
	unsigned int	len = 0;

	if (HMAC(EVP_sha256(), key, (int)keylen, msg, msglen, out,
	    &len) == NULL || len != 32)
		return -1;
	return 0;
}

static int
valid_method(const char *m)
{
	if (m == NULL || *m == '\0')
		return 0;
	for (; *m != '\0'; m++)
		if (!is_tchar((unsigned char)*m))
			return 0;
	return 1;
}

int
sigv4_sign(const struct sigv4_request *req, const struct sigv4_key *key,
    time_t now, struct sigv4 *s)
{
	struct buf	 ksecret;
	unsigned char	 ka[32], kb[32], sig[32];
	char		 day[9], hash[65];
	int		 n, rc = -1;

	buf_init(&ksecret, SIGV4_MAX);
	buf_reset(&s->signed_headers);
	buf_reset(&s->creq);
	buf_reset(&s->sts);
	buf_reset(&s->authorization);
	s->amz_date[0] = s->scope[0] = s->signature[0] = '\0';

	if (req == NULL || key == NULL || !valid_method(req->method) ||
	    req->payload_hash == NULL || *req->payload_hash == '\0' ||
	    key->access_key == NULL || *key->access_key == '\0' ||
	    key->secret_key == NULL || key->region == NULL ||
	    *key->region == '\0' || key->service == NULL ||
	    *key->service == '\0')
		goto out;
	if ((int64_t)now < 0 || (int64_t)now > SIGV4_TMAX)
		goto out;

	sigv4_amz_date(now, s->amz_date);
	memcpy(day, s->amz_date, 8);
	day[8] = '\0';
	n = snprintf(s->scope, sizeof(s->scope), "%s/%s/%s/aws4_request",
	    day, key->region, key->service);
	if (n < 0 || (size_t)n >= sizeof(s->scope))
		goto out;

	/* Stage 1: the canonical request. */
	if (buf_addstr(&s->creq, req->method) != 0 ||
	    buf_addch(&s->creq, '\n') != 0 ||
	    canonical_uri(&s->creq, req->path) != 0 ||
	    buf_addch(&s->creq, '\n') != 0 ||
	    canonical_query(&s->creq, req->query) != 0 ||
	    buf_addch(&s->creq, '\n') != 0 ||
	    canonical_headers(&s->creq, &s->signed_headers, req->headers,
	    req->nheaders) != 0 ||
	    buf_addch(&s->creq, '\n') != 0 ||
	    buf_add(&s->creq, s->signed_headers.data,
	    s->signed_headers.len) != 0 ||
	    buf_addch(&s->creq, '\n') != 0 ||
	    buf_addstr(&s->creq, req->payload_hash) != 0)
		goto out;

	/* Stage 2: the string to sign. */
	sigv4_sha256_hex(s->creq.data, s->creq.len, hash);
	if (hash[0] == '\0')
		goto out;
	if (buf_addf(&s->sts, SIGV4_ALGO "\n%s\n%s\n%s", s->amz_date,
	    s->scope, hash) != 0)
		goto out;

	/* Stage 3: the signing key, then the signature. */
	if (buf_addstr(&ksecret, "AWS4") != 0 ||
	    buf_addstr(&ksecret, key->secret_key) != 0)
		goto out;
	if (hmac(ksecret.data, ksecret.len, day, 8, ka) != 0 ||
	    hmac(ka, sizeof(ka), key->region, strlen(key->region), kb) != 0 ||
	    hmac(kb, sizeof(kb), key->service, strlen(key->service), ka) != 0 ||
	    hmac(ka, sizeof(ka), "aws4_request", 12, kb) != 0 ||
	    hmac(kb, sizeof(kb), s->sts.data, s->sts.len, sig) != 0)
		goto out;
	hex_encode(sig, sizeof(sig), s->signature);

	/* Stage 4: the header value. */
	if (buf_addf(&s->authorization,
	    SIGV4_ALGO " Credential=%s/%s, SignedHeaders=%s, Signature=%s",
	    key->access_key, s->scope, s->signed_headers.data,
	    s->signature) != 0)
		goto out;
	rc = 0;
out:
	/* The secret and the keys derived from it do not outlive the call. */
	OPENSSL_cleanse(ksecret.data, ksecret.len);
	OPENSSL_cleanse(ka, sizeof(ka));
	OPENSSL_cleanse(kb, sizeof(kb));
	buf_release(&ksecret);
	return rc;
}
