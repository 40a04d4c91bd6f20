/*
 * s3error: status names, the retry table, and <Error> bodies from a real
 * RGW (tests/data/listxml) and from the Amazon S3 API Reference.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "s3/s3.h"
#include "s3/xml.h"
#include "helpers.h"

#define DATA "tests/data/listxml/"

TestSuite(s3error);

#define SET(dst, s) cr_assert_lt((size_t)snprintf((dst), sizeof(dst), "%s", \
	(s)), sizeof(dst))

Test(s3error, strerror_every_status)
{
	enum s3_status	 st;
	const char	*s, *p;

	for (st = S3_OK; st <= S3_EPARTIAL; st++) {
		s = s3_strerror(st);
		cr_assert_not_null(s);
		cr_expect_gt(strlen(s), 0);
		cr_expect_str_neq(s, "unknown error", "status %d", st);
		for (p = s; *p != '\0'; p++)
			cr_expect(*p < 'A' || *p > 'Z', "'%s' not lowercase", s);
	}
	cr_expect_str_eq(s3_strerror((enum s3_status)999), "unknown error");
}

Test(s3error, clear)
{
	struct s3_error	 e;

	memset(&e, 'x', sizeof(e));
	s3_error_clear(&e);
	cr_expect_eq(e.http_status, 0);
	cr_expect_eq(e.curl_code, 0);
	cr_expect_str_empty(e.code);
	cr_expect_str_empty(e.message);
	cr_expect_str_empty(e.request_id);
	s3_error_clear(NULL);
}

Test(s3error, rgw_empty_message)
{
	struct s3_error	 e;
	size_t		 len;
	char		*body = th_slurp(DATA "rgw-error-signature.xml", &len);

	s3_error_clear(&e);
	e.http_status = 403;
	SET(e.message, "stale");	/* must be replaced by "" */
	cr_assert_eq(s3_parse_error(body, len, &e), S3_OK);
	cr_expect_str_eq(e.code, "SignatureDoesNotMatch");
	cr_expect_str_empty(e.message);
	cr_expect_str_eq(e.request_id,
	    "tx000005bcbb6e14779a670-006b0ada11-100a-default");
	cr_expect_eq(e.http_status, 403);
	free(body);

	body = th_slurp(DATA "rgw-error-nosuchkey.xml", &len);
	cr_assert_eq(s3_parse_error(body, len, &e), S3_OK);
	cr_expect_str_eq(e.code, "NoSuchKey");
	cr_expect_str_empty(e.message);
	free(body);
}

