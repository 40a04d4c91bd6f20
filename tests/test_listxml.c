/*
 * listxml: ListObjectsV2 pages from a real RGW and in AWS's layout, fed
 * whole and one byte at a time, and hostile or broken bodies. Expected keys
 * come from what was stored (tests/data/listxml/SOURCES.md), ETags are the
 * bodies' MD5s, and times were converted with GNU date -u +%s.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "s3/listxml.h"
#include "helpers.h"

#define DATA "tests/data/listxml/"

#define MAXE 16

struct got {
	int		 n;
	char		 key[MAXE][4200];
	uint64_t	 size[MAXE];
	char		 etag[MAXE][80];
	int64_t		 mtime[MAXE];
	int		 np;
	char		 prefix[MAXE][4200];
	int		 stop_at;	/* 1-based entry that returns 1; 0: none */
	int		 calls;
};

static int
got_object(void *arg, const struct s3_object *o)
{
	struct got	*g = arg;

	g->calls++;
	cr_assert_lt(g->n, MAXE);
	cr_assert_lt(strlen(o->key), sizeof(g->key[0]));
	memcpy(g->key[g->n], o->key, strlen(o->key) + 1);
	g->size[g->n] = o->size;
	cr_assert_lt(strlen(o->etag), sizeof(g->etag[0]));
	memcpy(g->etag[g->n], o->etag, strlen(o->etag) + 1);
	g->mtime[g->n] = o->mtime_ms;
	g->n++;
	return g->stop_at != 0 && g->calls == g->stop_at;
}

static int
got_prefix(void *arg, const char *p)
{
	struct got	*g = arg;

	g->calls++;
	cr_assert_lt(g->np, MAXE);
	cr_assert_lt(strlen(p), sizeof(g->prefix[0]));
	memcpy(g->prefix[g->np], p, strlen(p) + 1);
	g->np++;
	return g->stop_at != 0 && g->calls == g->stop_at;
}

/* Feed body in pieces of step bytes (0: whole), then finish. */
static enum s3_status
parse(const char *body, size_t len, size_t step, struct got *g,
    struct listxml_result *res, char *msg, size_t msglen)
{
	struct listxml	*lx;
	enum s3_status	 st = S3_OK;
	size_t		 off, n;

	lx = listxml_new(got_object, got_prefix, g);
	cr_assert_not_null(lx);
	if (step == 0)
		step = len;
	for (off = 0; off < len && st == S3_OK; off += n) {
		n = len - off < step ? len - off : step;
		st = listxml_feed(lx, body + off, n, msg, msglen);
	}
	if (st == S3_OK)
		st = listxml_finish(lx, res, msg, msglen);
	/* The token is parser-owned: keep a copy for the caller. */
	if (st == S3_OK && res->next_token != NULL)
		res->next_token = strdup(res->next_token);
	listxml_free(lx);
	return st;
}

static enum s3_status
parse_str(const char *body, struct got *g, char *msg, size_t msglen)
{
	struct listxml_result	 res;

	memset(&res, 0, sizeof(res));
	return parse(body, strlen(body), 0, g, &res, msg, msglen);
}

TestSuite(listxml);

/* The RGW page with every awkward key, keys url-encoded. */
static const char *const rgw_keys[] = {
	"photos/100%.jpg",
	"photos/a b.jpg",
	"photos/a+b.jpg",
	"photos/sub dir/y.jpg",
	"photos/sub/x.jpg",
	"photos/tab\there.jpg",
	"photos/\xc3\xbc" "n\xc3\xaf" "c\xc3\xb8" "d\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac.jpg",
	"top.jpg",
};
static const char *const rgw_etags[] = {
	"354f047ba64552895b016bbdd60ab174",	/* percent */
	"5d41402abc4b2a76b9719d911017c592",	/* hello */
	"c580dd18b487375cf352568887651238",	/* plus! */
	"2fb1c5cf58867b5bbc9a1b145a86f3a0",	/* yy */
	"9dd4e461268c8034f5c8564e155c67a6",	/* x */
	"e7f8cbd87d347be881cba92dad128518",	/* tab */
	"8ab3b19e134f01fbaf94b8e15f3df090",	/* unicode */
	"d41d8cd98f00b204e9800998ecf8427e",	/* "" */
};
static const uint64_t rgw_sizes[] = { 7, 5, 5, 2, 1, 3, 7, 0 };
/* 2026-11-28T13:41:34Z is 1795873294 s; then each .fff. */
static const int64_t rgw_mtimes[] = {
	1795873294288, 1795873294263, 1795873294274, 1795873294337,
	1795873294325, 1795873294313, 1795873294301, 1795873294349,
};

