/*
 * credparse: the answers of the credentials endpoints, parsed strictly.
 *
 * A container endpoint and instance metadata answer with one flat JSON
 * object, read here by a small parser of our own: strings (escapes
 * decoded, surrogate pairs joined, no raw control byte, no NUL), numbers,
 * true, false and null; no nesting, nothing after the object, a known
 * field at most once. STS answers with XML, read through the one hardened
 * libxml2 setup (xml.c): the fields are taken only at their place in
 * <AssumeRoleWithWebIdentityResponse> (or <Code> in <ErrorResponse>).
 *
 * Every field has a bound, and every buffer that may hold a secret is
 * allocated whole at once and wiped before it is freed. A reason for a
 * refusal never quotes the answer; a reason (or an error Code) cut to the
 * caller's buffer is still one, so those snprintf calls accept truncation.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credsrc.h"
#include "listxml.h"
#include "xml.h"

#define JSON_KEY_MAX	256

/* All the memory at once, so no realloc leaves a copy behind. */
int
credsrc_sbuf_open(struct buf *b, size_t max)
{
	buf_init(b, max);
	return buf_grow(b, max);
}

void
credsrc_sbuf_close(struct buf *b)
{
	if (b->cap > 0)
		explicit_bzero(b->data, b->cap);
	buf_release(b);
}

/* ---- the credentials in an answer --------------------------------------- */

enum { CF_ACCESS, CF_SECRET, CF_TOKEN, CF_EXPIRATION, CF_CODE, CF_N };

static const size_t cf_max[CF_N] = { 256, 1024, CREDSRC_TOKEN_MAX, 64, 64 };

struct fields {
	struct buf	 v[CF_N];
	unsigned	 seen;		/* 1 << CF_x */
};

static int
fields_open(struct fields *f)
{
	int	 i, rc = 0;

	f->seen = 0;
	for (i = 0; i < CF_N; i++)
		if (credsrc_sbuf_open(&f->v[i], cf_max[i]) != 0)
			rc = -1;
	return rc;
}

static void
fields_close(struct fields *f)
{
	int	 i;

	for (i = 0; i < CF_N; i++)
		credsrc_sbuf_close(&f->v[i]);
}

/* The fields into c: access key, secret and expiry required. */
static enum s3_status
fields_creds(const struct fields *f, struct s3_creds *c, char *why,
    size_t whylen, enum s3_status bad)
{
	int64_t	 ms;

	if (!(f->seen & 1u << CF_ACCESS) || !(f->seen & 1u << CF_SECRET) ||
	    f->v[CF_ACCESS].len == 0 || f->v[CF_SECRET].len == 0) {
		(void)snprintf(why, whylen, "no access key or secret");
		return bad;
	}
	if (!(f->seen & 1u << CF_EXPIRATION)) {
		(void)snprintf(why, whylen, "no expiry");
		return bad;
	}
	if (s3_parse_time(f->v[CF_EXPIRATION].data, &ms) != 0 || ms <= 0) {
		(void)snprintf(why, whylen, "a malformed expiry");
		return bad;
	}
	memset(c, 0, sizeof(*c));
	c->expires = (time_t)(ms / 1000);
	c->access_key = strdup(f->v[CF_ACCESS].data);
	c->secret_key = strdup(f->v[CF_SECRET].data);
	if (f->v[CF_TOKEN].len > 0)
		c->session_token = strdup(f->v[CF_TOKEN].data);
	if (c->access_key == NULL || c->secret_key == NULL ||
	    (f->v[CF_TOKEN].len > 0 && c->session_token == NULL)) {
		s3_creds_release(c);
		(void)snprintf(why, whylen, "out of memory");
		return S3_ENOMEM;
	}
	return S3_OK;
}

/* ---- JSON: one flat object ---------------------------------------------- */

static const char *const json_names[CF_N] = {
	"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "Code",
};

struct jp {
	const char	*p;
	const char	*end;
};

static void
jp_ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' ||
	    *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int
jp_hex4(struct jp *j, unsigned *v)
{
	int	 i, c;

	if (j->end - j->p < 4)
		return -1;
	*v = 0;
	for (i = 0; i < 4; i++) {
		c = (unsigned char)*j->p++;
		if (c >= '0' && c <= '9')
			c -= '0';
		else if (c >= 'a' && c <= 'f')
			c -= 'a' - 10;
		else if (c >= 'A' && c <= 'F')
			c -= 'A' - 10;
		else
			return -1;
		*v = *v << 4 | (unsigned)c;
	}
	return 0;
}

