/*
 * listxml: a ListObjectsV2 page parsed with libxml2's SAX2 push parser.
 *
 * The parser keeps one entry (the <Contents> or <CommonPrefixes> being read)
 * and the page-level fields, never the page. Text is collected per field into
 * one bounded buffer, because libxml2 may split an element's text over many
 * characters() calls and a chunk boundary may fall anywhere.
 *
 * Hostile bodies: the SAX handler has no DTD, entity or network support, a
 * DOCTYPE stops the parser at once (so billion-laughs and XXE bodies are
 * refused before their internal subset is read), and any entity reference
 * but the five predefined ones is refused. Every text field has a bound.
 *
 * <EncodingType>url</EncodingType> must come before the first entry: S3 and
 * RGW write it near the top of the page, and an entry cannot be decoded
 * before we know how it was encoded.
 *
 * How keys are encoded with encoding-type=url (checked in Ceph's
 * src/rgw/rgw_common.cc url_encode and in AWS measurements reported in
 * brekkylab/backlot#178): AWS writes a space as '+' and a '+' as "%2B", as a
 * form encoder does (botocore decodes with unquote_plus); RGW writes a space
 * as "%20" and a '+' as "%2B", and never a bare '+'. So a bare '+' always
 * means a space and decoding '+' to ' ' before the %XX escapes is right for
 * both.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "listxml.h"
#include "s3.h"
#include "sigv4.h"
#include "xml.h"

#define LX_KEY_MAX	4096	/* a key as sent, before URL-decoding */
#define LX_TOKEN_MAX	4096
#define LX_ETAG_MAX	256
#define LX_SMALL_MAX	64	/* Size, LastModified, IsTruncated, ... */
#define LX_CHUNK_MAX	(1 << 20)	/* xmlParseChunk takes an int */

enum lx_field {
	F_NONE,
	F_KEY,
	F_SIZE,
	F_ETAG,
	F_MTIME,
	F_PREFIX,
	F_TRUNC,
	F_TOKEN,
	F_ENCTYPE,
	F_KEYCOUNT,
};

static const struct {
	const char	*name;
	size_t		 max;
} lx_fields[] = {
	[F_NONE] =	{ "", 0 },
	[F_KEY] =	{ "Key", LX_KEY_MAX },
	[F_SIZE] =	{ "Size", LX_SMALL_MAX },
	[F_ETAG] =	{ "ETag", LX_ETAG_MAX },
	[F_MTIME] =	{ "LastModified", LX_SMALL_MAX },
	[F_PREFIX] =	{ "Prefix", LX_KEY_MAX },
	[F_TRUNC] =	{ "IsTruncated", LX_SMALL_MAX },
	[F_TOKEN] =	{ "NextContinuationToken", LX_TOKEN_MAX },
	[F_ENCTYPE] =	{ "EncodingType", LX_SMALL_MAX },
	[F_KEYCOUNT] =	{ "KeyCount", LX_SMALL_MAX },
};

enum lx_entry {
	E_NONE,
	E_CONTENTS,
	E_PREFIXES,
};

struct listxml {
	struct s3_xml		 x;		/* first: see xml.h */
	s3_object_cb		 ocb;
	s3_prefix_cb		 pcb;
	void			*arg;

	enum s3_status		 status;
	char			 msg[160];

	int			 depth;		/* of the element we are in */
	int			 skip;		/* >0: ignoring below this depth */
	int			 root_done;
	int			 finished;
	int			 fed;		/* any byte at all */
	enum lx_field		 field;		/* text being collected */
	struct buf		 text;

	/* The entry being read. */
	enum lx_entry		 entry;
	unsigned		 seen;		/* 1 << field for each field met */
	struct buf		 key;		/* decoded Key or Prefix */
	struct buf		 etag;
	uint64_t		 size;
	int64_t			 mtime_ms;

	/* The page. */
	unsigned		 page_seen;	/* 1 << field, page level */
	int			 url;
	int			 entries;
	int			 is_truncated;
	int			 server_key_count;
	struct buf		 token;
};

_Static_assert(offsetof(struct listxml, x) == 0, "see xml.h");