static void
check_rgw_all(const struct got *g)
{
	int	 i;

	cr_assert_eq(g->n, 8);
	cr_assert_eq(g->np, 0);
	for (i = 0; i < 8; i++) {
		cr_expect_str_eq(g->key[i], rgw_keys[i], "entry %d", i);
		cr_expect_str_eq(g->etag[i], rgw_etags[i], "entry %d", i);
		cr_expect_eq(g->size[i], rgw_sizes[i], "entry %d", i);
		cr_expect_eq(g->mtime[i], rgw_mtimes[i], "entry %d", i);
	}
}

Test(listxml, rgw_url_encoded_page)
{
	struct got		 g = { 0 };
	struct listxml_result	 res;
	size_t			 len;
	char			*body = th_slurp(DATA "rgw-url-all.xml", &len);
	char			 msg[160] = "";

	cr_assert_eq(parse(body, len, 0, &g, &res, msg, sizeof(msg)), S3_OK,
	    "%s", msg);
	check_rgw_all(&g);
	cr_expect_eq(res.is_truncated, 0);
	cr_expect_null(res.next_token);
	cr_expect_eq(res.key_count, 8);
	cr_expect_eq(res.server_key_count, 8);
	free(body);
}

Test(listxml, rgw_raw_page_matches_url_page)
{
	struct got		 g = { 0 };
	struct listxml_result	 res;
	size_t			 len;
	char			*body = th_slurp(DATA "rgw-raw-all.xml", &len);
	char			 msg[160] = "";

	cr_assert_eq(parse(body, len, 0, &g, &res, msg, sizeof(msg)), S3_OK,
	    "%s", msg);
	check_rgw_all(&g);
	free(body);
}

Test(listxml, one_byte_at_a_time)
{
	static const char *const files[] = {
		"rgw-url-all.xml", "rgw-raw-all.xml", "aws-page.xml",
		"aws-url-page.xml", "rgw-url-delimiter.xml",
	};
	struct got		 whole, bytes;
	struct listxml_result	 r1, r2;
	size_t			 i, len;
	int			 j;
	char			*body;
	char			 msg[160] = "", path[256];

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		memset(&whole, 0, sizeof(whole));
		memset(&bytes, 0, sizeof(bytes));
		cr_assert_lt((size_t)snprintf(path, sizeof(path),
		    "tests/data/listxml/%s", files[i]), sizeof(path));
		body = th_slurp(path, &len);
		cr_assert_eq(parse(body, len, 0, &whole, &r1, msg,
		    sizeof(msg)), S3_OK, "%s: %s", files[i], msg);
		cr_assert_eq(parse(body, len, 1, &bytes, &r2, msg,
		    sizeof(msg)), S3_OK, "%s: %s", files[i], msg);
		cr_assert_gt(whole.n + whole.np, 0);
		cr_assert_eq(bytes.n, whole.n, "%s", files[i]);
		cr_assert_eq(bytes.np, whole.np, "%s", files[i]);
		for (j = 0; j < whole.n; j++) {
			cr_expect_str_eq(bytes.key[j], whole.key[j]);
			cr_expect_str_eq(bytes.etag[j], whole.etag[j]);
			cr_expect_eq(bytes.size[j], whole.size[j]);
			cr_expect_eq(bytes.mtime[j], whole.mtime[j]);
		}
		for (j = 0; j < whole.np; j++)
			cr_expect_str_eq(bytes.prefix[j], whole.prefix[j]);
		cr_expect_eq(r2.is_truncated, r1.is_truncated);
		cr_expect_eq(r2.key_count, r1.key_count);
		if (r1.next_token != NULL) {
			cr_assert_not_null(r2.next_token);
			cr_expect_str_eq(r2.next_token, r1.next_token);
		}
		free(r1.next_token);
		free(r2.next_token);
		free(body);
	}
}

