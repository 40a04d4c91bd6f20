/*
 * xml: the locked-down libxml2 setup every S3 document goes through, and
 * the DeleteObjects result parser on top of it.
 */
#include <limits.h>
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

struct delparse {
	struct s3_xml		 x;		/* first: see xml.h */
	enum s3_status		 status;
	int			 depth;
	int			 in_error;
	int			 root_done;
	int			 field;
	struct buf		 text[DF_N];
	s3_delete_err_cb	 cb;
	void			*arg;
	int			 nerr;
};

static void
del_fail(void *state, const char *why)
{
	struct delparse	*dp = state;

	(void)why;
	if (dp->status == S3_OK)
		dp->status = S3_EXML;
	s3_xml_stop(&dp->x);
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
			del_fail(dp, "not a DeleteResult");
		return;
	}
	if (dp->depth == 2 && strcmp(name, "Error") == 0) {
		dp->in_error = 1;
		for (i = 0; i < DF_N; i++)
			buf_reset(&dp->text[i]);
		return;
	}
	if (dp->depth != 3 || !dp->in_error)
		return;
	for (i = 0; i < DF_N; i++)
		if (strcmp(name, del_fields[i].name) == 0)
			dp->field = i;
}

static void
del_end(void *state, const xmlChar *localname, const xmlChar *prefix,
    const xmlChar *uri)
{
	struct delparse	*dp = state;

	(void)localname; (void)prefix; (void)uri;
	if (dp->status != S3_OK)
		return;
	if (dp->depth == 3)
		dp->field = DF_NONE;
	if (dp->depth == 2 && dp->in_error) {
		dp->in_error = 0;
		dp->nerr++;
		if (dp->cb != NULL)
			dp->cb(dp->arg, dp->text[DF_KEY].data,
			    dp->text[DF_CODE].data,
			    dp->text[DF_MESSAGE].data);
	}
	if (dp->depth == 1)
		dp->root_done = 1;
	dp->depth--;
}

static void
del_text(void *state, const xmlChar *s, int len)
{
	struct delparse	*dp = state;

	if (dp->status != S3_OK || dp->field == DF_NONE || len <= 0)
		return;
	if (buf_add(&dp->text[dp->field], s, (size_t)len) != 0)
		del_fail(dp, "a field too long");
}

static enum s3_status
delete_pass(const char *body, size_t len, s3_delete_err_cb cb, void *arg,
    int *nerr)
{
	struct delparse	 dp;
	int		 i, rc;

	memset(&dp, 0, sizeof(dp));
	dp.field = DF_NONE;
	dp.cb = cb;
	dp.arg = arg;
	for (i = 0; i < DF_N; i++)
		buf_init(&dp.text[i], del_fields[i].max);
	if (s3_xml_open(&dp.x, del_start, del_end, del_text, del_fail) != 0)
		dp.status = S3_ENOMEM;
	else {
		rc = xmlParseChunk(dp.x.ctxt, body, (int)len, 1);
		if (dp.status == S3_OK && (rc != 0 ||
		    !dp.x.ctxt->wellFormed || !dp.root_done))
			dp.status = S3_EXML;
	}
	s3_xml_close(&dp.x);
	for (i = 0; i < DF_N; i++)
		buf_release(&dp.text[i]);
	*nerr = dp.nerr;
	return dp.status;
}

/*
 * All or nothing: a result that turns out malformed halfway must not have
 * reported its first keys, since the caller then counts every key of the
 * batch as failed. So one pass checks, a second reports.
 */
enum s3_status
s3_parse_delete_result(const char *body, size_t len, s3_delete_err_cb cb,
    void *arg, int *nerr)
{
	enum s3_status	st;

	*nerr = 0;
	if (body == NULL || len == 0 || len > INT_MAX)
		return S3_EXML;
	if ((st = delete_pass(body, len, NULL, NULL, nerr)) != S3_OK ||
	    cb == NULL)
		return st;
	return delete_pass(body, len, cb, arg, nerr);
}
