/*
 * xml: the locked-down libxml2 setup every S3 document goes through, and
 * the DeleteObjects result parser on top of it.
 */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "xml.h"

static void
xml_refuse(void *state, const char *why)
{
	struct s3_xml	*x = state;

	s3_xml_stop(x);
	x->fail(state, why);
}

static void
xml_doctype(void *state, const xmlChar *name, const xmlChar *eid,
    const xmlChar *sid)
{
	(void)name; (void)eid; (void)sid;
	xml_refuse(state, "a DOCTYPE (S3 never sends one)");
}

static xmlEntityPtr
xml_entity(void *state, const xmlChar *name)
{
	/* The five predefined entities never reach here. */
	(void)name;
	xml_refuse(state, "an entity reference");
	return NULL;
}

static void
xml_entity_decl(void *state, const xmlChar *name, int type,
    const xmlChar *pid, const xmlChar *sid, xmlChar *content)
{
	(void)name; (void)type; (void)pid; (void)sid; (void)content;
	xml_refuse(state, "an entity declaration");
}

static void
xml_error(void *state, xmlErrorPtr e)
{
	char	 why[160];
	size_t	 n;

	if (e == NULL || e->level < XML_ERR_ERROR)
		return;
	/* Truncation only shortens a human-readable reason. */
	(void)snprintf(why, sizeof(why), "line %d: %s", e->line,
	    e->message != NULL ? e->message : "malformed XML");
	n = strlen(why);
	while (n > 0 && (why[n - 1] == '\n' || why[n - 1] == ' '))
		why[--n] = '\0';
	/* One line: libxml2 puts newlines inside some messages. */
	while (n-- > 0)
		if ((unsigned char)why[n] < 0x20 || why[n] == 0x7f)
			why[n] = ' ';
	xml_refuse(state, why);
}

int
s3_xml_open(struct s3_xml *x, startElementNsSAX2Func start,
    endElementNsSAX2Func end, charactersSAXFunc text, s3_xml_fail_fn fail)
{
	xmlSAXHandler	 sax;

	memset(&sax, 0, sizeof(sax));
	sax.initialized = XML_SAX2_MAGIC;
	sax.startElementNs = start;
	sax.endElementNs = end;
	sax.characters = text;
	sax.cdataBlock = text;
	sax.ignorableWhitespace = text;
	sax.internalSubset = xml_doctype;
	sax.externalSubset = xml_doctype;
	sax.getEntity = xml_entity;
	sax.getParameterEntity = xml_entity;
	sax.entityDecl = xml_entity_decl;
	sax.serror = xml_error;

	x->fail = fail;
	if ((x->ctxt = xmlCreatePushParserCtxt(&sax, x, NULL, 0, NULL)) ==
	    NULL)
		return -1;
	(void)xmlCtxtUseOptions(x->ctxt, XML_PARSE_NONET |
	    XML_PARSE_IGNORE_ENC);
	return 0;
}

void
s3_xml_close(struct s3_xml *x)
{
	if (x->ctxt != NULL)
		xmlFreeParserCtxt(x->ctxt);
	x->ctxt = NULL;
}

void
s3_xml_stop(struct s3_xml *x)
{
	if (x->ctxt != NULL)
		xmlStopParser(x->ctxt);
}

/* ---- DeleteObjects results -------------------------------------------- */

enum { DF_KEY, DF_CODE, DF_MESSAGE, DF_N, DF_NONE = DF_N };

static const struct {
	const char	*name;
	size_t		 max;
} del_fields[DF_N] = {
	{ "Key", 4096 }, { "Code", 256 }, { "Message", 4096 },
};

/*
 * The <Error>s are collected (key, code, message, each NUL-terminated) and
 * reported only once the whole result has parsed: a result found
 * malformed halfway must report no key, since the caller then counts every
 * key of the batch as failed.  The collection is at most the body's size.
 */
struct delparse {
	struct s3_xml		 x;		/* first: see xml.h */
	enum s3_status		 status;
	int			 depth;
	int			 in_error;
	int			 root_done;
	int			 field;
	unsigned		 seen;		/* fields of this <Error> */
	struct buf		 text[DF_N];
	struct buf		 found;
	int			 nerr;
};

_Static_assert(offsetof(struct delparse, x) == 0, "see xml.h");

static void
del_stop(struct delparse *dp, enum s3_status st)
{
	if (dp->status == S3_OK)
		dp->status = st;
	s3_xml_stop(&dp->x);
}