Test(listxml, one_byte_rgw_values)
{
	struct got		 g = { 0 };
	struct listxml_result	 res;
	size_t			 len;
	char			*body = th_slurp(DATA "rgw-url-all.xml", &len);
	char			 msg[160] = "";

	cr_assert_eq(parse(body, len, 1, &g, &res, msg, sizeof(msg)), S3_OK,
	    "%s", msg);
	check_rgw_all(&g);
	free(body);
}

Test(listxml, rgw_common_prefixes)
{
	struct got		 g = { 0 };
	struct listxml_result	 res;
	size_t			 len;
	char			*body =
	    th_slurp(DATA "rgw-url-delimiter.xml", &len);
	char			 msg[160] = "";

	cr_assert_eq(parse(body, len, 7, &g, &res, msg, sizeof(msg)), S3_OK,
	    "%s", msg);
	cr_assert_eq(g.np, 2);
	cr_expect_str_eq(g.prefix[0], "photos/sub dir/");
	cr_expect_str_eq(g.prefix[1], "photos/sub/");
	cr_assert_eq(g.n, 5);
	cr_expect_str_eq(g.key[0], "photos/100%.jpg");
	cr_expect_str_eq(g.key[3], "photos/tab\there.jpg");
	cr_expect_eq(res.key_count, 7);
	cr_expect_eq(res.server_key_count, 7);
	free(body);
}

Test(listxml, rgw_truncated_with_token)
{
	struct got		 g = { 0 };
	struct listxml_result	 res;
	size_t			 len;
	char			*body =
	    th_slurp(DATA "rgw-url-truncated.xml", &len);
	char			 msg[160] = "";

	cr_assert_eq(parse(body, len, 0, &g, &res, msg, sizeof(msg)), S3_OK,
	    "%s", msg);
	cr_expect_eq(g.n, 3);
	cr_expect_eq(res.is_truncated, 1);
	cr_assert_not_null(res.next_token);
	/* RGW's token is the last key, raw: it is not url-decoded. */
	cr_expect_str_eq(res.next_token, "photos/a+b.jpg");
	free(res.next_token);
	free(body);

	memset(&g, 0, sizeof(g));
	body = th_slurp(DATA "rgw-url-last.xml", &len);
	cr_assert_eq(parse(body, len, 0, &g, &res, msg, sizeof(msg)), S3_OK,
	    "%s", msg);
	cr_expect_eq(g.n, 5);
	cr_expect_str_eq(g.key[0], "photos/sub dir/y.jpg");
	cr_expect_eq(res.is_truncated, 0);
	cr_expect_null(res.next_token);
	free(body);
}