static int
utf8_add(struct buf *out, unsigned cp)
{
	char	 u[4];
	size_t	 n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		u[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return buf_add(out, u, n);
}

/*
 * A string, decoded into out (which bounds it). No raw control character,
 * no NUL, no lone surrogate. -1 when malformed or too long.
 */
static int
jp_string(struct jp *j, struct buf *out)
{
	unsigned	 cp, lo;
	int		 c;

	if (j->p >= j->end || *j->p != '"')
		return -1;
	j->p++;
	for (;;) {
		if (j->p >= j->end)
			return -1;
		c = (unsigned char)*j->p++;
		if (c == '"')
			return 0;
		if (c < 0x20)
			return -1;
		if (c != '\\') {
			if (buf_addch(out, (char)c) != 0)
				return -1;
			continue;
		}
		if (j->p >= j->end)
			return -1;
		switch (c = *j->p++) {
		case '"': case '\\': case '/':
			break;
		case 'b': c = '\b'; break;
		case 'f': c = '\f'; break;
		case 'n': c = '\n'; break;
		case 'r': c = '\r'; break;
		case 't': c = '\t'; break;
		case 'u':
			if (jp_hex4(j, &cp) != 0)
				return -1;
			if (cp >= 0xdc00 && cp < 0xe000)
				return -1;
			if (cp >= 0xd800 && cp < 0xdc00) {
				if (j->end - j->p < 2 || j->p[0] != '\\' ||
				    j->p[1] != 'u')
					return -1;
				j->p += 2;
				if (jp_hex4(j, &lo) != 0 || lo < 0xdc00 ||
				    lo >= 0xe000)
					return -1;
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				    (lo - 0xdc00);
			}
			if (cp == 0 || utf8_add(out, cp) != 0)
				return -1;
			continue;
		default:
			return -1;
		}
		if (buf_addch(out, (char)c) != 0)
			return -1;
	}
}

static int
jp_digits(struct jp *j)
{
	const char	*start = j->p;

	while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
		j->p++;
	return j->p > start ? 0 : -1;
}

/* A number, true, false or null: checked and skipped. */
static int
jp_scalar(struct jp *j)
{
	static const char *const words[] = { "true", "false", "null" };
	size_t		 i, n;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		n = strlen(words[i]);
		if ((size_t)(j->end - j->p) >= n &&
		    memcmp(j->p, words[i], n) == 0) {
			j->p += n;
			return 0;
		}
	}
	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (jp_digits(j) != 0)
		return -1;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (jp_digits(j) != 0)
			return -1;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (jp_digits(j) != 0)
			return -1;
	}
	return 0;
}

/* The object's members: known names into f, the rest checked and dropped. */
static int
jp_object(struct jp *j, struct fields *f, struct buf *key,
    struct buf *scratch, char *why, size_t whylen)
{
	struct buf	*dst;
	int		 i, k;

	jp_ws(j);
	if (j->p >= j->end || *j->p++ != '{')
		return -1;
	jp_ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return 0;
	}
	for (;;) {
		jp_ws(j);
		buf_reset(key);
		if (jp_string(j, key) != 0)
			return -1;
		jp_ws(j);
		if (j->p >= j->end || *j->p++ != ':')
			return -1;
		jp_ws(j);
		for (k = -1, i = 0; i < CF_N; i++)
			if (strcmp(key->data, json_names[i]) == 0)
				k = i;
		if (k >= 0 && f->seen & 1u << k) {
			(void)snprintf(why, whylen, "%s twice",
			    json_names[k]);
			return -1;
		}
		if (j->p < j->end && *j->p == '"') {
			dst = k >= 0 ? &f->v[k] : scratch;
			buf_reset(dst);
			if (jp_string(j, dst) != 0)
				return -1;
			if (k >= 0)
				f->seen |= 1u << k;
		} else if (k >= 0 || jp_scalar(j) != 0) {
			/* A known field that is no string, an array, ... */
			return -1;
		}
		jp_ws(j);
		if (j->p >= j->end)
			return -1;
		if (*j->p == '}') {
			j->p++;
			return 0;
		}
		if (*j->p++ != ',')
			return -1;
	}
}

enum s3_status
credsrc_parse_json(const char *body, size_t len, struct s3_creds *c,
    char *why, size_t whylen)
{
	struct fields	 f;
	struct buf	 key, scratch;
	struct jp	 j;
	enum s3_status	 st = S3_EPROTO;

	(void)snprintf(why, whylen, "malformed JSON");
	buf_init(&key, JSON_KEY_MAX);
	if (fields_open(&f) != 0 ||
	    credsrc_sbuf_open(&scratch, CREDSRC_TOKEN_MAX) != 0) {
		(void)snprintf(why, whylen, "out of memory");
		st = S3_ENOMEM;
		goto out;
	}
	if (body == NULL)
		goto out;
	j.p = body;
	j.end = body + len;
	if (jp_object(&j, &f, &key, &scratch, why, whylen) != 0)
		goto out;
	jp_ws(&j);
	if (j.p != j.end)
		goto out;
	if (f.seen & 1u << CF_CODE && strcmp(f.v[CF_CODE].data,
	    "Success") != 0) {
		(void)snprintf(why, whylen, "its Code is not Success");
		goto out;
	}
	st = fields_creds(&f, c, why, whylen, S3_EPROTO);
out:
	buf_release(&key);
	credsrc_sbuf_close(&scratch);
	fields_close(&f);
	return st;
}

/* ---- XML: STS AssumeRoleWithWebIdentity ------------------------------- */

