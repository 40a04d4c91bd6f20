/*
 * error: status names, the retry policy, and S3 <Error> bodies.
 *
 * The retry policy lives here only, so the client and the engine agree on
 * it. An <Error> body is parsed with the locked-down SAX setup of xml.c
 * (no DOCTYPE, no entities but the predefined five, no network);
 * fields longer than struct s3_error holds are cut at a UTF-8 boundary.
 */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "s3.h"
#include "xml.h"

const char *
s3_strerror(enum s3_status st)
{
	switch (st) {
	case S3_OK:
		return "success";
	case S3_ENOMEM:
		return "out of memory";
	case S3_EINVAL:
		return "invalid argument";
	case S3_ECREDS:
		return "no usable credentials";
	case S3_ESERVER:
		return "server error";
	case S3_ENOTFOUND:
		return "not found";
	case S3_ECONNECT:
		return "cannot connect";
	case S3_ETIMEOUT:
		return "timed out";
	case S3_ENETWORK:
		return "network error";
	case S3_ETLS:
		return "tls error";
	case S3_ESHORT:
		return "response body cut short";
	case S3_ETOOBIG:
		return "response body too large";
	case S3_EXML:
		return "malformed xml";
	case S3_EPROTO:
		return "unexpected response";
	case S3_ECANCELLED:
		return "cancelled";
	case S3_EPARTIAL:
		return "some keys failed";
	}
	return "unknown error";
}

void
s3_error_clear(struct s3_error *err)
{
	if (err != NULL)
		memset(err, 0, sizeof(*err));
}

/* Server text on one line: control bytes become spaces. */
static void
one_line(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

const char *
s3_error_text(enum s3_status st, const struct s3_error *err, char *dst,
    size_t len)
{
	if (dst == NULL || len == 0)
		return s3_strerror(st);
	/* A cut line is still a useful line: truncation is accepted. */
	if (err != NULL && err->code[0] != '\0' && err->http_status > 0)
		(void)snprintf(dst, len, "%s (HTTP %ld)", err->code,
		    err->http_status);
	else if (err != NULL && err->code[0] != '\0')
		(void)snprintf(dst, len, "%s", err->code);
	else if (err != NULL && err->message[0] != '\0')
		(void)snprintf(dst, len, "%s", err->message);
	else if (err != NULL && err->http_status > 0)
		(void)snprintf(dst, len, "%s (HTTP %ld)", s3_strerror(st),
		    err->http_status);
	else
		(void)snprintf(dst, len, "%s", s3_strerror(st));
	one_line(dst);
	return dst;
}

int
s3_retryable(enum s3_status st, const struct s3_error *err)
{
	/* Transient by their nature on AWS and RGW alike. */
	static const char *const codes[] = {
		"SlowDown",
		"Throttling",
		"ThrottlingException",
		"RequestTimeout",
		"InternalError",
		"ServiceUnavailable",
		"RequestLimitExceeded",
	};
	size_t	 i;

	switch (st) {
	case S3_ECONNECT:	/* the caller bounds the attempts */
	case S3_ETIMEOUT:
	case S3_ENETWORK:
	case S3_ESHORT:
		return 1;
	case S3_ESERVER:
		break;
	default:
		return 0;
	}
	if (err == NULL)
		return 0;
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(err->code, codes[i]) == 0)
			return 1;
	/*
	 * RequestTimeTooSkewed comes as 403 and needs the clock fixed, so
	 * the status rule leaves it out; 501 Not Implemented never heals.
	 */
	if (err->http_status == 429 ||
	    (err->http_status >= 500 && err->http_status != 501))
		return 1;
	return 0;
}

enum ef_field {
	EF_NONE,
	EF_CODE,
	EF_MESSAGE,
	EF_REQUEST_ID,
};

struct errparse {
	struct s3_xml		 x;		/* first: see xml.h */
	int			 bad;
	int			 depth;
	int			 root_done;
	enum ef_field		 field;
	unsigned		 seen;
	struct s3_error		 e;
	size_t			 len[4];	/* bytes kept per field */
};

_Static_assert(offsetof(struct errparse, x) == 0, "see xml.h");

static void
ep_bad(struct errparse *ep)
{
	ep->bad = 1;
	s3_xml_stop(&ep->x);
}