Test(listxml, aws_page)
{
	struct got		 g = { 0 };
	struct listxml_result	 res;
	size_t			 len;
	char			*body = th_slurp(DATA "aws-page.xml", &len);
	char			 msg[160] = "";

	cr_assert_eq(parse(body, len, 0, &g, &res, msg, sizeof(msg)), S3_OK,
	    "%s", msg);
	cr_assert_eq(g.n, 3);
	cr_expect_str_eq(g.key[0], "photos/2006/January/sample.jpg");
	cr_expect_eq(g.size[0], 434234);
	cr_expect_str_eq(g.etag[0], "fba9dede5f27731c9771645a39863328");
	cr_expect_eq(g.mtime[0], INT64_C(1255369830000));
	cr_expect_str_eq(g.etag[1], "bf1d737a4d46a19f3bced6905cc8b902-2");
	cr_expect_eq(g.size[1], UINT64_MAX);
	cr_expect_eq(g.mtime[1], INT64_C(1298685380000));
	/* Predefined entities are decoded; no EncodingType, no decoding. */
	cr_expect_str_eq(g.key[2], "photos/2006/March/R&D <draft>.jpg");
	cr_expect_eq(g.mtime[2], INT64_C(951868799500));
	cr_expect_eq(res.is_truncated, 1);
	cr_assert_not_null(res.next_token);
	cr_expect_str_eq(res.next_token,
	    "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
	cr_expect_eq(res.server_key_count, 3);
	free(res.next_token);
	free(body);
}

Test(listxml, aws_url_plus_is_space)
{
	struct got		 g = { 0 };
	struct listxml_result	 res;
	size_t			 len;
	char			*body = th_slurp(DATA "aws-url-page.xml", &len);
	char			 msg[160] = "";

	cr_assert_eq(parse(body, len, 0, &g, &res, msg, sizeof(msg)), S3_OK,
	    "%s", msg);
	cr_assert_eq(g.n, 4);
	cr_expect_str_eq(g.key[0], "100%.csv");
	cr_expect_str_eq(g.key[1], "a b.txt");
	cr_expect_str_eq(g.key[2], "a+b.txt");
	cr_expect_str_eq(g.key[3], "test_file(3).png");
	cr_assert_eq(g.np, 2);
	cr_expect_str_eq(g.prefix[0], "\xed\x95\x9c\xea\xb8\x80/");
	cr_expect_str_eq(g.prefix[1], "run books/");
	cr_expect_eq(res.key_count, 6);
	free(body);
}

#define HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>" \
	"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
#define ENTRY(k) "<Contents><Key>" k "</Key><LastModified>" \
	"2024-06-01T12:34:56.000Z</LastModified><ETag>\"e\"</ETag>" \
	"<Size>1</Size></Contents>"

Test(listxml, truncated_without_token)
{
	struct got		 g = { 0 };
	struct listxml_result	 res;
	const char		*body = HEAD "<IsTruncated>true</IsTruncated>"
				    ENTRY("a") "</ListBucketResult>";
	char			 msg[160] = "";

	cr_assert_eq(parse(body, strlen(body), 0, &g, &res, msg,
	    sizeof(msg)), S3_OK, "%s", msg);
	cr_expect_eq(res.is_truncated, 1);
	cr_expect_null(res.next_token);
	cr_expect_eq(res.server_key_count, -1);
	cr_expect_eq(g.mtime[0], INT64_C(1717245296000));
}

Test(listxml, no_is_truncated_is_refused)
{
	struct got	 g = { 0 };

	cr_expect_eq(parse_str(HEAD ENTRY("a") "</ListBucketResult>", &g,
	    NULL, 0), S3_EXML);
}

Test(listxml, xxe_refused)
{
	static const char body[] =
	    "<?xml version=\"1.0\"?>\n"
	    "<!DOCTYPE ListBucketResult [\n"
	    "  <!ENTITY xxe SYSTEM \"file:///etc/passwd\">\n"
	    "]>\n"
	    "<ListBucketResult><IsTruncated>false</IsTruncated>"
	    "<Contents><Key>&xxe;</Key><LastModified>"
	    "2024-06-01T12:34:56.000Z</LastModified><ETag>&xxe;</ETag>"
	    "<Size>1</Size></Contents></ListBucketResult>";
	struct got	 g = { 0 };
	char		 msg[160] = "";
	int		 i;

	cr_expect_eq(parse_str(body, &g, msg, sizeof(msg)), S3_EXML);
	cr_expect_eq(g.n, 0);
	cr_expect_eq(g.np, 0);
	for (i = 0; i < g.n; i++)
		cr_expect_null(strstr(g.key[i], "root:"));
	cr_expect_neq(strstr(msg, "DOCTYPE"), NULL, "msg: %s", msg);
}

Test(listxml, xxe_one_byte_at_a_time)
{
	static const char body[] =
	    "<?xml version=\"1.0\"?><!DOCTYPE r SYSTEM \"file:///etc/passwd\">"
	    "<ListBucketResult><IsTruncated>false</IsTruncated>"
	    ENTRY("x") "</ListBucketResult>";
	struct got		 g = { 0 };
	struct listxml_result	 res;

	cr_expect_eq(parse(body, strlen(body), 1, &g, &res, NULL, 0),
	    S3_EXML);
	cr_expect_eq(g.n, 0);
}

Test(listxml, billion_laughs_refused_quickly)
{
	static const char body[] =
	    "<?xml version=\"1.0\"?>\n"
	    "<!DOCTYPE lolz [\n"
	    " <!ENTITY lol \"lol\">\n"
	    " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
	    " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
	    " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
	    " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
	    " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
	    " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
	    " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
	    " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
	    " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
	    "]>\n"
	    "<ListBucketResult><IsTruncated>false</IsTruncated>"
	    "<Contents><Key>&lol9;</Key><LastModified>"
	    "2024-06-01T12:34:56.000Z</LastModified><ETag>\"e\"</ETag>"
	    "<Size>1</Size></Contents></ListBucketResult>";
	struct got	 g = { 0 };
	struct timespec	 t0, t1;
	double		 secs;

	cr_assert_eq(clock_gettime(CLOCK_MONOTONIC, &t0), 0);
	cr_expect_eq(parse_str(body, &g, NULL, 0), S3_EXML);
	cr_assert_eq(clock_gettime(CLOCK_MONOTONIC, &t1), 0);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	cr_expect_eq(g.n, 0);
	/* Expanding it would take gigabytes and far longer than this. */
	cr_expect_lt(secs, 0.5, "took %f s", secs);
}

Test(listxml, undeclared_entity_refused)
{
	struct got	 g = { 0 };

	cr_expect_eq(parse_str(HEAD "<IsTruncated>false</IsTruncated>"
	    ENTRY("a&nbsp;b") "</ListBucketResult>", &g, NULL, 0), S3_EXML);
	cr_expect_eq(g.n, 0);
}

Test(listxml, character_references_accepted)
{
	struct got	 g = { 0 };
	char		 msg[160] = "";

	cr_assert_eq(parse_str(HEAD "<IsTruncated>false</IsTruncated>"
	    ENTRY("a&#9;b&#x263A;&quot;&apos;") "</ListBucketResult>", &g,
	    msg, sizeof(msg)), S3_OK, "%s", msg);
	cr_assert_eq(g.n, 1);
	cr_expect_str_eq(g.key[0], "a\tb\xe2\x98\xba\"'");
}

Test(listxml, malformed_refused)
{
	static const char *const bodies[] = {
		"",
		"not xml at all",
		HEAD "<IsTruncated>false</IsTruncated>" ENTRY("a"),
		HEAD "<IsTruncated>false</IsTruncated><Contents><Key>a</Size>"
		    "</Contents></ListBucketResult>",
		"<Error><Code>AccessDenied</Code></Error>",
		HEAD "<IsTruncated>maybe</IsTruncated></ListBucketResult>",
		HEAD "<IsTruncated>false</IsTruncated><Contents><Key>a</Key>"
		    "</Contents></ListBucketResult>",
		HEAD "<IsTruncated>false</IsTruncated><Contents><Key>a</Key>"
		    "<LastModified>2024-06-01T12:34:56.000Z</LastModified>"
		    "<ETag>e</ETag><Size>-1</Size></Contents>"
		    "</ListBucketResult>",
		HEAD "<IsTruncated>false</IsTruncated><Contents><Key>a</Key>"
		    "<LastModified>2024-06-01T12:34:56.000Z</LastModified>"
		    "<ETag>e</ETag><Size>18446744073709551616</Size>"
		    "</Contents></ListBucketResult>",
		HEAD "<IsTruncated>false</IsTruncated><Contents><Key>a</Key>"
		    "<LastModified>yesterday</LastModified>"
		    "<ETag>e</ETag><Size>1</Size></Contents>"
		    "</ListBucketResult>",
		HEAD "<IsTruncated>false</IsTruncated><Contents><Key>a</Key>"
		    "<Key>b</Key><LastModified>2024-06-01T12:34:56.000Z"
		    "</LastModified><ETag>e</ETag><Size>1</Size></Contents>"
		    "</ListBucketResult>",
		HEAD "<IsTruncated>false</IsTruncated><CommonPrefixes>"
		    "</CommonPrefixes></ListBucketResult>",
		HEAD "<EncodingType>url</EncodingType><IsTruncated>false"
		    "</IsTruncated>" ENTRY("a%2") "</ListBucketResult>",
		HEAD "<EncodingType>url</EncodingType><IsTruncated>false"
		    "</IsTruncated>" ENTRY("a%00b") "</ListBucketResult>",
		HEAD "<IsTruncated>false</IsTruncated>" ENTRY("a")
		    "<EncodingType>url</EncodingType></ListBucketResult>",
		HEAD "<EncodingType>base64</EncodingType><IsTruncated>false"
		    "</IsTruncated></ListBucketResult>",
		HEAD "<IsTruncated>false</IsTruncated><Contents><Key>a<b/>"
		    "</Key></Contents></ListBucketResult>",
		HEAD "<IsTruncated>false</IsTruncated></ListBucketResult>"
		    "<ListBucketResult/>",
	};
	struct got	 g;
	size_t		 i;
	char		 msg[160];

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		memset(&g, 0, sizeof(g));
		msg[0] = '\0';
		cr_expect_eq(parse_str(bodies[i], &g, msg, sizeof(msg)),
		    S3_EXML, "body %zu", i);
		cr_expect_neq(msg[0], '\0', "body %zu has no message", i);
	}
}