/* The example of the "Error responses" page of the S3 API Reference. */
Test(s3error, aws_example)
{
	static const char body[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<Error>\n"
	    "  <Code>NoSuchKey</Code>\n"
	    "  <Message>The resource you requested does not exist</Message>\n"
	    "  <Resource>/mybucket/myfoto.jpg</Resource>\n"
	    "  <RequestId>4442587FB7D0A2F9</RequestId>\n"
	    "</Error>\n";
	struct s3_error	 e;

	s3_error_clear(&e);
	cr_assert_eq(s3_parse_error(body, strlen(body), &e), S3_OK);
	cr_expect_str_eq(e.code, "NoSuchKey");
	cr_expect_str_eq(e.message,
	    "The resource you requested does not exist");
	cr_expect_str_eq(e.request_id, "4442587FB7D0A2F9");
}

Test(s3error, missing_message_and_request_id)
{
	static const char body[] = "<Error><Code>SlowDown</Code></Error>";
	struct s3_error	 e;

	s3_error_clear(&e);
	SET(e.request_id, "from-header");
	cr_assert_eq(s3_parse_error(body, strlen(body), &e), S3_OK);
	cr_expect_str_eq(e.code, "SlowDown");
	cr_expect_str_empty(e.message);
	cr_expect_str_eq(e.request_id, "from-header");
}

Test(s3error, long_fields_truncated)
{
	char		 body[2048], msg[600];
	struct s3_error	 e;
	size_t		 i;
	int		 n;

	/* 300 two-byte characters: the cut must fall between two. */
	for (i = 0; i < 300; i++)
		memcpy(msg + 2 * i, "\xc3\xa9", 2);
	msg[598] = '\0';
	n = snprintf(body, sizeof(body), "<Error><Code>%s</Code>"
	    "<Message>%s</Message></Error>",
	    "AVeryLongCodeThatGoesOnAndOnAndOnAndOnAndOnAndOnAndOnAndOnAndOn"
	    "AndOnAndOn", msg);
	cr_assert_lt((size_t)n, sizeof(body));
	s3_error_clear(&e);
	cr_assert_eq(s3_parse_error(body, (size_t)n, &e), S3_OK);
	cr_expect_eq(strlen(e.code), sizeof(e.code) - 1);
	cr_expect_eq(strncmp(e.code, "AVeryLongCode", 13), 0);
	cr_expect_eq(strlen(e.message), sizeof(e.message) - 2,
	    "255 bytes would split a character; 254 do not");
	cr_expect_eq(strncmp(e.message, msg, strlen(e.message)), 0);
}

Test(s3error, not_xml_leaves_err_usable)
{
	static const char *const bodies[] = {
		"",
		"<html><body>502 Bad Gateway</body></html>",
		"Internal Server Error",
		"<Error><Code>Truncated",
		"<Error><Message>no code</Message></Error>",
		"<Error><Code>A</Code><Code>B</Code></Error>",
		("<?xml version=\"1.0\"?><!DOCTYPE Error [<!ENTITY x SYSTEM "
		    "\"file:///etc/passwd\">]><Error><Code>&x;</Code></Error>"),
		"<Error><Code>A&unknown;</Code></Error>",
		"<Error><Code>A</Code></Error><Error/>",
	};
	struct s3_error	 e;
	size_t		 i;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		s3_error_clear(&e);
		e.http_status = 502;
		SET(e.request_id, "hdr-id");
		cr_expect_eq(s3_parse_error(bodies[i], strlen(bodies[i]), &e),
		    S3_EXML, "body %zu", i);
		cr_expect_eq(e.http_status, 502);
		cr_expect_str_empty(e.code, "body %zu", i);
		cr_expect_str_eq(e.request_id, "hdr-id");
	}
	cr_expect_eq(s3_parse_error(NULL, 0, &e), S3_EXML);
}

Test(s3error, text)
{
	struct s3_error	 e;
	char		 dst[128], small[8];

	s3_error_clear(&e);
	SET(e.code, "SignatureDoesNotMatch");
	e.http_status = 403;
	cr_expect_str_eq(s3_error_text(S3_ESERVER, &e, dst, sizeof(dst)),
	    "SignatureDoesNotMatch (HTTP 403)");

	s3_error_clear(&e);
	SET(e.message, "Could not resolve host: nowhere\n");
	cr_expect_str_eq(s3_error_text(S3_ECONNECT, &e, dst, sizeof(dst)),
	    "Could not resolve host: nowhere ");

	s3_error_clear(&e);
	e.http_status = 404;
	cr_expect_str_eq(s3_error_text(S3_ENOTFOUND, &e, dst, sizeof(dst)),
	    "not found (HTTP 404)");
	cr_expect_str_eq(s3_error_text(S3_ENOMEM, NULL, dst, sizeof(dst)),
	    "out of memory");

	s3_error_clear(&e);
	SET(e.code, "SignatureDoesNotMatch");
	e.http_status = 403;
	cr_expect_str_eq(s3_error_text(S3_ESERVER, &e, small, sizeof(small)),
	    "Signatu");
	cr_expect_str_eq(s3_error_text(S3_ESERVER, &e, NULL, 0),
	    "server error");
}

struct rcase {
	enum s3_status	 st;
	long		 http;
	const char	*code;
	int		 retry;
};