static const char *const sts_ok_path[] = {
	"AssumeRoleWithWebIdentityResponse",
	"AssumeRoleWithWebIdentityResult",
	"Credentials",
};
static const char *const sts_err_path[] = { "ErrorResponse", "Error" };
static const char *const sts_names[CF_N] = {
	"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration", "Code",
};

struct stsparse {
	struct s3_xml		 x;		/* first: see xml.h */
	int			 bad;
	int			 error;		/* <ErrorResponse> */
	int			 depth;
	int			 match;		/* path levels we are in */
	int			 root_done;
	int			 field;		/* CF_x, or -1 */
	struct fields		 f;
};

_Static_assert(offsetof(struct stsparse, x) == 0, "see xml.h");

static void
sts_bad(struct stsparse *sp)
{
	sp->bad = 1;
	s3_xml_stop(&sp->x);
}

static void
sts_fail(void *state, const char *why)
{
	(void)why;
	sts_bad(state);
}

static void
sts_start(void *state, const xmlChar *localname, const xmlChar *prefix,
    const xmlChar *uri, int nns, const xmlChar **ns, int nattr,
    int ndefattr, const xmlChar **attr)
{
	struct stsparse		*sp = state;
	const char		*name = (const char *)localname;
	const char *const	*path;
	int			 plen, i;

	(void)prefix; (void)uri; (void)nns; (void)ns; (void)nattr;
	(void)ndefattr; (void)attr;
	if (sp->bad)
		return;
	sp->depth++;
	if (sp->field >= 0) {		/* an element inside a field */
		sts_bad(sp);
		return;
	}
	if (sp->depth == 1) {
		if (sp->root_done)
			sts_bad(sp);
		else if (strcmp(name, sts_err_path[0]) == 0)
			sp->error = 1;
		else if (strcmp(name, sts_ok_path[0]) != 0)
			sts_bad(sp);
		sp->match = 1;
		return;
	}
	path = sp->error ? sts_err_path : sts_ok_path;
	plen = sp->error ? 2 : 3;
	if (sp->match == sp->depth - 1 && sp->depth <= plen) {
		if (strcmp(name, path[sp->depth - 1]) == 0)
			sp->match = sp->depth;
		return;
	}
	if (sp->match != plen || sp->depth != plen + 1)
		return;
	for (i = 0; i < CF_N; i++) {
		if (strcmp(name, sts_names[i]) != 0 ||
		    (i == CF_CODE) != sp->error)
			continue;
		if (sp->f.seen & 1u << i) {
			sts_bad(sp);
			return;
		}
		sp->f.seen |= 1u << i;
		sp->field = i;
	}
}

static void
sts_end(void *state, const xmlChar *localname, const xmlChar *prefix,
    const xmlChar *uri)
{
	struct stsparse	*sp = state;

	(void)localname; (void)prefix; (void)uri;
	if (sp->bad)
		return;
	sp->field = -1;
	if (sp->match == sp->depth)
		sp->match--;
	if (sp->depth == 1)
		sp->root_done = 1;
	sp->depth--;
}

static void
sts_text(void *state, const xmlChar *s, int len)
{
	struct stsparse	*sp = state;

	if (sp->bad || sp->field < 0 || len <= 0)
		return;
	/* Longer than STS makes it: refused. */
	if (buf_add(&sp->f.v[sp->field], s, (size_t)len) != 0)
		sts_bad(sp);
}

enum s3_status
credsrc_parse_sts(const char *body, size_t len, struct s3_creds *c,
    char *code, size_t codelen, char *why, size_t whylen)
{
	struct stsparse	 sp;
	enum s3_status	 st = S3_EXML;
	int		 rc;

	code[0] = '\0';
	(void)snprintf(why, whylen, "malformed XML");
	memset(&sp, 0, sizeof(sp));
	sp.field = -1;
	if (fields_open(&sp.f) != 0) {
		(void)snprintf(why, whylen, "out of memory");
		st = S3_ENOMEM;
		goto out;
	}
	if (body == NULL || len == 0 || len > CREDSRC_STS_MAX)
		goto out;
	if (s3_xml_open(&sp.x, sts_start, sts_end, sts_text, sts_fail) != 0) {
		(void)snprintf(why, whylen, "out of memory");
		st = S3_ENOMEM;
		goto out;
	}
	rc = xmlParseChunk(sp.x.ctxt, body, (int)len, 1);
	if (rc != 0 || sp.bad || !sp.x.ctxt->wellFormed || !sp.root_done)
		goto out;
	if (sp.error) {
		if (!(sp.f.seen & 1u << CF_CODE) || sp.f.v[CF_CODE].len == 0)
			goto out;
		(void)snprintf(code, codelen, "%s", sp.f.v[CF_CODE].data);
		st = S3_ESERVER;
		goto out;
	}
	st = fields_creds(&sp.f, c, why, whylen, S3_EXML);
out:
	s3_xml_close(&sp.x);
	fields_close(&sp.f);
	return st;
}