Test(listxml, callback_cancels)
{
	struct got		 g = { 0 };
	struct listxml_result	 res;
	struct listxml		*lx;
	size_t			 len;
	char			*body = th_slurp(DATA "rgw-url-all.xml", &len);

	g.stop_at = 2;
	lx = listxml_new(got_object, got_prefix, &g);
	cr_assert_not_null(lx);
	cr_expect_eq(listxml_feed(lx, body, len, NULL, 0), S3_ECANCELLED);
	cr_expect_eq(g.n, 2, "no entry after the one that stopped");
	/* Sticky: later calls return the same. */
	cr_expect_eq(listxml_feed(lx, "x", 1, NULL, 0), S3_ECANCELLED);
	cr_expect_eq(listxml_finish(lx, &res, NULL, 0), S3_ECANCELLED);
	listxml_free(lx);
	free(body);
}

Test(listxml, prefix_callback_cancels)
{
	struct got	 g = { 0 };
	size_t		 len;
	char		*body = th_slurp(DATA "rgw-url-delimiter.xml", &len);
	struct listxml_result	 res;

	g.stop_at = 1;
	cr_expect_eq(parse(body, len, 0, &g, &res, NULL, 0), S3_ECANCELLED);
	cr_expect_eq(g.np, 1);
	cr_expect_eq(g.n, 0);
	free(body);
}