static const struct rcase rcases[] = {
	{ S3_ECONNECT, 0, "", 1 },
	{ S3_ETIMEOUT, 0, "", 1 },
	{ S3_ENETWORK, 0, "", 1 },
	{ S3_ESHORT, 200, "", 1 },
	{ S3_ESERVER, 500, "InternalError", 1 },
	{ S3_ESERVER, 503, "SlowDown", 1 },
	{ S3_ESERVER, 503, "ServiceUnavailable", 1 },
	{ S3_ESERVER, 502, "", 1 },
	{ S3_ESERVER, 504, "", 1 },
	{ S3_ESERVER, 429, "", 1 },
	{ S3_ESERVER, 400, "RequestTimeout", 1 },
	{ S3_ESERVER, 400, "Throttling", 1 },
	{ S3_ESERVER, 400, "ThrottlingException", 1 },
	{ S3_ESERVER, 400, "RequestLimitExceeded", 1 },
	{ S3_ESERVER, 501, "NotImplemented", 0 },
	{ S3_ESERVER, 403, "RequestTimeTooSkewed", 0 },
	{ S3_ESERVER, 403, "SignatureDoesNotMatch", 0 },
	{ S3_ESERVER, 403, "InvalidAccessKeyId", 0 },
	{ S3_ESERVER, 403, "AccessDenied", 0 },
	{ S3_ESERVER, 400, "InvalidArgument", 0 },
	{ S3_ESERVER, 409, "BucketAlreadyExists", 0 },
	{ S3_ENOTFOUND, 404, "NoSuchKey", 0 },
	{ S3_ETOOBIG, 200, "", 0 },
	{ S3_EXML, 200, "", 0 },
	{ S3_EXML, 500, "", 0 },
	{ S3_EINVAL, 0, "", 0 },
	{ S3_ENOMEM, 0, "", 0 },
	{ S3_ECREDS, 0, "", 0 },
	{ S3_ETLS, 0, "", 0 },
	{ S3_ECANCELLED, 0, "", 0 },
	{ S3_EPROTO, 200, "", 0 },
	{ S3_EPARTIAL, 200, "", 0 },
	{ S3_OK, 200, "", 0 },
};

Test(s3error, retryable_table)
{
	struct s3_error	 e;
	size_t		 i;

	for (i = 0; i < sizeof(rcases) / sizeof(rcases[0]); i++) {
		s3_error_clear(&e);
		e.http_status = rcases[i].http;
		SET(e.code, rcases[i].code);
		cr_expect_eq(s3_retryable(rcases[i].st, &e), rcases[i].retry,
		    "%s %ld %s", s3_strerror(rcases[i].st), rcases[i].http,
		    rcases[i].code);
	}
	cr_expect_eq(s3_retryable(S3_ESERVER, NULL), 0);
	cr_expect_eq(s3_retryable(S3_ETIMEOUT, NULL), 1);
}

/* ---- DeleteObjects results ------------------------------------------------ */

struct delseen {
	int	 n;
	char	 line[4][160];
};

static void
del_cb(void *arg, const char *key, const char *code, const char *msg)
{
	struct delseen	*d = arg;

	if (d->n < 4)
		snprintf(d->line[d->n], sizeof(d->line[0]), "%s|%s|%s", key,
		    code, msg);
	d->n++;
}

static enum s3_status
parse_del(const char *xml, struct delseen *d, int *nerr)
{
	memset(d, 0, sizeof(*d));
	return s3_parse_delete_result(xml, strlen(xml), S3_DELETE_MAX, del_cb,
	    d, nerr);
}

