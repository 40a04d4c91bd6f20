/*
 * xml: how prewctl lets libxml2 read what a server sends.
 *
 * One SAX push parser setup for every S3 document (listings, <Error>
 * bodies, DeleteObjects results): no tree, no DTD, no entities but the
 * five predefined ones, no network, and the declared encoding ignored (S3
 * sends UTF-8; a declaration would only let libxml2 print). A DOCTYPE, an
 * entity or a libxml2 error stops the parser and is reported, as one line,
 * through the fail function.
 *
 * struct s3_xml must be the first member of the parser's own state: the
 * SAX callbacks get a pointer to that state, which is also a pointer to
 * its struct s3_xml.
 */
#ifndef PREWCTL_XML_H
#define PREWCTL_XML_H

#include <libxml/parser.h>

#include "s3.h"

typedef void	(*s3_xml_fail_fn)(void *state, const char *why);

struct s3_xml {
	xmlParserCtxtPtr	 ctxt;
	s3_xml_fail_fn		 fail;
};

/* Returns 0, or -1 when out of memory. The text function gets CDATA too. */
int	s3_xml_open(struct s3_xml *, startElementNsSAX2Func,
	    endElementNsSAX2Func, charactersSAXFunc, s3_xml_fail_fn);
void	s3_xml_close(struct s3_xml *);
/* Stop parsing: nothing more reaches the callbacks. */
void	s3_xml_stop(struct s3_xml *);

/*
 * A DeleteObjects result for a request of nkeys keys: each <Error> handed
 * to cb (key, code, message).  Returns S3_OK with the number of errors in
 * *nerr, S3_EXML (malformed, or more errors than keys sent) or S3_ENOMEM;
 * then cb was not called.
 */
enum s3_status	s3_parse_delete_result(const char *body, size_t len,
		    size_t nkeys, s3_delete_err_cb cb, void *arg, int *nerr);

#endif