static char *
long_key_page(size_t keylen)
{
	char			*body, *p;
	size_t			 n = strlen(HEAD) + keylen + 400;

	body = malloc(n);
	cr_assert_not_null(body);
	p = body;
	p += snprintf(p, n, "%s<IsTruncated>false</IsTruncated><Contents><Key>",
	    HEAD);
	memset(p, 'k', keylen);
	p += keylen;
	snprintf(p, n - (size_t)(p - body), "</Key><LastModified>"
	    "2024-06-01T12:34:56.000Z</LastModified><ETag>e</ETag>"
	    "<Size>1</Size></Contents></ListBucketResult>");
	return body;
}

Test(listxml, key_bound)
{
	struct got		 g = { 0 };
	struct listxml_result	 res;
	char			*body, msg[160] = "";

	body = long_key_page(4096);
	cr_expect_eq(parse(body, strlen(body), 100, &g, &res, msg,
	    sizeof(msg)), S3_OK, "%s", msg);
	cr_expect_eq(g.n, 1);
	free(body);

	memset(&g, 0, sizeof(g));
	body = long_key_page(4097);
	cr_expect_eq(parse(body, strlen(body), 100, &g, &res, msg,
	    sizeof(msg)), S3_EXML);
	cr_expect_eq(g.n, 0);
	cr_expect_neq(strstr(msg, "Key"), NULL, "msg: %s", msg);
	free(body);

	/* Much longer is refused as well, without growing. */
	memset(&g, 0, sizeof(g));
	body = long_key_page(1 << 20);
	cr_expect_eq(parse(body, strlen(body), 0, &g, &res, NULL, 0),
	    S3_EXML);
	free(body);
}