static void
lx_fail(struct listxml *lx, enum s3_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
lx_fail(struct listxml *lx, enum s3_status st, const char *fmt, ...)
{
	va_list	 ap;

	if (lx->status != S3_OK)
		return;
	lx->status = st;
	va_start(ap, fmt);
	/* A message cut short is still a message. */
	(void)vsnprintf(lx->msg, sizeof(lx->msg), fmt, ap);
	va_end(ap);
	s3_xml_stop(&lx->x);
}

static void
lx_copy_msg(const struct listxml *lx, char *msg, size_t msglen)
{
	if (msg == NULL || msglen == 0)
		return;
	/* Truncation only shortens a human-readable reason. */
	(void)snprintf(msg, msglen, "%s", lx->status == S3_OK ? "" : lx->msg);
}

/* "url" decoding as S3 and RGW do it; see the comment at the top. */
static int
lx_decode(struct listxml *lx, struct buf *out, struct buf *raw)
{
	size_t	 i;

	buf_reset(out);
	if (!lx->url) {
		if (buf_add(out, raw->data, raw->len) != 0) {
			lx_fail(lx, S3_ENOMEM, "out of memory");
			return -1;
		}
	} else {
		for (i = 0; i < raw->len; i++) {
			if (raw->data[i] == '+')
				raw->data[i] = ' ';
			else if (raw->data[i] == '%' && (i + 2 >= raw->len ||
			    !isxdigit((unsigned char)raw->data[i + 1]) ||
			    !isxdigit((unsigned char)raw->data[i + 2]))) {
				lx_fail(lx, S3_EXML, "bad %%-escape in <%s>",
				    lx_fields[lx->field].name);
				return -1;
			}
		}
		/* Escapes were checked, so a failure here is memory. */
		if (s3_uri_decode(out, raw->data, raw->len) != 0) {
			lx_fail(lx, S3_ENOMEM, "out of memory");
			return -1;
		}
	}
	if (out->len == 0 || memchr(out->data, '\0', out->len) != NULL) {
		lx_fail(lx, S3_EXML, "empty <%s> or one holding a NUL",
		    lx_fields[lx->field].name);
		return -1;
	}
	return 0;
}

/* Decimal digits only: no sign, no space, no overflow. */
static int
lx_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long	 v;
	char			*end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

/* The end tag of a field: check and keep its text. */
static void
lx_end_field(struct listxml *lx)
{
	struct buf	*t = &lx->text;
	uint64_t	 v;
	const char	*name = lx_fields[lx->field].name;

	switch (lx->field) {
	case F_KEY:
	case F_PREFIX:
		(void)lx_decode(lx, &lx->key, t);
		break;
	case F_SIZE:
		if (lx_parse_u64(t->data, UINT64_MAX, &lx->size) != 0)
			lx_fail(lx, S3_EXML, "bad <Size>");
		break;
	case F_ETAG:
		buf_reset(&lx->etag);
		if (t->len >= 2 && t->data[0] == '"' &&
		    t->data[t->len - 1] == '"') {
			if (buf_add(&lx->etag, t->data + 1, t->len - 2) != 0)
				lx_fail(lx, S3_ENOMEM, "out of memory");
		} else if (buf_add(&lx->etag, t->data, t->len) != 0)
			lx_fail(lx, S3_ENOMEM, "out of memory");
		break;
	case F_MTIME:
		if (s3_parse_time(t->data, &lx->mtime_ms) != 0)
			lx_fail(lx, S3_EXML, "bad <LastModified>");
		break;
	case F_TRUNC:
		if (strcmp(t->data, "true") == 0)
			lx->is_truncated = 1;
		else if (strcmp(t->data, "false") == 0)
			lx->is_truncated = 0;
		else
			lx_fail(lx, S3_EXML, "bad <IsTruncated>");
		break;
	case F_TOKEN:
		buf_reset(&lx->token);
		if (buf_add(&lx->token, t->data, t->len) != 0)
			lx_fail(lx, S3_ENOMEM, "out of memory");
		break;
	case F_ENCTYPE:
		if (lx->entries > 0)
			lx_fail(lx, S3_EXML, "<EncodingType> after entries");
		else if (strcmp(t->data, "url") == 0)
			lx->url = 1;
		else
			lx_fail(lx, S3_EXML, "unknown <EncodingType>");
		break;
	case F_KEYCOUNT:
		if (lx_parse_u64(t->data, INT_MAX, &v) != 0)
			lx_fail(lx, S3_EXML, "bad <%s>", name);
		else
			lx->server_key_count = (int)v;
		break;
	case F_NONE:
		break;
	}
	lx->field = F_NONE;
}

static void
lx_end_entry(struct listxml *lx)
{
	struct s3_object	 obj;
	unsigned		 want;
	int			 rc = 0;

	if (lx->entry == E_CONTENTS) {
		want = 1u << F_KEY | 1u << F_SIZE | 1u << F_ETAG |
		    1u << F_MTIME;
		if ((lx->seen & want) != want) {
			lx_fail(lx, S3_EXML, "<Contents> without Key, Size, "
			    "ETag or LastModified");
			return;
		}
		lx->entries++;
		if (lx->ocb != NULL) {
			obj.key = lx->key.data;
			obj.size = lx->size;
			obj.etag = lx->etag.data;
			obj.mtime_ms = lx->mtime_ms;
			rc = lx->ocb(lx->arg, &obj);
		}
	} else {
		if ((lx->seen & 1u << F_PREFIX) == 0) {
			lx_fail(lx, S3_EXML, "<CommonPrefixes> without Prefix");
			return;
		}
		lx->entries++;
		if (lx->pcb != NULL)
			rc = lx->pcb(lx->arg, lx->key.data);
	}
	if (rc != 0)
		lx_fail(lx, S3_ECANCELLED, "a callback stopped the listing");
	lx->entry = E_NONE;
}

static enum lx_field
lx_lookup(const char *name, const enum lx_field *set, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (strcmp(name, lx_fields[set[i]].name) == 0)
			return set[i];
	return F_NONE;
}

static void
lx_start(void *ctx, const xmlChar *localname, const xmlChar *prefix,
    const xmlChar *uri, int nns, const xmlChar **nss, int nattr, int ndef,
    const xmlChar **attrs)
{
	static const enum lx_field	 page[] = { F_TRUNC, F_TOKEN,
					    F_ENCTYPE, F_KEYCOUNT };
	static const enum lx_field	 contents[] = { F_KEY, F_SIZE, F_ETAG,
					    F_MTIME };
	static const enum lx_field	 prefixes[] = { F_PREFIX };
	struct listxml			*lx = ctx;
	const char			*name = (const char *)localname;
	enum lx_field			 f = F_NONE;
	unsigned			*seen = NULL;

	(void)prefix; (void)uri; (void)nns; (void)nss; (void)nattr;
	(void)ndef; (void)attrs;
	if (lx->status != S3_OK)
		return;
	lx->depth++;
	if (lx->skip > 0)
		return;
	if (lx->field != F_NONE) {
		lx_fail(lx, S3_EXML, "element inside <%s>",
		    lx_fields[lx->field].name);
		return;
	}
	switch (lx->depth) {
	case 1:
		if (lx->root_done || strcmp(name, "ListBucketResult") != 0)
			lx_fail(lx, S3_EXML, "not a ListBucketResult");
		return;
	case 2:
		if (strcmp(name, "Contents") == 0 ||
		    strcmp(name, "CommonPrefixes") == 0) {
			lx->entry = strcmp(name, "Contents") == 0 ?
			    E_CONTENTS : E_PREFIXES;
			lx->seen = 0;
			return;
		}
		f = lx_lookup(name, page, sizeof(page) / sizeof(page[0]));
		seen = &lx->page_seen;
		break;
	case 3:
		if (lx->entry == E_CONTENTS)
			f = lx_lookup(name, contents,
			    sizeof(contents) / sizeof(contents[0]));
		else if (lx->entry == E_PREFIXES)
			f = lx_lookup(name, prefixes, 1);
		seen = &lx->seen;
		break;
	default:
		break;
	}
	if (f == F_NONE || seen == NULL) {
		/* <Owner>, <StorageClass>, <Type> and the like. */
		lx->skip = lx->depth;
		return;
	}
	if (*seen & 1u << f) {
		lx_fail(lx, S3_EXML, "<%s> twice", lx_fields[f].name);
		return;
	}
	*seen |= 1u << f;
	lx->field = f;
	buf_reset(&lx->text);
	lx->text.max = lx_fields[f].max;
}

static void
lx_end(void *ctx, const xmlChar *localname, const xmlChar *prefix,
    const xmlChar *uri)
{
	struct listxml	*lx = ctx;

	(void)localname; (void)prefix; (void)uri;
	if (lx->status != S3_OK)
		return;
	if (lx->skip == lx->depth)
		lx->skip = 0;
	else if (lx->skip == 0) {
		if (lx->field != F_NONE)
			lx_end_field(lx);
		else if (lx->depth == 2 && lx->entry != E_NONE)
			lx_end_entry(lx);
		else if (lx->depth == 1)
			lx->root_done = 1;
	}
	lx->depth--;
}

static void
lx_chars(void *ctx, const xmlChar *s, int len)
{
	struct listxml	*lx = ctx;

	if (lx->status != S3_OK || lx->field == F_NONE || len <= 0)
		return;
	if ((size_t)len > lx->text.max - lx->text.len) {
		lx_fail(lx, S3_EXML, "<%s> longer than %zu bytes",
		    lx_fields[lx->field].name, lx->text.max);
		return;
	}
	if (buf_add(&lx->text, s, (size_t)len) != 0)
		lx_fail(lx, S3_ENOMEM, "out of memory");
}

static void
lx_xml_fail(void *state, const char *why)
{
	lx_fail(state, S3_EXML, "%s", why);
}

struct listxml *
listxml_new(s3_object_cb ocb, s3_prefix_cb pcb, void *arg)
{
	struct listxml	*lx;

	if ((lx = calloc(1, sizeof(*lx))) == NULL)
		return NULL;
	lx->ocb = ocb;
	lx->pcb = pcb;
	lx->arg = arg;
	lx->server_key_count = -1;
	buf_init(&lx->text, LX_KEY_MAX);
	buf_init(&lx->key, LX_KEY_MAX);
	buf_init(&lx->etag, LX_ETAG_MAX);
	buf_init(&lx->token, LX_TOKEN_MAX);

	if (s3_xml_open(&lx->x, lx_start, lx_end, lx_chars,
	    lx_xml_fail) != 0) {
		listxml_free(lx);
		return NULL;
	}
	return lx;
}

void
listxml_free(struct listxml *lx)
{
	if (lx == NULL)
		return;
	s3_xml_close(&lx->x);
	buf_release(&lx->text);
	buf_release(&lx->key);
	buf_release(&lx->etag);
	buf_release(&lx->token);
	free(lx);
}

enum s3_status
listxml_feed(struct listxml *lx, const char *chunk, size_t len, char *msg,
    size_t msglen)
{
	size_t	 n;
	int	 rc;

	if (lx->status == S3_OK && lx->finished)
		lx_fail(lx, S3_EXML, "data after the end of the document");
	if (len > 0)
		lx->fed = 1;
	while (lx->status == S3_OK && len > 0) {
		n = len < LX_CHUNK_MAX ? len : LX_CHUNK_MAX;
		rc = xmlParseChunk(lx->x.ctxt, chunk, (int)n, 0);
		if (rc != 0)
			lx_fail(lx, S3_EXML, "malformed XML (libxml2 error %d)",
			    rc);
		chunk += n;
		len -= n;
	}
	lx_copy_msg(lx, msg, msglen);
	return lx->status;
}

enum s3_status
listxml_finish(struct listxml *lx, struct listxml_result *res, char *msg,
    size_t msglen)
{
	int	 rc;

	if (lx->status == S3_OK && !lx->finished) {
		lx->finished = 1;
		if (!lx->fed)
			lx_fail(lx, S3_EXML, "an empty body");
		rc = lx->fed ? xmlParseChunk(lx->x.ctxt, NULL, 0, 1) : 0;
		if (rc != 0 || !lx->x.ctxt->wellFormed)
			lx_fail(lx, S3_EXML, "malformed XML (libxml2 error %d)",
			    rc);
		else if (!lx->root_done)
			lx_fail(lx, S3_EXML, "the document ended early");
		else if ((lx->page_seen & 1u << F_TRUNC) == 0)
			lx_fail(lx, S3_EXML, "no <IsTruncated>");
	}
	if (lx->status == S3_OK && res != NULL) {
		res->is_truncated = lx->is_truncated;
		/* RGW sends an empty token on a last page: same as none. */
		res->next_token = lx->token.len > 0 ? lx->token.data : NULL;
		res->key_count = lx->entries;
		res->server_key_count = lx->server_key_count;
	}
	lx_copy_msg(lx, msg, msglen);
	return lx->status;
}

static int
lx_digits(const char *s, int n, int *out)
{
	int	 i, v = 0;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t	 era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int
s3_parse_time(const char *s, int64_t *ms)
{
	static const int	 mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31,
				    30, 31, 30, 31 };
	int			 y, mo, d, h, mi, sec, frac = 0, i, dim;
	size_t			 len = strlen(s);

	/* YYYY-MM-DDTHH:MM:SS is 19 bytes, then [.f{1,9}] and Z. */
	if (len < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
	    s[13] != ':' || s[16] != ':')
		return -1;
	if (lx_digits(s, 4, &y) != 0 || lx_digits(s + 5, 2, &mo) != 0 ||
	    lx_digits(s + 8, 2, &d) != 0 || lx_digits(s + 11, 2, &h) != 0 ||
	    lx_digits(s + 14, 2, &mi) != 0 || lx_digits(s + 17, 2, &sec) != 0)
		return -1;
	s += 19;
	if (*s == '.') {
		s++;
		for (i = 0; s[i] >= '0' && s[i] <= '9'; i++)
			if (i < 3)
				frac = frac * 10 + (s[i] - '0');
		if (i == 0 || i > 9)
			return -1;
		for (; i < 3; i++)
			frac *= 10;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	if (s[0] != 'Z' || s[1] != '\0')
		return -1;
	if (mo < 1 || mo > 12 || h > 23 || mi > 59 || sec > 59)
		return -1;
	dim = mdays[mo - 1];
	if (mo == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
		dim = 29;
	if (d < 1 || d > dim)
		return -1;
	*ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + sec;
	*ms = *ms * 1000 + frac;
	return 0;
}