static char *
ep_dst(struct errparse *ep, enum ef_field f, size_t *size)
{
	switch (f) {
	case EF_CODE:
		*size = sizeof(ep->e.code);
		return ep->e.code;
	case EF_MESSAGE:
		*size = sizeof(ep->e.message);
		return ep->e.message;
	case EF_REQUEST_ID:
		*size = sizeof(ep->e.request_id);
		return ep->e.request_id;
	case EF_NONE:
		break;
	}
	*size = 0;
	return NULL;
}

static void
ep_start(void *ctx, const xmlChar *localname, const xmlChar *prefix,
    const xmlChar *uri, int nns, const xmlChar **nss, int nattr, int ndef,
    const xmlChar **attrs)
{
	struct errparse	*ep = ctx;
	const char	*name = (const char *)localname;

	(void)prefix; (void)uri; (void)nns; (void)nss; (void)nattr;
	(void)ndef; (void)attrs;
	if (ep->bad)
		return;
	ep->depth++;
	if (ep->field != EF_NONE) {
		ep_bad(ep);
		return;
	}
	if (ep->depth == 1) {
		if (ep->root_done || strcmp(name, "Error") != 0)
			ep_bad(ep);
		return;
	}
	if (ep->depth != 2)
		return;
	if (strcmp(name, "Code") == 0)
		ep->field = EF_CODE;
	else if (strcmp(name, "Message") == 0)
		ep->field = EF_MESSAGE;
	else if (strcmp(name, "RequestId") == 0)
		ep->field = EF_REQUEST_ID;
	if (ep->field == EF_NONE)
		return;
	if (ep->seen & 1u << ep->field)
		ep_bad(ep);
	ep->seen |= 1u << ep->field;
}

static void
ep_end(void *ctx, const xmlChar *localname, const xmlChar *prefix,
    const xmlChar *uri)
{
	struct errparse	*ep = ctx;

	(void)localname; (void)prefix; (void)uri;
	if (ep->bad)
		return;
	if (ep->depth == 1)
		ep->root_done = 1;
	if (ep->depth == 2)
		ep->field = EF_NONE;
	ep->depth--;
}

static void
ep_chars(void *ctx, const xmlChar *s, int n)
{
	struct errparse	*ep = ctx;
	char		*dst;
	size_t		 size, *used, room, take;

	if (ep->bad || ep->field == EF_NONE || n <= 0)
		return;
	dst = ep_dst(ep, ep->field, &size);
	used = &ep->len[ep->field];
	room = size - 1 - *used;
	take = (size_t)n < room ? (size_t)n : room;
	if (take < (size_t)n) {
		/* Cut before a UTF-8 lead byte, never inside a character. */
		while (take > 0 && (s[take] & 0xc0) == 0x80)
			take--;
	}
	memcpy(dst + *used, s, take);
	*used += take;
	dst[*used] = '\0';
	if (take < (size_t)n) {
		/* Full: later text of this field must not append. */
		*used = size - 1;
	}
}

static void
ep_fail(void *state, const char *why)
{
	(void)why;
	ep_bad(state);
}

/*
 * On success err->code and err->message are replaced (message "" when the
 * body has none, as RGW sends) and err->request_id when the body has one.
 * On S3_EXML err is left as it was, so what the caller already put there
 * (HTTP status, a request id from the headers) stays usable.
 */
enum s3_status
s3_parse_error(const char *body, size_t len, struct s3_error *err)
{
	struct errparse	 ep;
	enum s3_status	 st = S3_EXML;
	int		 rc;

	memset(&ep, 0, sizeof(ep));
	if (body == NULL || len == 0 || len > INT_MAX)
		return S3_EXML;

	if (s3_xml_open(&ep.x, ep_start, ep_end, ep_chars, ep_fail) != 0)
		return S3_ENOMEM;
	rc = xmlParseChunk(ep.x.ctxt, body, (int)len, 1);
	if (rc != 0 || ep.bad || !ep.x.ctxt->wellFormed || !ep.root_done ||
	    ep.e.code[0] == '\0')
		goto out;
	if (err != NULL) {
		memcpy(err->code, ep.e.code, sizeof(err->code));
		memcpy(err->message, ep.e.message, sizeof(err->message));
		if (ep.e.request_id[0] != '\0')
			memcpy(err->request_id, ep.e.request_id,
			    sizeof(err->request_id));
	}
	st = S3_OK;
out:
	s3_xml_close(&ep.x);
	return st;
}