/* The Amazon S3 API Reference, DeleteObjects, "Example 1" response. */
Test(s3error, delete_result_aws_example)
{
	static const char xml[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
	    "  <Deleted>\n    <Key>sample1.txt</Key>\n  </Deleted>\n"
	    "  <Error>\n    <Key>sample2.txt</Key>\n"
	    "    <Code>AccessDenied</Code>\n"
	    "    <Message>Access Denied</Message>\n  </Error>\n"
	    "</DeleteResult>\n";
	struct delseen	 d;
	int		 nerr;

	cr_assert_eq(parse_del(xml, &d, &nerr), S3_OK);
	cr_assert_eq(nerr, 1);
	cr_assert_eq(d.n, 1);
	cr_assert_str_eq(d.line[0], "sample2.txt|AccessDenied|Access Denied");
}

Test(s3error, delete_result_escapes_order_and_missing_fields)
{
	static const char xml[] =
	    "<DeleteResult>"
	    "<Error><Key>a &amp; b &lt;c&gt;</Key><Code>InternalError</Code>"
	    "<Message>x</Message></Error>"
	    "<Deleted><Key>ok</Key></Deleted>"
	    "<Error><Code>AccessDenied</Code></Error>"
	    "<Error><Key><![CDATA[d]]></Key><Code>NoSuchKey</Code>"
	    "<Message/></Error>"
	    "</DeleteResult>";
	struct delseen	 d;
	int		 nerr;

	cr_assert_eq(parse_del(xml, &d, &nerr), S3_OK);
	cr_assert_eq(nerr, 3);
	cr_assert_eq(d.n, 3);
	cr_assert_str_eq(d.line[0], "a & b <c>|InternalError|x");
	cr_assert_str_eq(d.line[1], "|AccessDenied|");
	cr_assert_str_eq(d.line[2], "d|NoSuchKey|");
}

Test(s3error, delete_result_all_deleted)
{
	struct delseen	 d;
	int		 nerr = -1;

	cr_assert_eq(parse_del("<DeleteResult><Deleted><Key>k</Key>"
	    "</Deleted></DeleteResult>", &d, &nerr), S3_OK);
	cr_assert_eq(nerr, 0);
	cr_assert_eq(d.n, 0);
	cr_assert_eq(parse_del("<DeleteResult/>", &d, &nerr), S3_OK);
	cr_assert_eq(nerr, 0);
}

/*
 * Refused as a whole, and then no key may have been reported: the caller
 * counts every key of the batch as failed.
 */
Test(s3error, delete_result_refused_reports_nothing)
{
	static const char *const bad[] = {
		/* cut off after a complete <Error> */
		"<DeleteResult><Error><Key>k</Key><Code>C</Code></Error>"
		    "<Error><Key>",
		/* not a DeleteResult */
		"<Error><Code>AccessDenied</Code></Error>",
		/* a DOCTYPE, an entity */
		"<!DOCTYPE DeleteResult [<!ENTITY e \"x\">]>"
		    "<DeleteResult><Error><Key>&e;</Key></Error></DeleteResult>",
		"<DeleteResult><Error><Key>k</Key></Error><Error><Key>&e;"
		    "</Key></Error></DeleteResult>",
		/* two roots */
		"<DeleteResult/><DeleteResult/>",
		/* which key failed? */
		"<DeleteResult><Error><Key>a</Key><Key>b</Key><Code>C</Code>"
		    "</Error></DeleteResult>",
		"",
		"not xml",
	};
	struct delseen	 d;
	size_t		 i;
	int		 nerr;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(parse_del(bad[i], &d, &nerr), S3_EXML, "case %zu",
		    i);
		cr_expect_eq(d.n, 0, "case %zu: %d keys reported", i, d.n);
	}
}

Test(s3error, delete_result_key_too_long)
{
	struct buf	 b;
	struct delseen	 d;
	int		 nerr;
	size_t		 i;

	buf_init(&b, BUF_NOMAX);
	cr_assert(buf_addstr(&b, "<DeleteResult><Error><Key>") == 0);
	for (i = 0; i < 5000; i++)
		cr_assert(buf_addch(&b, 'k') == 0);
	cr_assert(buf_addstr(&b, "</Key></Error></DeleteResult>") == 0);
	cr_expect_eq(parse_del(b.data, &d, &nerr), S3_EXML);
	cr_expect_eq(d.n, 0);
	buf_release(&b);
}

/* A result naming more failed keys than the request held is refused. */
Test(s3error, delete_result_more_errors_than_keys)
{
	static const char xml[] =
	    "<DeleteResult><Error><Key>a</Key><Code>C</Code></Error>"
	    "<Error><Key>b</Key><Code>C</Code></Error></DeleteResult>";
	struct delseen	 d;
	int		 nerr;

	memset(&d, 0, sizeof(d));
	cr_expect_eq(s3_parse_delete_result(xml, strlen(xml), 1, del_cb, &d,
	    &nerr), S3_EXML);
	cr_expect_eq(d.n, 0, "%d keys reported", d.n);
	cr_expect_eq(s3_parse_delete_result(xml, strlen(xml), 2, del_cb, &d,
	    &nerr), S3_OK);
	cr_expect_eq(nerr, 2);
	cr_expect_eq(d.n, 2);
}