static void
del_fail(void *state, const char *why)
{
	(void)why;
	del_stop(state, S3_EXML);
}

static void
del_start(void *state, const xmlChar *localname, const xmlChar *prefix,
    const xmlChar *uri, int nns, const xmlChar **ns, int nattr,
    int ndefattr, const xmlChar **attr)
{
	struct delparse	*dp = state;
	const char	*name = (const char *)localname;
	int		 i;

	(void)prefix; (void)uri; (void)nns; (void)ns; (void)nattr;
	(void)ndefattr; (void)attr;
	if (dp->status != S3_OK)
		return;
	dp->depth++;
	if (dp->depth == 1) {
		if (dp->root_done || strcmp(name, "DeleteResult") != 0)
			del_stop(dp, S3_EXML);
		return;
	}
	if (dp->depth == 2 && strcmp(name, "Error") == 0) {
		dp->in_error = 1;
		dp->seen = 0;
		for (i = 0; i < DF_N; i++)
			buf_reset(&dp->text[i]);
		return;
	}
	if (dp->depth != 3 || !dp->in_error)
		return;
	for (i = 0; i < DF_N; i++)
		if (strcmp(name, del_fields[i].name) == 0) {
			/* Which of two keys failed? Neither: refuse it. */
			if (dp->seen & 1u << i) {
				del_stop(dp, S3_EXML);
				return;
			}
			dp->seen |= 1u << i;
			dp->field = i;
		}
}

static void
del_end(void *state, const xmlChar *localname, const xmlChar *prefix,
    const xmlChar *uri)
{
	struct delparse	*dp = state;
	int		 i;

	(void)localname; (void)prefix; (void)uri;
	if (dp->status != S3_OK)
		return;
	if (dp->depth == 3)
		dp->field = DF_NONE;
	if (dp->depth == 2 && dp->in_error) {
		dp->in_error = 0;
		dp->nerr++;
		for (i = 0; i < DF_N; i++)
			if (buf_add(&dp->found, dp->text[i].data,
			    dp->text[i].len + 1) != 0) {
				del_stop(dp, S3_ENOMEM);
				return;
			}
	}
	if (dp->depth == 1)
		dp->root_done = 1;
	dp->depth--;
}

static void
del_text(void *state, const xmlChar *s, int len)
{
	struct delparse	*dp = state;
	struct buf	*b;

	if (dp->status != S3_OK || dp->field == DF_NONE || len <= 0)
		return;
	b = &dp->text[dp->field];
	if ((size_t)len > b->max - b->len)
		del_stop(dp, S3_EXML);		/* longer than S3 makes it */
	else if (buf_add(b, s, (size_t)len) != 0)
		del_stop(dp, S3_ENOMEM);
}

enum s3_status
s3_parse_delete_result(const char *body, size_t len, size_t nkeys,
    s3_delete_err_cb cb, void *arg, int *nerr)
{
	struct delparse	 dp;
	const char	*f[DF_N], *p;
	int		 i, k, rc;

	*nerr = 0;
	if (body == NULL || len == 0 || len > INT_MAX)
		return S3_EXML;
	memset(&dp, 0, sizeof(dp));
	dp.field = DF_NONE;
	for (i = 0; i < DF_N; i++)
		buf_init(&dp.text[i], del_fields[i].max);
	buf_init(&dp.found, BUF_NOMAX);
	if (s3_xml_open(&dp.x, del_start, del_end, del_text, del_fail) != 0)
		dp.status = S3_ENOMEM;
	else {
		rc = xmlParseChunk(dp.x.ctxt, body, (int)len, 1);
		/* More failed keys than were sent: whose were they? */
		if (dp.status == S3_OK && (rc != 0 ||
		    !dp.x.ctxt->wellFormed || !dp.root_done ||
		    (size_t)dp.nerr > nkeys))
			dp.status = S3_EXML;
	}
	s3_xml_close(&dp.x);
	if (dp.status == S3_OK) {
		*nerr = dp.nerr;
		for (p = dp.found.data, k = 0; k < dp.nerr; k++) {
			for (i = 0; i < DF_N; i++) {
				f[i] = p;
				p += strlen(p) + 1;
			}
			if (cb != NULL)
				cb(arg, f[DF_KEY], f[DF_CODE], f[DF_MESSAGE]);
		}
	}
	for (i = 0; i < DF_N; i++)
		buf_release(&dp.text[i]);
	buf_release(&dp.found);
	return dp.status;
}