Test(listxml, null_callbacks_count_entries)
{
	struct listxml		*lx;
	struct listxml_result	 res;
	size_t			 len;
	char			*body =
	    th_slurp(DATA "rgw-url-delimiter.xml", &len);

	lx = listxml_new(NULL, NULL, NULL);
	cr_assert_not_null(lx);
	cr_assert_eq(listxml_feed(lx, body, len, NULL, 0), S3_OK);
	cr_assert_eq(listxml_finish(lx, &res, NULL, 0), S3_OK);
	cr_expect_eq(res.key_count, 7);
	listxml_free(lx);
	free(body);
}

struct tcase {
	const char	*s;
	int		 ok;
	int64_t		 ms;
};

/* Seconds from GNU date -u -d ... +%s. */
static const struct tcase tcases[] = {
	{ "1970-01-01T00:00:00.000Z", 1, 0 },
	{ "1970-01-01T00:00:00Z", 1, 0 },
	{ "1969-12-31T23:59:59.999Z", 1, -1 },
	{ "2009-10-12T17:50:30.000Z", 1, INT64_C(1255369830000) },
	{ "2000-02-29T23:59:59.5Z", 1, INT64_C(951868799500) },
	{ "2024-06-01T12:34:56.123456789Z", 1, INT64_C(1717245296123) },
	{ "2100-02-28T00:00:00.000Z", 1, INT64_C(4107456000000) },
	{ "9999-12-31T23:59:59.000Z", 1, INT64_C(253402300799000) },
	{ "0000-03-01T00:00:00.000Z", 1, INT64_C(-62162035200000) },
	{ "2100-02-29T00:00:00.000Z", 0, 0 },
	{ "2023-02-29T00:00:00.000Z", 0, 0 },
	{ "2024-04-31T00:00:00.000Z", 0, 0 },
	{ "2024-13-01T00:00:00.000Z", 0, 0 },
	{ "2024-00-01T00:00:00.000Z", 0, 0 },
	{ "2024-01-00T00:00:00.000Z", 0, 0 },
	{ "2024-01-01T24:00:00.000Z", 0, 0 },
	{ "2024-01-01T00:60:00.000Z", 0, 0 },
	{ "2024-01-01T00:00:60.000Z", 0, 0 },
	{ "2024-01-01T00:00:00.Z", 0, 0 },
	{ "2024-01-01T00:00:00.1234567890Z", 0, 0 },
	{ "2024-01-01T00:00:00.000", 0, 0 },
	{ "2024-01-01T00:00:00.000+00:00", 0, 0 },
	{ "2024-01-01T00:00:00.000Zx", 0, 0 },
	{ "2024-01-01 00:00:00.000Z", 0, 0 },
	{ "2024-1-01T00:00:00.000Z", 0, 0 },
	{ "+024-01-01T00:00:00.000Z", 0, 0 },
	{ "2024-01-01T00:00: 0.000Z", 0, 0 },
	{ "", 0, 0 },
	{ "Sat, 01 Jun 2024 12:34:56 GMT", 0, 0 },
};

Test(listxml, parse_time)
{
	size_t	 i;
	int64_t	 ms;

	for (i = 0; i < sizeof(tcases) / sizeof(tcases[0]); i++) {
		ms = 42;
		if (tcases[i].ok) {
			cr_expect_eq(s3_parse_time(tcases[i].s, &ms), 0, "%s",
			    tcases[i].s);
			cr_expect_eq(ms, tcases[i].ms, "%s: %lld", tcases[i].s,
			    (long long)ms);
		} else {
			cr_expect_eq(s3_parse_time(tcases[i].s, &ms), -1, "%s",
			    tcases[i].s);
		}
	}
}
